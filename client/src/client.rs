//! The client: leader tracking, retries, and the key-value calls.
//!
//! Connections are [`crate::connections`]'s; a call goes to the leader
//! last seen, else round the endpoints, follows redirects, and gives up on
//! its timeout, or at once when every endpoint refused TLS with it.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prost::Message as _;
use synod_net::tls::{is_valid_server_name, TlsIdentity};
use synod_net::{ClientResponse, ResponseFrames};
use synod_wire::client_ids::CLIENT_LIBRARY;
use synod_wire::proto::api::api_response::Result as ApiResult;
use synod_wire::proto::api::{api_request::Call, ApiRequest, ApiResponse, KvCall};
use synod_wire::proto::Verdict;
use synod_wire::retry::Backoff;
use synod_wire::{DeleteRange, Get, KeyValue, Op, Outcome, Request, Response};
use tokio::time::Instant;

use crate::connections::{Connections, Failure, Target};
use crate::endpoint::{Endpoint, IntoEndpoint};
use crate::error::{ClientError, TlsError};
use crate::options::WriteOptions;

/// The timeout of a call unless the configuration says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// How a [`Client`] reaches the cluster.
///
/// ```no_run
/// # fn demo() -> Result<(), synod_client::ClientError> {
/// use std::path::Path;
/// use std::time::Duration;
/// use synod_client::ClientConfig;
/// let config = ClientConfig::new(
///     ["db-1.internal:7401", "db-2.internal:7401", "10.0.0.7:7401"],
///     Path::new("certs/ca.pem"),
///     Path::new("certs/client-app.pem"),
///     Path::new("certs/client-app.key"),
/// )?
/// .timeout(Duration::from_secs(5));
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Client addresses of the nodes (any subset; the leader is found): IP
    /// addresses or DNS names, each resolved again whenever it is dialed.
    pub endpoints: Vec<Endpoint>,
    /// The cluster CA and this client's certificate and key.
    pub tls: TlsIdentity,
    /// How long one call may take, retries included.
    pub timeout: Duration,
    /// The name every endpoint's certificate must carry; `None`: each
    /// endpoint's host (its DNS name, or its IP address). A leader reached
    /// through a redirect is checked against `node-<id>` instead, the name
    /// every node certificate carries.
    pub server_name: Option<String>,
}

impl ClientConfig {
    /// The nodes at `endpoints` (`host:port` text, [`Endpoint`]s or
    /// [`SocketAddr`]s), with the CA and client certificate in PEM files,
    /// and a 10 s timeout.
    ///
    /// # Errors
    /// [`ClientError::InvalidEndpoint`] for an endpoint that does not parse;
    /// [`ClientError::Setup`] if a file cannot be read or holds no usable
    /// certificate or key.
    pub fn new(
        endpoints: impl IntoIterator<Item = impl IntoEndpoint>,
        ca: &Path,
        cert: &Path,
        key: &Path,
    ) -> Result<ClientConfig, ClientError> {
        let tls = TlsIdentity::from_pem_files(ca, cert, key)
            .map_err(|e| ClientError::Setup(e.to_string()))?;
        ClientConfig::with_identity(endpoints, tls)
    }

    /// The nodes at `endpoints` (`host:port` text, [`Endpoint`]s or
    /// [`SocketAddr`]s), with `tls`, and a 10 s timeout.
    ///
    /// # Errors
    /// [`ClientError::InvalidEndpoint`] for an endpoint that does not parse.
    pub fn with_identity(
        endpoints: impl IntoIterator<Item = impl IntoEndpoint>,
        tls: TlsIdentity,
    ) -> Result<ClientConfig, ClientError> {
        let endpoints = endpoints
            .into_iter()
            .map(IntoEndpoint::into_endpoint)
            .collect::<Result<_, _>>()?;
        Ok(ClientConfig {
            endpoints,
            tls,
            timeout: DEFAULT_TIMEOUT,
            server_name: None,
        })
    }

