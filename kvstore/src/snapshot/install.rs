//! Installing a snapshot received in chunks: [`SnapshotInstaller`] validates and stages each
//! chunk; [`StateMachine::complete_install`](crate::StateMachine::complete_install) swaps the
//! staged tables in atomically.
//!
//! Staging goes to tables `snapshot_install_*` of the same database, one short write transaction
//! per chunk (no fsync), so an install never holds the database's single writer for longer than
//! one chunk: the acceptor keeps persisting and the state machine keeps applying meanwhile. The
//! `sm_*` tables are untouched until the last chunk arrived and validated; then one write
//! transaction, committed with `Durability::Immediate`, replaces every `sm_*` table by its staged
//! copy (a table rename, not a copy). A crash or an error at any earlier point leaves the
//! state machine as it was; leftover staging tables are dropped by the next installer or the next
//! [`StateMachine::from_database`](crate::StateMachine::from_database).

use std::sync::Arc;

use prost::Message;
use redb::{
    Database, Durability, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction,
};
use synod_paxos::Slot;

use super::{
    Entry, SnapshotChunk, SnapshotEntry, MAX_SNAPSHOT_CHUNK_BYTES, MAX_SNAPSHOT_ENTRY_BYTES,
    MAX_SNAPSHOT_REVISION, SNAPSHOT_CHUNK_DATA_BYTES, SNAPSHOT_FORMAT,
};
use crate::coord::tables::{coord_table_index, delete_staged, swap_in_staged, COORD_TABLES};
use crate::error::StorageError;
use crate::fnv::Fnv;
use crate::tables::{
    decode_record, get_meta, DedupRecord, KvRecord, APPLIED_INDEX, DEDUP, KV, META, REVISION,
};
use synod_wire::limits::{MAX_KEY_BYTES, MAX_VALUE_BYTES};

const STAGE_META: TableDefinition<&str, u64> = TableDefinition::new("snapshot_install_meta");
const STAGE_KV: TableDefinition<&[u8], &[u8]> = TableDefinition::new("snapshot_install_kv");
const STAGE_DEDUP: TableDefinition<u64, &[u8]> = TableDefinition::new("snapshot_install_dedup");
const STAGE_DEDUP_AGE: TableDefinition<(u64, u64), u64> =
    TableDefinition::new("snapshot_install_dedup_age");
/// `"install_id"`: the id of the installer that owns the staging tables.
const STAGE_INFO: TableDefinition<&str, u64> = TableDefinition::new("snapshot_install_info");
const INSTALL_ID: &str = "install_id";

/// Why a snapshot could not be installed. Every error leaves the state machine as it was.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The database failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A chunk or entry does not decode, breaks the stream's order, or disagrees with the rest.
    #[error("invalid snapshot: {0}")]
    Invalid(String),
    /// A chunk arrived out of sequence.
    #[error("snapshot chunk out of order: expected chunk {expected}, got {got}")]
    OutOfOrder {
        /// The sequence number expected next.
        expected: u64,
        /// The one received.
        got: u64,
    },
    /// A chunk or an entry exceeds its size bound.
    #[error("snapshot {what} too large: {size_bytes} bytes, limit {limit_bytes}")]
    TooLarge {
        /// "chunk", "chunk data" or "entry".
        what: &'static str,
        /// Its size.
        size_bytes: usize,
        /// The limit.
        limit_bytes: usize,
    },
    /// The snapshot is not ahead of what the state machine already applied.
    #[error("snapshot at slot {snapshot_index} is not ahead of the applied index {applied_index}")]
    Stale {
        /// The snapshot's applied index.
        snapshot_index: u64,
        /// The state machine's.
        applied_index: u64,
    },
    /// The snapshot's applied index is above [`Slot::MAX`], or its revision above
    /// [`MAX_SNAPSHOT_REVISION`]: the next slot or write would overflow.
    #[error("snapshot {what} {value} is above the highest valid {max}")]
    OutOfRange {
        /// "applied index" or "revision".
        what: &'static str,
        /// The snapshot's value.
        value: u64,
        /// The highest valid one.
        max: u64,
    },
    /// Another installer was started on this database since; this one's staged data is gone.
    #[error("another snapshot install started on this database")]
    Superseded,
    /// This installer already failed; start a new one.
    #[error("this snapshot install failed earlier; start a new one")]
    Aborted,
    /// The last chunk has not arrived (or the installer failed).
    #[error("the snapshot's last chunk has not arrived")]
    Incomplete,
}

