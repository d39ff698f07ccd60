//! What the core asks its driver to do.

use crate::message::Envelope;
use crate::storage::Record;
use crate::types::{Command, NodeId, Slot, Value};

/// Identifies one read the driver asked for with
/// [`Replica::read`](crate::Replica::read).
pub type ReadId = u64;

/// The output of the core since the last call to
/// [`Replica::ready`](crate::Replica::ready).
///
/// The driver must handle it in this order:
/// 1. make every record of `persist` durable (one fsync for all of them;
///    see [`Record::must_sync`](crate::Record::must_sync)), and not step the
///    core again until that is done;
/// 2. send `messages`: those that
///    [report acceptor state](crate::Message::reports_acceptor_state) only
///    after step 1, the others may go out before it;
/// 3. apply `committed` in order;
/// 4. answer `reads` from the state after step 3, with no wait between
///    taking this `Ready` and answering (a lease read is only valid now);
/// 5. tell the clients of `failed_reads` and `unproposed` to retry
///    elsewhere;
/// 6. send a state-machine snapshot to each of `snapshots_to_send`.
#[derive(Debug, Default)]
pub struct Ready {
    /// Records to make durable before anything is sent.
    pub persist: Vec<Record>,
    /// Messages to send, after `persist` is durable.
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
}

impl Ready {
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
