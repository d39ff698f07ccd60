//! State-machine snapshots: a consistent point-in-time copy of every `sm_*` table, streamed in
//! bounded chunks ([`Snapshot`], made by
//! [`StateMachine::snapshot`](crate::StateMachine::snapshot)) and installed atomically on
//! another node ([`SnapshotInstaller`]).
//!
//! Here: the format, and reading a snapshot out of the state machine. `install` validates
//! and stages a received stream and swaps it in ([`SnapshotInstaller`]); `receive` takes one
//! stream at a time from whichever peers send chunks ([`SnapshotReceiver`]). Those two read the
//! format from here and this module only re-exports what they define, so the imports both ways
//! are one format and its two readers, not a knot.
//!
//! ## Format
//!
//! A snapshot is a stream of entries, cut into chunks of at most [`SNAPSHOT_CHUNK_DATA_BYTES`]
//! of data each, without regard to entry boundaries (so an entry of any size travels in bounded
//! chunks). Messages are protobuf, written with prost derives:
//!
//! ```text
//! message SnapshotChunk {
//!   uint32 format        = 1;  // SNAPSHOT_FORMAT (1)
//!   uint64 applied_index = 2;  // the slot the snapshot was taken at; same in every chunk
//!   uint64 revision      = 3;  // the store revision there; same in every chunk
//!   uint64 seq           = 4;  // 0, 1, 2, ... in stream order
//!   bytes  data          = 5;  // the next bytes of the entry stream
//!   bool   last          = 6;  // true on the final chunk only
//!   uint64 entry_count   = 7;  // last chunk: number of entries in the stream
//!   uint64 state_hash    = 8;  // last chunk: StateMachine::state_hash() of the snapshot
//! }
//! // The entry stream: SnapshotEntry messages, each prefixed with its length as a varint
//! // (protobuf's length-delimited framing), table by table in this order, each table in its
//! // key order: sm_meta, sm_kv, sm_dedup, sm_dedup_age (rows derived from sm_dedup's records,
//! // by (slot, position)), then the coordination tables
//! // sm_elections, sm_key_expiry, sm_locks, sm_membership, sm_redis_elements, sm_session_owned, sm_sessions, sm_watch_events.
//! message SnapshotEntry { oneof entry { MetaEntry meta = 1; KvEntry kv = 2;
//!                                       DedupEntry dedup = 3; DedupAgeEntry dedup_age = 4;
//!                                       CoordEntry coord = 5; } }
//! message MetaEntry     { string name = 1; uint64 value = 2; }
//! message KvEntry       { bytes key = 1; bytes record = 2; }      // record: the stored KvRecord
//! message DedupEntry    { uint64 client_id = 1; bytes record = 2; } // the stored DedupRecord
//! message DedupAgeEntry { uint64 slot = 1; uint64 position = 2; uint64 client_id = 3; }
//! message CoordEntry    { string table = 1; bytes key = 2; bytes value = 3; } // bytes as stored
//! ```
//!
//! Records travel as the bytes stored, so an installed state is byte-for-byte the source's, and
//! the last chunk's `state_hash` (the same FNV-1a as
//! [`StateMachine::state_hash`](crate::StateMachine::state_hash), computed over the entries in
//! stream order) lets the receiver check the whole stream end to end.
//!
//! A new `sm_*` table must be added to this stream (and to the installer), with a new
//! `SnapshotEntry` variant; installers refuse entries they do not know.

use prost::Message;
use redb::{Database, ReadableDatabase, TableHandle};

use crate::coord::tables::COORD_TABLES;
use crate::dedup::DedupAges;
use crate::error::StorageError;
use crate::fnv::Fnv;
use crate::tables::{get_meta, APPLIED_INDEX, DEDUP, KV, META, REVISION};
use synod_wire::limits::{MAX_KEY_BYTES, MAX_TXN_OPS, MAX_VALUE_BYTES};

mod install;
mod receive;

pub(crate) use install::reset_staging;
pub use install::{SnapshotError, SnapshotInstaller};
pub use receive::{SnapshotReceiver, SNAPSHOT_STALL};

/// The snapshot format this code writes and reads.
pub const SNAPSHOT_FORMAT: u32 = 1;

