//! The acceptor's durable state on redb: [`RedbLog`], the `synod_paxos::Storage` of a node.
//!
//! | table | key | value |
//! |---|---|---|
//! | `log_meta` | `"promised"`, `"compacted_through"` | `u64` (a ballot, a slot) |
//! | `log_slots` | slot | encoded [`SlotState`] (see below) |
//!
//! Names start with `log_` so the tables could share a database with the state machine's `sm_*`
//! tables; a node keeps them apart (see [`NodeStore`](crate::NodeStore)).
//!
//! ## Slot encoding
//!
//! Little-endian, length-prefixed, no padding:
//!
//! ```text
//! slot state := 0x01 ballot:u64 value      -- accepted at ballot
//!             | 0x02 value                 -- chosen
//! value      := 0x00                       -- no-op
//!             | 0x01 count:u32 (len:u32 bytes)*count   -- a batch of commands
//! ```
//!
//! A 128-byte command accepted alone takes 146 bytes. Decoding checks every tag and length
//! against the bytes present and refuses trailing bytes: a corrupt record is a
//! [`StorageError::Corrupt`], never a panic or a huge allocation.

use std::path::Path;
use std::sync::Arc;

use redb::backends::InMemoryBackend;
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use synod_paxos::{Ballot, DurableState, Record, Slot, SlotState, Storage, Value};

use crate::error::StorageError;

/// Promised ballot and compaction point.
const META: TableDefinition<&str, u64> = TableDefinition::new("log_meta");
/// Slot number to its encoded [`SlotState`].
const SLOTS: TableDefinition<u64, &[u8]> = TableDefinition::new("log_slots");

/// `log_meta` key of the promised ballot.
const PROMISED: &str = "promised";
/// `log_meta` key of the compaction point.
const COMPACTED_THROUGH: &str = "compacted_through";

const KIND_ACCEPTED: u8 = 1;
const KIND_CHOSEN: u8 = 2;
const VALUE_NOOP: u8 = 0;
const VALUE_COMMANDS: u8 = 1;

/// The acceptor's promise and log, in redb tables `log_*`, on a database it may share with the
/// state machine.
///
/// # Guarantees and costs
/// [`persist`](Storage::persist) applies a whole list of records in ONE write transaction
/// committed with [`Durability::Immediate`]: all or none of them survive a crash, and the call
/// returns only once they are durable. On a file database that is one fsync per call, however
/// many records (group commit); the driver should hand it everything a `Ready` asks for at once.
/// The call blocks while another write transaction on the same database is open (redb has one
/// writer at a time). An `Immediate` commit also makes every earlier `Durability::None` commit
/// on the database durable, and writes their pages: that is why [`NodeStore`](crate::NodeStore)
/// keeps the state machine in a database of its own.
///
/// Records apply exactly as [`DurableState::apply`] specifies (the in-memory reference):
/// an `Accepted` never overwrites a chosen slot, nothing is kept at or below the compaction
/// point, and `Compacted(s)` deletes every slot `<= s`. The same invariants are asserted (a
/// promise never goes down, nothing is accepted above the promise, a chosen value never
/// changes): breaking one is a bug in the core, and the node must stop.
///
/// [`load`](Storage::load) reads everything in one read transaction: O(slots held).
pub struct RedbLog {
    db: Arc<Database>,
    /// The promised ballot as last committed.
    promised: Ballot,
    /// The compaction point as last committed.
    compacted_through: Slot,
}

impl std::fmt::Debug for RedbLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbLog")
            .field("promised", &self.promised)
            .field("compacted_through", &self.compacted_through)
            .finish_non_exhaustive()
    }
}

impl RedbLog {
    /// The log on an open database, which it may share (see [`NodeStore`](crate::NodeStore)).
    /// Creates missing tables with one `Immediate` commit and reads the promise and compaction
    /// point.
    pub fn from_database(db: Arc<Database>) -> Result<RedbLog, StorageError> {
        let txn = db.begin_write()?;
        let (promised, compacted_through) = {
            txn.open_table(SLOTS)?;
            let meta = txn.open_table(META)?;
            let get = |name: &str| -> Result<u64, StorageError> {
                Ok(meta.get(name)?.map(|g| g.value()).unwrap_or(0))
            };
            (Ballot(get(PROMISED)?), Slot(get(COMPACTED_THROUGH)?))
        };
        txn.commit()?;
        Ok(RedbLog {
            db,
            promised,
            compacted_through,
        })
    }

    /// The log alone in the database file at `path` (created if missing). A node opens its log
    /// and state machine together: [`NodeStore::open`](crate::NodeStore::open).
    pub fn open(path: impl AsRef<Path>) -> Result<RedbLog, StorageError> {
        RedbLog::from_database(Arc::new(Database::create(path)?))
    }

    /// The log on a fresh in-memory database; for tests. Nothing survives dropping it.
    pub fn in_memory() -> Result<RedbLog, StorageError> {
        let db = Database::builder().create_with_backend(InMemoryBackend::new())?;
        RedbLog::from_database(Arc::new(db))
    }

