//! Random logs mixing key expiry with every kind of write, valid and not, some with corrupted
//! bytes: replicas (one restored from a snapshot midway) answer and end identically, and an
//! expiry is only ever recorded for a key that exists.

mod coord;

use coord::Rng;
use prost::Message;
use synod_kvstore::{
    CheckpointKeys, CloseSession, CompareAndSwap, Delete, DeleteRange, Expire, ExpireKeyEntry,
    ExpireKeys, Get, Incr, KeyCheckpointEntry, KeyTtl, Op, OpenSession, Outcome, Persist, Put,
    Request, StateMachine, Ttl, Txn, TxnOp, TxnOpKind,
};
use synod_wire::limits::MAX_KEY_TTL_MS;

const KEYS: &[&[u8]] = &[b"a", b"b", b"c", b"d/1", b"d/2"];

fn key(rng: &mut Rng) -> Vec<u8> {
    if rng.below(40) == 0 {
        return Vec::new(); // invalid
    }
    KEYS[rng.below(KEYS.len() as u64) as usize].to_vec()
}

/// An expiry revision: often one seen in an answer, sometimes anything.
fn revision(rng: &mut Rng, seen: &[u64]) -> u64 {
    if seen.is_empty() || rng.below(4) == 0 {
        rng.below(200)
    } else {
        seen[rng.below(seen.len() as u64) as usize]
    }
}

fn put(rng: &mut Rng) -> Put {
    Put {
        key: key(rng),
        value: if rng.below(2) == 0 {
            b"1".to_vec()
        } else {
            b"x".to_vec()
        },
        prev_kv: false,
    }
}

fn op(rng: &mut Rng, seen: &[u64], sessions: &[u64]) -> Op {
    match rng.below(14) {
        0..=2 => Op::Put(put(rng)),
        3 => Op::Incr(Incr {
            key: key(rng),
            delta: 1,
        }),
        4 => Op::Delete(Delete {
            key: key(rng),
            prev_kv: false,
        }),
        5 => Op::DeleteRange(DeleteRange {
            start: Vec::new(),
            end: Vec::new(),
            prefix: b"d/".to_vec(),
        }),
        6 => Op::CompareAndSwap(CompareAndSwap {
            key: key(rng),
            expected: None,
            new_value: b"c".to_vec(),
        }),
        7 => Op::Txn(Txn {
            compares: Vec::new(),
            success: (0..rng.below(3))
                .map(|i| TxnOp {
                    op: Some(if i == 0 {
                        TxnOpKind::Put(put(rng))
                    } else {
                        TxnOpKind::Get(Get { key: key(rng) })
                    }),
                })
                .collect(),
            failure: Vec::new(),
        }),
        8 => Op::Expire(Expire {
            key: key(rng),
            ttl_ms: match rng.below(10) {
                0 => -(rng.below(5) as i64),
                1 => i64::MAX,
                _ => rng.between(1, 5_000) as i64,
            },
            condition: rng.below(5) as i32,
            expiry_revision: revision(rng, seen),
        }),
        9 => Op::Persist(Persist { key: key(rng) }),
        10 => Op::Ttl(Ttl { key: key(rng) }),
        11 => Op::ExpireKeys(ExpireKeys {
            entries: (0..rng.below(4))
                .map(|_| ExpireKeyEntry {
                    key: key(rng),
                    expiry_revision: revision(rng, seen),
                })
                .collect(),
        }),
        12 => Op::CheckpointKeys(CheckpointKeys {
            entries: (0..rng.below(4))
                .map(|_| KeyCheckpointEntry {
                    key: key(rng),
                    expiry_revision: revision(rng, seen),
                    remaining_ms: rng.below(5_000),
                })
                .collect(),
        }),
        _ => match (rng.below(2), sessions.first()) {
            (0, Some(&session)) => Op::CloseSession(CloseSession { session }),
            _ => Op::OpenSession(OpenSession { ttl_ms: 10_000 }),
        },
    }
}

fn request(rng: &mut Rng, seen: &[u64], sessions: &[u64]) -> Vec<u8> {
    let mut request = Request::anonymous(op(rng, seen, sessions));
    request.key_ttl = match rng.below(8) {
        0 => Some(KeyTtl::keep()),
        1 => Some(KeyTtl::none()),
        2 | 3 => Some(KeyTtl::expire_in(rng.between(1, 5_000))),
        4 if rng.below(5) == 0 => Some(KeyTtl {
            ttl_ms: rng.below(3) * MAX_KEY_TTL_MS,
            keep: rng.below(2) == 0,
        }),
        _ => None,
    };
    if rng.below(5) == 0 && !sessions.is_empty() {
        request = request.in_session(sessions[rng.below(sessions.len() as u64) as usize]);
    }
    let mut bytes = request.encode_to_vec();
    if rng.below(25) == 0 && !bytes.is_empty() {
        let at = rng.below(bytes.len() as u64) as usize;
        bytes[at] ^= 1 << rng.below(8);
    }
    bytes
}

fn exists(sm: &StateMachine, key: &[u8]) -> bool {
    let op = Op::Get(Get { key: key.to_vec() });
    matches!(sm.read(&op).unwrap().outcome, Some(Outcome::Get(g)) if g.kv.is_some())
}

#[test]
fn random_logs_with_key_expiry_apply_identically_on_every_replica() {
    let (mut expired, mut expire_applied, mut persisted, mut checkpointed) = (0, 0, 0, 0);
    for seed in 0..120 {
        let mut rng = Rng(31_000 + seed);
        let mut a = StateMachine::in_memory().unwrap();
        let mut b = StateMachine::in_memory().unwrap();
        let mut restored: Option<StateMachine> = None;
        let (mut seen, mut sessions): (Vec<u64>, Vec<u64>) = (Vec::new(), Vec::new());
        for slot in 1..=60u64 {
            let commands: Vec<Vec<u8>> = (0..rng.below(5))
                .map(|_| request(&mut rng, &seen, &sessions))
                .collect();
            let slots = [(slot, commands.as_slice())];
            // Responses, effects and revision alike.
            let applied = a.apply_slots(slots).unwrap();
            assert_eq!(
                applied,
                b.apply_slots(slots).unwrap(),
                "seed {seed} slot {slot}"
            );
            if let Some(c) = restored.as_mut() {
                assert_eq!(c.apply_slots(slots).unwrap(), applied, "seed {seed} {slot}");
            }
            for response in &applied[0].responses {
                match &response.outcome {
                    Some(Outcome::OpenSession(o)) => sessions.push(o.session),
                    Some(Outcome::CloseSession(_)) => {
                        sessions.remove(0);
                    }
                    Some(Outcome::Ttl(t)) if t.expiry_revision != 0 => seen.push(t.expiry_revision),
                    Some(Outcome::Expire(e)) if e.applied => expire_applied += 1,
                    Some(Outcome::Persist(p)) if p.removed => persisted += 1,
                    Some(Outcome::ExpireKeys(e)) => expired += e.deleted,
                    Some(Outcome::CheckpointKeys(k)) => checkpointed += k.applied,
                    _ => {}
                }
            }
            for expiry in a.key_expiries().unwrap() {
                seen.push(expiry.expiry_revision);
                assert!(exists(&a, &expiry.key), "seed {seed} slot {slot}");
            }
            coord::assert_replicas_agree(seed, slot, &a, &b, &mut restored);
        }
    }
    let counts = (expired, expire_applied, persisted, checkpointed);
    assert!(
        counts.0 > 20 && counts.1 > 150 && counts.2 > 80 && counts.3 > 30,
        "{counts:?}"
    );
}
