//! The `synod` command: run a node, a local development cluster, make
//! certificates, show status.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Parser, Subcommand};
use prost::Message as _;
use synod::cli::{ClusterFlags, StartFlags};
use synod::dev;
use synod::logging::{self, LogFormat};
use synod_net::certs::{self, CertAuthority};
use synod_net::tls::TlsIdentity;
use synod_net::ClientConnection;
use synod_paxos::NodeId;
use synod_wire::proto::api::{
    api_request::Call, api_response, ApiRequest, ApiResponse, StatusCall,
};
use tokio::sync::watch;

/// The node's allocator. glibc's malloc and free were about 18 % of a
/// node's CPU samples under a 256-client write load (perf, 2026-12-01);
/// see the README's figures for what mimalloc changed.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Synod: a Paxos-backed replicated key-value database.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// How log lines are written to stderr (filter them with RUST_LOG, e.g.
    /// `RUST_LOG=synod=debug,info`).
    #[arg(long, value_enum, global = true, default_value = "text")]
    log_format: LogFormat,
}

#[derive(Subcommand)]
enum Command {
    /// Run one node, configured by a TOML file and/or flags.
    Start(Box<StartFlags>),
    /// Run a cluster on 127.0.0.1 (3 nodes unless --nodes says otherwise),
    /// creating certificates and data directories when missing. Node i uses
    /// ports P+10(i-1)+k: k=0 peers, 1 clients (QUIC), 2 Redis protocol, 3
    /// operations (HTTP).
    Dev {
        /// Where certificates, configurations and data live.
        #[arg(long, default_value = "synod-data")]
        data_dir: PathBuf,
        /// The base port P.
        #[arg(long, default_value_t = 7400)]
        base_port: u16,
        /// How many nodes found the cluster (1 to 7).
        #[arg(long, default_value_t = dev::DEFAULT_DEV_NODES)]
        nodes: u32,
    },
    /// Create a cluster CA, or node and client certificates signed by it.
    Cert {
        /// Directory holding ca.pem / ca.key and the issued files.
        #[arg(long, default_value = "certs")]
        dir: PathBuf,
        #[command(subcommand)]
        what: CertKind,
    },
    /// Measure throughput and latency against a running cluster (by default
    /// the `synod dev` one).
    Bench {
        /// The `synod dev` cluster's directory.
        #[arg(long, default_value = "synod-data")]
        data_dir: PathBuf,
        /// Its base port.
        #[arg(long, default_value_t = 7400)]
        base_port: u16,
        /// What to send.
        #[arg(long, value_enum, default_value = "put")]
        workload: synod::bench::Workload,
        /// Concurrent clients, one run per number.
        #[arg(long, value_delimiter = ',', default_value = "1,16,64,256")]
        clients: Vec<usize>,
        /// Seconds per run.
        #[arg(long, default_value_t = 5)]
        seconds: u64,
    },
    /// Show each node's role, ballot, leader, commit and applied index, how
    /// far applying lags, and health (as its /health endpoint says).
    Status(ClusterFlags),
    /// Back up a live cluster to a file, or seed a new cluster from one.
    Snapshot {
        #[command(subcommand)]
        what: synod::backup::cli::SnapshotCommand,
    },
    /// List, add, promote or remove members of a running cluster.
    Member {
        #[command(flatten)]
        cluster: ClusterFlags,
        #[command(subcommand)]
        what: synod::member::MemberCommand,
    },
}