/// The highest revision a snapshot may carry (2^63 − 1): an installer refuses one above it
/// ([`SnapshotError::OutOfRange`]), so the state machine's
/// revision, which grows by one per write, can never overflow after an install (2^63 writes at
/// a million a second take 290,000 years). The applied index is bounded likewise by
/// [`Slot::MAX`](synod_paxos::Slot::MAX).
pub const MAX_SNAPSHOT_REVISION: u64 = u64::MAX >> 1;

/// Most entry-stream bytes in one [`SnapshotChunk`] (1 MiB). An encoded chunk is at most
/// [`MAX_SNAPSHOT_CHUNK_BYTES`].
pub const SNAPSHOT_CHUNK_DATA_BYTES: usize = 1024 * 1024;

/// Largest encoded [`SnapshotChunk`] an installer accepts: the data plus room for the header
/// fields.
pub const MAX_SNAPSHOT_CHUNK_BYTES: usize = SNAPSHOT_CHUNK_DATA_BYTES + 256;

/// Largest single entry an installer accepts, in bytes (about 73 MiB), which bounds the memory it
/// holds for an entry split across chunks.
///
/// The largest entry the state machine can hold is the exactly-once record of a transaction
/// whose [`MAX_TXN_OPS`] ops each return a key and a value of the largest size; this bound
/// leaves room for that plus per-field overhead.
pub const MAX_SNAPSHOT_ENTRY_BYTES: usize =
    MAX_TXN_OPS * (MAX_VALUE_BYTES + MAX_KEY_BYTES + 1024) + 8 * 1024 * 1024;

/// One piece of a snapshot stream; see the [module docs](self) for the format.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SnapshotChunk {
    /// The format version, [`SNAPSHOT_FORMAT`].
    #[prost(uint32, tag = "1")]
    pub format: u32,
    /// The slot the snapshot was taken at; the same in every chunk of a snapshot.
    #[prost(uint64, tag = "2")]
    pub applied_index: u64,
    /// The store revision at that slot; the same in every chunk of a snapshot.
    #[prost(uint64, tag = "3")]
    pub revision: u64,
    /// Position of this chunk in the stream, from 0.
    #[prost(uint64, tag = "4")]
    pub seq: u64,
    /// The next at most [`SNAPSHOT_CHUNK_DATA_BYTES`] bytes of the entry stream.
    #[prost(bytes = "vec", tag = "5")]
    pub data: Vec<u8>,
    /// True on the final chunk only.
    #[prost(bool, tag = "6")]
    pub last: bool,
    /// On the last chunk: how many entries the stream holds (0 on other chunks).
    #[prost(uint64, tag = "7")]
    pub entry_count: u64,
    /// On the last chunk: the state hash of the snapshot (0 on other chunks).
    #[prost(uint64, tag = "8")]
    pub state_hash: u64,
}

/// One record of one `sm_*` table in the entry stream.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct SnapshotEntry {
    #[prost(oneof = "Entry", tags = "1, 2, 3, 4, 5")]
    pub entry: Option<Entry>,
}

/// The table and record of a [`SnapshotEntry`].
#[derive(Clone, PartialEq, prost::Oneof)]
pub(crate) enum Entry {
    #[prost(message, tag = "1")]
    Meta(MetaEntry),
    #[prost(message, tag = "2")]
    Kv(KvEntry),
    #[prost(message, tag = "3")]
    Dedup(DedupEntry),
    #[prost(message, tag = "4")]
    DedupAge(DedupAgeEntry),
    #[prost(message, tag = "5")]
    Coord(CoordEntry),
}

/// A row of `sm_meta`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct MetaEntry {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(uint64, tag = "2")]
    pub value: u64,
}

/// A row of `sm_kv`: the user key and the stored `KvRecord` bytes.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct KvEntry {
    #[prost(bytes = "vec", tag = "1")]
    pub key: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    pub record: Vec<u8>,
}

/// A row of `sm_dedup`: the client id and the stored `DedupRecord` bytes.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct DedupEntry {
    #[prost(uint64, tag = "1")]
    pub client_id: u64,
    #[prost(bytes = "vec", tag = "2")]
    pub record: Vec<u8>,
}

