//! A node's QUIC endpoint: one UDP socket that accepts peer and client
//! connections (told apart by ALPN) and dials the node's peers.
//!
//! ```no_run
//! # async fn run(tls: synod_net::tls::TlsIdentity) -> Result<(), synod_net::NetError> {
//! use std::collections::HashMap;
//! use synod_net::{NetOptions, NodeEndpoint};
//! use synod_paxos::NodeId;
//!
//! let endpoint = NodeEndpoint::bind(NodeId(1), "127.0.0.1:7000".parse().unwrap(), &tls, NetOptions::default())?;
//! let peers = HashMap::from([(NodeId(2), "127.0.0.1:7001".parse().unwrap())]);
//! let mut net = endpoint.start(peers);
//! // The runtime owns net.inbound and net.requests and sends with net.peers.
//! while let Some(envelope) = net.inbound.recv().await {
//!     // step the core with it ...
//! # let _ = envelope;
//! }
//! net.handle.shutdown().await;
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use quinn::VarInt;
use synod_paxos::{Envelope, NodeId};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tracing::{debug, info_span, Instrument};

use crate::client_service::{self, IncomingRequest};
use crate::error::NetError;
use crate::options::NetOptions;
use crate::peer::{self, PeerSender};
use crate::stats::{add, ServerCounters, ServerStats};
use crate::tls::{node_id_of_cert, Alpn, TlsIdentity};

/// Application error code of a connection closed because the node shuts
/// down.
pub const CLOSE_SHUTDOWN: VarInt = VarInt::from_u32(0);
/// Application error code of a peer connection whose certificate names no
/// node.
pub const CLOSE_NOT_A_NODE: VarInt = VarInt::from_u32(1);
/// Application error code of a connection with an unknown ALPN protocol.
pub const CLOSE_UNKNOWN_ALPN: VarInt = VarInt::from_u32(2);

/// Stream error code (STOP_SENDING) for a frame over the size limit.
pub const STREAM_FRAME_TOO_LARGE: VarInt = VarInt::from_u32(1);
/// Stream error code (STOP_SENDING) for a frame that does not decode, or a
/// stream that ends inside a frame.
pub const STREAM_MALFORMED: VarInt = VarInt::from_u32(2);

/// A bound, not yet serving, node endpoint. Binding first lets a node learn
/// its address (port 0 picks a free one) before it knows its peers'.
#[derive(Debug)]
pub struct NodeEndpoint {
    node: NodeId,
    endpoint: quinn::Endpoint,
    peer_config: quinn::ClientConfig,
    options: NetOptions,
}

