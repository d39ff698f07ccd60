//! Exactly-once: retries answered from the dedup table, stale requests refused, bounded table.

mod common;

use common::*;
use synod_kvstore::{ErrorCode, Options, Outcome, Request, StateMachine};

// The update fills `bugs` when a workspace test build enables `bug-injection`.
#[allow(clippy::needless_update)]
fn small(max_dedup_clients: u64) -> Harness {
    Harness::with(
        StateMachine::in_memory_with(Options {
            max_dedup_clients,
            ..Default::default()
        })
        .unwrap(),
    )
}

#[test]
fn a_retry_gets_the_recorded_response_and_applies_once() {
    let mut h = Harness::new();
    let first = h.client(1, 1, incr(b"n", 1));
    let retry = h.client(1, 1, incr(b"n", 1));
    assert_eq!(retry, first);
    assert_eq!(h.get(b"n").unwrap().value, b"1");
    assert_eq!(h.sm.revision(), 1);
}

#[test]
fn a_retry_in_the_same_batch_applies_once() {
    let mut h = Harness::new();
    let request = Request::from_client(1, 1, incr(b"n", 5));
    let responses = h.apply(&[request.clone(), request]);
    assert_eq!(responses[0], responses[1]);
    assert_eq!(h.get(b"n").unwrap().value, b"5");
}

#[test]
fn a_retry_replays_the_original_revision_even_after_later_writes() {
    let mut h = Harness::new();
    let first = h.client(1, 1, put(b"a", b"1"));
    h.op(put(b"b", b"2"));
    let retry = h.client(1, 1, put(b"a", b"1"));
    assert_eq!(retry.revision, first.revision);
    assert_eq!(h.get(b"a").unwrap().version, 1);
}

#[test]
fn a_refused_request_is_recorded_like_any_other() {
    let mut h = Harness::new();
    h.op(put(b"n", b"not a number"));
    let first = h.client(1, 1, incr(b"n", 1));
    assert_eq!(error_code(&first), ErrorCode::NotAnInteger);
    h.op(put(b"n", b"0"));
    let retry = h.client(1, 1, incr(b"n", 1));
    assert_eq!(retry, first, "the retry gets the recorded outcome");
    assert_eq!(h.get(b"n").unwrap().value, b"0");
}

#[test]
fn a_new_sequence_number_applies_again() {
    let mut h = Harness::new();
    h.client(1, 1, incr(b"n", 1));
    h.client(1, 2, incr(b"n", 1));
    assert_eq!(h.get(b"n").unwrap().value, b"2");
}

#[test]
fn an_older_sequence_number_is_refused_as_stale() {
    let mut h = Harness::new();
    h.client(1, 1, incr(b"n", 1));
    h.client(1, 2, incr(b"n", 1));
    let stale = h.client(1, 1, incr(b"n", 1));
    assert_eq!(error_code(&stale), ErrorCode::StaleSequence);
    assert!(stale.as_error().unwrap().message.contains("stale sequence"));
    assert_eq!(h.get(b"n").unwrap().value, b"2");
    let retry = h.client(1, 2, incr(b"n", 1));
    assert!(matches!(retry.outcome, Some(Outcome::Incr(ref i)) if i.value == 2));
}

#[test]
fn clients_are_deduplicated_independently() {
    let mut h = Harness::new();
    h.client(1, 1, incr(b"n", 1));
    h.client(2, 1, incr(b"n", 10));
    h.client(1, 1, incr(b"n", 1));
    assert_eq!(h.get(b"n").unwrap().value, b"11");
}

#[test]
fn client_zero_bypasses_deduplication() {
    let mut h = Harness::new();
    h.op(incr(b"n", 1));
    h.op(incr(b"n", 1));
    assert_eq!(h.get(b"n").unwrap().value, b"2");
}

