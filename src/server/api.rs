//! The client API service: answers the requests that arrive on a node's
//! client port (key-value calls, status, membership, watch streams,
//! snapshot saves) with the node runtime.

use std::sync::Arc;

use prost::Message as _;
use synod_kvstore::{EventFilter, EventSpace, Request, Snapshot, SnapshotChunk};
use synod_net::certs::CLIENT_NAME_PREFIX;
use synod_net::tls::NODE_NAME_PREFIX;
use synod_net::{ErrorCode, IncomingRequest, Responder, ResponseStream};
use synod_paxos::{Change, NodeId};
use synod_wire::limits::MAX_KV_BATCH_CALLS;
use synod_wire::proto::api::{
    api_request::Call, api_response::Result as ApiResult, member_change_call, ApiRequest,
    ApiResponse, KvBatchCall, KvBatchResult, MemberChangeCall, MemberChangeDone, MemberInfo,
    Members, NodeStatus as WireStatus, SnapshotSaveCall, WatchCall, WatchCompacted, WatchResult,
    WatchSpace,
};
use tokio::sync::{mpsc, Semaphore};

use crate::members::{check_addr, ClientAddrs};
use crate::metrics::{error_kind, ClientMetrics};
use crate::node::{
    NodeError, NodeHandle, PeerInput, PendingAnswer, ReadConsistency, WatchAnswer, MAX_WATCH_WAIT,
};

/// Events a watch answer holds when the client names no limit.
const DEFAULT_WATCH_EVENTS: usize = 1_000;
/// Encoded events a watch answer holds at most (whole revisions, but at
/// least one), well under the client frame limit.
const MAX_WATCH_ANSWER_BYTES: usize = 8 * 1024 * 1024;

/// Snapshot saves (backups) one node streams at once. Each holds a redb
/// read transaction for its whole transfer, and while one lives redb cannot
/// reuse the pages later commits free (the state file grows with the
/// writes meanwhile), so a few at a time; more are answered OVERLOADED.
const MAX_CONCURRENT_SNAPSHOT_SAVES: usize = 2;

/// Most encoded answer bytes one [`KvBatchResult`] carries: its frame's
/// limit less 1 MiB of room for the frame around them.
const MAX_KV_BATCH_ANSWER_BYTES: usize = synod_wire::limits::MAX_RESPONSE_FRAME_BYTES - 1024 * 1024;

/// Answers client requests with the node runtime.
#[derive(Clone)]
pub(super) struct ClientService {
    id: NodeId,
    node: NodeHandle,
    client_addrs: ClientAddrs,
    inbox: mpsc::Sender<PeerInput>,
    metrics: ClientMetrics,
    /// Permits for snapshot saves in flight ([`MAX_CONCURRENT_SNAPSHOT_SAVES`]).
    snapshot_saves: Arc<Semaphore>,
}

impl ClientService {
    /// The service of node `id`, answering with `node`; `inbox` takes the
    /// snapshot chunks peers stream to it.
    pub(super) fn new(
        id: NodeId,
        node: NodeHandle,
        client_addrs: ClientAddrs,
        inbox: mpsc::Sender<PeerInput>,
        metrics: ClientMetrics,
    ) -> ClientService {
        ClientService {
            id,
            node,
            client_addrs,
            inbox,
            metrics,
            snapshot_saves: Arc::new(Semaphore::new(MAX_CONCURRENT_SNAPSHOT_SAVES)),
        }
    }

    /// Serves `request` on its own task.
    pub(super) fn spawn(&self, request: IncomingRequest) {
        let service = self.clone();
        tokio::spawn(async move { service.serve(request).await });
    }

