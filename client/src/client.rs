//! The client: connections, leader tracking, retries, and the key-value
//! calls.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prost::Message as _;
use synod_net::tls::TlsIdentity;
use synod_net::{ClientConnection, ClientResponse, ErrorCode, Outcome as FrameOutcome};
use synod_wire::proto::api::api_response::Result as ApiResult;
use synod_wire::proto::api::{api_request::Call, ApiRequest, ApiResponse, KvCall};
use synod_wire::{DeleteRange, Get, KeyValue, Op, Outcome, Request, Response, Scan};
use tokio::time::Instant;

use crate::error::ClientError;
use crate::options::WriteOptions;

/// How a [`Client`] reaches the cluster.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Client addresses of the nodes (any subset; the leader is found).
    pub endpoints: Vec<SocketAddr>,
    /// The cluster CA and this client's certificate and key.
    pub tls: TlsIdentity,
    /// How long one call may take, retries included.
    pub timeout: Duration,
}

impl ClientConfig {
    /// The nodes at `endpoints`, with the CA and client certificate in PEM
    /// files, and a 10 s timeout.
    pub fn new(
        endpoints: Vec<SocketAddr>,
        ca: &Path,
        cert: &Path,
        key: &Path,
    ) -> Result<ClientConfig, ClientError> {
        let tls = TlsIdentity::from_pem_files(ca, cert, key)
            .map_err(|e| ClientError::Setup(e.to_string()))?;
        Ok(ClientConfig {
            endpoints,
            tls,
            timeout: Duration::from_secs(10),
        })
    }

    /// The cluster `synod dev --data-dir DIR --base-port P` runs.
    pub fn from_dev_cluster(
        dir: impl AsRef<Path>,
        base_port: u16,
    ) -> Result<ClientConfig, ClientError> {
        let certs = dir.as_ref().join("certs");
        let endpoints = (0..3)
            .map(|i| SocketAddr::from(([127, 0, 0, 1], base_port + 10 * i + 1)))
            .collect();
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
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("endpoints", &self.inner.config.endpoints)
            .field("leader", &*self.inner.leader.lock().expect("leader lock"))
            .finish_non_exhaustive()
    }
}

struct Inner {
    config: ClientConfig,
    connections: Mutex<HashMap<SocketAddr, Arc<ClientConnection>>>,
    /// One gate per node, held while dialing it: many tasks that find no
    /// connection at once wait for one handshake instead of each making
    /// their own (256 concurrent mutual-TLS handshakes took a second).
    dialing: Mutex<HashMap<SocketAddr, Arc<tokio::sync::Mutex<()>>>>,
    /// Where the leader was last seen.
    leader: Mutex<Option<SocketAddr>>,
    /// Exactly-once identities not in use by a call: `(client id, next
    /// seq)`. The state machine remembers one request per client id, so
    /// every concurrent write borrows its own id.
    idle_ids: Mutex<Vec<(u64, u64)>>,
    /// The endpoint calls try first while the leader is unknown; moved on
    /// past a node that fails, so concurrent calls do not each wait for
    /// the same dead node.
    cursor: AtomicUsize,
}

/// The request a write is sending, shared with the undo of an abandoned
/// wait (see `UndoOnDrop`), which must not overtake it.
pub(crate) type InFlight = Arc<Mutex<Option<Request>>>;

/// Pause between attempts when no node could serve.
const RETRY_PAUSE: Duration = Duration::from_millis(50);
/// Longest a single attempt waits for its node.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);

