//! Node configuration: a TOML file, command-line flags on top, and the
//! checks that turn a bad configuration into a clear error before anything
//! starts.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The highest node id: a node numbers its anonymous writes with its id in
/// 16 bits (see the node runtime), so ids must fit them.
pub const MAX_NODE_ID: u32 = 65_535;

/// Most threads a node's async runtime may be set to run.
pub const MAX_WORKER_THREADS: usize = 1_024;

/// Everything one `synod` node needs to start.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// This node's id, unique in the cluster, from 1 to [`MAX_NODE_ID`].
    pub id: u32,
    /// Where peers reach this node (QUIC, UDP).
    pub peer_addr: SocketAddr,
    /// Where clients reach this node (QUIC, UDP).
    pub client_addr: SocketAddr,
    /// Where the Redis-protocol endpoint listens (TCP), if enabled.
    #[serde(default)]
    pub redis_addr: Option<SocketAddr>,
    /// The password Redis clients must give (`AUTH`) before other
    /// commands, like Redis's `requirepass`; none by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis_password: Option<String>,
    /// Where the operations endpoint listens (HTTP: `/metrics` for
    /// Prometheus, `/health`, `/ready`), if enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_addr: Option<SocketAddr>,
    /// The directory holding this node's database.
    pub data_dir: PathBuf,
    /// Certificates and key.
    pub tls: TlsFiles,
    /// The other members.
    #[serde(default)]
    pub peers: Vec<PeerConfig>,
    /// Protocol timings.
    #[serde(default)]
    pub timing: Timing,
    /// What the leader does for sessions and locks (TTL checkpoints,
    /// lock-delay).
    #[serde(default)]
    pub sessions: Sessions,
    /// The exactly-once table's size.
    #[serde(default)]
    pub exactly_once: ExactlyOnce,
    /// Redis-protocol connection limits.
    #[serde(default)]
    pub redis: RedisConnections,
    /// Threads of the node's async runtime, from 1 to
    /// [`MAX_WORKER_THREADS`]; by default one per core. Nodes that share a
    /// machine do better with a share of its cores each (`synod dev` gives
    /// each of its nodes the cores divided by the nodes, at least one):
    /// fewer threads than cores keeps a request's tasks on one thread.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_threads: Option<usize>,
    /// True for a node that joins a running cluster (`synod start --join`):
    /// `peers` are only members to reach; it starts empty, waits until a
    /// member adds it (`synod member add`), then catches up by snapshot. A
    /// node of a new cluster leaves it false: `peers` and itself are the
    /// founding voters.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub join: bool,
}

/// PEM files of the cluster CA and this node's certificate and key.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// The cluster's CA certificate; peers and clients must present
    /// certificates it signed.
    pub ca: PathBuf,
    /// This node's certificate.
    pub cert: PathBuf,
    /// This node's private key.
    pub key: PathBuf,
}

/// Another member of the cluster.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PeerConfig {
    /// Its node id.
    pub id: u32,
    /// Its peer address.
    pub addr: SocketAddr,
    /// Its client address, so that followers can point clients at the
    /// leader.
    #[serde(default)]
    pub client_addr: Option<SocketAddr>,
}

/// Protocol timings, in milliseconds.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Timing {
    /// Leader heartbeat period.
    pub heartbeat_ms: u64,
    /// Follower election timeout (randomized up to twice this).
    pub election_timeout_ms: u64,
    /// Leader lease.
    pub lease_ms: u64,
    /// How long the Redis endpoint retries one command (across leader
    /// changes) before answering `TRYAGAIN` (not applied) or `UNCERTAIN`
    /// (a write that may have been applied); from
    /// [`MIN_REDIS_DEADLINE_MS`] to [`MAX_REDIS_DEADLINE_MS`].
    pub redis_deadline_ms: u64,
}

/// Shortest Redis command deadline.
pub const MIN_REDIS_DEADLINE_MS: u64 = 100;
/// Longest Redis command deadline.
pub const MAX_REDIS_DEADLINE_MS: u64 = 60_000;

impl Default for Timing {
    fn default() -> Self {
        Timing {
            heartbeat_ms: 50,
            election_timeout_ms: 500,
            lease_ms: 400,
            redis_deadline_ms: crate::redis::backend::DEFAULT_CALL_DEADLINE.as_millis() as u64,
        }
    }
}

