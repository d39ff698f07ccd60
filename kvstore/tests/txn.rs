//! Transactions: compares, then-branch, else-branch, one revision.

mod common;

use common::*;
use synod_kvstore::{
    Compare, CompareOp, CompareTarget, ErrorCode, Op, Outcome, Txn, TxnOp, TxnOutcome, TxnResponse,
};

fn compare(key: &[u8], target: CompareTarget, op: CompareOp) -> Compare {
    Compare {
        key: key.to_vec(),
        target: target as i32,
        op: op as i32,
        value: Vec::new(),
        number: 0,
    }
}

fn number_is(key: &[u8], target: CompareTarget, op: CompareOp, number: u64) -> Compare {
    Compare {
        number,
        ..compare(key, target, op)
    }
}

fn txn(compares: Vec<Compare>, success: Vec<TxnOp>, failure: Vec<TxnOp>) -> Op {
    Op::Txn(Txn {
        compares,
        success,
        failure,
    })
}

fn run(h: &mut Harness, op: Op) -> TxnResponse {
    match h.op(op).outcome {
        Some(Outcome::Txn(t)) => t,
        other => panic!("txn answered {other:?}"),
    }
}

#[test]
fn txn_runs_success_when_every_compare_holds() {
    let mut h = Harness::new();
    h.op(put(b"a", b"1"));
    let t = run(
        &mut h,
        txn(
            vec![Compare::value(b"a", CompareOp::Equal, b"1")],
            vec![TxnOp::put(b"b", b"yes")],
            vec![TxnOp::put(b"b", b"no")],
        ),
    );
    assert!(t.succeeded);
    assert_eq!(h.get(b"b").unwrap().value, b"yes");
}

#[test]
fn txn_runs_failure_when_a_compare_fails() {
    let mut h = Harness::new();
    h.op(put(b"a", b"1"));
    let t = run(
        &mut h,
        txn(
            vec![
                Compare::value(b"a", CompareOp::Equal, b"1"),
                Compare::value(b"a", CompareOp::Greater, b"5"),
            ],
            vec![TxnOp::put(b"b", b"yes")],
            vec![TxnOp::put(b"b", b"no"), TxnOp::get(b"a")],
        ),
    );
    assert!(!t.succeeded);
    assert_eq!(t.responses.len(), 2);
    assert_eq!(h.get(b"b").unwrap().value, b"no");
    let Some(TxnOutcome::Get(g)) = &t.responses[1].outcome else {
        panic!("{t:?}")
    };
    assert_eq!(g.kv.as_ref().unwrap().value, b"1");
}

#[test]
fn txn_writes_share_one_revision() {
    let mut h = Harness::new();
    h.op(put(b"a", b"1"));
    let response = h.op(txn(
        vec![],
        vec![
            TxnOp::put(b"x", b"1"),
            TxnOp::put(b"y", b"2"),
            TxnOp::delete(b"a"),
        ],
        vec![],
    ));
    assert_eq!(response.revision, 2);
    assert_eq!(h.sm.revision(), 2);
    assert_eq!(h.get(b"x").unwrap().mod_revision, 2);
    assert_eq!(h.get(b"y").unwrap().mod_revision, 2);
    assert_eq!(h.get(b"a"), None);
}

#[test]
fn txn_without_effective_writes_keeps_the_revision() {
    let mut h = Harness::new();
    h.op(put(b"a", b"1"));
    run(
        &mut h,
        txn(
            vec![],
            vec![TxnOp::get(b"a"), TxnOp::delete(b"absent")],
            vec![],
        ),
    );
    assert_eq!(h.sm.revision(), 1);
}

#[test]
fn txn_get_sees_earlier_writes_of_its_branch() {
    let mut h = Harness::new();
    let t = run(
        &mut h,
        txn(
            vec![],
            vec![TxnOp::put(b"a", b"new"), TxnOp::get(b"a")],
            vec![],
        ),
    );
    let Some(TxnOutcome::Get(g)) = &t.responses[1].outcome else {
        panic!("{t:?}")
    };
    assert_eq!(g.kv.as_ref().unwrap().value, b"new");
}

