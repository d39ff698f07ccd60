//! A deterministic simulator of whole Synod clusters.
//!
//! It runs the real [`synod_paxos::Replica`] on every node, on a simulated
//! network (loss, duplication, reordering, delay, partitions) and clock
//! (per-node drift within the configured bound), with crashes that keep only
//! what the node persisted. Nodes compact their logs every few dozen slots,
//! so lagging and restarted nodes often catch up by snapshot. Everything is drawn from one seed, so a failing
//! run replays exactly: `SYNOD_SIM_SEED=<seed> cargo test --test simulation
//! replay_one_seed -- --nocapture` prints its message trace.
//!
//! Oracles, checked as the run goes and at its end:
//! - one value per slot, across all nodes and all time;
//! - every node applies the same values in slot order (identical prefixes);
//! - every node ends with the same state (snapshots included);
//! - no acknowledged write is lost (all are in the chosen log at the end,
//!   and every node has applied the whole log);
//! - a lease read never misses a slot any node knows to be chosen;
//! - the clients' history is linearizable;
//! - after the faults heal, writes commit again within a bounded time;
//! - the coordination oracles (locks, fencing tokens, fenced writes,
//!   elections, session keep-alive and expiry): see `coord_oracles`.
//!
//! Every node runs the node runtime's own `SessionTimer` on its drifting
//! clock, as the core task does: while it leads, it proposes session
//! expiries, lock-delay ends and TTL checkpoints.

mod clients;
mod coord;
mod coord_node;
mod coord_oracles;
mod coord_traffic;
pub mod network;
mod oracles;
mod session_oracles;
mod snapshots;
mod trace;
pub mod workload;

pub use coord_oracles::{CoordOracles, Oracle};
pub use trace::describe;
use trace::describe_value;

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::panic::{catch_unwind, AssertUnwindSafe};

use synod_paxos::{
    Config, Envelope, Instant, MemStorage, Message, NodeId, ReadId, Replica, Rng, Slot, Storage,
    Value,
};

use crate::support::linearizability::KvOutcome;
pub use coord::CoordStats;
use coord::{is_coord, CoordAnswer, CoordClient, CoordReply};
use coord_oracles::{AppliedSlot, ReplicaView};
use network::{FaultMix, Partitions};
use session_oracles::Truth;
use synod::node::SessionTimer;
use synod_kvstore::{Get, Op, SessionClockConfig, SnapshotChunk, StateMachine};
use workload::{read_value, write_outcome, Client, Reply, Request, WriteCommand};

/// Node ticks are this far apart (simulated).
const TICK_US: u64 = 5_000;
/// A client waits this long for an answer before trying another node.
const ATTEMPT_TIMEOUT_US: u64 = 300_000;
/// A client gives up on an operation after this long.
const PATIENCE_US: u64 = 3_000_000;
/// After the faults heal, clients keep going this long; a write must commit
/// within it (the liveness bound).
const AFTER_HEAL_US: u64 = 5_000_000;
/// Then everything quiets down for this long before the final checks.
const QUIESCE_US: u64 = 2_000_000;
/// ...or this long with coordination clients: sessions they leave behind
/// must expire first (TTLs are at most 2 s), then lock-delays end.
const COORD_QUIESCE_US: u64 = 4_000_000;
/// A node snapshots its state and compacts its log once this many slots
/// were applied since the last compaction...
const COMPACT_EVERY_SLOTS: u64 = 40;
/// ...keeping this many recent slots for followers that lag a little.
const COMPACT_KEEP_SLOTS: u64 = 8;

/// One simulation run's settings.
#[derive(Clone, Debug)]
pub struct SimOptions {
    pub seed: u64,
    pub nodes: usize,
    pub mix: FaultMix,
    pub clients: usize,
    pub keys: usize,
    /// How long faults are injected before everything heals.
    pub fault_phase_us: u64,
    /// Record a readable trace of every message and fault.
    pub trace: bool,
    /// Nodes that call `campaign` at time zero (dueling proposers).
    pub campaign_at_start: Vec<usize>,
    /// Deliberately broken protocol rules.
    pub bugs: synod_paxos::Bugs,
    /// Clients of sessions, locks, fenced writes and elections.
    pub coord_clients: usize,
    /// The coordination oracles that may fail the run.
    pub coord_oracles: CoordOracles,
    /// Deliberately broken coordination rules (state machine and session
    /// clock).
    pub coord_bugs: synod_kvstore::Bugs,
    /// The nodes' session clock settings.
    pub sessions: SessionClockConfig,
}

