//! Watch events: what each change records, the slot's live effects, filters and keyspaces, and
//! the bounded history with its compaction error.

mod coord;

use coord::*;
use synod_kvstore::{
    DeleteRange, Event, EventFilter, EventKind, Op, Put, Request, StateMachine, Txn, TxnOp,
    TxnOpKind, WatchError,
};
use synod_wire::limits::{MAX_VALUE_BYTES, WATCH_HISTORY_BYTES, WATCH_HISTORY_EVENTS};

fn all_keys() -> EventFilter {
    EventFilter::prefix(Vec::new())
}

fn summary(events: &[Event]) -> Vec<(u64, EventKind, Vec<u8>)> {
    events
        .iter()
        .map(|e| (e.revision, e.event_kind().unwrap(), e.key.clone()))
        .collect()
}

fn put_op(key: &[u8], value: &[u8]) -> Op {
    Op::Put(Put {
        key: key.to_vec(),
        value: value.to_vec(),
        prev_kv: false,
    })
}

#[test]
fn puts_and_deletes_record_old_and_new_values() {
    let mut c = Coord::new();
    c.put(b"a", b"1", 0);
    c.put(b"a", b"2", 0);
    c.delete(b"a");
    let events =
        c.sm.events_since(1, &EventFilter::key(b"a".to_vec()), 0)
            .unwrap()
            .events;
    let values: Vec<_> = events
        .iter()
        .map(|e| {
            (
                e.revision,
                e.event_kind().unwrap(),
                e.prev_value.clone(),
                e.value.clone(),
            )
        })
        .collect();
    assert_eq!(
        values,
        vec![
            (1, EventKind::Put, None, Some(b"1".to_vec())),
            (2, EventKind::Put, Some(b"1".to_vec()), Some(b"2".to_vec())),
            (3, EventKind::Delete, Some(b"2".to_vec()), None),
        ]
    );
}

#[test]
fn a_delete_range_records_each_key_at_one_revision() {
    let mut c = Coord::new();
    for k in [&b"p/1"[..], b"p/2", b"q"] {
        c.put(k, b"v", 0);
    }
    c.op(Op::DeleteRange(DeleteRange {
        start: vec![],
        end: vec![],
        prefix: b"p/".to_vec(),
    }));
    let events = c.last_events();
    assert_eq!(
        summary(&events),
        vec![
            (4, EventKind::Delete, b"p/1".to_vec()),
            (4, EventKind::Delete, b"p/2".to_vec()),
        ]
    );
}

#[test]
fn ephemeral_keys_deleted_with_their_session_are_events() {
    let mut c = Coord::new();
    let s = c.open(TTL_MS);
    c.put(b"e", b"x", s);
    let put = c.last_events();
    assert_eq!(put[0].session, s);
    c.expire(s);
    let events = c.last_events();
    assert_eq!(
        summary(&events),
        vec![(c.sm.revision(), EventKind::Delete, b"e".to_vec())]
    );
    assert_eq!(
        (events[0].prev_session, events[0].prev_value.clone()),
        (s, Some(b"x".to_vec()))
    );
}

#[test]
fn refused_commands_and_reads_record_nothing() {
    let mut c = Coord::new();
    c.put(b"a", b"1", 0);
    c.op(Op::Get(synod_kvstore::Get { key: b"a".to_vec() }));
    assert!(c.last_events().is_empty());
    c.put(b"b", b"1", 999); // unknown session
    assert!(c.last_events().is_empty());
    c.delete(b"missing");
    assert!(c.last_events().is_empty());
    let s = c.open(TTL_MS);
    c.keep_alive(s);
    assert!(c.last_events().is_empty());
}

#[test]
fn the_slots_effects_match_the_history() {
    let mut c = Coord::new();
    let requests = vec![
        Request::anonymous(put_op(b"a", b"1")),
        Request::anonymous(put_op(b"b", b"2")),
    ];
    c.apply(&requests);
    let effects = &c.effects;
    assert_eq!(effects.slot, 1);
    let history = c.sm.events_since(1, &all_keys(), 0).unwrap();
    assert_eq!(effects.events, history.events);
    assert_eq!(history.next_revision, 3);
}

#[test]
fn locks_and_elections_have_their_own_keyspaces() {
    let mut c = Coord::new();
    let s = c.open(TTL_MS);
    let from = c.sm.revision() + 1;
    c.put(b"a/x", b"v", 0);
    c.lock(b"a/x", s, false);
    c.campaign(b"a/x", s, b"me");
    let keys =
        c.sm.events_since(from, &EventFilter::prefix(b"a/".to_vec()), 0)
            .unwrap();
    assert_eq!(
        summary(&keys.events),
        vec![(from, EventKind::Put, b"a/x".to_vec())]
    );
    let locks =
        c.sm.events_since(from, &EventFilter::lock(b"a/x".to_vec()), 0)
            .unwrap();
    assert_eq!(
        summary(&locks.events),
        vec![(from + 1, EventKind::LockHolder, b"a/x".to_vec())]
    );
    assert_eq!(locks.events[0].session, s);
    let elections =
        c.sm.events_since(from, &EventFilter::election(b"a/x".to_vec()), 0)
            .unwrap();
    assert_eq!(elections.events[0].value.as_deref(), Some(&b"me"[..]));
}

