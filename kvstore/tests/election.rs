//! Elections: campaign, proclaim, resign, leader, observing through watch events, hand-over on
//! session expiry; and a random-ops property test: never two leaders at one revision.

mod coord;

use std::collections::BTreeMap;

use coord::*;
use synod_kvstore::{
    Campaign, ElectionStatus, ErrorCode, EventFilter, EventKind, Op, Outcome, ProclaimResponse,
};
use synod_wire::limits::MAX_ELECTION_VALUE_BYTES;

#[test]
fn the_first_candidate_is_elected_and_the_next_queued() {
    let mut c = Coord::new();
    let (a, b) = (c.open(TTL_MS), c.open(TTL_MS));
    let first = c.campaign(b"E", a, b"a-addr");
    assert!(elected(&first));
    let leader = first.leader.unwrap();
    assert_eq!(
        (leader.session, leader.value.as_slice()),
        (a, &b"a-addr"[..])
    );
    assert_eq!(leader.revision, c.sm.revision());
    let second = c.campaign(b"E", b, b"b-addr");
    assert_eq!(second.election_status(), ElectionStatus::Queued);
    assert_eq!(second.position, 1);
    assert_eq!(second.leader.unwrap().session, a);
    let l = c.leader(b"E");
    assert_eq!((l.leader.unwrap().session, l.waiters), (a, vec![b]));
}

#[test]
fn campaigning_again_changes_nothing() {
    let mut c = Coord::new();
    let a = c.open(TTL_MS);
    let first = c.campaign(b"E", a, b"v1");
    let revision = c.sm.revision();
    let again = c.campaign(b"E", a, b"v2");
    assert_eq!(again, first);
    assert_eq!(c.sm.revision(), revision);
}

#[test]
fn proclaim_changes_the_value_but_not_the_leadership_revision() {
    let mut c = Coord::new();
    let (a, b) = (c.open(TTL_MS), c.open(TTL_MS));
    let won_at = c.campaign(b"E", a, b"v1").leader.unwrap().revision;
    match c.proclaim(b"E", a, b"v2").outcome {
        Some(Outcome::Proclaim(ProclaimResponse { revision })) => assert_eq!(revision, won_at),
        other => panic!("{other:?}"),
    }
    let leader = c.leader(b"E").leader.unwrap();
    assert_eq!(
        (leader.value.as_slice(), leader.revision),
        (&b"v2"[..], won_at)
    );
    c.campaign(b"E", b, b"w");
    assert_eq!(
        code(&c.proclaim(b"E", b, b"x")),
        ErrorCode::NotElectionLeader
    );
}

#[test]
fn resign_passes_leadership_to_the_next_candidate_with_its_value() {
    let mut c = Coord::new();
    let (a, b) = (c.open(TTL_MS), c.open(TTL_MS));
    let first = c.campaign(b"E", a, b"a").leader.unwrap().revision;
    c.campaign(b"E", b, b"b");
    match c.resign(b"E", a).outcome {
        Some(Outcome::Resign(r)) => assert!(r.resigned && r.next_leader == b),
        other => panic!("{other:?}"),
    }
    let leader = c.leader(b"E").leader.unwrap();
    assert_eq!((leader.session, leader.value.as_slice()), (b, &b"b"[..]));
    assert!(leader.revision > first);
    assert_eq!(code(&c.resign(b"E", a)), ErrorCode::NotCandidate);
    c.resign(b"E", b);
    assert!(c.leader(b"E").leader.is_none());
}

#[test]
fn session_expiry_passes_leadership_to_the_next_waiter() {
    let mut c = Coord::new();
    let (a, b, z) = (c.open(TTL_MS), c.open(TTL_MS), c.open(TTL_MS));
    c.campaign(b"E", a, b"a");
    c.campaign(b"E", z, b"z");
    c.campaign(b"E", b, b"b");
    c.expire(z); // a waiter leaves the queue
    c.expire(a); // the leader's expiry hands over at once: no delay for elections
    let leader = c.leader(b"E").leader.unwrap();
    assert_eq!((leader.session, leader.revision), (b, c.sm.revision()));
    assert!(c.leader(b"E").waiters.is_empty());
}