/// A client's place in the dedup table's eviction order: a row of the table that once held it,
/// `sm_dedup_age`, now derived from `sm_dedup` (see [`DedupAges`]).
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct DedupAgeEntry {
    #[prost(uint64, tag = "1")]
    pub slot: u64,
    #[prost(uint64, tag = "2")]
    pub position: u64,
    #[prost(uint64, tag = "3")]
    pub client_id: u64,
}

/// A row of one of the coordination tables (bytes to bytes, see
/// [`COORD_TABLES`]): the table's name, the key and the stored value.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct CoordEntry {
    #[prost(string, tag = "1")]
    pub table: String,
    #[prost(bytes = "vec", tag = "2")]
    pub key: Vec<u8>,
    #[prost(bytes = "vec", tag = "3")]
    pub value: Vec<u8>,
}

impl Entry {
    /// Feed this entry to the state hash, exactly as `StateMachine::state_hash` defines it.
    pub fn hash_into(&self, hash: &mut Fnv) {
        match self {
            Entry::Meta(m) => {
                hash.field(m.name.as_bytes());
                hash.field(&m.value.to_be_bytes());
            }
            Entry::Kv(kv) => {
                hash.field(&kv.key);
                hash.field(&kv.record);
            }
            Entry::Dedup(d) => {
                hash.field(&d.client_id.to_be_bytes());
                hash.field(&d.record);
            }
            Entry::DedupAge(a) => {
                hash.field(&a.slot.to_be_bytes());
                hash.field(&a.position.to_be_bytes());
                hash.field(&a.client_id.to_be_bytes());
            }
            Entry::Coord(c) => {
                hash.field(c.table.as_bytes());
                hash.field(&c.key);
                hash.field(&c.value);
            }
        }
    }
}

/// Every entry of the `sm_*` tables in stream order, read from one read transaction.
pub(crate) type Entries = Box<dyn Iterator<Item = Result<Entry, StorageError>> + Send>;

/// Every `sm_*` table the stream carries. A table of the state machine missing here would be
/// silently left out of snapshots and of the state hash, so reading one refuses a database that
/// holds any other `sm_*` table.
const SNAPSHOT_TABLES: [&str; 12] = [
    "sm_meta",
    "sm_kv",
    "sm_dedup",
    "sm_dedup_age",
    "sm_elections",
    "sm_key_expiry",
    "sm_locks",
    "sm_membership",
    "sm_redis_elements",
    "sm_session_owned",
    "sm_sessions",
    "sm_watch_events",
];

/// The entries, applied index and revision of the last commit of `db`, all from one read
/// transaction (the iterator keeps it open).
///
/// # Errors
/// Storage failures, and [`StorageError::Corrupt`] if the database holds an `sm_*` table this
/// code does not know (a newer version's table, or one added without extending the format).
pub(crate) fn read_entries(db: &Database) -> Result<(Entries, u64, u64), StorageError> {
    let txn = db.begin_read()?;
    for table in txn.list_tables()? {
        let name = table.name();
        if name.starts_with("sm_") && !SNAPSHOT_TABLES.contains(&name) {
            return Err(StorageError::Corrupt {
                table: "sm_*",
                reason: format!(
                    "table {name} is not in the snapshot format; add it to the stream and the \
                     installer (kvstore/src/snapshot/)"
                ),
            });
        }
    }
    let meta = txn.open_table(META)?;
    let applied_index = get_meta(&meta, APPLIED_INDEX)?;
    let revision = get_meta(&meta, REVISION)?;
    let meta = meta.range::<&str>(..)?.map(|row| {
        let (k, v) = row?;
        Ok(Entry::Meta(MetaEntry {
            name: k.value().to_string(),
            value: v.value(),
        }))
    });
    let kv = txn.open_table(KV)?.range::<&[u8]>(..)?.map(|row| {
        let (k, v) = row?;
        Ok(Entry::Kv(KvEntry {
            key: k.value().to_vec(),
            record: v.value().to_vec(),
        }))
    });
    let dedup_table = txn.open_table(DEDUP)?;
    let dedup = dedup_table.range::<u64>(..)?.map(|row| {
        let (k, v) = row?;
        Ok(Entry::Dedup(DedupEntry {
            client_id: k.value(),
            record: v.value().to_vec(),
        }))
    });
    // The eviction order, derived from the records (it is no table any more) when the stream
    // gets there (a snapshot streams off the node's thread), as the rows of the table it once
    // was.
    let age = std::iter::once(dedup_table).flat_map(|table| {
        let rows: Vec<Result<Entry, StorageError>> = match DedupAges::load(&table) {
            Ok(ages) => ages
                .iter()
                .map(|(at, client_id)| {
                    Ok(Entry::DedupAge(DedupAgeEntry {
                        slot: at.slot,
                        position: at.position,
                        client_id,
                    }))
                })
                .collect(),
            Err(e) => vec![Err(e)],
        };
        rows
    });
    let mut entries: Entries = Box::new(meta.chain(kv).chain(dedup).chain(age));
    for table in COORD_TABLES {
        let name = table.live.name().to_string();
        let rows = txn
            .open_table(table.live)?
            .range::<&[u8]>(..)?
            .map(move |row| {
                let (k, v) = row?;
                Ok(Entry::Coord(CoordEntry {
                    table: name.clone(),
                    key: k.value().to_vec(),
                    value: v.value().to_vec(),
                }))
            });
        entries = Box::new(entries.chain(rows));
    }
    Ok((entries, applied_index, revision))
}

