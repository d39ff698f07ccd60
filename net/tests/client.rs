//! The client service: request/response over QUIC, limits, overload.

mod common;

use std::collections::HashMap;
use std::sync::Arc;

use common::*;
use prost::Message as _;
use synod_net::frame::{read_frame, MAX_CLIENT_REQUEST_BYTES, MAX_CLIENT_RESPONSE_BYTES};
use synod_net::{
    ClientConnection, ClientResponse, ErrorCode, NetOptions, NodeEndpoint, NodeNet,
    STREAM_FRAME_TOO_LARGE,
};
use synod_paxos::NodeId;

/// Node 1 with a runtime that answers every request with `echo:<payload>`.
fn echo_node(cluster: &Cluster) -> synod_net::NetHandle {
    let NodeNet {
        handle,
        mut requests,
        ..
    } = cluster.bind(1).start(HashMap::new());
    tokio::spawn(async move {
        while let Some(incoming) = requests.recv().await {
            let mut answer = b"echo:".to_vec();
            answer.extend_from_slice(&incoming.request.payload);
            incoming.responder.respond_ok(answer);
        }
    });
    handle
}

#[tokio::test]
async fn a_request_gets_its_response() {
    let cluster = Cluster::new("round-trip");
    let node = echo_node(&cluster);
    let client = ClientConnection::connect(node.local_addr().unwrap(), &cluster.client("alice"))
        .await
        .unwrap();

    let response = eventually("response", client.request(b"ping".to_vec()))
        .await
        .unwrap();
    assert_eq!(response.payload(), Some(&b"echo:ping"[..]));
    assert_eq!(response.request_id, 1);
    assert!(!response.more);
}

#[tokio::test]
async fn the_runtime_learns_the_clients_certificate_name() {
    let cluster = Cluster::new("client-name");
    let mut net = cluster.bind(1).start(HashMap::new());
    let addr = net.handle.local_addr().unwrap();
    let client = ClientConnection::connect(addr, &cluster.client("bob"))
        .await
        .unwrap();
    let pending = tokio::spawn(async move { client.request(vec![]).await });
    let incoming = eventually("request", net.requests.recv()).await.unwrap();
    assert_eq!(incoming.client_name.as_deref(), Some("client-bob"));
    incoming.responder.respond_ok(vec![]);
    pending.await.unwrap().unwrap();
}

#[tokio::test]
async fn many_concurrent_requests_share_one_connection() {
    let cluster = Cluster::new("concurrent");
    let node = echo_node(&cluster);
    let client = Arc::new(
        ClientConnection::connect(node.local_addr().unwrap(), &cluster.client("c"))
            .await
            .unwrap(),
    );
    // More than QUIC's default limit of 100 concurrent streams.
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..300u32 {
        let client = client.clone();
        tasks.spawn(async move {
            let payload = i.to_be_bytes().to_vec();
            let response = client.request(payload.clone()).await.unwrap();
            assert_eq!(response.payload().unwrap()[5..], payload[..]);
        });
    }
    eventually("all responses", async {
        while let Some(done) = tasks.join_next().await {
            done.unwrap();
        }
    })
    .await;
}

async fn read_response(recv: &mut quinn::RecvStream) -> ClientResponse {
    let frame = read_frame(recv, MAX_CLIENT_RESPONSE_BYTES)
        .await
        .unwrap()
        .expect("a response frame");
    ClientResponse::decode(&frame[..]).unwrap()
}

