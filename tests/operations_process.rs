//! What an operator reads from real `synod` processes: log files without
//! terminal escapes, each line naming its node (as text or JSON), and
//! `synod status --data-dir` finding a dev cluster on any base port.

mod process_cluster;

use std::process::Command;
use std::time::Duration;

use process_cluster::ProcessCluster;

/// Waits until the cluster has a leader.
fn wait_for_leader(cluster: &ProcessCluster) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime
        .block_on(cluster.leader(Duration::from_secs(60)))
        .expect("a leader");
}

/// Stops node `id` (it must exit cleanly) and returns its log's lines,
/// which must include its start.
fn stopped_node_log(cluster: &mut ProcessCluster, id: u32) -> Vec<String> {
    assert!(cluster.stop(id), "node {id} stops cleanly");
    let text = std::fs::read_to_string(cluster.dir().join(format!("node{id}.log"))).unwrap();
    let lines: Vec<String> = text
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    assert!(
        lines.iter().any(|l| l.contains("node started")),
        "{lines:?}"
    );
    lines
}

#[test]
fn text_logs_name_their_node_and_status_finds_the_cluster_from_its_directory() {
    let mut cluster = ProcessCluster::start("opslog");
    wait_for_leader(&cluster);

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
        for line in &stopped_node_log(&mut cluster, id) {
            assert!(line.starts_with(&format!("node={id} ")), "{line:?}");
            assert!(!line.contains('\u{1b}'), "a terminal escape: {line:?}");
        }
    }
}

#[test]
fn json_logs_are_one_object_per_line_with_the_node() {
    let mut cluster = ProcessCluster::start_with_flags("opsjson", &["--log-format", "json"]);
    wait_for_leader(&cluster);
    for id in 1..=3 {
        for line in &stopped_node_log(&mut cluster, id) {
            assert!(
                line.starts_with(&format!("{{\"node\":{id},\"timestamp\":")),
                "{line:?}"
            );
            assert!(line.ends_with('}'), "{line:?}");
            assert!(line.contains("\"level\":"), "{line:?}");
        }
    }
}
