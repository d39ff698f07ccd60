//! The replica: acceptor, proposer and learner of one node, as a state
//! machine driven by `tick`, `step`, `propose` and `read`.
//!
//! Leader and candidate logic live in [`crate::proposer`], the learner side
//! (chosen slots, catch-up, compaction) in [`crate::learner`]; this module
//! holds the state, the public entry points and the acceptor.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use crate::config::{Config, ConfigError};
use crate::membership::{Change, ChangeError, Member, Membership, MembershipLog, ACTIVATION_DELAY};
use crate::message::{Envelope, Message, MESSAGE_OVERHEAD_BYTES};
use crate::candidate::{Candidate, PromiseChunk, PromiseOutcome};
use crate::proposer::Leader;
use crate::ready::{ReadId, Ready};
use crate::rng::Rng;
use crate::storage::{DurableState, Record, SlotState};
use crate::time::Instant;
use crate::types::{Ballot, Command, NodeId, Slot, Value};

/// What a node currently does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Follows a leader (or waits for one).
    Follower,
    /// Runs Phase 1 for its ballot.
    Candidate,
    /// Won Phase 1; proposes commands.
    Leader,
}

impl Role {
    /// Every role, for callers that report each one.
    pub const ALL: [Role; 3] = [Role::Leader, Role::Candidate, Role::Follower];

    /// The role's name as status reports, metrics and logs spell it:
    /// `leader`, `candidate` or `follower`.
    pub fn name(self) -> &'static str {
        match self {
            Role::Leader => "leader",
            Role::Candidate => "candidate",
            Role::Follower => "follower",
        }
    }
}

/// Why a proposal or read was not taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unavailable {
    /// This node does not lead; `leader` is the node it believes leads.
    NotLeader {
        /// The believed leader, if any.
        leader: Option<NodeId>,
    },
    /// The queue for this kind of request is full; retry later.
    Busy,
}

impl std::fmt::Display for Unavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unavailable::NotLeader { leader: Some(l) } => write!(f, "not the leader; try {l}"),
            Unavailable::NotLeader { leader: None } => write!(f, "not the leader; none known"),
            Unavailable::Busy => write!(f, "too many requests queued; retry later"),
        }
    }
}

impl std::error::Error for Unavailable {}

/// Why a membership change was not proposed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChangeRefused {
    /// Only the leader proposes changes.
    #[error("{0}")]
    Unavailable(Unavailable),
    /// The change is not valid now.
    #[error("{0}")]
    Invalid(ChangeError),
}

/// How far (in slots) a learner's commit index may trail the leader's for
/// it to count as caught up, so that it may be promoted.
pub const PROMOTE_MAX_LAG_SLOTS: u64 = 1024;

/// A snapshot of a replica's state for status displays and tests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// This node.
    pub id: NodeId,
    /// Its role.
    pub role: Role,
    /// Highest ballot promised.
    pub promised: Ballot,
    /// The node believed to lead.
    pub leader: Option<NodeId>,
    /// Every slot up to here is chosen and known.
    pub commit_index: Slot,
    /// Log slots up to here are compacted into a snapshot.
    pub compacted_through: Slot,
}

pub(crate) enum RoleState {
    Follower,
    Candidate(Candidate),
    Leader(Box<Leader>),
}

