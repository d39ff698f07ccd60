//! Certificates for a Synod cluster, generated with rcgen: one CA per
//! cluster, a certificate per node and per client.
//!
//! - The CA is self-signed and may only sign (key usages `keyCertSign`,
//!   `cRLSign`).
//! - A node certificate names the node `node-<id>` (common name and DNS
//!   name), plus `localhost`, `127.0.0.1`, `::1` and any extra names or addresses
//!   given, and is good for both server and client authentication: a node
//!   accepts connections and dials its peers with the same certificate.
//! - A client certificate names `client-<name>` and is good for client
//!   authentication only; it can never pass for a node.
//!
//! Keys are ECDSA P-256. Validity is rcgen's default (effectively no
//! expiry); rotation is left to a later version.
//!
//! The `write_*` functions lay files out for a `synod cert` command:
//! `ca.pem`/`ca.key`, `node-<id>.pem`/`.key`, `client-<name>.pem`/`.key`,
//! keys written with mode 0600 on Unix.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use synod_paxos::NodeId;

use crate::error::NetError;
use crate::tls::{node_name, TlsIdentity, NODE_NAME_PREFIX};

/// Prefix of the DNS name on a client certificate: client `alice` is
/// `client-alice`.
pub const CLIENT_NAME_PREFIX: &str = "client-";

/// A cluster certificate authority: its certificate and its signing key.
pub struct CertAuthority {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
    key_pem: String,
}

impl std::fmt::Debug for CertAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertAuthority").finish_non_exhaustive()
    }
}

/// A certificate and its private key, both PEM.
#[derive(Clone)]
pub struct IssuedCert {
    /// The certificate (leaf only; the CA is distributed separately).
    pub cert_pem: String,
    /// The private key (PKCS#8).
    pub key_pem: String,
}

impl std::fmt::Debug for IssuedCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedCert").finish_non_exhaustive()
    }
}

impl IssuedCert {
    /// The [`TlsIdentity`] of this certificate within `ca`'s cluster.
    pub fn identity(&self, ca: &CertAuthority) -> Result<TlsIdentity, NetError> {
        TlsIdentity::from_pem(
            ca.cert_pem.as_bytes(),
            self.cert_pem.as_bytes(),
            self.key_pem.as_bytes(),
        )
    }
}

impl CertAuthority {
    /// A new CA for the cluster called `cluster` (its name goes into the
    /// CA's common name; it must be a valid [name](CertAuthority::issue_client)).
    pub fn generate(cluster: &str) -> Result<CertAuthority, NetError> {
        check_name(cluster)?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params
            .distinguished_name
            .push(DnType::CommonName, format!("Synod CA {cluster}"));
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        let key_pem = key.serialize_pem();
        Ok(CertAuthority {
            issuer: Issuer::new(params, key),
            cert_pem: cert.pem(),
            key_pem,
        })
    }

    /// A CA from its certificate and key in PEM, e.g. as written by
    /// [`write_ca`].
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<CertAuthority, NetError> {
        let key = KeyPair::from_pem(key_pem)?;
        let issuer = Issuer::from_ca_cert_pem(cert_pem, key)?;
        Ok(CertAuthority {
            issuer,
            cert_pem: cert_pem.to_owned(),
            key_pem: key_pem.to_owned(),
        })
    }

    /// The CA certificate, PEM: every node and client needs it.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA private key, PEM: keep it off the nodes if you can.
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// A certificate for node `node`, with server and client usage, naming
    /// `node-<id>`, `localhost`, `127.0.0.1`, `::1` and each of `extra_names` (a DNS
    /// name or an IP address, e.g. the address clients dial).
    pub fn issue_node(&self, node: NodeId, extra_names: &[String]) -> Result<IssuedCert, NetError> {
        let name = node_name(node);
        let mut names = vec![
            name.clone(),
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
            "::1".to_owned(),
        ];
        for extra in extra_names {
            if !names.contains(extra) {
                names.push(extra.clone());
            }
        }
        let mut params = CertificateParams::new(names)?;
        // A node name among the extras would let one node speak for another.
        let foreign = params.subject_alt_names.iter().find_map(|san| match san {
            SanType::DnsName(dns)
                if dns.as_str() != name
                    && dns
                        .as_str()
                        .to_ascii_lowercase()
                        .starts_with(NODE_NAME_PREFIX) =>
            {
                Some(dns.as_str().to_owned())
            }
            _ => None,
        });
        if let Some(foreign) = foreign {
            return Err(NetError::ForeignNodeName(foreign));
        }
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        self.sign(params)
    }

