//! The tokio driver of a [`Node`]: one task owns the node and carries out
//! its rounds with real sockets, a real disk and a real clock.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use synod_kvstore::{Response, SessionClockConfig, Snapshot, SnapshotChunk, StateMachine};
use synod_paxos::{
    Change, ChangeRefused, Envelope, Instant, Member, MembershipLog, NodeId, ReadId, ReadySeq,
    Storage, Unavailable,
};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tracing::Instrument;

use super::log_writer::{Durable, LogWriter, MAX_ROUNDS_IN_FLIGHT};
use super::machine::{Answer, CompactionPolicy, Node, NodeConfig, RoundOutput};
use super::watch::{AppliedEvents, APPLIED_EVENTS_QUEUE};
use super::{
    first_anonymous_seq, CoreCall, NodeError, NodeHandle, WriteAnswer, CLIENT_QUEUE,
    MAX_WAITING_WRITES,
};
use crate::metrics::{error_kind, CoreMetrics, APPLIED};

/// How often the core's timers are checked.
const TICK: Duration = Duration::from_millis(5);
/// Most inputs handled in one round (the log's thread groups rounds that
/// wait for it into one fsync).
const MAX_INPUTS_PER_ROUND: usize = 1024;

/// Sends peer messages without ever blocking the core (the transport drops
/// messages it cannot queue; Paxos tolerates loss).
pub trait PeerOutbox: Send + 'static {
    /// Queues `envelope` for its destination.
    fn send(&mut self, envelope: Envelope);

    /// Streams `snapshot`'s chunks to `to`, off the core task. A lost chunk
    /// only makes the peer ask again later.
    fn send_snapshot(&mut self, to: NodeId, snapshot: Snapshot);

    /// The membership changed (or the node started): route to its members
    /// from now on. Outboxes with fixed routes ignore it.
    fn members_changed(&mut self, _membership: &synod_paxos::MembershipLog) {}
}

/// What peers send the core.
#[derive(Debug)]
pub enum PeerInput {
    /// A protocol message.
    Message(Envelope),
    /// One chunk of a state-machine snapshot `from` streams to us.
    SnapshotChunk {
        /// The sender.
        from: NodeId,
        /// The chunk.
        chunk: SnapshotChunk,
    },
}

/// What the core task starts from.
pub struct CoreSetup<S> {
    /// The consensus core's settings.
    pub paxos: synod_paxos::Config,
    /// Durable acceptor state.
    pub log: S,
    /// The state machine (its applied index says where replay starts).
    pub state_machine: StateMachine,
    /// Outgoing peer messages.
    pub outbox: Box<dyn PeerOutbox>,
    /// Incoming peer messages and snapshot chunks.
    pub inbox: mpsc::Receiver<PeerInput>,
    /// When to compact the log.
    pub compaction: CompactionPolicy,
    /// Flips to true when the node should stop.
    pub shutdown: watch::Receiver<bool>,
    /// Where the core reports what it does.
    pub metrics: CoreMetrics,
    /// The founding members' addresses (see [`NodeConfig::founding`]).
    pub founding: Vec<synod_paxos::Member>,
}

/// Starts the core task with the default [`SessionClockConfig`]; returns
/// the handle clients use and the task.
pub fn spawn_core<S>(
    setup: CoreSetup<S>,
) -> anyhow::Result<(NodeHandle, tokio::task::JoinHandle<anyhow::Result<()>>)>
where
    S: Storage + Send + 'static,
{
    spawn_core_with_sessions(setup, SessionClockConfig::default())
}

/// Starts the core task; while this node leads, `sessions` shapes what it
/// proposes for sessions (checkpoint interval, lock-delay, retries) and for
/// key expiry (the same checkpoint and retry intervals).
pub fn spawn_core_with_sessions<S>(
    setup: CoreSetup<S>,
    sessions: SessionClockConfig,
) -> anyhow::Result<(NodeHandle, tokio::task::JoinHandle<anyhow::Result<()>>)>
where
    S: Storage + Send + 'static,
{
    let durable = setup.log.load()?;
    let clock = std::time::Instant::now();
    let config_id = setup.paxos.id.0;
    let config = NodeConfig {
        first_anonymous_seq: first_anonymous_seq(setup.paxos.id, std::time::SystemTime::now()),
        paxos: setup.paxos,
        compaction: setup.compaction,
        sessions,
        founding: setup.founding,
    };
    let node = Node::new(
        config,
        durable,
        setup.state_machine,
        Instant::from_micros(0),
    )?;
    let (calls_tx, calls_rx) = mpsc::channel(CLIENT_QUEUE);
    let (applied_events, _) = broadcast::channel(APPLIED_EVENTS_QUEUE);
    let (log, durable) = LogWriter::start(setup.log, setup.metrics.clone(), config_id)?;
    let core = CoreTask {
        node,
        log,
        outbox: setup.outbox,
        clock,
        writes: HashMap::new(),
        reads: HashMap::new(),
        snapshots: HashMap::new(),
        applied_events: applied_events.clone(),
        metrics: setup.metrics,
        changes: Vec::new(),
        routed: Vec::new(),
        seen_membership: MembershipLog::default(),
    };
    let handle = NodeHandle {
        calls: calls_tx,
        applied_events,
    };
    // Every line the core logs names its node, also where several nodes
    // share a process (tests, the simulator's neighbours).
    let span = tracing::info_span!("core", node = config_id);
    let task = tokio::spawn(
        core.run(calls_rx, setup.inbox, durable, setup.shutdown)
            .instrument(span),
    );
    Ok((handle, task))
}

