//! Structured values built from fuzzer bytes: client requests (every op of
//! [`synod_kvstore::Op`]), peer envelopes (every [`synod_paxos::Message`]) and the numbers in
//! them, biased towards the values where bugs live (0, small, near `u64::MAX`).
//!
//! Keys and names come mostly from a small alphabet so that generated commands touch the same
//! keys, locks and sessions, and sometimes are arbitrary bytes (empty and oversized included, to
//! reach the validation errors).

use arbitrary::{Result, Unstructured};
use synod_kvstore::{
    Campaign, CheckpointEntry, CheckpointKeys, CheckpointSessions, CloseSession, Compare,
    CompareAndSwap, Delete, DeleteRange, Expected, Expire, ExpireKeyEntry, ExpireKeys,
    ExpireSession, Fence, Get, Incr, KeepAlive, KeyCheckpointEntry, KeyTtl, Leader, Lock,
    LockHolder, Op, OpenSession, Persist, Proclaim, Put, ReleaseLockDelay, Request, Resign, Scan,
    Ttl, Txn, TxnOp, TxnOpKind, Unlock,
};
use synod_paxos::{Ballot, Change, Envelope, Message, NodeId, Slot, SlotState, Value};

use crate::count;

/// A number: small (0..=16), near `u64::MAX`, or any.
pub fn number(u: &mut Unstructured<'_>) -> Result<u64> {
    Ok(match u.int_in_range(0..=7u8)? {
        0..=4 => u.int_in_range(0..=16)?,
        5 => u64::MAX - u.int_in_range(0..=16)?,
        _ => u.arbitrary()?,
    })
}

/// A signed number: small (-16..=16), at either end of `i64`, or any.
pub fn signed(u: &mut Unstructured<'_>) -> Result<i64> {
    Ok(match u.int_in_range(0..=7u8)? {
        0..=4 => u.int_in_range(-16..=16)?,
        5 => i64::MAX - u.int_in_range(0..=16)?,
        6 => i64::MIN + u.int_in_range(0..=16)?,
        _ => u.arbitrary()?,
    })
}

/// Arbitrary bytes, at most `max_len` of them.
pub fn bytes(u: &mut Unstructured<'_>, max_len: usize) -> Result<Vec<u8>> {
    let len = count(u, max_len);
    Ok(u.bytes(len)?.to_vec())
}

/// A key (or lock, election or prefix name): mostly one of a few shared names.
pub fn key(u: &mut Unstructured<'_>) -> Result<Vec<u8>> {
    const NAMES: [&[u8]; 6] = [b"a", b"b", b"a/1", b"a/2", b"lock", b""];
    Ok(match u.int_in_range(0..=31u8)? {
        i @ 0..=23 => NAMES[usize::from(i) % NAMES.len()].to_vec(),
        24..=30 => bytes(u, 16)?,
        // Over every key and name limit (the largest is 4 KiB).
        _ => vec![b'k'; 4097 + count(u, 8)],
    })
}

/// A value: short, empty, or over the value limit once in a while.
pub fn value(u: &mut Unstructured<'_>) -> Result<Vec<u8>> {
    Ok(match u.int_in_range(0..=63u8)? {
        0..=3 => Vec::new(),
        4 => vec![b'v'; synod_wire::limits::MAX_VALUE_BYTES + 1],
        _ => bytes(u, 24)?,
    })
}

/// A session id or client id: mostly small, so that requests share them.
pub fn id(u: &mut Unstructured<'_>) -> Result<u64> {
    Ok(match u.int_in_range(0..=7u8)? {
        0..=6 => u.int_in_range(0..=4)?,
        _ => number(u)?,
    })
}

/// A request with any op, header, fence, session and key TTL.
pub fn request(u: &mut Unstructured<'_>) -> Result<Request> {
    let op = if u.int_in_range(0..=31u8)? == 0 {
        None
    } else {
        Some(op(u)?)
    };
    Ok(Request {
        client_id: id(u)?,
        seq: id(u)?,
        op,
        fence: if u.ratio(1, 8)? {
            Some(Fence {
                lock_name: key(u)?,
                token: number(u)?,
            })
        } else {
            None
        },
        session: if u.ratio(1, 4)? { id(u)? } else { 0 },
        key_ttl: if u.ratio(1, 4)? {
            Some(KeyTtl {
                ttl_ms: number(u)?,
                keep: u.arbitrary()?,
            })
        } else {
            None
        },
    })
}

fn put(u: &mut Unstructured<'_>) -> Result<Put> {
    Ok(Put {
        key: key(u)?,
        value: value(u)?,
        prev_kv: u.arbitrary()?,
    })
}

fn txn_op(u: &mut Unstructured<'_>) -> Result<TxnOp> {
    let op = match u.int_in_range(0..=3u8)? {
        0 => None,
        1 => Some(TxnOpKind::Put(put(u)?)),
        2 => Some(TxnOpKind::Delete(Delete {
            key: key(u)?,
            prev_kv: u.arbitrary()?,
        })),
        _ => Some(TxnOpKind::Get(Get { key: key(u)? })),
    };
    Ok(TxnOp { op })
}

