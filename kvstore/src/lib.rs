#![deny(missing_docs)]

//! Durable state of a Synod node: the acceptor's write-ahead log and the replicated key-value
//! state machine on redb.
//!
//! - [`command`]: the requests clients send through the log ([`Request`], [`Op`]), protobuf
//!   messages written with prost derives; [`Request::decode_validated`] turns untrusted bytes
//!   into a checked request or a typed [`RequestError`], never a panic.
//! - [`response`]: what each command answers ([`Response`]).
//! - [`limits`]: every size and count bound on requests and on the state machine's tables.
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
//! - Coordination ([`coord_command`], [`coord_response`]): sessions with TTLs and ephemeral keys
//!   ([`session`]), locks with fencing tokens and lock-delay ([`lock`]), elections
//!   ([`election`]), fenced writes; [`SessionClock`] ([`session_clock`]), the leader's pure
//!   helper that decides when to expire sessions, end lock-delays and checkpoint TTLs;
//!   [`watch`], the events of every change and their bounded history.
//! - Key expiry ([`expiry_command`]): TTLs on keys (Redis `EXPIRE`, `SET .. PX`), applied
//!   without a clock; [`KeyExpiryClock`] ([`key_expiry_clock`]), the leader's pure helper that
//!   decides when to delete expired keys and checkpoint their remaining TTLs.

mod bugs;
pub mod command;
pub mod coord_command;
pub mod coord_response;
mod coord_tables;
mod dedup;
mod effects;
pub mod election;
pub mod error;
mod exec;
pub mod expiry;
pub mod expiry_command;
pub mod fnv;
mod install;
pub mod key_expiry_clock;
pub mod limits;
pub mod lock;
pub mod membership;
mod node_store;
mod queue;
mod range;
mod receive;
pub mod redis;
pub mod response;
pub mod session;
pub mod session_clock;
mod sim_backend;
pub mod snapshot;
mod state_machine;
mod tables;
mod validate;
mod wal;
mod wal_disk;
pub mod watch;

#[cfg(feature = "bug-injection")]
pub use bugs::Bugs;
pub use command::{
    Campaign, CheckpointEntry, CheckpointKeys, CheckpointSessions, CloseSession, Compare,
    CompareAndSwap, CompareOp, CompareTarget, Delete, DeleteRange, Expected, Expire, ExpireIf,
    ExpireKeyEntry, ExpireKeys, ExpireSession, Fence, Get, Incr, KeepAlive, KeyCheckpointEntry,
    KeyTtl, Leader, Lock, LockHolder, Op, OpenSession, Persist, Proclaim, Put, RedisCommand,
    RedisMulti, ReleaseLockDelay, Request, Resign, Scan, Ttl, Txn, TxnOp, TxnOpKind, Unlock,
    WatchedKey,
};
pub use effects::{ExpiryEvent, SessionEvent, SlotEffects};
pub use error::{RequestError, StorageError};
pub use expiry::KeyExpiry;
pub use install::{SnapshotError, SnapshotInstaller};
pub use key_expiry_clock::{KeyExpiryClock, KeyExpiryConfig};
pub use lock::DelayedLock;
pub use node_store::{NodeStore, LOG_DIR, STATE_FILE};
pub use receive::{SnapshotReceiver, SNAPSHOT_STALL};
pub use response::{
    CampaignResponse, CheckpointKeysResponse, CheckpointSessionsResponse, CloseSessionResponse,
    CompareAndSwapResponse, DeleteRangeResponse, DeleteResponse, ElectionStatus, ErrorCode,
    ErrorResponse, ExpireKeysResponse, ExpireResponse, ExpireSessionResponse, GetResponse,
    IncrResponse, KeepAliveResponse, KeyValue, LeaderInfo, LeaderResponse, LockHolderResponse,
    LockResponse, LockStatus, OpenSessionResponse, Outcome, PersistResponse, ProclaimResponse,
    PutResponse, RedisArray, RedisReply, ReleaseLockDelayResponse, ReplyKind, ResignResponse,
    Response, ScanResponse, TtlResponse, TxnOpResponse, TxnOutcome, TxnResponse, UnlockResponse,
};
pub use session::SessionInfo;
pub use session_clock::{SessionClock, SessionClockConfig};
pub use sim_backend::SimRedbBackend;
pub use snapshot::{EntryTally, Snapshot, SnapshotChunk, MAX_SNAPSHOT_REVISION};
pub use state_machine::{AppliedSlot, Options, StateCounts, StateMachine};
pub use tables::{kind_name, KIND_HASH, KIND_LIST, KIND_SET, KIND_STRING, KIND_ZSET};
pub use wal::{format as wal_format, LogError, WalLog, WalOptions, WAL_FORMAT};
pub use wal_disk::{FsDisk, SimDisk, WalDisk};
pub use watch::{Event, EventFilter, EventKind, EventSpace, WatchBatch, WatchError};
