//! [`Node`]: everything a Synod node does that is not IO, as a value that
//! the tokio driver (`core_task`) and the simulator both run.
//!
//! The node owns the Paxos [`Replica`], the state machine, the leader's
//! session and key-expiry clocks, the writes and reads waiting for the log,
//! compaction, and snapshot install. It reads no clock and touches no
//! socket: time comes in with every call, messages and answers go out in
//! what the calls return. Its disk IO is the state machine's (redb, applied
//! without fsync; a flush every so many slots); the acceptor's log is the
//! driver's, through the records each round asks it to persist.
//!
//! # The driver's loop
//! 1. Feed inputs: [`step`](Node::step) (a peer message),
//!    [`snapshot_chunk`](Node::snapshot_chunk), [`tick`](Node::tick),
//!    [`write`](Node::write), [`read`](Node::read).
//! 2. [`begin_round`](Node::begin_round): proposes what the leader's
//!    clocks say is due and takes the core's output as a [`Round`]: records
//!    to persist and the messages that may leave now.
//! 3. Send [`Round::send`] and hand [`Round::persist`] (if any) to the log,
//!    which makes rounds durable in order (one fsync may cover several).
//! 4. [`finish_round`](Node::finish_round), at once: applies the committed
//!    slots (chosen values rely on no record of this node; a follower lets
//!    them gather for a few milliseconds, see `deferred_apply`), serves released
//!    reads, compacts when due, and returns the [`Answer`]s for clients,
//!    the applied slots (for watchers and the simulator's oracles) and the
//!    snapshots to stream. While [`has_output`](Node::has_output), run
//!    another round.
//! 5. Whenever the log reports rounds durable through round `seq`:
//!    [`log_durable`](Node::log_durable)`(now, seq)`, send the messages it
//!    returns, in order, and run a round.
//!
//! The node keeps the rounds the log has not reported (at most
//! [`rounds_waiting`](Node::rounds_waiting), which the driver bounds) with
//! the messages that wait for them, and decides what is durable: a round
//! that hands the log nothing is durable as soon as every earlier one is,
//! at once if none waits (chosen values and compaction points gate no
//! message: they wait to go to the log with the next records that do, see
//! `held_records`). It counts its own acceptor only once its records are
//! durable, and the messages that report acceptor state wait for them too.
//! A crash may fall anywhere: a restarted node still holds every promise
//! its sent messages relied on (see `Ready::take_early_messages`), and
//! everything it applied was chosen.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use prost::Message as _;
use synod_kvstore::membership::membership_command;
use synod_kvstore::{
    EventFilter, KeyExpiryConfig, Op, Outcome, Reader, Request, RequestError, Response,
    SessionClockConfig, SlotEffects, Snapshot, SnapshotChunk, SnapshotError, SnapshotReceiver,
    StateMachine, StorageError, WatchError,
};
use synod_paxos::{
    Ballot, Change, ChangeRefused, ConfigError, DurableState, Envelope, Instant, Member,
    Membership, MembershipLog, NodeId, ReadId, Ready, ReadySeq, Record, Replica, Slot, Unavailable,
    Value,
};

use super::deferred_apply::DeferredApply;
use super::expiry_timer::ExpiryTimer;
use super::held_records::HeldRecords;
use super::leader_duties::LeaderDuties;
use super::leadership::{LeadershipChange, LeadershipWatch};
use super::session_timer::SessionTimer;
use super::{
    MemberView, MembersView, NodeError, NodeStatus, ReadConsistency, WatchAnswer, WriteAnswer,
};

/// When the state machine is flushed and the log compacted. Applies are
/// not synced (a chosen slot is durable at a majority's logs), so the state machine is flushed
/// (one fsync) every `flush_every_slots` applied slots, which also bounds
/// what redb keeps in memory for its unsynced commits. Once `every_slots`
/// slots were applied since the last compaction, it is flushed and the log
/// forgets all but the last `keep_slots` applied slots (followers that lag
/// further catch up by snapshot).
#[derive(Debug, Clone, Copy)]
pub struct CompactionPolicy {
    /// Applied slots between state-machine flushes.
    pub flush_every_slots: u64,
    /// Applied slots between compactions.
    pub every_slots: u64,
    /// Applied slots kept in the log for lagging followers.
    pub keep_slots: u64,
}

impl Default for CompactionPolicy {
    fn default() -> Self {
        CompactionPolicy {
            flush_every_slots: 1_000,
            every_slots: 10_000,
            keep_slots: 1_000,
        }
    }
}

/// What a [`Node`] starts from, besides its durable state.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// The consensus core's settings.
    pub paxos: synod_paxos::Config,
    /// When to flush the state machine and compact the log.
    pub compaction: CompactionPolicy,
    /// What the leader proposes for sessions and key expiry.
    pub sessions: SessionClockConfig,
    /// The first number of this run's anonymous writes (client id 0); see
    /// [`first_anonymous_seq`](super::first_anonymous_seq).
    pub first_anonymous_seq: u64,
    /// The founding members' addresses, stored with the founding membership
    /// on a node's first start (`paxos.members` says who they are; a member
    /// missing here gets empty addresses). Empty for a joining node.
    pub founding: Vec<Member>,
}

