//! Thrifty Phase 2 (`Config::accept_fallback`): a leader asks the followers
//! of its last quorum for votes, sends the others lazy `Accept`s, and asks
//! everyone when a slot is not chosen in time.

mod harness;

use harness::{at_ms, cluster_led_by_node_1, deliver_where as deliver, durable_ready, with_config};
use synod_paxos::{Config, Envelope, Instant, Message, NodeId, Record, Replica, Slot, Value};

/// Three nodes with node 1 leading and two slots chosen: its election's
/// no-op, then a command asked of every voter (the first slot of a
/// leadership probes), delivered so that node 2 answers before node 3.
fn cluster_with_leader() -> Vec<Replica> {
    let mut nodes = cluster_led_by_node_1(3);
    nodes[0].propose(at_ms(1), b"first".to_vec()).unwrap();
    deliver(&mut nodes, at_ms(1), |_| true);
    nodes
}

/// The `Accept`s in `messages`, as (to, lazy, slots).
fn accepts(messages: &[Envelope]) -> Vec<(NodeId, bool, Vec<Slot>)> {
    messages
        .iter()
        .filter_map(|e| match &e.message {
            Message::Accept { entries, lazy, .. } => {
                Some((e.to, *lazy, entries.iter().map(|(s, _)| *s).collect()))
            }
            _ => None,
        })
        .collect()
}

/// Proposes `command` at node 1 and returns the `Accept`s it sends to its
/// peers (node 1's own is delivered).
fn propose(nodes: &mut [Replica], now: Instant, command: &[u8]) -> Vec<Envelope> {
    nodes[0].propose(now, command.to_vec()).unwrap();
    let ready = durable_ready(&mut nodes[0], now);
    let (own, to_peers): (Vec<Envelope>, Vec<Envelope>) =
        ready.messages.into_iter().partition(|e| e.to == NodeId(1));
    for envelope in own {
        nodes[0].step(now, envelope);
    }
    to_peers
}

#[test]
fn a_new_slot_is_asked_of_the_last_quorum_and_sent_lazily_to_the_rest() {
    let mut nodes = cluster_with_leader();
    let now = at_ms(2);
    let sent = propose(&mut nodes, now, b"second");
    assert_eq!(
        accepts(&sent),
        vec![
            (NodeId(2), false, vec![Slot(3)]),
            (NodeId(3), true, vec![Slot(3)])
        ],
        "node 2 completed the last quorum, so it alone is asked"
    );
    // The lazy acceptor holds the value without syncing or answering.
    let lazy = sent.iter().find(|e| e.to == NodeId(3)).unwrap().clone();
    nodes[2].step(now, lazy);
    let ready = nodes[2].ready();
    // (It learned slot 2 chosen from the accept's commit index: that
    // record may wait for the next sync like every chosen record.)
    assert!(
        ready.persist.iter().all(|r| !r.must_sync()),
        "a lazy accept is not written: {:?}",
        ready.persist
    );
    assert!(
        ready.messages.is_empty(),
        "a lazy accept is not answered: {:?}",
        ready.messages
    );
    nodes[2].persisted(now, ready.seq);
    // Node 2's vote makes a quorum with the leader's.
    let eager = sent.into_iter().find(|e| e.to == NodeId(2)).unwrap();
    nodes[1].step(now, eager);
    deliver(&mut nodes, now, |_| true);
    assert_eq!(nodes[0].status().commit_index, Slot(3));
    // Node 3 learns the slot chosen from the commit index it is told, and
    // records it (lazily) like any chosen value.
    let later = at_ms(60);
    nodes[0].tick(later);
    let mut chosen_records = Vec::new();
    loop {
        let mut in_flight = Vec::new();
        for (i, node) in nodes.iter_mut().enumerate() {
            let ready = durable_ready(node, later);
            if i == 2 {
                chosen_records.extend(ready.persist.clone());
            }
            in_flight.extend(ready.messages);
        }
        if in_flight.is_empty() {
            break;
        }
        for envelope in in_flight {
            nodes[envelope.to.0 as usize - 1].step(later, envelope);
        }
    }
    assert_eq!(nodes[2].status().commit_index, Slot(3));
    assert!(chosen_records.iter().any(|r| matches!(
        r,
        Record::Chosen { slot: Slot(3), value: Value::Commands(c) } if c == &vec![b"second".to_vec()]
    )));
    assert!(chosen_records.iter().all(|r| !r.must_sync()));
}

