//! What a node exports to Prometheus: one [`NodeMetrics`] per node, whose
//! parts the core task, the client API service and the Redis endpoint
//! update as they work (atomic counters, no locks on their paths), plus two
//! collectors read at scrape time (the data directory's files, the peer
//! links' counters). [`crate::http`] serves them.
//!
//! Names follow Prometheus's conventions: a `synod_` prefix, base units in
//! the name (`_seconds`, `_bytes`), `_total` on counters.

use std::path::PathBuf;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};
use synod_net::PeerSender;
use synod_paxos::Role;

use crate::node::{NodeError, NodeStatus};

/// A metric's labels: one label whose values the code names (never a
/// client's input), so every family stays small.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    /// What is counted.
    pub kind: &'static str,
}

/// A request's labels: the command (or call) and how it ended.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The command's name (`set`, `get`, ...) or the API call's.
    pub command: &'static str,
    /// `ok`, or the error's code.
    pub result: &'static str,
}

/// Everything one node's tasks update. Cheap to clone; clones share the
/// counters.
#[derive(Clone, Debug, Default)]
pub struct NodeMetrics {
    /// The consensus core and state machine.
    pub core: CoreMetrics,
    /// Client requests, by surface.
    pub clients: ClientMetrics,
}

impl NodeMetrics {
    /// A registry holding these metrics, the size of `data_dir`'s log and
    /// state file, the peer links' counters and the QUIC endpoints'.
    pub fn registry(&self, data_dir: PathBuf, peers: PeerLinks, quic: QuicEndpoints) -> Registry {
        let mut registry = Registry::with_prefix("synod");
        self.core.register(&mut registry);
        self.clients.register(&mut registry);
        registry.register_collector(Box::new(StorageCollector { data_dir }));
        registry.register_collector(Box::new(peers));
        registry.register_collector(Box::new(quic));
        registry
    }
}

/// The core task's metrics.
#[derive(Clone, Debug)]
pub struct CoreMetrics {
    role: Family<KindLabel, Gauge>,
    ballot: Gauge<u64, std::sync::atomic::AtomicU64>,
    leader: Gauge,
    commit_index: Gauge<u64, std::sync::atomic::AtomicU64>,
    applied_index: Gauge<u64, std::sync::atomic::AtomicU64>,
    compacted_through: Gauge<u64, std::sync::atomic::AtomicU64>,
    revision: Gauge<u64, std::sync::atomic::AtomicU64>,
    leader_changes: Counter,
    accept_fallbacks: Counter,
    writes: Family<KindLabel, Counter>,
    reads: Family<KindLabel, Counter>,
    write_seconds: Histogram,
    fsync_seconds: Histogram,
    round_inputs: Histogram,
    snapshots_sent: Counter,
    snapshots_installed: Counter,
    client_queue: Gauge,
    peer_queue: Gauge,
    watchers: Gauge,
    keys: Gauge<u64, std::sync::atomic::AtomicU64>,
    sessions: Gauge<u64, std::sync::atomic::AtomicU64>,
    locks: Gauge<u64, std::sync::atomic::AtomicU64>,
}

impl CoreMetrics {
    /// Metrics registered nowhere yet (see [`NodeMetrics::registry`]).
    pub fn new() -> CoreMetrics {
        CoreMetrics {
            role: Family::default(),
            ballot: Gauge::default(),
            leader: Gauge::default(),
            commit_index: Gauge::default(),
            applied_index: Gauge::default(),
            compacted_through: Gauge::default(),
            revision: Gauge::default(),
            leader_changes: Counter::default(),
            accept_fallbacks: Counter::default(),
            writes: Family::default(),
            reads: Family::default(),
            // 50 µs to ~13 s.
            write_seconds: Histogram::new(exponential_buckets(50e-6, 2.0, 19)),
            // 20 µs to ~1.3 s.
            fsync_seconds: Histogram::new(exponential_buckets(20e-6, 2.0, 17)),
            // 1 to 1024 inputs.
            round_inputs: Histogram::new(exponential_buckets(1.0, 2.0, 11)),
            snapshots_sent: Counter::default(),
            snapshots_installed: Counter::default(),
            client_queue: Gauge::default(),
            peer_queue: Gauge::default(),
            watchers: Gauge::default(),
            keys: Gauge::default(),
            sessions: Gauge::default(),
            locks: Gauge::default(),
        }
    }

