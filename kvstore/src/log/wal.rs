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
//! A directory (a [`WalDisk`]: the real [`FsDisk`] or the simulator's
//! [`SimDisk`](crate::SimDisk)) of segments named by a 20-digit sequence number
//! (`00000000000000000000.wal`, ...), consecutive, appended in order. A segment starts with a
//! header, then holds frames; each frame is one `persist` call:
//!
//! | bytes | what |
//! |---|---|
//! | 8 | segment header: magic `SYNODWAL` |
//! | 4 | log format, [`WAL_FORMAT`], little-endian |
//! | 8 | the segment's number, little-endian |
//! | 8 | FNV-1a 64 of the 20 bytes above (as one length-prefixed field) |
//! | | then frames, each: |
//! | 8 | payload length n, little-endian, with the top bit set if the call that wrote the frame synced it |
//! | 8 | header hash: FNV-1a 64 of the segment number, the frame's byte offset in the segment and the field above |
//! | 8 | payload hash: FNV-1a 64 of the segment number, the offset and the payload |
//! | n | the records, one after another (see [`encode_record`]) |
//!
//! (Each hash is over length-prefixed fields, numbers as 8 bytes little-endian.) Hashing the
//! segment number and the offset binds each frame to where it was written: a stale frame left in
//! a reused or preallocated region, or copied from elsewhere, fails its hashes. The header hash
//! tells a frame whose payload a crash cut short (valid header, too few bytes) from a damaged
//! one.
//!
//! A segment is created whole, atomically and durably ([`WalDisk::create`]: a temporary file,
//! fsync, rename, directory fsync), holding its header and a first frame with the promise and
//! the compaction point, so the segments before it are never needed for those. A crash while
//! creating one leaves no segment, or the whole one.
//!
//! Frames are written into room reserved at the end of the segment ahead of them
//! ([`WalDisk::reserve`], [`WAL_RESERVE_STEP_BYTES`] at a time, up to the segment's size): a sync
//! then flushes the data alone, not a new file length too, except once per step. The frames of
//! a segment end where only zeros follow (no frame is all zeros).
//!
//! # Opening: torn tails and corruption
//! One frame per call makes a call all-or-none. A crash can leave the frames written since the
//! last sync damaged: the last one torn, or any of them missing sectors, since a disk's volatile
//! cache may write back a later sector and lose an earlier one. None of them was synced, so
//! none was reported to anyone, and [`WalLog::open`] cuts the last segment at the first bad
//! frame, with everything after it, if nothing from there on was synced: no valid frame after
//! it says it was written with a sync, and it does not say so itself unless nothing valid
//! follows it (a call writes only after the previous call's sync returned). Then a frame whose
//! valid header says it was written without a sync is cut whatever its payload holds (unless
//! its hashes match around undecodable records); a frame whose header is not valid is cut if a
//! sector's piece of the header reads as zeros (lost) while valid frames follow it; and the
//! last frame, with nothing valid after it, must look torn rather than damaged (the rule is on
//! `is_torn_write`: cut short, zeros, or stale bytes that are not a frame header; a whole frame
//! with a bad payload, or a header one bit away from valid, is damage). Any other bad frame is
//! corruption of data that may have been synced and reported, and so is a bad frame in any
//! other place (an earlier segment, a segment's first frame, a bad segment header).
//!
//! Two syncs leave no mark, both on frames that hold only records that need no sync: closing a
//! segment syncs its last frames, and cutting a tail at open syncs the cut. Damage to such a
//! frame after a crash that left its segment the last is cut rather than refused. And a crash
//! during the sync of a frame that is marked can keep that frame and lose a sector of the
//! unsynced frames before it; the start is refused then, since the log cannot tell whether the
//! sync returned.
//!
//! Segments of [`WAL_FORMAT_WITHOUT_SYNC_MARKS`] do not say which frames were written with a
//! sync, so there any valid frame after a bad one makes it corruption; the log appends to such
//! a segment without marks (an older version reads it) until it starts the next one.
//!
//! Corruption refuses the start with [`LogError`] naming the file and the byte offset, and
//! changes nothing on disk. So do records that break the acceptor's rules
//! ([`DurableState::try_apply`]) and a segment of another log format.
//!
//! A segment that grows past [`WalOptions::segment_bytes`] is closed (synced) and the next one
//! created. Once a synced compaction point covers every slot a closed segment mentions, the
//! segment is deleted: the log's disk use follows compaction.
//!
//! Records that need no sync ([`Record::must_sync`]) are synced with the next call that does,
//! and also by a call whose compaction point frees a closed segment (so that it can be deleted)
//! or that brings the bytes written since the last sync to [`WAL_SYNC_UNSYNCED_BYTES`]. A node
//! can go a long time without a record that must sync (an acceptor the leader sends only lazy
//! accepts): these bound its disk use and how much of its log a power loss can leave torn.
//!
//! # Failures
//! A write, sync, create or remove that fails stops the log: that `persist` and every later one
//! return an error, since after a failed `fdatasync` the kernel may have dropped the unsynced
//! pages. The node must stop; when it restarts, open trusts only what is on the disk.

use std::io;
use std::path::{Path, PathBuf};

use synod_paxos::{Ballot, DurableState, Record, RecordRuleError, Slot, Storage, Value};

use super::disk::{FsDisk, WalDisk, SECTOR_BYTES};
use crate::bugs::{Active, Bug};
use crate::error::StorageError;
use crate::fnv::Fnv;

/// Room is reserved at the end of the segment being written this many bytes at a time (see the
/// module docs): few enough syncs also make a new length durable, little to read past the last
/// frame when the log opens.
pub const WAL_RESERVE_STEP_BYTES: u64 = 1 << 20;

/// A call that brings the bytes written since the last sync to this many syncs, though none of
/// its records must (see the module docs).
pub const WAL_SYNC_UNSYNCED_BYTES: u64 = 1 << 20;

/// The log format this code writes. It also reads [`WAL_FORMAT_WITHOUT_SYNC_MARKS`]; a segment
/// of any other is refused.
pub const WAL_FORMAT: u32 = 3;
/// The format before [`WAL_FORMAT`], read and appended to as it was: its frames do not say
/// whether a sync followed them, so any of them may have been synced (see the module docs).
pub const WAL_FORMAT_WITHOUT_SYNC_MARKS: u32 = 2;
/// The top bit of a frame's length field: the frame was written by a call that synced it.
const FRAME_SYNCED: u64 = 1 << 63;
const SEGMENT_MAGIC: [u8; 8] = *b"SYNODWAL";
/// Segment header: magic, format, segment number, hash.
const SEGMENT_HEADER_BYTES: usize = 28;
/// Frame header: payload length, header hash, payload hash.
const FRAME_HEADER_BYTES: usize = 24;
const RECORD_PROMISED: u8 = 1;
const RECORD_ACCEPTED: u8 = 2;
const RECORD_CHOSEN: u8 = 3;
const RECORD_COMPACTED: u8 = 4;
const VALUE_NOOP: u8 = 0;
const VALUE_COMMANDS: u8 = 1;
const VALUE_RECONFIGURE: u8 = 2;
const SEGMENT_SUFFIX: &str = ".wal";