macro_rules! from_redb {
    ($($t:ty),* $(,)?) => {
        $(impl From<$t> for SnapshotError {
            fn from(e: $t) -> SnapshotError {
                SnapshotError::Storage(e.into())
            }
        })*
    };
}

from_redb!(
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::SetDurabilityError,
);

fn invalid(reason: impl Into<String>) -> SnapshotError {
    SnapshotError::Invalid(reason.into())
}

/// Drops any staged snapshot in `txn` and claims the staging tables for a new owner, whose id it
/// returns. Older installers then fail with [`SnapshotError::Superseded`].
pub(crate) fn reset_staging(txn: &WriteTransaction) -> Result<u64, StorageError> {
    txn.delete_table(STAGE_META)?;
    txn.delete_table(STAGE_KV)?;
    txn.delete_table(STAGE_DEDUP)?;
    txn.delete_table(STAGE_DEDUP_AGE)?;
    delete_staged(txn)?;
    let mut info = txn.open_table(STAGE_INFO)?;
    let id = get_meta(&info, INSTALL_ID)? + 1;
    info.insert(INSTALL_ID, id)?;
    Ok(id)
}

/// Fails with `Superseded` unless installer `id` still owns the staging tables.
fn check_owner(txn: &WriteTransaction, id: u64) -> Result<(), SnapshotError> {
    if get_meta(&txn.open_table(STAGE_INFO)?, INSTALL_ID)? != id {
        return Err(SnapshotError::Superseded);
    }
    Ok(())
}

/// The key of the last entry staged, for checking the stream's order.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Position {
    Start,
    Meta(String),
    Kv(Vec<u8>),
    Dedup(u64),
    DedupAge(u64, u64),
    /// A coordination table (its index in `COORD_TABLES`) and key.
    Coord(usize, Vec<u8>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Receiving,
    Complete,
    Failed,
}

/// Receives a snapshot's chunks (format: [`crate::snapshot`]) one at a time, validating and
/// staging each; made by
/// [`StateMachine::snapshot_installer`](crate::StateMachine::snapshot_installer) and finished by
/// [`StateMachine::complete_install`](crate::StateMachine::complete_install).
///
/// # Atomicity and costs
/// Each [`push`](Self::push) stages its chunk's entries into tables `snapshot_install_*` of the
/// same database in one short write transaction without fsync, so an install holds redb's single
/// writer for one chunk at a time, never for the whole transfer: the acceptor keeps persisting and
/// the state machine keeps applying meanwhile. The `sm_*` tables are untouched until
/// `complete_install`, which swaps every one of them for its staged copy (a rename, not a copy)
/// in one transaction committed with `Durability::Immediate`. An error, a dropped installer or a
/// crash at any earlier point leaves the state machine as it was; the next installer (or the
/// next `StateMachine::from_database`) drops the leftover staging tables.
///
/// # Validation
/// Checks: the format version; an applied index at most [`Slot::MAX`] and a revision at
/// most [`MAX_SNAPSHOT_REVISION`]; chunk sizes ([`MAX_SNAPSHOT_CHUNK_BYTES`], entries at most
/// [`MAX_SNAPSHOT_ENTRY_BYTES`]); sequence numbers 0, 1, 2, ...; the same applied index and
/// revision in every chunk, ahead of the state machine's; every entry decodes, names a known table
/// and comes in table and key order; records decode and are plausible (non-empty bounded keys,
/// non-zero client ids, revisions and slots not beyond the snapshot's); on the last chunk, the
/// entry count, the state hash, the meta table against the header, and the exactly-once table
/// against its eviction index. The first failed check fails the installer for good: every later
/// call returns [`SnapshotError::Aborted`]. Memory: at most one chunk plus one entry.
pub struct SnapshotInstaller {
    db: Arc<Database>,
    id: u64,
    max_dedup_clients: u64,
    phase: Phase,
    /// Applied index and revision of the snapshot, from its first chunk.
    header: Option<(u64, u64)>,
    next_seq: u64,
    /// Stream bytes of an entry not yet complete.
    buffer: Vec<u8>,
    position: Position,
    hash: Fnv,
    entry_count: u64,
    meta_applied_index: u64,
    meta_revision: u64,
    dedup_count: u64,
    dedup_age_count: u64,
}

