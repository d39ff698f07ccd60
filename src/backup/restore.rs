//! `synod snapshot restore`: seeds the data directory of a node of a NEW cluster from a backup
//! file.
//!
//! A restored data directory looks like that of a node that installed the same snapshot from a
//! peer: `state.redb` holds the snapshot (installed by the same [`SnapshotInstaller`] that
//! checks every chunk, entry and the state hash), and the write-ahead log holds one record,
//! `Compacted(applied index)`, and no promise. Started, the node's Paxos log begins after the
//! snapshot's applied index; the first leader of the new cluster runs Phase 1 from there.
//!
//! # Cluster identity
//! What keeps two Synod clusters apart is their CA: nodes accept peers (and clients) only with
//! certificates the cluster's CA signed. The backup records the source cluster's CA
//! certificates, and a restore refuses a target that trusts any of them, so a restored node can
//! never join, or be joined by, a node of the cluster it was saved from, even if a peer address
//! is wrong. The data directory keeps that record (`restored-from.toml`, see
//! [`origin`](super::origin)) and `synod start` checks it again. (`synod snapshot restore --dev` makes a new CA, as `synod dev` does in a fresh
//! directory.)
//!
//! # Never overwrites
//! A data directory that exists and holds anything is refused. The node is built in a sibling
//! directory `.<name>.restoring`, synced, and renamed into place (over an empty directory if one
//! is there) only once the whole snapshot installed: a failed or interrupted restore leaves
//! nothing at the data directory's path.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use synod_kvstore::{
    EntryTally, NodeStore, Options, SnapshotError, SnapshotInstaller, StorageError,
};
use synod_paxos::{Record, Slot, Storage};

use super::file::{BackupFileError, BackupHeader, BackupReader};
use super::origin::RestoredFrom;

/// What a backup file holds, once [`verify`] read all of it.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedBackup {
    /// Its header.
    pub header: BackupHeader,
    /// Chunks in the file.
    pub chunks: u64,
    /// Keys in the snapshot (of every type).
    pub keys: u64,
    /// Entries in the snapshot, from its last chunk.
    pub entries: u64,
    /// The file's size.
    pub bytes: u64,
}

/// Why a restore failed. Nothing was created at the data directory when it does.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// The backup file cannot be opened.
    #[error("cannot open {path}: {source}")]
    Open {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The backup file is not whole or not valid.
    #[error("{path} cannot be restored: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        source: BackupFileError,
    },
    /// The snapshot in the file fails the installer's checks.
    #[error("{path} holds an invalid snapshot: {source}")]
    Snapshot {
        /// The file.
        path: PathBuf,
        /// What the installer refused.
        source: SnapshotError,
    },
    /// The snapshot was taken before anything was applied.
    #[error(
        "{0} holds the snapshot of an empty cluster (applied index 0): there is nothing to restore"
    )]
    Empty(PathBuf),
    /// The target data directory is not empty.
    #[error(
        "refusing to restore into {dir}: it is not empty (it holds {entry}); restore only into a \
         new or empty data directory"
    )]
    NotEmpty {
        /// The data directory.
        dir: PathBuf,
        /// One thing in it.
        entry: String,
    },
    /// The leftover of an interrupted restore is in the way.
    #[error("{0} is left from an interrupted restore; remove it and restore again")]
    Leftover(PathBuf),
    /// The target trusts the CA of the cluster the backup came from.
    #[error(
        "the target cluster's CA ({ca}) is the CA of the cluster this backup was saved from \
         ({source_node}): a restored cluster needs a new CA so its nodes never talk to the old \
         cluster's (make one with `synod cert ca`, or restore with --dev, which makes one)"
    )]
    SameCluster {
        /// The target's CA file.
        ca: PathBuf,
        /// The node the backup was saved from.
        source_node: String,
    },
    /// The target's CA file cannot be read.
    #[error("cannot read the target cluster's CA {path}: {source}")]
    Ca {
        /// The CA file.
        path: PathBuf,
        /// Why.
        source: synod_net::NetError,
    },
    /// Writing the new data directory failed.
    #[error("cannot write the data directory {dir}: {source}")]
    Storage {
        /// The data directory.
        dir: PathBuf,
        /// Why.
        source: StorageError,
    },
}

/// Reads and checks the whole backup file at `path` (checksums, order, trailer, end of file),
/// without installing it. Reads the file once; memory: one chunk.
pub fn verify(path: &Path) -> Result<VerifiedBackup, RestoreError> {
    let mut reader = open(path)?;
    let file_error = |source| RestoreError::File {
        path: path.to_path_buf(),
        source,
    };
    let mut chunks = 0;
    let mut entries = 0;
    let mut tally = EntryTally::default();
    while let Some(chunk) = reader.next_chunk().map_err(file_error)? {
        chunks += 1;
        entries = chunk.entry_count;
        tally.push(&chunk.data);
    }
    let header = reader.header().clone();
    if header.applied_index == 0 {
        return Err(RestoreError::Empty(path.to_path_buf()));
    }
    Ok(VerifiedBackup {
        header,
        chunks,
        keys: tally.keys,
        entries,
        bytes: reader.bytes_read(),
    })
}

