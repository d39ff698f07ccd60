//! Membership changes in the core: the α rule, one change at a time, bad
//! changes refused, removed nodes and a removed leader.

mod harness;

use harness::{at_ms, cluster_led_by_node_1, deliver_all, deliver_where, durable_ready, replica};
use synod_paxos::{Change, ChangeError, ChangeRefused, NodeId, Slot, Value, ACTIVATION_DELAY};

/// The slot a change was chosen in, from what node 1 applied.
fn change_slot(applied: &[(Slot, Value)]) -> Slot {
    applied
        .iter()
        .find(|(_, v)| matches!(v, Value::Reconfigure(_)))
        .map(|(s, _)| *s)
        .expect("the change was chosen")
}

fn voters_at(node: &synod_paxos::Replica, slot: Slot) -> Vec<NodeId> {
    node.membership().governing(slot).voters().collect()
}

#[test]
fn a_change_governs_alpha_slots_after_its_own_and_the_leader_fills_them() {
    let mut nodes = cluster_led_by_node_1(3);
    nodes[0]
        .propose_change(at_ms(2), Change::Remove(NodeId(3)))
        .unwrap();
    let delivered = deliver_all(&mut nodes, at_ms(2));
    let chosen_in = change_slot(&delivered.applied[0]);
    let from = Slot(chosen_in.0 + ACTIVATION_DELAY);
    // Idle, the leader filled the slots before `from` with no-ops, so the
    // change governs the next slot.
    assert_eq!(nodes[0].commit_index(), Slot(from.0 - 1));
    for node in &nodes[..2] {
        assert_eq!(voters_at(node, from), vec![NodeId(1), NodeId(2)]);
    }
    // Node 3 knows it is being removed (it campaigns no more), and the
    // others no longer count it.
    assert!(nodes[2].membership().latest().is_retired(NodeId(3)));
    assert!(!nodes[0].is_removed());
    nodes[2].tick(at_ms(10_000));
    assert!(
        nodes[2].ready().messages.is_empty(),
        "a removed node does not campaign"
    );
    // The remaining pair still chooses values.
    nodes[0].propose(at_ms(3), b"after".to_vec()).unwrap();
    let delivered = deliver_all(&mut nodes, at_ms(3));
    assert!(delivered.applied[0]
        .iter()
        .any(|(_, v)| *v == Value::Commands(vec![b"after".to_vec()])));
}

#[test]
fn bad_changes_are_refused_and_only_one_runs_at_a_time() {
    let mut nodes = cluster_led_by_node_1(3);
    let leader = &mut nodes[0];
    let refused = |r: Result<(), ChangeRefused>| match r {
        Err(ChangeRefused::Invalid(e)) => e,
        other => panic!("expected a refusal, got {other:?}"),
    };
    let add = |id: u32, addr: &str| Change::AddLearner {
        id: NodeId(id),
        peer_addr: addr.to_string(),
        client_addr: format!("{addr}-client"),
    };
    assert_eq!(
        refused(leader.propose_change(at_ms(2), Change::Remove(NodeId(9)))),
        ChangeError::UnknownMember(NodeId(9))
    );
    assert_eq!(
        refused(leader.propose_change(at_ms(2), add(2, "x"))),
        ChangeError::IdInUse(NodeId(2))
    );
    assert_eq!(
        refused(leader.propose_change(at_ms(2), add(0, "x"))),
        ChangeError::IdZero
    );
    assert_eq!(
        refused(leader.propose_change(at_ms(2), add(4, ""))),
        ChangeError::MissingAddress
    );
    // Promoting a voter asks for what already holds (as a retry would).
    assert_eq!(
        leader.propose_change(at_ms(2), Change::Promote(NodeId(2))),
        Ok(())
    );
    leader.propose_change(at_ms(2), add(4, "a")).unwrap();
    assert_eq!(
        refused(leader.propose_change(at_ms(2), Change::Remove(NodeId(3)))),
        ChangeError::InProgress
    );
    // Node 4 does not run here: it never reports, so it lags.
    deliver_where(&mut nodes, at_ms(2), |e| e.to != NodeId(4));
    assert_eq!(
        refused(nodes[0].propose_change(at_ms(3), Change::Promote(NodeId(4)))),
        ChangeError::Lagging {
            id: NodeId(4),
            has: Slot(0),
            leader: nodes[0].commit_index()
        }
    );
    assert_eq!(
        refused(nodes[0].propose_change(at_ms(3), add(5, "a"))),
        ChangeError::AddressInUse("a".to_string(), NodeId(4))
    );
    nodes[0]
        .propose_change(at_ms(3), Change::Remove(NodeId(4)))
        .unwrap();
    deliver_where(&mut nodes, at_ms(3), |e| e.to != NodeId(4));
    assert_eq!(
        refused(nodes[0].propose_change(at_ms(4), add(4, "b"))),
        ChangeError::IdRetired(NodeId(4))
    );
    // Followers take no changes.
    assert!(matches!(
        nodes[1].propose_change(at_ms(4), Change::Remove(NodeId(3))),
        Err(ChangeRefused::Unavailable(_))
    ));
}