/// Why a node must stop: its storage failed, so it can no longer keep its
/// promises. A restart trusts only what was synced.
#[derive(Debug, thiserror::Error)]
pub enum NodeFailure {
    /// The state machine's database failed.
    #[error("state machine storage failed: {0}")]
    StateMachine(#[from] StorageError),
    /// A complete, valid snapshot could not be swapped in.
    #[error("snapshot install failed: {0}")]
    Snapshot(#[from] SnapshotError),
}

/// What the driver must do with the core's output of one round; see the
/// module docs for the order.
#[derive(Debug, Default)]
pub struct Round {
    /// The round's number: report it to [`Node::log_durable`] once
    /// `persist` (and every earlier round's) is durable.
    pub seq: ReadySeq,
    /// Records to make durable (one fsync for all of them), earlier rounds'
    /// held-back records first (see `held_records`); empty if the round has
    /// none to hand over, and then nothing goes to the log.
    pub persist: Vec<Record>,
    /// Messages to send now: those that rely on no record still waiting
    /// for the disk. The others come out of [`Node::log_durable`].
    pub send: Vec<Envelope>,
}

/// A round whose records (or an earlier round's) are not yet durable.
#[derive(Debug)]
struct WaitingRound {
    seq: ReadySeq,
    /// False for a round that handed the log nothing: it is durable as soon
    /// as the rounds before it are.
    has_records: bool,
    /// Its messages that wait for its records.
    messages: Vec<Envelope>,
}

/// The answer to one client call.
#[derive(Debug)]
pub enum Answer {
    /// A write handed to [`Node::write`], by its exactly-once key.
    Write {
        /// The writer's client id (0 for anonymous writes).
        client_id: u64,
        /// Its sequence number.
        seq: u64,
        /// The response, or why there is none.
        answer: WriteAnswer,
    },
    /// A read handed to [`Node::read`], by the id it returned.
    Read {
        /// The id [`Node::read`] returned.
        id: ReadId,
        /// The response, or why there is none.
        answer: Result<Response, NodeError>,
    },
    /// A snapshot asked for with [`Node::snapshot_for_backup`], by the id
    /// it returned.
    Snapshot {
        /// The id [`Node::snapshot_for_backup`] returned.
        id: ReadId,
        /// The snapshot (stream it, then drop it: it holds a read
        /// transaction), or why there is none.
        answer: Result<Snapshot, NodeError>,
    },
}

/// One slot applied in a round, as the state machine reported it.
#[derive(Debug)]
pub struct AppliedSlot {
    /// The slot.
    pub slot: Slot,
    /// Its commands (empty for a no-op).
    pub commands: Vec<Vec<u8>>,
    /// One response per command.
    pub responses: Vec<Response>,
    /// Its watch, session and key-expiry events.
    pub effects: SlotEffects,
    /// The store revision after it.
    pub revision: u64,
}

/// What one round produced (without waiting for its records).
#[derive(Debug, Default)]
pub struct RoundOutput {
    /// Answers to clients.
    pub answers: Vec<Answer>,
    /// The slots applied, in order.
    pub applied: Vec<AppliedSlot>,
    /// State-machine snapshots to stream to lagging peers (off the node's
    /// thread; a lost one only makes the peer ask again).
    pub snapshots: Vec<(NodeId, Snapshot)>,
}

/// Where a write proposed here came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Waiting {
    /// A client's write: answered as a write.
    Write,
    /// A linearizable read that must go through the log (it would show a
    /// key past its deadline): answered as that read.
    Read(ReadId),
}

/// A linearizable read waiting for the core to release it.
#[derive(Debug)]
enum PendingRead {
    /// A client's read request.
    Request(Request),
    /// A snapshot of the whole state machine, for a backup.
    Snapshot,
}

/// One Synod node without its IO; see the module docs.
pub struct Node {
    replica: Replica,
    state_machine: StateMachine,
    compaction: CompactionPolicy,
    /// The core's bound on log bytes (`Config::max_log_bytes`).
    max_log_bytes: u64,
    /// The leadership seen at the end of the last round (for step-down).
    leadership: LeadershipWatch,
    /// The leader's session and key deadlines, lock-delays and
    /// checkpoints, following one leadership watch of their own (at the
    /// start of a round; `leadership` above follows at its end).
    duties: LeaderDuties,
    /// The applied index at the last state-machine flush (or start).
    flushed_through: u64,
    /// The snapshot stream being received.
    receiver: SnapshotReceiver,
    /// Commands proposed here and not answered yet, by (client id, seq).
    waiting: HashMap<(u64, u64), Waiting>,
    /// Linearizable reads waiting for the core to release them.
    reads: BTreeMap<ReadId, PendingRead>,
    next_read_id: ReadId,
    next_anonymous_seq: u64,
    /// Answers not handed out yet.
    answers: Vec<Answer>,
    /// The core's output between `begin_round` and `finish_round`.
    round: Option<Ready>,
    /// Set by `begin_round` for a round durable at once (nothing handed to
    /// the log, nothing waiting): `finish_round` reports it to the core.
    durable_at_once: Option<ReadySeq>,
    /// Rounds not yet durable, oldest first.
    waiting_rounds: VecDeque<WaitingRound>,
    /// Committed slots a follower has not applied yet.
    deferred: DeferredApply,
    /// Records that gate no message, waiting to go to the log with the
    /// next that must sync.
    held: HeldRecords,
}

impl Node {
    /// A node that (re)starts at `now` from its acceptor's durable state
    /// and its state machine (whose applied index says where replay
    /// starts).
    pub fn new(
        config: NodeConfig,
        durable: DurableState,
        state_machine: StateMachine,
        now: Instant,
    ) -> Result<Node, ConfigError> {
        let applied = Slot(state_machine.applied_index());
        let max_log_bytes = config.paxos.max_log_bytes;
        let mut state_machine = state_machine;
        let mut durable = durable;
        durable.membership = known_membership(&mut state_machine, &config)
            .map_err(|e| ConfigError(format!("reading the membership: {e}")))?;
        let replica = Replica::new(config.paxos, durable, applied, now)?;
        Ok(Node {
            replica,
            state_machine,
            compaction: config.compaction,
            max_log_bytes,
            leadership: LeadershipWatch::default(),
            duties: LeaderDuties::new(
                SessionTimer::new(config.sessions.clone()),
                ExpiryTimer::new(KeyExpiryConfig::like_sessions(&config.sessions)),
            ),
            flushed_through: applied.0,
            receiver: SnapshotReceiver::default(),
            waiting: HashMap::new(),
            reads: BTreeMap::new(),
            next_read_id: 1,
            next_anonymous_seq: config.first_anonymous_seq,
            answers: Vec::new(),
            round: None,
            durable_at_once: None,
            waiting_rounds: VecDeque::new(),
            held: HeldRecords::default(),
            deferred: DeferredApply::default(),
        })
    }

