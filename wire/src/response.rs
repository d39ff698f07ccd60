//! Responses: the protobuf messages the state machine answers each command with.
//!
//! Written by hand with `prost` derives, like [`crate::command`]. Schema:
//!
//! ```text
//! message Response          { uint64 revision = 1;
//!                             oneof outcome { ErrorResponse error = 2; PutResponse put = 3;
//!                               GetResponse get = 4; DeleteResponse delete = 5;
//!                               DeleteRangeResponse delete_range = 6; ScanResponse scan = 7;
//!                               CompareAndSwapResponse compare_and_swap = 8;
//!                               TxnResponse txn = 9; IncrResponse incr = 10;
//!                               OpenSessionResponse open_session = 13;
//!                               KeepAliveResponse keep_alive = 14;
//!                               CloseSessionResponse close_session = 15;
//!                               ExpireSessionResponse expire_session = 16;
//!                               CheckpointSessionsResponse checkpoint_sessions = 17;
//!                               LockResponse lock = 18; UnlockResponse unlock = 19;
//!                               ReleaseLockDelayResponse release_lock_delay = 20;
//!                               LockHolderResponse lock_holder = 21;
//!                               CampaignResponse campaign = 22; ProclaimResponse proclaim = 23;
//!                               ResignResponse resign = 24; LeaderResponse leader = 25;
//!                               ExpireResponse expire = 26; PersistResponse persist = 27;
//!                               TtlResponse ttl = 28; ExpireKeysResponse expire_keys = 29;
//!                               CheckpointKeysResponse checkpoint_keys = 30;
//!                               RedisReply redis = 31; } }
//! message ErrorResponse     { ErrorCode code = 1; string message = 2; }
//! message KeyValue          { bytes key = 1; bytes value = 2; uint64 create_revision = 3;
//!                             uint64 mod_revision = 4; uint64 version = 5; uint64 session = 6;
//!                             uint32 kind = 7; }
//! message PutResponse       { KeyValue prev = 1; }
//! message GetResponse       { KeyValue kv = 1; }
//! message DeleteResponse    { bool deleted = 1; KeyValue prev = 2; }
//! message DeleteRangeResponse { uint64 deleted = 1; }
//! message ScanResponse      { repeated KeyValue kvs = 1; bool more = 2; }
//! message CompareAndSwapResponse { bool succeeded = 1; KeyValue current = 2; }
//! message TxnResponse       { bool succeeded = 1; repeated TxnOpResponse responses = 2; }
//! message TxnOpResponse     { oneof outcome { PutResponse put = 1; DeleteResponse delete = 2;
//!                                             GetResponse get = 3; } }
//! message IncrResponse      { sint64 value = 1; }
//! ```
//!
//! Each outcome has the tag of its op in [`Request`](crate::Request) (tags 11 and 12 are unused
//! here). The coordination responses are in [`crate::coord_response`], the key expiry ones in
//! [`crate::expiry_command`]. [`ErrorCode`] numbers are
//! listed on the enum.

pub use crate::coord_response::{
    CampaignResponse, CheckpointSessionsResponse, CloseSessionResponse, ElectionStatus,
    ExpireSessionResponse, KeepAliveResponse, LeaderInfo, LeaderResponse, LockHolderResponse,
    LockResponse, LockStatus, OpenSessionResponse, ProclaimResponse, ReleaseLockDelayResponse,
    ResignResponse, UnlockResponse,
};
use crate::error::RequestError;
pub use crate::expiry_command::{
    CheckpointKeysResponse, ExpireKeysResponse, ExpireResponse, PersistResponse, TtlResponse,
};
pub use crate::redis::{RedisArray, RedisReply, ReplyKind};

/// The answer to one command.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Response {
    /// The store revision once this command was applied (for a read served outside the log: the
    /// revision of the state it read). A response replayed from the exactly-once table carries
    /// the revision recorded when it was first applied.
    #[prost(uint64, tag = "1")]
    pub revision: u64,
    /// What happened; always `Some` in responses this crate makes.
    #[prost(
        oneof = "Outcome",
        tags = "2, 3, 4, 5, 6, 7, 8, 9, 10, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31"
    )]
    pub outcome: Option<Outcome>,
}