#[test]
fn an_unknown_client_must_start_at_sequence_one() {
    let mut h = Harness::new();
    let r = h.client(9, 5, put(b"a", b"1"));
    assert_eq!(error_code(&r), ErrorCode::UnknownClient);
    assert_eq!(h.get(b"a"), None);
}

#[test]
fn a_full_table_forgets_the_client_applied_longest_ago() {
    let mut h = small(3);
    h.client(1, 1, incr(b"n", 1)); // slot 1
    h.apply(&[
        Request::from_client(3, 1, incr(b"n", 1)),
        Request::from_client(2, 1, incr(b"n", 1)),
    ]); // slot 2: client 3 before client 2
    h.client(1, 2, incr(b"n", 1)); // slot 3: client 1 is now the most recent
    h.client(4, 1, incr(b"n", 1)); // slot 4: table full, forgets client 3
    assert_eq!(h.get(b"n").unwrap().value, b"5");

    let forgotten = h.client(3, 1, incr(b"n", 1));
    assert!(
        !forgotten.is_error(),
        "a forgotten client's seq 1 looks like a new client"
    );
    assert_eq!(h.get(b"n").unwrap().value, b"6");
    // Recording client 3 again forgot client 2 (slot 2, position 1), the oldest left.
    let after_eviction = h.client(2, 2, incr(b"n", 1));
    assert_eq!(error_code(&after_eviction), ErrorCode::UnknownClient);
    // Clients 1 and 4 are still remembered.
    assert_eq!(h.client(1, 2, incr(b"n", 1)).revision, 4);
    assert_eq!(h.client(4, 1, incr(b"n", 1)).revision, 5);
    assert_eq!(h.get(b"n").unwrap().value, b"6");
}

#[test]
fn a_forgotten_client_is_refused_rather_than_applied_twice() {
    let mut h = small(1);
    h.client(1, 1, incr(b"n", 1));
    h.client(1, 2, incr(b"n", 1));
    h.client(2, 1, incr(b"n", 1)); // forgets client 1
    let retry = h.client(1, 2, incr(b"n", 1));
    assert_eq!(error_code(&retry), ErrorCode::UnknownClient);
    assert_eq!(h.get(b"n").unwrap().value, b"3");
}

#[test]
fn an_invalid_op_consumes_its_sequence_number() {
    let mut h = Harness::new();
    let refused = h.client(1, 1, put(b"", b"x"));
    assert_eq!(error_code(&refused), ErrorCode::EmptyKey);
    assert_eq!(
        h.client(1, 1, put(b"k", b"x")),
        refused,
        "a retry gets the refusal"
    );
    assert!(!h.client(1, 2, put(b"k", b"x")).is_error());
}

#[test]
fn undecodable_bytes_and_sequence_zero_are_not_recorded() {
    let mut h = Harness::new();
    let zero = h.client(1, 0, put(b"k", b"x"));
    assert_eq!(error_code(&zero), ErrorCode::ZeroSequence);
    assert_eq!(
        error_code(&h.apply_raw(&[vec![0xff]])[0]),
        ErrorCode::Malformed
    );
    assert!(
        !h.client(1, 1, put(b"k", b"x")).is_error(),
        "client 1 is still new"
    );
}

#[test]
fn the_table_holds_exactly_the_limit_of_clients() {
    let mut h = small(50);
    let requests: Vec<Request> = (1..=120)
        .map(|client| Request::from_client(client, 1, incr(b"n", 1)))
        .collect();
    h.apply(&requests);
    // The 50 most recent clients (71..=120) are remembered; retries are answered from the table.
    let retries: Vec<Request> = (71..=120)
        .map(|client| Request::from_client(client, 1, incr(b"n", 1)))
        .collect();
    assert!(h.apply(&retries).iter().all(|r| !r.is_error()));
    assert_eq!(h.get(b"n").unwrap().value, b"120");
    // Client 70 was forgotten: its seq 2 is refused.
    let r = h.client(70, 2, incr(b"n", 1));
    assert_eq!(error_code(&r), ErrorCode::UnknownClient);
}
