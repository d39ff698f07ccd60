//! Locks: fencing tokens, FIFO waiters, try-lock, release on close and expiry, lock-delay, fenced
//! writes, limits; and a random-ops property test over many seeds.

mod coord;

use std::collections::{BTreeMap, VecDeque};

use coord::*;
use synod_kvstore::{
    CompareAndSwap, Delete, DeleteRange, ErrorCode, EventKind, Incr, Lock, LockStatus, Op,
    OpenSession, Outcome, Put, ReleaseLockDelay, Request, SessionClockConfig, Txn, TxnOp,
    TxnOpKind,
};
use synod_wire::limits::{MAX_QUEUE_WAITERS, MAX_SESSION_CLAIMS, MAX_SESSION_TTL_MS};

#[test]
fn a_free_lock_is_granted_with_the_revision_as_token() {
    let mut c = Coord::new();
    let s = c.open(TTL_MS);
    let l = c.lock(b"L", s, false);
    assert!(granted(&l));
    assert_eq!(l.token, c.sm.revision());
    let h = c.holder(b"L");
    assert_eq!((h.holder, h.token), (s, l.token));
}

#[test]
fn locking_again_returns_the_same_grant_or_queue_position() {
    let mut c = Coord::new();
    let (a, b) = (c.open(TTL_MS), c.open(TTL_MS));
    let first = c.lock(b"L", a, false);
    let revision = c.sm.revision();
    assert_eq!(c.lock(b"L", a, true), first);
    let queued = c.lock(b"L", b, true);
    assert_eq!(
        (queued.lock_status(), queued.position),
        (LockStatus::Queued, 1)
    );
    let again = c.lock(b"L", b, true);
    assert_eq!(again.position, 1);
    assert_eq!(
        c.sm.revision(),
        revision + 1,
        "only the first queueing changed anything"
    );
}

#[test]
fn try_lock_on_a_held_lock_is_refused_without_queueing() {
    let mut c = Coord::new();
    let (a, b) = (c.open(TTL_MS), c.open(TTL_MS));
    c.lock(b"L", a, false);
    let revision = c.sm.revision();
    let busy = c.lock(b"L", b, false);
    assert_eq!((busy.lock_status(), busy.holder), (LockStatus::Busy, a));
    assert!(c.holder(b"L").waiters.is_empty());
    assert_eq!(c.sm.revision(), revision);
}

#[test]
fn unlock_grants_waiters_in_fifo_order_with_increasing_tokens() {
    let mut c = Coord::new();
    let sessions: Vec<u64> = (0..4).map(|_| c.open(TTL_MS)).collect();
    let mut token = c.lock(b"L", sessions[0], true).token;
    for &s in &sessions[1..] {
        assert_eq!(c.lock(b"L", s, true).lock_status(), LockStatus::Queued);
    }
    assert_eq!(c.holder(b"L").waiters, sessions[1..].to_vec());
    for pair in sessions.windows(2) {
        match c.unlock(b"L", pair[0]).outcome {
            Some(Outcome::Unlock(u)) => assert!(u.released && u.next_holder == pair[1]),
            other => panic!("{other:?}"),
        }
        let h = c.holder(b"L");
        assert_eq!(h.holder, pair[1]);
        assert!(h.token > token, "tokens strictly increase");
        token = h.token;
    }
}

#[test]
fn unlock_by_a_stranger_is_refused_and_a_waiter_may_leave_the_queue() {
    let mut c = Coord::new();
    let (a, b, z) = (c.open(TTL_MS), c.open(TTL_MS), c.open(TTL_MS));
    c.lock(b"L", a, true);
    c.lock(b"L", b, true);
    assert_eq!(code(&c.unlock(b"L", z)), ErrorCode::NotLockHolder);
    match c.unlock(b"L", b).outcome {
        Some(Outcome::Unlock(u)) => assert!(!u.released),
        other => panic!("{other:?}"),
    }
    assert!(c.holder(b"L").waiters.is_empty());
    c.unlock(b"L", a);
    assert_eq!(c.holder(b"L").holder, 0, "nobody waits any more");
}

#[test]
fn a_lock_needs_an_open_session() {
    let mut c = Coord::new();
    let r = c.op(Op::Lock(Lock {
        name: b"L".to_vec(),
        session: 9,
        wait: true,
    }));
    assert_eq!(code(&r), ErrorCode::SessionNotFound);
}