    /// The nodes at the socket addresses `addrs`, with `tls`, and a 10 s
    /// timeout. Each node's certificate must name its IP address (unless
    /// [`server_name`](ClientConfig::server_name) says otherwise).
    pub fn from_addrs(
        addrs: impl IntoIterator<Item = SocketAddr>,
        tls: TlsIdentity,
    ) -> ClientConfig {
        ClientConfig {
            endpoints: addrs.into_iter().map(Endpoint::from).collect(),
            tls,
            timeout: DEFAULT_TIMEOUT,
            server_name: None,
        }
    }

    /// With calls taking at most `timeout`, retries included.
    pub fn timeout(mut self, timeout: Duration) -> ClientConfig {
        self.timeout = timeout;
        self
    }

    /// With `server_name` as the name every endpoint's certificate must
    /// carry (`None`: each endpoint's host). For example `node-1` to dial
    /// node 1 by an address its certificate does not name, or a name issued
    /// to every node (`synod cert node --name`).
    pub fn server_name(mut self, server_name: Option<String>) -> ClientConfig {
        self.server_name = server_name;
        self
    }

    /// The cluster `synod dev --data-dir DIR --base-port P` runs.
    pub fn from_dev_cluster(
        dir: impl AsRef<Path>,
        base_port: u16,
    ) -> Result<ClientConfig, ClientError> {
        let certs = dir.as_ref().join("certs");
        let endpoints = (0..3).map(|i| SocketAddr::from(([127, 0, 0, 1], base_port + 10 * i + 1)));
        ClientConfig::new(
            endpoints,
            &certs.join("ca.pem"),
            &certs.join("client-dev.pem"),
            &certs.join("client-dev.key"),
        )
    }
}

/// A connection to a Synod cluster. Cheap to clone; clones share
/// connections. Safe to use from many tasks at once.
///
/// Dropping the last clone drops the connections (each node sees its
/// connection close); [`close`](Client::close) does so gracefully and waits
/// until the nodes were told.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("endpoints", &self.inner.config.endpoints)
            .field("leader", &*self.inner.leader.lock().expect("leader lock"))
            .field("closed", &self.inner.connections.is_closed())
            .finish_non_exhaustive()
    }
}

struct Inner {
    config: ClientConfig,
    connections: Connections,
    /// Where the leader was last seen (a [`Target::Leader`]).
    leader: Mutex<Option<Target>>,
    /// Exactly-once identities not in use by a call: `(client id, next
    /// seq)`. The state machine remembers one request per client id, so
    /// every concurrent write borrows its own id.
    idle_ids: Mutex<Vec<(u64, u64)>>,
    /// The endpoint calls try first while the leader is unknown; moved on
    /// past a node that fails, so concurrent calls do not each wait for
    /// the same dead node.
    cursor: AtomicUsize,
    /// Per endpoint, until when it is passed over: a try found it
    /// unreachable. See [`SKIP_UNREACHABLE`].
    unreachable_until: Mutex<Vec<Option<Instant>>>,
}

/// The request a write is sending, shared with the undo of an abandoned
/// wait (see `UndoOnDrop`), which must not overtake it.
pub(crate) type InFlight = Arc<Mutex<Option<Request>>>;

/// Longest a single attempt waits for its node.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);

/// How long calls pass over an endpoint a try found unreachable, while
/// another endpoint is not: a dead node costs one call one
/// [`ATTEMPT_TIMEOUT`], not every call whose turn around the endpoints
/// comes to it (as happens while a new leader is elected and followers
/// answer "leader unknown").
const SKIP_UNREACHABLE: Duration = Duration::from_secs(5);

