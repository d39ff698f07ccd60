//! How the Redis endpoint reaches the state machine from any node: the
//! local core first (it serves every linearizable read it can, and every
//! request when this node leads), otherwise the node it names as leader,
//! through that node's client service over QUIC (in batches with the other
//! calls forwarded at the same time, see `forward`), retried across leader
//! changes under the same `(client_id, seq)` so that a write applies once.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prost::Message as _;
use synod_kvstore::{Request, Response};
use synod_net::tls::TlsIdentity;
use synod_paxos::NodeId;
use synod_wire::client_ids::REDIS_CONNECTIONS;
use synod_wire::proto::api::{api_request::Call, api_response, ApiResponse, KvCall};
use synod_wire::proto::Verdict;
use synod_wire::retry::Backoff;
use tokio::time::Instant;

use super::forward::{batchable, send, Batchers, Unanswered};
use super::links::NodeLinks;
use crate::members::ClientAddrs;
use crate::node::{NodeError, NodeHandle, NodeStatus, ReadConsistency};

/// How long one attempt (local or forwarded) may take before it is
/// abandoned and the request retried (within the call's deadline).
pub(super) const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a request is retried in all, by default, before the caller is
/// told the cluster is unavailable: below the 2 to 3 s timeouts common
/// Redis clients use, so that they hear the reason rather than time out.
pub const DEFAULT_CALL_DEADLINE: Duration = Duration::from_millis(1_500);

/// Why a request could not be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The request breaks a limit or is malformed; retrying will not help.
    #[error("{0}")]
    Invalid(String),
    /// No leader took the request in time, and it was certainly not
    /// applied: retrying it as a new request is safe.
    #[error("no leader answered in time ({0}); the command was not applied")]
    Unavailable(String),
    /// A write reached a leader but no answer came in time: it may or may
    /// not have been applied (and may still be). Retrying it as a new
    /// request could apply it twice.
    #[error("no answer in time ({0}); the write may or may not have been applied")]
    Uncertain(String),
    /// This node is stopping.
    #[error("the node is shutting down")]
    ShuttingDown,
    /// A node failed in a way that is a bug or a broken disk.
    #[error("internal error: {0}")]
    Internal(String),
}

/// What one attempt at one node gave.
enum Attempt {
    Done(Response),
    /// Not the leader; try the named node (or wait for an election).
    Redirect(Option<NodeId>),
    /// Try again after a pause.
    Retry(String),
    Fail(CallError),
}

/// Whether an attempt that did not complete may have been applied (only
/// writes can be): after it, giving up is [`CallError::Uncertain`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reached {
    /// Certainly not proposed (refused, or never sent).
    No,
    /// Maybe proposed (sent and not answered, or answered "stepped down").
    Maybe,
}

/// Serves requests from any node: locally at the leader, forwarded to the
/// leader otherwise. Cheap to share (`Arc`); connections to other nodes are
/// opened on first use and kept, one per node.
pub struct Backend {
    node: NodeHandle,
    me: NodeId,
    client_addrs: ClientAddrs,
    tls: TlsIdentity,
    links: Arc<NodeLinks>,
    /// Batches the calls forwarded to each node.
    batchers: Batchers,
    /// How long one call is retried in all.
    deadline: Duration,
}

impl Backend {
    /// A backend for node `me`, which forwards to the other nodes' client
    /// addresses with its own certificate, retrying each call for up to
    /// `deadline`.
    pub fn new(
        node: NodeHandle,
        me: NodeId,
        client_addrs: ClientAddrs,
        tls: TlsIdentity,
        deadline: Duration,
    ) -> Backend {
        let links = Arc::new(NodeLinks::new(client_addrs.clone(), tls.clone()));
        Backend {
            node,
            me,
            batchers: Batchers::new(links.clone()),
            links,
            client_addrs,
            tls,
            deadline,
        }
    }

    /// This node's id.
    pub fn node_id(&self) -> NodeId {
        self.me
    }

    /// This node's role, ballot and indexes.
    pub async fn status(&self) -> Result<NodeStatus, CallError> {
        self.node
            .status()
            .await
            .map_err(|_| CallError::ShuttingDown)
    }

    /// A client of the cluster for the calls only the leader serves and
    /// the Redis endpoint does not forward itself (membership): it finds
    /// the leader among the known members and follows redirects.
    pub async fn cluster_client(&self) -> Result<synod_client::Client, CallError> {
        let mut endpoints: Vec<std::net::SocketAddr> =
            self.client_addrs.all().into_values().collect();
        endpoints.sort();
        let config = synod_client::ClientConfig::from_addrs(endpoints, self.tls.clone())
            .timeout(self.deadline);
        synod_client::Client::connect(config)
            .await
            .map_err(|e| CallError::Internal(e.to_string()))
    }