    // ----- inputs ---------------------------------------------------------

    /// Advances time: elections, heartbeats, retransmissions, catch-up.
    pub fn tick(&mut self, now: Instant) {
        self.assert_between_rounds();
        self.replica.tick(now);
    }

    /// Handles one message from a peer.
    pub fn step(&mut self, now: Instant, envelope: Envelope) {
        self.assert_between_rounds();
        self.replica.step(now, envelope);
    }

    /// True if the node has output for a round: what the core asks for, or
    /// answers waiting.
    pub fn has_output(&self) -> bool {
        self.replica.has_output() || !self.answers.is_empty()
    }

    /// The log made every round through `seq` durable: returns the messages
    /// that waited for them (and for the rounds behind them with nothing to
    /// persist), to send in order; this node's own acceptor now counts for
    /// what those rounds recorded. Run a round after.
    ///
    /// # Panics
    /// If `seq` names a round not yet begun.
    pub fn log_durable(&mut self, now: Instant, seq: ReadySeq) -> Vec<Envelope> {
        self.assert_between_rounds();
        let mut messages = Vec::new();
        let mut last = None;
        while let Some(round) = self.waiting_rounds.front() {
            if round.seq > seq && round.has_records {
                break;
            }
            let round = self.waiting_rounds.pop_front().expect("front exists");
            messages.extend(round.messages);
            last = Some(round.seq);
        }
        if let Some(last) = last {
            self.replica.persisted(now, last);
        }
        messages
    }

    /// Rounds begun whose records, or an earlier round's, the log has not
    /// yet reported durable. The driver bounds them (its log's queue).
    pub fn rounds_waiting(&self) -> usize {
        self.waiting_rounds.len()
    }

    /// Proposes a client's write; its [`Answer::Write`] comes out of a
    /// later [`finish_round`](Node::finish_round) (the next one if
    /// refused), under the `(client id, seq)` returned. A write with client
    /// id 0 is numbered here (anonymous writes skip exactly-once but still
    /// need their own answer).
    pub fn write(&mut self, now: Instant, mut request: Request) -> (u64, u64) {
        self.assert_between_rounds();
        if request.client_id == 0 {
            request.seq = self.next_anonymous_seq();
        }
        let key = (request.client_id, request.seq);
        if let Err(e) = request.validate_header() {
            self.answer_write(key, Err(NodeError::Invalid(e)));
            return key;
        }
        // Expiries due now go first, so this write never sees a key whose
        // deadline passed before it arrived.
        if let Err(e) = self.lead_key_expiry(now) {
            tracing::warn!(error = %e, "cannot list key expiries");
        }
        match self.replica.propose(now, request.encode_to_vec()) {
            Ok(()) => {
                self.waiting.insert(key, Waiting::Write);
            }
            Err(refused) => self.answer_write(key, Err(unavailable(refused))),
        }
        key
    }

