//! Semantics of each single-key and range op, and of revisions and versions.

mod common;

use common::*;
use synod_kvstore::{ErrorCode, Expected, KeyValue, Op, Outcome, Scan};

fn kv(key: &[u8], value: &[u8], create: u64, modified: u64, version: u64) -> KeyValue {
    KeyValue {
        key: key.to_vec(),
        value: value.to_vec(),
        create_revision: create,
        mod_revision: modified,
        version,
        session: 0,
        kind: 0,
    }
}

#[test]
fn put_then_get_returns_the_value_with_metadata() {
    let mut h = Harness::new();
    let r = h.op(put(b"a", b"1"));
    assert_eq!(r.revision, 1);
    assert_eq!(h.get(b"a"), Some(kv(b"a", b"1", 1, 1, 1)));
    assert_eq!(h.get(b"missing"), None);
}

#[test]
fn get_through_the_log_answers_like_read() {
    let mut h = Harness::new();
    h.op(put(b"a", b"1"));
    let through_log = h.op(get(b"a"));
    assert_eq!(through_log, h.sm.read(&get(b"a")).unwrap());
    assert_eq!(h.sm.revision(), 1, "a get does not bump the revision");
}

#[test]
fn a_reader_answers_like_read_from_the_moment_it_was_made() {
    let mut h = Harness::new();
    h.op(put(b"a", b"1"));
    let reader = h.sm.reader().unwrap();
    for op in [get(b"a"), get(b"missing"), put(b"a", b"x")] {
        assert_eq!(reader.read(&op).unwrap(), h.sm.read(&op).unwrap(), "{op:?}");
    }
    // A later apply is not seen by a reader made before it.
    h.op(put(b"a", b"2"));
    let then = reader.read(&get(b"a")).unwrap();
    assert_eq!(then.revision, 1);
    let Some(Outcome::Get(got)) = then.outcome else {
        panic!("{then:?}")
    };
    assert_eq!(got.kv, Some(kv(b"a", b"1", 1, 1, 1)));
    drop(reader);
    assert_eq!(h.get(b"a"), Some(kv(b"a", b"2", 1, 2, 2)));
}

#[test]
fn the_reader_is_kept_until_an_apply_or_an_install_changes_the_state() {
    let mut h = Harness::new();
    h.op(put(b"a", b"1"));
    let kept = h.sm.reader().unwrap();
    assert!(std::sync::Arc::ptr_eq(&kept, &h.sm.reader().unwrap()));
    drop(kept);
    h.op(put(b"a", b"2"));
    assert_eq!(h.get(b"a").unwrap().value, b"2");
    let mut source = Harness::new();
    for value in [b"3", b"4", b"5"] {
        source.op(put(b"a", value));
    }
    h.sm.install_snapshot(source.sm.snapshot().unwrap().map(Result::unwrap))
        .unwrap();
    assert_eq!(h.get(b"a").unwrap().value, b"5");
}

#[test]
fn put_overwrites_and_bumps_version_and_mod_revision() {
    let mut h = Harness::new();
    h.op(put(b"a", b"1"));
    h.op(put(b"b", b"x"));
    let r = h.op(put_prev(b"a", b"2"));
    let Some(Outcome::Put(p)) = r.outcome else {
        panic!("{r:?}")
    };
    assert_eq!(p.prev, Some(kv(b"a", b"1", 1, 1, 1)));
    assert_eq!(h.get(b"a"), Some(kv(b"a", b"2", 1, 3, 2)));
}

#[test]
fn put_of_the_same_value_still_counts_as_a_write() {
    let mut h = Harness::new();
    h.op(put(b"a", b"1"));
    h.op(put(b"a", b"1"));
    assert_eq!(h.get(b"a"), Some(kv(b"a", b"1", 1, 2, 2)));
}

#[test]
fn put_without_prev_kv_returns_no_previous_value() {
    let mut h = Harness::new();
    h.op(put(b"a", b"1"));
    let r = h.op(put(b"a", b"2"));
    assert_eq!(r.outcome, Some(Outcome::Put(Default::default())));
}

#[test]
fn empty_values_are_values() {
    let mut h = Harness::new();
    h.op(put(b"a", b""));
    assert_eq!(h.get(b"a"), Some(kv(b"a", b"", 1, 1, 1)));
}

