//! The acceptor's durable state as an append-only write-ahead log: [`WalLog`], the
//! `synod_paxos::Storage` of a node.
//!
//! # Why not redb
//! Each `persist` is on the critical path of every write, on every node. A redb commit rewrites
//! the B-tree pages it touched (about a dozen 4 KiB pages for one record, scattered) before its
//! fsync; an append writes the record's bytes once, at the end of one file, and `fdatasync`s
//! them. The state machine, which is read by key, stays in redb.
//!
//! # Files
//! A directory of segments named by a 20-digit sequence number (`00000000000000000000.wal`,
//! ...), appended in order. A segment is a list of frames; each frame is one `persist` call:
//!
//! | bytes | what |
//! |---|---|
//! | 8 | payload length, little-endian |
//! | 8 | FNV-1a 64 of the payload |
//! | n | the records, one after another (see [`encode_record`]) |
//!
//! One frame per call makes a call all-or-none: a crash can leave a torn frame at the end of
//! the last segment (its length runs past the end, or its hash is wrong), and such a frame was
//! never synced, so it was never reported to anyone; [`WalLog::open`] cuts it off. A bad frame
//! anywhere else is corruption and an error, never silently skipped.
//!
//! A segment that grows past [`WalOptions::segment_bytes`] is closed (synced) and a new one
//! starts with a header frame holding the promise and the compaction point, so the segments
//! before it are never needed for those. Once a synced compaction point covers every slot a
//! closed segment mentions, the segment is deleted: the log's disk use follows compaction.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use synod_paxos::{Ballot, DurableState, Record, Slot, Storage, Value};

use crate::error::StorageError;
use crate::fnv::Fnv;

/// Frame header: payload length and hash.
const FRAME_HEADER_BYTES: usize = 16;
const RECORD_PROMISED: u8 = 1;
const RECORD_ACCEPTED: u8 = 2;
const RECORD_CHOSEN: u8 = 3;
const RECORD_COMPACTED: u8 = 4;
const VALUE_NOOP: u8 = 0;
const VALUE_COMMANDS: u8 = 1;
const SEGMENT_SUFFIX: &str = ".wal";

/// Settings of a [`WalLog`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalOptions {
    /// A segment this large is closed and a new one started (a single larger frame still goes
    /// whole into one segment).
    pub segment_bytes: u64,
}

impl Default for WalOptions {
    fn default() -> WalOptions {
        WalOptions {
            segment_bytes: 64 << 20,
        }
    }
}

/// One segment file and the highest slot its records mention.
#[derive(Debug, Clone, Copy)]
struct Segment {
    number: u64,
    max_slot: Slot,
}

/// The acceptor's promise and log in an append-only write-ahead log (see the module docs).
///
/// [`persist`](Storage::persist) appends all its records as one frame; if any of them
/// [`must_sync`](Record::must_sync) it returns only after `fdatasync`, otherwise they become
/// durable with the next synced call. [`load`](Storage::load) replays every segment.
#[derive(Debug)]
pub struct WalLog {
    dir: PathBuf,
    options: WalOptions,
    /// The last segment, open for appending.
    file: File,
    /// Its size in bytes.
    file_bytes: u64,
    /// Every segment, oldest first; the last is `file`'s.
    segments: Vec<Segment>,
    promised: Ballot,
    compacted_through: Slot,
    /// The compaction point as of the last fsync: only it may delete segments.
    synced_compacted_through: Slot,
    scratch: Vec<u8>,
}

impl WalLog {
    /// Open the log in `dir` with default [`WalOptions`], creating the directory and a first
    /// segment if missing; a torn frame at the end of the last segment is cut off.
    pub fn open(dir: impl AsRef<Path>) -> Result<WalLog, StorageError> {
        WalLog::open_with(dir, WalOptions::default())
    }