impl Client {
    /// A client for the cluster in `config`. Connects lazily; fails only on
    /// a configuration that cannot work.
    ///
    /// # Errors
    /// [`ClientError::Setup`] if there is no endpoint, or a server name
    /// (the override or an endpoint's host) cannot be one.
    pub async fn connect(config: ClientConfig) -> Result<Client, ClientError> {
        if config.endpoints.is_empty() {
            return Err(ClientError::Setup("no endpoints given".into()));
        }
        let bad = match &config.server_name {
            Some(name) => Some(name.clone()).filter(|name| !is_valid_server_name(name)),
            None => config
                .endpoints
                .iter()
                .map(Endpoint::server_name)
                .find(|name| !is_valid_server_name(name)),
        };
        if let Some(bad) = bad {
            return Err(ClientError::Setup(format!(
                "`{bad}` cannot be a TLS server name"
            )));
        }
        let endpoint_count = config.endpoints.len();
        let connections = Connections::new(
            config.endpoints.clone(),
            config.server_name.clone(),
            config.tls.clone(),
        );
        Ok(Client {
            inner: Arc::new(Inner {
                config,
                connections,
                leader: Mutex::new(None),
                idle_ids: Mutex::new(Vec::new()),
                cursor: AtomicUsize::new(0),
                unreachable_until: Mutex::new(vec![None; endpoint_count]),
            }),
        })
    }

    /// The value of `key`, linearizably.
    pub async fn get(&self, key: &[u8]) -> Result<Option<KeyValue>, ClientError> {
        let op = Op::Get(Get { key: key.to_vec() });
        Ok(get_kv(self.read(op, false).await?))
    }

    /// The value of `key` as this client's first reachable node has it
    /// applied: possibly stale, from any node.
    pub async fn get_serializable(&self, key: &[u8]) -> Result<Option<KeyValue>, ClientError> {
        let op = Op::Get(Get { key: key.to_vec() });
        Ok(get_kv(self.read(op, true).await?))
    }

    /// Sets `key` to `value`; returns the revision of the write.
    pub async fn put(&self, key: &[u8], value: &[u8]) -> Result<u64, ClientError> {
        self.unfenced().put(key, value).await
    }

    /// Deletes `key`; returns whether it existed.
    pub async fn delete(&self, key: &[u8]) -> Result<bool, ClientError> {
        self.unfenced().delete(key).await
    }

    /// Deletes every key in `[start, end)` (empty `end`: to the end);
    /// returns how many.
    pub async fn delete_range(&self, start: &[u8], end: &[u8]) -> Result<u64, ClientError> {
        let op = Op::DeleteRange(DeleteRange {
            start: start.to_vec(),
            end: end.to_vec(),
            prefix: Vec::new(),
        });
        match self.write(op).await?.outcome {
            Some(Outcome::DeleteRange(d)) => Ok(d.deleted),
            other => Err(unexpected(other)),
        }
    }

    /// Up to `limit` keys starting with `prefix` (0: as many as one page
    /// holds), in key order, linearizably: the first page of
    /// [`prefix`](Client::prefix).
    pub async fn scan_prefix(
        &self,
        prefix: &[u8],
        limit: u32,
    ) -> Result<Vec<KeyValue>, ClientError> {
        Ok(self.prefix(prefix).limit(limit).page().await?.kvs)
    }

    /// Sets `key` to `new` if it holds `expected` (`None`: if it is absent).
    /// Returns whether it did.
    pub async fn compare_and_swap(
        &self,
        key: &[u8],
        expected: Option<&[u8]>,
        new: &[u8],
    ) -> Result<bool, ClientError> {
        self.unfenced().compare_and_swap(key, expected, new).await
    }

    /// Adds `delta` to the integer in `key` (absent counts as 0); returns
    /// the new value.
    pub async fn incr(&self, key: &[u8], delta: i64) -> Result<i64, ClientError> {
        self.unfenced().incr(key, delta).await
    }

    /// Runs any write op (a transaction, say) exactly once; returns the
    /// state machine's response.
    pub async fn write(&self, op: Op) -> Result<Response, ClientError> {
        self.write_with(op, &WriteOptions::default()).await
    }

    /// Runs any write op exactly once as `options` say: fenced by a lock's
    /// token (refused with
    /// [`FencingTokenRejected`](synod_wire::ErrorCode::FencingTokenRejected)
    /// unless it is the lock's current one), with the keys it writes owned
    /// by a session, within its own timeout.
    pub async fn write_with(
        &self,
        op: Op,
        options: &WriteOptions,
    ) -> Result<Response, ClientError> {
        self.write_tracked(op, options, None).await
    }