impl SimOptions {
    /// Default settings for `seed` on `nodes` nodes with `mix`.
    pub fn new(seed: u64, nodes: usize, mix: FaultMix) -> SimOptions {
        SimOptions {
            seed,
            nodes,
            mix,
            // Fewer under churn, whose point is the coordination clients
            // (and whose runs are longer).
            clients: if mix.leader_churn { 2 } else { 4 },
            keys: 3,
            fault_phase_us: mix.fault_phase_us,
            trace: false,
            campaign_at_start: Vec::new(),
            bugs: synod_paxos::Bugs::default(),
            coord_clients: 3,
            coord_oracles: CoordOracles::default(),
            coord_bugs: synod_kvstore::Bugs::default(),
            // Short enough for 1-2 s TTLs; the churn mix's terms last at
            // least four checkpoint intervals.
            sessions: SessionClockConfig {
                checkpoint_interval_ms: 200,
                lock_delay_ms: 300,
                retry_ms: 200,
                ..SessionClockConfig::default()
            },
        }
    }
}

/// What a successful run measured.
#[derive(Debug, Default)]
pub struct SimReport {
    pub simulated_us: u64,
    /// Client commands chosen (each counted once, however many nodes).
    pub committed_commands: u64,
    pub history_len: usize,
    /// Distinct ballots that ran Phase 1.
    pub ballots_tried: usize,
    /// From the heal to the first acknowledged write.
    pub recovery_us: u64,
    /// When the first slot was chosen.
    pub first_commit_us: Option<u64>,
    /// Snapshots installed by lagging nodes.
    pub snapshots_installed: u64,
    /// What the coordination clients did.
    pub coord: CoordStats,
    /// Sessions expired and closed.
    pub sessions_expired: u64,
    pub sessions_closed: u64,
    /// Leaderships (session clock terms).
    pub terms: usize,
    /// Closest margins of expiries to the `keepalive` and `abandon`
    /// oracles' limits.
    pub closest_early_us: Option<u64>,
    pub closest_late_us: Option<u64>,
    pub trace: Vec<String>,
}

/// A failed run: which oracle broke, and how to replay it.
#[derive(Debug)]
pub struct SimFailure {
    pub seed: u64,
    pub mix: &'static str,
    pub nodes: usize,
    pub message: String,
    pub trace: Vec<String>,
}

impl std::fmt::Display for SimFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "simulation failed: seed {} ({} nodes, mix {}): {}\nreplay: SYNOD_SIM_SEED={} SYNOD_SIM_NODES={} SYNOD_SIM_MIX={} cargo test --test simulation replay_one_seed -- --nocapture",
            self.seed, self.nodes, self.mix, self.message, self.seed, self.nodes, self.mix
        )
    }
}

/// Runs one simulation; any oracle failure or core assertion becomes a
/// `SimFailure`.
pub fn run(options: &SimOptions) -> Result<SimReport, SimFailure> {
    let mut sim = Simulation::new(options.clone());
    let outcome = catch_unwind(AssertUnwindSafe(|| sim.run()));
    let message = match outcome {
        Ok(Ok(())) => return Ok(sim.into_report()),
        Ok(Err(message)) => message,
        Err(panic) => format!(
            "panic: {}",
            panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default()
        ),
    };
    Err(SimFailure {
        seed: options.seed,
        mix: options.mix.name,
        nodes: options.nodes,
        message,
        trace: std::mem::take(&mut sim.trace),
    })
}