#[tokio::test]
async fn an_oversized_request_is_refused_and_the_connection_keeps_serving() {
    let cluster = Cluster::new("oversized-request");
    let node = echo_node(&cluster);
    let client = ClientConnection::connect(node.local_addr().unwrap(), &cluster.client("c"))
        .await
        .unwrap();

    let (mut send, mut recv) = client.connection().open_bi().await.unwrap();
    send.write_all(&(MAX_CLIENT_REQUEST_BYTES + 1).to_be_bytes())
        .await
        .unwrap();
    let response = eventually("error response", read_response(&mut recv)).await;
    assert_eq!(response.error_code(), Some(ErrorCode::TooLarge));
    assert_eq!(response.request_id, 0);
    let stopped = eventually("stream stopped", send.stopped()).await;
    assert_eq!(stopped, Ok(Some(STREAM_FRAME_TOO_LARGE)));

    let next = eventually("next request", client.request(b"again".to_vec())).await;
    assert_eq!(next.unwrap().payload(), Some(&b"echo:again"[..]));
    assert_eq!(node.server_stats().bad_streams, 1);
}

#[tokio::test]
async fn a_malformed_request_is_answered_bad_request() {
    let cluster = Cluster::new("malformed-request");
    let node = echo_node(&cluster);
    let client = ClientConnection::connect(node.local_addr().unwrap(), &cluster.client("c"))
        .await
        .unwrap();

    for garbage in [&[0u8, 0, 0, 3, 0xff, 0xff, 0xff][..], &[0, 0, 0, 9, 1][..]] {
        let (mut send, mut recv) = client.connection().open_bi().await.unwrap();
        send.write_all(garbage).await.unwrap();
        send.finish().unwrap();
        let response = eventually("error response", read_response(&mut recv)).await;
        assert_eq!(response.error_code(), Some(ErrorCode::BadRequest));
    }
    let next = eventually("next request", client.request(b"ok".to_vec())).await;
    assert_eq!(next.unwrap().payload(), Some(&b"echo:ok"[..]));
}

#[tokio::test]
async fn a_full_request_queue_answers_overloaded() {
    let cluster = Cluster::new("overload");
    let options = NetOptions {
        request_queue_capacity: 1,
        ..test_options()
    };
    let endpoint = NodeEndpoint::bind(NodeId(1), loopback(), &cluster.node(1), options).unwrap();
    // The runtime never reads its requests.
    let net = endpoint.start(HashMap::new());
    let client = Arc::new(
        ClientConnection::connect(net.handle.local_addr().unwrap(), &cluster.client("c"))
            .await
            .unwrap(),
    );

    let waiting = client.clone();
    let _first = tokio::spawn(async move { waiting.request(b"first".to_vec()).await });
    until("first request queued", || {
        net.handle.server_stats().requests_delivered == 1
    })
    .await;
    let second = eventually("second answer", client.request(b"second".to_vec()))
        .await
        .unwrap();
    assert_eq!(second.error_code(), Some(ErrorCode::Overloaded));
}

#[tokio::test]
async fn a_request_dropped_by_the_runtime_is_answered_unavailable() {
    let cluster = Cluster::new("dropped");
    let mut net = cluster.bind(1).start(HashMap::new());
    let client = ClientConnection::connect(net.handle.local_addr().unwrap(), &cluster.client("c"))
        .await
        .unwrap();
    let pending = tokio::spawn(async move { client.request(b"x".to_vec()).await });
    drop(eventually("request", net.requests.recv()).await.unwrap());
    let response = eventually("answer", pending).await.unwrap().unwrap();
    assert_eq!(response.error_code(), Some(ErrorCode::Unavailable));
}

#[tokio::test]
async fn a_client_dialing_a_peer_only_endpoint_is_refused_at_the_handshake() {
    let cluster = Cluster::new("peer-only");
    let options = NetOptions {
        serves: Some(synod_net::tls::Alpn::Peer),
        ..test_options()
    };
    let endpoint = NodeEndpoint::bind(NodeId(1), loopback(), &cluster.node(1), options).unwrap();
    let net = endpoint.start(HashMap::new());
    let addr = net.handle.local_addr().unwrap();
    // Refused outright (no application protocol in common), not left
    // waiting on a queue the node never reads.
    let dialed = eventually("the handshake's answer", async {
        ClientConnection::connect(addr, &cluster.client("c")).await
    })
    .await;
    assert!(dialed.is_err(), "a client connection to the peer port");
}