    /// [`write_with`](Client::write_with), keeping in `in_flight` the
    /// request as it is being sent (its exactly-once id and seq), so that
    /// whoever drops this future can [`settle`](Client::settle) it first.
    pub(crate) async fn write_tracked(
        &self,
        op: Op,
        options: &WriteOptions,
        in_flight: Option<&InFlight>,
    ) -> Result<Response, ClientError> {
        let track = |request: &Request| {
            if let Some(slot) = in_flight {
                *slot.lock().expect("in-flight lock") = Some(request.clone());
            }
        };
        let (id, seq) = self.borrow_id();
        let mut request = Request::from_client(id, seq, op);
        if let Some(fence) = &options.fence {
            request = request.fenced(fence.lock.clone(), fence.token);
        }
        if let Some(session) = options.session {
            request = request.in_session(session);
        }
        let timeout = options.timeout.unwrap_or(self.inner.config.timeout);
        track(&request);
        let mut result = self.call(&request, false, timeout).await;
        if result.as_ref().is_ok_and(is_unknown_client) {
            // Applied nothing: the state machine does not know this id (its
            // first write never reached the log, or the exactly-once table
            // forgot it). Send the write once more as a fresh id's first.
            (request.client_id, request.seq) = (self.fresh_id(), 1);
            track(&request);
            result = self.call(&request, false, timeout).await;
        }
        // A timed-out write may still be applied later under this (id,
        // seq): never reuse the id then; nor one the state machine forgot.
        let reusable = match &result {
            // A TLS refusal applied nothing, but costs nothing to be sure of.
            Err(ClientError::Timeout | ClientError::Closed | ClientError::Tls(_)) => false,
            Ok(response) => !is_unknown_client(response),
            Err(_) => true,
        };
        if reusable {
            self.return_id(request.client_id, request.seq + 1);
        }
        command_result(result?)
    }

    /// Sends `request` again under its own exactly-once id and seq until a
    /// node answers (or the timeout passes): it is then applied, once,
    /// whether the first sending arrived or not, and anything written
    /// after this returns is ordered after it.
    pub(crate) async fn settle(&self, request: &Request) {
        if let Err(e) = self.call(request, false, self.inner.config.timeout).await {
            tracing::debug!(error = %e, "could not settle an abandoned write");
        }
    }

    /// Runs any read-only op; `serializable` reads from any node.
    pub async fn read(&self, op: Op, serializable: bool) -> Result<Response, ClientError> {
        let timeout = self.inner.config.timeout;
        command_result(
            self.call(&Request::anonymous(op), serializable, timeout)
                .await?,
        )
    }

    /// How long one call may take by default, retries included.
    pub fn timeout(&self) -> Duration {
        self.inner.config.timeout
    }

    fn borrow_id(&self) -> (u64, u64) {
        let reused = self.inner.idle_ids.lock().expect("ids lock").pop();
        reused.unwrap_or_else(|| (self.fresh_id(), 1))
    }

    /// An exactly-once id no client of this process used.
    fn fresh_id(&self) -> u64 {
        process_fresh_id()
    }

    fn return_id(&self, id: u64, next_seq: u64) {
        self.inner
            .idle_ids
            .lock()
            .expect("ids lock")
            .push((id, next_seq));
    }

    /// Sends `request` until a node serves it or `timeout` passes.
    async fn call(
        &self,
        request: &Request,
        serializable: bool,
        timeout: Duration,
    ) -> Result<Response, ClientError> {
        let call = Call::Kv(KvCall {
            request: request.encode_to_vec(),
            serializable,
        });
        match self.call_api(call, timeout).await? {
            ApiResult::Kv(bytes) => Response::decode(bytes.as_slice())
                .map_err(|e| ClientError::Protocol(format!("undecodable response: {e}"))),
            other => Err(ClientError::Protocol(format!(
                "a key-value call was answered with {other:?}"
            ))),
        }
    }

