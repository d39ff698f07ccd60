//! A deterministic simulator of whole Synod clusters.
//!
//! It runs `synod::node::Node`, the node `synod start` runs, on every
//! machine, through the same rounds as the tokio driver (see `machine`), on
//! a simulated network (loss, duplication, reordering, delay, partitions)
//! and clock (per-node drift within the configured bound), with crashes
//! that keep only what the acceptor log and the state machine's disk
//! (`SimRedbBackend`) synced; a crash may fall between a round's early
//! messages and its fsync. Nodes compact their logs every few dozen slots,
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
//! Every node runs the node runtime's own session and key-expiry clocks on
//! its drifting clock: while it leads, it proposes session expiries,
//! lock-delay ends and TTL checkpoints.

mod clients;
mod coord;
mod coord_node;
mod coord_oracles;
mod coord_traffic;
mod machine;
pub mod membership;
pub mod network;
mod oracles;
mod session_oracles;
mod snapshots;
mod trace;
pub mod workload;

pub use coord_oracles::{CoordOracles, Oracle};
pub use trace::describe;

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::panic::{catch_unwind, AssertUnwindSafe};

use synod_paxos::{
    Ballot, Config, Envelope, Instant, Message, NodeId, ReadId, Rng, Slot, Storage, Value,
};

pub use coord::CoordStats;
use coord::{CoordClient, CoordReply};
use coord_oracles::ReplicaView;
use membership::MembershipOracle;
use network::{FaultMix, Partitions};
use session_oracles::Truth;
use synod::node::{CompactionPolicy, Node, NodeConfig};
use synod_kvstore::{
    SessionClockConfig, SimDisk, SimRedbBackend, SnapshotChunk, StateMachine, WalLog, WalOptions,
};
use workload::{Client, Reply, Request};

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
/// Log segments this large, so that runs start new segments and delete
/// old ones.
const WAL_SEGMENT_BYTES: u64 = 16 * 1024;
/// A node flushes its state machine every this many applied slots...
const FLUSH_EVERY_SLOTS: u64 = 20;
/// ...and compacts its log once this many slots were applied since the
/// last compaction...
const COMPACT_EVERY_SLOTS: u64 = 40;
/// ...keeping this many recent slots for followers that lag a little.
const COMPACT_KEEP_SLOTS: u64 = 8;
/// Snapshots stream in chunks of this many bytes...
const SNAPSHOT_CHUNK_BYTES: usize = 512;
/// ...and a whole stream takes up to this long on the link besides its
/// network delays (a time drawn per run), so that in slow runs a stream
/// outlasts the election timeout after which its source offers the
/// snapshot again, and two streams overlap at the receiver.
const MAX_SNAPSHOT_STREAM_US: u64 = 1_500_000;

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
    /// Membership changes during the fault phase (see [`membership`]), with
    /// this many empty machines that join as new members.
    pub membership_changes: bool,
    /// Machines beyond the founding `nodes` (joining ones).
    pub spares: usize,
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
            membership_changes: false,
            spares: 0,
        }
    }
}