/// What the leader does for sessions and locks, in milliseconds (TOML
/// section `[sessions]`). Only the leader's proposals depend on it, so
/// nodes may differ, though a cluster normally shares one setting.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Sessions {
    /// How often the leader records every session's remaining TTL in the
    /// log, so that leader changes cannot keep an abandoned session alive
    /// forever (keys with a TTL are checkpointed as often). Keep it well
    /// below typical leader lifetimes: a leadership shorter than this brings
    /// no session closer to expiry.
    pub checkpoint_interval_ms: u64,
    /// How long a lock whose holder's session expired (rather than
    /// unlocked) stays unavailable, so the old holder can notice; 0 for
    /// none. Fenced writes do not need it.
    pub lock_delay_ms: u64,
}

/// The exactly-once table (TOML section `[exactly_once]`): every node must
/// have the same setting, since it decides which clients the state machine
/// forgets, in log order.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ExactlyOnce {
    /// Most clients remembered, from 1 to [`MAX_EXACTLY_ONCE_CLIENTS`]
    /// (default 100,000, about 10 MiB). A client whose last write is the
    /// oldest is forgotten first; its next write moves it to a new id.
    pub clients: u64,
}

/// Most clients the exactly-once table may be set to remember.
pub const MAX_EXACTLY_ONCE_CLIENTS: u64 = 10_000_000;

impl Default for ExactlyOnce {
    fn default() -> Self {
        ExactlyOnce {
            clients: synod_wire::limits::MAX_DEDUP_CLIENTS,
        }
    }
}

impl ExactlyOnce {
    /// Checks the values are within their bounds.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(1..=MAX_EXACTLY_ONCE_CLIENTS).contains(&self.clients) {
            return Err(ConfigError::Invalid(format!(
                "exactly_once.clients is {}; it must be from 1 to {MAX_EXACTLY_ONCE_CLIENTS}",
                self.clients
            )));
        }
        Ok(())
    }

    /// The state machine's options for this setting.
    pub fn state_machine_options(&self) -> synod_kvstore::Options {
        synod_kvstore::Options {
            max_dedup_clients: self.clients,
            ..synod_kvstore::Options::default()
        }
    }
}

/// Redis-protocol connections (TOML section `[redis]`), as Redis's
/// `timeout` and `maxclients`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RedisConnections {
    /// Seconds a connection may stay silent before the node closes it; 0
    /// (the default, as in Redis) never closes an idle connection. A
    /// connection blocked in `BLPOP` and the like is not idle.
    pub timeout_s: u64,
    /// Most connections at once, from 1 to [`MAX_REDIS_CLIENTS`] (default
    /// 10,000, as Redis); one more is answered `-ERR max number of clients
    /// reached` and closed.
    pub max_clients: usize,
}

/// Most Redis connections a node may be set to take.
pub const MAX_REDIS_CLIENTS: usize = 1_000_000;

impl Default for RedisConnections {
    fn default() -> Self {
        RedisConnections {
            timeout_s: 0,
            max_clients: 10_000,
        }
    }
}

impl RedisConnections {
    /// Checks the values are within their bounds.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(1..=MAX_REDIS_CLIENTS).contains(&self.max_clients) {
            return Err(ConfigError::Invalid(format!(
                "redis.max_clients is {}; it must be from 1 to {MAX_REDIS_CLIENTS}",
                self.max_clients
            )));
        }
        if self.timeout_s > 365 * 24 * 3600 {
            return Err(ConfigError::Invalid(format!(
                "redis.timeout_s is {}; it must be at most a year (0: never)",
                self.timeout_s
            )));
        }
        Ok(())
    }
}

/// Fewest milliseconds between TTL checkpoints: each one is a log entry
/// listing every session.
pub const MIN_CHECKPOINT_INTERVAL_MS: u64 = 100;
/// Most milliseconds between TTL checkpoints (the longest session TTL: a
/// rarer checkpoint protects nothing).
pub const MAX_CHECKPOINT_INTERVAL_MS: u64 = synod_wire::limits::MAX_SESSION_TTL_MS;
/// Longest lock-delay in milliseconds (Chubby's bound: one minute).
pub const MAX_LOCK_DELAY_MS: u64 = 60_000;

impl Default for Sessions {
    fn default() -> Self {
        let defaults = synod_kvstore::SessionClockConfig::default();
        Sessions {
            checkpoint_interval_ms: defaults.checkpoint_interval_ms,
            lock_delay_ms: defaults.lock_delay_ms,
        }
    }
}

