//! Decoding and validation of untrusted requests against the limits.

mod common;

use common::*;
use prost::Message;
use synod_kvstore::{
    Compare, ErrorCode, Expected, Get, Op, Put, Request, RequestError, Txn, TxnOp, TxnOpKind,
};
use synod_wire::limits::{
    MAX_KEY_BYTES, MAX_REQUEST_BYTES, MAX_RESPONSE_FRAME_BYTES, MAX_SCAN_LIMIT, MAX_TXN_OPS,
    MAX_VALUE_BYTES,
};

fn refused(op: Op) -> RequestError {
    Request::anonymous(op)
        .validate()
        .expect_err("request should be refused")
}

#[test]
fn garbage_bytes_are_a_malformed_request() {
    for bytes in [
        &[0xffu8, 0xff, 0xff][..],
        &[0x0a, 0x05, 0x01],
        &[0x1a, 0x80],
    ] {
        assert!(matches!(
            Request::decode_validated(bytes),
            Err(RequestError::Malformed(_))
        ));
    }
}

#[test]
fn a_request_without_an_op_is_refused() {
    assert_eq!(
        Request::decode_validated(&[]),
        Err(RequestError::MissingOp("request"))
    );
}

#[test]
fn oversized_encoded_requests_are_refused_before_decoding() {
    let bytes = vec![0u8; MAX_REQUEST_BYTES + 1];
    assert!(matches!(
        Request::decode_validated(&bytes),
        Err(RequestError::RequestTooLarge { .. })
    ));
}

#[test]
fn keys_must_be_non_empty_and_within_the_limit() {
    assert_eq!(refused(get(b"")), RequestError::EmptyKey);
    assert_eq!(refused(put(b"", b"v")), RequestError::EmptyKey);
    assert_eq!(refused(incr(b"", 1)), RequestError::EmptyKey);
    let max = vec![b'k'; MAX_KEY_BYTES];
    assert!(Request::anonymous(put(&max, b"v")).validate().is_ok());
    let over = vec![b'k'; MAX_KEY_BYTES + 1];
    assert_eq!(
        refused(put(&over, b"v")),
        RequestError::KeyTooLarge {
            size_bytes: MAX_KEY_BYTES + 1,
            limit_bytes: MAX_KEY_BYTES
        }
    );
    assert!(matches!(
        refused(scan(b"", b"", &over, 0)),
        RequestError::KeyTooLarge { .. }
    ));
    assert!(matches!(
        refused(delete_range(&over, b"", b"")),
        RequestError::KeyTooLarge { .. }
    ));
}

#[test]
fn values_must_be_within_the_limit() {
    let max = vec![0u8; MAX_VALUE_BYTES];
    assert!(Request::anonymous(put(b"k", &max)).validate().is_ok());
    let over = vec![0u8; MAX_VALUE_BYTES + 1];
    assert!(matches!(
        refused(put(b"k", &over)),
        RequestError::ValueTooLarge { .. }
    ));
    assert!(matches!(
        refused(cas(b"k", Some(Expected::Value(over.clone())), b"")),
        RequestError::ValueTooLarge { .. }
    ));
    assert!(matches!(
        refused(cas(b"k", None, &over)),
        RequestError::ValueTooLarge { .. }
    ));
}

#[test]
fn scan_limit_must_be_within_the_maximum() {
    assert!(Request::anonymous(scan(b"", b"", b"", MAX_SCAN_LIMIT))
        .validate()
        .is_ok());
    assert_eq!(
        refused(scan(b"", b"", b"", MAX_SCAN_LIMIT + 1)),
        RequestError::ScanLimitTooLarge {
            limit: MAX_SCAN_LIMIT + 1,
            max: MAX_SCAN_LIMIT
        }
    );
}

fn get_op(i: usize) -> TxnOp {
    TxnOp {
        op: Some(TxnOpKind::Get(Get {
            key: i.to_string().into_bytes(),
        })),
    }
}

#[test]
fn each_txn_list_is_bounded() {
    let ops: Vec<TxnOp> = (0..MAX_TXN_OPS).map(get_op).collect();
    let ok = Txn {
        compares: vec![],
        success: ops.clone(),
        failure: ops.clone(),
    };
    assert!(Request::anonymous(Op::Txn(ok)).validate().is_ok());
    let too_many: Vec<TxnOp> = (0..=MAX_TXN_OPS).map(get_op).collect();
    let txn = Txn {
        compares: vec![],
        success: vec![],
        failure: too_many,
    };
    assert_eq!(
        refused(Op::Txn(txn)),
        RequestError::TxnTooLarge {
            list: "failure ops",
            count: MAX_TXN_OPS + 1,
            limit: MAX_TXN_OPS
        }
    );
    let compares = vec![
        Compare {
            key: b"k".to_vec(),
            ..Default::default()
        };
        MAX_TXN_OPS + 1
    ];
    let txn = Txn {
        compares,
        ..Default::default()
    };
    assert!(matches!(
        refused(Op::Txn(txn)),
        RequestError::TxnTooLarge {
            list: "compares",
            ..
        }
    ));
}