    /// Closes every connection gracefully and waits until each node was
    /// told. Calls in flight and every later call, from any clone, fail
    /// with [`ClientError::Closed`] (a write in flight may or may not have
    /// been applied). Closing again does nothing.
    pub async fn close(&self) {
        self.inner.connections.close().await;
    }

    /// Resolves once [`close`](Client::close) was called on this client or
    /// a clone.
    pub async fn closed(&self) {
        self.inner.connections.closed().await;
    }

    /// Whether [`close`](Client::close) was called on this client or a
    /// clone.
    pub fn is_closed(&self) -> bool {
        self.inner.connections.is_closed()
    }

    /// The configured endpoints, in order.
    pub fn endpoints(&self) -> &[Endpoint] {
        &self.inner.config.endpoints
    }

    /// Sends `call` until a node serves it or `timeout` passes: to the known
    /// leader first, following redirects, then around the endpoints.
    ///
    /// Gives up early with [`ClientError::Tls`] once every endpoint refused
    /// TLS during this call (or a redirect names a leader that did), unless
    /// a try may have been applied (then the caller must learn so, from
    /// [`ClientError::Timeout`]); and with [`ClientError::Closed`] once the
    /// client is closed.
    pub(crate) async fn call_api(
        &self,
        call: Call,
        timeout: Duration,
    ) -> Result<ApiResult, ClientError> {
        let payload = ApiRequest { call: Some(call) }.encode_to_vec();
        let deadline = Instant::now() + timeout;
        let mut tries = Tries::new(self.inner.config.endpoints.len());
        let mut backoff = Backoff::new();
        loop {
            if self.is_closed() {
                return Err(ClientError::Closed);
            }
            let (cursor, target) = self.next_target();
            let attempt = tokio::time::timeout_at(
                deadline.min(Instant::now() + ATTEMPT_TIMEOUT),
                self.attempt(target, payload.clone()),
            )
            .await;
            if let Ok(Ok(_)) = &attempt {
                self.answered(target);
            }
            let failure = match attempt {
                Ok(Ok(Attempt::Served(response))) => return Ok(response),
                Ok(Ok(Attempt::Refused(message))) => return Err(ClientError::BadRequest(message)),
                Ok(Ok(Attempt::Redirect(not_leader))) => {
                    tries.uncertain |= not_leader.outcome_unknown;
                    if let Some(leader) = not_leader.leader {
                        if let Some(refused) = tries.refused_tls(leader) {
                            return Err(ClientError::Tls(refused.clone()));
                        }
                        tracing::debug!(%target, %leader, "redirected to the leader");
                        *self.inner.leader.lock().expect("leader lock") = Some(leader);
                        continue;
                    }
                    None
                }
                Ok(Ok(Attempt::Unavailable(_))) => {
                    // It may have dropped the request after proposing it.
                    tries.uncertain = true;
                    None
                }
                Ok(Err(failure)) => Some(failure),
                Err(_) => Some(Failure::Unreachable("no answer in time".into())),
            };
            self.pause_after(&mut tries, cursor, target, failure, &mut backoff, deadline)
                .await?;
        }
    }

    /// Sends `call` as a request answered by a server stream, to the known
    /// leader first, else around the endpoints, until a node takes it or
    /// `deadline` passes; returns whom it went to and the stream. Gives up
    /// early as [`call_api`](Client::call_api) does.
    pub(crate) async fn open_stream(
        &self,
        call: Call,
        deadline: Instant,
    ) -> Result<(Target, ResponseFrames), ClientError> {
        let payload = ApiRequest { call: Some(call) }.encode_to_vec();
        let mut tries = Tries::new(self.inner.config.endpoints.len());
        let mut backoff = Backoff::new();
        loop {
            if self.is_closed() {
                return Err(ClientError::Closed);
            }
            let (cursor, target) = self.next_target();
            let opened = tokio::time::timeout_at(
                deadline.min(Instant::now() + ATTEMPT_TIMEOUT),
                self.open_at(target, payload.clone()),
            )
            .await;
            let failure = match opened {
                Ok(Ok(frames)) => {
                    self.answered(target);
                    return Ok((target, frames));
                }
                Ok(Err(failure)) => failure,
                Err(_) => Failure::Unreachable("no answer in time".into()),
            };
            self.pause_after(
                &mut tries,
                cursor,
                target,
                Some(failure),
                &mut backoff,
                deadline,
            )
            .await?;
        }
    }

