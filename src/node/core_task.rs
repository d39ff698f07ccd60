//! The task that owns the Paxos core and the state machine.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use prost::Message as _;
use synod_kvstore::{
    KeyExpiryConfig, Request, Response, SessionClockConfig, Snapshot, SnapshotChunk,
    SnapshotInstaller, StateMachine, WatchError,
};
use synod_paxos::{
    Envelope, Instant, NodeId, ReadId, Ready, Replica, Slot, Storage, Unavailable, Value,
};
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use super::expiry_timer::ExpiryTimer;
use super::leadership::{LeadershipChange, LeadershipWatch};
use super::session_timer::SessionTimer;
use super::watch::{AppliedEvents, WatchAnswer, APPLIED_EVENTS_QUEUE};
use super::{
    CoreCall, NodeError, NodeHandle, NodeStatus, ReadConsistency, WriteWaiters, CLIENT_QUEUE,
    MAX_WAITING_WRITES,
};

/// How often the core's timers are checked.
const TICK: Duration = Duration::from_millis(5);
/// Most inputs handled before the core persists and sends (one fsync for
/// all of them: the group commit).
const MAX_INPUTS_PER_ROUND: usize = 1024;

/// Sends peer messages without ever blocking the core (the transport drops
/// messages it cannot queue; Paxos tolerates loss).
pub trait PeerOutbox: Send + 'static {
    /// Queues `envelope` for its destination.
    fn send(&mut self, envelope: Envelope);

    /// Streams `snapshot`'s chunks to `to`, off the core task. A lost chunk
    /// only makes the peer ask again later.
    fn send_snapshot(&mut self, to: NodeId, snapshot: Snapshot);
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

/// When the state machine is flushed and the log compacted. Applies are
/// not synced (the log has the slots), so the state machine is flushed
/// (one fsync) every `flush_every_slots` applied slots, which also bounds
/// what redb keeps in memory for its unsynced commits. Once `every_slots`
/// slots were applied since the last compaction, it is flushed and the log
/// forgets all but the last `keep_slots` applied slots (followers that lag
/// further catch up by snapshot).
#[derive(Debug, Clone, Copy)]
pub struct CompactionPolicy {
    /// Applied slots between state-machine flushes.
    pub flush_every_slots: u64,
    /// Applied slots between compactions.
    pub every_slots: u64,
    /// Applied slots kept in the log for lagging followers.
    pub keep_slots: u64,
}

impl Default for CompactionPolicy {
    fn default() -> Self {
        CompactionPolicy {
            flush_every_slots: 1_000,
            every_slots: 10_000,
            keep_slots: 1_000,
        }
    }
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
    let first_anonymous_seq = first_anonymous_seq(setup.paxos.id, std::time::SystemTime::now());
    let applied = Slot(setup.state_machine.applied_index());
    let replica = Replica::new(setup.paxos, durable, applied, Instant::from_micros(0))?;
    let (calls_tx, calls_rx) = mpsc::channel(CLIENT_QUEUE);
    let waiters = Arc::new(WriteWaiters::new(MAX_WAITING_WRITES));
    let (applied_events, _) = broadcast::channel(APPLIED_EVENTS_QUEUE);
    let core = CoreTask {
        replica,
        log: setup.log,
        state_machine: setup.state_machine,
        outbox: setup.outbox,
        clock,
        waiters: waiters.clone(),
        reads: BTreeMap::new(),
        next_read_id: 1,
        anonymous_seq: Arc::new(AtomicU64::new(first_anonymous_seq)),
        compaction: setup.compaction,
        leadership: LeadershipWatch::default(),
        flushed_through: applied.0,
        installing: None,
        expiry: ExpiryTimer::new(KeyExpiryConfig::like_sessions(&sessions)),
        sessions: SessionTimer::new(sessions),
        applied_events: applied_events.clone(),
    };
    let handle = NodeHandle {
        calls: calls_tx,
        waiters,
        anonymous_seq: core.anonymous_seq.clone(),
        applied_events,
    };
    let task = tokio::spawn(core.run(calls_rx, setup.inbox, setup.shutdown));
    Ok((handle, task))
}

