//! Real `synod` processes on loopback: clients write and read through the
//! QUIC client service while the leader is killed with SIGKILL and later
//! restarted; writes resume under a new leader, the old leader catches up,
//! and the recorded history is linearizable.

mod process_cluster;
mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use process_cluster::ProcessCluster;
use support::linearizability::{check_kv, KvOp, KvOutcome, Operation};
use synod_client::{Client, ClientError};

/// One client's loop: random puts, gets and compare-and-swaps on three
/// keys, each recorded with its invoke and completion times.
async fn run_client(
    id: u64,
    client: Client,
    epoch: tokio::time::Instant,
    stop: Arc<AtomicBool>,
    history: Arc<Mutex<Vec<Operation>>>,
) {
    let mut n = 0u64;
    while !stop.load(Ordering::SeqCst) {
        n += 1;
        let key = format!("k{}", (id + n) % 3).into_bytes();
        let value = format!("c{id}v{n}").into_bytes();
        let now = || epoch.elapsed().as_nanos() as u64;
        let invoke = now();
        let (op, result) = match n % 4 {
            0 | 1 => {
                let result = client.put(&key, &value).await.map(|_| KvOutcome::Put);
                (KvOp::Put { key, value }, result)
            }
            2 => {
                let result = client
                    .get(&key)
                    .await
                    .map(|kv| KvOutcome::Get(kv.map(|kv| kv.value)));
                (KvOp::Get { key }, result)
            }
            _ => {
                let expected = format!("c{}v{}", (id + 1) % 4, n.saturating_sub(1)).into_bytes();
                let result = client
                    .compare_and_swap(&key, Some(&expected), &value)
                    .await
                    .map(KvOutcome::Cas);
                (
                    KvOp::Cas {
                        key,
                        expected: Some(expected),
                        new: value,
                    },
                    result,
                )
            }
        };
        let record = match result {
            Ok(outcome) => Some(Operation {
                client: id,
                invoke,
                complete: Some(now()),
                op,
                outcome,
            }),
            // A write that timed out may still take effect: it stays in the
            // history, never completed. A failed read had no effect.
            Err(ClientError::Timeout) if !matches!(op, KvOp::Get { .. }) => Some(Operation {
                client: id,
                invoke,
                complete: None,
                op,
                outcome: KvOutcome::Unknown,
            }),
            Err(_) => None,
        };
        history.lock().unwrap().extend(record);
    }
}