    fn register(&self, r: &mut Registry) {
        r.register(
            "role",
            "1 for the role this node has now (leader, candidate or follower), else 0",
            self.role.clone(),
        );
        r.register(
            "ballot",
            "The highest ballot this node promised ((round << 32) | node id)",
            self.ballot.clone(),
        );
        r.register(
            "leader_id",
            "The node this node believes leads, 0 if none",
            self.leader.clone(),
        );
        r.register(
            "commit_index",
            "Every log slot through this one is chosen and known here",
            self.commit_index.clone(),
        );
        r.register(
            "applied_index",
            "The state machine applied the log through this slot",
            self.applied_index.clone(),
        );
        r.register(
            "compacted_through",
            "The log is compacted into the state machine through this slot",
            self.compacted_through.clone(),
        );
        r.register(
            "revision",
            "The state machine's revision",
            self.revision.clone(),
        );
        r.register(
            "leader_changes",
            "Times the leader this node follows changed (including to none)",
            self.leader_changes.clone(),
        );
        r.register(
            "accept_fallbacks",
            "Slots this node, leading, asked of every voter because the followers it asked first had not chosen them in time (thrifty Phase 2's fallback)",
            self.accept_fallbacks.clone(),
        );
        r.register(
            "writes",
            "Writes handed to this node's core, by outcome",
            self.writes.clone(),
        );
        r.register(
            "reads",
            "Reads handed to this node's core, by outcome",
            self.reads.clone(),
        );
        r.register_with_unit(
            "write_latency",
            "From a write reaching the core to its answer (its slot applied here)",
            Unit::Seconds,
            self.write_seconds.clone(),
        );
        r.register_with_unit(
            "fsync",
            "Time to make one batch of rounds' log records durable",
            Unit::Seconds,
            self.fsync_seconds.clone(),
        );
        r.register(
            "round_inputs",
            "Peer messages and client calls taken per round",
            self.round_inputs.clone(),
        );
        r.register(
            "snapshots_sent",
            "State-machine snapshots offered to lagging peers",
            self.snapshots_sent.clone(),
        );
        r.register(
            "snapshots_installed",
            "Snapshots this node installed from a peer",
            self.snapshots_installed.clone(),
        );
        r.register(
            "client_queue_depth",
            "Client calls waiting for the core",
            self.client_queue.clone(),
        );
        r.register(
            "peer_queue_depth",
            "Peer messages waiting for the core",
            self.peer_queue.clone(),
        );
        r.register(
            "watchers",
            "Watchers waiting for events on this node",
            self.watchers.clone(),
        );
        r.register(
            "keys",
            "Keys in the applied state (read at scrape time)",
            self.keys.clone(),
        );
        r.register(
            "sessions",
            "Open sessions in the applied state (read at scrape time)",
            self.sessions.clone(),
        );
        r.register(
            "locks",
            "Locks held or in lock-delay in the applied state (read at scrape time)",
            self.locks.clone(),
        );
    }

    /// Records the applied state's sizes.
    pub fn observe_counts(&self, counts: &synod_kvstore::StateCounts) {
        self.keys.set(counts.keys);
        self.sessions.set(counts.sessions);
        self.locks.set(counts.locks);
    }

    /// Records the node's status after a round; counts a leader change.
    pub fn observe_status(&self, status: &NodeStatus) {
        for role in Role::ALL {
            let value = i64::from(status.role == role);
            self.role
                .get_or_create(&KindLabel { kind: role.name() })
                .set(value);
        }
        self.ballot.set(status.ballot.0);
        let leader = status.leader.map_or(0, |l| i64::from(l.0));
        if self.leader.set(leader) != leader {
            self.leader_changes.inc();
        }
        self.commit_index.set(status.commit_index.0);
        self.applied_index.set(status.applied_index.0);
        self.compacted_through.set(status.compacted_through.0);
        self.revision.set(status.revision);
        // The status counts since the node started; the counter follows it.
        let counted = self.accept_fallbacks.get();
        if status.accept_fallbacks > counted {
            self.accept_fallbacks
                .inc_by(status.accept_fallbacks - counted);
        }
    }

    /// Records a write's answer, `seconds` after it reached the core; the
    /// latency only of writes that were applied (a refusal is immediate).
    pub fn observe_write(&self, outcome: &'static str, seconds: f64) {
        self.writes
            .get_or_create(&KindLabel { kind: outcome })
            .inc();
        if outcome == APPLIED {
            self.write_seconds.observe(seconds);
        }
    }

    /// Records a read's answer.
    pub fn observe_read(&self, outcome: &'static str) {
        self.reads.get_or_create(&KindLabel { kind: outcome }).inc();
    }

