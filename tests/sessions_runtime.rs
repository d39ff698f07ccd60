//! The node runtime drives sessions: three nodes in one process, wired by
//! channels. The leader expires abandoned sessions on its own clock, keeps
//! those that are kept alive, hands the lock of an expired holder to the
//! next waiter after the lock-delay, and a new leader still expires a
//! session its predecessor was timing. Watches wait for the next event.

mod channel_cluster;

use std::time::Duration;

use channel_cluster::{Cluster, ClusterOptions};
use synod::node::WatchAnswer;
use synod_kvstore::{
    EventFilter, Get, KeepAlive, Lock, LockHolder, LockStatus, Op, OpenSession, Outcome, Put,
    Request, SessionClockConfig,
};
use tokio::time::Instant;

/// Short checkpoints, lock-delay and retries, so tests run in seconds.
fn session_config() -> SessionClockConfig {
    SessionClockConfig {
        checkpoint_interval_ms: 200,
        lock_delay_ms: 300,
        retry_ms: 200,
        ..SessionClockConfig::default()
    }
}

fn start_cluster() -> Cluster {
    Cluster::start(ClusterOptions {
        sessions: session_config(),
        ..ClusterOptions::default()
    })
}

async fn open_session(cluster: &Cluster, ttl_ms: u64) -> u64 {
    let response = cluster
        .run(
            Request::anonymous(Op::OpenSession(OpenSession { ttl_ms })),
            None,
        )
        .await;
    match response.outcome {
        Some(Outcome::OpenSession(open)) => open.session,
        other => panic!("not an open-session response: {other:?}"),
    }
}

/// Writes `key` owned by `session` (it vanishes with the session).
async fn put_ephemeral(cluster: &Cluster, session: u64, key: &str) {
    let put = Op::Put(Put {
        key: key.into(),
        value: b"here".to_vec(),
        prev_kv: false,
    });
    let response = cluster
        .run(Request::anonymous(put).in_session(session), None)
        .await;
    assert!(!response.is_error(), "{response:?}");
}

async fn key_exists(cluster: &Cluster, key: &str, except: Option<usize>) -> bool {
    let get = Request::anonymous(Op::Get(Get { key: key.into() }));
    match cluster.run(get, except).await.outcome {
        Some(Outcome::Get(g)) => g.kv.is_some(),
        other => panic!("not a get response: {other:?}"),
    }
}

