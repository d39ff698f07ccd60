//! `synod dev --nodes N` as a user runs it, and `synod member` against it.

mod process_cluster;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use process_cluster::synod_member as member;
use synod_client::{Client, ClientConfig};

/// The voter ids (the leader included) `synod member list` printed.
fn voters(list: &str) -> Vec<u32> {
    let mut ids: Vec<u32> = list
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let id = fields.next()?.parse().ok()?;
            matches!(fields.next()?, "voter" | "leader").then_some(id)
        })
        .collect();
    ids.sort();
    ids
}

/// Stops `synod dev` (and with it its nodes) when dropped.
struct Dev(Child);

impl Drop for Dev {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child has no memory effects.
        unsafe {
            libc::kill(self.0.id() as libc::pid_t, libc::SIGTERM);
        }
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_five_node_dev_cluster_shrinks_to_four() {
    let dir = std::env::temp_dir().join(format!("synod-dev5-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    // Ports away from the ProcessCluster ranges (20,000 and up).
    let base_port = 10_000 + (std::process::id() % 100) as u16 * 80;
    std::fs::create_dir_all(&dir).unwrap();
    let log = std::fs::File::create(dir.join("dev.log")).unwrap();
    let _dev = Dev(Command::new(env!("CARGO_BIN_EXE_synod"))
        .args(["dev", "--nodes", "5", "--base-port", &base_port.to_string()])
        .arg("--data-dir")
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("synod dev starts"));
    let mut config = None;
    for _ in 0..100 {
        if let Ok(c) = ClientConfig::from_dev_cluster(&dir, base_port) {
            config = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let client = Client::connect(config.expect("the dev cluster's certificates"))
        .await
        .unwrap();
    client.put(b"before", b"5 nodes").await.expect("a write");

    let (ok, list) = tokio::task::block_in_place(|| member(&dir, &["list"]));
    assert!(ok, "{list}");
    assert_eq!(voters(&list), vec![1, 2, 3, 4, 5], "{list}");

    let (ok, output) = tokio::task::block_in_place(|| member(&dir, &["remove", "5"]));
    assert!(ok, "{output}");
    let (ok, list) = tokio::task::block_in_place(|| member(&dir, &["list"]));
    assert!(ok, "{list}");
    assert_eq!(voters(&list), vec![1, 2, 3, 4], "{list}");

    client.put(b"after", b"4 nodes").await.expect("a write");
    assert_eq!(
        client.get(b"before").await.unwrap().unwrap().value,
        b"5 nodes"
    );
    assert_eq!(
        client.get(b"after").await.unwrap().unwrap().value,
        b"4 nodes"
    );
}

#[test]
fn a_dev_cluster_whose_node_cannot_start_exits_naming_it() {
    let dir = std::env::temp_dir().join(format!("synod-dev-busy-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    // Ports away from the other test's and the ProcessCluster ranges.
    let base_port = 18_000 + (std::process::id() % 100) as u16 * 30;
    // Node 2's Redis port is taken: node 2 cannot start.
    let _taken = std::net::TcpListener::bind(("127.0.0.1", base_port + 12)).unwrap();
    std::fs::create_dir_all(&dir).unwrap();
    let log_path = dir.join("dev.log");
    let mut dev = Dev(Command::new(env!("CARGO_BIN_EXE_synod"))
        .args(["dev", "--base-port", &base_port.to_string()])
        .arg("--data-dir")
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .expect("synod dev starts"));
    // A bound on waiting, not a timing assertion: before the fix it never exited.
    let mut status = None;
    for _ in 0..600 {
        status = dev.0.try_wait().unwrap();
        if status.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let stderr = std::fs::read_to_string(&log_path).unwrap();
    let status =
        status.unwrap_or_else(|| panic!("synod dev kept running with node 2 down: {stderr}"));
    assert!(!status.success(), "synod dev must fail: {stderr}");
    assert!(stderr.contains("node 2 exited"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}