    /// Serves a read-only request; returns the id its [`Answer::Read`] will
    /// carry (from a later [`finish_round`](Node::finish_round)).
    pub fn read(&mut self, now: Instant, request: Request, consistency: ReadConsistency) -> ReadId {
        self.assert_between_rounds();
        let id = self.next_read_id;
        self.next_read_id += 1;
        let me = self.replica.id();
        match consistency {
            ReadConsistency::Serializable if self.replica.membership().latest().is_retired(me) => {
                // A removed node's state falls behind for good: send the
                // client to the cluster.
                self.answers.push(Answer::Read {
                    id,
                    answer: Err(NodeError::NotLeader {
                        leader: self.replica.leader_elsewhere(),
                    }),
                });
            }
            ReadConsistency::Serializable => {
                let now_ms = now_ms(now);
                let answer = Self::read_now(&self.reader(), &request).map(|mut response| {
                    if let Some(op) = &request.op {
                        self.duties.expiry.fill_ttl(op, &mut response, now_ms);
                    }
                    response
                });
                self.answers.push(Answer::Read { id, answer });
            }
            ReadConsistency::Linearizable => match self.replica.read(now, id) {
                Ok(()) => {
                    self.reads.insert(id, PendingRead::Request(request));
                }
                Err(refused) => self.answers.push(Answer::Read {
                    id,
                    answer: Err(unavailable(refused)),
                }),
            },
        }
        id
    }

    /// Proposes a membership change; only the leader takes one (see
    /// [`Replica::propose_change`]). It is chosen like a write; watch
    /// [`Replica::membership`] to see it govern.
    pub fn propose_change(&mut self, now: Instant, change: Change) -> Result<(), ChangeRefused> {
        self.assert_between_rounds();
        self.replica.propose_change(now, change)
    }

    /// The newest membership with each member's progress, as this node
    /// sees it while it leads.
    pub fn members(&self, now: Instant) -> Result<MembersView, NodeError> {
        let me = self.replica.id();
        if !self.replica.is_leader() {
            return Err(NodeError::NotLeader {
                leader: self.replica.leader_elsewhere(),
            });
        }
        let commit = self.replica.commit_index();
        let progress = self.replica.peer_commits();
        let membership = self.replica.membership();
        let members = membership
            .latest()
            .members()
            .map(|member| {
                let (commit_index, heard_ago) = if member.id == me {
                    (commit, Some(std::time::Duration::ZERO))
                } else {
                    match progress.get(&member.id) {
                        Some((slot, at)) => (*slot, Some(now.saturating_since(*at))),
                        None => (Slot(0), None),
                    }
                };
                MemberView {
                    member: member.clone(),
                    commit_index,
                    heard_ago,
                }
            })
            .collect();
        Ok(MembersView {
            leader: me,
            commit_index: commit,
            members,
            change_in_progress: membership.latest_from() > commit.next(),
        })
    }

    /// Takes a snapshot of the state machine for a backup; returns the id
    /// its [`Answer::Snapshot`] will carry (from a later
    /// [`finish_round`](Node::finish_round)). Linearizable: taken when the
    /// core releases it as it would a read (at any node), so it holds every
    /// write acknowledged before this call. Serializable: this node's
    /// applied state now. Costs what [`StateMachine::snapshot`] does (one
    /// read transaction, held until the snapshot is dropped, after storing
    /// the watch history if it is behind).
    pub fn snapshot_for_backup(&mut self, now: Instant, consistency: ReadConsistency) -> ReadId {
        self.assert_between_rounds();
        let id = self.next_read_id;
        self.next_read_id += 1;
        match consistency {
            ReadConsistency::Serializable => {
                let answer = self.take_snapshot();
                self.answers.push(Answer::Snapshot { id, answer });
            }
            ReadConsistency::Linearizable => match self.replica.read(now, id) {
                Ok(()) => {
                    self.reads.insert(id, PendingRead::Snapshot);
                }
                Err(refused) => self.answers.push(Answer::Snapshot {
                    id,
                    answer: Err(unavailable(refused)),
                }),
            },
        }
        id
    }

    /// Takes one chunk of a snapshot `from` streams to this node. Only one
    /// stream is received at a time (see [`SnapshotReceiver`]). On the last
    /// chunk the state machine's tables are swapped (one fsync) and the
    /// core told.
    ///
    /// # Errors
    /// Only a storage failure; a bad or out-of-order chunk abandons that
    /// transfer (logged), and the peer sends another later.
    pub fn snapshot_chunk(
        &mut self,
        now: Instant,
        from: NodeId,
        chunk: SnapshotChunk,
    ) -> Result<(), NodeFailure> {
        self.assert_between_rounds();
        let commit_index = self.replica.commit_index().0;
        let Some(installer) =
            self.receiver
                .receive(&self.state_machine, now, from, &chunk, commit_index)?
        else {
            return Ok(());
        };
        let through = self.state_machine.complete_install(installer)?;
        self.flushed_through = through;
        self.duties.reset();
        // The installer refuses applied indexes above `Slot::MAX`, and the
        // commit index was checked above.
        let mut membership = self.state_machine.membership()?;
        if membership.is_unknown() {
            // A snapshot of a node that never recorded a membership (an
            // older version): keep the one this node follows.
            if self.replica.membership().is_unknown() {
                tracing::error!(%from, through, "installed a snapshot without a membership, and none is known here; ignoring it");
                return Ok(());
            }
            membership = self
                .state_machine
                .set_founding_membership(self.replica.membership().clone())?;
        }
        let taken = self
            .replica
            .install_snapshot(now, Slot(through), membership);
        assert!(taken, "a snapshot ahead of the commit index is taken");
        tracing::info!(%from, through, "snapshot installed");
        Ok(())
    }