impl std::fmt::Debug for SnapshotInstaller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotInstaller")
            .field("id", &self.id)
            .field("phase", &self.phase)
            .field("header", &self.header)
            .field("next_seq", &self.next_seq)
            .field("entry_count", &self.entry_count)
            .finish_non_exhaustive()
    }
}

impl SnapshotInstaller {
    /// A new installer owning the (emptied) staging tables of `db`.
    pub(crate) fn new(
        db: Arc<Database>,
        max_dedup_clients: u64,
    ) -> Result<SnapshotInstaller, StorageError> {
        let mut txn = db.begin_write()?;
        txn.set_durability(Durability::None)?;
        let id = reset_staging(&txn)?;
        txn.commit()?;
        Ok(SnapshotInstaller {
            db,
            id,
            max_dedup_clients,
            phase: Phase::Receiving,
            header: None,
            next_seq: 0,
            buffer: Vec::new(),
            position: Position::Start,
            hash: Fnv::default(),
            entry_count: 0,
            meta_applied_index: 0,
            meta_revision: 0,
            dedup_count: 0,
            dedup_age_count: 0,
        })
    }

    /// The snapshot's applied index, once its first chunk arrived.
    pub fn applied_index(&self) -> Option<u64> {
        self.header.map(|(applied_index, _)| applied_index)
    }

    /// The number of the chunk this installer takes next.
    pub(crate) fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// True once the last chunk arrived and the whole snapshot validated.
    pub fn is_complete(&self) -> bool {
        self.phase == Phase::Complete
    }

    /// Decode an encoded [`SnapshotChunk`] (untrusted bytes, at most
    /// [`MAX_SNAPSHOT_CHUNK_BYTES`]) and [`push`](Self::push) it.
    pub fn push_encoded(&mut self, bytes: &[u8]) -> Result<bool, SnapshotError> {
        self.guard(|this| {
            if bytes.len() > MAX_SNAPSHOT_CHUNK_BYTES {
                return Err(SnapshotError::TooLarge {
                    what: "chunk",
                    size_bytes: bytes.len(),
                    limit_bytes: MAX_SNAPSHOT_CHUNK_BYTES,
                });
            }
            let chunk = SnapshotChunk::decode(bytes).map_err(|e| invalid(format!("chunk: {e}")))?;
            this.receive(&chunk)
        })
    }

    /// Validate and stage the next chunk: one write transaction without fsync. Returns whether
    /// it was the last one (then call
    /// [`StateMachine::complete_install`](crate::StateMachine::complete_install)).
    pub fn push(&mut self, chunk: &SnapshotChunk) -> Result<bool, SnapshotError> {
        self.guard(|this| this.receive(chunk))
    }

    /// Run `f` unless failed or complete; fail for good if it fails.
    fn guard(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<bool, SnapshotError>,
    ) -> Result<bool, SnapshotError> {
        match self.phase {
            Phase::Failed => return Err(SnapshotError::Aborted),
            Phase::Complete => return Err(invalid("chunk after the last one")),
            Phase::Receiving => {}
        }
        let result = f(self);
        if result.is_err() {
            self.phase = Phase::Failed;
            self.buffer = Vec::new();
        }
        result
    }

