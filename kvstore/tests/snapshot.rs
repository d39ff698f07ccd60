//! Snapshots: a snapshot installed elsewhere reproduces the state exactly; chunks are bounded; a
//! half-received, corrupt, reordered or stale snapshot changes nothing.

mod common;

use common::generate::Clients;
use common::*;
use prost::Message;
use synod_kvstore::snapshot::{
    MAX_SNAPSHOT_CHUNK_BYTES, SNAPSHOT_CHUNK_DATA_BYTES, SNAPSHOT_FORMAT,
};
use synod_kvstore::{Request, SnapshotChunk, SnapshotError, StateMachine};

/// Apply `slots` random slots (a few random requests each, from 5 clients) to `h`.
fn populate(h: &mut Harness, rng: &mut Rng, clients: &mut Clients, slots: usize) {
    for _ in 0..slots {
        let requests: Vec<Request> = (0..1 + rng.below(4))
            .map(|_| clients.request(rng))
            .collect();
        h.apply(&requests);
    }
}

fn populated(seed: u64, slots: usize) -> (Harness, Rng, Clients) {
    let mut rng = Rng(seed);
    let mut clients = Clients::new(5);
    let mut h = Harness::new();
    populate(&mut h, &mut rng, &mut clients, slots);
    (h, rng, clients)
}

fn chunks(sm: &StateMachine) -> Vec<SnapshotChunk> {
    sm.snapshot()
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap()
}

/// A machine whose state is `values` keys of `value_bytes` bytes each, one slot per key.
fn big(values: usize, value_bytes: usize) -> Harness {
    let mut h = Harness::new();
    for i in 0..values {
        let value = vec![i as u8; value_bytes];
        h.op(put(format!("big/{i:04}").as_bytes(), &value));
    }
    h
}

#[test]
fn an_installed_snapshot_reproduces_the_state_exactly() {
    for seed in 0..10 {
        let (source, _, _) = populated(seed, 60);
        let mut target = Harness::new();
        let applied = target.sm.install_snapshot(chunks(&source.sm)).unwrap();
        assert_eq!(applied, source.sm.applied_index());
        assert_eq!(target.sm.applied_index(), source.sm.applied_index());
        assert_eq!(target.sm.revision(), source.sm.revision());
        assert_eq!(
            target.sm.state_hash().unwrap(),
            source.sm.state_hash().unwrap()
        );
        assert_eq!(target.all(), source.all(), "seed {seed}");
        for key in generate::KEYS {
            assert_eq!(target.get(key), source.get(key));
        }
    }
}

#[test]
fn source_and_target_stay_equal_under_further_slots() {
    let (mut source, mut rng, mut clients) = populated(42, 80);
    let mut target = Harness::new();
    target.sm.install_snapshot(chunks(&source.sm)).unwrap();
    for _ in 0..80 {
        let requests: Vec<Request> = (0..1 + rng.below(4))
            .map(|_| clients.request(&mut rng))
            .collect();
        // Same responses too: retries answered from the transferred exactly-once table.
        assert_eq!(target.apply(&requests), source.apply(&requests));
    }
    assert_eq!(
        target.sm.state_hash().unwrap(),
        source.sm.state_hash().unwrap()
    );
}

#[test]
fn the_last_chunk_carries_the_state_hash() {
    let (source, _, _) = populated(3, 40);
    let all = chunks(&source.sm);
    let last = all.last().unwrap();
    assert!(last.last);
    assert!(all[..all.len() - 1].iter().all(|c| !c.last));
    assert_eq!(last.state_hash, source.sm.state_hash().unwrap());
    assert!(last.entry_count > 0);
}

#[test]
fn a_snapshot_is_the_state_when_it_was_taken() {
    let (mut source, mut rng, mut clients) = populated(5, 30);
    let hash_then = source.sm.state_hash().unwrap();
    let applied_then = source.sm.applied_index();
    let snapshot = source.sm.snapshot().unwrap();
    populate(&mut source, &mut rng, &mut clients, 30);
    let chunks: Vec<SnapshotChunk> = snapshot.map(Result::unwrap).collect();
    let mut target = Harness::new();
    assert_eq!(target.sm.install_snapshot(chunks).unwrap(), applied_then);
    assert_eq!(target.sm.state_hash().unwrap(), hash_then);
}