    /// The highest ballot promised, as durable.
    pub fn promised(&self) -> Ballot {
        self.promised
    }

    /// Slots through this one are compacted away, as durable.
    pub fn compacted_through(&self) -> Slot {
        self.compacted_through
    }
}

impl Storage for RedbLog {
    type Error = StorageError;

    fn load(&self) -> Result<DurableState, StorageError> {
        let txn = self.db.begin_read()?;
        let meta = txn.open_table(META)?;
        let get = |name: &str| -> Result<u64, StorageError> {
            Ok(meta.get(name)?.map(|g| g.value()).unwrap_or(0))
        };
        let mut state = DurableState {
            promised: Ballot(get(PROMISED)?),
            compacted_through: Slot(get(COMPACTED_THROUGH)?),
            ..DurableState::default()
        };
        for entry in txn.open_table(SLOTS)?.iter()? {
            let (slot, bytes) = entry?;
            let slot = Slot(slot.value());
            if slot <= state.compacted_through {
                return Err(corrupt(format!(
                    "slot {slot} kept at or below the compaction point {}",
                    state.compacted_through
                )));
            }
            let decoded = decode_slot_state(bytes.value())
                .map_err(|reason| corrupt(format!("slot {slot}: {reason}")))?;
            state.slots.insert(slot, decoded);
        }
        Ok(state)
    }

    fn persist(&mut self, records: &[Record]) -> Result<(), StorageError> {
        if records.is_empty() {
            return Ok(());
        }
        let _span = tracing::trace_span!("persist", records = records.len()).entered();
        let mut promised = self.promised;
        let mut compacted_through = self.compacted_through;
        let mut txn = self.db.begin_write()?;
        // Chosen and compaction records gate no message: they ride along
        // with the next synced commit instead of paying an fsync of their own.
        let sync = records.iter().any(Record::must_sync);
        txn.set_durability(if sync {
            Durability::Immediate
        } else {
            Durability::None
        })?;
        {
            let mut slots = txn.open_table(SLOTS)?;
            let mut scratch = Vec::new();
            for record in records {
                match record {
                    Record::Promised(ballot) => {
                        assert!(*ballot >= promised, "promised ballot went down");
                        promised = *ballot;
                    }
                    Record::Accepted {
                        slot,
                        ballot,
                        value,
                    } => {
                        assert!(*ballot <= promised, "accepted above the promise");
                        if *slot <= compacted_through {
                            continue;
                        }
                        let chosen = slots
                            .get(slot.0)?
                            .is_some_and(|g| g.value().first() == Some(&KIND_CHOSEN));
                        if !chosen {
                            scratch.clear();
                            encode_accepted(*ballot, value, &mut scratch);
                            slots.insert(slot.0, scratch.as_slice())?;
                        }
                    }
                    Record::Chosen { slot, value } => {
                        if *slot <= compacted_through {
                            continue;
                        }
                        check_chosen_unchanged(&slots, *slot, value)?;
                        scratch.clear();
                        encode_chosen(value, &mut scratch);
                        slots.insert(slot.0, scratch.as_slice())?;
                    }
                    Record::Compacted(through) => {
                        if *through > compacted_through {
                            compacted_through = *through;
                            slots.retain_in(..=through.0, |_, _| false)?;
                        }
                    }
                }
            }
            let mut meta = txn.open_table(META)?;
            if promised != self.promised {
                meta.insert(PROMISED, promised.0)?;
            }
            if compacted_through != self.compacted_through {
                meta.insert(COMPACTED_THROUGH, compacted_through.0)?;
            }
        }
        txn.commit()?;
        self.promised = promised;
        self.compacted_through = compacted_through;
        Ok(())
    }
}

/// Asserts that a slot already chosen is chosen again with the same value.
fn check_chosen_unchanged(
    slots: &redb::Table<'_, u64, &'static [u8]>,
    slot: Slot,
    value: &Value,
) -> Result<(), StorageError> {
    let Some(guard) = slots.get(slot.0)? else {
        return Ok(());
    };
    if guard.value().first() != Some(&KIND_CHOSEN) {
        return Ok(());
    }
    let old = decode_slot_state(guard.value())
        .map_err(|reason| corrupt(format!("slot {slot}: {reason}")))?;
    assert_eq!(old.value(), value, "chosen value of slot {slot} changed");
    Ok(())
}

fn corrupt(reason: String) -> StorageError {
    StorageError::Corrupt {
        table: "log_slots",
        reason,
    }
}

fn encode_accepted(ballot: Ballot, value: &Value, out: &mut Vec<u8>) {
    out.push(KIND_ACCEPTED);
    out.extend_from_slice(&ballot.0.to_le_bytes());
    encode_value(value, out);
}

fn encode_chosen(value: &Value, out: &mut Vec<u8>) {
    out.push(KIND_CHOSEN);
    encode_value(value, out);
}

fn encode_value(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Noop => out.push(VALUE_NOOP),
        Value::Commands(commands) => {
            out.reserve(5 + commands.iter().map(|c| 4 + c.len()).sum::<usize>());
            out.push(VALUE_COMMANDS);
            out.extend_from_slice(&u32_len(commands.len()).to_le_bytes());
            for command in commands {
                out.extend_from_slice(&u32_len(command.len()).to_le_bytes());
                out.extend_from_slice(command);
            }
        }
    }
}