    fn receive(&mut self, chunk: &SnapshotChunk) -> Result<bool, SnapshotError> {
        if chunk.format != SNAPSHOT_FORMAT {
            return Err(invalid(format!("unknown format {}", chunk.format)));
        }
        if chunk.data.len() > SNAPSHOT_CHUNK_DATA_BYTES {
            return Err(SnapshotError::TooLarge {
                what: "chunk data",
                size_bytes: chunk.data.len(),
                limit_bytes: SNAPSHOT_CHUNK_DATA_BYTES,
            });
        }
        if chunk.seq != self.next_seq {
            return Err(SnapshotError::OutOfOrder {
                expected: self.next_seq,
                got: chunk.seq,
            });
        }
        match self.header {
            None => {
                check_range("applied index", chunk.applied_index, Slot::MAX.0)?;
                check_range("revision", chunk.revision, MAX_SNAPSHOT_REVISION)?;
                let applied_index =
                    get_meta(&self.db.begin_read()?.open_table(META)?, APPLIED_INDEX)?;
                if chunk.applied_index <= applied_index {
                    return Err(SnapshotError::Stale {
                        snapshot_index: chunk.applied_index,
                        applied_index,
                    });
                }
                self.header = Some((chunk.applied_index, chunk.revision));
            }
            Some(header) if header != (chunk.applied_index, chunk.revision) => {
                return Err(invalid(format!(
                    "chunk {} is of the snapshot at slot {} revision {}, not slot {} revision {}",
                    chunk.seq, chunk.applied_index, chunk.revision, header.0, header.1
                )));
            }
            Some(_) => {}
        }
        self.buffer.extend_from_slice(&chunk.data);
        let entries = self.take_entries()?;
        self.stage(&entries)?;
        self.next_seq += 1;
        if chunk.last {
            self.finish(chunk)?;
            self.phase = Phase::Complete;
        }
        Ok(chunk.last)
    }

    /// Decode and validate every complete entry in the buffer, leaving a partial one there.
    fn take_entries(&mut self) -> Result<Vec<Entry>, SnapshotError> {
        let mut entries = Vec::new();
        let mut at = 0;
        while let Some((len, header_bytes)) = read_varint(&self.buffer[at..])? {
            if len > MAX_SNAPSHOT_ENTRY_BYTES as u64 {
                return Err(SnapshotError::TooLarge {
                    what: "entry",
                    size_bytes: usize::try_from(len).unwrap_or(usize::MAX),
                    limit_bytes: MAX_SNAPSHOT_ENTRY_BYTES,
                });
            }
            let start = at + header_bytes;
            let end = start + len as usize;
            if end > self.buffer.len() {
                break;
            }
            let entry = SnapshotEntry::decode(&self.buffer[start..end])
                .map_err(|e| invalid(format!("entry {}: {e}", self.entry_count)))?
                .entry
                .ok_or_else(|| {
                    invalid(format!("entry {} names no known table", self.entry_count))
                })?;
            self.check_entry(&entry)?;
            entry.hash_into(&mut self.hash);
            self.entry_count += 1;
            entries.push(entry);
            at = end;
        }
        self.buffer.drain(..at);
        Ok(entries)
    }