    /// Records one round: the inputs it took (a round of the timer alone
    /// is not counted).
    pub fn observe_round(&self, inputs: usize) {
        if inputs > 0 {
            self.round_inputs.observe(inputs as f64);
        }
    }

    /// Records how long the log took to make one batch of rounds durable.
    pub fn observe_fsync(&self, seconds: f64) {
        self.fsync_seconds.observe(seconds);
    }

    /// Records the queues' depths and the number of waiting watchers.
    pub fn observe_queues(&self, client_calls: usize, peer_inputs: usize, watchers: usize) {
        self.client_queue.set(client_calls as i64);
        self.peer_queue.set(peer_inputs as i64);
        self.watchers.set(watchers as i64);
    }

    /// Counts a snapshot offered to a peer.
    pub fn snapshot_sent(&self) {
        self.snapshots_sent.inc();
    }

    /// Counts a snapshot installed here.
    pub fn snapshot_installed(&self) {
        self.snapshots_installed.inc();
    }
}

impl Default for CoreMetrics {
    fn default() -> Self {
        CoreMetrics::new()
    }
}

/// The outcome of a write whose slot was applied (whatever the state
/// machine answered).
pub const APPLIED: &str = "applied";

/// The label of a node error, for the outcome of a request.
pub fn error_kind(error: &NodeError) -> &'static str {
    match error {
        NodeError::NotLeader { .. } => "not_leader",
        NodeError::SteppedDown { .. } => "stepped_down",
        NodeError::Busy => "busy",
        NodeError::Invalid(_) | NodeError::MembershipRefused(_) => "invalid",
        NodeError::ShuttingDown => "shutting_down",
        NodeError::Storage(_) => "storage",
    }
}

/// Client requests and connections, by surface.
#[derive(Clone, Debug, Default)]
pub struct ClientMetrics {
    api_requests: Family<RequestLabels, Counter>,
    redis_commands: Family<RequestLabels, Counter>,
    redis_connections: Gauge,
    api_in_progress: Gauge,
}

impl ClientMetrics {
    fn register(&self, r: &mut Registry) {
        r.register(
            "api_requests",
            "Client API (QUIC) requests, by call and result",
            self.api_requests.clone(),
        );
        r.register(
            "redis_commands",
            "Redis-protocol commands, by command and result (the error's code)",
            self.redis_commands.clone(),
        );
        r.register(
            "redis_connections",
            "Open Redis-protocol connections",
            self.redis_connections.clone(),
        );
        r.register(
            "api_requests_in_progress",
            "Client API (QUIC) requests being served",
            self.api_in_progress.clone(),
        );
    }

    /// Counts one client API request.
    pub fn api_request(&self, call: &'static str, result: &'static str) {
        self.api_requests
            .get_or_create(&RequestLabels {
                command: call,
                result,
            })
            .inc();
    }

    /// Counts one Redis command.
    pub fn redis_command(&self, command: &'static str, result: &'static str) {
        self.redis_commands
            .get_or_create(&RequestLabels { command, result })
            .inc();
    }

    /// The gauge of open Redis connections.
    pub fn redis_connections(&self) -> &Gauge {
        &self.redis_connections
    }

    /// The gauge of client API requests in progress.
    pub fn api_in_progress(&self) -> &Gauge {
        &self.api_in_progress
    }
}

/// Reads the data directory's sizes at scrape time: the log's segments
/// and bytes, the state file's bytes.
#[derive(Debug)]
struct StorageCollector {
    data_dir: PathBuf,
}

impl Collector for StorageCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let (mut segments, mut log_bytes) = (0u64, 0u64);
        if let Ok(entries) = std::fs::read_dir(self.data_dir.join(synod_kvstore::LOG_DIR)) {
            for entry in entries.flatten() {
                if entry.path().extension().is_some_and(|e| e == "wal") {
                    segments += 1;
                    log_bytes += entry.metadata().map_or(0, |m| m.len());
                }
            }
        }
        let state_bytes =
            std::fs::metadata(self.data_dir.join(synod_kvstore::STATE_FILE)).map_or(0, |m| m.len());
        let gauges = [
            ("wal_segments", "Log segments on disk", None, segments),
            (
                "wal",
                "Bytes of the log's segments on disk",
                Some(Unit::Bytes),
                log_bytes,
            ),
            (
                "state_machine",
                "Bytes of the state machine's redb file",
                Some(Unit::Bytes),
                state_bytes,
            ),
        ];
        for (name, help, unit, value) in gauges {
            let gauge = ConstGauge::new(value);
            let metric =
                encoder.encode_descriptor(name, help, unit.as_ref(), gauge.metric_type())?;
            gauge.encode(metric)?;
        }
        Ok(())
    }
}

