//! Random requests over a small keyspace, so ops collide often; now and then invalid ones.

use synod_kvstore::{
    Compare, Delete, Expected, Get, Op, Put, Request, Scan, Txn, TxnOp, TxnOpKind,
};

use super::{cas, delete_range, incr, Rng};

pub const KEYS: &[&[u8]] = &[b"a", b"b", b"c", b"a/1", b"a/2", b"b/1", b"n", b"\xff"];
const VALUES: &[&[u8]] = &[
    b"",
    b"x",
    b"y",
    b"0",
    b"1",
    b"-5",
    b"9223372036854775807",
    b"01",
];

fn key(rng: &mut Rng) -> Vec<u8> {
    if rng.one_in(50) {
        return Vec::new(); // invalid: empty key
    }
    rng.pick(KEYS).to_vec()
}

fn bound(rng: &mut Rng) -> Vec<u8> {
    if rng.one_in(3) {
        Vec::new()
    } else {
        rng.pick(KEYS).to_vec()
    }
}

fn value(rng: &mut Rng) -> Vec<u8> {
    rng.pick(VALUES).to_vec()
}

fn put(rng: &mut Rng) -> Put {
    Put {
        key: key(rng),
        value: value(rng),
        prev_kv: rng.one_in(2),
    }
}

fn compare(rng: &mut Rng) -> Compare {
    Compare {
        key: key(rng),
        // Now and then an unknown target (4 or 5), which validation refuses.
        target: if rng.one_in(40) {
            4 + rng.below(2) as i32
        } else {
            rng.below(4) as i32
        },
        op: rng.below(4) as i32,
        value: value(rng),
        number: rng.below(6),
    }
}

fn txn_op(rng: &mut Rng) -> TxnOp {
    let op = match rng.below(3) {
        0 => TxnOpKind::Put(put(rng)),
        1 => TxnOpKind::Delete(Delete {
            key: key(rng),
            prev_kv: rng.one_in(2),
        }),
        _ => TxnOpKind::Get(Get { key: key(rng) }),
    };
    TxnOp { op: Some(op) }
}

/// One random op; mostly valid.
pub fn op(rng: &mut Rng) -> Op {
    match rng.below(10) {
        0 | 1 => Op::Put(put(rng)),
        2 => Op::Get(Get { key: key(rng) }),
        3 => Op::Delete(Delete {
            key: key(rng),
            prev_kv: rng.one_in(2),
        }),
        4 => delete_range(&bound(rng), &bound(rng), &bound(rng)),
        5 => Op::Scan(Scan {
            start: bound(rng),
            end: bound(rng),
            prefix: bound(rng),
            limit: rng.below(5) as u32,
            keys_only: rng.one_in(3),
        }),
        6 => {
            let expected = match rng.below(3) {
                0 => None,
                1 => Some(Expected::Value(value(rng))),
                _ => Some(Expected::ModRevision(rng.below(8))),
            };
            cas(&key(rng), expected, &value(rng))
        }
        7 => Op::Txn(Txn {
            compares: (0..rng.below(3)).map(|_| compare(rng)).collect(),
            success: (0..rng.below(4)).map(|_| txn_op(rng)).collect(),
            failure: (0..rng.below(4)).map(|_| txn_op(rng)).collect(),
        }),
        _ => incr(&key(rng), rng.below(7) as i64 - 3),
    }
}

/// Numbers requests per client, with retries and stale resends mixed in.
pub struct Clients {
    next_seq: Vec<u64>,
}

impl Clients {
    pub fn new(count: usize) -> Clients {
        Clients {
            next_seq: vec![1; count],
        }
    }

    /// A random request: anonymous, a client's next one, a retry, or a stale resend.
    pub fn request(&mut self, rng: &mut Rng) -> Request {
        let op = op(rng);
        if rng.one_in(3) {
            return Request::anonymous(op);
        }
        let client = rng.below(self.next_seq.len() as u64) as usize;
        let next = self.next_seq[client];
        let seq = match rng.below(6) {
            0 if next > 1 => next - 1,            // a retry of the last one
            1 if next > 2 => rng.below(next - 1), // stale (or 0: invalid)
            _ => {
                self.next_seq[client] += 1;
                next
            }
        };
        Request::from_client(client as u64 + 1, seq, op)
    }
}
