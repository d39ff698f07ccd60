//! Three workers campaign in one Synod election; one leads, does its work,
//! proclaims that it is done and resigns; the next takes over, until each
//! has led once. An observer prints every change of leader.
//!
//! Start a local cluster with `synod dev`, then:
//!
//! ```text
//! cargo run -p synod-client --example election -- [--data-dir synod-data] [--base-port 7400]
//! ```

use std::time::Duration;

use synod_client::{Client, ClientConfig, ClientError, Election, Session};

const ELECTION: &str = "examples/election";
const WORKERS: usize = 3;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (data_dir, base_port) = parse_args()?;
    let client = Client::connect(ClientConfig::from_dev_cluster(&data_dir, base_port)?).await?;

    let mut observer = client.observe_election(ELECTION.as_bytes());
    let first = observer.next().await?;
    println!("observer: leader now {}", describe(&first));
    // Until the last worker resigns and nobody is left.
    let observing = tokio::spawn(async move {
        let mut seen_leader = first.is_some();
        loop {
            match observer.next().await {
                Ok(leader) => {
                    println!("observer: {}", describe(&leader));
                    if leader.is_none() && seen_leader {
                        return;
                    }
                    seen_leader |= leader.is_some();
                }
                Err(e) => {
                    eprintln!("observer: {e}");
                    return;
                }
            }
        }
    });

    let mut workers = Vec::new();
    for worker in 1..=WORKERS {
        let client = client.clone();
        workers.push(tokio::spawn(async move { work(worker, &client).await }));
        // Campaign in order, so they lead in order.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for worker in workers {
        worker.await??;
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), observing).await;
    Ok(())
}

/// One worker: campaigns, leads for a moment, proclaims, resigns.
async fn work(worker: usize, client: &Client) -> Result<(), ClientError> {
    let name = format!("worker-{worker}");
    let session = Session::open(client, Duration::from_secs(5)).await?;
    let election = Election::new(&session, ELECTION);
    println!("{name}: campaigning");
    let term = election.campaign(name.as_bytes()).await?;
    println!("{name}: elected at revision {}", term.revision);
    tokio::time::sleep(Duration::from_millis(500)).await;
    election
        .proclaim(format!("{name} (done)").as_bytes())
        .await?;
    election.resign().await?;
    println!("{name}: resigned");
    session.close().await
}

fn describe(leader: &Option<synod_client::LeaderInfo>) -> String {
    match leader {
        Some(l) => format!(
            "{} leads (session {}, since revision {})",
            String::from_utf8_lossy(&l.value),
            l.session,
            l.revision
        ),
        None => "no leader".into(),
    }
}

fn parse_args() -> Result<(String, u16), String> {
    let (mut data_dir, mut base_port) = ("synod-data".to_string(), 7400);
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--data-dir" => data_dir = value,
            "--base-port" => {
                base_port = value
                    .parse()
                    .map_err(|e| format!("--base-port {value}: {e}"))?
            }
            _ => {
                return Err(format!(
                    "unknown argument {flag}; use --data-dir, --base-port"
                ))
            }
        }
    }
    Ok((data_dir, base_port))
}
