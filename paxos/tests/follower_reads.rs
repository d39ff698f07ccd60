//! Linearizable reads at a follower: the leader grants a read index, the
//! follower serves the read once it has applied through it, and fails it
//! when the leader refuses or does not answer.

mod harness;

use std::time::Duration;

use harness::{at_ms, cluster_led_by_node_1, deliver_all, deliver_where, durable_ready, replica};
use synod_paxos::{Message, NodeId, Unavailable};

#[test]
fn a_follower_serves_a_read_once_it_applied_through_the_leaders_index() {
    let mut nodes = cluster_led_by_node_1(3);
    // Node 3 misses a write that nodes 1 and 2 choose.
    nodes[0].propose(at_ms(2), b"x".to_vec()).unwrap();
    deliver_where(&mut nodes, at_ms(2), |e| e.to != NodeId(3));
    let chosen_at = nodes[0].commit_index();
    assert!(nodes[2].commit_index() < chosen_at);
    nodes[2].read(at_ms(3), 9).unwrap();
    let delivered = deliver_all(&mut nodes, at_ms(3));
    // It asked the leader once, learned the index, fetched what it missed,
    // and only then released the read.
    let asked: Vec<_> = delivered
        .sent
        .iter()
        .filter(|e| matches!(e.message, Message::ReadIndex { .. }))
        .collect();
    assert_eq!(asked.len(), 1);
    assert_eq!((asked[0].from, asked[0].to), (NodeId(3), NodeId(1)));
    assert_eq!(delivered.reads[2].len(), 1);
    let (id, commit_then) = delivered.reads[2][0];
    assert_eq!(id, 9);
    assert!(commit_then >= chosen_at, "served before applying the write");
    assert!(delivered.failed_reads.iter().all(Vec::is_empty));
}

#[test]
fn reads_taken_together_share_one_request() {
    let mut nodes = cluster_led_by_node_1(3);
    for id in 1..=5 {
        nodes[1].read(at_ms(2), id).unwrap();
    }
    let delivered = deliver_all(&mut nodes, at_ms(2));
    let requests = delivered
        .sent
        .iter()
        .filter(|e| matches!(e.message, Message::ReadIndex { .. }))
        .count();
    assert_eq!(requests, 1);
    let released: Vec<u64> = delivered.reads[1].iter().map(|(id, _)| *id).collect();
    assert_eq!(released, vec![1, 2, 3, 4, 5]);
}

#[test]
fn a_leader_outside_its_lease_grants_after_a_heartbeat_round() {
    let mut nodes = cluster_led_by_node_1(3);
    let late = at_ms(1) + Duration::from_millis(450);
    nodes[1].read(late, 4).unwrap();
    let delivered = deliver_all(&mut nodes, late);
    // The grant came only after the leader's heartbeat round.
    let sent = &delivered.sent;
    let granted = sent
        .iter()
        .position(|e| matches!(e.message, Message::ReadIndexReply { index: Some(_), .. }))
        .expect("granted");
    let acked = sent
        .iter()
        .position(|e| matches!(e.message, Message::HeartbeatAck { .. }))
        .expect("a heartbeat round ran");
    assert!(acked < granted);
    assert_eq!(delivered.reads[1].len(), 1);
}

#[test]
fn a_lost_request_fails_the_read_after_an_election_timeout() {
    let mut nodes = cluster_led_by_node_1(3);
    nodes[1].read(at_ms(2), 4).unwrap();
    let delivered = deliver_where(&mut nodes, at_ms(2), |e| {
        !matches!(e.message, Message::ReadIndex { .. })
    });
    assert!(delivered.reads[1].is_empty());
    nodes[1].tick(at_ms(400));
    assert!(durable_ready(&mut nodes[1], at_ms(400))
        .failed_reads
        .is_empty());
    nodes[1].tick(at_ms(502));
    assert_eq!(
        durable_ready(&mut nodes[1], at_ms(502)).failed_reads,
        vec![4]
    );
}

/// Node 3's read request to node 1, taken from its output, and node 2
/// elected meanwhile (the leases ran out) by nodes 1 and 2 alone.
fn a_request_to_a_deposed_leader(nodes: &mut [synod_paxos::Replica]) -> synod_paxos::Envelope {
    nodes[2].read(at_ms(440), 4).unwrap();
    let ready = durable_ready(&mut nodes[2], at_ms(440));
    let request = ready
        .messages
        .into_iter()
        .find(|e| matches!(e.message, Message::ReadIndex { .. }))
        .expect("asked");
    nodes[1].campaign(at_ms(450));
    deliver_where(nodes, at_ms(450), |e| {
        e.to != NodeId(3) && e.from != NodeId(3)
    });
    assert!(nodes[1].is_leader() && !nodes[0].is_leader());
    request
}

#[test]
fn a_node_that_no_longer_leads_refuses_and_the_read_fails() {
    let mut nodes = cluster_led_by_node_1(3);
    let request = a_request_to_a_deposed_leader(&mut nodes);
    nodes[0].step(at_ms(450), request);
    // Node 3 has not heard of node 2's election yet.
    let delivered = deliver_where(&mut nodes, at_ms(450), |e| e.from != NodeId(2));
    assert!(delivered
        .sent
        .iter()
        .any(|e| matches!(e.message, Message::ReadIndexReply { index: None, .. })));
    assert_eq!(delivered.failed_reads[2], vec![4]);
    assert!(delivered.reads[2].is_empty());
}

#[test]
fn a_read_asked_of_a_deposed_leader_is_asked_again_of_the_new_one() {
    let mut nodes = cluster_led_by_node_1(3);
    let request = a_request_to_a_deposed_leader(&mut nodes);
    // Node 3 hears of node 2 first (its heartbeat): it asks node 2, and
    // ignores node 1's refusal of the first request.
    nodes[1].tick(at_ms(500));
    let delivered = deliver_all(&mut nodes, at_ms(500));
    nodes[0].step(at_ms(500), request);
    let late = deliver_all(&mut nodes, at_ms(500));
    let asked_again = delivered
        .sent
        .iter()
        .any(|e| matches!(e.message, Message::ReadIndex { .. }) && e.to == NodeId(2));
    assert!(asked_again);
    assert_eq!(delivered.reads[2].len(), 1);
    assert!(delivered.failed_reads[2].is_empty() && late.failed_reads[2].is_empty());
}

#[test]
fn a_lost_answer_is_asked_again_after_the_resend_interval() {
    let mut nodes = cluster_led_by_node_1(3);
    nodes[1].read(at_ms(2), 4).unwrap();
    deliver_where(&mut nodes, at_ms(2), |e| {
        !matches!(e.message, Message::ReadIndexReply { .. })
    });
    // Four heartbeat intervals later (200 ms) the follower asks again, and
    // the second answer releases the read.
    nodes[1].tick(at_ms(150));
    let delivered = deliver_all(&mut nodes, at_ms(150));
    assert!(delivered.reads[1].is_empty());
    nodes[1].tick(at_ms(203));
    let delivered = deliver_all(&mut nodes, at_ms(203));
    assert_eq!(delivered.reads[1].len(), 1);
}

#[test]
fn a_node_that_knows_no_leader_refuses_the_read() {
    let mut node = replica(2, 3);
    assert_eq!(
        node.read(at_ms(1), 1),
        Err(Unavailable::NotLeader { leader: None })
    );
}
