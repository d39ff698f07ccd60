//! Key expiry as the state machine applies it: which writes set, keep or clear a TTL, EXPIRE's
//! conditions, PERSIST, the leader's ExpireKeys and CheckpointKeys, and what is refused. No
//! clock anywhere: the leader's side is in `key_expiry_clock.rs`.

mod coord;

use coord::*;
use synod_kvstore::{
    CheckpointKeys, CompareAndSwap, DeleteRange, ErrorCode, Expire, ExpireIf, ExpireKeyEntry,
    ExpireKeys, Get, Incr, KeyCheckpointEntry, KeyExpiry, KeyExpiryEvent, KeyTtl, Op, Outcome,
    Persist, Put, Request, Response, StateMachine, Ttl, TtlResponse, Txn, TxnOp, TxnOpKind,
};
use synod_wire::limits::{MAX_KEY_EXPIRY_ENTRIES, MAX_KEY_TTL_MS};

fn put_op(key: &[u8], value: &[u8]) -> Op {
    Op::Put(Put {
        key: key.to_vec(),
        value: value.to_vec(),
        prev_kv: false,
    })
}

fn put_ttl(c: &mut Coord, key: &[u8], value: &[u8], key_ttl: KeyTtl) -> Response {
    c.request(Request::anonymous(put_op(key, value)).with_key_ttl(key_ttl))
}

fn ttl(sm: &StateMachine, key: &[u8]) -> TtlResponse {
    match sm
        .read(&Op::Ttl(Ttl { key: key.to_vec() }))
        .unwrap()
        .outcome
    {
        Some(Outcome::Ttl(t)) => t,
        other => panic!("ttl answered {other:?}"),
    }
}

fn expire(c: &mut Coord, key: &[u8], ttl_ms: i64, condition: ExpireIf, revision: u64) -> bool {
    let r = c.op(Op::Expire(Expire {
        key: key.to_vec(),
        ttl_ms,
        condition: condition as i32,
        expiry_revision: revision,
    }));
    match r.outcome {
        Some(Outcome::Expire(e)) => e.applied,
        other => panic!("expire answered {other:?}"),
    }
}

fn persist(c: &mut Coord, key: &[u8]) -> bool {
    match c.op(Op::Persist(Persist { key: key.to_vec() })).outcome {
        Some(Outcome::Persist(p)) => p.removed,
        other => panic!("persist answered {other:?}"),
    }
}

fn expire_keys(c: &mut Coord, entries: &[(&[u8], u64)]) -> u64 {
    let entries = entries
        .iter()
        .map(|(key, revision)| ExpireKeyEntry {
            key: key.to_vec(),
            expiry_revision: *revision,
        })
        .collect();
    match c.op(Op::ExpireKeys(ExpireKeys { entries })).outcome {
        Some(Outcome::ExpireKeys(e)) => e.deleted,
        other => panic!("expire keys answered {other:?}"),
    }
}

#[test]
fn a_put_with_a_ttl_names_its_expiry_by_its_revision() {
    let mut c = Coord::new();
    let r = put_ttl(&mut c, b"k", b"v", KeyTtl::expire_in(1_500));
    assert!(!r.is_error(), "{r:?}");
    let t = ttl(&c.sm, b"k");
    assert_eq!(
        (t.exists, t.expiry_revision, t.remaining_ms, t.leader_clock),
        (true, r.revision, 1_500, false)
    );
    assert_eq!(
        c.effects.key_expiry_events,
        [KeyExpiryEvent::Set {
            key: b"k".to_vec(),
            expiry_revision: r.revision,
            ttl_ms: 1_500
        }]
    );
    assert_eq!(ttl(&c.sm, b"none"), TtlResponse::default());
}

#[test]
fn a_plain_put_clears_the_ttl_and_keep_keeps_it() {
    let mut c = Coord::new();
    let set = put_ttl(&mut c, b"k", b"1", KeyTtl::expire_in(1_000)).revision;
    put_ttl(&mut c, b"k", b"2", KeyTtl::keep());
    assert_eq!(ttl(&c.sm, b"k").expiry_revision, set, "KEEPTTL keeps it");
    assert!(c.effects.key_expiry_events.is_empty());
    c.put(b"k", b"3", 0);
    assert_eq!(ttl(&c.sm, b"k").expiry_revision, 0, "SET without it clears");
    assert_eq!(
        c.effects.key_expiry_events,
        [KeyExpiryEvent::Cleared { key: b"k".to_vec() }]
    );
    put_ttl(&mut c, b"new", b"1", KeyTtl::keep());
    assert_eq!(ttl(&c.sm, b"new").expiry_revision, 0, "nothing to keep");
}

