//! The replica: one node's acceptor, proposer and learner, as a state
//! machine driven by `tick`, `step`, `propose` and `read`.
//!
//! This module holds the state (its invariants are written on [`Replica`]),
//! the public entry points, the dispatch of each input to the part that
//! handles it, and the application of what the roles return. The parts:
//! - the roles own their state and never see the replica:
//!   [`Candidate`](crate::candidate) runs Phase 1,
//!   [`Leader`](crate::leader) Phase 2, heartbeats, the lease and reads;
//!   each method takes what it needs (arguments, or a `leader::Context`
//!   borrowed from the replica) and returns what happened (messages to
//!   send, slots chosen, reads released, an outcome that changes the role),
//!   which the replica applies. [`crate::recovery`] turns a won candidacy's
//!   promises into the leader's first proposals, a pure function;
//! - [`crate::peer_input`] checks a peer's message against what the replica
//!   [`Knows`] before it is handled; [`crate::catch_up`] decides whom to
//!   fetch missing chosen values from, and when;
//! - the acceptor (`acceptor.rs`: promises, accepted values, the lease it
//!   grants) and the learner (`learner.rs`: chosen values, the commit
//!   index, delivery, catch-up, compaction) are `impl Replica` blocks in
//!   child modules, because they own nothing apart: they share the promise,
//!   the log and the commit index with each other and with the dispatch
//!   here. Being children, they work on the private fields; nothing outside
//!   `replica` can.
//!
//! Imports point one way: `replica` uses the roles; the roles use only the
//! types, messages, storage, membership and config modules.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

mod acceptor;
mod learner;

use crate::candidate::{Candidate, PromiseChunk, PromiseOutcome};
use crate::catch_up::CatchUp;
use crate::config::{Config, ConfigError};
use crate::follower_reads::FollowerReads;
use crate::leader::{self, Abdication, FlushOutcome, Leader, QueueFull, ReadAsker};
use crate::membership::{Change, ChangeError, Member, Membership, MembershipLog, ACTIVATION_DELAY};
use crate::message::{Envelope, Message};
use crate::peer_input::{self, Knows};
use crate::ready::{ReadId, Ready, ReadySeq};
use crate::recovery::{self, ConflictingChosen};
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
    /// Slots this replica, leading, asked of every voter because the
    /// quorum it asked first had not chosen them within
    /// `Config::accept_fallback`, since it started.
    pub accept_fallbacks: u64,
}

/// What the node does now, with the state of that role.
enum RoleState {
    Follower,
    Candidate(Candidate),
    Leader(Box<Leader>),
}

