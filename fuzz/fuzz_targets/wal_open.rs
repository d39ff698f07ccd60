//! `WalLog::open` on a directory of segment files built from the input.
//!
//! The first input byte picks the mode. Odd: each segment holds raw bytes (the frame checks
//! see garbage). Even: each segment is well-framed (correct lengths and hashes, see
//! `synod_fuzz::wal_format`) around generated records (any ballot, slot and value), sometimes
//! around raw record bytes, each frame marked as written with or without a sync, and the last
//! may end in a torn frame; so the fuzzer gets past the frame checks to the record decoder and
//! the replay.
//!
//! Checked besides "never panics": a log that opens reports the state its `load` returns;
//! opened again, it loads the same state; a record appended then survives a third opening.
//!
//! Segments go to a directory of this process under `/dev/shm` when it exists (no disk
//! writes for fsyncs), else the temp directory; it is emptied before each input.
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use synod_fuzz::{count, generate, wal_format};
use synod_kvstore::WalLog;
use synod_paxos::{Record, Storage};

/// This process's scratch directory for segment files.
fn scratch_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let shm = Path::new("/dev/shm");
        let base = if shm.is_dir() {
            shm.to_path_buf()
        } else {
            std::env::temp_dir()
        };
        base.join(format!("synod-fuzz-wal-{}", std::process::id()))
    })
}

fn record(u: &mut Unstructured<'_>) -> Result<Record> {
    Ok(match u.int_in_range(0..=3u8)? {
        0 => Record::Promised(generate::ballot(u)?),
        1 => Record::Accepted {
            slot: generate::slot(u)?,
            ballot: generate::ballot(u)?,
            value: generate::paxos_value(u)?,
        },
        2 => Record::Chosen {
            slot: generate::slot(u)?,
            value: generate::paxos_value(u)?,
        },
        _ => Record::Compacted(generate::slot(u)?),
    })
}

/// Segment contents by number; `records` collects the generated records in replay order.
fn framed_segments(
    u: &mut Unstructured<'_>,
    numbers: &[u64],
    records: &mut Vec<Record>,
    raw_payloads: bool,
) -> Result<Vec<Vec<u8>>> {
    let mut segments = Vec::new();
    for &number in numbers {
        let mut segment = wal_format::new_segment(number);
        for _ in 0..count(u, 6) {
            let mut payload = Vec::new();
            if raw_payloads && u.ratio(1, 8)? {
                payload = generate::bytes(u, 48)?;
            } else {
                for _ in 0..=count(u, 3) {
                    let record = record(u)?;
                    wal_format::encode_record(&record, &mut payload);
                    records.push(record);
                }
            }
            wal_format::frame(&mut segment, number, &payload, u.arbitrary()?);
        }
        segments.push(segment);
    }
    if let Some(last) = segments.last_mut() {
        if u.ratio(1, 4)? {
            // A torn frame: the start of one more, cut anywhere.
            let number = numbers.last().copied().unwrap_or(0);
            let start = last.len();
            let mut payload = Vec::new();
            wal_format::encode_record(&record(u)?, &mut payload);
            wal_format::frame(last, number, &payload, u.arbitrary()?);
            let cut = start + u.choose_index(last.len() - start)?;
            last.truncate(cut);
        }
    }
    Ok(segments)
}

fn write_segments(dir: &Path, numbers: &[u64], segments: &[Vec<u8>]) {
    if dir.exists() {
        std::fs::remove_dir_all(dir).expect("empty the scratch directory");
    }
    std::fs::create_dir_all(dir).expect("create the scratch directory");
    for (number, bytes) in numbers.iter().zip(segments) {
        std::fs::write(dir.join(wal_format::segment_file_name(*number)), bytes)
            .expect("write a segment");
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut u = Unstructured::new(rest);
    let mut numbers = Vec::new();
    for _ in 0..=count(&mut u, 2) {
        let number = if u.ratio(1, 16).unwrap_or(false) {
            u64::MAX
        } else {
            u.int_in_range(0..=4).unwrap_or(0)
        };
        if !numbers.contains(&number) {
            numbers.push(number);
        }
    }
    numbers.sort_unstable();
    let segments = if mode % 2 == 1 {
        let mut segments = Vec::new();
        for _ in &numbers {
            segments.push(generate::bytes(&mut u, 256).unwrap_or_default());
        }
        segments
    } else {
        let mut records = Vec::new();
        let Ok(segments) = framed_segments(&mut u, &numbers, &mut records, true) else {
            return;
        };
        segments
    };
    let dir = scratch_dir();
    write_segments(dir, &numbers, &segments);

    let Ok(log) = WalLog::open(dir) else {
        return;
    };
    let state = log.load().expect("a log that opened loads");
    assert_eq!(log.promised(), state.promised);
    assert_eq!(log.compacted_through(), state.compacted_through);
    let promised = log.promised();
    drop(log);

    let mut log = WalLog::open(dir).expect("a log that opened once opens again");
    assert_eq!(log.load().expect("load again"), state);
    log.persist(&[Record::Promised(promised)])
        .expect("persist the same promise");
    drop(log);
    let log = WalLog::open(dir).expect("a log opens after an append");
    assert_eq!(log.load().expect("load after an append"), state);
});