#[test]
fn incr_keeps_the_ttl_while_compare_and_swap_and_transaction_puts_clear_it() {
    let mut c = Coord::new();
    let set = put_ttl(&mut c, b"n", b"1", KeyTtl::expire_in(1_000)).revision;
    c.op(Op::Incr(Incr {
        key: b"n".to_vec(),
        delta: 1,
    }));
    assert_eq!(ttl(&c.sm, b"n").expiry_revision, set);
    let cas = Op::CompareAndSwap(CompareAndSwap {
        key: b"n".to_vec(),
        expected: None,
        new_value: b"x".to_vec(),
    });
    c.op(cas.clone());
    assert_eq!(
        ttl(&c.sm, b"n").expiry_revision,
        set,
        "a failed CAS writes nothing"
    );
    let txn = |key: &[u8]| {
        Op::Txn(Txn {
            compares: Vec::new(),
            success: vec![TxnOp {
                op: Some(TxnOpKind::Put(Put {
                    key: key.to_vec(),
                    value: b"t".to_vec(),
                    prev_kv: false,
                })),
            }],
            failure: Vec::new(),
        })
    };
    c.op(txn(b"n"));
    assert_eq!(ttl(&c.sm, b"n").expiry_revision, 0);
    let r = c.request(Request::anonymous(txn(b"n")).with_key_ttl(KeyTtl::expire_in(50)));
    assert_eq!(
        ttl(&c.sm, b"n").expiry_revision,
        r.revision,
        "a txn may set it"
    );
    c.request(Request::anonymous(txn(b"n")).with_key_ttl(KeyTtl::keep()));
    assert_eq!(ttl(&c.sm, b"n").expiry_revision, r.revision, "or keep it");
    c.request(
        Request::anonymous(Op::Incr(Incr {
            key: b"n2".to_vec(),
            delta: 1,
        }))
        .with_key_ttl(KeyTtl::none()),
    );
    assert_eq!(ttl(&c.sm, b"n2").expiry_revision, 0);
}

#[test]
fn expire_sets_an_expiry_without_writing_the_key() {
    let mut c = Coord::new();
    c.put(b"k", b"v", 0);
    let before = c.get(b"k").unwrap();
    assert!(expire(&mut c, b"k", 2_000, ExpireIf::Always, 0));
    let rev = c.sm.revision();
    assert_eq!(rev, before.mod_revision + 1, "it consumes a revision");
    assert_eq!(c.get(b"k").unwrap(), before, "value, version, mod revision");
    let effects = &c.effects;
    assert!(effects.events.is_empty(), "watchers see no write");
    assert_eq!(
        effects.key_expiry_events,
        [KeyExpiryEvent::Set {
            key: b"k".to_vec(),
            expiry_revision: rev,
            ttl_ms: 2_000
        }]
    );
    assert_eq!(
        (
            ttl(&c.sm, b"k").expiry_revision,
            ttl(&c.sm, b"k").remaining_ms
        ),
        (rev, 2_000)
    );
    assert!(
        !expire(&mut c, b"none", 2_000, ExpireIf::Always, 0),
        "a missing key"
    );
    assert_eq!(c.sm.revision(), rev, "a no-op consumes nothing");
}

#[test]
fn a_non_positive_expire_deletes_the_key() {
    let mut c = Coord::new();
    for (key, ttl_ms) in [(&b"a"[..], 0), (b"b", -1), (b"c", i64::MIN)] {
        c.put(key, b"v", 0);
        assert!(expire(&mut c, key, ttl_ms, ExpireIf::Always, 0));
        assert_eq!(c.get(key), None, "{ttl_ms}");
        assert!(!expire(&mut c, key, ttl_ms, ExpireIf::Always, 0));
    }
}

#[test]
fn expire_conditions_compare_the_current_expiry() {
    let mut c = Coord::new();
    c.put(b"k", b"v", 0);
    assert!(!expire(&mut c, b"k", 100, ExpireIf::HasExpiry, 0), "XX");
    assert!(expire(&mut c, b"k", 100, ExpireIf::NoExpiry, 0), "NX");
    let first = ttl(&c.sm, b"k").expiry_revision;
    assert!(!expire(&mut c, b"k", 200, ExpireIf::NoExpiry, 0), "NX");
    assert!(!expire(&mut c, b"k", 200, ExpireIf::ExpiryRevision, 0));
    assert!(!expire(&mut c, b"k", 0, ExpireIf::NoExpiry, 0));
    assert!(c.get(b"k").is_some(), "a failed condition deletes nothing");
    assert!(expire(&mut c, b"k", 300, ExpireIf::ExpiryRevision, first));
    let second = ttl(&c.sm, b"k");
    assert!(second.expiry_revision > first);
    assert_eq!(second.remaining_ms, 300);
    assert!(expire(&mut c, b"k", 400, ExpireIf::HasExpiry, 0), "XX");
    assert!(
        !expire(&mut c, b"k", 1, ExpireIf::ExpiryRevision, first),
        "stale"
    );
    persist(&mut c, b"k");
    assert!(expire(&mut c, b"k", 9, ExpireIf::ExpiryRevision, 0));
}

