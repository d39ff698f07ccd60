//! Messages, pending commands and the log are bounded in bytes, not only in
//! counts, and large slots still travel.

mod harness;

use harness::*;
use synod_paxos::{
    Ballot, Config, DurableState, Message, NodeId, Record, Replica, Slot, Unavailable, Value,
};

const MIB: usize = 1 << 20;

/// Command bytes a message carries.
fn payload(message: &Message) -> usize {
    match message {
        Message::Accept { entries, .. } | Message::Chosen { entries } => {
            entries.iter().map(|(_, v)| v.payload_bytes()).sum()
        }
        Message::Promise { slots, .. } => {
            slots.iter().map(|(_, s)| s.value().payload_bytes()).sum()
        }
        _ => 0,
    }
}

fn big(fill: u8, bytes: usize) -> Vec<u8> {
    vec![fill; bytes]
}

#[test]
fn fetch_replies_stay_within_the_message_byte_bound_and_the_follower_catches_up() {
    let mut nodes = cluster_led_by_node_1(3);
    let max = Config::new(NodeId(1), members(3)).max_message_bytes;
    // 20 slots of 1 MiB each, chosen while node 3 is cut off.
    for i in 0..20 {
        nodes[0].propose(at_ms(2), big(i, MIB)).unwrap();
    }
    deliver_where(&mut nodes, at_ms(2), |e| {
        e.to != NodeId(3) && e.from != NodeId(3)
    });
    assert!(nodes[0].commit_index() >= Slot(21));
    nodes[0].tick(at_ms(60));
    let delivered = deliver_all(&mut nodes, at_ms(60));
    let replies: Vec<usize> = delivered
        .sent
        .iter()
        .filter(|e| matches!(e.message, Message::Chosen { .. }))
        .map(|e| payload(&e.message))
        .collect();
    assert!(replies.len() > 1, "cut into several replies: {replies:?}");
    assert!(replies.iter().all(|bytes| *bytes <= max), "{replies:?}");
    assert_eq!(nodes[2].commit_index(), nodes[0].commit_index());
}

#[test]
fn accepts_of_large_slots_are_cut_to_the_message_byte_bound() {
    let mut nodes = cluster_led_by_node_1(3);
    let max = Config::new(NodeId(1), members(3)).max_message_bytes;
    // Three slots of one 4 MiB command each: 12 MiB in flight, all lost
    // once, so the leader retransmits them together.
    for i in 0..3 {
        nodes[0].propose(at_ms(2), big(i, 4 * MIB)).unwrap();
    }
    nodes[0].ready();
    nodes[0].tick(at_ms(60));
    let delivered = deliver_all(&mut nodes, at_ms(60));
    let accepts: Vec<usize> = delivered
        .sent
        .iter()
        .filter(|e| matches!(e.message, Message::Accept { .. }) && e.to == NodeId(2))
        .map(|e| payload(&e.message))
        .collect();
    assert_eq!(accepts.len(), 3, "{accepts:?}");
    assert!(accepts.iter().all(|bytes| *bytes <= max), "{accepts:?}");
    assert_eq!(nodes[0].commit_index(), Slot(4));
}

#[test]
fn a_promise_too_large_for_one_message_comes_in_chunks_and_the_leader_recovers_every_slot() {
    // Nodes 2 and 3 accepted 12 slots of 1 MiB at node 2's ballot, chosen
    // nowhere; node 1 saw that ballot. All three restart.
    let old = Ballot::new(1, NodeId(2));
    let values: Vec<Value> = (0..12)
        .map(|i| Value::Commands(vec![big(i, MIB)]))
        .collect();
    let mut holding = DurableState::default();
    holding.apply(Record::Promised(old));
    for (i, value) in values.iter().enumerate() {
        holding.apply(Record::Accepted {
            slot: Slot(i as u64 + 1),
            ballot: old,
            value: value.clone(),
        });
    }
    let mut empty = DurableState::default();
    empty.apply(Record::Promised(old));
    let start = |id: u32, durable: DurableState| {
        Replica::new(
            Config::new(NodeId(id), members(3)),
            durable,
            Slot(0),
            at_ms(0),
        )
        .unwrap()
    };
    let mut nodes = vec![
        start(1, empty),
        start(2, holding.clone()),
        start(3, holding),
    ];
    let max = Config::new(NodeId(1), members(3)).max_message_bytes;
    let now = at_ms(1_000);
    nodes[0].campaign(now);
    let delivered = deliver_all(&mut nodes, now);
    let promises: Vec<usize> = delivered
        .sent
        .iter()
        .filter(|e| matches!(e.message, Message::Promise { .. }))
        .map(|e| payload(&e.message))
        .collect();
    assert!(promises.len() >= 2, "{promises:?}");
    assert!(promises.iter().all(|bytes| *bytes <= max), "{promises:?}");
    assert!(nodes[0].is_leader());
    let recovered: Vec<Value> = delivered.applied[0]
        .iter()
        .take(12)
        .map(|(_, value)| value.clone())
        .collect();
    assert_eq!(recovered, values, "every accepted value re-proposed");
    assert!(matches!(
        nodes[0].chosen(Slot(12)),
        Some(Value::Commands(_))
    ));
}

#[test]
fn proposals_beyond_the_pending_byte_bound_are_refused_busy() {
    let mut nodes = cluster_led_by_node_1(3);
    let config = Config::new(NodeId(1), members(3));
    let max_pending = config.max_pending_bytes;
    // Fill the pipeline window, then the queue.
    for i in 0..config.max_inflight_slots as u8 {
        nodes[0].propose(at_ms(2), big(i, MIB)).unwrap();
    }
    let mut taken = 0;
    let refused = loop {
        match nodes[0].propose(at_ms(2), big(9, MIB)) {
            Ok(()) => taken += 1,
            Err(e) => break e,
        }
        assert!(taken <= 1_000, "never refused");
    };
    assert_eq!(refused, Unavailable::Busy);
    assert_eq!(taken, max_pending / MIB);
    // Once slots are chosen the queue drains and takes commands again.
    deliver_all(&mut nodes, at_ms(2));
    nodes[0].propose(at_ms(3), big(9, MIB)).unwrap();
}

#[test]
fn the_leader_opens_no_slot_while_the_log_is_over_its_byte_bound() {
    let mut config = Config::new(NodeId(1), vec![NodeId(1)]);
    config.max_log_bytes = 10_000;
    let mut leader = with_config(config);
    leader.campaign(at_ms(1));
    durable_ready(&mut leader, at_ms(1));
    assert!(leader.is_leader());
    let mut proposed = 0;
    while leader.propose(at_ms(2), big(1, 1_000)).is_ok() {
        // Its own acceptance, durable at once, chooses the slot.
        durable_ready(&mut leader, at_ms(2));
        proposed += 1;
        assert!(proposed < 100, "never refused");
    }
    assert!(leader.log_bytes() > 10_000);
    assert!(
        leader.log_bytes() < 10_000 + 2_000,
        "{}",
        leader.log_bytes()
    );
    assert_eq!(
        leader.propose(at_ms(2), b"x".to_vec()),
        Err(Unavailable::Busy)
    );
    durable_ready(&mut leader, at_ms(2));
    leader.ready();
    leader.compact(leader.commit_index());
    assert_eq!(leader.log_bytes(), 0);
    leader.propose(at_ms(3), b"x".to_vec()).unwrap();
}
