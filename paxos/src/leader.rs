//! A node that won Phase 1: Phase 2 (pipelined, batched), heartbeats,
//! check-quorum, the lease and ReadIndex.
//!
//! [`Leader`] owns its state and never sees the replica. Each method takes
//! what it reads of the replica as a [`Context`] (config, commit index,
//! memberships, log size) and returns what the replica must do: messages to
//! send (in order), slots now chosen, reads now released, or a
//! [`FlushOutcome`] that ends the leadership. The replica sends, records the
//! chosen values, and changes role.
//!
//! Call order, per step of the replica: the handlers (`on_accepted`,
//! `on_heartbeat_ack`, `queue_*`) as inputs arrive, `tick` on timer ticks,
//! then [`Leader::flush`] once no input is left (it opens slots, so it must
//! see every command queued in the step), and [`Leader::release_reads`]
//! whenever the commit index or an acknowledged round moved.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::config::Config;
use crate::membership::{Change, Membership, MembershipLog};
use crate::message::{Message, MESSAGE_OVERHEAD_BYTES};
use crate::ready::ReadId;
use crate::time::Instant;
use crate::types::{Ballot, Command, NodeId, Slot, Value};

/// Heartbeat rounds remembered for lease and ReadIndex acknowledgments.
const MAX_TRACKED_ROUNDS: usize = 32;

/// What a leader reads of its replica.
pub(crate) struct Context<'a> {
    /// The replica's configuration.
    pub(crate) config: &'a Config,
    /// The replica's commit index.
    pub(crate) commit: Slot,
    /// The memberships governing the slots from `commit + 1` on.
    pub(crate) membership: &'a MembershipLog,
    /// Bytes the replica's log holds (see `Replica::log_bytes`).
    pub(crate) log_bytes: u64,
}

impl<'a> Context<'a> {
    /// The memberships governing the slots in flight (see
    /// `MembershipLog::window`).
    fn window(&self) -> Vec<&'a Membership> {
        self.membership.window(self.commit.next())
    }
}

/// A queue of the leader is at its bound; the caller answers `Busy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct QueueFull;

/// A value proposed in a slot, waiting for a quorum of `Accepted`.
struct Proposal {
    value: Value,
    /// The acceptors that accepted it, in the order their answers came.
    acks: Vec<NodeId>,
    sent_at: Instant,
    /// The voters asked for a vote (this node included), when not every
    /// voter was (see `Config::accept_fallback`); `None` once all were.
    asked: Option<BTreeSet<NodeId>>,
}

/// One heartbeat round, for lease and ReadIndex.
struct HeartbeatRound {
    sent_at: Instant,
    acks: BTreeSet<NodeId>,
}

/// Who waits for a read index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ReadAsker {
    /// A read of this node's driver.
    Local(ReadId),
    /// A follower's [`Message::ReadIndex`] request.
    Peer {
        /// The follower.
        node: NodeId,
        /// Its number for the request.
        request: u64,
    },
}

/// A read waiting for a heartbeat round that started after it arrived.
struct PendingRead {
    asker: ReadAsker,
    read_index: Slot,
    round: u64,
}

