//! `synod start`: one node on the network. Wires the node runtime to QUIC:
//! peers on `peer_addr` (through `outbox`), clients on `client_addr`
//! (served by `api`).

mod api;
mod outbox;

use api::ClientService;
use outbox::NetOutbox;

use std::collections::HashMap;
use std::net::SocketAddr;

use anyhow::Context;
use synod_kvstore::NodeStore;
use synod_net::tls::{Alpn, TlsIdentity};
use synod_net::{NetOptions, NodeEndpoint};
use synod_paxos::NodeId;
use tokio::sync::{mpsc, watch};

use crate::config::NodeConfig;
use crate::members::ClientAddrs;
use crate::metrics::{NodeMetrics, PeerLinks};
use crate::node::{spawn_core_with_sessions, CompactionPolicy, CoreSetup, PeerInput, PEER_QUEUE};

/// Runs one node until `shutdown` turns true; then stops accepting, lets the
/// core persist what it has, and returns.
pub async fn run_node(config: NodeConfig, shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
    config.validate()?;
    let id = NodeId(config.id);
    let tls = TlsIdentity::from_pem_files(&config.tls.ca, &config.tls.cert, &config.tls.key)
        .context("cannot load the node's certificates")?;
    crate::backup::origin::check_start(&config.data_dir, tls.ca_certificates())?;
    let store = NodeStore::open_with(
        &config.data_dir,
        config.exactly_once.state_machine_options(),
    )
    .with_context(|| format!("cannot open the database in {}", config.data_dir.display()))?;
    // Notice a crashed peer within two seconds, so a restarted one is
    // redialed before its election timer runs out several times.
    let options = NetOptions {
        idle_timeout: std::time::Duration::from_secs(2),
        keep_alive: std::time::Duration::from_millis(500),
        ..NetOptions::default()
    };
    let peer_options = NetOptions {
        serves: Some(Alpn::Peer),
        ..options.clone()
    };
    let client_options = NetOptions {
        serves: Some(Alpn::Client),
        ..options
    };
    let peer_endpoint = NodeEndpoint::bind(id, config.peer_addr, &tls, peer_options)?;
    let client_endpoint = NodeEndpoint::bind(id, config.client_addr, &tls, client_options)?;
    let redis_listener = match config.redis_addr {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen for Redis clients on {addr}"))?,
        ),
        None => None,
    };
    let metrics_listener = match config.metrics_addr {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen for metrics scrapes on {addr}"))?,
        ),
        None => None,
    };
    let peer_addrs: HashMap<NodeId, SocketAddr> = config
        .peers
        .iter()
        .map(|p| (NodeId(p.id), p.addr))
        .collect();
    let mut peer_net = peer_endpoint.start(peer_addrs.clone());
    let peer_stats = peer_net.handle.stats_reader();
    let mut client_net = client_endpoint.start(HashMap::new());

    let (inbox_tx, inbox) = mpsc::channel(PEER_QUEUE);
    let forward = inbox_tx.clone();
    tokio::spawn(async move {
        while let Some(envelope) = peer_net.inbound.recv().await {
            if forward.send(PeerInput::Message(envelope)).await.is_err() {
                return;
            }
        }
    });
    let client_addrs = ClientAddrs::new(
        config
            .peers
            .iter()
            .filter_map(|p| Some((NodeId(p.id), p.client_addr?)))
            .chain([(NodeId(config.id), config.client_addr)])
            .collect(),
    );
    let metrics = NodeMetrics::default();
    let peer_links = PeerLinks::new(peer_net.peers.clone());
    let outbox = NetOutbox::new(
        peer_addrs.clone(),
        peer_net.peers,
        client_addrs.clone(),
        tls.clone(),
    );
    // Differs at each start: the core numbers its read-index requests from
    // it, so a late answer to a previous run's request matches none.
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos() as u64;
    let seed = u64::from(config.id) ^ std::process::id() as u64 ^ started;
    let (handle, core) = spawn_core_with_sessions(
        CoreSetup {
            paxos: config.paxos_config(seed),
            log: store.log,
            state_machine: store.state_machine,
            outbox: Box::new(outbox),
            inbox,
            compaction: CompactionPolicy::default(),
            shutdown: shutdown.clone(),
            metrics: metrics.core.clone(),
            founding: config.founding_members(),
        },
        config.sessions.clock_config(),
    )?;
    tracing::info!(node = config.id, peers = %config.peer_addr, clients = %config.client_addr, "node started");
    if let Some(listener) = redis_listener {
        let backend = crate::redis::backend::Backend::new(
            handle.clone(),
            id,
            client_addrs.clone(),
            tls.clone(),
            std::time::Duration::from_millis(config.timing.redis_deadline_ms),
        );
        let options = crate::redis::RedisOptions {
            password: config.redis_password.clone(),
            idle_timeout: (config.redis.timeout_s > 0)
                .then(|| std::time::Duration::from_secs(config.redis.timeout_s)),
            max_clients: config.redis.max_clients,
        };
        let addr = crate::redis::spawn(
            listener,
            backend,
            options,
            metrics.clients.clone(),
            shutdown.clone(),
        )?;
        tracing::info!(node = config.id, redis = %addr, "Redis endpoint listening");
    }
    if let Some(listener) = metrics_listener {
        let endpoint = crate::http::OpsEndpoint {
            registry: metrics.registry(
                config.data_dir.clone(),
                peer_links,
                crate::metrics::QuicEndpoints {
                    peer: peer_stats,
                    client: client_net.handle.stats_reader(),
                },
            ),
            node: handle.clone(),
            core: metrics.core.clone(),
        };
        let addr = crate::http::spawn(listener, endpoint, shutdown.clone())?;
        tracing::info!(node = config.id, metrics = %addr, "operations endpoint listening (/metrics, /health, /ready)");
    }

    let service = ClientService::new(id, handle, client_addrs, inbox_tx, metrics.clients);
    let mut stop = shutdown.clone();
    loop {
        tokio::select! {
            request = client_net.requests.recv() => match request {
                Some(request) => service.spawn(request),
                None => break,
            },
            _ = stop.changed() => break,
        }
    }
    // Stop taking requests first, then let the core finish persisting.
    drop(client_net.requests);
    let result = core.await.context("the core task failed")?;
    client_net.handle.shutdown().await;
    peer_net.handle.shutdown().await;
    result
}