/// One node's share of Multi-Paxos. See the crate docs for the loop that
/// drives it.
pub struct Replica {
    pub(crate) config: Config,
    pub(crate) rng: Rng,
    /// Highest ballot promised (durable).
    pub(crate) promised: Ballot,
    /// Every slot this node holds a value for (durable). Changed only
    /// through `put_slot` and `compact`, which keep `log_bytes`.
    pub(crate) log: BTreeMap<Slot, SlotState>,
    /// Sum of `Value::size_bound_bytes` over `log`.
    pub(crate) log_bytes: u64,
    /// Slots through here are captured by a state-machine snapshot and gone
    /// from `log` (durable).
    pub(crate) compacted_through: Slot,
    /// Every slot through here is chosen. Above `compacted_through` the log
    /// marks it chosen, except the slots a restarted node's state machine
    /// had applied (it restarts with `commit` there, and its log may hold
    /// them only as accepted).
    pub(crate) commit: Slot,
    /// Committed slots through here were handed to the driver to apply.
    pub(crate) delivered: Slot,
    /// Highest commit index any leader told us of.
    pub(crate) known_commit: Slot,
    /// Highest round of any ballot seen; new ballots go above it.
    pub(crate) max_round_seen: u32,
    /// The node this acceptor acknowledged as leader most recently...
    pub(crate) lease_holder: Option<NodeId>,
    /// ...and until when (local clock) it refuses to promise anyone else.
    pub(crate) lease_granted_until: Instant,
    pub(crate) role: RoleState,
    pub(crate) leader_hint: Option<NodeId>,
    /// When a follower starts Phase 1 if no leader shows up.
    pub(crate) election_deadline: Instant,
    /// Phase 1 attempts that failed in a row (drives the backoff).
    pub(crate) failed_attempts: u32,
    pub(crate) next_fetch_at: Instant,
    /// A node known to hold chosen values we lack (set when a promise showed
    /// we are behind its compaction point); fetched from before the leader.
    /// Cleared by a snapshot install, or when it sent nothing that moved the
    /// commit index for an election timeout (it may have died), so the node
    /// falls back to fetching from the leader.
    pub(crate) catch_up_from: Option<NodeId>,
    /// When `catch_up_from` was set or last moved the commit index.
    pub(crate) catch_up_progress_at: Instant,
    /// When we last asked the driver to send each peer a snapshot.
    pub(crate) snapshot_offered_at: BTreeMap<NodeId, Instant>,
    /// The memberships governing the slots from `commit + 1` on (see
    /// [`crate::membership`]). Changed only when a change is delivered or a
    /// snapshot installed.
    pub(crate) membership: MembershipLog,
    /// Messages from this node to itself, handled before the call returns.
    loopback: VecDeque<Message>,
    pub(crate) ready: Ready,
}

impl Replica {
    /// A replica that (re)starts at `now` from its durable state, with its
    /// state machine applied through `applied`. Everything the state machine
    /// applied was chosen, so the commit index starts at least there; chosen
    /// values above it are delivered again. `applied` must be at least the
    /// durable compaction point (the driver makes its snapshot durable before
    /// it compacts the log).
    ///
    /// A restarted acceptor does not remember to whom it granted a lease, so
    /// it refuses every promise for one lease period (a node that never
    /// promised anything has granted nothing and skips that wait).
    pub fn new(
        config: Config,
        durable: DurableState,
        applied: Slot,
        now: Instant,
    ) -> Result<Replica, ConfigError> {
        config.validate()?;
        let mut rng = Rng::new(config.rng_seed);
        let election_deadline = now + random_election_timeout(&config, &mut rng);
        if applied < durable.compacted_through {
            return Err(ConfigError(format!(
                "state machine applied through slot {applied} but the log was compacted through {}",
                durable.compacted_through
            )));
        }
        if !durable.promised.round_in_range() {
            return Err(ConfigError(format!(
                "the durable promise {} has a round above the highest usable one ({})",
                durable.promised,
                Ballot::MAX_ROUND
            )));
        }
        let last_slot = durable.slots.keys().next_back().copied();
        if let Some(slot) = [Some(applied), last_slot]
            .into_iter()
            .flatten()
            .find(|slot| *slot > Slot::MAX)
        {
            return Err(ConfigError(format!(
                "slot {slot} is above the highest usable slot ({})",
                Slot::MAX
            )));
        }
        let membership = if durable.membership.is_unknown() && !config.members.is_empty() {
            MembershipLog::new(Membership::founding(config.members.iter().map(|id| {
                Member {
                    id: *id,
                    voter: true,
                    peer_addr: String::new(),
                    client_addr: String::new(),
                }
            })))
        } else {
            durable.membership
        };
        let log_bytes = durable
            .slots
            .values()
            .map(|state| state.value().size_bound_bytes() as u64)
            .sum();
        let mut replica = Replica {
            rng,
            promised: durable.promised,
            log: durable.slots,
            log_bytes,
            compacted_through: durable.compacted_through,
            commit: applied,
            delivered: applied,
            known_commit: Slot(0),
            max_round_seen: durable.promised.round(),
            lease_holder: None,
            lease_granted_until: if durable.promised == Ballot::ZERO {
                now
            } else {
                now + config.lease
            },
            role: RoleState::Follower,
            leader_hint: None,
            election_deadline,
            failed_attempts: 0,
            next_fetch_at: now,
            catch_up_from: None,
            catch_up_progress_at: now,
            snapshot_offered_at: BTreeMap::new(),
            membership,
            loopback: VecDeque::new(),
            ready: Ready::default(),
            config,
        };
        while matches!(
            replica.log.get(&replica.commit.next()),
            Some(SlotState::Chosen(_))
        ) {
            replica.commit = replica.commit.next();
        }
        replica.deliver_committed();
        replica.membership.forget_before(replica.commit.next());
        Ok(replica)
    }

