//! The knobs of one replica, with their checks.

use std::time::Duration;

use crate::message::MESSAGE_OVERHEAD_BYTES;
use crate::types::{NodeId, COMMAND_OVERHEAD_BYTES, SLOT_OVERHEAD_BYTES};

/// How one replica behaves. Every member of a cluster should use the same
/// timing values; `id` and `rng_seed` differ per node.
#[derive(Clone, Debug)]
pub struct Config {
    /// This node.
    pub id: NodeId,
    /// The cluster's founding voters, this node included, used until the
    /// membership is known from the log or a snapshot
    /// ([`DurableState::membership`](crate::DurableState)); empty for a node
    /// that joins a running cluster and learns its membership there.
    pub members: Vec<NodeId>,
    /// How often the leader sends heartbeats (and retransmits unacknowledged
    /// accepts).
    pub heartbeat_interval: Duration,
    /// A follower that has not heard a leader for a random time in
    /// `[election_timeout, 2 × election_timeout]` starts Phase 1.
    pub election_timeout: Duration,
    /// How long an acknowledgment of a leader binds the acceptor not to
    /// promise another node; the leader's lease is derived from it.
    pub lease: Duration,
    /// Bound on clock rate error, in parts per million: a node's clock runs
    /// between `1 − d` and `1 + d` times real time.
    pub max_clock_drift_ppm: u32,
    /// First backoff after a failed Phase 1; doubles per failure.
    pub backoff_base: Duration,
    /// Upper bound of the backoff.
    pub backoff_cap: Duration,
    /// Most slots the leader keeps in flight (proposed, not yet chosen). Small on purpose:
    /// every slot costs an fsync-gated round and a state-machine commit on each node, so under
    /// load it is cheaper to let commands queue and share a slot than to give each its own
    /// (measured on a 3-node loopback cluster: 8 instead of 64 took 64 clients from ~4.3k to
    /// ~6.3k puts/s and 256 clients from ~6.5k to ~11.5k, one client unchanged). Two, one
    /// slot on the disks while the next fills, took 64 clients at the leader from 7.0k to 8.5k
    /// puts/s (205 to 171 µs of CPU each) and cut CPU per put at 256 clients by 7-14 % in
    /// five of six alternating runs against 8, one client unchanged (`scripts/cpu-per-op.sh`).
    pub max_inflight_slots: u64,
    /// Thrifty Phase 2: when `Some(t)`, the leader asks only the fastest
    /// quorum for votes on a new slot (the followers that completed the
    /// last chosen slot's quorum first) and sends the other members the
    /// values as `lazy` Accepts, which they hold without syncing or
    /// answering; a slot not chosen after `t` is asked of every voter. One
    /// slot per heartbeat interval is asked of every voter, so the choice
    /// follows whichever followers are fastest. `None`: every voter is
    /// asked for every slot.
    ///
    /// Fewer votes per slot means one fsync and one answer less per slot in
    /// a cluster of three, and one disk flush less competing with the
    /// quorum's when nodes share a disk. The price: a slot waits `t` longer
    /// when the asked follower stalls. Must be shorter than
    /// `heartbeat_interval` (which retransmits to every voter anyway).
    pub accept_fallback: Option<Duration>,
    /// Most commands batched into one slot.
    pub max_batch_commands: usize,
    /// Most command bytes batched into one slot (a single larger command
    /// still gets a slot of its own).
    pub max_batch_bytes: usize,
    /// Most commands waiting for a slot at the leader; beyond it `propose`
    /// answers `Busy`.
    pub max_pending_commands: usize,
    /// Most command bytes waiting for a slot at the leader; beyond it
    /// `propose` answers `Busy` (a command is always taken into an empty
    /// queue, whatever its size). Default 64 MiB: a second of writes at
    /// ~500k commands/s of 128 B, and 16 of the largest (4 MiB) requests.
    pub max_pending_bytes: usize,
    /// Most bytes (by [`Value::size_bound_bytes`](crate::Value::size_bound_bytes))
    /// the log may hold in slots not yet compacted before the leader stops
    /// opening new slots and `propose` answers `Busy`. The driver must
    /// compact (snapshot, then [`Replica::compact`](crate::Replica::compact))
    /// before the log grows this large; [`Replica::log_bytes`](crate::Replica::log_bytes)
    /// says how much it holds. Default 1 GiB.
    pub max_log_bytes: u64,
    /// Largest message the core builds, in bytes, by
    /// [`Message::size_bound_bytes`](crate::Message::size_bound_bytes):
    /// fetch replies, promises and accepts are cut into messages of at most
    /// this size, except that a message always carries at least one slot so
    /// that every slot can be sent. A message is therefore at most
    /// `max(max_message_bytes, one slot)`.
    ///
    /// The default, 8 MiB, is half the transport's peer frame limit
    /// (`synod_net::frame::MAX_PEER_FRAME_BYTES`, 16 MiB). The largest slot
    /// is either a batch of at most `max_batch_bytes` (1 MiB) in up to
    /// `max_batch_commands` (512) commands, 1 MiB + 512 × 8 B + 64 B, or one
    /// command alone: a client request of at most `MAX_REQUEST_BYTES`
    /// (4 MiB, `synod_wire::limits`) plus its encoding, about 4 MiB +
    /// 128 B. Either way a message stays below 8 MiB + 64 B, well inside a
    /// 16 MiB frame.
    pub max_message_bytes: usize,
    /// Highest slot, counted above this node's commit index, that it takes
    /// from a peer: an accepted or fetched value further ahead is skipped
    /// (the node catches up first and accepts it on a retransmission), a
    /// promise naming one is refused. It bounds what a peer can make this
    /// node hold and what a new leader fills with no-ops. Must cover the
    /// pipeline window plus the log a node keeps between compactions
    /// (synod compacts every 10,000 slots and keeps 1,000): default 16,384.
    pub max_slots_ahead: u64,
    /// Most reads waiting for a ReadIndex round; beyond it `read` answers
    /// `Busy`.
    pub max_pending_reads: usize,
    /// Most chosen entries in one catch-up reply (which is also bounded by
    /// `max_message_bytes`).
    pub max_fetch_entries: usize,
    /// Seed of this replica's random numbers (timeouts, jitter, the first
    /// read-index request number). Give each start of a node a new one: a
    /// late answer to a read-index request of an earlier run must not match
    /// a request of this one.
    pub rng_seed: u64,
    /// Deliberate protocol bugs, for showing that tests catch them.
    #[cfg(feature = "bug-injection")]
    pub bugs: crate::Bugs,
}