#[test]
fn compares_on_numbers_cover_every_operator() {
    let mut h = Harness::new();
    h.op(put(b"a", b"1"));
    h.op(put(b"a", b"2"));
    // a: version 2, create_revision 1, mod_revision 2.
    let cases = [
        (CompareTarget::Version, CompareOp::Equal, 2, true),
        (CompareTarget::Version, CompareOp::NotEqual, 2, false),
        (CompareTarget::Version, CompareOp::Less, 3, true),
        (CompareTarget::Version, CompareOp::Greater, 2, false),
        (CompareTarget::CreateRevision, CompareOp::Equal, 1, true),
        (CompareTarget::CreateRevision, CompareOp::Greater, 0, true),
        (CompareTarget::ModRevision, CompareOp::Equal, 2, true),
        (CompareTarget::ModRevision, CompareOp::Less, 2, false),
    ];
    for (target, op, number, expected) in cases {
        let t = run(
            &mut h,
            txn(vec![number_is(b"a", target, op, number)], vec![], vec![]),
        );
        assert_eq!(t.succeeded, expected, "{target:?} {op:?} {number}");
    }
}

#[test]
fn compares_on_values_are_bytewise() {
    let mut h = Harness::new();
    h.op(put(b"a", b"m"));
    let cases = [
        (CompareOp::Equal, &b"m"[..], true),
        (CompareOp::NotEqual, b"m", false),
        (CompareOp::Less, b"n", true),
        (CompareOp::Less, b"m", false),
        (CompareOp::Greater, b"l", true),
        (CompareOp::Greater, b"m\x00", false),
    ];
    for (op, value, expected) in cases {
        let t = run(
            &mut h,
            txn(vec![Compare::value(b"a", op, value)], vec![], vec![]),
        );
        assert_eq!(t.succeeded, expected, "{op:?} {value:?}");
    }
}

#[test]
fn absent_key_compares_as_zero_and_has_no_value() {
    let mut h = Harness::new();
    let zero = number_is(b"nope", CompareTarget::Version, CompareOp::Equal, 0);
    assert!(run(&mut h, txn(vec![zero], vec![], vec![])).succeeded);
    let create = number_is(b"nope", CompareTarget::CreateRevision, CompareOp::Equal, 0);
    assert!(run(&mut h, txn(vec![create], vec![], vec![])).succeeded);
    for op in [
        CompareOp::Equal,
        CompareOp::NotEqual,
        CompareOp::Less,
        CompareOp::Greater,
    ] {
        let c = Compare::value(b"nope", op, b"x");
        assert!(
            !run(&mut h, txn(vec![c], vec![], vec![])).succeeded,
            "value {op:?} on an absent key is false"
        );
    }
}

#[test]
fn txn_writing_a_key_twice_in_a_branch_is_refused() {
    let mut h = Harness::new();
    let r = h.op(txn(
        vec![],
        vec![TxnOp::put(b"a", b"1"), TxnOp::delete(b"a")],
        vec![],
    ));
    assert_eq!(error_code(&r), ErrorCode::DuplicateTxnKey);
    assert_eq!(h.get(b"a"), None);
    // The same key in different branches, or read twice, is fine.
    let ok = h.op(txn(
        vec![],
        vec![TxnOp::put(b"a", b"1"), TxnOp::get(b"a"), TxnOp::get(b"a")],
        vec![TxnOp::put(b"a", b"2")],
    ));
    assert!(!ok.is_error());
}

#[test]
fn txn_with_unknown_enum_values_is_refused() {
    let mut h = Harness::new();
    let mut bad_target = Compare::value(b"a", CompareOp::Equal, b"");
    bad_target.target = 9;
    let r = h.op(txn(vec![bad_target], vec![TxnOp::put(b"x", b"1")], vec![]));
    assert_eq!(error_code(&r), ErrorCode::InvalidEnum);
    let mut bad_op = Compare::value(b"a", CompareOp::Equal, b"");
    bad_op.op = -1;
    let r = h.op(txn(vec![bad_op], vec![], vec![TxnOp::put(b"x", b"1")]));
    assert_eq!(error_code(&r), ErrorCode::InvalidEnum);
    assert_eq!(h.sm.revision(), 0);
}

#[test]
fn txn_op_without_an_op_is_refused() {
    let mut h = Harness::new();
    let r = h.op(txn(
        vec![],
        vec![TxnOp::put(b"x", b"1"), TxnOp { op: None }],
        vec![],
    ));
    assert_eq!(error_code(&r), ErrorCode::MissingOp);
    assert_eq!(h.get(b"x"), None);
}
