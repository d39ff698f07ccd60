//! Endpoints as the client dials them: DNS names resolved at dial time and
//! checked against the node's certificate, a server-name override, leader
//! redirects from a DNS endpoint, `close`, and each endpoint's status.

mod fake_node;

use std::collections::BTreeSet;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use fake_node::{absent, client_identity, leader_unknown, not_leader, status, FakeNode};
use synod_client::{Client, ClientConfig, ClientError, Endpoint, NodeRole, NodeStatus};
use synod_net::certs::CertAuthority;
use synod_wire::proto::api::{api_request::Call, NodeStatus as WireStatus};

const PATIENT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dns_name_endpoint_is_resolved_when_dialed_and_checked_against_its_name() {
    let ca = CertAuthority::generate("dns").unwrap();
    let node = FakeNode::start(&ca, 1, "127.0.0.1", |_| absent());
    let by_name = format!("localhost:{}", node.addr.port());
    let config = ClientConfig::with_identity([by_name.as_str()], client_identity(&ca))
        .unwrap()
        .timeout(PATIENT);
    assert_eq!(config.endpoints[0].server_name(), "localhost");
    let client = Client::connect(config).await.unwrap();
    assert_eq!(client.get(b"key").await.unwrap(), None);

    // The name is what the certificate is checked against: one the node's
    // certificate lacks is refused, though the address is the same.
    let config = ClientConfig::with_identity([by_name.as_str()], client_identity(&ca))
        .unwrap()
        .server_name(Some("db.example.com".into()))
        .timeout(PATIENT);
    let client = Client::connect(config).await.unwrap();
    match client.get(b"key").await {
        Err(ClientError::Tls(e)) => assert_eq!(e.server_name, "db.example.com"),
        other => panic!("expected a TLS error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_name_override_reaches_a_node_by_an_address_its_certificate_lacks() {
    let ca = CertAuthority::generate("override").unwrap();
    // Node certificates name 127.0.0.1 and node-<id>, not 127.0.0.2.
    let node = FakeNode::start(&ca, 1, "127.0.0.2", |_| absent());
    let config = ClientConfig::from_addrs([node.addr], client_identity(&ca))
        .server_name(Some("node-1".into()))
        .timeout(PATIENT);
    let client = Client::connect(config).await.unwrap();
    assert_eq!(client.get(b"key").await.unwrap(), None);
    assert_eq!(node.requests(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_from_a_dns_endpoint_reaches_the_leader_by_its_node_name() {
    let ca = CertAuthority::generate("redirect").unwrap();
    // The leader listens where its certificate names no address of its.
    let leader = FakeNode::start(&ca, 2, "127.0.0.2", |_| absent());
    let leader_addr = leader.addr;
    let follower = FakeNode::start(&ca, 1, "127.0.0.1", move |_| not_leader(2, leader_addr));
    let endpoint = format!("localhost:{}", follower.addr.port());
    let config = ClientConfig::with_identity([endpoint], client_identity(&ca))
        .unwrap()
        .timeout(PATIENT);
    let client = Client::connect(config).await.unwrap();
    for i in 0..5u32 {
        assert_eq!(client.get(&i.to_be_bytes()).await.unwrap(), None);
    }
    // Redirected once; the leader is remembered.
    assert_eq!(follower.requests(), 1);
    assert_eq!(leader.requests(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_ends_calls_in_flight_and_later_ones_and_tells_the_node() {
    let ca = CertAuthority::generate("close").unwrap();
    let (node, mut held) = FakeNode::start_holding(&ca, 1, "127.0.0.1");
    let client = Client::connect(
        ClientConfig::from_addrs([node.addr], client_identity(&ca)).timeout(PATIENT),
    )
    .await
    .unwrap();
    let clone = client.clone();
    let in_flight = tokio::spawn(async move { clone.get(b"key").await });
    let request = held.recv().await.expect("the call reaches the node");

    client.close().await;
    assert!(client.is_closed());
    assert_eq!(in_flight.await.unwrap(), Err(ClientError::Closed));
    assert_eq!(client.get(b"key").await, Err(ClientError::Closed));
    assert_eq!(
        client.clone().put(b"k", b"v").await,
        Err(ClientError::Closed)
    );
    assert_eq!(client.status().await, Err(ClientError::Closed));
    client.close().await; // again: nothing to do

    // The node was told: its stream of the held request ended, so the
    // answer has nowhere to go. (Without a close it would learn only from
    // its idle timeout, 5 s.)
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!request.responder.respond(absent()));
    assert_eq!(node.requests(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_dropped_without_close_leaves_the_node_serving_others() {
    let ca = CertAuthority::generate("drop").unwrap();
    let node = FakeNode::start(&ca, 1, "127.0.0.1", |_| absent());
    let config = ClientConfig::from_addrs([node.addr], client_identity(&ca)).timeout(PATIENT);
    let first = Client::connect(config.clone()).await.unwrap();
    assert_eq!(first.get(b"key").await.unwrap(), None);
    drop(first);
    let second = Client::connect(config).await.unwrap();
    assert_eq!(second.get(b"key").await.unwrap(), None);
    assert_eq!(node.requests(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_reports_every_endpoint_in_order_with_why_one_could_not_answer() {
    let ca = CertAuthority::generate("status").unwrap();
    let answer = |id: u32, role: &'static str| {
        move |request: synod_wire::proto::api::ApiRequest| {
            assert!(matches!(request.call, Some(Call::Status(_))));
            status(WireStatus {
                id,
                role: role.into(),
                ballot: (3 << 32) | 2,
                leader: 2,
                commit_index: 40 + u64::from(id),
                applied_index: 39,
                revision: 17,
                compacted_through: 0,
            })
        }
    };
    let follower = FakeNode::start(&ca, 1, "127.0.0.1", answer(1, "follower"));
    let leader = FakeNode::start(&ca, 2, "127.0.0.1", answer(2, "leader"));
    // A name that resolves to nothing (RFC 6761: `.invalid` never does).
    let endpoints = vec![
        Endpoint::from(follower.addr),
        "node-3.invalid:7401".parse().unwrap(),
        Endpoint::from(leader.addr),
    ];
    let client = Client::connect(
        ClientConfig::with_identity(endpoints.clone(), client_identity(&ca))
            .unwrap()
            .timeout(PATIENT),
    )
    .await
    .unwrap();

    let statuses = client.status().await.unwrap();
    let asked: Vec<Endpoint> = statuses.iter().map(|s| s.endpoint.clone()).collect();
    assert_eq!(asked, endpoints);
    assert_eq!(
        statuses[0].status,
        Ok(NodeStatus {
            id: 1,
            role: NodeRole::Follower,
            leader: Some(2),
            ballot: (3 << 32) | 2,
            commit_index: 41,
            applied_index: 39,
            revision: 17,
            compacted_through: 0,
        })
    );
    assert!(!statuses[1].is_reachable());
    assert!(
        matches!(&statuses[1].status, Err(ClientError::Unreachable(why)) if why.contains("node-3.invalid")),
        "{:?}",
        statuses[1].status
    );
    let leader_status = statuses[2].status.as_ref().unwrap();
    assert_eq!(
        (leader_status.id, &leader_status.role),
        (2, &NodeRole::Leader)
    );
    assert_eq!(leader_status.commit_index, 42);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_endpoints_and_server_names_are_refused_before_any_dial() {
    let ca = CertAuthority::generate("setup").unwrap();
    let refused = ClientConfig::with_identity(["localhost"], client_identity(&ca)).unwrap_err();
    assert!(
        matches!(refused, ClientError::InvalidEndpoint(_)),
        "{refused}"
    );
    let addr: SocketAddr = "127.0.0.1:7401".parse().unwrap();
    let bad_name = ClientConfig::from_addrs([addr], client_identity(&ca))
        .server_name(Some("not a name".into()));
    assert!(matches!(
        Client::connect(bad_name).await,
        Err(ClientError::Setup(_))
    ));
    let none = ClientConfig::from_addrs([], client_identity(&ca));
    assert!(matches!(
        Client::connect(none).await,
        Err(ClientError::Setup(_))
    ));
}

/// The QUIC connection ids `socket` was sent Initial packets for since the
/// last look: one per dial (a dial's retransmissions share it).
fn dials_seen(socket: &UdpSocket) -> BTreeSet<Vec<u8>> {
    let mut seen = BTreeSet::new();
    let mut packet = [0u8; 2048];
    while let Ok(len) = socket.recv(&mut packet) {
        // Long header: flags, version (4 bytes), then the destination
        // connection id's length and bytes.
        if len > 6 && packet[0] & 0x80 != 0 {
            let id_len = packet[5] as usize;
            seen.insert(packet[6..(6 + id_len).min(len)].to_vec());
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_found_unreachable_is_passed_over_by_the_calls_after() {
    let ca = CertAuthority::generate("unreachable").unwrap();
    // A node that died: its port takes packets and answers none.
    let dead = UdpSocket::bind("127.0.0.1:0").unwrap();
    dead.set_nonblocking(true).unwrap();
    // The live node serves, except that it knows no leader at its second
    // request, which sends that call on around the endpoints.
    let served = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&served);
    let live = FakeNode::start(&ca, 1, "127.0.0.1", move |_| {
        match count.fetch_add(1, Ordering::SeqCst) {
            1 => leader_unknown(),
            _ => absent(),
        }
    });
    let config = ClientConfig::from_addrs(
        [dead.local_addr().unwrap(), live.addr],
        client_identity(&ca),
    )
    .timeout(PATIENT);
    let client = Client::connect(config).await.unwrap();

    // The first call tries the dead node first, waits out its attempt, and
    // is served by the live one.
    assert_eq!(client.get(b"key").await.unwrap(), None);
    assert!(!dials_seen(&dead).is_empty(), "the first call dialed it");

    // The next call goes round: the live node knows no leader, and the
    // dead node's turn comes; it is passed over, not dialed again.
    assert_eq!(client.get(b"key").await.unwrap(), None);
    assert_eq!(live.requests(), 3);
    let redialed = dials_seen(&dead);
    assert!(redialed.is_empty(), "dialed again: {redialed:?}");
}
