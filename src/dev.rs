//! `synod dev`: a cluster of 1 to 7 nodes (3 by default) on 127.0.0.1 in
//! one command.
//!
//! Node i (1, 2, 3, ...) uses ports `P + 10·(i−1) + k`: k = 0 peers, 1 clients
//! (QUIC), 2 Redis protocol, 3 operations (HTTP: metrics, health). Everything lives under one directory:
//! `certs/` (cluster CA, node and client certificates, created when
//! missing), `node<i>/` (each node's database) and `node<i>.toml` (each
//! node's configuration, which `synod start --config` also accepts). Run it
//! again on the same directory and the cluster resumes with its data.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use anyhow::Context;
use synod_net::certs::{self, CertAuthority};
use synod_paxos::NodeId;

use crate::config::{
    ExactlyOnce, NodeConfig, PeerConfig, RedisConnections, Sessions, Timing, TlsFiles,
};

/// Nodes in a development cluster unless told otherwise.
pub const DEFAULT_DEV_NODES: u32 = 3;

/// The most nodes a development cluster has; node certificates exist for
/// all of them, so nodes can join one later with the same port scheme.
pub const MAX_DEV_NODES: u32 = 7;

/// The name of the client certificate `synod dev` makes.
pub const DEV_CLIENT: &str = "client-dev";

/// The addresses of one node of a dev cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DevAddrs {
    /// Peers (QUIC): port `P + 10·(i−1)`.
    pub peer: SocketAddr,
    /// Clients (QUIC): `+ 1`.
    pub client: SocketAddr,
    /// Redis protocol (TCP): `+ 2`.
    pub redis: SocketAddr,
    /// Operations endpoint (HTTP): `+ 3`.
    pub metrics: SocketAddr,
}

/// The addresses of node `id` (1-based) for base port `base_port`.
pub fn dev_addrs(base_port: u16, id: u32) -> DevAddrs {
    let port = |k: u16| {
        let offset = 10 * (id as u16 - 1) + k;
        SocketAddr::from((Ipv4Addr::LOCALHOST, base_port + offset))
    };
    DevAddrs {
        peer: port(0),
        client: port(1),
        redis: port(2),
        metrics: port(3),
    }
}

/// The runtime threads of each of `nodes` nodes sharing this machine: its
/// cores divided among them, at least one each. (On 2 cores, three nodes of
/// one thread each spent a third less CPU per linearizable get and a fifth
/// less per put from 16 clients than with two each, `scripts/cpu-per-op.sh`.)
fn worker_threads_each(nodes: u32) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    (cores / nodes as usize).max(1)
}

/// Creates certificates if missing and writes the configuration of each
/// of `nodes` founding nodes; returns the configurations. A directory whose
/// cluster already started keeps its membership (it is in the log): only
/// the configurations are written again.
pub fn prepare(dir: &Path, base_port: u16, nodes: u32) -> anyhow::Result<Vec<NodeConfig>> {
    if !(1..=MAX_DEV_NODES).contains(&nodes) {
        anyhow::bail!("a dev cluster has 1 to {MAX_DEV_NODES} nodes, not {nodes}");
    }
    if base_port > u16::MAX - 10 * MAX_DEV_NODES as u16 {
        anyhow::bail!("base port {base_port} leaves no room for {MAX_DEV_NODES} nodes");
    }
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the data directory {}", dir.display()))?;
    let certs_dir = dir.join("certs");
    ensure_certificates(&certs_dir)?;
    let mut configs = Vec::new();
    for id in 1..=nodes {
        let addrs = dev_addrs(base_port, id);
        let peers = (1..=nodes)
            .filter(|other| *other != id)
            .map(|other| {
                let other_addrs = dev_addrs(base_port, other);
                PeerConfig {
                    id: other,
                    addr: other_addrs.peer,
                    client_addr: Some(other_addrs.client),
                }
            })
            .collect();
        let stem = synod_net::tls::node_name(NodeId(id));
        let config = NodeConfig {
            id,
            peer_addr: addrs.peer,
            client_addr: addrs.client,
            redis_addr: Some(addrs.redis),
            redis_password: None,
            metrics_addr: Some(addrs.metrics),
            data_dir: dir.join(format!("node{id}")),
            tls: TlsFiles {
                ca: certs_dir.join("ca.pem"),
                cert: certs_dir.join(format!("{stem}.pem")),
                key: certs_dir.join(format!("{stem}.key")),
            },
            peers,
            timing: Timing::default(),
            sessions: Sessions::default(),
            exactly_once: ExactlyOnce::default(),
            redis: RedisConnections::default(),
            worker_threads: Some(worker_threads_each(nodes)),
            join: false,
        };
        let path = config_path(dir, id);
        std::fs::write(&path, toml::to_string(&config)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
        configs.push(config);
    }
    Ok(configs)
}

/// Where `prepare` writes node `id`'s configuration.
pub fn config_path(dir: &Path, id: u32) -> PathBuf {
    dir.join(format!("node{id}.toml"))
}

/// Makes the CA and a client certificate if the CA is not there yet, and
/// the certificate of every possible dev node that has none.
fn ensure_certificates(certs_dir: &Path) -> anyhow::Result<()> {
    let ca = if certs_dir.join("ca.pem").is_file() {
        certs::read_ca(certs_dir)?
    } else {
        let ca = CertAuthority::generate("synod-dev")?;
        certs::write_ca(certs_dir, &ca)?;
        let client = ca.issue_client("dev")?;
        certs::write_issued(certs_dir, DEV_CLIENT, &client)?;
        ca
    };
    for id in 1..=MAX_DEV_NODES {
        let node = NodeId(id);
        let stem = synod_net::tls::node_name(node);
        if !certs_dir.join(format!("{stem}.pem")).is_file() {
            let cert = ca.issue_node(node, &[])?;
            certs::write_issued(certs_dir, &stem, &cert)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_share_the_cores_and_each_gets_at_least_one_thread() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert_eq!(worker_threads_each(1), cores);
        for nodes in 1..=MAX_DEV_NODES {
            let each = worker_threads_each(nodes);
            assert!(each >= 1);
            assert!(each * nodes as usize <= cores.max(nodes as usize));
        }
    }
}
