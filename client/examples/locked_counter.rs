//! Several tasks increment one counter under a Synod lock, each write
//! fenced by the lock's token, so no increment is lost even though each
//! task reads the counter, adds one, and writes it back.
//!
//! Start a local cluster with `synod dev`, then:
//!
//! ```text
//! cargo run -p synod-client --example locked_counter -- [--data-dir synod-data] [--base-port 7400] [--tasks 4] [--increments 25]
//! ```

use std::time::Duration;

use synod_client::{Client, ClientConfig, ClientError, Mutex, Session};

const COUNTER: &[u8] = b"examples/locked-counter";
const LOCK: &str = "examples/locked-counter-lock";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse()?;
    let config = ClientConfig::from_dev_cluster(&args.data_dir, args.base_port)?;
    let client = Client::connect(config).await?;
    let start = read_counter(&client).await?;
    println!("counter starts at {start}");

    let mut tasks = Vec::new();
    for task in 0..args.tasks {
        let client = client.clone();
        let increments = args.increments;
        tasks.push(tokio::spawn(async move {
            increment(task, &client, increments).await
        }));
    }
    let mut tokens = Vec::new();
    for task in tasks {
        tokens.extend(task.await??);
    }
    let end = read_counter(&client).await?;
    let expected = start + (args.tasks * args.increments) as i64;
    println!("counter ends at {end} (expected {expected})");
    tokens.sort_unstable();
    tokens.dedup();
    println!(
        "{} grants, every fencing token distinct: {}",
        args.tasks * args.increments,
        tokens.len() == (args.tasks * args.increments) as usize
    );
    if end != expected {
        return Err(format!(
            "lost increments: {} of {}",
            expected - end,
            expected - start
        )
        .into());
    }
    Ok(())
}

/// One task: its own session, `increments` times lock, read, write + 1
/// fenced, unlock. Returns the fencing tokens it was granted.
async fn increment(task: u32, client: &Client, increments: u32) -> Result<Vec<u64>, ClientError> {
    let session = Session::open(client, Duration::from_secs(5)).await?;
    let mutex = Mutex::new(&session, LOCK);
    let mut tokens = Vec::new();
    for _ in 0..increments {
        let token = mutex.lock().await?;
        let value = read_counter(client).await?;
        // Refused if this task lost the lock meanwhile (its session expired
        // while it was paused, say): the counter is never overwritten with
        // a stale value.
        client
            .put_fenced(COUNTER, (value + 1).to_string().as_bytes(), &token)
            .await?;
        mutex.unlock().await?;
        tokens.push(token.token);
    }
    println!("task {task} done (session {})", session.id());
    session.close().await?;
    Ok(tokens)
}

async fn read_counter(client: &Client) -> Result<i64, ClientError> {
    Ok(match client.get(COUNTER).await? {
        Some(kv) => String::from_utf8_lossy(&kv.value).parse().unwrap_or(0),
        None => 0,
    })
}

struct Args {
    data_dir: String,
    base_port: u16,
    tasks: u32,
    increments: u32,
}

impl Args {
    fn parse() -> Result<Args, String> {
        let mut args = Args {
            data_dir: "synod-data".into(),
            base_port: 7400,
            tasks: 4,
            increments: 25,
        };
        let mut it = std::env::args().skip(1);
        while let Some(flag) = it.next() {
            let value = it.next().ok_or(format!("{flag} needs a value"))?;
            let bad = |e: std::num::ParseIntError| format!("{flag} {value}: {e}");
            match flag.as_str() {
                "--data-dir" => args.data_dir = value.clone(),
                "--base-port" => args.base_port = value.parse().map_err(bad)?,
                "--tasks" => args.tasks = value.parse().map_err(bad)?,
                "--increments" => args.increments = value.parse().map_err(bad)?,
                _ => {
                    return Err(format!(
                    "unknown argument {flag}; use --data-dir, --base-port, --tasks, --increments"
                ))
                }
            }
        }
        Ok(args)
    }
}