/// Why the write-ahead log refused to open or to write.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// A segment's header is missing, cut short or corrupt (or the file is not a segment).
    #[error("corrupt log: {}: {reason}", .path.display())]
    BadSegmentHeader {
        /// The segment file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A segment of a log format this code does not read.
    #[error(
        "{}: log format {found}; this Synod reads formats {WAL_FORMAT_WITHOUT_SYNC_MARKS} and \
         {WAL_FORMAT} only: start the node from an empty data directory", .path.display()
    )]
    UnsupportedFormat {
        /// The segment file.
        path: PathBuf,
        /// The format it says it has.
        found: u32,
    },
    /// A frame that is not a torn tail fails its checks.
    #[error("corrupt log: {} at byte {offset}: {reason}", .path.display())]
    CorruptFrame {
        /// The segment file.
        path: PathBuf,
        /// Where the frame starts.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// A frame whose records break the acceptor's rules.
    #[error("corrupt log: {} at byte {offset}: {rule}", .path.display())]
    BrokenRule {
        /// The segment file.
        path: PathBuf,
        /// Where the frame starts.
        offset: u64,
        /// The rule broken.
        rule: RecordRuleError,
    },
    /// Segments are not consecutive: one in the middle is gone.
    #[error("corrupt log: segment {} is missing", .path.display())]
    MissingSegment {
        /// The missing segment's file.
        path: PathBuf,
    },
    /// `persist` was given a record that breaks the acceptor's rules; nothing was written.
    #[error("refusing to write a record that breaks the acceptor's rules: {0}")]
    RefusedRecord(RecordRuleError),
    /// The disk failed (including a full disk).
    #[error("cannot {operation} {}: {source}", .path.display())]
    Io {
        /// "read", "append to", "sync", ...
        operation: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// An earlier write or sync failed, so the log writes nothing more; restart the node.
    #[error("the log stopped after an earlier write or sync failure; restart the node")]
    Stopped,
}

/// Settings of a [`WalLog`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalOptions {
    /// A segment this large is closed and a new one started (a single larger frame still goes
    /// whole into one segment).
    pub segment_bytes: u64,
    /// Deliberately broken rules (tests only).
    #[cfg(feature = "bug-injection")]
    pub bugs: crate::Bugs,
}

impl Default for WalOptions {
    fn default() -> WalOptions {
        WalOptions {
            segment_bytes: 64 << 20,
            #[cfg(feature = "bug-injection")]
            bugs: crate::Bugs::default(),
        }
    }
}

impl WalOptions {
    /// The default options with segments of `segment_bytes` (tests use small ones to rotate).
    pub fn with_segment_bytes(segment_bytes: u64) -> WalOptions {
        WalOptions {
            segment_bytes,
            #[cfg(feature = "bug-injection")]
            bugs: crate::Bugs::default(),
        }
    }

    /// The broken rules to apply with (none without the `bug-injection` feature).
    fn active_bugs(&self) -> Active {
        #[cfg(feature = "bug-injection")]
        return self.bugs;
        #[cfg(not(feature = "bug-injection"))]
        Active
    }
}

/// One segment file and the highest slot its records mention.
#[derive(Debug, Clone, Copy)]
struct Segment {
    number: u64,
    max_slot: Slot,
}

/// The acceptor's promise and log in an append-only write-ahead log on disk `D` (see the
/// module docs).
///
/// [`persist`](Storage::persist) appends all its records as one frame; if any of them
/// [`must_sync`](Record::must_sync) it returns only after `fdatasync`, otherwise they become
/// durable with the next synced call. [`load`](Storage::load) replays every segment.
#[derive(Debug)]
pub struct WalLog<D: WalDisk = FsDisk> {
    disk: D,
    options: WalOptions,
    /// Bytes of the last segment, the one written to, that its frames take.
    file_bytes: u64,
    /// The length of the last segment's file: from `file_bytes` on, reserved room (zeros).
    reserved_bytes: u64,
    /// The last segment is of [`WAL_FORMAT`], so its frames say whether a sync followed them
    /// (false for [`WAL_FORMAT_WITHOUT_SYNC_MARKS`], which an older version reads, and would
    /// misread a marked frame's length as huge).
    marks_syncs: bool,
    /// Every segment, oldest first, consecutive; never empty.
    segments: Vec<Segment>,
    promised: Ballot,
    compacted_through: Slot,
    /// The compaction point as of the last fsync: only it may delete segments.
    synced_compacted_through: Slot,
    /// Bytes written since the last fsync.
    unsynced_bytes: u64,
    scratch: Vec<u8>,
    /// A write, sync, create or remove failed: every later `persist` fails.
    stopped: bool,
}

impl WalLog {
    /// Open the log in directory `dir` with default [`WalOptions`]; see
    /// [`open_with`](Self::open_with).
    pub fn open(dir: impl AsRef<Path>) -> Result<WalLog, StorageError> {
        WalLog::open_with(dir, WalOptions::default())
    }

    /// Open the log in directory `dir` (an [`FsDisk`], created if missing); see
    /// [`open_on`](Self::open_on).
    pub fn open_with(dir: impl AsRef<Path>, options: WalOptions) -> Result<WalLog, StorageError> {
        let dir = dir.as_ref();
        let disk = FsDisk::open(dir).map_err(|source| LogError::Io {
            operation: "open the log directory",
            path: dir.to_path_buf(),
            source,
        })?;
        WalLog::open_on(disk, options)
    }
}