#[derive(Subcommand)]
enum CertKind {
    /// A new cluster CA (ca.pem, ca.key); refuses to overwrite one.
    Ca {
        /// The cluster's name, written into the CA certificate.
        #[arg(long, default_value = "synod")]
        cluster: String,
    },
    /// A node certificate (node-<id>.pem / .key).
    Node {
        /// The node id.
        id: u32,
        /// Extra DNS names or IP addresses for the certificate.
        #[arg(long = "name")]
        names: Vec<String>,
    },
    /// A client certificate (client-<name>.pem / .key).
    Client {
        /// The client's name (letters, digits, '-').
        name: String,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // Built by the commands that need one (a node builds its own, sized by
    // its configuration).
    let runtime = tokio::runtime::Runtime::new;
    match cli.command {
        Command::Start(flags) => {
            let config = flags.into_config()?;
            logging::init(cli.log_format, Some(config.id));
            let mut node_runtime = tokio::runtime::Builder::new_multi_thread();
            if let Some(threads) = config.worker_threads {
                // Out of bounds, the node refuses its configuration at
                // start (with the reason); until then, stay in them.
                node_runtime.worker_threads(threads.clamp(1, synod::config::MAX_WORKER_THREADS));
            }
            node_runtime.enable_all().build()?.block_on(async {
                let shutdown = shutdown_on_signal()?;
                synod::server::run_node(config, shutdown).await
            })
        }
        Command::Dev {
            data_dir,
            base_port,
            nodes,
        } => {
            logging::init(cli.log_format, None);
            run_dev(&data_dir, base_port, nodes, cli.log_format)
        }
        Command::Cert { dir, what } => {
            logging::init(cli.log_format, None);
            make_cert(&dir, what)
        }
        Command::Bench {
            data_dir,
            base_port,
            workload,
            clients,
            seconds,
        } => runtime()?.block_on(async {
            logging::init(cli.log_format, None);
            let config = synod_client::ClientConfig::from_dev_cluster(&data_dir, base_port)?;
            println!("| workload | clients | ops/s | p50 ms | p99 ms | p99.9 ms | errors |");
            println!("|---|---|---|---|---|---|---|");
            for n in clients {
                let result = synod::bench::run(
                    &config,
                    workload,
                    n,
                    std::time::Duration::from_secs(seconds),
                )
                .await?;
                println!("{}", synod::bench::format_row(workload, &result));
            }
            anyhow::Ok(())
        }),
        Command::Status(cluster) => {
            logging::init(cli.log_format, None);
            runtime()?.block_on(show_status(&cluster))
        }
        Command::Snapshot { what } => {
            logging::init(cli.log_format, None);
            runtime()?.block_on(synod::backup::cli::run(what))
        }
        Command::Member { cluster, what } => {
            logging::init(cli.log_format, None);
            runtime()?.block_on(synod::member::run(&cluster, what))
        }
    }
}

/// A watch that turns true on SIGTERM or ctrl-c.
fn shutdown_on_signal() -> anyhow::Result<watch::Receiver<bool>> {
    let (tx, rx) = watch::channel(false);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        tracing::info!("stopping");
        let _ = tx.send(true);
    });
    Ok(rx)
}

/// Starts the three nodes of a dev cluster as child processes and waits;
/// ctrl-c or SIGTERM stops them all. A node that exits on its own (it could
/// not start, or failed) stops the others too, and the command fails naming
/// it: a dev cluster is all its nodes or nothing.
fn run_dev(dir: &Path, base_port: u16, nodes: u32, log_format: LogFormat) -> anyhow::Result<()> {
    let configs = dev::prepare(dir, base_port, nodes)?;
    let exe = std::env::current_exe()?;
    let mut children = Vec::new();
    for config in &configs {
        let child = std::process::Command::new(&exe)
            .arg("start")
            .arg("--config")
            .arg(dev::config_path(dir, config.id))
            .arg("--log-format")
            .arg(match log_format {
                LogFormat::Text => "text",
                LogFormat::Json => "json",
            })
            .spawn()
            .with_context(|| format!("cannot start node {}", config.id))?;
        println!(
            "node {}: peers {}, clients {}, redis {}, metrics http://{}/metrics, data {}",
            config.id,
            config.peer_addr,
            config.client_addr,
            config.redis_addr.map_or("-".to_string(), |a| a.to_string()),
            config
                .metrics_addr
                .map_or("-".to_string(), |a| a.to_string()),
            config.data_dir.display()
        );
        children.push(child);
    }
    println!(
        "cluster running; `synod status --data-dir {}` shows it; ctrl-c stops it",
        dir.display()
    );
    let runtime = tokio::runtime::Runtime::new()?;
    let exited = runtime.block_on(async {
        let mut stop = shutdown_on_signal()?;
        loop {
            tokio::select! {
                _ = stop.changed() => return anyhow::Ok(None),
                _ = tokio::time::sleep(DEV_CHILD_POLL) => {}
            }
            for (config, child) in configs.iter().zip(children.iter_mut()) {
                if let Some(status) = child.try_wait()? {
                    return Ok(Some((config.id, config.data_dir.clone(), status)));
                }
            }
        }
    })?;
    for child in &mut children {
        if child.try_wait()?.is_none() {
            // SAFETY: kill(2) on our own running child's pid has no memory effects.
            unsafe {
                libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
            }
        }
    }
    let mut failed = false;
    for mut child in children {
        failed |= !child.wait()?.success();
    }
    if let Some((id, data_dir, status)) = exited {
        anyhow::bail!(
            "node {id} exited ({status}); stopped the others (its log is above, its data in {})",
            data_dir.display()
        );
    }
    if failed {
        anyhow::bail!("a node did not stop cleanly");
    }
    Ok(())
}

