//! The node runtime with three nodes in one process, wired by channels
//! instead of QUIC: leader election, writes answered when applied, reads
//! linearizable or serializable, redirects, and a leader change.

mod channel_cluster;

use std::sync::atomic::Ordering;
use std::time::Duration;

use channel_cluster::{Cluster, ClusterOptions};
use synod::node::{CompactionPolicy, NodeError, ReadConsistency};
use synod_kvstore::{Expire, ExpireIf, Get, Op, Outcome, Put, Request};
use synod_paxos::NodeId;

fn start_cluster(nodes: u32) -> Cluster {
    Cluster::start(ClusterOptions {
        nodes,
        ..ClusterOptions::default()
    })
}

fn start_cluster_with(nodes: u32, compaction: CompactionPolicy) -> Cluster {
    Cluster::start(ClusterOptions {
        nodes,
        compaction,
        ..ClusterOptions::default()
    })
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
    let l = cluster.leader(None).await;
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
    // A follower refuses writes and names the leader...
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
    // ...serves a linearizable read, which sees the acknowledged write...
    let read = follower
        .request(get("a"), ReadConsistency::Linearizable)
        .await
        .unwrap();
    assert_eq!(value_of(&read), Some(b"1".to_vec()));
    // ...and serves serializable reads once it applied the write.
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
async fn a_follower_leaves_a_read_of_a_key_with_a_ttl_to_the_leader() {
    let cluster = start_cluster(3);
    let l = cluster.leader(None).await;
    let leader = &cluster.handles[l];
    let follower = &cluster.handles[(l + 1) % 3];
    for (seq, key) in [(1, "plain"), (2, "ttl")] {
        let response = leader
            .request(put(4, seq, key, "v"), ReadConsistency::Linearizable)
            .await
            .unwrap();
        assert!(!response.is_error(), "{response:?}");
    }
    let expire = Request::from_client(
        4,
        3,
        Op::Expire(Expire {
            key: b"ttl".to_vec(),
            ttl_ms: 60_000,
            condition: ExpireIf::Always as i32,
            expiry_revision: 0,
        }),
    );
    let response = leader
        .request(expire, ReadConsistency::Linearizable)
        .await
        .unwrap();
    assert!(!response.is_error(), "{response:?}");
    // Only the leader's clock says when the TTL runs out: the follower
    // sends the client there, and serves the key without one itself.
    let refused = follower
        .request(get("ttl"), ReadConsistency::Linearizable)
        .await;
    assert_eq!(
        refused.unwrap_err(),
        NodeError::NotLeader {
            leader: Some(NodeId(l as u32 + 1))
        }
    );
    let plain = follower
        .request(get("plain"), ReadConsistency::Linearizable)
        .await
        .unwrap();
    assert_eq!(value_of(&plain), Some(b"v".to_vec()));
    let at_leader = leader
        .request(get("ttl"), ReadConsistency::Linearizable)
        .await
        .unwrap();
    assert_eq!(value_of(&at_leader), Some(b"v".to_vec()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_write_is_applied_once() {
    let cluster = start_cluster(3);
    let l = cluster.leader(None).await;
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
    let old = cluster.leader(None).await;
    cluster.handles[old]
        .request(put(1, 1, "x", "before"), ReadConsistency::Linearizable)
        .await
        .unwrap();
    cluster.stops[old].send(true).unwrap();
    let new = cluster.leader(Some(old)).await;
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
    let old = cluster.leader(None).await;
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
    let new = cluster.leader(Some(old)).await;
    cluster.isolated.lock().unwrap().clear();
    // Healed, the old leader sees the higher ballot and steps down: its
    // waiting client hears so instead of waiting for a timeout, and that
    // the write may still be chosen (it was proposed).
    let answer = tokio::time::timeout(Duration::from_secs(30), stranded)
        .await
        .expect("the stranded write is answered once its node stops leading")
        .unwrap();
    assert!(
        matches!(answer, Err(NodeError::SteppedDown { .. })),
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
    let l = cluster.leader(None).await;
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