    /// Open the log in `dir`.
    pub fn open_with(dir: impl AsRef<Path>, options: WalOptions) -> Result<WalLog, StorageError> {
        assert!(options.segment_bytes > 0, "segments must hold something");
        let dir = dir.as_ref().to_path_buf();
        fs::create_dir_all(&dir)?;
        let numbers = segment_numbers(&dir)?;
        let replay = replay(&dir, &numbers)?;
        let mut log = match numbers.last() {
            None => {
                let file = create_segment(&dir, 0)?;
                WalLog {
                    dir,
                    options,
                    file,
                    file_bytes: 0,
                    segments: vec![Segment {
                        number: 0,
                        max_slot: Slot(0),
                    }],
                    promised: Ballot(0),
                    compacted_through: Slot(0),
                    synced_compacted_through: Slot(0),
                    scratch: Vec::new(),
                }
            }
            Some(&last) => {
                let file = OpenOptions::new()
                    .append(true)
                    .open(segment_path(&dir, last))?;
                if replay.last_valid_bytes < file.metadata()?.len() {
                    tracing::warn!(
                        segment = last,
                        kept = replay.last_valid_bytes,
                        "cutting off a torn frame at the end of the log"
                    );
                    file.set_len(replay.last_valid_bytes)?;
                    file.sync_all()?;
                }
                WalLog {
                    dir,
                    options,
                    file,
                    file_bytes: replay.last_valid_bytes,
                    segments: replay.segments,
                    promised: replay.state.promised,
                    compacted_through: replay.state.compacted_through,
                    synced_compacted_through: replay.state.compacted_through,
                    scratch: Vec::new(),
                }
            }
        };
        if log.file_bytes == 0 {
            // A new (or emptied) segment starts with the state its predecessors held.
            log.write_header()?;
        }
        Ok(log)
    }

    /// The highest ballot promised, as written.
    pub fn promised(&self) -> Ballot {
        self.promised
    }

    /// Slots through this one are compacted away, as written.
    pub fn compacted_through(&self) -> Slot {
        self.compacted_through
    }

    /// How many segment files the log has now.
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// Appends the header frame (promise and compaction point) to the current, empty segment
    /// and syncs it and the directory entry.
    fn write_header(&mut self) -> Result<(), StorageError> {
        assert_eq!(self.file_bytes, 0, "a header opens a segment");
        let header = [
            Record::Promised(self.promised),
            Record::Compacted(self.compacted_through),
        ];
        self.scratch.clear();
        let max_slot = encode_frame(&header, &mut self.scratch);
        assert_eq!(max_slot, Slot(0), "a header mentions no slot");
        self.file.write_all(&self.scratch)?;
        self.file.sync_data()?;
        sync_dir(&self.dir)?;
        self.file_bytes = self.scratch.len() as u64;
        Ok(())
    }

    /// Closes the current segment (synced) and starts the next one.
    fn rotate(&mut self) -> Result<(), StorageError> {
        self.file.sync_data()?;
        self.synced_compacted_through = self.compacted_through;
        let number = self.segments.last().expect("a current segment").number + 1;
        self.file = create_segment(&self.dir, number)?;
        self.file_bytes = 0;
        self.segments.push(Segment {
            number,
            max_slot: Slot(0),
        });
        self.write_header()
    }

    /// Deletes the oldest closed segments whose every slot a synced compaction point covers.
    fn delete_compacted_segments(&mut self) -> Result<(), StorageError> {
        while self.segments.len() > 1 && self.segments[0].max_slot <= self.synced_compacted_through
        {
            let segment = self.segments.remove(0);
            fs::remove_file(segment_path(&self.dir, segment.number))?;
        }
        Ok(())
    }
}

impl Storage for WalLog {
    type Error = StorageError;

    fn load(&self) -> Result<DurableState, StorageError> {
        let numbers = segment_numbers(&self.dir)?;
        Ok(replay(&self.dir, &numbers)?.state)
    }

    fn persist(&mut self, records: &[Record]) -> Result<(), StorageError> {
        if records.is_empty() {
            return Ok(());
        }
        let _span = tracing::trace_span!("persist", records = records.len()).entered();
        let mut promised = self.promised;
        let mut compacted_through = self.compacted_through;
        for record in records {
            match record {
                Record::Promised(ballot) => {
                    assert!(*ballot >= promised, "promised ballot went down");
                    promised = *ballot;
                }
                Record::Accepted { ballot, .. } => {
                    assert!(*ballot <= promised, "accepted above the promise");
                }
                Record::Chosen { .. } => {}
                Record::Compacted(through) => compacted_through = compacted_through.max(*through),
            }
        }
        if self.file_bytes >= self.options.segment_bytes {
            self.rotate()?;
        }
        self.scratch.clear();
        let max_slot = encode_frame(records, &mut self.scratch);
        self.file.write_all(&self.scratch)?;
        let sync = records.iter().any(Record::must_sync);
        if sync {
            self.file.sync_data()?;
        }
        self.file_bytes += self.scratch.len() as u64;
        let current = self.segments.last_mut().expect("a current segment");
        current.max_slot = current.max_slot.max(max_slot);
        self.promised = promised;
        self.compacted_through = compacted_through;
        if sync {
            self.synced_compacted_through = compacted_through;
            self.delete_compacted_segments()?;
        }
        Ok(())
    }
}

