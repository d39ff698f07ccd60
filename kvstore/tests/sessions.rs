//! Sessions: ids, TTL bounds, expiry driven by the leader's clock, ephemeral keys, checkpoints
//! and the leader-change rule (etcd#9395).

mod coord;

use coord::*;
use synod_kvstore::{
    CheckpointEntry, CheckpointSessions, ErrorCode, ExpireSession, Op, OpenSession, Outcome, Put,
    Request, SessionClockConfig, StateMachine, Txn, TxnOp, TxnOpKind,
};
use synod_wire::limits::{MAX_SESSION_KEYS, MAX_SESSION_TTL_MS, MIN_SESSION_TTL_MS};

// The update fills `bugs` when a workspace test build enables `bug-injection`.
#[allow(clippy::needless_update)]
fn config() -> SessionClockConfig {
    SessionClockConfig {
        checkpoint_interval_ms: 1_000,
        lock_delay_ms: 5_000,
        retry_ms: 500,
        ..SessionClockConfig::default()
    }
}

#[test]
fn a_session_id_is_the_revision_its_open_consumed() {
    let mut c = Coord::new();
    c.put(b"a", b"1", 0);
    let s = c.open(TTL_MS);
    assert_eq!(s, 2);
    assert_eq!(c.sm.revision(), 2);
    let mut other = Coord::new();
    other.put(b"a", b"1", 0);
    assert_eq!(other.open(TTL_MS), s, "ids do not depend on the node");
}

#[test]
fn ttls_outside_the_bounds_are_refused() {
    let mut c = Coord::new();
    for ttl_ms in [0, MIN_SESSION_TTL_MS - 1, MAX_SESSION_TTL_MS + 1, u64::MAX] {
        let r = c.op(Op::OpenSession(OpenSession { ttl_ms }));
        assert_eq!(code(&r), ErrorCode::TtlOutOfRange, "{ttl_ms}");
    }
    assert_eq!(c.sm.revision(), 0);
    c.open(MIN_SESSION_TTL_MS);
    c.open(MAX_SESSION_TTL_MS);
}

#[test]
fn keep_alive_and_close_of_an_unknown_session_are_refused() {
    let mut c = Coord::new();
    assert_eq!(code(&c.keep_alive(7)), ErrorCode::SessionNotFound);
    assert_eq!(code(&c.keep_alive(0)), ErrorCode::SessionNotFound);
    assert_eq!(code(&c.close(7)), ErrorCode::SessionNotFound);
}

#[test]
fn keep_alive_consumes_no_revision_and_counts() {
    let mut c = Coord::new();
    let s = c.open(TTL_MS);
    let before = c.sm.revision();
    let r = c.keep_alive(s);
    match r.outcome {
        Some(Outcome::KeepAlive(k)) => assert_eq!((k.ttl_ms, k.keepalives), (TTL_MS, 1)),
        other => panic!("{other:?}"),
    }
    assert_eq!(c.sm.revision(), before);
}

#[test]
fn the_leader_expires_a_session_exactly_at_its_deadline() {
    let mut d = Driver::new(config());
    let s = match d.op(Op::OpenSession(OpenSession { ttl_ms: 5_000 })).outcome {
        Some(Outcome::OpenSession(o)) => o.session,
        other => panic!("{other:?}"),
    };
    d.run_until(4_999, 100);
    assert!(d.coord.is_open(s), "alive before its TTL");
    d.advance_to(5_000);
    assert!(!d.coord.is_open(s), "expired at its TTL");
    assert_eq!(d.expired_at(s), Some(5_000));
}

#[test]
fn a_keep_alive_restarts_the_deadline() {
    let mut d = Driver::new(config());
    let s = match d.op(Op::OpenSession(OpenSession { ttl_ms: 5_000 })).outcome {
        Some(Outcome::OpenSession(o)) => o.session,
        other => panic!("{other:?}"),
    };
    d.run_until(4_000, 100);
    d.op(Op::KeepAlive(synod_kvstore::KeepAlive { session: s }));
    d.run_until(8_999, 100);
    assert!(d.coord.is_open(s));
    d.advance_to(9_000);
    assert!(!d.coord.is_open(s));
}

