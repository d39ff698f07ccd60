#![deny(missing_docs)]

//! Durable state of a Synod node: the acceptor's write-ahead log and the replicated key-value
//! state machine on redb.
//!
//! - [`NodeStore`]: a node's log and state machine together, and the restart and compaction
//!   rules.
//! - [`WalLog`]: the acceptor's promise and log in an append-only write-ahead log, the
//!   `synod_paxos::Storage` of a node; one write and one `fdatasync` per `persist`, however
//!   many records, into room reserved ahead of the frames. It runs on a [`WalDisk`]: a real directory ([`FsDisk`]) or a simulated one whose
//!   crashes and faults a test controls ([`SimDisk`]).
//! - [`StateMachine`]: applies chosen log slots to redb tables, atomically with the applied
//!   index, deterministically, exactly once per client request; serves reads outside the log.
//!   What it applies are `synod_wire`'s commands, re-exported here: [`Request`], [`Op`]
//!   ([`command`](synod_wire::command); [`Request::decode_validated`] turns untrusted bytes into a
//!   checked request or a typed [`RequestError`], never a panic), answered by a [`Response`]
//!   ([`response`](synod_wire::response)), within [`limits`](synod_wire::limits).
//! - [`snapshot`]: a consistent snapshot of the state machine streamed in bounded chunks
//!   ([`Snapshot`]), its atomic installation on another node ([`SnapshotInstaller`]), and the
//!   choice of one stream among those peers send ([`SnapshotReceiver`]).
//! - [`coord`]: sessions with TTLs and ephemeral keys, locks with fencing tokens and lock-delay,
//!   elections, fenced writes ([`coord_command`](synod_wire::coord_command)); [`SessionClock`],
//!   the leader's pure helper that decides when to expire sessions, end lock-delays and
//!   checkpoint TTLs.
//! - [`key_expiry`]: TTLs on keys (Redis `EXPIRE`, `SET .. PX`), applied without a clock
//!   ([`expiry_command`](synod_wire::expiry_command)); [`KeyExpiryClock`], the leader's pure
//!   helper that decides when to delete expired keys and checkpoint their remaining TTLs.
//! - [`watch`]: the events of every change and their bounded history.
//!
//! # Layout
//! One concern per module, and a folder where a concern has parts:
//!
//! | module | what |
//! |---|---|
//! | `node_store` | a node's directory: the log and the state machine side by side |
//! | `log/` | the acceptor's log: `wal` (the segments, frames and opening rules), `disk` (the files under it) |
//! | `state_machine` | apply a slot in one write transaction; reads, flush, state hash, membership |
//! | `exec` | one command: its fence, its op handed to the module below, the revision rule |
//! | `kv` | the key-value commands: get, scan, delete, compare-and-swap, incr, transactions |
//! | `coord/` | `session`, `owned` (what a session owns), `lock`, `election`, `queue` (their shared record), `tables`, `session_clock` |
//! | `key_expiry/` | the key expiry commands (`mod.rs`) and the leader's `clock` |
//! | `redis/` | Redis's data types as state-machine commands; `elements`, the layout of their elements |
//! | `writer` | one command's writes, with the bookkeeping of every key written or deleted |
//! | `tables` | `sm_kv`, `sm_meta`, `sm_dedup`: definitions and records |
//! | `dedup`, `watch`, `membership` | exactly-once, the watch history, the membership log as state |
//! | `snapshot/` | the stream and its reading (`mod.rs`), `install` (stage, then swap in), `receive` |
//! | `effects`, `range`, `fnv`, `error`, `bugs`, `sim_backend` | what an apply hands out; key ranges; FNV-1a; errors; deliberately broken rules; the simulator's redb backend |
//!
//! Imports go one way: `node_store` → `state_machine` → `exec` → the commands (`kv`, `coord`,
//! `key_expiry`, `redis`) → `writer` → the tables (`tables`, `coord::tables`) and two
//! table-level helpers (`coord::owned`, `redis::elements`). A folder may hold modules of two
//! layers (`coord::lock` uses the writer, which uses `coord::owned`; `snapshot::receive` drives a
//! `StateMachine`, which uses `snapshot::install`), but no file imports one that imports it back,
//! except `error` and `log::wal`, which name each other's error types (see `error`).
//!
//! Modules are private unless they export something (`coord`, `key_expiry`, `snapshot`, `watch`,
//! `fnv`, `membership`); the types a node uses are also re-exported here.

mod bugs;
pub mod coord;
mod dedup;
mod effects;
mod error;
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
pub use effects::{KeyExpiryEvent, SessionEvent, SlotEffects};
pub use error::StorageError;
pub use key_expiry::{KeyExpiry, KeyExpiryClock, KeyExpiryConfig};
pub use log::{
    format as wal_format, FsDisk, LogError, SimDisk, WalDisk, WalLog, WalOptions, WAL_FORMAT,
    WAL_FORMAT_WITHOUT_SYNC_MARKS, WAL_RESERVE_STEP_BYTES, WAL_SYNC_UNSYNCED_BYTES,
};
pub use node_store::{NodeStore, LOG_DIR, STATE_FILE};
pub use sim_backend::SimRedbBackend;
pub use snapshot::{
    EntryTally, Snapshot, SnapshotChunk, SnapshotError, SnapshotInstaller, SnapshotReceiver,
    MAX_SNAPSHOT_REVISION, SNAPSHOT_STALL,
};
pub use state_machine::{AppliedSlot, Options, Reader, StateCounts, StateMachine};
pub use watch::{WatchBatch, WatchError};

// The wire types this crate's API takes and answers (`StateMachine::apply_slots` encoded `Request`s, their
// `Response`s, watch `Event`s), re-exported so that a node's code names one crate for the state
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
