//! A node that fell behind a compaction while the cluster held a large
//! state rejoins and catches up (issue 11, finding 4), with real `synod
//! start` processes on loopback.
//!
//! The cluster loads `SYNOD_CATCH_UP_KEYS` keys (default 1,000,000) of
//! [`VALUE_BYTES`]-byte values through the Redis endpoint; one follower is
//! killed with SIGKILL; the other two take single writes (one slot each)
//! until both compacted their logs past the killed node's applied index, so
//! it can only catch up by snapshot; then it restarts. It must reach the
//! leader's commit index as of its restart within [`CATCH_UP_PATIENCE`],
//! and then serve every key with its value, read from it alone
//! (serializable reads). The test prints what it measured (load time, the
//! leader's `state.redb` size, the catch-up time, the snapshot lines of the
//! node logs, the leader's memory); it asserts no timing.
//!
//! It takes minutes, so it is `#[ignore]`d:
//!
//! ```text
//! cargo test --release --test large_catch_up_process -- --ignored --nocapture
//! SYNOD_CATCH_UP_KEYS=20000 cargo test --test large_catch_up_process -- --ignored --nocapture
//! ```
//!
//! The nodes inherit `RUST_LOG` (e.g. `RUST_LOG=info,synod=debug` also logs
//! the snapshot streams a node ignored or did not start); their logs are
//! `node<i>.log` in the cluster directory, kept when the test fails.

mod process_cluster;
mod quic_cluster;

use std::path::Path;
use std::time::{Duration, Instant};

use process_cluster::ProcessCluster;
use synod_client::{Client, ClientConfig};
use synod_kvstore::{KeyValue, Op, Outcome, Scan};
use synod_wire::limits::{MAX_SCAN_LIMIT, MAX_TXN_OPS};
use synod_wire::proto::api::NodeStatus;

/// Keys loaded when `SYNOD_CATCH_UP_KEYS` is not set.
const DEFAULT_KEYS: u64 = 1_000_000;
/// Bytes of each loaded value.
const VALUE_BYTES: usize = 100;
/// Keys per `MSET` (the most one transaction takes).
const MSET_KEYS: u64 = MAX_TXN_OPS as u64;
/// Redis connections loading at once.
const LOAD_CONNECTIONS: u64 = 16;
/// `MSET`s each loading connection sends before reading their replies.
const PIPELINE_DEPTH: usize = 8;
/// Times one `MSET` is sent again after an error reply before the test gives up.
const MAX_MSET_ATTEMPTS: u32 = 50;
/// The guard: how long the restarted node may take to catch up before the
/// test fails. Generous; the figure the test reports is the real one.
const CATCH_UP_PATIENCE: Duration = Duration::from_secs(600);
/// Single writes after which the test gives up waiting for a compaction.
const MAX_SINGLE_WRITES: u64 = 200_000;
/// Single writes between two looks at the live nodes' compaction.
const WRITES_BETWEEN_STATUS: u64 = 500;
/// Snapshot lines of each node's log the test prints.
const SHOWN_LOG_LINES: usize = 20;
/// What the node logs once per snapshot it installs (the state machine and
/// the core log the install too, with other fields).
const INSTALLED: &[&str] = &["snapshot installed", "through="];
/// How long to wait for a node's status or for a leader.
const STATUS_PATIENCE: Duration = Duration::from_secs(30);

/// The key loaded as number `i` (zero-padded, so key order is number order).
fn loaded_key(i: u64) -> String {
    format!("load:{i:08}")
}

/// The value loaded under key number `i`: [`VALUE_BYTES`] bytes that name it.
fn loaded_value(i: u64) -> String {
    let mut value = format!("value-{i:08}-");
    let filler = char::from(b'a' + (i % 26) as u8);
    while value.len() < VALUE_BYTES {
        value.push(filler);
    }
    value
}

/// The key of single write number `j`, made while the lagging node is down.
fn single_write_key(j: u64) -> String {
    format!("after:{j:08}")
}