    /// Advances time: elections, heartbeats, retransmissions, catch-up.
    pub fn tick(&mut self, now: Instant) {
        match &self.role {
            RoleState::Follower => {
                if now >= self.election_deadline {
                    if self.may_campaign() {
                        self.start_phase1(now);
                    } else {
                        self.election_deadline =
                            now + random_election_timeout(&self.config, &mut self.rng);
                    }
                }
            }
            RoleState::Candidate(c) => {
                if now >= c.deadline() {
                    self.back_off(now);
                }
            }
            RoleState::Leader(_) => self.leader_tick(now),
        }
        self.maybe_fetch(now);
        self.settle(now);
    }

    /// Handles one message from another node.
    ///
    /// A message that breaks a protocol rule (see `peer_input`) is dropped
    /// and logged, at error level if it contradicts a chosen value: input
    /// from a peer never panics the node, hangs it or makes it hold
    /// unbounded memory.
    pub fn step(&mut self, now: Instant, envelope: Envelope) {
        assert_eq!(envelope.to, self.config.id, "message for another node");
        let from = envelope.from;
        if from == self.config.id || self.is_gone(from) {
            tracing::warn!(node = %self.config.id, %from, "message from a removed node dropped");
            return;
        }
        if let Err(error) = self.check_peer_message(from, &envelope.message) {
            let kind = message_kind(&envelope.message);
            if error.is_safety_violation() {
                tracing::error!(node = %self.config.id, %from, kind, %error, "peer message refused");
            } else {
                tracing::warn!(node = %self.config.id, %from, kind, %error, "peer message refused");
            }
            return;
        }
        self.handle(now, from, envelope.message);
        self.settle(now);
    }

    /// Starts Phase 1 now, whatever the election timer says (used to force
    /// a leader change, and by tests of dueling proposers).
    pub fn campaign(&mut self, now: Instant) {
        if !matches!(self.role, RoleState::Leader(_)) && self.may_campaign() {
            self.start_phase1(now);
        }
        self.settle(now);
    }

    /// Queues a command for the log. Only the leader takes commands; the
    /// command's outcome shows up as a committed value (or, if leadership is
    /// lost before it got a slot, in `Ready::unproposed`).
    ///
    /// Answers `Busy` while `max_pending_commands` commands or
    /// `max_pending_bytes` bytes wait for a slot (a command is always taken
    /// into an empty queue), and while the log holds more than
    /// `max_log_bytes` (the driver has to compact first).
    pub fn propose(&mut self, now: Instant, command: Command) -> Result<(), Unavailable> {
        let max_pending = self.config.max_pending_commands;
        let max_pending_bytes = self.config.max_pending_bytes;
        let log_full = self.log_bytes > self.config.max_log_bytes;
        let RoleState::Leader(leader) = &mut self.role else {
            return Err(self.not_leader());
        };
        let bytes_full = !leader.pending.is_empty()
            && leader.pending_bytes.saturating_add(command.len()) > max_pending_bytes;
        if log_full || bytes_full || leader.pending.len() >= max_pending {
            return Err(Unavailable::Busy);
        }
        leader.push_pending(command);
        self.settle(now);
        Ok(())
    }

