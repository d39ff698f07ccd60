//! The backup file `synod snapshot save` writes and `synod snapshot restore` reads: the
//! [`SnapshotChunk`]s a node streams to a lagging peer (the same format, see
//! `synod_kvstore::snapshot`), between a header and a trailer, each record checksummed.
//!
//! ## Layout
//!
//! Integers little-endian, as in the write-ahead log:
//!
//! | bytes | what |
//! |---|---|
//! | 8 | magic `SYNODBAK` |
//! | 4 | [`BACKUP_FORMAT`] |
//! | then records: | |
//! | 4 | payload length `n` (at most [`MAX_RECORD_BYTES`]) |
//! | 8 | FNV-1a 64 of the payload (one length-prefixed field, `synod_kvstore::fnv`) |
//! | `n` | payload |
//!
//! Record 0 is a [`BackupHeader`]; records 1, 2, ... are the encoded chunks 0, 1, ... of one
//! snapshot, through the one marked `last`; the final record is a [`BackupTrailer`], and the
//! file ends there. The trailer holds the number of chunks and a hash over every payload before
//! it, so a file cut at a record boundary, a record dropped or two swapped are caught, not just a
//! flipped bit. On top of that the chunks carry the snapshot's own state hash, which the
//! installer checks on restore.
//!
//! [`BackupReader`] refuses, with the byte offset, anything else: another magic, file format or
//! snapshot format, a length over the limit, a checksum mismatch, an undecodable record, chunks
//! out of order or of two snapshots, a missing trailer (a truncated file), bytes after it.

use std::io::{Read, Write};

use prost::Message as _;
use synod_kvstore::fnv::Fnv;
use synod_kvstore::snapshot::{MAX_SNAPSHOT_CHUNK_BYTES, SNAPSHOT_FORMAT};
use synod_kvstore::SnapshotChunk;

/// What a backup file starts with.
pub const BACKUP_MAGIC: [u8; 8] = *b"SYNODBAK";

/// The file format this code writes and reads.
pub const BACKUP_FORMAT: u32 = 1;

/// Largest record payload a reader accepts (checked before allocating): a chunk at its largest,
/// or a header with a few CA certificates.
pub const MAX_RECORD_BYTES: usize = MAX_SNAPSHOT_CHUNK_BYTES + 64 * 1024;

/// Bytes before a record's payload: its length and checksum.
const RECORD_PREFIX_BYTES: usize = 12;

/// What a backup holds, written before its chunks.
#[derive(Clone, PartialEq, prost::Message)]
pub struct BackupHeader {
    /// The snapshot format of the chunks (`synod_kvstore::snapshot::SNAPSHOT_FORMAT`).
    #[prost(uint32, tag = "1")]
    pub snapshot_format: u32,
    /// The slot the snapshot was taken at.
    #[prost(uint64, tag = "2")]
    pub applied_index: u64,
    /// The store revision there.
    #[prost(uint64, tag = "3")]
    pub revision: u64,
    /// When the save began, in milliseconds since the Unix epoch (informational).
    #[prost(uint64, tag = "4")]
    pub saved_at_unix_ms: u64,
    /// The client address of the node that streamed it (informational).
    #[prost(string, tag = "5")]
    pub source_node: String,
    /// The DER of each CA certificate the source cluster's nodes are signed by: its identity.
    /// A restore refuses a target cluster that trusts any of them (see `restore`).
    #[prost(bytes = "vec", repeated, tag = "6")]
    pub source_ca_der: Vec<Vec<u8>>,
}

/// The last record of a backup file.
#[derive(Clone, PartialEq, prost::Message)]
pub struct BackupTrailer {
    /// Chunk records in the file.
    #[prost(uint64, tag = "1")]
    pub chunks: u64,
    /// FNV-1a 64 over every payload before the trailer (header and chunks), each one
    /// length-prefixed field, in file order.
    #[prost(uint64, tag = "2")]
    pub payload_hash: u64,
}

/// Why a backup file cannot be written or read. Every read error names the byte offset.
#[derive(Debug, thiserror::Error)]
pub enum BackupFileError {
    /// Reading or writing the file failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The file does not start with [`BACKUP_MAGIC`].
    #[error("not a Synod backup file (it does not start with SYNODBAK)")]
    NotABackup,
    /// A format this version does not read.
    #[error("backup format {found} is not supported (this version reads format {BACKUP_FORMAT})")]
    UnsupportedFormat {
        /// The format the file names.
        found: u32,
    },
    /// The chunks are of a snapshot format this version does not install.
    #[error(
        "the backup holds snapshot format {found}; this version installs snapshot format \
         {SNAPSHOT_FORMAT}"
    )]
    UnsupportedSnapshotFormat {
        /// The snapshot format the header names.
        found: u32,
    },
    /// The file ends before its trailer.
    #[error("the backup file is truncated: it ends at byte {offset}, inside {what}")]
    Truncated {
        /// Where it ends.
        offset: u64,
        /// What was being read.
        what: &'static str,
    },
    /// A record fails its checksum, does not decode, or breaks the file's order.
    #[error("the backup file is corrupt at byte {offset}: {reason}")]
    Corrupt {
        /// The record's offset.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// A record to write is over [`MAX_RECORD_BYTES`] (a header naming very many CA
    /// certificates).
    #[error("the backup's {what} is {size_bytes} bytes, over the limit of {MAX_RECORD_BYTES}")]
    RecordTooLarge {
        /// "header", "chunk" or "trailer".
        what: &'static str,
        /// Its size.
        size_bytes: usize,
    },
    /// The writer was given chunks out of order or of two snapshots (a bug in the caller).
    #[error("chunk {got} cannot follow chunk {expected} of this backup: {reason}")]
    BadChunk {
        /// The sequence number expected.
        expected: u64,
        /// The one given.
        got: u64,
        /// What is wrong.
        reason: &'static str,
    },
}

