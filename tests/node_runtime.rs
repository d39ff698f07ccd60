//! The node runtime with three nodes in one process, wired by channels
//! instead of QUIC: leader election, writes answered when applied, reads
//! linearizable or serializable, redirects, and a leader change.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use synod::node::{
    spawn_core, CompactionPolicy, CoreSetup, NodeError, NodeHandle, PeerInput, PeerOutbox,
    ReadConsistency,
};
use synod_kvstore::{Get, Op, Outcome, Put, Request, Snapshot, StateMachine};
use synod_paxos::{Config, Envelope, MemStorage, NodeId, Role};
use tokio::sync::{mpsc, watch};

/// Nodes cut off from the others.
type Isolated = Arc<Mutex<BTreeSet<NodeId>>>;

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

struct Cluster {
    handles: Vec<NodeHandle>,
    stops: Vec<watch::Sender<bool>>,
    isolated: Isolated,
    snapshots_sent: Arc<AtomicU64>,
}

fn start_cluster(n: u32) -> Cluster {
    start_cluster_with(n, CompactionPolicy::default())
}

fn start_cluster_with(n: u32, compaction: CompactionPolicy) -> Cluster {
    let isolated = Isolated::default();
    let snapshots_sent = Arc::new(AtomicU64::new(0));
    let ids: Vec<NodeId> = (1..=n).map(NodeId).collect();
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
            compaction,
            shutdown,
        };
        let (handle, _task) = spawn_core(setup).unwrap();
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

async fn leader(cluster: &Cluster, except: Option<usize>) -> usize {
    for _ in 0..500 {
        for (i, handle) in cluster.handles.iter().enumerate() {
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

fn put(client: u64, seq: u64, key: &str, value: &str) -> Request {
    Request::from_client(
        client,
        seq,
        Op::Put(Put {
            key: key.into(),
            value: value.into(),
            prev_kv: false,
        }),
    )
}

fn get(key: &str) -> Request {
    Request::anonymous(Op::Get(Get { key: key.into() }))
}

fn value_of(response: &synod_kvstore::Response) -> Option<Vec<u8>> {
    match &response.outcome {
        Some(Outcome::Get(g)) => g.kv.as_ref().map(|kv| kv.value.clone()),
        other => panic!("not a get response: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_are_answered_when_applied_and_reads_see_them() {
    let cluster = start_cluster(3);
    let l = leader(&cluster, None).await;
    let leader_handle = &cluster.handles[l];
    let response = leader_handle
        .request(put(9, 1, "a", "1"), ReadConsistency::Linearizable)
        .await
        .unwrap();
    assert!(!response.is_error(), "{response:?}");
    let read = leader_handle
        .request(get("a"), ReadConsistency::Linearizable)
        .await
        .unwrap();
    assert_eq!(value_of(&read), Some(b"1".to_vec()));
    // A follower refuses linearizable work and names the leader...
    let follower = &cluster.handles[(l + 1) % 3];
    let refused = follower
        .request(put(9, 2, "a", "2"), ReadConsistency::Linearizable)
        .await;
    assert_eq!(
        refused.unwrap_err(),
        NodeError::NotLeader {
            leader: Some(NodeId(l as u32 + 1))
        }
    );
    // ...but serves serializable reads once it applied the write.
    let mut seen = None;
    for _ in 0..100 {
        let read = follower
            .request(get("a"), ReadConsistency::Serializable)
            .await
            .unwrap();
        seen = value_of(&read);
        if seen.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(seen, Some(b"1".to_vec()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_write_is_applied_once() {
    let cluster = start_cluster(3);
    let l = leader(&cluster, None).await;
    let handle = &cluster.handles[l];
    let first = handle
        .request(put(5, 1, "k", "v"), ReadConsistency::Linearizable)
        .await
        .unwrap();
    let retried = handle
        .request(put(5, 1, "k", "v"), ReadConsistency::Linearizable)
        .await
        .unwrap();
    assert_eq!(first, retried, "the retry gets the recorded answer");
    let status = handle.status().await.unwrap();
    assert_eq!(status.revision, 1, "applied once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_leader_takes_over_and_keeps_acknowledged_writes() {
    let cluster = start_cluster(3);
    let old = leader(&cluster, None).await;
    cluster.handles[old]
        .request(put(1, 1, "x", "before"), ReadConsistency::Linearizable)
        .await
        .unwrap();
    cluster.stops[old].send(true).unwrap();
    let new = leader(&cluster, Some(old)).await;
    assert_ne!(new, old);
    let read = cluster.handles[new]
        .request(get("x"), ReadConsistency::Linearizable)
        .await
        .unwrap();
    assert_eq!(value_of(&read), Some(b"before".to_vec()));
    let write = cluster.handles[new]
        .request(put(1, 2, "x", "after"), ReadConsistency::Linearizable)
        .await
        .unwrap();
    assert!(!write.is_error());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deposed_leader_answers_its_waiting_writes_and_a_retry_applies_once() {
    let cluster = start_cluster(3);
    let old = leader(&cluster, None).await;
    cluster
        .isolated
        .lock()
        .unwrap()
        .insert(NodeId(old as u32 + 1));
    // Proposed by the cut-off leader: it can never be chosen there.
    let stranded = {
        let handle = cluster.handles[old].clone();
        tokio::spawn(async move {
            handle
                .request(put(7, 1, "s", "v"), ReadConsistency::Linearizable)
                .await
        })
    };
    let new = leader(&cluster, Some(old)).await;
    cluster.isolated.lock().unwrap().clear();
    // Healed, the old leader sees the higher ballot and steps down: its
    // waiting client hears so instead of waiting for a timeout.
    let answer = tokio::time::timeout(Duration::from_secs(30), stranded)
        .await
        .expect("the stranded write is answered once its node stops leading")
        .unwrap();
    assert!(
        matches!(answer, Err(NodeError::NotLeader { .. })),
        "{answer:?}"
    );
    let retried = cluster.handles[new]
        .request(put(7, 1, "s", "v"), ReadConsistency::Linearizable)
        .await
        .unwrap();
    assert!(!retried.is_error(), "{retried:?}");
    let again = cluster.handles[new]
        .request(put(7, 1, "s", "v"), ReadConsistency::Linearizable)
        .await
        .unwrap();
    assert_eq!(again, retried, "applied once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_that_missed_compacted_slots_catches_up_by_snapshot() {
    let policy = CompactionPolicy {
        flush_every_slots: 5,
        every_slots: 10,
        keep_slots: 2,
    };
    let cluster = start_cluster_with(3, policy);
    let l = leader(&cluster, None).await;
    let lagging = (l + 1) % 3;
    cluster
        .isolated
        .lock()
        .unwrap()
        .insert(NodeId(lagging as u32 + 1));
    for seq in 1..=60 {
        let value = format!("v{seq}");
        cluster.handles[l]
            .request(put(3, seq, "key", &value), ReadConsistency::Linearizable)
            .await
            .unwrap();
    }
    cluster.isolated.lock().unwrap().clear();
    let mut seen = None;
    for _ in 0..250 {
        let read = cluster.handles[lagging]
            .request(get("key"), ReadConsistency::Serializable)
            .await
            .unwrap();
        seen = value_of(&read);
        if seen.as_deref() == Some(b"v60".as_slice()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(seen.as_deref(), Some(b"v60".as_slice()));
    assert!(
        cluster.snapshots_sent.load(Ordering::SeqCst) >= 1,
        "caught up by snapshot"
    );
}
