//! redis-py (the Python client, current release from PyPI) with its default
//! settings against an in-process 3-node cluster: `tests/redis_py/*.py`
//! run through a follower and through the leader. The Python interpreter
//! is `$SYNOD_REDIS_PY` (`.ci/run` makes a venv with redis-py and sets it),
//! else `python3` if it imports `redis`; without either the test is
//! skipped with a note.

mod quic_cluster;

use std::process::Command;
use std::sync::OnceLock;

use quic_cluster::Cluster;

fn cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(|| Cluster::start("redispy", 3, None))
}

/// A Python that imports `redis`, if there is one.
fn python() -> Option<String> {
    let candidates = std::env::var("SYNOD_REDIS_PY")
        .ok()
        .into_iter()
        .chain(["python3".to_string()]);
    for python in candidates {
        let imports = Command::new(&python)
            .args(["-c", "import redis"])
            .output()
            .is_ok_and(|out| out.status.success());
        if imports {
            return Some(python);
        }
    }
    eprintln!("no Python with redis-py (set SYNOD_REDIS_PY, see .ci/run); skipping");
    None
}

fn run_script(python: &str, script: &str, port: u16, prefix: &str) {
    let path = format!("{}/tests/redis_py/{script}", env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(python)
        .args([&path, &port.to_string(), prefix])
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "{script} on port {port}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn redis_py_transactions_watch_and_locks_work_through_any_node() {
    let Some(python) = python() else {
        return;
    };
    let cluster = cluster();
    let follower = cluster.follower();
    let leader = cluster.leader();
    run_script(
        &python,
        "transactions.py",
        cluster.redis_ports[follower - 1],
        "py:follower",
    );
    run_script(
        &python,
        "transactions.py",
        cluster.redis_ports[leader - 1],
        "py:leader",
    );
}