/// One length-prefixed field's hash, the record checksum.
fn checksum(payload: &[u8]) -> u64 {
    let mut hash = Fnv::default();
    hash.field(payload);
    hash.0
}

/// Writes a backup file record by record; see the [module docs](self). Memory: one chunk.
#[derive(Debug)]
pub struct BackupWriter<W: Write> {
    out: W,
    header: BackupHeader,
    payload_hash: Fnv,
    chunks: u64,
    bytes: u64,
    finished_snapshot: bool,
}

impl<W: Write> BackupWriter<W> {
    /// Writes the magic, the format and `header` to `out`.
    pub fn new(out: W, header: BackupHeader) -> Result<BackupWriter<W>, BackupFileError> {
        let mut writer = BackupWriter {
            out,
            header: header.clone(),
            payload_hash: Fnv::default(),
            chunks: 0,
            bytes: 0,
            finished_snapshot: false,
        };
        writer.out.write_all(&BACKUP_MAGIC)?;
        writer.out.write_all(&BACKUP_FORMAT.to_le_bytes())?;
        writer.bytes = (BACKUP_MAGIC.len() + 4) as u64;
        writer.record("header", &header.encode_to_vec())?;
        Ok(writer)
    }

    /// Appends the next chunk of the header's snapshot.
    ///
    /// # Errors
    /// [`BackupFileError::BadChunk`] for a chunk out of sequence, of another snapshot, or after
    /// the last one; write failures.
    pub fn push(&mut self, chunk: &SnapshotChunk) -> Result<(), BackupFileError> {
        let bad = |reason| BackupFileError::BadChunk {
            expected: self.chunks,
            got: chunk.seq,
            reason,
        };
        if self.finished_snapshot {
            return Err(bad("the last chunk was written already"));
        }
        if chunk.seq != self.chunks {
            return Err(bad("out of sequence"));
        }
        if (chunk.applied_index, chunk.revision)
            != (self.header.applied_index, self.header.revision)
        {
            return Err(bad("of another snapshot"));
        }
        self.record("chunk", &chunk.encode_to_vec())?;
        self.chunks += 1;
        self.finished_snapshot = chunk.last;
        Ok(())
    }

    /// Writes the trailer once the last chunk was pushed, flushes, and returns the output and
    /// the file's size in bytes. Does not fsync: the caller syncs the file it wrote to.
    pub fn finish(mut self) -> Result<(W, u64), BackupFileError> {
        if !self.finished_snapshot {
            return Err(BackupFileError::BadChunk {
                expected: self.chunks,
                got: self.chunks,
                reason: "the snapshot's last chunk was not written",
            });
        }
        let trailer = BackupTrailer {
            chunks: self.chunks,
            payload_hash: self.payload_hash.0,
        };
        self.record("trailer", &trailer.encode_to_vec())?;
        self.out.flush()?;
        Ok((self.out, self.bytes))
    }

    fn record(&mut self, what: &'static str, payload: &[u8]) -> Result<(), BackupFileError> {
        if payload.len() > MAX_RECORD_BYTES {
            return Err(BackupFileError::RecordTooLarge {
                what,
                size_bytes: payload.len(),
            });
        }
        self.out.write_all(&(payload.len() as u32).to_le_bytes())?;
        self.out.write_all(&checksum(payload).to_le_bytes())?;
        self.out.write_all(payload)?;
        self.payload_hash.field(payload);
        self.bytes += (RECORD_PREFIX_BYTES + payload.len()) as u64;
        Ok(())
    }
}

/// Reads and checks a backup file record by record; see the [module docs](self). Memory: one
/// record.
#[derive(Debug)]
pub struct BackupReader<R: Read> {
    input: R,
    header: BackupHeader,
    /// Bytes read so far.
    offset: u64,
    payload_hash: Fnv,
    chunks: u64,
    /// True once the chunk marked `last` was read: the trailer comes next.
    last_chunk_read: bool,
    /// True once the trailer was read and checked.
    ended: bool,
}

