//! Which messages of a `Ready` may leave before its records are durable.

use synod_paxos::{
    Ballot, Config, DurableState, Envelope, Instant, Message, NodeId, Record, Replica, Slot,
};

fn at_ms(ms: u64) -> Instant {
    Instant::from_micros(ms * 1000)
}

fn replica(id: u32) -> Replica {
    let members = (1..=3).map(NodeId).collect();
    let mut config = Config::new(NodeId(id), members);
    // A slot for every proposal these tests make: the window is not what they test.
    config.max_inflight_slots = 8;
    Replica::new(config, DurableState::default(), Slot(0), at_ms(0)).unwrap()
}

/// Node 1 campaigns and nodes 2 and 3 promise; returns node 1 and their
/// promises, not yet stepped in.
fn candidate_with_peer_promises() -> (Replica, Vec<Envelope>) {
    let mut candidate = replica(1);
    candidate.campaign(at_ms(1));
    let prepares = candidate.ready().messages;
    let mut promises = Vec::new();
    for prepare in prepares {
        let mut acceptor = replica(prepare.to.0);
        acceptor.step(at_ms(2), prepare);
        let promise = acceptor.ready().messages.remove(0);
        assert!(matches!(promise.message, Message::Promise { .. }));
        promises.push(promise);
    }
    (candidate, promises)
}

fn is_phase_2(envelope: &Envelope) -> bool {
    matches!(
        envelope.message,
        Message::Accept { .. } | Message::Heartbeat { .. }
    )
}

#[test]
fn a_candidate_counts_its_own_promise_only_once_it_is_durable() {
    let (mut candidate, mut promises) = candidate_with_peer_promises();
    // One peer's promise makes a quorum with its own: it asks its own
    // acceptor, which promises, but it leads only once that is durable.
    candidate.step(at_ms(3), promises.remove(0));
    assert!(!candidate.is_leader());
    let ready = candidate.ready();
    assert!(
        ready
            .persist
            .iter()
            .any(|r| matches!(r, Record::Promised(b) if *b == Ballot::new(1, NodeId(1)))),
        "the own promise is in this Ready's persist: {:?}",
        ready.persist
    );
    candidate.persisted(at_ms(3), ready.seq);
    assert!(candidate.is_leader());
    let mut ready = candidate.ready();
    assert!(ready.messages.iter().any(is_phase_2), "Phase 2 starts");
    assert!(
        ready.take_early_messages().iter().any(is_phase_2),
        "its promise is durable: Phase 2 may overlap the next fsync"
    );
}

#[test]
fn a_new_leaders_accepts_wait_while_its_own_promise_is_in_flight() {
    let (mut candidate, mut promises) = candidate_with_peer_promises();
    candidate.step(at_ms(3), promises.remove(0));
    // The Ready with its own promise goes to the disk...
    let promising = candidate.ready();
    assert!(promising
        .persist
        .iter()
        .any(|r| matches!(r, Record::Promised(_))));
    // ...and before it is durable the other peer's promise makes a quorum
    // without it: it leads, but its Phase 2 messages rely on that promise.
    candidate.step(at_ms(3), promises.remove(0));
    assert!(candidate.is_leader());
    candidate.propose(at_ms(3), b"put".to_vec()).unwrap();
    let mut ready = candidate.ready();
    assert!(ready.messages.iter().any(is_phase_2), "Phase 2 starts");
    let early = ready.take_early_messages();
    assert!(
        early.is_empty(),
        "nothing may leave before the own promise is durable: {early:?}"
    );
    candidate.persisted(at_ms(4), promising.seq);
    candidate.propose(at_ms(4), b"put 2".to_vec()).unwrap();
    let mut ready = candidate.ready();
    assert!(ready.take_early_messages().iter().any(is_phase_2));
}

#[test]
fn a_leaders_accepts_leave_before_its_own_fsync_once_its_promise_is_durable() {
    let (mut candidate, mut promises) = candidate_with_peer_promises();
    candidate.step(at_ms(3), promises.remove(0));
    let ready = candidate.ready();
    candidate.persisted(at_ms(3), ready.seq);
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

#[test]
fn a_leader_counts_its_own_acceptance_only_once_it_is_durable() {
    let (mut candidate, mut promises) = candidate_with_peer_promises();
    candidate.step(at_ms(3), promises.remove(0));
    let ready = candidate.ready();
    candidate.persisted(at_ms(3), ready.seq);
    let mut messages = candidate.ready().messages;
    candidate.propose(at_ms(4), b"put".to_vec()).unwrap();
    let ready = candidate.ready();
    messages.extend(ready.messages);
    let mut acceptor = replica(2);
    for accept in messages.into_iter().filter(|e| e.to == NodeId(2)) {
        acceptor.step(at_ms(4), accept);
    }
    let accepted: Vec<Envelope> = acceptor
        .ready()
        .messages
        .into_iter()
        .filter(|e| matches!(e.message, Message::Accepted { .. }))
        .collect();
    assert!(!accepted.is_empty(), "node 2 accepts");
    // Node 2's acceptances arrive while node 1's own records are still on
    // their way to the disk: one acceptance is no quorum of three.
    let before = candidate.commit_index();
    for accepted in accepted {
        candidate.step(at_ms(5), accepted);
    }
    assert_eq!(candidate.commit_index(), before, "not chosen yet");
    candidate.persisted(at_ms(5), ready.seq);
    assert!(
        candidate.commit_index() > before,
        "its own acceptance, durable now, completes the quorum"
    );
}
