//! What can go wrong with a call.

use synod_kvstore::ErrorCode as CommandErrorCode;

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ClientError {
    /// No node answered within the call's timeout. For a write, its effect
    /// is unknown: it may still be applied (exactly once).
    #[error("no answer within the timeout (a write may or may not have been applied)")]
    Timeout,
    /// The state machine refused the command (bad key, failed fencing,
    /// stale sequence...). Nothing changed.
    #[error("command refused ({code:?}): {message}")]
    Command {
        /// The stable error code.
        code: CommandErrorCode,
        /// Details for people.
        message: String,
    },
    /// The node refused the request itself (malformed, too large).
    #[error("request refused: {0}")]
    BadRequest(String),
    /// The client could not be set up (no endpoints, bad certificates).
    #[error("client setup failed: {0}")]
    Setup(String),
    /// The node answered something this client does not understand.
    #[error("unexpected answer: {0}")]
    Protocol(String),
}
