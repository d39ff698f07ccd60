//! Node runtimes in one process, wired by channels instead of QUIC: the
//! harness of `node_runtime.rs` and `sessions_runtime.rs`. Links can be cut
//! by isolating nodes; snapshots stream as chunks over the same channels.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use synod::node::{
    spawn_core_with_sessions, CompactionPolicy, CoreSetup, NodeError, NodeHandle, PeerInput,
    PeerOutbox, ReadConsistency,
};
use synod_kvstore::{Request, Response, SessionClockConfig, Snapshot, StateMachine};
use synod_paxos::{Config, Envelope, MemStorage, NodeId, Role};
use tokio::sync::{mpsc, watch};

/// Nodes cut off from the others.
pub type Isolated = Arc<Mutex<BTreeSet<NodeId>>>;

struct ChannelOutbox {
    me: NodeId,
    peers: BTreeMap<NodeId, mpsc::Sender<PeerInput>>,
    isolated: Isolated,
    snapshots_sent: Arc<AtomicU64>,
}

impl ChannelOutbox {
    fn link_up(&self, to: NodeId) -> bool {
        let isolated = self.isolated.lock().unwrap();
        !isolated.contains(&self.me) && !isolated.contains(&to)
    }
}

impl PeerOutbox for ChannelOutbox {
    fn send(&mut self, envelope: Envelope) {
        if let Some(peer) = self.peers.get(&envelope.to) {
            if self.link_up(envelope.to) {
                let _ = peer.try_send(PeerInput::Message(envelope));
            }
        }
    }

    fn send_snapshot(&mut self, to: NodeId, snapshot: Snapshot) {
        if !self.link_up(to) {
            return;
        }
        self.snapshots_sent.fetch_add(1, Ordering::SeqCst);
        let peer = self.peers[&to].clone();
        let from = self.me;
        tokio::spawn(async move {
            for chunk in snapshot {
                let chunk = chunk.expect("snapshot reads");
                if peer
                    .send(PeerInput::SnapshotChunk { from, chunk })
                    .await
                    .is_err()
                {
                    return;
                }
            }
        });
    }
}

/// How to start a [`Cluster`].
#[derive(Clone)]
pub struct ClusterOptions {
    /// Number of nodes (ids 1..=nodes).
    pub nodes: u32,
    /// When nodes compact their logs.
    pub compaction: CompactionPolicy,
    /// What the leader proposes for sessions.
    pub sessions: SessionClockConfig,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            nodes: 3,
            compaction: CompactionPolicy::default(),
            sessions: SessionClockConfig::default(),
        }
    }
}

/// Running nodes, in id order.
pub struct Cluster {
    pub handles: Vec<NodeHandle>,
    /// Send `true` to stop node `i`.
    pub stops: Vec<watch::Sender<bool>>,
    pub isolated: Isolated,
    /// Snapshots the nodes started sending.
    pub snapshots_sent: Arc<AtomicU64>,
}

impl Cluster {
    /// Starts the nodes, in-memory log and state machine each.
    pub fn start(options: ClusterOptions) -> Cluster {
        let isolated = Isolated::default();
        let snapshots_sent = Arc::new(AtomicU64::new(0));
        let ids: Vec<NodeId> = (1..=options.nodes).map(NodeId).collect();
        let mut inboxes = BTreeMap::new();
        let mut senders = BTreeMap::new();
        for id in &ids {
            let (tx, rx) = mpsc::channel(1024);
            senders.insert(*id, tx);
            inboxes.insert(*id, rx);
        }
        let mut handles = Vec::new();
        let mut stops = Vec::new();
        for id in &ids {
            let (stop, shutdown) = watch::channel(false);
            let mut paxos = Config::new(*id, ids.clone());
            paxos.rng_seed = u64::from(id.0) * 7;
            let setup = CoreSetup {
                paxos,
                log: MemStorage::new(),
                state_machine: StateMachine::in_memory().unwrap(),
                outbox: Box::new(ChannelOutbox {
                    me: *id,
                    peers: senders.clone(),
                    isolated: isolated.clone(),
                    snapshots_sent: snapshots_sent.clone(),
                }),
                inbox: inboxes.remove(id).unwrap(),
                compaction: options.compaction,
                shutdown,
                metrics: synod::metrics::CoreMetrics::new(),
                founding: Vec::new(),
            };
            let (handle, _task) =
                spawn_core_with_sessions(setup, options.sessions.clone()).unwrap();
            handles.push(handle);
            stops.push(stop);
        }
        Cluster {
            handles,
            stops,
            isolated,
            snapshots_sent,
        }
    }

    /// The index of the leader, skipping `except`; panics after 10 s.
    pub async fn leader(&self, except: Option<usize>) -> usize {
        for _ in 0..500 {
            for (i, handle) in self.handles.iter().enumerate() {
                if Some(i) == except {
                    continue;
                }
                if let Ok(status) = handle.status().await {
                    if status.role == Role::Leader {
                        return i;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("no leader elected within 10 s");
    }

    /// Runs `request` at whichever node leads (not `except`), retrying
    /// through leader changes. Anonymous requests may apply twice: use them
    /// only for idempotent ones.
    pub async fn run(&self, request: Request, except: Option<usize>) -> Response {
        for _ in 0..100 {
            let leader = self.leader(except).await;
            match self.handles[leader]
                .request(request.clone(), ReadConsistency::Linearizable)
                .await
            {
                Ok(response) => return response,
                Err(
                    NodeError::NotLeader { .. }
                    | NodeError::SteppedDown { .. }
                    | NodeError::ShuttingDown,
                ) => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("request failed: {e}"),
            }
        }
        panic!("no leader served the request");
    }
}
