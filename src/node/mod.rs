//! The node runtime: the sans-IO [`Node`] (consensus core, state machine,
//! leader clocks, waiting writes and reads, compaction, snapshot install)
//! and its tokio driver, one task that owns the node and talks to
//! everything else through bounded channels. The simulator drives the same
//! `Node`.
//!
//! ```text
//! peer inbox ──┐
//! client calls ┼─> core task: Node inputs ─> round: send, records ─> apply ─> answer
//! tick ────────┘                                  │
//!              log thread: fsync rounds in order ─┴─> core: Node::log_durable, send what waited
//! ```
//!
//! A client task hands its request to the core task with a oneshot for the
//! answer; the node answers writes when their slot is applied and reads
//! once the Paxos core releases them (at the leader: lease or ReadIndex; at
//! a follower: once it applied through the read index the leader granted),
//! from the state right after applying.
//!
//! While the node leads, the core also drives the leader's duties
//! (`leader_duties`): the session clock (session expiry, lock-delay ends,
//! TTL checkpoints; `session_timer`) and the key expiry clock (deleting keys
//! whose TTL ran out, checkpointing their remaining TTLs; reads never show a
//! key past its deadline; `expiry_timer`),
//! and every applied slot's watch events go to waiting watchers
//! ([`NodeHandle::watch`]).

mod core_task;
mod deferred_apply;
mod expiry_timer;
mod held_records;
mod leader_duties;
mod leadership;
mod log_writer;
mod machine;
mod session_timer;
mod watch;

use std::sync::Arc;

use synod_kvstore::{EventFilter, Request, RequestError, Response, Snapshot};
use synod_paxos::{Ballot, NodeId, Role, Slot};
use tokio::sync::{broadcast, mpsc, oneshot};

pub use core_task::{spawn_core, spawn_core_with_sessions, CoreSetup, PeerInput, PeerOutbox};
pub use machine::{
    Answer, AppliedSlot, CompactionPolicy, Node, NodeConfig, NodeFailure, Round, RoundOutput,
};
pub use watch::{AppliedEvents, WatchAnswer, MAX_WATCH_WAIT};

/// How many client calls may queue for the core before senders wait.
pub const CLIENT_QUEUE: usize = 4096;
/// How many peer messages may queue for the core before the transport
/// drops them (Paxos tolerates loss; a blocked transport is worse).
pub const PEER_QUEUE: usize = 8192;
/// Most writes waiting for their slot at once on one node.
pub const MAX_WAITING_WRITES: usize = 100_000;

/// Why a request was not served.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum NodeError {
    /// This node cannot serve this (only the leader, or for a read a
    /// follower that knows it); try `leader`.
    #[error("not the leader{}", leader.map(|l| format!("; the leader is node {}", l.0)).unwrap_or_default())]
    NotLeader {
        /// The believed leader.
        leader: Option<NodeId>,
    },
    /// This node stopped leading while the write waited for its slot: it
    /// may still be chosen. Retry under the same `(client_id, seq)` at
    /// `leader`: the write then applies once, and its one result answers.
    #[error("stepped down while the write waited; it may have been applied{}", leader.map(|l| format!("; the leader is node {}", l.0)).unwrap_or_default())]
    SteppedDown {
        /// The believed leader.
        leader: Option<NodeId>,
    },
    /// Too much in flight; retry later.
    #[error("the node is busy; retry later")]
    Busy,
    /// The request is malformed or breaks a limit.
    #[error("invalid request: {0}")]
    Invalid(#[from] RequestError),
    /// The node is stopping.
    #[error("the node is shutting down")]
    ShuttingDown,
    /// The node's storage failed.
    #[error("storage failure: {0}")]
    Storage(String),
    /// A membership change was refused (nothing of it was applied).
    #[error("membership change refused: {0}")]
    MembershipRefused(String),
}

/// One member, as the leader sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberView {
    /// Its id, role and addresses.
    pub member: synod_paxos::Member,
    /// Its commit index as last reported to the leader (the leader's own
    /// for the leader).
    pub commit_index: Slot,
    /// How long ago the leader last heard it; `None` if never.
    pub heard_ago: Option<std::time::Duration>,
}