    /// Order and plausibility of one entry.
    fn check_entry(&mut self, entry: &Entry) -> Result<(), SnapshotError> {
        let (applied_index, revision) = self.header.expect("header set by the first chunk");
        let n = self.entry_count;
        let position = match entry {
            Entry::Meta(m) => {
                match m.name.as_str() {
                    APPLIED_INDEX => self.meta_applied_index = m.value,
                    REVISION => self.meta_revision = m.value,
                    _ => {}
                }
                Position::Meta(m.name.clone())
            }
            Entry::Kv(kv) => {
                if kv.key.is_empty() || kv.key.len() > MAX_KEY_BYTES {
                    return Err(invalid(format!("entry {n}: key of {} bytes", kv.key.len())));
                }
                let record: KvRecord = decode_record("sm_kv", &kv.record)?;
                if record.value.len() > MAX_VALUE_BYTES
                    || record.version == 0
                    || record.create_revision > record.mod_revision
                    || record.mod_revision > revision
                {
                    return Err(invalid(format!("entry {n}: implausible kv record")));
                }
                Position::Kv(kv.key.clone())
            }
            Entry::Dedup(d) => {
                let record: DedupRecord = decode_record("sm_dedup", &d.record)?;
                if d.client_id == 0
                    || record.seq == 0
                    || record.slot > applied_index
                    || record.response.is_none()
                {
                    return Err(invalid(format!("entry {n}: implausible dedup record")));
                }
                self.dedup_count += 1;
                Position::Dedup(d.client_id)
            }
            Entry::DedupAge(a) => {
                if a.client_id == 0 || a.slot > applied_index {
                    return Err(invalid(format!("entry {n}: implausible dedup age")));
                }
                self.dedup_age_count += 1;
                Position::DedupAge(a.slot, a.position)
            }
            Entry::Coord(c) => {
                let Some(index) = coord_table_index(&c.table) else {
                    return Err(invalid(format!("entry {n}: unknown table {:?}", c.table)));
                };
                // The longest coordination key: a session, a kind byte and a user key.
                if c.key.is_empty() || c.key.len() > MAX_KEY_BYTES + 9 {
                    return Err(invalid(format!("entry {n}: key of {} bytes", c.key.len())));
                }
                Position::Coord(index, c.key.clone())
            }
        };
        // Positions order by table first (the variant order is the stream's table order), then
        // by key in each table's own order.
        if position <= self.position {
            return Err(invalid(format!("entry {n} is out of table or key order")));
        }
        self.position = position;
        Ok(())
    }

