//! What an acceptor must keep across a crash, and the trait that keeps it.
//!
//! The core never writes storage itself: [`Ready::persist`](crate::Ready)
//! hands the driver a list of [`Record`]s, and the driver must make them
//! durable (one fsync for the whole list is enough, and is the point) before
//! it sends any message of the same `Ready`.

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
}

impl DurableState {
    /// Applies one record, as storage implementations must on persist.
    pub fn apply(&mut self, record: Record) {
        match record {
            Record::Promised(ballot) => {
                assert!(ballot >= self.promised, "promised ballot went down");
                self.promised = ballot;
            }
            Record::Accepted {
                slot,
                ballot,
                value,
            } => {
                assert!(ballot <= self.promised, "accepted above the promise");
                if slot > self.compacted_through
                    && !matches!(self.slots.get(&slot), Some(SlotState::Chosen(_)))
                {
                    self.slots
                        .insert(slot, SlotState::Accepted { ballot, value });
                }
            }
            Record::Chosen { slot, value } => {
                if let Some(SlotState::Chosen(old)) = self.slots.get(&slot) {
                    assert_eq!(old, &value, "chosen value of slot {slot} changed");
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
