//! The write-ahead log on a simulated disk ([`SimDisk`]) that crashes, tears the last write,
//! flips bits, fails fsyncs and fills up: the log keeps every synced record, cuts only torn
//! tails, refuses to start on damage, and stops for good after a failed write or sync.

mod common;

use common::Rng;
use synod_kvstore::{LogError, SimDisk, StorageError, WalLog, WalOptions};
use synod_paxos::{Ballot, DurableState, Record, Slot, Storage, Value};

fn accepted(slot: u64, ballot: u64, text: &str) -> Record {
    Record::Accepted {
        slot: Slot(slot),
        ballot: Ballot(ballot),
        value: Value::Commands(vec![text.as_bytes().to_vec()]),
    }
}

fn chosen(slot: u64, text: &str) -> Record {
    Record::Chosen {
        slot: Slot(slot),
        value: Value::Commands(vec![text.as_bytes().to_vec()]),
    }
}

/// The first segment's file name.
const SEGMENT_0: &str = "00000000000000000000.wal";

/// The log on `disk`, with segments of 8 KiB: room for the frames of every test here, and
/// little to copy at each simulated crash.
fn open(disk: &SimDisk) -> Result<WalLog<SimDisk>, StorageError> {
    WalLog::open_on(disk.clone(), WalOptions::with_segment_bytes(8 << 10))
}

/// The state `records` build, applied in order.
fn state_of<'a>(records: impl IntoIterator<Item = &'a Record>) -> DurableState {
    let mut state = DurableState::default();
    for record in records {
        state.apply(record.clone());
    }
    state
}

/// Every file's bytes.
fn snapshot(disk: &SimDisk) -> Vec<(String, Vec<u8>)> {
    disk.file_names()
        .into_iter()
        .map(|name| {
            let bytes = disk.file_bytes(&name).unwrap();
            (name, bytes)
        })
        .collect()
}

#[test]
fn a_crash_keeps_synced_frames_and_loses_unsynced_ones() {
    let disk = SimDisk::new();
    let mut log = open(&disk).unwrap();
    let synced = [Record::Promised(Ballot(1)), accepted(1, 1, "a")];
    log.persist(&synced).unwrap();
    // Chosen records need no sync: they stay in the page cache until the next synced call.
    log.persist(&[chosen(1, "a")]).unwrap();
    assert_eq!(
        log.load().unwrap(),
        state_of(&[synced[0].clone(), synced[1].clone(), chosen(1, "a")])
    );

    let disk = disk.crash();
    assert!(
        log.persist(&[accepted(2, 1, "b")]).is_err(),
        "the crashed log writes nothing"
    );
    let log = open(&disk).unwrap();
    assert_eq!(log.load().unwrap(), state_of(&synced));
}

/// Makes an empty simulated disk.
type NewDisk = fn() -> SimDisk;