impl Client {
    /// A client for the cluster in `config`. Connects lazily; fails only on
    /// a configuration that cannot work.
    pub async fn connect(config: ClientConfig) -> Result<Client, ClientError> {
        if config.endpoints.is_empty() {
            return Err(ClientError::Setup("no endpoints given".into()));
        }
        Ok(Client {
            inner: Arc::new(Inner {
                config,
                connections: Mutex::new(HashMap::new()),
                dialing: Mutex::new(HashMap::new()),
                leader: Mutex::new(None),
                idle_ids: Mutex::new(Vec::new()),
                cursor: AtomicUsize::new(0),
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

    /// Up to `limit` keys starting with `prefix`, in key order, linearizably.
    pub async fn scan_prefix(
        &self,
        prefix: &[u8],
        limit: u32,
    ) -> Result<Vec<KeyValue>, ClientError> {
        let op = Op::Scan(Scan {
            start: Vec::new(),
            end: Vec::new(),
            prefix: prefix.to_vec(),
            limit,
            keys_only: false,
        });
        match self.read(op, false).await?.outcome {
            Some(Outcome::Scan(s)) => Ok(s.kvs),
            other => Err(unexpected(other)),
        }
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
            Err(ClientError::Timeout) => false,
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
        match self.call_api(call, timeout, Duration::ZERO).await? {
            ApiResult::Kv(bytes) => Response::decode(bytes.as_slice())
                .map_err(|e| ClientError::Protocol(format!("undecodable response: {e}"))),
            other => Err(ClientError::Protocol(format!(
                "a key-value call was answered with {other:?}"
            ))),
        }
    }

    /// Sends `call` until a node serves it or `timeout` (plus `wait`)
    /// passes: to the known leader first, following redirects, then around
    /// the endpoints. `wait` is how long the node may hold the call before
    /// answering (a long poll); each attempt gets that much longer.
    pub(crate) async fn call_api(
        &self,
        call: Call,
        timeout: Duration,
        wait: Duration,
    ) -> Result<ApiResult, ClientError> {
        let payload = ApiRequest { call: Some(call) }.encode_to_vec();
        let deadline = Instant::now() + timeout + wait;
        let endpoints = &self.inner.config.endpoints;
        loop {
            let cursor = self.inner.cursor.load(Ordering::Relaxed);
            let target = self
                .inner
                .leader
                .lock()
                .expect("leader lock")
                .unwrap_or(endpoints[cursor % endpoints.len()]);
            let attempt = tokio::time::timeout_at(
                deadline.min(Instant::now() + ATTEMPT_TIMEOUT + wait),
                self.attempt(target, payload.clone()),
            )
            .await;
            match attempt {
                Ok(Ok(Attempt::Served(response))) => return Ok(response),
                Ok(Ok(Attempt::Refused(message))) => return Err(ClientError::BadRequest(message)),
                Ok(Ok(Attempt::Redirect(Some(leader)))) => {
                    *self.inner.leader.lock().expect("leader lock") = Some(leader);
                    continue;
                }
                Ok(Ok(Attempt::Redirect(None))) | Ok(Err(())) | Err(_) => {
                    self.forget(target).await;
                    if endpoints[cursor % endpoints.len()] == target {
                        let next = cursor.wrapping_add(1);
                        let _ = self.inner.cursor.compare_exchange(
                            cursor,
                            next,
                            Ordering::Relaxed,
                            Ordering::Relaxed,
                        );
                    }
                }
            }
            if Instant::now() + RETRY_PAUSE >= deadline {
                return Err(ClientError::Timeout);
            }
            tokio::time::sleep(RETRY_PAUSE).await;
        }
    }

    /// One try at one node.
    async fn attempt(&self, target: SocketAddr, payload: Vec<u8>) -> Result<Attempt, ()> {
        let connection = self.connection(target).await.map_err(|_| ())?;
        let response = connection.request(payload).await.map_err(|_| ())?;
        Ok(classify(response))
    }

    async fn connection(&self, target: SocketAddr) -> Result<Arc<ClientConnection>, ClientError> {
        if let Some(existing) = self.existing_connection(target) {
            return Ok(existing);
        }
        // Dial under this node's gate only: a node that does not answer
        // must not hold up calls to the others.
        let gate = self
            .inner
            .dialing
            .lock()
            .expect("dialing lock")
            .entry(target)
            .or_default()
            .clone();
        let _dialing = gate.lock().await;
        if let Some(dialed_meanwhile) = self.existing_connection(target) {
            return Ok(dialed_meanwhile);
        }
        let fresh = Arc::new(
            ClientConnection::connect(target, &self.inner.config.tls)
                .await
                .map_err(|e| ClientError::Setup(e.to_string()))?,
        );
        self.inner
            .connections
            .lock()
            .expect("connections lock")
            .insert(target, fresh.clone());
        Ok(fresh)
    }

    fn existing_connection(&self, target: SocketAddr) -> Option<Arc<ClientConnection>> {
        self.inner
            .connections
            .lock()
            .expect("connections lock")
            .get(&target)
            .cloned()
    }

    /// Drops a node that failed us, so the next try reconnects or goes
    /// elsewhere.
    async fn forget(&self, target: SocketAddr) {
        self.inner
            .connections
            .lock()
            .expect("connections lock")
            .remove(&target);
        let mut leader = self.inner.leader.lock().expect("leader lock");
        if *leader == Some(target) {
            *leader = None;
        }
    }
}

/// What one attempt learned.
enum Attempt {
    /// The node served the call.
    Served(ApiResult),
    /// The request itself is bad; retrying will not help.
    Refused(String),
    /// Not the leader; the leader's address, if the node knows it.
    Redirect(Option<SocketAddr>),
}

fn classify(response: ClientResponse) -> Attempt {
    match response.outcome {
        Some(FrameOutcome::Payload(payload)) => match ApiResponse::decode(payload.as_slice()) {
            Ok(ApiResponse {
                result: Some(result),
            }) => Attempt::Served(result),
            _ => Attempt::Refused("the node answered something other than a response".into()),
        },
        Some(FrameOutcome::Error(error)) => match error.code() {
            ErrorCode::NotLeader => {
                Attempt::Redirect(error.leader_hint.and_then(|hint| hint.address.parse().ok()))
            }
            ErrorCode::BadRequest | ErrorCode::TooLarge => Attempt::Refused(error.message),
            _ => Attempt::Redirect(None),
        },
        None => Attempt::Redirect(None),
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

/// A new exactly-once id. Every client of the process draws from one
/// counter, so they never share an id however many each uses (per-client
/// blocks of 65,536 ran into each other's after a client's timeouts used
/// up its block); it starts at a point drawn from the wall clock and the
/// process id, so different processes are unlikely to meet, and stays
/// below 2^62, so it never meets the Redis endpoint's connection ids (bit 63
/// set, see `synod::redis::backend::ClientIds`).
fn process_fresh_id() -> u64 {
    static NEXT: std::sync::OnceLock<AtomicU64> = std::sync::OnceLock::new();
    let next = NEXT.get_or_init(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let start = (nanos ^ (u64::from(std::process::id()) << 40)) & (u64::MAX >> 2);
        AtomicU64::new(start.max(1 << 16))
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
        assert!(second.iter().all(|id| *id != 0 && *id < 1 << 62));
    }
}
