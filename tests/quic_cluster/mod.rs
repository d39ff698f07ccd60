//! Synod clusters in this process on real sockets (QUIC between the nodes
//! and for the Rust client, the Redis endpoint on TCP), for the Redis-protocol
//! and client tests, and a tiny blocking RESP2/RESP3 client (the encoding and
//! reply reader are `synod_wire::resp`'s).
#![allow(dead_code)]

use std::io::{BufReader, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use synod_wire::resp::{self, Reply};
use tokio::sync::watch;

/// A cluster of nodes running `synod::server::run_node` on a runtime of
/// its own thread.
pub struct Cluster {
    /// The nodes' Redis ports, node 1 first.
    pub redis_ports: Vec<u16>,
    /// Flip a node's sender to true to stop it.
    stops: Vec<watch::Sender<bool>>,
    /// Set once a node's `run_node` returned.
    stopped: Vec<Arc<AtomicBool>>,
    /// The cluster's directory (certificates, node data).
    pub dir: PathBuf,
    /// The dev port scheme's base (`ClientConfig::from_dev_cluster`).
    pub base_port: u16,
}

/// Whether every port of a dev cluster at `base` (3 nodes × peer, client,
/// redis, metrics) is free now.
fn ports_free(base: u16) -> bool {
    (0..3u16).all(|node| {
        let port = |k: u16| base + 10 * node + k;
        UdpSocket::bind((Ipv4Addr::LOCALHOST, port(0))).is_ok()
            && UdpSocket::bind((Ipv4Addr::LOCALHOST, port(1))).is_ok()
            && TcpListener::bind((Ipv4Addr::LOCALHOST, port(2))).is_ok()
            && TcpListener::bind((Ipv4Addr::LOCALHOST, port(3))).is_ok()
    })
}

/// A base port for a new cluster of this process: its ports free now, and
/// apart from every base this process handed out before. The tests of one
/// binary start clusters in parallel, so a check of free ports alone could
/// give two of them the same base before either binds it.
fn pick_base_port(name: &str) -> u16 {
    static HANDED_OUT: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    let mut base = 21_000 + (std::process::id() % 500) as u16 * 60 + name.len() as u16 * 31 % 60;
    while handed_out.iter().any(|b| b.abs_diff(base) < 30) || !ports_free(base) {
        base = 21_000 + (base - 21_000 + 97) % 30_000;
    }
    handed_out.push(base);
    base
}

/// Removes `synod-redis-<name>-<pid>` directories whose test process is
/// gone (the shared clusters live until their process exits, so nothing
/// removes them at the end of a run).
fn remove_dirs_of_finished_runs() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix("synod-redis-")
            .and_then(|rest| rest.rsplit('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        let alive = std::path::Path::new(&format!("/proc/{pid}")).exists();
        if !alive && std::path::Path::new("/proc/self").exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// `GET path` on the HTTP server at `port`: the status code and the body.
pub fn http_get(port: u16, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("an HTTP port");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("a response");
    let (head, body) = response.split_once("\r\n\r\n").expect("head and body");
    let code = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("a status line: {head}"));
    (code, body.to_string())
}

impl Cluster {
    /// Starts `nodes` (1 or 3) nodes in a fresh directory named after
    /// `name`; with `password`, every node asks Redis clients for it.
    /// Returns once a write through node 1 succeeded.
    pub fn start(name: &str, nodes: usize, password: Option<&str>) -> Cluster {
        Cluster::start_with(name, nodes, |config| {
            config.redis_password = password.map(str::to_owned);
        })
    }

    /// [`start`](Cluster::start), with `adjust` applied to every node's
    /// configuration.
    pub fn start_with(
        name: &str,
        nodes: usize,
        adjust: impl Fn(&mut synod::config::NodeConfig),
    ) -> Cluster {
        assert!(nodes == 1 || nodes == 3);
        remove_dirs_of_finished_runs();
        let dir = std::env::temp_dir().join(format!("synod-redis-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let base = pick_base_port(name);
        let mut configs =
            synod::dev::prepare(&dir, base, synod::dev::DEFAULT_DEV_NODES).expect("cluster files");
        configs.truncate(nodes);
        for config in &mut configs {
            // Semantics tests on a shared 2-core machine: room for a slow
            // election, so they never see TRYAGAIN (tests of the deadline
            // set their own).
            config.timing.redis_deadline_ms = 10_000;
            adjust(config);
            if nodes == 1 {
                config.peers.clear();
            }
        }
        let password = configs[0].redis_password.clone();
        let redis_ports = configs
            .iter()
            .map(|c| {
                c.redis_addr
                    .expect("dev configs have a redis address")
                    .port()
            })
            .collect();
        let (stops, receivers): (Vec<_>, Vec<_>) =
            (0..nodes).map(|_| watch::channel(false)).unzip();
        let stopped: Vec<Arc<AtomicBool>> = (0..nodes)
            .map(|_| Arc::new(AtomicBool::new(false)))
            .collect();
        let flags = stopped.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(4)
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let mut tasks = Vec::new();
                for ((config, stop), done) in configs.into_iter().zip(receivers).zip(flags) {
                    tasks.push(tokio::spawn(async move {
                        let result = synod::server::run_node(config, stop).await;
                        done.store(true, Ordering::SeqCst);
                        result
                    }));
                }
                for task in tasks {
                    if let Ok(Err(e)) = task.await {
                        eprintln!("a test node failed: {e:#}");
                    }
                }
            });
        });
        let cluster = Cluster {
            redis_ports,
            stops,
            stopped,
            dir,
            base_port: base,
        };
        cluster.wait_until_writable(password.as_deref());
        cluster
    }

    fn wait_until_writable(&self, password: Option<&str>) {
        for _ in 0..600 {
            if let Ok(mut client) = Client::try_connect(self.redis_ports[0]) {
                if let Some(password) = password {
                    client.cmd(&format!("AUTH {password}"));
                }
                if client.cmd("SET cluster:ready 1") == ok() {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the cluster never accepted a write");
    }

    /// Node `node`'s operations port (`/metrics`, `/health`, `/ready`).
    pub fn metrics_port(&self, node: usize) -> u16 {
        synod::dev::dev_addrs(self.base_port, node as u32)
            .metrics
            .port()
    }

    /// Node `node`'s samples (`/metrics`), by series.
    pub fn metrics(&self, node: usize) -> std::collections::BTreeMap<String, f64> {
        let (_, body) = http_get(self.metrics_port(node), "/metrics");
        body.lines()
            .filter(|line| !line.starts_with('#') && !line.is_empty())
            .filter_map(|line| {
                let (series, value) = line.rsplit_once(' ')?;
                Some((series.to_string(), value.parse().ok()?))
            })
            .collect()
    }

    /// The client API calls named `command` node `node` served, whatever
    /// their result.
    pub fn api_calls(&self, node: usize, command: &str) -> f64 {
        let series = format!(r#"synod_api_requests_total{{command="{command}""#);
        self.metrics(node)
            .iter()
            .filter(|(name, _)| name.starts_with(&series))
            .map(|(_, value)| value)
            .sum()
    }

    /// A Rust client (`synod-client`) of the whole cluster.
    pub async fn rust_client(&self) -> synod_client::Client {
        let config = synod_client::ClientConfig::from_dev_cluster(&self.dir, self.base_port)
            .expect("client config");
        synod_client::Client::connect(config).await.expect("client")
    }

    /// The dev client's identity, for raw client-service requests.
    pub fn tls(&self) -> synod_net::tls::TlsIdentity {
        let certs = self.dir.join("certs");
        synod_net::tls::TlsIdentity::from_pem_files(
            &certs.join("ca.pem"),
            &certs.join("client-dev.pem"),
            &certs.join("client-dev.key"),
        )
        .expect("client identity")
    }

    /// A client of node `id` (1-based).
    pub fn client(&self, id: usize) -> Client {
        Client::connect(self.redis_ports[id - 1])
    }

    /// The node (1-based) that leads, as node 1 sees it once it knows.
    pub fn leader(&self) -> usize {
        for _ in 0..600 {
            let status = self.client(1).call(&["SYNOD.STATUS"]);
            if let Some(leader) = field(&status, "leader_id").and_then(|v| v.int()) {
                if leader > 0 {
                    return leader as usize;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("no leader");
    }

    /// Some node other than the leader.
    pub fn follower(&self) -> usize {
        let leader = self.leader();
        (1..=self.redis_ports.len())
            .find(|id| *id != leader)
            .expect("a follower")
    }

    /// Stops node `id` (1-based).
    /// Stops node `id` and waits until it has (its core, network and
    /// endpoints are down), for up to 10 s.
    pub fn stop(&self, id: usize) {
        let _ = self.stops[id - 1].send(true);
        for _ in 0..1_000 {
            if self.stopped[id - 1].load(Ordering::SeqCst) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("node {id} did not stop within 10 s");
    }
}

/// The value after `name` in a flat field/value array.
pub fn field<'a>(reply: &'a Value, name: &str) -> Option<&'a Value> {
    let Value::Array(Some(items)) = reply else {
        return None;
    };
    items
        .chunks(2)
        .find(|pair| pair[0] == bulk(name))
        .map(|pair| &pair[1])
}

/// A RESP2 or RESP3 reply, as the tests compare it: `synod_wire::resp::Reply`
/// with the nulls of RESP2 as `None` of the type they stand for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Value>>),
    /// RESP3 `_`.
    Null,
    /// RESP3 `,text`.
    Double(String),
    /// RESP3 `%n`: keys and values alternating.
    Map(Vec<Value>),
    /// RESP3 `~n`.
    Set(Vec<Value>),
}

impl From<Reply> for Value {
    /// RESP3's types the node never sends (booleans, big numbers, verbatim
    /// strings, pushes) panic: a test that meets one has found a bug.
    fn from(reply: Reply) -> Value {
        let all = |items: Vec<Reply>| items.into_iter().map(Value::from).collect();
        match reply {
            Reply::Simple(text) => Value::Simple(text),
            Reply::Error(text) => Value::Error(text),
            Reply::Integer(n) => Value::Int(n),
            Reply::Bulk(bytes) => Value::Bulk(Some(bytes)),
            Reply::Nil => Value::Bulk(None),
            Reply::Array(items) => Value::Array(Some(all(items))),
            Reply::NilArray => Value::Array(None),
            Reply::Null => Value::Null,
            Reply::Double(text) => Value::Double(text),
            Reply::Map(items) => Value::Map(all(items)),
            Reply::Set(items) => Value::Set(all(items)),
            other => panic!("the node sent a reply of a type it never sends: {other:?}"),
        }
    }
}

impl Value {
    pub fn int(&self) -> Option<i64> {
        match self {
            Value::Int(n) => Some(*n),
            _ => None,
        }
    }

    /// The error text, panicking on anything else.
    pub fn error(&self) -> &str {
        match self {
            Value::Error(e) => e,
            other => panic!("expected an error, got {other:?}"),
        }
    }

    /// The elements, panicking on anything else.
    pub fn items(&self) -> &[Value] {
        match self {
            Value::Array(Some(items)) => items,
            other => panic!("expected an array, got {other:?}"),
        }
    }

    /// The bulk string as text, panicking on anything else.
    pub fn text(&self) -> String {
        match self {
            Value::Bulk(Some(bytes)) => String::from_utf8_lossy(bytes).into_owned(),
            other => panic!("expected a bulk string, got {other:?}"),
        }
    }
}

pub fn ok() -> Value {
    Value::Simple("OK".into())
}

pub fn bulk(text: &str) -> Value {
    Value::Bulk(Some(text.as_bytes().to_vec()))
}

pub fn nil() -> Value {
    Value::Bulk(None)
}

pub fn int(n: i64) -> Value {
    Value::Int(n)
}

/// A blocking RESP2 (or, after `HELLO 3`, RESP3) client over one TCP
/// connection.
pub struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Client {
    pub fn try_connect(port: u16) -> std::io::Result<Client> {
        let stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port))?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        stream.set_nodelay(true)?;
        Ok(Client {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
        })
    }

    pub fn connect(port: u16) -> Client {
        Client::try_connect(port).expect("connects")
    }

    /// Sends raw bytes.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).expect("write");
    }

    /// Sends one command as a RESP array of bulk strings.
    pub fn send(&mut self, args: &[&[u8]]) {
        let mut out = Vec::new();
        resp::encode_command(args, &mut out);
        self.send_raw(&out);
    }

    /// Sends one command and reads its reply.
    pub fn call_bytes(&mut self, args: &[&[u8]]) -> Value {
        self.send(args);
        self.read()
    }

    /// Sends one command of text arguments and reads its reply.
    pub fn call(&mut self, args: &[&str]) -> Value {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        self.call_bytes(&args)
    }

    /// Sends a command given as space-separated words.
    pub fn cmd(&mut self, line: &str) -> Value {
        let words: Vec<&str> = line.split_whitespace().collect();
        self.call(&words)
    }

    /// Whether the server closed the connection (reads EOF).
    pub fn closed(&mut self) -> bool {
        let mut rest = Vec::new();
        match self.reader.read_to_end(&mut rest) {
            Ok(_) => rest.is_empty(),
            Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
        }
    }

    /// Reads one reply, panicking if none comes (or a malformed one).
    pub fn read(&mut self) -> Value {
        match resp::read_reply(&mut self.reader) {
            Ok(reply) => reply.into(),
            Err(error) => panic!("no reply: {error}"),
        }
    }
}