/// A node that won Phase 1.
pub(crate) struct Leader {
    ballot: Ballot,
    /// The next slot to propose in.
    next_slot: Slot,
    /// Slots through here were recovered from Phase 1 (the last one is
    /// always proposed at our ballot); reads wait until they are chosen.
    recovered_through: Slot,
    proposals: BTreeMap<Slot, Proposal>,
    /// Proposed in this step, not yet sent.
    unsent: Vec<(Slot, Value)>,
    pending: VecDeque<Command>,
    /// Sum of the lengths of `pending`.
    pending_bytes: usize,
    next_heartbeat_at: Instant,
    heartbeat_round: u64,
    rounds: BTreeMap<u64, HeartbeatRound>,
    /// Highest round a quorum acknowledged.
    confirmed_round: u64,
    /// Reads may be served locally until here (local clock).
    lease_until: Option<Instant>,
    reads: VecDeque<PendingRead>,
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
    queued_change: Option<Change>,
    /// Each peer's commit index, from its latest heartbeat acknowledgment,
    /// and when that came.
    peer_commit: BTreeMap<NodeId, (Slot, Instant)>,
    /// The followers that answered for the latest slot chosen, in the order
    /// they answered: new slots are asked of the first of them that make a
    /// quorum with this node (see `Config::accept_fallback`).
    fast_followers: Vec<NodeId>,
    /// When the next new slot is asked of every voter, so that the choice of
    /// followers follows the fastest.
    next_probe_at: Instant,
    /// Slots asked of every voter after `Config::accept_fallback`, not yet
    /// taken by [`Leader::take_fallback_slots`].
    fallback_slots: u64,
}

/// What [`Leader::flush`] asks of the replica.
pub(crate) struct Flush {
    /// The new proposals' `Accept`s, to every member (this node included);
    /// `lazy` for members not asked to vote.
    pub(crate) accepts: Vec<(NodeId, Message)>,
    /// A read waits for a heartbeat round: start one after the accepts.
    pub(crate) round_wanted: bool,
    /// Why the leader stopped opening slots.
    pub(crate) outcome: FlushOutcome,
}

/// Why [`Leader::flush`] stopped opening slots.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FlushOutcome {
    /// The window is full or nothing is waiting.
    Proposing,
    /// This node does not vote in the membership governing the next slot.
    NoLongerVoter,
    /// The promises of this ballot hold no quorum of the membership
    /// governing the next slot.
    NeedsPromises,
}

/// What a leader leaves behind when it ends.
pub(crate) struct Abdication {
    /// Commands that got no slot, in order.
    pub(crate) pending: VecDeque<Command>,
    /// Reads that will never be served by this leadership.
    pub(crate) reads: Vec<ReadAsker>,
    /// A membership change that got no slot.
    pub(crate) queued_change: Option<Change>,
}

impl Leader {
    /// A leader elected at `ballot` by the complete promises of
    /// `promised_by`, that proposes `recovered` (see
    /// [`crate::recovery::Recovery::to_propose`]; not empty) first, then
    /// `carried`.
    pub(crate) fn new(
        now: Instant,
        ballot: Ballot,
        promised_by: BTreeSet<NodeId>,
        carried: VecDeque<Command>,
        recovered: BTreeMap<Slot, Value>,
    ) -> Leader {
        let first = *recovered.keys().next().expect("a recovered slot at least");
        let last = *recovered
            .keys()
            .next_back()
            .expect("a recovered slot at least");
        let pending_bytes = carried.iter().map(Vec::len).sum();
        Leader {
            ballot,
            next_slot: first,
            recovered_through: last,
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
            fast_followers: Vec::new(),
            next_probe_at: now,
            fallback_slots: 0,
        }
    }

    /// This leadership's ballot.
    pub(crate) fn ballot(&self) -> Ballot {
        self.ballot
    }

    /// Ends the leadership: what it had not proposed or served yet.
    pub(crate) fn abdicate(self) -> Abdication {
        Abdication {
            pending: self.pending,
            reads: self.reads.into_iter().map(|read| read.asker).collect(),
            queued_change: self.queued_change,
        }
    }

    // ----- commands and changes ------------------------------------------

    /// Queues a command for a slot, unless `max_commands` commands or
    /// `max_bytes` bytes already wait (a command is always taken into an
    /// empty queue).
    pub(crate) fn queue_command(
        &mut self,
        command: Command,
        max_commands: usize,
        max_bytes: usize,
    ) -> Result<(), QueueFull> {
        let bytes_full = !self.pending.is_empty()
            && self.pending_bytes.saturating_add(command.len()) > max_bytes;
        if bytes_full || self.pending.len() >= max_commands {
            return Err(QueueFull);
        }
        self.pending_bytes += command.len();
        self.pending.push_back(command);
        Ok(())
    }

