//! What an acceptor must keep across a crash, and the trait that keeps it.
//!
//! The core never writes storage itself: [`Ready::persist`](crate::Ready)
//! hands the driver a list of [`Record`]s, and the driver must make them
//! durable (one fsync for the whole list is enough, and is the point), after
//! those of every earlier `Ready`, before it sends the messages of the same
//! `Ready` that wait for them and reports it with `Replica::persisted`.

use std::collections::BTreeMap;

use crate::types::{Ballot, Slot, Value};

/// What the core knows about one slot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SlotState {
    /// This acceptor accepted `value` at `ballot`; not known to be chosen.
    Accepted {
        /// The ballot the value was accepted at.
        ballot: Ballot,
        /// The accepted value.
        value: Value,
    },
    /// The value is chosen: no other value can ever be chosen in this slot.
    Chosen(Value),
}

impl SlotState {
    /// The value held, accepted or chosen.
    pub fn value(&self) -> &Value {
        match self {
            SlotState::Accepted { value, .. } | SlotState::Chosen(value) => value,
        }
    }
}

/// One change to durable acceptor state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    /// The acceptor promised not to accept anything below this ballot.
    Promised(Ballot),
    /// The acceptor accepted `value` at `ballot` in `slot`.
    Accepted {
        /// The slot.
        slot: Slot,
        /// The ballot it was accepted at.
        ballot: Ballot,
        /// The value.
        value: Value,
    },
    /// `value` is chosen in `slot`; replaces whatever was accepted there.
    Chosen {
        /// The slot.
        slot: Slot,
        /// The chosen value.
        value: Value,
    },
    /// Every slot through this one is chosen and captured by a durable
    /// state-machine snapshot: forget them.
    Compacted(Slot),
}

impl Record {
    /// True if messages depend on this record: an acceptor's promise or
    /// accepted value must be durable before it is reported. Chosen and
    /// compaction records gate no message (a chosen value is already
    /// durable at a majority of acceptors), so storage may make them durable
    /// lazily, with its next synced write.
    pub fn must_sync(&self) -> bool {
        matches!(self, Record::Promised(_) | Record::Accepted { .. })
    }

    /// Checks the rules of [`DurableState::try_apply`] that need no more state than the
    /// promise held (all but "a chosen value never changes"): the promise does not go down,
    /// nothing is accepted above it, slots are in `1..=`[`Slot::MAX`] (a compaction
    /// point in `0..=Slot::MAX`) and ballots at most [`Ballot::MAX`]. Storage that
    /// tracks only the promise checks records with it before writing them.
    pub fn check_against_promise(&self, promised: Ballot) -> Result<(), RecordRuleError> {
        match *self {
            Record::Promised(ballot) => {
                check_ballot(ballot)?;
                if ballot < promised {
                    return Err(RecordRuleError::PromiseWentDown {
                        promised,
                        record: ballot,
                    });
                }
            }
            Record::Accepted { slot, ballot, .. } => {
                check_slot(slot)?;
                if ballot > promised {
                    return Err(RecordRuleError::AcceptedAbovePromise {
                        promised,
                        ballot,
                        slot,
                    });
                }
            }
            Record::Chosen { slot, .. } => check_slot(slot)?,
            Record::Compacted(through) => {
                if through > Slot::MAX {
                    return Err(RecordRuleError::SlotOutOfRange { slot: through });
                }
            }
        }
        Ok(())
    }
}

/// Everything durable about one node, as loaded at start.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DurableState {
    /// The highest ballot promised.
    pub promised: Ballot,
    /// Every slot the node holds a value for, above `compacted_through`.
    pub slots: BTreeMap<Slot, SlotState>,
    /// Slots through here were dropped after a state-machine snapshot
    /// captured them.
    pub compacted_through: Slot,
    /// The memberships as of the state machine's applied slot, which the
    /// driver reads from its state machine (the log above that slot holds
    /// the later changes). Unknown (empty) on a node's first start: the
    /// replica then uses `Config::members` as the founding voters, or, for a
    /// node joining a cluster, waits to learn it with a snapshot.
    pub membership: crate::membership::MembershipLog,
}

/// A [`Record`] that breaks the acceptor's rules when applied to a [`DurableState`]: storage
/// holding one is corrupt (or was written by a buggy node), and must not be loaded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordRuleError {
    /// A promise below the one already made: promises never go down.
    PromiseWentDown {
        /// The promise held.
        promised: Ballot,
        /// The lower one the record names.
        record: Ballot,
    },
    /// A value accepted at a ballot above the promise: an acceptor promises a ballot before it
    /// accepts at it.
    AcceptedAbovePromise {
        /// The promise held.
        promised: Ballot,
        /// The record's higher ballot.
        ballot: Ballot,
        /// The slot.
        slot: Slot,
    },
    /// A slot's chosen value differs from the one chosen before: only one value is ever chosen.
    ChosenValueChanged {
        /// The slot.
        slot: Slot,
    },
    /// A slot of 0 (no slot) or above [`Slot::MAX`].
    SlotOutOfRange {
        /// The slot the record names.
        slot: Slot,
    },
    /// A ballot above [`Ballot::MAX`].
    BallotTooHigh {
        /// The ballot the record names.
        ballot: Ballot,
    },
}