/// One node's share of Multi-Paxos. See the crate docs for the loop that
/// drives it.
///
/// # Invariants
///
/// Between calls (after every input), `check_invariants` asserts, in
/// O(log n):
/// 1. `compacted_through <= delivered == commit`: everything chosen is
///    handed to the driver within the step, and only applied slots are
///    compacted.
/// 2. `log` holds no slot at or below `compacted_through`.
/// 3. `commit` is as high as the log allows: slot `commit + 1` is not
///    chosen in `log` (every path that learns a chosen value advances the
///    commit index over it).
/// 4. `promised.round() <= max_round_seen <= Ballot::MAX_ROUND`: a ballot is
///    observed before it is promised, and no unusable round is taken.
/// 5. `log_bytes` is zero exactly when `log` is empty (it is the sum of
///    `Value::size_bound_bytes` over `log`, kept by `put_slot` and
///    `compact`; the full sum is not re-added each step).
/// 6. `membership` holds no entry that stopped governing: only its first
///    entry governs slots at or below `commit + 1`.
/// 7. `loopback` is empty: messages to self are handled within the call.
///    The replies of this node's own acceptor that report its state
///    (`Message::reports_acceptor_state`) wait in `own_replies` instead, each
///    tagged with the `Ready` whose records it relies on, newer than
///    `durable_ready`: the proposer counts its own acceptor only once that
///    `Ready` is durable, as it counts a peer only once the peer's reply
///    (sent after its fsync) arrives.
/// 8. A candidate's ballot is its own and at least `promised` (an acceptor
///    that promises a higher ballot makes its node step down in the same
///    step); it holds fewer complete promises than a quorum (with a quorum
///    it leads), none from an acceptor that refused it; it knows no leader
///    (`leader_hint` is `None`).
/// 9. A leader's ballot is its own and equals `promised` (its own acceptor
///    promised it, and a higher promise makes it step down in that step);
///    `leader_hint` names it and its own acceptor's lease is granted to it;
///    its next slot is above `commit`, its proposals lie between `commit`
///    and its next slot, its recovered values from its next slot through
///    the last recovered slot, and none is left unsent.
/// 10. The follower reads held are at most `max_pending_reads`, and none
///     granted an index at or below `commit` is still held (released in
///     the same step as the commit index reaches it).
pub struct Replica {
    config: Config,
    rng: Rng,
    /// Highest ballot promised (durable once the `Ready` that persists it
    /// is). Never goes down; see 4, 8, 9.
    promised: Ballot,
    /// Every slot this node holds a value for (durable once the `Ready` that
    /// persists it is). Changed only
    /// through `put_slot` and `compact`, which keep `log_bytes`. See 2, 3.
    log: BTreeMap<Slot, SlotState>,
    /// Sum of `Value::size_bound_bytes` over `log`. See 5.
    log_bytes: u64,
    /// Slots through here are captured by a state-machine snapshot and gone
    /// from `log` (durable). Never goes down; see 1, 2.
    compacted_through: Slot,
    /// Every slot through here is chosen. Above `compacted_through` the log
    /// marks it chosen, except the slots a restarted node's state machine
    /// had applied (it restarts with `commit` there, and its log may hold
    /// them only as accepted, or not at all: a node applies chosen slots
    /// before its own records are durable). Never goes down; see 1, 3.
    commit: Slot,
    /// Committed slots through here were handed to the driver to apply.
    /// Equals `commit` between calls; see 1.
    delivered: Slot,
    /// Highest round of any ballot seen; new ballots go above it. See 4.
    max_round_seen: u32,
    /// The node this acceptor acknowledged as leader most recently (see
    /// 9)...
    lease_holder: Option<NodeId>,
    /// ...and until when (local clock) it refuses to promise anyone else.
    lease_granted_until: Instant,
    /// See 8, 9.
    role: RoleState,
    /// The node believed to lead: `None` while a candidate, this node while
    /// it leads. See 8, 9.
    leader_hint: Option<NodeId>,
    /// When a follower starts Phase 1 if no leader shows up.
    election_deadline: Instant,
    /// Phase 1 attempts that failed in a row (drives the backoff).
    failed_attempts: u32,
    /// Whom to fetch missing chosen values from, and when; when to offer a
    /// peer a snapshot.
    catch_up: CatchUp,
    /// The memberships governing the slots from `commit + 1` on (see
    /// [`crate::membership`]). Changed only when a change is delivered or a
    /// snapshot installed. See 6.
    membership: MembershipLog,
    /// Messages from this node to itself, handled before the call returns.
    /// See 7.
    loopback: VecDeque<Message>,
    /// Replies of this node's own acceptor, each with the number of the
    /// `Ready` that persists what it reports, held until the driver says
    /// that `Ready` is durable. See 7.
    own_replies: VecDeque<(ReadySeq, Message)>,
    /// What the driver must do, gathered since the last `ready()`.
    ready: Ready,
    /// The number the `Ready` being gathered will carry.
    next_ready: ReadySeq,
    /// Every `Ready` through this one is durable (see [`Replica::persisted`]).
    durable_ready: ReadySeq,
    /// The last `Ready` that raised this node's promise.
    last_promise_ready: ReadySeq,
    /// Linearizable reads taken as a follower, waiting for the leader's
    /// read index and then for the commit index to reach it.
    follower_reads: FollowerReads,
    /// The time of the latest input, as its `settle` saw it: when a
    /// read-index request that `ready` sends counts as sent.
    settled_at: Instant,
    /// See [`Status::accept_fallbacks`].
    accept_fallbacks: u64,
}

