//! A node running Phase 1: it asks the voters for promises and counts them
//! until they make a quorum of every membership its slots may fall under.
//!
//! [`Candidate`] owns the attempt's state and never sees the replica: each
//! method takes what it needs and returns what the replica must do (the
//! messages to send, or a [`PromiseOutcome`]). The replica raises its ballot,
//! sends, backs off, and on [`PromiseOutcome::Won`] turns the promises into
//! a leader's first proposals with [`crate::recovery`].

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::membership::Membership;
use crate::message::Message;
use crate::storage::SlotState;
use crate::time::Instant;
use crate::types::{Ballot, Command, NodeId, Slot, Value};

/// A node running Phase 1.
pub(crate) struct Candidate {
    ballot: Ballot,
    first_slot: Slot,
    /// Complete promises (every chunk received), by acceptor.
    promises: BTreeMap<NodeId, Vec<(Slot, SlotState)>>,
    /// Promises still arriving in chunks: the `first_slot` asked for next,
    /// and the slots so far.
    partial: BTreeMap<NodeId, (Slot, Vec<(Slot, SlotState)>)>,
    /// Values reported chosen so far by any promise of this attempt; a
    /// promise that contradicts one is refused.
    chosen_reported: BTreeMap<Slot, Value>,
    /// Acceptors that refused this ballot only because they hold a lease for
    /// another leader (their promise is not higher): each is one vote
    /// missing, and the attempt ends early once a quorum is out of reach.
    refused_by: BTreeSet<NodeId>,
    /// Whether this node's own acceptor was asked yet. It is asked last,
    /// once the others' promises make a quorum with it, so a candidate that
    /// cannot win (cut off from the cluster) never raises its own promise
    /// and can follow the current leader again when it reconnects, instead
    /// of rejecting its heartbeats and deposing it.
    asked_self: bool,
    /// Give up this attempt (and back off) at this time.
    deadline: Instant,
    /// The memberships governing `first_slot ..= first_slot + α − 1`: the
    /// attempt wins with promises from a quorum of each.
    window: Vec<Membership>,
    /// Commands a leader had queued when it ran Phase 1 again (for a new
    /// membership); they get slots if it wins, go back to the driver if not.
    carried: VecDeque<Command>,
}

/// One promise, or one chunk of it (the fields of [`Message::Promise`]).
pub(crate) struct PromiseChunk {
    pub(crate) ballot: Ballot,
    pub(crate) compacted_through: Slot,
    pub(crate) first_slot: Slot,
    pub(crate) slots: Vec<(Slot, SlotState)>,
    pub(crate) more_from: Option<Slot>,
}

/// What a promise (chunk) means for the attempt.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PromiseOutcome {
    /// Not for this attempt, a duplicate or a stale chunk; or counted, and
    /// the attempt still waits for more.
    Nothing,
    /// Send this prepare: for the promise's next chunk, or to this node's
    /// own acceptor now that it would complete a quorum.
    Ask(NodeId, Message),
    /// The acceptor compacted slots from the first one asked for: it forgot
    /// chosen values this node lacks, so this node cannot lead before it
    /// catches up from that acceptor.
    Behind {
        /// The acceptor's compaction point.
        compacted_through: Slot,
    },
    /// The promises make a quorum of every membership of the window.
    Won,
}

/// A won attempt, taken apart for the new leader.
pub(crate) struct Won {
    pub(crate) ballot: Ballot,
    pub(crate) first_slot: Slot,
    pub(crate) promises: BTreeMap<NodeId, Vec<(Slot, SlotState)>>,
    pub(crate) carried: VecDeque<Command>,
}