#[test]
fn closing_a_session_hands_its_lock_to_the_next_waiter_at_once() {
    let mut c = Coord::new();
    let (a, b) = (c.open(TTL_MS), c.open(TTL_MS));
    c.lock(b"L", a, true);
    c.lock(b"L", b, true);
    c.close(a);
    let h = c.holder(b"L");
    assert_eq!(
        (h.holder, h.token, h.delayed_revision),
        (b, c.sm.revision(), 0)
    );
}

#[test]
fn an_expired_holder_leaves_its_lock_in_lock_delay_until_released() {
    let mut c = Coord::new();
    let (a, b, z) = (c.open(TTL_MS), c.open(TTL_MS), c.open(TTL_MS));
    c.lock(b"L", a, true);
    c.lock(b"L", b, true);
    c.expire(a);
    let delayed_at = c.sm.revision();
    let h = c.holder(b"L");
    assert_eq!(
        (h.holder, h.delayed_revision, h.waiters.clone()),
        (0, delayed_at, vec![b])
    );
    let busy = c.lock(b"L", z, false);
    assert_eq!(busy.lock_status(), LockStatus::Busy);
    assert!(busy.delayed);
    assert_eq!(
        c.sm.delayed_locks().unwrap()[0].delayed_revision,
        delayed_at
    );
    // A stale release (another delay's revision) does nothing.
    let stale = c.op(Op::ReleaseLockDelay(ReleaseLockDelay {
        name: b"L".to_vec(),
        delayed_revision: delayed_at - 1,
    }));
    match stale.outcome {
        Some(Outcome::ReleaseLockDelay(r)) => assert!(!r.released),
        other => panic!("{other:?}"),
    }
    assert_eq!(c.holder(b"L").holder, 0);
    let release = c.op(Op::ReleaseLockDelay(ReleaseLockDelay {
        name: b"L".to_vec(),
        delayed_revision: delayed_at,
    }));
    match release.outcome {
        Some(Outcome::ReleaseLockDelay(r)) => assert!(r.released && r.holder == b),
        other => panic!("{other:?}"),
    }
    assert_eq!(c.holder(b"L").holder, b);
    assert!(c.sm.delayed_locks().unwrap().is_empty());
}

#[test]
// The update fills `bugs` when a workspace test build enables `bug-injection`.
#[allow(clippy::needless_update)]
fn the_leader_ends_a_lock_delay_after_the_configured_delay() {
    let config = SessionClockConfig {
        checkpoint_interval_ms: 1_000,
        lock_delay_ms: 3_000,
        retry_ms: 500,
        ..SessionClockConfig::default()
    };
    let mut d = Driver::new(config);
    let open = |d: &mut Driver| match d.op(Op::OpenSession(OpenSession { ttl_ms: 2_000 })).outcome {
        Some(Outcome::OpenSession(o)) => o.session,
        other => panic!("{other:?}"),
    };
    let (a, b) = (open(&mut d), open(&mut d));
    for s in [a, b] {
        d.op(Op::Lock(Lock {
            name: b"L".to_vec(),
            session: s,
            wait: true,
        }));
    }
    // b stays alive; a is abandoned and expires at 2 s.
    let mut now = 0;
    while now < 4_900 {
        now += 100;
        d.advance_to(now);
        if now % 1_000 == 0 {
            d.op(Op::KeepAlive(synod_kvstore::KeepAlive { session: b }));
        }
        let holder = d.coord.holder(b"L").holder;
        if now < 2_000 {
            assert_eq!(holder, a, "at {now}");
        } else {
            assert_eq!(holder, 0, "in lock-delay at {now}");
        }
    }
    d.advance_to(5_000);
    assert_eq!(
        d.coord.holder(b"L").holder,
        b,
        "granted once the delay ran out"
    );
}

