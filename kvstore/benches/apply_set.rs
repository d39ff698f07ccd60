//! Applying Redis `SET key <128-byte value>` (no TTL) to a file-backed [`StateMachine`]: µs of
//! `apply_slots` per applied SET, with 1, 8 and 64 slots per `apply_slots` call and 1 or 16
//! SETs per slot. Two figures per row: the CPU time of the applying thread (what a node pays;
//! steady on a busy machine) and the wall time.
//!
//! Run: `cargo bench -p synod-kvstore --bench apply_set` (set `SYNOD_BENCH_SETS` to change the
//! SETs timed per row, 30 000 by default; `SYNOD_BENCH_ROWS=1x1,64x16` to run only those rows,
//! named slots per call `x` SETs per slot, e.g. under `perf record`). Each row opens a fresh database in a directory under
//! the system temp dir (removed after), applies a warm-up that fills the watch history (so every
//! event also trims one), then the timed SETs. Measures and prints; asserts nothing about
//! timings.
//!
//! The commands are what a node applies for a Redis `SET` from `redis-benchmark`: a [`Request`]
//! from one of 256 clients (its id, its next sequence number) carrying an [`Op::Put`] of a key
//! among 100 000 and a 128-byte value, encoded, several to a slot. The state machine is flushed
//! every 1 000 slots as a node does (`CompactionPolicy::flush_every_slots`); flushes are not
//! timed. The workload is fixed, so the state hash printed per row is the same on every run and
//! must stay the same when apply gets faster: it is the check that an optimisation changed no
//! replicated byte.

use std::path::Path;
use std::time::{Duration, Instant};

use prost::Message;
use synod_kvstore::{Op, Put, Request, StateMachine};

const VALUE_BYTES: usize = 128;
const CLIENTS: u64 = 256;
const KEYS: u64 = 100_000;
/// SETs applied before timing: more than the watch history holds.
const WARM_UP_SETS: u64 = 12_000;
const FLUSH_EVERY_SLOTS: u64 = 1_000;
const SLOTS_PER_CALL: [usize; 3] = [1, 8, 64];
const SETS_PER_SLOT: [usize; 2] = [1, 16];

/// The deterministic stream of SET commands: clients in turn, keys from an LCG.
struct Workload {
    next: u64,
    seqs: Vec<u64>,
    rng: u64,
}

impl Workload {
    fn new() -> Workload {
        Workload {
            next: 0,
            seqs: vec![0; CLIENTS as usize],
            rng: 0x2545_f491_4f6c_dd1d,
        }
    }

    /// The next SET, encoded.
    fn command(&mut self) -> Vec<u8> {
        let client = self.next % CLIENTS;
        self.next += 1;
        self.seqs[client as usize] += 1;
        self.rng = self
            .rng
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let key = (self.rng >> 33) % KEYS;
        let value = vec![b'a' + (key % 26) as u8; VALUE_BYTES];
        Request::from_client(
            // Client ids are never 0 (0 skips exactly-once).
            1_000 + client,
            self.seqs[client as usize],
            Op::Put(Put {
                key: format!("key:{key:012}").into_bytes(),
                value,
                prev_kv: false,
            }),
        )
        .encode_to_vec()
    }

    /// `slots` slots of `per_slot` SETs each.
    fn slots(&mut self, slots: usize, per_slot: usize) -> Vec<Vec<Vec<u8>>> {
        (0..slots)
            .map(|_| (0..per_slot).map(|_| self.command()).collect())
            .collect()
    }
}

/// CPU time of the calling thread.
fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to write to.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Time spent in `apply_slots`: CPU, wall.
#[derive(Clone, Copy, Default)]
struct Spent {
    cpu: Duration,
    wall: Duration,
}