/// The result of a command, one variant per [`Op`](crate::Op) plus the error case.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Outcome {
    /// The command was refused and changed nothing.
    #[prost(message, tag = "2")]
    Error(ErrorResponse),
    /// Result of [`Op::Put`](crate::Op::Put).
    #[prost(message, tag = "3")]
    Put(PutResponse),
    /// Result of [`Op::Get`](crate::Op::Get).
    #[prost(message, tag = "4")]
    Get(GetResponse),
    /// Result of [`Op::Delete`](crate::Op::Delete).
    #[prost(message, tag = "5")]
    Delete(DeleteResponse),
    /// Result of [`Op::DeleteRange`](crate::Op::DeleteRange).
    #[prost(message, tag = "6")]
    DeleteRange(DeleteRangeResponse),
    /// Result of [`Op::Scan`](crate::Op::Scan).
    #[prost(message, tag = "7")]
    Scan(ScanResponse),
    /// Result of [`Op::CompareAndSwap`](crate::Op::CompareAndSwap).
    #[prost(message, tag = "8")]
    CompareAndSwap(CompareAndSwapResponse),
    /// Result of [`Op::Txn`](crate::Op::Txn).
    #[prost(message, tag = "9")]
    Txn(TxnResponse),
    /// Result of [`Op::Incr`](crate::Op::Incr).
    #[prost(message, tag = "10")]
    Incr(IncrResponse),
    /// Result of [`Op::OpenSession`](crate::Op::OpenSession).
    #[prost(message, tag = "13")]
    OpenSession(OpenSessionResponse),
    /// Result of [`Op::KeepAlive`](crate::Op::KeepAlive).
    #[prost(message, tag = "14")]
    KeepAlive(KeepAliveResponse),
    /// Result of [`Op::CloseSession`](crate::Op::CloseSession).
    #[prost(message, tag = "15")]
    CloseSession(CloseSessionResponse),
    /// Result of [`Op::ExpireSession`](crate::Op::ExpireSession).
    #[prost(message, tag = "16")]
    ExpireSession(ExpireSessionResponse),
    /// Result of [`Op::CheckpointSessions`](crate::Op::CheckpointSessions).
    #[prost(message, tag = "17")]
    CheckpointSessions(CheckpointSessionsResponse),
    /// Result of [`Op::Lock`](crate::Op::Lock).
    #[prost(message, tag = "18")]
    Lock(LockResponse),
    /// Result of [`Op::Unlock`](crate::Op::Unlock).
    #[prost(message, tag = "19")]
    Unlock(UnlockResponse),
    /// Result of [`Op::ReleaseLockDelay`](crate::Op::ReleaseLockDelay).
    #[prost(message, tag = "20")]
    ReleaseLockDelay(ReleaseLockDelayResponse),
    /// Result of [`Op::LockHolder`](crate::Op::LockHolder).
    #[prost(message, tag = "21")]
    LockHolder(LockHolderResponse),
    /// Result of [`Op::Campaign`](crate::Op::Campaign).
    #[prost(message, tag = "22")]
    Campaign(CampaignResponse),
    /// Result of [`Op::Proclaim`](crate::Op::Proclaim).
    #[prost(message, tag = "23")]
    Proclaim(ProclaimResponse),
    /// Result of [`Op::Resign`](crate::Op::Resign).
    #[prost(message, tag = "24")]
    Resign(ResignResponse),
    /// Result of [`Op::Leader`](crate::Op::Leader).
    #[prost(message, tag = "25")]
    Leader(LeaderResponse),
    /// Result of [`Op::Expire`](crate::Op::Expire).
    #[prost(message, tag = "26")]
    Expire(ExpireResponse),
    /// Result of [`Op::Persist`](crate::Op::Persist).
    #[prost(message, tag = "27")]
    Persist(PersistResponse),
    /// Result of [`Op::Ttl`](crate::Op::Ttl).
    #[prost(message, tag = "28")]
    Ttl(TtlResponse),
    /// Result of [`Op::ExpireKeys`](crate::Op::ExpireKeys).
    #[prost(message, tag = "29")]
    ExpireKeys(ExpireKeysResponse),
    /// Result of [`Op::CheckpointKeys`](crate::Op::CheckpointKeys).
    #[prost(message, tag = "30")]
    CheckpointKeys(CheckpointKeysResponse),
    /// Result of [`Op::Redis`](crate::Op::Redis): the Redis reply.
    #[prost(message, tag = "31")]
    Redis(RedisReply),
}

/// Why a command was refused: a stable code for programs and a message for people.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ErrorResponse {
    /// An [`ErrorCode`].
    #[prost(enumeration = "ErrorCode", tag = "1")]
    pub code: i32,
    /// The [`RequestError`]'s message.
    #[prost(string, tag = "2")]
    pub message: String,
}

