//! Running real `synod` processes for tests: a dev-style cluster whose
//! nodes can be killed, paused and restarted one by one.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use prost::Message as _;
use synod_net::tls::TlsIdentity;
use synod_net::{ClientConnection, ErrorCode};
use synod_wire::proto::api::{
    api_request::Call, api_response, ApiRequest, ApiResponse, KvCall, NodeStatus, StatusCall,
};

/// A cluster of child processes: three founding nodes, and up to
/// [`MAX_DEV_NODES`](synod::dev::MAX_DEV_NODES) with nodes that join.
pub struct ProcessCluster {
    pub dir: PathBuf,
    pub base_port: u16,
    nodes: Vec<Option<Child>>,
    /// Flags given to every `synod` before `start` (such as
    /// `--log-format json`).
    global_flags: Vec<String>,
}

impl ProcessCluster {
    /// Prepares certificates and configurations in a fresh directory named
    /// after `name` and starts the three nodes.
    pub fn start(name: &str) -> ProcessCluster {
        ProcessCluster::start_with_flags(name, &[])
    }

    /// [`start`](ProcessCluster::start), giving every node `global_flags`.
    pub fn start_with_flags(name: &str, global_flags: &[&str]) -> ProcessCluster {
        let dir = Self::fresh_dir(name);
        let _ = std::fs::remove_dir_all(&dir);
        Self::start_in_with_flags(dir, global_flags)
    }