#[test]
fn an_expiry_decided_before_a_keep_alive_applied_is_ignored() {
    let mut c = Coord::new();
    let s = c.open(TTL_MS);
    // The leader decides with keep-alive count 0; a keep-alive applies first.
    let stale = Request::anonymous(Op::ExpireSession(ExpireSession {
        session: s,
        keepalives: 0,
    }));
    let keep_alive = Request::anonymous(Op::KeepAlive(synod_kvstore::KeepAlive { session: s }));
    let responses = c.apply(&[keep_alive, stale]);
    match &responses[1].outcome {
        Some(Outcome::ExpireSession(e)) => assert!(!e.expired),
        other => panic!("{other:?}"),
    }
    assert!(c.is_open(s));
}

#[test]
fn a_checkpoint_decided_before_a_keep_alive_applied_is_ignored() {
    let mut c = Coord::new();
    let s = c.open(TTL_MS);
    c.keep_alive(s);
    let stale = Op::CheckpointSessions(CheckpointSessions {
        entries: vec![CheckpointEntry {
            session: s,
            remaining_ms: 10,
            keepalives: 0,
        }],
    });
    c.op(stale);
    let info = c.sm.sessions().unwrap()[0];
    assert_eq!(
        info.remaining_ms, TTL_MS,
        "the keep-alive's full TTL stands"
    );
    let fresh = Op::CheckpointSessions(CheckpointSessions {
        entries: vec![CheckpointEntry {
            session: s,
            remaining_ms: 10,
            keepalives: 1,
        }],
    });
    c.op(fresh);
    assert_eq!(c.sm.sessions().unwrap()[0].remaining_ms, 10);
}

#[test]
fn a_new_leader_restarts_deadlines_from_the_checkpointed_remaining_ttl() {
    let mut d = Driver::new(config());
    let s = match d.op(Op::OpenSession(OpenSession { ttl_ms: 5_000 })).outcome {
        Some(Outcome::OpenSession(o)) => o.session,
        other => panic!("{other:?}"),
    };
    d.run_until(3_000, 100); // checkpoints at 1 s, 2 s, 3 s
    assert_eq!(d.coord.sm.sessions().unwrap()[0].remaining_ms, 2_000);
    d.now_ms = 3_500; // the leader fails; a new one is elected half a second later
    d.new_leader();
    assert_eq!(d.clock.deadline_ms(s), Some(5_500));
    d.run_until(5_499, 100);
    assert!(
        d.coord.is_open(s),
        "never earlier than the client could expect"
    );
    d.advance_to(5_500);
    assert!(!d.coord.is_open(s));
}

#[test]
fn a_leader_change_right_after_a_keep_alive_gives_a_full_ttl() {
    let mut d = Driver::new(config());
    let s = match d.op(Op::OpenSession(OpenSession { ttl_ms: 5_000 })).outcome {
        Some(Outcome::OpenSession(o)) => o.session,
        other => panic!("{other:?}"),
    };
    d.run_until(4_900, 100); // last checkpoint at 4 s: 1 s remaining
    d.op(Op::KeepAlive(synod_kvstore::KeepAlive { session: s }));
    d.now_ms = 5_000; // the leader dies before its next checkpoint
    d.new_leader();
    assert_eq!(d.clock.deadline_ms(s), Some(10_000));
    d.run_until(9_900, 100);
    assert!(
        d.coord.is_open(s),
        "the client was promised 5 s from its keep-alive"
    );
}

#[test]
fn ephemeral_keys_vanish_when_their_session_expires_or_closes() {
    let mut c = Coord::new();
    let s1 = c.open(TTL_MS);
    let s2 = c.open(TTL_MS);
    c.put(b"e1", b"x", s1);
    c.put(b"e2", b"y", s2);
    c.put(b"p", b"z", 0);
    assert_eq!(c.get(b"e1").unwrap().session, s1);
    let r = c.expire(s1);
    match r.outcome {
        Some(Outcome::ExpireSession(e)) => assert!(e.expired && e.deleted_keys == 1),
        other => panic!("{other:?}"),
    }
    assert!(c.get(b"e1").is_none());
    c.close(s2);
    assert!(c.get(b"e2").is_none());
    assert_eq!(c.get(b"p").unwrap().value, b"z");
}

#[test]
fn a_put_without_session_makes_an_ephemeral_key_persistent() {
    let mut c = Coord::new();
    let s = c.open(TTL_MS);
    c.put(b"k", b"1", s);
    c.put(b"k", b"2", 0);
    c.close(s);
    assert_eq!(c.get(b"k").unwrap().value, b"2");
}

#[test]
fn a_key_moves_between_sessions_with_its_last_put() {
    let mut c = Coord::new();
    let s1 = c.open(TTL_MS);
    let s2 = c.open(TTL_MS);
    c.put(b"k", b"1", s1);
    c.put(b"k", b"2", s2);
    c.close(s1);
    assert_eq!(c.get(b"k").unwrap().session, s2);
    c.close(s2);
    assert!(c.get(b"k").is_none());
}

