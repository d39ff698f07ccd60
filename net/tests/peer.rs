//! The peer transport between nodes on loopback.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;
use synod_net::tls::Alpn;
use synod_net::{NodeEndpoint, SendError, STREAM_FRAME_TOO_LARGE, STREAM_MALFORMED};
use synod_paxos::{Envelope, Message, NodeId, Slot, Value};

#[tokio::test]
async fn two_peers_exchange_envelopes_both_ways() {
    let cluster = Cluster::new("both-ways");
    let mut nodes = start_nodes(&cluster, &[1, 2]);
    nodes[0].peers.send(heartbeat(1, 2, 10)).unwrap();
    nodes[1].peers.send(heartbeat(2, 1, 20)).unwrap();

    let at_2 = eventually("node 2 receives", nodes[1].inbound.recv()).await;
    let at_1 = eventually("node 1 receives", nodes[0].inbound.recv()).await;
    assert_eq!(at_2, Some(heartbeat(1, 2, 10)));
    assert_eq!(at_1, Some(heartbeat(2, 1, 20)));
}

#[tokio::test]
async fn envelopes_from_one_sender_arrive_in_send_order() {
    let cluster = Cluster::new("order");
    let mut nodes = start_nodes(&cluster, &[1, 2]);
    // Connect first, so nothing is dropped for want of a connection.
    nodes[0].peers.send(heartbeat(1, 2, 0)).unwrap();
    eventually("first envelope", nodes[1].inbound.recv()).await;

    for round in 1..=500 {
        nodes[0].peers.send(heartbeat(1, 2, round)).unwrap();
    }
    for round in 1..=500 {
        let got = eventually("next envelope", nodes[1].inbound.recv()).await;
        assert_eq!(got, Some(heartbeat(1, 2, round)));
    }
}

