//! `synod snapshot save`: streams a snapshot from a live node into a backup file.
//!
//! The client asks a node with a `SnapshotSaveCall` (client API, QUIC, a client certificate).
//! By default the snapshot is linearizable: the node asked takes it once every write acknowledged
//! before the call is applied (the leader under its lease or after a heartbeat round, a follower
//! once it applied through a read index the leader granted; one that knows no leader answers
//! NOT_LEADER and the save tries another). Writes go on meanwhile; the snapshot is one redb
//! read transaction on the node, streamed chunk by chunk as QUIC flow control lets them (memory:
//! a few chunks plus the connection's flow-control window on each side, whatever the state's
//! size).
//!
//! The file is written as `FILE.part` (created new), synced, renamed to `FILE` and the directory
//! synced, so `FILE` is whole or absent; an existing `FILE` is never overwritten.

use std::fs::{File, OpenOptions};
use std::io::BufWriter;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prost::Message as _;
use synod_kvstore::{EntryTally, SnapshotChunk};
use synod_net::tls::TlsIdentity;
use synod_net::{ClientConnection, ErrorCode, NetError, ResponseFrames};
use synod_wire::proto::api::{
    api_request::Call, api_response, ApiRequest, ApiResponse, SnapshotSaveCall,
};

use super::file::{BackupFileError, BackupHeader, BackupWriter};

/// Most redirects to a leader a save follows before it gives up.
const MAX_REDIRECTS: usize = 3;

/// How long a save waits for the first chunk (the leader confirms its lease or runs a
/// ReadIndex round first), and then for each next chunk.
const CHUNK_TIMEOUT: Duration = Duration::from_secs(30);

/// What `synod snapshot save` wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedBackup {
    /// The node that streamed the snapshot.
    pub source: SocketAddr,
    /// The slot the snapshot was taken at.
    pub applied_index: u64,
    /// The store revision there.
    pub revision: u64,
    /// Keys in the snapshot (of every type).
    pub keys: u64,
    /// Entries in the snapshot (keys, hash/set/list elements, sessions, locks, exactly-once
    /// records, ...), from its last chunk.
    pub entries: u64,
    /// Chunks in the file.
    pub chunks: u64,
    /// The file's size.
    pub bytes: u64,
}

/// Why a save failed. Nothing is left at the destination path when it does.
#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    /// The destination exists already.
    #[error("{0} exists already; refusing to overwrite it")]
    Exists(PathBuf),
    /// The temporary file of an interrupted save is in the way.
    #[error("{0} is left from an interrupted save; remove it and save again")]
    Leftover(PathBuf),
    /// The destination file could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: BackupFileError,
    },
    /// No node gave a snapshot; one line per node asked.
    #[error("no node streamed a snapshot:\n{0}")]
    NoSnapshot(String),
}

/// Why one node did not stream a snapshot.
#[derive(Debug, thiserror::Error)]
enum NodeRefusal {
    #[error("{0}")]
    Net(#[from] NetError),
    #[error("no answer within {} s", CHUNK_TIMEOUT.as_secs())]
    Timeout,
    #[error("not the leader; the leader is at {0}")]
    Redirect(SocketAddr),
    #[error("{code:?}: {message}")]
    Refused { code: ErrorCode, message: String },
    #[error("the node answered something else than a snapshot chunk: {0}")]
    Unexpected(String),
    #[error("{0}")]
    File(#[from] BackupFileError),
}

/// Saves a snapshot from the first of `nodes` that streams one (following redirects to the
/// leader unless `serializable`) into a new file at `path`.
pub async fn save(
    nodes: &[SocketAddr],
    tls: &TlsIdentity,
    serializable: bool,
    path: &Path,
) -> Result<SavedBackup, SaveError> {
    if path.exists() {
        return Err(SaveError::Exists(path.to_path_buf()));
    }
    let part = part_path(path);
    if part.exists() {
        return Err(SaveError::Leftover(part));
    }
    let write_error = |source| SaveError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut failures = Vec::new();
    let mut queue: Vec<SocketAddr> = nodes.to_vec();
    let mut redirects = 0;
    while let Some(node) = (!queue.is_empty()).then(|| queue.remove(0)) {
        match save_from(node, tls, serializable, &part).await {
            Ok(saved) => {
                publish(&part, path).map_err(|e| write_error(e.into()))?;
                return Ok(saved);
            }
            Err(refusal) => {
                let _ = std::fs::remove_file(&part);
                match refusal {
                    // The local file is the problem, not the node: asking others won't help.
                    NodeRefusal::File(source) => return Err(write_error(source)),
                    NodeRefusal::Redirect(leader) if redirects < MAX_REDIRECTS => {
                        redirects += 1;
                        queue.insert(0, leader);
                    }
                    _ => {}
                }
                failures.push(format!("  {node}: {refusal}"));
            }
        }
    }
    Err(SaveError::NoSnapshot(failures.join("\n")))
}

/// `FILE.part`, where a save writes before the rename.
fn part_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".part");
    path.with_file_name(name)
}

