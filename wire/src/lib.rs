//! What Synod's clients and nodes say to each other.
//!
//! Everything a request or an answer is made of, and nothing that stores or decides: the Rust
//! client, the network layer and the state machine share these types, so an application that
//! uses the client compiles this small crate (prost and thiserror) rather than the storage
//! engine or the consensus core.
//!
//! - [`command`]: the requests clients send through the log ([`Request`], [`Op`]), protobuf
//!   messages written with prost derives; [`Request::decode_validated`] turns untrusted bytes
//!   into a checked request or a typed [`RequestError`], never a panic. The coordination
//!   commands are in [`coord_command`], the key expiry ones in [`expiry_command`].
//! - [`response`] and [`coord_response`]: what each command answers ([`Response`]).
//! - [`client_ids`]: who hands out which exactly-once client ids.
//! - [`limits`]: every size and count bound on requests, frames and the replicated tables; the
//!   one place they are set.
//! - [`event`]: watch events ([`Event`]) and what a watcher asks for ([`EventFilter`]).
//! - [`redis`]: Redis commands and replies as they travel in the log, and the two command tables:
//!   the state machine's and the Redis endpoint's own (both read by the node and `synod-cli`);
//!   [`resp`], the Redis protocol's encoding as a client reads
//!   it (commands out, one [`resp::Reply`] in, within limits) and the reply frames the node's
//!   Redis endpoint writes with.
//! - [`proto`]: the client protocol's generated protobuf messages (the QUIC frame and the API
//!   calls), and what an answer means for its call ([`proto::Verdict`]); [`retry`], the one
//!   backoff policy of the callers that retry.
#![deny(missing_docs)]

pub mod client_ids;
pub mod command;
pub mod coord_command;
pub mod coord_response;
pub mod error;
pub mod event;
pub mod expiry_command;
pub mod limits;
pub mod proto;
pub mod redis;
pub mod resp;
pub mod response;
pub mod retry;
mod validate;

pub use command::{
    Campaign, CheckpointEntry, CheckpointKeys, CheckpointSessions, CloseSession, Compare,
    CompareAndSwap, CompareOp, CompareTarget, Delete, DeleteRange, Expected, Expire, ExpireIf,
    ExpireKeyEntry, ExpireKeys, ExpireSession, Fence, Get, Incr, KeepAlive, KeyCheckpointEntry,
    KeyTtl, Leader, Lock, LockHolder, Op, OpenSession, Persist, Proclaim, Put, RedisCommand,
    RedisMulti, ReleaseLockDelay, Request, Resign, Scan, Ttl, Txn, TxnOp, TxnOpKind, Unlock,
    WatchedKey,
};
pub use error::RequestError;
pub use event::{Event, EventFilter, EventKind, EventSpace};
pub use response::{
    kind_name, CampaignResponse, CheckpointKeysResponse, CheckpointSessionsResponse,
    CloseSessionResponse, CompareAndSwapResponse, DeleteRangeResponse, DeleteResponse,
    ElectionStatus, ErrorCode, ErrorResponse, ExpireKeysResponse, ExpireResponse,
    ExpireSessionResponse, GetResponse, IncrResponse, KeepAliveResponse, KeyValue, LeaderInfo,
    LeaderResponse, LockHolderResponse, LockResponse, LockStatus, OpenSessionResponse, Outcome,
    PersistResponse, ProclaimResponse, PutResponse, RedisArray, RedisReply,
    ReleaseLockDelayResponse, ReplyKind, ResignResponse, Response, ScanResponse, TtlResponse,
    TxnOpResponse, TxnOutcome, TxnResponse, UnlockResponse, KIND_HASH, KIND_LIST, KIND_SET,
    KIND_STRING, KIND_ZSET,
};
