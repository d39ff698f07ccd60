//! The Rust client's etcd-style calls against a real in-process cluster:
//! transactions built with `Transaction`, range reads a page at a time, and
//! sessions taken over by id.

mod quic_cluster;

use std::time::Duration;

use quic_cluster::Cluster;
use synod_client::{ClientError, Compare, CompareOp, Session, Transaction, TxnOp};

#[test]
fn transactions_range_pages_and_sessions_by_id() {
    let cluster = Cluster::start("clientapi", 3, None);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let client = cluster.rust_client().await;

        // A transaction: the compare holds, so the first branch runs, and
        // its get sees the put before it.
        let created = client.put(b"job/1", b"queued").await.unwrap();
        let result = client
            .txn(
                Transaction::new()
                    .when([Compare::mod_revision(b"job/1", CompareOp::Equal, created)])
                    .and_then([TxnOp::put(b"job/1", b"running"), TxnOp::get(b"job/1")])
                    .or_else([TxnOp::get(b"job/1")]),
            )
            .await
            .unwrap();
        assert!(result.succeeded);
        assert_eq!(result.get(1).expect("job/1 read").value, b"running");
        assert_eq!(result.get(1).unwrap().mod_revision, result.revision);
        // The same compare now fails: the other branch runs and writes nothing.
        let result = client
            .txn(
                Transaction::new()
                    .when([Compare::mod_revision(b"job/1", CompareOp::Equal, created)])
                    .and_then([TxnOp::delete(b"job/1")])
                    .or_else([TxnOp::get(b"job/1")]),
            )
            .await
            .unwrap();
        assert!(!result.succeeded);
        assert_eq!(result.get(0).unwrap().value, b"running");
        assert!(client.get(b"job/1").await.unwrap().is_some());
        // A value compare against an absent key is false.
        let result = client
            .txn(
                Transaction::new()
                    .when([Compare::value(b"absent", CompareOp::NotEqual, b"x")])
                    .and_then([TxnOp::put(b"absent", b"1")]),
            )
            .await
            .unwrap();
        assert!(!result.succeeded);
        assert!(client.get(b"absent").await.unwrap().is_none());

        // Range pages: 25 keys read 10 at a time come back whole, in order,
        // in three pages, the last one saying there is no more.
        for i in 0..25 {
            client
                .put(format!("page/{i:02}").as_bytes(), b"v")
                .await
                .unwrap();
        }
        client.put(b"pagf", b"outside the prefix").await.unwrap();
        let mut pages = client.prefix(b"page/").limit(10).pages();
        let mut sizes = Vec::new();
        let mut keys = Vec::new();
        while let Some(page) = pages.next().await.unwrap() {
            sizes.push((page.kvs.len(), page.more));
            keys.extend(page.kvs.into_iter().map(|kv| kv.key));
        }
        assert_eq!(sizes, vec![(10, true), (10, true), (5, false)]);
        let expected: Vec<Vec<u8>> = (0..25)
            .map(|i| format!("page/{i:02}").into_bytes())
            .collect();
        assert_eq!(keys, expected);
        // An interval, keys only, collected through every page.
        let kvs = client
            .range(b"page/05", b"page/12")
            .limit(3)
            .keys_only()
            .all()
            .await
            .unwrap();
        assert_eq!(kvs.len(), 7);
        assert!(kvs.iter().all(|kv| kv.value.is_empty()));
        assert_eq!(kvs[0].key, b"page/05");

        // A session handed over by id: detached (not closed), resumed by a
        // new client as a program would after a restart; its ephemeral key
        // is still there and still its own, so closing the resumed session
        // deletes it.
        let session = Session::open(&client, Duration::from_secs(30))
            .await
            .unwrap();
        session.put(b"worker/a", b"alive").await.unwrap();
        let id = session.detach();
        let restarted = cluster.rust_client().await;
        let resumed = Session::resume(&restarted, id).await.unwrap();
        assert_eq!(resumed.id(), id);
        assert_eq!(resumed.ttl(), Duration::from_secs(30));
        assert_eq!(
            restarted.get(b"worker/a").await.unwrap().unwrap().session,
            id
        );
        resumed.close().await.unwrap();
        assert!(restarted.get(b"worker/a").await.unwrap().is_none());
        // A closed session cannot be resumed; closing it by id says it was
        // not open.
        assert!(matches!(
            Session::resume(&restarted, id).await,
            Err(ClientError::SessionLost { session }) if session == id
        ));
        assert!(!restarted.close_session(id).await.unwrap());
        // Closing by id ends a session another handle keeps alive.
        let other = Session::open(&client, Duration::from_secs(3))
            .await
            .unwrap();
        other.put(b"worker/b", b"alive").await.unwrap();
        assert!(restarted.close_session(other.id()).await.unwrap());
        assert!(restarted.get(b"worker/b").await.unwrap().is_none());
        other.lost().await;

        // Closing the client ends its sessions' keep-alives at once: the
        // session counts as lost (it expires after its TTL on the cluster)
        // instead of keeping on failing for its hour-long TTL.
        let closing = cluster.rust_client().await;
        let session = Session::open(&closing, Duration::from_secs(3600))
            .await
            .unwrap();
        closing.close().await;
        // (Its next keep-alive is 20 minutes away: only the close can end it.)
        session.lost().await;
        assert!(session.is_lost());
    });
}
