//! The Redis-protocol endpoint: RESP2 (and RESP3 after `HELLO 3`) and
//! inline commands on TCP, so that
//! `redis-cli`, `redis-benchmark` and Redis client libraries talk to Synod.
//!
//! Every node runs one (when `redis_addr` is configured) and accepts every
//! command: linearizable reads are served by the local core at every node
//! (a follower asks the leader for a read index, and leaves reads of keys
//! with a TTL to it); writes are served by the local core when this node
//! leads and forwarded to the leader's client service over QUIC otherwise
//! ([`backend`]; the commands forwarded at the same time travel in one
//! batch, `forward`). Each connection is one exactly-once
//! client: it gets its own client id ([`backend::ClientIds`]) and numbers
//! its writes from 1, so a write retried across a leader change applies
//! once. Commands run one at a time per connection, in order, as Redis
//! runs them; pipelined requests are answered in one write.
//!
//! Modules: [`resp`] (the wire format and its limits), [`backend`] (local
//! or forwarded requests), `forward` (forwarding in batches), `table` (dispatch, by the command tables of
//! `synod_wire::redis`),
//! `strings`, `expiry` and `keyspace` (the key-value commands), `multi`
//! (transactions), `admin`
//! (connection and server commands) and `coord` (Synod's own `SYNOD.*`
//! commands: compare-and-swap, locks, elections, status).
//!
//! `Conn` and `RedisShared` here hold state whose rules belong to two of
//! those modules (`coord`'s per-connection session, `keyspace`'s cursor
//! table), while those modules call the request helpers here (`read`,
//! `write`, ...): state here, behaviour there, so they import each other.

mod admin;
pub mod backend;
mod coord;
mod data;
mod expiry;
mod forward;
mod keyspace;
mod links;
mod multi;
pub mod resp;
mod strings;
mod table;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use synod_kvstore::{ErrorCode as KvErrorCode, ErrorResponse, KeyTtl, Op, Outcome, Request};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tracing::Instrument;

use self::backend::{Backend, CallError, ClientIds};
use self::coord::ConnSession;
use self::keyspace::CursorTable;
use self::resp::{Protocol, Reply, RequestParser, MAX_PENDING_BYTES};
use crate::metrics::ClientMetrics;
use crate::node::ReadConsistency;

/// TCP keepalive on every connection: the first probe after this much
/// silence, then every [`KEEPALIVE_INTERVAL`], and the connection is
/// dropped after [`KEEPALIVE_PROBES`] unanswered ones (about 90 s after a
/// client's host died), which closes its session and releases its locks.
pub const KEEPALIVE_IDLE: Duration = Duration::from_secs(60);
/// See [`KEEPALIVE_IDLE`].
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
/// See [`KEEPALIVE_IDLE`].
pub const KEEPALIVE_PROBES: u32 = 3;
/// Replies buffered for a pipelining client before they are written out.
const OUTPUT_FLUSH_BYTES: usize = 64 * 1024;
/// Bytes read from the socket at a time.
const READ_CHUNK_BYTES: usize = 64 * 1024;
/// A connection's input and output buffers shrink back to
/// [`READ_CHUNK_BYTES`] once drained if they grew past this.
const RETAINED_BUFFER_BYTES: usize = 1024 * 1024;
/// How long, and how many bytes, a connection closed for a protocol error
/// is still read (and dropped) after the error reply.
const LINGER: std::time::Duration = std::time::Duration::from_secs(1);
const LINGER_BYTES: usize = 4 * 1024 * 1024;

/// How an endpoint treats its connections.
#[derive(Clone, Debug)]
pub struct RedisOptions {
    /// The password clients must give (`AUTH`), if any.
    pub password: Option<String>,
    /// Silence after which a connection is closed (Redis's `timeout`), if
    /// any. A connection blocked in a command is not silent.
    pub idle_timeout: Option<Duration>,
    /// Most connections at once (Redis's `maxclients`).
    pub max_clients: usize,
}

/// What every connection of one node's endpoint shares.
pub struct RedisShared {
    backend: Arc<Backend>,
    password: Option<String>,
    idle_timeout: Option<Duration>,
    max_clients: usize,
    ids: ClientIds,
    cursors: Mutex<CursorTable>,
    started: std::time::Instant,
    connections: AtomicUsize,
    /// Connections running a blocking command now (`INFO`'s
    /// `blocked_clients`, which Redis's tests wait on).
    blocked: AtomicUsize,
    port: u16,
    /// What `CONFIG SET` was given (settings that change nothing in Synod).
    settings: Mutex<std::collections::BTreeMap<String, String>>,
    /// Commands and connections counted for Prometheus.
    metrics: ClientMetrics,
}