impl Candidate {
    /// Starts an attempt at `ballot` for the slots from `first_slot` on,
    /// governed by `window`. Returns the candidate and the prepares to send:
    /// one to every voter of the window but `me`, and to `me` too if its
    /// promise alone is a quorum (see `asked_self`).
    pub(crate) fn start(
        me: NodeId,
        ballot: Ballot,
        first_slot: Slot,
        window: Vec<Membership>,
        deadline: Instant,
        carried: VecDeque<Command>,
    ) -> (Candidate, Vec<(NodeId, Message)>) {
        let ask_self_now = window.iter().all(|m| m.has_quorum([&me]));
        let mut voters: Vec<NodeId> = window.iter().flat_map(|m| m.voters()).collect();
        voters.sort();
        voters.dedup();
        let prepare = Message::Prepare { ballot, first_slot };
        let prepares = voters
            .into_iter()
            .filter(|to| *to != me || ask_self_now)
            .map(|to| (to, prepare.clone()))
            .collect();
        let candidate = Candidate {
            ballot,
            first_slot,
            promises: BTreeMap::new(),
            partial: BTreeMap::new(),
            chosen_reported: BTreeMap::new(),
            refused_by: BTreeSet::new(),
            asked_self: ask_self_now,
            deadline,
            window,
            carried,
        };
        (candidate, prepares)
    }

    /// The ballot of this attempt.
    pub(crate) fn ballot(&self) -> Ballot {
        self.ballot
    }

    /// When the attempt gives up.
    pub(crate) fn deadline(&self) -> Instant {
        self.deadline
    }

    /// The value a promise of this attempt reported chosen in `slot`.
    pub(crate) fn reported_chosen(&self, slot: Slot) -> Option<&Value> {
        self.chosen_reported.get(&slot)
    }

    /// The commands carried from a former leadership, handed back when the
    /// attempt ends without winning.
    pub(crate) fn into_carried(self) -> VecDeque<Command> {
        self.carried
    }

    /// The attempt, taken apart once it won.
    pub(crate) fn into_won(self) -> Won {
        Won {
            ballot: self.ballot,
            first_slot: self.first_slot,
            promises: self.promises,
            carried: self.carried,
        }
    }

    /// True if the promises so far, with `extra`, make a quorum of every
    /// membership of the window.
    fn wins_with(&self, extra: Option<NodeId>) -> bool {
        self.window
            .iter()
            .all(|m| m.has_quorum(self.promises.keys().chain(extra.as_ref())))
    }

    /// Counts one promise, or one chunk of it, from `from` (this node is
    /// `me`). See [`Message::Promise`] for the chunks.
    pub(crate) fn on_promise(
        &mut self,
        me: NodeId,
        from: NodeId,
        chunk: PromiseChunk,
    ) -> PromiseOutcome {
        let PromiseChunk {
            ballot,
            compacted_through,
            first_slot,
            slots,
            more_from,
        } = chunk;
        if self.ballot != ballot || self.promises.contains_key(&from) {
            return PromiseOutcome::Nothing;
        }
        let expected = self
            .partial
            .get(&from)
            .map_or(self.first_slot, |(next, _)| *next);
        if first_slot != expected {
            // A duplicate or a stale chunk.
            return PromiseOutcome::Nothing;
        }
        if compacted_through >= first_slot {
            // The acceptor forgot chosen values we do not have, so we could
            // not re-propose them.
            return PromiseOutcome::Behind { compacted_through };
        }
        for (slot, state) in &slots {
            if let SlotState::Chosen(value) = state {
                self.chosen_reported
                    .entry(*slot)
                    .or_insert_with(|| value.clone());
            }
        }
        let mut collected = self
            .partial
            .remove(&from)
            .map(|(_, collected)| collected)
            .unwrap_or_default();
        collected.extend(slots);
        if let Some(next) = more_from {
            self.partial.insert(from, (next, collected));
            let prepare = Message::Prepare {
                ballot,
                first_slot: next,
            };
            return PromiseOutcome::Ask(from, prepare);
        }
        self.refused_by.remove(&from);
        self.promises.insert(from, collected);
        if self.wins_with(None) {
            PromiseOutcome::Won
        } else if !self.asked_self && self.wins_with(Some(me)) {
            self.asked_self = true;
            let prepare = Message::Prepare {
                ballot,
                first_slot: self.first_slot,
            };
            PromiseOutcome::Ask(me, prepare)
        } else {
            PromiseOutcome::Nothing
        }
    }

