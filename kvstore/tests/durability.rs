//! Atomicity of apply with the applied index, on a file database, across reopen and crash.

mod common;

use common::*;
use prost::Message;
use synod_kvstore::{Request, StateMachine};

/// Slot `i` of a small log: counters that would show a slot applied twice.
fn slot(i: u64) -> Vec<Vec<u8>> {
    vec![
        Request::anonymous(incr(b"count", 1)).encode_to_vec(),
        Request::anonymous(put(format!("k{i}").as_bytes(), b"v")).encode_to_vec(),
        Request::from_client(1, i, incr(b"client", i as i64)).encode_to_vec(),
    ]
}

/// Apply slot `i` of that log as the next slot.
fn apply(sm: &mut StateMachine, i: u64) {
    sm.apply_slots([(i, slot(i).as_slice())]).unwrap();
}

/// The state hash after each slot `0..=n` on an in-memory reference.
fn reference_hashes(n: u64) -> Vec<u64> {
    let mut sm = StateMachine::in_memory().unwrap();
    let mut hashes = vec![sm.state_hash().unwrap()];
    for i in 1..=n {
        apply(&mut sm, i);
        hashes.push(sm.state_hash().unwrap());
    }
    hashes
}

#[test]
fn reopening_after_flush_restores_the_applied_state() {
    let path = TempPath::new("reopen-after-flush");
    let expected = reference_hashes(5);
    {
        let mut sm = StateMachine::open(&path.0).unwrap();
        for i in 1..=5 {
            apply(&mut sm, i);
        }
        sm.flush().unwrap();
    }
    let sm = StateMachine::open(&path.0).unwrap();
    assert_eq!(sm.applied_index(), 5);
    assert_eq!(sm.revision(), 15);
    assert_eq!(sm.state_hash().unwrap(), expected[5]);
    let h = Harness::with(sm);
    assert_eq!(h.get(b"count").unwrap().value, b"5");
}

#[test]
fn reopening_continues_at_the_next_slot() {
    let path = TempPath::new("reopen-continue");
    let expected = reference_hashes(6);
    {
        let mut sm = StateMachine::open(&path.0).unwrap();
        for i in 1..=3 {
            apply(&mut sm, i);
        }
    }
    let mut sm = StateMachine::open(&path.0).unwrap();
    let from = sm.applied_index();
    assert_eq!(
        sm.state_hash().unwrap(),
        expected[from as usize],
        "tables match the applied index"
    );
    for i in from + 1..=6 {
        apply(&mut sm, i);
    }
    assert_eq!(sm.state_hash().unwrap(), expected[6]);
}

#[test]
fn a_crash_image_holds_exactly_some_applied_prefix_and_replay_completes_it() {
    let path = TempPath::new("crash-original");
    let copy = TempPath::new("crash-copy");
    let expected = reference_hashes(8);
    let mut sm = StateMachine::open(&path.0).unwrap();
    for i in 1..=4 {
        apply(&mut sm, i);
    }
    sm.flush().unwrap();
    for i in 5..=8 {
        apply(&mut sm, i);
    }
    // The file as a crash would leave it: no close, and the last commits not fsynced.
    std::fs::copy(&path.0, &copy.0).unwrap();
    drop(sm);

    let mut recovered = StateMachine::open(&copy.0).unwrap();
    let from = recovered.applied_index();
    assert!(
        (4..=8).contains(&from),
        "flushed slots survive: applied index {from}"
    );
    assert_eq!(
        recovered.state_hash().unwrap(),
        expected[from as usize],
        "the tables hold exactly slots 1..={from}"
    );
    for i in from + 1..=8 {
        apply(&mut recovered, i);
    }
    assert_eq!(recovered.state_hash().unwrap(), expected[8]);
}

#[test]
fn an_empty_database_starts_at_slot_zero() {
    let path = TempPath::new("empty");
    let sm = StateMachine::open(&path.0).unwrap();
    assert_eq!((sm.applied_index(), sm.revision()), (0, 0));
    drop(sm);
    let sm = StateMachine::open(&path.0).unwrap();
    assert_eq!(sm.applied_index(), 0);
}
