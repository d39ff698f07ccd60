//! Mutual TLS for QUIC: the cluster CA, this node's certificate, and the
//! rustls/quinn configurations built from them.
//!
//! Every connection, peer or client, is TLS 1.3 with certificates on both
//! sides, each verified against the one cluster CA. The ALPN protocol says
//! what a connection is for: [`ALPN_PEER`] for Paxos traffic between nodes,
//! [`ALPN_CLIENT`] for client requests. A server accepts the one it serves
//! (or both) and reports which one was negotiated ([`Alpn::of`]).
//!
//! Only rustls's `ring` provider is used; it is passed explicitly, so the
//! process-wide default provider is never consulted.

use std::path::Path;
use std::sync::Arc;

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;
#[cfg(feature = "node")]
use synod_paxos::NodeId;

use crate::error::NetError;

/// ALPN protocol of connections between nodes.
pub const ALPN_PEER: &[u8] = b"synod-peer/1";

/// ALPN protocol of client connections.
pub const ALPN_CLIENT: &[u8] = b"synod-client/1";

/// Prefix of the DNS name that identifies a node in its certificate:
/// node 3 is `node-3`.
pub const NODE_NAME_PREFIX: &str = "node-";

/// What a connection is for, as negotiated by ALPN.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Alpn {
    /// Paxos traffic between nodes ([`ALPN_PEER`]).
    Peer,
    /// Client requests ([`ALPN_CLIENT`]).
    Client,
}

impl Alpn {
    /// The protocol id on the wire.
    pub fn as_bytes(self) -> &'static [u8] {
        match self {
            Alpn::Peer => ALPN_PEER,
            Alpn::Client => ALPN_CLIENT,
        }
    }

    /// The protocol with this id, if Synod knows it.
    pub fn from_bytes(bytes: &[u8]) -> Option<Alpn> {
        match bytes {
            ALPN_PEER => Some(Alpn::Peer),
            ALPN_CLIENT => Some(Alpn::Client),
            _ => None,
        }
    }

    /// The protocol negotiated on an established connection.
    pub fn of(conn: &quinn::Connection) -> Result<Alpn, NetError> {
        conn.handshake_data()
            .and_then(|data| data.downcast::<quinn::crypto::rustls::HandshakeData>().ok())
            .and_then(|data| data.protocol)
            .and_then(|protocol| Alpn::from_bytes(&protocol))
            .ok_or(NetError::UnknownAlpn)
    }
}

/// The DNS name a node's certificate carries: `node-<id>`.
///
/// Peers dial each other with this as the TLS server name, and the receiving
/// side reads it back to learn who is on the other end.
#[cfg(feature = "node")]
pub fn node_name(node: NodeId) -> String {
    format!("{NODE_NAME_PREFIX}{}", node.0)
}

/// The node a certificate names: the one `node-<id>` DNS subject
/// alternative name on it.
///
/// Call only on a certificate that TLS already verified against the CA.
/// Fails if the certificate does not parse, names no node, or names more
/// than one.
#[cfg(feature = "node")]
pub fn node_id_of_cert(cert: &CertificateDer<'_>) -> Result<NodeId, NetError> {
    let parsed = webpki::EndEntityCert::try_from(cert)
        .map_err(|err| NetError::NotANode(format!("unparsable certificate: {err}")))?;
    let mut ids = parsed.valid_dns_names().filter_map(|name| {
        let digits = name.strip_prefix(NODE_NAME_PREFIX)?;
        // Canonical decimal only, so `node-03` cannot stand for node 3.
        let id: u32 = digits.parse().ok()?;
        (id.to_string() == digits).then_some(NodeId(id))
    });
    match (ids.next(), ids.next()) {
        (Some(id), None) => Ok(id),
        (None, _) => Err(NetError::NotANode("no node-<id> name".into())),
        (Some(_), Some(_)) => Err(NetError::NotANode("more than one node-<id> name".into())),
    }
}

/// The verified certificate chain the remote side presented, leaf first.
pub fn peer_certificates(conn: &quinn::Connection) -> Option<Vec<CertificateDer<'static>>> {
    conn.peer_identity()?
        .downcast::<Vec<CertificateDer<'static>>>()
        .ok()
        .map(|chain| *chain)
}