#[test]
fn delete_removes_and_reports_the_previous_value() {
    let mut h = Harness::new();
    h.op(put(b"a", b"1"));
    let r = h.op(delete(b"a"));
    let Some(Outcome::Delete(d)) = r.outcome else {
        panic!("{r:?}")
    };
    assert!(d.deleted);
    assert_eq!(d.prev, Some(kv(b"a", b"1", 1, 1, 1)));
    assert_eq!(r.revision, 2);
    assert_eq!(h.get(b"a"), None);
}

#[test]
fn delete_of_an_absent_key_changes_nothing() {
    let mut h = Harness::new();
    h.op(put(b"a", b"1"));
    let r = h.op(delete(b"zzz"));
    let Some(Outcome::Delete(d)) = r.outcome else {
        panic!("{r:?}")
    };
    assert!(!d.deleted);
    assert_eq!(d.prev, None);
    assert_eq!(r.revision, 1);
    assert_eq!(h.sm.revision(), 1);
}

#[test]
fn recreated_key_restarts_at_version_one_with_a_new_create_revision() {
    let mut h = Harness::new();
    h.op(put(b"a", b"1"));
    h.op(put(b"a", b"2"));
    h.op(delete(b"a"));
    h.op(put(b"a", b"3"));
    assert_eq!(h.get(b"a"), Some(kv(b"a", b"3", 4, 4, 1)));
}

#[test]
fn revision_counts_state_changing_commands_in_a_batch() {
    let mut h = Harness::new();
    let responses = h.apply(&[
        synod_kvstore::Request::anonymous(put(b"a", b"1")),
        synod_kvstore::Request::anonymous(get(b"a")),
        synod_kvstore::Request::anonymous(put(b"b", b"2")),
        synod_kvstore::Request::anonymous(delete(b"nope")),
        synod_kvstore::Request::anonymous(put(b"c", b"3")),
    ]);
    let revisions: Vec<u64> = responses.iter().map(|r| r.revision).collect();
    assert_eq!(revisions, vec![1, 1, 2, 2, 3]);
    assert_eq!(h.sm.revision(), 3);
    assert_eq!(h.get(b"c").unwrap().create_revision, 3);
}

fn seed(h: &mut Harness, keys: &[&[u8]]) {
    for key in keys {
        h.op(put(key, b"v"));
    }
}

fn keys_of(kvs: &[KeyValue]) -> Vec<Vec<u8>> {
    kvs.iter().map(|kv| kv.key.clone()).collect()
}

fn scan_keys(h: &Harness, op: Op) -> (Vec<Vec<u8>>, bool) {
    let r = h.sm.read(&op).unwrap();
    let Some(Outcome::Scan(s)) = r.outcome else {
        panic!("{r:?}")
    };
    (keys_of(&s.kvs), s.more)
}

fn owned(keys: &[&[u8]]) -> Vec<Vec<u8>> {
    keys.iter().map(|k| k.to_vec()).collect()
}

#[test]
fn scan_returns_a_half_open_range_in_key_order() {
    let mut h = Harness::new();
    seed(&mut h, &[b"c", b"a", b"b", b"d"]);
    assert_eq!(
        scan_keys(&h, scan(b"b", b"d", b"", 0)),
        (owned(&[b"b", b"c"]), false)
    );
    assert_eq!(
        scan_keys(&h, scan(b"b", b"", b"", 0)),
        (owned(&[b"b", b"c", b"d"]), false),
        "an empty end means to the end of the keyspace"
    );
    assert_eq!(
        scan_keys(&h, scan(b"", b"", b"", 0)).0.len(),
        4,
        "empty start and end mean everything"
    );
    assert_eq!(scan_keys(&h, scan(b"d", b"b", b"", 0)), (vec![], false));
}

#[test]
fn scan_by_prefix_intersects_with_start_and_end() {
    let mut h = Harness::new();
    seed(&mut h, &[b"a", b"a/1", b"a/2", b"a/3", b"a0", b"b/1"]);
    assert_eq!(
        scan_keys(&h, scan(b"", b"", b"a/", 0)).0,
        owned(&[b"a/1", b"a/2", b"a/3"])
    );
    assert_eq!(
        scan_keys(&h, scan(b"a/2", b"", b"a/", 0)).0,
        owned(&[b"a/2", b"a/3"])
    );
    assert_eq!(
        scan_keys(&h, scan(b"", b"a/3", b"a/", 0)).0,
        owned(&[b"a/1", b"a/2"])
    );
    assert_eq!(
        scan_keys(&h, scan(b"", b"", b"zz", 0)).0,
        Vec::<Vec<u8>>::new()
    );
}

