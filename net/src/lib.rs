//! Synod's network layer: protobuf wire types, QUIC endpoints with mutual
//! TLS, the peer transport and the client service.
//!
//! - [`wire`]: [`encode_peer`] / [`decode_peer`] turn a
//!   [`synod_paxos::Envelope`] into a peer frame and back.
//! - [`frame`]: 4-byte big-endian length prefix, then the protobuf bytes;
//!   limits [`frame::MAX_PEER_FRAME_BYTES`] and
//!   [`frame::MAX_CLIENT_REQUEST_BYTES`].
//! - [`tls`] and [`certs`]: the cluster CA, node and client certificates,
//!   and the rustls configurations (TLS 1.3, ring, mutual authentication).
//! - [`NodeEndpoint`]: a node's one UDP socket. It accepts peer and client
//!   connections (told apart by ALPN), delivers peer envelopes and client
//!   requests to the runtime through bounded channels, and sends to peers
//!   through a non-blocking [`PeerSender`].
//! - [`ClientConnection`]: the client side of the client service.
//!
//! The client side ([`ClientConnection`], [`tls`], [`frame`]) needs no consensus types: built
//! without the default `node` feature, this crate leaves out the endpoint, the peer transport,
//! the client service and certificate generation, and with them `synod-paxos` and `rcgen`, so an
//! application that links the client library compiles neither.
//!
//! Every input from the network is untrusted: frames are size-checked
//! before allocation, decoding never panics, and a bad frame closes only its
//! own stream.
#![warn(missing_docs)]

#[cfg(feature = "node")]
pub mod certs;
mod client;
#[cfg(feature = "node")]
mod client_service;
#[cfg(feature = "node")]
mod endpoint;
pub mod error;
pub mod frame;
mod options;
#[cfg(feature = "node")]
mod peer;
#[cfg(feature = "node")]
pub mod proto;
#[cfg(feature = "node")]
pub mod response_stream;
#[cfg(feature = "node")]
pub mod stats;
pub mod tls;
#[cfg(feature = "node")]
pub mod wire;

pub use client::{ClientConnection, ResponseFrames};
#[cfg(feature = "node")]
pub use client_service::{IncomingRequest, Responder};
#[cfg(feature = "node")]
pub use endpoint::{
    NetHandle, NodeEndpoint, NodeNet, ServerStatsReader, CLOSE_NOT_A_NODE, CLOSE_SHUTDOWN,
    CLOSE_UNKNOWN_ALPN, STREAM_FRAME_TOO_LARGE, STREAM_MALFORMED,
};
pub use error::{FrameError, NetError, WireError};
pub use options::NetOptions;
#[cfg(feature = "node")]
pub use peer::{PeerSender, SendError};
#[cfg(feature = "node")]
pub use response_stream::ResponseStream;
#[cfg(feature = "node")]
pub use stats::{PeerStats, ServerStats};
pub use synod_wire::proto::client::{
    client_response::Outcome, ClientRequest, ClientResponse, Error as ResponseError, ErrorCode,
    LeaderHint,
};
#[cfg(feature = "node")]
pub use wire::{decode_peer, encode_peer};