#[test]
fn a_deleted_ephemeral_key_is_not_deleted_again_when_recreated_persistent() {
    let mut c = Coord::new();
    let s = c.open(TTL_MS);
    c.put(b"k", b"1", s);
    c.delete(b"k");
    c.put(b"k", b"2", 0);
    c.close(s);
    assert_eq!(c.get(b"k").unwrap().value, b"2");
}

#[test]
fn a_write_in_an_unknown_session_is_refused_and_writes_nothing() {
    let mut c = Coord::new();
    let r = c.put(b"k", b"1", 42);
    assert_eq!(code(&r), ErrorCode::SessionNotFound);
    assert!(c.get(b"k").is_none());
    assert_eq!(c.sm.revision(), 0);
}

#[test]
fn a_session_owns_at_most_max_session_keys() {
    let mut c = Coord::new();
    let s = c.open(MAX_SESSION_TTL_MS);
    let requests: Vec<Request> = (0..MAX_SESSION_KEYS)
        .map(|i| {
            Request::anonymous(Op::Put(Put {
                key: format!("k{i}").into_bytes(),
                value: Vec::new(),
                prev_kv: false,
            }))
            .in_session(s)
        })
        .collect();
    assert!(c.apply(&requests).iter().all(|r| !r.is_error()));
    assert_eq!(
        code(&c.put(b"one-more", b"", s)),
        ErrorCode::TooManySessionKeys
    );
    // Rewriting a key it owns adds nothing, so it is allowed.
    assert!(!c.put(b"k0", b"again", s).is_error());
    // A transaction that would add two keys is refused whole.
    let txn = Op::Txn(Txn {
        compares: vec![],
        success: vec![
            TxnOp {
                op: Some(TxnOpKind::Put(Put {
                    key: b"k1".to_vec(),
                    value: vec![],
                    prev_kv: false,
                })),
            },
            TxnOp {
                op: Some(TxnOpKind::Put(Put {
                    key: b"new".to_vec(),
                    value: vec![],
                    prev_kv: false,
                })),
            },
        ],
        failure: vec![],
    });
    let r = c.request(Request::anonymous(txn).in_session(s));
    assert_eq!(code(&r), ErrorCode::TooManySessionKeys);
    assert!(c.get(b"new").is_none());
    // Closing deletes them all in one command.
    let before = c.sm.revision();
    match c.close(s).outcome {
        Some(Outcome::CloseSession(r)) => assert_eq!(r.deleted_keys, MAX_SESSION_KEYS),
        other => panic!("{other:?}"),
    }
    assert_eq!(c.sm.revision(), before + 1);
}

#[test]
fn sessions_and_their_keys_travel_in_snapshots() {
    let mut c = Coord::new();
    let s = c.open(TTL_MS);
    c.put(b"e", b"1", s);
    c.lock(b"L", s, false);
    c.campaign(b"E", s, b"v");
    let mut target = StateMachine::in_memory().unwrap();
    let chunks: Vec<_> = c.sm.snapshot().unwrap().map(Result::unwrap).collect();
    target.install_snapshot(chunks).unwrap();
    assert_eq!(target.state_hash().unwrap(), c.sm.state_hash().unwrap());
    assert_eq!(target.sessions().unwrap(), c.sm.sessions().unwrap());
    // The installed copy ends the session the same way.
    let mut installed = Coord::with(target);
    installed.close(s);
    c.close(s);
    assert_eq!(
        installed.sm.state_hash().unwrap(),
        c.sm.state_hash().unwrap()
    );
    assert!(installed.get(b"e").is_none());
}

#[test]
fn coordination_state_is_part_of_the_state_hash() {
    let mut a = Coord::new();
    let mut b = Coord::new();
    let s = a.open(TTL_MS);
    b.open(TTL_MS);
    assert_eq!(a.sm.state_hash().unwrap(), b.sm.state_hash().unwrap());
    a.keep_alive(s);
    b.op(Op::CheckpointSessions(CheckpointSessions::default()));
    assert_ne!(
        a.sm.state_hash().unwrap(),
        b.sm.state_hash().unwrap(),
        "a keep-alive count differs"
    );
}