    /// After a try at `target` went nowhere (`failure`, if it failed):
    /// gives up as [`failed`](Self::failed) says, or with
    /// [`ClientError::Timeout`] if the next pause would pass `deadline`;
    /// else takes that pause.
    async fn pause_after(
        &self,
        tries: &mut Tries,
        cursor: usize,
        target: Target,
        failure: Option<Failure>,
        backoff: &mut Backoff,
        deadline: Instant,
    ) -> Result<(), ClientError> {
        tracing::debug!(%target, ?failure, "a try went nowhere");
        if let Some(give_up) = self.failed(tries, cursor, target, failure) {
            return Err(give_up);
        }
        let pause = backoff.pause();
        if Instant::now() + pause >= deadline {
            tracing::debug!(%target, "out of time");
            return Err(ClientError::Timeout);
        }
        tokio::time::sleep(pause).await;
        Ok(())
    }

    /// Drops `target` after it failed a caller that does not go through
    /// [`call_api`](Client::call_api) (a broken stream): the next try
    /// reconnects or goes to the next endpoint.
    pub(crate) fn pass_over(&self, target: Target) {
        let cursor = self.inner.cursor.load(Ordering::Relaxed);
        self.forget(target);
        self.move_past(cursor, target);
    }

    /// Where the next try goes: the leader last seen, else the endpoint at
    /// the shared cursor; with the cursor it was chosen at.
    fn next_target(&self) -> (usize, Target) {
        let cursor = self.reachable_cursor();
        let endpoint = Target::Endpoint(cursor % self.inner.config.endpoints.len());
        let leader = *self.inner.leader.lock().expect("leader lock");
        (cursor, leader.unwrap_or(endpoint))
    }

    /// `target` answered: if it is an endpoint, calls no longer pass it
    /// over.
    fn answered(&self, target: Target) {
        self.pass_over_until(target, None);
    }

    /// If `target` is an endpoint, calls pass it over until `until` (none:
    /// not at all).
    fn pass_over_until(&self, target: Target, until: Option<Instant>) {
        if let Target::Endpoint(i) = target {
            self.inner
                .unreachable_until
                .lock()
                .expect("unreachable lock")[i] = until;
        }
    }

    /// The shared cursor, first moved past the endpoints a try found
    /// unreachable in the last [`SKIP_UNREACHABLE`], unless every endpoint
    /// was.
    fn reachable_cursor(&self) -> usize {
        let mut cursor = self.inner.cursor.load(Ordering::Relaxed);
        let until = self
            .inner
            .unreachable_until
            .lock()
            .expect("unreachable lock");
        let now = Instant::now();
        let skipped = |i: usize| until[i % until.len()].is_some_and(|until| now < until);
        if (0..until.len()).all(skipped) {
            return cursor;
        }
        while skipped(cursor) {
            cursor = match self.inner.cursor.compare_exchange(
                cursor,
                cursor.wrapping_add(1),
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => cursor.wrapping_add(1),
                Err(moved) => moved,
            };
        }
        cursor
    }

    /// Takes note that a try at `target` (chosen at `cursor`) failed, as
    /// `failure` says (`None`: the node answered it could not serve): the
    /// next try goes
    /// elsewhere. Returns the error to give up with, if the call should:
    /// the client is closed, or every endpoint refused TLS during the call
    /// and no try may have been applied.
    fn failed(
        &self,
        tries: &mut Tries,
        cursor: usize,
        target: Target,
        failure: Option<Failure>,
    ) -> Option<ClientError> {
        self.forget(target);
        self.move_past(cursor, target);
        match failure {
            Some(Failure::Closed) => Some(ClientError::Closed),
            Some(Failure::Tls(refused)) => tries.tls_refused(target, refused),
            // Sent, perhaps, and unanswered: it may be applied.
            Some(Failure::Unreachable(_)) => {
                tries.uncertain = true;
                self.pass_over_until(target, Some(Instant::now() + SKIP_UNREACHABLE));
                None
            }
            None => None,
        }
    }

