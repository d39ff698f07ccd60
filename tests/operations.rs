//! The operations endpoint as an operator's tools see it: a Prometheus
//! scrape during a write load parses and shows the node's work; `/health`
//! and `/ready` answer with a status code and a JSON reason.

mod quic_cluster;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use quic_cluster::{http_get, ok, Cluster};

/// A sample's name with its labels (`synod_writes_total{kind="applied"}`).
type Series = String;

/// Parses Prometheus's text format: every sample by series, and every
/// family named by a `# TYPE` line. Panics on a line that is neither.
fn parse(text: &str) -> (BTreeMap<Series, f64>, Vec<String>) {
    let mut samples = BTreeMap::new();
    let mut families = Vec::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            families.push(rest.split(' ').next().unwrap().to_string());
            continue;
        }
        if line.starts_with("# HELP ") || line == "# EOF" {
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("not a sample: {line:?}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("not a number in {line:?}"));
        samples.insert(series.to_string(), value);
    }
    (samples, families)
}

#[test]
fn a_scrape_during_a_write_load_shows_the_nodes_work() {
    let cluster = Cluster::start("metrics", 3, None);
    let leader = cluster.leader();
    let follower = cluster.follower();
    let load = {
        let ports = cluster.redis_ports.clone();
        std::thread::spawn(move || {
            let mut leader_client = quic_cluster::Client::connect(ports[leader - 1]);
            let mut follower_client = quic_cluster::Client::connect(ports[follower - 1]);
            for i in 0..200 {
                assert_eq!(leader_client.cmd(&format!("SET m:{i} v{i}")), ok());
                assert_eq!(follower_client.cmd(&format!("SET f:{i} v{i}")), ok());
            }
        })
    };
    // Scrape while the load runs, and again after it.
    let (code, during) = http_get(cluster.metrics_port(leader), "/metrics");
    assert_eq!(code, 200);
    parse(&during);
    load.join().expect("the load");
    let mut client = cluster.client(follower);
    assert!(client.cmd("GET m:1").text() == "v1");
    // A lock, held by the connection's session.
    assert!(client.cmd("SYNOD.LOCK m:lock 5000").int().is_some());
    assert!(client.cmd("NOSUCHCOMMAND").error().starts_with("ERR"));

    let (code, text) = http_get(cluster.metrics_port(leader), "/metrics");
    assert_eq!(code, 200);
    let (samples, families) = parse(&text);
    for family in [
        "synod_role",
        "synod_ballot",
        "synod_leader_id",
        "synod_commit_index",
        "synod_applied_index",
        "synod_revision",
        "synod_leader_changes_total",
        "synod_accept_fallbacks_total",
        "synod_writes_total",
        "synod_write_latency_seconds",
        "synod_fsync_seconds",
        "synod_round_inputs",
        "synod_snapshots_sent_total",
        "synod_snapshots_installed_total",
        "synod_client_queue_depth",
        "synod_peer_queue_depth",
        "synod_watchers",
        "synod_keys",
        "synod_sessions",
        "synod_locks",
        "synod_api_requests_total",
        "synod_redis_commands_total",
        "synod_redis_connections",
        "synod_wal_segments",
        "synod_wal_bytes",
        "synod_state_machine_bytes",
        "synod_peer_messages_sent_total",
        "synod_peer_messages_dropped_total",
        "synod_peer_rtt_seconds",
        "synod_quic_client_connections_total",
        "synod_quic_bad_streams_total",
    ] {
        assert!(families.iter().any(|f| f == family), "{family} missing");
    }
    // Every metric the Grafana dashboard plots exists.
    let dashboard = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("ops/grafana-dashboard.json"),
    )
    .expect("the dashboard");
    for (at, _) in dashboard.match_indices("synod_") {
        let name: String = dashboard[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
            .unwrap_or(&name);
        assert!(
            families.iter().any(|f| f == family),
            "the dashboard plots {name}, which is not exported"
        );
    }
    let sample = |series: &str| -> f64 {
        *samples
            .get(series)
            .unwrap_or_else(|| panic!("no sample {series} in\n{text}"))
    };
    assert_eq!(sample(r#"synod_role{kind="leader"}"#), 1.0);
    assert_eq!(sample("synod_leader_id"), leader as f64);
    // 200 writes through the leader's endpoint, 200 forwarded to it.
    assert!(sample(r#"synod_writes_total{kind="applied"}"#) >= 400.0);
    assert!(sample(r#"synod_redis_commands_total{command="set",result="ok"}"#) >= 200.0);
    assert!(sample("synod_write_latency_seconds_count") >= 400.0);
    assert!(sample("synod_fsync_seconds_count") > 0.0);
    assert!(sample("synod_commit_index") > 0.0);
    assert!(sample("synod_applied_index") > 0.0);
    assert!(sample("synod_revision") >= 400.0);
    assert!(sample("synod_wal_bytes") > 0.0);
    assert!(sample("synod_keys") >= 400.0);
    assert!(sample("synod_sessions") >= 1.0);
    assert!(sample("synod_locks") >= 1.0);
    assert!(sample("synod_state_machine_bytes") > 0.0);
    // The follower's endpoint forwarded its writes to the leader's API: one
    // connection's writes one at a time, so each in a batch of its own.
    assert!(sample(r#"synod_api_requests_total{command="kv_batch",result="ok"}"#) >= 200.0);
    let peer = (1..=3).find(|n| *n != leader).unwrap();
    assert!(
        sample(&format!(
            r#"synod_peer_messages_sent_total{{peer="{peer}"}}"#
        )) > 0.0
    );
    assert!(sample(&format!(r#"synod_peer_rtt_seconds{{peer="{peer}"}}"#)) > 0.0);
    // The follower's endpoint dialed the leader's client port.
    assert!(sample("synod_quic_client_connections_total") >= 1.0);

    let (_, text) = http_get(cluster.metrics_port(follower), "/metrics");
    let (samples, _) = parse(&text);
    assert_eq!(samples[r#"synod_role{kind="follower"}"#], 1.0);
    assert_eq!(samples[r#"synod_role{kind="leader"}"#], 0.0);
    assert!(samples[r#"synod_redis_commands_total{command="set",result="ok"}"#] >= 200.0);
    assert!(samples[r#"synod_redis_commands_total{command="unknown",result="ERR"}"#] >= 1.0);
}

#[test]
fn health_and_readiness_say_why() {
    let cluster = Cluster::start("health", 3, None);
    let leader = cluster.leader();
    for node in 1..=3 {
        let port = cluster.metrics_port(node);
        // A follower is healthy once it has heard the leader.
        let mut health = http_get(port, "/health");
        for _ in 0..600 {
            if health.0 == 200 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
            health = http_get(port, "/health");
        }
        let (code, body) = health;
        assert_eq!(code, 200, "node {node}: {body}");
        assert!(body.starts_with(r#"{"health":true,"#), "{body}");
        assert!(body.contains(&format!(r#""leader":{leader}"#)), "{body}");
        assert_eq!(
            http_get(port, "/ready"),
            (200, "{\"ready\":true}\n".to_string())
        );
        let (code, body) = http_get(port, "/nothing");
        assert_eq!(code, 404, "{body}");
    }
    // A node left alone loses its leader: unhealthy, with the reason, but
    // still ready (it answers).
    let survivor = (1..=3).find(|n| *n != leader).unwrap();
    for node in 1..=3 {
        if node != survivor {
            cluster.stop(node);
        }
    }
    let port = cluster.metrics_port(survivor);
    let mut last = (0, String::new());
    for _ in 0..600 {
        last = http_get(port, "/health");
        if last.0 == 503 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(last.0, 503, "{}", last.1);
    assert!(
        last.1.contains(r#""health":false,"reason":"no leader""#),
        "{}",
        last.1
    );
    assert_eq!(http_get(port, "/ready").0, 200);
}

#[test]
fn malformed_requests_get_a_clear_status() {
    let cluster = Cluster::start("httpbad", 1, None);
    let port = cluster.metrics_port(1);
    let send = |request: &[u8]| -> String {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        stream.write_all(request).unwrap();
        stream.shutdown(std::net::Shutdown::Write).unwrap();
        let mut response = String::new();
        let _ = stream.read_to_string(&mut response);
        response.lines().next().unwrap_or_default().to_string()
    };
    assert_eq!(
        send(b"POST /metrics HTTP/1.1\r\n\r\n"),
        "HTTP/1.1 405 Method Not Allowed"
    );
    assert_eq!(send(b"GARBAGE\r\n\r\n"), "HTTP/1.1 400 Bad Request");
    let mut huge = b"GET /metrics HTTP/1.1\r\nX: ".to_vec();
    huge.extend(std::iter::repeat_n(b'a', 16 * 1024));
    assert_eq!(send(&huge), "HTTP/1.1 431 Request Header Fields Too Large");
    // And it still serves.
    assert_eq!(http_get(port, "/metrics").0, 200);
}
