//! Backup and restore with real `synod` processes: a 3-node cluster takes writes while
//! `synod snapshot save` runs; `synod snapshot restore --dev` seeds a new 3-node cluster (new
//! directory, new CA, new ports) from the file; every write acknowledged before the save began
//! is there with its value, and the restored cluster takes new writes. Also: only a client
//! certificate may save, restore refuses a non-empty directory and the source cluster's CA, a
//! restored node will not start with the old cluster's CA, and the old cluster's certificates
//! are strangers to the new cluster. No timing is asserted.

mod process_cluster;

use std::path::Path;
use std::process::Output;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use process_cluster::ProcessCluster;
use prost::Message as _;
use synod_client::Client;
use synod_net::tls::TlsIdentity;
use synod_net::{ClientConnection, ErrorCode};
use synod_wire::proto::api::{api_request::Call, ApiRequest, SnapshotSaveCall};

/// A write the cluster acknowledged, and when.
struct Acked {
    key: Vec<u8>,
    value: Vec<u8>,
    at: Instant,
}

/// Clients writing unique keys until stopped; every acknowledged write is recorded.
struct WriteLoad {
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<Acked>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl WriteLoad {
    async fn start(cluster: &ProcessCluster, clients: u32) -> WriteLoad {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for c in 0..clients {
            let client = Client::connect(cluster.client_config()).await.unwrap();
            let (stop, acked) = (stop.clone(), acked.clone());
            tasks.push(tokio::spawn(async move {
                let mut n = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    n += 1;
                    let key = format!("load/{c}/{n}").into_bytes();
                    // About 3 KiB, so the snapshot streams in several chunks.
                    let value = format!("value {c} {n} {}", "x".repeat(3000)).into_bytes();
                    if client.put(&key, &value).await.is_ok() {
                        acked.lock().unwrap().push(Acked {
                            key,
                            value,
                            at: Instant::now(),
                        });
                    }
                }
            }));
        }
        WriteLoad { stop, acked, tasks }
    }

    fn acked_count(&self) -> usize {
        self.acked.lock().unwrap().len()
    }

    async fn finish(self) -> Vec<Acked> {
        self.stop.store(true, Ordering::SeqCst);
        for task in self.tasks {
            task.await.unwrap();
        }
        std::mem::take(&mut *self.acked.lock().unwrap())
    }
}

