//! Focused tests of one replica's rules, with a hand-driven network.

use std::time::Duration;

use synod_paxos::{
    Ballot, Config, DurableState, Envelope, Instant, Message, NodeId, Ready, Record, Replica, Slot,
    SlotState, Unavailable, Value,
};

fn members(n: u32) -> Vec<NodeId> {
    (1..=n).map(NodeId).collect()
}

fn at_ms(ms: u64) -> Instant {
    Instant::from_micros(ms * 1000)
}

fn replica(id: u32, n: u32) -> Replica {
    Replica::new(
        Config::new(NodeId(id), members(n)),
        DurableState::default(),
        Slot(0),
        at_ms(0),
    )
    .unwrap()
}

/// Takes `node`'s output and reports its records durable at once (a disk
/// that syncs instantly), so its own acceptor's replies reach its proposer.
fn durable_ready(node: &mut Replica, now: Instant) -> Ready {
    let ready = node.ready();
    node.persisted(now, ready.seq);
    ready
}

/// Delivers every message among `nodes` until none is left, at `now`;
/// returns what each node applied and which reads it released.
fn deliver_all(nodes: &mut [Replica], now: Instant) -> (Vec<Vec<(Slot, Value)>>, Vec<u64>) {
    let mut applied = vec![Vec::new(); nodes.len()];
    let mut reads = Vec::new();
    loop {
        let mut in_flight = Vec::new();
        let mut quiet = true;
        for (i, node) in nodes.iter_mut().enumerate() {
            let ready = durable_ready(node, now);
            quiet &= ready.is_empty();
            applied[i].extend(ready.committed);
            reads.extend(ready.reads);
            in_flight.extend(ready.messages);
        }
        if quiet {
            return (applied, reads);
        }
        for envelope in in_flight {
            nodes[envelope.to.0 as usize - 1].step(now, envelope);
        }
    }
}

fn prepare(from: u32, to: u32, round: u32) -> Envelope {
    Envelope {
        from: NodeId(from),
        to: NodeId(to),
        message: Message::Prepare {
            ballot: Ballot::new(round, NodeId(from)),
            first_slot: Slot(1),
        },
    }
}

#[test]
fn promise_is_persisted_in_the_same_ready_as_the_promise_message() {
    let mut acceptor = replica(2, 3);
    acceptor.step(at_ms(1), prepare(1, 2, 1));
    let ready = acceptor.ready();
    let ballot = Ballot::new(1, NodeId(1));
    assert_eq!(ready.persist, vec![Record::Promised(ballot)]);
    assert!(matches!(
        ready.messages[0].message,
        Message::Promise { ballot: b, .. } if b == ballot
    ));
}

#[test]
fn acceptor_rejects_ballots_below_its_promise() {
    let mut acceptor = replica(2, 3);
    acceptor.step(at_ms(1), prepare(3, 2, 5));
    acceptor.step(at_ms(1), prepare(1, 2, 4));
    let messages = acceptor.ready().messages;
    assert_eq!(
        messages[1].message,
        Message::Reject {
            ballot: Ballot::new(4, NodeId(1)),
            promised: Ballot::new(5, NodeId(3)),
        }
    );
}