#[test]
fn scan_prefix_of_0xff_bytes_reaches_the_end_of_the_keyspace() {
    let mut h = Harness::new();
    seed(&mut h, &[b"\xfe", b"\xff", b"\xff\x01", b"\xff\xff\xff"]);
    assert_eq!(
        scan_keys(&h, scan(b"", b"", b"\xff", 0)).0,
        owned(&[b"\xff", b"\xff\x01", b"\xff\xff\xff"])
    );
}

#[test]
fn scan_limit_truncates_and_says_more() {
    let mut h = Harness::new();
    seed(&mut h, &[b"a", b"b", b"c"]);
    assert_eq!(
        scan_keys(&h, scan(b"", b"", b"", 2)),
        (owned(&[b"a", b"b"]), true)
    );
    assert_eq!(
        scan_keys(&h, scan(b"", b"", b"", 3)),
        (owned(&[b"a", b"b", b"c"]), false)
    );
}

#[test]
fn scan_keys_only_leaves_values_empty() {
    let mut h = Harness::new();
    seed(&mut h, &[b"a"]);
    let op = Op::Scan(Scan {
        keys_only: true,
        ..Default::default()
    });
    let Some(Outcome::Scan(s)) = h.sm.read(&op).unwrap().outcome else {
        panic!()
    };
    assert_eq!(s.kvs, vec![kv(b"a", b"", 1, 1, 1)]);
}

#[test]
fn scan_stops_at_the_response_byte_budget() {
    let mut h = Harness::new();
    let big = vec![7u8; synod_wire::limits::MAX_SCAN_RESPONSE_BYTES / 4];
    for i in 0..6u8 {
        h.op(put(&[b'k', i], &big));
    }
    let (keys, more) = scan_keys(&h, scan(b"", b"", b"", 0));
    assert_eq!(
        keys.len(),
        3,
        "a budget of four values' bytes holds three values and their keys"
    );
    assert!(more);
}

#[test]
fn delete_range_removes_the_range_under_one_revision() {
    let mut h = Harness::new();
    seed(&mut h, &[b"a", b"b", b"c", b"d"]);
    let r = h.op(delete_range(b"b", b"d", b""));
    assert_eq!(
        r.outcome,
        Some(Outcome::DeleteRange(synod_kvstore::DeleteRangeResponse {
            deleted: 2
        }))
    );
    assert_eq!(r.revision, 5);
    assert_eq!(keys_of(&h.all()), owned(&[b"a", b"d"]));
}

#[test]
fn delete_range_by_prefix_and_to_the_end() {
    let mut h = Harness::new();
    seed(&mut h, &[b"a", b"p/1", b"p/2", b"q", b"r"]);
    h.op(delete_range(b"", b"", b"p/"));
    assert_eq!(keys_of(&h.all()), owned(&[b"a", b"q", b"r"]));
    h.op(delete_range(b"q", b"", b""));
    assert_eq!(keys_of(&h.all()), owned(&[b"a"]));
}

#[test]
fn delete_range_of_nothing_changes_nothing() {
    let mut h = Harness::new();
    seed(&mut h, &[b"a"]);
    let r = h.op(delete_range(b"x", b"y", b""));
    assert_eq!(r.revision, 1);
    assert_eq!(h.sm.revision(), 1);
}

#[test]
fn cas_on_absent_creates_only_if_absent() {
    let mut h = Harness::new();
    let r = h.op(cas(b"a", None, b"1"));
    let Some(Outcome::CompareAndSwap(c)) = r.outcome else {
        panic!("{r:?}")
    };
    assert!(c.succeeded);
    let r = h.op(cas(b"a", None, b"2"));
    let Some(Outcome::CompareAndSwap(c)) = r.outcome else {
        panic!("{r:?}")
    };
    assert!(!c.succeeded);
    assert_eq!(c.current, Some(kv(b"a", b"1", 1, 1, 1)));
    assert_eq!(h.sm.revision(), 1);
}

