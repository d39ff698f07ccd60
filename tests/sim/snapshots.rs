//! Snapshots shipped to lagging nodes, as the simulator carries them.

use synod_kvstore::{Snapshot, SnapshotChunk};

/// All the chunks of `snapshot`.
pub(super) fn snapshot_chunks(snapshot: Snapshot) -> Result<Vec<SnapshotChunk>, String> {
    snapshot
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())
}
