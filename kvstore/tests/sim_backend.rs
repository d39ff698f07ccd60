//! The simulator's redb backend: a crash keeps exactly what was synced.

mod common;

use common::*;
use synod_kvstore::{Options, SimRedbBackend, StateMachine};

fn open(backend: &SimRedbBackend) -> StateMachine {
    StateMachine::open_on_backend(backend.clone(), Options::default()).unwrap()
}

#[test]
fn a_crash_keeps_the_flushed_state_and_loses_later_applies() {
    let backend = SimRedbBackend::new();
    let mut h = Harness::with(open(&backend));
    h.op(put(b"a", b"1"));
    h.op(put(b"b", b"2"));
    h.sm.flush().unwrap();
    let flushed = (h.sm.applied_index(), h.sm.state_hash().unwrap());
    h.op(put(b"a", b"3"));
    h.op(delete(b"b"));
    assert!(h.sm.applied_index() > flushed.0);
    let restarted = backend.crash();
    drop(h);
    let reopened = open(&restarted);
    assert_eq!(
        (reopened.applied_index(), reopened.state_hash().unwrap()),
        flushed
    );
}

#[test]
fn a_failed_sync_makes_nothing_durable_and_reports_an_error() {
    let backend = SimRedbBackend::new();
    let mut h = Harness::with(open(&backend));
    h.op(put(b"a", b"1"));
    h.sm.flush().unwrap();
    let flushed = h.sm.applied_index();
    h.op(put(b"a", b"2"));
    backend.fail_next_syncs(1);
    assert!(h.sm.flush().is_err(), "the failed fsync is reported");
    let restarted = backend.crash();
    drop(h);
    assert_eq!(open(&restarted).applied_index(), flushed);
}

#[test]
fn without_a_crash_a_reopened_database_sees_unsynced_applies() {
    let backend = SimRedbBackend::new();
    let mut h = Harness::with(open(&backend));
    h.op(put(b"a", b"1"));
    let applied = h.sm.applied_index();
    drop(h);
    assert_eq!(open(&backend).applied_index(), applied);
}