/// Deliberately broken rules. Only exists with the `bug-injection` feature,
/// which only tests enable.
#[cfg(feature = "bug-injection")]
#[derive(Clone, Debug, Default)]
pub struct Bugs {
    /// A new leader ignores the values reported in promises and fills every
    /// slot it recovers with a no-op.
    pub ignore_promised_values: bool,
    /// The leader serves lease reads without any lease, and does not step
    /// down when it stops hearing a quorum (check-quorum would otherwise
    /// depose a partitioned leader before the majority elects another, and
    /// hide nearly every stale read the oracle is there to catch).
    pub read_without_lease: bool,
    /// A new leader sends its Accepts and Heartbeats before its own
    /// promise is durable (`Ready::take_early_messages` ignores it).
    pub phase2_before_own_promise_durable: bool,
    /// A membership change governs from the slot right after it instead of
    /// `ACTIVATION_DELAY` slots later, while slots proposed under the old
    /// membership may still be in flight.
    pub reconfigure_at_once: bool,
    /// A follower serves its reads as soon as the leader grants a read
    /// index, without waiting for its own commit index to reach it.
    pub follower_read_before_index: bool,
    /// An acceptor answers a lazy `Accept` as if it had voted: the leader
    /// counts values that were never made durable.
    pub lazy_accept_votes: bool,
}

