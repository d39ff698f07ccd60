//! Where a restored node came from: the file `restored-from.toml` that `synod snapshot restore`
//! leaves in each data directory it seeds, and the check `synod start` makes with it.
//!
//! Restore refuses a target whose CA is the source cluster's (see `restore`), but a node is
//! started later, perhaps with another configuration. So the data directory remembers the
//! source cluster's CA certificates (as FNV-1a 64 fingerprints of their DER), and `synod start`
//! refuses to run it with any of them: a restored node never joins, or is joined by, the cluster
//! it was saved from. Nodes that were never restored have no such file and are not checked.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use synod_kvstore::fnv::Fnv;

use super::file::BackupHeader;

/// The file's name in a data directory.
pub const ORIGIN_FILE: &str = "restored-from.toml";

/// What `restored-from.toml` holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoredFrom {
    /// The node the backup was saved from.
    pub source_node: String,
    /// The snapshot's applied index.
    pub applied_index: u64,
    /// The snapshot's revision.
    pub revision: u64,
    /// When the save began, in milliseconds since the Unix epoch.
    pub saved_at_unix_ms: u64,
    /// FNV-1a 64 of each source CA certificate's DER, as `0x` hex.
    pub source_ca_fingerprints: Vec<String>,
}

/// Why a restored node may not start with its configured CA.
#[derive(Debug, thiserror::Error)]
pub enum OriginError {
    /// The data directory's origin file cannot be read.
    #[error("cannot read {path}: {reason}")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The node would run with the CA of the cluster it was restored from.
    #[error(
        "{dir} was restored from a backup of the cluster at {source_node}, and this node is \
         configured with that cluster's CA: it would talk to the old cluster's nodes. Give it \
         the new cluster's CA and certificates"
    )]
    SourceCluster {
        /// The data directory.
        dir: PathBuf,
        /// The node the backup was saved from.
        source_node: String,
    },
}

/// The fingerprint of one certificate's DER.
pub fn fingerprint(der: &[u8]) -> String {
    let mut hash = Fnv::default();
    hash.field(der);
    format!("{:#018x}", hash.0)
}

impl RestoredFrom {
    /// The record of a restore from a backup with `header`.
    pub fn of(header: &BackupHeader) -> RestoredFrom {
        RestoredFrom {
            source_node: header.source_node.clone(),
            applied_index: header.applied_index,
            revision: header.revision,
            saved_at_unix_ms: header.saved_at_unix_ms,
            source_ca_fingerprints: header
                .source_ca_der
                .iter()
                .map(|d| fingerprint(d))
                .collect(),
        }
    }

    /// Writes it into `dir` and fsyncs the file (the caller syncs the directory).
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        let text = format!(
            "# Written by `synod snapshot restore`: this node was seeded from a backup of another\n\
             # cluster. `synod start` refuses to run it with that cluster's CA.\n{}",
            toml::to_string(self).map_err(std::io::Error::other)?
        );
        let path = dir.join(ORIGIN_FILE);
        std::fs::write(&path, text)?;
        std::fs::File::open(&path)?.sync_all()
    }
}

/// Refuses to start the node of data directory `dir` with CA certificates `ca_der` if `dir` was
/// restored from a backup of the cluster of one of them. Reads one small file, if present.
pub fn check_start<C: AsRef<[u8]>>(dir: &Path, ca_der: &[C]) -> Result<(), OriginError> {
    let path = dir.join(ORIGIN_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(OriginError::Unreadable {
                path,
                reason: e.to_string(),
            })
        }
    };
    let origin: RestoredFrom = toml::from_str(&text).map_err(|e| OriginError::Unreadable {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    let same = ca_der.iter().any(|der| {
        origin
            .source_ca_fingerprints
            .contains(&fingerprint(der.as_ref()))
    });
    if same {
        return Err(OriginError::SourceCluster {
            dir: dir.to_path_buf(),
            source_node: origin.source_node,
        });
    }
    Ok(())
}