/// Waits up to `patience` for `key` to vanish; returns whether it did.
async fn vanishes(cluster: &Cluster, key: &str, except: Option<usize>, patience: Duration) -> bool {
    let deadline = Instant::now() + patience;
    while Instant::now() < deadline {
        if !key_exists(cluster, key, except).await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_session_expires_after_its_ttl() {
    let cluster = start_cluster();
    let opened_at = Instant::now();
    let session = open_session(&cluster, 1_000).await;
    put_ephemeral(&cluster, session, "mine").await;
    let present = key_exists(&cluster, "mine", None).await;
    // A linearizable read that finished within the TTL of the open's start
    // must still see the session.
    if opened_at.elapsed() < Duration::from_millis(1_000) {
        assert!(present, "the session expired before its TTL");
    }
    assert!(
        vanishes(&cluster, "mine", None, Duration::from_secs(10)).await,
        "the abandoned session's key is still there"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_alive_session_does_not_expire() {
    let cluster = start_cluster();
    let kept = open_session(&cluster, 1_000).await;
    put_ephemeral(&cluster, kept, "kept").await;
    // Its twin, abandoned, shows that the leader does time these sessions.
    let abandoned = open_session(&cluster, 1_000).await;
    put_ephemeral(&cluster, abandoned, "abandoned").await;
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        let response = cluster
            .run(
                Request::anonymous(Op::KeepAlive(KeepAlive { session: kept })),
                None,
            )
            .await;
        assert!(!response.is_error(), "keep-alive refused: {response:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(!key_exists(&cluster, "abandoned", None).await);
    assert!(key_exists(&cluster, "kept", None).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_abandoned_after_keep_alives_expires() {
    let cluster = start_cluster();
    let session = open_session(&cluster, 1_000).await;
    put_ephemeral(&cluster, session, "was-kept").await;
    for _ in 0..5 {
        let keep_alive = Request::anonymous(Op::KeepAlive(KeepAlive { session }));
        assert!(!cluster.run(keep_alive, None).await.is_error());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        vanishes(&cluster, "was-kept", None, Duration::from_secs(10)).await,
        "the session lives on after its keep-alives stopped"
    );
}

async fn lock(cluster: &Cluster, session: u64, wait: bool) -> (LockStatus, u64) {
    let op = Op::Lock(Lock {
        name: b"L".to_vec(),
        session,
        wait,
    });
    match cluster.run(Request::anonymous(op), None).await.outcome {
        Some(Outcome::Lock(lock)) => (lock.lock_status(), lock.token),
        other => panic!("not a lock response: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_held_by_an_expired_session_passes_to_the_waiter() {
    let cluster = start_cluster();
    let holder = open_session(&cluster, 1_000).await;
    let waiter = open_session(&cluster, 60_000).await;
    let (status, first_token) = lock(&cluster, holder, true).await;
    assert_eq!(status, LockStatus::Granted);
    let (status, _) = lock(&cluster, waiter, true).await;
    assert_eq!(status, LockStatus::Queued);
    // The holder goes quiet; the waiter is kept alive by its long TTL.
    let deadline = Instant::now() + Duration::from_secs(10);
    let granted = loop {
        let query = Request::anonymous(Op::LockHolder(LockHolder {
            name: b"L".to_vec(),
        }));
        match cluster.run(query, None).await.outcome {
            Some(Outcome::LockHolder(h)) if h.holder == waiter => break h,
            Some(Outcome::LockHolder(_)) => {}
            other => panic!("not a lock-holder response: {other:?}"),
        }
        assert!(Instant::now() < deadline, "the waiter never got the lock");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(granted.token > first_token, "fencing tokens increase");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_leader_expires_a_session_its_predecessor_was_timing() {
    let cluster = start_cluster();
    let old = cluster.leader(None).await;
    let session = open_session(&cluster, 2_000).await;
    put_ephemeral(&cluster, session, "orphan").await;
    // Let at least one checkpoint record the remaining TTL, then lose the
    // leader.
    tokio::time::sleep(Duration::from_millis(500)).await;
    cluster.stops[old].send(true).unwrap();
    let new = cluster.leader(Some(old)).await;
    assert_ne!(new, old);
    assert!(
        vanishes(&cluster, "orphan", Some(old), Duration::from_secs(15)).await,
        "the new leader never expired the abandoned session"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_waits_for_the_next_matching_event() {
    let cluster = start_cluster();
    let leader = cluster.leader(None).await;
    let revision = cluster.handles[leader].status().await.unwrap().revision;
    let watcher = cluster.handles[(leader + 1) % 3].clone();
    let waiting = tokio::spawn(async move {
        watcher
            .watch(
                revision + 1,
                EventFilter::prefix("w/"),
                0,
                Duration::from_secs(20),
            )
            .await
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    for key in ["other", "w/a"] {
        let put = Op::Put(Put {
            key: key.into(),
            value: b"v".to_vec(),
            prev_kv: false,
        });
        cluster.run(Request::anonymous(put), None).await;
    }
    let answer = waiting.await.unwrap().unwrap();
    let WatchAnswer::Batch(batch) = answer else {
        panic!("compacted: {answer:?}");
    };
    let keys: Vec<&[u8]> = batch.events.iter().map(|e| e.key.as_slice()).collect();
    assert_eq!(keys, vec![b"w/a".as_slice()]);
    assert!(batch.next_revision > batch.events[0].revision);
}
