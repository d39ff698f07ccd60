//! Helpers shared by the state machine's integration tests.
#![allow(dead_code)]

pub mod generate;

use std::path::PathBuf;

use prost::Message;
use synod_kvstore::{
    CompareAndSwap, Delete, DeleteRange, ErrorCode, Expected, Get, Incr, KeyValue, Op, Outcome,
    Put, Request, Response, Scan, StateMachine,
};

/// How many bytes of `bytes`, a whole write-ahead log segment, its header and frames take (the
/// rest is reserved room, zeros): frames follow the 28-byte header, each a 24-byte header
/// starting with its payload's length, then the payload (see `WalLog`'s docs).
pub fn wal_frames_len(bytes: &[u8]) -> u64 {
    let mut at = 28;
    while let Some(len) = bytes.get(at..at + 8) {
        // The length field's top bit marks a frame written with a sync.
        let len = (u64::from_le_bytes(len.try_into().unwrap()) & !(1 << 63)) as usize;
        if len == 0 {
            break;
        }
        at += 24 + len;
    }
    at as u64
}

/// A state machine plus the next slot to apply.
pub struct Harness {
    pub sm: StateMachine,
}

impl Harness {
    pub fn new() -> Harness {
        Harness {
            sm: StateMachine::in_memory().unwrap(),
        }
    }

    pub fn with(sm: StateMachine) -> Harness {
        Harness { sm }
    }

    /// Apply raw commands as the next slot.
    pub fn apply_raw(&mut self, commands: &[Vec<u8>]) -> Vec<Response> {
        let slot = self.sm.applied_index() + 1;
        self.sm
            .apply_slots([(slot, commands)])
            .unwrap()
            .remove(0)
            .responses
    }

    /// Apply requests as the next slot.
    pub fn apply(&mut self, requests: &[Request]) -> Vec<Response> {
        let commands: Vec<Vec<u8>> = requests.iter().map(Message::encode_to_vec).collect();
        self.apply_raw(&commands)
    }

    /// Apply one anonymous op as its own slot.
    pub fn op(&mut self, op: Op) -> Response {
        self.apply(&[Request::anonymous(op)]).remove(0)
    }

    /// Apply one client request as its own slot.
    pub fn client(&mut self, client_id: u64, seq: u64, op: Op) -> Response {
        self.apply(&[Request::from_client(client_id, seq, op)])
            .remove(0)
    }

    /// Read a key outside the log.
    pub fn get(&self, key: &[u8]) -> Option<KeyValue> {
        match self.sm.read(&get(key)).unwrap().outcome {
            Some(Outcome::Get(g)) => g.kv,
            other => panic!("get answered {other:?}"),
        }
    }

    /// Every key, in order, read outside the log.
    pub fn all(&self) -> Vec<KeyValue> {
        match self.sm.read(&scan(b"", b"", b"", 0)).unwrap().outcome {
            Some(Outcome::Scan(s)) => s.kvs,
            other => panic!("scan answered {other:?}"),
        }
    }
}

pub fn put(key: &[u8], value: &[u8]) -> Op {
    Op::Put(Put {
        key: key.to_vec(),
        value: value.to_vec(),
        prev_kv: false,
    })
}

pub fn put_prev(key: &[u8], value: &[u8]) -> Op {
    Op::Put(Put {
        key: key.to_vec(),
        value: value.to_vec(),
        prev_kv: true,
    })
}

pub fn get(key: &[u8]) -> Op {
    Op::Get(Get { key: key.to_vec() })
}

pub fn delete(key: &[u8]) -> Op {
    Op::Delete(Delete {
        key: key.to_vec(),
        prev_kv: true,
    })
}

pub fn delete_range(start: &[u8], end: &[u8], prefix: &[u8]) -> Op {
    Op::DeleteRange(DeleteRange {
        start: start.to_vec(),
        end: end.to_vec(),
        prefix: prefix.to_vec(),
    })
}

pub fn scan(start: &[u8], end: &[u8], prefix: &[u8], limit: u32) -> Op {
    Op::Scan(Scan {
        start: start.to_vec(),
        end: end.to_vec(),
        prefix: prefix.to_vec(),
        limit,
        keys_only: false,
    })
}

pub fn cas(key: &[u8], expected: Option<Expected>, new_value: &[u8]) -> Op {
    Op::CompareAndSwap(CompareAndSwap {
        key: key.to_vec(),
        expected,
        new_value: new_value.to_vec(),
    })
}

pub fn incr(key: &[u8], delta: i64) -> Op {
    Op::Incr(Incr {
        key: key.to_vec(),
        delta,
    })
}

/// The error code of a response, panicking if it is not an error.
pub fn error_code(response: &Response) -> ErrorCode {
    response
        .as_error()
        .unwrap_or_else(|| panic!("expected an error, got {response:?}"))
        .error_code()
}

/// A path in the temp dir for a database file or a node's directory, removed when dropped.
pub struct TempPath(pub PathBuf);

impl TempPath {
    pub fn new(name: &str) -> TempPath {
        let path =
            std::env::temp_dir().join(format!("synod-kvstore-{}-{name}.redb", std::process::id()));
        remove(&path);
        TempPath(path)
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        remove(&self.0);
    }
}

fn remove(path: &std::path::Path) {
    if path.is_dir() {
        let _ = std::fs::remove_dir_all(path);
    } else {
        let _ = std::fs::remove_file(path);
    }
}

/// SplitMix64: a tiny seedable generator, so every generated test input replays from its seed.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// True with probability `1/n`.
    pub fn one_in(&mut self, n: u64) -> bool {
        self.below(n) == 0
    }

    pub fn bytes(&mut self, max_len: u64) -> Vec<u8> {
        let len = self.below(max_len + 1);
        (0..len).map(|_| self.next_u64() as u8).collect()
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}