    /// `from` refused this attempt's ballot: `superseded` if it promised a
    /// higher one, else only for a lease it holds for another leader (one
    /// vote missing). Returns true if the attempt should give up: it was
    /// superseded, or too many refused for a quorum of some membership.
    pub(crate) fn on_reject(&mut self, from: NodeId, superseded: bool) -> bool {
        if !superseded && !self.promises.contains_key(&from) {
            self.refused_by.insert(from);
        }
        let out_of_reach = self
            .window
            .iter()
            .any(|m| m.voters().filter(|v| !self.refused_by.contains(v)).count() < m.quorum());
        superseded || out_of_reach
    }

    /// Asserts what holds between steps: fewer complete promises than a
    /// quorum of some membership of the window (with a quorum it leads),
    /// none from an acceptor counted as refusing, and every acceptor either
    /// complete or still sending chunks, not both.
    pub(crate) fn check_invariants(&self) {
        assert!(
            !self.wins_with(None),
            "a candidate with a quorum of promises"
        );
        assert!(
            self.promises.keys().all(|p| !self.refused_by.contains(p)),
            "an acceptor counted as promising and refusing"
        );
        assert!(
            self.promises.keys().all(|p| !self.partial.contains_key(p)),
            "an acceptor's promise both complete and in chunks"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::membership::Member;

    fn membership(voters: &[u32]) -> Membership {
        Membership::founding(voters.iter().map(|id| Member {
            id: NodeId(*id),
            voter: true,
            peer_addr: String::new(),
            client_addr: String::new(),
        }))
    }

    /// Node `me` of three starts Phase 1 at `ballot` from slot 1; returns it and its prepares.
    fn start_of_three(me: NodeId, ballot: Ballot) -> (Candidate, Vec<(NodeId, Message)>) {
        Candidate::start(
            me,
            ballot,
            Slot(1),
            vec![membership(&[1, 2, 3])],
            Instant::from_micros(0),
            VecDeque::new(),
        )
    }

    fn chunk(ballot: Ballot, slots: Vec<(Slot, SlotState)>) -> PromiseChunk {
        PromiseChunk {
            ballot,
            compacted_through: Slot(0),
            first_slot: Slot(1),
            slots,
            more_from: None,
        }
    }

    #[test]
    fn asks_its_own_acceptor_last_and_wins_with_it() {
        let me = NodeId(1);
        let ballot = Ballot::new(1, me);
        let (mut candidate, prepares) = start_of_three(me, ballot);
        let to: Vec<NodeId> = prepares.iter().map(|(to, _)| *to).collect();
        assert_eq!(to, vec![NodeId(2), NodeId(3)], "not its own acceptor yet");
        let outcome = candidate.on_promise(me, NodeId(2), chunk(ballot, vec![]));
        assert_eq!(
            outcome,
            PromiseOutcome::Ask(
                me,
                Message::Prepare {
                    ballot,
                    first_slot: Slot(1)
                }
            )
        );
        assert_eq!(
            candidate.on_promise(me, NodeId(2), chunk(ballot, vec![])),
            PromiseOutcome::Nothing,
            "a duplicate counts once"
        );
        assert_eq!(
            candidate.on_promise(me, me, chunk(ballot, vec![])),
            PromiseOutcome::Won
        );
    }

    #[test]
    fn gives_up_once_a_quorum_is_out_of_reach() {
        let me = NodeId(1);
        let (mut candidate, _) = start_of_three(me, Ballot::new(1, me));
        assert!(!candidate.on_reject(NodeId(2), false));
        assert!(candidate.on_reject(NodeId(3), false));
        assert!(candidate.on_reject(NodeId(2), true), "superseded");
    }

    #[test]
    fn a_promise_from_behind_the_compaction_point_does_not_count() {
        let me = NodeId(1);
        let ballot = Ballot::new(1, me);
        let (mut candidate, _) = start_of_three(me, ballot);
        let mut behind = chunk(ballot, vec![]);
        behind.compacted_through = Slot(5);
        assert_eq!(
            candidate.on_promise(me, NodeId(2), behind),
            PromiseOutcome::Behind {
                compacted_through: Slot(5)
            }
        );
        assert!(candidate.promises.is_empty());
    }
}