impl<D: WalDisk> WalLog<D> {
    /// Open the log on `disk`: replay every segment (reads them all), cut a torn frame off the
    /// end of the last one (a durable truncate), and create the first segment if there is none
    /// (also if the only one never finished being created by an older version). Blocks on the
    /// disk.
    ///
    /// # Errors
    /// [`LogError`] (inside [`StorageError::Log`]) naming the file and byte offset if a segment
    /// is corrupt (see the module docs: only a torn tail with nothing valid after it is cut),
    /// holds records that break the acceptor's rules, or is of another log format; nothing on
    /// the disk is changed then. Disk failures as [`LogError::Io`].
    ///
    /// # Panics
    /// If `options.segment_bytes` is 0.
    pub fn open_on(mut disk: D, options: WalOptions) -> Result<WalLog<D>, StorageError> {
        assert!(options.segment_bytes > 0, "segments must hold something");
        let mut numbers = segment_numbers(&disk)?;
        if numbers == [0] && never_initialised(&disk)? {
            tracing::warn!(
                segment = %disk.path_of(&segment_name(0)).display(),
                "recreating a first segment that was never fully created"
            );
            remove(&mut disk, 0)?;
            numbers.clear();
        }
        if numbers.is_empty() {
            let bytes = new_segment(0, Ballot::ZERO, Slot(0));
            create(&mut disk, 0, &bytes)?;
            numbers.push(0);
        }
        let replay = replay(&disk, &numbers, options.active_bugs())?;
        let last = *numbers.last().expect("at least one segment");
        if let Some(torn) = &replay.torn_tail {
            tracing::warn!(
                segment = %disk.path_of(&segment_name(last)).display(),
                kept = torn.valid_bytes,
                cut = torn.file_bytes - torn.valid_bytes,
                reason = %torn.reason,
                "cutting off the log's unsynced tail, from a torn frame on"
            );
            disk.truncate(&segment_name(last), torn.valid_bytes)
                .map_err(io_error(&disk, "truncate", last))?;
        }
        let reserved_bytes = match replay.torn_tail {
            Some(torn) => torn.valid_bytes,
            None => replay.last_file_bytes,
        };
        Ok(WalLog {
            disk,
            options,
            file_bytes: replay.last_valid_bytes,
            reserved_bytes,
            marks_syncs: replay.last_marks_syncs,
            segments: replay.segments,
            promised: replay.state.promised,
            compacted_through: replay.state.compacted_through,
            synced_compacted_through: replay.state.compacted_through,
            scratch: Vec::new(),
            unsynced_bytes: 0,
            stopped: false,
        })
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

    /// True once a write or sync failed: every later `persist` fails with [`LogError::Stopped`].
    pub fn is_stopped(&self) -> bool {
        self.stopped
    }

    /// The disk under the log.
    pub fn disk(&self) -> &D {
        &self.disk
    }

    /// Number of the last segment, the one appended to.
    fn current(&self) -> u64 {
        self.segments.last().expect("a current segment").number
    }

    /// Appends `records` as one frame (see `persist`), then syncs if one must be synced.
    fn append(&mut self, records: &[Record]) -> Result<(), StorageError> {
        let mut promised = self.promised;
        let mut compacted_through = self.compacted_through;
        for record in records {
            record
                .check_against_promise(promised)
                .map_err(LogError::RefusedRecord)?;
            match record {
                Record::Promised(ballot) => promised = *ballot,
                Record::Compacted(through) => compacted_through = compacted_through.max(*through),
                Record::Accepted { .. } | Record::Chosen { .. } => {}
            }
        }
        if self.file_bytes >= self.options.segment_bytes {
            self.rotate()?;
        }
        let number = self.current();
        self.scratch.clear();
        let max_slot = encode_frame(records, number, self.file_bytes, &mut self.scratch);
        self.reserve_room(self.file_bytes + self.scratch.len() as u64);
        let frees_a_segment = compacted_through > self.synced_compacted_through
            && self.oldest_segment_compacted(compacted_through);
        let unsynced_bytes = self.unsynced_bytes + self.scratch.len() as u64;
        let sync = records.iter().any(Record::must_sync)
            || frees_a_segment
            || unsynced_bytes >= WAL_SYNC_UNSYNCED_BYTES;
        if sync && self.marks_syncs {
            mark_synced(&mut self.scratch, number, self.file_bytes);
        }
        self.disk
            .write_at(&segment_name(number), self.file_bytes, &self.scratch)
            .map_err(io_error(&self.disk, "write to", number))?;
        if sync {
            self.disk
                .sync(&segment_name(number))
                .map_err(io_error(&self.disk, "sync", number))?;
        }
        self.unsynced_bytes = if sync { 0 } else { unsynced_bytes };
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

    /// Reserves room in the current segment through byte `end` and on to the next
    /// [`WAL_RESERVE_STEP_BYTES`] boundary (not past the segment's size, unless `end` is), if it
    /// has less. A best effort: without it, writes grow the file.
    fn reserve_room(&mut self, end: u64) {
        if end <= self.reserved_bytes {
            return;
        }
        let target = end
            .next_multiple_of(WAL_RESERVE_STEP_BYTES)
            .min(self.options.segment_bytes.max(end));
        let number = self.current();
        if let Err(error) = self.disk.reserve(&segment_name(number), target) {
            tracing::debug!(segment = number, %error, "could not reserve room in the log");
        }
        // Not retried before the next step either way.
        self.reserved_bytes = target;
    }

    /// Closes the current segment (synced) and creates the next one, durably.
    fn rotate(&mut self) -> Result<(), StorageError> {
        let number = self.current();
        self.disk
            .sync(&segment_name(number))
            .map_err(io_error(&self.disk, "sync", number))?;
        self.synced_compacted_through = self.compacted_through;
        self.unsynced_bytes = 0;
        let bytes = new_segment(number + 1, self.promised, self.compacted_through);
        create(&mut self.disk, number + 1, &bytes)?;
        self.segments.push(Segment {
            number: number + 1,
            max_slot: Slot(0),
        });
        self.file_bytes = bytes.len() as u64;
        self.reserved_bytes = self.file_bytes;
        self.marks_syncs = true;
        Ok(())
    }

    /// True if the oldest segment is closed and compaction through `through` covers every slot
    /// it mentions.
    fn oldest_segment_compacted(&self, through: Slot) -> bool {
        self.segments.len() > 1 && self.segments[0].max_slot <= through
    }

    /// Deletes the oldest closed segments whose every slot a synced compaction point covers.
    fn delete_compacted_segments(&mut self) -> Result<(), StorageError> {
        while self.oldest_segment_compacted(self.synced_compacted_through) {
            remove(&mut self.disk, self.segments[0].number)?;
            self.segments.remove(0);
        }
        Ok(())
    }
}

impl<D: WalDisk> Storage for WalLog<D> {
    type Error = StorageError;

    fn load(&self) -> Result<DurableState, StorageError> {
        let numbers = segment_numbers(&self.disk)?;
        Ok(replay(&self.disk, &numbers, self.options.active_bugs())?.state)
    }

    /// Appends `records` as one frame; syncs if one of them [`must_sync`](Record::must_sync).
    /// Refuses ([`LogError::RefusedRecord`], nothing written) records that break the rules
    /// [`Record::check_against_promise`] checks, so the log never holds what `open` refuses.
    /// After any disk failure the log is stopped: this and every later call fail.
    fn persist(&mut self, records: &[Record]) -> Result<(), StorageError> {
        if self.stopped {
            return Err(LogError::Stopped.into());
        }
        if records.is_empty() {
            return Ok(());
        }
        let _span = tracing::trace_span!("persist", records = records.len()).entered();
        let result = self.append(records);
        if let Err(StorageError::Log(LogError::Io { .. })) = &result {
            self.stopped = true;
        }
        result
    }
}

/// The bytes of a new segment `number`: its header and a first frame holding `promised` and
/// `compacted_through`.
fn new_segment(number: u64, promised: Ballot, compacted_through: Slot) -> Vec<u8> {
    let mut bytes = segment_header(number, WAL_FORMAT).to_vec();
    let header = [
        Record::Promised(promised),
        Record::Compacted(compacted_through),
    ];
    let max_slot = encode_frame(&header, number, SEGMENT_HEADER_BYTES as u64, &mut bytes);
    debug_assert_eq!(max_slot, Slot(0), "a header mentions no slot");
    // A segment is created synced.
    let first_frame = &mut bytes[SEGMENT_HEADER_BYTES..];
    mark_synced(first_frame, number, SEGMENT_HEADER_BYTES as u64);
    bytes
}

/// The header of segment `number` in log format `format`.
fn segment_header(number: u64, format: u32) -> [u8; SEGMENT_HEADER_BYTES] {
    let mut header = [0; SEGMENT_HEADER_BYTES];
    header[..8].copy_from_slice(&SEGMENT_MAGIC);
    header[8..12].copy_from_slice(&format.to_le_bytes());
    header[12..20].copy_from_slice(&number.to_le_bytes());
    let hash = hash(&[&header[..20]]);
    header[20..].copy_from_slice(&hash.to_le_bytes());
    header
}

/// Checks the header of segment `number` at the start of `bytes`; returns its log format.
fn check_segment_header(bytes: &[u8], number: u64, path: PathBuf) -> Result<u32, LogError> {
    let bad = |reason: String| LogError::BadSegmentHeader {
        path: path.clone(),
        reason,
    };
    if !bytes.starts_with(&SEGMENT_MAGIC[..bytes.len().min(8)]) {
        return Err(bad(format!(
            "no segment header (a log written before format {WAL_FORMAT}, or not a Synod log)"
        )));
    }
    if bytes.len() < SEGMENT_HEADER_BYTES {
        return Err(bad(format!(
            "the segment header is cut short at {} bytes",
            bytes.len()
        )));
    }
    let format = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
    if format != WAL_FORMAT && format != WAL_FORMAT_WITHOUT_SYNC_MARKS {
        return Err(LogError::UnsupportedFormat {
            path,
            found: format,
        });
    }
    if bytes[..SEGMENT_HEADER_BYTES] != segment_header(number, format) {
        let found = u64::from_le_bytes(bytes[12..20].try_into().expect("8 bytes"));
        return Err(bad(if found != number {
            format!("the header names segment {found}")
        } else {
            "segment header hash mismatch".to_string()
        }));
    }
    Ok(format)
}

/// True if segment 0's bytes are a strict prefix of a new segment 0: its creation by an older
/// version was cut short, so it holds nothing ever persisted.
fn never_initialised(disk: &impl WalDisk) -> Result<bool, StorageError> {
    let bytes = disk
        .read(&segment_name(0))
        .map_err(io_error(disk, "read", 0))?;
    let fresh = new_segment(0, Ballot::ZERO, Slot(0));
    Ok(bytes.len() < fresh.len() && fresh.starts_with(&bytes))
}

/// The end of the last segment, where a torn frame starts.
struct TornTail {
    /// Bytes before the torn frame: what is kept.
    valid_bytes: u64,
    /// The file's length.
    file_bytes: u64,
    /// Why the frame failed.
    reason: String,
}

/// What replaying the segments found.
struct Replay {
    state: DurableState,
    segments: Vec<Segment>,
    /// Bytes of the last segment up to its last whole frame.
    last_valid_bytes: u64,
    /// The length of the last segment's file.
    last_file_bytes: u64,
    /// The last segment's format marks frames written with a sync.
    last_marks_syncs: bool,
    /// The torn frame at the end of the last segment, if any.
    torn_tail: Option<TornTail>,
}

/// Replays `numbers` (sorted) in order. Only the last segment may end in a torn frame, and only
/// if nothing valid follows it.
fn replay(disk: &impl WalDisk, numbers: &[u64], bugs: Active) -> Result<Replay, StorageError> {
    let mut state = DurableState::default();
    let mut segments = Vec::with_capacity(numbers.len());
    let mut last_valid_bytes = 0;
    let mut last_file_bytes = 0;
    let mut last_marks_syncs = true;
    let mut torn_tail = None;
    for pair in numbers.windows(2) {
        if pair[1] != pair[0] + 1 {
            let path = disk.path_of(&segment_name(pair[0] + 1));
            return Err(LogError::MissingSegment { path }.into());
        }
    }
    for (i, &number) in numbers.iter().enumerate() {
        let is_last = i + 1 == numbers.len();
        let path = disk.path_of(&segment_name(number));
        let bytes = disk
            .read(&segment_name(number))
            .map_err(io_error(disk, "read", number))?;
        let format = check_segment_header(&bytes, number, path.clone())?;
        let marks_syncs = format == WAL_FORMAT;
        let mut max_slot = Slot(0);
        let mut at = SEGMENT_HEADER_BYTES;
        let corrupt = |at: usize, reason: String| LogError::CorruptFrame {
            path: path.clone(),
            offset: at as u64,
            reason,
        };
        // Room reserved ahead of the frames and never written reads as zeros; no frame is all
        // zeros.
        let zeros_from = bytes.iter().rposition(|b| *b != 0).map_or(0, |i| i + 1);
        if zeros_from <= at {
            return Err(corrupt(at, "the segment ends before its first frame".into()).into());
        }
        while at < zeros_from {
            match decode_frame(&bytes, at, number) {
                Ok(Frame {
                    records,
                    bytes: used,
                    ..
                }) => {
                    for record in records {
                        max_slot = max_slot.max(record_slot(&record));
                        state
                            .try_apply(record)
                            .map_err(|rule| LogError::BrokenRule {
                                path: path.clone(),
                                offset: at as u64,
                                rule,
                            })?;
                    }
                    at += used;
                }
                Err(error) if !is_last => {
                    return Err(corrupt(at, format!("{error} (not the last segment)")).into());
                }
                Err(error) if bugs.has(Bug::WalCutsAfterCorruptFrame) => {
                    torn_tail = Some(TornTail {
                        valid_bytes: at as u64,
                        file_bytes: bytes.len() as u64,
                        reason: error.to_string(),
                    });
                    break;
                }
                Err(error) if at == SEGMENT_HEADER_BYTES => {
                    return Err(corrupt(at, format!("{error} (the segment's first frame)")).into());
                }
                Err(error) => {
                    if let Some(damage) =
                        damage_at_the_end(&bytes, zeros_from, at, number, &error, marks_syncs)
                    {
                        return Err(corrupt(at, damage).into());
                    }
                    torn_tail = Some(TornTail {
                        valid_bytes: at as u64,
                        file_bytes: bytes.len() as u64,
                        reason: error.to_string(),
                    });
                    break;
                }
            }
        }
        if is_last {
            last_valid_bytes = at as u64;
            last_file_bytes = bytes.len() as u64;
            last_marks_syncs = marks_syncs;
        }
        segments.push(Segment { number, max_slot });
    }
    Ok(Replay {
        state,
        segments,
        last_valid_bytes,
        last_file_bytes,
        last_marks_syncs,
        torn_tail,
    })
}

/// The first valid frame of segment `number` at or after `from`, and the first one written with
/// a sync (any valid frame, unless `marks_syncs`), by offset. Pass `bytes` without their zero
/// tail: no frame starts there.
fn frames_after(
    bytes: &[u8],
    from: usize,
    number: u64,
    marks_syncs: bool,
) -> (Option<usize>, Option<usize>) {
    let mut first = None;
    for at in from..bytes.len().saturating_sub(FRAME_HEADER_BYTES - 1) {
        if let Ok(frame) = decode_frame(bytes, at, number) {
            first.get_or_insert(at);
            if frame.synced || !marks_syncs {
                return (first, Some(at));
            }
        }
    }
    (first, None)
}

/// Why the bad frame at byte `at` of the last segment (`number`, not its first frame) is damage
/// to data that may have been synced, which refuses the start; `None` if it is a torn write of
/// data never synced, which is cut off with everything after it. `bytes` are zeros from
/// `zeros_from` on; `marks_syncs` if the segment's format marks frames written with a sync.
///
/// A sync that returned made every byte before it durable, and a call writes only after the
/// previous call's sync returned. So the frame is damage if a frame written with a sync follows
/// it (in a format that does not mark them, any valid frame). Otherwise nothing after it was
/// synced, and a crash may have kept any of those sectors and lost the others (a disk's volatile
/// cache writes back in any order; a lost sector reads as zeros). Then:
/// - a valid header that says the frame was written without a sync: torn, whatever its payload
///   holds, unless its hashes match around undecodable records (damage);
/// - a valid header that says it was written with a sync: damage if any valid frame follows
///   (written after that sync returned), else [`is_torn_write`] decides;
/// - a header that is not valid: torn if a sector's piece of it reads as zeros when a valid
///   frame follows (anything else there is a header damaged after a sync may have covered it),
///   else [`is_torn_write`] decides.
fn damage_at_the_end(
    bytes: &[u8],
    zeros_from: usize,
    at: usize,
    number: u64,
    error: &FrameError,
    marks_syncs: bool,
) -> Option<String> {
    let (next, next_synced) = frames_after(&bytes[..zeros_from], at + 1, number, marks_syncs);
    if let Some(next_synced) = next_synced {
        return Some(format!(
            "{error}, and a frame written with a sync follows at byte {next_synced}: not a torn \
             write"
        ));
    }
    let unsynced_header =
        marks_syncs && frame_header(&bytes[at..], at, number).is_ok_and(|h| !h.synced);
    let torn = match error {
        FrameError::Records(_) => false,
        FrameError::PayloadCut { .. } | FrameError::PayloadHash { .. } if unsynced_header => true,
        FrameError::PayloadCut { .. } | FrameError::PayloadHash { .. } if next.is_some() => false,
        FrameError::HeaderCut { .. } | FrameError::HeaderHash if next.is_some() => {
            header_lost_a_sector(bytes, at)
        }
        _ => is_torn_write(bytes, zeros_from, at, number, error),
    };
    (!torn).then(|| match next {
        Some(next) => format!(
            "{error}, and a valid frame follows at byte {next}: not a torn write (a frame \
             written with a sync, or damaged)"
        ),
        None => format!("{error} in the last frame, which is whole: not a torn write"),
    })
}

/// True if a piece of the frame header at byte `at` that one sector holds reads as zeros (a
/// sector a crash lost).
fn header_lost_a_sector(bytes: &[u8], at: usize) -> bool {
    let end = (at + FRAME_HEADER_BYTES).min(bytes.len());
    let mut piece_start = at;
    while piece_start < end {
        let piece_end = ((piece_start / SECTOR_BYTES + 1) * SECTOR_BYTES).min(end);
        if bytes[piece_start..piece_end].iter().all(|b| *b == 0) {
            return true;
        }
        piece_start = piece_end;
    }
    false
}

/// The slot a record is about (0 for none).
fn record_slot(record: &Record) -> Slot {
    match record {
        Record::Accepted { slot, .. } | Record::Chosen { slot, .. } => *slot,
        Record::Promised(_) | Record::Compacted(_) => Slot(0),
    }
}

/// The layout the log writes, for fuzzing and for tests of its refusal paths: they build
/// segments whose framing is right (so the checks behind it are reached) around any records.
#[doc(hidden)]
pub mod format {
    use synod_paxos::Record;

    /// The name of segment `number`'s file.
    pub fn segment_file_name(number: u64) -> String {
        super::segment_name(number)
    }

    /// Segment `number`'s header in log format `format`, what its file starts with.
    pub fn segment_header(number: u64, format: u32) -> Vec<u8> {
        super::segment_header(number, format).to_vec()
    }

    /// `records` as one frame's payload.
    pub fn encode_records(records: &[Record]) -> Vec<u8> {
        let mut out = Vec::new();
        for record in records {
            super::encode_record(record, &mut out);
        }
        out
    }

    /// Appends a frame around `payload` (any bytes) to `segment`, the bytes of segment
    /// `number` so far (the frame is bound to that number and to its offset, the current
    /// length), marked as written with a sync if `synced`.
    pub fn append_frame(segment: &mut Vec<u8>, number: u64, payload: &[u8], synced: bool) {
        let offset = segment.len() as u64;
        let start = segment.len();
        segment.extend_from_slice(&[0; super::FRAME_HEADER_BYTES]);
        segment.extend_from_slice(payload);
        super::seal_frame(&mut segment[start..], number, offset, synced);
    }
}

/// The hash of a frame header: segment `number`, byte `offset` and the length field `field`
/// (the payload length, and [`FRAME_SYNCED`]).
fn frame_header_hash(number: u64, offset: u64, field: u64) -> u64 {
    hash(&[
        &number.to_le_bytes(),
        &offset.to_le_bytes(),
        &field.to_le_bytes(),
    ])
}

/// The hash of a frame's payload: segment `number`, byte `offset` and the payload.
fn frame_payload_hash(number: u64, offset: u64, payload: &[u8]) -> u64 {
    hash(&[&number.to_le_bytes(), &offset.to_le_bytes(), payload])
}

/// Appends one frame holding `records` to `out`, for segment `number` at byte `offset` of it,
/// marked as written without a sync (see [`seal_frame`]); returns the highest slot they mention.
fn encode_frame(records: &[Record], number: u64, offset: u64, out: &mut Vec<u8>) -> Slot {
    let start = out.len();
    out.extend_from_slice(&[0; FRAME_HEADER_BYTES]);
    let mut max_slot = Slot(0);
    for record in records {
        max_slot = max_slot.max(record_slot(record));
        encode_record(record, out);
    }
    seal_frame(&mut out[start..], number, offset, false);
    max_slot
}

/// Writes the header of the frame that `frame` holds (header room, then the payload), for
/// segment `number` at byte `offset` of it; `synced` marks it written by a call that syncs it.
fn seal_frame(frame: &mut [u8], number: u64, offset: u64, synced: bool) {
    let payload = &frame[FRAME_HEADER_BYTES..];
    let len = payload.len() as u64;
    debug_assert!(
        len < FRAME_SYNCED,
        "a frame's length leaves its top bit free"
    );
    let payload_hash = frame_payload_hash(number, offset, payload);
    let field = if synced { len | FRAME_SYNCED } else { len };
    frame[..8].copy_from_slice(&field.to_le_bytes());
    frame[8..16].copy_from_slice(&frame_header_hash(number, offset, field).to_le_bytes());
    frame[16..24].copy_from_slice(&payload_hash.to_le_bytes());
}

/// Marks the frame [`seal_frame`] wrote at the start of `frame` (for segment `number` at byte
/// `offset`) as written by a call that synced it: its length field and header hash change, its
/// payload hash does not (so the payload is not hashed again).
fn mark_synced(frame: &mut [u8], number: u64, offset: u64) {
    let field = read_u64(&frame[..8]) | FRAME_SYNCED;
    frame[..8].copy_from_slice(&field.to_le_bytes());
    frame[8..16].copy_from_slice(&frame_header_hash(number, offset, field).to_le_bytes());
}

/// Why the bytes at an offset are not a valid frame.
#[derive(Debug, Clone, PartialEq, Eq)]
enum FrameError {
    /// Fewer bytes than a frame header are left.
    HeaderCut {
        /// Bytes left.
        left: usize,
    },
    /// The header's hash does not match its length, segment and offset.
    HeaderHash,
    /// A valid header whose payload runs past the end of the file.
    PayloadCut {
        /// The payload length.
        len: u64,
        /// Bytes left after the header.
        left: usize,
    },
    /// The payload's hash does not match.
    PayloadHash {
        /// The payload length.
        len: u64,
    },
    /// Both hashes match but the payload is not a list of records.
    Records(String),
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::HeaderCut { left } => write!(f, "a frame header cut short at {left} bytes"),
            FrameError::HeaderHash => write!(f, "frame header hash mismatch"),
            FrameError::PayloadCut { len, left } => {
                write!(f, "a frame of {len} bytes, {left} left")
            }
            FrameError::PayloadHash { len } => {
                write!(f, "frame payload hash mismatch ({len} bytes)")
            }
            FrameError::Records(reason) => write!(f, "undecodable records: {reason}"),
        }
    }
}

