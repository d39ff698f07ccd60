//! Backup files and restore, without a network: a file written from a real snapshot restores to
//! a data directory that holds the same state and opens like a node that installed that
//! snapshot from a peer; every truncation and every flipped byte of a file is refused with a
//! clear error before anything is written; a non-empty data directory and the source cluster's
//! own CA are refused and left untouched.

use std::path::{Path, PathBuf};

use prost::Message as _;

use synod::backup::file::{BackupFileError, BackupHeader, BackupReader, BackupWriter};
use synod::backup::origin::{check_start, OriginError};
use synod::backup::restore::{check_new_cluster, restore_data_dir, verify, RestoreError};
use synod_kvstore::{NodeStore, Op, Options, Put, Request, StateMachine};
use synod_net::certs::{self, CertAuthority};
use synod_paxos::{Ballot, Slot};

/// A directory in the temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!("synod-backup-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn put(key: &str, value: &str) -> Op {
    Op::Put(Put {
        key: key.as_bytes().to_vec(),
        value: value.as_bytes().to_vec(),
        prev_kv: false,
    })
}

/// A state machine in `dir` with `slots` slots applied: puts from a client (so the exactly-once
/// table has rows) and anonymous ones.
fn source_state(dir: &Path, slots: u64) -> StateMachine {
    let mut sm = StateMachine::open(dir.join("state.redb")).unwrap();
    for slot in 1..=slots {
        let commands = vec![
            Request::from_client(7, slot, put(&format!("client/{slot}"), &format!("v{slot}")))
                .encode_to_vec(),
            Request::anonymous(put(&format!("anon/{slot}"), &"x".repeat(100))).encode_to_vec(),
        ];
        sm.apply_slots([(slot, commands.as_slice())]).unwrap();
    }
    sm
}

/// The backup file bytes of `sm`'s snapshot, cut in chunks of `chunk_bytes`, naming `ca_der` as
/// the source cluster's CA.
fn backup_bytes(sm: &StateMachine, chunk_bytes: usize, ca_der: Vec<Vec<u8>>) -> Vec<u8> {
    let snapshot = sm.snapshot().unwrap().with_chunk_bytes(chunk_bytes);
    let header = BackupHeader {
        snapshot_format: synod_kvstore::snapshot::SNAPSHOT_FORMAT,
        applied_index: snapshot.applied_index(),
        revision: snapshot.revision(),
        saved_at_unix_ms: 0,
        source_node: "127.0.0.1:7401".into(),
        source_ca_der: ca_der,
    };
    let mut writer = BackupWriter::new(Vec::new(), header).unwrap();
    for chunk in snapshot {
        writer.push(&chunk.unwrap()).unwrap();
    }
    let (bytes, size) = writer.finish().unwrap();
    assert_eq!(size, bytes.len() as u64);
    bytes
}

/// Reads a whole backup from bytes: the chunk count, or the first error.
fn read_all(bytes: &[u8]) -> Result<u64, BackupFileError> {
    let mut reader = BackupReader::new(bytes)?;
    let mut chunks = 0;
    while reader.next_chunk()?.is_some() {
        chunks += 1;
    }
    Ok(chunks)
}

/// A new CA in `dir`; returns its PEM path and certificate DER.
fn new_ca(dir: &Path) -> (PathBuf, Vec<u8>) {
    let ca = CertAuthority::generate("test").unwrap();
    let paths = certs::write_ca(dir, &ca).unwrap();
    let der = synod_net::tls::ca_certificates_from_pem_file(&paths.cert).unwrap()[0]
        .as_ref()
        .to_vec();
    (paths.cert, der)
}

