//! The simulated network: delay, loss, duplication, reordering and
//! partitions (asymmetric ones too), all drawn from the run's seed.

use std::collections::BTreeSet;

use synod_paxos::{Envelope, Message, Rng};

use super::events::Event;
use super::simulation::Simulation;
use super::trace::describe;
use super::workload::Request;

/// How hostile the network and the environment are in one run.
#[derive(Clone, Copy, Debug)]
pub struct FaultMix {
    /// Name shown when a seed fails.
    pub name: &'static str,
    /// Messages lost, per thousand.
    pub loss_per_mille: u64,
    /// Messages delivered twice, per thousand.
    pub duplicate_per_mille: u64,
    /// One-way delay is uniform in `[min_delay_us, max_delay_us]`; a wide
    /// range reorders messages.
    pub min_delay_us: u64,
    /// See `min_delay_us`.
    pub max_delay_us: u64,
    /// Nodes are cut off from each other now and then.
    pub partitions: bool,
    /// Nodes crash and restart with only their durable state.
    pub crashes: bool,
    /// Chance (per mille) that a machine crashes between a round's early
    /// messages and its fsync when that round raises the node's promise
    /// (a new leader's first round): a lost promise hurts there.
    pub promise_crash_per_mille: u64,
    /// Partitions cut the leader off (rather than a random node), so that
    /// another node is elected while the old leader still leads.
    pub isolate_leaders: bool,
    /// Node clocks run at different rates within the configured bound.
    pub clock_drift: bool,
    /// Every leader crashes after 0.8 to 1.6 s of leadership (and restarts
    /// soon after), so leaders change often but each term lasts at least
    /// twice the simulated checkpoint interval.
    pub leader_churn: bool,
    /// How long faults are injected before everything heals.
    pub fault_phase_us: u64,
}

impl FaultMix {
    /// Whether every proposal of a leader that keeps a majority commits
    /// within a round trip: no loss, no partitions, no crash except of the
    /// leader itself. Then the `abandon` oracle also bounds expiry while
    /// leaders change.
    pub fn commits_promptly(&self) -> bool {
        self.loss_per_mille == 0 && !self.partitions && !self.crashes
    }
}

/// The fault mixes the default test run cycles through.
pub const FAULT_MIXES: [FaultMix; 7] = [
    FaultMix {
        name: "calm",
        loss_per_mille: 0,
        duplicate_per_mille: 0,
        min_delay_us: 100,
        max_delay_us: 400,
        partitions: false,
        crashes: false,
        promise_crash_per_mille: 0,
        isolate_leaders: false,
        clock_drift: false,
        leader_churn: false,
        fault_phase_us: 6_000_000,
    },
    FaultMix {
        name: "lossy",
        loss_per_mille: 100,
        duplicate_per_mille: 50,
        min_delay_us: 100,
        max_delay_us: 5_000,
        partitions: false,
        crashes: false,
        promise_crash_per_mille: 0,
        isolate_leaders: false,
        clock_drift: true,
        leader_churn: false,
        fault_phase_us: 6_000_000,
    },
    FaultMix {
        name: "partitions",
        loss_per_mille: 10,
        duplicate_per_mille: 10,
        min_delay_us: 100,
        max_delay_us: 2_000,
        partitions: true,
        crashes: false,
        promise_crash_per_mille: 0,
        isolate_leaders: false,
        clock_drift: true,
        leader_churn: false,
        fault_phase_us: 6_000_000,
    },
    FaultMix {
        name: "crashes",
        loss_per_mille: 10,
        duplicate_per_mille: 10,
        min_delay_us: 100,
        max_delay_us: 2_000,
        partitions: false,
        crashes: true,
        promise_crash_per_mille: 150,
        isolate_leaders: false,
        clock_drift: true,
        leader_churn: false,
        fault_phase_us: 6_000_000,
    },
    FaultMix {
        name: "chaos",
        loss_per_mille: 50,
        duplicate_per_mille: 30,
        min_delay_us: 50,
        max_delay_us: 10_000,
        partitions: true,
        crashes: true,
        promise_crash_per_mille: 150,
        isolate_leaders: false,
        clock_drift: true,
        leader_churn: false,
        fault_phase_us: 6_000_000,
    },
    FaultMix {
        name: "churn",
        loss_per_mille: 0,
        duplicate_per_mille: 0,
        min_delay_us: 100,
        max_delay_us: 2_000,
        partitions: false,
        crashes: false,
        promise_crash_per_mille: 0,
        isolate_leaders: false,
        clock_drift: true,
        leader_churn: true,
        fault_phase_us: 10_000_000,
    },
    FaultMix {
        name: "elections",
        loss_per_mille: 0,
        duplicate_per_mille: 0,
        min_delay_us: 100,
        max_delay_us: 2_000,
        partitions: true,
        crashes: false,
        promise_crash_per_mille: 500,
        isolate_leaders: true,
        clock_drift: true,
        leader_churn: false,
        fault_phase_us: 8_000_000,
    },
];

/// Which directed links are cut.
#[derive(Default)]
pub struct Partitions {
    cut: BTreeSet<(usize, usize)>,
}

impl Partitions {
    /// True if a message from `from` to `to` is dropped.
    pub fn blocks(&self, from: usize, to: usize) -> bool {
        self.cut.contains(&(from, to))
    }

    /// Cuts `victim` off from every other node.
    pub fn isolate(&mut self, victim: usize, nodes: usize) -> String {
        self.cut.clear();
        for other in (0..nodes).filter(|o| *o != victim) {
            self.cut.insert((victim, other));
            self.cut.insert((other, victim));
        }
        format!("isolate n{}", victim + 1)
    }

    /// Cuts a random set of links among `nodes`: one node isolated, a
    /// minority split off, or one direction of one link.
    pub fn cut_random(&mut self, rng: &mut Rng, nodes: usize) -> String {
        self.cut.clear();
        match rng.below(3) {
            0 => {
                let victim = rng.below(nodes as u64) as usize;
                self.isolate(victim, nodes)
            }
            1 => {
                let minority: BTreeSet<usize> = (0..nodes)
                    .filter(|_| rng.chance(1, 2))
                    .take(nodes / 2)
                    .collect();
                for a in &minority {
                    for b in (0..nodes).filter(|b| !minority.contains(b)) {
                        self.cut.insert((*a, b));
                        self.cut.insert((b, *a));
                    }
                }
                format!(
                    "split off {:?}",
                    minority.iter().map(|n| n + 1).collect::<Vec<_>>()
                )
            }
            _ => {
                let from = rng.below(nodes as u64) as usize;
                let to = (from + 1 + rng.below(nodes as u64 - 1) as usize) % nodes;
                self.cut.insert((from, to));
                format!("cut n{} -> n{} only", from + 1, to + 1)
            }
        }
    }

    /// Restores every link.
    pub fn heal(&mut self) {
        self.cut.clear();
    }
}

/// Delivery: what the simulated network does to each message.
impl Simulation {
    pub(super) fn send(&mut self, envelope: Envelope) {
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
    pub(super) fn copies(&mut self) -> usize {
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
    pub(super) fn send_request(&mut self, node: usize, client: usize, request: Request) {
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

    pub(super) fn delay(&mut self) -> u64 {
        let mix = self.options.mix;
        mix.min_delay_us + self.rng.below(mix.max_delay_us - mix.min_delay_us + 1)
    }
}