    // ----- rounds ---------------------------------------------------------

    /// Proposes what the leader's clocks say is due and takes the core's
    /// output; see the module docs for what the driver does with it.
    ///
    /// # Panics
    /// If the last round was not finished.
    pub fn begin_round(&mut self, now: Instant) -> Result<Round, NodeFailure> {
        self.assert_between_rounds();
        self.lead_sessions(now)?;
        let mut ready = self.replica.ready();
        let mut send = ready.take_early_messages();
        // Records that gate no message may wait for the next round's that
        // do (see `held_records`); a round that hands the log nothing is
        // durable as soon as the rounds before it are.
        let persist = self.held.round(now, std::mem::take(&mut ready.persist));
        // Every round handed to the log waits for its report, so the
        // driver's bound on rounds waiting also bounds the log's queue.
        let waiting = std::mem::take(&mut ready.messages);
        if persist.is_empty() && self.waiting_rounds.is_empty() {
            send.extend(waiting);
            self.durable_at_once = Some(ready.seq);
        } else {
            self.waiting_rounds.push_back(WaitingRound {
                seq: ready.seq,
                has_records: !persist.is_empty(),
                messages: waiting,
            });
        }
        let round = Round {
            seq: ready.seq,
            persist,
            send,
        };
        self.round = Some(ready);
        Ok(round)
    }

    /// Finishes the round, without waiting for its records: applies the
    /// committed slots (a follower that serves nothing this round may keep
    /// them for a later round, see `deferred_apply`; the driver's ticks run
    /// that round when nothing else does), serves the reads the core released, answers what
    /// leadership changes left waiting, compacts when due; and, for a round
    /// durable at once, counts this node's own acceptor for it (then
    /// [`has_output`](Node::has_output) may say another round is due).
    ///
    /// # Panics
    /// If no round was begun.
    pub fn finish_round(&mut self, now: Instant) -> Result<RoundOutput, NodeFailure> {
        let mut ready = self.round.take().expect("finish_round without begin_round");
        let durable_at_once = self.durable_at_once.take();
        self.deferred
            .gather(now, std::mem::take(&mut ready.committed));
        // A follower's slots may wait to share a transaction (see
        // `deferred_apply`), unless what this round serves must see them:
        // reads, a snapshot, or writes proposed here (a leader that just
        // stepped down answers those that committed with their outcome).
        let following = !self.replica.is_leader() && self.replica.leader_elsewhere().is_some();
        let apply_now = !following
            || !self.waiting.is_empty()
            || !ready.reads.is_empty()
            || !ready.snapshots_to_send.is_empty()
            || self.deferred.is_due(now);
        let mut output = RoundOutput::default();
        if apply_now {
            let slots = self.deferred.take();
            output.applied = self.apply(now, slots)?;
        }
        // One read transaction serves every read the round released.
        let mut reader = None;
        for id in ready.reads {
            match self.reads.remove(&id) {
                Some(PendingRead::Request(request)) => {
                    let reader = reader.get_or_insert_with(|| self.reader());
                    self.answer_read(now, id, request, reader)?;
                }
                Some(PendingRead::Snapshot) => {
                    let answer = self.take_snapshot();
                    self.answers.push(Answer::Snapshot { id, answer });
                }
                None => {}
            }
        }
        // Pins the pages it read: gone before the next round's writes (a
        // snapshot taken above may have stored the watch history meanwhile).
        drop(reader);
        let leader = self.replica.status().leader;
        for id in ready.failed_reads {
            let answer = NodeError::NotLeader { leader };
            match self.reads.remove(&id) {
                Some(PendingRead::Request(_)) => self.answers.push(Answer::Read {
                    id,
                    answer: Err(answer),
                }),
                Some(PendingRead::Snapshot) => self.answers.push(Answer::Snapshot {
                    id,
                    answer: Err(answer),
                }),
                None => {}
            }
        }
        for bytes in ready.unproposed {
            if let Ok(request) = Request::decode(bytes.as_slice()) {
                let key = (request.client_id, request.seq);
                self.answer_waiting(key, Err(NodeError::NotLeader { leader }));
            }
        }
        for peer in ready.snapshots_to_send {
            output
                .snapshots
                .push((peer, self.state_machine.snapshot()?));
        }
        self.answer_waiting_on_step_down();
        self.maybe_compact()?;
        if let Some(seq) = durable_at_once {
            self.replica.persisted(now, seq);
        }
        output.answers = std::mem::take(&mut self.answers);
        Ok(output)
    }

