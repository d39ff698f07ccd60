//! The proposer side: Phase 1 as a candidate, Phase 2, heartbeats, the
//! lease and ReadIndex as a leader.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::membership::{Change, Membership};
use crate::message::{Message, MESSAGE_OVERHEAD_BYTES};
use crate::ready::ReadId;
use crate::replica::{Replica, RoleState, Unavailable};
use crate::storage::SlotState;
use crate::time::Instant;
use crate::types::{Ballot, Command, NodeId, Slot, Value};

/// Heartbeat rounds remembered for lease and ReadIndex acknowledgments.
const MAX_TRACKED_ROUNDS: usize = 32;

/// A node running Phase 1.
pub(crate) struct Candidate {
    pub(crate) ballot: Ballot,
    pub(crate) first_slot: Slot,
    /// Complete promises (every chunk received), by acceptor.
    pub(crate) promises: BTreeMap<NodeId, Vec<(Slot, SlotState)>>,
    /// Promises still arriving in chunks: the `first_slot` asked for next,
    /// and the slots so far.
    pub(crate) partial: BTreeMap<NodeId, (Slot, Vec<(Slot, SlotState)>)>,
    /// Values reported chosen so far by any promise of this attempt; a
    /// promise that contradicts one is refused.
    pub(crate) chosen_reported: BTreeMap<Slot, Value>,
    /// Acceptors that refused this ballot only because they hold a lease for
    /// another leader (their promise is not higher): each is one vote
    /// missing, and the attempt ends early once a quorum is out of reach.
    pub(crate) refused_by: BTreeSet<NodeId>,
    /// Whether this node's own acceptor was asked yet. It is asked last,
    /// once the others' promises make a quorum with it, so a candidate that
    /// cannot win (cut off from the cluster) never raises its own promise
    /// and can follow the current leader again when it reconnects, instead
    /// of rejecting its heartbeats and deposing it.
    pub(crate) asked_self: bool,
    /// Give up this attempt (and back off) at this time.
    pub(crate) deadline: Instant,
    /// The memberships governing `first_slot ..= first_slot + α − 1`: the
    /// attempt wins with promises from a quorum of each.
    pub(crate) window: Vec<Membership>,
    /// Commands a leader had queued when it ran Phase 1 again (for a new
    /// membership); they get slots if it wins, go back to the driver if not.
    pub(crate) carried: VecDeque<Command>,
}

impl Candidate {
    /// True if the promises so far, with `extra`, make a quorum of every
    /// membership of the window.
    fn wins_with(&self, extra: Option<NodeId>) -> bool {
        self.window
            .iter()
            .all(|m| m.has_quorum(self.promises.keys().chain(extra.as_ref())))
    }
}

/// A value proposed in a slot, waiting for a quorum of `Accepted`.
struct Proposal {
    value: Value,
    acks: BTreeSet<NodeId>,
    sent_at: Instant,
}

/// One heartbeat round, for lease and ReadIndex.
struct HeartbeatRound {
    sent_at: Instant,
    acks: BTreeSet<NodeId>,
}

/// A read waiting for a heartbeat round that started after it arrived.
pub(crate) struct PendingRead {
    pub(crate) id: ReadId,
    read_index: Slot,
    round: u64,
}

