//! Peer transport: envelopes between nodes over QUIC.
//!
//! Sending: [`PeerSender::send`] never blocks. Each peer has a queue
//! bounded in envelopes ([`NetOptions::peer_queue_capacity`]) and in bytes
//! ([`NetOptions::peer_queue_max_bytes`], counted by
//! `Message::size_bound_bytes`, without encoding); when either is full the
//! envelope is dropped and counted (Paxos tolerates lost messages; a
//! blocked core it does not). A task per peer
//! keeps one outgoing connection, dialed with the peer's node name
//! (`node-<id>`) as TLS server name so the server proves who it is, and
//! redials with capped exponential backoff (no jitter) when it fails. The
//! task drains whatever is queued, up to [`NetOptions::peer_batch_max`]
//! envelopes, into one unidirectional stream per batch: one write, then
//! finish. A bad frame therefore costs one stream, never the connection.
//! While there is no connection, drained envelopes are dropped (counted as
//! `lost`) rather than kept: by the time a peer is back they would be stale.
//!
//! Receiving: an incoming peer connection must carry a certificate naming
//! exactly one node (`node-<id>`); otherwise it is closed. Its streams are
//! read one after another, in the order they were opened, so envelopes from
//! one sender arrive in the order sent while the connection lives (order
//! across reconnections is not kept; Paxos does not need it). An envelope
//! whose `from` is not the certificate's node, or whose `to` is not this
//! node, is dropped and counted. Accepted envelopes go to the runtime's
//! bounded channel; when it is full, reading pauses and QUIC flow control
//! pushes back on the sender.
//!
//! Each node dials each peer, so two nodes share two connections, each
//! carrying traffic one way.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use synod_paxos::{Envelope, NodeId};
use tokio::sync::mpsc::{self, error::TrySendError};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{debug, info, info_span, warn, Instrument, Span};

use crate::endpoint::{AcceptContext, CLOSE_NOT_A_NODE};
use crate::endpoint::{STREAM_FRAME_TOO_LARGE, STREAM_MALFORMED};
use crate::error::FrameError;
use crate::frame::{encode_frame_into, read_frame, MAX_PEER_FRAME_BYTES};
use crate::options::NetOptions;
use crate::stats::{add, set, PeerCounters, PeerStats};
use crate::tls::{node_name, peer_node_id};
use crate::wire::{decode_peer, encode_peer};

/// Why [`PeerSender::send`] did not queue an envelope. All are counted or
/// harmless; the caller may ignore them.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum SendError {
    /// `to` is not a configured peer.
    #[error("no route to {0}")]
    UnknownPeer(NodeId),
    /// `from` is not this node; nothing is sent on another node's behalf.
    #[error("envelope from {0}, but this node is {1}")]
    WrongSender(NodeId, NodeId),
    /// The peer's queue is full; the envelope was dropped.
    #[error("queue to {0} is full; envelope dropped")]
    QueueFull(NodeId),
    /// The network was shut down.
    #[error("the network is shut down")]
    Closed,
}

struct PeerQueue {
    queue: mpsc::Sender<Envelope>,
    bytes: Arc<QueuedBytes>,
    counters: Arc<PeerCounters>,
    addr: SocketAddr,
    /// Its sender task (set once spawned).
    task: Option<tokio::task::AbortHandle>,
}

/// Bytes of the envelopes in one peer's queue, by
/// `Message::size_bound_bytes`: added by the sender, taken off by the task
/// that drains the queue.
#[derive(Debug)]
pub(crate) struct QueuedBytes {
    queued: AtomicUsize,
    max: usize,
}

impl QueuedBytes {
    pub(crate) fn new(max: usize) -> QueuedBytes {
        QueuedBytes {
            queued: AtomicUsize::new(0),
            max,
        }
    }

    /// Reserves room for `bytes`; false if the queue is not empty and they
    /// would take it past its bound.
    pub(crate) fn reserve(&self, bytes: usize) -> bool {
        self.queued
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |queued| {
                (queued == 0 || queued.saturating_add(bytes) <= self.max)
                    .then(|| queued.saturating_add(bytes))
            })
            .is_ok()
    }

    /// Gives back what `reserve` took for an envelope that left the queue.
    pub(crate) fn release(&self, bytes: usize) {
        self.queued.fetch_sub(bytes, Ordering::Relaxed);
    }
}

