//! The Rust client's locks when a caller gives up on a call: a `try_lock`
//! or `lock` future dropped at any moment (before sending, after sending,
//! while retrying) never leaves the lock held for nobody, because its undo
//! is ordered after its own request.

mod quic_cluster;

use std::time::Duration;

use quic_cluster::Cluster;
use synod_client::{Client, Mutex, Session};

/// Whether another session gets `name` within a bound only a lock held
/// for nobody reaches; it unlocks it again.
async fn another_session_gets(client: &Client, name: &str) -> bool {
    let session = Session::open(client, Duration::from_secs(30))
        .await
        .unwrap();
    let mutex = Mutex::new(&session, name);
    let got = tokio::time::timeout(Duration::from_secs(10), mutex.lock()).await;
    let got = matches!(got, Ok(Ok(_)));
    if got {
        mutex.unlock().await.unwrap();
    }
    session.close().await.unwrap();
    got
}

#[test]
fn dropped_lock_calls_never_leave_the_lock_held() {
    let cluster = Cluster::start("clientlocks", 3, None);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let client = cluster.rust_client().await;
        let session = Session::open(&client, Duration::from_secs(30))
            .await
            .unwrap();
        let mutex = Mutex::new(&session, "dropped");
        // Give up after ever longer waits, so some calls are dropped before
        // their request left, some after it was applied.
        let mut dropped = 0;
        for attempt in 0..40u64 {
            let patience = Duration::from_micros(50 * attempt * attempt);
            match tokio::time::timeout(patience, mutex.try_lock()).await {
                Ok(Ok(Some(_))) => mutex.unlock().await.unwrap(),
                // Held by this session's undo of the previous attempt.
                Ok(Ok(None)) => {}
                Ok(Err(e)) => panic!("try_lock: {e}"),
                Err(_) => dropped += 1,
            }
            assert!(
                another_session_gets(&client, "dropped").await,
                "attempt {attempt}: a dropped try_lock left the lock held"
            );
            match tokio::time::timeout(patience, mutex.lock()).await {
                Ok(token) => {
                    token.expect("lock answers");
                    mutex.unlock().await.unwrap();
                }
                Err(_) => dropped += 1,
            }
            assert!(
                another_session_gets(&client, "dropped").await,
                "attempt {attempt}: a dropped lock left the lock held"
            );
        }
        // And dropped right after sending, which no answer can beat.
        if poll_once_then_drop(mutex.try_lock()).await.is_none() {
            dropped += 1;
        }
        assert!(
            another_session_gets(&client, "dropped").await,
            "a try_lock dropped once sent left the lock held"
        );
        if poll_once_then_drop(mutex.lock()).await.is_none() {
            dropped += 1;
        }
        assert!(
            another_session_gets(&client, "dropped").await,
            "a lock dropped once sent left the lock held"
        );
        assert!(dropped > 0, "some calls were dropped");
    });
}

/// Polls `future` once and drops it unless it finished: a call given up as
/// soon as its request may have left.
async fn poll_once_then_drop<F: std::future::Future>(future: F) -> Option<F::Output> {
    let mut future = std::pin::pin!(future);
    std::future::poll_fn(|cx| {
        std::task::Poll::Ready(match future.as_mut().poll(cx) {
            std::task::Poll::Ready(output) => Some(output),
            std::task::Poll::Pending => None,
        })
    })
    .await
}

#[test]
fn tasks_sharing_a_session_hold_its_lock_one_at_a_time() {
    let cluster = Cluster::start("sharedsession", 1, None);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let client = cluster.rust_client().await;
        let session = Session::open(&client, Duration::from_secs(30))
            .await
            .unwrap();
        let first = Mutex::new(&session, "shared");
        let second = Mutex::new(&session, "shared");
        let token = first.lock().await.unwrap();
        assert_eq!(second.try_lock().await.unwrap(), None, "held by the first");
        let waiting = tokio::spawn(async move { second.lock().await });
        // However long the first holds it, the second waits.
        for _ in 0..20 {
            tokio::time::sleep(Duration::from_millis(25)).await;
            assert!(!waiting.is_finished(), "two holders of one lock");
        }
        first.unlock().await.unwrap();
        let next = waiting.await.unwrap().unwrap();
        assert!(
            next.token > token.token,
            "a new grant: {next:?} after {token:?}"
        );
    });
}