/// A node that won Phase 1.
pub(crate) struct Leader {
    pub(crate) ballot: Ballot,
    /// The next slot to propose in.
    pub(crate) next_slot: Slot,
    /// Slots through here were recovered from Phase 1 (the last one is
    /// always proposed at our ballot); reads wait until they are chosen.
    recovered_through: Slot,
    proposals: BTreeMap<Slot, Proposal>,
    /// Proposed in this step, not yet sent.
    unsent: Vec<(Slot, Value)>,
    pub(crate) pending: VecDeque<Command>,
    /// Sum of the lengths of `pending`.
    pub(crate) pending_bytes: usize,
    next_heartbeat_at: Instant,
    heartbeat_round: u64,
    rounds: BTreeMap<u64, HeartbeatRound>,
    /// Highest round a quorum acknowledged.
    confirmed_round: u64,
    /// Reads may be served locally until here (local clock).
    lease_until: Option<Instant>,
    pub(crate) reads: VecDeque<PendingRead>,
    /// A read arrived that needs a new heartbeat round.
    round_wanted: bool,
    /// Send time of the latest heartbeat round a quorum acknowledged (or
    /// the election). A leader that has not heard a quorum for an election
    /// timeout steps down (check-quorum), so its clients go elsewhere.
    quorum_heard_at: Instant,
    /// Acceptors whose complete promise for this ballot it holds: it
    /// proposes in a slot only if they include a quorum of the membership
    /// governing that slot (else it runs Phase 1 again).
    promised_by: BTreeSet<NodeId>,
    /// Values recovered in Phase 1 for slots not yet proposed (no-ops for
    /// holes), proposed in order as the pipeline window allows.
    recovered: BTreeMap<Slot, Value>,
    /// A membership change waiting for a slot.
    pub(crate) queued_change: Option<Change>,
    /// Each peer's commit index, from its latest heartbeat acknowledgment,
    /// and when that came.
    peer_commit: BTreeMap<NodeId, (Slot, Instant)>,
}

impl Leader {
    /// True if a membership change is queued, proposed or recovered and not
    /// yet chosen, or the newest membership is one this ballot's promises
    /// hold no quorum of (it is about to run Phase 1 again).
    pub(crate) fn change_in_flight(&self, latest: &Membership) -> bool {
        let is_change = |v: &Value| matches!(v, Value::Reconfigure(_));
        !latest.has_quorum(&self.promised_by)
            || self.queued_change.is_some()
            || self.proposals.values().any(|p| is_change(&p.value))
            || self.recovered.values().any(is_change)
    }

    /// The commit index `peer` last reported (zero if never).
    pub(crate) fn peer_commit(&self, peer: NodeId) -> Slot {
        self.peer_commit
            .get(&peer)
            .map(|(s, _)| *s)
            .unwrap_or_default()
    }

    /// Every peer's last reported commit index, and when it came.
    pub(crate) fn peer_commits(&self) -> BTreeMap<NodeId, (Slot, Instant)> {
        self.peer_commit.clone()
    }

    /// Queues a command for a slot.
    pub(crate) fn push_pending(&mut self, command: Command) {
        self.pending_bytes += command.len();
        self.pending.push_back(command);
    }

    /// The value this leader proposes in `slot` and is not yet chosen.
    pub(crate) fn proposed_value(&self, slot: Slot) -> Option<&Value> {
        self.proposals.get(&slot).map(|p| &p.value)
    }

    fn propose_at(&mut self, now: Instant, slot: Slot, value: Value) {
        assert!(
            slot >= self.next_slot,
            "slot {slot} proposed twice in one ballot"
        );
        self.proposals.insert(
            slot,
            Proposal {
                value: value.clone(),
                acks: BTreeSet::new(),
                sent_at: now,
            },
        );
        self.unsent.push((slot, value));
        self.next_slot = slot.next();
    }
}

impl Replica {
    /// Begins Phase 1 with a ballot above every one seen.
    ///
    /// Once rounds reach [`Ballot::MAX_ROUND`] the node no longer campaigns
    /// (it logs an error each time it would); it still votes and follows.
    pub(crate) fn start_phase1(&mut self, now: Instant) {
        self.start_phase1_carrying(now, VecDeque::new());
    }

    /// [`start_phase1`](Replica::start_phase1), keeping `carried` commands
    /// for the slots it will propose if it wins.
    fn start_phase1_carrying(&mut self, now: Instant, carried: VecDeque<Command>) {
        if self.max_round_seen >= Ballot::MAX_ROUND {
            tracing::error!(node = %self.config.id, max_round = Ballot::MAX_ROUND, "ballot rounds exhausted; not campaigning");
            self.step_down(now);
            return;
        }
        let round = self.max_round_seen + 1;
        self.max_round_seen = round;
        let ballot = Ballot::new(round, self.config.id);
        let first_slot = self.commit.next();
        tracing::info!(node = %self.config.id, %ballot, slot = %first_slot, "starting phase 1");
        let window = self.window_memberships();
        let me = self.config.id;
        let ask_self_now = window.iter().all(|m| m.has_quorum([&me]));
        let mut voters: Vec<NodeId> = window.iter().flat_map(|m| m.voters()).collect();
        voters.sort();
        voters.dedup();
        self.role = RoleState::Candidate(Candidate {
            ballot,
            first_slot,
            promises: BTreeMap::new(),
            partial: BTreeMap::new(),
            chosen_reported: BTreeMap::new(),
            refused_by: BTreeSet::new(),
            asked_self: ask_self_now,
            deadline: now + self.config.election_timeout,
            window,
            carried,
        });
        self.leader_hint = None;
        let prepare = Message::Prepare { ballot, first_slot };
        for to in voters {
            if to != self.config.id || ask_self_now {
                self.send(to, prepare.clone());
            }
        }
    }