    /// The driver is stopping: from now on every round hands the log all its
    /// records, those held back included (see `held_records`), so that the
    /// last round leaves none unwritten.
    pub fn stop_holding(&mut self) {
        self.held.stop();
    }

    /// Applies every committed slot and makes the state durable, before the
    /// node stops.
    pub fn flush(&mut self, now: Instant) -> Result<(), NodeFailure> {
        self.assert_between_rounds();
        let slots = self.deferred.take();
        self.apply(now, slots)?;
        self.flush_state_machine()
    }

    /// Makes every applied slot durable.
    fn flush_state_machine(&mut self) -> Result<(), NodeFailure> {
        self.state_machine.flush()?;
        self.flushed_through = self.state_machine.applied_index();
        Ok(())
    }

    // ----- queries --------------------------------------------------------

    /// How many keys, sessions and locks the applied state holds (see
    /// [`StateMachine::counts`]).
    pub fn state_counts(&self) -> Result<synod_kvstore::StateCounts, NodeError> {
        self.state_machine
            .counts()
            .map_err(|e| NodeError::Storage(e.to_string()))
    }

    /// The watch history from `from_revision` (see
    /// [`StateMachine::events_since`]).
    pub fn watch(
        &self,
        from_revision: u64,
        filter: &EventFilter,
        limit: usize,
    ) -> Result<WatchAnswer, NodeError> {
        match self
            .state_machine
            .events_since(from_revision, filter, limit)
        {
            Ok(batch) => Ok(WatchAnswer::Batch(batch)),
            Err(WatchError::Compacted {
                compacted_through,
                revision,
                ..
            }) => Ok(WatchAnswer::Compacted {
                compacted_through,
                revision,
            }),
            Err(WatchError::Storage(e)) => Err(NodeError::Storage(e.to_string())),
        }
    }

    /// Role, ballot, leader, commit and applied index, revision.
    pub fn status(&self) -> NodeStatus {
        let status = self.replica.status();
        NodeStatus {
            id: status.id,
            role: status.role,
            ballot: status.promised,
            leader: status.leader,
            commit_index: status.commit_index,
            applied_index: Slot(self.state_machine.applied_index()),
            revision: self.state_machine.revision(),
            compacted_through: status.compacted_through,
            accept_fallbacks: status.accept_fallbacks,
        }
    }

    /// The ballot this node's leader clocks run for, if it leads.
    pub fn leading(&self) -> Option<Ballot> {
        self.duties.leading()
    }

    /// The consensus core, for inspection.
    pub fn replica(&self) -> &Replica {
        &self.replica
    }

    /// The state machine, for inspection.
    pub fn state_machine(&self) -> &StateMachine {
        &self.state_machine
    }

    /// Asks the core to start Phase 1 now (tests of dueling proposers).
    pub fn campaign(&mut self, now: Instant) {
        self.assert_between_rounds();
        self.replica.campaign(now);
    }

    // ----- inside ---------------------------------------------------------

    fn assert_between_rounds(&self) {
        assert!(
            self.round.is_none(),
            "input to a node between begin_round and finish_round"
        );
    }

    fn next_anonymous_seq(&mut self) -> u64 {
        let seq = self.next_anonymous_seq;
        self.next_anonymous_seq += 1;
        seq
    }

    fn answer_write(&mut self, (client_id, seq): (u64, u64), answer: WriteAnswer) {
        self.answers.push(Answer::Write {
            client_id,
            seq,
            answer,
        });
    }

    /// Answers the command waiting under `key`, if one is.
    fn answer_waiting(&mut self, key: (u64, u64), answer: WriteAnswer) {
        match self.waiting.remove(&key) {
            Some(Waiting::Write) => self.answer_write(key, answer),
            Some(Waiting::Read(id)) => self.answers.push(Answer::Read { id, answer }),
            None => {}
        }
    }

    /// When this node stops leading, the commands it proposed but has not
    /// applied may still be chosen under the next leader, or never: this
    /// node cannot tell which, and would otherwise keep their clients
    /// waiting until they time out. Each is answered "stepped down" now;
    /// a client that retries with the same (client, seq) at the new leader
    /// gets the command's one result (exactly-once).
    fn answer_waiting_on_step_down(&mut self) {
        if self.leadership.follow(&self.replica) != LeadershipChange::Ended {
            return;
        }
        let leader = self.replica.status().leader;
        let keys: Vec<(u64, u64)> = self.waiting.keys().copied().collect();
        for key in keys {
            self.answer_waiting(key, Err(NodeError::SteppedDown { leader }));
        }
    }

    fn take_snapshot(&self) -> Result<Snapshot, NodeError> {
        self.state_machine
            .snapshot()
            .map_err(|e| NodeError::Storage(e.to_string()))
    }

