//! Snapshot installation (`StateMachine::snapshot_installer`, `push_encoded`,
//! `complete_install`) from arbitrary chunks, then the state machine's use after it.
//!
//! The receiving state machine first applies a few generated slots. The first input byte then
//! picks the mode. Odd: every chunk is raw bytes for `push_encoded`. Even: a real snapshot of a
//! state built from generated commands, its entry stream cut into chunks at fuzzer-chosen
//! points (its state hash stays valid, so the install can complete), with its header fields,
//! order or bytes sometimes tampered with. Whatever the installer says is complete is
//! installed; a completed install is then read, watched and written to.
//!
//! Checked besides "never panics": after a failed push every later push fails; an untampered
//! snapshot that is ahead of the receiver installs, with the source's state hash and revision.
#![no_main]

use arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use prost::Message as _;
use synod_fuzz::{count, generate};
use synod_kvstore::{
    EventFilter, EventSpace, Get, Op, Put, Request, Scan, SnapshotChunk, SnapshotError,
    StateMachine,
};

/// What an untampered snapshot's source held.
struct Source {
    state_hash: u64,
    revision: u64,
    applied_index: u64,
}

/// A state machine that applied up to `max_slots` generated slots.
fn machine_with_slots(u: &mut Unstructured<'_>, max_slots: usize) -> Result<StateMachine> {
    let mut machine = StateMachine::in_memory().expect("an in-memory state machine");
    for batch in generate::slots(u, max_slots)? {
        let slot = machine.applied_index() + 1;
        machine
            .apply_slots([(slot, batch.as_slice())])
            .expect("apply_slots on an in-memory database");
    }
    Ok(machine)
}

/// The encoded chunks of a snapshot of generated state, re-cut and maybe tampered with, and
/// whether they are untampered (with the source's state hash, revision and applied index then).
fn snapshot_chunks(u: &mut Unstructured<'_>) -> Result<(Vec<Vec<u8>>, Option<Source>)> {
    let source = machine_with_slots(u, 6)?;
    if source.applied_index() == 0 {
        return Ok((Vec::new(), None));
    }
    let original = source
        .snapshot()
        .expect("take a snapshot")
        .collect::<std::result::Result<Vec<_>, _>>()
        .expect("read the snapshot");
    let last = original
        .last()
        .expect("a snapshot has a last chunk")
        .clone();
    let stream: Vec<u8> = original.iter().flat_map(|c| c.data.clone()).collect();

    let mut chunks = Vec::new();
    let mut rest = stream.as_slice();
    loop {
        let take = if u.is_empty() {
            rest.len()
        } else {
            u.int_in_range(0..=rest.len())?
        };
        let (data, tail) = rest.split_at(take);
        rest = tail;
        chunks.push(SnapshotChunk {
            format: last.format,
            applied_index: last.applied_index,
            revision: last.revision,
            seq: chunks.len() as u64,
            data: data.to_vec(),
            last: rest.is_empty(),
            entry_count: if rest.is_empty() { last.entry_count } else { 0 },
            state_hash: if rest.is_empty() { last.state_hash } else { 0 },
        });
        if rest.is_empty() {
            break;
        }
    }

    let mut tampered = false;
    for _ in 0..count(u, 2) {
        tampered = true;
        let at = u.choose_index(chunks.len())?;
        let chunk = &mut chunks[at];
        match u.int_in_range(0..=8u8)? {
            0 => chunk.applied_index = generate::number(u)?,
            1 => chunk.revision = generate::number(u)?,
            2 => chunk.seq = generate::number(u)?,
            3 => chunk.entry_count = generate::number(u)?,
            4 => chunk.state_hash ^= 1 << u.int_in_range(0..=63)?,
            5 => chunk.last = !chunk.last,
            6 => chunk.format = u.arbitrary()?,
            7 if !chunk.data.is_empty() => {
                let i = u.choose_index(chunk.data.len())?;
                chunk.data[i] ^= u.int_in_range(1..=255)?;
            }
            _ => {
                let copy = chunks[at].clone();
                chunks.insert(u.choose_index(chunks.len() + 1)?, copy);
            }
        }
    }
    let untampered = (!tampered).then(|| Source {
        state_hash: source.state_hash().expect("hash the state"),
        revision: source.revision(),
        applied_index: source.applied_index(),
    });
    Ok((
        chunks.iter().map(|c| c.encode_to_vec()).collect(),
        untampered,
    ))
}

fn raw_chunks(u: &mut Unstructured<'_>) -> Result<Vec<Vec<u8>>> {
    let mut chunks = Vec::new();
    for _ in 0..=count(u, 5) {
        chunks.push(generate::bytes(u, 512)?);
    }
    Ok(chunks)
}

/// Uses a state machine that just installed a snapshot: reads, a watch from revision 0 and
/// from its revision, a write in the next slot.
fn use_after_install(machine: &mut StateMachine) {
    machine
        .read(&Op::Scan(Scan::default()))
        .expect("scan after an install");
    machine
        .read(&Op::Get(Get { key: b"a".to_vec() }))
        .expect("get after an install");
    let filter = EventFilter {
        space: EventSpace::Keys,
        key: Vec::new(),
        prefix: true,
    };
    let _ = machine.events_since(0, &filter, 0);
    let _ = machine.events_since(machine.revision(), &filter, 0);
    let Some(slot) = machine.applied_index().checked_add(1) else {
        return;
    };
    let put = Request::anonymous(Op::Put(Put {
        key: b"a".to_vec(),
        value: b"after".to_vec(),
        prev_kv: true,
    }));
    machine
        .apply_slots([(slot, &[put.encode_to_vec()][..])])
        .expect("apply after an install");
    machine.state_hash().expect("hash after an install");
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut u = Unstructured::new(rest);
    let Ok(mut receiver) = machine_with_slots(&mut u, 2) else {
        return;
    };
    let (chunks, untampered) = if mode % 2 == 1 {
        match raw_chunks(&mut u) {
            Ok(chunks) => (chunks, None),
            Err(_) => return,
        }
    } else {
        match snapshot_chunks(&mut u) {
            Ok(chunks) => chunks,
            Err(_) => return,
        }
    };
    if chunks.is_empty() {
        return;
    }

    let applied_before = receiver.applied_index();
    let mut installer = receiver.snapshot_installer().expect("start an install");
    let mut outcome = None;
    for (i, chunk) in chunks.iter().enumerate() {
        match installer.push_encoded(chunk) {
            Ok(false) => {}
            Ok(true) => {
                assert!(installer.is_complete());
                outcome = Some(receiver.complete_install(installer));
                break;
            }
            Err(_) => {
                if let Some(next) = chunks.get(i + 1) {
                    assert!(
                        matches!(installer.push_encoded(next), Err(SnapshotError::Aborted)),
                        "a push after a failed one must fail"
                    );
                }
                break;
            }
        }
    }
    match outcome {
        Some(Ok(index)) => {
            assert_eq!(receiver.applied_index(), index);
            if let Some(source) = &untampered {
                assert_eq!(index, source.applied_index);
                assert_eq!(
                    receiver.state_hash().expect("hash the state"),
                    source.state_hash
                );
                assert_eq!(receiver.revision(), source.revision);
            }
            use_after_install(&mut receiver);
        }
        Some(Err(_)) | None => {
            if let Some(source) = &untampered {
                assert!(
                    applied_before >= source.applied_index,
                    "an untampered snapshot at slot {} refused by a receiver at slot {applied_before}",
                    source.applied_index
                );
            }
        }
    }
});