/// A membership change proposed here, waiting to govern.
struct WaitingChange {
    change: Change,
    respond: oneshot::Sender<Result<(), NodeError>>,
    /// When its caller is told to look for itself.
    deadline: Instant,
}

/// A client waiting for its write's answer, since when (the core's clock).
struct WriteReply {
    reply: oneshot::Sender<WriteAnswer>,
    since: Instant,
}
type ReadReply = oneshot::Sender<Result<Response, NodeError>>;
type SnapshotReply = oneshot::Sender<Result<Snapshot, NodeError>>;

struct CoreTask {
    node: Node,
    /// The thread that makes rounds durable; the node holds at most
    /// `MAX_ROUNDS_IN_FLIGHT` rounds waiting for it.
    log: LogWriter,
    outbox: Box<dyn PeerOutbox>,
    clock: std::time::Instant,
    /// Clients waiting for their write, by (client id, seq): a retry of a
    /// write still in flight waits for the same answer.
    writes: HashMap<(u64, u64), Vec<WriteReply>>,
    /// Clients waiting for their read.
    reads: HashMap<ReadId, ReadReply>,
    /// Clients waiting for a snapshot for a backup.
    snapshots: HashMap<ReadId, SnapshotReply>,
    /// Each applied slot's watch events, for waiting watchers.
    applied_events: broadcast::Sender<Arc<AppliedEvents>>,
    metrics: CoreMetrics,
    /// Membership changes proposed here, waiting to govern.
    changes: Vec<WaitingChange>,
    /// The members (with addresses) the outbox last routed to.
    routed: Vec<Member>,
    /// The membership log `routed` was last derived from.
    seen_membership: MembershipLog,
}

impl CoreTask {
    fn now(&self) -> Instant {
        Instant::from_micros(self.clock.elapsed().as_micros() as u64)
    }

