//! Specification of the linearizability checker in `support::linearizability`.

mod support;

use std::collections::HashMap;

use support::linearizability::{
    check_kv, check_kv_with_limit, CheckResult, KvOp, KvOutcome, Operation,
};

fn bytes(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

fn put(client: u64, invoke: u64, complete: u64, key: &str, value: &str) -> Operation {
    Operation {
        client,
        invoke,
        complete: Some(complete),
        op: KvOp::Put {
            key: bytes(key),
            value: bytes(value),
        },
        outcome: KvOutcome::Put,
    }
}

fn get(client: u64, invoke: u64, complete: u64, key: &str, seen: Option<&str>) -> Operation {
    Operation {
        client,
        invoke,
        complete: Some(complete),
        op: KvOp::Get { key: bytes(key) },
        outcome: KvOutcome::Get(seen.map(bytes)),
    }
}

fn cas(
    client: u64,
    (invoke, complete): (u64, u64),
    key: &str,
    expected: Option<&str>,
    new: &str,
    succeeded: bool,
) -> Operation {
    Operation {
        client,
        invoke,
        complete: Some(complete),
        op: KvOp::Cas {
            key: bytes(key),
            expected: expected.map(bytes),
            new: bytes(new),
        },
        outcome: KvOutcome::Cas(succeeded),
    }
}

/// A put whose client timed out and never learned whether it was applied.
fn pending_put(client: u64, invoke: u64, key: &str, value: &str) -> Operation {
    Operation {
        complete: None,
        outcome: KvOutcome::Unknown,
        ..put(client, invoke, invoke, key, value)
    }
}

fn assert_linearizable(history: &[Operation]) {
    let result = check_kv(history);
    assert!(result.is_linearizable(), "{result}");
}

fn assert_not_linearizable_on(history: &[Operation], key: &str) {
    match check_kv(history) {
        CheckResult::NotLinearizable { key: bad, .. } => assert_eq!(bad, bytes(key)),
        other => panic!("expected a violation on {key:?}, got: {other}"),
    }
}

#[test]
fn empty_history_is_linearizable() {
    assert_linearizable(&[]);
}

#[test]
fn sequential_puts_and_gets_are_linearizable() {
    assert_linearizable(&[
        get(1, 0, 10, "k", None),
        put(1, 20, 30, "k", "a"),
        get(2, 40, 50, "k", Some("a")),
        put(2, 60, 70, "k", "b"),
        get(1, 80, 90, "k", Some("b")),
    ]);
}

#[test]
fn get_concurrent_with_put_may_see_the_old_value() {
    assert_linearizable(&[
        put(1, 0, 10, "k", "a"),
        put(1, 20, 40, "k", "b"),
        get(2, 25, 35, "k", Some("a")),
    ]);
}

#[test]
fn get_concurrent_with_put_may_see_the_new_value() {
    assert_linearizable(&[
        put(1, 0, 10, "k", "a"),
        put(1, 20, 40, "k", "b"),
        get(2, 15, 25, "k", Some("b")),
    ]);
}

#[test]
fn stale_read_after_completed_write_is_not_linearizable() {
    assert_not_linearizable_on(
        &[
            put(1, 0, 10, "k", "a"),
            put(1, 20, 30, "k", "b"),
            get(2, 40, 50, "k", Some("a")),
        ],
        "k",
    );
}

#[test]
fn read_starting_at_the_instant_a_write_returns_must_see_it() {
    assert_not_linearizable_on(&[put(1, 0, 10, "k", "a"), get(2, 10, 20, "k", None)], "k");
}

#[test]
fn reads_in_real_time_order_seeing_new_then_old_value_are_not_linearizable() {
    assert_not_linearizable_on(
        &[
            put(1, 0, 10, "k", "a"),
            put(1, 20, 100, "k", "b"),
            get(2, 30, 40, "k", Some("b")),
            get(3, 50, 60, "k", Some("a")),
        ],
        "k",
    );
}

#[test]
fn cas_succeeds_when_the_expected_value_is_current() {
    assert_linearizable(&[
        cas(1, (0, 10), "k", None, "a", true),
        cas(1, (20, 30), "k", Some("a"), "b", true),
        get(2, 40, 50, "k", Some("b")),
    ]);
}

#[test]
fn cas_fails_when_the_expected_value_is_not_current() {
    assert_linearizable(&[
        put(1, 0, 10, "k", "a"),
        cas(1, (20, 30), "k", Some("z"), "b", false),
        cas(2, (40, 50), "k", None, "c", false),
        get(2, 60, 70, "k", Some("a")),
    ]);
}

#[test]
fn cas_reporting_success_against_a_different_value_is_not_linearizable() {
    assert_not_linearizable_on(
        &[
            put(1, 0, 10, "k", "a"),
            cas(1, (20, 30), "k", Some("z"), "b", true),
        ],
        "k",
    );
}

#[test]
fn cas_reporting_failure_against_the_expected_value_is_not_linearizable() {
    assert_not_linearizable_on(
        &[
            put(1, 0, 10, "k", "a"),
            cas(1, (20, 30), "k", Some("a"), "b", false),
        ],
        "k",
    );
}

#[test]
fn concurrent_cas_from_the_same_expected_value_cannot_both_succeed() {
    assert_not_linearizable_on(
        &[
            put(1, 0, 10, "k", "a"),
            cas(1, (20, 40), "k", Some("a"), "b", true),
            cas(2, (25, 45), "k", Some("a"), "c", true),
        ],
        "k",
    );
}

#[test]
fn concurrent_cas_from_the_same_expected_value_one_wins() {
    assert_linearizable(&[
        put(1, 0, 10, "k", "a"),
        cas(1, (20, 40), "k", Some("a"), "b", false),
        cas(2, (25, 45), "k", Some("a"), "c", true),
        get(3, 50, 60, "k", Some("c")),
    ]);
}

#[test]
fn never_completed_put_observed_later_is_linearizable() {
    assert_linearizable(&[
        put(1, 0, 10, "k", "a"),
        pending_put(2, 20, "k", "b"),
        get(3, 100, 110, "k", Some("b")),
        get(3, 120, 130, "k", Some("b")),
    ]);
}

#[test]
fn never_completed_put_that_explains_nothing_is_linearizable() {
    assert_linearizable(&[
        put(1, 0, 10, "k", "a"),
        pending_put(2, 20, "k", "b"),
        get(3, 100, 110, "k", Some("a")),
    ]);
}

#[test]
fn never_completed_put_cannot_take_effect_before_its_invoke() {
    assert_not_linearizable_on(
        &[get(1, 0, 10, "k", Some("b")), pending_put(2, 20, "k", "b")],
        "k",
    );
}

#[test]
fn put_with_unknown_outcome_takes_effect_within_its_interval() {
    let mut timed_out = put(2, 20, 30, "k", "b");
    timed_out.outcome = KvOutcome::Unknown;
    assert_linearizable(&[
        put(1, 0, 10, "k", "a"),
        timed_out.clone(),
        get(3, 40, 50, "k", Some("b")),
    ]);
    assert_not_linearizable_on(
        &[
            put(1, 0, 10, "k", "a"),
            timed_out,
            get(3, 40, 50, "k", Some("a")),
        ],
        "k",
    );
}

#[test]
fn read_of_a_value_never_written_is_not_linearizable() {
    assert_not_linearizable_on(
        &[put(1, 0, 10, "k", "a"), get(2, 20, 30, "k", Some("ghost"))],
        "k",
    );
}

#[test]
fn keys_that_are_each_linearizable_make_a_linearizable_history() {
    // Across keys, "y" reads its old value after "x" was written: keys are independent.
    assert_linearizable(&[
        put(1, 0, 10, "x", "1"),
        put(2, 5, 15, "y", "1"),
        put(1, 20, 30, "x", "2"),
        get(2, 25, 35, "y", Some("1")),
        get(3, 40, 50, "x", Some("2")),
        cas(3, (60, 70), "y", Some("1"), "2", true),
    ]);
}

#[test]
fn violation_is_reported_on_the_key_that_has_it() {
    assert_not_linearizable_on(
        &[
            put(1, 0, 10, "x", "1"),
            put(1, 20, 30, "y", "1"),
            put(2, 40, 50, "y", "2"),
            get(3, 60, 70, "y", Some("1")),
            get(3, 80, 90, "x", Some("1")),
        ],
        "y",
    );
}

#[test]
fn report_names_the_key_and_lists_its_ops_with_times() {
    let result = check_kv(&[
        put(1, 0, 10, "k", "a"),
        get(2, 20, 30, "k", Some("ghost")),
        pending_put(3, 40, "k", "c"),
    ]);
    let report = result.to_string();
    assert!(report.contains("key \"k\""), "{report}");
    assert!(
        report.contains("#1 client 2 [20, 30] get(\"k\") -> \"ghost\""),
        "{report}"
    );
    assert!(
        report.contains("#2 client 3 [40, never] put(\"k\", \"c\") -> unknown"),
        "{report}"
    );
}

/// xorshift64*: a deterministic generator, so a failing history is reproducible.
struct Rng(u64);

impl Rng {
    fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % bound
    }
}

