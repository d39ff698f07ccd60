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
//! Every input from the network is untrusted: frames are size-checked
//! before allocation, decoding never panics, and a bad frame closes only its
//! own stream.
#![warn(missing_docs)]

pub mod certs;
mod client_service;
mod endpoint;
pub mod error;
pub mod frame;
mod peer;
pub mod proto;
pub mod response_stream;
pub mod stats;
pub mod tls;
pub mod wire;

pub use client_service::{ClientConnection, IncomingRequest, Responder};
pub use endpoint::{
    NetHandle, NetOptions, NodeEndpoint, NodeNet, ServerStatsReader, CLOSE_NOT_A_NODE,
    CLOSE_SHUTDOWN, CLOSE_UNKNOWN_ALPN, STREAM_FRAME_TOO_LARGE, STREAM_MALFORMED,
};
pub use error::{FrameError, NetError, WireError};
pub use peer::{PeerSender, SendError};
pub use proto::client::{
    client_response::Outcome, ClientRequest, ClientResponse, Error as ResponseError, ErrorCode,
    LeaderHint,
};
pub use response_stream::{ResponseFrames, ResponseStream};
pub use stats::{PeerStats, ServerStats};
pub use wire::{decode_peer, encode_peer};