/// Stable codes of [`ErrorResponse`], one per [`RequestError`] variant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum ErrorCode {
    /// Not set (never produced by this crate).
    Unspecified = 0,
    /// [`RequestError::RequestTooLarge`].
    RequestTooLarge = 1,
    /// [`RequestError::Malformed`].
    Malformed = 2,
    /// [`RequestError::MissingOp`].
    MissingOp = 3,
    /// [`RequestError::EmptyKey`].
    EmptyKey = 4,
    /// [`RequestError::KeyTooLarge`].
    KeyTooLarge = 5,
    /// [`RequestError::ValueTooLarge`].
    ValueTooLarge = 6,
    /// [`RequestError::TxnTooLarge`].
    TxnTooLarge = 7,
    /// [`RequestError::ScanLimitTooLarge`].
    ScanLimitTooLarge = 8,
    /// [`RequestError::InvalidEnum`].
    InvalidEnum = 9,
    /// [`RequestError::DuplicateTxnKey`].
    DuplicateTxnKey = 10,
    /// [`RequestError::ZeroSequence`].
    ZeroSequence = 11,
    /// [`RequestError::StaleSequence`].
    StaleSequence = 12,
    /// [`RequestError::UnknownClient`].
    UnknownClient = 13,
    /// [`RequestError::NotAnInteger`].
    NotAnInteger = 14,
    /// [`RequestError::IncrOverflow`].
    IncrOverflow = 15,
    /// [`RequestError::NotReadOnly`].
    NotReadOnly = 16,
    /// [`RequestError::SessionNotFound`].
    SessionNotFound = 17,
    /// [`RequestError::TtlOutOfRange`].
    TtlOutOfRange = 18,
    /// [`RequestError::TooManySessions`].
    TooManySessions = 19,
    /// [`RequestError::EmptyName`].
    EmptyName = 20,
    /// [`RequestError::NameTooLarge`].
    NameTooLarge = 21,
    /// [`RequestError::TooManyWaiters`].
    TooManyWaiters = 22,
    /// [`RequestError::TooManyClaims`].
    TooManyClaims = 23,
    /// [`RequestError::TooManySessionKeys`].
    TooManySessionKeys = 24,
    /// [`RequestError::FencingTokenRejected`].
    FencingTokenRejected = 25,
    /// [`RequestError::NotLockHolder`].
    NotLockHolder = 26,
    /// [`RequestError::NotElectionLeader`].
    NotElectionLeader = 27,
    /// [`RequestError::NotCandidate`].
    NotCandidate = 28,
    /// [`RequestError::CheckpointTooLarge`].
    CheckpointTooLarge = 29,
    /// [`RequestError::KeyTtlOutOfRange`].
    KeyTtlOutOfRange = 30,
    /// [`RequestError::KeyTtlConflict`].
    KeyTtlConflict = 31,
    /// [`RequestError::ExpiryBatchTooLarge`].
    ExpiryBatchTooLarge = 32,
    /// [`RequestError::WrongType`].
    WrongType = 33,
    /// [`RequestError::BadRedisCommand`].
    BadRedisCommand = 34,
    /// [`RequestError::ResponseTooLarge`].
    ResponseTooLarge = 35,
}

/// A key with its value and metadata.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct KeyValue {
    /// The key.
    #[prost(bytes = "vec", tag = "1")]
    pub key: Vec<u8>,
    /// The value (empty in a `keys_only` scan).
    #[prost(bytes = "vec", tag = "2")]
    pub value: Vec<u8>,
    /// The store revision of the command that created the key (since it was last absent).
    #[prost(uint64, tag = "3")]
    pub create_revision: u64,
    /// The store revision of the command that last wrote the key.
    #[prost(uint64, tag = "4")]
    pub mod_revision: u64,
    /// How many times the key was written since it was created (1 after the create).
    #[prost(uint64, tag = "5")]
    pub version: u64,
    /// The session owning the key (an ephemeral key, deleted with its session); 0 if none.
    #[prost(uint64, tag = "6")]
    pub session: u64,
    /// The key's Redis type ([`KIND_STRING`], ...). A collection's value
    /// is empty here: read its elements with the Redis commands ([`crate::redis`]).
    #[prost(uint32, tag = "7")]
    pub kind: u32,
}

/// Result of a put.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PutResponse {
    /// The previous value and metadata, if the key existed and `prev_kv` was asked for.
    #[prost(message, optional, tag = "1")]
    pub prev: Option<KeyValue>,
}