/// Apply `sets` SETs in calls of `slots_per_call` slots of `sets_per_slot` SETs; the time spent
/// in `apply_slots`.
fn apply(
    sm: &mut StateMachine,
    workload: &mut Workload,
    sets: u64,
    slots_per_call: usize,
    sets_per_slot: usize,
) -> Spent {
    let per_call = (slots_per_call * sets_per_slot) as u64;
    let mut spent = Spent::default();
    let mut flushed_through = sm.applied_index();
    for _ in 0..sets.div_ceil(per_call) {
        let batch = workload.slots(slots_per_call, sets_per_slot);
        let first = sm.applied_index() + 1;
        let (cpu, wall) = (thread_cpu_time(), Instant::now());
        let applied = sm
            .apply_slots(
                batch
                    .iter()
                    .enumerate()
                    .map(|(i, commands)| (first + i as u64, commands.as_slice())),
            )
            .expect("apply");
        spent.cpu += thread_cpu_time() - cpu;
        spent.wall += wall.elapsed();
        debug_assert!(applied
            .iter()
            .all(|slot| slot.responses.iter().all(|r| r.as_error().is_none())));
        if sm.applied_index() >= flushed_through + FLUSH_EVERY_SLOTS {
            sm.flush().expect("flush");
            flushed_through = sm.applied_index();
        }
    }
    spent
}

struct Row {
    slots_per_call: usize,
    sets_per_slot: usize,
    cpu_us_per_set: f64,
    wall_us_per_set: f64,
    state_hash: u64,
}

fn row(dir: &Path, sets: u64, slots_per_call: usize, sets_per_slot: usize) -> Row {
    let path = dir.join(format!("state-{slots_per_call}-{sets_per_slot}.redb"));
    let mut sm = StateMachine::open(&path).expect("open the state machine");
    let mut workload = Workload::new();
    apply(
        &mut sm,
        &mut workload,
        WARM_UP_SETS,
        slots_per_call,
        sets_per_slot,
    );
    let applied_before = workload.next;
    let spent = apply(&mut sm, &mut workload, sets, slots_per_call, sets_per_slot);
    let timed = workload.next - applied_before;
    let state_hash = sm.state_hash().expect("state hash");
    drop(sm);
    std::fs::remove_file(&path).ok();
    Row {
        slots_per_call,
        sets_per_slot,
        cpu_us_per_set: spent.cpu.as_secs_f64() * 1e6 / timed as f64,
        wall_us_per_set: spent.wall.as_secs_f64() * 1e6 / timed as f64,
        state_hash,
    }
}

fn main() {
    let sets: u64 = std::env::var("SYNOD_BENCH_SETS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30_000);
    let dir = std::env::temp_dir().join(format!("synod-apply-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create the bench directory");
    let only = std::env::var("SYNOD_BENCH_ROWS").ok();
    let mut rows = Vec::new();
    for sets_per_slot in SETS_PER_SLOT {
        for slots_per_call in SLOTS_PER_CALL {
            let name = format!("{slots_per_call}x{sets_per_slot}");
            if only
                .as_ref()
                .is_some_and(|only| !only.split(',').any(|r| r == name))
            {
                continue;
            }
            rows.push(row(&dir, sets, slots_per_call, sets_per_slot));
        }
    }
    std::fs::remove_dir_all(&dir).ok();

    println!(
        "apply Redis SET, {VALUE_BYTES}-byte values, {CLIENTS} clients, {KEYS} keys, \
         {sets} SETs timed per row after {WARM_UP_SETS}, files in {}",
        std::env::temp_dir().display()
    );
    println!(
        "| {:>10} | {:>9} | {:>10} | {:>11} | {:>16} |",
        "slots/call", "SETs/slot", "CPU µs/SET", "wall µs/SET", "state hash"
    );
    println!(
        "|{:->12}|{:->11}|{:->12}|{:->13}|{:->18}|",
        "", "", "", "", ""
    );
    for row in &rows {
        println!(
            "| {:>10} | {:>9} | {:>10.2} | {:>11.2} | {:>16x} |",
            row.slots_per_call,
            row.sets_per_slot,
            row.cpu_us_per_set,
            row.wall_us_per_set,
            row.state_hash
        );
    }
}
