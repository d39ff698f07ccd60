//! The Rust client's locks when a caller gives up on a call: a `try_lock`
//! or `lock` future dropped at any moment (before sending, after sending,
//! while retrying) never leaves the lock held for nobody, because its undo
//! is ordered after its own request.

mod redis_support;

use std::time::Duration;

use redis_support::Cluster;
use synod_client::{Client, Mutex, Session};

/// Waits until nobody holds `mutex`'s lock; false if it stays held.
async fn becomes_free(mutex: &Mutex) -> bool {
    for _ in 0..400 {
        if mutex.holder().await.expect("holder").holder == 0 {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    false
}

#[test]
fn dropped_lock_calls_never_leave_the_lock_held() {
    let cluster = Cluster::start("clientlocks", 3, None);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let config = synod_client::ClientConfig::from_dev_cluster(&cluster.dir, cluster.base_port)
            .expect("client config");
        let client = Client::connect(config).await.unwrap();
        let session = Session::open(&client, Duration::from_secs(30))
            .await
            .unwrap();
        let mutex = Mutex::new(&session, "dropped");
        // Give up after ever longer waits, so some calls are dropped before
        // their request left, some after it was applied.
        let mut granted_then_dropped = 0;
        for attempt in 0..60u64 {
            let patience = Duration::from_micros(50 * attempt * attempt);
            let try_lock = tokio::time::timeout(patience, mutex.try_lock()).await;
            match try_lock {
                Ok(result) => {
                    let token = result.expect("try_lock answers");
                    assert!(token.is_some(), "free, so granted");
                    mutex.unlock().await.unwrap();
                }
                Err(_) => granted_then_dropped += 1,
            }
            assert!(
                becomes_free(&mutex).await,
                "attempt {attempt}: a dropped try_lock left the lock held"
            );
            let lock = tokio::time::timeout(patience, mutex.lock()).await;
            if let Ok(token) = lock {
                token.expect("lock answers");
                mutex.unlock().await.unwrap();
            }
            assert!(
                becomes_free(&mutex).await,
                "attempt {attempt}: a dropped lock left the lock held"
            );
        }
        assert!(granted_then_dropped > 0, "some calls were dropped");
    });
}