/// What a successful run measured.
#[derive(Debug, Default)]
pub struct SimReport {
    pub simulated_us: u64,
    /// Membership changes chosen.
    pub membership_changes: u64,
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
    /// A full log disk has room again.
    DiskFreed(usize),
    EndFaults,
    /// One chunk of a state-machine snapshot `from` streams to `to`
    /// (while `to` runs `incarnation`).
    SnapshotChunk {
        to: usize,
        incarnation: u64,
        from: NodeId,
        chunk: SnapshotChunk,
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
    /// Ask the leader for the next membership change.
    MembershipChange,
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

/// One simulated machine: its disks survive crashes, the node does not.
struct Machine {
    /// The acceptor's write-ahead log, while the machine is up...
    log: Option<WalLog<SimDisk>>,
    /// ...on this disk: what was synced survives a crash, and a crash may
    /// keep a torn prefix of what was not.
    log_disk: SimDisk,
    /// The state machine's disk: what was synced survives a crash.
    disk: SimRedbBackend,
    /// A failed fsync was injected on `disk`: a state machine error then
    /// stops the node, as it stops `synod start`.
    state_sync_fails: bool,
    /// The node `synod start` runs, while the machine is up.
    node: Option<Node>,
    incarnation: u64,
    /// Reads asked of this node: id → (client, attempt tag).
    reads: BTreeMap<ReadId, (usize, u64)>,
    clock_offset_us: u64,
    drift_ppm: i64,
    /// The ballot the node's leader clocks ran for at the last look.
    leading: Option<Ballot>,
    /// The coordination state the oracles last saw on this replica.
    view: ReplicaView,
}

impl Machine {
    /// The slot the state machine applied through (0 while down).
    fn applied(&self) -> Slot {
        self.node
            .as_ref()
            .map_or(Slot(0), |n| Slot(n.state_machine().applied_index()))
    }

    /// The state machine's hash (`None` while down or unreadable).
    fn state_hash(&self) -> Option<u64> {
        self.node.as_ref()?.state_machine().state_hash().ok()
    }
}

struct Simulation {
    options: SimOptions,
    rng: Rng,
    now_us: u64,
    queue: BinaryHeap<Scheduled>,
    next_order: u64,
    nodes: Vec<Machine>,
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
    /// How long a snapshot stream takes on the link this run.
    snapshot_stream_us: u64,
    coord: Vec<CoordClient>,
    truth: Truth,
    drift_bound_ppm: u64,
    trace: Vec<String>,
    membership_oracle: MembershipOracle,
}

impl Simulation {
    fn new(options: SimOptions) -> Simulation {
        let mut rng = Rng::new(options.seed);
        let drift_bound = i64::from(Config::new(NodeId(1), vec![NodeId(1)]).max_clock_drift_ppm);
        let nodes = (0..options.nodes + options.spares)
            .map(|_| Machine {
                log: None,
                log_disk: SimDisk::new(),
                disk: SimRedbBackend::new(),
                state_sync_fails: false,
                node: None,
                incarnation: 0,
                reads: BTreeMap::new(),
                clock_offset_us: rng.below(1_000_000_000),
                drift_ppm: if options.mix.clock_drift {
                    rng.below(2 * drift_bound as u64 + 1) as i64 - drift_bound
                } else {
                    0
                },
                leading: None,
                view: ReplicaView::default(),
            })
            .collect();
        let coord = (0..options.coord_clients)
            .map(|c| CoordClient::new(c, options.nodes))
            .collect();
        let clients = (0..options.clients)
            .map(|c| Client::new(c as u64 + 1, options.nodes))
            .collect();
        let snapshot_stream_us = rng.below(MAX_SNAPSHOT_STREAM_US + 1);
        Simulation {
            heal_at_us: options.fault_phase_us,
            snapshot_stream_us,
            membership_oracle: MembershipOracle::new(options.nodes),
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
        // Spare machines join: they know no membership until a snapshot.
        let members = if node < self.options.nodes {
            (1..=self.options.nodes as u32).map(NodeId).collect()
        } else {
            Vec::new()
        };
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
        let log = WalLog::open_on(self.nodes[node].log_disk.clone(), self.wal_options())
            .map_err(|e| format!("n{} cannot open its log: {e}", node + 1))?;
        let durable = log.load().map_err(|e| e.to_string())?;
        let now = self.local_now(node);
        // The state machine restarts from what its disk synced.
        let state_machine = StateMachine::open_on_backend(
            self.nodes[node].disk.clone(),
            self.state_machine_options(),
        )
        .map_err(|e| format!("n{} cannot open its state machine: {e}", node + 1))?;
        let view = ReplicaView::read(&state_machine)?;
        let mut sessions = self.options.sessions.clone();
        sessions.bugs = self.options.coord_bugs;
        let config = NodeConfig {
            paxos: self.config(node),
            compaction: CompactionPolicy {
                flush_every_slots: FLUSH_EVERY_SLOTS,
                every_slots: COMPACT_EVERY_SLOTS,
                keep_slots: COMPACT_KEEP_SLOTS,
            },
            sessions,
            first_anonymous_seq: ((node as u64 + 1) << 48) | (self.nodes[node].incarnation << 32),
            founding: Vec::new(),
        };
        let started = Node::new(config, durable, state_machine, now).expect("valid configuration");
        let n = &mut self.nodes[node];
        n.node = Some(started);
        n.log = Some(log);
        n.view = view;
        n.leading = None;
        let incarnation = n.incarnation;
        let first_tick = self.rng.below(TICK_US);
        self.schedule(first_tick, Event::Tick { node, incarnation });
        self.drive(node, None)
    }

    fn wal_options(&self) -> WalOptions {
        let mut options = WalOptions::with_segment_bytes(WAL_SEGMENT_BYTES);
        options.bugs = self.options.coord_bugs;
        options
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
        for node in 0..self.nodes.len() {
            self.start_node(node)?;
        }
        if self.options.membership_changes {
            let delay = 300_000 + self.rng.below(500_000);
            self.schedule(delay, Event::MembershipChange);
        }
        for node in self.options.campaign_at_start.clone() {
            let now = self.local_now(node);
            self.nodes[node].node.as_mut().expect("up").campaign(now);
            self.drive(node, None)?;
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
                if self.nodes[node].incarnation == incarnation && self.nodes[node].node.is_some() {
                    let now = self.local_now(node);
                    self.nodes[node].node.as_mut().expect("up").tick(now);
                    self.drive(node, None)?;
                    let delay = TICK_US - 500 + self.rng.below(1_000);
                    self.schedule(delay, Event::Tick { node, incarnation });
                }
            }
            Event::Deliver(envelope) => {
                let node = envelope.to.0 as usize - 1;
                if self.nodes[node].node.is_some() {
                    self.note(|| format!("deliver {}", describe(&envelope)));
                    let now = self.local_now(node);
                    self.nodes[node]
                        .node
                        .as_mut()
                        .expect("up")
                        .step(now, envelope);
                    self.drive(node, None)?;
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
                    let guess = self.rng.below(self.nodes.len() as u64) as usize;
                    self.retry(client, Some(guess), 0);
                }
            }
            Event::Cut => {
                if self.faults_active {
                    let nodes = self.nodes.len();
                    let leader = self.nodes.iter().position(|n| n.leading.is_some());
                    let what = match (self.options.mix.isolate_leaders, leader) {
                        (true, Some(leader)) => self.partitions.isolate(leader, nodes),
                        _ => self.partitions.cut_random(&mut self.rng, nodes),
                    };
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
                    let node = self.rng.below(self.nodes.len() as u64) as usize;
                    if self.nodes[node].node.is_some() {
                        match self.rng.below(4) {
                            // The next fsync of its log fails: it stops then.
                            0 => {
                                self.note(|| format!("n{}'s next log fsync fails", node + 1));
                                self.nodes[node].log_disk.fail_next_syncs(1);
                            }
                            // The next fsync of its state machine fails (a
                            // flush, or a snapshot install): it stops then.
                            1 if self.rng.chance(1, 2) => {
                                self.note(|| format!("n{}'s next state fsync fails", node + 1));
                                self.nodes[node].disk.fail_next_syncs(1);
                                self.nodes[node].state_sync_fails = true;
                            }
                            // Its log disk fills up for a while.
                            1 => {
                                let disk = &self.nodes[node].log_disk;
                                let used: u64 = disk
                                    .file_names()
                                    .iter()
                                    .filter_map(|f| disk.file_bytes(f))
                                    .map(|b| b.len() as u64)
                                    .sum();
                                let room = self.rng.below(4_096);
                                disk.set_capacity_bytes(Some(used + room));
                                self.note(|| format!("n{}'s log disk is full", node + 1));
                                let delay = 100_000 + self.rng.below(1_000_000);
                                self.schedule(delay, Event::DiskFreed(node));
                            }
                            _ => {
                                self.crash(node);
                                let delay = 50_000 + self.rng.below(2_000_000);
                                self.schedule(delay, Event::Restart(node));
                            }
                        }
                    }
                    let delay = 300_000 + self.rng.below(3_000_000);
                    self.schedule(delay, Event::Crash);
                }
            }
            Event::Restart(node) => {
                if self.nodes[node].node.is_none() {
                    if self.options.mix.crashes && self.rng.chance(1, 4) {
                        self.flip_a_synced_bit(node)?;
                    }
                    self.note(|| format!("restart n{}", node + 1));
                    self.start_node(node)?;
                }
            }
            Event::DiskFreed(node) => {
                self.nodes[node].log_disk.set_capacity_bytes(None);
            }
            Event::SnapshotChunk {
                to,
                incarnation,
                from,
                chunk,
            } => self.snapshot_chunk(to, incarnation, from, chunk)?,
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
                    && n.node.as_ref().is_some_and(|n| n.leading() == Some(ballot))
                {
                    self.crash(node);
                    let delay = 100_000 + self.rng.below(500_000);
                    self.schedule(delay, Event::Restart(node));
                }
            }
            Event::MembershipChange => self.membership_change()?,
            Event::EndFaults => {
                self.note(|| "faults end; network heals, crashed nodes restart".to_string());
                self.faults_active = false;
                self.partitions.heal();
                for node in 0..self.nodes.len() {
                    if self.nodes[node].node.is_none() {
                        self.start_node(node)?;
                    }
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
            membership_changes: self.membership_oracle.changes,
            trace: self.trace,
        }
    }
}
