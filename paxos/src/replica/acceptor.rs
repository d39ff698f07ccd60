//! The acceptor side of a replica: promises (Phase 1), accepted values
//! (Phase 2), heartbeats from a leader, and the lease an acknowledgment
//! grants.
//!
//! An `impl Replica` in a child module of `replica`: the acceptor writes the
//! promise and the log, which the learner and the roles' dispatch share, so
//! it works on `Replica`'s private fields directly.

use super::Replica;
use crate::message::{Message, MESSAGE_OVERHEAD_BYTES};
use crate::storage::{Record, SlotState};
use crate::time::Instant;
use crate::types::{Ballot, NodeId, Slot, Value};

impl Replica {
    /// Notes a ballot seen in a message: new ballots go above its round.
    pub(super) fn observe_ballot(&mut self, ballot: Ballot) {
        self.max_round_seen = self.max_round_seen.max(ballot.round());
    }

    /// Raises the promise (durably) to `ballot`.
    fn promise(&mut self, ballot: Ballot) {
        assert!(ballot >= self.promised, "promised ballot would go down");
        if ballot > self.promised {
            self.promised = ballot;
            self.persist(Record::Promised(ballot));
        }
    }

    /// True if a lease granted to another node forbids promising `candidate`.
    fn lease_forbids(&self, now: Instant, candidate: NodeId) -> bool {
        now < self.lease_granted_until && self.lease_holder != Some(candidate)
    }

    /// Acknowledges `leader`: promises no other node for one lease period.
    pub(super) fn grant_lease(&mut self, now: Instant, leader: NodeId) {
        self.lease_holder = Some(leader);
        self.lease_granted_until = now + self.config.lease;
    }

    /// A candidate asks for a promise (Phase 1).
    pub(super) fn on_prepare(
        &mut self,
        now: Instant,
        from: NodeId,
        ballot: Ballot,
        first_slot: Slot,
    ) {
        self.observe_ballot(ballot);
        let candidate_votes = self.membership.is_unknown()
            || self.window_memberships().iter().any(|m| m.is_voter(from));
        if !candidate_votes {
            // Only a voter of the slots it would propose in may lead: a
            // learner, a removed node or a stray node with a cluster
            // certificate must not take acceptors from the leader.
            tracing::debug!(node = %self.config.id, %from, "prepare from a node that does not vote here ignored");
            // A candidate asks from its first unchosen slot (or further on,
            // when it resumes a promise in parts), so one that asks past this
            // node's commit has chosen slots this node has not learned. Then
            // the membership this node judged by may be out of date (the
            // candidate may have joined in those slots, and no leader may be
            // left to bring them: found by the simulator, seed 40060,
            // partitions, membership changes). So it fetches from the
            // candidate, at most once per heartbeat interval, and judges its
            // next prepare by what it learned. Nothing is promised, and
            // neither the catch-up source nor the known commit moves: the
            // candidate's retried prepares drive the repeats.
            if first_slot > self.commit.next() && self.catch_up.take_fetch_turn(now, &self.config) {
                let first_slot = self.commit.next();
                self.send(from, Message::Fetch { first_slot });
            }
            return;
        }
        if !self.votes() {
            // Learners and non-members never promise: they count toward no
            // quorum, and a promise would only hold back the leader they follow.
            return;
        }
        // A candidate that wants slots this acceptor compacted cannot lead
        // (it could not re-propose them): promising it would only take this
        // acceptor from candidates that can. It catches up once a leader's
        // heartbeat reaches it. Refusing is always safe; and the node with
        // the highest commit index is never refused, since no acceptor
        // compacts past its own commit.
        let behind = first_slot <= self.compacted_through;
        let refused = ballot < self.promised
            || (ballot > self.promised && (behind || self.lease_forbids(now, ballot.node())));
        if refused {
            if behind && ballot > self.promised {
                tracing::debug!(node = %self.config.id, %from, %first_slot, compacted_through = %self.compacted_through, "prepare from a node behind the compaction point refused");
            }
            let promised = self.promised;
            self.send(from, Message::Reject { ballot, promised });
            return;
        }
        self.promise(ballot);
        if from != self.config.id {
            self.step_down(now);
            self.leader_hint = None;
        }
        let promise = self.promise_message(ballot, first_slot);
        self.send(from, promise);
    }

