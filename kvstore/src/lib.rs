#![deny(missing_docs)]

//! Durable state of a Synod node: the acceptor's write-ahead log and the replicated key-value
//! state machine on redb.
//!
//! - [`command`](synod_wire::command): the requests clients send through the log ([`Request`], [`Op`]), protobuf
//!   messages written with prost derives; [`Request::decode_validated`] turns untrusted bytes
//!   into a checked request or a typed [`RequestError`], never a panic.
//! - [`response`](synod_wire::response): what each command answers ([`Response`]).
//! - [`limits`](synod_wire::limits): every size and count bound on requests and on the state machine's tables.
//! - [`StateMachine`]: applies chosen log slots to redb tables, atomically with the applied
//!   index, deterministically, exactly once per client request; serves reads outside the log.
//! - [`WalLog`]: the acceptor's promise and log in an append-only write-ahead log, the
//!   `synod_paxos::Storage` of a node; one append and one fsync per `persist`, however many
//!   records. It runs on a [`WalDisk`]: a real directory ([`FsDisk`]) or a simulated one whose
//!   crashes and faults a test controls ([`SimDisk`]).
//! - [`NodeStore`]: a node's log and state machine together, and the restart and compaction
//!   rules.
//! - [`snapshot`]: a consistent snapshot of the state machine streamed in bounded chunks
//!   ([`Snapshot`]), and its atomic installation on another node ([`SnapshotInstaller`]).
//! - Coordination ([`coord_command`](synod_wire::coord_command), [`coord_response`](synod_wire::coord_response)): sessions with TTLs and ephemeral keys
//!   ([`coord::session`]), locks with fencing tokens and lock-delay ([`coord::lock`]), elections,
//!   fenced writes, all in [`coord`]; [`SessionClock`] ([`coord::session_clock`]), the leader's pure
//!   helper that decides when to expire sessions, end lock-delays and checkpoint TTLs;
//!   [`watch`], the events of every change and their bounded history.
//! - Key expiry ([`expiry_command`](synod_wire::expiry_command)): TTLs on keys (Redis `EXPIRE`, `SET .. PX`), applied
//!   without a clock; [`KeyExpiryClock`] ([`key_expiry::clock`]), the leader's pure helper that
//!   decides when to delete expired keys and checkpoint their remaining TTLs.

mod bugs;
pub mod coord;
mod dedup;
mod effects;
pub mod error;
mod exec;
pub mod fnv;
pub mod key_expiry;
mod kv;
mod log;
pub mod membership;
mod node_store;
mod range;
pub(crate) mod redis;
mod sim_backend;
pub mod snapshot;
mod state_machine;
mod tables;
pub mod watch;
mod writer;

#[cfg(feature = "bug-injection")]
pub use bugs::Bugs;
pub use coord::{DelayedLock, SessionClock, SessionClockConfig, SessionInfo};
pub use effects::{ExpiryEvent, SessionEvent, SlotEffects};
pub use error::StorageError;
pub use key_expiry::{KeyExpiry, KeyExpiryClock, KeyExpiryConfig};
pub use log::{
    format as wal_format, FsDisk, LogError, SimDisk, WalDisk, WalLog, WalOptions, WAL_FORMAT,
};
pub use node_store::{NodeStore, LOG_DIR, STATE_FILE};
pub use sim_backend::SimRedbBackend;
pub use snapshot::{
    EntryTally, Snapshot, SnapshotChunk, SnapshotError, SnapshotInstaller, SnapshotReceiver,
    MAX_SNAPSHOT_REVISION, SNAPSHOT_STALL,
};
pub use state_machine::{AppliedSlot, Options, StateCounts, StateMachine};
pub use watch::{WatchBatch, WatchError};

// The wire types this crate's API takes and answers (`StateMachine::apply` a `Request`, its
// `Response`, watch `Event`s), re-exported so that a node's code names one crate for the state
// machine and what it applies. They are defined in `synod-wire`, which the client shares.
pub use synod_wire::{
    kind_name, Campaign, CampaignResponse, CheckpointEntry, CheckpointKeys, CheckpointKeysResponse,
    CheckpointSessions, CheckpointSessionsResponse, CloseSession, CloseSessionResponse, Compare,
    CompareAndSwap, CompareAndSwapResponse, CompareOp, CompareTarget, Delete, DeleteRange,
    DeleteRangeResponse, DeleteResponse, ElectionStatus, ErrorCode, ErrorResponse, Event,
    EventFilter, EventKind, EventSpace, Expected, Expire, ExpireIf, ExpireKeyEntry, ExpireKeys,
    ExpireKeysResponse, ExpireResponse, ExpireSession, ExpireSessionResponse, Fence, Get,
    GetResponse, Incr, IncrResponse, KeepAlive, KeepAliveResponse, KeyCheckpointEntry, KeyTtl,
    KeyValue, Leader, LeaderInfo, LeaderResponse, Lock, LockHolder, LockHolderResponse,
    LockResponse, LockStatus, Op, OpenSession, OpenSessionResponse, Outcome, Persist,
    PersistResponse, Proclaim, ProclaimResponse, Put, PutResponse, RedisArray, RedisCommand,
    RedisMulti, RedisReply, ReleaseLockDelay, ReleaseLockDelayResponse, ReplyKind, Request,
    RequestError, Resign, ResignResponse, Response, Scan, ScanResponse, Ttl, TtlResponse, Txn,
    TxnOp, TxnOpKind, TxnOpResponse, TxnOutcome, TxnResponse, Unlock, UnlockResponse, WatchedKey,
    KIND_HASH, KIND_LIST, KIND_SET, KIND_STRING, KIND_ZSET,
};