#[test]
fn a_limit_stops_at_a_revision_boundary_and_says_where_to_continue() {
    let mut c = Coord::new();
    let txn = Op::Txn(Txn {
        compares: vec![],
        success: [&b"t1"[..], b"t2", b"t3"]
            .iter()
            .map(|k| TxnOp {
                op: Some(TxnOpKind::Put(Put {
                    key: k.to_vec(),
                    value: vec![],
                    prev_kv: false,
                })),
            })
            .collect(),
        failure: vec![],
    });
    c.op(txn);
    c.put(b"u", b"", 0);
    let first = c.sm.events_since(1, &all_keys(), 1).unwrap();
    assert_eq!(first.events.len(), 3, "the whole first revision");
    assert_eq!(first.next_revision, 2);
    let rest =
        c.sm.events_since(first.next_revision, &all_keys(), 1)
            .unwrap();
    assert_eq!(
        summary(&rest.events),
        vec![(2, EventKind::Put, b"u".to_vec())]
    );
    assert_eq!(rest.next_revision, 3);
    // A filter that matches nothing still moves the subscriber forward.
    let none =
        c.sm.events_since(1, &EventFilter::key(b"zzz".to_vec()), 0)
            .unwrap();
    assert!(none.events.is_empty());
    assert_eq!(none.next_revision, 3);
}

#[test]
fn the_history_keeps_the_newest_events_and_says_compacted_for_older_ones() {
    let mut c = Coord::new();
    let total = WATCH_HISTORY_EVENTS + 500;
    for chunk in (1..=total).collect::<Vec<_>>().chunks(1_000) {
        let requests: Vec<Request> = chunk
            .iter()
            .map(|i| Request::anonymous(put_op(format!("k{}", i % 50).as_bytes(), b"v")))
            .collect();
        c.apply(&requests);
    }
    assert_eq!(c.sm.revision(), total);
    let compacted_through = match c.sm.events_since(1, &all_keys(), 0) {
        Err(WatchError::Compacted {
            compacted_through,
            revision,
            ..
        }) => {
            assert_eq!(revision, total);
            compacted_through
        }
        other => panic!("expected compacted, got {other:?}"),
    };
    assert_eq!(compacted_through, total - WATCH_HISTORY_EVENTS);
    assert!(matches!(
        c.sm.events_since(compacted_through, &all_keys(), 0),
        Err(WatchError::Compacted { .. })
    ));
    let kept =
        c.sm.events_since(compacted_through + 1, &all_keys(), 0)
            .unwrap();
    assert_eq!(kept.events.len() as u64, WATCH_HISTORY_EVENTS);
    assert_eq!(kept.events[0].revision, compacted_through + 1);
    assert_eq!(kept.next_revision, total + 1);
}

#[test]
fn the_history_is_bounded_in_bytes_too() {
    let mut c = Coord::new();
    let value = vec![7u8; MAX_VALUE_BYTES];
    let puts = WATCH_HISTORY_BYTES / MAX_VALUE_BYTES as u64 + 4;
    for i in 0..puts {
        c.op(put_op(format!("big{}", i % 3).as_bytes(), &value));
    }
    let err = c.sm.events_since(1, &all_keys(), 0).unwrap_err();
    let WatchError::Compacted {
        compacted_through, ..
    } = err
    else {
        panic!("{err:?}")
    };
    let kept =
        c.sm.events_since(compacted_through + 1, &all_keys(), 0)
            .unwrap();
    let kept_bytes: usize = kept.events.iter().map(prost::Message::encoded_len).sum();
    assert!(kept_bytes as u64 <= WATCH_HISTORY_BYTES);
    // Each event carries the old and the new value: one more would not have fit.
    let one_event = 2 * MAX_VALUE_BYTES as u64;
    assert!(
        kept_bytes as u64 + one_event > WATCH_HISTORY_BYTES,
        "only the oldest dropped"
    );
    assert_eq!(kept.events.last().unwrap().revision, puts);
}

#[test]
fn a_command_with_more_events_than_the_history_holds_is_compacted_whole() {
    let mut c = Coord::new();
    let n = WATCH_HISTORY_EVENTS + 1;
    let requests: Vec<Request> = (0..n)
        .map(|i| Request::anonymous(put_op(format!("k{i:06}").as_bytes(), b"")))
        .collect();
    c.apply(&requests);
    c.op(Op::DeleteRange(DeleteRange::default()));
    let deleted_at = c.sm.revision();
    assert_eq!(
        c.last_events().len() as u64,
        n,
        "live watchers still get every event"
    );
    match c.sm.events_since(deleted_at, &all_keys(), 0) {
        Err(WatchError::Compacted {
            compacted_through, ..
        }) => assert_eq!(compacted_through, deleted_at),
        other => panic!("{other:?}"),
    }
    c.put(b"after", b"", 0);
    let after = c.sm.events_since(deleted_at + 1, &all_keys(), 0).unwrap();
    assert_eq!(
        summary(&after.events),
        vec![(deleted_at + 1, EventKind::Put, b"after".to_vec())]
    );
}

#[test]
fn an_installed_snapshot_answers_late_subscribers_the_same_way() {
    let mut c = Coord::new();
    let s = c.open(TTL_MS);
    c.put(b"a", b"1", s);
    c.lock(b"L", s, false);
    c.close(s);
    let mut target = StateMachine::in_memory().unwrap();
    let chunks: Vec<_> = c.sm.snapshot().unwrap().map(Result::unwrap).collect();
    target.install_snapshot(chunks).unwrap();
    for filter in [all_keys(), EventFilter::lock(b"L".to_vec())] {
        assert_eq!(
            target.events_since(1, &filter, 0).unwrap(),
            c.sm.events_since(1, &filter, 0).unwrap()
        );
    }
}
