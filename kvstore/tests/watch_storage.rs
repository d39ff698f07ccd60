//! Where the watch history lives: in memory, stored in its table at durable commits, at a
//! snapshot, the state hash and a clean close (see the `watch` module). Whenever it is stored,
//! and whatever happens to the node, the history a state machine answers with is the one every
//! replica has.

mod common;

use std::sync::Arc;

use common::*;
use redb::backends::InMemoryBackend;
use redb::{Database, TableDefinition};
use synod_kvstore::{
    EventFilter, Options, Request, SimRedbBackend, StateMachine, WatchBatch, WatchError,
};
use synod_wire::limits::WATCH_HISTORY_EVENTS;

/// The history table's definition, as the state machine names it.
const WATCH_EVENTS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("sm_watch_events");
/// The kv table's definition.
const KV: TableDefinition<&[u8], &[u8]> = TableDefinition::new("sm_kv");

/// A database in memory, to open state machines on and to reach under them.
fn in_memory_database() -> Arc<Database> {
    Arc::new(
        Database::builder()
            .create_with_backend(InMemoryBackend::new())
            .unwrap(),
    )
}

fn all_keys() -> EventFilter {
    EventFilter::prefix(Vec::new())
}

/// A state machine on `db`, which the test keeps to reach under it.
fn open_on(db: &Arc<Database>) -> StateMachine {
    StateMachine::from_database(db.clone(), Options::default()).unwrap()
}

fn open(backend: &SimRedbBackend) -> StateMachine {
    StateMachine::open_on_backend(backend.clone(), Options::default()).unwrap()
}

/// `count` anonymous puts, over 50 keys, with values of `value_len` bytes, as one slot.
fn puts(h: &mut Harness, first: u64, count: u64, value_len: usize) {
    let requests: Vec<Request> = (first..first + count)
        .map(|i| {
            Request::anonymous(put(
                format!("k{}", i % 50).as_bytes(),
                &vec![b'v'; value_len],
            ))
        })
        .collect();
    h.apply(&requests);
}

