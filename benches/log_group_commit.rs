//! Group commit of the acceptor log: records/s and fsyncs/s of `WalLog::persist` with batches of
//! 1, 16 and 256 `Accepted` records of 128-byte values, beside the raw `write + fdatasync` rate
//! of a plain file on the same disk.
//!
//! Run: `cargo bench --bench log_group_commit` (set `SYNOD_BENCH_SECS` to change the time per
//! row, 2 s by default). Files go to a fresh directory under the system temp dir, removed after.
//! Measures and prints; asserts nothing about timings.
//!
//! Each `persist` of `Accepted` records is one write and one `fdatasync`, so persists/s is
//! fsyncs/s. The log writes into room it reserved ahead (`fallocate`), the raw row appends: the
//! difference between the two rows at one record is what the reserved room saves.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use synod_kvstore::WalLog;
use synod_paxos::{Ballot, NodeId, Record, Slot, Storage, Value};

const VALUE_BYTES: usize = 128;
const BATCHES: [usize; 3] = [1, 16, 256];

/// Latencies of one row, one per fsync.
struct Row {
    what: String,
    records_per_fsync: usize,
    latencies: Vec<Duration>,
    elapsed: Duration,
}

impl Row {
    fn fsyncs_per_sec(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile_us(&self, p: f64) -> f64 {
        let mut sorted = self.latencies.clone();
        sorted.sort();
        let index = ((sorted.len() - 1) as f64 * p).round() as usize;
        sorted[index].as_secs_f64() * 1e6
    }
}

/// Call `op` until `duration` has passed (at least 20 times), timing each call.
fn measure(duration: Duration, mut op: impl FnMut()) -> (Vec<Duration>, Duration) {
    let mut latencies = Vec::new();
    let start = Instant::now();
    while start.elapsed() < duration || latencies.len() < 20 {
        let t = Instant::now();
        op();
        latencies.push(t.elapsed());
    }
    (latencies, start.elapsed())
}

fn raw_fdatasync(path: &Path, duration: Duration) -> Row {
    let mut file: File = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open the raw file");
    let record = [0x5a_u8; VALUE_BYTES];
    let (latencies, elapsed) = measure(duration, || {
        file.write_all(&record).expect("write");
        file.sync_data().expect("fdatasync");
    });
    Row {
        what: format!("raw append {VALUE_BYTES} B + fdatasync"),
        records_per_fsync: 1,
        latencies,
        elapsed,
    }
}

fn wal_log(dir: &Path, batch: usize, duration: Duration) -> Row {
    let mut log = WalLog::open(dir).expect("open the log");
    let ballot = Ballot::new(1, NodeId(1));
    log.persist(&[Record::Promised(ballot)]).expect("promise");
    let mut next_slot = 1;
    let (latencies, elapsed) = measure(duration, || {
        let records: Vec<Record> = (0..batch)
            .map(|i| Record::Accepted {
                slot: Slot(next_slot + i as u64),
                ballot,
                value: Value::Commands(vec![vec![(i % 251) as u8; VALUE_BYTES]]),
            })
            .collect();
        next_slot += batch as u64;
        log.persist(&records).expect("persist");
    });
    Row {
        what: format!("WalLog::persist, {batch} Accepted"),
        records_per_fsync: batch,
        latencies,
        elapsed,
    }
}

fn main() {
    let secs: f64 = std::env::var("SYNOD_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2.0);
    let duration = Duration::from_secs_f64(secs);
    let dir: PathBuf = std::env::temp_dir().join(format!("synod-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create the bench directory");

    let mut rows = vec![raw_fdatasync(&dir.join("raw.log"), duration)];
    for batch in BATCHES {
        // A fresh log per row, so every row starts from the same file size.
        let path = dir.join(format!("log-{batch}"));
        rows.push(wal_log(&path, batch, duration));
        std::fs::remove_dir_all(&path).ok();
    }
    std::fs::remove_dir_all(&dir).ok();

    println!(
        "log group commit, {VALUE_BYTES}-byte values, {secs} s per row, files in {}",
        std::env::temp_dir().display()
    );
    println!(
        "| {:<34} | {:>10} | {:>12} | {:>8} | {:>8} |",
        "what", "fsyncs/s", "records/s", "p50 µs", "p99 µs"
    );
    println!(
        "|{:-<36}|{:->12}|{:->14}|{:->10}|{:->10}|",
        "", "", "", "", ""
    );
    for row in &rows {
        println!(
            "| {:<34} | {:>10.0} | {:>12.0} | {:>8.0} | {:>8.0} |",
            row.what,
            row.fsyncs_per_sec(),
            row.fsyncs_per_sec() * row.records_per_fsync as f64,
            row.percentile_us(0.50),
            row.percentile_us(0.99),
        );
    }
}