#[test]
fn txn_puts_obey_key_and_value_limits() {
    let txn = Txn {
        success: vec![TxnOp {
            op: Some(TxnOpKind::Put(Put {
                key: Vec::new(),
                value: Vec::new(),
                prev_kv: false,
            })),
        }],
        ..Default::default()
    };
    assert_eq!(refused(Op::Txn(txn)), RequestError::EmptyKey);
}

#[test]
fn clients_number_requests_from_one() {
    let request = Request::from_client(7, 0, get(b"a"));
    assert_eq!(
        request.validate(),
        Err(RequestError::ZeroSequence { client_id: 7 })
    );
    assert!(Request::anonymous(get(b"a")).validate().is_ok());
}

#[test]
fn invalid_commands_get_an_error_response_and_the_slot_still_applies() {
    let mut h = Harness::new();
    let responses = h.apply_raw(&[
        vec![0xff, 0xff],
        Request::anonymous(put(b"", b"v")).encode_to_vec(),
        Request::anonymous(put(b"a", b"1")).encode_to_vec(),
        vec![],
    ]);
    let codes: Vec<Option<ErrorCode>> = responses
        .iter()
        .map(|r| r.as_error().map(|e| e.error_code()))
        .collect();
    assert_eq!(
        codes,
        vec![
            Some(ErrorCode::Malformed),
            Some(ErrorCode::EmptyKey),
            None,
            Some(ErrorCode::MissingOp)
        ]
    );
    assert_eq!(h.sm.applied_index(), 1);
    assert_eq!(h.get(b"a").unwrap().value, b"1");
}

#[test]
fn error_messages_say_what_is_wrong() {
    let e = RequestError::KeyTooLarge {
        size_bytes: 5000,
        limit_bytes: 4096,
    };
    assert_eq!(e.to_string(), "key too large: 5000 bytes, limit 4096");
    let e = RequestError::StaleSequence {
        client_id: 3,
        seq: 4,
        last_seq: 6,
    };
    assert_eq!(
        e.to_string(),
        "stale sequence 4 from client 3: its last applied request is 6"
    );
}

#[test]
fn reads_outside_the_log_are_validated_too() {
    let h = Harness::new();
    let r = h.sm.read(&get(b"")).unwrap();
    assert_eq!(error_code(&r), ErrorCode::EmptyKey);
}

/// A transaction whose gets would return more data than an answer may carry is refused before
/// it writes anything; before this rule its writes applied and its answer (over the 16 MiB
/// response frame) could not reach the client, which was told the request was bad.
#[test]
fn a_txn_whose_answer_would_outgrow_its_frame_is_refused_and_changes_nothing() {
    let mut h = Harness::new();
    let big = vec![b'v'; MAX_VALUE_BYTES];
    for key in [b"a", b"b", b"c", b"d", b"e"] {
        h.op(put(key, &big));
    }
    // A write first, then five reads of 4 MiB each (one of them of the key just written).
    let txn = Txn {
        success: vec![
            TxnOp::put(b"a", &big),
            TxnOp::get(b"a"),
            TxnOp::get(b"b"),
            TxnOp::get(b"c"),
            TxnOp::get(b"d"),
            TxnOp::get(b"e"),
        ],
        ..Default::default()
    };
    let revision = h.get(b"a").expect("a exists").mod_revision;
    let response = h.op(Op::Txn(txn));
    assert_eq!(error_code(&response), ErrorCode::ResponseTooLarge);
    assert!(response.encoded_len() <= MAX_RESPONSE_FRAME_BYTES);
    assert_eq!(
        h.get(b"a").expect("a exists").mod_revision,
        revision,
        "the refused transaction's put was not applied"
    );

    // Reads of keys the branch deletes first count nothing: the same transaction with the
    // reads after deletes fits.
    let txn = Txn {
        success: [b"a", b"b", b"c", b"d", b"e"]
            .iter()
            .map(|key| TxnOp::delete(*key))
            .chain(
                [b"a", b"b", b"c", b"d", b"e"]
                    .iter()
                    .map(|key| TxnOp::get(*key)),
            )
            .collect(),
        ..Default::default()
    };
    let response = h.op(Op::Txn(txn));
    assert!(response.as_error().is_none(), "{response:?}");
    assert!(h.get(b"a").is_none());

    // Three 4 MiB reads fit within MAX_REPLY_BYTES; the answer fits its frame.
    for key in [b"a", b"b", b"c"] {
        h.op(put(key, &big));
    }
    let txn = Txn {
        success: vec![TxnOp::get(b"a"), TxnOp::get(b"b")],
        ..Default::default()
    };
    let response = h.op(Op::Txn(txn));
    assert!(response.as_error().is_none());
    assert!(response.encoded_len() <= MAX_RESPONSE_FRAME_BYTES);
}
