//! Forwarding to the leader in batches: the key-value calls a follower's
//! Redis connections send the leader at the same time travel together, as
//! one `KvBatchCall` on one QUIC stream, instead of one stream each.
//!
//! One [`Batcher`] per node forwarded to. Calls queue on it; its task takes
//! every call waiting and sends them as one batch, with at most
//! [`BATCHES_IN_FLIGHT`] batches unanswered at once. So batching costs no
//! waiting: an idle link sends a lone call at once, and the calls that
//! arrive while the link is busy go together in the next batch (as the
//! log's thread takes every round waiting into one fsync).
//!
//! Which calls may share a batch is [`batchable`]: the leader serves a
//! batch's calls concurrently and may leave answers out when they do not
//! fit in one frame (the caller then sends those calls alone, see
//! `KvBatchResult`), so a write goes in a batch only if resending it is
//! exactly-once (it names its client and sequence number).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use prost::Message as _;
use synod_net::{ClientResponse, ErrorCode};
use synod_paxos::NodeId;
use synod_wire::limits::MAX_KV_BATCH_CALLS;
use synod_wire::proto::api::{
    api_request::Call, api_response, ApiRequest, ApiResponse, KvBatchCall, KvCall,
};
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::links::NodeLinks;

/// Batches one node may have unanswered at once.
pub const BATCHES_IN_FLIGHT: usize = 4;

/// Most encoded request bytes a call may have to go in a batch; larger
/// ones go alone.
pub const MAX_BATCHED_CALL_BYTES: usize = 64 * 1024;

/// A batch is closed once its calls hold this many request bytes (it may
/// pass it by one call of at most [`MAX_BATCHED_CALL_BYTES`]).
const BATCH_BYTES: usize = 256 * 1024;

/// Calls waiting for a batch, per node; a caller finding the queue full
/// sends its call alone.
const QUEUE_CALLS: usize = 4 * MAX_KV_BATCH_CALLS;

/// True if `call` may travel in a batch: small, and either a read or a
/// write that resending applies once.
pub fn batchable(call: &KvCall, read_only: bool, client_id: u64) -> bool {
    call.request.len() <= MAX_BATCHED_CALL_BYTES && (read_only || client_id != 0)
}

/// Why a forwarded call got no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unanswered {
    /// Nothing carried it: the node could not be reached (the call was
    /// certainly not served).
    #[error("{0}")]
    NotSent(String),
    /// It was sent but the exchange failed or timed out: the call may have
    /// been served.
    #[error("{0}")]
    Lost(String),
    /// Its batch could not answer it (the answers filled their frame first,
    /// or the node serves no batches, or its queue was full): send the call
    /// alone. It may have been served; a write resent under its own client
    /// id and sequence number applies once.
    #[error("its batch could not carry the answer")]
    SendAlone,
}

/// The batchers of every node forwarded to, made on first use.
pub struct Batchers {
    links: Arc<NodeLinks>,
    by_node: Mutex<HashMap<NodeId, Batcher>>,
}

impl Batchers {
    /// Batchers that reach each node through `links`.
    pub fn new(links: Arc<NodeLinks>) -> Batchers {
        Batchers {
            links,
            by_node: Mutex::new(HashMap::new()),
        }
    }

    /// Forwards `call` to node `to` in the next batch and waits for its
    /// answer, giving up at `until`. [`Unanswered::SendAlone`] if the
    /// node's queue is full.
    pub async fn call(
        &self,
        to: NodeId,
        call: KvCall,
        until: Instant,
    ) -> Result<ClientResponse, Unanswered> {
        let queue = self.batcher(to).queue;
        let (reply, answer) = oneshot::channel();
        if queue.try_send(Queued { call, reply }).is_err() {
            return Err(Unanswered::SendAlone);
        }
        match tokio::time::timeout_at(until, answer).await {
            Err(_) => Err(Unanswered::Lost("timed out".into())),
            // The batcher drops a reply only if its runtime is going away.
            Ok(Err(_)) => Err(Unanswered::Lost("the batch was dropped".into())),
            Ok(Ok(answer)) => answer,
        }
    }

    fn batcher(&self, to: NodeId) -> Batcher {
        let mut by_node = self.by_node.lock().expect("batchers lock");
        by_node
            .entry(to)
            .or_insert_with(|| Batcher::start(to, self.links.clone()))
            .clone()
    }
}

/// The queue of one node's batching task (which ends when every clone is
/// dropped).
#[derive(Clone)]
struct Batcher {
    queue: mpsc::Sender<Queued>,
}

