//! What happens in a simulation, in time order: the events ([`Event`]) and
//! the queue's ordering of them ([`Scheduled`]: earliest first, ties in the
//! order they were scheduled, so a seed replays exactly).

use std::cmp::Ordering;

use synod_kvstore::SnapshotChunk;
use synod_paxos::{Envelope, NodeId};

use super::coord::CoordReply;
use super::workload::{Reply, Request};

#[derive(Debug)]
pub(super) enum Event {
    Tick {
        node: usize,
        incarnation: u64,
    },
    Deliver(Envelope),
    /// `node`'s log syncs the rounds waiting for it (while it runs
    /// `incarnation`).
    LogSync {
        node: usize,
        incarnation: u64,
    },
    Request {
        node: usize,
        client: usize,
        request: Request,
    },
    Reply {
        client: usize,
        reply: Reply,
    },
    ClientStart {
        client: usize,
    },
    ClientSend {
        client: usize,
        tag: u64,
        attempt: u64,
    },
    ClientTimeout {
        client: usize,
        tag: u64,
        attempt: u64,
    },
    Cut,
    Heal,
    Crash,
    Restart(usize),
    /// A full log disk has room again.
    DiskFreed(usize),
    EndFaults,
    /// One chunk of a state-machine snapshot `from` streams to `to`
    /// (while `to` runs `incarnation`).
    SnapshotChunk {
        to: usize,
        incarnation: u64,
        from: NodeId,
        chunk: SnapshotChunk,
    },
    CoordStart {
        client: usize,
    },
    CoordSend {
        client: usize,
        stream: usize,
        seq: u64,
        attempt: u64,
    },
    CoordTimeout {
        client: usize,
        stream: usize,
        seq: u64,
        attempt: u64,
    },
    CoordKeepAlive {
        client: usize,
        life: u64,
    },
    CoordReply(CoordReply),
    /// Ask the leader for the next membership change.
    MembershipChange,
    /// The churn mix ends a leadership: crash `node` if it still leads
    /// with `ballot`.
    ChurnCrash {
        node: usize,
        incarnation: u64,
        ballot: synod_paxos::Ballot,
    },
}

pub(super) struct Scheduled {
    pub(super) at_us: u64,
    pub(super) order: u64,
    pub(super) event: Event,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at_us, self.order) == (other.at_us, other.order)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at_us, other.order).cmp(&(self.at_us, self.order))
    }
}