/// A consistent snapshot of a state machine at one applied index, as an iterator of
/// [`SnapshotChunk`]s (see the [module docs](self) for the format).
///
/// Made by [`StateMachine::snapshot`](crate::StateMachine::snapshot). It holds a redb read
/// transaction for its whole life: the chunks describe the state as of that transaction, whatever
/// is applied meanwhile, and never block writers. (While it lives, redb cannot reuse the pages that later commits free, so the
/// file grows with what is written meanwhile: stream it and drop it.) Memory: one chunk plus at
/// most one entry. Each `next` reads storage and may fail with a [`StorageError`]; after an error
/// or the last chunk it returns `None`.
pub struct Snapshot {
    entries: Entries,
    applied_index: u64,
    revision: u64,
    next_seq: u64,
    /// Most entry-stream bytes per chunk.
    chunk_bytes: usize,
    /// Encoded entries not yet sent; `pending[sent..]` is what remains.
    pending: Vec<u8>,
    sent: usize,
    entry_count: u64,
    hash: Fnv,
    /// True once the entries ran out.
    exhausted: bool,
    /// True once the last chunk (or an error) was returned.
    finished: bool,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("applied_index", &self.applied_index)
            .field("revision", &self.revision)
            .field("next_seq", &self.next_seq)
            .finish_non_exhaustive()
    }
}

impl Snapshot {
    pub(crate) fn new(db: &Database) -> Result<Snapshot, StorageError> {
        let (entries, applied_index, revision) = read_entries(db)?;
        Ok(Snapshot {
            entries,
            applied_index,
            revision,
            next_seq: 0,
            chunk_bytes: SNAPSHOT_CHUNK_DATA_BYTES,
            pending: Vec::new(),
            sent: 0,
            entry_count: 0,
            hash: Fnv::default(),
            exhausted: false,
            finished: false,
        })
    }

    /// Cut chunks of at most `bytes` entry-stream bytes instead of [`SNAPSHOT_CHUNK_DATA_BYTES`]
    /// (clamped to 1 ..= that), before the first chunk is taken: the simulator streams small
    /// states as many chunks.
    pub fn with_chunk_bytes(mut self, bytes: usize) -> Snapshot {
        assert_eq!(self.next_seq, 0, "the chunk size is set before streaming");
        self.chunk_bytes = bytes.clamp(1, SNAPSHOT_CHUNK_DATA_BYTES);
        self
    }

    /// The slot the snapshot was taken at.
    pub fn applied_index(&self) -> u64 {
        self.applied_index
    }

    /// The store revision at that slot.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// Read entries until a full chunk is pending or the entries run out.
    fn fill(&mut self) -> Result<(), StorageError> {
        while !self.exhausted && self.pending.len() - self.sent < self.chunk_bytes {
            match self.entries.next() {
                None => self.exhausted = true,
                Some(entry) => {
                    let entry = entry?;
                    entry.hash_into(&mut self.hash);
                    self.entry_count += 1;
                    if self.sent > 0 {
                        self.pending.drain(..self.sent);
                        self.sent = 0;
                    }
                    SnapshotEntry { entry: Some(entry) }
                        .encode_length_delimited(&mut self.pending)
                        .expect("a Vec grows as needed");
                }
            }
        }
        Ok(())
    }
}

