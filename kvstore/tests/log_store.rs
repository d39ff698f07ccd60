//! The acceptor's write-ahead log: it keeps exactly what the in-memory reference keeps, across
//! batches, compaction, segment rotation, torn tails and reopening; and the node store's
//! restart rule.

mod common;

use common::{put, wal_frames_len as frames_len, Rng, TempPath};
use prost::Message;
use synod_kvstore::{LogError, NodeStore, Request, StorageError, WalLog, WalOptions};
use synod_paxos::{
    Ballot, Config, DurableState, Instant, MemStorage, NodeId, Record, Replica, Slot, SlotState,
    Storage, Value,
};

fn accepted(slot: u64, ballot: u64, value: Value) -> Record {
    Record::Accepted {
        slot: Slot(slot),
        ballot: Ballot(ballot),
        value,
    }
}

fn chosen(slot: u64, value: Value) -> Record {
    Record::Chosen {
        slot: Slot(slot),
        value,
    }
}

fn cmds(parts: &[&[u8]]) -> Value {
    Value::Commands(parts.iter().map(|p| p.to_vec()).collect())
}

/// A fresh log in a temp directory (removed with the returned path).
/// A new log with 1 MiB segments: room enough for every test here, and small to read back
/// (each `load` reads the segments whole, their reserved room too).
fn fresh_log(name: &str) -> (TempPath, WalLog) {
    let dir = TempPath::new(name);
    let log = WalLog::open_with(&dir.0, WalOptions::with_segment_bytes(1 << 20)).unwrap();
    (dir, log)
}

#[test]
fn a_fresh_log_loads_empty() {
    let (_dir, log) = fresh_log("t1");
    assert_eq!(log.load().unwrap(), DurableState::default());
}

#[test]
fn persisted_records_load_back() {
    let (_dir, mut log) = fresh_log("t2");
    let records = vec![
        Record::Promised(Ballot(5)),
        accepted(1, 5, cmds(&[b"a", b""])),
        accepted(2, 5, Value::Noop),
        chosen(1, cmds(&[b"a", b""])),
        accepted(3, 4, Value::Commands(vec![])),
    ];
    log.persist(&records).unwrap();
    let state = log.load().unwrap();
    assert_eq!(state.promised, Ballot(5));
    assert_eq!(state.compacted_through, Slot(0));
    assert_eq!(state.slots[&Slot(1)], SlotState::Chosen(cmds(&[b"a", b""])));
    assert_eq!(
        state.slots[&Slot(2)],
        SlotState::Accepted {
            ballot: Ballot(5),
            value: Value::Noop
        }
    );
    assert_eq!(
        state.slots[&Slot(3)],
        SlotState::Accepted {
            ballot: Ballot(4),
            value: Value::Commands(vec![])
        }
    );
    assert_eq!(
        (log.promised(), log.compacted_through()),
        (Ballot(5), Slot(0))
    );
}

#[test]
fn an_accepted_record_never_overwrites_a_chosen_slot() {
    let (_dir, mut log) = fresh_log("t3");
    log.persist(&[Record::Promised(Ballot(9)), chosen(1, cmds(&[b"x"]))])
        .unwrap();
    log.persist(&[accepted(1, 9, cmds(&[b"y"]))]).unwrap();
    assert_eq!(
        log.load().unwrap().slots[&Slot(1)],
        SlotState::Chosen(cmds(&[b"x"]))
    );
}

#[test]
fn compaction_forgets_slots_through_the_point_and_ignores_later_records_below_it() {
    let (_dir, mut log) = fresh_log("t4");
    let mut records = vec![Record::Promised(Ballot(1))];
    for slot in 1..=10 {
        records.push(chosen(slot, cmds(&[format!("{slot}").as_bytes()])));
    }
    log.persist(&records).unwrap();
    log.persist(&[Record::Compacted(Slot(6))]).unwrap();
    log.persist(&[
        chosen(3, Value::Noop),
        accepted(5, 1, Value::Noop),
        Record::Compacted(Slot(4)),
    ])
    .unwrap();
    let state = log.load().unwrap();
    assert_eq!(state.compacted_through, Slot(6));
    assert_eq!(
        state.slots.keys().copied().collect::<Vec<_>>(),
        (7..=10).map(Slot).collect::<Vec<_>>()
    );
}