type ReadReply = oneshot::Sender<Result<Response, NodeError>>;

struct CoreTask<S> {
    replica: Replica,
    log: S,
    state_machine: StateMachine,
    outbox: Box<dyn PeerOutbox>,
    clock: std::time::Instant,
    waiters: Arc<WriteWaiters>,
    /// Linearizable reads waiting for the core to release them.
    reads: BTreeMap<ReadId, (Request, ReadReply)>,
    next_read_id: ReadId,
    anonymous_seq: Arc<AtomicU64>,
    compaction: CompactionPolicy,
    /// The leadership seen at the end of the last round.
    leadership: LeadershipWatch,
    /// The applied index at the last state-machine flush (or start).
    flushed_through: u64,
    /// A snapshot being received, and from whom.
    installing: Option<(NodeId, SnapshotInstaller)>,
    /// The leader's session deadlines, lock-delays and checkpoints.
    sessions: SessionTimer,
    /// The leader's key deadlines and TTL checkpoints.
    expiry: ExpiryTimer,
    /// Each applied slot's watch events, for waiting watchers.
    applied_events: broadcast::Sender<Arc<AppliedEvents>>,
}

impl<S: Storage> CoreTask<S> {
    fn now(&self) -> Instant {
        Instant::from_micros(self.clock.elapsed().as_micros() as u64)
    }

    /// The core's monotonic clock in ms, for the session clock.
    fn now_ms(&self) -> u64 {
        self.clock.elapsed().as_millis() as u64
    }