#[derive(Debug)]
enum Event {
    Tick {
        node: usize,
        incarnation: u64,
    },
    Deliver(Envelope),
    Request {
        node: usize,
        client: usize,
        request: Request,
    },
    Reply {
        client: usize,
        reply: Reply,
    },
    ClientStart {
        client: usize,
    },
    ClientSend {
        client: usize,
        tag: u64,
        attempt: u64,
    },
    ClientTimeout {
        client: usize,
        tag: u64,
        attempt: u64,
    },
    Cut,
    Heal,
    Crash,
    Restart(usize),
    EndFaults,
    /// A state-machine snapshot taken at `slot` arrives at `to`.
    Snapshot {
        to: usize,
        slot: Slot,
        chunks: Vec<SnapshotChunk>,
    },
    CoordStart {
        client: usize,
    },
    CoordSend {
        client: usize,
        stream: usize,
        seq: u64,
        attempt: u64,
    },
    CoordTimeout {
        client: usize,
        stream: usize,
        seq: u64,
        attempt: u64,
    },
    CoordKeepAlive {
        client: usize,
        life: u64,
    },
    CoordReply(CoordReply),
    /// The churn mix ends a leadership: crash `node` if it still leads
    /// with `ballot`.
    ChurnCrash {
        node: usize,
        incarnation: u64,
        ballot: synod_paxos::Ballot,
    },
}

struct Scheduled {
    at_us: u64,
    order: u64,
    event: Event,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at_us, self.order) == (other.at_us, other.order)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at_us, other.order).cmp(&(self.at_us, self.order))
    }
}

struct Node {
    storage: MemStorage,
    replica: Option<Replica>,
    incarnation: u64,
    /// The real state machine, on redb's in-memory backend.
    state_machine: StateMachine,
    /// The state machine as last made durable: it survives a crash, and the
    /// log is never compacted past it.
    durable_snapshot: (Slot, Vec<SnapshotChunk>),
    /// Writes this node proposed, answered when applied: (client, seq).
    writes: BTreeSet<(u64, u64)>,
    /// Reads waiting for the core: id → (client, attempt tag, key).
    reads: BTreeMap<ReadId, (usize, u64, Vec<u8>)>,
    next_read_id: ReadId,
    clock_offset_us: u64,
    drift_ppm: i64,
    /// The runtime's session duties (expiries, lock-delays, checkpoints).
    timer: SessionTimer,
    /// The coordination state the oracles last saw on this replica.
    view: ReplicaView,
}

impl Node {
    /// The slot the state machine applied through.
    fn applied(&self) -> Slot {
        Slot(self.state_machine.applied_index())
    }
}

struct Simulation {
    options: SimOptions,
    rng: Rng,
    now_us: u64,
    queue: BinaryHeap<Scheduled>,
    next_order: u64,
    nodes: Vec<Node>,
    clients: Vec<Client>,
    partitions: Partitions,
    faults_active: bool,
    heal_at_us: u64,
    /// Every value chosen, by slot, as first delivered anywhere.
    chosen: BTreeMap<Slot, Value>,
    acked_writes: BTreeSet<(u64, u64)>,
    first_write_after_heal_us: Option<u64>,
    ballots: BTreeSet<u64>,
    first_commit_us: Option<u64>,
    committed_commands: u64,
    snapshots_installed: u64,
    coord: Vec<CoordClient>,
    truth: Truth,
    drift_bound_ppm: u64,
    trace: Vec<String>,
}

impl Simulation {
    fn new(options: SimOptions) -> Simulation {
        let mut rng = Rng::new(options.seed);
        let drift_bound = i64::from(Config::new(NodeId(1), vec![NodeId(1)]).max_clock_drift_ppm);
        let nodes = (0..options.nodes)
            .map(|_| Node {
                storage: MemStorage::new(),
                replica: None,
                incarnation: 0,
                state_machine: StateMachine::in_memory().expect("in-memory database"),
                durable_snapshot: (Slot(0), Vec::new()),
                writes: BTreeSet::new(),
                reads: BTreeMap::new(),
                next_read_id: 1,
                clock_offset_us: rng.below(1_000_000_000),
                drift_ppm: if options.mix.clock_drift {
                    rng.below(2 * drift_bound as u64 + 1) as i64 - drift_bound
                } else {
                    0
                },
                timer: SessionTimer::new(options.sessions.clone()),
                view: ReplicaView::default(),
            })
            .collect();
        let coord = (0..options.coord_clients)
            .map(|c| CoordClient::new(c, options.nodes))
            .collect();
        let clients = (0..options.clients)
            .map(|c| Client::new(c as u64 + 1, options.nodes))
            .collect();
        Simulation {
            heal_at_us: options.fault_phase_us,
            options,
            rng,
            now_us: 0,
            queue: BinaryHeap::new(),
            next_order: 0,
            nodes,
            clients,
            partitions: Partitions::default(),
            faults_active: true,
            chosen: BTreeMap::new(),
            acked_writes: BTreeSet::new(),
            first_write_after_heal_us: None,
            ballots: BTreeSet::new(),
            first_commit_us: None,
            committed_commands: 0,
            snapshots_installed: 0,
            coord,
            truth: Truth::default(),
            drift_bound_ppm: drift_bound as u64,
            trace: Vec::new(),
        }
    }