/// Any op, its fields from the generators above.
pub fn op(u: &mut Unstructured<'_>) -> Result<Op> {
    Ok(match u.int_in_range(0..=25u8)? {
        0 => Op::Put(put(u)?),
        1 => Op::Get(Get { key: key(u)? }),
        2 => Op::Delete(Delete {
            key: key(u)?,
            prev_kv: u.arbitrary()?,
        }),
        3 => Op::DeleteRange(DeleteRange {
            start: key(u)?,
            end: key(u)?,
            prefix: key(u)?,
        }),
        4 => Op::Scan(Scan {
            start: key(u)?,
            end: key(u)?,
            prefix: key(u)?,
            limit: u.arbitrary()?,
            keys_only: u.arbitrary()?,
        }),
        5 => Op::CompareAndSwap(CompareAndSwap {
            key: key(u)?,
            expected: match u.int_in_range(0..=2u8)? {
                0 => None,
                1 => Some(Expected::Value(value(u)?)),
                _ => Some(Expected::ModRevision(number(u)?)),
            },
            new_value: value(u)?,
        }),
        6 => {
            let mut txn = Txn::default();
            for _ in 0..count(u, 3) {
                txn.compares.push(Compare {
                    key: key(u)?,
                    target: u.int_in_range(-1..=4)?,
                    op: u.int_in_range(-1..=4)?,
                    value: value(u)?,
                    number: number(u)?,
                });
            }
            for _ in 0..count(u, 3) {
                txn.success.push(txn_op(u)?);
            }
            for _ in 0..count(u, 3) {
                txn.failure.push(txn_op(u)?);
            }
            Op::Txn(txn)
        }
        7 => Op::Incr(Incr {
            key: key(u)?,
            delta: signed(u)?,
        }),
        8 => Op::OpenSession(OpenSession {
            ttl_ms: number(u)?.wrapping_mul(1000),
        }),
        9 => Op::KeepAlive(KeepAlive { session: id(u)? }),
        10 => Op::CloseSession(CloseSession { session: id(u)? }),
        11 => Op::ExpireSession(ExpireSession {
            session: id(u)?,
            keepalives: number(u)?,
        }),
        12 => {
            let mut entries = Vec::new();
            for _ in 0..count(u, 3) {
                entries.push(CheckpointEntry {
                    session: id(u)?,
                    remaining_ms: number(u)?,
                    keepalives: number(u)?,
                });
            }
            Op::CheckpointSessions(CheckpointSessions { entries })
        }
        13 => Op::Lock(Lock {
            name: key(u)?,
            session: id(u)?,
            wait: u.arbitrary()?,
        }),
        14 => Op::Unlock(Unlock {
            name: key(u)?,
            session: id(u)?,
        }),
        15 => Op::ReleaseLockDelay(ReleaseLockDelay {
            name: key(u)?,
            delayed_revision: number(u)?,
        }),
        16 => Op::LockHolder(LockHolder { name: key(u)? }),
        17 => Op::Campaign(Campaign {
            election: key(u)?,
            session: id(u)?,
            value: value(u)?,
        }),
        18 => Op::Proclaim(Proclaim {
            election: key(u)?,
            session: id(u)?,
            value: value(u)?,
        }),
        19 => Op::Resign(Resign {
            election: key(u)?,
            session: id(u)?,
        }),
        20 => Op::Leader(Leader { election: key(u)? }),
        21 => Op::Expire(Expire {
            key: key(u)?,
            ttl_ms: signed(u)?,
            condition: u.int_in_range(-1..=4)?,
            expiry_revision: number(u)?,
        }),
        22 => Op::Persist(Persist { key: key(u)? }),
        23 => Op::Ttl(Ttl { key: key(u)? }),
        24 => {
            let mut entries = Vec::new();
            for _ in 0..count(u, 3) {
                entries.push(ExpireKeyEntry {
                    key: key(u)?,
                    expiry_revision: number(u)?,
                });
            }
            Op::ExpireKeys(ExpireKeys { entries })
        }
        _ => {
            let mut entries = Vec::new();
            for _ in 0..count(u, 3) {
                entries.push(KeyCheckpointEntry {
                    key: key(u)?,
                    expiry_revision: number(u)?,
                    remaining_ms: number(u)?,
                });
            }
            Op::CheckpointKeys(CheckpointKeys { entries })
        }
    })
}

/// One log command as the state machine receives it: a generated request's encoding (most of
/// the time), the same with one byte changed, or raw bytes.
pub fn command(u: &mut Unstructured<'_>) -> Result<Vec<u8>> {
    use prost::Message as _;
    Ok(match u.int_in_range(0..=7u8)? {
        0..=5 => request(u)?.encode_to_vec(),
        6 => {
            let mut bytes = request(u)?.encode_to_vec();
            if !bytes.is_empty() {
                let at = u.choose_index(bytes.len())?;
                bytes[at] ^= u.int_in_range(1..=255)?;
            }
            bytes
        }
        _ => bytes(u, 64)?,
    })
}