/// A call waiting for a batch, and where its answer goes.
struct Queued {
    call: KvCall,
    reply: oneshot::Sender<Result<ClientResponse, Unanswered>>,
}

impl Batcher {
    fn start(to: NodeId, links: Arc<NodeLinks>) -> Batcher {
        let (queue, waiting) = mpsc::channel(QUEUE_CALLS);
        tokio::spawn(gather(to, links, waiting));
        Batcher { queue }
    }
}

/// The batching task of node `to`: waits for a call and a free batch, then
/// sends the calls waiting (within the bounds) as one batch.
async fn gather(to: NodeId, links: Arc<NodeLinks>, mut waiting: mpsc::Receiver<Queued>) {
    let in_flight = Arc::new(Semaphore::new(BATCHES_IN_FLIGHT));
    while let Some(first) = waiting.recv().await {
        let permit = in_flight
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let mut bytes = first.call.request.len();
        let mut batch = vec![first];
        while batch.len() < MAX_KV_BATCH_CALLS && bytes < BATCH_BYTES {
            let Ok(next) = waiting.try_recv() else { break };
            bytes += next.call.request.len();
            batch.push(next);
        }
        tokio::spawn(exchange(to, links.clone(), batch, permit));
    }
}

/// Sends `batch` to node `to` and hands each call its answer.
async fn exchange(
    to: NodeId,
    links: Arc<NodeLinks>,
    batch: Vec<Queued>,
    _permit: OwnedSemaphorePermit,
) {
    let until = Instant::now() + super::backend::ATTEMPT_TIMEOUT;
    let (calls, replies): (Vec<KvCall>, Vec<_>) =
        batch.into_iter().map(|q| (q.call, q.reply)).unzip();
    let call = Call::KvBatch(KvBatchCall { calls });
    let answers = send(&links, to, call, until)
        .await
        .and_then(|response| answers_of(response, replies.len()));
    match answers {
        Err(unanswered) => {
            for reply in replies {
                let _ = reply.send(Err(unanswered.clone()));
            }
        }
        Ok(answers) => {
            let mut answers = answers.into_iter();
            for reply in replies {
                let _ = reply.send(answers.next().unwrap_or(Err(Unanswered::SendAlone)));
            }
        }
    }
}

/// Sends `call` to node `to` through `links` and waits for the answer
/// until `until`; a failed exchange drops the connection (the next call
/// dials anew). One call, alone or a batch, on a stream of its own.
pub async fn send(
    links: &NodeLinks,
    to: NodeId,
    call: Call,
    until: Instant,
) -> Result<ClientResponse, Unanswered> {
    let link = links.get(to, until).await.map_err(Unanswered::NotSent)?;
    let payload = ApiRequest { call: Some(call) }.encode_to_vec();
    match tokio::time::timeout_at(until, link.request(payload)).await {
        Err(_) => Err(Unanswered::Lost("timed out".into())),
        Ok(Err(e)) => {
            links.forget(to);
            Err(Unanswered::Lost(e.to_string()))
        }
        Ok(Ok(response)) => Ok(response),
    }
}

/// The answers a batch's response carries for its `calls` calls: one per
/// answered call (the rest are to be sent alone). A refusal of the whole
/// batch (a node that serves no batches) sends every call alone; another
/// error of the whole batch (not the leader, overloaded) answers each call.
fn answers_of(
    response: ClientResponse,
    calls: usize,
) -> Result<Vec<Result<ClientResponse, Unanswered>>, Unanswered> {
    let Some(payload) = response.payload() else {
        if response.error_code() == Some(ErrorCode::BadRequest) {
            return Err(Unanswered::SendAlone);
        }
        return Ok(vec![Ok(response); calls]);
    };
    let answers = match ApiResponse::decode(payload) {
        Ok(ApiResponse {
            result: Some(api_response::Result::KvBatch(batch)),
        }) => batch.answers,
        _ => {
            return Err(Unanswered::Lost(
                "the node answered with something else".into(),
            ))
        }
    };
    if answers.len() > calls {
        return Err(Unanswered::Lost(format!(
            "{} answers to {calls} calls",
            answers.len()
        )));
    }
    Ok(answers
        .into_iter()
        .map(|answer| {
            ClientResponse::decode(answer.as_slice())
                .map_err(|e| Unanswered::Lost(format!("an undecodable answer: {e}")))
        })
        .collect())
}