impl Replica {
    /// A replica that (re)starts at `now` from its durable state, with its
    /// state machine applied through `applied`. Everything the state machine
    /// applied was chosen, so the commit index starts at least there; chosen
    /// values above it that the log holds are delivered again (the others
    /// are fetched from peers). `applied` must be at least the
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
        let follower_reads = FollowerReads::new(rng.next_u64());
        check_durable_state(&durable, applied)?;
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
            catch_up: CatchUp::new(now),
            membership,
            loopback: VecDeque::new(),
            own_replies: VecDeque::new(),
            ready: Ready::default(),
            next_ready: 1,
            durable_ready: 0,
            last_promise_ready: 0,
            follower_reads,
            settled_at: now,
            accept_fallbacks: 0,
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
        self.expire_follower_reads(now);
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
        if let Err(error) = peer_input::check_peer_message(self, from, &envelope.message) {
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
        let (max_commands, max_bytes) = (
            self.config.max_pending_commands,
            self.config.max_pending_bytes,
        );
        let log_full = self.log_bytes > self.config.max_log_bytes;
        let RoleState::Leader(leader) = &mut self.role else {
            return Err(self.not_leader());
        };
        if log_full {
            return Err(Unavailable::Busy);
        }
        leader
            .queue_command(command, max_commands, max_bytes)
            .map_err(|QueueFull| Unavailable::Busy)?;
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
    ///
    /// A change the newest membership already made (a retry whose first
    /// attempt was chosen, perhaps under an earlier leader) is accepted
    /// without proposing anything: the caller waits for it to govern as
    /// for a new one.
    pub fn propose_change(&mut self, now: Instant, change: Change) -> Result<(), ChangeRefused> {
        let commit = self.commit;
        let not_leader = self.not_leader();
        let RoleState::Leader(leader) = &self.role else {
            return Err(ChangeRefused::Unavailable(not_leader));
        };
        if self.membership.latest().has_made(&change) {
            return Ok(());
        }
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
        leader.queue_change(change);
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

    /// Asks to serve a linearizable read. At the leader, under a valid
    /// lease, the read is released in the very next `Ready` (no round
    /// trip); otherwise after a heartbeat round confirms leadership
    /// (ReadIndex). A follower that knows the leader asks it for a read
    /// index (see `follower_reads`) and releases the read once its commit
    /// index reaches it, or fails it (`Ready::failed_reads`) if the leader
    /// refuses or does not answer within an election timeout. Either way,
    /// the read must be answered from the state machine right after
    /// applying the committed values of the `Ready` that releases it.
    pub fn read(&mut self, now: Instant, id: ReadId) -> Result<(), Unavailable> {
        match self.role {
            RoleState::Leader(_) if self.may_read_locally(now) => self.ready.reads.push(id),
            RoleState::Leader(_) => self.queue_read_index(ReadAsker::Local(id))?,
            RoleState::Follower
                if self.leader_elsewhere().is_some()
                    && !self.membership.latest().is_retired(self.config.id) =>
            {
                self.follower_reads
                    .queue(now, id, self.config.max_pending_reads)
                    .map_err(|QueueFull| Unavailable::Busy)?
            }
            _ => return Err(self.not_leader()),
        }
        self.settle(now);
        Ok(())
    }

    /// Takes everything the driver must do; see [`Ready`] for the order.
    /// Each `Ready` carries the next number ([`Ready::seq`]); the driver
    /// reports it durable with [`persisted`](Self::persisted).
    pub fn ready(&mut self) -> Ready {
        self.ask_read_index(self.settled_at);
        let mut ready = std::mem::take(&mut self.ready);
        ready.seq = self.next_ready;
        self.next_ready += 1;
        if ready
            .persist
            .iter()
            .any(|record| matches!(record, Record::Promised(_)))
        {
            self.last_promise_ready = ready.seq;
        }
        // Proposer messages rely on this node's promise: they wait while the
        // `Ready` that raised it (this one or an earlier one) is not durable.
        ready.promise_pending = self.last_promise_ready > self.durable_ready;
        #[cfg(feature = "bug-injection")]
        {
            ready.early_despite_promise = self.config.bugs.phase2_before_own_promise_durable;
        }
        ready
    }

    /// True if the next [`ready`](Self::ready) has something to do, or an
    /// own acceptor's reply waits for it to be taken and reported durable.
    pub fn has_output(&self) -> bool {
        !self.ready.is_empty()
            || self.follower_reads.may_ask()
            || self
                .own_replies
                .back()
                .is_some_and(|(at, _)| *at == self.next_ready)
    }

    /// The driver made every record of every `Ready` through number `seq`
    /// durable (in order: a `Ready` is durable only with all before it).
    /// This node's own acceptor's replies that rely on them now reach its
    /// proposer, as a peer's would: a leader counts its own acceptance of a
    /// slot, or its own promise, only from here.
    ///
    /// # Panics
    /// If `seq` names a `Ready` not yet taken, or goes back.
    pub fn persisted(&mut self, now: Instant, seq: ReadySeq) {
        assert!(
            seq < self.next_ready,
            "Ready {seq} reported durable before it was taken"
        );
        assert!(
            seq >= self.durable_ready,
            "durable Ready went back from {} to {seq}",
            self.durable_ready
        );
        self.durable_ready = seq;
        while self.own_replies.front().is_some_and(|(at, _)| *at <= seq) {
            let (_, message) = self.own_replies.pop_front().expect("front exists");
            self.loopback.push_back(message);
        }
        self.settle(now);
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
            accept_fallbacks: self.accept_fallbacks,
        }
    }

    /// The node believed to lead, if it is another one: where to send a
    /// client this node cannot serve.
    pub fn leader_elsewhere(&self) -> Option<NodeId> {
        self.leader_hint.filter(|l| *l != self.config.id)
    }

    fn not_leader(&self) -> Unavailable {
        Unavailable::NotLeader {
            leader: self.leader_elsewhere(),
        }
    }

    // ----- plumbing -------------------------------------------------------

    fn send(&mut self, to: NodeId, message: Message) {
        if to == self.config.id {
            if message.reports_acceptor_state() {
                // It may report a record of the `Ready` being gathered (or
                // of one not yet durable): its proposer hears it once that
                // `Ready` is durable.
                self.own_replies.push_back((self.next_ready, message));
            } else {
                self.loopback.push_back(message);
            }
        } else {
            self.ready.messages.push(Envelope {
                from: self.config.id,
                to,
                message,
            });
        }
    }

    /// The highest slot this node takes from a peer now: `max_slots_ahead`
    /// above its commit index, and never above `Slot::MAX`.
    fn slot_horizon(&self) -> Slot {
        Slot(
            self.commit
                .0
                .saturating_add(self.config.max_slots_ahead)
                .min(Slot::MAX.0),
        )
    }

    /// Sends each message to its node, in order.
    fn send_all(&mut self, messages: Vec<(NodeId, Message)>) {
        for (to, message) in messages {
            self.send(to, message);
        }
    }

    /// The memberships governing the slots a leader may have in flight
    /// right now (see `MembershipLog::window`).
    fn window_memberships(&self) -> Vec<Membership> {
        self.membership
            .window(self.commit.next())
            .into_iter()
            .cloned()
            .collect()
    }

    /// True if this node may campaign: it votes in the membership governing
    /// its next slot (the first it would propose in), and no chosen change
    /// removes it.
    fn may_campaign(&self) -> bool {
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
    fn votes(&self) -> bool {
        let me = self.config.id;
        self.membership.entries().any(|(_, m)| m.is_voter(me))
    }

    /// The follower reads granted an index through here may be served: the
    /// commit index (the driver applies through it before serving them).
    fn follower_reads_through(&self) -> Slot {
        #[cfg(feature = "bug-injection")]
        if self.config.bugs.follower_read_before_index {
            return Slot::MAX;
        }
        self.commit
    }

    /// The delay after which a chosen change governs.
    fn activation_delay(&self) -> u64 {
        #[cfg(feature = "bug-injection")]
        if self.config.bugs.reconfigure_at_once {
            return 1;
        }
        ACTIVATION_DELAY
    }

    fn persist(&mut self, record: Record) {
        self.ready.persist.push(record);
    }

    /// Puts `state` in the log at `slot`, keeping `log_bytes`.
    fn put_slot(&mut self, slot: Slot, state: SlotState) {
        let added = state.value().size_bound_bytes() as u64;
        if let Some(old) = self.log.insert(slot, state) {
            self.log_bytes -= old.value().size_bound_bytes() as u64;
        }
        self.log_bytes += added;
    }

    /// Handles messages to self and flushes batched accepts until quiet.
    fn settle(&mut self, now: Instant) {
        self.settled_at = self.settled_at.max(now);
        loop {
            self.leader_flush(now);
            match self.loopback.pop_front() {
                Some(message) => self.handle(now, self.config.id, message),
                None => break,
            }
        }
        let released = self.follower_reads.release(self.follower_reads_through());
        self.ready.reads.extend(released);
        if self
            .follower_reads
            .must_ask_again(self.leader_hint, now, self.read_resend_after())
        {
            // Another node leads now, or the request or its answer was lost.
            self.follower_reads.take_back_asked();
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
                lazy,
            } => self.on_accept(now, from, ballot, entries, commit, lazy),
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
            Message::ReadIndex { request } => self.on_read_index(now, from, request),
            Message::ReadIndexReply {
                ballot,
                request,
                index,
            } => self.on_read_index_reply(now, from, ballot, request, index),
        }
    }

    /// Asserts the invariants listed on [`Replica`], by number.
    fn check_invariants(&self) {
        // 10.
        assert!(
            self.follower_reads.held() <= self.config.max_pending_reads,
            "more follower reads held than allowed"
        );
        assert!(
            !self.follower_reads.releasable(self.commit),
            "a follower read left held past its index"
        );
        // 1.
        assert_eq!(
            self.delivered, self.commit,
            "committed values not delivered"
        );
        assert!(
            self.compacted_through <= self.delivered,
            "compacted past the applied slots"
        );
        // 2.
        assert!(
            self.log
                .keys()
                .next()
                .is_none_or(|first| *first > self.compacted_through),
            "a log slot at or below the compaction point"
        );
        // 3.
        assert!(
            self.chosen(self.commit.next()).is_none(),
            "the slot after the commit index is chosen"
        );
        // 4.
        assert!(
            self.promised.round() <= self.max_round_seen
                && self.max_round_seen <= Ballot::MAX_ROUND,
            "promised round not observed, or above the highest usable one"
        );
        // 5.
        assert!(
            self.log.is_empty() == (self.log_bytes == 0),
            "log byte count out of step with the log"
        );
        // 6.
        assert!(
            self.membership
                .entries()
                .nth(1)
                .is_none_or(|(from, _)| from > self.commit.next()),
            "a membership that governs no slot from the commit index on is kept"
        );
        // 7.
        assert!(self.loopback.is_empty(), "a message to self left unhandled");
        assert!(
            self.own_replies
                .iter()
                .all(|(at, _)| *at > self.durable_ready && *at <= self.next_ready),
            "an own acceptor's reply held past its durable Ready"
        );
        let me = self.config.id;
        match &self.role {
            RoleState::Follower => {}
            // 8.
            RoleState::Candidate(candidate) => {
                let ballot = candidate.ballot();
                assert!(
                    ballot.node() == me && ballot >= self.promised,
                    "a candidate for a ballot not its own or below its promise"
                );
                assert_eq!(self.leader_hint, None, "a candidate that knows a leader");
                candidate.check_invariants();
            }
            // 9.
            RoleState::Leader(leader) => {
                assert_eq!(leader.ballot().node(), me, "a leader of another's ballot");
                assert_eq!(self.leader_hint, Some(me), "a leader that names another");
                assert_eq!(
                    self.lease_holder,
                    Some(me),
                    "a leader whose own acceptor leases to another"
                );
                leader.check_invariants(self.promised, self.commit);
            }
        }
    }

    // ----- candidate ------------------------------------------------------

    /// Begins Phase 1 with a ballot above every one seen.
    ///
    /// Once rounds reach [`Ballot::MAX_ROUND`] the node no longer campaigns
    /// (it logs an error each time it would); it still votes and follows.
    fn start_phase1(&mut self, now: Instant) {
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
                self.catch_up.start_from(now, from);
                self.catch_up.learn_commit(compacted_through);
                self.catch_up.fetch_now(now);
                self.maybe_fetch(now);
            }
            PromiseOutcome::Won => self.become_leader(now),
        }
    }

    // ----- leader ---------------------------------------------------------

    /// The leader, if this node leads, and what it reads of the replica.
    fn leader_and_context(&mut self) -> Option<(&mut Leader, leader::Context<'_>)> {
        let RoleState::Leader(leader) = &mut self.role else {
            return None;
        };
        let context = leader::Context {
            config: &self.config,
            commit: self.commit,
            membership: &self.membership,
            log_bytes: self.log_bytes,
        };
        Some((leader, context))
    }

    /// Phase 1 won: re-propose what the promises reported, fill holes with
    /// no-ops (see [`crate::recovery`]), and start serving.
    fn become_leader(&mut self, now: Instant) {
        let RoleState::Candidate(candidate) =
            std::mem::replace(&mut self.role, RoleState::Follower)
        else {
            unreachable!("only a candidate becomes leader");
        };
        let won = candidate.into_won();
        let ballot = won.ballot;
        let promised_by = won.promises.keys().copied().collect();
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
        let through = recovery.through();
        let leader = Leader::new(now, ballot, promised_by, won.carried, recovery.to_propose);
        tracing::info!(node = %self.config.id, %ballot, %through, "elected leader");
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

    fn on_accepted(&mut self, from: NodeId, ballot: Ballot, slots: Vec<Slot>) {
        let RoleState::Leader(leader) = &mut self.role else {
            return;
        };
        if leader.ballot() != ballot {
            return;
        }
        let chosen = leader.on_accepted(from, slots, &self.membership);
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
    fn on_reject(&mut self, now: Instant, from: NodeId, ballot: Ballot, promised: Ballot) {
        self.observe_ballot(promised);
        let superseded = promised > ballot;
        let give_up = match &mut self.role {
            RoleState::Candidate(c) if c.ballot() == ballot => c.on_reject(from, superseded),
            RoleState::Leader(l) if l.ballot() == ballot => superseded,
            _ => false,
        };
        if give_up {
            tracing::debug!(node = %self.config.id, %ballot, %promised, %from, "rejected");
            self.back_off(now);
            self.leader_hint = None;
        }
    }

    fn on_heartbeat_ack(
        &mut self,
        now: Instant,
        from: NodeId,
        ballot: Ballot,
        round: u64,
        commit: Slot,
    ) {
        let Some((leader, context)) = self.leader_and_context() else {
            return;
        };
        if leader.ballot() != ballot {
            return;
        }
        leader.on_heartbeat_ack(now, from, round, commit, &context);
        self.release_reads();
    }

    /// Check-quorum, heartbeats, retransmissions of unacknowledged accepts.
    fn leader_tick(&mut self, now: Instant) {
        let Some((leader, context)) = self.leader_and_context() else {
            return;
        };
        let ballot = leader.ballot();
        if leader.quorum_lost(now, context.config) {
            tracing::warn!(node = %self.config.id, %ballot, "no quorum heard for an election timeout; stepping down");
            self.step_down(now);
            self.leader_hint = None;
            return;
        }
        if leader.heartbeat_due(now) {
            self.send_heartbeat_round(now);
        }
        let Some((leader, context)) = self.leader_and_context() else {
            return;
        };
        let accepts = leader.retransmissions(now, &context);
        self.accept_fallbacks += leader.take_fallback_slots();
        self.send_all(accepts);
    }

    /// Starts a heartbeat round (a leader's own acceptor grants it the
    /// lease at once).
    fn send_heartbeat_round(&mut self, now: Instant) {
        let Some((leader, context)) = self.leader_and_context() else {
            return;
        };
        let heartbeats = leader.start_heartbeat_round(now, &context);
        self.grant_lease(now, self.config.id);
        self.send_all(heartbeats);
        self.release_reads();
    }

    /// True if the leader may answer a read from local state right now
    /// (see `Leader::may_read_locally`).
    fn may_read_locally(&self, now: Instant) -> bool {
        let RoleState::Leader(leader) = &self.role else {
            return false;
        };
        leader.may_read_locally(now, self.commit, &self.config)
    }

    /// Holds a read until a heartbeat round sent after now is acknowledged.
    fn queue_read_index(&mut self, asker: ReadAsker) -> Result<(), Unavailable> {
        let (max, commit) = (self.config.max_pending_reads, self.commit);
        let RoleState::Leader(leader) = &mut self.role else {
            return Err(self.not_leader());
        };
        leader
            .queue_read(asker, commit, max)
            .map_err(|QueueFull| Unavailable::Busy)
    }

    /// Releases waiting reads whose heartbeat round a quorum acknowledged
    /// and whose read index is committed: this node's own to the driver,
    /// the followers' as the answer to their request.
    fn release_reads(&mut self) {
        let RoleState::Leader(leader) = &mut self.role else {
            return;
        };
        for asker in leader.release_reads(self.commit) {
            self.answer_read_asker(asker, true);
        }
    }

    /// Serves a released read (`granted`) or fails it. A follower's is
    /// granted the commit index now, not the one its read arrived at: a new
    /// leader releases reads only once everything it recovered in Phase 1
    /// is chosen, and the slots recovered may hold writes acknowledged
    /// before the read arrived.
    fn answer_read_asker(&mut self, asker: ReadAsker, granted: bool) {
        match (asker, granted) {
            (ReadAsker::Local(id), true) => self.ready.reads.push(id),
            (ReadAsker::Local(id), false) => self.ready.failed_reads.push(id),
            (ReadAsker::Peer { node, request }, granted) => {
                let (ballot, index) = match &self.role {
                    RoleState::Leader(leader) if granted => (leader.ballot(), Some(self.commit)),
                    _ => (self.promised, None),
                };
                let reply = Message::ReadIndexReply {
                    ballot,
                    request,
                    index,
                };
                self.send(node, reply);
            }
        }
    }

    /// A follower asks for a read index: granted at once under the lease,
    /// else after a heartbeat round; refused if this node does not lead or
    /// holds too many reads.
    fn on_read_index(&mut self, now: Instant, from: NodeId, request: u64) {
        let asker = ReadAsker::Peer {
            node: from,
            request,
        };
        if self.may_read_locally(now) {
            self.answer_read_asker(asker, true);
        } else if self.queue_read_index(asker).is_err() {
            self.answer_read_asker(asker, false);
        }
    }

    /// The leader answered a read-index request of this node: learn its
    /// commit index (as from a heartbeat), then hold the reads until the
    /// commit index reaches the index granted, or fail them if refused.
    fn on_read_index_reply(
        &mut self,
        now: Instant,
        from: NodeId,
        ballot: Ballot,
        request: u64,
        index: Option<Slot>,
    ) {
        // A leader's state (its proposals above the commit index) moves
        // only with its own acknowledgments.
        if let (Some(index), RoleState::Follower) = (index, &self.role) {
            self.learn_commit(now, ballot, index);
        }
        let refused = self.follower_reads.answer(from, request, index);
        self.ready.failed_reads.extend(refused);
    }

    /// Sends the leader one read-index request for the reads taken since
    /// the last one, if one may go now; fails them if no other node is
    /// known to lead.
    fn ask_read_index(&mut self, now: Instant) {
        if !self.follower_reads.may_ask() {
            return;
        }
        match self.leader_hint {
            Some(leader)
                if leader != self.config.id && matches!(self.role, RoleState::Follower) =>
            {
                let request = self.follower_reads.ask(now, leader);
                self.send(leader, Message::ReadIndex { request });
            }
            _ => {
                let dropped = self.follower_reads.drop_unsent();
                self.ready.failed_reads.extend(dropped);
            }
        }
    }

    /// How long a follower waits for the answer to a read-index request
    /// before it asks again.
    fn read_resend_after(&self) -> Duration {
        self.config.heartbeat_interval * 4
    }

    /// Fails the follower reads not released within an election timeout.
    fn expire_follower_reads(&mut self, now: Instant) {
        let expired = self
            .follower_reads
            .expire(now, self.config.election_timeout);
        self.ready.failed_reads.extend(expired);
    }

    /// Fills the pipeline window and sends the new proposals; starts a
    /// wanted heartbeat round; hands leadership over, or runs Phase 1 again,
    /// when the membership of the next slot asks for it.
    fn leader_flush(&mut self, now: Instant) {
        let Some((leader, context)) = self.leader_and_context() else {
            return;
        };
        let flush = leader.flush(now, &context);
        self.send_all(flush.accepts);
        if flush.round_wanted {
            self.send_heartbeat_round(now);
        }
        match flush.outcome {
            FlushOutcome::Proposing => {}
            FlushOutcome::NoLongerVoter => {
                // Removed: every slot of the old membership is proposed;
                // once they are all chosen (so every voter can learn them
                // from the commit index this node announced), a voter of
                // the new membership takes over.
                if self.commit.next() >= self.membership.latest_from() {
                    tracing::info!(node = %self.config.id, "no longer a voter; handing over leadership");
                    self.send_heartbeat_round(now);
                    self.step_down(now);
                    self.leader_hint = None;
                }
            }
            FlushOutcome::NeedsPromises => self.rerun_phase1(now),
        }
    }

    /// A new membership governs the next slot and this ballot's promises
    /// hold no quorum of it: run Phase 1 again, keeping the queued commands.
    fn rerun_phase1(&mut self, now: Instant) {
        let RoleState::Leader(leader) = std::mem::replace(&mut self.role, RoleState::Follower)
        else {
            unreachable!("only a leader runs phase 1 again");
        };
        tracing::info!(node = %self.config.id, ballot = %leader.ballot(), "new membership; running phase 1 again");
        let Abdication {
            mut pending,
            reads,
            queued_change,
        } = leader.abdicate();
        for asker in reads {
            self.answer_read_asker(asker, false);
        }
        if let Some(change) = queued_change {
            tracing::warn!(node = %self.config.id, %change, "membership change dropped by a new phase 1");
        }
        pending.shrink_to_fit();
        self.start_phase1_carrying(now, pending);
    }

    // ----- timers ---------------------------------------------------------

    /// Leaves any leader or candidate role; pending work is handed back.
    fn step_down(&mut self, now: Instant) {
        match std::mem::replace(&mut self.role, RoleState::Follower) {
            RoleState::Leader(leader) => {
                tracing::info!(node = %self.config.id, ballot = %leader.ballot(), "stepping down");
                let Abdication { pending, reads, .. } = leader.abdicate();
                self.ready.unproposed.extend(pending);
                for asker in reads {
                    self.answer_read_asker(asker, false);
                }
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
    fn back_off(&mut self, now: Instant) {
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

impl Knows for Replica {
    fn slot_horizon(&self) -> Slot {
        Replica::slot_horizon(self)
    }

    fn known_chosen(&self, slot: Slot) -> Option<&Value> {
        self.chosen(slot)
    }

    fn vouched_for(&self, slot: Slot) -> Option<&Value> {
        match &self.role {
            RoleState::Leader(leader) => leader.proposed_value(slot),
            RoleState::Candidate(candidate) => candidate.reported_chosen(slot),
            RoleState::Follower => None,
        }
    }
}

/// Refuses durable state a replica cannot start from: compacted past what
/// the state machine applied, or holding a round or slot above the highest
/// usable one.
fn check_durable_state(durable: &DurableState, applied: Slot) -> Result<(), ConfigError> {
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
    Ok(())
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
        Message::ReadIndex { .. } => "read_index",
        Message::ReadIndexReply { .. } => "read_index_reply",
    }
}

fn random_election_timeout(config: &Config, rng: &mut Rng) -> Duration {
    rng.duration_between(config.election_timeout, config.election_timeout * 2)
}