    /// Proposes a membership change. It is checked against the newest
    /// membership (one change at a time: refused while the previous one does
    /// not govern yet; a learner is promoted only once its commit index is
    /// within [`PROMOTE_MAX_LAG_SLOTS`] of the leader's), then chosen in a
    /// slot of its own; it governs `ACTIVATION_DELAY` slots later (the
    /// leader fills the slots in between with no-ops when idle). Watch
    /// [`Replica::membership`] to see it take effect.
    pub fn propose_change(&mut self, now: Instant, change: Change) -> Result<(), ChangeRefused> {
        let commit = self.commit;
        let not_leader = self.not_leader();
        let RoleState::Leader(leader) = &self.role else {
            return Err(ChangeRefused::Unavailable(not_leader));
        };
        if self.membership.latest_from() > commit.next()
            || leader.change_in_flight(self.membership.latest())
        {
            return Err(ChangeRefused::Invalid(ChangeError::InProgress));
        }
        self.membership
            .latest()
            .apply(&change)
            .map_err(ChangeRefused::Invalid)?;
        if let Change::Promote(id) = &change {
            let has = leader.peer_commit(*id);
            if has.0 + PROMOTE_MAX_LAG_SLOTS < commit.0 || has == Slot(0) && commit.0 > 0 {
                return Err(ChangeRefused::Invalid(ChangeError::Lagging {
                    id: *id,
                    has,
                    leader: commit,
                }));
            }
        }
        let RoleState::Leader(leader) = &mut self.role else {
            unreachable!("checked above");
        };
        tracing::info!(node = %self.config.id, %change, "proposing a membership change");
        leader.queued_change = Some(change);
        self.settle(now);
        Ok(())
    }

    /// The memberships governing the slots from the commit index on: the
    /// one in force, then any chosen change not in force yet.
    pub fn membership(&self) -> &MembershipLog {
        &self.membership
    }

    /// The commit index each peer last reported to this node while it led,
    /// and when (empty on a follower): how far behind each member is, and
    /// whether it is reachable.
    pub fn peer_commits(&self) -> BTreeMap<NodeId, (Slot, Instant)> {
        match &self.role {
            RoleState::Leader(leader) => leader.peer_commits(),
            _ => BTreeMap::new(),
        }
    }

    /// True if this node has been removed from the cluster and the removal
    /// governs: every slot its old membership governed is chosen, so it no
    /// longer votes, leads or campaigns, and its driver may stop serving and
    /// shut it down. (From the moment the removal is chosen it no longer
    /// campaigns, but it still acknowledges the slots before the removal
    /// governs: stopping it then could stall a small cluster.)
    pub fn is_removed(&self) -> bool {
        self.membership
            .governing(self.commit.next())
            .is_retired(self.config.id)
    }

    /// Asks to serve a linearizable read. Under a valid lease the read is
    /// released in the very next `Ready` (no round trip); otherwise after a
    /// heartbeat round confirms leadership (ReadIndex). Either way, the read
    /// must be answered from the state machine right after applying that
    /// `Ready`'s committed values.
    pub fn read(&mut self, now: Instant, id: ReadId) -> Result<(), Unavailable> {
        if !matches!(self.role, RoleState::Leader(_)) {
            return Err(self.not_leader());
        }
        if self.may_read_locally(now) {
            self.ready.reads.push(id);
        } else {
            self.queue_read_index(id)?;
        }
        self.settle(now);
        Ok(())
    }

    /// Takes everything the driver must do; see [`Ready`] for the order.
    pub fn ready(&mut self) -> Ready {
        let mut ready = std::mem::take(&mut self.ready);
        ready.promise_pending = ready
            .persist
            .iter()
            .any(|record| matches!(record, Record::Promised(_)));
        #[cfg(feature = "bug-injection")]
        {
            ready.early_despite_promise = self.config.bugs.phase2_before_own_promise_durable;
        }
        ready
    }

    /// Bytes the log holds in slots not yet compacted, by
    /// [`Value::size_bound_bytes`]; the leader opens no new slot while it is
    /// above `Config::max_log_bytes`.
    pub fn log_bytes(&self) -> u64 {
        self.log_bytes
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.config.id
    }

    /// Every slot through this one is chosen and known here.
    pub fn commit_index(&self) -> Slot {
        self.commit
    }

    /// True while this node leads.
    pub fn is_leader(&self) -> bool {
        matches!(self.role, RoleState::Leader(_))
    }

    /// The value chosen in `slot`, if this node knows it.
    pub fn chosen(&self, slot: Slot) -> Option<&Value> {
        match self.log.get(&slot) {
            Some(SlotState::Chosen(v)) => Some(v),
            _ => None,
        }
    }

    /// Role, ballot, leader and commit index.
    pub fn status(&self) -> Status {
        Status {
            id: self.config.id,
            role: match self.role {
                RoleState::Follower => Role::Follower,
                RoleState::Candidate(_) => Role::Candidate,
                RoleState::Leader(_) => Role::Leader,
            },
            promised: self.promised,
            leader: self.leader_hint,
            commit_index: self.commit,
            compacted_through: self.compacted_through,
        }
    }