/// A valid frame, decoded.
#[derive(Debug, PartialEq)]
struct Frame {
    records: Vec<Record>,
    /// Its length in bytes, header included.
    bytes: usize,
    /// Marked as written by a call that synced it (never in a segment of
    /// [`WAL_FORMAT_WITHOUT_SYNC_MARKS`]).
    synced: bool,
}

/// A valid frame header.
struct FrameHeader {
    /// The payload's length.
    len: u64,
    /// The frame was written by a call that synced it.
    synced: bool,
}

/// Decodes the frame at byte `offset` of segment `number`'s `bytes`.
fn decode_frame(bytes: &[u8], offset: usize, number: u64) -> Result<Frame, FrameError> {
    let frame = bytes.get(offset..).unwrap_or_default();
    let FrameHeader { len, synced } = frame_header(frame, offset, number)?;
    let stored_payload_hash = read_u64(&frame[16..FRAME_HEADER_BYTES]);
    let rest = &frame[FRAME_HEADER_BYTES..];
    if len > rest.len() as u64 {
        return Err(FrameError::PayloadCut {
            len,
            left: rest.len(),
        });
    }
    let payload = &rest[..len as usize];
    if frame_payload_hash(number, offset as u64, payload) != stored_payload_hash {
        return Err(FrameError::PayloadHash { len });
    }
    let mut records = Vec::new();
    let mut reader = Reader(payload);
    while !reader.0.is_empty() {
        records.push(decode_record(&mut reader).map_err(FrameError::Records)?);
    }
    if records.is_empty() {
        return Err(FrameError::Records("an empty frame".into()));
    }
    Ok(Frame {
        records,
        bytes: FRAME_HEADER_BYTES + len as usize,
        synced,
    })
}