impl NodeEndpoint {
    /// Binds `listen` for node `node`, whose certificate `tls` must name it
    /// (`node-<id>`). Must be called inside a tokio runtime. Connections that
    /// arrive before [`NodeEndpoint::start`] wait for it.
    pub fn bind(
        node: NodeId,
        listen: SocketAddr,
        tls: &TlsIdentity,
        options: NetOptions,
    ) -> Result<NodeEndpoint, NetError> {
        let named = node_id_of_cert(tls.certificate())?;
        if named != node {
            return Err(NetError::NotANode(format!(
                "our certificate names {named}, not {node}"
            )));
        }
        let server_config = tls.quic_server_config(options.transport(true), options.serves)?;
        let peer_config = tls.quic_client_config(Alpn::Peer, options.transport(false))?;
        let endpoint =
            quinn::Endpoint::server(server_config, listen).map_err(|source| NetError::Bind {
                addr: listen,
                source,
            })?;
        Ok(NodeEndpoint {
            node,
            endpoint,
            peer_config,
            options,
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> Result<SocketAddr, NetError> {
        Ok(self.endpoint.local_addr()?)
    }

    /// Starts serving: accepts peer and client connections, and keeps one
    /// outgoing connection to each of `peers` (an entry for this node itself
    /// is ignored). Must be called inside a tokio runtime.
    pub fn start(self, peers: HashMap<NodeId, SocketAddr>) -> NodeNet {
        let (inbound_tx, inbound) = mpsc::channel(self.options.inbound_capacity.max(1));
        let (request_tx, requests) = mpsc::channel(self.options.request_queue_capacity.max(1));
        let counters = Arc::new(ServerCounters::default());
        let local_addr = self.endpoint.local_addr().ok();
        let mut tasks = JoinSet::new();
        let span = info_span!("net", node = self.node.0);

        let context = Arc::new(AcceptContext {
            node: self.node,
            inbound: inbound_tx,
            requests: request_tx,
            counters: counters.clone(),
        });
        tasks.spawn(accept_loop(self.endpoint.clone(), context).instrument(span.clone()));

        let peers = peer::start_senders(
            self.node,
            peers,
            &self.endpoint,
            &self.peer_config,
            &self.options,
            &mut tasks,
            &span,
        );
        NodeNet {
            peers: peers.clone(),
            inbound,
            requests,
            handle: NetHandle {
                endpoint: self.endpoint,
                local_addr,
                tasks,
                counters,
                peers,
            },
        }
    }
}

/// A running node network: what the runtime sends with and receives from.
#[derive(Debug)]
pub struct NodeNet {
    /// Sends envelopes to peers; never blocks.
    pub peers: PeerSender,
    /// Envelopes from peers, each checked against its sender's certificate.
    pub inbound: mpsc::Receiver<Envelope>,
    /// Client requests, each with the [`Responder`](crate::Responder) that
    /// answers it.
    pub requests: mpsc::Receiver<IncomingRequest>,
    /// Owns the tasks; dropping it stops them.
    pub handle: NetHandle,
}

/// Owns a running node network's tasks and socket. Dropping it aborts the
/// tasks; [`NetHandle::shutdown`] also tells the other side of every
/// connection.
#[derive(Debug)]
pub struct NetHandle {
    endpoint: quinn::Endpoint,
    local_addr: Option<SocketAddr>,
    tasks: JoinSet<()>,
    counters: Arc<ServerCounters>,
    /// Stopped with the handle: no sender task (and no handle of the
    /// endpoint) outlives it, whoever still holds a clone of the sender.
    peers: PeerSender,
}

impl Drop for NetHandle {
    fn drop(&mut self) {
        self.peers.close();
    }
}

/// Reads a [`NetHandle`]'s [`ServerStats`]; cheap to clone.
#[derive(Clone, Debug)]
pub struct ServerStatsReader(Arc<ServerCounters>);

impl ServerStatsReader {
    /// What the accepting side has seen so far.
    pub fn snapshot(&self) -> ServerStats {
        self.0.snapshot()
    }
}

impl NetHandle {
    /// The bound address (`None` only if the OS would not say).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr
    }

    /// What the accepting side has seen so far.
    pub fn server_stats(&self) -> ServerStats {
        self.counters.snapshot()
    }

    /// A reader of [`server_stats`](NetHandle::server_stats) that can be
    /// kept apart from the handle (by a metrics exporter).
    pub fn stats_reader(&self) -> ServerStatsReader {
        ServerStatsReader(self.counters.clone())
    }

    /// Closes every connection (peers see [`CLOSE_SHUTDOWN`] and start
    /// redialing), stops every task and waits until the socket is released,
    /// so the address can be bound again.
    pub async fn shutdown(mut self) {
        self.endpoint.close(CLOSE_SHUTDOWN, b"shutdown");
        self.peers.close();
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
        self.endpoint.wait_idle().await;
    }
}

/// What every accepted connection needs.
pub(crate) struct AcceptContext {
    pub node: NodeId,
    pub inbound: mpsc::Sender<Envelope>,
    pub requests: mpsc::Sender<IncomingRequest>,
    pub counters: Arc<ServerCounters>,
}

async fn accept_loop(endpoint: quinn::Endpoint, context: Arc<AcceptContext>) {
    // Connection tasks live in this set, so stopping this loop stops them.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            incoming = endpoint.accept() => match incoming {
                Some(incoming) => {
                    connections.spawn(serve_incoming(incoming, context.clone()).in_current_span());
                }
                None => break,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn serve_incoming(incoming: quinn::Incoming, context: Arc<AcceptContext>) {
    let remote = incoming.remote_address();
    let conn = match incoming.await {
        Ok(conn) => conn,
        Err(err) => {
            debug!(%remote, %err, "handshake failed");
            return;
        }
    };
    match Alpn::of(&conn) {
        Ok(Alpn::Peer) => peer::serve_inbound(conn, &context).await,
        Ok(Alpn::Client) => {
            add(&context.counters.client_connections, 1);
            client_service::serve_connection(conn, &context).await
        }
        Err(_) => conn.close(CLOSE_UNKNOWN_ALPN, b"unknown ALPN protocol"),
    }
}
