//! A real process killed with SIGKILL at random moments loses no acknowledged slot, and restarts
//! into a state machine that equals the log applied through some slot.
//!
//! The test binary re-executes itself as the child (`SYNOD_CRASH_CHILD=<db path>`, filtered to
//! [`crash_child_process`]). The child opens a [`NodeStore`], recovers the way a node does, then
//! loops: persist `Accepted` + `Chosen` for slot n (one `Immediate` commit), apply slot n, flush
//! every few slots, compact now and then (flush first), and print `acked n`. The parent kills it
//! after a random delay, reopens the database, checks it, and starts the child again.
//!
//! A second test kills the child during its first start, while it creates its files, and checks
//! the node then starts.
//!
//! Replay a failure with `SYNOD_CRASH_SEED=<seed printed in the failure>`.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use common::{get, incr, put, Rng, TempPath};
use prost::Message;
use synod_kvstore::{NodeStore, Outcome, Request, StateMachine, LOG_DIR, STATE_FILE};
use synod_paxos::{Ballot, Config, Instant, NodeId, Record, Replica, Slot, Storage, Value};

const CHILD_ENV: &str = "SYNOD_CRASH_CHILD";
const SEED_ENV: &str = "SYNOD_CRASH_SEED";
const CHILD_TEST: &str = "crash_child_process";
const ROUNDS: usize = 30;
/// Rounds of the first-start test, each on a new directory.
const CREATION_ROUNDS: usize = 40;
/// Longest a child runs in the first-start test: about its start-up time plus its file
/// creation, so kills land before, during and after creating the files.
const MAX_CREATION_RUN_MS: u64 = 40;
/// Longest a child runs before it is killed.
const MAX_RUN_MS: u64 = 200;
/// The child flushes the state machine every this many slots...
const FLUSH_EVERY: u64 = 5;
/// ...and compacts the log every this many, keeping the last `KEEP_SLOTS` slots.
const COMPACT_EVERY: u64 = 40;
const KEEP_SLOTS: u64 = 10;
/// A child left alone (its parent died) stops after this long.
const CHILD_MAX_LIFE: Duration = Duration::from_secs(60);
const BALLOT: Ballot = Ballot((1 << 32) | 1);

/// Slot n: a put of `k<n>` from client 7 (exactly-once, sequence n) and an anonymous incr of
/// `count`, so a slot applied twice or lost shows in the state.
fn slot_value(n: u64) -> Value {
    Value::Commands(vec![
        Request::from_client(
            7,
            n,
            put(format!("k{n}").as_bytes(), format!("v{n}").as_bytes()),
        )
        .encode_to_vec(),
        Request::anonymous(incr(b"count", 1)).encode_to_vec(),
    ])
}

fn apply(sm: &mut StateMachine, slot: Slot, value: &Value) {
    let commands = match value {
        Value::Noop | Value::Reconfigure(_) => Vec::new(),
        Value::Commands(commands) => commands.clone(),
    };
    sm.apply_slots([(slot.0, commands.as_slice())]).unwrap();
}

/// Restart the way a node does: the core built from the durable log and the applied index
/// re-delivers the chosen slots above it; apply them. Returns the applied index after replay.
fn recover(store: &mut NodeStore) -> u64 {
    let (durable, applied) = store.recovery_state().unwrap();
    let config = Config::new(NodeId(1), vec![NodeId(1)]);
    let mut replica = Replica::new(config, durable, applied, Instant::from_micros(0)).unwrap();
    for (slot, value) in replica.ready().committed {
        apply(&mut store.state_machine, slot, &value);
    }
    store.state_machine.applied_index()
}

/// The child's body; a no-op unless run by the crash test with `SYNOD_CRASH_CHILD` set.
#[test]
#[ignore = "the child process of acknowledged_slots_survive_sigkill; runs only under it"]
fn crash_child_process() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return;
    };
    let started = std::time::Instant::now();
    let mut store = NodeStore::open(&path).unwrap();
    let mut last = recover(&mut store);
    if store.log.promised() < BALLOT {
        store.log.persist(&[Record::Promised(BALLOT)]).unwrap();
    }
    let mut out = std::io::stdout().lock();
    while started.elapsed() < CHILD_MAX_LIFE {
        let n = last + 1;
        let value = slot_value(n);
        store
            .log
            .persist(&[
                Record::Accepted {
                    slot: Slot(n),
                    ballot: BALLOT,
                    value: value.clone(),
                },
                Record::Chosen {
                    slot: Slot(n),
                    value: value.clone(),
                },
            ])
            .unwrap();
        apply(&mut store.state_machine, Slot(n), &value);
        if n.is_multiple_of(FLUSH_EVERY) {
            store.state_machine.flush().unwrap();
        }
        if n.is_multiple_of(COMPACT_EVERY) {
            // The compaction rule: flush, then compact at most through the applied index.
            store.state_machine.flush().unwrap();
            store
                .log
                .persist(&[Record::Compacted(Slot(n - KEEP_SLOTS))])
                .unwrap();
        }
        writeln!(out, "acked {n}").unwrap();
        out.flush().unwrap();
        last = n;
    }
}

/// Run the child for about `run_ms`, SIGKILL it, and return the slots it acknowledged.
fn run_child_and_kill(path: &Path, run_ms: u64) -> Vec<u64> {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            CHILD_TEST,
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, path)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            // libtest's "test crash_child_process ... " has no newline: the first ack ends it.
            .filter_map(|line| line.split_once("acked ")?.1.parse::<u64>().ok())
            .collect::<Vec<u64>>()
    });
    std::thread::sleep(Duration::from_millis(run_ms));
    child.kill().unwrap(); // SIGKILL on unix
    child.wait().unwrap();
    reader.join().unwrap()
}