/// The value of single write number `j`.
fn single_write_value(j: u64) -> String {
    format!("after-value-{j}")
}

fn keys_to_load() -> u64 {
    match std::env::var("SYNOD_CATCH_UP_KEYS") {
        Ok(text) => text
            .trim()
            .replace(['_', ','], "")
            .parse()
            .unwrap_or_else(|_| panic!("SYNOD_CATCH_UP_KEYS={text:?} is not a number of keys")),
        Err(_) => DEFAULT_KEYS,
    }
}

/// The Redis port of node `id`.
fn redis_port(cluster: &ProcessCluster, id: u32) -> u16 {
    synod::dev::dev_addrs(cluster.base_port, id).redis.port()
}

/// Loads keys `0..total` through `port`: [`LOAD_CONNECTIONS`] connections,
/// each sending pipelined `MSET`s of [`MSET_KEYS`] keys (connection `c`
/// takes the batches `c`, `c + LOAD_CONNECTIONS`, ...). An `MSET` answered
/// with an error (busy, leader changing) is sent again.
fn load(port: u16, total: u64) {
    let batches = total.div_ceil(MSET_KEYS);
    let loaders: Vec<_> = (0..LOAD_CONNECTIONS)
        .map(|connection| {
            std::thread::spawn(move || {
                let mut client = quic_cluster::Client::connect(port);
                let mut mine: Vec<u64> = (connection..batches)
                    .step_by(LOAD_CONNECTIONS as usize)
                    .collect();
                mine.reverse();
                let mut attempts = std::collections::HashMap::<u64, u32>::new();
                while !mine.is_empty() {
                    let round: Vec<u64> = (0..PIPELINE_DEPTH).map_while(|_| mine.pop()).collect();
                    for &batch in &round {
                        let first = batch * MSET_KEYS;
                        let pairs: Vec<(String, String)> = (first..total.min(first + MSET_KEYS))
                            .map(|i| (loaded_key(i), loaded_value(i)))
                            .collect();
                        let mut args: Vec<&[u8]> = vec![b"MSET"];
                        for (key, value) in &pairs {
                            args.push(key.as_bytes());
                            args.push(value.as_bytes());
                        }
                        client.send(&args);
                    }
                    for &batch in &round {
                        let reply = client.read();
                        if reply == quic_cluster::ok() {
                            continue;
                        }
                        let tries = attempts.entry(batch).or_default();
                        *tries += 1;
                        assert!(
                            *tries < MAX_MSET_ATTEMPTS,
                            "MSET of batch {batch} failed {tries} times, last with {reply:?}"
                        );
                        mine.push(batch);
                    }
                    if round.iter().any(|batch| attempts.contains_key(batch)) {
                        std::thread::sleep(Duration::from_millis(100));
                    }
                }
            })
        })
        .collect();
    for loader in loaders {
        loader.join().expect("a loading connection failed");
    }
}

