//! A snapshot whose revision or applied index leaves no room for the next write or slot is
//! refused by the installer, not installed (found by fuzzing: a snapshot at revision u64::MAX
//! was installed, and the next write overflowed the revision).

use std::sync::Arc;

use redb::{Database, TableDefinition};
use synod_kvstore::{SnapshotChunk, SnapshotError, StateMachine, MAX_SNAPSHOT_REVISION};
use synod_paxos::Slot;

const META: TableDefinition<&str, u64> = TableDefinition::new("sm_meta");

/// The chunks of a consistent snapshot of a state machine whose applied index and revision are
/// the given ones (its meta table written directly, as a corrupt or hostile source could).
fn snapshot_at(applied_index: u64, revision: u64) -> Vec<SnapshotChunk> {
    let db = Arc::new(
        Database::builder()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .unwrap(),
    );
    {
        // Build the source's tables, then set its meta.
        let _ = StateMachine::from_database(db.clone(), Default::default()).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut meta = txn.open_table(META).unwrap();
            meta.insert("applied_index", applied_index).unwrap();
            meta.insert("revision", revision).unwrap();
        }
        txn.commit().unwrap();
    }
    let source = StateMachine::from_database(db.clone(), Default::default()).unwrap();
    assert_eq!(
        (source.applied_index(), source.revision()),
        (applied_index, revision)
    );
    source
        .snapshot()
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap()
}

#[test]
fn a_snapshot_at_revision_u64_max_is_refused_not_installed() {
    for revision in [u64::MAX, u64::MAX - 1, MAX_SNAPSHOT_REVISION + 1] {
        let mut target = StateMachine::in_memory().unwrap();
        let before = target.state_hash().unwrap();
        match target.install_snapshot(snapshot_at(5, revision)) {
            Err(SnapshotError::OutOfRange { what, value, .. }) => {
                assert_eq!((what, value), ("revision", revision))
            }
            other => panic!("revision {revision}: {other:?}"),
        }
        assert_eq!(target.state_hash().unwrap(), before, "nothing installed");
        assert_eq!(target.revision(), 0);
    }
}

#[test]
fn a_snapshot_at_an_applied_index_above_the_highest_slot_is_refused() {
    for applied_index in [u64::MAX, Slot::MAX.0 + 1] {
        let mut target = StateMachine::in_memory().unwrap();
        match target.install_snapshot(snapshot_at(applied_index, 3)) {
            Err(SnapshotError::OutOfRange { what, value, .. }) => {
                assert_eq!((what, value), ("applied index", applied_index))
            }
            other => panic!("applied index {applied_index}: {other:?}"),
        }
        assert_eq!(target.applied_index(), 0);
    }
}

#[test]
fn a_snapshot_at_the_highest_valid_revision_and_slot_installs() {
    let mut target = StateMachine::in_memory().unwrap();
    let chunks = snapshot_at(Slot::MAX.0, MAX_SNAPSHOT_REVISION);
    assert_eq!(target.install_snapshot(chunks).unwrap(), Slot::MAX.0);
    assert_eq!(target.revision(), MAX_SNAPSHOT_REVISION);
}
