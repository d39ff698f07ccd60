//! A TLS mistake is answered at once with `ClientError::Tls` and rustls's
//! reason, not retried until the call's timeout: a client certificate from
//! another CA, a node certificate that does not name the host dialed, a
//! node from an untrusted CA; a leader a redirect names refusing TLS. An
//! endpoint that refuses TLS is passed over while another serves, and a
//! write that may have been applied is never reported as a TLS refusal.
//!
//! Every client here has a 60 s timeout, so the retrying of old would end
//! in `ClientError::Timeout` after a minute instead.

mod fake_node;

use std::time::Duration;

use fake_node::{absent, client_identity, not_leader, stepped_down, FakeNode};
use synod_client::{Client, ClientConfig, ClientError, TlsError};
use synod_net::certs::CertAuthority;
use synod_net::tls::{TlsIdentity, TlsRefuser};

const PATIENT: Duration = Duration::from_secs(60);

/// The TLS error a call on `config` ends with; panics on anything else.
async fn tls_error_of(config: ClientConfig) -> TlsError {
    let client = Client::connect(config).await.unwrap();
    match client.get(b"key").await {
        Err(ClientError::Tls(e)) => e,
        other => panic!("expected a TLS error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_certificate_from_another_ca_is_refused_by_every_node_with_a_tls_error() {
    let ca = CertAuthority::generate("cluster").unwrap();
    let other = CertAuthority::generate("other").unwrap();
    let nodes = [
        FakeNode::start(&ca, 1, "127.0.0.1", |_| absent()),
        FakeNode::start(&ca, 2, "127.0.0.1", |_| absent()),
    ];
    // Trusts the cluster's CA, presents another CA's certificate.
    let foreign = other.issue_client("app").unwrap();
    let tls = TlsIdentity::from_pem(
        ca.cert_pem().as_bytes(),
        foreign.cert_pem.as_bytes(),
        foreign.key_pem.as_bytes(),
    )
    .unwrap();
    let config = ClientConfig::from_addrs(nodes.iter().map(|n| n.addr), tls).timeout(PATIENT);

    let error = tls_error_of(config).await;
    assert_eq!(error.failure.refused_by, TlsRefuser::Remote, "{error}");
    assert!(error.failure.alert.is_some(), "{error}");
    assert!(nodes.iter().any(|n| n.addr == error.addr), "{error}");
    assert!(nodes.iter().all(|n| n.requests() == 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_certificate_that_does_not_name_the_host_is_refused_with_a_tls_error() {
    let ca = CertAuthority::generate("cluster").unwrap();
    // Node certificates name 127.0.0.1, not 127.0.0.2.
    let node = FakeNode::start(&ca, 1, "127.0.0.2", |_| absent());
    let config = ClientConfig::from_addrs([node.addr], client_identity(&ca)).timeout(PATIENT);

    let error = tls_error_of(config).await;
    assert_eq!(error.failure.refused_by, TlsRefuser::Local, "{error}");
    assert_eq!(error.server_name, "127.0.0.2");
    assert!(
        error
            .failure
            .reason
            .contains("certificate not valid for name \"127.0.0.2\""),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_from_an_untrusted_ca_is_refused_with_a_tls_error() {
    let ca = CertAuthority::generate("cluster").unwrap();
    let impostor_ca = CertAuthority::generate("impostor").unwrap();
    let node = FakeNode::start(&impostor_ca, 1, "127.0.0.1", |_| absent());
    let config = ClientConfig::from_addrs([node.addr], client_identity(&ca)).timeout(PATIENT);

    let error = tls_error_of(config).await;
    assert_eq!(error.failure.refused_by, TlsRefuser::Local, "{error}");
    assert!(error.failure.reason.contains("UnknownIssuer"), "{error}");
    assert_eq!(node.requests(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_refusing_tls_is_passed_over_while_another_serves() {
    let ca = CertAuthority::generate("cluster").unwrap();
    let impostor_ca = CertAuthority::generate("impostor").unwrap();
    let impostor = FakeNode::start(&impostor_ca, 1, "127.0.0.1", |_| absent());
    let node = FakeNode::start(&ca, 2, "127.0.0.1", |_| absent());
    let config =
        ClientConfig::from_addrs([impostor.addr, node.addr], client_identity(&ca)).timeout(PATIENT);
    let client = Client::connect(config).await.unwrap();
    for i in 0..20u32 {
        assert_eq!(client.get(&i.to_be_bytes()).await.unwrap(), None);
    }
    assert_eq!(node.requests(), 20);
    assert_eq!(impostor.requests(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_refuses_tls_ends_the_call_when_a_redirect_names_it_again() {
    let ca = CertAuthority::generate("cluster").unwrap();
    let impostor_ca = CertAuthority::generate("impostor").unwrap();
    let leader = FakeNode::start(&impostor_ca, 2, "127.0.0.1", |_| absent());
    let leader_addr = leader.addr;
    let follower = FakeNode::start(&ca, 1, "127.0.0.1", move |_| not_leader(2, leader_addr));
    let config = ClientConfig::from_addrs([follower.addr], client_identity(&ca)).timeout(PATIENT);

    let error = tls_error_of(config).await;
    assert_eq!(error.addr, leader_addr);
    assert_eq!(error.server_name, "node-2");
    assert_eq!(follower.requests(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_that_may_have_been_applied_ends_in_a_timeout_not_a_tls_error() {
    let ca = CertAuthority::generate("cluster").unwrap();
    let impostor_ca = CertAuthority::generate("impostor").unwrap();
    let leader = FakeNode::start(&impostor_ca, 2, "127.0.0.1", |_| absent());
    let leader_addr = leader.addr;
    // It proposed the write, then lost leadership: the write may be applied.
    let old_leader = FakeNode::start(&ca, 1, "127.0.0.1", move |_| stepped_down(2, leader_addr));
    let config = ClientConfig::from_addrs([old_leader.addr], client_identity(&ca))
        .timeout(Duration::from_secs(1));
    let client = Client::connect(config).await.unwrap();
    assert_eq!(client.put(b"k", b"v").await, Err(ClientError::Timeout));
}