impl Iterator for Snapshot {
    type Item = Result<SnapshotChunk, StorageError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.finished {
            return None;
        }
        if let Err(e) = self.fill() {
            self.finished = true;
            return Some(Err(e));
        }
        let end = (self.sent + self.chunk_bytes).min(self.pending.len());
        let data = self.pending[self.sent..end].to_vec();
        self.sent = end;
        let last = self.exhausted && self.sent == self.pending.len();
        let chunk = SnapshotChunk {
            format: SNAPSHOT_FORMAT,
            applied_index: self.applied_index,
            revision: self.revision,
            seq: self.next_seq,
            data,
            last,
            entry_count: if last { self.entry_count } else { 0 },
            state_hash: if last { self.hash.0 } else { 0 },
        };
        self.next_seq += 1;
        self.finished = last;
        Some(Ok(chunk))
    }
}

/// Counts the entries of a snapshot stream, and among them the keys (`sm_kv` rows: keys of
/// every type), from the chunks' data as it goes by, without decoding the entries: for a backup
/// tool to say what it saved. Takes the chunks' `data` in stream order; entries may span chunks.
/// It trusts the stream (the installer is what validates one); on a malformed stream the counts
/// are meaningless but it never panics. Memory: a few bytes.
#[derive(Debug, Default, Clone)]
pub struct EntryTally {
    state: TallyState,
    /// Entries seen.
    pub entries: u64,
    /// `sm_kv` entries seen.
    pub keys: u64,
}

#[derive(Debug, Clone)]
enum TallyState {
    /// Reading an entry's length varint: its value so far and bytes read.
    Length(u64, u32),
    /// At an entry's first byte (its oneof field key), `u64` bytes long.
    Tag(u64),
    /// Skipping the rest of an entry.
    Skip(u64),
}

impl Default for TallyState {
    fn default() -> TallyState {
        TallyState::Length(0, 0)
    }
}

/// The first byte of an encoded `SnapshotEntry` holding a `KvEntry`: field 2, length-delimited.
const KV_ENTRY_KEY: u8 = (2 << 3) | 2;

impl EntryTally {
    /// Counts the entries that start in `data`, the next bytes of the entry stream.
    pub fn push(&mut self, mut data: &[u8]) {
        while let Some((&byte, rest)) = data.split_first() {
            match self.state {
                TallyState::Length(value, shift) => {
                    data = rest;
                    let value = value | u64::from(byte & 0x7f).checked_shl(shift).unwrap_or(0);
                    self.state = if byte & 0x80 != 0 {
                        TallyState::Length(value, shift.saturating_add(7))
                    } else {
                        self.entries += 1;
                        if value == 0 {
                            TallyState::Length(0, 0)
                        } else {
                            TallyState::Tag(value)
                        }
                    };
                }
                TallyState::Tag(len) => {
                    data = rest;
                    if byte == KV_ENTRY_KEY {
                        self.keys += 1;
                    }
                    self.state = TallyState::Skip(len - 1);
                }
                TallyState::Skip(len) => {
                    let skipped = len.min(data.len() as u64);
                    data = &data[skipped as usize..];
                    self.state = if skipped == len {
                        TallyState::Length(0, 0)
                    } else {
                        TallyState::Skip(len - skipped)
                    };
                }
            }
        }
        if let TallyState::Skip(0) = self.state {
            self.state = TallyState::Length(0, 0);
        }
    }
}

#[cfg(test)]
mod tests {
    use redb::TableHandle;

    use super::SNAPSHOT_TABLES;
    use crate::coord::tables::COORD_TABLES;
    use crate::tables::{DEDUP, KV, META, OLD_DEDUP_AGE};

    #[test]
    fn the_stream_names_the_state_machine_tables_in_stream_order() {
        let mut names = vec![META.name(), KV.name(), DEDUP.name(), OLD_DEDUP_AGE.name()];
        names.extend(COORD_TABLES.iter().map(|t| t.live.name()));
        assert_eq!(names, SNAPSHOT_TABLES);
    }
}