    async fn serve(self, incoming: IncomingRequest) {
        let IncomingRequest {
            request,
            client_name,
            responder,
        } = incoming;
        let call = match ApiRequest::decode(request.payload.as_slice()) {
            Ok(ApiRequest { call: Some(call) }) => call,
            Ok(ApiRequest { call: None }) => {
                responder.respond_error(ErrorCode::BadRequest, "the request names no call");
                return;
            }
            Err(e) => {
                responder.respond_error(ErrorCode::BadRequest, format!("undecodable request: {e}"));
                return;
            }
        };
        let name = match &call {
            Call::Kv(_) => "kv",
            Call::KvBatch(_) => "kv_batch",
            Call::Status(_) => "status",
            Call::Watch(_) => "watch",
            Call::SnapshotChunk(_) => "snapshot_chunk",
            Call::SnapshotSave(_) => "snapshot_save",
            Call::Members(_) => "members",
            Call::MemberChange(_) => "member_change",
        };
        self.metrics.api_in_progress().inc();
        let result = match call {
            Call::Watch(watch) if watch.stream => {
                // A stream of answers too, which counts itself.
                self.watch_stream(watch, responder).await;
                return;
            }
            Call::SnapshotSave(save) => {
                // A stream of answers, which it sends (or ends with an
                // error) itself.
                self.snapshot_save(client_name.as_deref(), save, responder)
                    .await;
                self.metrics.api_in_progress().dec();
                self.metrics.api_request(name, "streamed");
                return;
            }
            Call::Kv(kv) => self
                .kv(&kv.request, kv.serializable)
                .await
                .map(ApiResult::Kv),
            Call::KvBatch(batch) => self.kv_batch(batch).await.map(ApiResult::KvBatch),
            Call::Status(_) => self.status().await.map(ApiResult::Status),
            Call::Members(_) => self.members().await.map(ApiResult::Members),
            Call::MemberChange(call) => self
                .member_change(call)
                .await
                .map(|()| ApiResult::MemberChange(MemberChangeDone {})),
            Call::Watch(watch) => self.watch(watch).await.map(ApiResult::Watch),
            Call::SnapshotChunk(chunk) => self
                .snapshot_chunk(client_name.as_deref(), &chunk.chunk)
                .await
                .map(|()| ApiResult::Kv(Vec::new())),
        };
        self.metrics.api_in_progress().dec();
        match result {
            Ok(result) => {
                self.metrics.api_request(name, "ok");
                let response = ApiResponse {
                    result: Some(result),
                };
                responder.respond_ok(response.encode_to_vec());
            }
            Err(error) => {
                self.metrics.api_request(name, error_kind(&error));
                responder.respond(self.error_response(error));
            }
        }
    }

    async fn kv(&self, bytes: &[u8], serializable: bool) -> Result<Vec<u8>, NodeError> {
        let response = self.submit_kv(bytes, serializable).await?.answer().await?;
        Ok(response.encode_to_vec())
    }

    /// Hands one key-value call to the core; the answer comes later.
    async fn submit_kv(
        &self,
        bytes: &[u8],
        serializable: bool,
    ) -> Result<PendingAnswer, NodeError> {
        let request = Request::decode_validated(bytes)?;
        if request.op.as_ref().is_some_and(|op| op.is_leader_only()) {
            return Err(NodeError::Invalid(synod_kvstore::RequestError::Malformed(
                "this operation is only proposed by the leader itself".into(),
            )));
        }
        let consistency = if serializable {
            ReadConsistency::Serializable
        } else {
            ReadConsistency::Linearizable
        };
        self.node.submit(request, consistency).await
    }

    /// Serves a [`KvBatchCall`]: every call is handed to the core in order
    /// before any answer is awaited (so that one round of the core takes
    /// them all), then the answers are gathered in order until they fill
    /// [`MAX_KV_BATCH_ANSWER_BYTES`]; the caller sends the calls left
    /// unanswered alone.
    async fn kv_batch(&self, batch: KvBatchCall) -> Result<KvBatchResult, NodeError> {
        if batch.calls.len() > MAX_KV_BATCH_CALLS {
            return Err(NodeError::Invalid(synod_kvstore::RequestError::Malformed(
                format!(
                    "a batch of {} calls; at most {MAX_KV_BATCH_CALLS} are served at once",
                    batch.calls.len()
                ),
            )));
        }
        let mut pending = Vec::with_capacity(batch.calls.len());
        for call in &batch.calls {
            pending.push(self.submit_kv(&call.request, call.serializable).await);
        }
        let mut answers = Vec::with_capacity(pending.len());
        let mut answer_bytes = 0;
        for submitted in pending {
            let answer = match submitted {
                Ok(pending) => pending.answer().await,
                Err(error) => Err(error),
            };
            let response = match answer {
                Ok(response) => {
                    let payload = ApiResponse {
                        result: Some(ApiResult::Kv(response.encode_to_vec())),
                    };
                    synod_net::ClientResponse::ok(0, payload.encode_to_vec())
                }
                Err(error) => self.error_response(error),
            };
            let encoded = response.encode_to_vec();
            answer_bytes += encoded.len();
            if answer_bytes > MAX_KV_BATCH_ANSWER_BYTES {
                break;
            }
            answers.push(encoded);
        }
        Ok(KvBatchResult { answers })
    }