/// What replaying the segments found.
struct Replay {
    state: DurableState,
    segments: Vec<Segment>,
    /// Bytes of the last segment up to its last whole frame.
    last_valid_bytes: u64,
}

/// Replays `numbers` (sorted) in order. Only the last segment may end in a torn frame.
fn replay(dir: &Path, numbers: &[u64]) -> Result<Replay, StorageError> {
    let mut state = DurableState::default();
    let mut segments = Vec::with_capacity(numbers.len());
    let mut last_valid_bytes = 0;
    for (i, &number) in numbers.iter().enumerate() {
        let is_last = i + 1 == numbers.len();
        let bytes = fs::read(segment_path(dir, number))?;
        let mut max_slot = Slot(0);
        let mut at = 0;
        while at < bytes.len() {
            match decode_frame(&bytes[at..]) {
                Ok((records, used)) => {
                    for record in records {
                        max_slot = max_slot.max(record_slot(&record));
                        state.apply(record);
                    }
                    at += used;
                }
                Err(reason) if is_last => {
                    tracing::debug!(segment = number, at, %reason, "torn frame at the end");
                    break;
                }
                Err(reason) => {
                    return Err(corrupt(format!("segment {number} at byte {at}: {reason}")));
                }
            }
        }
        if is_last {
            last_valid_bytes = at as u64;
        }
        segments.push(Segment { number, max_slot });
    }
    Ok(Replay {
        state,
        segments,
        last_valid_bytes,
    })
}

/// The slot a record is about (0 for none).
fn record_slot(record: &Record) -> Slot {
    match record {
        Record::Accepted { slot, .. } | Record::Chosen { slot, .. } => *slot,
        Record::Promised(_) | Record::Compacted(_) => Slot(0),
    }
}

/// Appends one frame holding `records` to `out`; returns the highest slot they mention.
fn encode_frame(records: &[Record], out: &mut Vec<u8>) -> Slot {
    let start = out.len();
    out.extend_from_slice(&[0; FRAME_HEADER_BYTES]);
    let mut max_slot = Slot(0);
    for record in records {
        max_slot = max_slot.max(record_slot(record));
        encode_record(record, out);
    }
    let payload = &out[start + FRAME_HEADER_BYTES..];
    let len = payload.len() as u64;
    let hash = hash(payload);
    out[start..start + 8].copy_from_slice(&len.to_le_bytes());
    out[start + 8..start + 16].copy_from_slice(&hash.to_le_bytes());
    max_slot
}

/// Decodes the frame at the start of `bytes`: its records and its length in bytes.
fn decode_frame(bytes: &[u8]) -> Result<(Vec<Record>, usize), String> {
    let mut reader = Reader(bytes);
    let len = reader.u64()?;
    let expected_hash = reader.u64()?;
    if len > reader.0.len() as u64 {
        return Err(format!("a frame of {len} bytes, {} left", reader.0.len()));
    }
    let payload = reader.take(len as usize)?;
    if hash(payload) != expected_hash {
        return Err("frame hash mismatch".into());
    }
    let mut records = Vec::new();
    let mut reader = Reader(payload);
    while !reader.0.is_empty() {
        records.push(decode_record(&mut reader)?);
    }
    if records.is_empty() {
        return Err("an empty frame".into());
    }
    Ok((records, FRAME_HEADER_BYTES + len as usize))
}

fn hash(bytes: &[u8]) -> u64 {
    let mut fnv = Fnv::default();
    fnv.field(bytes);
    fnv.0
}

/// Appends one record: a tag byte, then its fields (u64 little-endian, values as below).
fn encode_record(record: &Record, out: &mut Vec<u8>) {
    match record {
        Record::Promised(ballot) => {
            out.push(RECORD_PROMISED);
            out.extend_from_slice(&ballot.0.to_le_bytes());
        }
        Record::Accepted {
            slot,
            ballot,
            value,
        } => {
            out.push(RECORD_ACCEPTED);
            out.extend_from_slice(&slot.0.to_le_bytes());
            out.extend_from_slice(&ballot.0.to_le_bytes());
            encode_value(value, out);
        }
        Record::Chosen { slot, value } => {
            out.push(RECORD_CHOSEN);
            out.extend_from_slice(&slot.0.to_le_bytes());
            encode_value(value, out);
        }
        Record::Compacted(through) => {
            out.push(RECORD_COMPACTED);
            out.extend_from_slice(&through.0.to_le_bytes());
        }
    }
}