/// A history of `clients` clients doing `op_count` ops on `keys` keys, each op taking effect at
/// a point strictly inside its interval (or, for some timed-out ops, never): linearizable by
/// construction, with many ops in flight at once.
fn generated_history(seed: u64, clients: u64, op_count: u64, keys: &[&str]) -> Vec<Operation> {
    const TIMEOUT: u64 = 400;
    let mut rng = Rng(seed);
    let mut free_at: Vec<u64> = (0..clients).map(|_| rng.below(50)).collect();
    let mut last_put: HashMap<&str, Vec<u8>> = HashMap::new();
    // (linearization point, op) for ops that take effect; the rest never do.
    let mut history: Vec<(Option<u64>, Operation)> = Vec::new();
    for n in 0..op_count {
        let client = (0..clients).min_by_key(|&c| free_at[c as usize]).unwrap();
        let invoke = free_at[client as usize];
        let key = keys[rng.below(keys.len() as u64) as usize];
        let fresh = format!("c{client}-{n}").into_bytes();
        let op = match rng.below(10) {
            0..=3 => {
                last_put.insert(key, fresh.clone());
                KvOp::Put {
                    key: bytes(key),
                    value: fresh,
                }
            }
            4..=6 => KvOp::Get { key: bytes(key) },
            _ => KvOp::Cas {
                key: bytes(key),
                expected: last_put.get(key).filter(|_| rng.below(4) != 0).cloned(),
                new: fresh,
            },
        };
        let duration = 2 + rng.below(200);
        let point = invoke + 1 + rng.below(duration - 1);
        let (complete, point) = match rng.below(20) {
            0 => (None, Some(point)),
            1 => (None, None),
            _ => (Some(invoke + duration), Some(point)),
        };
        free_at[client as usize] = complete.unwrap_or(invoke + TIMEOUT) + rng.below(30);
        let outcome = KvOutcome::Unknown;
        let operation = Operation {
            client,
            invoke,
            complete,
            op,
            outcome,
        };
        history.push((point, operation));
    }
    let mut order: Vec<usize> = (0..history.len())
        .filter(|&i| history[i].0.is_some())
        .collect();
    order.sort_by_key(|&i| history[i].0);
    let mut store: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
    for i in order {
        let op = &mut history[i].1;
        let outcome = match &op.op {
            KvOp::Put { key, value } => {
                store.insert(key.clone(), value.clone());
                KvOutcome::Put
            }
            KvOp::Get { key } => KvOutcome::Get(store.get(key).cloned()),
            KvOp::Cas { key, expected, new } => {
                let ok = store.get(key) == expected.as_ref();
                if ok {
                    store.insert(key.clone(), new.clone());
                }
                KvOutcome::Cas(ok)
            }
        };
        if op.complete.is_some() && rng.below(20) != 0 {
            op.outcome = outcome;
        }
    }
    history.into_iter().map(|(_, op)| op).collect()
}

