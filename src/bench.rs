//! `synod bench`: a closed-loop load generator against a running cluster.
//!
//! Each of N concurrent clients issues one request at a time (puts of
//! 128-byte values over 10,000 keys, or linearizable gets of those keys)
//! for a fixed time; the report gives throughput and latency percentiles.

use std::time::{Duration, Instant};

use synod_client::{Client, ClientConfig};

/// What to measure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Workload {
    /// Puts of 128-byte values.
    Put,
    /// Linearizable gets.
    Get,
}

/// One measured run.
#[derive(Debug)]
pub struct BenchResult {
    /// Concurrent clients.
    pub clients: usize,
    /// Completed requests per second.
    pub per_second: f64,
    /// Median latency.
    pub p50: Duration,
    /// 99th percentile latency.
    pub p99: Duration,
    /// 99.9th percentile latency.
    pub p999: Duration,
    /// Requests that failed.
    pub errors: u64,
}

/// Keys the workload spreads over.
const KEYS: u64 = 10_000;
/// Bytes per value.
const VALUE_BYTES: usize = 128;
/// Clients share this many client connections at most.
const MAX_CONNECTIONS: usize = 16;

/// Runs `workload` with `clients` concurrent clients for `duration`.
pub async fn run(
    config: &ClientConfig,
    workload: Workload,
    clients: usize,
    duration: Duration,
) -> anyhow::Result<BenchResult> {
    let mut pool = Vec::new();
    for _ in 0..clients.clamp(1, MAX_CONNECTIONS) {
        pool.push(Client::connect(config.clone()).await?);
    }
    if workload == Workload::Get {
        // Make sure the keys exist (not timed).
        let value = vec![b'v'; VALUE_BYTES];
        pool[0].put(&key(0), &value).await?;
    }
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = Vec::new();
    for i in 0..clients {
        let client = pool[i % pool.len()].clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0u64;
            let value = vec![b'x'; VALUE_BYTES];
            let mut n = i as u64;
            while Instant::now() < deadline {
                n = n
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let k = key(n % KEYS);
                let sent = Instant::now();
                let outcome = match workload {
                    Workload::Put => client.put(&k, &value).await.map(|_| ()),
                    Workload::Get => client.get(&k).await.map(|_| ()),
                };
                match outcome {
                    Ok(()) => latencies.push(sent.elapsed()),
                    Err(e) => {
                        if errors == 0 {
                            tracing::warn!(error = %e, "request failed");
                        }
                        errors += 1;
                    }
                }
            }
            (latencies, errors)
        }));
    }
    let mut latencies = Vec::new();
    let mut errors = 0;
    for task in tasks {
        let (l, e) = task.await?;
        latencies.extend(l);
        errors += e;
    }
    let elapsed = started.elapsed();
    latencies.sort_unstable();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    Ok(BenchResult {
        clients,
        per_second: latencies.len() as f64 / elapsed.as_secs_f64(),
        p50: pct(0.50),
        p99: pct(0.99),
        p999: pct(0.999),
        errors,
    })
}

fn key(n: u64) -> Vec<u8> {
    format!("bench-{n:05}").into_bytes()
}

/// A table row for `result`.
pub fn format_row(workload: Workload, result: &BenchResult) -> String {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    format!(
        "| {:?} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {} |",
        workload,
        result.clients,
        result.per_second,
        ms(result.p50),
        ms(result.p99),
        ms(result.p999),
        result.errors
    )
}