#[test]
fn an_empty_persist_is_a_no_op() {
    let (_dir, mut log) = fresh_log("t5");
    log.persist(&[]).unwrap();
    assert_eq!(log.load().unwrap(), DurableState::default());
}

/// A random record that the core could have produced after `promised`.
fn random_record(rng: &mut Rng, promised: &mut u64, next_slot: &mut u64) -> Record {
    match rng.below(10) {
        0 => {
            *promised += rng.below(3);
            Record::Promised(Ballot(*promised))
        }
        1 => Record::Compacted(Slot(rng.below(*next_slot + 1))),
        2..=5 => {
            let slot = 1 + rng.below(*next_slot + 2);
            *next_slot = (*next_slot).max(slot);
            let ballot = rng.below(*promised + 1);
            let value = if rng.one_in(4) {
                Value::Noop
            } else {
                Value::Commands((0..rng.below(3)).map(|_| rng.bytes(40)).collect())
            };
            accepted(slot, ballot, value)
        }
        // A chosen value is a function of the slot, so a slot never changes its chosen value.
        _ => {
            let slot = 1 + rng.below(*next_slot + 2);
            *next_slot = (*next_slot).max(slot);
            chosen(slot, cmds(&[format!("chosen {slot}").as_bytes()]))
        }
    }
}

#[test]
fn random_batches_keep_exactly_what_the_in_memory_reference_keeps() {
    for seed in 0..20 {
        let mut rng = Rng(seed);
        let (_dir, mut log) = fresh_log("t6");
        let mut reference = MemStorage::new();
        let (mut promised, mut next_slot) = (1, 0);
        log.persist(&[Record::Promised(Ballot(1))]).unwrap();
        reference.persist(&[Record::Promised(Ballot(1))]).unwrap();
        for _ in 0..40 {
            let batch: Vec<Record> = (0..rng.below(12))
                .map(|_| random_record(&mut rng, &mut promised, &mut next_slot))
                .collect();
            log.persist(&batch).unwrap();
            reference.persist(&batch).unwrap();
            assert_eq!(
                log.load().unwrap(),
                reference.load().unwrap(),
                "seed {seed}"
            );
        }
    }
}

#[test]
fn reopening_gives_the_same_state() {
    let path = TempPath::new("log-reopen");
    let mut rng = Rng(7);
    let mut reference = MemStorage::new();
    {
        let mut log = WalLog::open(&path.0).unwrap();
        let (mut promised, mut next_slot) = (1, 0);
        log.persist(&[Record::Promised(Ballot(1))]).unwrap();
        reference.persist(&[Record::Promised(Ballot(1))]).unwrap();
        for _ in 0..30 {
            let batch: Vec<Record> = (0..1 + rng.below(8))
                .map(|_| random_record(&mut rng, &mut promised, &mut next_slot))
                .collect();
            log.persist(&batch).unwrap();
            reference.persist(&batch).unwrap();
        }
    }
    let log = WalLog::open(&path.0).unwrap();
    let expected = reference.load().unwrap();
    assert_eq!(log.load().unwrap(), expected);
    assert_eq!(log.promised(), expected.promised);
    assert_eq!(log.compacted_through(), expected.compacted_through);
}

/// The segment files of a log directory, oldest first.
fn segments(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    files.sort();
    files
}

