//! The client's coordination primitives against real `synod` processes:
//! a lock holder killed with SIGKILL loses the lock once its session
//! expires and the waiter gets it; a leader node killed while candidates
//! campaign neither loses nor duplicates the election; locks are granted
//! in FIFO order; a watch of compacted history fails clearly; the watch
//! history survives a clean restart and a kill of every node.

mod process_cluster;

use std::io::Read;
use std::process::Stdio;
use std::time::Duration;

use process_cluster::ProcessCluster;
use synod_client::{
    Client, ClientConfig, ClientError, Election, ErrorCode, EventFilter, FencingToken, Mutex, Op,
    Session,
};
use synod_kvstore::{Put, Txn, TxnOp, TxnOpKind};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::time::Instant;

/// Set in the environment of the child process that holds the lock: the
/// cluster's directory and base port, as `DIR:PORT`.
const HOLDER_ENV: &str = "SYNOD_TEST_LOCK_HOLDER";
const GUARDED_LOCK: &str = "guarded";
const GUARDED_KEY: &[u8] = b"guarded/owner";

async fn connect(config: ClientConfig) -> Client {
    Client::connect(config).await.expect("client")
}

/// Not a test on its own: the body of the lock-holder child process (this
/// test binary re-run with [`HOLDER_ENV`] set). Takes the lock, writes
/// under its token, says `LOCKED <token>` on stdout, and keeps its session
/// alive until killed (or until its parent closes stdin).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_holder_child() {
    let Ok(cluster) = std::env::var(HOLDER_ENV) else {
        return;
    };
    // Exit with the parent: it holds our stdin open while it lives.
    std::thread::spawn(|| {
        let _ = std::io::stdin().read_to_end(&mut Vec::new());
        std::process::exit(0);
    });
    let (dir, port) = cluster.rsplit_once(':').expect("DIR:PORT");
    let config = ClientConfig::from_dev_cluster(dir, port.parse().expect("port")).expect("config");
    let client = connect(config).await;
    let session = Session::open(&client, Duration::from_secs(2))
        .await
        .expect("session");
    let token = Mutex::new(&session, GUARDED_LOCK)
        .lock()
        .await
        .expect("lock");
    client
        .put_fenced(GUARDED_KEY, b"child", &token)
        .await
        .expect("fenced write");
    println!("LOCKED {}", token.token);
    loop {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
}

/// Starts the lock-holder child (killed when dropped) and waits until it
/// holds the lock; returns it and its fencing token.
async fn start_holder(cluster: &ProcessCluster) -> (tokio::process::Child, u64) {
    let mut child = tokio::process::Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "lock_holder_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(
            HOLDER_ENV,
            format!("{}:{}", cluster.dir().display(), cluster.base_port),
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(cluster.dir().join("holder.log")).expect("holder log"))
        .kill_on_drop(true)
        .spawn()
        .expect("the holder starts");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let wait_for_lock = async {
        while let Some(line) = lines.next_line().await.expect("holder output") {
            // The test harness may have begun the line ("test ... ").
            if let Some((_, token)) = line.split_once("LOCKED ") {
                return token.trim().parse().expect("token");
            }
        }
        panic!("the holder exited without taking the lock");
    };
    let token = tokio::time::timeout(Duration::from_secs(30), wait_for_lock)
        .await
        .expect("the holder never took the lock");
    (child, token)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_lock_holder_loses_the_lock_after_its_ttl_and_the_waiter_gets_it() {
    let cluster = ProcessCluster::start("lock-holder-killed");
    cluster
        .leader(Duration::from_secs(20))
        .await
        .expect("a leader");
    let client = connect(cluster.client_config()).await;
    let (mut holder, holder_token) = start_holder(&cluster).await;
    let session = Session::open(&client, Duration::from_secs(30))
        .await
        .unwrap();
    let waiter = Mutex::new(&session, GUARDED_LOCK);
    let waiting = tokio::spawn(async move { waiter.lock().await });
    // While the holder lives, its keep-alives keep the lock from the waiter.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!waiting.is_finished(), "the waiter got a held lock");

    // SIGKILL: no close, no unlock; its session just stops being kept
    // alive.
    holder.kill().await.expect("SIGKILL");
    let token = tokio::time::timeout(Duration::from_secs(60), waiting)
        .await
        .expect("the waiter never got the lock")
        .unwrap()
        .unwrap();
    assert!(token.token > holder_token, "fencing tokens increase");
    // The dead holder's token no longer fences anything; the new one does.
    let stale = FencingToken {
        lock: GUARDED_LOCK.into(),
        token: holder_token,
    };
    let refused = client.put_fenced(GUARDED_KEY, b"zombie", &stale).await;
    assert_eq!(
        refused.unwrap_err().command_code(),
        Some(ErrorCode::FencingTokenRejected)
    );
    client
        .put_fenced(GUARDED_KEY, b"waiter", &token)
        .await
        .unwrap();
    assert_eq!(
        client.get(GUARDED_KEY).await.unwrap().unwrap().value,
        b"waiter"
    );
}

