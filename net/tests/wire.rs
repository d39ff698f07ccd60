//! The peer wire format: every message round-trips, and no input panics.

use synod_net::{decode_peer, encode_peer, WireError};
use synod_paxos::{Ballot, Envelope, Message, NodeId, Rng, Slot, SlotState, Value};

fn value(rng: &mut Rng) -> Value {
    if rng.chance(1, 4) {
        Value::Noop
    } else {
        let commands = (0..rng.below(4))
            .map(|_| (0..rng.below(40)).map(|_| rng.next_u64() as u8).collect())
            .collect();
        Value::Commands(commands)
    }
}

fn entries(rng: &mut Rng) -> Vec<(Slot, Value)> {
    (0..rng.below(5))
        .map(|_| (Slot(rng.next_u64()), value(rng)))
        .collect()
}

/// One message of every variant, with random field values.
fn every_variant(rng: &mut Rng) -> Vec<Message> {
    let ballot = Ballot(rng.next_u64());
    vec![
        Message::Prepare {
            ballot,
            first_slot: Slot(rng.next_u64()),
        },
        Message::Promise {
            ballot,
            compacted_through: Slot(rng.next_u64()),
            first_slot: Slot(rng.next_u64()),
            more_from: rng.chance(1, 2).then(|| Slot(rng.next_u64() | 1)),
            slots: (0..rng.below(5))
                .map(|_| {
                    let state = if rng.chance(1, 2) {
                        SlotState::Chosen(value(rng))
                    } else {
                        SlotState::Accepted {
                            ballot: Ballot(rng.next_u64()),
                            value: value(rng),
                        }
                    };
                    (Slot(rng.next_u64()), state)
                })
                .collect(),
        },
        Message::Accept {
            ballot,
            entries: entries(rng),
            commit: Slot(rng.next_u64()),
            lazy: rng.chance(1, 2),
        },
        Message::Accepted {
            ballot,
            slots: (0..rng.below(6)).map(|_| Slot(rng.next_u64())).collect(),
        },
        Message::Reject {
            ballot,
            promised: Ballot(rng.next_u64()),
        },
        Message::Heartbeat {
            ballot,
            commit: Slot(rng.next_u64()),
            round: rng.next_u64(),
        },
        Message::HeartbeatAck {
            ballot,
            round: rng.next_u64(),
            commit: Slot(rng.next_u64()),
        },
        Message::Fetch {
            first_slot: Slot(rng.next_u64()),
        },
        Message::Chosen {
            entries: entries(rng),
        },
        Message::ReadIndex {
            request: rng.next_u64(),
        },
        Message::ReadIndexReply {
            ballot,
            request: rng.next_u64(),
            index: Some(Slot(rng.next_u64())),
        },
        Message::ReadIndexReply {
            ballot,
            request: rng.next_u64(),
            index: None,
        },
    ]
}

fn envelope(rng: &mut Rng, message: Message) -> Envelope {
    Envelope {
        from: NodeId(rng.next_u64() as u32),
        to: NodeId(rng.next_u64() as u32),
        message,
    }
}

#[test]
fn every_variant_round_trips() {
    let mut rng = Rng::new(7);
    for _ in 0..200 {
        for message in every_variant(&mut rng) {
            let original = envelope(&mut rng, message);
            let decoded = decode_peer(&encode_peer(&original)).expect("decodes");
            assert_eq!(decoded, original);
        }
    }
}

#[test]
fn zero_values_and_empty_batches_round_trip() {
    // Proto3 leaves zero scalars off the wire; an empty command batch must
    // still differ from a no-op.
    for value in [
        Value::Noop,
        Value::Commands(vec![]),
        Value::Commands(vec![vec![]]),
        Value::Reconfigure(synod_paxos::Change::Promote(NodeId(4))),
        Value::Reconfigure(synod_paxos::Change::AddLearner {
            id: NodeId(5),
            peer_addr: "127.0.0.1:7001".into(),
            client_addr: "127.0.0.1:7002".into(),
        }),
    ] {
        let original = Envelope {
            from: NodeId(0),
            to: NodeId(0),
            message: Message::Chosen {
                entries: vec![(Slot(0), value)],
            },
        };
        assert_eq!(decode_peer(&encode_peer(&original)).unwrap(), original);
    }
}

#[test]
fn an_envelope_without_a_message_is_a_missing_field_error() {
    assert_eq!(decode_peer(&[]), Err(WireError::MissingField("message")));
    // from = 1, to = 2, nothing else.
    assert_eq!(
        decode_peer(&[0x08, 0x01, 0x10, 0x02]),
        Err(WireError::MissingField("message"))
    );
}

#[test]
fn a_slot_without_a_value_is_a_missing_field_error() {
    // Chosen (field 18) holding one SlotValue (field 1) with only slot = 5.
    let slot_value = [0x08, 0x05];
    let chosen = [&[0x0a, slot_value.len() as u8][..], &slot_value].concat();
    let envelope = [&[0x92, 0x01, chosen.len() as u8][..], &chosen].concat();
    assert_eq!(
        decode_peer(&envelope),
        Err(WireError::MissingField("value"))
    );
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = Rng::new(11);
    for _ in 0..20_000 {
        let len = rng.below(64) as usize;
        let bytes: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
        let _ = decode_peer(&bytes);
    }
}

#[test]
fn mutated_and_truncated_encodings_never_panic() {
    let mut rng = Rng::new(13);
    for _ in 0..300 {
        for message in every_variant(&mut rng) {
            let bytes = encode_peer(&envelope(&mut rng, message));
            for cut in 0..bytes.len() {
                let _ = decode_peer(&bytes[..cut]);
            }
            for _ in 0..8 {
                let mut mutated = bytes.clone();
                if mutated.is_empty() {
                    break;
                }
                let at = rng.below(mutated.len() as u64) as usize;
                mutated[at] ^= 1 << rng.below(8);
                let _ = decode_peer(&mutated);
            }
        }
    }
}

#[test]
fn no_encoded_message_is_larger_than_its_size_bound() {
    // The core cuts messages by `Message::size_bound_bytes`; the bound must
    // hold for the widest numbers (ten-byte varints) and for large commands.
    let mut rng = Rng::new(11);
    for _ in 0..200 {
        for message in every_variant(&mut rng) {
            let bound = message.size_bound_bytes();
            let encoded = encode_peer(&envelope(&mut rng, message)).len();
            assert!(encoded <= bound, "{encoded} encoded bytes, bound {bound}");
        }
    }
    let widest = Envelope {
        from: NodeId(u32::MAX),
        to: NodeId(u32::MAX),
        message: Message::Promise {
            ballot: Ballot(u64::MAX),
            compacted_through: Slot(u64::MAX),
            first_slot: Slot(u64::MAX),
            more_from: Some(Slot(u64::MAX)),
            slots: vec![(
                Slot(u64::MAX),
                SlotState::Accepted {
                    ballot: Ballot(u64::MAX),
                    value: Value::Commands(vec![vec![7; 300_000], vec![]]),
                },
            )],
        },
    };
    assert!(encode_peer(&widest).len() <= widest.message.size_bound_bytes());
}