    /// Answers a long-poll [`WatchCall`]: the next events, waiting up to
    /// the call's `wait_ms` for some.
    async fn watch(&self, call: WatchCall) -> Result<WatchResult, NodeError> {
        let (filter, limit) = watch_filter(&call)?;
        let wait = std::time::Duration::from_millis(u64::from(call.wait_ms));
        self.watch_once(&filter, limit, call.from_revision, call.skip, wait)
            .await
    }

    /// Answers a streamed [`WatchCall`] (`stream` set): one [`WatchResult`]
    /// frame per batch of events as this node applies them, each asked of
    /// the node where the previous one ended, until the client goes away,
    /// the node shuts down (the stream then ends with an `UNAVAILABLE`
    /// frame) or the history is compacted past the watcher (a last frame
    /// with `compacted`). Counts the call once, as `streamed`, when the
    /// stream opens.
    ///
    /// Bounded: the next batch is asked for only once the previous frame is
    /// queued, and at most [`synod_net::response_stream::STREAM_QUEUE`] frames wait for a
    /// slow client (plus QUIC's flow-control window). Idle, it waits on the
    /// applied slots as a long poll does (one history read per
    /// [`MAX_WATCH_WAIT`]), and stops as soon as the client goes away.
    async fn watch_stream(&self, call: WatchCall, responder: Responder) {
        let (filter, limit) = match watch_filter(&call) {
            Ok(parsed) => parsed,
            Err(error) => {
                self.metrics.api_in_progress().dec();
                self.metrics.api_request("watch", error_kind(&error));
                responder.respond(self.error_response(error));
                return;
            }
        };
        self.metrics.api_in_progress().dec();
        self.metrics.api_request("watch", "streamed");
        let Some(stream) = responder.respond_stream() else {
            return;
        };
        let (mut from_revision, mut skip) = (call.from_revision, call.skip);
        loop {
            let answer = tokio::select! {
                answer = self.watch_once(&filter, limit, from_revision, skip, MAX_WATCH_WAIT) => answer,
                () = stream.closed() => return,
            };
            let result = match answer {
                Ok(result) => result,
                Err(error) => {
                    // Dropping the stream ends it with UNAVAILABLE: the
                    // watcher goes on at another node.
                    tracing::debug!(node = self.id.0, %error, "watch stream ended");
                    return;
                }
            };
            let last = result.compacted.is_some();
            if !last
                && result.events.is_empty()
                && (result.next_revision, result.next_skip) == (from_revision, skip)
            {
                // The wait ran out and nothing was looked at: nothing to say.
                continue;
            }
            (from_revision, skip) = (result.next_revision, result.next_skip);
            let frame = ApiResponse {
                result: Some(ApiResult::Watch(result)),
            }
            .encode_to_vec();
            if stream.send_payload(frame, !last).await.is_err() || last {
                return;
            }
        }
    }

    /// One watch answer: the events matching `filter` from `from_revision`
    /// on, past the first `skip` of that revision, waiting up to `wait` for
    /// some; cut to the answer's size bound.
    async fn watch_once(
        &self,
        filter: &EventFilter,
        limit: usize,
        from_revision: u64,
        skip: u32,
        wait: std::time::Duration,
    ) -> Result<WatchResult, NodeError> {
        let answer = self
            .node
            .watch(from_revision, filter.clone(), limit, wait)
            .await?;
        Ok(match answer {
            WatchAnswer::Batch(batch) => {
                let mut events = batch.events;
                let skipped = events
                    .iter()
                    .take(skip as usize)
                    .take_while(|e| e.revision == from_revision)
                    .count();
                events.drain(..skipped);
                let fitted = fit_watch_answer(events, batch.next_revision, MAX_WATCH_ANSWER_BYTES);
                let next_skip = if fitted.next_revision == from_revision {
                    // Still in the revision the call skipped into (or not
                    // past it: nothing new yet).
                    skipped as u32 + fitted.next_skip
                } else {
                    fitted.next_skip
                };
                WatchResult {
                    events: fitted.events,
                    next_revision: fitted.next_revision,
                    revision: batch.revision,
                    compacted: None,
                    next_skip,
                }
            }
            WatchAnswer::Compacted {
                compacted_through,
                revision,
            } => WatchResult {
                events: Vec::new(),
                next_revision: from_revision,
                revision,
                compacted: Some(WatchCompacted {
                    compacted_through,
                    revision,
                }),
                next_skip: 0,
            },
        })
    }