#[test]
fn the_last_voter_cannot_be_removed() {
    let mut node = replica(1, 1);
    node.tick(at_ms(2_000));
    durable_ready(&mut node, at_ms(2_000));
    assert!(node.is_leader());
    assert_eq!(
        node.propose_change(at_ms(2_000), Change::Remove(NodeId(1))),
        Err(ChangeRefused::Invalid(ChangeError::LastVoter(NodeId(1))))
    );
}

#[test]
fn a_removed_leader_hands_over_and_its_messages_are_dropped() {
    let mut nodes = cluster_led_by_node_1(3);
    nodes[0]
        .propose_change(at_ms(2), Change::Remove(NodeId(1)))
        .unwrap();
    deliver_all(&mut nodes, at_ms(2));
    assert!(!nodes[0].is_leader(), "the removed leader stepped down");
    assert!(nodes[0].is_removed());
    // It never campaigns again...
    nodes[0].campaign(at_ms(5_000));
    nodes[0].tick(at_ms(10_000));
    assert!(nodes[0].ready().messages.is_empty());
    // ...and a remaining voter takes over with the new membership.
    nodes[1].campaign(at_ms(10_000));
    deliver_all(&mut nodes, at_ms(10_000));
    assert!(nodes[1].is_leader());
    nodes[1].propose(at_ms(10_000), b"x".to_vec()).unwrap();
    // Even were node 1 to speak, nodes 2 and 3 drop what it sends.
    let delivered = deliver_where(&mut nodes, at_ms(10_000), |e| e.to != NodeId(1));
    assert!(delivered.applied[1]
        .iter()
        .any(|(_, v)| *v == Value::Commands(vec![b"x".to_vec()])));
    assert!(delivered.sent.iter().all(|e| e.to != NodeId(1)));
}

/// A voter that missed the slots in which a node joined ignores that
/// node's prepare (to it, the node does not vote) but catches up from it:
/// the prepare says the candidate has every slot before its first one
/// chosen. Without this, a lagging voter and a new one could be all that
/// is left of a configuration, neither able to move (the simulator found
/// it: seed 40060, partitions, membership changes).
#[test]
fn a_prepare_from_a_node_this_voter_does_not_know_makes_it_catch_up_from_it() {
    let stranger = NodeId(7);
    let prepare = |first_slot: u64| synod_paxos::Envelope {
        from: stranger,
        to: NodeId(3),
        message: synod_paxos::Message::Prepare {
            ballot: synod_paxos::Ballot::new(5, stranger),
            first_slot: Slot(first_slot),
        },
    };
    let mut node = replica(3, 3);
    node.step(at_ms(1), prepare(50));
    let messages = node.ready().messages;
    assert!(
        !messages
            .iter()
            .any(|e| matches!(e.message, synod_paxos::Message::Promise { .. })),
        "no promise to a node that does not vote here: {messages:?}"
    );
    assert!(
        messages.iter().any(|e| e.to == stranger
            && e.message
                == synod_paxos::Message::Fetch {
                    first_slot: Slot(1)
                }),
        "a fetch from the candidate: {messages:?}"
    );

    // A prepare that shows nothing new makes no fetch.
    let mut node = replica(3, 3);
    node.step(at_ms(1), prepare(1));
    assert!(node.ready().messages.is_empty());
}

#[test]
fn a_retried_change_already_made_is_accepted_without_a_second_slot() {
    let mut nodes = cluster_led_by_node_1(3);
    let add_4 = |peer_addr: &str| Change::AddLearner {
        id: NodeId(4),
        peer_addr: peer_addr.to_string(),
        client_addr: "4-client".to_string(),
    };
    nodes[0].propose_change(at_ms(2), add_4("4-peer")).unwrap();
    deliver_where(&mut nodes, at_ms(2), |e| e.to != NodeId(4));
    // The caller did not hear and retries: accepted, and nothing is chosen
    // for it a second time.
    nodes[0].propose_change(at_ms(3), add_4("4-peer")).unwrap();
    let delivered = deliver_where(&mut nodes, at_ms(3), |e| e.to != NodeId(4));
    assert!(!delivered.applied[0]
        .iter()
        .any(|(_, v)| matches!(v, Value::Reconfigure(_))));
    // The same id at other addresses is another node: refused.
    assert_eq!(
        nodes[0].propose_change(at_ms(3), add_4("elsewhere")),
        Err(ChangeRefused::Invalid(ChangeError::IdInUse(NodeId(4))))
    );
    // A leader removes itself and hands over; its caller retries at the
    // next leader, which accepts the removal it already sees made.
    nodes[0]
        .propose_change(at_ms(4), Change::Remove(NodeId(1)))
        .unwrap();
    deliver_where(&mut nodes, at_ms(4), |e| e.to != NodeId(4));
    assert!(!nodes[0].is_leader());
    nodes[1].campaign(at_ms(10_000));
    deliver_where(&mut nodes, at_ms(10_000), |e| e.to != NodeId(4));
    assert!(nodes[1].is_leader());
    nodes[1]
        .propose_change(at_ms(10_000), Change::Remove(NodeId(1)))
        .unwrap();
    let delivered = deliver_where(&mut nodes, at_ms(10_000), |e| e.to != NodeId(4));
    assert!(!delivered.applied[1]
        .iter()
        .any(|(_, v)| matches!(v, Value::Reconfigure(_))));
}
