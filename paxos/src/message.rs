//! Messages between replicas.

use crate::storage::SlotState;
use crate::types::{Ballot, NodeId, Slot, Value};

/// A message with its sender and receiver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    /// Who sent it.
    pub from: NodeId,
    /// Who should get it.
    pub to: NodeId,
    /// What it says.
    pub message: Message,
}

impl Message {
    /// True if this message reports acceptor state (a promise, an accepted
    /// value, an acknowledged ballot), so the records of the same `Ready`
    /// must be durable before it is sent. The proposer's and learner's
    /// messages may go out before the records are persisted, overlapping the
    /// leader's own disk write with its followers' — provided the driver does
    /// not step the core again until that persist completes.
    pub fn reports_acceptor_state(&self) -> bool {
        matches!(
            self,
            Message::Promise { .. } | Message::Accepted { .. } | Message::HeartbeatAck { .. }
        )
    }
}

/// One protocol message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// Phase 1a: promise not to accept below `ballot`, and report what you
    /// hold at or above `first_slot`.
    Prepare {
        /// The candidate's ballot.
        ballot: Ballot,
        /// The first slot the candidate does not know to be chosen.
        first_slot: Slot,
    },
    /// Phase 1b: the promise, with every slot held at or above the
    /// prepare's `first_slot`.
    Promise {
        /// The ballot promised.
        ballot: Ballot,
        /// The acceptor forgot slots through here (compacted into a
        /// snapshot). A candidate that wanted any of them is behind and must
        /// catch up before it may lead.
        compacted_through: Slot,
        /// Accepted or chosen values, by slot.
        slots: Vec<(Slot, SlotState)>,
    },
    /// Phase 2a: accept these values at `ballot`; everything through
    /// `commit` is chosen.
    Accept {
        /// The leader's ballot.
        ballot: Ballot,
        /// Values to accept, by slot.
        entries: Vec<(Slot, Value)>,
        /// The leader's commit index.
        commit: Slot,
    },
    /// Phase 2b: these slots were accepted (and are durable) at `ballot`.
    Accepted {
        /// The ballot accepted at.
        ballot: Ballot,
        /// The slots accepted.
        slots: Vec<Slot>,
    },
    /// A prepare, accept or heartbeat at `ballot` was refused because the
    /// acceptor promised `promised` (or holds a lease for another leader).
    Reject {
        /// The refused ballot.
        ballot: Ballot,
        /// The acceptor's promise.
        promised: Ballot,
    },
    /// The leader is alive; everything through `commit` is chosen. Acks
    /// renew the leader's lease and confirm ReadIndex rounds.
    Heartbeat {
        /// The leader's ballot.
        ballot: Ballot,
        /// The leader's commit index.
        commit: Slot,
        /// Number of this heartbeat round, echoed in the ack.
        round: u64,
    },
    /// The answer to a heartbeat.
    HeartbeatAck {
        /// The leader's ballot.
        ballot: Ballot,
        /// The acknowledged round.
        round: u64,
    },
    /// Send me chosen values from `first_slot` on.
    Fetch {
        /// The first slot wanted.
        first_slot: Slot,
    },
    /// Chosen values, the answer to a fetch.
    Chosen {
        /// Chosen values, by slot, in slot order.
        entries: Vec<(Slot, Value)>,
    },
}