    async fn members(&self) -> Result<Members, NodeError> {
        let view = self.node.members().await?;
        Ok(Members {
            leader: view.leader.0,
            commit_index: view.commit_index.0,
            change_in_progress: view.change_in_progress,
            members: view
                .members
                .into_iter()
                .map(|m| MemberInfo {
                    id: m.member.id.0,
                    voter: m.member.voter,
                    peer_addr: m.member.peer_addr,
                    client_addr: m.member.client_addr,
                    commit_index: m.commit_index.0,
                    heard_ms_ago: m.heard_ago.map(|d| d.as_millis() as u64),
                })
                .collect(),
        })
    }

    async fn member_change(&self, call: MemberChangeCall) -> Result<(), NodeError> {
        let refused = |m: &str| NodeError::MembershipRefused(m.to_string());
        let change = match call.change {
            Some(member_change_call::Change::Add(add)) => Change::AddLearner {
                id: NodeId(add.id),
                peer_addr: check_addr(&add.peer_addr).map_err(|e| refused(&e))?,
                client_addr: check_addr(&add.client_addr).map_err(|e| refused(&e))?,
            },
            Some(member_change_call::Change::Promote(id)) => Change::Promote(NodeId(id)),
            Some(member_change_call::Change::Remove(id)) => Change::Remove(NodeId(id)),
            None => return Err(refused("the request names no change")),
        };
        self.node.change_membership(change).await
    }

    async fn status(&self) -> Result<WireStatus, NodeError> {
        let status = self.node.status().await?;
        Ok(WireStatus {
            id: status.id.0,
            role: status.role.name().to_string(),
            ballot: status.ballot.0,
            leader: status.leader.map_or(0, |l| l.0),
            commit_index: status.commit_index.0,
            applied_index: status.applied_index.0,
            revision: status.revision,
            compacted_through: status.compacted_through.0,
        })
    }

    async fn snapshot_chunk(
        &self,
        client_name: Option<&str>,
        bytes: &[u8],
    ) -> Result<(), NodeError> {
        let from = client_name
            .and_then(|name| name.strip_prefix(NODE_NAME_PREFIX))
            .and_then(|id| id.parse().ok())
            .map(NodeId)
            .ok_or_else(|| {
                NodeError::Invalid(synod_kvstore::RequestError::Malformed(
                    "only cluster nodes may send snapshots".into(),
                ))
            })?;
        let chunk = SnapshotChunk::decode(bytes).map_err(|e| {
            NodeError::Invalid(synod_kvstore::RequestError::Malformed(format!(
                "undecodable snapshot chunk: {e}"
            )))
        })?;
        self.inbox
            .send(PeerInput::SnapshotChunk { from, chunk })
            .await
            .map_err(|_| NodeError::ShuttingDown)
    }