#[test]
fn a_torn_frame_at_the_end_is_cut_off_and_the_log_goes_on() {
    for cut in [1, 8, 16, 20, 30] {
        let path = TempPath::new("log-torn");
        {
            let mut log = WalLog::open(&path.0).unwrap();
            log.persist(&[Record::Promised(Ballot(1)), chosen(1, cmds(&[b"kept"]))])
                .unwrap();
            log.persist(&[accepted(2, 1, cmds(&[b"torn away"]))])
                .unwrap();
        }
        let file = segments(&path.0).pop().unwrap();
        // A file system that could not reserve room: the file ends where its frames do, and a
        // crash cut the last one short.
        let len = frames_len(&std::fs::read(&file).unwrap());
        let torn = std::fs::OpenOptions::new().write(true).open(&file).unwrap();
        torn.set_len(len - cut).unwrap();
        drop(torn);

        let mut log = WalLog::open(&path.0).unwrap();
        let state = log.load().unwrap();
        assert_eq!(state.promised, Ballot(1), "cut {cut}");
        assert_eq!(
            state.slots.keys().copied().collect::<Vec<_>>(),
            vec![Slot(1)],
            "cut {cut}: the torn frame is gone, the one before it kept"
        );
        log.persist(&[accepted(2, 1, cmds(&[b"again"]))]).unwrap();
        drop(log);
        let state = WalLog::open(&path.0).unwrap().load().unwrap();
        assert_eq!(
            state.slots.get(&Slot(2)),
            Some(&SlotState::Accepted {
                ballot: Ballot(1),
                value: cmds(&[b"again"])
            }),
            "cut {cut}: appends after the cut survive reopening"
        );
    }
}

#[test]
fn a_segment_is_created_with_its_room_reserved_and_reopens_without_a_cut() {
    let path = TempPath::new("log-reserved");
    let options = WalOptions::with_segment_bytes(1 << 20);
    {
        let mut log = WalLog::open_with(&path.0, options).unwrap();
        log.persist(&[Record::Promised(Ballot(3)), chosen(1, Value::Noop)])
            .unwrap();
    }
    let file = segments(&path.0).pop().unwrap();
    assert_eq!(std::fs::metadata(&file).unwrap().len(), 1 << 20);
    let mut log = WalLog::open_with(&path.0, options).unwrap();
    assert_eq!(log.load().unwrap().slots.len(), 1);
    assert_eq!(
        std::fs::metadata(&file).unwrap().len(),
        1 << 20,
        "the zeros of the reserved room are not a torn tail"
    );
    log.persist(&[chosen(2, Value::Noop)]).unwrap();
    drop(log);
    let log = WalLog::open_with(&path.0, options).unwrap();
    assert_eq!(log.load().unwrap().slots.len(), 2, "written into the room");
}

#[test]
fn garbage_after_the_last_frame_is_cut_off_and_zeros_are_room() {
    for (tail, cut) in [(vec![0u8; 4096], false), (vec![0xa5; 37], true)] {
        let path = TempPath::new("log-tail");
        {
            let mut log = WalLog::open(&path.0).unwrap();
            log.persist(&[Record::Promised(Ballot(3)), chosen(1, Value::Noop)])
                .unwrap();
        }
        let file = segments(&path.0).pop().unwrap();
        let mut bytes = std::fs::read(&file).unwrap();
        let before = frames_len(&bytes) as usize;
        // On a file system that reserves no room, the tail grows the file.
        bytes.truncate(before);
        bytes.extend_from_slice(&tail);
        std::fs::write(&file, &bytes).unwrap();
        let mut log = WalLog::open(&path.0).unwrap();
        assert_eq!(log.load().unwrap().slots.len(), 1);
        let expected_len = if cut { before } else { bytes.len() };
        assert_eq!(std::fs::metadata(&file).unwrap().len(), expected_len as u64);
        log.persist(&[chosen(2, Value::Noop)]).unwrap();
        drop(log);
        let log = WalLog::open(&path.0).unwrap();
        assert_eq!(log.load().unwrap().slots.len(), 2, "tail {cut}");
    }
}