    /// The committed state as it is now, to serve reads from.
    fn reader(&self) -> Result<Arc<Reader>, NodeError> {
        self.state_machine
            .reader()
            .map_err(|e| NodeError::Storage(e.to_string()))
    }

    /// Serves `request`, a read, from `reader`.
    fn read_now(
        reader: &Result<Arc<Reader>, NodeError>,
        request: &Request,
    ) -> Result<Response, NodeError> {
        let op = request
            .op
            .as_ref()
            .ok_or(NodeError::Invalid(RequestError::MissingOp("the request")))?;
        reader
            .as_ref()
            .map_err(Clone::clone)?
            .read(op)
            .map_err(|e| NodeError::Storage(e.to_string()))
    }

    /// Answers a linearizable read the core released: from the state
    /// machine, unless it would show a key whose deadline passed on this
    /// leader's clock, in which case it goes through the log behind that
    /// key's deletion (see `expiry_timer`).
    fn answer_read(
        &mut self,
        now: Instant,
        id: ReadId,
        request: Request,
        reader: &Result<Arc<Reader>, NodeError>,
    ) -> Result<(), NodeFailure> {
        let now_ms = now_ms(now);
        let mut answer = Self::read_now(reader, &request);
        if let (Ok(response), Some(op)) = (answer.as_mut(), request.op.as_ref()) {
            if self.duties.expiry.needs_log(op, response, now_ms) {
                return self.read_through_log(now, id, op.clone());
            }
            // Whether a TTL ran out only the leader's clock says: a follower
            // sends such a read's client to the leader.
            let shows_a_ttl_here = match (self.replica.is_leader(), reader) {
                (true, _) => Ok(false),
                (false, Ok(reader)) => {
                    shows_a_ttl(reader, op, response).map_err(|e| NodeError::Storage(e.to_string()))
                }
                (false, Err(e)) => Err(e.clone()),
            };
            match shows_a_ttl_here {
                Ok(false) => self.duties.expiry.fill_ttl(op, response, now_ms),
                Ok(true) => {
                    answer = Err(NodeError::NotLeader {
                        leader: self.replica.leader_elsewhere(),
                    })
                }
                Err(e) => answer = Err(e),
            }
        }
        self.answers.push(Answer::Read { id, answer });
        Ok(())
    }

    /// Proposes the read `op` as an anonymous command, after the expiries
    /// due now; read `id` is answered when it applies.
    fn read_through_log(&mut self, now: Instant, id: ReadId, op: Op) -> Result<(), NodeFailure> {
        self.lead_key_expiry(now)?;
        let mut request = Request::anonymous(op);
        request.seq = self.next_anonymous_seq();
        match self.replica.propose(now, request.encode_to_vec()) {
            Ok(()) => {
                self.waiting
                    .insert((request.client_id, request.seq), Waiting::Read(id));
            }
            Err(refused) => self.answers.push(Answer::Read {
                id,
                answer: Err(unavailable(refused)),
            }),
        }
        Ok(())
    }

    /// Applies every slot committed this round in one state-machine
    /// transaction, then tells the session and key expiry clocks and the
    /// waiting clients. Slots a snapshot installed earlier this round
    /// already covers are skipped.
    fn apply(
        &mut self,
        now: Instant,
        committed: Vec<(Slot, Value)>,
    ) -> Result<Vec<AppliedSlot>, NodeFailure> {
        let applied_index = self.state_machine.applied_index();
        let slots: Vec<(u64, Vec<Vec<u8>>)> = committed
            .into_iter()
            .filter(|(slot, _)| slot.0 > applied_index)
            .map(|(slot, value)| match value {
                Value::Noop => (slot.0, Vec::new()),
                Value::Commands(commands) => (slot.0, commands),
                Value::Reconfigure(change) => (slot.0, vec![membership_command(&change)]),
            })
            .collect();
        if slots.is_empty() {
            return Ok(Vec::new());
        }
        let results = self.state_machine.apply_slots(
            slots
                .iter()
                .map(|(slot, commands)| (*slot, commands.as_slice())),
        )?;
        let now_ms = now_ms(now);
        let mut applied = Vec::with_capacity(slots.len());
        for ((slot, commands), result) in slots.into_iter().zip(results) {
            self.duties
                .sessions
                .observe(now_ms, &result.effects.session_events);
            self.duties
                .expiry
                .observe(now_ms, &result.effects.key_expiry_events);
            for (bytes, response) in commands.iter().zip(&result.responses) {
                if self.waiting.is_empty() {
                    // Only a leader has commands waiting: a follower decodes
                    // nothing here.
                    break;
                }
                let Ok(request) = Request::decode(bytes.as_slice()) else {
                    continue;
                };
                let key = (request.client_id, request.seq);
                if !self.waiting.contains_key(&key) {
                    continue;
                }
                let mut response = response.clone();
                if let Some(op) = &request.op {
                    // A TTL read served through the log.
                    self.duties.expiry.fill_ttl(op, &mut response, now_ms);
                }
                self.answer_waiting(key, Ok(response));
            }
            applied.push(AppliedSlot {
                slot: Slot(slot),
                commands,
                responses: result.responses,
                effects: result.effects,
                revision: result.revision,
            });
        }
        Ok(applied)
    }

