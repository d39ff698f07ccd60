//! A node's files on a real directory: corruption of synced log data and records that break the
//! acceptor's rules refuse the start with an error naming the file and offset, changing nothing
//! on disk; a node killed while creating its files starts again.

mod common;

use std::path::{Path, PathBuf};

use common::TempPath;
use synod_kvstore::{NodeStore, StorageError, WalLog, LOG_DIR, STATE_FILE};
use synod_paxos::{Ballot, Record, Slot, Storage, Value};

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

fn cmds(text: &str) -> Value {
    Value::Commands(vec![text.as_bytes().to_vec()])
}

/// The only segment file of a log directory.
fn only_segment(dir: &Path) -> PathBuf {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    files.pop().unwrap()
}

/// Where the frames of segment `path` end (its reserved room follows).
fn frames_end(path: &Path) -> usize {
    common::wal_frames_len(&std::fs::read(path).unwrap()) as usize
}

/// A log with three synced frames after its header; returns the segment and where each of the
/// three frames starts, and where the last one ends.
fn three_synced_frames(dir: &Path) -> (PathBuf, [usize; 4]) {
    let mut log = WalLog::open(dir).unwrap();
    let segment = only_segment(dir);
    let mut starts = [0; 4];
    starts[0] = frames_end(&segment);
    log.persist(&[Record::Promised(Ballot(1)), accepted(1, 1, cmds("first"))])
        .unwrap();
    starts[1] = frames_end(&segment);
    log.persist(&[accepted(2, 1, cmds("second, a longer value"))])
        .unwrap();
    starts[2] = frames_end(&segment);
    log.persist(&[accepted(3, 1, cmds("third"))]).unwrap();
    starts[3] = frames_end(&segment);
    (segment, starts)
}

/// The error's text names the segment file and the byte offset.
fn assert_names_file_and_offset(error: &StorageError, segment: &Path, offset: usize) {
    let text = error.to_string();
    assert!(
        text.contains(&segment.display().to_string()),
        "{text} names {}",
        segment.display()
    );
    assert!(
        text.contains(&format!("byte {offset}")),
        "{text}: byte {offset}"
    );
}

#[test]
fn a_bad_frame_followed_by_a_valid_one_refuses_to_start_and_truncates_nothing() {
    let path = TempPath::new("log-bad-then-valid");
    let (segment, starts) = three_synced_frames(&path.0);
    let mut bytes = std::fs::read(&segment).unwrap();
    // Damage the middle frame's payload: the frame after it is valid, so this is not a torn
    // tail, and frames 2 and 3 were synced (reported to peers).
    bytes[starts[2] - 3] ^= 0x01;
    std::fs::write(&segment, &bytes).unwrap();

    let error = WalLog::open(&path.0).unwrap_err();
    assert_names_file_and_offset(&error, &segment, starts[1]);
    assert_eq!(
        std::fs::read(&segment).unwrap(),
        bytes,
        "the segment is unchanged"
    );
    // Refusing again is stable: nothing was cut the first time.
    assert!(WalLog::open(&path.0).is_err());
}

#[test]
fn a_hole_in_frames_no_sync_covered_is_cut_there_and_the_log_goes_on() {
    let path = TempPath::new("log-unsynced-hole");
    let (segment, starts) = three_synced_frames(&path.0);
    let mut log = WalLog::open(&path.0).unwrap();
    let expected = log.load().unwrap();
    // Chosen values need no sync: these three frames sit in the page cache.
    for slot in 1..=3 {
        log.persist(&[chosen(slot, cmds("unsynced"))]).unwrap();
    }
    drop(log);
    // A power loss kept the last two but lost the sector holding the first one's header.
    let mut bytes = std::fs::read(&segment).unwrap();
    bytes[starts[3]..starts[3] + 24].fill(0);
    std::fs::write(&segment, &bytes).unwrap();

    let mut log = WalLog::open(&path.0).unwrap();
    assert_eq!(log.load().unwrap(), expected, "cut at the hole");
    assert_eq!(frames_end(&segment), starts[3]);
    log.persist(&[accepted(4, 1, cmds("after the cut"))])
        .unwrap();
    drop(log);
    let state = WalLog::open(&path.0).unwrap().load().unwrap();
    assert_eq!(
        state.slots.len(),
        4,
        "appends after the cut survive a restart"
    );
}

#[test]
fn a_flipped_bit_in_the_last_synced_frame_refuses_to_start() {
    let path = TempPath::new("log-flip-last");
    let (segment, starts) = three_synced_frames(&path.0);
    for at in [starts[2], starts[2] + 5, starts[2] + 9, starts[3] - 1] {
        let mut bytes = std::fs::read(&segment).unwrap();
        bytes[at] ^= 0x10;
        std::fs::write(&segment, &bytes).unwrap();
        let error = WalLog::open(&path.0).unwrap_err();
        assert_names_file_and_offset(&error, &segment, starts[2]);
        assert_eq!(std::fs::read(&segment).unwrap(), bytes, "byte {at}");
        bytes[at] ^= 0x10;
        std::fs::write(&segment, &bytes).unwrap();
    }
    let state = WalLog::open(&path.0).unwrap().load().unwrap();
    assert_eq!(state.slots.len(), 3, "repaired, every frame is back");
}