#[test]
fn garbage_written_into_the_reserved_room_is_cut_off_and_the_log_goes_on() {
    let path = TempPath::new("log-room-garbage");
    {
        let mut log = WalLog::open(&path.0).unwrap();
        log.persist(&[Record::Promised(Ballot(3)), chosen(1, Value::Noop)])
            .unwrap();
    }
    let file = segments(&path.0).pop().unwrap();
    let before = frames_len(&std::fs::read(&file).unwrap());
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new().write(true).open(&file).unwrap();
        f.write_all_at(&[0xa5; 37], before).unwrap();
    }
    let mut log = WalLog::open(&path.0).unwrap();
    assert_eq!(log.load().unwrap().slots.len(), 1);
    assert_eq!(std::fs::metadata(&file).unwrap().len(), before);
    log.persist(&[chosen(2, Value::Noop)]).unwrap();
    drop(log);
    assert_eq!(
        WalLog::open(&path.0).unwrap().load().unwrap().slots.len(),
        2
    );
}

#[test]
fn a_corrupt_frame_before_the_last_segment_is_an_error_not_a_panic() {
    let path = TempPath::new("log-corrupt");
    let options = WalOptions::with_segment_bytes(256);
    {
        let mut log = WalLog::open_with(&path.0, options).unwrap();
        log.persist(&[Record::Promised(Ballot(1))]).unwrap();
        for slot in 1..=20 {
            log.persist(&[accepted(slot, 1, cmds(&[&[7; 100]]))])
                .unwrap();
        }
        assert!(log.segment_count() > 2);
    }
    let first = segments(&path.0).remove(0);
    let mut bytes = std::fs::read(&first).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&first, &bytes).unwrap();
    match WalLog::open_with(&path.0, options) {
        Err(StorageError::Log(LogError::CorruptFrame { path, .. })) => assert_eq!(path, first),
        other => panic!("expected a corrupt frame, got {other:?}"),
    }
    assert_eq!(std::fs::read(&first).unwrap(), bytes, "nothing changed");
}

#[test]
fn segments_rotate_and_compaction_deletes_the_old_ones() {
    let path = TempPath::new("log-segments");
    let options = WalOptions::with_segment_bytes(512);
    let mut log = WalLog::open_with(&path.0, options).unwrap();
    let mut reference = MemStorage::new();
    let mut persist = |log: &mut WalLog, records: &[Record]| {
        log.persist(records).unwrap();
        reference.persist(records).unwrap();
    };
    persist(&mut log, &[Record::Promised(Ballot(2))]);
    for slot in 1..=60 {
        persist(&mut log, &[accepted(slot, 2, cmds(&[&[slot as u8; 64]]))]);
        persist(&mut log, &[chosen(slot, cmds(&[&[slot as u8; 64]]))]);
    }
    let many = log.segment_count();
    assert!(many > 10, "only {many} segments");
    assert_eq!(segments(&path.0).len(), many);
    // A compaction point that frees no closed segment waits for the next sync; one that frees
    // some is synced at once and deletes them (a node may go long without a record that must
    // sync: an acceptor that only gets lazy accepts).
    let oldest = segments(&path.0).remove(0);
    persist(&mut log, &[Record::Compacted(Slot(0))]);
    assert!(oldest.exists());
    persist(&mut log, &[Record::Compacted(Slot(50))]);
    assert!(
        !oldest.exists(),
        "a compaction point that frees segments deletes them"
    );
    persist(&mut log, &[Record::Promised(Ballot(3))]);
    let few = log.segment_count();
    assert!(few < many / 2, "{few} of {many} segments left");
    assert_eq!(segments(&path.0).len(), few);
    assert_eq!(log.load().unwrap(), reference.load().unwrap());
    drop(log);
    let log = WalLog::open_with(&path.0, options).unwrap();
    assert_eq!(log.load().unwrap(), reference.load().unwrap());
    assert_eq!(log.promised(), Ballot(3));
    assert_eq!(log.compacted_through(), Slot(50));
}