impl RedisShared {
    /// The state of an endpoint serving through `backend` as `options`
    /// say, listening on `port` (reported by `INFO`), counting its commands
    /// in `metrics`.
    pub fn new(
        backend: Backend,
        options: RedisOptions,
        port: u16,
        metrics: ClientMetrics,
    ) -> RedisShared {
        RedisShared {
            ids: ClientIds::new(backend.node_id()),
            backend: Arc::new(backend),
            password: options.password,
            idle_timeout: options.idle_timeout,
            max_clients: options.max_clients,
            cursors: Mutex::new(CursorTable::default()),
            started: std::time::Instant::now(),
            connections: AtomicUsize::new(0),
            blocked: AtomicUsize::new(0),
            port,
            settings: Mutex::new(std::collections::BTreeMap::new()),
            metrics,
        }
    }

    /// Milliseconds since the endpoint started (the clock of
    /// [`Conn::last_input_ms`]).
    fn millis_since_start(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }
}

/// One connection's state.
struct Conn {
    /// The exactly-once client id of this connection.
    client_id: u64,
    /// The sequence number of this connection's next write.
    next_seq: u64,
    authenticated: bool,
    name: Option<Vec<u8>>,
    /// The protocol replies are encoded in (`HELLO 3` switches to RESP3).
    protocol: Protocol,
    /// The session owning this connection's locks and candidacies, opened
    /// on first use.
    session: Option<ConnSession>,
    /// The `MULTI` block being queued, if any.
    block: Option<multi::Block>,
    /// The keys `WATCH`ed for the next `EXEC`, with their revisions then.
    watched: Vec<synod_kvstore::WatchedKey>,
    /// When the client last sent anything, in milliseconds since the
    /// endpoint started: the session's keep-alive task stops renewing a
    /// session whose connection has been silent for its TTL.
    last_input_ms: Arc<AtomicU64>,
}

impl Conn {
    /// The next write of this connection, numbered.
    fn numbered(&mut self, op: Op) -> Request {
        let (client_id, seq) = self.take_number();
        Request::from_client(client_id, seq, op)
    }

    /// This connection's id and the next write's sequence number, taken.
    fn take_number(&mut self) -> (u64, u64) {
        let seq = self.next_seq;
        self.next_seq += 1;
        (self.client_id, seq)
    }
}

/// Serves Redis clients on `listener` until `shutdown` turns true.
pub async fn serve(listener: TcpListener, shared: RedisShared, shutdown: watch::Receiver<bool>) {
    let shared = Arc::new(shared);
    let mut stop = shutdown.clone();
    loop {
        if *stop.borrow() {
            return;
        }
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "redis accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                }
            },
            _ = stop.changed() => return,
        };
        let shared = shared.clone();
        let shutdown = shutdown.clone();
        let span = tracing::debug_span!("redis", node = shared.backend.node_id().0, %remote);
        tokio::spawn(accept_connection(shared, stream, shutdown).instrument(span));
    }
}

/// Serves `listener` in a new task until `shutdown` turns true; returns
/// the address it listens on.
pub fn spawn(
    listener: TcpListener,
    backend: Backend,
    options: RedisOptions,
    metrics: ClientMetrics,
    shutdown: watch::Receiver<bool>,
) -> std::io::Result<SocketAddr> {
    let local = listener.local_addr()?;
    let shared = RedisShared::new(backend, options, local.port(), metrics);
    tokio::spawn(serve(listener, shared, shutdown));
    Ok(local)
}

async fn accept_connection(
    shared: Arc<RedisShared>,
    mut stream: TcpStream,
    shutdown: watch::Receiver<bool>,
) {
    if shared.connections.fetch_add(1, Ordering::SeqCst) >= shared.max_clients {
        shared.connections.fetch_sub(1, Ordering::SeqCst);
        let _ = stream
            .write_all(b"-ERR max number of clients reached\r\n")
            .await;
        return;
    }
    let _ = stream.set_nodelay(true);
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(KEEPALIVE_IDLE)
        .with_interval(KEEPALIVE_INTERVAL)
        .with_retries(KEEPALIVE_PROBES);
    if let Err(e) = socket2::SockRef::from(&stream).set_tcp_keepalive(&keepalive) {
        tracing::warn!(error = %e, "cannot enable TCP keepalive on a Redis connection");
    }
    let mut conn = Conn {
        client_id: shared.ids.next(),
        next_seq: 1,
        authenticated: shared.password.is_none(),
        name: None,
        protocol: Protocol::Resp2,
        session: None,
        block: None,
        watched: Vec::new(),
        last_input_ms: Arc::new(AtomicU64::new(shared.millis_since_start())),
    };
    shared.metrics.redis_connections().inc();
    serve_connection(&shared, &mut conn, stream, shutdown).await;
    shared.metrics.redis_connections().dec();
    if let Some(session) = conn.session.take() {
        session.close(&shared.backend);
    }
    shared.connections.fetch_sub(1, Ordering::SeqCst);
}

