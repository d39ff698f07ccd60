//! `redis-cli` and `redis-benchmark` (Debian package `redis-tools`)
//! against an in-process 3-node cluster, through a follower. Skipped, with
//! a note, when the tools are not installed; `.ci/run` installs them.

mod quic_cluster;

use std::process::Command;
use std::sync::OnceLock;

use quic_cluster::{bulk, Cluster};

fn cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(|| Cluster::start("tools", 3, None))
}

fn installed(tool: &str) -> bool {
    let found = Command::new(tool).arg("--version").output().is_ok();
    if !found {
        eprintln!("{tool} is not installed (Debian package redis-tools); skipping");
    }
    found
}

fn redis_cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .output()
        .expect("redis-cli runs");
    assert!(out.status.success(), "redis-cli {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim_end().to_string()
}

#[test]
fn redis_cli_drives_the_cluster() {
    if !installed("redis-cli") {
        return;
    }
    let cluster = cluster();
    let port = cluster.redis_ports[cluster.follower() - 1];
    assert_eq!(redis_cli(port, &["SET", "cli:a", "1"]), "OK");
    assert_eq!(redis_cli(port, &["GET", "cli:a"]), "1");
    assert_eq!(redis_cli(port, &["INCR", "cli:a"]), "2");
    assert_eq!(redis_cli(port, &["MSET", "cli:b", "x", "cli:c", "y"]), "OK");
    assert_eq!(
        redis_cli(port, &["MGET", "cli:b", "cli:c", "cli:z"]),
        "x\ny"
    );
    assert_eq!(redis_cli(port, &["DEL", "cli:b", "cli:c"]), "2");
    assert_eq!(redis_cli(port, &["SET", "cli:t", "1", "EX", "100"]), "OK");
    let ttl: i64 = redis_cli(port, &["TTL", "cli:t"]).parse().unwrap();
    assert!((1..=100).contains(&ttl), "TTL {ttl}");
    assert_eq!(redis_cli(port, &["PERSIST", "cli:t"]), "1");
    assert_eq!(redis_cli(port, &["TTL", "cli:t"]), "-1");
    assert_eq!(redis_cli(port, &["PING"]), "PONG");
    assert!(redis_cli(port, &["INFO", "synod"]).contains("leader_id:"));
    let select = Command::new("redis-cli")
        .args(["-p", &port.to_string(), "SELECT", "3"])
        .output()
        .expect("redis-cli runs");
    assert!(String::from_utf8_lossy(&select.stdout).contains("DB index is out of range"));
}

#[test]
fn redis_benchmark_finishes_without_errors() {
    if !installed("redis-benchmark") {
        return;
    }
    let cluster = cluster();
    let port = cluster.redis_ports[cluster.follower() - 1];
    let out = Command::new("redis-benchmark")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(["-t", "set,get,incr,mset", "-n", "2000", "-q"])
        .output()
        .expect("redis-benchmark runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{text}");
    assert!(out.status.success(), "{text}");
    assert!(!text.to_lowercase().contains("error"), "{text}");
    for test in ["SET:", "GET:", "INCR:", "MSET (10 keys):"] {
        assert!(text.contains(test), "no {test} line: {text}");
    }
    // Every INCR applied exactly once, though each went through a follower.
    assert_eq!(
        cluster.client(1).cmd("GET counter:__rand_int__"),
        bulk("2000")
    );
}
