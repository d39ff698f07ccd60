//! Messages between replicas.

use crate::storage::SlotState;
use crate::types::{Ballot, NodeId, Slot, Value, SLOT_OVERHEAD_BYTES};

/// Bytes allowed for everything of a message but its slots: sender,
/// receiver, ballot, commit index, slot numbers and field tags.
pub const MESSAGE_OVERHEAD_BYTES: usize = 64;

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
    /// (and of every earlier one) must be durable before it is sent. The
    /// proposer's and learner's messages may go out before the records are
    /// persisted, overlapping the leader's own disk write with its
    /// followers' (see `Ready::take_early_messages`).
    pub fn reports_acceptor_state(&self) -> bool {
        matches!(
            self,
            Message::Promise { .. } | Message::Accepted { .. } | Message::HeartbeatAck { .. }
        )
    }

    /// An upper bound of this message's encoded size, in bytes:
    /// [`MESSAGE_OVERHEAD_BYTES`] plus, for each slot it carries,
    /// [`Value::size_bound_bytes`] (or [`SLOT_OVERHEAD_BYTES`] for a bare
    /// slot number). Cheap: it reads lengths, it encodes nothing.
    pub fn size_bound_bytes(&self) -> usize {
        let slots: usize = match self {
            Message::Promise { slots, .. } => slots
                .iter()
                .map(|(_, state)| state.value().size_bound_bytes())
                .sum(),
            Message::Accept { entries, .. } | Message::Chosen { entries } => {
                entries.iter().map(|(_, v)| v.size_bound_bytes()).sum()
            }
            Message::Accepted { slots, .. } => slots.len() * SLOT_OVERHEAD_BYTES,
            Message::Prepare { .. }
            | Message::Reject { .. }
            | Message::Heartbeat { .. }
            | Message::HeartbeatAck { .. }
            | Message::Fetch { .. }
            | Message::ReadIndex { .. }
            | Message::ReadIndexReply { .. } => 0,
        };
        MESSAGE_OVERHEAD_BYTES + slots
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
    /// Phase 1b: the promise, with the slots held at or above the
    /// prepare's `first_slot`.
    ///
    /// # Chunks
    /// A promise is bounded in bytes like every message (the acceptor's
    /// `Config::max_message_bytes`). When the acceptor's slots from
    /// `first_slot` on do not fit, it sends those that do (at least one) and
    /// names the first slot left out in `more_from`. The candidate keeps the
    /// chunk and sends that acceptor the same `Prepare` again with
    /// `first_slot = more_from`; it is already promised, so it only reports
    /// the next chunk. The candidate counts the acceptor's promise once a
    /// chunk comes with `more_from: None`: it then holds everything that
    /// acceptor had at or above the original `first_slot`, as one promise
    /// would have carried (the acceptor cannot accept anything at another
    /// ballot in between without refusing the next request, which ends the
    /// attempt).
    Promise {
        /// The ballot promised.
        ballot: Ballot,
        /// The acceptor forgot slots through here (compacted into a
        /// snapshot). A candidate that wanted any of them is behind and must
        /// catch up before it may lead.
        compacted_through: Slot,
        /// The `first_slot` of the prepare this answers.
        first_slot: Slot,
        /// Accepted or chosen values, by slot, in slot order, all at or
        /// above `first_slot`.
        slots: Vec<(Slot, SlotState)>,
        /// `None` if `slots` holds every slot at or above `first_slot`;
        /// otherwise the first slot left out, above every slot in `slots`.
        more_from: Option<Slot>,
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
        /// The leader does not count this acceptor for these slots (it
        /// asked a quorum without it, see `Config::accept_fallback`): hold
        /// the values as accepted, to learn them once chosen, but neither
        /// make them durable nor answer. An acceptor that never answers has
        /// cast no vote, so losing them in a crash is safe, and so is
        /// reporting them in a promise (each is the value the leader of
        /// `ballot` proposed in its slot).
        lazy: bool,
    },
    /// Phase 2b: these slots were accepted (and are durable) at `ballot`.
    Accepted {
        /// The ballot accepted at.
        ballot: Ballot,
        /// The slots accepted.
        slots: Vec<Slot>,
    },
    /// A prepare, accept or heartbeat at `ballot` was refused because the
    /// acceptor promised `promised`, holds a lease for another leader, or
    /// (a prepare) has compacted slots the candidate lacks.
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
        /// The acknowledging node's commit index (how far behind it is).
        commit: Slot,
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
    /// A follower asks the leader for a read index, to serve the
    /// linearizable reads it holds (see `follower_reads`).
    ReadIndex {
        /// The follower's number for this request, echoed in the reply.
        request: u64,
    },
    /// The leader's answer to a [`Message::ReadIndex`].
    ReadIndexReply {
        /// The leader's ballot (the sender's promise if it refuses).
        ballot: Ballot,
        /// The request answered.
        request: u64,
        /// `Some(index)`, the leader's commit index, once the sender
        /// confirmed after the request arrived that it leads (under its
        /// lease or by a heartbeat round) and had everything recovered in
        /// its Phase 1 chosen: every write acknowledged before the request
        /// arrived is chosen at or below `index`, so the reads are served
        /// once the follower applied through it (values it accepted at
        /// `ballot` through `index` are chosen, as a heartbeat's commit
        /// says). `None` if the sender does not lead, or holds too many
        /// reads: the follower sends its clients elsewhere.
        index: Option<Slot>,
    },
}
