//! Why a request is refused ([`RequestError`], answered inside a [`Response`](crate::Response)).

use crate::response::ErrorCode;

/// Why a request was refused. Deterministic: every node refuses the same request the same way.
///
/// Carried to the client as an [`ErrorResponse`](crate::ErrorResponse) with a stable
/// [`ErrorCode`] (see [`RequestError::code`]) and this error's message. A refused request changes
/// nothing in the key-value table.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The encoded request exceeds [`MAX_REQUEST_BYTES`](crate::limits::MAX_REQUEST_BYTES).
    #[error("request too large: {size_bytes} bytes, limit {limit_bytes}")]
    RequestTooLarge {
        /// Size of the encoded request.
        size_bytes: usize,
        /// The limit.
        limit_bytes: usize,
    },
    /// The bytes are not a protobuf `Request`.
    #[error("malformed request: {0}")]
    Malformed(String),
    /// The request, or one of its transaction ops, carries no operation.
    #[error("{0} has no operation")]
    MissingOp(&'static str),
    /// A key is empty.
    #[error("key is empty")]
    EmptyKey,
    /// A key or range bound exceeds [`MAX_KEY_BYTES`](crate::limits::MAX_KEY_BYTES).
    #[error("key too large: {size_bytes} bytes, limit {limit_bytes}")]
    KeyTooLarge {
        /// Size of the key.
        size_bytes: usize,
        /// The limit.
        limit_bytes: usize,
    },
    /// A value exceeds [`MAX_VALUE_BYTES`](crate::limits::MAX_VALUE_BYTES).
    #[error("value too large: {size_bytes} bytes, limit {limit_bytes}")]
    ValueTooLarge {
        /// Size of the value.
        size_bytes: usize,
        /// The limit.
        limit_bytes: usize,
    },
    /// A transaction list exceeds [`MAX_TXN_OPS`](crate::limits::MAX_TXN_OPS).
    #[error("transaction too large: {count} {list}, limit {limit}")]
    TxnTooLarge {
        /// Which list: "compares", "success ops" or "failure ops".
        list: &'static str,
        /// How many it holds.
        count: usize,
        /// The limit.
        limit: usize,
    },
    /// A scan limit exceeds [`MAX_SCAN_LIMIT`](crate::limits::MAX_SCAN_LIMIT).
    #[error("scan limit too large: {limit}, maximum {max}")]
    ScanLimitTooLarge {
        /// The requested limit.
        limit: u32,
        /// The maximum.
        max: u32,
    },
    /// An enum field holds a number this version does not know.
    #[error("invalid {field}: {value}")]
    InvalidEnum {
        /// The field.
        field: &'static str,
        /// The unknown number.
        value: i32,
    },
    /// A transaction branch writes (puts or deletes) the same key twice.
    #[error("transaction {branch} branch writes the same key more than once")]
    DuplicateTxnKey {
        /// "success" or "failure".
        branch: &'static str,
    },
    /// A client other than 0 sent sequence number 0.
    #[error("client {client_id} sent sequence number 0; sequence numbers start at 1")]
    ZeroSequence {
        /// The client.
        client_id: u64,
    },
    /// The client's request is older than its last applied one.
    #[error(
        "stale sequence {seq} from client {client_id}: its last applied request is {last_seq}"
    )]
    StaleSequence {
        /// The client.
        client_id: u64,
        /// The request's sequence number.
        seq: u64,
        /// The client's last applied sequence number.
        last_seq: u64,
    },
    /// The client is not in the exactly-once table (it was forgotten to make room, or never
    /// sent sequence 1), so a retry cannot be told from a new request.
    #[error(
        "unknown client {client_id} at sequence {seq} (forgotten to bound the session table?): \
         start a new client id"
    )]
    UnknownClient {
        /// The client.
        client_id: u64,
        /// The request's sequence number.
        seq: u64,
    },
    /// An incr found a value that is not a canonical decimal `i64`.
    #[error("value is not an integer or out of range")]
    NotAnInteger,
    /// An incr's result does not fit an `i64`.
    #[error("increment or decrement would overflow")]
    IncrOverflow,
    /// An op that writes was given to `synod_kvstore::StateMachine::read`.
    #[error("only get, scan, lock-holder, leader and ttl can be served outside the log")]
    NotReadOnly,
    /// The session does not exist: never opened, closed, or expired (0 is never a session).
    #[error("session {session} not found (expired or closed?)")]
    SessionNotFound {
        /// The session.
        session: u64,
    },
    /// A session TTL outside [`MIN_SESSION_TTL_MS`](crate::limits::MIN_SESSION_TTL_MS) to
    /// [`MAX_SESSION_TTL_MS`](crate::limits::MAX_SESSION_TTL_MS).
    #[error("session ttl {ttl_ms} ms out of range {min_ms}..={max_ms} ms")]
    TtlOutOfRange {
        /// The TTL asked for.
        ttl_ms: u64,
        /// The smallest allowed.
        min_ms: u64,
        /// The largest allowed.
        max_ms: u64,
    },
    /// [`MAX_SESSIONS`](crate::limits::MAX_SESSIONS) sessions are open already.
    #[error("too many open sessions: limit {limit}")]
    TooManySessions {
        /// The limit.
        limit: u64,
    },
    /// A lock or election name is empty.
    #[error("{what} name is empty")]
    EmptyName {
        /// "lock" or "election".
        what: &'static str,
    },
    /// A lock or election name exceeds [`MAX_NAME_BYTES`](crate::limits::MAX_NAME_BYTES).
    #[error("{what} name too large: {size_bytes} bytes, limit {limit_bytes}")]
    NameTooLarge {
        /// "lock" or "election".
        what: &'static str,
        /// Size of the name.
        size_bytes: usize,
        /// The limit.
        limit_bytes: usize,
    },
    /// The lock's or election's queue holds
    /// [`MAX_QUEUE_WAITERS`](crate::limits::MAX_QUEUE_WAITERS) waiters already.
    #[error("{what} {name} has too many waiters: limit {limit}")]
    TooManyWaiters {
        /// "lock" or "election".
        what: &'static str,
        /// The name, escaped for display.
        name: String,
        /// The limit.
        limit: usize,
    },
    /// The session holds or waits for
    /// [`MAX_SESSION_CLAIMS`](crate::limits::MAX_SESSION_CLAIMS) locks and elections already.
    #[error("session {session} holds or waits for too many locks and elections: limit {limit}")]
    TooManyClaims {
        /// The session.
        session: u64,
        /// The limit.
        limit: u64,
    },
    /// The write would give the session more than
    /// [`MAX_SESSION_KEYS`](crate::limits::MAX_SESSION_KEYS) ephemeral keys.
    #[error("session {session} would own too many keys: limit {limit}")]
    TooManySessionKeys {
        /// The session.
        session: u64,
        /// The limit.
        limit: u64,
    },
    /// The request's fence names a token that is not the lock's current one: the writer's lock
    /// was lost (released, or its session expired) and someone else may hold it now.
    #[error("{}", fence_message(.lock, *.token, *.current))]
    FencingTokenRejected {
        /// The lock, escaped for display.
        lock: String,
        /// The token presented.
        token: u64,
        /// The lock's current token; `None` if nobody holds the lock.
        current: Option<u64>,
    },
    /// Unlock by a session that neither holds nor waits for the lock.
    #[error("session {session} neither holds nor waits for lock {lock}")]
    NotLockHolder {
        /// The lock, escaped for display.
        lock: String,
        /// The session.
        session: u64,
    },
    /// Proclaim by a session that is not the election's leader.
    #[error("session {session} is not the leader of election {election}")]
    NotElectionLeader {
        /// The election, escaped for display.
        election: String,
        /// The session.
        session: u64,
    },
    /// Resign by a session that is neither leader nor candidate of the election.
    #[error("session {session} is neither leader nor candidate of election {election}")]
    NotCandidate {
        /// The election, escaped for display.
        election: String,
        /// The session.
        session: u64,
    },
    /// A checkpoint exceeds [`MAX_CHECKPOINT_ENTRIES`](crate::limits::MAX_CHECKPOINT_ENTRIES).
    #[error("checkpoint too large: {count} entries, limit {limit}")]
    CheckpointTooLarge {
        /// Entries in the checkpoint.
        count: usize,
        /// The limit.
        limit: usize,
    },
    /// A key TTL above [`MAX_KEY_TTL_MS`](crate::limits::MAX_KEY_TTL_MS).
    #[error("key ttl {ttl_ms} ms out of range: at most {max_ms} ms")]
    KeyTtlOutOfRange {
        /// The TTL asked for.
        ttl_ms: i64,
        /// The largest allowed.
        max_ms: u64,
    },
    /// A [`KeyTtl`](crate::KeyTtl) asks both to keep the keys' TTL and to set a new one.
    #[error("a request cannot both keep its keys' ttl and set a new one")]
    KeyTtlConflict,
    /// An [`ExpireKeys`](crate::ExpireKeys) or [`CheckpointKeys`](crate::CheckpointKeys)
    /// exceeds [`MAX_KEY_EXPIRY_ENTRIES`](crate::limits::MAX_KEY_EXPIRY_ENTRIES).
    #[error("key expiry batch too large: {count} entries, limit {limit}")]
    ExpiryBatchTooLarge {
        /// Entries in the batch.
        count: usize,
        /// The limit.
        limit: usize,
    },
    /// The op needs a string but the key holds a Redis collection (or the reverse).
    #[error("WRONGTYPE Operation against a key holding the wrong kind of value")]
    WrongType,
    /// A [`RedisCommand`](crate::RedisCommand) breaks a limit: no arguments, too many, or one
    /// too large.
    #[error("bad redis command: {0}")]
    BadRedisCommand(String),
    /// The command's answer would carry more than
    /// [`MAX_REPLY_BYTES`](crate::limits::MAX_REPLY_BYTES) of stored data (a transaction whose
    /// gets return many large values). Refused before anything changed: split the command.
    #[error(
        "response too large: {size_bytes} bytes of data, limit {limit_bytes}; split the command"
    )]
    ResponseTooLarge {
        /// Bytes of data the answer would carry (at least; counting stops past the limit).
        size_bytes: usize,
        /// The limit.
        limit_bytes: usize,
    },
}