impl std::fmt::Display for RecordRuleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RecordRuleError::PromiseWentDown { promised, record } => write!(
                f,
                "promised ballot went down: {record} after a promise of {promised}"
            ),
            RecordRuleError::AcceptedAbovePromise {
                promised,
                ballot,
                slot,
            } => write!(
                f,
                "accepted above the promise: slot {slot} at ballot {ballot}, promised {promised}"
            ),
            RecordRuleError::ChosenValueChanged { slot } => {
                write!(f, "chosen value of slot {slot} changed")
            }
            RecordRuleError::SlotOutOfRange { slot } => write!(
                f,
                "slot {slot} out of range: slots run from 1 to {}",
                Slot::MAX
            ),
            RecordRuleError::BallotTooHigh { ballot } => write!(
                f,
                "ballot {ballot} above the highest valid ballot {}",
                Ballot::MAX
            ),
        }
    }
}

impl std::error::Error for RecordRuleError {}

/// Fails unless `slot` is a real slot at most [`Slot::MAX`].
fn check_slot(slot: Slot) -> Result<(), RecordRuleError> {
    if slot == Slot(0) || slot > Slot::MAX {
        return Err(RecordRuleError::SlotOutOfRange { slot });
    }
    Ok(())
}

/// Fails if `ballot` is above [`Ballot::MAX`].
fn check_ballot(ballot: Ballot) -> Result<(), RecordRuleError> {
    if ballot > Ballot::MAX {
        return Err(RecordRuleError::BallotTooHigh { ballot });
    }
    Ok(())
}

impl DurableState {
    /// Applies one record, as storage implementations must on persist.
    ///
    /// # Panics
    /// If the record breaks a rule (see [`try_apply`](Self::try_apply)): for state the node
    /// built itself, that is a bug, and a diverging acceptor is worse than a stopped one.
    pub fn apply(&mut self, record: Record) {
        if let Err(broken) = self.try_apply(record) {
            panic!("{broken}");
        }
    }

    /// Applies one record if it keeps the acceptor's rules; otherwise changes nothing and says
    /// which rule it breaks. For records read back from storage, which may be corrupt.
    ///
    /// The rules: promises never go down; nothing is accepted above the promise; a chosen value
    /// never changes; slots are in `1..=`[`Slot::MAX`] (a compaction point in
    /// `0..=Slot::MAX`); ballots are at most [`Ballot::MAX`].
    pub fn try_apply(&mut self, record: Record) -> Result<(), RecordRuleError> {
        record.check_against_promise(self.promised)?;
        match record {
            Record::Promised(ballot) => self.promised = ballot,
            Record::Accepted {
                slot,
                ballot,
                value,
            } => {
                if slot > self.compacted_through
                    && !matches!(self.slots.get(&slot), Some(SlotState::Chosen(_)))
                {
                    self.slots
                        .insert(slot, SlotState::Accepted { ballot, value });
                }
            }
            Record::Chosen { slot, value } => {
                if let Some(SlotState::Chosen(old)) = self.slots.get(&slot) {
                    if old != &value {
                        return Err(RecordRuleError::ChosenValueChanged { slot });
                    }
                }
                if slot > self.compacted_through {
                    self.slots.insert(slot, SlotState::Chosen(value));
                }
            }
            Record::Compacted(through) => {
                if through > self.compacted_through {
                    self.compacted_through = through;
                    self.slots = self.slots.split_off(&through.next());
                }
            }
        }
        Ok(())
    }
}

/// Durable acceptor state.
///
/// Implementations: [`MemStorage`] here (tests, simulation) and the redb one
/// in `synod-kvstore`.
pub trait Storage {
    /// Why a load or persist failed. A failed persist must stop the node:
    /// the messages that depend on the records must not be sent.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Reads everything durable, for a node that (re)starts.
    fn load(&self) -> Result<DurableState, Self::Error>;

    /// Stores `records`, all or none, in order. If any of them
    /// [`must_sync`](Record::must_sync), returns only when all of them would
    /// survive a crash; otherwise they may become durable with a later
    /// synced write.
    fn persist(&mut self, records: &[Record]) -> Result<(), Self::Error>;
}

/// Storage in memory: "durable" means it survives a simulated crash of the
/// core, because the simulator keeps the `MemStorage` and drops the core.
/// Records that need no sync stay pending until a synced persist, and a
/// simulated [`crash`](MemStorage::crash) loses them, as a real disk would.
#[derive(Clone, Debug, Default)]
pub struct MemStorage {
    state: DurableState,
    /// Stored but not yet synced.
    pending: Vec<Record>,
    persist_calls: u64,
}