impl Sessions {
    /// Checks the values are within their bounds.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let interval = self.checkpoint_interval_ms;
        if !(MIN_CHECKPOINT_INTERVAL_MS..=MAX_CHECKPOINT_INTERVAL_MS).contains(&interval) {
            return Err(ConfigError::Invalid(format!(
                "sessions.checkpoint_interval_ms is {interval}; it must be from \
                 {MIN_CHECKPOINT_INTERVAL_MS} (each checkpoint is a log entry) to \
                 {MAX_CHECKPOINT_INTERVAL_MS} (the longest session TTL)"
            )));
        }
        if self.lock_delay_ms > MAX_LOCK_DELAY_MS {
            return Err(ConfigError::Invalid(format!(
                "sessions.lock_delay_ms is {}; it must be at most {MAX_LOCK_DELAY_MS} \
                 (a lock held back longer looks lost to its waiters)",
                self.lock_delay_ms
            )));
        }
        Ok(())
    }

    /// The leader's session clock settings (the retry interval keeps its
    /// default); the key expiry clock takes its checkpoint interval too.
    pub fn clock_config(&self) -> synod_kvstore::SessionClockConfig {
        synod_kvstore::SessionClockConfig {
            checkpoint_interval_ms: self.checkpoint_interval_ms,
            lock_delay_ms: self.lock_delay_ms,
            ..synod_kvstore::SessionClockConfig::default()
        }
    }
}