#[test]
fn random_batches_with_tiny_segments_and_reopening_keep_what_the_reference_keeps() {
    for seed in 0..10 {
        let path = TempPath::new("log-random-segments");
        let options = WalOptions::with_segment_bytes(300);
        let mut rng = Rng(seed);
        let mut log = WalLog::open_with(&path.0, options).unwrap();
        let mut reference = MemStorage::new();
        let (mut promised, mut next_slot) = (1, 0);
        log.persist(&[Record::Promised(Ballot(1))]).unwrap();
        reference.persist(&[Record::Promised(Ballot(1))]).unwrap();
        for round in 0..60 {
            let mut batch: Vec<Record> = (0..rng.below(6))
                .map(|_| random_record(&mut rng, &mut promised, &mut next_slot))
                .collect();
            // Sync every batch, as a crash would lose unsynced records the reference keeps.
            batch.push(Record::Promised(Ballot(promised)));
            log.persist(&batch).unwrap();
            reference.persist(&batch).unwrap();
            if round % 7 == 0 {
                drop(log);
                log = WalLog::open_with(&path.0, options).unwrap();
            }
            assert_eq!(
                log.load().unwrap(),
                reference.load().unwrap(),
                "seed {seed} round {round}"
            );
        }
    }
}

fn put_slot(n: u64) -> Value {
    let key = format!("k{n}");
    Value::Commands(vec![
        Request::anonymous(put(key.as_bytes(), b"v")).encode_to_vec()
    ])
}

fn apply(store: &mut NodeStore, slot: Slot, value: &Value) {
    let commands = match value {
        Value::Noop | Value::Reconfigure(_) => Vec::new(),
        Value::Commands(commands) => commands.clone(),
    };
    store
        .state_machine
        .apply_slots([(slot.0, commands.as_slice())])
        .unwrap();
}

#[test]
fn a_restarted_node_replays_chosen_slots_above_the_applied_index() {
    let path = TempPath::new("node-restart");
    let expected_hash;
    {
        let mut store = NodeStore::open(&path.0).unwrap();
        store.log.persist(&[Record::Promised(Ballot(1))]).unwrap();
        for n in 1..=6 {
            store.log.persist(&[chosen(n, put_slot(n))]).unwrap();
            if n <= 3 {
                apply(&mut store, Slot(n), &put_slot(n));
            }
        }
        for n in 4..=6 {
            apply(&mut store, Slot(n), &put_slot(n));
        }
        expected_hash = store.state_machine.state_hash().unwrap();
        // Dropped without flushing slots 4..=6: they may be lost with the process.
    }
    let mut store = NodeStore::open(&path.0).unwrap();
    let (durable, applied) = store.recovery_state().unwrap();
    assert!(
        applied >= Slot(3),
        "slots 1..=3 became durable with the later log commits"
    );
    let config = Config::new(NodeId(1), vec![NodeId(1)]);
    let mut replica = Replica::new(config, durable, applied, Instant::from_micros(0)).unwrap();
    for (slot, value) in replica.ready().committed {
        apply(&mut store, slot, &value);
    }
    assert_eq!(store.state_machine.applied_index(), 6);
    assert_eq!(store.state_machine.state_hash().unwrap(), expected_hash);
}

#[test]
fn recovery_refuses_a_state_machine_behind_the_compaction_point() {
    let dir = TempPath::new("behind-compaction");
    let store = NodeStore::open(&dir.0).unwrap();
    let NodeStore {
        mut log,
        state_machine,
    } = store;
    log.persist(&[Record::Compacted(Slot(5))]).unwrap();
    let store = NodeStore { log, state_machine };
    assert!(matches!(
        store.recovery_state(),
        Err(StorageError::Corrupt { .. })
    ));
}

#[test]
fn a_directory_with_the_old_single_file_layout_is_refused_clearly() {
    let dir = TempPath::new("old-layout");
    std::fs::create_dir_all(&dir.0).unwrap();
    std::fs::write(dir.0.join("synod.redb"), b"").unwrap();
    let error = NodeStore::open(&dir.0).unwrap_err().to_string();
    assert!(error.contains("older Synod"), "{error}");
    assert!(
        !dir.0.join(synod_kvstore::LOG_DIR).exists(),
        "nothing was created beside the old file"
    );
}