#[test]
fn cas_on_value_swaps_only_on_a_match() {
    let mut h = Harness::new();
    h.op(put(b"a", b"1"));
    let miss = h.op(cas(b"a", Some(Expected::Value(b"0".to_vec())), b"2"));
    assert!(matches!(miss.outcome, Some(Outcome::CompareAndSwap(ref c)) if !c.succeeded));
    let hit = h.op(cas(b"a", Some(Expected::Value(b"1".to_vec())), b"2"));
    assert!(matches!(hit.outcome, Some(Outcome::CompareAndSwap(ref c)) if c.succeeded));
    assert_eq!(h.get(b"a"), Some(kv(b"a", b"2", 1, 2, 2)));
    let absent = h.op(cas(b"zz", Some(Expected::Value(b"".to_vec())), b"2"));
    assert!(
        matches!(absent.outcome, Some(Outcome::CompareAndSwap(ref c)) if !c.succeeded && c.current.is_none()),
        "an absent key matches no expected value, not even empty"
    );
}

#[test]
fn cas_on_mod_revision_swaps_only_on_a_match() {
    let mut h = Harness::new();
    h.op(put(b"a", b"1"));
    h.op(put(b"a", b"2"));
    let stale = h.op(cas(b"a", Some(Expected::ModRevision(1)), b"x"));
    assert!(matches!(stale.outcome, Some(Outcome::CompareAndSwap(ref c)) if !c.succeeded));
    let fresh = h.op(cas(b"a", Some(Expected::ModRevision(2)), b"x"));
    assert!(matches!(fresh.outcome, Some(Outcome::CompareAndSwap(ref c)) if c.succeeded));
    assert_eq!(h.get(b"a").unwrap().value, b"x");
    let create = h.op(cas(b"new", Some(Expected::ModRevision(0)), b"y"));
    assert!(
        matches!(create.outcome, Some(Outcome::CompareAndSwap(ref c)) if c.succeeded),
        "mod revision 0 means absent"
    );
}

fn incr_value(h: &mut Harness, key: &[u8], delta: i64) -> i64 {
    match h.op(incr(key, delta)).outcome {
        Some(Outcome::Incr(i)) => i.value,
        other => panic!("incr answered {other:?}"),
    }
}

#[test]
fn incr_counts_from_zero_and_stores_decimal_ascii() {
    let mut h = Harness::new();
    assert_eq!(incr_value(&mut h, b"n", 5), 5);
    assert_eq!(incr_value(&mut h, b"n", -7), -2);
    assert_eq!(h.get(b"n").unwrap().value, b"-2");
    h.op(put(b"m", b"41"));
    assert_eq!(incr_value(&mut h, b"m", 1), 42);
    assert_eq!(h.get(b"m").unwrap().version, 2);
}

#[test]
fn incr_of_a_non_integer_is_refused_and_changes_nothing() {
    let mut h = Harness::new();
    for value in [&b"abc"[..], b"1.5", b" 1", b"+1", b"007", b""] {
        h.op(put(b"k", value));
        let revision = h.sm.revision();
        let r = h.op(incr(b"k", 1));
        assert_eq!(error_code(&r), ErrorCode::NotAnInteger, "{value:?}");
        assert_eq!(h.get(b"k").unwrap().value, value);
        assert_eq!(h.sm.revision(), revision);
    }
}

#[test]
fn incr_overflow_is_refused_and_changes_nothing() {
    let mut h = Harness::new();
    h.op(put(b"k", i64::MAX.to_string().as_bytes()));
    let r = h.op(incr(b"k", 1));
    assert_eq!(error_code(&r), ErrorCode::IncrOverflow);
    assert!(r.as_error().unwrap().message.contains("overflow"));
    h.op(put(b"k", i64::MIN.to_string().as_bytes()));
    assert_eq!(error_code(&h.op(incr(b"k", -1))), ErrorCode::IncrOverflow);
    assert_eq!(incr_value(&mut h, b"k", 0), i64::MIN);
}

#[test]
fn read_refuses_writes() {
    let h = Harness::new();
    let r = h.sm.read(&put(b"a", b"1")).unwrap();
    assert_eq!(error_code(&r), ErrorCode::NotReadOnly);
    assert_eq!(h.get(b"a"), None);
}

#[test]
fn no_op_slot_only_advances_the_applied_index() {
    let mut h = Harness::new();
    h.op(put(b"a", b"1"));
    assert!(h.apply_raw(&[]).is_empty());
    assert_eq!(h.sm.applied_index(), 2);
    assert_eq!(h.sm.revision(), 1);
}

#[test]
#[should_panic(expected = "strictly in order")]
fn applying_a_slot_out_of_order_panics() {
    let mut h = Harness::new();
    h.sm.apply_slots([(2, &[][..])]).unwrap();
}
