//! Client commands: the protobuf messages a client's request is encoded as in the log.
//!
//! The messages are written by hand with `prost` derives (no `.proto` file, no build script). Their
//! schema, for anyone writing a `.proto` that must stay wire-compatible:
//!
//! ```text
//! message Request       { uint64 client_id = 1; uint64 seq = 2;
//!                         oneof op { Put put = 3; Get get = 4; Delete delete = 5;
//!                                    DeleteRange delete_range = 6; Scan scan = 7;
//!                                    CompareAndSwap compare_and_swap = 8; Txn txn = 9;
//!                                    Incr incr = 10;
//!                                    OpenSession open_session = 13; KeepAlive keep_alive = 14;
//!                                    CloseSession close_session = 15;
//!                                    ExpireSession expire_session = 16;
//!                                    CheckpointSessions checkpoint_sessions = 17;
//!                                    Lock lock = 18; Unlock unlock = 19;
//!                                    ReleaseLockDelay release_lock_delay = 20;
//!                                    LockHolder lock_holder = 21; Campaign campaign = 22;
//!                                    Proclaim proclaim = 23; Resign resign = 24;
//!                                    Leader leader = 25; Expire expire = 26;
//!                                    Persist persist = 27; Ttl ttl = 28;
//!                                    ExpireKeys expire_keys = 29;
//!                                    CheckpointKeys checkpoint_keys = 30;
//!                                    RedisCommand redis = 31; }
//!                         Fence fence = 11; uint64 session = 12;
//!                         KeyTtl key_ttl = 64; }   // ops take tags below 64
//! message Put           { bytes key = 1; bytes value = 2; bool prev_kv = 3; }
//! message Get           { bytes key = 1; }
//! message Delete        { bytes key = 1; bool prev_kv = 2; }
//! message DeleteRange   { bytes start = 1; bytes end = 2; bytes prefix = 3; }
//! message Scan          { bytes start = 1; bytes end = 2; bytes prefix = 3; uint32 limit = 4;
//!                         bool keys_only = 5; }
//! message CompareAndSwap{ bytes key = 1; oneof expected { bytes value = 2; uint64 mod_revision = 3; }
//!                         bytes new_value = 4; }
//! message Txn           { repeated Compare compares = 1; repeated TxnOp success = 2;
//!                         repeated TxnOp failure = 3; }
//! message Compare       { bytes key = 1; CompareTarget target = 2; CompareOp op = 3;
//!                         bytes value = 4; uint64 number = 5; }
//! message TxnOp         { oneof op { Put put = 1; Delete delete = 2; Get get = 3; } }
//! message Incr          { bytes key = 1; sint64 delta = 2; }
//! enum CompareTarget    { VALUE = 0; VERSION = 1; CREATE_REVISION = 2; MOD_REVISION = 3; }
//! enum CompareOp        { EQUAL = 0; NOT_EQUAL = 1; LESS = 2; GREATER = 3; }
//! ```
//!
//! The coordination messages (sessions, locks, elections, [`Fence`]) are in
//! [`crate::coord_command`], the key expiry messages ([`KeyTtl`], [`Expire`], ...) in
//! [`crate::expiry_command`]. Decoding and validation are methods of [`Request`]: use
//! [`Request::decode_validated`] on untrusted bytes.
//!
//! ## Fences and sessions
//!
//! A request may carry a [`Fence`]: it is applied only if the fence's token is the named lock's
//! current token, else refused with
//! [`RequestError::FencingTokenRejected`](crate::RequestError::FencingTokenRejected) and nothing
//! changes. The fence is on the request rather than on each write op so that every op (put,
//! delete, delete-range, compare-and-swap, transaction, incr, and the coordination ops too) is
//! fenced the same way. A request may also name a `session`: every key it writes (put,
//! compare-and-swap, incr, transaction puts) becomes ephemeral, owned by that session, and is
//! deleted when the session closes or expires; a write without a session makes the key
//! persistent again (as etcd's put without a lease). Likewise a request may carry a [`KeyTtl`]
//! saying what becomes of the expiry of every key it writes (see [`crate::expiry_command`]).
//!
//! ## Ranges
//!
//! [`Scan`] and [`DeleteRange`] select the keys `k` with `start <= k < end` (byte-wise order) that
//! also start with `prefix`. An empty `start` means "from the first key", an empty `end` means "to
//! the end of the keyspace", an empty `prefix` restricts nothing. So `{prefix: "a/"}` is every key
//! under `a/`, `{prefix: "a/", start: "a/m"}` continues a paginated scan of that prefix, and `{}`
//! is the whole keyspace. An `end` at or below `start` selects nothing. This is etcd's
//! `[key, range_end)` with its two special cases (`range_end == "\0"` for "to the end",
//! `WithPrefix`) spelled as explicit fields.