    pub(crate) fn not_leader(&self) -> Unavailable {
        Unavailable::NotLeader {
            leader: self.leader_hint.filter(|l| *l != self.config.id),
        }
    }

    // ----- plumbing -------------------------------------------------------

    pub(crate) fn send(&mut self, to: NodeId, message: Message) {
        if to == self.config.id {
            self.loopback.push_back(message);
        } else {
            self.ready.messages.push(Envelope {
                from: self.config.id,
                to,
                message,
            });
        }
    }

    /// Sends each message to its node, in order.
    fn send_all(&mut self, messages: Vec<(NodeId, Message)>) {
        for (to, message) in messages {
            self.send(to, message);
        }
    }

    /// Sends to every member (voter or learner) of every membership from the
    /// commit index on, this node included.
    pub(crate) fn broadcast(&mut self, message: &Message) {
        for to in self.member_ids() {
            self.send(to, message.clone());
        }
    }

    /// Every member of the memberships governing slots from the commit index
    /// on, in order, without repeats.
    pub(crate) fn member_ids(&self) -> Vec<NodeId> {
        let mut ids: Vec<NodeId> = self
            .membership
            .entries()
            .flat_map(|(_, m)| m.members().map(|member| member.id))
            .collect();
        ids.sort();
        ids.dedup();
        ids
    }

    /// The memberships governing the slots a leader may have in flight
    /// right now: `commit + 1 ..= commit + ACTIVATION_DELAY`, all known. A
    /// candidate needs promises from a quorum of each, a leader's lease an
    /// acknowledgment from a quorum of each.
    pub(crate) fn window_memberships(&self) -> Vec<Membership> {
        let first = self.commit.next();
        self.membership
            .governing_range(first, Slot(first.0 + ACTIVATION_DELAY - 1))
            .into_iter()
            .cloned()
            .collect()
    }

    /// True if this node may campaign: it votes in the membership governing
    /// its next slot (the first it would propose in), and no chosen change
    /// removes it.
    pub(crate) fn may_campaign(&self) -> bool {
        let me = self.config.id;
        !self.membership.latest().is_retired(me)
            && self.membership.governing(self.commit.next()).is_voter(me)
    }

    /// True if `node` was removed and no membership from the commit index on
    /// counts it any more: its messages are dropped. (A node whose removal
    /// does not govern yet still acknowledges the slots it governs.)
    fn is_gone(&self, node: NodeId) -> bool {
        self.membership.latest().is_retired(node)
            && !self.membership.entries().any(|(_, m)| m.is_member(node))
    }

    /// True if this node acts as an acceptor (promises, acknowledges): it
    /// votes in some membership from its commit index on. Learners and
    /// nodes that are not (or no longer) members never do.
    pub(crate) fn votes(&self) -> bool {
        let me = self.config.id;
        self.membership.entries().any(|(_, m)| m.is_voter(me))
    }

    /// The delay after which a chosen change governs.
    pub(crate) fn activation_delay(&self) -> u64 {
        #[cfg(feature = "bug-injection")]
        if self.config.bugs.reconfigure_at_once {
            return 1;
        }
        ACTIVATION_DELAY
    }

    pub(crate) fn persist(&mut self, record: Record) {
        self.ready.persist.push(record);
    }

    /// Puts `state` in the log at `slot`, keeping `log_bytes`.
    pub(crate) fn put_slot(&mut self, slot: Slot, state: SlotState) {
        let added = state.value().size_bound_bytes() as u64;
        if let Some(old) = self.log.insert(slot, state) {
            self.log_bytes -= old.value().size_bound_bytes() as u64;
        }
        self.log_bytes += added;
    }

    /// Handles messages to self and flushes batched accepts until quiet.
    pub(crate) fn settle(&mut self, now: Instant) {
        loop {
            self.leader_flush(now);
            match self.loopback.pop_front() {
                Some(message) => self.handle(now, self.config.id, message),
                None => break,
            }
        }
        self.check_invariants();
    }