    async fn run(
        mut self,
        mut calls: mpsc::Receiver<CoreCall>,
        mut inbox: mpsc::Receiver<PeerInput>,
        mut shutdown: watch::Receiver<bool>,
    ) -> anyhow::Result<()> {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                Some(input) = inbox.recv() => self.on_peer_input(input),
                Some(call) = calls.recv() => self.on_call(call),
                _ = tick.tick() => self.replica.tick(self.now()),
                _ = shutdown.changed() => break,
            }
            // Take what else is already queued, so one fsync covers it all.
            for _ in 0..MAX_INPUTS_PER_ROUND {
                if let Ok(input) = inbox.try_recv() {
                    self.on_peer_input(input);
                } else if let Ok(call) = calls.try_recv() {
                    self.on_call(call);
                } else {
                    break;
                }
            }
            self.process_ready()?;
        }
        // Stop accepting, finish persisting what the core asked for, answer
        // nobody further.
        self.process_ready()?;
        self.state_machine.flush()?;
        self.waiters.drain();
        Ok(())
    }

    fn on_peer_input(&mut self, input: PeerInput) {
        match input {
            PeerInput::Message(envelope) => self.replica.step(self.now(), envelope),
            PeerInput::SnapshotChunk { from, chunk } => {
                if let Err(e) = self.receive_snapshot_chunk(from, chunk) {
                    tracing::warn!(%from, error = %e, "snapshot transfer abandoned");
                    self.installing = None;
                }
            }
        }
    }

    /// Stages one chunk; on the last one, swaps the state machine's tables
    /// (one fsync) and tells the core.
    fn receive_snapshot_chunk(&mut self, from: NodeId, chunk: SnapshotChunk) -> anyhow::Result<()> {
        if chunk.seq == 0 {
            self.installing = Some((from, self.state_machine.snapshot_installer()?));
        }
        let Some((sender, installer)) = self.installing.as_mut() else {
            return Ok(());
        };
        if *sender != from {
            return Ok(());
        }
        if !installer.push(&chunk)? {
            return Ok(());
        }
        let (_, installer) = self.installing.take().expect("installing");
        if Slot(chunk.applied_index) <= self.replica.commit_index() {
            return Ok(());
        }
        let through = self.state_machine.complete_install(installer)?;
        self.flushed_through = through;
        self.sessions.reset();
        self.expiry.reset();
        let taken = self.replica.install_snapshot(self.now(), Slot(through));
        assert!(taken, "a snapshot ahead of the commit index is taken");
        Ok(())
    }

    /// Flushes the state machine and compacts the log when due.
    fn maybe_compact(&mut self) -> anyhow::Result<()> {
        let applied = self.state_machine.applied_index();
        let compacted = self.replica.compacted_through().0;
        let policy = self.compaction;
        let compaction_due = applied >= compacted + policy.every_slots + policy.keep_slots;
        let flush_due = applied >= self.flushed_through + policy.flush_every_slots;
        if !compaction_due && !flush_due {
            return Ok(());
        }
        tokio::task::block_in_place(|| self.state_machine.flush())?;
        self.flushed_through = applied;
        if compaction_due {
            self.replica.compact(Slot(applied - policy.keep_slots));
        }
        Ok(())
    }

    fn on_call(&mut self, call: CoreCall) {
        let now = self.now();
        match call {
            CoreCall::Write(request) => {
                // Expiries due now go first, so this write never sees a key
                // whose deadline passed before it arrived.
                if let Err(e) = self.lead_key_expiry() {
                    tracing::warn!(error = %e, "cannot list key expiries");
                }
                let key = (request.client_id, request.seq);
                let bytes = request.encode_to_vec();
                if let Err(refused) = self.replica.propose(now, bytes) {
                    self.waiters.complete(&key, Err(unavailable(refused)));
                }
            }
            CoreCall::Read {
                request,
                consistency,
                respond,
            } => match consistency {
                ReadConsistency::Serializable => {
                    let now_ms = self.now_ms();
                    let _ = respond.send(self.read_now(&request).map(|mut response| {
                        if let Some(op) = &request.op {
                            self.expiry.fill_ttl(op, &mut response, now_ms);
                        }
                        response
                    }));
                }
                ReadConsistency::Linearizable => {
                    let id = self.next_read_id;
                    self.next_read_id += 1;
                    match self.replica.read(now, id) {
                        Ok(()) => {
                            self.reads.insert(id, (request, respond));
                        }
                        Err(refused) => {
                            let _ = respond.send(Err(unavailable(refused)));
                        }
                    }
                }
            },
            CoreCall::Watch {
                from_revision,
                filter,
                limit,
                respond,
            } => {
                let answer = match self
                    .state_machine
                    .events_since(from_revision, &filter, limit)
                {
                    Ok(batch) => Ok(WatchAnswer::Batch(batch)),
                    Err(WatchError::Compacted {
                        compacted_through,
                        revision,
                        ..
                    }) => Ok(WatchAnswer::Compacted {
                        compacted_through,
                        revision,
                    }),
                    Err(WatchError::Storage(e)) => Err(NodeError::Storage(e.to_string())),
                };
                let _ = respond.send(answer);
            }
            CoreCall::Status(respond) => {
                let status = self.replica.status();
                let _ = respond.send(NodeStatus {
                    id: status.id,
                    role: status.role,
                    ballot: status.promised,
                    leader: status.leader,
                    commit_index: status.commit_index,
                    applied_index: Slot(self.state_machine.applied_index()),
                    revision: self.state_machine.revision(),
                    compacted_through: status.compacted_through,
                });
            }
        }
    }

    /// When this node stops leading, the commands it proposed but has not
    /// applied may still be chosen under the next leader, or never: this
    /// node cannot tell which, and would otherwise keep their clients
    /// waiting until they time out. Each is answered "not the leader" now;
    /// a client that retries with the same (client, seq) at the new leader
    /// gets the command's one result (exactly-once).
    fn answer_waiters_on_step_down(&mut self) {
        if self.leadership.follow(&self.replica) == LeadershipChange::Ended {
            let leader = self.replica.status().leader;
            self.waiters
                .complete_all(|| Err(NodeError::NotLeader { leader }));
        }
    }

    fn read_now(&self, request: &Request) -> Result<Response, NodeError> {
        let op = request.op.as_ref().ok_or(NodeError::Invalid(
            synod_kvstore::RequestError::MissingOp("the request"),
        ))?;
        self.state_machine
            .read(op)
            .map_err(|e| NodeError::Storage(e.to_string()))
    }

    /// Persist, then send, then apply, then serve reads: the order `Ready`
    /// requires.
    fn process_ready(&mut self) -> anyhow::Result<()> {
        self.lead_sessions()?;
        let mut ready: Ready = self.replica.ready();
        // Proposer messages go out first where the core allows it, so the
        // leader's disk write overlaps its followers'.
        for envelope in ready.take_early_messages() {
            self.outbox.send(envelope);
        }
        if !ready.persist.is_empty() {
            tokio::task::block_in_place(|| self.log.persist(&ready.persist))?;
        }
        for envelope in ready.messages {
            self.outbox.send(envelope);
        }
        self.apply(ready.committed)?;
        for id in ready.reads {
            if let Some((request, respond)) = self.reads.remove(&id) {
                self.answer_read(request, respond)?;
            }
        }
        for id in ready.failed_reads {
            if let Some((_, respond)) = self.reads.remove(&id) {
                let _ = respond.send(Err(NodeError::NotLeader {
                    leader: self.replica.status().leader,
                }));
            }
        }
        let leader = self.replica.status().leader;
        for bytes in ready.unproposed {
            if let Ok(request) = Request::decode(bytes.as_slice()) {
                let key = (request.client_id, request.seq);
                self.waiters
                    .complete(&key, Err(NodeError::NotLeader { leader }));
            }
        }
        for peer in ready.snapshots_to_send {
            self.outbox
                .send_snapshot(peer, self.state_machine.snapshot()?);
        }
        self.answer_waiters_on_step_down();
        self.maybe_compact()
    }

    /// Applies every slot committed this round in one state-machine
    /// transaction, then tells watchers, the session and key expiry clocks
    /// and the waiting clients.
    fn apply(&mut self, committed: Vec<(Slot, Value)>) -> anyhow::Result<()> {
        if committed.is_empty() {
            return Ok(());
        }
        let slots: Vec<(u64, Vec<Vec<u8>>)> = committed
            .into_iter()
            .map(|(slot, value)| match value {
                Value::Noop => (slot.0, Vec::new()),
                Value::Commands(commands) => (slot.0, commands),
            })
            .collect();
        let applied = self.state_machine.apply_slots(
            slots
                .iter()
                .map(|(slot, commands)| (*slot, commands.as_slice())),
        )?;
        let now_ms = self.now_ms();
        for ((_, commands), slot) in slots.iter().zip(applied) {
            self.sessions.observe(now_ms, &slot.effects.session_events);
            self.expiry.observe(now_ms, &slot.effects.expiry_events);
            if !slot.effects.events.is_empty() {
                // No receiver (no watcher waiting) is fine.
                let _ = self.applied_events.send(Arc::new(AppliedEvents {
                    events: slot.effects.events,
                    revision: slot.revision,
                }));
            }
            for (bytes, mut response) in commands.iter().zip(slot.responses) {
                if let Ok(request) = Request::decode(bytes.as_slice()) {
                    if let Some(op) = &request.op {
                        // A TTL read served through the log.
                        self.expiry.fill_ttl(op, &mut response, now_ms);
                    }
                    self.waiters
                        .complete(&(request.client_id, request.seq), Ok(response));
                }
            }
        }
        Ok(())
    }

    /// Answers a linearizable read the core released: from the state
    /// machine, unless it would show a key whose deadline passed on this
    /// leader's clock, in which case it goes through the log behind that
    /// key's deletion (see `expiry_timer`).
    fn answer_read(&mut self, request: Request, respond: ReadReply) -> anyhow::Result<()> {
        let now_ms = self.now_ms();
        let mut answer = self.read_now(&request);
        if let (Ok(response), Some(op)) = (answer.as_mut(), request.op.as_ref()) {
            if self.expiry.needs_log(op, response, now_ms) {
                return self.read_through_log(op.clone(), respond);
            }
            self.expiry.fill_ttl(op, response, now_ms);
        }
        let _ = respond.send(answer);
        Ok(())
    }

    /// Proposes the read `op` as an anonymous command, after the expiries
    /// due now, and answers `respond` when it applies.
    fn read_through_log(
        &mut self,
        op: synod_kvstore::Op,
        respond: ReadReply,
    ) -> anyhow::Result<()> {
        self.lead_key_expiry()?;
        let mut request = Request::anonymous(op);
        request.seq = self.anonymous_seq.fetch_add(1, Ordering::Relaxed);
        let key = (request.client_id, request.seq);
        // Shared with the waiter, so a refused registration can still answer.
        let reply = Arc::new(std::sync::Mutex::new(Some(respond)));
        let waiter_reply = reply.clone();
        let registered = self.waiters.register(
            key,
            Box::new(move |answer: Option<super::WriteAnswer>| {
                if let Some(respond) = waiter_reply.lock().expect("reply lock").take() {
                    let _ = respond.send(answer.unwrap_or(Err(NodeError::ShuttingDown)));
                }
            }),
        );
        if registered.is_err() {
            if let Some(respond) = reply.lock().expect("reply lock").take() {
                let _ = respond.send(Err(NodeError::Busy));
            }
            return Ok(());
        }
        if let Err(refused) = self.replica.propose(self.now(), request.encode_to_vec()) {
            self.waiters.complete(&key, Err(unavailable(refused)));
        }
        Ok(())
    }
}

