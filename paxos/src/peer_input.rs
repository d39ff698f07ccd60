//! The rules a peer's message must keep before the replica acts on it.
//!
//! Everything a peer sends is untrusted: a buggy or hostile node, or a
//! corrupted frame that still decodes, must not be able to stop this node.
//! [`Replica::step`](crate::Replica::step) checks each message with
//! [`check_peer_message`] first and drops (and logs) one that breaks a rule,
//! so no peer data ever reaches the `assert!`s that guard this node's own
//! invariants. The checks are a pure function of the message and of what
//! the node [`Knows`]; they cost one pass over the message plus a lookup per
//! slot.
//!
//! The rules:
//! - every ballot's round is at most [`Ballot::MAX_ROUND`]; a ballot a
//!   proposer sends (Prepare, Accept, Heartbeat) is the sender's own and
//!   has a round of at least 1;
//! - every slot is between 1 and [`Slot::MAX`], slots in one message are in
//!   increasing order and named once;
//! - a promise reports slots at or above the prepare's first slot, none
//!   accepted above the promised ballot, none further than
//!   `Config::max_slots_ahead` above this node's commit index, and names
//!   where its next chunk starts above all of them;
//! - a read index is granted under the sender's own ballot, and is at most
//!   [`Slot::MAX`];
//! - a value the peer claims is chosen (in a promise, a fetch reply or an
//!   accept for a slot this node knows chosen) agrees with every chosen
//!   value this node knows and with what it proposes as leader. A
//!   disagreement means the cluster's safety is already broken somewhere;
//!   it is logged at error level.

use std::fmt;

use crate::message::Message;
use crate::storage::SlotState;
use crate::types::{Ballot, NodeId, Slot, Value};

/// Why a peer's message was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum PeerInputError {
    /// A ballot above the highest usable round.
    RoundOutOfRange(Ballot),
    /// A proposer's message under a ballot that is not the sender's own, or
    /// of round zero.
    ForeignBallot(Ballot),
    /// Slot zero, or a slot above `Slot::MAX`.
    SlotOutOfRange(Slot),
    /// Slots not in increasing order, or one named twice.
    SlotsOutOfOrder(Slot),
    /// A promise reporting a slot below the first slot it answers for.
    SlotBelowFirst(Slot),
    /// A promise whose next chunk would not start above its slots.
    BadChunk(Slot),
    /// A promise reporting a value accepted above the ballot promised.
    AcceptedAbovePromise(Slot),
    /// A promise reporting a slot too far above this node's commit index.
    BeyondHorizon(Slot),
    /// A value claimed chosen, or proposed, that differs from the value
    /// this node knows is chosen (or proposes itself) in the same slot.
    ConflictingChosenValue(Slot),
}

impl PeerInputError {
    /// True if the message shows a safety violation somewhere in the
    /// cluster rather than a malformed message.
    pub(crate) fn is_safety_violation(&self) -> bool {
        matches!(self, PeerInputError::ConflictingChosenValue(_))
    }
}

impl fmt::Display for PeerInputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerInputError::RoundOutOfRange(b) => write!(
                f,
                "ballot {b} has a round above the highest usable one ({})",
                Ballot::MAX_ROUND
            ),
            PeerInputError::ForeignBallot(b) => {
                write!(f, "ballot {b} is not the sender's own usable ballot")
            }
            PeerInputError::SlotOutOfRange(s) => {
                write!(f, "slot {s} is outside 1..={}", Slot::MAX)
            }
            PeerInputError::SlotsOutOfOrder(s) => {
                write!(f, "slot {s} is out of order or repeated")
            }
            PeerInputError::SlotBelowFirst(s) => {
                write!(f, "promise reports slot {s} below the first slot asked for")
            }
            PeerInputError::BadChunk(s) => {
                write!(f, "promise continues at slot {s}, not above its slots")
            }
            PeerInputError::AcceptedAbovePromise(s) => {
                write!(
                    f,
                    "promise reports slot {s} accepted above the promised ballot"
                )
            }
            PeerInputError::BeyondHorizon(s) => {
                write!(f, "slot {s} is too far above this node's commit index")
            }
            PeerInputError::ConflictingChosenValue(s) => {
                write!(
                    f,
                    "value for slot {s} conflicts with the chosen value known here"
                )
            }
        }
    }
}

fn check_round(ballot: Ballot) -> Result<(), PeerInputError> {
    if ballot.round_in_range() {
        Ok(())
    } else {
        Err(PeerInputError::RoundOutOfRange(ballot))
    }
}

/// A ballot a proposer sends: its own, round 1 to `MAX_ROUND`.
fn check_own_ballot(from: NodeId, ballot: Ballot) -> Result<(), PeerInputError> {
    check_round(ballot)?;
    if ballot.node() != from || ballot.round() == 0 {
        return Err(PeerInputError::ForeignBallot(ballot));
    }
    Ok(())
}

fn check_slot(slot: Slot) -> Result<(), PeerInputError> {
    if slot == Slot(0) || slot > Slot::MAX {
        return Err(PeerInputError::SlotOutOfRange(slot));
    }
    Ok(())
}