async fn serve_connection(
    shared: &RedisShared,
    conn: &mut Conn,
    mut stream: TcpStream,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut buf: Vec<u8> = Vec::with_capacity(READ_CHUNK_BYTES);
    let mut out: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; READ_CHUNK_BYTES];
    // Input read while a blocking command waited, parsed after it.
    let mut early: Vec<u8> = Vec::new();
    let last_input_ms = conn.last_input_ms.clone();
    let mut parser = RequestParser::default();
    loop {
        let mut pos = 0;
        let mut close = false;
        let mut linger = false;
        while !close {
            match parser.parse(&buf[pos..], conn.authenticated) {
                Ok(Some(parsed)) => {
                    pos += parsed.consumed;
                    if parsed.args.is_empty() {
                        continue;
                    }
                    let command = table::lookup(&parsed.args[0]).map_or("unknown", |s| s.name);
                    let (reply, quit) = if table::is_blocking(&parsed.args[0]) {
                        // A blocked client that goes away stops waiting
                        // (else its pop would take an element nobody reads).
                        let _blocked = BlockedClient::enter(shared);
                        let exec = table::execute(shared, conn, parsed.args);
                        tokio::pin!(exec);
                        loop {
                            let room = early.len() < MAX_PENDING_BYTES;
                            tokio::select! {
                                done = &mut exec => break done,
                                read = stream.read(&mut chunk), if room => match read {
                                    Ok(0) | Err(_) => return,
                                    Ok(n) => {
                                        last_input_ms.store(shared.millis_since_start(), Ordering::Relaxed);
                                        early.extend_from_slice(&chunk[..n]);
                                    }
                                },
                            }
                        }
                    } else {
                        table::execute(shared, conn, parsed.args).await
                    };
                    shared.metrics.redis_command(command, reply.error_code());
                    reply.encode(conn.protocol, &mut out);
                    close = quit;
                    if out.len() >= OUTPUT_FLUSH_BYTES {
                        if stream.write_all(&out).await.is_err() {
                            return;
                        }
                        out.clear();
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!(error = %e, "closing a connection after a protocol error");
                    Reply::err(e).encode(conn.protocol, &mut out);
                    close = true;
                    linger = true;
                }
            }
        }
        buf.drain(..pos);
        let read_early = !early.is_empty();
        buf.append(&mut early);
        if !out.is_empty() {
            if stream.write_all(&out).await.is_err() {
                return;
            }
            out.clear();
        }
        // A large request or reply leaves no large buffer behind.
        for buffer in [&mut buf, &mut out, &mut early] {
            if buffer.capacity() > RETAINED_BUFFER_BYTES && buffer.len() <= READ_CHUNK_BYTES {
                buffer.shrink_to(READ_CHUNK_BYTES);
            }
        }
        if linger {
            crate::tcp::close_gently(&mut stream, LINGER, LINGER_BYTES).await;
            return;
        }
        if close || *shutdown.borrow() {
            return;
        }
        // The parser refuses any request larger than this from its headers,
        // so this is a second line of defence, not an expected path.
        if buf.len() > MAX_PENDING_BYTES {
            tracing::warn!(size_bytes = buf.len(), "unparsed input over the bound");
            let mut refusal = Vec::new();
            Reply::err("Protocol error: request too large").encode(conn.protocol, &mut refusal);
            let _ = stream.write_all(&refusal).await;
            crate::tcp::close_gently(&mut stream, LINGER, LINGER_BYTES).await;
            return;
        }
        if read_early {
            continue;
        }
        let idle_timeout = shared.idle_timeout.unwrap_or(Duration::MAX);
        let read = tokio::select! {
            read = tokio::time::timeout(idle_timeout, stream.read(&mut chunk)) => match read {
                Ok(read) => read,
                Err(_) => {
                    tracing::debug!("closing a connection idle for the configured timeout");
                    return;
                }
            },
            _ = shutdown.changed() => return,
        };
        match read {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                last_input_ms.store(shared.millis_since_start(), Ordering::Relaxed);
                buf.extend_from_slice(&chunk[..n]);
            }
        }
    }
}

/// Counts a connection in [`RedisShared::blocked`] while it lives (the
/// blocking command, however it ends: answered, or dropped when the client
/// goes away).
struct BlockedClient<'a>(&'a AtomicUsize);

