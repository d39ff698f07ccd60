//! The task that owns the Paxos core and the state machine.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use prost::Message as _;
use synod_kvstore::{Request, Response, StateMachine};
use synod_paxos::{Envelope, Instant, ReadId, Ready, Replica, Slot, Storage, Unavailable, Value};
use tokio::sync::{mpsc, oneshot, watch};

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
    /// Incoming peer messages.
    pub inbox: mpsc::Receiver<Envelope>,
    /// Flips to true when the node should stop.
    pub shutdown: watch::Receiver<bool>,
}

/// Starts the core task; returns the handle clients use and the task.
pub fn spawn_core<S>(
    setup: CoreSetup<S>,
) -> anyhow::Result<(NodeHandle, tokio::task::JoinHandle<anyhow::Result<()>>)>
where
    S: Storage + Send + 'static,
{
    let durable = setup.log.load()?;
    let clock = std::time::Instant::now();
    let applied = Slot(setup.state_machine.applied_index());
    let replica = Replica::new(setup.paxos, durable, applied, Instant::from_micros(0))?;
    let (calls_tx, calls_rx) = mpsc::channel(CLIENT_QUEUE);
    let waiters = Arc::new(WriteWaiters::new(MAX_WAITING_WRITES));
    let core = CoreTask {
        replica,
        log: setup.log,
        state_machine: setup.state_machine,
        outbox: setup.outbox,
        clock,
        waiters: waiters.clone(),
        reads: BTreeMap::new(),
        next_read_id: 1,
        anonymous_seq: Arc::new(AtomicU64::new(1)),
    };
    let handle = NodeHandle {
        calls: calls_tx,
        waiters,
        anonymous_seq: core.anonymous_seq.clone(),
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
}

impl<S: Storage> CoreTask<S> {
    fn now(&self) -> Instant {
        Instant::from_micros(self.clock.elapsed().as_micros() as u64)
    }

    async fn run(
        mut self,
        mut calls: mpsc::Receiver<CoreCall>,
        mut inbox: mpsc::Receiver<Envelope>,
        mut shutdown: watch::Receiver<bool>,
    ) -> anyhow::Result<()> {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                Some(envelope) = inbox.recv() => self.replica.step(self.now(), envelope),
                Some(call) = calls.recv() => self.on_call(call),
                _ = tick.tick() => self.replica.tick(self.now()),
                _ = shutdown.changed() => break,
            }
            // Take what else is already queued, so one fsync covers it all.
            for _ in 0..MAX_INPUTS_PER_ROUND {
                if let Ok(envelope) = inbox.try_recv() {
                    self.replica.step(self.now(), envelope);
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

    fn on_call(&mut self, call: CoreCall) {
        let now = self.now();
        match call {
            CoreCall::Write(request) => {
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
                    let _ = respond.send(self.read_now(&request));
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
                });
            }
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
        let ready: Ready = self.replica.ready();
        if !ready.persist.is_empty() {
            tokio::task::block_in_place(|| self.log.persist(&ready.persist))?;
        }
        for envelope in ready.messages {
            self.outbox.send(envelope);
        }
        for (slot, value) in ready.committed {
            self.apply(slot, value)?;
        }
        for id in ready.reads {
            if let Some((request, respond)) = self.reads.remove(&id) {
                let _ = respond.send(self.read_now(&request));
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
        Ok(())
    }

    fn apply(&mut self, slot: Slot, value: Value) -> anyhow::Result<()> {
        let commands = match value {
            Value::Noop => Vec::new(),
            Value::Commands(commands) => commands,
        };
        let responses = self.state_machine.apply(slot.0, &commands)?;
        for (bytes, response) in commands.iter().zip(responses) {
            if let Ok(request) = Request::decode(bytes.as_slice()) {
                self.waiters
                    .complete(&(request.client_id, request.seq), Ok(response));
            }
        }
        Ok(())
    }
}

fn unavailable(refused: Unavailable) -> NodeError {
    match refused {
        Unavailable::NotLeader { leader } => NodeError::NotLeader { leader },
        Unavailable::Busy => NodeError::Busy,
    }
}