#[test]
fn persist_removes_an_expiry_once() {
    let mut c = Coord::new();
    c.put(b"k", b"v", 0);
    assert!(!persist(&mut c, b"k"));
    assert!(!persist(&mut c, b"none"));
    let rev = c.sm.revision();
    put_ttl(&mut c, b"k", b"v", KeyTtl::expire_in(10));
    let before = c.get(b"k").unwrap();
    assert!(persist(&mut c, b"k"));
    assert_eq!(c.sm.revision(), rev + 2, "the put and the persist");
    assert_eq!(c.get(b"k").unwrap(), before);
    assert_eq!(ttl(&c.sm, b"k").expiry_revision, 0);
    assert!(!persist(&mut c, b"k"));
}

#[test]
fn every_deletion_ends_the_expiry_so_a_recreated_key_has_none() {
    let mut c = Coord::new();
    let session = c.open(TTL_MS);
    for key in [&b"d"[..], b"r/1", b"r/2", b"e"] {
        put_ttl(&mut c, key, b"v", KeyTtl::expire_in(1_000));
    }
    c.request(Request::anonymous(put_op(b"s", b"v")).with_key_ttl(KeyTtl::expire_in(1_000)));
    c.request(
        Request::anonymous(put_op(b"s", b"v"))
            .in_session(session)
            .with_key_ttl(KeyTtl::keep()),
    );
    assert_eq!(c.sm.key_expiries().unwrap().len(), 5);
    c.delete(b"d");
    c.op(Op::DeleteRange(DeleteRange {
        start: Vec::new(),
        end: Vec::new(),
        prefix: b"r/".to_vec(),
    }));
    c.close(session);
    let left: Vec<Vec<u8>> =
        c.sm.key_expiries()
            .unwrap()
            .into_iter()
            .map(|e| e.key)
            .collect();
    assert_eq!(left, [b"e".to_vec()]);
    for key in [&b"d"[..], b"r/1", b"s"] {
        c.put(key, b"again", 0);
        assert_eq!(ttl(&c.sm, key).expiry_revision, 0);
    }
}

#[test]
fn expire_keys_deletes_only_the_expiry_it_names() {
    let mut c = Coord::new();
    let a = put_ttl(&mut c, b"a", b"1", KeyTtl::expire_in(100)).revision;
    let b = put_ttl(&mut c, b"b", b"1", KeyTtl::expire_in(100)).revision;
    let p = put_ttl(&mut c, b"p", b"1", KeyTtl::expire_in(100)).revision;
    c.put(b"plain", b"1", 0);
    // Meanwhile, b is set again with a new TTL and p persisted.
    put_ttl(&mut c, b"b", b"2", KeyTtl::expire_in(100));
    persist(&mut c, b"p");
    let rev = c.sm.revision();
    let deleted = expire_keys(&mut c, &[(b"a", a), (b"b", b), (b"p", p), (b"plain", 0)]);
    assert_eq!(deleted, 1);
    assert_eq!(c.sm.revision(), rev + 1, "one revision for the batch");
    assert_eq!(c.get(b"a"), None);
    assert_eq!(c.get(b"b").unwrap().value, b"2");
    assert!(c.get(b"p").is_some() && c.get(b"plain").is_some());
    let effects = &c.effects;
    assert_eq!(effects.events.len(), 1, "a delete event for a");
    assert_eq!(
        effects.key_expiry_events,
        [KeyExpiryEvent::Cleared { key: b"a".to_vec() }]
    );
    assert_eq!(expire_keys(&mut c, &[(b"a", a)]), 0, "a retry is harmless");
    assert_eq!(c.sm.revision(), rev + 1);
}

#[test]
fn checkpoints_lower_the_recorded_ttl_of_the_expiry_they_name() {
    let mut c = Coord::new();
    let a = put_ttl(&mut c, b"a", b"1", KeyTtl::expire_in(1_000)).revision;
    let rev = c.sm.revision();
    let entry = |key: &[u8], revision, remaining_ms| KeyCheckpointEntry {
        key: key.to_vec(),
        expiry_revision: revision,
        remaining_ms,
    };
    let checkpoint = |entries| Op::CheckpointKeys(CheckpointKeys { entries });
    let r = c.op(checkpoint(vec![
        entry(b"a", a, 600),
        entry(b"a", a + 7, 1),
        entry(b"none", 1, 1),
    ]));
    assert!(matches!(r.outcome, Some(Outcome::CheckpointKeys(k)) if k.applied == 1));
    assert_eq!(ttl(&c.sm, b"a").remaining_ms, 600);
    c.op(checkpoint(vec![entry(b"a", a, 900)]));
    assert_eq!(ttl(&c.sm, b"a").remaining_ms, 600, "never raised");
    assert_eq!(c.sm.revision(), rev, "checkpoints consume no revision");
    assert_eq!(
        c.sm.key_expiries().unwrap(),
        [KeyExpiry {
            key: b"a".to_vec(),
            expiry_revision: a,
            remaining_ms: 600
        }]
    );
}