fn decode_record(reader: &mut Reader<'_>) -> Result<Record, String> {
    Ok(match reader.u8()? {
        RECORD_PROMISED => Record::Promised(Ballot(reader.u64()?)),
        RECORD_ACCEPTED => Record::Accepted {
            slot: Slot(reader.u64()?),
            ballot: Ballot(reader.u64()?),
            value: decode_value(reader)?,
        },
        RECORD_CHOSEN => Record::Chosen {
            slot: Slot(reader.u64()?),
            value: decode_value(reader)?,
        },
        RECORD_COMPACTED => Record::Compacted(Slot(reader.u64()?)),
        tag => return Err(format!("unknown record tag {tag}")),
    })
}

/// A value: tag `0` for a no-op; tag `1`, a u32 count, then each command as a u32 length and
/// its bytes.
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

fn segment_path(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("{number:020}{SEGMENT_SUFFIX}"))
}

/// The segment numbers in `dir`, sorted; other files are ignored.
fn segment_numbers(dir: &Path) -> Result<Vec<u64>, StorageError> {
    let mut numbers = Vec::new();
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(number) = name
            .strip_suffix(SEGMENT_SUFFIX)
            .filter(|n| n.len() == 20)
            .and_then(|n| n.parse().ok())
        {
            numbers.push(number);
        }
    }
    numbers.sort_unstable();
    Ok(numbers)
}

/// Creates segment `number` (it must not exist) and makes its directory entry durable.
fn create_segment(dir: &Path, number: u64) -> Result<File, StorageError> {
    let file = OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(segment_path(dir, number))?;
    sync_dir(dir)?;
    Ok(file)
}

/// Makes `dir`'s entries (created or removed files) durable.
fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    File::open(dir)?.sync_all()?;
    Ok(())
}

fn corrupt(reason: String) -> StorageError {
    StorageError::Corrupt {
        table: "log",
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use synod_paxos::NodeId;

    fn samples() -> Vec<Record> {
        vec![
            Record::Promised(Ballot::new(3, NodeId(2))),
            Record::Accepted {
                slot: Slot(7),
                ballot: Ballot(1),
                value: Value::Noop,
            },
            Record::Accepted {
                slot: Slot(8),
                ballot: Ballot(u64::MAX),
                value: Value::Commands(vec![vec![], b"abc".to_vec(), vec![0xff; 300]]),
            },
            Record::Chosen {
                slot: Slot(9),
                value: Value::Commands(vec![]),
            },
            Record::Compacted(Slot(4)),
        ]
    }

    #[test]
    fn frames_round_trip() {
        let records = samples();
        let mut bytes = Vec::new();
        assert_eq!(encode_frame(&records, &mut bytes), Slot(9));
        assert_eq!(decode_frame(&bytes), Ok((records, bytes.len())));
    }

    #[test]
    fn every_truncation_and_every_flipped_bit_is_an_error() {
        let mut bytes = Vec::new();
        encode_frame(&samples(), &mut bytes);
        for len in 0..bytes.len() {
            assert!(decode_frame(&bytes[..len]).is_err(), "cut at {len}");
        }
        for i in 0..bytes.len() {
            for bit in 0..8 {
                let mut flipped = bytes.clone();
                flipped[i] ^= 1 << bit;
                assert!(decode_frame(&flipped).is_err(), "bit {bit} of byte {i}");
            }
        }
    }

    #[test]
    fn zeros_are_not_a_frame() {
        assert!(decode_frame(&[0; 64]).is_err());
    }

    #[test]
    fn garbage_payloads_never_panic() {
        // Hash-correct frames around arbitrary short payloads, so decoding reaches the records.
        for a in 0..=255u8 {
            for b in [0u8, 1, 2, 4, 255] {
                for tail in [&[][..], &[0xff, 0xff, 0xff, 0xff, 1, 2][..]] {
                    let mut payload = vec![a, b];
                    payload.extend_from_slice(tail);
                    let mut frame = (payload.len() as u64).to_le_bytes().to_vec();
                    frame.extend_from_slice(&hash(&payload).to_le_bytes());
                    frame.extend_from_slice(&payload);
                    let _ = decode_frame(&frame);
                }
            }
        }
    }
}