    fn schedule(&mut self, delay_us: u64, event: Event) {
        self.next_order += 1;
        self.queue.push(Scheduled {
            at_us: self.now_us + delay_us,
            order: self.next_order,
            event,
        });
    }

    fn note(&mut self, line: impl FnOnce() -> String) {
        if self.options.trace {
            let t = self.now_us;
            self.trace.push(format!(
                "[{:>4}.{:06}] {}",
                t / 1_000_000,
                t % 1_000_000,
                line()
            ));
        }
    }

    fn local_now(&self, node: usize) -> Instant {
        let n = &self.nodes[node];
        let elapsed = (self.now_us as i128 * (1_000_000 + n.drift_ppm as i128) / 1_000_000) as u64;
        Instant::from_micros(n.clock_offset_us + elapsed)
    }

    fn config(&self, node: usize) -> Config {
        let members = (1..=self.options.nodes as u32).map(NodeId).collect();
        let mut config = Config::new(NodeId(node as u32 + 1), members);
        config.rng_seed = self
            .options
            .seed
            .wrapping_mul(1_000_003)
            .wrapping_add(node as u64 * 7919 + self.nodes[node].incarnation);
        config.bugs = self.options.bugs.clone();
        config
    }

    fn start_node(&mut self, node: usize) -> Result<(), String> {
        let durable = self.nodes[node]
            .storage
            .load()
            .expect("memory storage loads");
        let now = self.local_now(node);
        // The state machine restarts from its last durable point.
        let (applied, chunks) = self.nodes[node].durable_snapshot.clone();
        let mut state_machine =
            StateMachine::in_memory_with(self.state_machine_options()).expect("in-memory database");
        if applied > Slot(0) {
            state_machine
                .install_snapshot(chunks)
                .map_err(|e| format!("n{} cannot restore its snapshot: {e}", node + 1))?;
        }
        let replica =
            Replica::new(self.config(node), durable, applied, now).expect("valid configuration");
        let view = ReplicaView::read(&state_machine)?;
        let mut sessions = self.options.sessions.clone();
        sessions.bugs = self.options.coord_bugs;
        let n = &mut self.nodes[node];
        n.replica = Some(replica);
        n.state_machine = state_machine;
        n.timer = SessionTimer::new(sessions);
        n.view = view;
        let incarnation = n.incarnation;
        let first_tick = self.rng.below(TICK_US);
        self.schedule(first_tick, Event::Tick { node, incarnation });
        self.drive(node, &[])
    }

    fn state_machine_options(&self) -> synod_kvstore::Options {
        synod_kvstore::Options {
            bugs: self.options.coord_bugs,
            ..synod_kvstore::Options::default()
        }
    }

    /// The quiet time at the end of the run.
    fn quiesce_us(&self) -> u64 {
        if self.coord.is_empty() {
            QUIESCE_US
        } else {
            COORD_QUIESCE_US
        }
    }

    fn run(&mut self) -> Result<(), String> {
        for node in 0..self.options.nodes {
            self.start_node(node)?;
        }
        for node in self.options.campaign_at_start.clone() {
            let now = self.local_now(node);
            self.nodes[node].replica.as_mut().expect("up").campaign(now);
            self.drive(node, &[])?;
        }
        for client in 0..self.clients.len() {
            let delay = 100_000 + self.rng.below(100_000);
            self.schedule(delay, Event::ClientStart { client });
        }
        for client in 0..self.coord.len() {
            let delay = 100_000 + self.rng.below(300_000);
            self.schedule(delay, Event::CoordStart { client });
        }
        if self.options.mix.partitions {
            let delay = 300_000 + self.rng.below(1_500_000);
            self.schedule(delay, Event::Cut);
        }
        if self.options.mix.crashes {
            let delay = 300_000 + self.rng.below(1_500_000);
            self.schedule(delay, Event::Crash);
        }
        self.schedule(self.options.fault_phase_us, Event::EndFaults);
        let end_us = self.heal_at_us + AFTER_HEAL_US + self.quiesce_us();
        while let Some(next) = self.queue.pop() {
            if next.at_us > end_us {
                break;
            }
            self.now_us = next.at_us;
            self.handle(next.event)?;
        }
        self.now_us = end_us;
        self.final_checks()
    }