impl MemStorage {
    /// An empty store, as on a new node.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many times `persist` was called.
    pub fn persist_calls(&self) -> u64 {
        self.persist_calls
    }

    /// Loses every record not yet synced, as a power failure would.
    pub fn crash(&mut self) {
        self.pending.clear();
    }
}

impl Storage for MemStorage {
    type Error = std::convert::Infallible;

    fn load(&self) -> Result<DurableState, Self::Error> {
        let mut state = self.state.clone();
        for record in &self.pending {
            state.apply(record.clone());
        }
        Ok(state)
    }

    fn persist(&mut self, records: &[Record]) -> Result<(), Self::Error> {
        self.persist_calls += 1;
        self.pending.extend(records.iter().cloned());
        if records.iter().any(Record::must_sync) {
            for record in self.pending.drain(..) {
                self.state.apply(record);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::NodeId;

    fn accepted(slot: u64, ballot: Ballot) -> Record {
        Record::Accepted {
            slot: Slot(slot),
            ballot,
            value: Value::Noop,
        }
    }

    /// `try_apply` on a state built from `before`: the error, and proof the state did not move.
    fn refused(before: &[Record], record: Record) -> RecordRuleError {
        let mut state = DurableState::default();
        for r in before {
            state.try_apply(r.clone()).unwrap();
        }
        let unchanged = state.clone();
        let error = state.try_apply(record).unwrap_err();
        assert_eq!(state, unchanged, "a refused record changes nothing");
        error
    }

    #[test]
    fn an_accepted_value_with_no_promise_before_it_is_refused() {
        let error = refused(&[], accepted(1, Ballot(1)));
        assert_eq!(
            error,
            RecordRuleError::AcceptedAbovePromise {
                promised: Ballot::ZERO,
                ballot: Ballot(1),
                slot: Slot(1)
            }
        );
        assert!(error.to_string().contains("accepted above the promise"));
    }

    #[test]
    fn a_promise_that_goes_down_is_refused() {
        let high = Ballot::new(2, NodeId(1));
        let low = Ballot::new(1, NodeId(1));
        let error = refused(&[Record::Promised(high)], Record::Promised(low));
        assert_eq!(
            error,
            RecordRuleError::PromiseWentDown {
                promised: high,
                record: low
            }
        );
        assert!(error.to_string().contains("promised ballot went down"));
    }

    #[test]
    fn a_changed_chosen_value_is_refused() {
        let first = Record::Chosen {
            slot: Slot(3),
            value: Value::Noop,
        };
        let second = Record::Chosen {
            slot: Slot(3),
            value: Value::Commands(vec![b"x".to_vec()]),
        };
        let error = refused(std::slice::from_ref(&first), second);
        assert_eq!(error, RecordRuleError::ChosenValueChanged { slot: Slot(3) });
        assert!(error.to_string().contains("chosen value of slot 3 changed"));
        // The same value again is fine.
        let mut state = DurableState::default();
        state.try_apply(first.clone()).unwrap();
        state.try_apply(first).unwrap();
    }

    #[test]
    fn slots_and_ballots_near_the_top_of_u64_are_refused_without_overflow() {
        let promise = Record::Promised(Ballot(1));
        for slot in [0, Slot::MAX.0 + 1, u64::MAX] {
            assert_eq!(
                refused(std::slice::from_ref(&promise), accepted(slot, Ballot(1))),
                RecordRuleError::SlotOutOfRange { slot: Slot(slot) }
            );
            let chosen = Record::Chosen {
                slot: Slot(slot),
                value: Value::Noop,
            };
            assert!(matches!(
                refused(&[], chosen),
                RecordRuleError::SlotOutOfRange { .. }
            ));
        }
        assert_eq!(
            refused(&[], Record::Compacted(Slot(u64::MAX))),
            RecordRuleError::SlotOutOfRange {
                slot: Slot(u64::MAX)
            }
        );
        for ballot in [Ballot(u64::MAX), Ballot::new(u32::MAX, NodeId(0))] {
            assert_eq!(
                refused(&[], Record::Promised(ballot)),
                RecordRuleError::BallotTooHigh { ballot }
            );
        }
        // The limits themselves are valid, and the next slot does not overflow.
        let mut state = DurableState::default();
        state.try_apply(Record::Promised(Ballot::MAX)).unwrap();
        state.try_apply(accepted(Slot::MAX.0, Ballot::MAX)).unwrap();
        state.try_apply(Record::Compacted(Slot::MAX)).unwrap();
        assert!(state.slots.is_empty());
    }

    #[test]
    #[should_panic(expected = "accepted above the promise")]
    fn apply_still_asserts_the_rules() {
        DurableState::default().apply(accepted(1, Ballot(1)));
    }
}