/// The frame header at the start of `frame` (at byte `offset` of segment `number`), if it is
/// whole and its hash (over its first 16 bytes) matches.
fn frame_header(frame: &[u8], offset: usize, number: u64) -> Result<FrameHeader, FrameError> {
    if frame.len() < FRAME_HEADER_BYTES {
        return Err(FrameError::HeaderCut { left: frame.len() });
    }
    let field = read_u64(&frame[..8]);
    if frame_header_hash(number, offset as u64, field) != read_u64(&frame[8..16]) {
        return Err(FrameError::HeaderHash);
    }
    Ok(FrameHeader {
        len: field & !FRAME_SYNCED,
        synced: field & FRAME_SYNCED != 0,
    })
}

fn read_u64(bytes: &[u8]) -> u64 {
    u64::from_le_bytes(bytes.try_into().expect("8 bytes"))
}

/// Whether the bad frame at byte `at` of the last segment `number` is a torn write (never
/// synced, so cut off) rather than corruption, judged by the frame alone (see
/// [`damage_at_the_end`], which asks only when nothing valid follows it); `bytes` are zeros from
/// `zeros_from` on. A torn write is a write a crash cut short, or one whose blocks reached
/// the disk only in part:
/// - the file ends inside the frame's header, or after a valid header inside its payload;
/// - the header is not one: zeros (an extended but unwritten region) or stale bytes of a reused
///   block; but a header one bit away from a valid one is a valid header whose bit flipped,
///   so corruption;
/// - a valid header, and the file is zero from a 512-byte sector boundary inside the frame to
///   its end (sectors never written).
///
/// So a flipped bit anywhere in a synced frame (or several in its payload) refuses the start;
/// several flipped bits in the header of the last frame would be cut as a torn write.
fn is_torn_write(
    bytes: &[u8],
    zeros_from: usize,
    at: usize,
    number: u64,
    error: &FrameError,
) -> bool {
    match error {
        FrameError::HeaderCut { .. } | FrameError::PayloadCut { .. } => true,
        FrameError::HeaderHash => zeros_from <= at || !header_one_bit_from_valid(bytes, at, number),
        FrameError::PayloadHash { len } => {
            let frame_end = at + FRAME_HEADER_BYTES + *len as usize;
            zeros_from.next_multiple_of(SECTOR_BYTES) < frame_end
        }
        FrameError::Records(_) => false,
    }
}

