//! What the core asks its driver to do.

use crate::message::Envelope;
use crate::storage::Record;
use crate::types::{Command, NodeId, Slot, Value};

/// Identifies one read the driver asked for with
/// [`Replica::read`](crate::Replica::read).
pub type ReadId = u64;

/// Numbers the [`Ready`]s of one replica, from 1, in the order taken.
pub type ReadySeq = u64;

/// The output of the core since the last call to
/// [`Replica::ready`](crate::Replica::ready).
///
/// The driver handles it in this order:
/// 1. start making every record of `persist` durable (one fsync for all of
///    them; see [`Record::must_sync`](crate::Record::must_sync)), after those
///    of every earlier `Ready`, and send the messages that
///    [`take_early_messages`](Ready::take_early_messages) returns;
/// 2. apply `committed` in order (chosen values are durable at a majority
///    already; they rely on no record of this node);
/// 3. answer `reads` from the state after step 2, with no wait between
///    taking this `Ready` and answering (a lease read is only valid now);
/// 4. tell the clients of `failed_reads` and `unproposed` to retry
///    elsewhere;
/// 5. send a state-machine snapshot to each of `snapshots_to_send`;
/// 6. once `persist` is durable (and every earlier `Ready`'s), send the
///    rest of `messages`, then report it with
///    [`Replica::persisted`](crate::Replica::persisted)`(now, seq)`.
///
/// The driver may keep stepping the core and take more `Ready`s while
/// step 6 waits for the disk: the core asks for nothing that relies on an
/// undurable record (an acceptor's replies wait in `messages`, its own
/// proposer hears it only through `persisted`).
#[derive(Debug, Default)]
pub struct Ready {
    /// This `Ready`'s number, for [`Replica::persisted`](crate::Replica::persisted).
    pub seq: ReadySeq,
    /// Records to make durable before `messages` are sent.
    pub persist: Vec<Record>,
    /// Messages to send once `persist` is durable (except those
    /// [`take_early_messages`](Ready::take_early_messages) removes).
    pub messages: Vec<Envelope>,
    /// Chosen values to apply, in slot order, without gaps.
    pub committed: Vec<(Slot, Value)>,
    /// Reads that may now be served linearizably from local state.
    pub reads: Vec<ReadId>,
    /// Reads that will never be served here (leadership lost).
    pub failed_reads: Vec<ReadId>,
    /// Commands dropped before they got a slot (leadership lost); they were
    /// never proposed and may be sent to the new leader.
    pub unproposed: Vec<Command>,
    /// Peers that need values this node compacted away: send each a
    /// snapshot of the state machine (after applying `committed`); the peer
    /// installs it and calls `Replica::install_snapshot`.
    pub snapshots_to_send: Vec<NodeId>,
    /// Set by the core while this `Ready` or an earlier one not yet durable
    /// raises this node's own promise: its proposer messages rely on it.
    pub(crate) promise_pending: bool,
    /// Bug injection: proposer messages go early even then.
    pub(crate) early_despite_promise: bool,
}

impl Ready {
    /// Removes and returns the messages that rely on no record of
    /// `persist`, which the driver may send before `persist` is durable, so
    /// that a leader's disk write overlaps its followers'.
    ///
    /// An acceptor's reply (Promise, Accepted, HeartbeatAck) reports state
    /// it must have made durable, so it always waits. A proposer's message
    /// at ballot b (Accept, Heartbeat, Prepare) relies on this node's own
    /// `Promised(b)`: were it lost in a crash, the restarted node could
    /// accept a lower ballot's value for a slot it proposed into at b, or
    /// reuse b for another value. So while this `Ready`'s `persist`, or an
    /// earlier one's still in flight, raises the promise, no message goes
    /// early; otherwise the proposer's messages do.
    ///
    /// An early message never claims a slot chosen on the strength of an
    /// undurable acceptance: a leader counts its own acceptor only once the
    /// driver reports its records durable
    /// ([`Replica::persisted`](crate::Replica::persisted)).
    pub fn take_early_messages(&mut self) -> Vec<Envelope> {
        if self.promise_pending && !self.early_despite_promise {
            return Vec::new();
        }
        let (early, after): (Vec<Envelope>, Vec<Envelope>) = std::mem::take(&mut self.messages)
            .into_iter()
            .partition(|e| !e.message.reports_acceptor_state());
        self.messages = after;
        early
    }

    /// True if there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.persist.is_empty()
            && self.messages.is_empty()
            && self.committed.is_empty()
            && self.reads.is_empty()
            && self.failed_reads.is_empty()
            && self.unproposed.is_empty()
            && self.snapshots_to_send.is_empty()
    }
}
