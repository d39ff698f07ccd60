//! The client dials each node once, however many calls start together.

use std::collections::HashMap;
use std::time::Duration;

use prost::Message as _;
use synod_client::{Client, ClientConfig};
use synod_net::certs::CertAuthority;
use synod_net::{NetOptions, NodeEndpoint, NodeNet};
use synod_paxos::NodeId;
use synod_wire::proto::api::{api_response, ApiResponse};
use synod_wire::{GetResponse, Outcome, Response};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_calls_share_one_connection() {
    let ca = CertAuthority::generate("dial-once").unwrap();
    let node_identity = ca
        .issue_node(NodeId(1), &[])
        .unwrap()
        .identity(&ca)
        .unwrap();
    let NodeNet {
        handle,
        mut requests,
        ..
    } = NodeEndpoint::bind(
        NodeId(1),
        "127.0.0.1:0".parse().unwrap(),
        &node_identity,
        NetOptions::default(),
    )
    .unwrap()
    .start(HashMap::new());
    // A node that finds no key, whatever it is asked.
    let absent = ApiResponse {
        result: Some(api_response::Result::Kv(
            Response {
                revision: 1,
                outcome: Some(Outcome::Get(GetResponse { kv: None })),
            }
            .encode_to_vec(),
        )),
    }
    .encode_to_vec();
    tokio::spawn(async move {
        while let Some(incoming) = requests.recv().await {
            incoming.responder.respond_ok(absent.clone());
        }
    });

    let client = Client::connect(
        ClientConfig::from_addrs(
            [handle.local_addr().unwrap()],
            ca.issue_client("app").unwrap().identity(&ca).unwrap(),
        )
        .timeout(Duration::from_secs(10)),
    )
    .await
    .unwrap();
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..64u32 {
        let client = client.clone();
        calls.spawn(async move { client.get(&i.to_be_bytes()).await });
    }
    while let Some(done) = calls.join_next().await {
        assert_eq!(done.unwrap().unwrap(), None);
    }
    assert_eq!(handle.server_stats().client_connections, 1);
}