#[test]
fn generated_concurrent_history_is_linearizable() {
    let history = generated_history(0x5EED, 12, 240, &["x", "y"]);
    let result = check_kv_with_limit(&history, 200_000);
    assert!(result.is_linearizable(), "{result}");
}

#[test]
fn generated_history_with_one_wrong_read_is_not_linearizable() {
    let mut history = generated_history(0x5EED, 12, 240, &["x", "y"]);
    let read = history
        .iter_mut()
        .rev()
        .find(|o| matches!(o.outcome, KvOutcome::Get(_)))
        .expect("the history has a completed read");
    read.outcome = KvOutcome::Get(Some(bytes("never written")));
    let key = String::from_utf8(read.op.key().clone()).unwrap();
    assert_not_linearizable_on(&history, &key);
}

#[test]
fn tiny_step_limit_gives_up_instead_of_deciding() {
    let history = generated_history(0x5EED, 12, 240, &["x", "y"]);
    let result = check_kv_with_limit(&history, 10);
    assert!(
        matches!(&result, CheckResult::GaveUp { key } if key == b"x"),
        "{result}"
    );
}

/// The register model applied to one op, or `None` if its output contradicts `state`.
fn oracle_step(state: &Option<Vec<u8>>, op: &Operation) -> Option<Option<Vec<u8>>> {
    match (&op.op, &op.outcome) {
        (KvOp::Put { value, .. }, _) => Some(Some(value.clone())),
        (KvOp::Get { .. }, KvOutcome::Get(seen)) => (seen == state).then(|| state.clone()),
        (KvOp::Get { .. }, _) => Some(state.clone()),
        (KvOp::Cas { expected, new, .. }, outcome) => {
            let ok = state == expected;
            if matches!(outcome, KvOutcome::Cas(reported) if *reported != ok) {
                return None;
            }
            Some(if ok { Some(new.clone()) } else { state.clone() })
        }
    }
}