    fn handle(&mut self, event: Event) -> Result<(), String> {
        match event {
            Event::Tick { node, incarnation } => {
                if self.nodes[node].incarnation == incarnation && self.nodes[node].replica.is_some()
                {
                    let now = self.local_now(node);
                    self.nodes[node].replica.as_mut().expect("up").tick(now);
                    self.drive(node, &[])?;
                    let delay = TICK_US - 500 + self.rng.below(1_000);
                    self.schedule(delay, Event::Tick { node, incarnation });
                }
            }
            Event::Deliver(envelope) => {
                let node = envelope.to.0 as usize - 1;
                if self.nodes[node].replica.is_some() {
                    self.note(|| format!("deliver {}", describe(&envelope)));
                    let now = self.local_now(node);
                    self.nodes[node]
                        .replica
                        .as_mut()
                        .expect("up")
                        .step(now, envelope);
                    self.drive(node, &[])?;
                }
            }
            Event::Request {
                node,
                client,
                request,
            } => self.on_request(node, client, request)?,
            Event::Reply { client, reply } => self.on_reply(client, reply),
            Event::ClientStart { client } => self.client_start(client),
            Event::ClientSend {
                client,
                tag,
                attempt,
            } => self.client_send(client, tag, attempt),
            Event::ClientTimeout {
                client,
                tag,
                attempt,
            } => {
                let current = self.clients[client].current.as_ref();
                if current.is_some_and(|c| c.tag == tag && c.attempt == attempt) {
                    let guess = self.rng.below(self.options.nodes as u64) as usize;
                    self.retry(client, Some(guess), 0);
                }
            }
            Event::Cut => {
                if self.faults_active {
                    let what = self
                        .partitions
                        .cut_random(&mut self.rng, self.options.nodes);
                    self.note(|| format!("partition: {what}"));
                    let delay = 200_000 + self.rng.below(2_000_000);
                    self.schedule(delay, Event::Heal);
                }
            }
            Event::Heal => {
                if self.faults_active {
                    self.partitions.heal();
                    self.note(|| "partition healed".to_string());
                    let delay = 200_000 + self.rng.below(2_000_000);
                    self.schedule(delay, Event::Cut);
                }
            }
            Event::Crash => {
                if self.faults_active {
                    let node = self.rng.below(self.options.nodes as u64) as usize;
                    if self.nodes[node].replica.is_some() {
                        self.crash(node);
                        let delay = 50_000 + self.rng.below(2_000_000);
                        self.schedule(delay, Event::Restart(node));
                    }
                    let delay = 300_000 + self.rng.below(3_000_000);
                    self.schedule(delay, Event::Crash);
                }
            }
            Event::Restart(node) => {
                if self.nodes[node].replica.is_none() {
                    self.note(|| format!("restart n{}", node + 1));
                    self.start_node(node)?;
                }
            }
            Event::Snapshot { to, slot, chunks } => self.install_snapshot(to, slot, chunks)?,
            Event::CoordStart { client } => self.coord_start(client),
            Event::CoordSend {
                client,
                stream,
                seq,
                attempt,
            } => self.coord_send(client, stream, seq, attempt),
            Event::CoordTimeout {
                client,
                stream,
                seq,
                attempt,
            } => self.coord_timeout(client, stream, seq, attempt),
            Event::CoordKeepAlive { client, life } => self.coord_keepalive(client, life),
            Event::CoordReply(reply) => self.on_coord_reply(reply)?,
            Event::ChurnCrash {
                node,
                incarnation,
                ballot,
            } => {
                let n = &self.nodes[node];
                if self.faults_active
                    && n.incarnation == incarnation
                    && n.replica.is_some()
                    && n.timer.leading() == Some(ballot)
                {
                    self.crash(node);
                    let delay = 100_000 + self.rng.below(500_000);
                    self.schedule(delay, Event::Restart(node));
                }
            }
            Event::EndFaults => {
                self.note(|| "faults end; network heals, crashed nodes restart".to_string());
                self.faults_active = false;
                self.partitions.heal();
                for node in 0..self.options.nodes {
                    if self.nodes[node].replica.is_none() {
                        self.start_node(node)?;
                    }
                }
            }
        }
        Ok(())
    }