    /// Write validated entries to the staging tables in one transaction without fsync.
    fn stage(&self, entries: &[Entry]) -> Result<(), SnapshotError> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut txn = self.db.begin_write()?;
        txn.set_durability(Durability::None)?;
        check_owner(&txn, self.id)?;
        {
            let mut meta = txn.open_table(STAGE_META)?;
            let mut kv = txn.open_table(STAGE_KV)?;
            let mut dedup = txn.open_table(STAGE_DEDUP)?;
            let mut age = txn.open_table(STAGE_DEDUP_AGE)?;
            let mut coord = Vec::with_capacity(COORD_TABLES.len());
            for table in COORD_TABLES {
                coord.push(txn.open_table(table.staged)?);
            }
            for entry in entries {
                match entry {
                    Entry::Meta(m) => {
                        meta.insert(m.name.as_str(), m.value)?;
                    }
                    Entry::Kv(e) => {
                        kv.insert(e.key.as_slice(), e.record.as_slice())?;
                    }
                    Entry::Dedup(d) => {
                        dedup.insert(d.client_id, d.record.as_slice())?;
                    }
                    Entry::DedupAge(a) => {
                        age.insert((a.slot, a.position), a.client_id)?;
                    }
                    Entry::Coord(c) => {
                        let table = coord_table_index(&c.table)
                            .and_then(|i| coord.get_mut(i))
                            .ok_or_else(|| invalid(format!("unknown table {:?}", c.table)))?;
                        table.insert(c.key.as_slice(), c.value.as_slice())?;
                    }
                }
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// The whole-stream checks of the last chunk.
    fn finish(&self, chunk: &SnapshotChunk) -> Result<(), SnapshotError> {
        if !self.buffer.is_empty() {
            return Err(invalid("the stream ends inside an entry"));
        }
        if chunk.entry_count != self.entry_count {
            return Err(invalid(format!(
                "{} entries received, the last chunk says {}",
                self.entry_count, chunk.entry_count
            )));
        }
        if chunk.state_hash != self.hash.0 {
            return Err(invalid("state hash does not match the entries received"));
        }
        if (self.meta_applied_index, self.meta_revision) != (chunk.applied_index, chunk.revision) {
            return Err(invalid("the meta table disagrees with the chunk header"));
        }
        if self.dedup_count != self.dedup_age_count || self.dedup_count > self.max_dedup_clients {
            return Err(invalid(format!(
                "{} dedup records and {} ages, at most {} allowed",
                self.dedup_count, self.dedup_age_count, self.max_dedup_clients
            )));
        }
        // Every age entry must point at its client's record: with equal counts, a bijection.
        let txn = self.db.begin_read()?;
        let dedup = txn.open_table(STAGE_DEDUP)?;
        for row in txn.open_table(STAGE_DEDUP_AGE)?.iter()? {
            let (at, client) = row?;
            let record: Option<DedupRecord> = match dedup.get(client.value())? {
                Some(guard) => Some(decode_record("sm_dedup", guard.value())?),
                None => None,
            };
            if record.map(|r| (r.slot, r.position)) != Some(at.value()) {
                return Err(invalid(format!(
                    "dedup age {:?} does not match client {}'s record",
                    at.value(),
                    client.value()
                )));
            }
        }
        Ok(())
    }

    /// Replace the `sm_*` tables of `db` by the staged ones in one `Immediate` commit, if this
    /// installer is complete and ahead of `applied_index`. Returns the new applied index and
    /// revision.
    pub(crate) fn commit(
        self,
        db: &Arc<Database>,
        applied_index: u64,
    ) -> Result<(u64, u64), SnapshotError> {
        match self.phase {
            Phase::Failed => return Err(SnapshotError::Aborted),
            Phase::Receiving => return Err(SnapshotError::Incomplete),
            Phase::Complete => {}
        }
        if !Arc::ptr_eq(db, &self.db) {
            return Err(invalid("the installer belongs to another database"));
        }
        let (snapshot_index, revision) = self.header.expect("complete implies a header");
        if snapshot_index <= applied_index {
            return Err(SnapshotError::Stale {
                snapshot_index,
                applied_index,
            });
        }
        let mut txn = self.db.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        check_owner(&txn, self.id)?;
        // Empty staging tables were never opened; make sure each exists before the rename.
        txn.open_table(STAGE_META)?;
        txn.open_table(STAGE_KV)?;
        txn.open_table(STAGE_DEDUP)?;
        txn.delete_table(META)?;
        txn.rename_table(STAGE_META, META)?;
        txn.delete_table(KV)?;
        txn.rename_table(STAGE_KV, KV)?;
        txn.delete_table(DEDUP)?;
        txn.rename_table(STAGE_DEDUP, DEDUP)?;
        // Checked against the records above, and derived from them from now on.
        txn.delete_table(STAGE_DEDUP_AGE)?;
        swap_in_staged(&txn)?;
        reset_staging(&txn)?;
        txn.commit()?;
        Ok((snapshot_index, revision))
    }
}

/// Fails with [`SnapshotError::OutOfRange`] if `value` is above `max`.
fn check_range(what: &'static str, value: u64, max: u64) -> Result<(), SnapshotError> {
    if value > max {
        return Err(SnapshotError::OutOfRange { what, value, max });
    }
    Ok(())
}

/// A protobuf varint at the start of `bytes` and its length in bytes; `None` if `bytes` ends
/// before it does.
fn read_varint(bytes: &[u8]) -> Result<Option<(u64, usize)>, SnapshotError> {
    let mut value = 0u64;
    for (i, &byte) in bytes.iter().enumerate().take(10) {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            if i == 9 && byte > 1 {
                return Err(invalid("entry length overflows 64 bits"));
            }
            return Ok(Some((value, i + 1)));
        }
    }
    if bytes.len() >= 10 {
        return Err(invalid("entry length varint longer than 10 bytes"));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::read_varint;

    #[test]
    fn varints_decode_or_wait_for_more() {
        let mut buf = Vec::new();
        prost::encoding::encode_varint(300, &mut buf);
        assert_eq!(read_varint(&buf).unwrap(), Some((300, 2)));
        assert_eq!(read_varint(&buf[..1]).unwrap(), None);
        assert_eq!(read_varint(&[]).unwrap(), None);
        assert!(read_varint(&[0xff; 10]).is_err());
        assert!(
            read_varint(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02]).is_err()
        );
        let mut max = Vec::new();
        prost::encoding::encode_varint(u64::MAX, &mut max);
        assert_eq!(read_varint(&max).unwrap(), Some((u64::MAX, 10)));
    }
}
