//! The node runtime with three nodes in one process, wired by channels
//! instead of QUIC: leader election, writes answered when applied, reads
//! linearizable or serializable, redirects, and a leader change.

use std::collections::BTreeMap;
use std::time::Duration;

use synod::node::{spawn_core, CoreSetup, NodeError, NodeHandle, PeerOutbox, ReadConsistency};
use synod_kvstore::{Get, Op, Outcome, Put, Request, StateMachine};
use synod_paxos::{Config, Envelope, MemStorage, NodeId, Role};
use tokio::sync::{mpsc, watch};

struct ChannelOutbox {
    peers: BTreeMap<NodeId, mpsc::Sender<Envelope>>,
}

impl PeerOutbox for ChannelOutbox {
    fn send(&mut self, envelope: Envelope) {
        if let Some(peer) = self.peers.get(&envelope.to) {
            let _ = peer.try_send(envelope);
        }
    }
}

struct Cluster {
    handles: Vec<NodeHandle>,
    stops: Vec<watch::Sender<bool>>,
}

fn start_cluster(n: u32) -> Cluster {
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
                peers: senders.clone(),
            }),
            inbox: inboxes.remove(id).unwrap(),
            shutdown,
        };
        let (handle, _task) = spawn_core(setup).unwrap();
        handles.push(handle);
        stops.push(stop);
    }
    Cluster { handles, stops }
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