#[test]
fn new_leader_reproposes_the_highest_ballot_value_and_fills_holes() {
    // Node 1 restarts holding slot 2 accepted at an old ballot; slot 1 is a
    // hole. After its election, slot 1 must be a no-op and slot 2 the old value.
    let old = Value::Commands(vec![b"old".to_vec()]);
    let mut durable = DurableState::default();
    durable.apply(Record::Promised(Ballot::new(1, NodeId(2))));
    durable.apply(Record::Accepted {
        slot: Slot(2),
        ballot: Ballot::new(1, NodeId(2)),
        value: old.clone(),
    });
    let config = Config::new(NodeId(1), members(3));
    let mut nodes = vec![
        Replica::new(config, durable, Slot(0), at_ms(0)).unwrap(),
        replica(2, 3),
        replica(3, 3),
    ];
    // After the restart lease wait, node 1 campaigns. Node 3 does not
    // answer yet, so node 1's own promise completes the quorum: its
    // report of slot 2 counts.
    let now = at_ms(1000);
    nodes[0].campaign(now);
    let to_two = nodes[0].ready().messages;
    for envelope in to_two.into_iter().filter(|e| e.to == NodeId(2)) {
        nodes[1].step(now, envelope);
    }
    for envelope in nodes[1].ready().messages {
        nodes[0].step(now, envelope);
    }
    durable_ready(&mut nodes[0], now);
    assert!(nodes[0].is_leader());
    let (applied, _) = deliver_all(&mut nodes, now);
    assert_eq!(
        applied[0][..2],
        [(Slot(1), Value::Noop), (Slot(2), old)],
        "hole filled with a no-op, old value kept"
    );
}

#[test]
fn followers_learn_the_commit_index_and_apply_the_same_values() {
    let mut nodes = vec![replica(1, 3), replica(2, 3), replica(3, 3)];
    let now = at_ms(1);
    nodes[0].campaign(now);
    let (mut all, _) = deliver_all(&mut nodes, now);
    for i in 0..10u8 {
        nodes[0].propose(now, vec![i]).unwrap();
    }
    let (proposed, _) = deliver_all(&mut nodes, now);
    // The last commit index reaches followers with the next heartbeat.
    let later = at_ms(61);
    nodes[0].tick(later);
    let (learned, _) = deliver_all(&mut nodes, later);
    for ((all, proposed), learned) in all.iter_mut().zip(proposed).zip(learned) {
        all.extend(proposed);
        all.extend(learned);
    }
    assert_eq!(all[0], all[1]);
    assert_eq!(all[0], all[2]);
    let commands: usize = all[0]
        .iter()
        .map(|(_, v)| match v {
            Value::Commands(c) => c.len(),
            Value::Noop | Value::Reconfigure(_) => 0,
        })
        .sum();
    assert_eq!(commands, 10);
}

#[test]
fn followers_refuse_proposals_and_name_the_leader() {
    let mut nodes = vec![replica(1, 3), replica(2, 3), replica(3, 3)];
    nodes[0].campaign(at_ms(1));
    deliver_all(&mut nodes, at_ms(1));
    assert_eq!(
        nodes[1].propose(at_ms(2), b"x".to_vec()),
        Err(Unavailable::NotLeader {
            leader: Some(NodeId(1))
        })
    );
}

#[test]
fn a_read_outside_the_lease_waits_for_a_heartbeat_round() {
    let mut nodes = vec![replica(1, 3), replica(2, 3), replica(3, 3)];
    let now = at_ms(1);
    nodes[0].campaign(now);
    deliver_all(&mut nodes, now);
    // Lease held: the read is released at once, before any message moves.
    nodes[0].read(now, 7).unwrap();
    assert_eq!(nodes[0].ready().reads, vec![7]);
    // Long after the lease ran out, the read waits for a heartbeat round
    // (ReadIndex) instead of being served locally.
    let late = now + Duration::from_millis(450);
    nodes[0].read(late, 8).unwrap();
    let ready = nodes[0].ready();
    assert!(ready.reads.is_empty(), "no local read without a lease");
    for envelope in ready.messages {
        nodes[envelope.to.0 as usize - 1].step(late, envelope);
    }
    let (_, released) = deliver_all(&mut nodes, late);
    assert_eq!(released, vec![8], "ReadIndex released after the round");
}

#[test]
fn restarted_acceptor_refuses_promises_for_one_lease() {
    let mut durable = DurableState::default();
    durable.apply(Record::Promised(Ballot::new(1, NodeId(1))));
    let config = Config::new(NodeId(2), members(3));
    let lease = config.lease;
    let mut acceptor = Replica::new(config, durable, Slot(0), at_ms(0)).unwrap();
    acceptor.step(at_ms(1), prepare(3, 2, 2));
    assert!(matches!(
        acceptor.ready().messages[0].message,
        Message::Reject { .. }
    ));
    acceptor.step(at_ms(0) + lease, prepare(3, 2, 3));
    assert!(matches!(
        acceptor.ready().messages[0].message,
        Message::Promise { .. }
    ));
}

