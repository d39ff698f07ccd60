//! The simulation's driver: the cluster's machines, clients and the
//! oracles' state, the event loop, and what each event does.

use std::collections::{BTreeMap, BTreeSet, BinaryHeap};

use synod::node::{CompactionPolicy, Node, NodeConfig};
use synod_kvstore::{SimDisk, SimRedbBackend, StateMachine, WalLog, WalOptions};
use synod_paxos::{Config, Instant, NodeId, Rng, Slot, Storage, Value};

use super::coord::CoordClient;
use super::coord_oracles::ReplicaView;
use super::events::Scheduled;
use super::membership::MembershipOracle;
use super::network::Partitions;
use super::session_oracles::Truth;
use super::workload::Client;
use super::*;

pub(super) struct Simulation {
    pub(super) options: SimOptions,
    pub(super) rng: Rng,
    pub(super) now_us: u64,
    pub(super) queue: BinaryHeap<Scheduled>,
    pub(super) next_order: u64,
    pub(super) nodes: Vec<Machine>,
    pub(super) clients: Vec<Client>,
    pub(super) partitions: Partitions,
    pub(super) faults_active: bool,
    pub(super) heal_at_us: u64,
    /// The nodes that stay down when the faults heal, in runs that leave
    /// a minority down: the others, a bare majority, must still make
    /// progress.
    pub(super) left_down: BTreeSet<usize>,
    /// Every value chosen, by slot, as first delivered anywhere.
    pub(super) chosen: BTreeMap<Slot, Value>,
    pub(super) acked_writes: BTreeSet<(u64, u64)>,
    pub(super) first_write_after_heal_us: Option<u64>,
    pub(super) ballots: BTreeSet<u64>,
    pub(super) first_commit_us: Option<u64>,
    pub(super) committed_commands: u64,
    pub(super) snapshots_installed: u64,
    /// How long a snapshot stream takes on the link this run.
    pub(super) snapshot_stream_us: u64,
    pub(super) coord: Vec<CoordClient>,
    pub(super) truth: Truth,
    pub(super) drift_bound_ppm: u64,
    pub(super) trace: Vec<String>,
    pub(super) membership_oracle: MembershipOracle,
}

impl Simulation {
    pub(super) fn new(options: SimOptions) -> Simulation {
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
                log_queue: Vec::new(),
                relied_on: None,
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
            left_down: BTreeSet::new(),
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

    pub(super) fn schedule(&mut self, delay_us: u64, event: Event) {
        self.next_order += 1;
        self.queue.push(Scheduled {
            at_us: self.now_us + delay_us,
            order: self.next_order,
            event,
        });
    }

    pub(super) fn note(&mut self, line: impl FnOnce() -> String) {
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

    pub(super) fn local_now(&self, node: usize) -> Instant {
        let n = &self.nodes[node];
        let elapsed = (self.now_us as i128 * (1_000_000 + n.drift_ppm as i128) / 1_000_000) as u64;
        Instant::from_micros(n.clock_offset_us + elapsed)
    }

    pub(super) fn config(&self, node: usize) -> Config {
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

    pub(super) fn start_node(&mut self, node: usize) -> Result<(), String> {
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

    pub(super) fn wal_options(&self) -> WalOptions {
        let mut options = WalOptions::with_segment_bytes(WAL_SEGMENT_BYTES);
        options.bugs = self.options.coord_bugs;
        options
    }

    pub(super) fn state_machine_options(&self) -> synod_kvstore::Options {
        synod_kvstore::Options {
            bugs: self.options.coord_bugs,
            ..synod_kvstore::Options::default()
        }
    }

    /// The quiet time at the end of the run.
    pub(super) fn quiesce_us(&self) -> u64 {
        if self.coord.is_empty() {
            QUIESCE_US
        } else {
            COORD_QUIESCE_US
        }
    }

    pub(super) fn run(&mut self) -> Result<(), String> {
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

    pub(super) fn handle(&mut self, event: Event) -> Result<(), String> {
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
            Event::LogSync { node, incarnation } => self.on_log_sync(node, incarnation)?,
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
                                self.crash(node)?;
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
                if self.nodes[node].node.is_none() && !self.left_down.contains(&node) {
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
                    self.crash(node)?;
                    let delay = 100_000 + self.rng.below(500_000);
                    self.schedule(delay, Event::Restart(node));
                }
            }
            Event::MembershipChange => self.membership_change()?,
            Event::EndFaults => {
                self.note(|| "faults end; network heals, crashed nodes restart".to_string());
                self.faults_active = false;
                self.partitions.heal();
                self.left_down = self.choose_left_down();
                for node in self.left_down.clone() {
                    self.note(|| format!("n{} stays down", node + 1));
                    if self.nodes[node].node.is_some() {
                        self.crash(node)?;
                    }
                }
                for node in 0..self.nodes.len() {
                    if self.nodes[node].node.is_none() && !self.left_down.contains(&node) {
                        self.start_node(node)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// In half the runs with crashes (and no membership changes), a
    /// minority of the nodes stays down after the faults heal, the leader
    /// among them if there is one: a bare majority must then make progress
    /// on its own, as after `kill -9` of a real leader. A node whose own
    /// acceptor stopped counting would stall such a majority; with every
    /// node back, the others would hide it.
    fn choose_left_down(&mut self) -> BTreeSet<usize> {
        let nodes = self.options.nodes;
        let mut down = BTreeSet::new();
        if !self.options.mix.crashes || self.options.membership_changes || !self.rng.chance(1, 2) {
            return down;
        }
        down.extend((0..nodes).find(|n| self.nodes[*n].leading.is_some()));
        while down.len() < (nodes - 1) / 2 {
            down.insert(self.rng.below(nodes as u64) as usize);
        }
        down
    }

    pub(super) fn into_report(self) -> SimReport {
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