/// The membership in force, as the leader sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MembersView {
    /// The leader answering.
    pub leader: NodeId,
    /// Its commit index.
    pub commit_index: Slot,
    /// Every member of the newest membership, in id order.
    pub members: Vec<MemberView>,
    /// True while a change is chosen but does not govern yet.
    pub change_in_progress: bool,
}

/// How a read may be served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReadConsistency {
    /// Linearizable: by the leader, under its lease or after a ReadIndex
    /// round; or by a follower, once it applied through a read index the
    /// leader granted (a read that shows a key with a TTL is left to the
    /// leader, whose clock alone says when the TTL runs out).
    #[default]
    Linearizable,
    /// From this node's applied state, possibly stale, any node.
    Serializable,
}

/// What `status` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeStatus {
    /// This node.
    pub id: NodeId,
    /// Leader, candidate or follower.
    pub role: Role,
    /// Highest ballot promised.
    pub ballot: Ballot,
    /// The believed leader.
    pub leader: Option<NodeId>,
    /// Every slot through here is chosen.
    pub commit_index: Slot,
    /// The state machine applied through here.
    pub applied_index: Slot,
    /// The state machine's revision.
    pub revision: u64,
    /// The log was compacted through here.
    pub compacted_through: Slot,
    /// Slots asked of every voter after thrifty Phase 2's fallback, since
    /// the node started (see `synod_paxos::Config::accept_fallback`).
    pub accept_fallbacks: u64,
}

/// The answer to one write: the state machine's response or why not.
pub type WriteAnswer = Result<Response, NodeError>;

/// A request handed to the core task.
pub enum CoreCall {
    /// Propose a write.
    Write {
        /// The write.
        request: Request,
        /// Where the answer goes.
        respond: oneshot::Sender<WriteAnswer>,
    },
    /// Serve a read.
    Read {
        /// The read (`Get` or `Scan`).
        request: Request,
        /// How.
        consistency: ReadConsistency,
        /// Where the answer goes.
        respond: oneshot::Sender<Result<Response, NodeError>>,
    },
    /// Report the node's status.
    Status(oneshot::Sender<NodeStatus>),
    /// Report the membership (leader only).
    Members(oneshot::Sender<Result<MembersView, NodeError>>),
    /// Propose a membership change (leader only); answered once it governs.
    ChangeMembership {
        /// The change.
        change: synod_paxos::Change,
        /// Where the answer goes.
        respond: oneshot::Sender<Result<(), NodeError>>,
    },
    /// Count the applied state's keys, sessions and locks.
    Counts(oneshot::Sender<Result<synod_kvstore::StateCounts, NodeError>>),
    /// Take a snapshot of the state machine for a backup (see
    /// [`Node::snapshot_for_backup`]).
    Snapshot {
        /// Linearizable (every write acknowledged before the call in it) or
        /// this node's applied state.
        consistency: ReadConsistency,
        /// Where the snapshot goes.
        respond: oneshot::Sender<Result<Snapshot, NodeError>>,
    },
    /// Read the watch history from a revision (see
    /// [`StateMachine::events_since`](synod_kvstore::StateMachine::events_since)).
    Watch {
        /// The first revision wanted.
        from_revision: u64,
        /// Which events.
        filter: EventFilter,
        /// Most events (whole revisions; 0 = the history's size).
        limit: usize,
        /// Where the answer goes.
        respond: oneshot::Sender<Result<WatchAnswer, NodeError>>,
    },
}

/// What the rest of the node holds to talk to its core task.
#[derive(Clone)]
pub struct NodeHandle {
    calls: mpsc::Sender<CoreCall>,
    /// Each applied slot's watch events, for watchers waiting for more.
    applied_events: broadcast::Sender<Arc<AppliedEvents>>,
}

/// The answer to come of a request handed to the core with
/// [`NodeHandle::submit`].
pub struct PendingAnswer(oneshot::Receiver<Result<Response, NodeError>>);

impl PendingAnswer {
    /// Waits for the answer.
    pub async fn answer(self) -> Result<Response, NodeError> {
        self.0.await.map_err(|_| NodeError::ShuttingDown)?
    }
}

impl NodeHandle {
    /// Serves one key-value request: writes go through the log (leader
    /// only), reads as `consistency` says. Waits for the answer.
    pub async fn request(
        &self,
        request: Request,
        consistency: ReadConsistency,
    ) -> Result<Response, NodeError> {
        self.submit(request, consistency).await?.answer().await
    }

