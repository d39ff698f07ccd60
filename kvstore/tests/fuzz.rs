//! Untrusted bytes never panic decoding or apply: random bytes, and mutated valid requests.
//!
//! A hand-written deterministic generator (no extra dependency): every case derives from a
//! seed that the failure message names.

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};

use common::generate::Clients;
use common::*;
use prost::Message;
use synod_kvstore::{Request, StateMachine};

fn mutate(rng: &mut Rng, mut bytes: Vec<u8>) -> Vec<u8> {
    for _ in 0..=rng.below(3) {
        match rng.below(5) {
            0 if !bytes.is_empty() => {
                let i = rng.below(bytes.len() as u64) as usize;
                bytes[i] ^= 1 << rng.below(8);
            }
            1 if !bytes.is_empty() => {
                let len = rng.below(bytes.len() as u64) as usize;
                bytes.truncate(len);
            }
            2 => {
                let i = rng.below(bytes.len() as u64 + 1) as usize;
                bytes.insert(i, rng.next_u64() as u8);
            }
            3 if !bytes.is_empty() => {
                // A varint that claims a huge length or tag.
                let i = rng.below(bytes.len() as u64) as usize;
                bytes.splice(i..i, [0xff, 0xff, 0xff, 0xff, 0x0f]);
            }
            _ => bytes.extend(rng.bytes(8)),
        }
    }
    bytes
}

/// Decode `bytes`, turning a panic into a failure that names the seed and input.
fn decode_must_not_panic(seed: u64, bytes: &[u8]) {
    let outcome = catch_unwind(|| Request::decode_validated(bytes));
    assert!(
        outcome.is_ok(),
        "seed {seed}: decoding {bytes:02x?} panicked"
    );
}

#[test]
fn random_bytes_never_panic_decoding() {
    for seed in 0..100_000 {
        let mut rng = Rng(seed);
        let bytes = rng.bytes(64);
        decode_must_not_panic(seed, &bytes);
    }
}

#[test]
fn mutated_requests_never_panic_decoding() {
    let mut clients = Clients::new(4);
    for seed in 0..100_000 {
        let mut rng = Rng(seed);
        let valid = clients.request(&mut rng).encode_to_vec();
        decode_must_not_panic(seed, &mutate(&mut rng, valid));
    }
}

#[test]
fn random_and_mutated_commands_never_panic_apply() {
    for seed in 0..500 {
        let mut rng = Rng(seed);
        let mut clients = Clients::new(4);
        let mut sm = StateMachine::in_memory().unwrap();
        for slot in 1..=20 {
            let batch: Vec<Vec<u8>> = (0..rng.below(6))
                .map(|_| match rng.below(3) {
                    0 => rng.bytes(48),
                    1 => {
                        let valid = clients.request(&mut rng).encode_to_vec();
                        mutate(&mut rng, valid)
                    }
                    _ => clients.request(&mut rng).encode_to_vec(),
                })
                .collect();
            let outcome = catch_unwind(AssertUnwindSafe(|| {
                sm.apply_slots([(slot, batch.as_slice())])
            }));
            let responses = match outcome {
                Ok(result) => result.unwrap().remove(0).responses,
                Err(_) => panic!("seed {seed} slot {slot}: apply of {batch:02x?} panicked"),
            };
            assert_eq!(responses.len(), batch.len(), "seed {seed} slot {slot}");
            assert_eq!(sm.applied_index(), slot);
        }
    }
}