pub use crate::coord_command::{
    Campaign, CheckpointEntry, CheckpointSessions, CloseSession, ExpireSession, Fence, KeepAlive,
    Leader, Lock, LockHolder, OpenSession, Proclaim, ReleaseLockDelay, Resign, Unlock,
};
pub use crate::expiry_command::{
    CheckpointKeys, Expire, ExpireIf, ExpireKeyEntry, ExpireKeys, KeyCheckpointEntry, KeyTtl,
    Persist, Ttl,
};
pub use crate::redis::{RedisCommand, RedisMulti, WatchedKey};

/// One client request: who sent it, its sequence number, and the operation.
///
/// `client_id == 0` means "no exactly-once": the request bypasses the dedup table (a retry of a
/// write with client id 0 applies again). Any other client id must number its requests from 1 and
/// have at most one outstanding at a time; see `synod_kvstore::StateMachine` for the exactly-once rule.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Request {
    /// The client's id; 0 for requests that do not need exactly-once.
    #[prost(uint64, tag = "1")]
    pub client_id: u64,
    /// The client's sequence number for this request, from 1 (ignored when `client_id == 0`).
    #[prost(uint64, tag = "2")]
    pub seq: u64,
    /// What to do. `None` (absent on the wire) is refused by validation.
    #[prost(
        oneof = "Op",
        tags = "3, 4, 5, 6, 7, 8, 9, 10, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32"
    )]
    pub op: Option<Op>,
    /// Apply only if this lock token is current (see the module docs).
    #[prost(message, optional, tag = "11")]
    pub fence: Option<Fence>,
    /// The session that owns every key this request writes; 0 = none (persistent keys).
    #[prost(uint64, tag = "12")]
    pub session: u64,
    /// What becomes of the expiry of every key this request writes a value to; `None`: what
    /// the op does by default (see [`crate::expiry_command`]).
    #[prost(message, optional, tag = "64")]
    pub key_ttl: Option<KeyTtl>,
}

/// The operation of a [`Request`].
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Op {
    /// Write a key.
    #[prost(message, tag = "3")]
    Put(Put),
    /// Read a key.
    #[prost(message, tag = "4")]
    Get(Get),
    /// Remove a key.
    #[prost(message, tag = "5")]
    Delete(Delete),
    /// Remove every key of a range.
    #[prost(message, tag = "6")]
    DeleteRange(DeleteRange),
    /// Read the keys of a range, in key order, up to a limit.
    #[prost(message, tag = "7")]
    Scan(Scan),
    /// Write a key if it holds an expected value or revision.
    #[prost(message, tag = "8")]
    CompareAndSwap(CompareAndSwap),
    /// Compare several keys, then run one list of ops or another, atomically.
    #[prost(message, tag = "9")]
    Txn(Txn),
    /// Add to a key's integer value.
    #[prost(message, tag = "10")]
    Incr(Incr),
    /// Open a session with a TTL.
    #[prost(message, tag = "13")]
    OpenSession(OpenSession),
    /// Keep a session alive.
    #[prost(message, tag = "14")]
    KeepAlive(KeepAlive),
    /// Close a session.
    #[prost(message, tag = "15")]
    CloseSession(CloseSession),
    /// Leader-only: expire a session whose deadline passed.
    #[prost(message, tag = "16")]
    ExpireSession(ExpireSession),
    /// Leader-only: record the sessions' remaining TTLs.
    #[prost(message, tag = "17")]
    CheckpointSessions(CheckpointSessions),
    /// Acquire (or queue for) a lock.
    #[prost(message, tag = "18")]
    Lock(Lock),
    /// Release a lock, or leave its queue.
    #[prost(message, tag = "19")]
    Unlock(Unlock),
    /// Leader-only: end a lock's lock-delay.
    #[prost(message, tag = "20")]
    ReleaseLockDelay(ReleaseLockDelay),
    /// Read a lock's holder, token and waiters.
    #[prost(message, tag = "21")]
    LockHolder(LockHolder),
    /// Run for leader of an election.
    #[prost(message, tag = "22")]
    Campaign(Campaign),
    /// Change the value of the election's leader.
    #[prost(message, tag = "23")]
    Proclaim(Proclaim),
    /// Give up leadership or candidacy.
    #[prost(message, tag = "24")]
    Resign(Resign),
    /// Read an election's leader and candidates.
    #[prost(message, tag = "25")]
    Leader(Leader),
    /// Set, change or end a key's expiry.
    #[prost(message, tag = "26")]
    Expire(Expire),
    /// Remove a key's expiry.
    #[prost(message, tag = "27")]
    Persist(Persist),
    /// Read a key's expiry.
    #[prost(message, tag = "28")]
    Ttl(Ttl),
    /// Leader-only: delete keys whose deadline passed.
    #[prost(message, tag = "29")]
    ExpireKeys(ExpireKeys),
    /// Leader-only: record the keys' remaining TTLs.
    #[prost(message, tag = "30")]
    CheckpointKeys(CheckpointKeys),
    /// Run one Redis data command (strings, keyspace, hashes, sets, lists, sorted sets) as one
    /// atomic command; see [`crate::redis`].
    #[prost(message, tag = "31")]
    Redis(RedisCommand),
    /// Run a Redis `MULTI` block as one atomic command; see [`RedisMulti`].
    #[prost(message, tag = "32")]
    RedisMulti(RedisMulti),
}