    fn handle(&mut self, now: Instant, from: NodeId, message: Message) {
        match message {
            Message::Prepare { ballot, first_slot } => {
                self.on_prepare(now, from, ballot, first_slot)
            }
            Message::Promise {
                ballot,
                compacted_through,
                first_slot,
                slots,
                more_from,
            } => {
                let chunk = PromiseChunk {
                    ballot,
                    compacted_through,
                    first_slot,
                    slots,
                    more_from,
                };
                self.on_promise(now, from, chunk)
            }
            Message::Accept {
                ballot,
                entries,
                commit,
            } => self.on_accept(now, from, ballot, entries, commit),
            Message::Accepted { ballot, slots } => self.on_accepted(from, ballot, slots),
            Message::Reject { ballot, promised } => self.on_reject(now, from, ballot, promised),
            Message::Heartbeat {
                ballot,
                commit,
                round,
            } => self.on_heartbeat(now, from, ballot, commit, round),
            Message::HeartbeatAck {
                ballot,
                round,
                commit,
            } => self.on_heartbeat_ack(now, from, ballot, round, commit),
            Message::Fetch { first_slot } => self.on_fetch(now, from, first_slot),
            Message::Chosen { entries } => self.on_chosen(now, from, entries),
        }
    }

    /// The relations between the fields that every step keeps (checked
    /// after each, in O(log n)):
    /// - `compacted_through <= delivered == commit`: everything chosen is
    ///   handed to the driver within the step, and only applied slots are
    ///   compacted;
    /// - `log` holds no slot at or below `compacted_through`;
    /// - ballot rounds stay usable; `log_bytes` is zero exactly when the log
    ///   is empty;
    /// - a candidate holds fewer complete promises than a quorum (with a
    ///   quorum it leads), none from an acceptor that refused it;
    /// - a leader's ballot is its own acceptor's promise (an acceptor that
    ///   promised a higher ballot made its node step down in that step), and
    ///   its next slot is above the commit index.
    fn check_invariants(&self) {
        assert_eq!(
            self.delivered, self.commit,
            "committed values not delivered"
        );
        assert!(
            self.compacted_through <= self.delivered,
            "compacted past the applied slots"
        );
        assert!(
            self.log
                .keys()
                .next()
                .is_none_or(|first| *first > self.compacted_through),
            "a log slot at or below the compaction point"
        );

        assert!(
            self.promised.round_in_range() && self.max_round_seen <= Ballot::MAX_ROUND,
            "ballot round above the highest usable one"
        );
        assert!(
            self.log.is_empty() == (self.log_bytes == 0),
            "log byte count out of step with the log"
        );
        if let RoleState::Candidate(candidate) = &self.role {
            candidate.check_invariants();
        }
        if let RoleState::Leader(leader) = &self.role {
            assert_eq!(
                leader.ballot, self.promised,
                "a leader whose own acceptor promised another ballot"
            );
            assert!(
                leader.next_slot > self.commit,
                "leader slot counter behind commit"
            );
        }
    }

    // ----- acceptor -------------------------------------------------------