    /// The promise for `ballot`, reporting the log from `first_slot` on: what
    /// fits in one message (at least one slot); the candidate asks again for
    /// the rest (see `Message::Promise`).
    fn promise_message(&self, ballot: Ballot, first_slot: Slot) -> Message {
        let budget = self.config.max_message_bytes;
        let mut size = MESSAGE_OVERHEAD_BYTES;
        let mut slots = Vec::new();
        let mut more_from = None;
        for (slot, state) in self.log.range(first_slot..) {
            let bytes = state.value().size_bound_bytes();
            if !slots.is_empty() && size + bytes > budget {
                more_from = Some(*slot);
                break;
            }
            size += bytes;
            slots.push((*slot, state.clone()));
        }
        Message::Promise {
            ballot,
            compacted_through: self.compacted_through,
            first_slot,
            slots,
            more_from,
        }
    }

    /// A leader's message at `ballot` (Accept or Heartbeat) arrived: refuses
    /// it if below the promise (telling `from`, and returns false), else
    /// promises `ballot` and follows its leader.
    fn admit_leader(&mut self, now: Instant, from: NodeId, ballot: Ballot) -> bool {
        self.observe_ballot(ballot);
        if ballot < self.promised {
            let promised = self.promised;
            self.send(from, Message::Reject { ballot, promised });
            return false;
        }
        self.promise(ballot);
        self.follow(now, ballot);
        true
    }

    /// Accepts `ballot`'s leader as ours: resets the election timer and
    /// grants it the lease.
    fn follow(&mut self, now: Instant, ballot: Ballot) {
        let leader = ballot.node();
        if leader != self.config.id {
            self.step_down(now);
            self.failed_attempts = 0;
            self.leader_hint = Some(leader);
        }
        self.grant_lease(now, leader);
    }

    /// A leader's `Accept`: holds the values as accepted at `ballot` and,
    /// unless `lazy`, makes them durable and answers `Accepted` (a lazy
    /// accept casts no vote, so it needs neither; see `Message::Accept`).
    pub(super) fn on_accept(
        &mut self,
        now: Instant,
        from: NodeId,
        ballot: Ballot,
        entries: Vec<(Slot, Value)>,
        commit: Slot,
        lazy: bool,
    ) {
        if !self.admit_leader(now, from, ballot) {
            return;
        }
        let horizon = self.slot_horizon();
        let mut accepted = Vec::with_capacity(entries.len());
        for (slot, value) in entries {
            if slot > horizon {
                // Too far ahead of what this node knows: it catches up
                // first, and accepts the slot when the leader retransmits.
                tracing::debug!(node = %self.config.id, %slot, %horizon, "accept beyond the slot horizon skipped");
                continue;
            }
            if slot <= self.compacted_through {
                // Chosen long ago and captured by our snapshot.
                accepted.push(slot);
                continue;
            }
            match self.log.get(&slot) {
                Some(SlotState::Chosen(chosen)) => {
                    // `check_peer_message` refused any other value.
                    assert_eq!(
                        chosen, &value,
                        "safety violation: ballot {ballot} proposed another value for chosen slot {slot}"
                    );
                }
                _ => {
                    assert!(ballot <= self.promised, "accepting above the promise");
                    self.put_slot(
                        slot,
                        SlotState::Accepted {
                            ballot,
                            value: value.clone(),
                        },
                    );
                    if !lazy {
                        self.persist(Record::Accepted {
                            slot,
                            ballot,
                            value,
                        });
                    }
                }
            }
            accepted.push(slot);
        }
        #[cfg(feature = "bug-injection")]
        let lazy_votes = self.config.bugs.lazy_accept_votes;
        #[cfg(not(feature = "bug-injection"))]
        let lazy_votes = false;
        if self.votes() && (!lazy || lazy_votes) {
            self.send(
                from,
                Message::Accepted {
                    ballot,
                    slots: accepted,
                },
            );
        }
        self.learn_commit(now, ballot, commit);
    }

    pub(super) fn on_heartbeat(
        &mut self,
        now: Instant,
        from: NodeId,
        ballot: Ballot,
        commit: Slot,
        round: u64,
    ) {
        if !self.admit_leader(now, from, ballot) {
            return;
        }
        self.learn_commit(now, ballot, commit);
        if self.votes() || self.membership.latest().is_member(self.config.id) {
            // Learners acknowledge too, so the leader knows how far behind
            // they are; only voters' acknowledgments count for the lease.
            let commit = self.commit;
            self.send(
                from,
                Message::HeartbeatAck {
                    ballot,
                    round,
                    commit,
                },
            );
        }
    }
}