/// Slots in range, strictly increasing.
fn check_slots<'a>(slots: impl Iterator<Item = &'a Slot>) -> Result<(), PeerInputError> {
    let mut previous = Slot(0);
    for &slot in slots {
        check_slot(slot)?;
        if slot <= previous {
            return Err(PeerInputError::SlotsOutOfOrder(slot));
        }
        previous = slot;
    }
    Ok(())
}

/// What this node knows that a peer's message must agree with.
pub(crate) trait Knows {
    /// The highest slot this node takes from a peer now.
    fn slot_horizon(&self) -> Slot;
    /// The value this node knows is chosen in `slot`.
    fn known_chosen(&self, slot: Slot) -> Option<&Value>;
    /// The value this node's role stands by in `slot`: what it proposes
    /// there as leader, or what a promise of its current candidacy reported
    /// chosen there.
    fn vouched_for(&self, slot: Slot) -> Option<&Value>;
}

/// Checks `message` from peer `from` against the rules in the module docs,
/// given what this node `knows`.
pub(crate) fn check_peer_message(
    knows: &impl Knows,
    from: NodeId,
    message: &Message,
) -> Result<(), PeerInputError> {
    match message {
        Message::Prepare { ballot, first_slot } => {
            check_own_ballot(from, *ballot)?;
            check_slot(*first_slot)
        }
        Message::Promise {
            ballot,
            compacted_through,
            first_slot,
            slots,
            more_from,
        } => {
            check_round(*ballot)?;
            check_slot(*first_slot)?;
            if *compacted_through > Slot::MAX {
                return Err(PeerInputError::SlotOutOfRange(*compacted_through));
            }
            check_slots(slots.iter().map(|(slot, _)| slot))?;
            let horizon = knows.slot_horizon();
            for (slot, state) in slots {
                if slot < first_slot {
                    return Err(PeerInputError::SlotBelowFirst(*slot));
                }
                if *slot > horizon {
                    return Err(PeerInputError::BeyondHorizon(*slot));
                }
                match state {
                    SlotState::Accepted { ballot: b, .. } => {
                        check_round(*b)?;
                        if b > ballot {
                            return Err(PeerInputError::AcceptedAbovePromise(*slot));
                        }
                    }
                    SlotState::Chosen(value) => check_chosen(knows, *slot, value)?,
                }
            }
            if let Some(next) = more_from {
                check_slot(*next)?;
                let last = slots.last().map_or(*first_slot, |(slot, _)| *slot);
                if *next <= last || slots.is_empty() {
                    return Err(PeerInputError::BadChunk(*next));
                }
            }
            Ok(())
        }
        Message::Accept {
            ballot,
            entries,
            commit,
            lazy: _,
        } => {
            check_own_ballot(from, *ballot)?;
            check_slots(entries.iter().map(|(slot, _)| slot))?;
            if *commit > Slot::MAX {
                return Err(PeerInputError::SlotOutOfRange(*commit));
            }
            for (slot, value) in entries {
                if let Some(chosen) = knows.known_chosen(*slot) {
                    if chosen != value {
                        return Err(PeerInputError::ConflictingChosenValue(*slot));
                    }
                }
            }
            Ok(())
        }
        Message::Accepted { ballot, .. } => check_round(*ballot),
        Message::HeartbeatAck { ballot, commit, .. } => {
            check_round(*ballot)?;
            if *commit > Slot::MAX {
                return Err(PeerInputError::SlotOutOfRange(*commit));
            }
            Ok(())
        }
        Message::Reject { ballot, promised } => {
            check_round(*ballot)?;
            check_round(*promised)
        }
        Message::Heartbeat { ballot, commit, .. } => {
            check_own_ballot(from, *ballot)?;
            if *commit > Slot::MAX {
                return Err(PeerInputError::SlotOutOfRange(*commit));
            }
            Ok(())
        }
        Message::Fetch { first_slot } => check_slot(*first_slot),
        Message::ReadIndex { .. } => Ok(()),
        Message::ReadIndexReply { ballot, index, .. } => match index {
            // A grant speaks for the sender's leadership.
            Some(index) if *index > Slot::MAX => Err(PeerInputError::SlotOutOfRange(*index)),
            Some(_) => check_own_ballot(from, *ballot),
            None => check_round(*ballot),
        },
        Message::Chosen { entries } => {
            check_slots(entries.iter().map(|(slot, _)| slot))?;
            for (slot, value) in entries {
                check_chosen(knows, *slot, value)?;
            }
            Ok(())
        }
    }
}

/// A peer claims `value` is chosen in `slot`: it must agree with what this
/// node knows chosen, what it proposes as leader and what other promises of
/// its current candidacy reported chosen.
fn check_chosen(knows: &impl Knows, slot: Slot, value: &Value) -> Result<(), PeerInputError> {
    let conflict = |known: Option<&Value>| known.is_some_and(|known| known != value);
    if conflict(knows.known_chosen(slot)) || conflict(knows.vouched_for(slot)) {
        return Err(PeerInputError::ConflictingChosenValue(slot));
    }
    Ok(())
}