#[test]
fn chosen_slots_are_reported_as_chosen_in_promises() {
    let mut durable = DurableState::default();
    durable.apply(Record::Chosen {
        slot: Slot(1),
        value: Value::Noop,
    });
    let config = Config::new(NodeId(2), members(3));
    let mut acceptor = Replica::new(config, durable, Slot(0), at_ms(0)).unwrap();
    assert_eq!(acceptor.commit_index(), Slot(1));
    acceptor.step(at_ms(1), prepare(1, 2, 1));
    let ready = acceptor.ready();
    assert_eq!(ready.committed, vec![(Slot(1), Value::Noop)]);
    assert_eq!(
        ready.messages[0].message,
        Message::Promise {
            ballot: Ballot::new(1, NodeId(1)),
            compacted_through: Slot(0),
            first_slot: Slot(1),
            slots: vec![(Slot(1), SlotState::Chosen(Value::Noop))],
            more_from: None,
        }
    );
}

#[test]
fn bad_configurations_are_refused_with_a_reason() {
    let config = Config::new(NodeId(4), members(3));
    assert!(config.validate().unwrap_err().0.contains("include"));
    let config = Config::new(NodeId(1), vec![NodeId(1), NodeId(1)]);
    assert!(config.validate().unwrap_err().0.contains("twice"));
    let mut config = Config::new(NodeId(1), members(3));
    config.lease = config.election_timeout;
    assert!(config.validate().is_err());
}

#[test]
#[should_panic(expected = "promised ballot went down")]
fn durable_state_refuses_a_lower_promise() {
    let mut durable = DurableState::default();
    durable.apply(Record::Promised(Ballot::new(2, NodeId(1))));
    durable.apply(Record::Promised(Ballot::new(1, NodeId(1))));
}

/// Delivers messages among `nodes` like `deliver_all`, dropping those to
/// or from `cut`.
fn deliver_all_but(nodes: &mut [Replica], now: Instant, cut: u32) {
    loop {
        let mut in_flight = Vec::new();
        let mut quiet = true;
        for node in nodes.iter_mut() {
            let ready = durable_ready(node, now);
            quiet &= ready.is_empty();
            in_flight.extend(ready.messages);
        }
        in_flight.retain(|e| e.from != NodeId(cut) && e.to != NodeId(cut));
        if quiet {
            return;
        }
        for envelope in in_flight {
            nodes[envelope.to.0 as usize - 1].step(now, envelope);
        }
    }
}

#[test]
fn a_cut_off_candidate_keeps_its_promise_and_rejoins_without_deposing_the_leader() {
    let mut nodes = vec![replica(1, 3), replica(2, 3), replica(3, 3)];
    nodes[0].campaign(at_ms(1));
    deliver_all(&mut nodes, at_ms(1));
    let ballot = nodes[0].status().promised;
    // Node 3, cut off past the lease it granted, campaigns again and
    // again: nobody answers.
    let later = 10_000;
    for attempt in 0..5 {
        nodes[2].campaign(at_ms(later + attempt));
        deliver_all_but(&mut nodes, at_ms(later + attempt), 3);
    }
    assert_eq!(
        nodes[2].status().promised,
        ballot,
        "a candidate that cannot win does not raise its own promise"
    );
    // Reconnected, it accepts the leader's next proposal rather than
    // rejecting it, and the leader keeps leading.
    nodes[2].ready();
    nodes[0]
        .propose(at_ms(later + 10), b"after".to_vec())
        .unwrap();
    deliver_all(&mut nodes, at_ms(later + 10));
    assert_eq!(nodes[0].status().role, synod_paxos::Role::Leader);
    assert_eq!(nodes[2].status().leader, Some(NodeId(1)));
    assert_eq!(nodes[2].status().promised, ballot);
}