    /// Serves `request`: a write through the leader's log, a read
    /// linearizably at this node if it can (or as `consistency` says),
    /// else at the leader. Retries on
    /// leader changes, overload and lost connections until the deadline,
    /// always with the same request, so the state machine's exactly-once
    /// table turns retries of a write into one application. A response
    /// carrying a state-machine error is `Ok`. Giving up is
    /// [`CallError::Unavailable`] if no attempt may have been applied,
    /// [`CallError::Uncertain`] if one may.
    pub async fn call(
        &self,
        request: &Request,
        consistency: ReadConsistency,
    ) -> Result<Response, CallError> {
        let deadline = Instant::now() + self.deadline;
        let is_write = !request.op.as_ref().is_some_and(|op| op.is_read_only());
        let mut reached = Reached::No;
        let mut target = self.me;
        let mut backoff = Backoff::new();
        let mut redirects_without_pause = 0;
        loop {
            let attempt = if target == self.me {
                self.local(request, consistency, deadline, &mut reached)
                    .await
            } else {
                self.forward(target, request, consistency, deadline, &mut reached)
                    .await
            };
            let reason = match attempt {
                Attempt::Done(response) => return Ok(response),
                // The node may have proposed the write before it stopped.
                Attempt::Fail(CallError::ShuttingDown) if is_write => {
                    return Err(CallError::Uncertain("the node is shutting down".into()))
                }
                Attempt::Fail(error) => return Err(error),
                Attempt::Redirect(Some(leader))
                    if leader != target && redirects_without_pause < 2 =>
                {
                    redirects_without_pause += 1;
                    target = leader;
                    continue;
                }
                Attempt::Redirect(leader) => {
                    target = leader.unwrap_or(self.me);
                    "no leader known".to_string()
                }
                Attempt::Retry(reason) => {
                    target = self.me;
                    reason
                }
            };
            redirects_without_pause = 0;
            let pause = backoff.pause();
            if Instant::now() + pause > deadline {
                return Err(if is_write && reached == Reached::Maybe {
                    CallError::Uncertain(reason)
                } else {
                    CallError::Unavailable(reason)
                });
            }
            tokio::time::sleep(pause).await;
        }
    }

    async fn local(
        &self,
        request: &Request,
        consistency: ReadConsistency,
        deadline: Instant,
        reached: &mut Reached,
    ) -> Attempt {
        let call = self.node.request(request.clone(), consistency);
        match tokio::time::timeout_at(attempt_deadline(deadline), call).await {
            Err(_) => {
                *reached = Reached::Maybe;
                Attempt::Retry("timed out".into())
            }
            Ok(Ok(response)) => Attempt::Done(response),
            Ok(Err(NodeError::NotLeader { leader })) => {
                Attempt::Redirect(leader.filter(|l| *l != self.me))
            }
            Ok(Err(NodeError::SteppedDown { leader })) => {
                *reached = Reached::Maybe;
                Attempt::Redirect(leader.filter(|l| *l != self.me))
            }
            Ok(Err(NodeError::Busy)) => Attempt::Retry("busy".into()),
            Ok(Err(NodeError::Invalid(e))) => Attempt::Fail(CallError::Invalid(e.to_string())),
            Ok(Err(NodeError::MembershipRefused(e))) => Attempt::Fail(CallError::Invalid(e)),
            Ok(Err(NodeError::ShuttingDown)) => Attempt::Fail(CallError::ShuttingDown),
            Ok(Err(NodeError::Storage(e))) => Attempt::Fail(CallError::Internal(e)),
        }
    }