/// Sends envelopes to peers without blocking. Cheap to clone; all clones
/// share the queues. When every clone is dropped, the sender tasks stop.
///
/// The set of peers can change while it runs ([`PeerSender::set_peers`]):
/// a membership change adds and removes nodes.
#[derive(Clone)]
pub struct PeerSender {
    node: NodeId,
    peers: Arc<RwLock<HashMap<NodeId, PeerQueue>>>,
    /// What starting a sender task takes; `None` once the network shut
    /// down (so that no task, and no handle of the endpoint, outlives it).
    spawner: Arc<std::sync::Mutex<Option<SenderSpawner>>>,
}

/// What starting a sender task to a new peer takes.
struct SenderSpawner {
    endpoint: quinn::Endpoint,
    config: quinn::ClientConfig,
    options: NetOptions,
    span: Span,
}

impl std::fmt::Debug for PeerSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerSender")
            .field("node", &self.node)
            .field("peers", &self.peers())
            .finish()
    }
}

impl PeerSender {
    /// This node.
    pub fn node(&self) -> NodeId {
        self.node
    }

    /// The peers it sends to (this node excluded), in id order.
    pub fn peers(&self) -> Vec<NodeId> {
        let mut ids: Vec<NodeId> = self.table().keys().copied().collect();
        ids.sort();
        ids
    }

    /// Makes `peers` (this node's own entry ignored) the set it sends to:
    /// starts a sender task for each new peer or new address, and stops
    /// those of peers no longer named (their queued envelopes are dropped).
    /// Must be called inside a tokio runtime.
    pub fn set_peers(&self, peers: &HashMap<NodeId, SocketAddr>) {
        let spawner = self.spawner.lock().unwrap_or_else(|e| e.into_inner());
        let Some(spawner) = spawner.as_ref() else {
            return;
        };
        let mut table = self.peers.write().unwrap_or_else(|e| e.into_inner());
        table.retain(|id, queue| {
            let keep = peers.get(id) == Some(&queue.addr);
            if let Some(task) = queue.task.as_ref().filter(|_| !keep) {
                task.abort();
            }
            keep
        });
        for (peer, addr) in peers {
            if *peer == self.node || table.contains_key(peer) {
                continue;
            }
            info!(peer = peer.0, %addr, "new peer");
            let (mut queue, task) = spawner.prepare(*peer, *addr);
            queue.task = Some(tokio::spawn(task).abort_handle());
            table.insert(*peer, queue);
        }
    }

    /// Stops every sender task and starts no more (the network shut down).
    pub(crate) fn close(&self) {
        self.spawner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let mut table = self.peers.write().unwrap_or_else(|e| e.into_inner());
        for task in table.drain().filter_map(|(_, queue)| queue.task) {
            task.abort();
        }
    }

    /// Queues `envelope` for `envelope.to`. Never blocks and never awaits:
    /// a full queue drops the envelope (counted in
    /// [`PeerStats::dropped_full`]). Queued is not delivered: the envelope
    /// may still be lost with its connection.
    pub fn send(&self, envelope: Envelope) -> Result<(), SendError> {
        if envelope.from != self.node {
            return Err(SendError::WrongSender(envelope.from, self.node));
        }
        let to = envelope.to;
        let table = self.table();
        let peer = table.get(&to).ok_or(SendError::UnknownPeer(to))?;
        let bytes = envelope.message.size_bound_bytes();
        if !peer.bytes.reserve(bytes) {
            add(&peer.counters.dropped_full, 1);
            return Err(SendError::QueueFull(to));
        }
        match peer.queue.try_send(envelope) {
            Ok(()) => {
                add(&peer.counters.queued, 1);
                Ok(())
            }
            Err(TrySendError::Full(_)) => {
                peer.bytes.release(bytes);
                add(&peer.counters.dropped_full, 1);
                Err(SendError::QueueFull(to))
            }
            Err(TrySendError::Closed(_)) => {
                peer.bytes.release(bytes);
                Err(SendError::Closed)
            }
        }
    }

    /// Counters of the queue and connection to `peer`.
    pub fn stats(&self, peer: NodeId) -> Option<PeerStats> {
        self.table().get(&peer).map(|p| p.counters.snapshot())
    }

