//! What an operator reads from real `synod` processes: log files without
//! terminal escapes, each line naming its node (as text or JSON), and
//! `synod status --data-dir` finding a dev cluster on any base port.

mod common;

use std::process::Command;
use std::time::Duration;

use common::ProcessCluster;

/// Waits for a leader, then stops every node cleanly; returns the leader.
fn run_until_led(cluster: &mut ProcessCluster) -> u32 {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime
        .block_on(cluster.leader(Duration::from_secs(60)))
        .expect("a leader")
}

fn log_lines(cluster: &ProcessCluster, id: u32) -> Vec<String> {
    let text = std::fs::read_to_string(cluster.dir().join(format!("node{id}.log"))).unwrap();
    text.lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

#[test]
fn text_logs_name_their_node_and_status_finds_the_cluster_from_its_directory() {
    let mut cluster = ProcessCluster::start("opslog");
    let leader = run_until_led(&mut cluster);

    // The cluster's base port is not the default one: status finds the
    // addresses in the node configurations of the directory.
    let output = Command::new(env!("CARGO_BIN_EXE_synod"))
        .args(["status", "--data-dir"])
        .arg(cluster.dir())
        .output()
        .expect("synod status runs");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{text}");
    let rows: Vec<&str> = text.lines().skip(1).collect();
    assert_eq!(rows.len(), 3, "{text}");
    for row in &rows {
        assert!(!row.contains("unreachable"), "{text}");
    }
    assert_eq!(
        rows.iter().filter(|r| r.contains(" leader ")).count(),
        1,
        "{text}"
    );
    assert!(
        rows.iter()
            .any(|r| r.ends_with("healthy") && !r.contains("unhealthy")),
        "{text}"
    );

    for id in 1..=3 {
        assert!(cluster.stop(id), "node {id} stops cleanly");
        let lines = log_lines(&cluster, id);
        assert!(
            lines.iter().any(|l| l.contains("node started")),
            "{lines:?}"
        );
        for line in &lines {
            assert!(line.starts_with(&format!("node={id} ")), "{line:?}");
            assert!(!line.contains('\u{1b}'), "a terminal escape: {line:?}");
        }
    }
    assert!(leader >= 1);
}

#[test]
fn json_logs_are_one_object_per_line_with_the_node() {
    let mut cluster = ProcessCluster::start_with_flags("opsjson", &["--log-format", "json"]);
    run_until_led(&mut cluster);
    for id in 1..=3 {
        assert!(cluster.stop(id), "node {id} stops cleanly");
        let lines = log_lines(&cluster, id);
        assert!(
            lines.iter().any(|l| l.contains("node started")),
            "{lines:?}"
        );
        for line in &lines {
            assert!(
                line.starts_with(&format!("{{\"node\":{id},\"timestamp\":")),
                "{line:?}"
            );
            assert!(line.ends_with('}'), "{line:?}");
            assert!(line.contains("\"level\":"), "{line:?}");
        }
    }
}
