//! Helpers shared by the network tests: certificates, loopback endpoints,
//! raw QUIC connections for misbehaving peers and clients.
#![allow(dead_code)]

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use synod_net::certs::CertAuthority;
use synod_net::tls::{Alpn, TlsIdentity};
use synod_net::{NetOptions, NodeEndpoint, NodeNet};
use synod_paxos::{Ballot, Envelope, Message, NodeId, Slot};

/// Bound of every "should happen eventually" wait.
pub const EVENTUALLY: Duration = Duration::from_secs(15);

/// Waits for `future`, failing the test if it takes longer than
/// [`EVENTUALLY`].
pub async fn eventually<T>(what: &str, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(EVENTUALLY, future).await {
        Ok(value) => value,
        Err(_) => panic!("{what} did not happen within {EVENTUALLY:?}"),
    }
}

/// Polls `condition` until it holds (bounded by [`EVENTUALLY`]).
pub async fn until(what: &str, mut condition: impl FnMut() -> bool) {
    eventually(what, async {
        while !condition() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
}

/// Quick redials and failure detection, for tests.
pub fn test_options() -> NetOptions {
    NetOptions {
        reconnect_initial: Duration::from_millis(20),
        reconnect_max: Duration::from_millis(500),
        idle_timeout: Duration::from_secs(3),
        keep_alive: Duration::from_millis(500),
        ..NetOptions::default()
    }
}

pub fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// A CA with identities for nodes on demand.
pub struct Cluster {
    pub ca: CertAuthority,
}

impl Cluster {
    pub fn new(name: &str) -> Cluster {
        Cluster {
            ca: CertAuthority::generate(name).unwrap(),
        }
    }

    pub fn node(&self, id: u32) -> TlsIdentity {
        self.ca
            .issue_node(NodeId(id), &[])
            .unwrap()
            .identity(&self.ca)
            .unwrap()
    }

    pub fn client(&self, name: &str) -> TlsIdentity {
        self.ca
            .issue_client(name)
            .unwrap()
            .identity(&self.ca)
            .unwrap()
    }

    pub fn bind(&self, id: u32) -> NodeEndpoint {
        NodeEndpoint::bind(NodeId(id), loopback(), &self.node(id), test_options()).unwrap()
    }
}

/// Binds every node first (ports chosen by the OS), then starts each with
/// the others as peers.
pub fn start_nodes(cluster: &Cluster, ids: &[u32]) -> Vec<NodeNet> {
    let endpoints: Vec<NodeEndpoint> = ids.iter().map(|&id| cluster.bind(id)).collect();
    let addrs: HashMap<NodeId, SocketAddr> = ids
        .iter()
        .zip(&endpoints)
        .map(|(&id, e)| (NodeId(id), e.local_addr().unwrap()))
        .collect();
    endpoints
        .into_iter()
        .map(|endpoint| endpoint.start(addrs.clone()))
        .collect()
}

pub fn heartbeat(from: u32, to: u32, round: u64) -> Envelope {
    Envelope {
        from: NodeId(from),
        to: NodeId(to),
        message: Message::Heartbeat {
            ballot: Ballot::new(1, NodeId(from)),
            commit: Slot(0),
            round,
        },
    }
}

/// A QUIC connection built by hand, to behave in ways `synod-net` never
/// would. Keeps its endpoint alive.
pub struct RawConnection {
    pub endpoint: quinn::Endpoint,
    pub conn: quinn::Connection,
}

/// Dials `addr` with `config` as `server_name`.
pub async fn raw_connect(
    config: quinn::ClientConfig,
    addr: SocketAddr,
    server_name: &str,
) -> Result<RawConnection, quinn::ConnectionError> {
    let endpoint = quinn::Endpoint::client(loopback()).unwrap();
    let conn = endpoint
        .connect_with(config, addr, server_name)
        .unwrap()
        .await?;
    Ok(RawConnection { endpoint, conn })
}

/// A quinn client config from `identity` for `alpn`.
pub fn raw_config(identity: &TlsIdentity, alpn: Alpn) -> quinn::ClientConfig {
    identity
        .quic_client_config(alpn, std::sync::Arc::new(quinn::TransportConfig::default()))
        .unwrap()
}

/// A quinn client config that trusts `ca_pem` but presents no certificate.
pub fn config_without_certificate(ca_pem: &str, alpn: Alpn) -> quinn::ClientConfig {
    use rustls::pki_types::pem::PemObject;
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![alpn.as_bytes().to_vec()];
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
    quinn::ClientConfig::new(std::sync::Arc::new(crypto))
}

/// An identity holding `cluster`'s CA (so it trusts the cluster's nodes)
/// but a certificate and key issued by `rogue`.
pub fn rogue_identity(cluster: &Cluster, rogue: &Cluster, node: u32) -> TlsIdentity {
    let issued = rogue.ca.issue_node(NodeId(node), &[]).unwrap();
    TlsIdentity::from_pem(
        cluster.ca.cert_pem().as_bytes(),
        issued.cert_pem.as_bytes(),
        issued.key_pem.as_bytes(),
    )
    .unwrap()
}

/// Writes `envelopes` as frames on one new unidirectional stream and
/// finishes it.
pub async fn send_raw_envelopes(conn: &quinn::Connection, envelopes: &[Envelope]) {
    let mut buf = Vec::new();
    for envelope in envelopes {
        synod_net::frame::encode_frame_into(
            &synod_net::encode_peer(envelope),
            synod_net::frame::MAX_PEER_FRAME_BYTES,
            &mut buf,
        )
        .unwrap();
    }
    let mut stream = conn.open_uni().await.unwrap();
    stream.write_all(&buf).await.unwrap();
    stream.finish().unwrap();
}
