//! Errors of the network layer.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

#[cfg(feature = "node")]
use synod_paxos::NodeId;

/// A peer frame that does not decode into an [`Envelope`](synod_paxos::Envelope).
///
/// Every malformed input maps to one of these; decoding never panics.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum WireError {
    /// The bytes are not a valid protobuf message of the expected type.
    #[error("malformed protobuf: {0}")]
    Protobuf(String),
    /// A required message-typed field or oneof was absent.
    #[error("missing field `{0}`")]
    MissingField(&'static str),
}

impl From<prost::DecodeError> for WireError {
    fn from(err: prost::DecodeError) -> Self {
        WireError::Protobuf(err.to_string())
    }
}

/// A failure reading or writing one length-prefixed frame.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The length prefix announced more bytes than allowed.
    #[error("frame of {size_bytes} bytes exceeds the limit of {max_bytes} bytes")]
    TooLarge {
        /// Announced (or attempted) frame size.
        size_bytes: u64,
        /// The limit in force on this stream.
        max_bytes: u32,
    },
    /// The stream ended inside a frame (after part of the prefix or body).
    #[error("stream ended inside a frame")]
    Truncated,
    /// The stream failed underneath (reset, connection lost, ...).
    #[error("stream i/o: {0}")]
    Io(#[from] io::Error),
}

/// Everything else that can go wrong in `synod-net`.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// A frame could not be read or written.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// A frame's bytes did not decode.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// A PEM file or directory could not be read or written.
    #[error("{path}: {source}")]
    File {
        /// The file involved.
        path: PathBuf,
        /// What failed.
        source: io::Error,
    },
    /// PEM input held no usable certificate or key, or more than expected.
    #[error("bad PEM input: {0}")]
    Pem(String),
    /// rustls refused the certificates, key or settings.
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    /// The client certificate verifier could not be built (e.g. empty CA).
    #[error("client certificate verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    /// quinn refused the rustls configuration (e.g. missing TLS 1.3 suite).
    #[error("QUIC crypto configuration: {0}")]
    QuicCrypto(String),
    /// Certificate generation failed.
    #[cfg(feature = "node")]
    #[error("certificate generation: {0}")]
    CertGen(#[from] rcgen::Error),
    /// A certificate or name argument was not acceptable.
    #[error("invalid name `{0}`: use 1-63 ASCII letters, digits and '-'")]
    InvalidName(String),
    /// An extra name for a node certificate names a node (`node-<id>`):
    /// only the node's own name may.
    #[error("extra name `{0}` would let this certificate speak for another node")]
    ForeignNodeName(String),
    /// The remote certificate does not name exactly one node (`node-<id>`).
    #[error("peer certificate does not identify a node: {0}")]
    NotANode(String),
    /// The connection negotiated no ALPN protocol Synod knows.
    #[error("unknown or missing ALPN protocol")]
    UnknownAlpn,
    /// Binding the UDP socket failed.
    #[error("bind {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why it failed.
        source: io::Error,
    },
    /// Other local socket trouble (e.g. reading the bound address).
    #[error("socket: {0}")]
    Io(#[from] io::Error),
    /// Starting a connection failed before any packet was sent.
    #[error("connect: {0}")]
    Connect(#[from] quinn::ConnectError),
    /// The connection failed or was closed (including TLS refusal).
    #[error("connection: {0}")]
    Connection(#[from] quinn::ConnectionError),
    /// The server answered a request with another request's id.
    #[error("response for request {got} on the stream of request {expected}")]
    MismatchedResponse {
        /// The id sent.
        expected: u64,
        /// The id received.
        got: u64,
    },
    /// The server closed the stream without a response.
    #[error("stream closed without a response")]
    NoResponse,
    /// No route to this peer is configured.
    #[cfg(feature = "node")]
    #[error("unknown peer {0}")]
    UnknownPeer(NodeId),
}