    async fn run(
        mut self,
        mut calls: mpsc::Receiver<CoreCall>,
        mut inbox: mpsc::Receiver<PeerInput>,
        mut durable: Durable,
        mut shutdown: watch::Receiver<bool>,
    ) -> anyhow::Result<()> {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let mut inputs = 1;
            let log_full = self.node.rounds_waiting() >= MAX_ROUNDS_IN_FLIGHT;
            tokio::select! {
                // The disk first (what it made durable releases messages),
                // then shutdown and the timers, which a busy inbox must
                // not starve; peer input and client calls come after.
                biased;
                report = durable.recv() => {
                    inputs = 0;
                    self.on_durable(report)?;
                }
                _ = shutdown.changed() => break,
                _ = tick.tick(), if !log_full => {
                    inputs = 0;
                    self.node.tick(self.now());
                }
                Some(input) = inbox.recv(), if !log_full => self.on_peer_input(input)?,
                Some(call) = calls.recv(), if !log_full => self.on_call(call),
            }
            // Take what else is already queued, so one round covers it all.
            while let Ok(report) = durable.try_recv() {
                self.on_durable(Some(report))?;
            }
            for _ in 0..MAX_INPUTS_PER_ROUND {
                if self.node.rounds_waiting() >= MAX_ROUNDS_IN_FLIGHT {
                    break;
                }
                if let Ok(input) = inbox.try_recv() {
                    self.on_peer_input(input)?;
                } else if let Ok(call) = calls.try_recv() {
                    self.on_call(call);
                } else {
                    break;
                }
                inputs += 1;
            }
            self.round(inputs)?;
            self.metrics.observe_queues(
                calls.len(),
                inbox.len(),
                self.applied_events.receiver_count(),
            );
        }
        // Stop accepting, finish persisting what the core asked for, answer
        // nobody further.
        self.node.stop_holding();
        self.round(0)?;
        while self.node.rounds_waiting() > 0 {
            let report = durable.recv().await;
            self.on_durable(report)?;
        }
        self.log.stop();
        self.node.flush(self.now())?;
        let waiting: Vec<WriteReply> = self.writes.drain().flat_map(|(_, r)| r).collect();
        for waiting in waiting {
            let _ = waiting.reply.send(Err(NodeError::ShuttingDown));
        }
        Ok(())
    }

    /// The log made every round through the reported one durable: tells
    /// the node and sends the messages that waited for them.
    fn on_durable(&mut self, report: Option<anyhow::Result<ReadySeq>>) -> anyhow::Result<()> {
        let Some(report) = report else {
            anyhow::bail!("the log's thread stopped");
        };
        let through = report?;
        for envelope in self.node.log_durable(self.now(), through) {
            self.outbox.send(envelope);
        }
        Ok(())
    }

    fn on_peer_input(&mut self, input: PeerInput) -> anyhow::Result<()> {
        let now = self.now();
        match input {
            PeerInput::Message(envelope) => self.node.step(now, envelope),
            PeerInput::SnapshotChunk { from, chunk } => {
                let before = self.node.state_machine().applied_index();
                self.node.snapshot_chunk(now, from, chunk)?;
                if self.node.state_machine().applied_index() != before {
                    self.metrics.snapshot_installed();
                }
            }
        }
        Ok(())
    }

    fn on_call(&mut self, call: CoreCall) {
        let now = self.now();
        match call {
            CoreCall::Write { request, respond } => {
                let respond = WriteReply {
                    reply: respond,
                    since: now,
                };
                let key = (request.client_id, request.seq);
                if request.client_id != 0 {
                    if let Some(waiting) = self.writes.get_mut(&key) {
                        // A retry of a write in flight: the first proposal's
                        // outcome answers both.
                        waiting.push(respond);
                        return;
                    }
                }
                if self.writes.len() >= MAX_WAITING_WRITES {
                    self.answer_write(respond, Err(NodeError::Busy), now);
                    return;
                }
                let key = self.node.write(now, request);
                self.writes.entry(key).or_default().push(respond);
            }
            CoreCall::Read {
                request,
                consistency,
                respond,
            } => {
                let id = self.node.read(now, request, consistency);
                self.reads.insert(id, respond);
            }
            CoreCall::Watch {
                from_revision,
                filter,
                limit,
                respond,
            } => {
                let _ = respond.send(self.node.watch(from_revision, &filter, limit));
            }
            CoreCall::Status(respond) => {
                let _ = respond.send(self.node.status());
            }
            CoreCall::Members(respond) => {
                let _ = respond.send(self.node.members(now));
            }
            CoreCall::ChangeMembership { change, respond } => {
                if self.changes.len() >= MAX_WAITING_CHANGES {
                    let _ = respond.send(Err(NodeError::Busy));
                    return;
                }
                match self.node.propose_change(now, change.clone()) {
                    Ok(()) => self.changes.push(WaitingChange {
                        change,
                        respond,
                        deadline: now + CHANGE_DEADLINE,
                    }),
                    Err(ChangeRefused::Unavailable(Unavailable::NotLeader { leader })) => {
                        let _ = respond.send(Err(NodeError::NotLeader { leader }));
                    }
                    Err(ChangeRefused::Unavailable(Unavailable::Busy)) => {
                        let _ = respond.send(Err(NodeError::Busy));
                    }
                    Err(ChangeRefused::Invalid(error)) => {
                        let _ = respond.send(Err(NodeError::MembershipRefused(error.to_string())));
                    }
                }
            }
            CoreCall::Counts(respond) => {
                let _ = respond.send(self.node.state_counts());
            }
            CoreCall::Snapshot {
                consistency,
                respond,
            } => {
                let id = self.node.snapshot_for_backup(now, consistency);
                self.snapshots.insert(id, respond);
            }
        }
    }

    /// Sends `answer` to a waiting client, counting it at `now`.
    fn answer_write(&self, waiting: WriteReply, answer: WriteAnswer, now: Instant) {
        let outcome = match &answer {
            Ok(_) => APPLIED,
            Err(e) => error_kind(e),
        };
        let latency = now.saturating_since(waiting.since);
        self.metrics.observe_write(outcome, latency.as_secs_f64());
        let _ = waiting.reply.send(answer);
    }

    /// Rounds of the node, covering `inputs` peer messages and client
    /// calls, until it has nothing more to do: sends, records to the log,
    /// apply and answer (see [`Node`]); the messages that wait for the
    /// records go when the log reports them durable
    /// ([`on_durable`](Self::on_durable)).
    fn round(&mut self, inputs: usize) -> anyhow::Result<()> {
        loop {
            let round = self.node.begin_round(self.now())?;
            for envelope in round.send {
                self.outbox.send(envelope);
            }
            if !round.persist.is_empty() {
                self.log.submit(round.seq, round.persist)?;
            }
            let output = self.node.finish_round(self.now())?;
            self.answer(output);
            if !self.node.has_output() || self.node.rounds_waiting() >= MAX_ROUNDS_IN_FLIGHT {
                break;
            }
        }
        self.metrics.observe_round(inputs);
        self.follow_membership(self.now());
        self.metrics.observe_status(&self.node.status());
        Ok(())
    }

    /// Hands a round's output on: watch events, client answers, snapshots.
    fn answer(&mut self, output: RoundOutput) {
        // One clock reading for every answer of the round.
        let answered_at = self.now();
        for slot in output.applied {
            if !slot.effects.events.is_empty() {
                // No receiver (no watcher waiting) is fine.
                let _ = self.applied_events.send(Arc::new(AppliedEvents {
                    events: slot.effects.events,
                    revision: slot.revision,
                }));
            }
        }
        for answer in output.answers {
            match answer {
                Answer::Write {
                    client_id,
                    seq,
                    answer,
                } => {
                    for waiting in self.writes.remove(&(client_id, seq)).unwrap_or_default() {
                        self.answer_write(waiting, answer.clone(), answered_at);
                    }
                }
                Answer::Read { id, answer } => {
                    if let Some(reply) = self.reads.remove(&id) {
                        self.metrics.observe_read(match &answer {
                            Ok(_) => "served",
                            Err(e) => error_kind(e),
                        });
                        let _ = reply.send(answer);
                    }
                }
                Answer::Snapshot { id, answer } => {
                    if let Some(reply) = self.snapshots.remove(&id) {
                        let _ = reply.send(answer);
                    }
                }
            }
        }
        for (peer, snapshot) in output.snapshots {
            self.metrics.snapshot_sent();
            self.outbox.send_snapshot(peer, snapshot);
        }
    }

    /// Routes to the members of a changed membership, and answers the
    /// changes that now govern (or can no longer be followed here).
    fn follow_membership(&mut self, now: Instant) {
        let membership = self.node.replica().membership();
        // Most rounds change nothing: compared in place, no list is built.
        if *membership != self.seen_membership {
            self.seen_membership = membership.clone();
            let members = member_addresses(membership);
            if members != self.routed {
                self.routed = members;
                self.outbox.members_changed(membership);
            }
        }
        if self.changes.is_empty() {
            return;
        }
        let replica = self.node.replica();
        let governing = replica
            .membership()
            .governing(replica.commit_index().next());
        let leading = replica.is_leader();
        // Another node leads (not this one running Phase 1 again).
        let led_elsewhere = replica.leader_elsewhere();
        for waiting in std::mem::take(&mut self.changes) {
            let (change, deadline) = (&waiting.change, waiting.deadline);
            // A leader that handed over (it removed itself) sees its change
            // chosen; the next leader makes it govern.
            let chosen_here = !leading && replica.membership().latest().has_made(change);
            let answer = if governing.has_made(change) || chosen_here {
                Ok(())
            } else if !leading && led_elsewhere.is_some() {
                Err(NodeError::SteppedDown {
                    leader: led_elsewhere,
                })
            } else if now >= deadline {
                Err(NodeError::MembershipRefused(format!(
                    "{change} did not take effect within {} s; list the members to see where it stands",
                    CHANGE_DEADLINE.as_secs()
                )))
            } else {
                self.changes.push(waiting);
                continue;
            };
            let _ = waiting.respond.send(answer);
        }
    }
}

/// Most membership changes waiting at once (one governs at a time; the rest
/// are refused as in progress).
const MAX_WAITING_CHANGES: usize = 16;

/// How long a proposed membership change may take to govern before its
/// caller is told to look.
const CHANGE_DEADLINE: Duration = Duration::from_secs(10);

/// Every member named from the commit index on, with its addresses, in
/// order: what routing depends on.
fn member_addresses(membership: &MembershipLog) -> Vec<Member> {
    let mut members: Vec<Member> = membership
        .entries()
        .flat_map(|(_, m)| m.members().cloned())
        .map(|m| Member { voter: false, ..m })
        .collect();
    members.sort_by_key(|m| m.id);
    members.dedup();
    members
}