fn fence_message(lock: &str, token: u64, current: Option<u64>) -> String {
    match current {
        Some(current) => format!(
            "fencing token {token} rejected for lock {lock}: the current token is {current}"
        ),
        None => format!("fencing token {token} rejected for lock {lock}: the lock is not held"),
    }
}

/// A lock or election name (or key) as text for messages: printable ASCII kept, other bytes
/// escaped, at most 64 input bytes shown.
pub fn display_name(name: &[u8]) -> String {
    const SHOWN: usize = 64;
    let mut text = name[..name.len().min(SHOWN)].escape_ascii().to_string();
    if name.len() > SHOWN {
        text.push_str("...");
    }
    text
}

impl RequestError {
    /// The stable code clients see for this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            RequestError::RequestTooLarge { .. } => ErrorCode::RequestTooLarge,
            RequestError::Malformed(_) => ErrorCode::Malformed,
            RequestError::MissingOp(_) => ErrorCode::MissingOp,
            RequestError::EmptyKey => ErrorCode::EmptyKey,
            RequestError::KeyTooLarge { .. } => ErrorCode::KeyTooLarge,
            RequestError::ValueTooLarge { .. } => ErrorCode::ValueTooLarge,
            RequestError::TxnTooLarge { .. } => ErrorCode::TxnTooLarge,
            RequestError::ScanLimitTooLarge { .. } => ErrorCode::ScanLimitTooLarge,
            RequestError::InvalidEnum { .. } => ErrorCode::InvalidEnum,
            RequestError::DuplicateTxnKey { .. } => ErrorCode::DuplicateTxnKey,
            RequestError::ZeroSequence { .. } => ErrorCode::ZeroSequence,
            RequestError::StaleSequence { .. } => ErrorCode::StaleSequence,
            RequestError::UnknownClient { .. } => ErrorCode::UnknownClient,
            RequestError::NotAnInteger => ErrorCode::NotAnInteger,
            RequestError::IncrOverflow => ErrorCode::IncrOverflow,
            RequestError::NotReadOnly => ErrorCode::NotReadOnly,
            RequestError::SessionNotFound { .. } => ErrorCode::SessionNotFound,
            RequestError::TtlOutOfRange { .. } => ErrorCode::TtlOutOfRange,
            RequestError::TooManySessions { .. } => ErrorCode::TooManySessions,
            RequestError::EmptyName { .. } => ErrorCode::EmptyName,
            RequestError::NameTooLarge { .. } => ErrorCode::NameTooLarge,
            RequestError::TooManyWaiters { .. } => ErrorCode::TooManyWaiters,
            RequestError::TooManyClaims { .. } => ErrorCode::TooManyClaims,
            RequestError::TooManySessionKeys { .. } => ErrorCode::TooManySessionKeys,
            RequestError::FencingTokenRejected { .. } => ErrorCode::FencingTokenRejected,
            RequestError::NotLockHolder { .. } => ErrorCode::NotLockHolder,
            RequestError::NotElectionLeader { .. } => ErrorCode::NotElectionLeader,
            RequestError::NotCandidate { .. } => ErrorCode::NotCandidate,
            RequestError::CheckpointTooLarge { .. } => ErrorCode::CheckpointTooLarge,
            RequestError::KeyTtlOutOfRange { .. } => ErrorCode::KeyTtlOutOfRange,
            RequestError::KeyTtlConflict => ErrorCode::KeyTtlConflict,
            RequestError::ExpiryBatchTooLarge { .. } => ErrorCode::ExpiryBatchTooLarge,
            RequestError::WrongType => ErrorCode::WrongType,
            RequestError::BadRedisCommand(_) => ErrorCode::BadRedisCommand,
            RequestError::ResponseTooLarge { .. } => ErrorCode::ResponseTooLarge,
        }
    }
}
