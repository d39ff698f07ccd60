//! Which messages of a `Ready` may leave before its records are durable.

use synod_paxos::{
    Ballot, Config, DurableState, Envelope, Instant, Message, NodeId, Record, Replica, Slot,
};

fn at_ms(ms: u64) -> Instant {
    Instant::from_micros(ms * 1000)
}

fn replica(id: u32) -> Replica {
    let members = (1..=3).map(NodeId).collect();
    Replica::new(
        Config::new(NodeId(id), members),
        DurableState::default(),
        Slot(0),
        at_ms(0),
    )
    .unwrap()
}

/// Node 1 campaigns and node 2 promises; returns node 1 holding node 2's
/// promise, just before it steps it in.
fn candidate_with_a_peer_promise() -> (Replica, Envelope) {
    let mut candidate = replica(1);
    candidate.campaign(at_ms(1));
    let prepares = candidate.ready().messages;
    let to_two = prepares
        .into_iter()
        .find(|e| e.to == NodeId(2))
        .expect("a prepare to node 2");
    let mut acceptor = replica(2);
    acceptor.step(at_ms(2), to_two);
    let promise = acceptor.ready().messages.remove(0);
    assert!(matches!(promise.message, Message::Promise { .. }));
    (candidate, promise)
}

#[test]
fn a_new_leaders_accepts_wait_for_its_own_promise_to_be_durable() {
    let (mut candidate, promise) = candidate_with_a_peer_promise();
    // The candidate asks its own acceptor last: this promise makes a
    // quorum with its own, so it promises and leads in this one step.
    candidate.step(at_ms(3), promise);
    assert!(candidate.is_leader());
    let mut ready = candidate.ready();
    assert!(
        ready
            .persist
            .iter()
            .any(|r| matches!(r, Record::Promised(b) if *b == Ballot::new(1, NodeId(1)))),
        "the own promise is in this Ready's persist: {:?}",
        ready.persist
    );
    assert!(
        ready.messages.iter().any(|e| matches!(
            e.message,
            Message::Accept { .. } | Message::Heartbeat { .. }
        )),
        "the new leader starts Phase 2 in this Ready"
    );
    let early = ready.take_early_messages();
    assert!(
        early.is_empty(),
        "nothing may leave before the own promise is durable: {early:?}"
    );
}

#[test]
fn a_leaders_accepts_leave_before_its_own_fsync_once_its_promise_is_durable() {
    let (mut candidate, promise) = candidate_with_a_peer_promise();
    candidate.step(at_ms(3), promise);
    candidate.ready();
    candidate.propose(at_ms(4), b"put".to_vec()).unwrap();
    let mut ready = candidate.ready();
    assert!(ready
        .persist
        .iter()
        .any(|r| matches!(r, Record::Accepted { .. })));
    let early = ready.take_early_messages();
    assert!(
        early
            .iter()
            .any(|e| matches!(e.message, Message::Accept { .. })),
        "the leader's accepts overlap its own disk write: {early:?}"
    );
    assert!(ready
        .messages
        .iter()
        .all(|e| e.message.reports_acceptor_state()));
}
