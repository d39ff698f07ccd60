//! Limits and timings of the network layer ([`NetOptions`]), and the QUIC transport settings
//! made from them, for a node's endpoint and for a client's connection alike.

use std::sync::Arc;
use std::time::Duration;

use quinn::VarInt;

use crate::tls::Alpn;

/// Limits and timings of a node's network layer. Every queue is bounded.
#[derive(Clone, Debug)]
pub struct NetOptions {
    /// Envelopes queued per peer before [`PeerSender::send`](crate::PeerSender::send) drops.
    pub peer_queue_capacity: usize,
    /// Bytes queued per peer (by `Message::size_bound_bytes`) before
    /// [`PeerSender::send`](crate::PeerSender::send) drops; an envelope is always taken into an empty
    /// queue. Default 64 MiB: four peer frames of the largest size, and
    /// about 8 of the core's largest messages (8 MiB).
    pub peer_queue_max_bytes: usize,
    /// Most envelopes written in one peer stream.
    pub peer_batch_max: usize,
    /// Received envelopes buffered for the runtime; when full, peer streams
    /// stop being read (QUIC flow control pushes back on the sender, whose
    /// queue then drops).
    pub inbound_capacity: usize,
    /// Client requests buffered for the runtime; when full, new requests are
    /// answered `OVERLOADED`.
    pub request_queue_capacity: usize,
    /// Concurrent client requests (bidirectional streams) per connection.
    pub max_client_streams: u32,
    /// First delay before redialing a peer.
    pub reconnect_initial: Duration,
    /// Cap of the exponentially growing redial delay.
    pub reconnect_max: Duration,
    /// A connection (or handshake) silent this long is dead.
    pub idle_timeout: Duration,
    /// Keep-alive interval on idle connections; below `idle_timeout`.
    pub keep_alive: Duration,
    /// Flow-control window of one connection: bounds the memory a remote
    /// side can make us buffer.
    pub connection_window_bytes: u32,
    /// The one kind of connection this endpoint accepts, if one (a node
    /// binds its peer port for [`Alpn::Peer`] and its client port for
    /// [`Alpn::Client`], so that a client pointed at the peer port fails its
    /// handshake at once instead of waiting on a queue nobody reads);
    /// `None` accepts both (a single-port endpoint, as tests use).
    pub serves: Option<Alpn>,
}

impl Default for NetOptions {
    fn default() -> Self {
        NetOptions {
            peer_queue_capacity: 4096,
            peer_queue_max_bytes: 64 << 20,
            peer_batch_max: 256,
            inbound_capacity: 4096,
            request_queue_capacity: 4096,
            max_client_streams: 1024,
            reconnect_initial: Duration::from_millis(50),
            reconnect_max: Duration::from_secs(2),
            idle_timeout: Duration::from_secs(5),
            keep_alive: Duration::from_secs(1),
            connection_window_bytes: 64 * 1024 * 1024,
            serves: None,
        }
    }
}

impl NetOptions {
    /// QUIC transport settings from these options. `accept_streams` is
    /// false for the dialing side of a connection, which never accepts
    /// streams.
    pub(crate) fn transport(&self, accept_streams: bool) -> Arc<quinn::TransportConfig> {
        let mut transport = quinn::TransportConfig::default();
        let idle = quinn::IdleTimeout::try_from(self.idle_timeout)
            .unwrap_or_else(|_| quinn::IdleTimeout::from(VarInt::from_u32(5_000)));
        transport
            .max_idle_timeout(Some(idle))
            .keep_alive_interval(Some(self.keep_alive))
            .receive_window(VarInt::from_u32(self.connection_window_bytes));
        if accept_streams {
            transport.max_concurrent_bidi_streams(VarInt::from_u32(self.max_client_streams));
        } else {
            transport
                .max_concurrent_bidi_streams(VarInt::from_u32(0))
                .max_concurrent_uni_streams(VarInt::from_u32(0));
        }
        Arc::new(transport)
    }
}