    fn table(&self) -> std::sync::RwLockReadGuard<'_, HashMap<NodeId, PeerQueue>> {
        self.peers.read().unwrap_or_else(|e| e.into_inner())
    }
}

impl SenderSpawner {
    /// The queue to `peer` at `addr` and the sender task that drains it
    /// (for the caller to spawn, and to set the queue's `task` to).
    fn prepare(
        &self,
        peer: NodeId,
        addr: SocketAddr,
    ) -> (
        PeerQueue,
        impl std::future::Future<Output = ()> + Send + 'static,
    ) {
        let (queue, rx) = mpsc::channel(self.options.peer_queue_capacity.max(1));
        let bytes = Arc::new(QueuedBytes::new(self.options.peer_queue_max_bytes));
        let counters = Arc::new(PeerCounters::default());
        let task = SenderTask {
            peer,
            addr,
            endpoint: self.endpoint.clone(),
            config: self.config.clone(),
            options: self.options.clone(),
            bytes: bytes.clone(),
            counters: counters.clone(),
        };
        let task_span = info_span!(parent: &self.span, "peer_out", peer = peer.0, %addr);
        let queue = PeerQueue {
            queue,
            bytes,
            counters,
            addr,
            task: None,
        };
        (queue, task.run(rx).instrument(task_span))
    }
}

/// Starts one sender task per peer, the first ones in `tasks`.
pub(crate) fn start_senders(
    node: NodeId,
    peers: HashMap<NodeId, SocketAddr>,
    endpoint: &quinn::Endpoint,
    config: &quinn::ClientConfig,
    options: &NetOptions,
    tasks: &mut JoinSet<()>,
    span: &Span,
) -> PeerSender {
    let spawner = SenderSpawner {
        endpoint: endpoint.clone(),
        config: config.clone(),
        options: options.clone(),
        span: span.clone(),
    };
    let mut queues = HashMap::new();
    for (peer, addr) in peers {
        if peer == node {
            continue;
        }
        let (mut queue, task) = spawner.prepare(peer, addr);
        queue.task = Some(tasks.spawn(task));
        queues.insert(peer, queue);
    }
    PeerSender {
        node,
        peers: Arc::new(RwLock::new(queues)),
        spawner: Arc::new(std::sync::Mutex::new(Some(spawner))),
    }
}

struct SenderTask {
    peer: NodeId,
    addr: SocketAddr,
    endpoint: quinn::Endpoint,
    config: quinn::ClientConfig,
    options: NetOptions,
    bytes: Arc<QueuedBytes>,
    counters: Arc<PeerCounters>,
}