impl Op {
    /// Whether this op only reads (Get, Scan, LockHolder, Leader, Ttl and the read-only Redis
    /// commands), so it may be served outside the log.
    pub fn is_read_only(&self) -> bool {
        match self {
            Op::Get(_) | Op::Scan(_) | Op::LockHolder(_) | Op::Leader(_) | Op::Ttl(_) => true,
            Op::Redis(command) => command.is_read_only(),
            _ => false,
        }
    }

    /// Whether only the leader's `synod_kvstore::SessionClock` or
    /// `synod_kvstore::KeyExpiryClock` may propose this op (ExpireSession,
    /// CheckpointSessions, ReleaseLockDelay, ExpireKeys, CheckpointKeys). The state machine
    /// cannot tell who proposed a command, so the client-facing service must refuse these from
    /// clients.
    pub fn is_leader_only(&self) -> bool {
        matches!(
            self,
            Op::ExpireSession(_)
                | Op::CheckpointSessions(_)
                | Op::ReleaseLockDelay(_)
                | Op::ExpireKeys(_)
                | Op::CheckpointKeys(_)
        )
    }
}

/// Write `value` under `key`, creating the key or replacing its value.
///
/// Always changes state: the store revision goes up by one, the key's `mod_revision` becomes it
/// and its `version` goes up by one (to 1 when the key is created).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Put {
    /// The key; non-empty, at most [`MAX_KEY_BYTES`](crate::limits::MAX_KEY_BYTES).
    #[prost(bytes = "vec", tag = "1")]
    pub key: Vec<u8>,
    /// The new value; at most [`MAX_VALUE_BYTES`](crate::limits::MAX_VALUE_BYTES).
    #[prost(bytes = "vec", tag = "2")]
    pub value: Vec<u8>,
    /// Return the key's previous value and metadata, if it had one.
    #[prost(bool, tag = "3")]
    pub prev_kv: bool,
}

/// Read `key`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Get {
    /// The key; non-empty, at most [`MAX_KEY_BYTES`](crate::limits::MAX_KEY_BYTES).
    #[prost(bytes = "vec", tag = "1")]
    pub key: Vec<u8>,
}

/// Remove `key`. Removing an absent key changes nothing (and does not bump the revision).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Delete {
    /// The key; non-empty, at most [`MAX_KEY_BYTES`](crate::limits::MAX_KEY_BYTES).
    #[prost(bytes = "vec", tag = "1")]
    pub key: Vec<u8>,
    /// Return the removed value and metadata.
    #[prost(bool, tag = "2")]
    pub prev_kv: bool,
}

/// Remove every key in a range (see the module docs for range semantics).
///
/// All removals happen in one command, under one revision; removing nothing changes nothing. The
/// cost is proportional to the number of keys removed, all within one apply.
#[derive(Clone, PartialEq, prost::Message)]
pub struct DeleteRange {
    /// Inclusive lower bound; empty = from the first key.
    #[prost(bytes = "vec", tag = "1")]
    pub start: Vec<u8>,
    /// Exclusive upper bound; empty = to the end of the keyspace.
    #[prost(bytes = "vec", tag = "2")]
    pub end: Vec<u8>,
    /// Only keys starting with this; empty = no restriction.
    #[prost(bytes = "vec", tag = "3")]
    pub prefix: Vec<u8>,
}