/// The whole history the state machine answers with: its events, or where it is compacted.
fn history(sm: &StateMachine) -> Result<WatchBatch, u64> {
    match sm.events_since(1, &all_keys(), 0) {
        Ok(batch) => Ok(batch),
        Err(WatchError::Compacted {
            compacted_through, ..
        }) => match sm.events_since(compacted_through + 1, &all_keys(), 0) {
            Ok(batch) => Ok(batch),
            Err(e) => panic!("{e}"),
        },
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn a_crash_keeps_the_history_of_the_flushed_state() {
    let backend = SimRedbBackend::new();
    let mut h = Harness::with(open(&backend));
    puts(&mut h, 0, 30, 8);
    h.sm.flush().unwrap();
    let flushed = history(&h.sm).unwrap();
    puts(&mut h, 30, 30, 8);
    let restarted = backend.crash();
    drop(h);
    let mut reopened = Harness::with(open(&restarted));
    assert_eq!(history(&reopened.sm).unwrap(), flushed);
    // Replaying the lost slot gives back the state and history of a machine that never crashed.
    puts(&mut reopened, 30, 30, 8);
    let mut never_crashed = Harness::new();
    puts(&mut never_crashed, 0, 30, 8);
    puts(&mut never_crashed, 30, 30, 8);
    assert_eq!(history(&reopened.sm), history(&never_crashed.sm));
    assert_eq!(
        reopened.sm.state_hash().unwrap(),
        never_crashed.sm.state_hash().unwrap()
    );
}

#[test]
fn a_clean_close_keeps_the_whole_history() {
    let backend = SimRedbBackend::new();
    let mut h = Harness::with(open(&backend));
    puts(&mut h, 0, 40, 8);
    h.sm.flush().unwrap();
    puts(&mut h, 40, 40, 8);
    let before = (h.sm.applied_index(), history(&h.sm).unwrap());
    drop(h);
    let reopened = open(&backend);
    assert_eq!(
        (reopened.applied_index(), history(&reopened).unwrap()),
        before
    );
    assert_eq!(before.1.events.len(), 80, "nothing compacted");
}

#[test]
fn storing_at_any_moment_gives_the_same_state_and_history() {
    // Three replicas apply the same slots, enough to trim the history many times over, and
    // store their histories at different moments; a fourth reopens its database at the end.
    let db = in_memory_database();
    let mut every_slot = Harness::new();
    let mut every_seventh = Harness::new();
    let mut at_the_end = Harness::new();
    let mut reopened = Harness::with(open_on(&db));
    let mut first = 0;
    for slot in 0u64..60 {
        // Slots of varied sizes; one holds more events than the history keeps.
        let count = match slot {
            20 => WATCH_HISTORY_EVENTS + 3,
            _ => 1 + (slot * 37) % 700,
        };
        for h in [
            &mut every_slot,
            &mut every_seventh,
            &mut at_the_end,
            &mut reopened,
        ] {
            puts(h, first, count, (slot % 5) as usize * 20);
        }
        first += count;
        every_slot.sm.state_hash().unwrap();
        if slot % 7 == 0 {
            every_seventh.sm.flush().unwrap();
        }
        if slot % 11 == 0 {
            drop(reopened);
            reopened = Harness::with(open_on(&db));
        }
    }
    let expected = (history(&every_slot.sm), every_slot.sm.state_hash().unwrap());
    assert!(expected.0.is_ok());
    for h in [&every_seventh, &at_the_end, &reopened] {
        assert_eq!((history(&h.sm), h.sm.state_hash().unwrap()), expected);
    }
    // And what a snapshot carries answers the same.
    let mut installed = StateMachine::in_memory().unwrap();
    installed
        .install_snapshot(at_the_end.sm.snapshot().unwrap().map(Result::unwrap))
        .unwrap();
    assert_eq!(
        (history(&installed), installed.state_hash().unwrap()),
        expected
    );
}

#[test]
fn a_failed_apply_leaves_the_history_as_it_was() {
    let db = in_memory_database();
    let mut h = Harness::with(open_on(&db));
    // A full history, so the failed slots would have dropped its oldest events.
    for i in 0..WATCH_HISTORY_EVENTS / 1_000 {
        puts(&mut h, i * 1_000, 1_000, 8);
    }
    h.op(put(b"bad", b"1"));
    let before = (
        h.sm.applied_index(),
        h.sm.revision(),
        history(&h.sm).unwrap(),
    );
    // A record the state machine cannot read: writing over it is a storage failure.
    let txn = db.begin_write().unwrap();
    txn.open_table(KV)
        .unwrap()
        .insert(b"bad".as_slice(), [0xff_u8; 3].as_slice())
        .unwrap();
    txn.commit().unwrap();
    // The first slot applies (and records its events), the second fails: neither is applied.
    let encode = |op| prost::Message::encode_to_vec(&Request::anonymous(op));
    let fine: Vec<Vec<u8>> = (0..100)
        .map(|i| encode(put(format!("x{i}").as_bytes(), b"")))
        .collect();
    let failing = vec![encode(put(b"bad", b"2"))];
    let slot = before.0 + 1;
    let result =
        h.sm.apply_slots([(slot, fine.as_slice()), (slot + 1, failing.as_slice())]);
    assert!(result.is_err(), "{result:?}");
    assert_eq!(
        (
            h.sm.applied_index(),
            h.sm.revision(),
            history(&h.sm).unwrap()
        ),
        before
    );
}

#[test]
fn a_stored_history_missing_its_newest_events_is_declared_compacted() {
    let db = in_memory_database();
    let mut h = Harness::with(open_on(&db));
    puts(&mut h, 0, 20, 8);
    let revision = h.sm.revision();
    drop(h);
    // The newest event never reached the table (as if the store at close had failed).
    let txn = db.begin_write().unwrap();
    txn.open_table(WATCH_EVENTS).unwrap().pop_last().unwrap();
    txn.commit().unwrap();
    let mut h = Harness::with(open_on(&db));
    match h.sm.events_since(1, &all_keys(), 0) {
        Err(WatchError::Compacted {
            compacted_through, ..
        }) => assert_eq!(compacted_through, revision),
        other => panic!("expected compacted, got {other:?}"),
    }
    // Watching from the current state on works, and the repair was stored.
    h.op(put(b"after", b"1"));
    assert_eq!(history(&h.sm).unwrap().events.len(), 1);
    drop(h);
    let reopened = open_on(&db);
    assert_eq!(history(&reopened).unwrap().events.len(), 1);
}

#[test]
fn a_stored_history_it_cannot_read_is_declared_compacted_and_emptied() {
    let db = in_memory_database();
    let mut h = Harness::with(open_on(&db));
    puts(&mut h, 0, 5, 8);
    let revision = h.sm.revision();
    drop(h);
    // A row whose key is not an event key (as a damaged file or snapshot could hold).
    let txn = db.begin_write().unwrap();
    txn.open_table(WATCH_EVENTS)
        .unwrap()
        .insert([0xff_u8; 11].as_slice(), b"x".as_slice())
        .unwrap();
    txn.commit().unwrap();
    let sm = open_on(&db);
    assert!(matches!(
        sm.events_since(1, &all_keys(), 0),
        Err(WatchError::Compacted { compacted_through, .. }) if compacted_through == revision
    ));
    drop(sm);
    let txn = redb::ReadableDatabase::begin_read(&*db).unwrap();
    let rows = redb::ReadableTableMetadata::len(&txn.open_table(WATCH_EVENTS).unwrap()).unwrap();
    assert_eq!(rows, 0, "the unreadable table was emptied");
}