/// Waits until `check` holds, asking every 50 ms for up to 30 s.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check().await {
        assert!(Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Resigns as a user would: a resign that timed out (its outcome unknown,
/// as may happen while a new leader takes over on a loaded machine) is sent
/// again; if the first was applied after all, the retry finds the session
/// no longer a candidate. A cluster that never serves it fails the test.
async fn resign(election: &Election) {
    let mut timed_out = false;
    for _ in 0..6 {
        match election.resign().await {
            Ok(()) => return,
            Err(ClientError::Timeout) => timed_out = true,
            Err(e) if timed_out && e.command_code() == Some(ErrorCode::NotCandidate) => return,
            Err(e) => panic!("resign: {e}"),
        }
    }
    panic!("no resign was served in six tries");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_node_killed_mid_campaign_neither_loses_nor_duplicates_the_election() {
    const NAME: &[u8] = b"campaign";
    let mut cluster = ProcessCluster::start("campaign-kill");
    let node = cluster
        .leader(Duration::from_secs(20))
        .await
        .expect("a leader");
    let client = connect(cluster.client_config()).await;

    let mut observer = client.observe_election(NAME);
    assert_eq!(observer.next().await.unwrap(), None);
    let observing = tokio::spawn(async move {
        let mut seen = Vec::new();
        loop {
            match observer.next().await {
                Ok(leader) => {
                    let done = leader.is_none();
                    seen.push(leader);
                    if done {
                        return seen;
                    }
                }
                Err(ClientError::Timeout) => {}
                Err(e) => panic!("observer: {e}"),
            }
        }
    });

    // Long TTLs: the sessions must outlive the leader change.
    let mut elections = Vec::new();
    for _ in 0..4 {
        let session = Session::open(&client, Duration::from_secs(20))
            .await
            .unwrap();
        elections.push(Election::new(&session, NAME));
    }
    let ids: Vec<u64> = elections.iter().map(|e| e.session().id()).collect();
    let first = elections[0].campaign(b"a").await.unwrap();
    let mut campaigns = Vec::new();
    for (i, value) in [(1, b"b"), (2, b"c")] {
        let election = elections[i].clone();
        campaigns.push(tokio::spawn(async move { election.campaign(value).await }));
        let queued = ids[1..=i].to_vec();
        eventually("the candidate queues", || async {
            client.election_state(NAME).await.unwrap().0.waiters == queued
        })
        .await;
    }
    // The last candidate's campaign goes out as the cluster's leader dies.
    let last = elections[3].clone();
    campaigns.push(tokio::spawn(async move { last.campaign(b"d").await }));
    cluster.kill(node);
    let new_node = cluster
        .leader(Duration::from_secs(20))
        .await
        .expect("a new leader");
    assert_ne!(new_node, node);

    // Hand the leadership down the queue: each candidate is elected once,
    // in the order it campaigned.
    let mut leaders = vec![first];
    for (i, campaign) in campaigns.into_iter().enumerate() {
        resign(&elections[i]).await;
        let leader = tokio::time::timeout(Duration::from_secs(60), campaign)
            .await
            .expect("the next candidate was never elected")
            .unwrap()
            .unwrap();
        leaders.push(leader);
    }
    resign(&elections[3]).await;

    let values: Vec<&[u8]> = leaders.iter().map(|l| l.value.as_slice()).collect();
    assert_eq!(values, [b"a", b"b", b"c", b"d"]);
    let sessions: Vec<u64> = leaders.iter().map(|l| l.session).collect();
    assert_eq!(sessions, ids);
    assert!(
        leaders.windows(2).all(|w| w[0].revision < w[1].revision),
        "leaderships have increasing revisions: {leaders:?}"
    );
    let seen = tokio::time::timeout(Duration::from_secs(60), observing)
        .await
        .expect("the observer never saw the end")
        .unwrap();
    let mut expected: Vec<_> = leaders.into_iter().map(Some).collect();
    expected.push(None);
    assert_eq!(
        seen, expected,
        "the observer saw each leader once, in order"
    );
    let (state, _) = client.election_state(NAME).await.unwrap();
    assert_eq!((state.leader, state.waiters), (None, vec![]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locks_are_granted_in_fifo_order_with_increasing_tokens() {
    const NAME: &str = "fifo";
    let cluster = ProcessCluster::start("lock-fifo");
    cluster
        .leader(Duration::from_secs(20))
        .await
        .expect("a leader");
    let client = connect(cluster.client_config()).await;
    let mut mutexes = Vec::new();
    for _ in 0..5 {
        let session = Session::open(&client, Duration::from_secs(20))
            .await
            .unwrap();
        mutexes.push(Mutex::new(&session, NAME));
    }
    let ids: Vec<u64> = mutexes.iter().map(|m| m.session().id()).collect();
    let mut tokens = vec![mutexes[0].lock().await.unwrap()];
    let mut waiting = Vec::new();
    for i in 1..=3 {
        let mutex = mutexes[i].clone();
        waiting.push(tokio::spawn(async move { mutex.lock().await }));
        let queued = ids[1..=i].to_vec();
        eventually("the waiter queues", || async {
            client.lock_holder(NAME.as_bytes()).await.unwrap().0.waiters == queued
        })
        .await;
    }
    assert_eq!(mutexes[4].try_lock().await.unwrap(), None, "held: busy");

    for (i, grant) in waiting.into_iter().enumerate() {
        mutexes[i].unlock().await.unwrap();
        let token = tokio::time::timeout(Duration::from_secs(30), grant)
            .await
            .expect("the next waiter was never granted the lock")
            .unwrap()
            .unwrap();
        let (holder, _) = client.lock_holder(NAME.as_bytes()).await.unwrap();
        assert_eq!(holder.holder, ids[i + 1], "granted in FIFO order");
        tokens.push(token);
    }
    assert!(
        tokens.windows(2).all(|w| w[0].token < w[1].token),
        "tokens increase: {tokens:?}"
    );
    mutexes[3].unlock().await.unwrap();
    let refused = client.put_fenced(b"k", b"v", &tokens[3]).await;
    assert_eq!(
        refused.unwrap_err().command_code(),
        Some(ErrorCode::FencingTokenRejected),
        "an unlocked token fences nothing"
    );
    assert!(mutexes[4].try_lock().await.unwrap().is_some(), "free again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_of_compacted_history_fails_clearly_and_a_live_one_sees_new_events() {
    let cluster = ProcessCluster::start("watch-compacted");
    cluster
        .leader(Duration::from_secs(20))
        .await
        .expect("a leader");
    let client = connect(cluster.client_config()).await;
    // Overflow the bounded history (10,000 events): 64 puts per command.
    for batch in 0..170 {
        let success = (0..64)
            .map(|i| TxnOp {
                op: Some(TxnOpKind::Put(Put {
                    key: format!("bulk/{batch}/{i}").into_bytes(),
                    value: b"x".to_vec(),
                    prev_kv: false,
                })),
            })
            .collect();
        let txn = Op::Txn(Txn {
            compares: Vec::new(),
            success,
            failure: Vec::new(),
        });
        client.write(txn).await.unwrap();
    }
    let mut stale = client.watch(EventFilter::prefix("bulk/"), 1);
    match stale.next_batch().await {
        Err(ClientError::Compacted {
            from_revision: 1,
            compacted_through,
            ..
        }) => assert!(compacted_through >= 1),
        other => panic!("expected a compacted-history error, got {other:?}"),
    }

    let from = client.current_revision().await.unwrap() + 1;
    let mut live = client.watch(EventFilter::prefix("live/"), from);
    let next = tokio::spawn(async move { live.next().await });
    client.put(b"other", b"1").await.unwrap();
    let revision = client.put(b"live/x", b"2").await.unwrap();
    let event = tokio::time::timeout(Duration::from_secs(30), next)
        .await
        .expect("the live watch saw nothing")
        .unwrap()
        .unwrap();
    assert_eq!(
        (event.key.as_slice(), event.value.as_deref(), event.revision),
        (b"live/x".as_slice(), Some(b"2".as_slice()), revision)
    );
}

/// Puts the keys `h/{i}` for each `i` of `keys`, in order.
async fn put_history(client: &Client, keys: std::ops::Range<usize>) {
    for i in keys {
        client.put(format!("h/{i}").as_bytes(), b"v").await.unwrap();
    }
}

/// The keys of the events under `h/` from `from_revision` on, once `count`
/// of them were read (the watch fails the test if the history is compacted).
async fn history_keys(client: &Client, from_revision: u64, count: usize) -> Vec<Vec<u8>> {
    let mut watch = client.watch(EventFilter::prefix("h/"), from_revision);
    let mut keys = Vec::new();
    while keys.len() < count {
        let batch = tokio::time::timeout(Duration::from_secs(30), watch.next_batch())
            .await
            .expect("the history answers")
            .expect("the history is whole");
        keys.extend(batch.into_iter().map(|event| event.key));
    }
    keys
}

/// Takes every node down (SIGTERM and a clean exit, or SIGKILL), starts
/// them again and connects once a leader is back.
async fn restart_every_node(cluster: &mut ProcessCluster, kill: bool) -> Client {
    for id in 1..=3 {
        if kill {
            cluster.kill(id);
        } else {
            assert!(cluster.stop(id), "node {id} stops cleanly");
        }
    }
    for id in 1..=3 {
        cluster.restart(id);
    }
    cluster
        .leader(Duration::from_secs(20))
        .await
        .expect("a leader");
    connect(cluster.client_config()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watch_history_survives_a_clean_restart_and_a_kill_of_every_node() {
    // The history lives in memory and reaches disk at flushes and at a clean
    // close: both ways down must leave it whole (a kill replays the log).
    let mut cluster = ProcessCluster::start("watch-restarts");
    cluster
        .leader(Duration::from_secs(20))
        .await
        .expect("a leader");
    let mut client = connect(cluster.client_config()).await;
    let first = client.current_revision().await.unwrap() + 1;
    for (kill, keys) in [(false, 0..30), (true, 30..60)] {
        put_history(&client, keys.clone()).await;
        drop(client);
        client = restart_every_node(&mut cluster, kill).await;
        let expected: Vec<Vec<u8>> = (0..keys.end)
            .map(|i| format!("h/{i}").into_bytes())
            .collect();
        assert_eq!(
            history_keys(&client, first, keys.end).await,
            expected,
            "after every node was {}",
            if kill { "killed" } else { "stopped" }
        );
    }
}