#[test]
fn observers_see_every_leader_change_in_order() {
    let mut c = Coord::new();
    let (a, b) = (c.open(TTL_MS), c.open(TTL_MS));
    let from = c.sm.revision() + 1;
    c.campaign(b"E", a, b"a");
    c.campaign(b"E", b, b"b");
    c.proclaim(b"E", a, b"a2");
    c.close(a);
    c.resign(b"E", b);
    let batch =
        c.sm.events_since(from, &EventFilter::election(b"E".to_vec()), 0)
            .unwrap();
    let seen: Vec<(u64, Option<Vec<u8>>)> = batch
        .events
        .iter()
        .map(|e| {
            assert_eq!(e.event_kind(), Some(EventKind::ElectionLeader));
            (e.session, e.value.clone())
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            (a, Some(b"a".to_vec())),
            (a, Some(b"a2".to_vec())),
            (b, Some(b"b".to_vec())),
            (0, None),
        ]
    );
}

#[test]
fn oversized_values_and_unknown_sessions_are_refused() {
    let mut c = Coord::new();
    let a = c.open(TTL_MS);
    let r = c.op(Op::Campaign(Campaign {
        election: b"E".to_vec(),
        session: a,
        value: vec![0; MAX_ELECTION_VALUE_BYTES + 1],
    }));
    assert_eq!(code(&r), ErrorCode::ValueTooLarge);
    let r = c.op(Op::Campaign(Campaign {
        election: b"E".to_vec(),
        session: a + 100,
        value: vec![],
    }));
    assert_eq!(code(&r), ErrorCode::SessionNotFound);
    assert!(c.leader(b"E").leader.is_none());
}

/// Random campaigns, proclaims, resigns, closes and expiries over many seeds: after every
/// command each election has at most one leader, the leader events chain (each names the leader
/// it replaces), and each new leadership has a higher revision than the one before.
#[test]
fn random_ops_never_show_two_leaders_at_one_revision() {
    const ELECTIONS: [&[u8]; 2] = [b"x", b"y"];
    for seed in 0..300 {
        let mut rng = Rng(10_000 + seed);
        let mut c = Coord::new();
        let mut sessions: Vec<u64> = Vec::new();
        // Per election: the leader according to the events, and its leadership revision.
        let mut observed: BTreeMap<Vec<u8>, (u64, u64)> = BTreeMap::new();
        for step in 0..120 {
            let ctx = format!("seed {seed} step {step}");
            let name = ELECTIONS[rng.below(2) as usize];
            let pick = |rng: &mut Rng, sessions: &[u64]| {
                (!sessions.is_empty()).then(|| sessions[rng.below(sessions.len() as u64) as usize])
            };
            match rng.below(8) {
                0 if sessions.len() < 6 => sessions.push(c.open(TTL_MS)),
                0..=2 => {
                    let Some(s) = pick(&mut rng, &sessions) else {
                        continue;
                    };
                    c.campaign(name, s, format!("{s}").as_bytes());
                }
                3 => {
                    let Some(s) = pick(&mut rng, &sessions) else {
                        continue;
                    };
                    c.proclaim(name, s, format!("{s}@{step}").as_bytes());
                }
                4 => {
                    let Some(s) = pick(&mut rng, &sessions) else {
                        continue;
                    };
                    c.resign(name, s);
                }
                5 => {
                    let Some(s) = pick(&mut rng, &sessions) else {
                        continue;
                    };
                    c.close(s);
                    sessions.retain(|&x| x != s);
                }
                6 => {
                    let Some(s) = pick(&mut rng, &sessions) else {
                        continue;
                    };
                    c.expire(s);
                    sessions.retain(|&x| x != s);
                }
                _ => {
                    let Some(s) = pick(&mut rng, &sessions) else {
                        continue;
                    };
                    c.keep_alive(s);
                }
            }
            let revision = c.sm.revision();
            for event in c.last_events() {
                if event.event_kind() != Some(EventKind::ElectionLeader) {
                    continue;
                }
                assert_eq!(event.revision, revision, "{ctx}");
                let known = observed.entry(event.key.clone()).or_insert((0, 0));
                assert_eq!(event.prev_session, known.0, "{ctx}: {event:?}");
                if event.session != known.0 {
                    assert!(revision > known.1, "{ctx}: leadership revisions increase");
                    *known = (event.session, revision);
                }
            }
            for &e in &ELECTIONS {
                let l = c.leader(e);
                let (leader, since) = observed.get(e).copied().unwrap_or((0, 0));
                match l.leader {
                    None => assert_eq!(leader, 0, "{ctx}"),
                    Some(info) => {
                        assert_eq!((info.session, info.revision), (leader, since), "{ctx}");
                        assert!(sessions.contains(&info.session), "{ctx}: dead leader");
                        assert!(!l.waiters.contains(&info.session), "{ctx}: leads and waits");
                    }
                }
                for w in &l.waiters {
                    assert!(sessions.contains(w), "{ctx}: dead waiter {w}");
                }
            }
        }
    }
}