#[test]
fn chunks_are_bounded_and_entries_span_chunks() {
    // 1 MiB values: every entry is bigger than a chunk's data.
    let source = big(5, 1024 * 1024);
    let all = chunks(&source.sm);
    assert!(all.len() >= 5, "{} chunks", all.len());
    for (i, chunk) in all.iter().enumerate() {
        assert_eq!(chunk.seq, i as u64);
        assert_eq!(chunk.format, SNAPSHOT_FORMAT);
        assert!(chunk.data.len() <= SNAPSHOT_CHUNK_DATA_BYTES);
        assert!(chunk.encoded_len() <= MAX_SNAPSHOT_CHUNK_BYTES);
    }
    let mut target = Harness::new();
    let mut installer = target.sm.snapshot_installer().unwrap();
    for chunk in &all {
        installer.push_encoded(&chunk.encode_to_vec()).unwrap();
    }
    assert!(installer.is_complete());
    target.sm.complete_install(installer).unwrap();
    assert_eq!(
        target.sm.state_hash().unwrap(),
        source.sm.state_hash().unwrap()
    );
}

#[test]
fn a_fresh_machine_snapshot_is_one_empty_chunk() {
    let fresh = StateMachine::in_memory().unwrap();
    let all = chunks(&fresh);
    assert_eq!(all.len(), 1);
    assert!(all[0].last && all[0].data.is_empty());
}

#[test]
fn an_interrupted_install_leaves_the_state_untouched() {
    let source = big(16, 150 * 1024);
    let all = chunks(&source.sm);
    assert!(all.len() >= 3);
    let (mut target, _, _) = populated(9, 10);
    let before = target.sm.state_hash().unwrap();
    let mut installer = target.sm.snapshot_installer().unwrap();
    for chunk in &all[..all.len() - 1] {
        assert!(!installer.push(chunk).unwrap());
    }
    assert_eq!(target.sm.state_hash().unwrap(), before);
    assert!(matches!(
        target.sm.complete_install(installer),
        Err(SnapshotError::Incomplete)
    ));
    assert_eq!(target.sm.state_hash().unwrap(), before);
    assert!(matches!(
        target.sm.install_snapshot(all[..2].to_vec()),
        Err(SnapshotError::Incomplete)
    ));
    assert_eq!(target.sm.state_hash().unwrap(), before);
    // The machine still applies normally, and a later complete install works.
    target.op(put(b"after", b"1"));
    target.sm.install_snapshot(all).unwrap();
    assert_eq!(
        target.sm.state_hash().unwrap(),
        source.sm.state_hash().unwrap()
    );
}

#[test]
fn a_crash_during_install_leaves_the_state_untouched() {
    let path = TempPath::new("snapshot-crash");
    let source = big(4, 600 * 1024);
    let all = chunks(&source.sm);
    let before = {
        let mut target = Harness::with(StateMachine::open(&path.0).unwrap());
        target.op(put(b"mine", b"1"));
        target.sm.flush().unwrap();
        let mut installer = target.sm.snapshot_installer().unwrap();
        installer.push(&all[0]).unwrap();
        installer.push(&all[1]).unwrap();
        target.sm.state_hash().unwrap()
        // Dropped mid-install: the staged chunks are abandoned.
    };
    let mut reopened = StateMachine::open(&path.0).unwrap();
    assert_eq!(reopened.state_hash().unwrap(), before);
    assert_eq!(reopened.applied_index(), 1);
    reopened.install_snapshot(all).unwrap();
    assert_eq!(
        reopened.state_hash().unwrap(),
        source.sm.state_hash().unwrap()
    );
}

#[test]
fn a_newer_installer_supersedes_an_older_one() {
    let source = big(3, 600 * 1024);
    let all = chunks(&source.sm);
    let mut target = Harness::new();
    let mut old = target.sm.snapshot_installer().unwrap();
    old.push(&all[0]).unwrap();
    let mut new = target.sm.snapshot_installer().unwrap();
    assert!(matches!(old.push(&all[1]), Err(SnapshotError::Superseded)));
    for chunk in &all {
        new.push(chunk).unwrap();
    }
    target.sm.complete_install(new).unwrap();
    assert_eq!(
        target.sm.state_hash().unwrap(),
        source.sm.state_hash().unwrap()
    );
}