    /// Answers a [`SnapshotSaveCall`] with a stream of the snapshot's
    /// chunks, read on a blocking thread (redb reads) and sent as the client
    /// takes them (QUIC flow control): memory stays at a few chunks plus the
    /// connection's flow-control window, whatever the state's size.
    async fn snapshot_save(
        &self,
        client_name: Option<&str>,
        call: SnapshotSaveCall,
        responder: Responder,
    ) {
        if !client_name.is_some_and(|name| name.starts_with(CLIENT_NAME_PREFIX)) {
            responder.respond_error(
                ErrorCode::BadRequest,
                "only a client certificate (client-<name>) may save a snapshot",
            );
            return;
        }
        let Ok(permit) = self.snapshot_saves.clone().try_acquire_owned() else {
            responder.respond_error(
                ErrorCode::Overloaded,
                format!(
                    "{MAX_CONCURRENT_SNAPSHOT_SAVES} snapshot saves are in progress on this \
                     node; retry later"
                ),
            );
            return;
        };
        let consistency = if call.serializable {
            ReadConsistency::Serializable
        } else {
            ReadConsistency::Linearizable
        };
        let snapshot = match self.node.snapshot(consistency).await {
            Ok(snapshot) => snapshot,
            Err(error) => {
                responder.respond(self.error_response(error));
                return;
            }
        };
        let Some(stream) = responder.respond_stream() else {
            return;
        };
        let span = tracing::info_span!("snapshot_save", node = self.id.0);
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            span.in_scope(|| stream_backup(snapshot, stream));
        });
    }

    fn error_response(&self, error: NodeError) -> synod_net::ClientResponse {
        let (code, hint) = match &error {
            NodeError::NotLeader { leader } | NodeError::SteppedDown { leader } => (
                ErrorCode::NotLeader,
                leader.map(|l| synod_net::LeaderHint {
                    node_id: l.0,
                    address: self
                        .client_addrs
                        .get(l)
                        .map(|a| a.to_string())
                        .unwrap_or_default(),
                }),
            ),
            NodeError::Busy => (ErrorCode::Overloaded, None),
            NodeError::Invalid(_) | NodeError::MembershipRefused(_) => {
                (ErrorCode::BadRequest, None)
            }
            NodeError::ShuttingDown => (ErrorCode::Unavailable, None),
            NodeError::Storage(_) => (ErrorCode::Internal, None),
        };
        let mut response = synod_net::ClientResponse::error(0, code, error.to_string());
        if let Some(synod_net::Outcome::Error(e)) = response.outcome.as_mut() {
            e.leader_hint = hint;
            e.outcome_unknown = matches!(error, NodeError::SteppedDown { .. });
        }
        response
    }
}

/// Sends every chunk of `snapshot` down `stream`, the last one ending it;
/// stops when the client goes away. Blocks (redb reads, waiting for the
/// client): run it on a blocking thread.
fn stream_backup(snapshot: Snapshot, stream: ResponseStream) {
    let started = std::time::Instant::now();
    let (applied_index, revision) = (snapshot.applied_index(), snapshot.revision());
    let mut bytes = 0u64;
    for chunk in snapshot {
        let chunk = match chunk {
            Ok(chunk) => chunk,
            Err(e) => {
                tracing::warn!(error = %e, "snapshot save failed reading the state machine");
                stream.blocking_send_error(
                    ErrorCode::Internal,
                    format!("reading the snapshot failed: {e}"),
                );
                return;
            }
        };
        let last = chunk.last;
        let frame = ApiResponse {
            result: Some(ApiResult::SnapshotChunk(chunk.encode_to_vec())),
        }
        .encode_to_vec();
        bytes += frame.len() as u64;
        if stream.blocking_send_payload(frame, !last).is_err() {
            tracing::info!(applied_index, "snapshot save abandoned by the client");
            return;
        }
    }
    tracing::info!(
        applied_index,
        revision,
        bytes,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "snapshot saved by a client"
    );
}

/// What a [`WatchCall`] watches: its filter, checked, and how many events
/// an answer holds.
fn watch_filter(call: &WatchCall) -> Result<(EventFilter, usize), NodeError> {
    let space = match WatchSpace::try_from(call.space) {
        Ok(WatchSpace::Keys) => EventSpace::Keys,
        Ok(WatchSpace::Locks) => EventSpace::Locks,
        Ok(WatchSpace::Elections) => EventSpace::Elections,
        Err(_) => {
            return Err(NodeError::Invalid(
                synod_kvstore::RequestError::InvalidEnum {
                    field: "watch space",
                    value: call.space,
                },
            ))
        }
    };
    if call.key.len() > synod_wire::limits::MAX_KEY_BYTES {
        return Err(NodeError::Invalid(
            synod_kvstore::RequestError::KeyTooLarge {
                size_bytes: call.key.len(),
                limit_bytes: synod_wire::limits::MAX_KEY_BYTES,
            },
        ));
    }
    let filter = EventFilter {
        space,
        key: call.key.clone(),
        prefix: call.prefix,
    };
    let limit = match call.limit {
        0 => DEFAULT_WATCH_EVENTS,
        n => n as usize,
    };
    Ok((filter, limit))
}