/// A configuration that cannot work, with the reason.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read configuration file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for a node configuration.
    #[error("invalid configuration file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        message: String,
    },
    /// The values do not fit together.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl NodeConfig {
    /// Reads a TOML file.
    pub fn from_file(path: &Path) -> Result<NodeConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
    }

    /// Checks ids, addresses, files and the data directory; creates the
    /// data directory if missing.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |m: String| Err(ConfigError::Invalid(m));
        let mut ids = BTreeSet::new();
        for id in std::iter::once(self.id).chain(self.peers.iter().map(|p| p.id)) {
            if !(1..=MAX_NODE_ID).contains(&id) {
                return invalid(format!("node id {id} is not between 1 and {MAX_NODE_ID}"));
            }
            if !ids.insert(id) {
                return invalid(format!("node id {id} appears twice"));
            }
        }
        let mut addrs = BTreeSet::from([self.peer_addr, self.client_addr]);
        if addrs.len() < 2 {
            return invalid("peer_addr and client_addr must differ".into());
        }
        if let Some(redis) = self.redis_addr {
            if !addrs.insert(redis) {
                return invalid("redis_addr must differ from the other addresses".into());
            }
        }
        if let Some(metrics) = self.metrics_addr {
            if !addrs.insert(metrics) {
                return invalid("metrics_addr must differ from the other addresses".into());
            }
        }
        for (what, path) in [
            ("CA certificate", &self.tls.ca),
            ("node certificate", &self.tls.cert),
            ("node key", &self.tls.key),
        ] {
            if !path.is_file() {
                return invalid(format!("{what} {} does not exist", path.display()));
            }
        }
        std::fs::create_dir_all(&self.data_dir).map_err(|e| {
            ConfigError::Invalid(format!(
                "data directory {} is unusable: {e}",
                self.data_dir.display()
            ))
        })?;
        let probe = self.data_dir.join(".synod-write-check");
        std::fs::write(&probe, b"ok")
            .and_then(|()| std::fs::remove_file(&probe))
            .map_err(|e| {
                ConfigError::Invalid(format!(
                    "data directory {} is not writable: {e}",
                    self.data_dir.display()
                ))
            })?;
        self.paxos_config(0)
            .validate()
            .map_err(|e| ConfigError::Invalid(e.0))?;
        self.sessions.validate()?;
        self.exactly_once.validate()?;
        self.redis.validate()?;
        if let Some(threads) = self.worker_threads {
            if !(1..=MAX_WORKER_THREADS).contains(&threads) {
                return invalid(format!(
                    "worker_threads is {threads}; it must be from 1 to {MAX_WORKER_THREADS}"
                ));
            }
        }
        let deadline = self.timing.redis_deadline_ms;
        if !(MIN_REDIS_DEADLINE_MS..=MAX_REDIS_DEADLINE_MS).contains(&deadline) {
            return Err(ConfigError::Invalid(format!(
                "timing.redis_deadline_ms is {deadline}; it must be from \
                 {MIN_REDIS_DEADLINE_MS} to {MAX_REDIS_DEADLINE_MS}"
            )));
        }
        Ok(())
    }

    /// The consensus core's configuration for this node.
    pub fn paxos_config(&self, rng_seed: u64) -> synod_paxos::Config {
        let mut members: Vec<synod_paxos::NodeId> =
            self.founding_members().into_iter().map(|m| m.id).collect();
        members.sort();
        let mut config = synod_paxos::Config::new(synod_paxos::NodeId(self.id), members);
        config.heartbeat_interval = Duration::from_millis(self.timing.heartbeat_ms);
        // A fifth of the heartbeat interval: 10 ms by default, and always
        // shorter than the interval, as the core requires.
        config.accept_fallback =
            Some(config.heartbeat_interval / 5).filter(|fallback| !fallback.is_zero());
        config.election_timeout = Duration::from_millis(self.timing.election_timeout_ms);
        config.lease = Duration::from_millis(self.timing.lease_ms);
        config.rng_seed = rng_seed;
        config
    }

    /// The founding voters with their addresses: this node and its peers,
    /// or nobody for a joining node.
    pub fn founding_members(&self) -> Vec<synod_paxos::Member> {
        if self.join {
            return Vec::new();
        }
        let me = synod_paxos::Member {
            id: synod_paxos::NodeId(self.id),
            voter: true,
            peer_addr: self.peer_addr.to_string(),
            client_addr: self.client_addr.to_string(),
        };
        std::iter::once(me)
            .chain(self.peers.iter().map(|p| synod_paxos::Member {
                id: synod_paxos::NodeId(p.id),
                voter: true,
                peer_addr: p.addr.to_string(),
                client_addr: p.client_addr.map(|a| a.to_string()).unwrap_or_default(),
            }))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_tls(dir: &Path) -> TlsFiles {
        for f in ["ca.pem", "node.pem", "node.key"] {
            std::fs::write(dir.join(f), "x").unwrap();
        }
        TlsFiles {
            ca: dir.join("ca.pem"),
            cert: dir.join("node.pem"),
            key: dir.join("node.key"),
        }
    }

    fn sample(dir: &Path) -> NodeConfig {
        NodeConfig {
            id: 1,
            peer_addr: "127.0.0.1:7400".parse().unwrap(),
            client_addr: "127.0.0.1:7401".parse().unwrap(),
            redis_addr: None,
            redis_password: None,
            metrics_addr: None,
            data_dir: dir.join("data"),
            tls: write_tls(dir),
            peers: vec![PeerConfig {
                id: 2,
                addr: "127.0.0.1:7410".parse().unwrap(),
                client_addr: None,
            }],
            timing: Timing::default(),
            sessions: Sessions::default(),
            exactly_once: ExactlyOnce::default(),
            redis: RedisConnections::default(),
            worker_threads: None,
            join: false,
        }
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("synod-config-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn worker_threads_out_of_bounds_are_refused() {
        let dir = temp_dir("workers");
        let mut config = sample(&dir);
        for threads in [0, MAX_WORKER_THREADS + 1] {
            config.worker_threads = Some(threads);
            let err = config.validate().unwrap_err().to_string();
            assert!(err.contains("worker_threads is"), "{err}");
        }
        config.worker_threads = Some(1);
        config.validate().unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_good_configuration_passes_and_creates_the_data_dir() {
        let dir = temp_dir("good");
        let config = sample(&dir);
        config.validate().unwrap();
        assert!(config.data_dir.is_dir());
    }

    #[test]
    fn a_duplicate_node_id_is_refused() {
        let dir = temp_dir("dup");
        let mut config = sample(&dir);
        config.peers[0].id = 1;
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("appears twice"), "{err}");
    }

    #[test]
    fn node_ids_outside_1_to_65535_are_refused() {
        let dir = temp_dir("range");
        for (own, peer) in [(0, 2), (1, 65_536)] {
            let mut config = sample(&dir);
            config.id = own;
            config.peers[0].id = peer;
            let err = config.validate().unwrap_err().to_string();
            assert!(err.contains("not between 1 and 65535"), "{err}");
        }
    }

    #[test]
    fn a_missing_certificate_is_named() {
        let dir = temp_dir("cert");
        let mut config = sample(&dir);
        config.tls.cert = dir.join("missing.pem");
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("missing.pem"), "{err}");
    }

    #[test]
    fn an_unusable_data_dir_is_refused() {
        let dir = temp_dir("datadir");
        let mut config = sample(&dir);
        let file = dir.join("a-file");
        std::fs::write(&file, "x").unwrap();
        config.data_dir = file.join("sub");
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("data directory"), "{err}");
    }

    #[test]
    fn toml_files_parse_and_unknown_keys_are_errors() {
        let dir = temp_dir("toml");
        let path = dir.join("node.toml");
        std::fs::write(
            &path,
            r#"
id = 1
peer_addr = "127.0.0.1:7400"
client_addr = "127.0.0.1:7401"
data_dir = "d"
[tls]
ca = "ca.pem"
cert = "n.pem"
key = "n.key"
[[peers]]
id = 2
addr = "127.0.0.1:7410"
[timing]
lease_ms = 300
"#,
        )
        .unwrap();
        let config = NodeConfig::from_file(&path).unwrap();
        assert_eq!(config.timing.lease_ms, 300);
        assert_eq!(config.timing.heartbeat_ms, 50);
        assert_eq!(config.sessions, Sessions::default());
        std::fs::write(&path, "id = 1\nbogus = 2\n").unwrap();
        let err = NodeConfig::from_file(&path).unwrap_err().to_string();
        assert!(err.contains("bogus"), "{err}");
    }

    fn with_sessions(dir: &Path, section: &str) -> Result<NodeConfig, ConfigError> {
        let path = dir.join("node.toml");
        let text = format!(
            "id = 1\npeer_addr = \"127.0.0.1:7400\"\nclient_addr = \"127.0.0.1:7401\"\n\
             data_dir = \"d\"\n[tls]\nca = \"ca.pem\"\ncert = \"n.pem\"\nkey = \"n.key\"\n\
             [sessions]\n{section}"
        );
        std::fs::write(&path, text).unwrap();
        NodeConfig::from_file(&path)
    }

    #[test]
    fn session_settings_parse_and_default_to_the_session_clock_defaults() {
        let dir = temp_dir("sessions");
        let config = with_sessions(&dir, "lock_delay_ms = 2500\n").unwrap();
        let clock = config.sessions.clock_config();
        let defaults = synod_kvstore::SessionClockConfig::default();
        assert_eq!(clock.lock_delay_ms, 2_500);
        assert_eq!(
            clock.checkpoint_interval_ms,
            defaults.checkpoint_interval_ms
        );
        assert_eq!(clock.retry_ms, defaults.retry_ms);
        let config =
            with_sessions(&dir, "checkpoint_interval_ms = 1000\nlock_delay_ms = 0\n").unwrap();
        assert_eq!(config.sessions.checkpoint_interval_ms, 1_000);
        assert_eq!(config.sessions.lock_delay_ms, 0);
        config.sessions.validate().unwrap();
    }

    #[test]
    fn unknown_session_settings_are_errors() {
        let dir = temp_dir("sessions-unknown");
        let err = with_sessions(&dir, "lock_delay = 5\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("lock_delay"), "{err}");
    }

    #[test]
    fn out_of_range_session_settings_are_refused_with_the_bounds() {
        let dir = temp_dir("sessions-range");
        let mut config = sample(&dir);
        config.sessions.checkpoint_interval_ms = 0;
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("checkpoint_interval_ms is 0"), "{err}");
        assert!(err.contains("from 100"), "{err}");
        config.sessions = Sessions {
            lock_delay_ms: 3_600_000,
            ..Sessions::default()
        };
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("lock_delay_ms is 3600000"), "{err}");
        config.sessions = Sessions::default();
        config.validate().unwrap();
    }

    #[test]
    fn an_exactly_once_table_of_no_clients_is_refused_with_the_bounds() {
        let dir = temp_dir("exactly-once-range");
        let mut config = sample(&dir);
        config.exactly_once.clients = 0;
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("exactly_once.clients is 0"), "{err}");
        assert!(err.contains("from 1 to 10000000"), "{err}");
        config.exactly_once.clients = 2;
        config.validate().unwrap();
        config.timing.redis_deadline_ms = 0;
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("timing.redis_deadline_ms is 0"), "{err}");
        assert_eq!(
            config
                .exactly_once
                .state_machine_options()
                .max_dedup_clients,
            2
        );
    }
}