#[test]
fn a_snapshot_not_ahead_of_the_applied_index_is_stale() {
    let (source, _, _) = populated(1, 20);
    let (mut target, _, _) = populated(2, 25);
    let before = target.sm.state_hash().unwrap();
    assert!(matches!(
        target.sm.install_snapshot(chunks(&source.sm)),
        Err(SnapshotError::Stale { .. })
    ));
    // Applied meanwhile: refused at completion.
    let (mut behind, _, _) = populated(2, 5);
    let mut installer = behind.sm.snapshot_installer().unwrap();
    for chunk in chunks(&source.sm) {
        installer.push(&chunk).unwrap();
    }
    populate(&mut behind, &mut Rng(8), &mut Clients::new(1), 20);
    assert!(matches!(
        behind.sm.complete_install(installer),
        Err(SnapshotError::Stale { .. })
    ));
    assert_eq!(target.sm.state_hash().unwrap(), before);
}

/// Push `chunks` into a fresh installer of `target`; the first error, if any.
fn push_all(target: &StateMachine, chunks: &[SnapshotChunk]) -> Result<bool, SnapshotError> {
    let mut installer = target.snapshot_installer().unwrap();
    let mut complete = false;
    for chunk in chunks {
        complete = installer.push(chunk)?;
    }
    Ok(complete)
}

#[test]
fn reordered_duplicated_or_foreign_chunks_are_errors() {
    let source = big(4, 600 * 1024);
    let all = chunks(&source.sm);
    let target = Harness::new();
    let swapped = vec![all[1].clone(), all[0].clone()];
    assert!(matches!(
        push_all(&target.sm, &swapped),
        Err(SnapshotError::OutOfOrder {
            expected: 0,
            got: 1
        })
    ));
    let duplicated = vec![all[0].clone(), all[0].clone()];
    assert!(matches!(
        push_all(&target.sm, &duplicated),
        Err(SnapshotError::OutOfOrder { .. })
    ));
    let mut other = big(5, 600 * 1024);
    other.op(put(b"x", b"y"));
    let mut mixed = all.clone();
    mixed[1] = chunks(&other.sm)[1].clone();
    assert!(matches!(
        push_all(&target.sm, &mixed),
        Err(SnapshotError::Invalid(_))
    ));
    let mut after_last = all.clone();
    let mut extra = all.last().unwrap().clone();
    extra.seq += 1;
    after_last.push(extra);
    assert!(matches!(
        push_all(&target.sm, &after_last),
        Err(SnapshotError::Invalid(_))
    ));
}

#[test]
fn corrupt_chunks_are_errors_and_fail_the_installer_for_good() {
    let (source, _, _) = populated(11, 50);
    let all = chunks(&source.sm);
    let mut target = Harness::new();
    let before = target.sm.state_hash().unwrap();
    let mut rng = Rng(99);
    let mut refused = 0;
    for round in 0..200 {
        let mut bad = all.clone();
        let i = rng.below(bad.len() as u64) as usize;
        match round % 5 {
            0 if !bad[i].data.is_empty() => {
                let at = rng.below(bad[i].data.len() as u64) as usize;
                bad[i].data[at] ^= 1 << rng.below(8);
            }
            1 if !bad[i].data.is_empty() => {
                let len = rng.below(bad[i].data.len() as u64) as usize;
                bad[i].data.truncate(len);
            }
            2 => bad[i].state_hash ^= 1,
            3 => bad[i].entry_count += 1 + rng.below(3),
            _ => bad[i].format = 2,
        }
        // A flipped bit may leave a valid but different stream; the state hash catches it.
        let result = push_all(&target.sm, &bad);
        if bad != all {
            assert!(result.is_err(), "round {round}: corrupt stream accepted");
            refused += 1;
        }
    }
    assert!(refused > 100);
    let mut installer = target.sm.snapshot_installer().unwrap();
    let mut bad = all[0].clone();
    bad.format = 7;
    assert!(installer.push(&bad).is_err());
    assert!(matches!(
        installer.push(&all[0]),
        Err(SnapshotError::Aborted)
    ));
    assert!(matches!(
        target.sm.complete_install(installer),
        Err(SnapshotError::Aborted)
    ));
    assert_eq!(target.sm.state_hash().unwrap(), before);
}

