//! The membership log as replicated state: applied with its slot, carried
//! by snapshots, unchanged by a change that is not valid.

use synod_kvstore::membership::membership_command;
use synod_kvstore::StateMachine;
use synod_paxos::{Change, Member, Membership, MembershipLog, NodeId, Slot, ACTIVATION_DELAY};

fn founding() -> MembershipLog {
    MembershipLog::new(Membership::founding((1..=3).map(|id| Member {
        id: NodeId(id),
        voter: true,
        peer_addr: format!("127.0.0.1:70{id}1"),
        client_addr: format!("127.0.0.1:70{id}2"),
    })))
}

fn add_learner(id: u32) -> Change {
    Change::AddLearner {
        id: NodeId(id),
        peer_addr: format!("127.0.0.1:70{id}1"),
        client_addr: format!("127.0.0.1:70{id}2"),
    }
}

#[test]
fn a_chosen_change_is_stored_with_its_slot_and_travels_in_snapshots() {
    let mut sm = StateMachine::in_memory().unwrap();
    assert!(sm.membership().unwrap().is_unknown());
    sm.set_founding_membership(founding()).unwrap();
    // A second founding is ignored: the stored one wins.
    let again = sm
        .set_founding_membership(MembershipLog::default())
        .unwrap();
    assert_eq!(again, founding());
    sm.apply_slots([(1, &[][..])]).unwrap();
    let change = [membership_command(&add_learner(4))];
    let responses = sm
        .apply_slots([(2, &change[..])])
        .unwrap()
        .remove(0)
        .responses;
    assert_eq!(responses.len(), 1);
    assert!(!responses[0].is_error());
    let stored = sm.membership().unwrap();
    let from = Slot(2 + ACTIVATION_DELAY);
    assert!(!stored.governing(Slot(from.0 - 1)).is_member(NodeId(4)));
    assert!(stored.governing(from).is_member(NodeId(4)));
    assert!(!stored.governing(from).is_voter(NodeId(4)));

    let mut other = StateMachine::in_memory().unwrap();
    let chunks = sm.snapshot().unwrap().map(Result::unwrap);
    other.install_snapshot(chunks).unwrap();
    assert_eq!(other.membership().unwrap(), stored);
    assert_eq!(other.state_hash().unwrap(), sm.state_hash().unwrap());
}

#[test]
fn an_invalid_change_changes_nothing_and_a_malformed_one_is_refused() {
    let mut sm = StateMachine::in_memory().unwrap();
    sm.set_founding_membership(founding()).unwrap();
    // Node 2 is a voter already.
    let promote = [membership_command(&Change::Promote(NodeId(2)))];
    sm.apply_slots([(1, &promote[..])]).unwrap();
    assert_eq!(sm.membership().unwrap(), founding());
    let malformed = [vec![0xff, 9, 9]];
    let responses = sm
        .apply_slots([(2, &malformed[..])])
        .unwrap()
        .remove(0)
        .responses;
    assert!(responses[0].is_error(), "malformed bytes are refused");
    assert_eq!(sm.membership().unwrap(), founding());
}