#[test]
// The update fills `bugs` when a workspace test build enables `bug-injection`.
#[allow(clippy::needless_update)]
fn a_new_leader_restarts_a_pending_lock_delay() {
    let config = SessionClockConfig {
        checkpoint_interval_ms: 1_000,
        lock_delay_ms: 3_000,
        retry_ms: 500,
        ..SessionClockConfig::default()
    };
    let mut d = Driver::new(config);
    let a = match d.op(Op::OpenSession(OpenSession { ttl_ms: 2_000 })).outcome {
        Some(Outcome::OpenSession(o)) => o.session,
        other => panic!("{other:?}"),
    };
    d.op(Op::Lock(Lock {
        name: b"L".to_vec(),
        session: a,
        wait: false,
    }));
    d.run_until(2_000, 100);
    assert_eq!(d.coord.sm.delayed_locks().unwrap().len(), 1);
    d.now_ms = 4_000;
    d.new_leader();
    d.run_until(6_900, 100);
    assert_eq!(
        d.coord.sm.delayed_locks().unwrap().len(),
        1,
        "the delay restarted"
    );
    d.advance_to(7_000);
    assert!(d.coord.sm.delayed_locks().unwrap().is_empty());
}

fn put_op(key: &[u8]) -> Op {
    Op::Put(Put {
        key: key.to_vec(),
        value: b"v".to_vec(),
        prev_kv: false,
    })
}

/// Every kind of write, to check they are all fenced.
fn writes() -> Vec<Op> {
    vec![
        put_op(b"k"),
        Op::Delete(Delete {
            key: b"k".to_vec(),
            prev_kv: false,
        }),
        Op::DeleteRange(DeleteRange {
            start: vec![],
            end: vec![],
            prefix: b"k".to_vec(),
        }),
        Op::CompareAndSwap(CompareAndSwap {
            key: b"k".to_vec(),
            expected: None,
            new_value: b"v".to_vec(),
        }),
        Op::Txn(Txn {
            compares: vec![],
            success: vec![TxnOp {
                op: Some(TxnOpKind::Put(Put {
                    key: b"k".to_vec(),
                    value: b"v".to_vec(),
                    prev_kv: false,
                })),
            }],
            failure: vec![],
        }),
        Op::Incr(Incr {
            key: b"n".to_vec(),
            delta: 1,
        }),
    ]
}

#[test]
fn a_write_fenced_with_the_current_token_applies() {
    let mut c = Coord::new();
    let s = c.open(TTL_MS);
    let token = c.lock(b"L", s, false).token;
    for op in writes() {
        let r = c.request(Request::anonymous(op.clone()).fenced(b"L".to_vec(), token));
        assert!(!r.is_error(), "{op:?}: {r:?}");
    }
}

#[test]
fn a_write_fenced_with_an_old_token_is_rejected_after_the_holder_expired() {
    let mut c = Coord::new();
    let (a, b) = (c.open(TTL_MS), c.open(TTL_MS));
    let old = c.lock(b"L", a, false).token;
    c.lock(b"L", b, true);
    c.put(b"k", b"before", 0);
    c.expire(a);
    // During lock-delay nobody holds the lock.
    let r = c.request(Request::anonymous(put_op(b"k")).fenced(b"L".to_vec(), old));
    assert_eq!(code(&r), ErrorCode::FencingTokenRejected);
    assert!(r.as_error().unwrap().message.contains("not held"), "{r:?}");
    let delayed_revision = c.holder(b"L").delayed_revision;
    c.op(Op::ReleaseLockDelay(ReleaseLockDelay {
        name: b"L".to_vec(),
        delayed_revision,
    }));
    let current = c.holder(b"L").token;
    assert!(current > old);
    let revision = c.sm.revision();
    for op in writes() {
        let r = c.request(Request::anonymous(op.clone()).fenced(b"L".to_vec(), old));
        assert_eq!(code(&r), ErrorCode::FencingTokenRejected, "{op:?}");
        let message = &r.as_error().unwrap().message;
        assert!(
            message.contains(&format!("current token is {current}")),
            "{message}"
        );
    }
    assert_eq!(
        c.sm.revision(),
        revision,
        "no fenced write changed anything"
    );
    assert_eq!(c.get(b"k").unwrap().value, b"before");
    let ok = c.request(Request::anonymous(put_op(b"k")).fenced(b"L".to_vec(), current));
    assert!(!ok.is_error());
}