#[test]
fn bad_ttls_and_batches_are_refused_and_change_nothing() {
    let mut c = Coord::new();
    c.put(b"k", b"v", 0);
    let rev = c.sm.revision();
    let conflict = KeyTtl {
        ttl_ms: 5,
        keep: true,
    };
    assert_eq!(
        code(&put_ttl(&mut c, b"k", b"x", conflict)),
        ErrorCode::KeyTtlConflict
    );
    let too_long = KeyTtl::expire_in(MAX_KEY_TTL_MS + 1);
    assert_eq!(
        code(&put_ttl(&mut c, b"k", b"x", too_long)),
        ErrorCode::KeyTtlOutOfRange
    );
    let expire_op = |ttl_ms, condition| {
        Op::Expire(Expire {
            key: b"k".to_vec(),
            ttl_ms,
            condition,
            expiry_revision: 0,
        })
    };
    assert_eq!(
        code(&c.op(expire_op(i64::MAX, 0))),
        ErrorCode::KeyTtlOutOfRange
    );
    assert_eq!(code(&c.op(expire_op(10, 9))), ErrorCode::InvalidEnum);
    assert_eq!(
        code(&c.op(Op::Persist(Persist { key: Vec::new() }))),
        ErrorCode::EmptyKey
    );
    let entries = vec![
        ExpireKeyEntry {
            key: b"k".to_vec(),
            expiry_revision: 1,
        };
        MAX_KEY_EXPIRY_ENTRIES + 1
    ];
    assert_eq!(
        code(&c.op(Op::ExpireKeys(ExpireKeys { entries }))),
        ErrorCode::ExpiryBatchTooLarge
    );
    assert_eq!(c.get(b"k").unwrap().value, b"v");
    assert_eq!(c.sm.revision(), rev);
    assert!(c.sm.key_expiries().unwrap().is_empty());
}

#[test]
fn ttl_is_served_outside_the_log_and_expiry_commands_are_leader_only() {
    assert!(Op::Ttl(Ttl { key: b"k".to_vec() }).is_read_only());
    assert!(!Op::Persist(Persist { key: b"k".to_vec() }).is_read_only());
    assert!(Op::ExpireKeys(ExpireKeys::default()).is_leader_only());
    assert!(Op::CheckpointKeys(CheckpointKeys::default()).is_leader_only());
    assert!(!Op::Expire(Expire::default()).is_leader_only());
    let mut c = Coord::new();
    put_ttl(&mut c, b"k", b"v", KeyTtl::expire_in(10));
    // Served through the log too (the leader does so for a key past its deadline).
    let r = c.op(Op::Ttl(Ttl { key: b"k".to_vec() }));
    assert!(matches!(r.outcome, Some(Outcome::Ttl(t)) if t.remaining_ms == 10));
    let r = c.op(Op::Get(Get { key: b"k".to_vec() }));
    assert!(matches!(r.outcome, Some(Outcome::Get(g)) if g.kv.is_some()));
}

#[test]
fn expiries_travel_in_snapshots_and_count_in_the_state_hash() {
    let mut c = Coord::new();
    c.put(b"k", b"v", 0);
    let plain = c.sm.state_hash().unwrap();
    let mut twin = Coord::new();
    twin.put(b"k", b"v", 0);
    put_ttl(&mut c, b"k", b"v", KeyTtl::expire_in(10));
    put_ttl(&mut twin, b"k", b"v", KeyTtl::expire_in(11));
    assert_ne!(c.sm.state_hash().unwrap(), plain);
    assert_ne!(c.sm.state_hash().unwrap(), twin.sm.state_hash().unwrap());
    let mut restored = StateMachine::in_memory().unwrap();
    restored
        .install_snapshot(c.sm.snapshot().unwrap().map(Result::unwrap))
        .unwrap();
    assert_eq!(restored.state_hash().unwrap(), c.sm.state_hash().unwrap());
    assert_eq!(
        restored.key_expiries().unwrap(),
        c.sm.key_expiries().unwrap()
    );
    assert_eq!(ttl(&restored, b"k").remaining_ms, 10);
}