    /// A certificate for the client `name` (1–63 ASCII letters, digits and
    /// `-`), with client usage only, naming `client-<name>`.
    pub fn issue_client(&self, name: &str) -> Result<IssuedCert, NetError> {
        check_name(name)?;
        let full = format!("{CLIENT_NAME_PREFIX}{name}");
        let mut params = CertificateParams::new(vec![full.clone()])?;
        params.distinguished_name.push(DnType::CommonName, full);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.sign(params)
    }

    fn sign(&self, mut params: CertificateParams) -> Result<IssuedCert, NetError> {
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(IssuedCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

fn check_name(name: &str) -> Result<(), NetError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(NetError::InvalidName(name.to_owned()))
    }
}

/// Where `write_*` put a certificate and its key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PemPaths {
    /// The certificate file.
    pub cert: PathBuf,
    /// The private key file.
    pub key: PathBuf,
}

/// Writes `ca.pem` and `ca.key` into `dir` (created if missing).
/// Overwrites existing files.
pub fn write_ca(dir: &Path, ca: &CertAuthority) -> Result<PemPaths, NetError> {
    write_pair(dir, "ca", &ca.cert_pem, &ca.key_pem)
}

/// Reads the CA that [`write_ca`] wrote into `dir`.
pub fn read_ca(dir: &Path) -> Result<CertAuthority, NetError> {
    let cert = read_text(&dir.join("ca.pem"))?;
    let key = read_text(&dir.join("ca.key"))?;
    CertAuthority::from_pem(&cert, &key)
}

/// Writes `<stem>.pem` and `<stem>.key` into `dir` (created if missing),
/// e.g. stem `node-3` or `client-alice`. Overwrites existing files.
pub fn write_issued(dir: &Path, stem: &str, cert: &IssuedCert) -> Result<PemPaths, NetError> {
    check_name(stem)?;
    write_pair(dir, stem, &cert.cert_pem, &cert.key_pem)
}

/// Loads the identity of `<stem>` from `dir` as laid out by [`write_ca`] and
/// [`write_issued`]: `ca.pem`, `<stem>.pem`, `<stem>.key`.
pub fn load_identity(dir: &Path, stem: &str) -> Result<TlsIdentity, NetError> {
    TlsIdentity::from_pem_files(
        &dir.join("ca.pem"),
        &dir.join(format!("{stem}.pem")),
        &dir.join(format!("{stem}.key")),
    )
}

fn write_pair(dir: &Path, stem: &str, cert: &str, key: &str) -> Result<PemPaths, NetError> {
    std::fs::create_dir_all(dir).map_err(|source| NetError::File {
        path: dir.to_path_buf(),
        source,
    })?;
    let paths = PemPaths {
        cert: dir.join(format!("{stem}.pem")),
        key: dir.join(format!("{stem}.key")),
    };
    write_file(&paths.cert, cert, false)?;
    write_file(&paths.key, key, true)?;
    Ok(paths)
}

fn write_file(path: &Path, text: &str, secret: bool) -> Result<(), NetError> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let file_error = |source| NetError::File {
        path: path.to_path_buf(),
        source,
    };
    let mut file = options.open(path).map_err(file_error)?;
    // `mode` only applies to new files: tighten an existing key file too.
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(file_error)?;
    }
    #[cfg(not(unix))]
    let _ = secret;
    file.write_all(text.as_bytes()).map_err(file_error)?;
    file.sync_all().map_err(file_error)
}

fn read_text(path: &Path) -> Result<String, NetError> {
    std::fs::read_to_string(path).map_err(|source| NetError::File {
        path: path.to_path_buf(),
        source,
    })
}