/// Clients running `run_client` until stopped.
struct Workload {
    epoch: tokio::time::Instant,
    stop: Arc<AtomicBool>,
    history: Arc<Mutex<Vec<Operation>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Workload {
    async fn start(cluster: &ProcessCluster, clients: u64) -> Workload {
        let epoch = tokio::time::Instant::now();
        let stop = Arc::new(AtomicBool::new(false));
        let history = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for id in 1..=clients {
            let mut config = cluster.client_config();
            config.timeout = Duration::from_secs(5);
            let client = Client::connect(config).await.unwrap();
            tasks.push(tokio::spawn(run_client(
                id,
                client,
                epoch,
                stop.clone(),
                history.clone(),
            )));
        }
        Workload {
            epoch,
            stop,
            history,
            tasks,
        }
    }

    fn now(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    /// Stops the clients and returns the history.
    async fn finish(self) -> Vec<Operation> {
        self.stop.store(true, Ordering::SeqCst);
        for task in self.tasks {
            task.await.unwrap();
        }
        let history = self.history.lock().unwrap().clone();
        history
    }
}

/// Writes invoked after `since` that completed.
fn completed_writes_after(history: &[Operation], since: u64) -> usize {
    history
        .iter()
        .filter(|op| !matches!(op.op, KvOp::Get { .. }))
        .filter(|op| op.invoke > since && op.complete.is_some())
        .count()
}

fn assert_linearizable(history: &[Operation]) {
    let result = check_kv(history);
    assert!(
        result.is_linearizable(),
        "{} operations: {result}",
        history.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pausing_the_leader_keeps_the_history_linearizable() {
    let cluster = ProcessCluster::start("pause-leader");
    let first = cluster
        .leader(Duration::from_secs(15))
        .await
        .expect("a leader is elected");
    let workload = Workload::start(&cluster, 4).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    // A paused leader must not answer from its old lease when it wakes up.
    cluster.signal(first, libc::SIGSTOP);
    let paused_at = workload.now();
    let second = cluster
        .leader(Duration::from_secs(15))
        .await
        .expect("a new leader while the old one is paused");
    assert_ne!(second, first);
    tokio::time::sleep(Duration::from_secs(1)).await;
    cluster.signal(first, libc::SIGCONT);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let history = workload.finish().await;
    assert!(
        completed_writes_after(&history, paused_at) > 0,
        "writes went on while the old leader was paused"
    );
    assert_linearizable(&history);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_keeps_the_history_linearizable() {
    let mut cluster = ProcessCluster::start("kill-leader");
    let first = cluster
        .leader(Duration::from_secs(15))
        .await
        .expect("a leader is elected");
    let workload = Workload::start(&cluster, 4).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let killed_at = workload.now();
    cluster.kill(first);
    let second = cluster
        .leader(Duration::from_secs(15))
        .await
        .expect("a new leader is elected");
    assert_ne!(second, first);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let target = cluster
        .status(second)
        .await
        .expect("the new leader answers")
        .applied_index;
    cluster.restart(first);
    // The old leader catches up with what was applied when it came back.
    let mut caught_up = false;
    for _ in 0..300 {
        if cluster
            .status(first)
            .await
            .is_some_and(|old| old.applied_index >= target)
        {
            caught_up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let history = workload.finish().await;
    assert!(caught_up, "the restarted node caught up");
    assert!(
        completed_writes_after(&history, killed_at) > 0,
        "writes resumed after the leader died"
    );
    assert_linearizable(&history);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_a_node_cleanly_and_it_resumes_with_its_data() {
    let mut cluster = ProcessCluster::start("sigterm");
    cluster
        .leader(Duration::from_secs(15))
        .await
        .expect("leader");
    let client = Client::connect(cluster.client_config()).await.unwrap();
    client.put(b"kept", b"yes").await.unwrap();
    for id in 1..=3 {
        assert!(cluster.stop(id), "node {id} exits 0 on SIGTERM");
    }
    for id in 1..=3 {
        cluster.restart(id);
    }
    cluster
        .leader(Duration::from_secs(15))
        .await
        .expect("leader again");
    let kv = client.get(b"kept").await.unwrap().expect("data kept");
    assert_eq!(kv.value, b"yes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_logs_written_to_a_file_are_plain_text() {
    let cluster = ProcessCluster::start("plain-logs");
    cluster
        .leader(Duration::from_secs(15))
        .await
        .expect("leader");
    for id in 1..=3 {
        let log = std::fs::read_to_string(cluster.dir().join(format!("node{id}.log")))
            .expect("the node's log");
        assert!(log.contains("node started"), "node {id} logged: {log}");
        assert!(
            !log.contains('\u{1b}'),
            "node {id}'s log to a file holds terminal escapes: {log:?}"
        );
    }
}

/// Runs `synod member ARGS` against `cluster` off the async workers;
/// panics with what it printed if it fails.
fn member_ok(cluster: &ProcessCluster, args: &[&str]) -> String {
    let (ok, output) = tokio::task::block_in_place(|| cluster.member(args));
    assert!(ok, "synod member {args:?} failed: {output}");
    output
}

/// The ids `synod member list` shows in a role.
fn listed(output: &str, role: &str) -> Vec<u32> {
    output
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let id = fields.next()?.parse().ok()?;
            (fields.next()? == role).then_some(id)
        })
        .collect()
}

/// Membership changes on real processes under a write load: two nodes
/// started empty with `--join` are added and promoted (`synod member add`),
/// growing the cluster from 3 to 5; the leader is removed and hands over; a
/// SIGKILLed voter is replaced by a new node on an empty data directory.
/// The clients' history stays linearizable, and the final members serve.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn growing_shrinking_and_replacing_nodes_keeps_the_history_linearizable() {
    let mut cluster = ProcessCluster::start("membership");
    cluster
        .leader(Duration::from_secs(15))
        .await
        .expect("a leader is elected");
    let workload = Workload::start(&cluster, 3).await;
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Grow to five.
    for id in [4u32, 5] {
        cluster.start_joiner(id);
        let addrs = synod::dev::dev_addrs(cluster.base_port, id);
        let output = member_ok(
            &cluster,
            &[
                "add",
                &id.to_string(),
                "--peer-addr",
                &addrs.peer.to_string(),
                "--client-addr",
                &addrs.client.to_string(),
            ],
        );
        assert!(output.contains("promoted to voter"), "{output}");
    }
    let list = member_ok(&cluster, &["list"]);
    let mut voters = listed(&list, "voter");
    voters.extend(listed(&list, "leader"));
    voters.sort();
    assert_eq!(voters, vec![1, 2, 3, 4, 5], "{list}");

    // Bad input is refused and changes nothing.
    let (ok, output) = tokio::task::block_in_place(|| cluster.member(&["remove", "9"]));
    assert!(!ok && output.contains("not a member"), "{output}");
    let addrs = synod::dev::dev_addrs(cluster.base_port, 6);
    let taken = synod::dev::dev_addrs(cluster.base_port, 1).peer.to_string();
    let (ok, output) = tokio::task::block_in_place(|| {
        cluster.member(&[
            "add",
            "6",
            "--peer-addr",
            &taken,
            "--client-addr",
            &addrs.client.to_string(),
            "--learner",
        ])
    });
    assert!(!ok && output.contains("already used"), "{output}");

    // Remove the leader: it hands over.
    let leader = cluster
        .leader(Duration::from_secs(15))
        .await
        .expect("a leader");
    member_ok(&cluster, &["remove", &leader.to_string()]);
    let next = cluster
        .leader(Duration::from_secs(15))
        .await
        .expect("a new leader after the old one left");
    // The removed node may still run, but it never leads again.
    let next = if next == leader {
        tokio::time::sleep(Duration::from_secs(2)).await;
        cluster
            .leader(Duration::from_secs(15))
            .await
            .expect("a leader")
    } else {
        next
    };
    assert_ne!(next, leader, "the removed leader leads no more");
    assert_eq!(
        cluster.serializable_read_error(leader, b"k0").await,
        Some(synod_net::ErrorCode::NotLeader),
        "a removed node sends readers to the cluster"
    );
    cluster.kill(leader);

    // Replace a SIGKILLed voter by a fresh node.
    let victim = (1..=5).find(|id| *id != leader && *id != next).unwrap();
    cluster.kill(victim);
    member_ok(&cluster, &["remove", &victim.to_string()]);
    cluster.start_joiner(6);
    member_ok(
        &cluster,
        &[
            "add",
            "6",
            "--peer-addr",
            &addrs.peer.to_string(),
            "--client-addr",
            &addrs.client.to_string(),
        ],
    );
    let list = member_ok(&cluster, &["list"]);
    let mut voters = listed(&list, "voter");
    voters.extend(listed(&list, "leader"));
    voters.sort();
    let mut expected: Vec<u32> = (1..=6)
        .filter(|id| *id != leader && *id != victim)
        .collect();
    expected.sort();
    assert_eq!(voters, expected, "{list}");
    // A removed id never comes back.
    let (ok, output) = tokio::task::block_in_place(|| {
        cluster.member(&[
            "add",
            &victim.to_string(),
            "--peer-addr",
            "127.0.0.1:1",
            "--client-addr",
            "127.0.0.1:2",
            "--learner",
        ])
    });
    assert!(!ok && output.contains("never reused"), "{output}");

    // The members left serve writes, found through any of them.
    let mut config = cluster.client_config();
    config.endpoints = expected
        .iter()
        .map(|id| cluster.client_addr(*id).into())
        .collect();
    config.timeout = Duration::from_secs(30);
    let client = Client::connect(config).await.unwrap();
    client
        .put(b"after", b"changes")
        .await
        .expect("a write after the changes");
    assert_eq!(
        client.get(b"after").await.unwrap().unwrap().value,
        b"changes"
    );
    let history = workload.finish().await;
    assert_linearizable(&history);
}
