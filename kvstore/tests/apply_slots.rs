//! `apply_slots` of several slots in one transaction is exactly `apply_slots` slot by slot: same
//! responses, effects, revisions and final state, with random requests (some invalid, some
//! replayed) over a small keyspace.

mod common;

use common::generate::Clients;
use common::*;
use prost::Message;
use synod_kvstore::StateMachine;

#[test]
fn applying_slots_together_equals_applying_them_one_by_one() {
    for seed in 0..200 {
        let mut rng = Rng(seed);
        let mut clients = Clients::new(4);
        let slots: Vec<(u64, Vec<Vec<u8>>)> = (1..=24)
            .map(|slot| {
                let batch = (0..rng.below(5))
                    .map(|_| clients.request(&mut rng).encode_to_vec())
                    .collect();
                (slot, batch)
            })
            .collect();

        let mut one_by_one = StateMachine::in_memory().unwrap();
        let mut expected = Vec::new();
        for (slot, commands) in &slots {
            let a = one_by_one
                .apply_slots([(*slot, commands.as_slice())])
                .unwrap()
                .remove(0);
            expected.push((a.responses, a.effects, one_by_one.revision()));
        }

        let mut together = StateMachine::in_memory().unwrap();
        let mut got = Vec::new();
        // Uneven groups, so group boundaries fall everywhere.
        for group in slots.chunks(1 + rng.below(7) as usize) {
            let applied = together
                .apply_slots(group.iter().map(|(slot, c)| (*slot, c.as_slice())))
                .unwrap();
            assert_eq!(applied.len(), group.len(), "seed {seed}");
            got.extend(
                applied
                    .into_iter()
                    .map(|a| (a.responses, a.effects, a.revision)),
            );
        }

        assert_eq!(
            got, expected,
            "seed {seed}: responses, effects or revisions differ"
        );
        assert_eq!(together.applied_index(), 24, "seed {seed}");
        assert_eq!(
            together.state_hash().unwrap(),
            one_by_one.state_hash().unwrap(),
            "seed {seed}: final states differ"
        );
    }
}

#[test]
#[should_panic(expected = "strictly in order")]
fn applying_slots_out_of_order_panics() {
    let mut sm = StateMachine::in_memory().unwrap();
    let empty: Vec<Vec<u8>> = Vec::new();
    let _ = sm.apply_slots([(1, empty.as_slice()), (3, empty.as_slice())]);
}