/// Both kinds of disk: one whose files have room reserved (torn at sector boundaries), one
/// whose every write grows a file (torn anywhere).
fn disks() -> [(NewDisk, &'static str); 2] {
    [
        (SimDisk::new, "with room"),
        (SimDisk::without_room, "without room"),
    ]
}

#[test]
fn a_torn_write_at_a_crash_is_cut_and_the_log_goes_on() {
    let synced = vec![Record::Promised(Ballot(1)), accepted(1, 1, "synced")];
    let long = "a value longer than a sector ".repeat(30);
    let unsynced = [
        vec![chosen(1, "synced")],
        vec![chosen(2, "two"), chosen(3, &long)],
        vec![chosen(4, "four")],
    ];
    for (new_disk, kind) in disks() {
        // Where the unsynced bytes start, how many there are, and where each unsynced frame ends
        // in them.
        let (start, total, ends) = {
            let disk = new_disk();
            let mut log = open(&disk).unwrap();
            log.persist(&synced).unwrap();
            let start = disk.synced_bytes(SEGMENT_0).unwrap();
            let mut ends = Vec::new();
            for frame in &unsynced {
                log.persist(frame).unwrap();
                ends.push(disk.written_bytes(SEGMENT_0).unwrap() - start);
            }
            (start, *ends.last().unwrap(), ends)
        };
        for keep in 0..=total {
            let disk = new_disk();
            let mut log = open(&disk).unwrap();
            log.persist(&synced).unwrap();
            for frame in &unsynced {
                log.persist(frame).unwrap();
            }
            let disk = disk.crash_torn(&mut |n| {
                assert_eq!(n, total);
                keep
            });
            let mut log = open(&disk).unwrap_or_else(|e| panic!("{kind}, keep {keep}: {e}"));
            // Inside reserved room a disk writes whole sectors.
            let kept = if kind == "with room" {
                ((start + keep) / 512 * 512).max(start) - start
            } else {
                keep
            };
            let whole = ends.iter().filter(|end| **end <= kept).count();
            let expected = state_of(synced.iter().chain(unsynced[..whole].iter().flatten()));
            assert_eq!(
                log.load().unwrap(),
                expected,
                "{kind}, keep {keep} of {total}"
            );
            // The cut is durable and appends after it survive a crash.
            log.persist(&[accepted(5, 1, "after")]).unwrap();
            let log = open(&disk.crash()).unwrap();
            assert!(
                log.load().unwrap().slots.contains_key(&Slot(5)),
                "{kind}, keep {keep}"
            );
        }
    }
}

/// Records that need no sync (chosen values), each frame longer than a sector, written after a
/// synced frame and never synced themselves.
fn unsynced_chosen_frames(log: &mut WalLog<SimDisk>) -> Vec<Record> {
    let frames: Vec<Record> = (1..=6).map(|slot| chosen(slot, &"v".repeat(700))).collect();
    for frame in &frames {
        log.persist(std::slice::from_ref(frame)).unwrap();
    }
    frames
}

#[test]
fn a_power_loss_that_keeps_a_later_unsynced_write_but_not_an_earlier_one_cuts_the_log_there() {
    let synced: Vec<Record> = std::iter::once(Record::Promised(Ballot(1)))
        .chain((1..=6).map(|slot| accepted(slot, 1, "synced")))
        .collect();
    // A log of synced frames, then unsynced ones; and the unsynced ones.
    let write = || {
        let disk = SimDisk::new();
        let mut log = open(&disk).unwrap();
        log.persist(&synced).unwrap();
        (disk.clone(), unsynced_chosen_frames(&mut log))
    };
    let mut sectors = 0;
    write().0.crash_scattered(&mut || {
        sectors += 1;
        true
    });
    assert!(sectors > 6, "{sectors} unsynced sectors");
    for lost in 0..sectors {
        let (disk, unsynced) = write();
        // The disk wrote back every unsynced sector but one.
        let mut sector = 0;
        let disk = disk.crash_scattered(&mut || {
            sector += 1;
            sector != lost + 1
        });
        let mut log = open(&disk).unwrap_or_else(|e| panic!("sector {lost} lost: {e}"));
        let loaded = log.load().unwrap();
        let kept = (0..=unsynced.len())
            .find(|&k| state_of(synced.iter().chain(&unsynced[..k])) == loaded)
            .unwrap_or_else(|| panic!("sector {lost} lost: not a prefix: {loaded:?}"));
        assert!(kept < unsynced.len(), "sector {lost} lost, all kept");
        // The cut is durable: frames past the hole do not come back after the next crash.
        log.persist(&[accepted(7, 1, "after")]).unwrap();
        let log = open(&disk.crash()).unwrap();
        let expected: Vec<Record> = synced
            .iter()
            .chain(&unsynced[..kept])
            .cloned()
            .chain([accepted(7, 1, "after")])
            .collect();
        assert_eq!(log.load().unwrap(), state_of(&expected), "sector {lost}");
    }
}

/// The log on `disk` refuses to start, naming the frame at byte `start` of the first segment as
/// corrupt, and cuts nothing.
fn assert_refused_at(disk: &SimDisk, start: u64) {
    let damaged = snapshot(disk);
    match open(disk) {
        Err(StorageError::Log(LogError::CorruptFrame { offset, .. })) => assert_eq!(offset, start),
        other => panic!("{other:?}"),
    }
    assert_eq!(snapshot(disk), damaged, "nothing cut");
}

#[test]
fn a_damaged_frame_that_a_later_sync_covered_refuses_to_start() {
    let disk = SimDisk::new();
    let mut log = open(&disk).unwrap();
    log.persist(&[Record::Promised(Ballot(1))]).unwrap();
    let start = disk.synced_bytes(SEGMENT_0).unwrap();
    log.persist(&[chosen(1, "never synced by itself")]).unwrap();
    // This frame must sync, and its sync covers the chosen frame before it.
    log.persist(&[accepted(2, 1, "synced")]).unwrap();
    drop(log);
    let disk = disk.crash();
    disk.flip_bit(SEGMENT_0, start + 40, 3).unwrap();
    assert_refused_at(&disk, start);
}

#[test]
fn a_damaged_header_of_a_synced_frame_refuses_to_start_though_only_unsynced_frames_follow() {
    let disk = SimDisk::new();
    let mut log = open(&disk).unwrap();
    log.persist(&[Record::Promised(Ballot(1))]).unwrap();
    let start = disk.synced_bytes(SEGMENT_0).unwrap();
    log.persist(&[accepted(1, 1, "synced")]).unwrap();
    log.persist(&[chosen(1, "synced")]).unwrap();
    drop(log);
    // The crash keeps the unsynced chosen frame; then two bits of the synced frame's header rot
    // (one in its length, one in its hash): not zeros, so not a sector the crash lost.
    let disk = disk.crash_scattered(&mut || true);
    disk.flip_bit(SEGMENT_0, start + 1, 2).unwrap();
    disk.flip_bit(SEGMENT_0, start + 9, 5).unwrap();
    assert_refused_at(&disk, start);
}

#[test]
fn a_flipped_bit_anywhere_in_synced_data_refuses_to_start_and_changes_nothing() {
    let disk = SimDisk::new();
    let options = WalOptions::with_segment_bytes(200);
    let mut log = WalLog::open_on(disk.clone(), options).unwrap();
    log.persist(&[Record::Promised(Ballot(7))]).unwrap();
    for slot in 1..=6 {
        log.persist(&[accepted(slot, 7, &format!("value {slot} xyz"))])
            .unwrap();
    }
    drop(log);
    let disk = disk.crash();
    assert!(disk.file_names().len() > 1, "{:?}", disk.file_names());
    let intact = snapshot(&disk);
    let expected = open(&disk).unwrap().load().unwrap();
    let mut flips = 0;
    for (name, _) in &intact {
        // Synced data (the reserved room after it was never written: a file system reads it as
        // zeros without reading the disk).
        for offset in 0..disk.synced_bytes(name).unwrap() {
            let bit = (offset % 8) as u8;
            disk.flip_bit(name, offset, bit).unwrap();
            let damaged = snapshot(&disk);
            match open(&disk) {
                Err(StorageError::Log(_)) => {}
                other => panic!("bit {bit} of byte {offset} of {name}: {other:?}"),
            }
            assert_eq!(
                snapshot(&disk),
                damaged,
                "byte {offset} of {name}: nothing cut"
            );
            disk.flip_bit(name, offset, bit).unwrap();
            flips += 1;
        }
    }
    assert_eq!(snapshot(&disk), intact);
    assert_eq!(open(&disk).unwrap().load().unwrap(), expected);
    assert!(flips > 300, "{flips} flips");
}

#[test]
fn an_fsync_error_stops_the_log_and_a_restart_sees_only_synced_data() {
    let disk = SimDisk::new();
    let mut log = open(&disk).unwrap();
    let synced = [Record::Promised(Ballot(1)), accepted(1, 1, "kept")];
    log.persist(&synced).unwrap();
    log.persist(&[chosen(1, "kept")]).unwrap();
    disk.fail_next_syncs(1);
    let failed = log.persist(&[accepted(2, 1, "never synced")]);
    assert!(
        matches!(failed, Err(StorageError::Log(LogError::Io { .. }))),
        "{failed:?}"
    );
    assert!(log.is_stopped());
    // The disk works again, but the log must not: the kernel may have dropped the pages it
    // failed to write, so nothing written before the failure can be trusted to be durable.
    for records in [
        vec![accepted(3, 1, "later")],
        vec![Record::Promised(Ballot(2))],
    ] {
        assert!(
            matches!(
                log.persist(&records),
                Err(StorageError::Log(LogError::Stopped))
            ),
            "every later persist fails"
        );
    }
    drop(log);
    // Restarted, with or without a crash, the log holds what was synced, nothing after.
    let log = open(&disk).unwrap();
    assert_eq!(log.load().unwrap(), state_of(&synced));
    drop(log);
    let log = open(&disk.crash()).unwrap();
    assert_eq!(log.load().unwrap(), state_of(&synced));
}

#[test]
fn a_full_disk_is_an_error_and_nothing_half_written_is_trusted_after_restart() {
    let disk = SimDisk::new();
    // Writes inside a segment's reserved room need no more space: the frame must outgrow it.
    let mut log = WalLog::open_on(disk.clone(), WalOptions::with_segment_bytes(256)).unwrap();
    let synced = [Record::Promised(Ballot(1)), accepted(1, 1, "fits")];
    log.persist(&synced).unwrap();
    let used: u64 = disk
        .file_names()
        .iter()
        .map(|name| disk.file_bytes(name).unwrap().len() as u64)
        .sum();
    disk.set_capacity_bytes(Some(used + 30));
    let full = log.persist(&[accepted(2, 1, &"x".repeat(300))]);
    match &full {
        Err(StorageError::Log(LogError::Io { source, .. })) => {
            assert_eq!(source.kind(), std::io::ErrorKind::StorageFull)
        }
        other => panic!("{other:?}"),
    }
    assert!(log.persist(&[accepted(2, 1, "small")]).is_err(), "stopped");
    drop(log);
    // The frame was written in part (30 bytes past the room); the restart cuts it (the disk is
    // still full).
    let log = open(&disk).unwrap();
    assert_eq!(log.load().unwrap(), state_of(&synced));
    drop(log);
    disk.set_capacity_bytes(None);
    let mut log = open(&disk).unwrap();
    log.persist(&[accepted(2, 1, &"x".repeat(100))]).unwrap();
    assert_eq!(open(&disk).unwrap().load().unwrap().slots.len(), 2);
}

#[test]
fn a_full_disk_while_starting_a_segment_is_an_error_and_the_log_reopens() {
    let disk = SimDisk::new();
    let options = WalOptions::with_segment_bytes(100);
    let mut log = WalLog::open_on(disk.clone(), options).unwrap();
    let first = [Record::Promised(Ballot(1)), accepted(1, 1, &"y".repeat(80))];
    log.persist(&first).unwrap();
    let used: u64 = disk
        .file_names()
        .iter()
        .map(|name| disk.file_bytes(name).unwrap().len() as u64)
        .sum();
    // Room for a little, not for a new segment's header.
    disk.set_capacity_bytes(Some(used + 20));
    assert!(log.persist(&[accepted(2, 1, "z")]).is_err());
    assert_eq!(disk.file_names().len(), 1, "no half-made segment");
    drop(log);
    disk.set_capacity_bytes(None);
    let mut log = WalLog::open_on(disk.clone(), options).unwrap();
    assert_eq!(log.load().unwrap(), state_of(&first));
    log.persist(&[accepted(2, 1, "z")]).unwrap();
    assert_eq!(log.segment_count(), 2);
}

/// A random record that keeps the rules given the promise so far.
fn random_records(rng: &mut Rng, promised: &mut u64, next_slot: &mut u64) -> Vec<Record> {
    let mut records = Vec::new();
    for _ in 0..1 + rng.below(3) {
        records.push(match rng.below(10) {
            0 => {
                *promised += rng.below(2);
                Record::Promised(Ballot(*promised))
            }
            1..=4 => {
                *next_slot += 1;
                accepted(*next_slot, *promised, &"v".repeat(rng.below(40) as usize))
            }
            5..=8 if *next_slot > 0 => {
                chosen(1 + rng.below(*next_slot), &format!("c{}", *next_slot))
            }
            _ => Record::Compacted(Slot(rng.below(*next_slot + 1))),
        });
    }
    records
}

/// Random batches, tiny segments (rotation and deletion), random crashes that tear the last
/// write or keep any subset of the unsynced sectors: after every restart the log holds exactly
/// the synced records plus some whole prefix of the batches persisted since the last sync.
#[test]
fn random_batches_and_crashes_keep_every_synced_record() {
    for (seed, (new_disk, _)) in (0..20u64).zip(disks().into_iter().cycle()) {
        let mut rng = Rng(seed);
        let options = WalOptions::with_segment_bytes(256);
        let mut disk = new_disk();
        let mut log = WalLog::open_on(disk.clone(), options).unwrap();
        // Chosen values must not change per slot: take each slot's first chosen value.
        let mut synced: Vec<Record> = Vec::new();
        let mut pending: Vec<Vec<Record>> = Vec::new();
        let (mut promised, mut next_slot) = (1, 0);
        log.persist(&[Record::Promised(Ballot(promised))]).unwrap();
        synced.push(Record::Promised(Ballot(promised)));
        let mut chosen_values = std::collections::BTreeMap::new();
        for step in 0..300 {
            let mut records = random_records(&mut rng, &mut promised, &mut next_slot);
            for record in &mut records {
                if let Record::Chosen { slot, value } = record {
                    *value = chosen_values.entry(*slot).or_insert(value.clone()).clone();
                }
            }
            log.persist(&records).unwrap();
            let sync = records.iter().any(Record::must_sync);
            pending.push(records);
            if sync {
                synced.extend(pending.drain(..).flatten());
            }
            if rng.below(25) == 0 {
                disk = if rng.below(2) == 0 {
                    disk.crash_torn(&mut |n| rng.below(n + 1))
                } else {
                    disk.crash_scattered(&mut || rng.below(2) == 0)
                };
                log = WalLog::open_on(disk.clone(), options)
                    .unwrap_or_else(|e| panic!("seed {seed} step {step}: {e}"));
                let loaded = log.load().unwrap();
                let kept = (0..=pending.len())
                    .find(|&k| {
                        state_of(synced.iter().chain(pending[..k].iter().flatten())) == loaded
                    })
                    .unwrap_or_else(|| panic!("seed {seed} step {step}: lost synced records"));
                synced.extend(pending.drain(..kept).flatten());
                pending.clear();
                // Values of chosen records lost in the crash may be chosen anew.
                let durable = state_of(&synced);
                chosen_values.retain(|slot, _| durable.slots.contains_key(slot));
                promised = log.promised().0;
                next_slot = durable
                    .slots
                    .keys()
                    .last()
                    .map_or(durable.compacted_through.0, |s| s.0)
                    .max(next_slot);
            }
        }
    }
}

/// The `bug-injection` switch the simulator's teeth use brings back the cut of issue 11's
/// finding 2: a damaged frame with a valid one after it is cut, and the valid one with it.
#[cfg(feature = "bug-injection")]
#[test]
fn the_injected_bug_cuts_synced_frames_after_a_damaged_one() {
    let disk = SimDisk::new();
    let mut log = open(&disk).unwrap();
    log.persist(&[Record::Promised(Ballot(1)), accepted(1, 1, "first")])
        .unwrap();
    let name = "00000000000000000000.wal";
    let damaged_at = disk.written_bytes(name).unwrap() + 30;
    log.persist(&[accepted(2, 1, "second, damaged")]).unwrap();
    log.persist(&[accepted(3, 1, "third, valid")]).unwrap();
    drop(log);
    disk.flip_bit(name, damaged_at, 0).unwrap();
    assert!(open(&disk).is_err(), "the fixed log refuses");
    let buggy = WalOptions {
        bugs: synod_kvstore::Bugs {
            wal_cuts_after_corrupt_frame: true,
            ..Default::default()
        },
        ..WalOptions::default()
    };
    let log = WalLog::open_on(disk.clone(), buggy).unwrap();
    assert_eq!(log.load().unwrap().slots.len(), 1, "slots 2 and 3 were cut");
}

/// Records that need no sync are synced once a mebibyte of them waits, so a node that gets
/// only such records (an acceptor sent lazy accepts) never leaves more than that to a crash.
#[test]
fn records_that_need_no_sync_are_synced_every_mebibyte() {
    let disk = SimDisk::new();
    let mut log = WalLog::open_on(disk.clone(), WalOptions::with_segment_bytes(64 << 20)).unwrap();
    log.persist(&[Record::Promised(Ballot(1))]).unwrap();
    let after_promise = disk.syncs();
    let text = "x".repeat(1000);
    let mut written = 0u64;
    let mut slot = 0;
    while written < synod_kvstore::WAL_SYNC_UNSYNCED_BYTES * 3 {
        slot += 1;
        log.persist(&[chosen(slot, &text)]).unwrap();
        written += 1000;
    }
    let syncs = disk.syncs() - after_promise;
    assert!(
        (2..=4).contains(&syncs),
        "{syncs} syncs for {written} bytes of records that need none"
    );
    // A crash loses less than a mebibyte of them (each takes more than 1,000 bytes).
    let lost = slot - open_after_crash(&disk);
    assert!(
        lost < synod_kvstore::WAL_SYNC_UNSYNCED_BYTES / 1000,
        "{lost} of {slot} records lost"
    );
}

/// The slots a log on a crashed copy of `disk` holds.
fn open_after_crash(disk: &SimDisk) -> u64 {
    let log = WalLog::open_on(disk.crash(), WalOptions::with_segment_bytes(64 << 20)).unwrap();
    log.load().unwrap().slots.len() as u64
}