/// `a` must be linearized before `b`: it returned no later than `b` was invoked, except that
/// instantaneous ops at the same instant are concurrent.
fn oracle_precedes(a: &Operation, b: &Operation) -> bool {
    let instant = |o: &Operation| o.complete == Some(o.invoke);
    let both_at_one_instant = instant(a) && instant(b) && a.invoke == b.invoke;
    a.complete.is_some_and(|c| c <= b.invoke) && !both_at_one_instant
}

/// Exhaustive search over orders of one key's ops; never-completed ops may be left out.
fn oracle_linearizable(ops: &[Operation], used: &mut [bool], state: &Option<Vec<u8>>) -> bool {
    let done = |used: &[bool]| (0..ops.len()).all(|i| used[i] || ops[i].complete.is_none());
    if done(used) {
        return true;
    }
    for i in 0..ops.len() {
        let blocked =
            (0..ops.len()).any(|j| !used[j] && j != i && oracle_precedes(&ops[j], &ops[i]));
        if used[i] || blocked {
            continue;
        }
        if let Some(next) = oracle_step(state, &ops[i]) {
            used[i] = true;
            if oracle_linearizable(ops, used, &next) {
                return true;
            }
            used[i] = false;
        }
    }
    false
}

fn random_small_history(rng: &mut Rng) -> Vec<Operation> {
    let value = |rng: &mut Rng| ["a", "b"][rng.below(2) as usize];
    let maybe_value = |rng: &mut Rng| ["a", "b", ""][rng.below(3) as usize];
    (0..1 + rng.below(6))
        .map(|client| {
            let invoke = rng.below(8);
            let mut op = match rng.below(3) {
                0 => put(client, invoke, invoke + rng.below(4), "k", value(rng)),
                1 => {
                    let seen = Some(maybe_value(rng)).filter(|v| !v.is_empty());
                    get(client, invoke, invoke + rng.below(4), "k", seen)
                }
                _ => {
                    let expected = Some(maybe_value(rng)).filter(|v| !v.is_empty());
                    let interval = (invoke, invoke + rng.below(4));
                    cas(
                        client,
                        interval,
                        "k",
                        expected,
                        value(rng),
                        rng.below(2) == 0,
                    )
                }
            };
            match rng.below(6) {
                0 => op.outcome = KvOutcome::Unknown,
                1 => (op.complete, op.outcome) = (None, KvOutcome::Unknown),
                _ => {}
            }
            op
        })
        .collect()
}

#[test]
fn verdicts_agree_with_exhaustive_search_on_small_histories() {
    let mut rng = Rng(0xC0FFEE);
    let mut verdicts = [0; 2];
    for _ in 0..3000 {
        let history = random_small_history(&mut rng);
        let expected = oracle_linearizable(&history, &mut vec![false; history.len()], &None);
        let result = check_kv(&history);
        assert_eq!(result.is_linearizable(), expected, "{result}\n{history:#?}");
        verdicts[usize::from(expected)] += 1;
    }
    assert!(
        verdicts.iter().all(|&n| n > 300),
        "both verdicts are exercised: {verdicts:?}"
    );
}