fn value_of(sm: &StateMachine, key: &[u8]) -> Option<Vec<u8>> {
    match sm.read(&get(key)).unwrap().outcome {
        Some(Outcome::Get(g)) => g.kv.map(|kv| kv.value),
        other => panic!("get answered {other:?}"),
    }
}

/// The state holds exactly slots `1..=a` of the log: `count == a`, revision `2a`, `k<a>` there
/// and `k<a+1>` not.
fn assert_holds_exactly_slots_through(sm: &StateMachine, a: u64, context: &str) {
    let count = value_of(sm, b"count").map(|v| String::from_utf8(v).unwrap());
    assert_eq!(count, (a > 0).then(|| a.to_string()), "{context}: count");
    assert_eq!(sm.revision(), 2 * a, "{context}: revision");
    if a > 0 {
        assert_eq!(
            value_of(sm, format!("k{a}").as_bytes()),
            Some(format!("v{a}").into_bytes())
        );
    }
    assert_eq!(
        value_of(sm, format!("k{}", a + 1).as_bytes()),
        None,
        "{context}"
    );
}

fn seed() -> u64 {
    std::env::var(SEED_ENV)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        })
}

/// What a killed first start left in `path`, in words: which of the node's files exist, and
/// temporaries of interrupted creations.
fn files_left(path: &Path) -> String {
    if !path.exists() {
        return "nothing".into();
    }
    let mut names: Vec<String> = std::fs::read_dir(path)
        .unwrap()
        .chain(std::fs::read_dir(path.join(LOG_DIR)).into_iter().flatten())
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names.join(" ")
}

#[test]
fn a_node_killed_while_creating_its_files_starts_again() {
    let seed = seed();
    let mut rng = Rng(seed);
    let mut outcomes = std::collections::BTreeMap::<String, u32>::new();
    for round in 0..CREATION_ROUNDS {
        let context = format!("{SEED_ENV}={seed}, round {round}");
        let path = TempPath::new("crash-creation");
        run_child_and_kill(&path.0, rng.below(MAX_CREATION_RUN_MS + 1));
        let left = files_left(&path.0);
        let mut store = NodeStore::open(&path.0)
            .unwrap_or_else(|e| panic!("{context}: after a kill leaving {left}: {e}"));
        let applied = recover(&mut store);
        assert_holds_exactly_slots_through(&store.state_machine, applied, &context);
        let complete = left.contains(STATE_FILE) && !left.contains(".tmp");
        let outcome = if left == "nothing" {
            "killed before creating anything"
        } else if complete {
            "killed after creating the files"
        } else {
            "killed while creating the files"
        };
        *outcomes.entry(format!("{outcome}: {left}")).or_default() += 1;
    }
    eprintln!("{SEED_ENV}={seed}: {outcomes:?}");
}

#[test]
fn acknowledged_slots_survive_sigkill_at_random_moments() {
    let seed = seed();
    let mut rng = Rng(seed);
    let path = TempPath::new("crash-recovery");
    let mut reference = StateMachine::in_memory().unwrap();
    let mut acked_max = 0;
    let mut log_max = 0;
    for round in 0..ROUNDS {
        let context = format!("{SEED_ENV}={seed}, round {round}");
        let acked = run_child_and_kill(&path.0, 1 + rng.below(MAX_RUN_MS));
        // Each run resumes right after the last slot in the log (there may be slots persisted
        // but never acknowledged before it), and acknowledges slots in order.
        if let Some(&first) = acked.first() {
            assert_eq!(first, log_max + 1, "{context}: {acked:?}");
            assert!(
                acked.windows(2).all(|w| w[1] == w[0] + 1),
                "{context}: {acked:?}"
            );
            acked_max = *acked.last().unwrap();
        }

        let mut store = NodeStore::open(&path.0).unwrap();
        let before = store.state_machine.applied_index();
        assert_holds_exactly_slots_through(&store.state_machine, before, &context);
        let durable = store.log.load().unwrap();
        let last_in_log = durable
            .slots
            .keys()
            .last()
            .map_or(durable.compacted_through, |s| *s);
        // The child persists slot n + 1 only after acknowledging n: the log ends at the last
        // acknowledged slot (or where the previous run left it), or one after.
        let floor = acked.last().copied().unwrap_or(log_max);
        assert!(
            last_in_log.0 == floor || last_in_log.0 == floor + 1,
            "{context}: log ends at {last_in_log}, acked through {acked_max}"
        );
        log_max = last_in_log.0;

        let after = recover(&mut store);
        assert_eq!(
            after, log_max,
            "{context}: replay reaches the end of the log"
        );
        assert_holds_exactly_slots_through(&store.state_machine, after, &context);
        for n in 1..=acked_max {
            assert_eq!(
                value_of(&store.state_machine, format!("k{n}").as_bytes()),
                Some(format!("v{n}").into_bytes()),
                "{context}: acknowledged slot {n} lost"
            );
        }
        for slot in reference.applied_index() + 1..=after {
            apply(&mut reference, Slot(slot), &slot_value(slot));
        }
        assert_eq!(
            store.state_machine.state_hash().unwrap(),
            reference.state_hash().unwrap(),
            "{context}: state differs from the log applied through slot {after}"
        );
    }
    assert!(
        acked_max >= 100,
        "{SEED_ENV}={seed}: only {acked_max} slots acknowledged in {ROUNDS} rounds"
    );
    eprintln!("{SEED_ENV}={seed}: {acked_max} slots acknowledged over {ROUNDS} kills");
}
