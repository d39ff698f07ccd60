//! A revision whose events are larger than one answer (here a `DEL` of 20
//! keys of 1 MiB: 20 MiB of delete events with their previous values, over
//! the 16 MiB response frame) reaches a watcher in several answers instead
//! of making it ask for the same revision forever.

mod quic_cluster;

use std::time::Duration;

use quic_cluster::{ok, Cluster, Value};
use synod_client::{EventFilter, EventKind};

#[test]
fn a_watcher_receives_a_revision_larger_than_one_answer() {
    let cluster = Cluster::start("bigwatch", 3, None);
    let mut redis = cluster.client(cluster.leader());
    let value = vec![b'v'; 1024 * 1024];
    for i in 0..20 {
        let key = format!("big:{i:02}");
        assert_eq!(redis.call_bytes(&[b"SET", key.as_bytes(), &value]), ok());
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let client = cluster.rust_client().await;
        let from = client.current_revision().await.unwrap() + 1;
        let mut watcher = client.watch(EventFilter::prefix("big:"), from);

        let keys: Vec<String> = (0..20).map(|i| format!("big:{i:02}")).collect();
        let mut del: Vec<&[u8]> = vec![b"DEL"];
        del.extend(keys.iter().map(|k| k.as_bytes()));
        assert_eq!(redis.call_bytes(&del), Value::Int(20));

        let mut deleted = Vec::new();
        let mut revisions = std::collections::BTreeSet::new();
        // A generous bound that only a watcher stuck on the revision hits.
        let collect = async {
            while deleted.len() < 20 {
                let event = watcher.next().await.expect("the watch goes on");
                assert_eq!(event.event_kind(), Some(EventKind::Delete));
                assert_eq!(event.prev_value.as_deref(), Some(value.as_slice()));
                revisions.insert(event.revision);
                deleted.push(String::from_utf8(event.key).unwrap());
            }
        };
        tokio::time::timeout(Duration::from_secs(120), collect)
            .await
            .expect("every event of the revision arrives");
        assert_eq!(deleted, keys, "each event once, in order");
        assert_eq!(revisions.len(), 1, "one revision: {revisions:?}");
    });
}
