//! A fake node for the client's connection tests: a real `NodeEndpoint`
//! (QUIC, mutual TLS, the client service) whose requests are answered by a
//! function of the test's, or handed to the test to answer when it likes.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use prost::Message as _;
use synod_net::certs::CertAuthority;
use synod_net::tls::TlsIdentity;
use synod_net::{
    ClientResponse, ErrorCode, IncomingRequest, LeaderHint, NetHandle, NetOptions, NodeEndpoint,
    NodeNet, Outcome as FrameOutcome,
};
use synod_paxos::NodeId;
use synod_wire::proto::api::{api_response, ApiRequest, ApiResponse, NodeStatus};
use synod_wire::{GetResponse, Outcome, Response};
use tokio::sync::mpsc;

/// A node endpoint on a port of its own, answering client requests.
pub struct FakeNode {
    /// Its client address.
    pub addr: SocketAddr,
    /// Requests it received.
    pub requests: Arc<AtomicUsize>,
    /// Its network.
    pub handle: NetHandle,
}

impl FakeNode {
    /// Node `id` with a certificate of `ca`'s, on `ip`, answering each
    /// request with `answer(request)`.
    pub fn start(
        ca: &CertAuthority,
        id: u32,
        ip: &str,
        answer: impl Fn(ApiRequest) -> ClientResponse + Send + 'static,
    ) -> FakeNode {
        let (node, mut held) = FakeNode::start_holding(ca, id, ip);
        tokio::spawn(async move {
            while let Some(incoming) = held.recv().await {
                let request = ApiRequest::decode(incoming.request.payload.as_slice())
                    .expect("the client sends ApiRequests");
                incoming.responder.respond(answer(request));
            }
        });
        node
    }

    /// Node `id` with a certificate of `ca`'s, on `ip`, handing every
    /// request to the receiver returned, unanswered.
    pub fn start_holding(
        ca: &CertAuthority,
        id: u32,
        ip: &str,
    ) -> (FakeNode, mpsc::Receiver<IncomingRequest>) {
        let identity = ca
            .issue_node(NodeId(id), &[])
            .unwrap()
            .identity(ca)
            .unwrap();
        FakeNode::start_with_identity(&identity, id, ip)
    }

    /// Node `id` presenting `identity`, on `ip`, handing every request to
    /// the receiver returned, unanswered.
    pub fn start_with_identity(
        identity: &TlsIdentity,
        id: u32,
        ip: &str,
    ) -> (FakeNode, mpsc::Receiver<IncomingRequest>) {
        let NodeNet {
            handle,
            mut requests,
            ..
        } = NodeEndpoint::bind(
            NodeId(id),
            SocketAddr::new(ip.parse().unwrap(), 0),
            identity,
            NetOptions::default(),
        )
        .unwrap()
        .start(HashMap::new());
        let count = Arc::new(AtomicUsize::new(0));
        let counted = count.clone();
        let (tx, rx) = mpsc::channel(1024);
        tokio::spawn(async move {
            while let Some(incoming) = requests.recv().await {
                counted.fetch_add(1, Ordering::SeqCst);
                if tx.send(incoming).await.is_err() {
                    return;
                }
            }
        });
        let node = FakeNode {
            addr: handle.local_addr().unwrap(),
            requests: count,
            handle,
        };
        (node, rx)
    }

    /// Requests received so far.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

/// A key-value answer: no such key.
pub fn absent() -> ClientResponse {
    ok(api_response::Result::Kv(
        Response {
            revision: 1,
            outcome: Some(Outcome::Get(GetResponse { kv: None })),
        }
        .encode_to_vec(),
    ))
}

/// A status answer.
pub fn status(status: NodeStatus) -> ClientResponse {
    ok(api_response::Result::Status(status))
}

/// `NOT_LEADER`, naming node `leader` at `addr`.
pub fn not_leader(leader: u32, addr: SocketAddr) -> ClientResponse {
    redirect(leader, addr, false)
}

/// `NOT_LEADER` from a node that knows no leader (one is being elected).
pub fn leader_unknown() -> ClientResponse {
    ClientResponse::error(0, ErrorCode::NotLeader, "no leader known")
}

/// `NOT_LEADER` from a node that stopped leading after proposing the
/// request (it may be applied all the same), naming node `leader` at
/// `addr`.
pub fn stepped_down(leader: u32, addr: SocketAddr) -> ClientResponse {
    redirect(leader, addr, true)
}

fn redirect(leader: u32, addr: SocketAddr, outcome_unknown: bool) -> ClientResponse {
    let mut response = ClientResponse::error(0, ErrorCode::NotLeader, "not the leader");
    if let Some(FrameOutcome::Error(e)) = response.outcome.as_mut() {
        e.leader_hint = Some(LeaderHint {
            node_id: leader,
            address: addr.to_string(),
        });
        e.outcome_unknown = outcome_unknown;
    }
    response
}

fn ok(result: api_response::Result) -> ClientResponse {
    ClientResponse::ok(
        0,
        ApiResponse {
            result: Some(result),
        }
        .encode_to_vec(),
    )
}

/// A client identity of `ca`'s cluster.
pub fn client_identity(ca: &CertAuthority) -> TlsIdentity {
    ca.issue_client("app").unwrap().identity(ca).unwrap()
}