/// Read the keys of a range in ascending key order (see the module docs for range semantics).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Scan {
    /// Inclusive lower bound; empty = from the first key.
    #[prost(bytes = "vec", tag = "1")]
    pub start: Vec<u8>,
    /// Exclusive upper bound; empty = to the end of the keyspace.
    #[prost(bytes = "vec", tag = "2")]
    pub end: Vec<u8>,
    /// Only keys starting with this; empty = no restriction.
    #[prost(bytes = "vec", tag = "3")]
    pub prefix: Vec<u8>,
    /// Most entries to return; 0 means [`MAX_SCAN_LIMIT`](crate::limits::MAX_SCAN_LIMIT), more
    /// than that is refused.
    #[prost(uint32, tag = "4")]
    pub limit: u32,
    /// Return keys and metadata with empty values.
    #[prost(bool, tag = "5")]
    pub keys_only: bool,
}

/// Write `new_value` under `key` if the key currently matches `expected`.
///
/// On a match this is a [`Put`]; otherwise nothing changes and the response carries the key's
/// current state.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CompareAndSwap {
    /// The key; non-empty, at most [`MAX_KEY_BYTES`](crate::limits::MAX_KEY_BYTES).
    #[prost(bytes = "vec", tag = "1")]
    pub key: Vec<u8>,
    /// What the key must hold; `None` means the key must be absent.
    #[prost(oneof = "Expected", tags = "2, 3")]
    pub expected: Option<Expected>,
    /// The value to write on a match.
    #[prost(bytes = "vec", tag = "4")]
    pub new_value: Vec<u8>,
}

/// What a [`CompareAndSwap`] expects the key to hold.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Expected {
    /// The key exists and its value equals this.
    #[prost(bytes = "vec", tag = "2")]
    Value(Vec<u8>),
    /// The key's `mod_revision` equals this (0 = the key is absent, as in etcd).
    #[prost(uint64, tag = "3")]
    ModRevision(u64),
}

/// An atomic transaction: if every compare holds, run `success`, else run `failure`.
///
/// The whole transaction is one command: if any of its ops changes state it bumps the store
/// revision once, and every key it writes gets that revision as `mod_revision`. A branch may not
/// write (put or delete) the same key twice. A get inside a branch sees the branch's earlier
/// writes.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Txn {
    /// Conditions, all of which must hold for `success` to run.
    #[prost(message, repeated, tag = "1")]
    pub compares: Vec<Compare>,
    /// Ops run, in order, when every compare holds.
    #[prost(message, repeated, tag = "2")]
    pub success: Vec<TxnOp>,
    /// Ops run, in order, when some compare fails.
    #[prost(message, repeated, tag = "3")]
    pub failure: Vec<TxnOp>,
}

/// One condition of a [`Txn`]: `<target of key> <op> <operand>`.
///
/// For [`CompareTarget::Value`] the operand is `value` and the order is byte-wise; for the other
/// targets it is `number`. An absent key has version, create revision and mod revision 0, and no
/// value: a value compare against an absent key is false whatever the op (as in etcd).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Compare {
    /// The key; non-empty, at most [`MAX_KEY_BYTES`](crate::limits::MAX_KEY_BYTES).
    #[prost(bytes = "vec", tag = "1")]
    pub key: Vec<u8>,
    /// What of the key to compare, a [`CompareTarget`].
    #[prost(enumeration = "CompareTarget", tag = "2")]
    pub target: i32,
    /// How to compare, a [`CompareOp`].
    #[prost(enumeration = "CompareOp", tag = "3")]
    pub op: i32,
    /// Operand of a [`CompareTarget::Value`] compare.
    #[prost(bytes = "vec", tag = "4")]
    pub value: Vec<u8>,
    /// Operand of a version or revision compare.
    #[prost(uint64, tag = "5")]
    pub number: u64,
}

/// What a [`Compare`] looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum CompareTarget {
    /// The key's value (false for an absent key).
    Value = 0,
    /// The key's version (0 if absent).
    Version = 1,
    /// The key's create revision (0 if absent).
    CreateRevision = 2,
    /// The key's mod revision (0 if absent).
    ModRevision = 3,
}

/// How a [`Compare`] compares the target with its operand: `target <op> operand`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum CompareOp {
    /// `target == operand`.
    Equal = 0,
    /// `target != operand`.
    NotEqual = 1,
    /// `target < operand`.
    Less = 2,
    /// `target > operand`.
    Greater = 3,
}

impl Compare {
    fn of(key: &[u8], target: CompareTarget, op: CompareOp) -> Compare {
        Compare {
            key: key.to_vec(),
            target: target as i32,
            op: op as i32,
            value: Vec::new(),
            number: 0,
        }
    }