#[test]
fn a_slot_not_chosen_in_time_is_asked_of_every_voter() {
    let mut nodes = cluster_with_leader();
    let sent = propose(&mut nodes, at_ms(2), b"second");
    // Node 2, the one asked, never answers; node 3 holds the value lazily.
    let lazy = sent.into_iter().find(|e| e.to == NodeId(3)).unwrap();
    nodes[2].step(at_ms(2), lazy);
    deliver(&mut nodes, at_ms(2), |e| e.to != NodeId(2));
    assert_eq!(nodes[0].status().commit_index, Slot(2));
    assert_eq!(nodes[0].status().accept_fallbacks, 0);
    // Before the fallback nothing more is asked.
    nodes[0].tick(at_ms(11));
    assert!(accepts(&durable_ready(&mut nodes[0], at_ms(11)).messages).is_empty());
    // After it, node 3 is asked for its vote, and the slot is chosen.
    nodes[0].tick(at_ms(12));
    let ready = durable_ready(&mut nodes[0], at_ms(12));
    assert_eq!(
        accepts(&ready.messages),
        vec![(NodeId(3), false, vec![Slot(3)])]
    );
    for envelope in ready.messages {
        nodes[envelope.to.0 as usize - 1].step(at_ms(12), envelope);
    }
    deliver(&mut nodes, at_ms(12), |e| e.to != NodeId(2));
    assert_eq!(nodes[0].status().commit_index, Slot(3));
    assert_eq!(nodes[0].status().accept_fallbacks, 1);
    // Node 3 completed that quorum: the next slot is asked of it.
    let sent = propose(&mut nodes, at_ms(13), b"third");
    assert_eq!(
        accepts(&sent),
        vec![
            (NodeId(2), true, vec![Slot(4)]),
            (NodeId(3), false, vec![Slot(4)])
        ]
    );
}

#[test]
fn a_slot_per_heartbeat_interval_is_asked_of_every_voter() {
    let mut nodes = cluster_with_leader();
    let sent = propose(&mut nodes, at_ms(2), b"second");
    assert!(accepts(&sent).iter().any(|(_, lazy, _)| *lazy));
    for envelope in sent {
        nodes[envelope.to.0 as usize - 1].step(at_ms(2), envelope);
    }
    deliver(&mut nodes, at_ms(2), |_| true);
    // A heartbeat interval after the first slot, a slot probes.
    let sent = propose(&mut nodes, at_ms(51), b"third");
    assert_eq!(
        accepts(&sent),
        vec![
            (NodeId(2), false, vec![Slot(4)]),
            (NodeId(3), false, vec![Slot(4)])
        ]
    );
}

#[test]
fn without_a_fallback_every_voter_is_asked() {
    let mut nodes: Vec<Replica> = (1..=3)
        .map(|id| {
            let mut config = Config::new(NodeId(id), harness::members(3));
            config.accept_fallback = None;
            with_config(config)
        })
        .collect();
    nodes[0].campaign(at_ms(1));
    deliver(&mut nodes, at_ms(1), |_| true);
    nodes[0].propose(at_ms(1), b"first".to_vec()).unwrap();
    deliver(&mut nodes, at_ms(1), |_| true);
    let sent = propose(&mut nodes, at_ms(2), b"second");
    assert_eq!(
        accepts(&sent),
        vec![
            (NodeId(2), false, vec![Slot(3)]),
            (NodeId(3), false, vec![Slot(3)])
        ]
    );
}

#[test]
fn a_fallback_as_long_as_the_heartbeat_interval_is_refused() {
    let mut config = Config::new(NodeId(1), vec![NodeId(1)]);
    config.accept_fallback = Some(config.heartbeat_interval);
    assert!(config.validate().unwrap_err().0.contains("fallback"));
}