impl SenderTask {
    async fn run(self, mut rx: mpsc::Receiver<Envelope>) {
        let mut conn: Option<(quinn::Connection, Instant)> = None;
        let mut backoff = self.options.reconnect_initial;
        let mut next_attempt = Instant::now();
        let batch_max = self.options.peer_batch_max.max(1);
        loop {
            if conn.is_none() && Instant::now() >= next_attempt {
                match self.connect().await {
                    Ok(c) => {
                        add(&self.counters.connects, 1);
                        info!("connected");
                        conn = Some((c, Instant::now()));
                    }
                    Err(err) => {
                        add(&self.counters.connect_failures, 1);
                        debug!(%err, retry_in_ms = backoff.as_millis() as u64, "connect failed");
                        next_attempt = Instant::now() + backoff;
                        backoff = self.grow(backoff);
                    }
                }
                continue;
            }
            let live = conn.as_ref().map(|(c, _)| c.clone());
            let closed = async {
                match &live {
                    Some(c) => c.closed().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                reason = closed => {
                    let (_, since) = conn.take().expect("closed fires only with a connection");
                    if since.elapsed() >= self.options.reconnect_max {
                        backoff = self.options.reconnect_initial;
                    }
                    info!(%reason, retry_in_ms = backoff.as_millis() as u64, "connection lost");
                    next_attempt = Instant::now() + backoff;
                    backoff = self.grow(backoff);
                }
                _ = tokio::time::sleep_until(next_attempt), if conn.is_none() => {}
                first = rx.recv() => {
                    let Some(first) = first else { return };
                    let mut batch = vec![first];
                    while batch.len() < batch_max {
                        match rx.try_recv() {
                            Ok(envelope) => batch.push(envelope),
                            Err(_) => break,
                        }
                    }
                    for envelope in &batch {
                        self.bytes.release(envelope.message.size_bound_bytes());
                    }
                    match &live {
                        Some(c) => self.send_batch(c, &batch).await,
                        None => add(&self.counters.lost, batch.len() as u64),
                    }
                }
            }
        }
    }

    fn grow(&self, backoff: Duration) -> Duration {
        (backoff * 2).min(self.options.reconnect_max)
    }

    async fn connect(&self) -> Result<quinn::Connection, crate::NetError> {
        let connecting =
            self.endpoint
                .connect_with(self.config.clone(), self.addr, &node_name(self.peer))?;
        Ok(connecting.await?)
    }

    /// Writes `batch` as frames on one new unidirectional stream.
    async fn send_batch(&self, conn: &quinn::Connection, batch: &[Envelope]) {
        let mut buf = Vec::new();
        let mut count = 0u64;
        for envelope in batch {
            match encode_frame_into(&encode_peer(envelope), MAX_PEER_FRAME_BYTES, &mut buf) {
                Ok(()) => count += 1,
                Err(err) => {
                    add(&self.counters.oversized, 1);
                    warn!(%err, "envelope too large to send; dropped");
                }
            }
        }
        if count == 0 {
            return;
        }
        let result = async {
            let mut stream = conn.open_uni().await?;
            stream.write_all(&buf).await?;
            stream.finish()?;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
        }
        .await;
        match result {
            Ok(()) => {
                add(&self.counters.sent, count);
                set(&self.counters.rtt_micros, conn.rtt().as_micros() as u64);
            }
            Err(err) => {
                add(&self.counters.lost, count);
                debug!(%err, "batch not written");
            }
        }
    }
}

/// Serves one accepted peer connection until it closes.
pub(crate) async fn serve_inbound(conn: quinn::Connection, context: &AcceptContext) {
    let remote = conn.remote_address();
    let peer = match peer_node_id(&conn) {
        Ok(peer) => peer,
        Err(err) => {
            add(&context.counters.rejected_peer_connections, 1);
            warn!(%remote, %err, "peer connection refused");
            conn.close(CLOSE_NOT_A_NODE, b"certificate names no node");
            return;
        }
    };
    // Peers only send on unidirectional streams.
    conn.set_max_concurrent_bi_streams(0u32.into());
    let span = info_span!("peer_in", peer = peer.0, %remote);
    async {
        debug!("peer connected");
        loop {
            let mut stream = match conn.accept_uni().await {
                Ok(stream) => stream,
                Err(err) => {
                    debug!(%err, "peer connection ended");
                    return;
                }
            };
            match read_stream(&mut stream, peer, context).await {
                Ok(StreamEnd::Finished) => {}
                Ok(StreamEnd::RuntimeGone) => return,
                Err(err) => {
                    let code = match err {
                        StreamError::Frame(FrameError::TooLarge { .. }) => STREAM_FRAME_TOO_LARGE,
                        StreamError::Frame(FrameError::Io(_)) => continue,
                        _ => STREAM_MALFORMED,
                    };
                    add(&context.counters.bad_streams, 1);
                    warn!(%err, "bad peer stream closed");
                    let _ = stream.stop(code);
                }
            }
        }
    }
    .instrument(span)
    .await
}

enum StreamEnd {
    Finished,
    RuntimeGone,
}

#[derive(Debug, thiserror::Error)]
enum StreamError {
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error(transparent)]
    Wire(#[from] crate::WireError),
}

async fn read_stream(
    stream: &mut quinn::RecvStream,
    peer: NodeId,
    context: &AcceptContext,
) -> Result<StreamEnd, StreamError> {
    while let Some(frame) = read_frame(stream, MAX_PEER_FRAME_BYTES).await? {
        let envelope = decode_peer(&frame)?;
        if envelope.from != peer {
            add(&context.counters.envelopes_wrong_sender, 1);
            warn!(claimed = %envelope.from, "envelope claims another sender; dropped");
            continue;
        }
        if envelope.to != context.node {
            add(&context.counters.envelopes_misaddressed, 1);
            debug!(to = %envelope.to, "envelope for another node; dropped");
            continue;
        }
        if context.inbound.send(envelope).await.is_err() {
            return Ok(StreamEnd::RuntimeGone);
        }
        add(&context.counters.envelopes_delivered, 1);
    }
    Ok(StreamEnd::Finished)
}
