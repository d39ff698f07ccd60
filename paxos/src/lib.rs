//! The sans-IO Multi-Paxos core of Synod.
pub mod storage;
pub mod types;

pub use storage::{DurableState, MemStorage, Record, SlotState, Storage};
pub use types::{Ballot, Command, NodeId, Slot, Value};
