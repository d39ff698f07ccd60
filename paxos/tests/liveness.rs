//! A quorum keeps a leader: a minority's lease refusal does not depose it,
//! a leader cut off from every quorum steps down, and a follower whose
//! catch-up source died fetches from the leader.

mod harness;

use harness::*;
use synod_paxos::{Ballot, Envelope, Message, NodeId, Replica, Role, Slot, Unavailable};

/// Five nodes led by node 2 (elected at 1 ms); node 3 alone got node 2's
/// heartbeat at 60 ms, so its lease for node 2 outlasts the others'. At
/// 420 ms node 2 is gone and node 1 campaigns; returns the nodes and node
/// 1's prepares.
fn node_2_gone_and_node_1_campaigning() -> (Vec<Replica>, Vec<Envelope>) {
    let mut nodes: Vec<Replica> = (1..=5).map(|id| replica(id, 5)).collect();
    nodes[1].campaign(at_ms(1));
    deliver_all(&mut nodes, at_ms(1));
    assert!(nodes[1].is_leader());
    nodes[1].tick(at_ms(60));
    deliver_where(&mut nodes, at_ms(60), |e| {
        e.from != NodeId(2) || e.to == NodeId(3)
    });
    nodes[0].campaign(at_ms(420));
    let prepares = nodes[0].ready().messages;
    (nodes, prepares)
}

fn not_to_or_from(node: u32) -> impl Fn(&Envelope) -> bool {
    move |e| e.to != NodeId(node) && e.from != NodeId(node)
}

#[test]
fn a_lease_refusal_from_a_minority_does_not_abort_a_candidacy() {
    let (mut nodes, prepares) = node_2_gone_and_node_1_campaigning();
    let now = at_ms(420);
    let to_3 = prepares.iter().find(|e| e.to == NodeId(3)).unwrap();
    nodes[2].step(now, to_3.clone());
    let reply = nodes[2].ready().messages.remove(0);
    assert!(
        matches!(reply.message, Message::Reject { promised, .. } if promised < Ballot::new(2, NodeId(1))),
        "node 3 refuses for its lease, not for a higher promise: {reply:?}"
    );
    nodes[0].step(now, reply);
    assert_eq!(nodes[0].status().role, Role::Candidate);
    for envelope in prepares
        .into_iter()
        .filter(|e| e.to == NodeId(4) || e.to == NodeId(5))
    {
        nodes[envelope.to.0 as usize - 1].step(now, envelope);
    }
    deliver_where(&mut nodes, now, |e| {
        not_to_or_from(2)(e) && not_to_or_from(3)(e)
    });
    assert!(nodes[0].is_leader());
}

#[test]
fn a_lease_refusal_arriving_after_the_election_does_not_depose_the_leader() {
    let (mut nodes, prepares) = node_2_gone_and_node_1_campaigning();
    let now = at_ms(420);
    let mut late = Vec::new();
    for envelope in prepares {
        match envelope.to.0 {
            3 => late.push(envelope),
            4 | 5 => nodes[envelope.to.0 as usize - 1].step(now, envelope),
            _ => {}
        }
    }
    deliver_where(&mut nodes, now, |e| {
        not_to_or_from(2)(e) && not_to_or_from(3)(e)
    });
    assert!(nodes[0].is_leader());
    nodes[2].step(now, late.remove(0));
    let reject = nodes[2].ready().messages.remove(0);
    assert!(matches!(reject.message, Message::Reject { .. }));
    nodes[0].step(now, reject);
    assert!(
        nodes[0].is_leader(),
        "a quorum elected it; one refusal does not undo that"
    );
}

#[test]
fn a_candidate_gives_up_once_lease_refusals_leave_no_quorum() {
    let mut candidate = replica(1, 3);
    candidate.campaign(at_ms(1));
    candidate.ready();
    let ballot = Ballot::new(1, NodeId(1));
    let reject = |from| {
        envelope(
            from,
            1,
            Message::Reject {
                ballot,
                promised: Ballot::ZERO,
            },
        )
    };
    candidate.step(at_ms(2), reject(2));
    assert_eq!(candidate.status().role, Role::Candidate, "one vote missing");
    candidate.step(at_ms(2), reject(3));
    assert_eq!(candidate.status().role, Role::Follower, "no quorum left");
}

#[test]
fn a_reject_naming_a_higher_ballot_deposes_the_leader() {
    let mut nodes = cluster_led_by_node_1(3);
    nodes[0].step(
        at_ms(2),
        envelope(
            2,
            1,
            Message::Reject {
                ballot: Ballot::new(1, NodeId(1)),
                promised: Ballot::new(2, NodeId(3)),
            },
        ),
    );
    assert!(!nodes[0].is_leader());
}