/// A watch answer's events and where the watcher continues.
struct FittedWatchAnswer {
    /// The encoded events.
    events: Vec<Vec<u8>>,
    /// The revision to ask from next.
    next_revision: u64,
    /// Events of `next_revision` this answer holds (0: none).
    next_skip: u32,
}

/// Encodes `events` (in revision order) within `max_bytes`: whole
/// revisions while they fit, and at least one event. A first revision that
/// does not fit is cut after the events that do (at least one), and the
/// watcher continues inside it (`next_skip`), so no revision is too large
/// to watch.
fn fit_watch_answer(
    events: Vec<synod_kvstore::Event>,
    next_revision: u64,
    max_bytes: usize,
) -> FittedWatchAnswer {
    let mut encoded: Vec<Vec<u8>> = Vec::with_capacity(events.len());
    let mut size_bytes = 0;
    let mut start = 0;
    while start < events.len() {
        let revision = events[start].revision;
        let end = events[start..]
            .iter()
            .position(|e| e.revision != revision)
            .map_or(events.len(), |n| start + n);
        let group: Vec<Vec<u8>> = events[start..end]
            .iter()
            .map(|e| e.encode_to_vec())
            .collect();
        let group_bytes: usize = group.iter().map(Vec::len).sum();
        if size_bytes + group_bytes > max_bytes {
            if !encoded.is_empty() {
                return FittedWatchAnswer {
                    events: encoded,
                    next_revision: revision,
                    next_skip: 0,
                };
            }
            // The first revision alone is too large: the events that fit.
            for event in group {
                if !encoded.is_empty() && size_bytes + event.len() > max_bytes {
                    break;
                }
                size_bytes += event.len();
                encoded.push(event);
            }
            let taken = encoded.len();
            if taken == end - start {
                // One event, larger than the bound: alone.
                return FittedWatchAnswer {
                    events: encoded,
                    next_revision: events.get(end).map_or(next_revision, |e| e.revision),
                    next_skip: 0,
                };
            }
            return FittedWatchAnswer {
                events: encoded,
                next_revision: revision,
                next_skip: taken as u32,
            };
        }
        size_bytes += group_bytes;
        encoded.extend(group);
        start = end;
    }
    FittedWatchAnswer {
        events: encoded,
        next_revision,
        next_skip: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(revision: u64, value_bytes: usize) -> synod_kvstore::Event {
        synod_kvstore::Event {
            revision,
            kind: synod_kvstore::EventKind::Put as i32,
            key: b"k".to_vec(),
            prev_value: None,
            value: Some(vec![b'v'; value_bytes]),
            session: 0,
            prev_session: 0,
        }
    }

    #[test]
    fn a_revision_too_large_for_one_watch_answer_is_cut_and_continued() {
        // Revision 5 holds four 100-byte events; answers hold 250 bytes.
        let events: Vec<_> = (0..4)
            .map(|_| event(5, 100))
            .chain([event(6, 10)])
            .collect();
        let first = fit_watch_answer(events.clone(), 7, 250);
        assert_eq!(first.events.len(), 2);
        assert_eq!((first.next_revision, first.next_skip), (5, 2));
        // The rest of revision 5 and revision 6 fit the next answer.
        let rest = fit_watch_answer(events[2..].to_vec(), 7, 250);
        assert_eq!(
            (rest.events.len(), rest.next_revision, rest.next_skip),
            (3, 7, 0)
        );
        // Whole revisions that fit come whole, and the answer stops before
        // one that does not.
        let stop = fit_watch_answer(vec![event(4, 10), event(5, 300)], 7, 250);
        assert_eq!(
            (stop.events.len(), stop.next_revision, stop.next_skip),
            (1, 5, 0)
        );
        // One event larger than the bound comes alone, and the watcher
        // moves past its revision.
        let huge = fit_watch_answer(vec![event(5, 1000), event(6, 10)], 7, 250);
        assert_eq!(
            (huge.events.len(), huge.next_revision, huge.next_skip),
            (1, 6, 0)
        );
    }
}
