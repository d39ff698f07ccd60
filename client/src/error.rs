//! What can go wrong with a call.

use synod_wire::ErrorCode as CommandErrorCode;

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
    /// A watch asked for events the node's bounded history no longer holds:
    /// re-read the state and watch from `revision + 1`.
    #[error(
        "watch history compacted: asked from revision {from_revision}, events through \
         {compacted_through} were dropped (current revision {revision})"
    )]
    Compacted {
        /// The revision the watch asked from.
        from_revision: u64,
        /// The highest revision some of whose events were dropped.
        compacted_through: u64,
        /// The store revision now.
        revision: u64,
    },
    /// The session expired, was closed, or could not be kept alive within
    /// its TTL (so it may have expired): its locks and elections are lost.
    #[error("session {session} is lost (expired, closed or not kept alive in time)")]
    SessionLost {
        /// The session.
        session: u64,
    },
}

impl ClientError {
    /// The state machine's error code, if the command was refused.
    pub fn command_code(&self) -> Option<CommandErrorCode> {
        match self {
            ClientError::Command { code, .. } => Some(*code),
            _ => None,
        }
    }
}