#[tokio::test]
async fn a_restarted_peer_is_reconnected_to() {
    let cluster = Cluster::new("restart");
    let mut nodes = start_nodes(&cluster, &[1, 2]);
    let addr_1 = nodes[0].handle.local_addr().unwrap();
    let addr_2 = nodes[1].handle.local_addr().unwrap();
    nodes[0].peers.send(heartbeat(1, 2, 1)).unwrap();
    eventually("node 2 receives before restart", nodes[1].inbound.recv()).await;

    let node_2 = nodes.pop().unwrap();
    node_2.handle.shutdown().await;
    let endpoint = eventually("node 2 rebinds its address", async {
        loop {
            match NodeEndpoint::bind(NodeId(2), addr_2, &cluster.node(2), test_options()) {
                Ok(endpoint) => break endpoint,
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    })
    .await;
    let mut node_2 = endpoint.start(HashMap::from([(NodeId(1), addr_1)]));

    // Node 1 keeps sending, as a leader's heartbeats would, until one lands.
    let sender = nodes[0].peers.clone();
    let got = eventually("node 2 receives after restart", async {
        let mut round = 100;
        loop {
            round += 1;
            let _ = sender.send(heartbeat(1, 2, round));
            tokio::select! {
                got = node_2.inbound.recv() => break got.unwrap(),
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
            }
        }
    })
    .await;
    assert_eq!(got.from, NodeId(1));
    assert!(sender.stats(NodeId(2)).unwrap().connects >= 2);
}

#[tokio::test(flavor = "current_thread")]
async fn a_full_queue_drops_instead_of_blocking() {
    let cluster = Cluster::new("queue");
    // A peer address where nothing ever answers.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let options = synod_net::NetOptions {
        peer_queue_capacity: 8,
        ..test_options()
    };
    let endpoint = NodeEndpoint::bind(NodeId(1), loopback(), &cluster.node(1), options).unwrap();
    let net = endpoint.start(HashMap::from([(NodeId(2), silent.local_addr().unwrap())]));

    // On this single-threaded runtime the sender task cannot run during the
    // loop, so exactly the queue's capacity gets in.
    let results: Vec<_> = (0..100)
        .map(|round| net.peers.send(heartbeat(1, 2, round)))
        .collect();
    let full = results
        .iter()
        .filter(|r| **r == Err(SendError::QueueFull(NodeId(2))))
        .count();
    assert_eq!((results.len() - full, full), (8, 92));
    let stats = net.peers.stats(NodeId(2)).unwrap();
    assert_eq!((stats.queued, stats.dropped_full), (8, 92));
}

#[tokio::test]
async fn sending_to_an_unknown_peer_or_as_another_node_is_refused() {
    let cluster = Cluster::new("refused");
    let nodes = start_nodes(&cluster, &[1, 2]);
    assert_eq!(
        nodes[0].peers.send(heartbeat(1, 9, 1)),
        Err(SendError::UnknownPeer(NodeId(9)))
    );
    assert_eq!(
        nodes[0].peers.send(heartbeat(2, 1, 1)),
        Err(SendError::WrongSender(NodeId(2), NodeId(1)))
    );
}

/// Node 1 serving, and a hand-made peer connection to it as node 2.
async fn node_and_raw_peer(cluster: &Cluster) -> (synod_net::NodeNet, RawConnection) {
    let net = cluster.bind(1).start(HashMap::new());
    let addr = net.handle.local_addr().unwrap();
    let raw = raw_connect(raw_config(&cluster.node(2), Alpn::Peer), addr, "node-1")
        .await
        .unwrap();
    (net, raw)
}

#[tokio::test]
async fn an_envelope_whose_sender_is_not_the_certificates_node_is_dropped() {
    let cluster = Cluster::new("forged-from");
    let (mut net, raw) = node_and_raw_peer(&cluster).await;
    send_raw_envelopes(
        &raw.conn,
        &[heartbeat(3, 1, 1), heartbeat(2, 5, 2), heartbeat(2, 1, 3)],
    )
    .await;

    let got = eventually("the genuine envelope", net.inbound.recv()).await;
    assert_eq!(got, Some(heartbeat(2, 1, 3)));
    let stats = net.handle.server_stats();
    assert_eq!(
        (
            stats.envelopes_wrong_sender,
            stats.envelopes_misaddressed,
            stats.envelopes_delivered
        ),
        (1, 1, 1)
    );
}

#[tokio::test]
async fn an_oversized_peer_frame_closes_only_its_stream() {
    let cluster = Cluster::new("oversized");
    let (mut net, raw) = node_and_raw_peer(&cluster).await;
    let mut stream = raw.conn.open_uni().await.unwrap();
    stream.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
    let stopped = eventually("the stream is stopped", stream.stopped()).await;
    assert_eq!(stopped, Ok(Some(STREAM_FRAME_TOO_LARGE)));

    send_raw_envelopes(&raw.conn, &[heartbeat(2, 1, 1)]).await;
    let got = eventually("the next stream is served", net.inbound.recv()).await;
    assert_eq!(got, Some(heartbeat(2, 1, 1)));
    assert_eq!(net.handle.server_stats().bad_streams, 1);
}

#[tokio::test]
async fn a_malformed_peer_frame_closes_only_its_stream() {
    let cluster = Cluster::new("malformed");
    let (mut net, raw) = node_and_raw_peer(&cluster).await;
    let mut stream = raw.conn.open_uni().await.unwrap();
    // A 3-byte frame that is not protobuf (wire type 7 does not exist).
    stream
        .write_all(&[0, 0, 0, 3, 0xff, 0xff, 0xff])
        .await
        .unwrap();
    let stopped = eventually("the stream is stopped", stream.stopped()).await;
    assert_eq!(stopped, Ok(Some(STREAM_MALFORMED)));

    send_raw_envelopes(&raw.conn, &[heartbeat(2, 1, 1)]).await;
    let got = eventually("the next stream is served", net.inbound.recv()).await;
    assert!(matches!(
        got.unwrap().message,
        Message::Heartbeat { round: 1, .. }
    ));
}

#[tokio::test(flavor = "current_thread")]
async fn a_queue_full_of_bytes_drops_instead_of_growing() {
    let cluster = Cluster::new("queue-bytes");
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let options = synod_net::NetOptions {
        peer_queue_max_bytes: 1 << 20,
        ..test_options()
    };
    let endpoint = NodeEndpoint::bind(NodeId(1), loopback(), &cluster.node(1), options).unwrap();
    let net = endpoint.start(HashMap::from([(NodeId(2), silent.local_addr().unwrap())]));
    // 300 KiB each: three fit in 1 MiB, the fourth does not, although the
    // queue has room for 4096 envelopes. The sender task cannot run during
    // the loop on this single-threaded runtime.
    let large = |slot: u64| Envelope {
        from: NodeId(1),
        to: NodeId(2),
        message: Message::Chosen {
            entries: vec![(Slot(slot), Value::Commands(vec![vec![0; 300 << 10]]))],
        },
    };
    let results: Vec<_> = (1..=6).map(|slot| net.peers.send(large(slot))).collect();
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        3,
        "{results:?}"
    );
    assert_eq!(results[3], Err(SendError::QueueFull(NodeId(2))));
    // Small envelopes still fit beside them.
    assert!(net.peers.send(heartbeat(1, 2, 1)).is_ok());
    assert_eq!(net.peers.stats(NodeId(2)).unwrap().dropped_full, 3);
}
