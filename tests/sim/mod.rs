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
//!
//! Where things are: this file is the run API ([`SimOptions`], [`run`],
//! [`SimReport`]); `events` the events and their queue order; `simulation`
//! the driver (the event loop and what each event does); `machine` a
//! simulated machine and how its node is driven, crashed and restarted;
//! `network` the fault mixes, partitions and message delivery; `workload`,
//! `clients` and the `coord*` files the simulated clients; `oracles`,
//! `coord_oracles`, `session_oracles` and `membership` the checks.

mod clients;
mod coord;
mod coord_node;
mod coord_oracles;
mod coord_traffic;
mod events;
mod machine;
pub mod membership;
pub mod network;
mod oracles;
mod session_oracles;
mod simulation;
mod snapshots;
mod trace;
pub mod workload;

pub use coord_oracles::{CoordOracles, Oracle};
pub use trace::describe;

use std::panic::{catch_unwind, AssertUnwindSafe};

pub use coord::CoordStats;
use events::Event;
use machine::Machine;
use network::FaultMix;
use simulation::Simulation;
use synod_kvstore::SessionClockConfig;

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