impl<'a> BlockedClient<'a> {
    fn enter(shared: &'a RedisShared) -> BlockedClient<'a> {
        shared.blocked.fetch_add(1, Ordering::SeqCst);
        BlockedClient(&shared.blocked)
    }
}

impl Drop for BlockedClient<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Sends `op` as this connection's next write; returns its outcome, or the
/// Redis error reply for a refusal or an unavailable cluster.
async fn write(shared: &RedisShared, conn: &mut Conn, op: Op) -> Result<Outcome, Reply> {
    write_with_ttl(shared, conn, op, None).await
}

/// [`write`], with `key_ttl` deciding the expiry of the keys `op` writes
/// (`None`: the op's default, as Redis: `SET` clears it, `INCR` keeps it).
async fn write_with_ttl(
    shared: &RedisShared,
    conn: &mut Conn,
    op: Op,
    key_ttl: Option<KeyTtl>,
) -> Result<Outcome, Reply> {
    let mut request = conn.numbered(op);
    request.key_ttl = key_ttl;
    let response = call_numbered(shared, conn, request).await?;
    outcome(response.outcome)
}

/// Sends this connection's numbered write `request`. If the state machine
/// answers `UnknownClient`, it applied nothing: it does not know this
/// connection's id (its first write never reached the log, answered
/// `TRYAGAIN` say, or the exactly-once table forgot the connection after
/// a long idle time). The connection then moves to a fresh id and sends
/// the request once more, as its first.
async fn call_numbered(
    shared: &RedisShared,
    conn: &mut Conn,
    mut request: Request,
) -> Result<synod_kvstore::Response, Reply> {
    let response = shared
        .backend
        .call(&request, ReadConsistency::Linearizable)
        .await
        .map_err(call_error_reply)?;
    let unknown = response
        .as_error()
        .is_some_and(|e| e.error_code() == KvErrorCode::UnknownClient);
    if !unknown {
        return Ok(response);
    }
    tracing::debug!(
        client_id = conn.client_id,
        "unknown to the state machine: a fresh id"
    );
    conn.client_id = shared.ids.next();
    conn.next_seq = 1;
    (request.client_id, request.seq) = conn.take_number();
    shared
        .backend
        .call(&request, ReadConsistency::Linearizable)
        .await
        .map_err(call_error_reply)
}

/// Serves the read `op` linearizably (client id 0: reads need no
/// exactly-once), or an anonymous read-only transaction through the log.
async fn read(shared: &RedisShared, op: Op) -> Result<Outcome, Reply> {
    let response = shared
        .backend
        .call(&Request::anonymous(op), ReadConsistency::Linearizable)
        .await
        .map_err(call_error_reply)?;
    outcome(response.outcome)
}

fn outcome(outcome: Option<Outcome>) -> Result<Outcome, Reply> {
    match outcome {
        Some(Outcome::Error(e)) => Err(request_error_reply(&e)),
        Some(outcome) => Ok(outcome),
        None => Err(Reply::err("the state machine gave no answer")),
    }
}

/// The Redis reply for a request that could not be served.
///
/// `TRYAGAIN` (which Redis cluster clients retry on their own, as a new
/// command) only when the command was certainly not applied; `UNCERTAIN`
/// when a write may have been applied, so that no client retries it
/// blindly (an `INCR` could then apply twice).
fn call_error_reply(error: CallError) -> Reply {
    match error {
        CallError::Unavailable(_) | CallError::ShuttingDown => {
            Reply::Error(format!("TRYAGAIN {error}"))
        }
        CallError::Uncertain(_) => Reply::Error(format!("UNCERTAIN {error}")),
        CallError::Invalid(_) | CallError::Internal(_) => Reply::err(error),
    }
}

/// The Redis reply for a request the state machine refused, with Redis's
/// wording where Redis has the same error.
fn request_error_reply(error: &ErrorResponse) -> Reply {
    match error.error_code() {
        KvErrorCode::NotAnInteger => Reply::err("value is not an integer or out of range"),
        KvErrorCode::IncrOverflow => Reply::err("increment or decrement would overflow"),
        KvErrorCode::EmptyKey => Reply::err("empty keys are not supported by Synod"),
        KvErrorCode::WrongType => Reply::Error(error.message.clone()),
        _ => Reply::err(&error.message),
    }
}

/// Checks a key argument against Synod's key rules (non-empty, at most
/// [`MAX_KEY_BYTES`](synod_wire::limits::MAX_KEY_BYTES)).
fn check_key(key: &[u8]) -> Result<(), Reply> {
    use synod_wire::limits::MAX_KEY_BYTES;
    if key.is_empty() {
        return Err(Reply::err("empty keys are not supported by Synod"));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(Reply::err(format!(
            "key too large: {} bytes, limit {MAX_KEY_BYTES}",
            key.len()
        )));
    }
    Ok(())
}