/// Consecutive slots' command batches (an empty batch is a no-op slot): at most `max_slots`.
pub fn slots(u: &mut Unstructured<'_>, max_slots: usize) -> Result<Vec<Vec<Vec<u8>>>> {
    let mut slots = Vec::new();
    for _ in 0..count(u, max_slots) {
        let mut batch = Vec::new();
        for _ in 0..count(u, 4) {
            batch.push(command(u)?);
        }
        slots.push(batch);
    }
    Ok(slots)
}

/// A node id of a 3-member cluster `1..=3`, or a stranger (0, 4, any).
pub fn node(u: &mut Unstructured<'_>) -> Result<NodeId> {
    Ok(NodeId(match u.int_in_range(0..=15u8)? {
        0 => 0,
        1 => 4,
        2 => u.arbitrary()?,
        i => u32::from(i % 3) + 1,
    }))
}

/// A ballot: a small round of a member, or any number.
pub fn ballot(u: &mut Unstructured<'_>) -> Result<Ballot> {
    Ok(match u.int_in_range(0..=7u8)? {
        0..=5 => Ballot::new(u.int_in_range(0..=6)?, node(u)?),
        6 => Ballot(number(u)?),
        _ => Ballot::new(u32::MAX, node(u)?),
    })
}

/// A slot: mostly small, sometimes anything.
pub fn slot(u: &mut Unstructured<'_>) -> Result<Slot> {
    Ok(Slot(match u.int_in_range(0..=7u8)? {
        0..=6 => u.int_in_range(0..=24)?,
        _ => number(u)?,
    }))
}

/// A slot's value: a no-op, a membership change, or up to three short
/// commands.
pub fn paxos_value(u: &mut Unstructured<'_>) -> Result<Value> {
    if u.ratio(1, 4)? {
        return Ok(Value::Noop);
    }
    if u.ratio(1, 8)? {
        let id = NodeId(u.int_in_range(0..=6)?);
        return Ok(Value::Reconfigure(match u.int_in_range(0..=2u8)? {
            0 => Change::AddLearner {
                id,
                peer_addr: format!("127.0.0.1:{}", u.int_in_range(1..=9u16)?),
                client_addr: format!("127.0.0.1:{}", u.int_in_range(10..=19u16)?),
            },
            1 => Change::Promote(id),
            _ => Change::Remove(id),
        }));
    }
    let mut commands = Vec::new();
    for _ in 0..count(u, 3) {
        commands.push(bytes(u, 8)?);
    }
    Ok(Value::Commands(commands))
}

fn entries(u: &mut Unstructured<'_>) -> Result<Vec<(Slot, Value)>> {
    let mut entries = Vec::new();
    for _ in 0..count(u, 4) {
        entries.push((slot(u)?, paxos_value(u)?));
    }
    Ok(entries)
}

/// Any peer message.
pub fn message(u: &mut Unstructured<'_>) -> Result<Message> {
    Ok(match u.int_in_range(0..=10u8)? {
        0 => Message::Prepare {
            ballot: ballot(u)?,
            first_slot: slot(u)?,
        },
        1 => {
            let mut slots = Vec::new();
            for _ in 0..count(u, 4) {
                let state = if u.arbitrary()? {
                    SlotState::Chosen(paxos_value(u)?)
                } else {
                    SlotState::Accepted {
                        ballot: ballot(u)?,
                        value: paxos_value(u)?,
                    }
                };
                slots.push((slot(u)?, state));
            }
            Message::Promise {
                ballot: ballot(u)?,
                compacted_through: slot(u)?,
                first_slot: slot(u)?,
                slots,
                more_from: if u.arbitrary()? { Some(slot(u)?) } else { None },
            }
        }
        2 => Message::Accept {
            ballot: ballot(u)?,
            entries: entries(u)?,
            commit: slot(u)?,
            lazy: u.arbitrary()?,
        },
        3 => {
            let mut slots = Vec::new();
            for _ in 0..count(u, 4) {
                slots.push(slot(u)?);
            }
            Message::Accepted {
                ballot: ballot(u)?,
                slots,
            }
        }
        4 => Message::Reject {
            ballot: ballot(u)?,
            promised: ballot(u)?,
        },
        5 => Message::Heartbeat {
            ballot: ballot(u)?,
            commit: slot(u)?,
            round: number(u)?,
        },
        6 => Message::HeartbeatAck {
            ballot: ballot(u)?,
            round: number(u)?,
            commit: slot(u)?,
        },
        7 => Message::Fetch {
            first_slot: slot(u)?,
        },
        8 => Message::ReadIndex {
            request: number(u)?,
        },
        9 => Message::ReadIndexReply {
            ballot: ballot(u)?,
            request: number(u)?,
            index: if u.arbitrary()? { Some(slot(u)?) } else { None },
        },
        _ => Message::Chosen {
            entries: entries(u)?,
        },
    })
}

/// An envelope from a generated sender to `to`.
pub fn envelope(u: &mut Unstructured<'_>, to: NodeId) -> Result<Envelope> {
    Ok(Envelope {
        from: node(u)?,
        to,
        message: message(u)?,
    })
}