    /// `key`'s value `op` `value`, byte-wise (false for an absent key).
    pub fn value(key: &[u8], op: CompareOp, value: &[u8]) -> Compare {
        Compare {
            value: value.to_vec(),
            ..Compare::of(key, CompareTarget::Value, op)
        }
    }

    /// `key`'s version `op` `version` (0: absent).
    pub fn version(key: &[u8], op: CompareOp, version: u64) -> Compare {
        Compare {
            number: version,
            ..Compare::of(key, CompareTarget::Version, op)
        }
    }

    /// `key`'s create revision `op` `revision` (0: absent).
    pub fn create_revision(key: &[u8], op: CompareOp, revision: u64) -> Compare {
        Compare {
            number: revision,
            ..Compare::of(key, CompareTarget::CreateRevision, op)
        }
    }

    /// `key`'s mod revision `op` `revision` (0: absent).
    pub fn mod_revision(key: &[u8], op: CompareOp, revision: u64) -> Compare {
        Compare {
            number: revision,
            ..Compare::of(key, CompareTarget::ModRevision, op)
        }
    }
}

/// One op of a [`Txn`] branch.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TxnOp {
    /// The op; `None` is refused by validation.
    #[prost(oneof = "TxnOpKind", tags = "1, 2, 3")]
    pub op: Option<TxnOpKind>,
}

/// The ops a [`Txn`] branch may hold.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum TxnOpKind {
    /// As [`Op::Put`].
    #[prost(message, tag = "1")]
    Put(Put),
    /// As [`Op::Delete`].
    #[prost(message, tag = "2")]
    Delete(Delete),
    /// As [`Op::Get`].
    #[prost(message, tag = "3")]
    Get(Get),
}

impl TxnOp {
    /// Set `key` to `value`.
    pub fn put(key: &[u8], value: &[u8]) -> TxnOp {
        TxnOp {
            op: Some(TxnOpKind::Put(Put {
                key: key.to_vec(),
                value: value.to_vec(),
                prev_kv: false,
            })),
        }
    }

    /// Delete `key`.
    pub fn delete(key: &[u8]) -> TxnOp {
        TxnOp {
            op: Some(TxnOpKind::Delete(Delete {
                key: key.to_vec(),
                prev_kv: false,
            })),
        }
    }

    /// Read `key` (as it is at this point of the branch).
    pub fn get(key: &[u8]) -> TxnOp {
        TxnOp {
            op: Some(TxnOpKind::Get(Get { key: key.to_vec() })),
        }
    }
}

/// Add `delta` to the integer stored under `key`, like Redis `INCRBY`.
///
/// The value is kept as decimal ASCII in canonical form (an optional `-`, no `+`, no leading
/// zeros, no spaces) and must fit an `i64`; an absent key counts as 0. A value in any other form
/// is refused with [`RequestError::NotAnInteger`](crate::RequestError::NotAnInteger), a result
/// outside `i64` with [`RequestError::IncrOverflow`](crate::RequestError::IncrOverflow); neither
/// changes anything.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Incr {
    /// The key; non-empty, at most [`MAX_KEY_BYTES`](crate::limits::MAX_KEY_BYTES).
    #[prost(bytes = "vec", tag = "1")]
    pub key: Vec<u8>,
    /// The amount to add (negative to subtract).
    #[prost(sint64, tag = "2")]
    pub delta: i64,
}

impl Request {
    /// A request with `client_id` 0 (no exactly-once) carrying `op`.
    pub fn anonymous(op: Op) -> Request {
        Request {
            client_id: 0,
            seq: 0,
            op: Some(op),
            fence: None,
            session: 0,
            key_ttl: None,
        }
    }

    /// The request numbered `seq` of client `client_id`, carrying `op`.
    pub fn from_client(client_id: u64, seq: u64, op: Op) -> Request {
        Request {
            client_id,
            seq,
            op: Some(op),
            fence: None,
            session: 0,
            key_ttl: None,
        }
    }

    /// This request, applied only if `token` is lock `lock_name`'s current token.
    pub fn fenced(mut self, lock_name: impl Into<Vec<u8>>, token: u64) -> Request {
        self.fence = Some(Fence {
            lock_name: lock_name.into(),
            token,
        });
        self
    }

    /// This request, with every key it writes owned by `session` (ephemeral).
    pub fn in_session(mut self, session: u64) -> Request {
        self.session = session;
        self
    }

    /// This request, with `key_ttl` deciding the expiry of every key it writes (see
    /// [`crate::expiry_command`]).
    pub fn with_key_ttl(mut self, key_ttl: KeyTtl) -> Request {
        self.key_ttl = Some(key_ttl);
        self
    }
}