    /// One promise, or one chunk of it (see [`Message::Promise`]).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn on_promise(
        &mut self,
        now: Instant,
        from: NodeId,
        ballot: Ballot,
        compacted_through: Slot,
        first_slot: Slot,
        slots: Vec<(Slot, SlotState)>,
        more_from: Option<Slot>,
    ) {
        let RoleState::Candidate(candidate) = &mut self.role else {
            return;
        };
        if candidate.ballot != ballot || candidate.promises.contains_key(&from) {
            return;
        }
        let expected = candidate
            .partial
            .get(&from)
            .map_or(candidate.first_slot, |(next, _)| *next);
        if first_slot != expected {
            // A duplicate or a stale chunk.
            return;
        }
        if compacted_through >= first_slot {
            // The acceptor forgot chosen values we do not have, so we could
            // not re-propose them. Catch up from it first, then try again.
            tracing::info!(node = %self.config.id, %from, through = %compacted_through, "behind a compacted log; catching up");
            self.back_off(now);
            self.catch_up_from(now, from);
            self.known_commit = self.known_commit.max(compacted_through);
            self.next_fetch_at = now;
            self.maybe_fetch(now);
            return;
        }
        for (slot, state) in &slots {
            if let SlotState::Chosen(value) = state {
                candidate
                    .chosen_reported
                    .entry(*slot)
                    .or_insert_with(|| value.clone());
            }
        }
        let mut collected = candidate
            .partial
            .remove(&from)
            .map(|(_, collected)| collected)
            .unwrap_or_default();
        collected.extend(slots);
        if let Some(next) = more_from {
            candidate.partial.insert(from, (next, collected));
            self.send(
                from,
                Message::Prepare {
                    ballot,
                    first_slot: next,
                },
            );
            return;
        }
        candidate.refused_by.remove(&from);
        candidate.promises.insert(from, collected);
        if candidate.wins_with(None) {
            self.become_leader(now);
        } else if !candidate.asked_self && candidate.wins_with(Some(self.config.id)) {
            candidate.asked_self = true;
            let prepare = Message::Prepare {
                ballot,
                first_slot: candidate.first_slot,
            };
            let me = self.config.id;
            self.send(me, prepare);
        }
    }

    /// Phase 1 won: re-propose what the promises reported, fill holes with
    /// no-ops, and start serving.
    fn become_leader(&mut self, now: Instant) {
        let RoleState::Candidate(candidate) =
            std::mem::replace(&mut self.role, RoleState::Follower)
        else {
            unreachable!("only a candidate becomes leader");
        };
        let ballot = candidate.ballot;
        let promised_by: BTreeSet<NodeId> = candidate.promises.keys().copied().collect();
        // For each slot: the chosen value if anyone knows it, else the value
        // accepted at the highest ballot.
        let mut recovered: BTreeMap<Slot, (Option<Ballot>, Value)> = BTreeMap::new();
        for (slot, state) in candidate.promises.into_values().flatten() {
            let entry = match state {
                SlotState::Chosen(value) => (None, value),
                SlotState::Accepted { ballot, value } => (Some(ballot), value),
            };
            match recovered.get(&slot) {
                Some((None, chosen)) => {
                    if entry.0.is_none() && chosen != &entry.1 {
                        // Promises come from peers: `check_peer_message`
                        // refuses one that contradicts a value reported
                        // before, but this node's own promise is not
                        // checked and may have learned a value since.
                        tracing::error!(node = %self.config.id, %slot, "promises report two chosen values; not leading");
                        self.back_off(now);
                        return;
                    }
                }
                Some((Some(b), _)) if entry.0.is_some_and(|e| e <= *b) => {}
                _ => {
                    recovered.insert(slot, entry);
                }
            }
        }
        #[cfg(feature = "bug-injection")]
        if self.config.bugs.ignore_promised_values {
            for entry in recovered.values_mut() {
                *entry = (Some(Ballot::ZERO), Value::Noop);
            }
        }
        let last_known = [
            recovered.keys().next_back().copied(),
            self.log.keys().next_back().copied(),
            Some(self.commit),
        ]
        .into_iter()
        .flatten()
        .max()
        .unwrap_or_default();
        let pending_bytes = candidate.carried.iter().map(Vec::len).sum();
        let mut leader = Leader {
            ballot,
            next_slot: candidate.first_slot.max(self.commit.next()),
            recovered_through: Slot(0),
            proposals: BTreeMap::new(),
            unsent: Vec::new(),
            pending: candidate.carried,
            pending_bytes,
            next_heartbeat_at: now,
            heartbeat_round: 0,
            rounds: BTreeMap::new(),
            confirmed_round: 0,
            lease_until: None,
            reads: VecDeque::new(),
            round_wanted: false,
            quorum_heard_at: now,
            promised_by,
            recovered: BTreeMap::new(),
            queued_change: None,
            peer_commit: BTreeMap::new(),
        };
        // Values known chosen are learned at once; the others are proposed
        // from `leader.recovered` as the pipeline window allows (a slot more
        // than α above the commit index may be governed by a membership not
        // known yet).
        let mut learned = Vec::new();
        let mut first_to_propose = None;
        for slot in (leader.next_slot.0..=last_known.0).map(Slot) {
            // A value known chosen before the first slot to propose is
            // learned; after it, it is proposed again (the same value).
            let value = match (self.chosen(slot), recovered.remove(&slot)) {
                (Some(_), _) if first_to_propose.is_none() => continue,
                (None, Some((None, value))) if first_to_propose.is_none() => {
                    learned.push((slot, value));
                    continue;
                }
                (Some(chosen), _) => chosen.clone(),
                (None, Some((_, value))) => value,
                (None, None) => Value::Noop,
            };
            first_to_propose.get_or_insert(slot);
            leader.recovered.insert(slot, value);
        }
        leader.next_slot =
            first_to_propose.unwrap_or(Slot(last_known.0.max(leader.next_slot.0 - 1) + 1));
        if leader.recovered.is_empty() {
            // Reads need a value chosen at our own ballot.
            leader.recovered.insert(leader.next_slot, Value::Noop);
        }
        leader.recovered_through = leader
            .recovered
            .keys()
            .next_back()
            .copied()
            .expect("a recovered slot at least");
        tracing::info!(node = %self.config.id, %ballot, through = %leader.recovered_through, "elected leader");
        self.role = RoleState::Leader(Box::new(leader));
        self.leader_hint = Some(self.config.id);
        self.failed_attempts = 0;
        for (slot, value) in learned {
            self.mark_chosen(slot, value);
        }
        self.advance_commit();
        self.leader_flush(now);
        self.send_heartbeat_round(now);
    }

    pub(crate) fn on_accepted(&mut self, from: NodeId, ballot: Ballot, slots: Vec<Slot>) {
        let RoleState::Leader(leader) = &mut self.role else {
            return;
        };
        if leader.ballot != ballot {
            return;
        }
        let mut chosen = Vec::new();
        for slot in slots {
            if let Some(proposal) = leader.proposals.get_mut(&slot) {
                proposal.acks.insert(from);
                if self.membership.governing(slot).has_quorum(&proposal.acks) {
                    let proposal = leader.proposals.remove(&slot).expect("present");
                    chosen.push((slot, proposal.value));
                }
            }
        }
        for (slot, value) in chosen {
            self.mark_chosen(slot, value);
        }
        self.advance_commit();
    }

    /// An acceptor refused `ballot`. If it promised a higher ballot, this
    /// node has been superseded and steps back. If not, it refused only
    /// because it holds a lease for another leader: for a candidate that is
    /// one vote missing (the attempt ends once a quorum is out of reach);
    /// a leader, already elected by a quorum, ignores it.
    pub(crate) fn on_reject(
        &mut self,
        now: Instant,
        from: NodeId,
        ballot: Ballot,
        promised: Ballot,
    ) {
        self.observe_ballot(promised);
        let superseded = promised > ballot;
        let give_up = match &mut self.role {
            RoleState::Candidate(c) if c.ballot == ballot => {
                if !superseded && !c.promises.contains_key(&from) {
                    c.refused_by.insert(from);
                }
                let out_of_reach = c
                    .window
                    .iter()
                    .any(|m| m.voters().filter(|v| !c.refused_by.contains(v)).count() < m.quorum());
                superseded || out_of_reach
            }
            RoleState::Leader(l) if l.ballot == ballot => superseded,
            _ => false,
        };
        if give_up {
            tracing::debug!(node = %self.config.id, %ballot, %promised, %from, "rejected");
            self.back_off(now);
            self.leader_hint = None;
        }
    }

    pub(crate) fn on_heartbeat_ack(
        &mut self,
        now: Instant,
        from: NodeId,
        ballot: Ballot,
        round: u64,
        commit: Slot,
    ) {
        let leader_lease = self.config.leader_lease();
        let window = self.window_memberships();
        let RoleState::Leader(leader) = &mut self.role else {
            return;
        };
        if leader.ballot != ballot {
            return;
        }
        let known = leader.peer_commit.entry(from).or_insert((commit, now));
        *known = (known.0.max(commit), now);
        if let Some(r) = leader.rounds.get_mut(&round) {
            r.acks.insert(from);
            if window.iter().all(|m| m.has_quorum(&r.acks)) {
                leader.confirmed_round = leader.confirmed_round.max(round);
                leader.quorum_heard_at = leader.quorum_heard_at.max(r.sent_at);
                let until = r.sent_at + leader_lease;
                leader.lease_until = Some(leader.lease_until.map_or(until, |u| u.max(until)));
            }
        }
        self.release_reads();
    }

    /// Check-quorum, heartbeats, retransmissions of unacknowledged accepts.
    pub(crate) fn leader_tick(&mut self, now: Instant) {
        let RoleState::Leader(leader) = &mut self.role else {
            return;
        };
        #[cfg(feature = "bug-injection")]
        let check_quorum = !self.config.bugs.read_without_lease;
        #[cfg(not(feature = "bug-injection"))]
        let check_quorum = true;
        if check_quorum && now >= leader.quorum_heard_at + self.config.election_timeout {
            tracing::warn!(node = %self.config.id, ballot = %leader.ballot, "no quorum heard for an election timeout; stepping down");
            self.step_down(now);
            self.leader_hint = None;
            return;
        }
        if now >= leader.next_heartbeat_at {
            self.send_heartbeat_round(now);
        }
        let RoleState::Leader(leader) = &mut self.role else {
            return;
        };
        let interval = self.config.heartbeat_interval;
        let mut resend: BTreeMap<NodeId, Vec<(Slot, Value)>> = BTreeMap::new();
        for (slot, proposal) in leader.proposals.iter_mut() {
            if now < proposal.sent_at + interval {
                continue;
            }
            proposal.sent_at = now;
            for member in self.membership.governing(*slot).voters() {
                if !proposal.acks.contains(&member) {
                    resend
                        .entry(member)
                        .or_default()
                        .push((*slot, proposal.value.clone()));
                }
            }
        }
        let ballot = leader.ballot;
        let budget = self.config.max_message_bytes;
        for (to, entries) in resend {
            let commit = self.commit;
            for entries in split_by_bytes(entries, budget) {
                self.send(
                    to,
                    Message::Accept {
                        ballot,
                        entries,
                        commit,
                    },
                );
            }
        }
    }

    fn send_heartbeat_round(&mut self, now: Instant) {
        let id = self.config.id;
        if !matches!(self.role, RoleState::Leader(_)) {
            return;
        }
        self.grant_lease(now, id);
        let commit = self.commit;
        let RoleState::Leader(leader) = &mut self.role else {
            return;
        };
        leader.heartbeat_round += 1;
        leader.round_wanted = false;
        leader.next_heartbeat_at = now + self.config.heartbeat_interval;
        let round = leader.heartbeat_round;
        leader.rounds.insert(
            round,
            HeartbeatRound {
                sent_at: now,
                acks: BTreeSet::new(),
            },
        );
        while leader.rounds.len() > MAX_TRACKED_ROUNDS {
            leader.rounds.pop_first();
        }
        let ballot = leader.ballot;
        for to in self.member_ids() {
            if to != id {
                self.send(
                    to,
                    Message::Heartbeat {
                        ballot,
                        commit,
                        round,
                    },
                );
            }
        }
        self.on_heartbeat_ack(now, id, ballot, round, commit);
    }

    /// True if the leader may answer a read from local state right now:
    /// it holds the lease and everything recovered in Phase 1 is chosen.
    pub(crate) fn may_read_locally(&self, now: Instant) -> bool {
        let RoleState::Leader(leader) = &self.role else {
            return false;
        };
        #[cfg(feature = "bug-injection")]
        if self.config.bugs.read_without_lease {
            return true;
        }
        self.commit >= leader.recovered_through && leader.lease_until.is_some_and(|u| now < u)
    }

    /// Holds a read until a heartbeat round sent after now is acknowledged.
    pub(crate) fn queue_read_index(&mut self, id: ReadId) -> Result<(), Unavailable> {
        let max = self.config.max_pending_reads;
        let commit = self.commit;
        let RoleState::Leader(leader) = &mut self.role else {
            return Err(self.not_leader());
        };
        if leader.reads.len() >= max {
            return Err(Unavailable::Busy);
        }
        leader.reads.push_back(PendingRead {
            id,
            read_index: commit,
            round: leader.heartbeat_round + 1,
        });
        leader.round_wanted = true;
        Ok(())
    }

    /// Releases waiting reads whose heartbeat round a quorum acknowledged
    /// and whose read index is committed.
    pub(crate) fn release_reads(&mut self) {
        let commit = self.commit;
        let RoleState::Leader(leader) = &mut self.role else {
            return;
        };
        if commit < leader.recovered_through {
            return;
        }
        while let Some(read) = leader.reads.front() {
            if read.round > leader.confirmed_round || read.read_index > commit {
                break;
            }
            self.ready.reads.push(read.id);
            leader.reads.pop_front();
        }
    }

    /// Fills the pipeline window from pending commands and sends every new
    /// proposal in one `Accept` per member; starts a wanted heartbeat round.
    pub(crate) fn leader_flush(&mut self, now: Instant) {
        let commit = self.commit;
        let (max_inflight, max_cmds, max_bytes) = (
            self.config.max_inflight_slots,
            self.config.max_batch_commands,
            self.config.max_batch_bytes,
        );
        let budget = self.config.max_message_bytes;
        let me = self.config.id;
        // A chosen change governs from here; the slots before it are filled
        // with no-ops when no command is waiting, so that it takes effect.
        let change_from = self.membership.latest_from();
        // Opening no slot while the log is over its byte bound stops the
        // leader's log (and, through them, every follower's) from growing
        // until the driver compacts.
        let log_has_room = self.log_bytes <= self.config.max_log_bytes;
        let RoleState::Leader(leader) = &mut self.role else {
            return;
        };
        if leader.next_slot <= commit {
            // Recovered slots not yet proposed were learned chosen meanwhile
            // (a fetch reply): nothing to propose there any more.
            leader.next_slot = commit.next();
            leader.recovered = leader.recovered.split_off(&leader.next_slot);
        }
        // Proposals learned chosen another way are done (their slots'
        // memberships may be forgotten).
        while let Some(entry) = leader.proposals.first_entry() {
            if *entry.key() > commit {
                break;
            }
            entry.remove();
        }
        let mut outcome = FlushOutcome::Proposing;
        loop {
            let slot = leader.next_slot;
            if slot.0 - commit.0 > max_inflight || !log_has_room {
                break;
            }
            let governing = self.membership.governing(slot);
            if !governing.is_voter(me) {
                outcome = FlushOutcome::NoLongerVoter;
                break;
            }
            if !governing.has_quorum(&leader.promised_by) {
                outcome = FlushOutcome::NeedsPromises;
                break;
            }
            let wants_slot = slot <= leader.recovered_through
                || !leader.pending.is_empty()
                || leader.queued_change.is_some()
                || slot < change_from;
            if !wants_slot {
                break;
            }
            if slot <= leader.recovered_through {
                let value = leader.recovered.remove(&slot).unwrap_or(Value::Noop);
                leader.propose_at(now, slot, value);
                continue;
            }
            if let Some(change) = leader.queued_change.take() {
                leader.propose_at(now, slot, Value::Reconfigure(change));
                continue;
            }
            if leader.pending.is_empty() {
                leader.propose_at(now, slot, Value::Noop);
                continue;
            }
            let mut batch = Vec::new();
            let mut bytes = 0;
            while let Some(command) = leader.pending.front() {
                let fits = batch.is_empty()
                    || (batch.len() < max_cmds && bytes + command.len() <= max_bytes);
                if !fits {
                    break;
                }
                bytes += command.len();
                leader.pending_bytes -= command.len();
                batch.push(leader.pending.pop_front().expect("front exists"));
            }
            leader.propose_at(now, slot, Value::Commands(batch));
        }
        let round_wanted = leader.round_wanted;
        if !leader.unsent.is_empty() {
            let ballot = leader.ballot;
            let unsent = std::mem::take(&mut leader.unsent);
            for entries in split_by_bytes(unsent, budget) {
                let message = Message::Accept {
                    ballot,
                    entries,
                    commit,
                };
                self.broadcast(&message);
            }
        }
        if round_wanted {
            self.send_heartbeat_round(now);
        }
        match outcome {
            FlushOutcome::Proposing => {}
            FlushOutcome::NoLongerVoter => {
                // Removed: every slot of the old membership is proposed;
                // once they are all chosen (so every voter can learn them
                // from the commit index this node announced), a voter of
                // the new membership takes over.
                if self.commit.next() >= self.membership.latest_from() {
                    tracing::info!(node = %me, "no longer a voter; handing over leadership");
                    self.send_heartbeat_round(now);
                    self.step_down(now);
                    self.leader_hint = None;
                }
            }
            FlushOutcome::NeedsPromises => {
                // A new membership governs the next slot and this ballot's
                // promises hold no quorum of it: run Phase 1 again, keeping
                // the queued commands.
                let RoleState::Leader(leader) =
                    std::mem::replace(&mut self.role, RoleState::Follower)
                else {
                    unreachable!("checked above");
                };
                tracing::info!(node = %me, ballot = %leader.ballot, "new membership; running phase 1 again");
                self.ready
                    .failed_reads
                    .extend(leader.reads.iter().map(|r| r.id));
                let mut carried = leader.pending;
                if let Some(change) = leader.queued_change {
                    tracing::warn!(node = %me, %change, "membership change dropped by a new phase 1");
                }
                carried.shrink_to_fit();
                self.start_phase1_carrying(now, carried);
            }
        }
    }
}

/// Why [`Replica::leader_flush`] stopped opening slots.
enum FlushOutcome {
    /// The window is full or nothing is waiting.
    Proposing,
    /// This node does not vote in the membership governing the next slot.
    NoLongerVoter,
    /// The promises of this ballot hold no quorum of the membership
    /// governing the next slot.
    NeedsPromises,
}

/// Cuts `entries` into runs whose messages stay within `max_message_bytes`
/// (by [`Value::size_bound_bytes`]), each holding at least one entry, in
/// order.
pub(crate) fn split_by_bytes(
    entries: Vec<(Slot, Value)>,
    max_message_bytes: usize,
) -> Vec<Vec<(Slot, Value)>> {
    let mut runs: Vec<Vec<(Slot, Value)>> = Vec::new();
    let mut size = MESSAGE_OVERHEAD_BYTES;
    for (slot, value) in entries {
        let bytes = value.size_bound_bytes();
        match runs.last_mut() {
            Some(run) if size + bytes <= max_message_bytes => {
                size += bytes;
                run.push((slot, value));
            }
            _ => {
                size = MESSAGE_OVERHEAD_BYTES + bytes;
                runs.push(vec![(slot, value)]);
            }
        }
    }
    runs
}
