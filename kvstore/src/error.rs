//! A storage failure ([`StorageError`]), fatal to the operation that met it and returned to the
//! caller. A request the state machine refuses is a [`RequestError`],
//! answered inside a [`Response`](crate::Response). Inside the crate, executing a command stops
//! with either one (`ExecError`).
//!
//! One import circle stays on purpose: [`StorageError::Log`] wraps the log's own
//! [`LogError`](crate::LogError) (file, byte offset) as its source, and the log returns
//! `StorageError` like every other storage operation, so this module and `log::wal` name each
//! other's types. Only types cross; no code of one calls the other.

use synod_wire::RequestError;

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
    /// The data directory cannot be used as it is (e.g. an older layout).
    #[error("{0}")]
    Layout(String),
    /// The data directory could not be created.
    #[error("data directory: {0}")]
    Io(#[from] std::io::Error),
    /// The acceptor's write-ahead log refused to open or to write.
    #[error(transparent)]
    Log(#[from] crate::log::LogError),
    /// A panic interrupted an apply: the state machine's state in memory is not trusted any more
    /// (reopen it; the database is as the last commit left it).
    #[error("a panic interrupted an apply; reopen the state machine")]
    Interrupted,
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

/// Why executing a command stopped: the command is refused (nothing was written, see
/// `exec::execute`), or storage failed (the caller drops the transaction).
#[derive(Debug)]
pub(crate) enum ExecError {
    Request(RequestError),
    Storage(StorageError),
}

impl From<RequestError> for ExecError {
    fn from(e: RequestError) -> ExecError {
        ExecError::Request(e)
    }
}

impl From<StorageError> for ExecError {
    fn from(e: StorageError) -> ExecError {
        ExecError::Storage(e)
    }
}

impl From<redb::StorageError> for ExecError {
    fn from(e: redb::StorageError) -> ExecError {
        ExecError::Storage(e.into())
    }
}