    fn crash(&mut self, node: usize) {
        self.note(|| format!("crash n{}", node + 1));
        if self.nodes[node].timer.leading().is_some() {
            self.truth.term_ended(node, self.now_us);
        }
        let n = &mut self.nodes[node];
        n.replica = None;
        n.storage.crash();
        n.incarnation += 1;
        n.writes.clear();
        n.reads.clear();
    }

    /// Carries out a node's `Ready`: persist, send, apply, serve reads.
    /// `lease_reads` are reads released in the same call that asked for
    /// them, i.e. served under the lease with no round trip.
    fn drive(&mut self, node: usize, lease_reads: &[ReadId]) -> Result<(), String> {
        if self.nodes[node].replica.is_none() {
            return Ok(());
        }
        self.lead_sessions(node)?;
        let replica = self.nodes[node].replica.as_mut().expect("up");
        let ready = replica.ready();
        self.nodes[node]
            .storage
            .persist(&ready.persist)
            .expect("memory storage persists");
        for envelope in ready.messages {
            self.send(envelope);
        }
        for (slot, value) in ready.committed {
            self.apply(node, slot, value)?;
        }
        for id in ready.reads {
            let (client, tag, key) = self.nodes[node].reads.remove(&id).expect("read known");
            if lease_reads.contains(&id) {
                let applied = self.nodes[node].applied();
                let newest = self.chosen.keys().next_back().copied().unwrap_or_default();
                if newest > applied {
                    return Err(format!(
                        "stale lease read at n{}: applied through slot {applied} but slot {newest} is chosen",
                        node + 1
                    ));
                }
            }
            let response = self.nodes[node]
                .state_machine
                .read(&Op::Get(Get { key }))
                .map_err(|e| e.to_string())?;
            let value = read_value(&response);
            self.reply(
                node,
                client,
                Reply::Done {
                    tag,
                    outcome: KvOutcome::Get(value),
                },
            );
        }
        for id in ready.failed_reads {
            if let Some((client, tag, _)) = self.nodes[node].reads.remove(&id) {
                self.reply(node, client, Reply::Redirect { tag, leader: None });
            }
        }
        for command in ready.unproposed {
            let (client, seq) = WriteCommand::origin(&command);
            if is_coord(client) {
                if self.nodes[node].writes.remove(&(client, seq)) {
                    let answer = CoordAnswer::Redirect(None);
                    self.coord_reply(CoordReply {
                        from: client,
                        seq,
                        answer,
                    });
                }
                continue;
            }
            if self.nodes[node].writes.remove(&(client, seq)) {
                let redirect = Reply::Redirect {
                    tag: seq,
                    leader: None,
                };
                self.reply(node, Client::index_of(client), redirect);
            }
        }
        for peer in ready.snapshots_to_send {
            self.send_snapshot(node, peer.0 as usize - 1);
        }
        self.maybe_compact(node)
    }