/// etcd#9395: leaders change every 2 to 4 checkpoint intervals, each restarting deadlines from
/// the checkpointed remaining TTL; an abandoned session still expires, never early, after at
/// most about 2 × TTL of leadership (each term loses at most one interval of progress, plus the
/// polling step) and within 3 × TTL of wall time with elections taking up to 300 ms.
#[test]
fn an_abandoned_session_expires_despite_frequent_leader_changes() {
    let config = config();
    let c_ms = config.checkpoint_interval_ms;
    for seed in 0..50 {
        let mut rng = Rng(seed);
        let mut d = Driver::new(config.clone());
        let ttl_ms = 10_000;
        let s = match d.op(Op::OpenSession(OpenSession { ttl_ms })).outcome {
            Some(Outcome::OpenSession(o)) => o.session,
            other => panic!("{other:?}"),
        };
        let mut led_ms = 0;
        while d.coord.is_open(s) {
            assert!(
                d.now_ms <= 3 * ttl_ms,
                "seed {seed}: alive at {} ms",
                d.now_ms
            );
            let term_start = d.now_ms;
            let term_end = d.now_ms + rng.between(2 * c_ms, 4 * c_ms);
            let step_ms = 1 + rng.below(100);
            while d.coord.is_open(s) && d.now_ms < term_end {
                d.advance_to((d.now_ms + step_ms).min(term_end));
            }
            led_ms += d.now_ms - term_start;
            // The leader dies; the next one is elected a little later.
            d.now_ms += rng.below(300);
            d.new_leader();
        }
        let expired_at = d.expired_at(s).unwrap();
        assert!(
            expired_at >= ttl_ms,
            "seed {seed}: expired early at {expired_at}"
        );
        assert!(
            expired_at <= 3 * ttl_ms,
            "seed {seed}: expired at {expired_at}"
        );
        assert!(
            led_ms <= 2 * ttl_ms + 2 * c_ms,
            "seed {seed}: {led_ms} ms of leadership"
        );
    }
}

/// Without checkpoints reaching the log the rule above could not hold: show that leader changes
/// alone (terms shorter than the checkpoint interval) restart the full TTL, so the bound needs
/// terms of at least one interval.
#[test]
fn leader_terms_shorter_than_the_checkpoint_interval_make_no_progress() {
    let mut d = Driver::new(config());
    let s = match d.op(Op::OpenSession(OpenSession { ttl_ms: 5_000 })).outcome {
        Some(Outcome::OpenSession(o)) => o.session,
        other => panic!("{other:?}"),
    };
    for _ in 0..100 {
        let end = d.now_ms + 900;
        d.run_until(end, 100);
        d.new_leader();
    }
    assert!(d.coord.is_open(s));
    assert_eq!(d.coord.sm.sessions().unwrap()[0].remaining_ms, 5_000);
}

/// A session kept alive within its TTL never expires, whatever the leader changes (terms from
/// 50 ms to 3 checkpoint intervals, elections taking up to 300 ms, keep-alives 0.2 to 0.7 TTL
/// apart).
#[test]
fn a_kept_alive_session_never_expires_across_leader_changes() {
    let config = config();
    for seed in 0..50 {
        let mut rng = Rng(1_000 + seed);
        let mut d = Driver::new(config.clone());
        let ttl_ms = 3_000;
        let s = match d.op(Op::OpenSession(OpenSession { ttl_ms })).outcome {
            Some(Outcome::OpenSession(o)) => o.session,
            other => panic!("{other:?}"),
        };
        let mut next_keep_alive = rng.between(600, 2_100);
        let mut next_leader_change = rng.between(50, 3_000);
        while d.now_ms < 100 * ttl_ms {
            let next = next_keep_alive.min(next_leader_change);
            d.run_until(next, 1 + rng.below(200));
            if d.now_ms == next_keep_alive {
                let r = d.op(Op::KeepAlive(synod_kvstore::KeepAlive { session: s }));
                assert!(!r.is_error(), "seed {seed}: {r:?} at {} ms", d.now_ms);
                next_keep_alive += rng.between(600, 2_100);
            }
            if d.now_ms == next_leader_change {
                d.now_ms += rng.below(300);
                next_keep_alive = next_keep_alive.max(d.now_ms);
                d.new_leader();
                next_leader_change = d.now_ms + rng.between(50, 3_000);
            }
        }
        assert!(d.coord.is_open(s), "seed {seed}");
        assert_eq!(d.expired_at(s), None);
    }
}

#[test]
fn expire_session_requests_are_leader_only() {
    let op = Op::ExpireSession(ExpireSession {
        session: 1,
        keepalives: 0,
    });
    assert!(op.is_leader_only());
    assert!(!Op::OpenSession(OpenSession { ttl_ms: 1_000 }).is_leader_only());
}