/// Node `id`'s status, waiting up to [`STATUS_PATIENCE`] for an answer.
async fn status(cluster: &ProcessCluster, id: u32) -> NodeStatus {
    let deadline = Instant::now() + STATUS_PATIENCE;
    loop {
        if let Some(status) = cluster.status(id).await {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "node {id} gave no status for {STATUS_PATIENCE:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Makes single writes through the leader's Redis port, one at a time (so
/// one slot each), until every live node compacted its log past
/// `lagging_applied`; returns how many it made.
async fn write_past_compaction(
    cluster: &ProcessCluster,
    port: u16,
    live: [u32; 2],
    lagging_applied: u64,
) -> u64 {
    let mut client = quic_cluster::Client::connect(port);
    let mut written = 0;
    loop {
        let batch_start = written;
        written = tokio::task::block_in_place(|| {
            let mut written = batch_start;
            while written < batch_start + WRITES_BETWEEN_STATUS {
                let key = single_write_key(written);
                let value = single_write_value(written);
                let reply = client.call(&["SET", &key, &value]);
                if reply == quic_cluster::ok() {
                    written += 1;
                } else {
                    // Busy or a leader change: the same write again.
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
            written
        });
        let mut compacted_past = true;
        for id in live {
            compacted_past &= status(cluster, id).await.compacted_through > lagging_applied;
        }
        if compacted_past {
            return written;
        }
        assert!(
            written < MAX_SINGLE_WRITES,
            "{written} single writes and the live nodes still keep slot {} in their logs",
            lagging_applied + 1
        );
    }
}

/// A client that talks to node `id` alone.
async fn client_of(cluster: &ProcessCluster, id: u32) -> Client {
    let mut config: ClientConfig = cluster.client_config();
    config.endpoints = vec![cluster.client_addr(id).into()];
    config.timeout = Duration::from_secs(30);
    Client::connect(config).await.expect("a client")
}

/// Every key-value pair `client`'s node holds, read from it alone
/// (serializable scans of [`MAX_SCAN_LIMIT`] keys), in key order.
async fn scan_everything(client: &Client) -> Vec<KeyValue> {
    let mut everything = Vec::new();
    let mut start = Vec::new();
    loop {
        let op = Op::Scan(Scan {
            start: start.clone(),
            end: Vec::new(),
            prefix: Vec::new(),
            limit: MAX_SCAN_LIMIT,
            keys_only: false,
        });
        let response = client.read(op, true).await.expect("a serializable scan");
        let Some(Outcome::Scan(page)) = response.outcome else {
            panic!("a scan answered with {:?}", response.outcome);
        };
        if let Some(last) = page.kvs.last() {
            start = last.key.clone();
            start.push(0);
        }
        everything.extend(page.kvs);
        if !page.more {
            return everything;
        }
    }
}

/// Checks that `kvs` (in key order) is exactly the single writes
/// `0..single_writes` followed by the loaded keys `0..loaded`.
fn check_contents(kvs: &[KeyValue], single_writes: u64, loaded: u64) {
    assert_eq!(
        kvs.len() as u64,
        single_writes + loaded,
        "the caught-up node holds {} keys; the cluster was given {single_writes} + {loaded}",
        kvs.len()
    );
    let expected = (0..single_writes)
        .map(|j| (single_write_key(j), single_write_value(j)))
        .chain((0..loaded).map(|i| (loaded_key(i), loaded_value(i))));
    for (kv, (key, value)) in kvs.iter().zip(expected) {
        assert_eq!(
            String::from_utf8_lossy(&kv.key),
            key,
            "the caught-up node's keys differ"
        );
        assert_eq!(
            String::from_utf8_lossy(&kv.value),
            value,
            "the caught-up node's value of {key} differs"
        );
    }
}

/// Lines of `log` that contain every one of `texts`.
fn count_lines(log: &Path, texts: &[&str]) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|line| texts.iter().all(|text| line.contains(text)))
        .count()
}

/// The first [`SHOWN_LOG_LINES`] lines of `log` about snapshots.
fn snapshot_lines(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|line| line.contains("snapshot"))
        .take(SHOWN_LOG_LINES)
        .map(str::to_owned)
        .collect()
}

/// `VmRSS` and `VmHWM` (peak) of process `pid`, in MiB.
fn memory_mib(pid: Option<u32>) -> (u64, u64) {
    let status = pid
        .and_then(|pid| std::fs::read_to_string(format!("/proc/{pid}/status")).ok())
        .unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .map_or(0, |kib| kib / 1024)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "minutes long: cargo test --release --test large_catch_up_process -- --ignored --nocapture"]
async fn a_node_behind_a_compaction_catches_up_on_a_large_state() {
    let keys = keys_to_load();
    let mut cluster = ProcessCluster::start("large-catch-up");
    eprintln!("cluster in {}", cluster.dir().display());
    let leader = cluster
        .leader(STATUS_PATIENCE)
        .await
        .expect("a leader is elected");
    let lagging = if leader == 3 { 2 } else { 3 };
    let live = [leader, 6 - leader - lagging];

    let started = Instant::now();
    let port = redis_port(&cluster, leader);
    tokio::task::block_in_place(|| load(port, keys));
    let load_time = started.elapsed();
    let loaded = status(&cluster, leader).await;
    eprintln!(
        "loaded {keys} keys of {VALUE_BYTES} B in {load_time:.1?} ({:.0} keys/s) into {} slots",
        keys as f64 / load_time.as_secs_f64(),
        loaded.commit_index
    );

    // The lagging node applies the load first, so that what it misses is
    // the single writes, past one compaction.
    let deadline = Instant::now() + CATCH_UP_PATIENCE;
    let lagging_applied = loop {
        let applied = status(&cluster, lagging).await.applied_index;
        if applied >= loaded.commit_index {
            break applied;
        }
        assert!(
            Instant::now() < deadline,
            "node {lagging} never applied the load"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    cluster.kill(lagging);
    eprintln!("killed node {lagging} (SIGKILL) at applied index {lagging_applied}");

    let started = Instant::now();
    let single_writes = write_past_compaction(&cluster, port, live, lagging_applied).await;
    let before_restart = status(&cluster, leader).await;
    let state_file = cluster
        .dir()
        .join(format!("node{leader}"))
        .join(synod_kvstore::STATE_FILE);
    let state_mib = std::fs::metadata(&state_file).map_or(0, |m| m.len()) / (1024 * 1024);
    let (leader_rss, _) = memory_mib(cluster.pid(leader));
    eprintln!(
        "{single_writes} single writes in {:.1?}; leader (node {leader}) commit index {}, \
         compacted through {}, state.redb {state_mib} MiB, RSS {leader_rss} MiB",
        started.elapsed(),
        before_restart.commit_index,
        before_restart.compacted_through,
    );

    let target = before_restart.commit_index;
    let restarted = Instant::now();
    cluster.restart(lagging);
    let mut first_answer = None;
    let caught_up = loop {
        if let Some(status) = cluster.status(lagging).await {
            first_answer.get_or_insert_with(|| restarted.elapsed());
            if status.applied_index >= target {
                break status;
            }
        }
        assert!(
            restarted.elapsed() < CATCH_UP_PATIENCE,
            "node {lagging} did not reach slot {target} within {CATCH_UP_PATIENCE:?} \
             (logs in {})",
            cluster.dir().display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let catch_up_time = restarted.elapsed();
    let (leader_rss_after, leader_peak) = memory_mib(cluster.pid(leader));
    eprintln!(
        "node {lagging} caught up to slot {target} (applied {}, compacted through {}) \
         {catch_up_time:.2?} after its restart (first status answer after {:.2?}); \
         leader RSS {leader_rss_after} MiB, peak {leader_peak} MiB",
        caught_up.applied_index,
        caught_up.compacted_through,
        first_answer.unwrap_or_default(),
    );
    for id in 1..=3 {
        let log = cluster.dir().join(format!("node{id}.log"));
        eprintln!(
            "node {id} log: {} snapshots sent, {} installed, {} transfers abandoned, \
             {} transfers failed",
            count_lines(&log, &["snapshot sent"]),
            count_lines(&log, INSTALLED),
            count_lines(&log, &["snapshot transfer abandoned"]),
            count_lines(&log, &["snapshot transfer failed"]),
        );
        for line in snapshot_lines(&log) {
            eprintln!("  {line}");
        }
    }
    assert!(
        count_lines(&cluster.dir().join(format!("node{lagging}.log")), INSTALLED) >= 1,
        "node {lagging} caught up by a snapshot (the live nodes had compacted past it)"
    );

    let client = client_of(&cluster, lagging).await;
    let started = Instant::now();
    let contents = scan_everything(&client).await;
    eprintln!(
        "read all {} keys back from node {lagging} alone in {:.1?}",
        contents.len(),
        started.elapsed()
    );
    check_contents(&contents, single_writes, keys);

    for id in 1..=3 {
        cluster.kill(id);
    }
    let _ = std::fs::remove_dir_all(cluster.dir());
}