#[test]
fn a_leader_cut_off_from_every_quorum_steps_down_after_an_election_timeout() {
    let mut nodes = cluster_led_by_node_1(3);
    // Heard by a quorum, it keeps leading well past an election timeout.
    for ms in (50..=2_000).step_by(50) {
        nodes[0].tick(at_ms(ms));
        deliver_all(&mut nodes, at_ms(ms));
    }
    assert!(nodes[0].is_leader());
    // Cut off: nothing it sends arrives.
    let mut stepped_down_at = None;
    for ms in (2_050..=4_000).step_by(50) {
        nodes[0].tick(at_ms(ms));
        nodes[0].ready();
        if !nodes[0].is_leader() {
            stepped_down_at = Some(ms);
            break;
        }
    }
    let stepped_down_at = stepped_down_at.expect("the cut-off leader steps down");
    let election_timeout = nodes[0].status();
    assert_eq!(election_timeout.leader, None);
    assert!(
        stepped_down_at >= 2_000 + 500,
        "not before an election timeout: {stepped_down_at} ms"
    );
    assert!(matches!(
        nodes[0].propose(at_ms(stepped_down_at), b"x".to_vec()),
        Err(Unavailable::NotLeader { .. })
    ));
}

#[test]
fn a_follower_whose_catch_up_source_died_fetches_from_the_leader() {
    let mut nodes = cluster_led_by_node_1(3);
    // Node 3 is cut off while nodes 1 and 2 choose values.
    for i in 0..5u8 {
        nodes[0].propose(at_ms(2), vec![i]).unwrap();
    }
    deliver_where(&mut nodes, at_ms(2), not_to_or_from(3));
    for ms in (50..1_000).step_by(50) {
        nodes[0].tick(at_ms(ms));
        deliver_where(&mut nodes, at_ms(ms), not_to_or_from(3));
    }
    // Node 3 campaigns; node 2 answers that it compacted past node 3's
    // log, then dies.
    nodes[2].campaign(at_ms(1_000));
    let prepare = nodes[2].ready().messages.remove(0);
    let Message::Prepare { ballot, first_slot } = prepare.message else {
        panic!("a prepare: {prepare:?}");
    };
    nodes[2].step(
        at_ms(1_000),
        envelope(
            2,
            3,
            Message::Promise {
                ballot,
                compacted_through: Slot(first_slot.0 + 2),
                first_slot,
                slots: vec![],
                more_from: None,
            },
        ),
    );
    let leader_commit = nodes[0].commit_index();
    assert!(nodes[2].commit_index() < leader_commit);
    let mut fetched_from_leader = false;
    for ms in (1_000..=3_000).step_by(50) {
        nodes[0].tick(at_ms(ms));
        nodes[2].tick(at_ms(ms));
        let delivered = deliver_where(&mut nodes, at_ms(ms), not_to_or_from(2));
        fetched_from_leader |= delivered.sent.iter().any(|e| {
            e.from == NodeId(3) && e.to == NodeId(1) && matches!(e.message, Message::Fetch { .. })
        });
    }
    assert!(fetched_from_leader);
    assert_eq!(nodes[2].commit_index(), nodes[0].commit_index());
    assert!(nodes[0].commit_index() >= leader_commit);
}

/// A node that missed values its peers have compacted cannot lead (it could
/// not re-propose them), so its prepares must not take up-to-date acceptors
/// away from candidates that can: such an acceptor refuses it without
/// raising its promise. (Promising it let a lagging node, re-campaigning
/// while a snapshot streamed to it, keep a 5-node simulation leaderless for
/// seconds after the network healed.)
#[test]
fn a_prepare_from_a_node_behind_the_compaction_point_is_refused_without_a_promise() {
    let mut nodes = cluster_led_by_node_1(3);
    // Each value chosen before the next is proposed: a slot each.
    for i in 0..5u8 {
        nodes[0].propose(at_ms(2), vec![i]).unwrap();
        deliver_where(&mut nodes, at_ms(2), not_to_or_from(3));
    }
    for ms in (50..=200).step_by(50) {
        nodes[0].tick(at_ms(ms));
        deliver_where(&mut nodes, at_ms(ms), not_to_or_from(3));
    }
    let commit = nodes[1].commit_index();
    assert!(
        commit >= Slot(5),
        "node 2 knows the values chosen: {commit}"
    );
    nodes[1].compact(commit);
    let promised = nodes[1].status().promised;

    // Node 1 falls silent; long after its lease, node 3 campaigns.
    let now = at_ms(3_000);
    nodes[2].campaign(now);
    let prepare = nodes[2]
        .ready()
        .messages
        .into_iter()
        .find(|e| e.to == NodeId(2))
        .expect("a prepare to node 2");
    nodes[1].step(now, prepare);
    let reply = nodes[1].ready().messages.remove(0);
    assert!(
        matches!(reply.message, Message::Reject { promised: p, .. } if p == promised),
        "refused, naming the promise it keeps: {reply:?}"
    );
    assert_eq!(nodes[1].status().promised, promised);

    // Node 2, which can lead, still wins with node 1.
    nodes[1].campaign(now);
    deliver_where(&mut nodes, now, not_to_or_from(3));
    assert!(nodes[1].is_leader());
}