    fn apply(&mut self, node: usize, slot: Slot, value: Value) -> Result<(), String> {
        let applied = self.nodes[node].applied();
        if slot != applied.next() {
            return Err(format!("n{} applied slot {slot} after {applied}", node + 1));
        }
        let first = !self.chosen.contains_key(&slot);
        match self.chosen.get(&slot) {
            Some(existing) if *existing != value => {
                return Err(format!(
                    "slot {slot} has two values: {} and {} (at n{})",
                    describe_value(existing),
                    describe_value(&value),
                    node + 1
                ));
            }
            Some(_) => {}
            None => {
                self.first_commit_us.get_or_insert(self.now_us);
                if let Value::Commands(commands) = &value {
                    self.committed_commands += commands.len() as u64;
                }
                self.chosen.insert(slot, value.clone());
            }
        }
        let commands = match value {
            Value::Noop => Vec::new(),
            Value::Commands(commands) => commands,
        };
        let revision_before = self.nodes[node].state_machine.revision();
        let responses = self.nodes[node]
            .state_machine
            .apply(slot.0, &commands)
            .map_err(|e| e.to_string())?;
        let effects = self.nodes[node].state_machine.take_effects();
        let now_ms = self.local_now(node).as_micros() / 1_000;
        self.nodes[node]
            .timer
            .observe(now_ms, &effects.session_events);
        let mut violations = Vec::new();
        if first {
            self.truth.first_apply(
                self.now_us,
                &effects.session_events,
                self.drift_bound_ppm,
                &mut violations,
            );
        }
        let n = &mut self.nodes[node];
        let applied = AppliedSlot {
            commands: &commands,
            responses: &responses,
            effects: &effects,
            revision_before,
        };
        n.view.check_slot(
            &n.state_machine,
            &applied,
            &mut self.truth.leaders,
            &mut violations,
        )?;
        self.report(node, violations)?;
        for (bytes, response) in commands.iter().zip(responses) {
            let (client, seq) = WriteCommand::origin(bytes);
            if is_coord(client) {
                if self.nodes[node].writes.remove(&(client, seq)) {
                    let answer = CoordAnswer::Done(response);
                    self.coord_reply(CoordReply {
                        from: client,
                        seq,
                        answer,
                    });
                }
                continue;
            }
            if let Some(outcome) = write_outcome(&response) {
                if self.nodes[node].writes.remove(&(client, seq)) {
                    let tag = seq;
                    self.reply(node, Client::index_of(client), Reply::Done { tag, outcome });
                }
            }
        }
        Ok(())
    }

    fn send(&mut self, envelope: Envelope) {
        if let Message::Prepare { ballot, .. } = envelope.message {
            self.ballots.insert(ballot.0);
        }
        let (from, to) = (envelope.from.0 as usize - 1, envelope.to.0 as usize - 1);
        if self.partitions.blocks(from, to) {
            self.note(|| format!("cut    {}", describe(&envelope)));
            return;
        }
        let copies = self.copies();
        if copies == 0 {
            self.note(|| format!("lost   {}", describe(&envelope)));
        }
        for _ in 0..copies {
            let delay = self.delay();
            self.schedule(delay, Event::Deliver(envelope.clone()));
        }
    }

    /// How many copies of a message arrive: 0 (lost), 1, or 2 (duplicated).
    fn copies(&mut self) -> usize {
        if !self.faults_active {
            return 1;
        }
        let mix = self.options.mix;
        if self.rng.chance(mix.loss_per_mille, 1000) {
            0
        } else if self.rng.chance(mix.duplicate_per_mille, 1000) {
            2
        } else {
            1
        }
    }

    /// Sends a client's request to `node`: lost while faults are active
    /// (the client's attempt timeout retries it), otherwise delivered after
    /// a network delay.
    fn send_request(&mut self, node: usize, client: usize, request: Request) {
        if self.faults_active && self.rng.chance(self.options.mix.loss_per_mille, 1000) {
            return;
        }
        let delay = self.delay();
        self.schedule(
            delay,
            Event::Request {
                node,
                client,
                request,
            },
        );
    }

    fn delay(&mut self) -> u64 {
        let mix = self.options.mix;
        mix.min_delay_us + self.rng.below(mix.max_delay_us - mix.min_delay_us + 1)
    }

    fn into_report(self) -> SimReport {
        SimReport {
            simulated_us: self.now_us,
            committed_commands: self.committed_commands,
            history_len: self.history().len(),
            ballots_tried: self.ballots.len(),
            recovery_us: self
                .first_write_after_heal_us
                .map_or(0, |t| t - self.heal_at_us),
            first_commit_us: self.first_commit_us,
            snapshots_installed: self.snapshots_installed,
            coord: self
                .coord
                .iter()
                .fold(CoordStats::default(), |a, c| a.add(&c.stats)),
            sessions_expired: self.truth.expired,
            sessions_closed: self.truth.closed,
            terms: self.truth.terms.len(),
            closest_early_us: self.truth.closest_early_us,
            closest_late_us: self.truth.closest_late_us,
            trace: self.trace,
        }
    }
}
