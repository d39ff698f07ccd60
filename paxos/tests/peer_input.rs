//! A peer that breaks a protocol rule is refused and logged: it never panics
//! the node, hangs it or makes it hold unbounded memory.

mod harness;

use harness::*;
use synod_paxos::{
    Ballot, Config, DurableState, Message, NodeId, Record, Replica, Role, Slot, SlotState, Value,
};

fn commands(text: &str) -> Value {
    Value::Commands(vec![text.as_bytes().to_vec()])
}

#[test]
fn a_prepare_with_a_round_past_the_highest_is_refused_and_the_node_still_campaigns() {
    let mut acceptor = replica(2, 3);
    for ballot in [Ballot::new(u32::MAX, NodeId(3)), Ballot(u64::MAX)] {
        acceptor.step(
            at_ms(1),
            envelope(
                3,
                2,
                Message::Prepare {
                    ballot,
                    first_slot: Slot(1),
                },
            ),
        );
        let ready = acceptor.ready();
        assert!(
            ready.persist.is_empty(),
            "no promise of {ballot} made durable"
        );
        assert!(ready.messages.is_empty(), "no promise of {ballot} sent");
    }
    assert_eq!(acceptor.status().promised, Ballot::ZERO);
    acceptor.campaign(at_ms(2));
    assert_eq!(acceptor.status().role, Role::Candidate);
}

#[test]
fn a_durable_promise_past_the_highest_round_is_refused_at_start() {
    // Storage admits rounds up to u32::MAX - 1; the core uses fewer.
    let durable = DurableState {
        promised: Ballot::new(Ballot::MAX_ROUND + 1, NodeId(3)),
        ..DurableState::default()
    };
    let config = Config::new(NodeId(2), members(3));
    let refused = Replica::new(config, durable, Slot(0), at_ms(0))
        .err()
        .expect("start refused");
    assert!(refused.0.contains("round"), "{refused}");
}

#[test]
fn a_promise_naming_a_slot_far_ahead_is_refused_and_the_new_leader_fills_no_such_slots() {
    let mut nodes = vec![replica(1, 3), replica(2, 3), replica(3, 3)];
    nodes[0].campaign(at_ms(1));
    let ballot = Ballot::new(1, NodeId(1));
    nodes[0].step(
        at_ms(1),
        envelope(
            2,
            1,
            Message::Promise {
                ballot,
                compacted_through: Slot(0),
                first_slot: Slot(1),
                slots: vec![(
                    Slot(100_000),
                    SlotState::Accepted {
                        ballot: Ballot::new(0, NodeId(2)),
                        value: Value::Noop,
                    },
                )],
                more_from: None,
            },
        ),
    );
    assert_eq!(nodes[0].status().role, Role::Candidate, "promise refused");
    // Node 3's honest promise (and node 1's own) elect it.
    let delivered = deliver_where(&mut nodes, at_ms(1), |e| e.to != NodeId(2));
    assert!(nodes[0].is_leader());
    let highest = delivered
        .sent
        .iter()
        .filter_map(|e| match &e.message {
            Message::Accept { entries, .. } => entries.last().map(|(slot, _)| *slot),
            _ => None,
        })
        .max();
    assert_eq!(highest, Some(Slot(1)), "only slot 1 is proposed");
}

#[test]
fn an_accept_for_a_slot_past_the_highest_is_refused() {
    let mut acceptor = replica(2, 3);
    let ballot = Ballot::new(1, NodeId(1));
    acceptor.step(
        at_ms(1),
        envelope(
            1,
            2,
            Message::Accept {
                ballot,
                entries: vec![(Slot(u64::MAX), Value::Noop)],
                commit: Slot(0),
                lazy: false,
            },
        ),
    );
    acceptor.step(
        at_ms(1),
        envelope(
            1,
            2,
            Message::Heartbeat {
                ballot,
                commit: Slot(u64::MAX),
                round: 1,
            },
        ),
    );
    let ready = acceptor.ready();
    assert!(
        !ready
            .persist
            .iter()
            .any(|r| matches!(r, Record::Accepted { .. })),
        "nothing accepted: {:?}",
        ready.persist
    );
    assert!(ready.messages.is_empty());
}

#[test]
fn a_value_contradicting_a_chosen_one_is_refused_without_a_panic() {
    let mut nodes = cluster_led_by_node_1(3);
    nodes[0].propose(at_ms(2), b"a".to_vec()).unwrap();
    deliver_all(&mut nodes, at_ms(2));
    nodes[0].tick(at_ms(60));
    deliver_all(&mut nodes, at_ms(60));
    assert_eq!(nodes[1].chosen(Slot(2)), Some(&commands("a")));
    // A fetch reply and an accept that say otherwise.
    nodes[1].step(
        at_ms(61),
        envelope(
            3,
            2,
            Message::Chosen {
                entries: vec![(Slot(2), commands("b"))],
            },
        ),
    );
    nodes[1].step(
        at_ms(61),
        envelope(
            1,
            2,
            Message::Accept {
                ballot: Ballot::new(1, NodeId(1)),
                entries: vec![(Slot(2), commands("b"))],
                commit: Slot(2),
                lazy: false,
            },
        ),
    );
    assert_eq!(nodes[1].chosen(Slot(2)), Some(&commands("a")));
    // The leader refuses a fetch reply contradicting what it proposes.
    nodes[0].propose(at_ms(62), b"c".to_vec()).unwrap();
    nodes[0].step(
        at_ms(62),
        envelope(
            2,
            1,
            Message::Chosen {
                entries: vec![(Slot(3), commands("d"))],
            },
        ),
    );
    deliver_all(&mut nodes, at_ms(62));
    assert_eq!(nodes[0].chosen(Slot(3)), Some(&commands("c")));
}

#[test]
fn a_fetch_reply_naming_one_slot_twice_is_refused() {
    let mut follower = replica(2, 3);
    follower.step(
        at_ms(1),
        envelope(
            1,
            2,
            Message::Chosen {
                entries: vec![(Slot(1), commands("x")), (Slot(1), commands("y"))],
            },
        ),
    );
    assert_eq!(follower.chosen(Slot(1)), None);
    assert_eq!(follower.commit_index(), Slot(0));
}

#[test]
fn promises_reporting_two_chosen_values_for_one_slot_do_not_panic_the_candidate() {
    let mut candidate = replica(1, 5);
    candidate.campaign(at_ms(1));
    candidate.ready();
    let ballot = Ballot::new(1, NodeId(1));
    let promise = |from: u32, slots: Vec<(Slot, SlotState)>| {
        envelope(
            from,
            1,
            Message::Promise {
                ballot,
                compacted_through: Slot(0),
                first_slot: Slot(1),
                slots,
                more_from: None,
            },
        )
    };
    candidate.step(
        at_ms(2),
        promise(2, vec![(Slot(1), SlotState::Chosen(commands("x")))]),
    );
    candidate.step(
        at_ms(2),
        promise(3, vec![(Slot(1), SlotState::Chosen(commands("y")))]),
    );
    assert_eq!(
        candidate.status().role,
        Role::Candidate,
        "the contradicting promise does not count"
    );
    candidate.step(at_ms(2), promise(4, vec![]));
    // With its own promise, durable now, it holds a quorum.
    durable_ready(&mut candidate, at_ms(2));
    assert!(candidate.is_leader());
    assert_eq!(candidate.chosen(Slot(1)), Some(&commands("x")));
}