#[test]
fn a_restored_data_dir_holds_the_snapshot_and_opens_like_a_node_that_installed_it() {
    let dir = TempDir::new("round-trip");
    let sm = source_state(&dir.0, 300);
    let (_, old_ca) = new_ca(&dir.0.join("old-ca"));
    let file = dir.0.join("backup.snap");
    std::fs::write(&file, backup_bytes(&sm, 4096, vec![old_ca.clone()])).unwrap();

    let verified = verify(&file).unwrap();
    assert_eq!(verified.header.applied_index, 300);
    assert_eq!(verified.keys, 600, "two keys a slot");
    assert!(verified.chunks > 10, "cut into many chunks");
    assert_eq!(verified.bytes, std::fs::metadata(&file).unwrap().len());

    let (new_ca_path, _) = new_ca(&dir.0.join("new-ca"));
    check_new_cluster(&verified.header, &new_ca_path).unwrap();
    let node = dir.0.join("node1");
    let (applied, revision) = restore_data_dir(&file, &node, Options::default()).unwrap();
    assert_eq!((applied, revision), (sm.applied_index(), sm.revision()));
    assert!(!dir.0.join(".node1.restoring").exists(), "no staging left");

    let store = NodeStore::open(&node).unwrap();
    assert_eq!(
        store.state_machine.state_hash().unwrap(),
        sm.state_hash().unwrap(),
        "the restored state is the source's, byte for byte"
    );
    let (durable, applied) = store.recovery_state().unwrap();
    assert_eq!(applied, Slot(300));
    assert_eq!(
        durable.compacted_through,
        Slot(300),
        "the log starts after the snapshot"
    );
    assert!(durable.slots.is_empty());
    assert_eq!(
        durable.promised,
        Ballot(0),
        "no promise from the old cluster"
    );

    // The directory remembers its source cluster: `synod start` refuses its CA.
    let (_, new_ca) = new_ca(&dir.0.join("another-ca"));
    let err = check_start(&node, &[old_ca]).unwrap_err();
    assert!(matches!(err, OriginError::SourceCluster { .. }), "{err}");
    assert!(err.to_string().contains("restored from a backup"), "{err}");
    check_start(&node, std::slice::from_ref(&new_ca)).unwrap();
    let never_restored = dir.0.join("plain");
    drop(NodeStore::open(&never_restored).unwrap());
    check_start(&never_restored, &[new_ca]).unwrap();
}

#[test]
fn every_truncation_of_a_backup_is_refused() {
    let dir = TempDir::new("truncated");
    let sm = source_state(&dir.0, 20);
    let bytes = backup_bytes(&sm, 512, Vec::new());
    assert!(read_all(&bytes).unwrap() > 3);
    for len in 0..bytes.len() {
        let err = read_all(&bytes[..len]).expect_err("a truncated file is refused");
        assert!(
            matches!(
                err,
                BackupFileError::Truncated { .. } | BackupFileError::NotABackup
            ),
            "cut at {len}: {err}"
        );
    }
    let err = read_all(&bytes[..bytes.len() - 1]).unwrap_err().to_string();
    assert!(err.contains("truncated"), "{err}");
}

#[test]
fn every_flipped_byte_of_a_backup_is_refused() {
    let dir = TempDir::new("flipped");
    let sm = source_state(&dir.0, 20);
    let bytes = backup_bytes(&sm, 512, Vec::new());
    for at in 0..bytes.len() {
        for mask in [0x01u8, 0x80] {
            let mut corrupt = bytes.clone();
            corrupt[at] ^= mask;
            assert!(
                read_all(&corrupt).is_err(),
                "byte {at} flipped by {mask:#x} went unnoticed"
            );
        }
    }
    let mut extra = bytes.clone();
    extra.push(0);
    let err = read_all(&extra).unwrap_err().to_string();
    assert!(err.contains("bytes after the trailer"), "{err}");
}