/// The node on the other end of an established connection, from its
/// verified certificate (see [`node_id_of_cert`]).
#[cfg(feature = "node")]
pub fn peer_node_id(conn: &quinn::Connection) -> Result<NodeId, NetError> {
    let chain = peer_certificates(conn)
        .ok_or_else(|| NetError::NotANode("no certificate presented".into()))?;
    let leaf = chain
        .first()
        .ok_or_else(|| NetError::NotANode("empty certificate chain".into()))?;
    node_id_of_cert(leaf)
}

/// Which side of a TLS handshake refused it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TlsRefuser {
    /// This side: it refused the other side's certificate (an untrusted CA,
    /// a certificate that does not name the server name dialed) or settings.
    Local,
    /// The other side: it refused this side's certificate or settings (a
    /// client certificate from another CA, no common ALPN protocol).
    Remote,
}

/// A TLS handshake that failed because one side refused the other's
/// certificate or settings, read off a QUIC connection error.
///
/// Unlike a lost or unreachable peer, this does not go away by retrying:
/// the certificates, the CA or the server name must change. quinn keeps
/// rustls's reason as text only, so that is what [`reason`](TlsFailure::reason)
/// holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFailure {
    /// Which side refused.
    pub refused_by: TlsRefuser,
    /// The TLS alert the refusing side sent (`UnknownCA`, `BadCertificate`,
    /// ...), if it sent one.
    pub alert: Option<rustls::AlertDescription>,
    /// rustls's reason as text, e.g. `invalid peer certificate:
    /// UnknownIssuer` (for [`TlsRefuser::Remote`], whatever the peer put in
    /// its close frame; may be empty).
    pub reason: String,
}

impl TlsFailure {
    /// The TLS refusal `err` reports, or `None` for any other failure.
    ///
    /// QUIC carries a TLS alert as a transport error code `0x100 + alert`
    /// (RFC 9001, section 4.8): raised locally as a transport error, or
    /// received in the peer's `CONNECTION_CLOSE`. A local rustls error
    /// without an alert becomes quinn's `PROTOCOL_VIOLATION` with a reason
    /// starting `TLS error:`, which counts too.
    pub fn of(err: &NetError) -> Option<TlsFailure> {
        let NetError::Connection(err) = err else {
            return None;
        };
        let alert_of = |code: quinn::TransportErrorCode| {
            let code = u64::from(code);
            (0x100..0x200)
                .contains(&code)
                .then(|| rustls::AlertDescription::from(code as u8))
        };
        match err {
            quinn::ConnectionError::TransportError(local) => {
                let alert = alert_of(local.code);
                let tls_text = local.code == quinn::TransportErrorCode::PROTOCOL_VIOLATION
                    && local.reason.starts_with("TLS error:");
                (alert.is_some() || tls_text).then(|| TlsFailure {
                    refused_by: TlsRefuser::Local,
                    alert,
                    reason: local.reason.clone(),
                })
            }
            quinn::ConnectionError::ConnectionClosed(remote) => {
                alert_of(remote.error_code).map(|alert| TlsFailure {
                    refused_by: TlsRefuser::Remote,
                    alert: Some(alert),
                    reason: String::from_utf8_lossy(&remote.reason).into_owned(),
                })
            }
            _ => None,
        }
    }
}

impl std::fmt::Display for TlsFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.refused_by {
            TlsRefuser::Local => "this side refused the peer's certificate or settings",
            TlsRefuser::Remote => "the peer refused our certificate or settings",
        })?;
        if let Some(alert) = self.alert {
            write!(f, " (TLS alert {alert:?})")?;
        }
        if !self.reason.is_empty() {
            write!(f, ": {}", self.reason)?;
        }
        Ok(())
    }
}

impl std::error::Error for TlsFailure {}

/// Whether `name` can be dialed as a TLS server name: a DNS name or an IP
/// address in text.
pub fn is_valid_server_name(name: &str) -> bool {
    rustls::pki_types::ServerName::try_from(name).is_ok()
}

/// The cluster CA, and this node's (or client's) certificate and key.
///
/// Holds the private key in memory; cloning copies the DER bytes.
pub struct TlsIdentity {
    ca: Vec<CertificateDer<'static>>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl Clone for TlsIdentity {
    fn clone(&self) -> Self {
        TlsIdentity {
            ca: self.ca.clone(),
            chain: self.chain.clone(),
            key: self.key.clone_key(),
        }
    }
}

impl std::fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsIdentity")
            .field("ca_certs", &self.ca.len())
            .field("chain_certs", &self.chain.len())
            .finish_non_exhaustive()
    }
}