    /// Queues a membership change for the next slot; the caller checked it
    /// (see [`change_in_flight`](Leader::change_in_flight)).
    pub(crate) fn queue_change(&mut self, change: Change) {
        self.queued_change = Some(change);
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

    /// The value this leader proposes in `slot` and is not yet chosen.
    pub(crate) fn proposed_value(&self, slot: Slot) -> Option<&Value> {
        self.proposals.get(&slot).map(|p| &p.value)
    }

    // ----- Phase 2 ---------------------------------------------------------

    /// `from` accepted `slots` at this leader's ballot: returns the slots
    /// that a quorum of their governing membership has now accepted, which
    /// are chosen (in increasing slot order).
    pub(crate) fn on_accepted(
        &mut self,
        from: NodeId,
        slots: Vec<Slot>,
        membership: &MembershipLog,
    ) -> Vec<(Slot, Value)> {
        let me = self.ballot.node();
        let mut chosen = Vec::new();
        for slot in slots {
            if let Some(proposal) = self.proposals.get_mut(&slot) {
                if !proposal.acks.contains(&from) {
                    proposal.acks.push(from);
                }
                if membership.governing(slot).has_quorum(&proposal.acks) {
                    let proposal = self.proposals.remove(&slot).expect("present");
                    self.fast_followers = proposal.acks.into_iter().filter(|n| *n != me).collect();
                    chosen.push((slot, proposal.value));
                }
            }
        }
        chosen
    }

    /// Fills the pipeline window from recovered values, the queued change
    /// and pending commands, and returns one `Accept` per member for every
    /// new proposal.
    pub(crate) fn flush(&mut self, now: Instant, ctx: &Context) -> Flush {
        self.forget_chosen(ctx.commit);
        let asked = self.voters_to_ask(now, ctx);
        let outcome = self.open_slots(now, ctx, &asked);
        let mut accepts = Vec::new();
        if !self.unsent.is_empty() {
            let unsent = std::mem::take(&mut self.unsent);
            let window = ctx.window();
            let votes = |to: &NodeId| match &asked {
                Some(asked) => asked.contains(to),
                None => window.iter().any(|m| m.is_voter(*to)),
            };
            let members: Vec<(NodeId, bool)> = ctx
                .membership
                .member_ids()
                .into_iter()
                .map(|to| (to, !votes(&to)))
                .collect();
            for entries in split_by_bytes(unsent, ctx.config.max_message_bytes) {
                for (to, lazy) in &members {
                    let message = Message::Accept {
                        ballot: self.ballot,
                        entries: entries.clone(),
                        commit: ctx.commit,
                        lazy: *lazy,
                    };
                    accepts.push((*to, message));
                }
            }
        }
        Flush {
            accepts,
            round_wanted: self.round_wanted,
            outcome,
        }
    }

    /// The voters to ask for votes on the slots opened now (this node
    /// included), or `None` for every voter: thrifty Phase 2 (see
    /// `Config::accept_fallback`). Every voter is asked when thrift is off,
    /// when a probe is due, when the slots in flight span more than one
    /// membership, or when the last quorum's followers no longer make one.
    fn voters_to_ask(&mut self, now: Instant, ctx: &Context) -> Option<BTreeSet<NodeId>> {
        let config = ctx.config;
        config.accept_fallback?;
        if self.pending.is_empty() && self.recovered.is_empty() {
            // Nothing to open a slot for (but perhaps a change or no-ops,
            // asked of everyone): keep a due probe for the next command.
            return None;
        }
        if now >= self.next_probe_at {
            self.next_probe_at = now + config.heartbeat_interval;
            return None;
        }
        let window = ctx.window();
        let [membership] = window.as_slice() else {
            return None;
        };
        let mut asked = BTreeSet::from([config.id]);
        for follower in &self.fast_followers {
            if membership.has_quorum(&asked) {
                break;
            }
            if membership.is_voter(*follower) {
                asked.insert(*follower);
            }
        }
        membership.has_quorum(&asked).then_some(asked)
    }

    /// Drops what was learned chosen another way than by this leader's
    /// acknowledgments (a fetch reply): recovered slots not yet proposed
    /// there, and proposals (their slots' memberships may be forgotten).
    fn forget_chosen(&mut self, commit: Slot) {
        if self.next_slot <= commit {
            self.next_slot = commit.next();
            self.recovered = self.recovered.split_off(&self.next_slot);
        }
        while let Some(entry) = self.proposals.first_entry() {
            if *entry.key() > commit {
                break;
            }
            entry.remove();
        }
    }

    /// Proposes in slot after slot while the window has room and something
    /// wants a slot.
    fn open_slots(
        &mut self,
        now: Instant,
        ctx: &Context,
        asked: &Option<BTreeSet<NodeId>>,
    ) -> FlushOutcome {
        let config = ctx.config;
        // A chosen change governs from here; the slots before it are filled
        // with no-ops when no command is waiting, so that it takes effect.
        let change_from = ctx.membership.latest_from();
        // Opening no slot while the log is over its byte bound stops the
        // leader's log (and, through them, every follower's) from growing
        // until the driver compacts.
        let log_has_room = ctx.log_bytes <= config.max_log_bytes;
        loop {
            let slot = self.next_slot;
            if slot.0 - ctx.commit.0 > config.max_inflight_slots || !log_has_room {
                return FlushOutcome::Proposing;
            }
            let governing = ctx.membership.governing(slot);
            if !governing.is_voter(config.id) {
                return FlushOutcome::NoLongerVoter;
            }
            if !governing.has_quorum(&self.promised_by) {
                return FlushOutcome::NeedsPromises;
            }
            let value = if slot <= self.recovered_through {
                self.recovered.remove(&slot).unwrap_or(Value::Noop)
            } else if let Some(change) = self.queued_change.take() {
                Value::Reconfigure(change)
            } else if !self.pending.is_empty() {
                Value::Commands(self.take_batch(config))
            } else if slot < change_from {
                Value::Noop
            } else {
                return FlushOutcome::Proposing;
            };
            self.propose_at(now, slot, value, asked.clone());
        }
    }

    /// Takes the next batch of pending commands: at most
    /// `max_batch_commands` and `max_batch_bytes`, but at least one.
    fn take_batch(&mut self, config: &Config) -> Vec<Command> {
        let mut batch = Vec::new();
        let mut bytes = 0;
        while let Some(command) = self.pending.front() {
            let fits = batch.is_empty()
                || (batch.len() < config.max_batch_commands
                    && bytes + command.len() <= config.max_batch_bytes);
            if !fits {
                break;
            }
            bytes += command.len();
            self.pending_bytes -= command.len();
            batch.push(self.pending.pop_front().expect("front exists"));
        }
        batch
    }

    fn propose_at(
        &mut self,
        now: Instant,
        slot: Slot,
        value: Value,
        asked: Option<BTreeSet<NodeId>>,
    ) {
        assert!(
            slot >= self.next_slot,
            "slot {slot} proposed twice in one ballot"
        );
        self.proposals.insert(
            slot,
            Proposal {
                value: value.clone(),
                acks: Vec::new(),
                sent_at: now,
                asked,
            },
        );
        self.unsent.push((slot, value));
        self.next_slot = slot.next();
    }

    // ----- timers ----------------------------------------------------------

    /// True if no quorum acknowledged a heartbeat round sent in the last
    /// election timeout (check-quorum): the leader should step down.
    pub(crate) fn quorum_lost(&self, now: Instant, config: &Config) -> bool {
        #[cfg(feature = "bug-injection")]
        if config.bugs.read_without_lease {
            return false;
        }
        now >= self.quorum_heard_at + config.election_timeout
    }

    /// True if the next heartbeat round is due.
    pub(crate) fn heartbeat_due(&self, now: Instant) -> bool {
        now >= self.next_heartbeat_at
    }

    /// The `Accept`s to send again: every proposal unacknowledged for a
    /// heartbeat interval, to each voter of its slot that has not
    /// acknowledged it; and every proposal asked of a quorum only and not
    /// chosen after `Config::accept_fallback`, to the voters not asked.
    pub(crate) fn retransmissions(
        &mut self,
        now: Instant,
        ctx: &Context,
    ) -> Vec<(NodeId, Message)> {
        let interval = ctx.config.heartbeat_interval;
        let fallback = ctx.config.accept_fallback;
        let mut resend: BTreeMap<NodeId, Vec<(Slot, Value)>> = BTreeMap::new();
        for (slot, proposal) in self.proposals.iter_mut() {
            let all_due = now >= proposal.sent_at + interval;
            let fallback_due = proposal.asked.is_some()
                && fallback.is_some_and(|after| now >= proposal.sent_at + after);
            if !all_due && !fallback_due {
                continue;
            }
            let asked = proposal.asked.take();
            if asked.is_some() {
                self.fallback_slots += 1;
            }
            if all_due {
                proposal.sent_at = now;
            }
            let ask =
                |member: &NodeId| all_due || asked.as_ref().is_some_and(|a| !a.contains(member));
            for member in ctx.membership.governing(*slot).voters() {
                // Its own acceptor has the slot: its acknowledgement only
                // waits for the disk (`Replica::persisted`).
                if member != ctx.config.id && !proposal.acks.contains(&member) && ask(&member) {
                    resend
                        .entry(member)
                        .or_default()
                        .push((*slot, proposal.value.clone()));
                }
            }
        }
        let mut messages = Vec::new();
        for (to, entries) in resend {
            for entries in split_by_bytes(entries, ctx.config.max_message_bytes) {
                let accept = Message::Accept {
                    ballot: self.ballot,
                    entries,
                    commit: ctx.commit,
                    lazy: false,
                };
                messages.push((to, accept));
            }
        }
        messages
    }

    /// The slots asked of every voter after the fallback since the last call.
    pub(crate) fn take_fallback_slots(&mut self) -> u64 {
        std::mem::take(&mut self.fallback_slots)
    }

    // ----- heartbeats, lease and reads -------------------------------------

    /// Starts a heartbeat round: returns a `Heartbeat` for every other
    /// member, and counts this node's own acknowledgment. The caller grants
    /// its own acceptor's lease to this leader and releases reads.
    pub(crate) fn start_heartbeat_round(
        &mut self,
        now: Instant,
        ctx: &Context,
    ) -> Vec<(NodeId, Message)> {
        let me = ctx.config.id;
        self.heartbeat_round += 1;
        self.round_wanted = false;
        self.next_heartbeat_at = now + ctx.config.heartbeat_interval;
        let round = self.heartbeat_round;
        self.rounds.insert(
            round,
            HeartbeatRound {
                sent_at: now,
                acks: BTreeSet::new(),
            },
        );
        while self.rounds.len() > MAX_TRACKED_ROUNDS {
            self.rounds.pop_first();
        }
        let heartbeat = Message::Heartbeat {
            ballot: self.ballot,
            commit: ctx.commit,
            round,
        };
        let heartbeats = ctx
            .membership
            .member_ids()
            .into_iter()
            .filter(|to| *to != me)
            .map(|to| (to, heartbeat.clone()))
            .collect();
        self.on_heartbeat_ack(now, me, round, ctx.commit, ctx);
        heartbeats
    }

    /// `from` acknowledged heartbeat `round` of this leader's ballot and
    /// reported its commit index. Once a quorum of every membership in
    /// flight acknowledged a round, reads waiting for it may go and the
    /// lease runs from the round's send time.
    pub(crate) fn on_heartbeat_ack(
        &mut self,
        now: Instant,
        from: NodeId,
        round: u64,
        commit: Slot,
        ctx: &Context,
    ) {
        let known = self.peer_commit.entry(from).or_insert((commit, now));
        *known = (known.0.max(commit), now);
        if let Some(r) = self.rounds.get_mut(&round) {
            r.acks.insert(from);
            if ctx.window().iter().all(|m| m.has_quorum(&r.acks)) {
                self.confirmed_round = self.confirmed_round.max(round);
                self.quorum_heard_at = self.quorum_heard_at.max(r.sent_at);
                let until = r.sent_at + ctx.config.leader_lease();
                self.lease_until = Some(self.lease_until.map_or(until, |u| u.max(until)));
            }
        }
    }

    /// True if the leader may answer a read from local state right now:
    /// it holds the lease and everything recovered in Phase 1 is chosen.
    pub(crate) fn may_read_locally(&self, now: Instant, commit: Slot, config: &Config) -> bool {
        #[cfg(feature = "bug-injection")]
        if config.bugs.read_without_lease {
            return true;
        }
        #[cfg(not(feature = "bug-injection"))]
        let _ = config;
        commit >= self.recovered_through && self.lease_until.is_some_and(|u| now < u)
    }

    /// Holds a read until a heartbeat round sent after now is acknowledged
    /// and `commit` is; refused while `max` reads wait.
    pub(crate) fn queue_read(
        &mut self,
        asker: ReadAsker,
        commit: Slot,
        max: usize,
    ) -> Result<(), QueueFull> {
        if self.reads.len() >= max {
            return Err(QueueFull);
        }
        self.reads.push_back(PendingRead {
            asker,
            read_index: commit,
            round: self.heartbeat_round + 1,
        });
        self.round_wanted = true;
        Ok(())
    }

    /// Releases, in order, the waiting reads whose heartbeat round a quorum
    /// acknowledged and whose read index is committed (`commit`); none
    /// before everything recovered in Phase 1 is chosen.
    pub(crate) fn release_reads(&mut self, commit: Slot) -> Vec<ReadAsker> {
        let mut released = Vec::new();
        if commit < self.recovered_through {
            return released;
        }
        while let Some(read) = self.reads.front() {
            if read.round > self.confirmed_round || read.read_index > commit {
                break;
            }
            released.push(read.asker);
            self.reads.pop_front();
        }
        released
    }

    /// Asserts what holds between steps, given the replica's `promised`
    /// ballot and `commit` index: see `Replica`'s invariants.
    pub(crate) fn check_invariants(&self, promised: Ballot, commit: Slot) {
        assert_eq!(
            self.ballot, promised,
            "a leader whose own acceptor promised another ballot"
        );
        assert!(self.next_slot > commit, "leader slot counter behind commit");
        assert!(
            self.proposals
                .first_key_value()
                .is_none_or(|(slot, _)| *slot > commit)
                && self
                    .proposals
                    .last_key_value()
                    .is_none_or(|(slot, _)| *slot < self.next_slot),
            "a proposal outside the leader's window"
        );
        assert!(
            self.recovered
                .first_key_value()
                .is_none_or(|(slot, _)| *slot >= self.next_slot)
                && self
                    .recovered
                    .last_key_value()
                    .is_none_or(|(slot, _)| *slot <= self.recovered_through),
            "a recovered value outside the slots still to propose"
        );
        assert!(self.unsent.is_empty(), "proposals left unsent");
        assert!(
            self.confirmed_round <= self.heartbeat_round,
            "a heartbeat round confirmed before it was sent"
        );
    }
}

/// Cuts `entries` into runs whose messages stay within `max_message_bytes`
/// (by [`Value::size_bound_bytes`]), each holding at least one entry, in
/// order.
fn split_by_bytes(
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
