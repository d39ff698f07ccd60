//! Command-line flags: those of `synod start`, merged over an optional TOML file
//! ([`StartFlags`]), and how the client subcommands address a running cluster
//! ([`ClusterFlags`]).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;
use synod_net::tls::TlsIdentity;

use crate::config::{
    ConfigError, ExactlyOnce, NodeConfig, PeerConfig, RedisConnections, Sessions, Timing, TlsFiles,
};

/// Flags of `synod start`. With `--config`, flags given override the file;
/// without it, `--id`, `--peer-addr`, `--client-addr`, `--data-dir`,
/// `--ca`, `--cert` and `--key` are required.
#[derive(Args, Debug, Default)]
pub struct StartFlags {
    /// A TOML configuration file (see README.md for its keys).
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// This node's id (at least 1).
    #[arg(long)]
    pub id: Option<u32>,
    /// Address peers reach this node at (UDP).
    #[arg(long)]
    pub peer_addr: Option<SocketAddr>,
    /// Address clients reach this node at (UDP).
    #[arg(long)]
    pub client_addr: Option<SocketAddr>,
    /// Address of the Redis-protocol endpoint (TCP).
    #[arg(long)]
    pub redis_addr: Option<SocketAddr>,
    /// Address of the operations endpoint (HTTP: /metrics, /health,
    /// /ready).
    #[arg(long)]
    pub metrics_addr: Option<SocketAddr>,
    /// Directory of this node's database.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Another member, as `ID=PEER_ADDR` or `ID=PEER_ADDR,CLIENT_ADDR`;
    /// repeat for each.
    #[arg(long = "peer", value_parser = parse_peer)]
    pub peers: Vec<PeerConfig>,
    /// The cluster CA certificate (PEM).
    #[arg(long)]
    pub ca: Option<PathBuf>,
    /// This node's certificate (PEM).
    #[arg(long)]
    pub cert: Option<PathBuf>,
    /// This node's private key (PEM).
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// Leader heartbeat period in milliseconds.
    #[arg(long)]
    pub heartbeat_ms: Option<u64>,
    /// Election timeout in milliseconds.
    #[arg(long)]
    pub election_timeout_ms: Option<u64>,
    /// Leader lease in milliseconds.
    #[arg(long)]
    pub lease_ms: Option<u64>,
    /// How often the leader checkpoints session TTLs, in milliseconds.
    #[arg(long)]
    pub checkpoint_interval_ms: Option<u64>,
    /// How long a lock lost by session expiry stays unavailable, in
    /// milliseconds.
    #[arg(long)]
    pub lock_delay_ms: Option<u64>,
    /// Join a running cluster: start empty, wait until a member adds this
    /// node (`synod member add`), then catch up. `--peer` names members to
    /// reach.
    #[arg(long)]
    pub join: bool,
}

/// How `synod status` and `synod snapshot save` find a cluster: `--node`
/// addresses with `--ca/--cert/--key`, or by default the `synod dev`
/// cluster of `--data-dir` and `--base-port` (its addresses and client
/// certificate).
#[derive(Args, Debug, Clone)]
pub struct ClusterFlags {
    /// Client addresses of the nodes to ask (default: the `synod dev`
    /// cluster's, from the node configurations in its directory).
    #[arg(long = "node")]
    pub nodes: Vec<SocketAddr>,
    /// The `synod dev` cluster's directory (for its addresses and client
    /// certificate).
    #[arg(long, default_value = "synod-data")]
    pub data_dir: PathBuf,
    /// The base port of that `synod dev` cluster, if its directory has no
    /// node configurations.
    #[arg(long, default_value_t = 7400)]
    pub base_port: u16,
    /// CA certificate (defaults to the dev cluster's).
    #[arg(long)]
    pub ca: Option<PathBuf>,
    /// Client certificate (defaults to the dev cluster's).
    #[arg(long)]
    pub cert: Option<PathBuf>,
    /// Client key (defaults to the dev cluster's).
    #[arg(long)]
    pub key: Option<PathBuf>,
}

impl ClusterFlags {
    /// The client identity: the files given, else the dev cluster's.
    pub fn tls(&self) -> Result<TlsIdentity, synod_net::NetError> {
        let certs_dir = self.data_dir.join("certs");
        let pick = |given: &Option<PathBuf>, file: &str| {
            given.clone().unwrap_or_else(|| certs_dir.join(file))
        };
        TlsIdentity::from_pem_files(
            &pick(&self.ca, "ca.pem"),
            &pick(&self.cert, &format!("{}.pem", crate::dev::DEV_CLIENT)),
            &pick(&self.key, &format!("{}.key", crate::dev::DEV_CLIENT)),
        )
    }

