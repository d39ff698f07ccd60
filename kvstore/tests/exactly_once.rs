//! Exactly-once: retries answered from the dedup table, stale requests refused, bounded table.

mod common;

use common::*;
use synod_kvstore::{ErrorCode, Options, Outcome, Request, StateMachine};

/// An in-memory state machine remembering at most `max_dedup_clients` clients.
fn small(max_dedup_clients: u64) -> Harness {
    Harness::with(StateMachine::in_memory_with(small_options(max_dedup_clients)).unwrap())
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

/// Options remembering at most `max_dedup_clients` clients.
// The update fills `bugs` when a workspace test build enables `bug-injection`.
#[allow(clippy::needless_update)]
fn small_options(max_dedup_clients: u64) -> Options {
    Options {
        max_dedup_clients,
        ..Default::default()
    }
}

/// Clients 1, 3, 2, then 1 again: the oldest remembered is client 3 (slot 2, position 0), then
/// client 2 (slot 2, position 1), then client 1 (slot 3).
fn three_clients_applied(h: &mut Harness) {
    h.client(1, 1, incr(b"n", 1));
    h.apply(&[
        Request::from_client(3, 1, incr(b"n", 1)),
        Request::from_client(2, 1, incr(b"n", 1)),
    ]);
    h.client(1, 2, incr(b"n", 1));
}

/// In a full table of three, a new client forgets client 3, then client 2, in that order.
fn forgets_client_3_then_2(h: &mut Harness) {
    h.client(4, 1, incr(b"n", 1));
    assert_eq!(
        error_code(&h.client(3, 2, incr(b"n", 1))),
        ErrorCode::UnknownClient,
        "the client applied longest ago is forgotten first"
    );
    assert!(!h.client(2, 1, incr(b"n", 1)).is_error(), "client 2 kept");
    h.client(5, 1, incr(b"n", 1));
    assert_eq!(
        error_code(&h.client(2, 2, incr(b"n", 1))),
        ErrorCode::UnknownClient,
        "then the next oldest"
    );
    assert_eq!(h.client(1, 2, incr(b"n", 1)).revision, 4, "client 1 kept");
}

#[test]
fn the_eviction_order_is_the_same_after_a_restart() {
    let path = TempPath::new("dedup-order-restart");
    let mut h = Harness::with(StateMachine::open_with(&path.0, small_options(3)).unwrap());
    three_clients_applied(&mut h);
    drop(h);
    let mut h = Harness::with(StateMachine::open_with(&path.0, small_options(3)).unwrap());
    forgets_client_3_then_2(&mut h);
}

#[test]
fn an_installed_snapshot_brings_its_eviction_order() {
    let mut source = small(3);
    three_clients_applied(&mut source);
    let mut installed = small(3);
    // The installing node had clients of its own, in another order: all replaced.
    installed.client(9, 1, incr(b"n", 1));
    let chunks = source.sm.snapshot().unwrap().collect::<Result<Vec<_>, _>>();
    installed.sm.install_snapshot(chunks.unwrap()).unwrap();
    assert_eq!(
        installed.sm.state_hash().unwrap(),
        source.sm.state_hash().unwrap()
    );
    forgets_client_3_then_2(&mut installed);
}

#[test]
fn a_database_with_the_old_eviction_table_opens_without_it() {
    use redb::TableDefinition;
    const OLD: TableDefinition<(u64, u64), u64> = TableDefinition::new("sm_dedup_age");
    let path = TempPath::new("dedup-old-table");
    let mut h = Harness::with(StateMachine::open_with(&path.0, small_options(3)).unwrap());
    three_clients_applied(&mut h);
    let hash = h.sm.state_hash().unwrap();
    drop(h);
    {
        // The table as an earlier version kept it beside the records.
        let db = redb::Database::create(&path.0).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut old = txn.open_table(OLD).unwrap();
            old.insert((2, 0), 3).unwrap();
            old.insert((2, 1), 2).unwrap();
            old.insert((3, 0), 1).unwrap();
        }
        txn.commit().unwrap();
    }
    let mut h = Harness::with(StateMachine::open_with(&path.0, small_options(3)).unwrap());
    assert_eq!(h.sm.state_hash().unwrap(), hash, "the same state");
    forgets_client_3_then_2(&mut h);
    drop(h);
    let db = redb::Database::create(&path.0).unwrap();
    let txn = redb::ReadableDatabase::begin_read(&db).unwrap();
    assert!(
        matches!(
            txn.open_table(OLD),
            Err(redb::TableError::TableDoesNotExist(_))
        ),
        "the old table is gone"
    );
}

#[test]
fn a_failed_apply_leaves_the_eviction_order_as_committed() {
    use redb::TableDefinition;
    const KV: TableDefinition<&[u8], &[u8]> = TableDefinition::new("sm_kv");
    let write_kv = |db: &redb::Database, value: &[u8]| {
        let txn = db.begin_write().unwrap();
        txn.open_table(KV)
            .unwrap()
            .insert(&b"k"[..], value)
            .unwrap();
        txn.commit().unwrap();
    };
    let path = TempPath::new("dedup-order-failed-apply");
    let db = std::sync::Arc::new(redb::Database::create(&path.0).unwrap());
    let sm = StateMachine::from_database(db.clone(), small_options(3)).unwrap();
    let mut h = Harness::with(sm);
    three_clients_applied(&mut h);
    // A record that does not decode: the batch that writes it fails whole, client 6's request
    // with it.
    write_kv(&db, &[0xff; 4]);
    let slot = h.sm.applied_index() + 1;
    let batch: Vec<Vec<u8>> = [
        Request::from_client(6, 1, incr(b"n", 1)),
        Request::from_client(7, 1, put(b"k", b"v")),
    ]
    .iter()
    .map(prost::Message::encode_to_vec)
    .collect();
    assert!(h.sm.apply_slots([(slot, batch.as_slice())]).is_err());
    write_kv(&db, &[]);
    // Client 6 was never remembered: the order is still 3, 2, 1.
    forgets_client_3_then_2(&mut h);
    assert!(
        !h.client(6, 1, incr(b"n", 1)).is_error(),
        "client 6 starts afresh"
    );
}