impl<S: Storage> CoreTask<S> {
    /// Follows leadership changes and proposes what the session clock says
    /// is due (expiries, lock-delay ends, checkpoints), before `Ready` is
    /// taken so the proposals go out in this round.
    fn lead_sessions(&mut self) -> anyhow::Result<()> {
        self.lead_key_expiry()?;
        let now_ms = self.now_ms();
        self.sessions
            .follow_role(now_ms, &self.replica, &self.state_machine)?;
        let now = self.now();
        for op in self.sessions.due(now_ms) {
            let bytes = Request::anonymous(op).encode_to_vec();
            // Refused (busy, or leadership just lost): the clock proposes
            // expiries and delay ends again after its retry interval, and
            // the next checkpoint is one interval away.
            if let Err(refused) = self.replica.propose(now, bytes) {
                tracing::debug!(%refused, "session command not proposed");
            }
        }
        Ok(())
    }
}

impl<S: Storage> CoreTask<S> {
    /// Follows leadership changes and proposes the key expiries and TTL
    /// checkpoints the key expiry clock says are due. Called every round
    /// and before proposing a client's write or a read through the log.
    fn lead_key_expiry(&mut self) -> Result<(), synod_kvstore::StorageError> {
        let now_ms = self.now_ms();
        self.expiry
            .follow_role(now_ms, &self.replica, &self.state_machine)?;
        let ops = self.expiry.due(now_ms);
        if ops.is_empty() {
            return Ok(());
        }
        let now = self.now();
        for op in ops {
            let bytes = Request::anonymous(op).encode_to_vec();
            // Refused (busy, or leadership just lost): the clock proposes
            // the expiries again after its retry interval.
            if let Err(refused) = self.replica.propose(now, bytes) {
                tracing::debug!(%refused, "key expiry command not proposed");
            }
        }
        Ok(())
    }
}

/// Where this node's numbering of anonymous writes starts: its id in the
/// top 16 bits, then its start time in microseconds (48 bits, ~8.9 years
/// before wrapping). A waiter is found by `(0, seq)` when a slot applies, so
/// the numbers must not repeat a command another node, or an earlier run of
/// this one, may still get chosen: other nodes differ in the id, and an
/// earlier run numbered at most one write per microsecond it lived, so its
/// numbers end before this run's start.
fn first_anonymous_seq(node: NodeId, now: std::time::SystemTime) -> u64 {
    let micros = now
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64);
    ((u64::from(node.0) & 0xffff) << 48) | (micros & ((1 << 48) - 1))
}

fn unavailable(refused: Unavailable) -> NodeError {
    match refused {
        Unavailable::NotLeader { leader } => NodeError::NotLeader { leader },
        Unavailable::Busy => NodeError::Busy,
    }
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