/// A configuration that cannot work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid replica configuration: {}", self.0)
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// A configuration with the defaults used by `synod` for a node `id` of
    /// `members`.
    pub fn new(id: NodeId, members: Vec<NodeId>) -> Config {
        Config {
            id,
            members,
            heartbeat_interval: Duration::from_millis(50),
            election_timeout: Duration::from_millis(500),
            lease: Duration::from_millis(400),
            max_clock_drift_ppm: 10_000,
            backoff_base: Duration::from_millis(20),
            backoff_cap: Duration::from_millis(1_000),
            max_inflight_slots: 2,
            accept_fallback: Some(Duration::from_millis(10)),
            max_batch_commands: 512,
            max_batch_bytes: 1 << 20,
            max_pending_commands: 100_000,
            max_pending_bytes: 64 << 20,
            max_log_bytes: 1 << 30,
            max_message_bytes: 8 << 20,
            max_slots_ahead: 16_384,
            max_pending_reads: 100_000,
            max_fetch_entries: 256,
            rng_seed: u64::from(id.0),
            #[cfg(feature = "bug-injection")]
            bugs: crate::Bugs::default(),
        }
    }

    /// Checks the values make sense together.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |m: &str| Err(ConfigError(m.to_string()));
        let mut sorted = self.members.clone();
        sorted.sort();
        sorted.dedup();
        if sorted.len() != self.members.len() {
            return err("a node id appears twice in members");
        }
        if !self.members.is_empty() && !self.members.contains(&self.id) {
            return err("members must include this node's id");
        }
        if self.id.0 == 0 {
            return err("node id 0 is not valid");
        }
        if self.heartbeat_interval.is_zero() {
            return err("heartbeat interval must be positive");
        }
        if self.lease >= self.election_timeout {
            return err("lease must be shorter than the election timeout");
        }
        if self.heartbeat_interval * 2 > self.lease {
            return err("lease must last at least two heartbeat intervals");
        }
        if self
            .accept_fallback
            .is_some_and(|t| t.is_zero() || t >= self.heartbeat_interval)
        {
            return err("accept fallback must be positive and shorter than the heartbeat interval");
        }
        if self.max_clock_drift_ppm >= 500_000 {
            return err("clock drift bound must be below 50%");
        }
        if self.backoff_base.is_zero() || self.backoff_cap < self.backoff_base {
            return err("backoff base must be positive and not above the cap");
        }
        if self.max_inflight_slots == 0
            || self.max_batch_commands == 0
            || self.max_pending_commands == 0
            || self.max_pending_reads == 0
            || self.max_fetch_entries == 0
            || self.max_pending_bytes == 0
            || self.max_log_bytes == 0
        {
            return err("queue and batch limits must be positive");
        }
        let largest_batch = MESSAGE_OVERHEAD_BYTES
            + SLOT_OVERHEAD_BYTES
            + self.max_batch_bytes.saturating_add(
                self.max_batch_commands
                    .saturating_mul(COMMAND_OVERHEAD_BYTES),
            );
        if self.max_message_bytes < largest_batch {
            return err(
                "max_message_bytes must hold one full batch (max_batch_bytes, max_batch_commands)",
            );
        }
        if self.max_inflight_slots > crate::membership::ACTIVATION_DELAY {
            return err(
                "max_inflight_slots may not exceed the membership activation delay (ACTIVATION_DELAY, 8)",
            );
        }
        if self.max_slots_ahead < self.max_inflight_slots {
            return err(
                "max_slots_ahead must be at least the pipeline window (max_inflight_slots)",
            );
        }
        Ok(())
    }

    /// How long after sending a heartbeat round that a majority acknowledged
    /// the leader may still serve reads locally: `lease × (1 − d) / (1 + d)`,
    /// so that even a fast leader clock and slow acceptor clocks keep the
    /// leader's lease inside every acceptor's promise.
    pub fn leader_lease(&self) -> Duration {
        let d = u128::from(self.max_clock_drift_ppm);
        let micros = self.lease.as_micros() * (1_000_000 - d) / (1_000_000 + d);
        Duration::from_micros(micros as u64)
    }
}