#[test]
fn a_changed_chosen_value_on_disk_refuses_to_start_instead_of_panicking() {
    let path = TempPath::new("log-chosen-changed");
    {
        let mut log = WalLog::open(&path.0).unwrap();
        log.persist(&[chosen(4, cmds("a"))]).unwrap();
        // The log tracks only the promise: a second chosen value reaches the disk (a bug above
        // it), and the next start must refuse it clearly.
        log.persist(&[chosen(4, cmds("b"))]).unwrap();
    }
    let error = WalLog::open(&path.0).unwrap_err().to_string();
    assert!(error.contains("chosen value of slot 4 changed"), "{error}");
    assert!(error.contains(".wal at byte "), "{error}");
}

#[test]
fn a_compaction_point_of_u64_max_is_refused_and_never_reaches_the_disk() {
    let path = TempPath::new("log-compact-max");
    let mut log = WalLog::open(&path.0).unwrap();
    log.persist(&[Record::Promised(Ballot(1))]).unwrap();
    let refused = log.persist(&[Record::Compacted(Slot(u64::MAX))]);
    assert!(refused.is_err(), "{refused:?}");
    // Nothing was written, the log goes on, and it opens again.
    log.persist(&[accepted(1, 1, Value::Noop)]).unwrap();
    drop(log);
    let state = WalLog::open(&path.0).unwrap().load().unwrap();
    assert_eq!(state.compacted_through, Slot(0));
    assert_eq!(state.slots.len(), 1);
}

/// What redb leaves when killed while creating a database: the file sized, its header written
/// without the magic number (written last), or nothing written yet.
fn never_initialised_redb_files() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("empty", Vec::new()),
        ("zeros", vec![0; 4096]),
        ("header without magic", {
            let mut bytes = vec![0u8; 8192];
            bytes[9] = 1;
            bytes[16..24].copy_from_slice(&4096u64.to_le_bytes());
            bytes
        }),
        ("cut inside the magic", b"redb\x1a".to_vec()),
    ]
}

#[test]
fn a_node_killed_while_creating_its_state_file_starts_again() {
    for (what, contents) in never_initialised_redb_files() {
        let path = TempPath::new("node-half-created-state");
        std::fs::create_dir_all(&path.0).unwrap();
        std::fs::write(path.0.join(STATE_FILE), &contents).unwrap();
        let store = NodeStore::open(&path.0)
            .unwrap_or_else(|e| panic!("{what}: a never-initialised state file: {e}"));
        assert_eq!(store.state_machine.applied_index(), 0, "{what}");
        drop(store);
        let aside = std::fs::read(path.0.join(format!("{STATE_FILE}.never-initialised")));
        assert_eq!(
            aside.unwrap(),
            contents,
            "{what}: the old file is kept aside"
        );
        NodeStore::open(&path.0).unwrap_or_else(|e| panic!("{what}: reopening: {e}"));
    }
}

#[test]
fn a_node_killed_while_creating_its_log_starts_again() {
    // The bytes of a complete first segment, from a log made elsewhere.
    let reference = TempPath::new("node-half-created-reference");
    drop(WalLog::open(&reference.0).unwrap());
    let fresh = std::fs::read(only_segment(&reference.0)).unwrap();
    let segment_name = only_segment(&reference.0).file_name().unwrap().to_owned();
    for cut in [0, 1, 8, fresh.len() / 2, fresh.len() - 1] {
        let path = TempPath::new("node-half-created-log");
        let log_dir = path.0.join(LOG_DIR);
        std::fs::create_dir_all(&log_dir).unwrap();
        std::fs::write(log_dir.join(&segment_name), &fresh[..cut]).unwrap();
        // A creation interrupted before its rename leaves a temporary file too.
        std::fs::write(
            log_dir.join(format!("{}.tmp", segment_name.to_string_lossy())),
            b"x",
        )
        .unwrap();
        std::fs::write(path.0.join(format!("{STATE_FILE}.tmp")), b"half a database").unwrap();
        let mut store = NodeStore::open(&path.0)
            .unwrap_or_else(|e| panic!("first segment cut at {cut} of {}: {e}", fresh.len()));
        store.log.persist(&[Record::Promised(Ballot(2))]).unwrap();
        drop(store);
        let store = NodeStore::open(&path.0).unwrap();
        assert_eq!(store.log.promised(), Ballot(2), "cut {cut}");
        let leftovers: Vec<_> = std::fs::read_dir(&log_dir)
            .unwrap()
            .chain(std::fs::read_dir(&path.0).unwrap())
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "cut {cut}: {leftovers:?}");
    }
}
