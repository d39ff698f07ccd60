//! The proposer side: Phase 1 as a candidate, Phase 2, heartbeats, the
//! lease and ReadIndex as a leader.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::membership::{Change, Membership};
use crate::message::{Message, MESSAGE_OVERHEAD_BYTES};
use crate::ready::ReadId;
use crate::recovery::{self, ConflictingChosen};
use crate::replica::{Replica, RoleState, Unavailable};
use crate::time::Instant;
use crate::types::{Ballot, Command, NodeId, Slot, Value};

/// Heartbeat rounds remembered for lease and ReadIndex acknowledgments.
const MAX_TRACKED_ROUNDS: usize = 32;

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
    /// A leader elected at `ballot` by the complete promises of
    /// `promised_by`, that proposes `recovered` (see
    /// [`crate::recovery::Recovery::to_propose`]) first, then `carried`.
    pub(crate) fn new(
        now: Instant,
        ballot: Ballot,
        promised_by: BTreeSet<NodeId>,
        carried: VecDeque<Command>,
        recovered: BTreeMap<Slot, Value>,
    ) -> Leader {
        let next_slot = *recovered.keys().next().expect("a recovered slot at least");
        let recovered_through = *recovered.keys().next_back().expect("a recovered slot at least");
        let pending_bytes = carried.iter().map(Vec::len).sum();
        Leader {
            ballot,
            next_slot,
            recovered_through,
            proposals: BTreeMap::new(),
            unsent: Vec::new(),
            pending: carried,
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
            recovered,
            queued_change: None,
            peer_commit: BTreeMap::new(),
        }
    }

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
    /// Phase 1 won: re-propose what the promises reported, fill holes with
    /// no-ops (see [`crate::recovery`]), and start serving.
    pub(crate) fn become_leader(&mut self, now: Instant) {
        let RoleState::Candidate(candidate) =
            std::mem::replace(&mut self.role, RoleState::Follower)
        else {
            unreachable!("only a candidate becomes leader");
        };
        let won = candidate.into_won();
        let ballot = won.ballot;
        let promised_by: BTreeSet<NodeId> = won.promises.keys().copied().collect();
        #[cfg_attr(not(feature = "bug-injection"), allow(unused_mut))]
        let mut merged = match recovery::merge_promises(won.promises) {
            Ok(merged) => merged,
            Err(ConflictingChosen { slot }) => {
                tracing::error!(node = %self.config.id, %slot, "promises report two chosen values; not leading");
                self.back_off(now);
                return;
            }
        };
        #[cfg(feature = "bug-injection")]
        if self.config.bugs.ignore_promised_values {
            recovery::ignore_values(&mut merged);
        }
        let recovery = recovery::plan(won.first_slot, self.commit, &self.log, merged);
        let recovered_through = recovery.through();
        let leader = Leader::new(now, ballot, promised_by, won.carried, recovery.to_propose);
        tracing::info!(node = %self.config.id, %ballot, through = %recovered_through, "elected leader");
        self.role = RoleState::Leader(Box::new(leader));
        self.leader_hint = Some(self.config.id);
        self.failed_attempts = 0;
        for (slot, value) in recovery.learned {
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
            RoleState::Candidate(c) if c.ballot() == ballot => c.on_reject(from, superseded),
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