    /// The nodes' client addresses: those given, else the dev cluster's:
    /// from the node configurations `synod dev` wrote into `data_dir`
    /// (whatever its base port), or by the port scheme from `base_port`.
    pub fn node_addrs(&self) -> Vec<SocketAddr> {
        if !self.nodes.is_empty() {
            return self.nodes.clone();
        }
        let from_files: Vec<SocketAddr> = (1..=crate::dev::MAX_DEV_NODES)
            .filter_map(|id| {
                NodeConfig::from_file(&crate::dev::config_path(&self.data_dir, id))
                    .ok()
                    .map(|c| c.client_addr)
            })
            .collect();
        if !from_files.is_empty() {
            return from_files;
        }
        (1..=crate::dev::DEFAULT_DEV_NODES)
            .map(|id| crate::dev::dev_addrs(self.base_port, id).client)
            .collect()
    }
}

fn parse_peer(text: &str) -> Result<PeerConfig, String> {
    let (id, addrs) = text
        .split_once('=')
        .ok_or_else(|| format!("peer {text:?} is not ID=ADDR"))?;
    let id = id
        .parse()
        .map_err(|_| format!("peer id {id:?} is not a number"))?;
    let (peer, client) = match addrs.split_once(',') {
        Some((peer, client)) => (peer, Some(client)),
        None => (addrs, None),
    };
    let addr = peer
        .parse()
        .map_err(|_| format!("peer address {peer:?} is not HOST:PORT"))?;
    let client_addr = client
        .map(|c| {
            c.parse()
                .map_err(|_| format!("client address {c:?} is not HOST:PORT"))
        })
        .transpose()?;
    Ok(PeerConfig {
        id,
        addr,
        client_addr,
    })
}

impl StartFlags {
    /// The configuration these flags describe.
    pub fn into_config(self) -> Result<NodeConfig, ConfigError> {
        let missing =
            |flag: &str| ConfigError::Invalid(format!("--{flag} is required without --config"));
        let mut config = match &self.config {
            Some(path) => NodeConfig::from_file(path)?,
            None => NodeConfig {
                id: self.id.ok_or_else(|| missing("id"))?,
                peer_addr: self.peer_addr.ok_or_else(|| missing("peer-addr"))?,
                client_addr: self.client_addr.ok_or_else(|| missing("client-addr"))?,
                redis_addr: None,
                redis_password: None,
                metrics_addr: None,
                data_dir: self.data_dir.clone().ok_or_else(|| missing("data-dir"))?,
                tls: TlsFiles {
                    ca: self.ca.clone().ok_or_else(|| missing("ca"))?,
                    cert: self.cert.clone().ok_or_else(|| missing("cert"))?,
                    key: self.key.clone().ok_or_else(|| missing("key"))?,
                },
                peers: Vec::new(),
                timing: Timing::default(),
                sessions: Sessions::default(),
                exactly_once: ExactlyOnce::default(),
                redis: RedisConnections::default(),
                worker_threads: None,
                join: false,
            },
        };
        if let Some(id) = self.id {
            config.id = id;
        }
        if let Some(addr) = self.peer_addr {
            config.peer_addr = addr;
        }
        if let Some(addr) = self.client_addr {
            config.client_addr = addr;
        }
        if self.redis_addr.is_some() {
            config.redis_addr = self.redis_addr;
        }
        if self.metrics_addr.is_some() {
            config.metrics_addr = self.metrics_addr;
        }
        if let Some(dir) = self.data_dir {
            config.data_dir = dir;
        }
        if !self.peers.is_empty() {
            config.peers = self.peers;
        }
        if let Some(ca) = self.ca {
            config.tls.ca = ca;
        }
        if let Some(cert) = self.cert {
            config.tls.cert = cert;
        }
        if let Some(key) = self.key {
            config.tls.key = key;
        }
        if let Some(ms) = self.heartbeat_ms {
            config.timing.heartbeat_ms = ms;
        }
        if let Some(ms) = self.election_timeout_ms {
            config.timing.election_timeout_ms = ms;
        }
        if let Some(ms) = self.lease_ms {
            config.timing.lease_ms = ms;
        }
        if let Some(ms) = self.checkpoint_interval_ms {
            config.sessions.checkpoint_interval_ms = ms;
        }
        if let Some(ms) = self.lock_delay_ms {
            config.sessions.lock_delay_ms = ms;
        }
        if self.join {
            config.join = true;
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_parse_with_and_without_a_client_address() {
        let p = parse_peer("2=127.0.0.1:7410").unwrap();
        assert_eq!((p.id, p.client_addr), (2, None));
        let p = parse_peer("3=127.0.0.1:7420,127.0.0.1:7421").unwrap();
        assert_eq!(p.client_addr, Some("127.0.0.1:7421".parse().unwrap()));
        assert!(parse_peer("x=1").unwrap_err().contains("not a number"));
        assert!(parse_peer("2").unwrap_err().contains("ID=ADDR"));
    }

    #[test]
    fn flags_without_a_file_name_what_is_missing() {
        let flags = StartFlags {
            id: Some(1),
            ..Default::default()
        };
        let err = flags.into_config().unwrap_err().to_string();
        assert!(err.contains("--peer-addr"), "{err}");
    }
}