/// A length as the u32 of the encoding. Commands and batches are bounded far below 4 GiB by
/// the request and batch limits, so a larger one is a bug upstream.
fn u32_len(len: usize) -> u32 {
    u32::try_from(len).expect("a command or batch of 4 GiB or more")
}

/// Decode an encoded [`SlotState`]; the error says what is wrong.
pub(crate) fn decode_slot_state(bytes: &[u8]) -> Result<SlotState, String> {
    let mut reader = Reader(bytes);
    let state = match reader.u8()? {
        KIND_ACCEPTED => {
            let ballot = Ballot(reader.u64()?);
            SlotState::Accepted {
                ballot,
                value: decode_value(&mut reader)?,
            }
        }
        KIND_CHOSEN => SlotState::Chosen(decode_value(&mut reader)?),
        kind => return Err(format!("unknown slot kind {kind}")),
    };
    if !reader.0.is_empty() {
        return Err(format!("{} trailing bytes", reader.0.len()));
    }
    Ok(state)
}

fn decode_value(reader: &mut Reader<'_>) -> Result<Value, String> {
    match reader.u8()? {
        VALUE_NOOP => Ok(Value::Noop),
        VALUE_COMMANDS => {
            let count = reader.u32()? as usize;
            // Each command takes at least its 4-byte length: refuse counts the bytes cannot
            // hold before allocating for them.
            if count > reader.0.len() / 4 {
                return Err(format!(
                    "{count} commands cannot fit in {} bytes",
                    reader.0.len()
                ));
            }
            let mut commands = Vec::with_capacity(count);
            for _ in 0..count {
                let len = reader.u32()? as usize;
                commands.push(reader.take(len)?.to_vec());
            }
            Ok(Value::Commands(commands))
        }
        tag => Err(format!("unknown value tag {tag}")),
    }
}

/// Reads little-endian fields off a byte slice, failing (not panicking) when it runs out.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize) -> Result<&'a [u8], String> {
        if len > self.0.len() {
            return Err(format!(
                "truncated: {len} bytes wanted, {} left",
                self.0.len()
            ));
        }
        let (head, rest) = self.0.split_at(len);
        self.0 = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, String> {
        let mut buf = [0; 4];
        buf.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(buf))
    }

    fn u64(&mut self) -> Result<u64, String> {
        let mut buf = [0; 8];
        buf.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(buf))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(state: &SlotState) -> Vec<u8> {
        let mut out = Vec::new();
        match state {
            SlotState::Accepted { ballot, value } => encode_accepted(*ballot, value, &mut out),
            SlotState::Chosen(value) => encode_chosen(value, &mut out),
        }
        out
    }

    fn samples() -> Vec<SlotState> {
        vec![
            SlotState::Chosen(Value::Noop),
            SlotState::Chosen(Value::Commands(vec![])),
            SlotState::Chosen(Value::Commands(vec![vec![], b"abc".to_vec()])),
            SlotState::Accepted {
                ballot: Ballot(u64::MAX),
                value: Value::Noop,
            },
            SlotState::Accepted {
                ballot: Ballot::new(7, synod_paxos::NodeId(3)),
                value: Value::Commands(vec![vec![0xff; 300]; 3]),
            },
        ]
    }

    #[test]
    fn slot_states_round_trip() {
        for state in samples() {
            assert_eq!(decode_slot_state(&encode(&state)), Ok(state));
        }
    }

    #[test]
    fn a_single_128_byte_command_takes_146_bytes() {
        let state = SlotState::Accepted {
            ballot: Ballot(1),
            value: Value::Commands(vec![vec![0; 128]]),
        };
        assert_eq!(encode(&state).len(), 146);
    }

    #[test]
    fn every_truncation_and_extension_is_an_error() {
        for state in samples() {
            let bytes = encode(&state);
            for len in 0..bytes.len() {
                assert!(
                    decode_slot_state(&bytes[..len]).is_err(),
                    "{state:?} cut at {len}"
                );
            }
            let mut longer = bytes.clone();
            longer.push(0);
            assert!(decode_slot_state(&longer).is_err());
        }
    }

    #[test]
    fn garbage_never_panics() {
        // Every short input, then a few shapes that claim huge counts or lengths.
        for a in 0..=255u8 {
            for b in [0u8, 1, 2, 255] {
                let _ = decode_slot_state(&[a, b]);
                let _ = decode_slot_state(&[a, b, 0xff, 0xff, 0xff, 0xff, 1, 2]);
            }
        }
        assert!(decode_slot_state(&[2, 1, 0xff, 0xff, 0xff, 0xff]).is_err());
        assert!(decode_slot_state(&[2, 1, 1, 0, 0, 0, 0xff, 0xff, 0xff, 0x7f, 1]).is_err());
        assert!(decode_slot_state(&[3]).is_err());
        assert!(decode_slot_state(&[2, 9]).is_err());
    }
}