    /// Moves the shared cursor on from `cursor` if `target` is the endpoint
    /// there (and no other call moved it meanwhile).
    fn move_past(&self, cursor: usize, target: Target) {
        if target == Target::Endpoint(cursor % self.inner.config.endpoints.len()) {
            let _ = self.inner.cursor.compare_exchange(
                cursor,
                cursor.wrapping_add(1),
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
    }

    /// Opens a server stream for `payload` at `target`, dialing if need be.
    async fn open_at(&self, target: Target, payload: Vec<u8>) -> Result<ResponseFrames, Failure> {
        let dialed = self.inner.connections.get(target).await?;
        dialed
            .conn
            .request_stream(payload)
            .await
            .map_err(|e| dialed.failure(&e, self.is_closed()))
    }

    /// One try at one target: dial it if need be, send `payload`, and say
    /// what the answer means.
    pub(crate) async fn attempt(
        &self,
        target: Target,
        payload: Vec<u8>,
    ) -> Result<Attempt, Failure> {
        let dialed = self.inner.connections.get(target).await?;
        match dialed.conn.request(payload).await {
            Ok(response) => Ok(classify(response)),
            Err(e) => Err(dialed.failure(&e, self.is_closed())),
        }
    }

    /// Drops a target that failed us, so the next try reconnects or goes
    /// elsewhere.
    pub(crate) fn forget(&self, target: Target) {
        self.inner.connections.forget(target);
        let mut leader = self.inner.leader.lock().expect("leader lock");
        if *leader == Some(target) {
            *leader = None;
        }
    }
}

/// What the tries of one call have learned: the targets that refused TLS
/// (it gives up once every endpoint did, or when a redirect names a leader
/// that did), and whether some try may have been applied (then it never
/// gives up that way: a write's caller must learn its effect is unknown).
struct Tries {
    /// Per endpoint, whether it refused.
    tls_endpoints: Vec<bool>,
    /// Leaders (reached through redirects) that refused, and how.
    tls_leaders: Vec<(SocketAddr, TlsError)>,
    /// Some try went unanswered, or was answered "outcome unknown". Never
    /// unset.
    uncertain: bool,
}

impl Tries {
    fn new(endpoints: usize) -> Tries {
        Tries {
            tls_endpoints: vec![false; endpoints],
            tls_leaders: Vec::new(),
            uncertain: false,
        }
    }

    /// Notes that `target` refused TLS as `refused` says; the error to give
    /// up with if every endpoint has now and no try may have been applied.
    fn tls_refused(&mut self, target: Target, refused: TlsError) -> Option<ClientError> {
        match target {
            Target::Endpoint(i) => self.tls_endpoints[i] = true,
            Target::Leader { addr, .. } => self.tls_leaders.push((addr, refused.clone())),
        }
        let every = self.tls_endpoints.iter().all(|refused| *refused);
        (every && !self.uncertain).then_some(ClientError::Tls(refused))
    }

    /// How `leader` refused TLS during this call, if it did and no try may
    /// have been applied.
    fn refused_tls(&self, leader: Target) -> Option<&TlsError> {
        let Target::Leader { addr, .. } = leader else {
            return None;
        };
        if self.uncertain {
            return None;
        }
        self.tls_leaders
            .iter()
            .find(|(refused, _)| *refused == addr)
            .map(|(_, e)| e)
    }
}

/// What one attempt learned.
pub(crate) enum Attempt {
    /// The node served the call.
    Served(ApiResult),
    /// The request itself is bad; retrying will not help.
    Refused(String),
    /// Not the leader.
    Redirect(NotLeader),
    /// The node could not serve now (overloaded, shutting down...): why.
    Unavailable(String),
}

/// A node's "not the leader" answer.
pub(crate) struct NotLeader {
    /// The leader (a [`Target::Leader`]), if the node knows it.
    pub leader: Option<Target>,
    /// The node stopped leading after proposing the request: it may be
    /// applied all the same.
    pub outcome_unknown: bool,
}

/// What `response` means for the call that got it (the wire's one
/// [`Verdict`], read for this client: a node that failed or could not
/// serve now is passed over for the next one).
pub(crate) fn classify(response: ClientResponse) -> Attempt {
    match response.verdict() {
        Verdict::Served(payload) => match ApiResponse::decode(payload.as_slice()) {
            Ok(ApiResponse {
                result: Some(result),
            }) => Attempt::Served(result),
            _ => Attempt::Refused("the node answered something other than a response".into()),
        },
        Verdict::NotLeader {
            leader,
            outcome_unknown,
        } => Attempt::Redirect(NotLeader {
            leader: leader.and_then(|hint| {
                let addr = hint.address.parse().ok()?;
                Some(Target::Leader {
                    addr,
                    node: hint.node_id,
                })
            }),
            outcome_unknown,
        }),
        Verdict::Refused(message) => Attempt::Refused(message),
        // Counted as maybe applied whatever the node says of the outcome
        // (see `call_api`): a node that stops may not know what it dropped.
        Verdict::Retry { code, reason, .. } | Verdict::Failed { code, reason } => {
            Attempt::Unavailable(format!("{code:?}: {reason}"))
        }
    }
}

/// Turns a state-machine error response into `ClientError::Command`.
/// Whether the state machine refused `response`'s request as from a client
/// it does not know (nothing was applied).
fn is_unknown_client(response: &Response) -> bool {
    response
        .as_error()
        .is_some_and(|e| e.error_code() == synod_wire::ErrorCode::UnknownClient)
}

fn command_result(response: Response) -> Result<Response, ClientError> {
    match response.as_error() {
        Some(error) => Err(ClientError::Command {
            code: error.error_code(),
            message: error.message.clone(),
        }),
        None => Ok(response),
    }
}

fn get_kv(response: Response) -> Option<KeyValue> {
    match response.outcome {
        Some(Outcome::Get(g)) => g.kv,
        _ => None,
    }
}

pub(crate) fn unexpected(outcome: Option<Outcome>) -> ClientError {
    ClientError::Protocol(format!("unexpected outcome {outcome:?}"))
}

/// A new exactly-once id, in
/// [`CLIENT_LIBRARY`](synod_wire::client_ids::CLIENT_LIBRARY). Every client
/// of the process draws from one counter, so they never share an id however
/// many each uses (per-client blocks of 65,536 ran into each other's after
/// a client's timeouts used up its block); it starts at a point drawn from
/// the wall clock and the process id, so different processes are unlikely
/// to meet.
fn process_fresh_id() -> u64 {
    static NEXT: std::sync::OnceLock<AtomicU64> = std::sync::OnceLock::new();
    let next = NEXT.get_or_init(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let seed = nanos ^ (u64::from(std::process::id()) << 40);
        // Room for 2^40 ids above the start before the range ends.
        let span = CLIENT_LIBRARY.end - CLIENT_LIBRARY.start - (1 << 40);
        AtomicU64::new(CLIENT_LIBRARY.start + seed % span)
    });
    next.fetch_add(1, Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_of_one_process_never_share_an_exactly_once_id() {
        // One client that used up many ids (timeouts never return theirs),
        // then a second client: no id in common.
        let first: std::collections::HashSet<u64> =
            (0..70_000).map(|_| process_fresh_id()).collect();
        assert_eq!(first.len(), 70_000);
        let second: Vec<u64> = (0..1_000).map(|_| process_fresh_id()).collect();
        assert!(second.iter().all(|id| !first.contains(id)));
        assert!(second.iter().all(|id| CLIENT_LIBRARY.contains(id)));
    }
}
