//! The Rust client's watch is one server stream: a node serves a watcher's
//! batches on the one request that opened it, the watcher goes on at
//! another node when the serving one stops (every event once, in order),
//! and a dropped watcher ends the node's stream.

mod quic_cluster;

use std::pin::Pin;
use std::time::Duration;

use futures_core::Stream;
use quic_cluster::Cluster;
use synod_client::{Client, ClientError, Event, EventFilter, Watcher};

/// Watchers waiting for events on the running nodes.
fn waiting_watchers(cluster: &Cluster, nodes: &[usize]) -> f64 {
    nodes
        .iter()
        .map(|node| {
            cluster
                .metrics(*node)
                .get("synod_watchers")
                .copied()
                .unwrap_or(0.0)
        })
        .sum()
}

/// Waits for `condition`, checking every 50 ms; panics after a bound no
/// working node comes near.
async fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    for _ in 0..600 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("never: {what}");
}

/// The watcher's next item, read through its `Stream` implementation.
async fn next_item(watcher: &mut Watcher) -> Result<Event, ClientError> {
    std::future::poll_fn(|cx| Pin::new(&mut *watcher).poll_next(cx))
        .await
        .expect("a watcher's stream never ends")
}

/// Writes `key`, retrying while the cluster elects a leader (a retry that
/// follows a write applied unseen writes the key twice: both are events).
async fn put(client: &Client, key: &str) -> u64 {
    loop {
        match client.put(key.as_bytes(), b"v").await {
            Ok(revision) => return revision,
            Err(e) => eprintln!("put {key}: {e}; retrying"),
        }
    }
}

#[test]
fn a_watcher_receives_many_batches_from_one_server_stream() {
    let cluster = Cluster::start("ws-one", 3, None);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let client = cluster.rust_client().await;
        let from = client.current_revision().await.unwrap() + 1;
        let mut watcher = client.watch(EventFilter::prefix("one/"), from);
        // Each write waits for the previous event: one batch each.
        for i in 0..20 {
            let key = format!("one/{i:02}");
            let revision = put(&client, &key).await;
            let event = watcher.next().await.expect("the watch goes on");
            assert_eq!((event.key, event.revision), (key.into_bytes(), revision));
        }
        let served: f64 = (1..=3).map(|node| cluster.api_calls(node, "watch")).sum();
        assert_eq!(served, 1.0, "one watch request served the 20 batches");
    });
}

#[test]
fn a_watcher_stream_goes_on_at_another_node_when_its_node_stops() {
    let cluster = Cluster::start("ws-failover", 3, None);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let client = cluster.rust_client().await;
        let from = client.current_revision().await.unwrap() + 1;
        let mut watcher = client.watch(EventFilter::prefix("fo/"), from);
        let mut seen = Vec::new();
        for i in 0..10 {
            put(&client, &format!("fo/{i:02}")).await;
        }
        while seen.len() < 10 {
            seen.push(next_item(&mut watcher).await.expect("the watch goes on"));
        }
        let serving = (1..=3)
            .find(|node| cluster.api_calls(*node, "watch") > 0.0)
            .expect("a node serves the watcher");
        cluster.stop(serving);

        for i in 10..20 {
            put(&client, &format!("fo/{i:02}")).await;
        }
        while seen.last().map(|e| e.key.as_slice()) != Some(b"fo/19") {
            match next_item(&mut watcher).await {
                Ok(event) => seen.push(event),
                // No node took the stream while the cluster elected.
                Err(ClientError::Timeout) => {}
                Err(e) => panic!("the watch failed: {e}"),
            }
        }
        let survivors: Vec<usize> = (1..=3).filter(|node| *node != serving).collect();
        let served_after: f64 = survivors
            .iter()
            .map(|node| cluster.api_calls(*node, "watch"))
            .sum();
        assert!(served_after >= 1.0, "another node took the stream");

        // The same history read afresh from a surviving node: what the
        // watcher got is exactly it, each event once, in order.
        let last = seen.last().unwrap().revision;
        let mut fresh = client.watch(EventFilter::prefix("fo/"), from);
        let mut history = Vec::new();
        while history.last().is_none_or(|e: &Event| e.revision < last) {
            history.push(fresh.next().await.expect("the history is there"));
        }
        let as_seen = |events: &[Event]| -> Vec<(u64, String)> {
            events
                .iter()
                .map(|e| (e.revision, String::from_utf8_lossy(&e.key).into_owned()))
                .collect()
        };
        assert_eq!(as_seen(&seen), as_seen(&history));
        assert!(seen.windows(2).all(|w| w[0].revision < w[1].revision));
        for i in 0..20 {
            let key = format!("fo/{i:02}");
            assert!(seen.iter().any(|e| e.key == key.as_bytes()), "{key} seen");
        }
    });
}

#[test]
fn a_dropped_watcher_ends_the_nodes_stream() {
    let cluster = Cluster::start("ws-dropped", 3, None);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let client = cluster.rust_client().await;
        let from = client.current_revision().await.unwrap() + 1;
        let mut watcher = client.watch(EventFilter::key("dropped"), from);
        put(&client, "dropped").await;
        watcher.next().await.expect("the event comes");
        // Nobody reads the watcher now, and its node still waits for the
        // next event on its behalf.
        wait_for("the node waits for events for the idle watcher", || {
            waiting_watchers(&cluster, &[1, 2, 3]) == 1.0
        })
        .await;
        drop(watcher);
        wait_for("the node stops waiting once the watcher is gone", || {
            waiting_watchers(&cluster, &[1, 2, 3]) == 0.0
        })
        .await;
    });
}
