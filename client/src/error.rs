//! What can go wrong with a call.

use std::net::SocketAddr;

use synod_net::tls::TlsFailure;
use synod_wire::ErrorCode as CommandErrorCode;

use crate::endpoint::InvalidEndpoint;

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
    /// An endpoint is not `host:port` with an IP address or a DNS name.
    #[error(transparent)]
    InvalidEndpoint(#[from] InvalidEndpoint),
    /// Every configured endpoint refused TLS with this client, or this
    /// client refused theirs, or the leader a redirect named did (the last
    /// refusal is given): a certificate from another CA, a node certificate
    /// that does not name the server name dialed, an untrusted CA. Retrying
    /// does not help; the call was applied nowhere.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// A node could not be reached or could not serve (only from
    /// [`Client::status`](crate::Client::status), which asks each node once).
    #[error("unreachable: {0}")]
    Unreachable(String),
    /// The client was [closed](crate::Client::close). A write in flight
    /// when it was may or may not have been applied.
    #[error("the client is closed")]
    Closed,
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

/// A TLS handshake with one node that failed: who refused what, with
/// rustls's reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("TLS with {addr} (as `{server_name}`) failed: {failure}")]
pub struct TlsError {
    /// The address dialed.
    pub addr: SocketAddr,
    /// The name the node's certificate was expected to carry.
    pub server_name: String,
    /// Which side refused, the TLS alert, and rustls's reason.
    pub failure: TlsFailure,
}