/// How often `synod dev` looks whether a node exited.
const DEV_CHILD_POLL: std::time::Duration = std::time::Duration::from_millis(200);

fn make_cert(dir: &Path, what: CertKind) -> anyhow::Result<()> {
    match what {
        CertKind::Ca { cluster } => {
            if dir.join("ca.pem").exists() {
                anyhow::bail!(
                    "{} already holds a CA; refusing to replace it",
                    dir.display()
                );
            }
            let ca = CertAuthority::generate(&cluster)?;
            let paths = certs::write_ca(dir, &ca)?;
            println!("wrote {} and {}", paths.cert.display(), paths.key.display());
        }
        CertKind::Node { id, names } => {
            let ca = certs::read_ca(dir).context("no CA here; run `synod cert ca` first")?;
            let node = NodeId(id);
            let cert = ca.issue_node(node, &names)?;
            let paths = certs::write_issued(dir, &synod_net::tls::node_name(node), &cert)?;
            println!("wrote {} and {}", paths.cert.display(), paths.key.display());
        }
        CertKind::Client { name } => {
            let ca = certs::read_ca(dir).context("no CA here; run `synod cert ca` first")?;
            let cert = ca.issue_client(&name)?;
            let stem = format!("{}{name}", certs::CLIENT_NAME_PREFIX);
            let paths = certs::write_issued(dir, &stem, &cert)?;
            println!("wrote {} and {}", paths.cert.display(), paths.key.display());
        }
    }
    Ok(())
}

async fn show_status(cluster: &ClusterFlags) -> anyhow::Result<()> {
    let tls = cluster.tls()?;
    let nodes = cluster.node_addrs();
    println!(
        "{:<22} {:>4} {:<10} {:>14} {:>6} {:>10} {:>10} {:>6} {:>10}  health",
        "node", "id", "role", "ballot", "leader", "commit", "applied", "lag", "revision"
    );
    for addr in nodes {
        match node_status(addr, &tls).await {
            Ok(s) => {
                let health =
                    match synod::http::health_of(s.leader != 0, s.commit_index, s.applied_index) {
                        Ok(()) => "healthy".to_string(),
                        Err(reason) => format!("unhealthy: {reason}"),
                    };
                println!(
                    "{:<22} {:>4} {:<10} {:>14} {:>6} {:>10} {:>10} {:>6} {:>10}  {health}",
                    addr,
                    s.id,
                    s.role,
                    format!("{}.{}", s.ballot >> 32, s.ballot & 0xffff_ffff),
                    s.leader,
                    s.commit_index,
                    s.applied_index,
                    s.commit_index.saturating_sub(s.applied_index),
                    s.revision
                )
            }
            Err(e) => println!("{addr:<22} unreachable: {e:#}"),
        }
    }
    Ok(())
}

async fn node_status(
    addr: SocketAddr,
    tls: &TlsIdentity,
) -> anyhow::Result<synod_wire::proto::api::NodeStatus> {
    let conn = ClientConnection::connect(addr, tls).await?;
    let request = ApiRequest {
        call: Some(Call::Status(StatusCall {})),
    };
    let response = tokio::time::timeout(
        std::time::Duration::from_secs(3),
        conn.request(request.encode_to_vec()),
    )
    .await
    .context("no answer within 3 s")??;
    let payload = response
        .payload()
        .with_context(|| format!("error {:?}", response.error_code()))?;
    match ApiResponse::decode(payload)?.result {
        Some(api_response::Result::Status(status)) => Ok(status),
        _ => anyhow::bail!("the node answered something else"),
    }
}