#[test]
fn a_session_waits_for_at_most_max_session_claims_locks() {
    let mut c = Coord::new();
    let s = c.open(MAX_SESSION_TTL_MS);
    let requests: Vec<Request> = (0..MAX_SESSION_CLAIMS)
        .map(|i| {
            Request::anonymous(Op::Lock(Lock {
                name: format!("L{i}").into_bytes(),
                session: s,
                wait: true,
            }))
        })
        .collect();
    assert!(c.apply(&requests).iter().all(|r| !r.is_error()));
    let r = c.op(Op::Lock(Lock {
        name: b"one-more".to_vec(),
        session: s,
        wait: true,
    }));
    assert_eq!(code(&r), ErrorCode::TooManyClaims);
    c.unlock(b"L0", s);
    assert!(granted(&c.lock(b"one-more", s, true)));
}

#[test]
fn a_lock_queue_holds_at_most_max_queue_waiters() {
    let mut c = Coord::new();
    let opens: Vec<Request> = (0..=MAX_QUEUE_WAITERS)
        .map(|_| Request::anonymous(Op::OpenSession(OpenSession { ttl_ms: TTL_MS })))
        .collect();
    let sessions: Vec<u64> = c
        .apply(&opens)
        .into_iter()
        .map(|r| match r.outcome {
            Some(Outcome::OpenSession(o)) => o.session,
            other => panic!("{other:?}"),
        })
        .collect();
    c.lock(b"L", sessions[0], true);
    let waits: Vec<Request> = sessions[1..]
        .iter()
        .map(|&s| {
            Request::anonymous(Op::Lock(Lock {
                name: b"L".to_vec(),
                session: s,
                wait: true,
            }))
        })
        .collect();
    assert!(c.apply(&waits).iter().all(|r| !r.is_error()));
    let extra = c.open(TTL_MS);
    let r = c.op(Op::Lock(Lock {
        name: b"L".to_vec(),
        session: extra,
        wait: true,
    }));
    assert_eq!(code(&r), ErrorCode::TooManyWaiters);
}

#[test]
fn bad_lock_names_are_refused() {
    let mut c = Coord::new();
    let s = c.open(TTL_MS);
    let lock = |name: Vec<u8>| {
        Op::Lock(Lock {
            name,
            session: s,
            wait: false,
        })
    };
    assert_eq!(code(&c.op(lock(vec![]))), ErrorCode::EmptyName);
    assert_eq!(code(&c.op(lock(vec![b'x'; 257]))), ErrorCode::NameTooLarge);
    let r = c.request(Request::anonymous(put_op(b"k")).fenced(Vec::new(), 1));
    assert_eq!(code(&r), ErrorCode::EmptyName);
}

/// The lock model: holder, token, FIFO waiters and delay per lock.
#[derive(Default)]
struct Model {
    holder: u64,
    token: u64,
    waiters: VecDeque<u64>,
    delayed: bool,
}