/// Result of a get.
#[derive(Clone, PartialEq, prost::Message)]
pub struct GetResponse {
    /// The key's value and metadata; `None` if absent.
    #[prost(message, optional, tag = "1")]
    pub kv: Option<KeyValue>,
}

/// Result of a delete.
#[derive(Clone, PartialEq, prost::Message)]
pub struct DeleteResponse {
    /// Whether the key existed (and so was removed).
    #[prost(bool, tag = "1")]
    pub deleted: bool,
    /// The removed value and metadata, if `prev_kv` was asked for.
    #[prost(message, optional, tag = "2")]
    pub prev: Option<KeyValue>,
}

/// Result of a delete-range.
#[derive(Clone, PartialEq, prost::Message)]
pub struct DeleteRangeResponse {
    /// How many keys were removed.
    #[prost(uint64, tag = "1")]
    pub deleted: u64,
}

/// Result of a scan.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ScanResponse {
    /// The entries, in ascending key order.
    #[prost(message, repeated, tag = "1")]
    pub kvs: Vec<KeyValue>,
    /// Whether the range holds more entries after the last one returned (continue with `start` =
    /// last key + `\0`).
    #[prost(bool, tag = "2")]
    pub more: bool,
}

/// Result of a compare-and-swap.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CompareAndSwapResponse {
    /// Whether the key matched and the new value was written (at the response's revision).
    #[prost(bool, tag = "1")]
    pub succeeded: bool,
    /// On a mismatch, the key's current value and metadata (`None` if absent); `None` on success.
    #[prost(message, optional, tag = "2")]
    pub current: Option<KeyValue>,
}

/// Result of a transaction.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TxnResponse {
    /// Whether every compare held (so `success` ran, else `failure`).
    #[prost(bool, tag = "1")]
    pub succeeded: bool,
    /// One response per op of the branch that ran, in order.
    #[prost(message, repeated, tag = "2")]
    pub responses: Vec<TxnOpResponse>,
}

/// Result of one op of a transaction.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TxnOpResponse {
    /// The op's result.
    #[prost(oneof = "TxnOutcome", tags = "1, 2, 3")]
    pub outcome: Option<TxnOutcome>,
}

/// The result of a [`TxnOpKind`](crate::TxnOpKind).
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum TxnOutcome {
    /// Result of a put.
    #[prost(message, tag = "1")]
    Put(PutResponse),
    /// Result of a delete.
    #[prost(message, tag = "2")]
    Delete(DeleteResponse),
    /// Result of a get.
    #[prost(message, tag = "3")]
    Get(GetResponse),
}

/// Result of an incr.
#[derive(Clone, PartialEq, prost::Message)]
pub struct IncrResponse {
    /// The key's value after the increment.
    #[prost(sint64, tag = "1")]
    pub value: i64,
}

impl Response {
    /// A response refusing a command with `error`, at store revision `revision`.
    pub fn error(revision: u64, error: &RequestError) -> Response {
        Response {
            revision,
            outcome: Some(Outcome::Error(ErrorResponse {
                code: error.code() as i32,
                message: error.to_string(),
            })),
        }
    }

    /// The error carried by this response, if it is one.
    pub fn as_error(&self) -> Option<&ErrorResponse> {
        match &self.outcome {
            Some(Outcome::Error(e)) => Some(e),
            _ => None,
        }
    }

    /// Whether this response reports a refused command.
    pub fn is_error(&self) -> bool {
        self.as_error().is_some()
    }
}

impl ErrorResponse {
    /// The code as an [`ErrorCode`] ([`ErrorCode::Unspecified`] if unknown to this version).
    pub fn error_code(&self) -> ErrorCode {
        ErrorCode::try_from(self.code).unwrap_or(ErrorCode::Unspecified)
    }
}

/// [`KeyValue::kind`] of a string (every key written by the key-value API).
pub const KIND_STRING: u32 = 0;
/// [`KeyValue::kind`] of a Redis hash.
pub const KIND_HASH: u32 = 1;
/// [`KeyValue::kind`] of a Redis set.
pub const KIND_SET: u32 = 2;
/// [`KeyValue::kind`] of a Redis list.
pub const KIND_LIST: u32 = 3;
/// [`KeyValue::kind`] of a Redis sorted set.
pub const KIND_ZSET: u32 = 4;

/// The Redis `TYPE` name of a [`KeyValue::kind`].
pub fn kind_name(kind: u32) -> &'static str {
    match kind {
        KIND_STRING => "string",
        KIND_HASH => "hash",
        KIND_SET => "set",
        KIND_LIST => "list",
        KIND_ZSET => "zset",
        _ => "unknown",
    }
}