/// Runs `synod ARGS` to completion.
async fn synod(args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_synod"))
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .output()
        .await
        .expect("synod runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `synod` failed, saying `reason` on stderr.
fn assert_refused(output: &Output, reason: &str) {
    assert!(!output.status.success(), "it succeeded");
    let stderr = text(&output.stderr);
    assert!(stderr.contains(reason), "{stderr}");
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The first frame a node answers a `SnapshotSaveCall` with, as the identity `tls` asks.
async fn save_answer(addr: std::net::SocketAddr, tls: &TlsIdentity) -> Option<ErrorCode> {
    let conn = ClientConnection::connect(addr, tls).await.unwrap();
    let request = ApiRequest {
        call: Some(Call::SnapshotSave(SnapshotSaveCall { serializable: true })),
    };
    let mut frames = conn.request_stream(request.encode_to_vec()).await.unwrap();
    let first = frames.next().await.unwrap().expect("a first frame");
    first.error_code()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_saved_under_load_restores_every_acknowledged_write_into_a_new_cluster() {
    let source = ProcessCluster::start("backup-source");
    source
        .leader(Duration::from_secs(30))
        .await
        .expect("the source cluster elects a leader");
    let load = WriteLoad::start(&source, 4).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while load.acked_count() < 400 {
        assert!(Instant::now() < deadline, "the load made no progress");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Save while the writers go on.
    let file = source.dir().join("backup.snap");
    let save_began = Instant::now();
    let base_port = source.base_port.to_string();
    let saved = synod(&[
        "snapshot",
        "save",
        path(&file),
        "--data-dir",
        path(source.dir()),
        "--base-port",
        &base_port,
    ])
    .await;
    assert!(
        saved.status.success(),
        "save failed: {}",
        text(&saved.stderr)
    );
    println!("{}", text(&saved.stdout).trim());
    let acked_after_save = load.acked_count();
    while load.acked_count() < acked_after_save + 50 {
        assert!(Instant::now() < deadline, "writes stopped after the save");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let acked = load.finish().await;
    let before: Vec<&Acked> = acked.iter().filter(|w| w.at < save_began).collect();
    assert!(before.len() >= 400);
    println!(
        "{} writes acknowledged before the save began, {} in all",
        before.len(),
        acked.len()
    );

    // Only a client certificate may save: a node's is refused.
    let certs = source.dir().join("certs");
    let node_tls = TlsIdentity::from_pem_files(
        &certs.join("ca.pem"),
        &certs.join("node-1.pem"),
        &certs.join("node-1.key"),
    )
    .unwrap();
    assert_eq!(
        save_answer(source.client_addr(1), &node_tls).await,
        Some(ErrorCode::BadRequest),
        "a node certificate may not save"
    );
    assert_eq!(
        save_answer(source.client_addr(1), &source.tls()).await,
        None
    );

    // Restore refuses a non-empty directory and the source cluster's own CA.
    let refused = synod(&[
        "snapshot",
        "restore",
        path(&file),
        "--dev",
        path(source.dir()),
    ])
    .await;
    assert_refused(&refused, "not empty");
    let stray = ProcessCluster::fresh_dir("backup-stray");
    let _ = std::fs::remove_dir_all(&stray);
    let refused = synod(&[
        "snapshot",
        "restore",
        path(&file),
        "--data-dir",
        path(&stray),
        "--ca",
        path(&certs.join("ca.pem")),
    ])
    .await;
    assert_refused(&refused, "needs a new CA");
    assert!(!stray.exists(), "a refused restore creates nothing");

    // Restore into a new cluster: fresh directory, new CA, other ports.
    let restored_dir = ProcessCluster::fresh_dir("backup-restored");
    let _ = std::fs::remove_dir_all(&restored_dir);
    let restored = synod(&[
        "snapshot",
        "restore",
        path(&file),
        "--dev",
        path(&restored_dir),
    ])
    .await;
    assert!(
        restored.status.success(),
        "restore failed: {}",
        text(&restored.stderr)
    );
    println!("{}", text(&restored.stdout).trim());

    // --config: a node's own configuration names its data directory and CA. The --dev nodes are
    // seeded now (refused, untouched); a node of a new CA in a fresh directory is seeded.
    let refused = synod(&[
        "snapshot",
        "restore",
        path(&file),
        "--config",
        path(&restored_dir.join("node2.toml")),
    ])
    .await;
    assert_refused(&refused, "not empty");
    let manual = ProcessCluster::fresh_dir("backup-manual");
    let _ = std::fs::remove_dir_all(&manual);
    let made = synod(&["cert", "--dir", path(&manual.join("certs")), "ca"]).await;
    assert!(made.status.success(), "{}", text(&made.stderr));
    let config = manual.join("node7.toml");
    std::fs::write(
        &config,
        format!(
            "id = 7\npeer_addr = \"127.0.0.1:1\"\nclient_addr = \"127.0.0.1:2\"\n\
             data_dir = {:?}\n[tls]\nca = {:?}\ncert = \"unused.pem\"\nkey = \"unused.key\"\n",
            path(&manual.join("node7")),
            path(&manual.join("certs").join("ca.pem")),
        ),
    )
    .unwrap();
    let seeded = synod(&[
        "snapshot",
        "restore",
        path(&file),
        "--config",
        path(&config),
    ])
    .await;
    assert!(seeded.status.success(), "{}", text(&seeded.stderr));
    assert!(manual.join("node7").join("state.redb").is_file());
    assert!(manual.join("node7").join("restored-from.toml").is_file());
    let _ = std::fs::remove_dir_all(&manual);

    // A restored node started with the old cluster's certificates refuses to run.
    let mut wrong = tokio::process::Command::new(env!("CARGO_BIN_EXE_synod"))
        .args([
            "start",
            "--config",
            path(&restored_dir.join("node1.toml")),
            "--ca",
            path(&certs.join("ca.pem")),
            "--cert",
            path(&certs.join("node-1.pem")),
            "--key",
            path(&certs.join("node-1.key")),
        ])
        .env("RUST_BACKTRACE", "0")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let status = tokio::time::timeout(Duration::from_secs(30), wrong.wait())
        .await
        .expect("a restored node with the old cluster's CA stops at once")
        .unwrap();
    assert!(!status.success());
    let mut stderr = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut wrong.stderr.take().unwrap(), &mut stderr)
        .await
        .unwrap();
    assert!(stderr.contains("restored from a backup"), "{stderr}");

    let target = ProcessCluster::start_in(restored_dir.clone());
    assert_ne!(target.base_port, source.base_port);
    target
        .leader(Duration::from_secs(30))
        .await
        .expect("the restored cluster elects a leader");

    let client = Client::connect(target.client_config()).await.unwrap();
    let mut missing = Vec::new();
    for write in &before {
        match client.get(&write.key).await.unwrap() {
            Some(kv) if kv.value == write.value => {}
            other => missing.push((text(&write.key), other.map(|kv| text(&kv.value)))),
        }
    }
    assert!(
        missing.is_empty(),
        "{} of {} writes acknowledged before the save are missing or wrong, e.g. {:?}",
        missing.len(),
        before.len(),
        &missing[..missing.len().min(5)]
    );

    // The restored cluster takes new writes, on every node's view.
    client.put(b"after-restore", b"yes").await.unwrap();
    assert_eq!(
        client.get(b"after-restore").await.unwrap().unwrap().value,
        b"yes"
    );

    // The old cluster's certificates are strangers to the new cluster.
    let conn = ClientConnection::connect(target.client_addr(1), &source.tls()).await;
    let stranger = match conn {
        Err(_) => true,
        Ok(conn) => {
            let request = ApiRequest {
                call: Some(Call::SnapshotSave(SnapshotSaveCall { serializable: true })),
            };
            tokio::time::timeout(
                Duration::from_secs(5),
                conn.request(request.encode_to_vec()),
            )
            .await
            .map_or(true, |answer| answer.is_err())
        }
    };
    assert!(
        stranger,
        "the new cluster accepted the old cluster's client"
    );
    drop(target);
    let _ = std::fs::remove_dir_all(&restored_dir);
    let _ = std::fs::remove_dir_all(source.dir());
}