#[test]
fn garbage_bytes_are_errors_not_panics() {
    let target = Harness::new();
    let mut rng = Rng(5);
    for _ in 0..2000 {
        let mut installer = target.sm.snapshot_installer().unwrap();
        let bytes = rng.bytes(200);
        let _ = installer.push_encoded(&bytes);
    }
    // A well-formed last chunk whose data is garbage.
    for _ in 0..500 {
        let chunk = SnapshotChunk {
            format: SNAPSHOT_FORMAT,
            applied_index: 1 + rng.below(10),
            revision: rng.below(10),
            seq: 0,
            data: rng.bytes(300),
            last: true,
            entry_count: rng.below(3),
            state_hash: rng.next_u64(),
        };
        assert!(push_all(&target.sm, &[chunk]).is_err());
    }
    let mut installer = target.sm.snapshot_installer().unwrap();
    let oversized = vec![0u8; MAX_SNAPSHOT_CHUNK_BYTES + 1];
    assert!(matches!(
        installer.push_encoded(&oversized),
        Err(SnapshotError::TooLarge { what: "chunk", .. })
    ));
    // An entry claiming more than the entry bound is refused before anything is buffered.
    let mut data = Vec::new();
    prost::encoding::encode_varint(u64::MAX >> 1, &mut data);
    let chunk = SnapshotChunk {
        format: SNAPSHOT_FORMAT,
        applied_index: 3,
        data,
        ..SnapshotChunk::default()
    };
    assert!(matches!(
        push_all(&target.sm, &[chunk]),
        Err(SnapshotError::TooLarge { what: "entry", .. })
    ));
    assert_eq!(target.sm.applied_index(), 0);
}

#[test]
fn an_unknown_state_machine_table_fails_the_snapshot_instead_of_being_left_out() {
    let db = std::sync::Arc::new(
        redb::Database::builder()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .unwrap(),
    );
    let txn = db.begin_write().unwrap();
    txn.open_table(redb::TableDefinition::<u64, u64>::new("sm_future"))
        .unwrap();
    txn.commit().unwrap();
    let sm = StateMachine::from_database(db, Default::default()).unwrap();
    assert!(sm.snapshot().is_err());
    assert!(sm.state_hash().is_err());
}

#[test]
fn an_entry_tally_counts_every_entry_and_key_across_chunk_boundaries() {
    let (h, _, _) = populated(11, 200);
    let keys = h.all().len() as u64;
    assert!(keys > 0);
    for chunk_bytes in [1, 7, 300, usize::MAX] {
        let mut tally = synod_kvstore::EntryTally::default();
        let mut last = None;
        for chunk in h.sm.snapshot().unwrap().with_chunk_bytes(chunk_bytes) {
            let chunk = chunk.unwrap();
            tally.push(&chunk.data);
            last = Some(chunk);
        }
        let last = last.unwrap();
        assert_eq!(
            tally.entries, last.entry_count,
            "chunks of {chunk_bytes} bytes"
        );
        assert_eq!(tally.keys, keys, "chunks of {chunk_bytes} bytes");
    }
    // Entries larger than a chunk.
    let source = big(3, 2 * 1024 * 1024);
    let mut tally = synod_kvstore::EntryTally::default();
    for chunk in chunks(&source.sm) {
        tally.push(&chunk.data);
    }
    assert_eq!(tally.keys, 3);
    // Garbage never panics.
    let mut rng = Rng(5);
    let mut tally = synod_kvstore::EntryTally::default();
    for _ in 0..1000 {
        let bytes: Vec<u8> = (0..rng.below(64)).map(|_| rng.next_u64() as u8).collect();
        tally.push(&bytes);
    }
}