impl<R: Read> BackupReader<R> {
    /// Reads and checks the magic, the format and the header.
    pub fn new(input: R) -> Result<BackupReader<R>, BackupFileError> {
        let mut reader = BackupReader {
            input,
            header: BackupHeader::default(),
            offset: 0,
            payload_hash: Fnv::default(),
            chunks: 0,
            last_chunk_read: false,
            ended: false,
        };
        let mut start = [0u8; 12];
        let read = reader.read_up_to(&mut start)?;
        if read < BACKUP_MAGIC.len() || start[..8] != BACKUP_MAGIC {
            return Err(BackupFileError::NotABackup);
        }
        if read < start.len() {
            return Err(reader.truncated("the format number"));
        }
        let found = u32::from_le_bytes(start[8..].try_into().expect("4 bytes"));
        if found != BACKUP_FORMAT {
            return Err(BackupFileError::UnsupportedFormat { found });
        }
        let (at, payload) = reader.record("the header")?;
        reader.header =
            BackupHeader::decode(payload.as_slice()).map_err(|e| BackupFileError::Corrupt {
                offset: at,
                reason: format!("undecodable header: {e}"),
            })?;
        if reader.header.snapshot_format != SNAPSHOT_FORMAT {
            return Err(BackupFileError::UnsupportedSnapshotFormat {
                found: reader.header.snapshot_format,
            });
        }
        Ok(reader)
    }

    /// The header: which snapshot the file holds and where it came from.
    pub fn header(&self) -> &BackupHeader {
        &self.header
    }

    /// The next chunk, checked against its checksum, the header and the chunks before it; after
    /// the last chunk, reads and checks the trailer and the end of the file, and returns `None`.
    pub fn next_chunk(&mut self) -> Result<Option<SnapshotChunk>, BackupFileError> {
        if self.ended {
            return Ok(None);
        }
        let hash_before = self.payload_hash;
        let (at, payload) = self.record("a snapshot chunk")?;
        let corrupt = |reason: String| BackupFileError::Corrupt { offset: at, reason };
        if self.last_chunk_read {
            // The record after the last chunk is the trailer.
            let trailer = BackupTrailer::decode(payload.as_slice())
                .map_err(|e| corrupt(format!("undecodable trailer: {e}")))?;
            if trailer.chunks != self.chunks || trailer.payload_hash != hash_before.0 {
                return Err(corrupt(format!(
                    "the trailer names {} chunks and hash {:#x}, the file holds {} chunks and \
                     hash {:#x}",
                    trailer.chunks, trailer.payload_hash, self.chunks, hash_before.0
                )));
            }
            let mut extra = [0u8; 1];
            if self.read_up_to(&mut extra)? > 0 {
                return Err(BackupFileError::Corrupt {
                    offset: self.offset - 1,
                    reason: "bytes after the trailer".into(),
                });
            }
            self.ended = true;
            return Ok(None);
        }
        let chunk = SnapshotChunk::decode(payload.as_slice())
            .map_err(|e| corrupt(format!("undecodable chunk: {e}")))?;
        if chunk.seq != self.chunks {
            return Err(corrupt(format!(
                "chunk {} where chunk {} belongs",
                chunk.seq, self.chunks
            )));
        }
        if (chunk.applied_index, chunk.revision)
            != (self.header.applied_index, self.header.revision)
        {
            return Err(corrupt(format!(
                "chunk {} is of the snapshot at slot {} revision {}, the header says slot {} \
                 revision {}",
                chunk.seq,
                chunk.applied_index,
                chunk.revision,
                self.header.applied_index,
                self.header.revision
            )));
        }
        self.chunks += 1;
        self.last_chunk_read = chunk.last;
        Ok(Some(chunk))
    }

    /// Bytes read so far (the whole file's size once `next_chunk` returned `None`).
    pub fn bytes_read(&self) -> u64 {
        self.offset
    }

    /// Reads one record: its offset and checked payload.
    fn record(&mut self, what: &'static str) -> Result<(u64, Vec<u8>), BackupFileError> {
        let at = self.offset;
        let mut prefix = [0u8; RECORD_PREFIX_BYTES];
        if self.read_up_to(&mut prefix)? < prefix.len() {
            return Err(self.truncated(what));
        }
        let len = u32::from_le_bytes(prefix[..4].try_into().expect("4 bytes")) as usize;
        let expected = u64::from_le_bytes(prefix[4..].try_into().expect("8 bytes"));
        if len > MAX_RECORD_BYTES {
            return Err(BackupFileError::Corrupt {
                offset: at,
                reason: format!("a record of {len} bytes, over the limit of {MAX_RECORD_BYTES}"),
            });
        }
        let mut payload = vec![0u8; len];
        if self.read_up_to(&mut payload)? < len {
            return Err(self.truncated(what));
        }
        if checksum(&payload) != expected {
            return Err(BackupFileError::Corrupt {
                offset: at,
                reason: format!("{what} fails its checksum"),
            });
        }
        self.payload_hash.field(&payload);
        Ok((at, payload))
    }

    /// Fills as much of `buf` as the input holds; returns how much.
    fn read_up_to(&mut self, buf: &mut [u8]) -> Result<usize, BackupFileError> {
        let mut filled = 0;
        while filled < buf.len() {
            match self.input.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        self.offset += filled as u64;
        Ok(filled)
    }

    fn truncated(&self, what: &'static str) -> BackupFileError {
        BackupFileError::Truncated {
            offset: self.offset,
            what,
        }
    }
}
