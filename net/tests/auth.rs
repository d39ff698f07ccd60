//! Mutual TLS: only holders of certificates from the cluster's CA get
//! anything through, and only node certificates speak as peers.

mod common;

use std::collections::HashMap;

use common::*;
use synod_net::tls::Alpn;
use synod_net::{ClientConnection, NodeEndpoint, CLOSE_NOT_A_NODE};
use synod_paxos::NodeId;

#[tokio::test]
async fn a_client_with_a_certificate_from_another_ca_gets_nothing_through() {
    let cluster = Cluster::new("real");
    let rogue = Cluster::new("rogue");
    let mut net = cluster.bind(1).start(HashMap::new());
    let addr = net.handle.local_addr().unwrap();

    // Trusts the cluster CA (so it accepts the server) but presents a
    // certificate the cluster never issued. Under TLS 1.3 the refusal may
    // only show on the first request.
    let identity = rogue_identity(&cluster, &rogue, 5);
    let outcome = eventually("refusal", async {
        let client = ClientConnection::connect(addr, &identity).await?;
        client.request(b"let me in".to_vec()).await
    })
    .await;
    assert!(outcome.is_err(), "{outcome:?}");
    assert!(net.requests.try_recv().is_err());
    assert_eq!(net.handle.server_stats().requests_delivered, 0);
}

#[tokio::test]
async fn a_client_without_a_certificate_gets_nothing_through() {
    let cluster = Cluster::new("real");
    let mut net = cluster.bind(1).start(HashMap::new());
    let addr = net.handle.local_addr().unwrap();

    let config = config_without_certificate(cluster.ca.cert_pem(), Alpn::Client);
    let refused = eventually("refusal", async {
        let raw = raw_connect(config, addr, "127.0.0.1").await.ok()?;
        let (mut send, mut recv) = raw.conn.open_bi().await.ok()?;
        send.write_all(&[0, 0, 0, 0]).await.ok()?;
        send.finish().ok()?;
        recv.read_to_end(1024).await.ok()
    })
    .await;
    assert_eq!(refused, None);
    assert!(net.requests.try_recv().is_err());
}

/// Sends one envelope from "node 2" over a connection made with `config`,
/// and waits until the server has closed that connection. Returns why it
/// closed.
async fn attempt_as_peer(config: quinn::ClientConfig, addr: std::net::SocketAddr) -> String {
    match raw_connect(config, addr, "node-1").await {
        Err(err) => err.to_string(),
        Ok(raw) => {
            if let Ok(mut stream) = raw.conn.open_uni().await {
                let mut buf = Vec::new();
                synod_net::frame::encode_frame_into(
                    &synod_net::encode_peer(&heartbeat(2, 1, 666)),
                    1 << 20,
                    &mut buf,
                )
                .unwrap();
                let _ = stream.write_all(&buf).await;
                let _ = stream.finish();
            }
            raw.conn.closed().await.to_string()
        }
    }
}

/// After a refused attempt, a genuine node 2 sends round 1: it must be the
/// first (and only) envelope node 1 delivers.
async fn only_the_genuine_envelope_arrives(cluster: &Cluster, net: &mut synod_net::NodeNet) {
    let addr = net.handle.local_addr().unwrap();
    let genuine = raw_connect(raw_config(&cluster.node(2), Alpn::Peer), addr, "node-1")
        .await
        .unwrap();
    send_raw_envelopes(&genuine.conn, &[heartbeat(2, 1, 1)]).await;
    let got = eventually("genuine envelope", net.inbound.recv()).await;
    assert_eq!(got, Some(heartbeat(2, 1, 1)));
    assert_eq!(net.handle.server_stats().envelopes_delivered, 1);
}

#[tokio::test]
async fn a_peer_with_a_certificate_from_another_ca_delivers_nothing() {
    let cluster = Cluster::new("real");
    let rogue = Cluster::new("rogue");
    let mut net = cluster.bind(1).start(HashMap::new());
    let addr = net.handle.local_addr().unwrap();

    let config = raw_config(&rogue_identity(&cluster, &rogue, 2), Alpn::Peer);
    let reason = eventually("refusal", attempt_as_peer(config, addr)).await;
    assert!(reason.contains("certificate"), "{reason}");
    only_the_genuine_envelope_arrives(&cluster, &mut net).await;
}

#[tokio::test]
async fn a_peer_without_a_certificate_delivers_nothing() {
    let cluster = Cluster::new("real");
    let mut net = cluster.bind(1).start(HashMap::new());
    let addr = net.handle.local_addr().unwrap();

    let config = config_without_certificate(cluster.ca.cert_pem(), Alpn::Peer);
    let reason = eventually("refusal", attempt_as_peer(config, addr)).await;
    assert!(reason.contains("certificate"), "{reason}");
    only_the_genuine_envelope_arrives(&cluster, &mut net).await;
}

#[tokio::test]
async fn a_client_certificate_cannot_open_a_peer_connection() {
    let cluster = Cluster::new("real");
    let mut net = cluster.bind(1).start(HashMap::new());
    let addr = net.handle.local_addr().unwrap();

    let config = raw_config(&cluster.client("mallory"), Alpn::Peer);
    let raw = raw_connect(config, addr, "node-1").await.unwrap();
    let reason = eventually("connection closed", raw.conn.closed()).await;
    match reason {
        quinn::ConnectionError::ApplicationClosed(close) => {
            assert_eq!(close.error_code, CLOSE_NOT_A_NODE)
        }
        other => panic!("unexpected close: {other}"),
    }
    assert_eq!(net.handle.server_stats().rejected_peer_connections, 1);
    only_the_genuine_envelope_arrives(&cluster, &mut net).await;
}

#[tokio::test]
async fn a_client_refuses_a_server_certified_by_another_ca() {
    let cluster = Cluster::new("real");
    let rogue = Cluster::new("rogue");
    // A node whose own certificate comes from the rogue CA.
    let identity = rogue_identity(&rogue, &rogue, 1);
    let endpoint = NodeEndpoint::bind(NodeId(1), loopback(), &identity, test_options()).unwrap();
    let net = endpoint.start(HashMap::new());
    let addr = net.handle.local_addr().unwrap();

    let outcome = eventually(
        "refusal",
        ClientConnection::connect(addr, &cluster.client("alice")),
    )
    .await;
    assert!(outcome.is_err());
}

#[tokio::test]
async fn a_peer_is_only_accepted_as_the_node_it_dialed() {
    // Node 1 dials "node 2" at an address where node 3 listens: the TLS
    // server name check fails, so nothing is sent to the wrong node.
    let cluster = Cluster::new("real");
    let mut node_3 = cluster.bind(3).start(HashMap::new());
    let addr_3 = node_3.handle.local_addr().unwrap();
    let node_1 = cluster.bind(1).start(HashMap::from([(NodeId(2), addr_3)]));

    until("node 1 gives up on the impostor", || {
        let _ = node_1.peers.send(heartbeat(1, 2, 1));
        node_1.peers.stats(NodeId(2)).unwrap().connect_failures >= 1
    })
    .await;
    assert_eq!(node_1.peers.stats(NodeId(2)).unwrap().connects, 0);
    assert!(node_3.inbound.try_recv().is_err());
}
