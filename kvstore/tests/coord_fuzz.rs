//! Random coordination requests, valid and not, some with corrupted bytes: apply never panics,
//! and replicas (including one restored from a snapshot midway) stay identical.

mod coord;

use coord::Rng;
use prost::Message;
use synod_kvstore::{
    Campaign, CheckpointEntry, CheckpointSessions, CloseSession, Delete, ExpireSession, Get,
    KeepAlive, Leader, Lock, LockHolder, Op, OpenSession, Outcome, Proclaim, Put, ReleaseLockDelay,
    Request, Resign, StateMachine, Unlock,
};
use synod_wire::limits::{MAX_NAME_BYTES, MAX_SESSION_TTL_MS};

const NAMES: &[&[u8]] = &[b"a", b"b", b"a/x"];

/// A session id: usually one that was opened, sometimes 0 or unknown.
fn session(rng: &mut Rng, opened: &[u64]) -> u64 {
    match rng.below(10) {
        0 => 0,
        1 => rng.below(1_000),
        _ if opened.is_empty() => 1,
        _ => opened[rng.below(opened.len() as u64) as usize],
    }
}

fn name(rng: &mut Rng) -> Vec<u8> {
    match rng.below(30) {
        0 => Vec::new(),
        1 => vec![b'n'; MAX_NAME_BYTES + 1],
        _ => NAMES[rng.below(NAMES.len() as u64) as usize].to_vec(),
    }
}

fn op(rng: &mut Rng, opened: &[u64]) -> Op {
    let s = session(rng, opened);
    match rng.below(16) {
        0 | 1 => Op::OpenSession(OpenSession {
            ttl_ms: match rng.below(10) {
                0 => rng.below(1_000),
                1 => MAX_SESSION_TTL_MS + rng.below(10),
                _ => 1_000 + rng.below(10_000),
            },
        }),
        2 => Op::KeepAlive(KeepAlive { session: s }),
        3 => Op::CloseSession(CloseSession { session: s }),
        4 => Op::ExpireSession(ExpireSession {
            session: s,
            keepalives: rng.below(3),
        }),
        5 => Op::CheckpointSessions(CheckpointSessions {
            entries: (0..rng.below(4))
                .map(|_| CheckpointEntry {
                    session: session(rng, opened),
                    remaining_ms: rng.below(20_000),
                    keepalives: rng.below(3),
                })
                .collect(),
        }),
        6 | 7 => Op::Lock(Lock {
            name: name(rng),
            session: s,
            wait: rng.below(2) == 0,
        }),
        8 => Op::Unlock(Unlock {
            name: name(rng),
            session: s,
        }),
        9 => Op::ReleaseLockDelay(ReleaseLockDelay {
            name: name(rng),
            delayed_revision: rng.below(50),
        }),
        10 => Op::LockHolder(LockHolder { name: name(rng) }),
        11 => Op::Campaign(Campaign {
            election: name(rng),
            session: s,
            value: vec![b'v'; rng.below(4) as usize],
        }),
        12 => Op::Proclaim(Proclaim {
            election: name(rng),
            session: s,
            value: b"p".to_vec(),
        }),
        13 => Op::Resign(Resign {
            election: name(rng),
            session: s,
        }),
        14 => Op::Leader(Leader {
            election: name(rng),
        }),
        _ => match rng.below(3) {
            0 => Op::Get(Get { key: name(rng) }),
            1 => Op::Delete(Delete {
                key: name(rng),
                prev_kv: false,
            }),
            _ => Op::Put(Put {
                key: name(rng),
                value: b"x".to_vec(),
                prev_kv: rng.below(2) == 0,
            }),
        },
    }
}

fn request(rng: &mut Rng, opened: &[u64]) -> Vec<u8> {
    let mut request = Request::anonymous(op(rng, opened));
    if rng.below(4) == 0 {
        request = request.in_session(session(rng, opened));
    }
    if rng.below(5) == 0 {
        request = request.fenced(name(rng), rng.below(60));
    }
    let mut bytes = request.encode_to_vec();
    if rng.below(20) == 0 && !bytes.is_empty() {
        let at = rng.below(bytes.len() as u64) as usize;
        bytes[at] ^= 1 << rng.below(8);
    }
    bytes
}

#[test]
fn random_coordination_logs_apply_identically_on_every_replica() {
    // How often each outcome came up, so the generator provably reaches the interesting cases.
    let (mut grants, mut expiries, mut elected, mut fenced_out) = (0, 0, 0, 0);
    for seed in 0..150 {
        let mut rng = Rng(77_000 + seed);
        let mut a = StateMachine::in_memory().unwrap();
        let mut b = StateMachine::in_memory().unwrap();
        let mut restored: Option<StateMachine> = None;
        let mut opened: Vec<u64> = Vec::new();
        for slot in 1..=60u64 {
            let commands: Vec<Vec<u8>> = (0..rng.below(5))
                .map(|_| request(&mut rng, &opened))
                .collect();
            let slots = [(slot, commands.as_slice())];
            // Responses and effects alike.
            let applied = a.apply_slots(slots).unwrap().remove(0);
            let from_b = b.apply_slots(slots).unwrap().remove(0);
            assert_eq!(applied, from_b, "seed {seed} slot {slot}");
            if let Some(c) = restored.as_mut() {
                assert_eq!(
                    c.apply_slots(slots).unwrap().remove(0).responses,
                    applied.responses,
                    "seed {seed} slot {slot}"
                );
            }
            for response in &applied.responses {
                match &response.outcome {
                    Some(Outcome::OpenSession(o)) => opened.push(o.session),
                    Some(Outcome::Lock(l)) if l.token != 0 => grants += 1,
                    Some(Outcome::ExpireSession(e)) if e.expired => expiries += 1,
                    Some(Outcome::Campaign(c)) if c.position == 0 => elected += 1,
                    Some(Outcome::Error(e))
                        if e.error_code() == synod_kvstore::ErrorCode::FencingTokenRejected =>
                    {
                        fenced_out += 1
                    }
                    _ => {}
                }
            }
            coord::assert_replicas_agree(seed, slot, &a, &b, &mut restored);
        }
    }
    let counts = (grants, expiries, elected, fenced_out);
    assert!(
        counts.0 > 300 && counts.1 > 80 && counts.2 > 200 && counts.3 > 1_000,
        "{counts:?}"
    );
}