    /// The directory `start(name)` uses, for clusters prepared another way
    /// (such as `synod snapshot restore --dev`) before `start_in`.
    pub fn fresh_dir(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("synod-{name}-{}", std::process::id()))
    }

    /// Starts the three nodes of the `synod dev`-style cluster in `dir`
    /// (certificates and data made when missing, kept when there), on
    /// ports of their own.
    pub fn start_in(dir: PathBuf) -> ProcessCluster {
        Self::start_in_with_flags(dir, &[])
    }

    /// [`start_in`](ProcessCluster::start_in), giving every node
    /// `global_flags`.
    pub fn start_in_with_flags(dir: PathBuf, global_flags: &[&str]) -> ProcessCluster {
        client_log::capture();
        // Each cluster of this process gets its own 70 ports (7 nodes);
        // processes are spread over the port space by their id.
        static NEXT_CLUSTER: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
        let index = NEXT_CLUSTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 8;
        let base_port = 20_000 + (std::process::id() % 75) as u16 * 560 + index * 70;
        synod::dev::prepare(&dir, base_port, synod::dev::DEFAULT_DEV_NODES).expect("cluster files");
        let mut cluster = ProcessCluster {
            dir,
            base_port,
            nodes: (0..synod::dev::MAX_DEV_NODES).map(|_| None).collect(),
            global_flags: global_flags.iter().map(|f| f.to_string()).collect(),
        };
        for id in 1..=3 {
            cluster.restart(id);
        }
        cluster
    }

    /// Starts node `id` (1-based) if it is not running.
    pub fn restart(&mut self, id: u32) {
        let slot = &mut self.nodes[id as usize - 1];
        if slot.is_some() {
            return;
        }
        let log = std::fs::File::create(self.dir.join(format!("node{id}.log"))).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_synod"))
            .args(&self.global_flags)
            .arg("start")
            .arg("--config")
            .arg(synod::dev::config_path(&self.dir, id))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("synod starts");
        *slot = Some(child);
    }

    /// Writes the configuration of node `id`, a node that joins the
    /// cluster (`join = true`, an empty data directory, and as its peers
    /// every node this cluster may have: a joining node must be able to
    /// reach whichever member leads), and starts it.
    pub fn start_joiner(&mut self, id: u32) {
        let mut config =
            synod::config::NodeConfig::from_file(&synod::dev::config_path(&self.dir, 1))
                .expect("node 1's configuration");
        let addrs = synod::dev::dev_addrs(self.base_port, id);
        let stem = synod_net::tls::node_name(synod_paxos::NodeId(id));
        let certs = self.dir.join("certs");
        config.peers = (1..=synod::dev::MAX_DEV_NODES)
            .filter(|other| *other != id)
            .map(|other| {
                let a = synod::dev::dev_addrs(self.base_port, other);
                synod::config::PeerConfig {
                    id: other,
                    addr: a.peer,
                    client_addr: Some(a.client),
                }
            })
            .collect();
        config.id = id;
        config.peer_addr = addrs.peer;
        config.client_addr = addrs.client;
        config.redis_addr = Some(addrs.redis);
        config.metrics_addr = Some(addrs.metrics);
        config.data_dir = self.dir.join(format!("node{id}"));
        config.tls.cert = certs.join(format!("{stem}.pem"));
        config.tls.key = certs.join(format!("{stem}.key"));
        config.join = true;
        let path = synod::dev::config_path(&self.dir, id);
        std::fs::write(&path, toml::to_string(&config).expect("toml")).expect("config file");
        self.restart(id);
    }

    /// Runs `synod member ARGS` against this cluster (its dev files); the
    /// exit status and what it printed.
    pub fn member(&self, args: &[&str]) -> (bool, String) {
        synod_member(&self.dir, args)
    }

    /// Kills node `id` with SIGKILL.
    pub fn kill(&mut self, id: u32) {
        if let Some(mut child) = self.nodes[id as usize - 1].take() {
            child.kill().expect("SIGKILL");
            child.wait().expect("reaped");
        }
    }

    /// The process id of node `id`, if it runs.
    pub fn pid(&self, id: u32) -> Option<u32> {
        self.nodes[id as usize - 1].as_ref().map(Child::id)
    }

    /// Sends `signal` to node `id`.
    pub fn signal(&self, id: u32, signal: i32) {
        if let Some(child) = &self.nodes[id as usize - 1] {
            // SAFETY: kill(2) on our own child has no memory effects.
            unsafe {
                libc::kill(child.id() as libc::pid_t, signal);
            }
        }
    }

    /// Stops node `id` with SIGTERM and returns whether it exited 0.
    pub fn stop(&mut self, id: u32) -> bool {
        self.signal(id, libc::SIGTERM);
        let child = self.nodes[id as usize - 1].take();
        child.is_some_and(|mut c| c.wait().map(|s| s.success()).unwrap_or(false))
    }

    /// The client address of node `id`.
    pub fn client_addr(&self, id: u32) -> SocketAddr {
        synod::dev::dev_addrs(self.base_port, id).client
    }

    /// A client configuration for this cluster.
    pub fn client_config(&self) -> synod_client::ClientConfig {
        synod_client::ClientConfig::from_dev_cluster(&self.dir, self.base_port).expect("config")
    }

    /// The client identity of this cluster.
    pub fn tls(&self) -> TlsIdentity {
        let certs = self.dir.join("certs");
        TlsIdentity::from_pem_files(
            &certs.join("ca.pem"),
            &certs.join("client-dev.pem"),
            &certs.join("client-dev.key"),
        )
        .expect("client identity")
    }

    /// Node `id`'s status, if it answers within a second.
    pub async fn status(&self, id: u32) -> Option<NodeStatus> {
        let ask = async {
            let conn = ClientConnection::connect(self.client_addr(id), &self.tls())
                .await
                .ok()?;
            let request = ApiRequest {
                call: Some(Call::Status(StatusCall {})),
            };
            let response = conn.request(request.encode_to_vec()).await.ok()?;
            let answer = ApiResponse::decode(response.payload()?).ok()?;
            conn.close().await;
            match answer.result? {
                api_response::Result::Status(status) => Some(status),
                _ => None,
            }
        };
        tokio::time::timeout(Duration::from_secs(1), ask)
            .await
            .ok()
            .flatten()
    }

    /// The error code node `id` answers a serializable read of `key`
    /// with (`None`: it served the read, or did not answer in a second).
    pub async fn serializable_read_error(&self, id: u32, key: &[u8]) -> Option<ErrorCode> {
        let request =
            synod_kvstore::Request::anonymous(synod_kvstore::Op::Get(synod_kvstore::Get {
                key: key.to_vec(),
            }));
        let ask = async {
            let conn = ClientConnection::connect(self.client_addr(id), &self.tls())
                .await
                .ok()?;
            let call = ApiRequest {
                call: Some(Call::Kv(KvCall {
                    request: request.encode_to_vec(),
                    serializable: true,
                })),
            };
            let response = conn.request(call.encode_to_vec()).await.ok()?;
            conn.close().await;
            response.error_code()
        };
        tokio::time::timeout(Duration::from_secs(1), ask)
            .await
            .ok()
            .flatten()
    }

    /// The node that is leader now, waiting up to `patience` for one.
    pub async fn leader(&self, patience: Duration) -> Option<u32> {
        let deadline = tokio::time::Instant::now() + patience;
        while tokio::time::Instant::now() < deadline {
            for id in 1..=self.nodes.len() as u32 {
                if self.nodes[id as usize - 1].is_none() {
                    continue;
                }
                if let Some(status) = self.status(id).await {
                    if status.role == "leader" {
                        return Some(id);
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Prints the last lines of every node's log, so that a failed test's
    /// output (all CI keeps) says what the nodes did.
    fn print_log_tails(&self) {
        const LINES: usize = 60;
        for id in 1..=self.nodes.len() as u32 {
            let Ok(log) = std::fs::read_to_string(self.dir.join(format!("node{id}.log"))) else {
                continue;
            };
            let lines: Vec<&str> = log.lines().collect();
            let tail = &lines[lines.len().saturating_sub(LINES)..];
            eprintln!("---- the last {} lines of node {id}'s log ----", tail.len());
            for line in tail {
                eprintln!("{line}");
            }
        }
        client_log::print_tail(2 * LINES);
    }
}

impl Drop for ProcessCluster {
    fn drop(&mut self) {
        for id in 1..=self.nodes.len() as u32 {
            self.kill(id);
        }
        if std::thread::panicking() {
            self.print_log_tails();
        }
    }
}

/// Runs `synod member ARGS` against the dev cluster whose files are in
/// `dir`; the exit status and what it printed.
pub fn synod_member(dir: &Path, args: &[&str]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_synod"))
        .arg("member")
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .output()
        .expect("synod member runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// The client library's debug log in this test process (every test's
/// clients), kept in memory so that a failed test can print what its calls
/// tried.
mod client_log {
    use std::collections::VecDeque;
    use std::sync::{Arc, Mutex, OnceLock};

    /// Lines kept; older ones are dropped.
    const KEPT_LINES: usize = 4_000;

    type Lines = Arc<Mutex<VecDeque<String>>>;

    fn lines() -> &'static Lines {
        static LINES: OnceLock<Lines> = OnceLock::new();
        LINES.get_or_init(Lines::default)
    }

    /// One formatted event, appended to the kept lines when dropped.
    struct Line(Vec<u8>);

    impl std::io::Write for Line {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Drop for Line {
        fn drop(&mut self) {
            let text = String::from_utf8_lossy(&self.0).trim_end().to_string();
            let mut lines = lines().lock().unwrap_or_else(|e| e.into_inner());
            lines.push_back(text);
            while lines.len() > KEPT_LINES {
                lines.pop_front();
            }
        }
    }

    /// Starts keeping the client's debug log, once per process.
    pub fn capture() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("synod_client=debug"))
            .with_ansi(false)
            .with_writer(|| Line(Vec::new()))
            .try_init();
    }

    /// Prints the last `count` lines kept.
    pub fn print_tail(count: usize) {
        let lines = lines().lock().unwrap_or_else(|e| e.into_inner());
        let skip = lines.len().saturating_sub(count);
        eprintln!(
            "---- the last {} lines of the clients' debug log ----",
            lines.len() - skip
        );
        for line in lines.iter().skip(skip) {
            eprintln!("{line}");
        }
    }
}