/// True if flipping one bit of the length or header hash of the (whole) frame header at `at`
/// makes it valid.
fn header_one_bit_from_valid(bytes: &[u8], at: usize, number: u64) -> bool {
    let mut header = [0; FRAME_HEADER_BYTES];
    header.copy_from_slice(&bytes[at..at + FRAME_HEADER_BYTES]);
    (0..16 * 8).any(|bit| {
        let mut fixed = header;
        fixed[bit / 8] ^= 1 << (bit % 8);
        frame_header(&fixed, at, number).is_ok()
    })
}

/// FNV-1a 64 of `fields`, each length-prefixed.
fn hash(fields: &[&[u8]]) -> u64 {
    let mut fnv = Fnv::default();
    for field in fields {
        fnv.field(field);
    }
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
/// its bytes; tag `2`, a u32 length and a membership change as `Change::encode` writes it.
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
        Value::Reconfigure(change) => {
            let bytes = change.encode();
            out.push(VALUE_RECONFIGURE);
            out.extend_from_slice(&u32_len(bytes.len()).to_le_bytes());
            out.extend_from_slice(&bytes);
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
        VALUE_RECONFIGURE => {
            let len = reader.u32()? as usize;
            synod_paxos::Change::decode(reader.take(len)?)
                .map(Value::Reconfigure)
                .map_err(|e| e.to_string())
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

fn segment_name(number: u64) -> String {
    format!("{number:020}{SEGMENT_SUFFIX}")
}

/// The segment numbers on `disk`, sorted; other files are ignored.
fn segment_numbers(disk: &impl WalDisk) -> Result<Vec<u64>, StorageError> {
    let names = disk.list().map_err(|source| LogError::Io {
        operation: "list",
        path: disk.path_of(""),
        source,
    })?;
    let mut numbers: Vec<u64> = names
        .iter()
        .filter_map(|name| {
            name.strip_suffix(SEGMENT_SUFFIX)
                .filter(|n| n.len() == 20 && n.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|n| n.parse().ok())
        })
        .collect();
    numbers.sort_unstable();
    Ok(numbers)
}

/// Creates segment `number` holding `bytes`, atomically and durably.
fn create(disk: &mut impl WalDisk, number: u64, bytes: &[u8]) -> Result<(), StorageError> {
    disk.create(&segment_name(number), bytes)
        .map_err(io_error(disk, "create", number))?;
    Ok(())
}

/// Removes segment `number`, durably.
fn remove(disk: &mut impl WalDisk, number: u64) -> Result<(), StorageError> {
    disk.remove(&segment_name(number))
        .map_err(io_error(disk, "remove", number))?;
    Ok(())
}

/// Wraps an I/O error of `operation` on segment `number`.
fn io_error<'a>(
    disk: &impl WalDisk,
    operation: &'static str,
    number: u64,
) -> impl FnOnce(io::Error) -> StorageError + 'a {
    let path = disk.path_of(&segment_name(number));
    move |source| {
        LogError::Io {
            operation,
            path,
            source,
        }
        .into()
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
        let mut bytes = vec![0xee; 5];
        assert_eq!(encode_frame(&records, 3, 5, &mut bytes), Slot(9));
        let bytes_len = bytes.len() - 5;
        assert_eq!(
            decode_frame(&bytes, 5, 3),
            Ok(Frame {
                records: records.clone(),
                bytes: bytes_len,
                synced: false
            })
        );
        seal_frame(&mut bytes[5..], 3, 5, true);
        assert_eq!(
            decode_frame(&bytes, 5, 3),
            Ok(Frame {
                records,
                bytes: bytes_len,
                synced: true
            })
        );
    }

    #[test]
    fn every_truncation_and_every_flipped_bit_is_an_error() {
        let mut bytes = Vec::new();
        encode_frame(&samples(), 1, 0, &mut bytes);
        for len in 0..bytes.len() {
            assert!(decode_frame(&bytes[..len], 0, 1).is_err(), "cut at {len}");
        }
        for i in 0..bytes.len() {
            for bit in 0..8 {
                let mut flipped = bytes.clone();
                flipped[i] ^= 1 << bit;
                assert!(
                    decode_frame(&flipped, 0, 1).is_err(),
                    "bit {bit} of byte {i}"
                );
            }
        }
    }

    #[test]
    fn a_frame_is_bound_to_its_segment_and_offset() {
        let mut bytes = vec![0; 40];
        encode_frame(&samples(), 7, 40, &mut bytes);
        assert!(decode_frame(&bytes, 40, 7).is_ok());
        // The same bytes at another offset, or read as another segment's, are not a frame.
        assert!(decode_frame(&bytes[40..], 0, 7).is_err());
        assert!(decode_frame(&bytes, 40, 8).is_err());
    }

    #[test]
    fn a_new_segment_has_a_checked_header_and_a_state_frame() {
        let bytes = new_segment(4, Ballot(9), Slot(2));
        check_segment_header(&bytes, 4, PathBuf::new()).unwrap();
        assert!(check_segment_header(&bytes, 5, PathBuf::new()).is_err());
        let Frame {
            records,
            bytes: used,
            synced,
        } = decode_frame(&bytes, SEGMENT_HEADER_BYTES, 4).unwrap();
        assert!(synced, "a segment is created synced");
        assert_eq!(
            records,
            [Record::Promised(Ballot(9)), Record::Compacted(Slot(2))]
        );
        assert_eq!(SEGMENT_HEADER_BYTES + used, bytes.len());
        for i in 0..SEGMENT_HEADER_BYTES {
            let mut flipped = bytes.clone();
            flipped[i] ^= 0x10;
            assert!(
                check_segment_header(&flipped, 4, PathBuf::new()).is_err(),
                "byte {i}"
            );
        }
    }

    #[test]
    fn zeros_are_not_a_frame() {
        assert!(decode_frame(&[0; 64], 0, 0).is_err());
        assert!(decode_frame(&[0; 64], 30, 0).is_err());
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
                    frame.extend_from_slice(
                        &frame_header_hash(0, 0, payload.len() as u64).to_le_bytes(),
                    );
                    frame.extend_from_slice(&frame_payload_hash(0, 0, &payload).to_le_bytes());
                    frame.extend_from_slice(&payload);
                    let _ = decode_frame(&frame, 0, 0);
                }
            }
        }
    }

    /// A disk holding one segment 0: a fresh one with `frames` (each a list of records)
    /// appended as well-framed, hash-correct frames.
    fn disk_with_frames(frames: &[Vec<Record>]) -> crate::SimDisk {
        let mut bytes = new_segment(0, Ballot::ZERO, Slot(0));
        for records in frames {
            let offset = bytes.len() as u64;
            encode_frame(records, 0, offset, &mut bytes);
        }
        let mut disk = crate::SimDisk::new();
        disk.create(&segment_name(0), &bytes).unwrap();
        disk
    }

    /// Opening refuses with a broken rule at the offset of the frame that holds it, and leaves
    /// the segment as it was.
    fn assert_refused(frames: &[Vec<Record>], rule: &str) {
        let disk = disk_with_frames(frames);
        let before = disk.file_bytes(&segment_name(0)).unwrap();
        let bad_offset = {
            // The last frame holds the bad record: its offset is the length before it.
            let mut bytes = new_segment(0, Ballot::ZERO, Slot(0));
            for records in &frames[..frames.len() - 1] {
                let offset = bytes.len() as u64;
                encode_frame(records, 0, offset, &mut bytes);
            }
            bytes.len() as u64
        };
        match WalLog::open_on(disk.clone(), WalOptions::default()) {
            Err(StorageError::Log(LogError::BrokenRule { path, offset, .. })) => {
                assert_eq!(offset, bad_offset, "{rule}");
                assert!(path.ends_with(segment_name(0)), "{path:?}");
            }
            other => panic!("{rule}: expected a broken rule, got {other:?}"),
        }
        let text = WalLog::open_on(disk.clone(), WalOptions::default())
            .unwrap_err()
            .to_string();
        assert!(text.contains(rule), "{text} says {rule}");
        assert!(text.contains(&format!("at byte {bad_offset}")), "{text}");
        assert_eq!(disk.file_bytes(&segment_name(0)).unwrap(), before);
    }

    fn accepted(slot: u64, ballot: u64) -> Record {
        Record::Accepted {
            slot: Slot(slot),
            ballot: Ballot(ballot),
            value: Value::Noop,
        }
    }

    #[test]
    fn well_framed_records_that_break_the_acceptors_rules_refuse_to_open() {
        // The smallest case the fuzzer found: an accepted value with no promise before it.
        assert_refused(&[vec![accepted(1, 1)]], "accepted above the promise");
        assert_refused(
            &[
                vec![Record::Promised(Ballot(5))],
                vec![Record::Promised(Ballot(4))],
            ],
            "promised ballot went down",
        );
        let chosen = |text: &[u8]| Record::Chosen {
            slot: Slot(2),
            value: Value::Commands(vec![text.to_vec()]),
        };
        assert_refused(
            &[vec![chosen(b"a")], vec![chosen(b"b")]],
            "chosen value of slot 2 changed",
        );
        assert_refused(&[vec![Record::Compacted(Slot(u64::MAX))]], "out of range");
        assert_refused(
            &[vec![Record::Promised(Ballot(1)), accepted(u64::MAX, 1)]],
            "out of range",
        );
        assert_refused(&[vec![accepted(0, 0)]], "out of range");
        assert_refused(&[vec![Record::Promised(Ballot(u64::MAX))]], "ballot");
    }

    #[test]
    fn persist_refuses_what_open_would_refuse_and_writes_nothing() {
        let disk = crate::SimDisk::new();
        let mut log = WalLog::open_on(disk.clone(), WalOptions::default()).unwrap();
        let before = disk.file_bytes(&segment_name(0)).unwrap();
        for bad in [
            accepted(1, 1),
            Record::Compacted(Slot(u64::MAX)),
            Record::Promised(Ballot(u64::MAX)),
        ] {
            match log.persist(std::slice::from_ref(&bad)) {
                Err(StorageError::Log(LogError::RefusedRecord(_))) => {}
                other => panic!("{bad:?}: {other:?}"),
            }
        }
        assert_eq!(disk.file_bytes(&segment_name(0)).unwrap(), before);
        assert!(!log.is_stopped(), "nothing was written: the log goes on");
        log.persist(&[Record::Promised(Ballot(1)), accepted(1, 1)])
            .unwrap();
    }

    #[test]
    fn segments_of_another_format_or_without_a_header_are_refused() {
        let mut other_format = new_segment(0, Ballot::ZERO, Slot(0));
        other_format[8..12].copy_from_slice(&1u32.to_le_bytes());
        let mut old_layout = Vec::new();
        encode_frame(&[Record::Promised(Ballot(1))], 0, 0, &mut old_layout);
        let mut wrong_number = new_segment(0, Ballot::ZERO, Slot(0));
        wrong_number[..SEGMENT_HEADER_BYTES].copy_from_slice(&segment_header(1, WAL_FORMAT));
        for (what, bytes, expect) in [
            ("format 1", other_format, "log format 1"),
            ("no header", old_layout, "no segment header"),
            ("wrong number", wrong_number, "names segment 1"),
        ] {
            let mut disk = crate::SimDisk::new();
            disk.create(&segment_name(0), &bytes).unwrap();
            disk.create(&segment_name(1), &new_segment(1, Ballot::ZERO, Slot(0)))
                .unwrap();
            let error = WalLog::open_on(disk.clone(), WalOptions::default()).unwrap_err();
            assert!(error.to_string().contains(expect), "{what}: {error}");
            assert_eq!(disk.file_bytes(&segment_name(0)).unwrap(), bytes, "{what}");
        }
    }

    /// A segment 0 in log format `format`: its first frame, a chosen frame whose header a crash
    /// lost (zeros), then a valid chosen frame written without a sync; and where the hole is.
    fn segment_with_a_hole(format: u32) -> (Vec<u8>, usize) {
        let chosen = |slot| Record::Chosen {
            slot: Slot(slot),
            value: Value::Commands(vec![b"value".to_vec()]),
        };
        let mut bytes = segment_header(0, format).to_vec();
        let state = [Record::Promised(Ballot(1)), Record::Compacted(Slot(0))];
        encode_frame(&state, 0, SEGMENT_HEADER_BYTES as u64, &mut bytes);
        let first_frame = &mut bytes[SEGMENT_HEADER_BYTES..];
        seal_frame(first_frame, 0, SEGMENT_HEADER_BYTES as u64, true);
        let hole = bytes.len();
        encode_frame(&[chosen(1)], 0, hole as u64, &mut bytes);
        bytes[hole..hole + FRAME_HEADER_BYTES].fill(0);
        let after = bytes.len() as u64;
        encode_frame(&[chosen(2)], 0, after, &mut bytes);
        (bytes, hole)
    }

    #[test]
    fn a_hole_before_frames_written_without_a_sync_is_cut_only_where_frames_say_so() {
        // Format 3 frames say no sync followed the hole: a torn write, cut there.
        let disk = crate::SimDisk::new();
        let (bytes, hole) = segment_with_a_hole(WAL_FORMAT);
        disk.clone().create(&segment_name(0), &bytes).unwrap();
        let log = WalLog::open_on(disk.clone(), WalOptions::default()).unwrap();
        let state = log.load().unwrap();
        assert_eq!((state.promised, state.slots.len()), (Ballot(1), 0));
        assert_eq!(disk.file_bytes(&segment_name(0)).unwrap(), bytes[..hole]);
        // Format 2 frames may have been synced by a call that did not say so: damage.
        let disk = crate::SimDisk::new();
        let (bytes, _) = segment_with_a_hole(WAL_FORMAT_WITHOUT_SYNC_MARKS);
        disk.clone().create(&segment_name(0), &bytes).unwrap();
        let error = WalLog::open_on(disk.clone(), WalOptions::default()).unwrap_err();
        assert!(
            matches!(&error, StorageError::Log(LogError::CorruptFrame { .. })),
            "{error}"
        );
        assert_eq!(disk.file_bytes(&segment_name(0)).unwrap(), bytes);
    }

    #[test]
    fn a_log_of_the_previous_format_opens_and_takes_appends() {
        let mut disk = crate::SimDisk::new();
        let mut bytes = segment_header(0, WAL_FORMAT_WITHOUT_SYNC_MARKS).to_vec();
        let state = [Record::Promised(Ballot(1)), Record::Compacted(Slot(0))];
        encode_frame(&state, 0, SEGMENT_HEADER_BYTES as u64, &mut bytes);
        let at = bytes.len() as u64;
        encode_frame(&[accepted(1, 1)], 0, at, &mut bytes);
        disk.create(&segment_name(0), &bytes).unwrap();
        let mut log = WalLog::open_on(disk.clone(), WalOptions::default()).unwrap();
        log.persist(&[accepted(2, 1)]).unwrap();
        // An older version reads this segment: the synced frame appended to it is not marked.
        let appended = decode_frame(&disk.file_bytes(&segment_name(0)).unwrap(), at as usize, 0)
            .map(|frame| frame.bytes);
        let appended_at = at as usize + appended.unwrap();
        let frame = decode_frame(&disk.file_bytes(&segment_name(0)).unwrap(), appended_at, 0);
        assert!(!frame.unwrap().synced);
        let reopened = WalLog::open_on(disk.crash(), WalOptions::default()).unwrap();
        let state = reopened.load().unwrap();
        assert_eq!(
            state.slots.keys().copied().collect::<Vec<_>>(),
            [Slot(1), Slot(2)]
        );
    }

    /// Whether each frame of segment `number` (bytes from the disk) was marked as synced.
    fn marks(disk: &crate::SimDisk, number: u64) -> Vec<bool> {
        let bytes = disk.file_bytes(&segment_name(number)).unwrap();
        let mut at = SEGMENT_HEADER_BYTES;
        let mut marks = Vec::new();
        while let Ok(frame) = decode_frame(&bytes, at, number) {
            marks.push(frame.synced);
            at += frame.bytes;
        }
        marks
    }

    #[test]
    fn every_frame_a_sync_follows_is_marked_and_no_other() {
        let chosen = |slot, len| Record::Chosen {
            slot: Slot(slot),
            value: Value::Commands(vec![vec![b'v'; len]]),
        };
        // Chosen values need no sync, until 1 MiB of them waits.
        let disk = crate::SimDisk::new();
        let mut log = WalLog::open_on(disk.clone(), WalOptions::default()).unwrap();
        log.persist(&[Record::Promised(Ballot(1))]).unwrap();
        for slot in 1..=5 {
            log.persist(&[chosen(slot, 300 << 10)]).unwrap();
        }
        assert_eq!(
            marks(&disk, 0),
            [true, true, false, false, false, true, false],
            "the segment's first frame, the promise, then the fourth chosen value's call reaches \
             1 MiB"
        );
        // A compaction point that frees a closed segment syncs.
        let disk = crate::SimDisk::new();
        let mut log = WalLog::open_on(disk.clone(), WalOptions::with_segment_bytes(200)).unwrap();
        log.persist(&[Record::Promised(Ballot(1)), accepted(1, 1)])
            .unwrap();
        log.persist(&[chosen(1, 100)]).unwrap();
        log.persist(&[chosen(2, 10)]).unwrap();
        assert_eq!(log.segment_count(), 2);
        assert_eq!(marks(&disk, 1), [true, false]);
        log.persist(&[Record::Compacted(Slot(1))]).unwrap();
        assert_eq!(log.segment_count(), 1, "segment 0 deleted");
        assert_eq!(marks(&disk, 1), [true, false, true]);
    }

    #[test]
    fn a_missing_segment_in_the_middle_is_refused() {
        let mut disk = crate::SimDisk::new();
        for number in [3, 5] {
            disk.create(
                &segment_name(number),
                &new_segment(number, Ballot::ZERO, Slot(0)),
            )
            .unwrap();
        }
        let error = WalLog::open_on(disk, WalOptions::default()).unwrap_err();
        assert!(
            matches!(&error, StorageError::Log(LogError::MissingSegment { path })
                if path.ends_with(segment_name(4))),
            "{error}"
        );
    }
}