#[test]
fn a_corrupt_or_truncated_file_restores_nothing() {
    let dir = TempDir::new("corrupt-restore");
    let sm = source_state(&dir.0, 50);
    let bytes = backup_bytes(&sm, 1024, Vec::new());

    let truncated = dir.0.join("truncated.snap");
    std::fs::write(&truncated, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let node = dir.0.join("node-a");
    let err = restore_data_dir(&truncated, &node, Options::default()).unwrap_err();
    assert!(
        matches!(
            err,
            RestoreError::File {
                source: BackupFileError::Truncated { .. },
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("truncated"), "{err}");
    assert!(!node.exists(), "nothing created at the data directory");
    assert!(!dir.0.join(".node-a.restoring").exists());
    assert!(verify(&truncated).is_err());

    let mut flipped = bytes.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x10;
    let corrupt = dir.0.join("corrupt.snap");
    std::fs::write(&corrupt, &flipped).unwrap();
    let err = restore_data_dir(&corrupt, &node, Options::default()).unwrap_err();
    assert!(err.to_string().contains("corrupt"), "{err}");
    assert!(!node.exists());

    let err = verify(&dir.0.join("missing.snap")).unwrap_err();
    assert!(err.to_string().contains("cannot open"), "{err}");
    let not_a_backup = dir.0.join("other.txt");
    std::fs::write(&not_a_backup, "hello").unwrap();
    let err = verify(&not_a_backup).unwrap_err();
    assert!(err.to_string().contains("not a Synod backup"), "{err}");
}

#[test]
fn a_non_empty_data_dir_is_refused_and_left_untouched() {
    let dir = TempDir::new("non-empty");
    let sm = source_state(&dir.0, 10);
    let file = dir.0.join("backup.snap");
    std::fs::write(&file, backup_bytes(&sm, 1024, Vec::new())).unwrap();

    let node = dir.0.join("node1");
    std::fs::create_dir_all(&node).unwrap();
    std::fs::write(node.join("precious"), "keep me").unwrap();
    let err = restore_data_dir(&file, &node, Options::default()).unwrap_err();
    assert!(matches!(err, RestoreError::NotEmpty { .. }), "{err}");
    assert!(err.to_string().contains("not empty"), "{err}");
    assert_eq!(
        std::fs::read_to_string(node.join("precious")).unwrap(),
        "keep me"
    );
    assert_eq!(std::fs::read_dir(&node).unwrap().count(), 1);

    // A node that ran is refused too; an empty directory is fine.
    let used = dir.0.join("used");
    drop(NodeStore::open(&used).unwrap());
    assert!(restore_data_dir(&file, &used, Options::default()).is_err());
    let empty = dir.0.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    restore_data_dir(&file, &empty, Options::default()).unwrap();
    assert!(
        NodeStore::open(&empty)
            .unwrap()
            .state_machine
            .applied_index()
            == 10
    );
}

#[test]
fn the_source_clusters_own_ca_is_refused() {
    let dir = TempDir::new("same-ca");
    let sm = source_state(&dir.0, 5);
    let (old_ca_path, old_ca) = new_ca(&dir.0.join("old-ca"));
    let file = dir.0.join("backup.snap");
    std::fs::write(&file, backup_bytes(&sm, 1024, vec![old_ca])).unwrap();
    let header = verify(&file).unwrap().header;
    let err = check_new_cluster(&header, &old_ca_path).unwrap_err();
    assert!(matches!(err, RestoreError::SameCluster { .. }), "{err}");
    assert!(err.to_string().contains("needs a new CA"), "{err}");
    let (new_ca_path, _) = new_ca(&dir.0.join("new-ca"));
    check_new_cluster(&header, &new_ca_path).unwrap();
}

#[test]
fn a_backup_of_another_format_is_refused_by_name() {
    let dir = TempDir::new("format");
    let sm = source_state(&dir.0, 3);
    let mut bytes = backup_bytes(&sm, 1024, Vec::new());
    bytes[8] = 2; // the file format number, little-endian
    let err = read_all(&bytes).unwrap_err();
    assert!(
        matches!(err, BackupFileError::UnsupportedFormat { found: 2 }),
        "{err}"
    );

    let header = BackupHeader {
        snapshot_format: 99,
        ..BackupHeader::default()
    };
    let mut bytes = Vec::new();
    drop(BackupWriter::new(&mut bytes, header).unwrap());
    let err = read_all(&bytes).unwrap_err();
    assert!(
        matches!(
            err,
            BackupFileError::UnsupportedSnapshotFormat { found: 99 }
        ),
        "{err}"
    );
}

#[test]
fn a_header_over_the_record_limit_is_an_error_not_a_panic() {
    let header = BackupHeader {
        snapshot_format: synod_kvstore::snapshot::SNAPSHOT_FORMAT,
        source_ca_der: vec![vec![0; 64 * 1024]; 20],
        ..BackupHeader::default()
    };
    let err = BackupWriter::new(Vec::new(), header).unwrap_err();
    assert!(
        matches!(err, BackupFileError::RecordTooLarge { what: "header", .. }),
        "{err}"
    );
}