/// Random lock, unlock, try-lock, keep-alive, close, expire and delay-release ops by a few
/// sessions on a few locks, over many seeds: never two holders, tokens strictly increase,
/// grants follow FIFO order, and the state machine agrees with a simple model after every op.
#[test]
fn random_ops_never_show_two_holders_and_tokens_strictly_increase() {
    const LOCKS: [&[u8]; 3] = [b"a", b"b", b"c"];
    for seed in 0..300 {
        let mut rng = Rng(seed);
        let mut c = Coord::new();
        let mut model: BTreeMap<&[u8], Model> =
            LOCKS.iter().map(|&l| (l, Model::default())).collect();
        let mut sessions: Vec<u64> = Vec::new();
        let mut last_grant: BTreeMap<&[u8], (u64, u64)> = BTreeMap::new();
        let mut event_holder: BTreeMap<Vec<u8>, u64> = BTreeMap::new();
        for step in 0..120 {
            let ctx = format!("seed {seed} step {step}");
            let name = LOCKS[rng.below(3) as usize];
            let pick = |rng: &mut Rng, sessions: &[u64]| {
                (!sessions.is_empty()).then(|| sessions[rng.below(sessions.len() as u64) as usize])
            };
            match rng.below(10) {
                0 | 1 if sessions.len() < 6 => sessions.push(c.open(TTL_MS)),
                0..=3 => {
                    let Some(s) = pick(&mut rng, &sessions) else {
                        continue;
                    };
                    let wait = rng.below(3) > 0;
                    let l = c.lock(name, s, wait);
                    let m = model.get_mut(name).unwrap();
                    if m.holder == s {
                        assert!(granted(&l), "{ctx}");
                    } else if m.waiters.contains(&s) {
                        assert_eq!(l.lock_status(), LockStatus::Queued, "{ctx}");
                    } else if m.holder == 0 && !m.delayed {
                        assert!(granted(&l), "{ctx}");
                        m.holder = s;
                        m.token = l.token;
                    } else if wait {
                        assert_eq!(l.lock_status(), LockStatus::Queued, "{ctx}");
                        m.waiters.push_back(s);
                    } else {
                        assert_eq!(l.lock_status(), LockStatus::Busy, "{ctx}");
                    }
                }
                4 | 5 => {
                    let Some(s) = pick(&mut rng, &sessions) else {
                        continue;
                    };
                    let r = c.unlock(name, s);
                    let revision = c.sm.revision();
                    let m = model.get_mut(name).unwrap();
                    if m.holder == s {
                        assert!(!r.is_error(), "{ctx}");
                        m.holder = 0;
                        if let Some(next) = m.waiters.pop_front() {
                            m.holder = next;
                            m.token = revision;
                        }
                    } else if let Some(i) = m.waiters.iter().position(|&w| w == s) {
                        m.waiters.remove(i);
                    } else {
                        assert_eq!(code(&r), ErrorCode::NotLockHolder, "{ctx}");
                    }
                }
                6 | 7 => {
                    let Some(s) = pick(&mut rng, &sessions) else {
                        continue;
                    };
                    let expired = rng.below(2) == 0;
                    if expired {
                        c.expire(s);
                    } else {
                        c.close(s);
                    }
                    let revision = c.sm.revision();
                    sessions.retain(|&x| x != s);
                    for m in model.values_mut() {
                        m.waiters.retain(|&w| w != s);
                        if m.holder == s {
                            m.holder = 0;
                            if expired {
                                m.delayed = true;
                            } else if let Some(next) = m.waiters.pop_front() {
                                m.holder = next;
                                m.token = revision;
                            }
                        }
                    }
                }
                8 => {
                    let delayed_revision = c.holder(name).delayed_revision;
                    c.op(Op::ReleaseLockDelay(ReleaseLockDelay {
                        name: name.to_vec(),
                        delayed_revision,
                    }));
                    let revision = c.sm.revision();
                    let m = model.get_mut(name).unwrap();
                    if m.delayed {
                        m.delayed = false;
                        if let Some(next) = m.waiters.pop_front() {
                            m.holder = next;
                            m.token = revision;
                        }
                    }
                }
                _ => {
                    let Some(s) = pick(&mut rng, &sessions) else {
                        continue;
                    };
                    assert!(!c.keep_alive(s).is_error(), "{ctx}");
                }
            }
            // The holder events chain: each replaces exactly the holder before it.
            for event in c.last_events() {
                if event.event_kind() == Some(EventKind::LockHolder) {
                    let known = event_holder.entry(event.key.clone()).or_insert(0);
                    assert_eq!(event.prev_session, *known, "{ctx}: {event:?}");
                    *known = event.session;
                }
            }
            for &l in &LOCKS {
                let h = c.holder(l);
                let m = &model[l];
                assert_eq!(h.holder, m.holder, "{ctx}: holder of {l:?}");
                assert_eq!(
                    h.waiters,
                    Vec::from(m.waiters.clone()),
                    "{ctx}: waiters of {l:?}"
                );
                assert_eq!(h.delayed_revision != 0, m.delayed, "{ctx}: delay of {l:?}");
                assert_eq!(
                    event_holder.get(l).copied().unwrap_or(0),
                    h.holder,
                    "{ctx}: events and state disagree on {l:?}"
                );
                if h.holder != 0 {
                    assert_eq!(h.token, m.token, "{ctx}: token of {l:?}");
                    let last = last_grant.entry(l).or_insert((0, 0));
                    if h.token == last.0 {
                        assert_eq!(h.holder, last.1, "{ctx}: two holders with one token");
                    } else {
                        assert!(h.token > last.0, "{ctx}: token of {l:?} went down");
                    }
                    *last = (h.token, h.holder);
                }
            }
        }
    }
}