/// Streams one node's snapshot into a new file at `part`, synced.
async fn save_from(
    node: SocketAddr,
    tls: &TlsIdentity,
    serializable: bool,
    part: &Path,
) -> Result<SavedBackup, NodeRefusal> {
    let conn = ClientConnection::connect(node, tls).await?;
    let request = ApiRequest {
        call: Some(Call::SnapshotSave(SnapshotSaveCall { serializable })),
    };
    let mut frames = conn.request_stream(request.encode_to_vec()).await?;
    let first = next_chunk(&mut frames).await?;
    let header = BackupHeader {
        snapshot_format: first.format,
        applied_index: first.applied_index,
        revision: first.revision,
        saved_at_unix_ms: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
        source_node: node.to_string(),
        source_ca_der: tls
            .ca_certificates()
            .iter()
            .map(|c| c.as_ref().to_vec())
            .collect(),
    };
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(part)
        .map_err(BackupFileError::from)?;
    let mut writer = BackupWriter::new(BufWriter::new(file), header)?;
    let mut chunk = first;
    let mut chunks = 0;
    let mut tally = EntryTally::default();
    loop {
        writer.push(&chunk)?;
        tally.push(&chunk.data);
        chunks += 1;
        if chunk.last {
            break;
        }
        chunk = next_chunk(&mut frames).await?;
    }
    let entries = chunk.entry_count;
    let (out, bytes) = writer.finish()?;
    let file = out
        .into_inner()
        .map_err(|e| BackupFileError::Io(e.into_error()))?;
    file.sync_all().map_err(BackupFileError::from)?;
    conn.close().await;
    Ok(SavedBackup {
        source: node,
        applied_index: chunk.applied_index,
        revision: chunk.revision,
        keys: tally.keys,
        entries,
        chunks,
        bytes,
    })
}

/// The next frame's chunk, or why there is none.
async fn next_chunk(frames: &mut ResponseFrames) -> Result<SnapshotChunk, NodeRefusal> {
    let frame = tokio::time::timeout(CHUNK_TIMEOUT, frames.next())
        .await
        .map_err(|_| NodeRefusal::Timeout)??
        .ok_or_else(|| NodeRefusal::Unexpected("the stream ended before the last chunk".into()))?;
    if let Some(synod_net::Outcome::Error(error)) = &frame.outcome {
        let code = error.code();
        if code == ErrorCode::NotLeader {
            if let Some(addr) = error
                .leader_hint
                .as_ref()
                .and_then(|hint| hint.address.parse().ok())
            {
                return Err(NodeRefusal::Redirect(addr));
            }
        }
        return Err(NodeRefusal::Refused {
            code,
            message: error.message.clone(),
        });
    }
    let payload = frame
        .payload()
        .ok_or_else(|| NodeRefusal::Unexpected("an empty frame".into()))?;
    match ApiResponse::decode(payload)
        .map_err(|e| NodeRefusal::Unexpected(e.to_string()))?
        .result
    {
        Some(api_response::Result::SnapshotChunk(bytes)) => SnapshotChunk::decode(bytes.as_slice())
            .map_err(|e| NodeRefusal::Unexpected(format!("undecodable chunk: {e}"))),
        other => Err(NodeRefusal::Unexpected(format!("{other:?}"))),
    }
}

/// Renames the synced `part` to `path` (refusing to replace a file that appeared meanwhile) and
/// syncs the directory.
fn publish(part: &Path, path: &Path) -> std::io::Result<()> {
    // A hard link fails if `path` exists, where a rename would replace it.
    std::fs::hard_link(part, path)?;
    std::fs::remove_file(part)?;
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}