    /// Flushes the state machine and compacts the log when due.
    fn maybe_compact(&mut self) -> Result<(), NodeFailure> {
        let applied = self.state_machine.applied_index();
        let compacted = self.replica.compacted_through().0;
        let policy = self.compaction;
        let due_by_slots = applied >= compacted + policy.every_slots + policy.keep_slots;
        // Large slots: the leader opens no slot while the log holds more
        // than `max_log_bytes`, so compact well before that, keeping fewer
        // slots for laggards (they catch up by snapshot).
        let due_by_bytes = applied > compacted && self.replica.log_bytes() > self.max_log_bytes / 2;
        let flush_due = applied >= self.flushed_through + policy.flush_every_slots;
        if !due_by_slots && !due_by_bytes && !flush_due {
            return Ok(());
        }
        self.flush_state_machine()?;
        if due_by_slots {
            self.replica.compact(Slot(applied - policy.keep_slots));
        } else if due_by_bytes {
            let keep = policy.keep_slots.min((applied - compacted) / 2);
            self.replica.compact(Slot(applied - keep));
        }
        Ok(())
    }

    /// Follows leadership changes and proposes what the session and key
    /// expiry clocks say is due (expiries, lock-delay ends, checkpoints).
    fn lead_sessions(&mut self, now: Instant) -> Result<(), NodeFailure> {
        self.lead_key_expiry(now)?;
        let now_ms = now_ms(now);
        for op in self.duties.sessions.due(now_ms) {
            // Refused (busy, or leadership just lost): the clock proposes
            // expiries and delay ends again after its retry interval, and
            // the next checkpoint is one interval away.
            if let Err(refused) = self.propose_anonymous(now, op) {
                tracing::debug!(%refused, "session command not proposed");
            }
        }
        Ok(())
    }

    /// Follows leadership changes and proposes the key expiries and TTL
    /// checkpoints the key expiry clock says are due. Called every round
    /// and before proposing a client's write or a read through the log.
    fn lead_key_expiry(&mut self, now: Instant) -> Result<(), StorageError> {
        let now_ms = now_ms(now);
        self.duties
            .follow_role(now_ms, &self.replica, &self.state_machine)?;
        for op in self.duties.expiry.due(now_ms) {
            // Refused (busy, or leadership just lost): the clock proposes
            // the expiries again after its retry interval.
            if let Err(refused) = self.propose_anonymous(now, op) {
                tracing::debug!(%refused, "key expiry command not proposed");
            }
        }
        Ok(())
    }

    fn propose_anonymous(&mut self, now: Instant, op: Op) -> Result<(), Unavailable> {
        self.replica
            .propose(now, Request::anonymous(op).encode_to_vec())
    }
}

/// The node's clock in milliseconds, for the session and key expiry clocks.
/// The membership the state machine holds; on a founding node's first start,
/// the founding one from `config`, stored first.
fn known_membership(
    state_machine: &mut StateMachine,
    config: &NodeConfig,
) -> Result<MembershipLog, StorageError> {
    let known = state_machine.membership()?;
    if !known.is_unknown() || config.paxos.members.is_empty() {
        return Ok(known);
    }
    let founding = config.paxos.members.iter().map(|id| {
        config
            .founding
            .iter()
            .find(|m| m.id == *id)
            .cloned()
            .unwrap_or(Member {
                id: *id,
                voter: true,
                peer_addr: String::new(),
                client_addr: String::new(),
            })
    });
    state_machine.set_founding_membership(MembershipLog::new(Membership::founding(founding)))
}

/// True if the answer `response` to the read `op` shows a key with a TTL
/// (or is a TTL read of one), from `reader`'s moment. A Redis-typed read
/// (`EXISTS`, `HGET`, `LRANGE`, ...) counts as one whenever any key has a
/// TTL: its keys are not told apart here.
fn shows_a_ttl(reader: &Reader, op: &Op, response: &Response) -> Result<bool, StorageError> {
    match (op, &response.outcome) {
        (_, Some(Outcome::Get(get))) => match &get.kv {
            Some(kv) => reader.has_expiry(&kv.key),
            None => Ok(false),
        },
        (_, Some(Outcome::Scan(scan))) => {
            for kv in &scan.kvs {
                if reader.has_expiry(&kv.key)? {
                    return Ok(true);
                }
            }
            Ok(false)
        }
        (Op::Ttl(_), Some(Outcome::Ttl(ttl))) => Ok(ttl.exists && ttl.expiry_revision != 0),
        (Op::Redis(_), _) => reader.has_any_expiry(),
        _ => Ok(false),
    }
}

fn now_ms(now: Instant) -> u64 {
    now.as_micros() / 1_000
}

fn unavailable(refused: Unavailable) -> NodeError {
    match refused {
        Unavailable::NotLeader { leader } => NodeError::NotLeader { leader },
        Unavailable::Busy => NodeError::Busy,
    }
}