/// Refuses a target whose CA file `ca` holds a CA certificate of the backup's source cluster.
pub fn check_new_cluster(header: &BackupHeader, ca: &Path) -> Result<(), RestoreError> {
    let target =
        synod_net::tls::ca_certificates_from_pem_file(ca).map_err(|source| RestoreError::Ca {
            path: ca.to_path_buf(),
            source,
        })?;
    let shared = target
        .iter()
        .any(|cert| header.source_ca_der.iter().any(|old| old == cert.as_ref()));
    if shared {
        return Err(RestoreError::SameCluster {
            ca: ca.to_path_buf(),
            source_node: header.source_node.clone(),
        });
    }
    Ok(())
}

/// Refuses `dir` unless it is missing or an empty directory.
pub fn check_empty(dir: &Path) -> Result<(), RestoreError> {
    let not_empty = |entry: String| RestoreError::NotEmpty {
        dir: dir.to_path_buf(),
        entry,
    };
    match std::fs::read_dir(dir) {
        Ok(mut entries) => match entries.next() {
            None => Ok(()),
            Some(entry) => Err(not_empty(match entry {
                Ok(entry) => entry.file_name().to_string_lossy().into_owned(),
                Err(e) => format!("an unreadable entry: {e}"),
            })),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => {
            Err(not_empty("a file, not a directory".into()))
        }
        Err(e) => Err(RestoreError::Storage {
            dir: dir.to_path_buf(),
            source: e.into(),
        }),
    }
}

/// Seeds the new data directory `dir` with the snapshot in the backup at `path` (see the
/// [module docs](self)): refuses a non-empty `dir`, installs into a sibling directory, makes it
/// durable (the state machine commits with fsync, the log appends with fsync, the directories
/// are synced) and renames it to `dir`. `options` are the node's state-machine options (its
/// `[exactly_once] clients`). Returns the applied index and revision installed. Reads the file
/// once; memory: one chunk.
pub fn restore_data_dir(
    path: &Path,
    dir: &Path,
    options: Options,
) -> Result<(u64, u64), RestoreError> {
    check_empty(dir)?;
    let staging = staging_path(dir);
    if staging.exists() {
        return Err(RestoreError::Leftover(staging));
    }
    let result = build(path, &staging, options).and_then(|installed| {
        publish(&staging, dir).map_err(|source| RestoreError::Storage {
            dir: dir.to_path_buf(),
            source,
        })?;
        Ok(installed)
    });
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&staging);
    }
    result
}

/// `<parent>/.<name>.restoring`: where a restore builds the node.
fn staging_path(dir: &Path) -> PathBuf {
    let mut name = std::ffi::OsString::from(".");
    name.push(dir.file_name().unwrap_or_default());
    name.push(".restoring");
    dir.with_file_name(name)
}

/// Creates a node store at `staging` holding the backup's snapshot and a log compacted through
/// its applied index.
fn build(path: &Path, staging: &Path, options: Options) -> Result<(u64, u64), RestoreError> {
    let storage_error = |source| RestoreError::Storage {
        dir: staging.to_path_buf(),
        source,
    };
    let snapshot_error = |source| RestoreError::Snapshot {
        path: path.to_path_buf(),
        source,
    };
    let mut reader = open(path)?;
    let mut store = NodeStore::open_with(staging, options).map_err(storage_error)?;
    let mut installer: SnapshotInstaller = store
        .state_machine
        .snapshot_installer()
        .map_err(storage_error)?;
    let mut complete = false;
    while let Some(chunk) = reader.next_chunk().map_err(|source| RestoreError::File {
        path: path.to_path_buf(),
        source,
    })? {
        complete = installer.push(&chunk).map_err(snapshot_error)?;
    }
    if !complete {
        return Err(snapshot_error(SnapshotError::Incomplete));
    }
    let applied_index = store
        .state_machine
        .complete_install(installer)
        .map_err(snapshot_error)?;
    let revision = store.state_machine.revision();
    // The backed-up cluster's members are not this one's: the new nodes
    // store their founding membership when they first start.
    store
        .state_machine
        .forget_membership()
        .map_err(storage_error)?;
    store
        .log
        .persist(&[Record::Compacted(Slot(applied_index))])
        .map_err(storage_error)?;
    RestoredFrom::of(reader.header())
        .write(staging)
        .map_err(|e| storage_error(e.into()))?;
    let (durable, applied) = store.recovery_state().map_err(storage_error)?;
    assert_eq!(
        (durable.compacted_through, applied),
        (Slot(applied_index), Slot(applied_index)),
        "a restored node starts right after its snapshot"
    );
    Ok((applied_index, revision))
}

/// Moves the built node into place and syncs the parent directory.
fn publish(staging: &Path, dir: &Path) -> Result<(), StorageError> {
    // rename(2) replaces an empty directory and refuses a non-empty one, so a directory filled
    // meanwhile is never overwritten.
    std::fs::rename(staging, dir)?;
    let parent = match dir.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    File::open(parent)?.sync_all()?;
    Ok(())
}

fn open(path: &Path) -> Result<BackupReader<BufReader<File>>, RestoreError> {
    let file = File::open(path).map_err(|source| RestoreError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    BackupReader::new(BufReader::new(file)).map_err(|source| RestoreError::File {
        path: path.to_path_buf(),
        source,
    })
}