impl TlsIdentity {
    /// From PEM text: the CA certificate(s), our certificate chain (leaf
    /// first) and our private key (PKCS#8, PKCS#1 or SEC1).
    pub fn from_pem(ca_pem: &[u8], cert_pem: &[u8], key_pem: &[u8]) -> Result<Self, NetError> {
        let ca = certs_from_pem(ca_pem, "CA")?;
        let chain = certs_from_pem(cert_pem, "certificate")?;
        let key = PrivateKeyDer::from_pem_slice(key_pem)
            .map_err(|err| NetError::Pem(format!("private key: {err}")))?;
        Ok(TlsIdentity { ca, chain, key })
    }

    /// From three PEM files; see [`TlsIdentity::from_pem`].
    pub fn from_pem_files(ca: &Path, cert: &Path, key: &Path) -> Result<Self, NetError> {
        let read = |path: &Path| {
            std::fs::read(path).map_err(|source| NetError::File {
                path: path.to_path_buf(),
                source,
            })
        };
        Self::from_pem(&read(ca)?, &read(cert)?, &read(key)?)
    }

    /// Our own leaf certificate.
    pub fn certificate(&self) -> &CertificateDer<'static> {
        &self.chain[0]
    }

    /// The CA certificates this identity trusts: the cluster's identity
    /// (peers and clients trust exactly the certificates it signed).
    pub fn ca_certificates(&self) -> &[CertificateDer<'static>] {
        &self.ca
    }

    fn roots(&self) -> Result<RootCertStore, NetError> {
        let mut roots = RootCertStore::empty();
        for cert in &self.ca {
            roots.add(cert.clone())?;
        }
        Ok(roots)
    }

    /// rustls server settings: TLS 1.3 only, our certificate, a client
    /// certificate required and verified against the CA, and the ALPN
    /// protocol of `serves` offered (both for `None`): a connection asking
    /// for another fails its handshake.
    pub fn server_config(&self, serves: Option<Alpn>) -> Result<rustls::ServerConfig, NetError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(self.roots()?), provider.clone())
                .build()?;
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.chain.clone(), self.key.clone_key())?;
        config.alpn_protocols = match serves {
            Some(alpn) => vec![alpn.as_bytes().to_vec()],
            None => vec![ALPN_PEER.to_vec(), ALPN_CLIENT.to_vec()],
        };
        Ok(config)
    }

    /// rustls client settings: TLS 1.3 only, our certificate presented, the
    /// server verified against the CA (and the server name given at
    /// connect), and `alpn` as the only protocol offered.
    pub fn client_config(&self, alpn: Alpn) -> Result<rustls::ClientConfig, NetError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_root_certificates(self.roots()?)
            .with_client_auth_cert(self.chain.clone(), self.key.clone_key())?;
        config.alpn_protocols = vec![alpn.as_bytes().to_vec()];
        Ok(config)
    }

    /// [`TlsIdentity::server_config`] wrapped for quinn, with `transport`.
    pub fn quic_server_config(
        &self,
        transport: Arc<quinn::TransportConfig>,
        serves: Option<Alpn>,
    ) -> Result<quinn::ServerConfig, NetError> {
        let crypto = QuicServerConfig::try_from(self.server_config(serves)?)
            .map_err(|err| NetError::QuicCrypto(err.to_string()))?;
        let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
        config.transport_config(transport);
        Ok(config)
    }

    /// [`TlsIdentity::client_config`] wrapped for quinn, with `transport`.
    pub fn quic_client_config(
        &self,
        alpn: Alpn,
        transport: Arc<quinn::TransportConfig>,
    ) -> Result<quinn::ClientConfig, NetError> {
        let crypto = QuicClientConfig::try_from(self.client_config(alpn)?)
            .map_err(|err| NetError::QuicCrypto(err.to_string()))?;
        let mut config = quinn::ClientConfig::new(Arc::new(crypto));
        config.transport_config(transport);
        Ok(config)
    }
}

/// The CA certificates in the PEM file at `path` (a cluster's `ca.pem`).
pub fn ca_certificates_from_pem_file(
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, NetError> {
    let pem = std::fs::read(path).map_err(|source| NetError::File {
        path: path.to_path_buf(),
        source,
    })?;
    certs_from_pem(&pem, "CA")
}

fn certs_from_pem(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, NetError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| NetError::Pem(format!("{what}: {err}")))?;
    if certs.is_empty() {
        return Err(NetError::Pem(format!("{what}: no certificate found")));
    }
    Ok(certs)
}