    /// Hands one key-value request to the core (as [`request`](NodeHandle::request)
    /// does) without waiting for its answer: requests submitted one after
    /// another reach the core in that order, and their answers can be
    /// awaited together.
    pub async fn submit(
        &self,
        request: Request,
        consistency: ReadConsistency,
    ) -> Result<PendingAnswer, NodeError> {
        let (respond, answer) = oneshot::channel();
        let call = if request.op.as_ref().is_some_and(|op| op.is_read_only()) {
            CoreCall::Read {
                request,
                consistency,
                respond,
            }
        } else {
            CoreCall::Write { request, respond }
        };
        self.call(call).await?;
        Ok(PendingAnswer(answer))
    }

    /// The node's role, ballot, commit and applied index.
    pub async fn status(&self) -> Result<NodeStatus, NodeError> {
        let (respond, answer) = oneshot::channel();
        self.call(CoreCall::Status(respond)).await?;
        answer.await.map_err(|_| NodeError::ShuttingDown)
    }

    /// The membership, with each member's progress, from the leader (a
    /// follower answers `NotLeader`).
    pub async fn members(&self) -> Result<MembersView, NodeError> {
        let (respond, answer) = oneshot::channel();
        self.call(CoreCall::Members(respond)).await?;
        answer.await.map_err(|_| NodeError::ShuttingDown)?
    }

    /// Proposes a membership change at the leader (a follower answers
    /// `NotLeader`); answers once the change governs, or why it was refused.
    /// `SteppedDown` means the leader changed meanwhile: the change may or
    /// may not be in force, list the members to see.
    pub async fn change_membership(&self, change: synod_paxos::Change) -> Result<(), NodeError> {
        let (respond, answer) = oneshot::channel();
        self.call(CoreCall::ChangeMembership { change, respond })
            .await?;
        answer.await.map_err(|_| NodeError::ShuttingDown)?
    }

    /// How many keys, sessions and locks the applied state holds.
    pub async fn state_counts(&self) -> Result<synod_kvstore::StateCounts, NodeError> {
        let (respond, answer) = oneshot::channel();
        self.call(CoreCall::Counts(respond)).await?;
        answer.await.map_err(|_| NodeError::ShuttingDown)?
    }

    /// A snapshot of the state machine for a backup, taken as
    /// `consistency` says (see [`Node::snapshot_for_backup`]). Stream it
    /// off the core's task and drop it soon: it holds a read transaction.
    pub async fn snapshot(&self, consistency: ReadConsistency) -> Result<Snapshot, NodeError> {
        let (respond, answer) = oneshot::channel();
        self.call(CoreCall::Snapshot {
            consistency,
            respond,
        })
        .await?;
        answer.await.map_err(|_| NodeError::ShuttingDown)?
    }

    async fn call(&self, call: CoreCall) -> Result<(), NodeError> {
        self.calls
            .send(call)
            .await
            .map_err(|_| NodeError::ShuttingDown)
    }
}

/// Where this node's numbering of anonymous writes starts: its id in the
/// top 16 bits, then its start time in microseconds (48 bits, ~8.9 years
/// before wrapping). A write's answer is found by `(0, seq)` when its slot
/// applies, so the numbers must not repeat a command another node, or an
/// earlier run of this one, may still get chosen: other nodes differ in the
/// id, and an earlier run numbered at most one write per microsecond it
/// lived, so its numbers end before this run's start.
pub fn first_anonymous_seq(node: NodeId, now: std::time::SystemTime) -> u64 {
    let micros = now
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64);
    ((u64::from(node.0) & 0xffff) << 48) | (micros & ((1 << 48) - 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn anonymous_numbers_differ_between_nodes_and_runs() {
        let start = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let one = first_anonymous_seq(NodeId(1), start);
        assert_ne!(one, first_anonymous_seq(NodeId(2), start));
        // A run that lived 10 s numbered fewer than 10 million writes, so
        // its numbers end before the next run's start.
        let next_run = first_anonymous_seq(NodeId(1), start + Duration::from_secs(10));
        assert!(next_run >= one + 10_000_000);
        assert_eq!(one >> 48, 1, "the node id is in the top bits");
    }
}
