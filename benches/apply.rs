//! Applying writes to the state machine: CPU per command of `StateMachine::apply_slots` when one
//! redb transaction holds 1, 8, 64 or 512 commands, for the writes a Redis `SET` makes (a put
//! with the connection's exactly-once id) and for anonymous puts (no exactly-once record).
//!
//! Run: `cargo bench --bench apply` (set `SYNOD_BENCH_SECS` to change the time per row, 2 s by
//! default). The database is a file in a fresh directory under the system temp dir, removed
//! after. Applies commit without fsync, as a node's do. Measures and prints; asserts nothing
//! about timings.
//!
//! The load is `compare.sh`'s: 128-byte values over 10,000 keys, from 256 clients in turn.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use prost::Message;
use synod_kvstore::{Op, Put, Request, StateMachine};

const VALUE_BYTES: usize = 128;
const KEYS: u64 = 10_000;
const CLIENTS: u64 = 256;
const COMMANDS_PER_TRANSACTION: [usize; 4] = [1, 8, 64, 512];

/// One row: commands applied and the time they took.
struct Row {
    what: String,
    commands: u64,
    transactions: u64,
    elapsed: Duration,
}

/// Makes the commands, in order: key `n % KEYS` from client `n % CLIENTS` (its seq counted).
struct Load {
    next: u64,
    exactly_once: bool,
}

impl Load {
    fn command(&mut self) -> Vec<u8> {
        let n = self.next;
        self.next += 1;
        // A stride coprime with KEYS spreads consecutive writes over the keys.
        let key = format!("key:{:05}", (n * 7_919) % KEYS).into_bytes();
        let op = Op::Put(Put {
            key,
            value: vec![(n % 251) as u8; VALUE_BYTES],
            prev_kv: false,
        });
        let mut request = Request::anonymous(op);
        if self.exactly_once {
            request.client_id = 1 + n % CLIENTS;
            request.seq = 1 + n / CLIENTS;
        }
        request.encode_to_vec()
    }
}

fn row(dir: &std::path::Path, per_transaction: usize, exactly_once: bool, secs: f64) -> Row {
    let path = dir.join(format!("state-{per_transaction}-{exactly_once}.redb"));
    let mut state_machine = StateMachine::open(&path).expect("open the state machine");
    let mut load = Load {
        next: 0,
        exactly_once,
    };
    // Every key written once first, so each row measures overwrites of a full table.
    let mut slot = 1;
    while load.next < KEYS {
        let commands: Vec<Vec<u8>> = (0..512).map(|_| load.command()).collect();
        state_machine
            .apply_slots([(slot, commands.as_slice())])
            .expect("apply");
        slot += 1;
    }
    let (mut commands, mut transactions) = (0, 0);
    let mut elapsed = Duration::ZERO;
    while elapsed.as_secs_f64() < secs || transactions < 20 {
        let batch: Vec<Vec<u8>> = (0..per_transaction).map(|_| load.command()).collect();
        let started = Instant::now();
        state_machine
            .apply_slots([(slot, batch.as_slice())])
            .expect("apply");
        elapsed += started.elapsed();
        slot += 1;
        commands += per_transaction as u64;
        transactions += 1;
    }
    drop(state_machine);
    std::fs::remove_file(&path).ok();
    Row {
        what: format!(
            "{per_transaction} {} per transaction",
            if exactly_once {
                "numbered puts"
            } else {
                "anonymous puts"
            }
        ),
        commands,
        transactions,
        elapsed,
    }
}

fn main() {
    let secs: f64 = std::env::var("SYNOD_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2.0);
    let dir: PathBuf =
        std::env::temp_dir().join(format!("synod-bench-apply-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create the bench directory");
    let mut rows = Vec::new();
    for exactly_once in [true, false] {
        for per_transaction in COMMANDS_PER_TRANSACTION {
            rows.push(row(&dir, per_transaction, exactly_once, secs));
        }
    }
    std::fs::remove_dir_all(&dir).ok();

    println!(
        "state machine apply, {VALUE_BYTES}-byte values over {KEYS} keys, {CLIENTS} clients, {secs} s per row"
    );
    println!(
        "| {:<42} | {:>12} | {:>14} | {:>16} |",
        "what", "commands/s", "µs per command", "µs per transaction"
    );
    println!("|{:-<44}|{:->14}|{:->16}|{:->18}|", "", "", "", "");
    for row in &rows {
        let secs = row.elapsed.as_secs_f64();
        println!(
            "| {:<42} | {:>12.0} | {:>14.1} | {:>18.1} |",
            row.what,
            row.commands as f64 / secs,
            secs * 1e6 / row.commands as f64,
            secs * 1e6 / row.transactions as f64,
        );
    }
}