    pub(crate) fn observe_ballot(&mut self, ballot: Ballot) {
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

    pub(crate) fn grant_lease(&mut self, now: Instant, leader: NodeId) {
        self.lease_holder = Some(leader);
        self.lease_granted_until = now + self.config.lease;
    }

    fn on_prepare(&mut self, now: Instant, from: NodeId, ballot: Ballot, first_slot: Slot) {
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
            if first_slot > self.commit.next() && now >= self.next_fetch_at {
                self.next_fetch_at = now + self.config.heartbeat_interval;
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
        // Report what fits in one message (at least one slot); the
        // candidate asks again for the rest (see `Message::Promise`).
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
        let compacted_through = self.compacted_through;
        self.send(
            from,
            Message::Promise {
                ballot,
                compacted_through,
                first_slot,
                slots,
                more_from,
            },
        );
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

    fn on_accept(
        &mut self,
        now: Instant,
        from: NodeId,
        ballot: Ballot,
        entries: Vec<(Slot, Value)>,
        commit: Slot,
    ) {
        self.observe_ballot(ballot);
        if ballot < self.promised {
            let promised = self.promised;
            self.send(from, Message::Reject { ballot, promised });
            return;
        }
        self.promise(ballot);
        self.follow(now, ballot);
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
                    self.persist(Record::Accepted {
                        slot,
                        ballot,
                        value,
                    });
                }
            }
            accepted.push(slot);
        }
        if self.votes() {
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

    fn on_heartbeat(
        &mut self,
        now: Instant,
        from: NodeId,
        ballot: Ballot,
        commit: Slot,
        round: u64,
    ) {
        self.observe_ballot(ballot);
        if ballot < self.promised {
            let promised = self.promised;
            self.send(from, Message::Reject { ballot, promised });
            return;
        }
        self.promise(ballot);
        self.follow(now, ballot);
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

    // ----- candidate ------------------------------------------------------

    /// Begins Phase 1 with a ballot above every one seen.
    ///
    /// Once rounds reach [`Ballot::MAX_ROUND`] the node no longer campaigns
    /// (it logs an error each time it would); it still votes and follows.
    pub(crate) fn start_phase1(&mut self, now: Instant) {
        self.start_phase1_carrying(now, VecDeque::new());
    }

    /// [`start_phase1`](Replica::start_phase1), keeping `carried` commands
    /// for the slots it will propose if it wins.
    pub(crate) fn start_phase1_carrying(&mut self, now: Instant, carried: VecDeque<Command>) {
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
        let (candidate, prepares) = Candidate::start(
            self.config.id,
            ballot,
            first_slot,
            self.window_memberships(),
            now + self.config.election_timeout,
            carried,
        );
        self.role = RoleState::Candidate(candidate);
        self.leader_hint = None;
        self.send_all(prepares);
    }

    /// One promise, or one chunk of it (see [`Message::Promise`]).
    fn on_promise(&mut self, now: Instant, from: NodeId, chunk: PromiseChunk) {
        let RoleState::Candidate(candidate) = &mut self.role else {
            return;
        };
        match candidate.on_promise(self.config.id, from, chunk) {
            PromiseOutcome::Nothing => {}
            PromiseOutcome::Ask(to, prepare) => self.send(to, prepare),
            PromiseOutcome::Behind { compacted_through } => {
                // Catch up from the acceptor first, then try again.
                tracing::info!(node = %self.config.id, %from, through = %compacted_through, "behind a compacted log; catching up");
                self.back_off(now);
                self.catch_up_from(now, from);
                self.known_commit = self.known_commit.max(compacted_through);
                self.next_fetch_at = now;
                self.maybe_fetch(now);
            }
            PromiseOutcome::Won => self.become_leader(now),
        }
    }

    // ----- timers ---------------------------------------------------------

    /// Leaves any leader or candidate role; pending work is handed back.
    pub(crate) fn step_down(&mut self, now: Instant) {
        match std::mem::replace(&mut self.role, RoleState::Follower) {
            RoleState::Leader(leader) => {
                tracing::info!(node = %self.config.id, ballot = %leader.ballot, "stepping down");
                self.ready.unproposed.extend(leader.pending);
                self.ready
                    .failed_reads
                    .extend(leader.reads.iter().map(|r| r.id));
            }
            RoleState::Candidate(candidate) => {
                self.ready.unproposed.extend(candidate.into_carried())
            }
            RoleState::Follower => {}
        }
        self.election_deadline = now + random_election_timeout(&self.config, &mut self.rng);
    }

    /// A Phase 1 attempt failed: step back for a randomized, exponentially
    /// growing, capped time.
    pub(crate) fn back_off(&mut self, now: Instant) {
        self.step_down(now);
        self.failed_attempts = self.failed_attempts.saturating_add(1);
        let exponent = self.failed_attempts.min(20) - 1;
        let ceiling = self
            .config
            .backoff_base
            .saturating_mul(1 << exponent)
            .min(self.config.backoff_cap);
        let delay = self.rng.duration_between(ceiling / 2, ceiling);
        self.election_deadline = now + delay;
        tracing::debug!(node = %self.config.id, attempts = self.failed_attempts, ?delay, "backing off");
    }
}

/// The message's kind, for logs.
fn message_kind(message: &Message) -> &'static str {
    match message {
        Message::Prepare { .. } => "prepare",
        Message::Promise { .. } => "promise",
        Message::Accept { .. } => "accept",
        Message::Accepted { .. } => "accepted",
        Message::Reject { .. } => "reject",
        Message::Heartbeat { .. } => "heartbeat",
        Message::HeartbeatAck { .. } => "heartbeat_ack",
        Message::Fetch { .. } => "fetch",
        Message::Chosen { .. } => "chosen",
    }
}

fn random_election_timeout(config: &Config, rng: &mut Rng) -> Duration {
    rng.duration_between(config.election_timeout, config.election_timeout * 2)
}