/// Reads the peer links' counters at scrape time.
#[derive(Debug)]
pub struct PeerLinks {
    sender: PeerSender,
}

impl PeerLinks {
    /// The links of `sender` to its peers (those of the moment of each scrape).
    pub fn new(sender: PeerSender) -> PeerLinks {
        PeerLinks { sender }
    }
}

/// A peer link's label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PeerLabel {
    peer: u32,
}

impl Collector for PeerLinks {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        type Field = fn(&synod_net::PeerStats) -> u64;
        let counters: [(&str, &str, Field); 5] = [
            (
                "peer_messages_sent",
                "Messages written to a peer's connection",
                |s| s.sent,
            ),
            (
                "peer_messages_dropped",
                "Messages to a peer dropped because its queue was full",
                |s| s.dropped_full,
            ),
            (
                "peer_messages_lost",
                "Messages to a peer taken from the queue but not written (no connection)",
                |s| s.lost,
            ),
            ("peer_connects", "Connections established to a peer", |s| {
                s.connects
            }),
            (
                "peer_connect_failures",
                "Failed connection attempts to a peer",
                |s| s.connect_failures,
            ),
        ];
        // One reading of each link for the whole scrape.
        let links: Vec<(PeerLabel, synod_net::PeerStats)> = self
            .sender
            .peers()
            .into_iter()
            .filter_map(|peer| Some((PeerLabel { peer: peer.0 }, self.sender.stats(peer)?)))
            .collect();
        for (name, help, field) in counters {
            let mut family = encoder.encode_descriptor(
                name,
                help,
                None,
                prometheus_client::metrics::MetricType::Counter,
            )?;
            for (label, stats) in &links {
                let metric = family.encode_family(label)?;
                ConstCounter::new(field(stats)).encode(metric)?;
            }
        }
        let mut family = encoder.encode_descriptor(
            "peer_rtt",
            "Round-trip time to a peer (QUIC's smoothed estimate) when a batch was last sent",
            Some(&Unit::Seconds),
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        for (label, stats) in &links {
            let metric = family.encode_family(label)?;
            ConstGauge::new(stats.rtt_micros as f64 / 1e6).encode(metric)?;
        }
        Ok(())
    }
}

/// Reads the QUIC endpoints' accept-side counters at scrape time.
#[derive(Debug)]
pub struct QuicEndpoints {
    /// The peer endpoint's.
    pub peer: synod_net::ServerStatsReader,
    /// The client endpoint's.
    pub client: synod_net::ServerStatsReader,
}

impl Collector for QuicEndpoints {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let (peer, client) = (self.peer.snapshot(), self.client.snapshot());
        let counters = [
            (
                "quic_client_connections",
                "Client QUIC connections accepted",
                client.client_connections,
            ),
            (
                "quic_client_requests_overloaded",
                "Client requests answered OVERLOADED (the request queue was full)",
                client.requests_overloaded,
            ),
            (
                "quic_bad_streams",
                "Peer and client streams closed for an oversized or malformed frame",
                peer.bad_streams + client.bad_streams,
            ),
            (
                "quic_rejected_peer_connections",
                "Peer connections closed because the certificate names no node",
                peer.rejected_peer_connections,
            ),
        ];
        for (name, help, value) in counters {
            let counter = ConstCounter::new(value);
            let metric = encoder.encode_descriptor(name, help, None, counter.metric_type())?;
            counter.encode(metric)?;
        }
        Ok(())
    }
}

/// The registry's metrics in Prometheus's text format (version 0.0.4).
pub fn render(registry: &Registry) -> String {
    let mut text = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut text, registry)
        .expect("writing to a String cannot fail");
    text
}

#[cfg(test)]
mod tests {
    use synod_paxos::{Ballot, NodeId, Role, Slot};

    use super::*;

    fn status(accept_fallbacks: u64) -> NodeStatus {
        NodeStatus {
            id: NodeId(1),
            role: Role::Leader,
            ballot: Ballot::new(1, NodeId(1)),
            leader: Some(NodeId(1)),
            commit_index: Slot(0),
            applied_index: Slot(0),
            revision: 0,
            compacted_through: Slot(0),
            accept_fallbacks,
        }
    }

    #[test]
    fn the_fallback_counter_follows_the_status_count() {
        let metrics = CoreMetrics::new();
        metrics.observe_status(&status(3));
        metrics.observe_status(&status(3));
        metrics.observe_status(&status(5));
        assert_eq!(metrics.accept_fallbacks.get(), 5);
    }
}
