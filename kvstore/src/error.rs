//! The crate's two error types: a request the state machine refuses ([`RequestError`], answered
//! inside a [`Response`](crate::Response)) and a storage failure ([`StorageError`], fatal to the
//! operation that met it and returned to the caller).

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
    /// An op other than Get or Scan was given to [`StateMachine::read`](crate::StateMachine::read).
    #[error("only get and scan can be served outside the log")]
    NotReadOnly,
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
        }
    }
}

/// The database failed, or holds a record this code cannot read.
///
/// Not a property of any request: the operation that met it changed nothing (its redb
/// transaction was dropped) and may be retried, but a node whose storage fails should usually
/// stop rather than diverge from its peers.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// redb reported an error.
    #[error("storage: {0}")]
    Redb(#[from] redb::Error),
    /// A stored record does not decode.
    #[error("corrupt {table} record: {reason}")]
    Corrupt {
        /// The table holding the record.
        table: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

macro_rules! from_redb {
    ($($t:ty),* $(,)?) => {
        $(impl From<$t> for StorageError {
            fn from(e: $t) -> StorageError {
                StorageError::Redb(e.into())
            }
        })*
    };
}

from_redb!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::SetDurabilityError,
);