    async fn forward(
        &self,
        to: NodeId,
        request: &Request,
        consistency: ReadConsistency,
        deadline: Instant,
        reached: &mut Reached,
    ) -> Attempt {
        let until = attempt_deadline(deadline);
        let call = kv_call(request, consistency);
        let read_only = request.op.as_ref().is_some_and(|op| op.is_read_only());
        let answer = if batchable(&call, read_only, request.client_id) {
            match self.batchers.call(to, call, until).await {
                Err(Unanswered::SendAlone) => {
                    let alone = Call::Kv(kv_call(request, consistency));
                    send(&self.links, to, alone, until).await
                }
                answer => answer,
            }
        } else {
            send(&self.links, to, Call::Kv(call), until).await
        };
        let response = match answer {
            Ok(response) => response,
            Err(Unanswered::NotSent(reason)) => return Attempt::Retry(reason),
            Err(lost) => {
                // From the sending on, the request may have reached the leader.
                *reached = Reached::Maybe;
                return Attempt::Retry(format!("node {}: {lost}", to.0));
            }
        };
        match response.verdict() {
            Verdict::Served(bytes) => decode_kv(&bytes),
            Verdict::NotLeader {
                leader,
                outcome_unknown,
            } => {
                if outcome_unknown {
                    *reached = Reached::Maybe;
                }
                Attempt::Redirect(
                    leader
                        .map(|hint| NodeId(hint.node_id))
                        .filter(|leader| *leader != to),
                )
            }
            Verdict::Retry {
                reason,
                outcome_unknown,
                ..
            } => {
                if outcome_unknown {
                    *reached = Reached::Maybe;
                }
                Attempt::Retry(reason)
            }
            Verdict::Refused(message) => Attempt::Fail(CallError::Invalid(message)),
            Verdict::Failed { reason, .. } => Attempt::Fail(CallError::Internal(reason)),
        }
    }
}

/// `request` as the leader's client service takes it.
fn kv_call(request: &Request, consistency: ReadConsistency) -> KvCall {
    KvCall {
        request: request.encode_to_vec(),
        serializable: consistency == ReadConsistency::Serializable,
    }
}

/// When one attempt must end: [`ATTEMPT_TIMEOUT`] from now, or the call's
/// `deadline` if sooner.
fn attempt_deadline(deadline: Instant) -> Instant {
    (Instant::now() + ATTEMPT_TIMEOUT).min(deadline)
}

fn decode_kv(bytes: &[u8]) -> Attempt {
    let result = ApiResponse::decode(bytes)
        .map_err(|e| e.to_string())
        .and_then(|response| match response.result {
            Some(api_response::Result::Kv(kv)) => {
                Response::decode(kv.as_slice()).map_err(|e| e.to_string())
            }
            _ => Err("the leader answered with something else".into()),
        });
    match result {
        Ok(response) => Attempt::Done(response),
        Err(e) => Attempt::Fail(CallError::Internal(format!("undecodable answer: {e}"))),
    }
}

/// Hands out the exactly-once client ids of Redis connections.
///
/// Layout (within [`REDIS_CONNECTIONS`], see `synod_wire::client_ids`):
/// bit 63 set, bits 62–52 the node id modulo 2048, bits 51–0 a
/// counter that starts at the node's start time in microseconds since
/// 2024-01-01 UTC and never falls behind the clock (each id is
/// `max(previous + 1, now)`), enough for 142 years. A restarted node
/// therefore starts above every id its previous run handed out (unless
/// that run averaged more than one connection per microsecond, or the
/// clock went backwards across the restart), and two nodes differ in the
/// node bits. No randomness is involved.
pub struct ClientIds {
    node_bits: u64,
    last: AtomicU64,
}

/// 2024-01-01T00:00:00Z in seconds since the Unix epoch.
const ID_EPOCH_UNIX_SECS: u64 = 1_704_067_200;
const COUNTER_BITS: u32 = 52;
const COUNTER_MASK: u64 = (1 << COUNTER_BITS) - 1;

impl ClientIds {
    /// The allocator of node `node`.
    pub fn new(node: NodeId) -> ClientIds {
        ClientIds {
            node_bits: REDIS_CONNECTIONS.start() | ((u64::from(node.0) & 0x7FF) << COUNTER_BITS),
            last: AtomicU64::new(0),
        }
    }

    fn now_micros() -> u64 {
        let since_unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        (since_unix.as_micros() as u64).saturating_sub(ID_EPOCH_UNIX_SECS * 1_000_000)
    }

    /// A new, never used client id.
    pub fn next(&self) -> u64 {
        let now = Self::now_micros() & COUNTER_MASK;
        let previous = self
            .last
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |last| {
                Some(now.max(last + 1) & COUNTER_MASK)
            })
            .unwrap_or_default();
        let counter = now.max(previous + 1) & COUNTER_MASK;
        self.node_bits | counter
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids_are_unique_increasing_and_carry_the_node() {
        let ids = ClientIds::new(NodeId(3));
        let a: Vec<u64> = (0..10_000).map(|_| ids.next()).collect();
        assert!(a.windows(2).all(|w| w[0] < w[1]));
        assert!(a
            .iter()
            .all(|id| REDIS_CONNECTIONS.contains(id) && (id >> 52) & 0x7FF == 3));
        let other = ClientIds::new(NodeId(4)).next();
        assert!(!a.contains(&other));
    }
}
