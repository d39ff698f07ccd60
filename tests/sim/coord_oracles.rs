//! Oracles of the coordination primitives.
//!
//! Checked on every replica after every applied slot that touches
//! coordination (a coordination op, a fenced write, or a session, lock or
//! election change), from the slot's requests, responses and watch events
//! and a read of the replica's state right after it:
//!
//! - `locks` (a): a lock is never granted to a second live session. The
//!   holder is an open session, not also a waiter, and no holder exists
//!   during lock-delay; each lock-holder change starts from the holder the
//!   replica had, and one that takes the lock from session A happens only in
//!   a slot where A unlocked it or A's session ended.
//! - `tokens` (b): each new grant of a lock (a new holder or token) carries a
//!   token strictly greater than the previous grant's on that replica.
//! - `fences` (c): a fenced write is accepted only if its token is the lock's
//!   current one at that point of the slot (the grant revision of the current
//!   holder, from the lock events before the write); in particular never the
//!   token of a holder that unlocked or whose session ended (closed or
//!   expired). A fenced write with the current token is not refused. Tokens
//!   in the state are their grant's revision.
//! - `elections` (d): an election's leader is an open session and not a
//!   candidate; across all replicas and all client answers, one revision
//!   belongs to one leader session; a new leadership has a higher revision
//!   than the one before it.
//!
//! Checked at the first apply of each slot anywhere, in simulated (true)
//! time, which the nodes' drifting clocks never see:
//!
//! - `keepalive` (e): no session expires while kept alive within its TTL.
//!   Exactly: if an expiry of session S applies (first anywhere) at true time
//!   `x`, and S's last open or keep-alive before it applied (first anywhere)
//!   at `k`, then `x - k >= TTL / (1 + drift) - 2 ms`, where drift is the
//!   configured bound on clock-rate error (the simulator's clocks stay
//!   within it) and 2 ms covers the millisecond clock of the session timer.
//!   Keep-alives that were sent but lost or not yet applied do not count:
//!   the cluster cannot know of them. (The client library sends one every
//!   TTL/3 and counts a session lost after a whole TTL without an answer.)
//!   Why this must hold: the leader that applies the keep-alive (at or after
//!   `k`) restarts the deadline a full TTL later on its clock; a later leader
//!   restarts it at its election from a remaining TTL that an earlier leader
//!   measured on its own clock; clocks run at most `drift` fast, so at least
//!   TTL/(1+drift) of true time passes before any leader proposes the expiry.
//! - `abandon` (f): an abandoned session expires within a bounded time. In
//!   every mix: once the faults heal, a session with no keep-alive applied
//!   is gone by `max(k, heal + 3 s) + TTL / (1 - drift) + 1 s`. In mixes
//!   whose network loses nothing (`calm`, `churn`: leaders crash every
//!   0.8-1.6 s of leadership), also while leaders keep changing, by the
//!   checkpoint argument of `SessionClock`: walking the leadership terms
//!   after `k` with a budget `U = TTL`, a term `[b, e)` must expire the
//!   session by `b + U / (1 - drift) + 250 ms` if that is before `e`;
//!   otherwise its checkpoints shrink the budget to
//!   `U - ((e - b - 150 ms) (1 - drift) - C)` (C the checkpoint interval,
//!   150 ms for a checkpoint to commit and reach the next leader; the 250 ms
//!   are those 150 ms plus 100 ms to notice the deadline and commit the
//!   expiry). Terms are the session clocks' leaderships in true time; the
//!   one running at `k` counts from `k`; overlapping terms are cut where the
//!   next begins. A session still open (or kept alive again) past that bound
//!   fails. Without checkpoints each leader would restart a full TTL, longer
//!   than most of the churn mix's terms, so the session would outlive the
//!   bound while leaders change. Implemented in `session_oracles`.

use std::collections::{BTreeMap, BTreeSet};

use prost::Message;
use synod_kvstore::{
    ErrorCode, EventKind, Leader, LockHolder, Op, Outcome, Request as KvRequest, Response,
    SessionEvent, SlotEffects, StateMachine,
};

use super::coord::{election_name, lock_index, lock_name, ELECTIONS, LOCKS};

/// One coordination oracle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Oracle {
    Locks,
    Tokens,
    Fences,
    Elections,
    KeepAlive,
    Abandon,
}

impl Oracle {
    pub fn name(self) -> &'static str {
        match self {
            Oracle::Locks => "locks",
            Oracle::Tokens => "tokens",
            Oracle::Fences => "fences",
            Oracle::Elections => "elections",
            Oracle::KeepAlive => "keepalive",
            Oracle::Abandon => "abandon",
        }
    }
}

/// Which coordination oracles may fail a run (all by default; the
/// bug-injection tests keep one, to show that it alone notices).
#[derive(Clone, Debug)]
pub struct CoordOracles(pub BTreeSet<Oracle>);

impl Default for CoordOracles {
    fn default() -> CoordOracles {
        use Oracle::*;
        CoordOracles([Locks, Tokens, Fences, Elections, KeepAlive, Abandon].into())
    }
}

impl CoordOracles {
    pub fn only(oracle: Oracle) -> CoordOracles {
        CoordOracles([oracle].into())
    }
}

/// A broken coordination property.
#[derive(Debug)]
pub struct Violation {
    pub oracle: Oracle,
    pub message: String,
}

pub fn violation(oracle: Oracle, message: String) -> Violation {
    Violation { oracle, message }
}

#[derive(Clone, Debug, Default)]
struct LockView {
    holder: u64,
    token: u64,
    /// The last grant seen: (holder, token).
    last_grant: (u64, u64),
    /// Tokens no longer current: token → (revision, why).
    revoked: BTreeMap<u64, (u64, &'static str)>,
}

#[derive(Clone, Debug, Default)]
struct ElectionView {
    leader: u64,
    revision: u64,
    /// The highest leadership revision seen.
    last_revision: u64,
}

/// One slot a replica just applied.
#[derive(Clone, Copy)]
pub struct AppliedSlot<'a> {
    pub commands: &'a [Vec<u8>],
    pub responses: &'a [Response],
    pub effects: &'a SlotEffects,
    /// The store revision before the slot.
    pub revision_before: u64,
}

/// What one replica's coordination state was after its last checked slot.
#[derive(Clone, Debug, Default)]
pub struct ReplicaView {
    locks: Vec<LockView>,
    elections: Vec<ElectionView>,
}

fn read_lock(sm: &StateMachine, lock: usize) -> Result<synod_kvstore::LockHolderResponse, String> {
    let op = Op::LockHolder(LockHolder {
        name: lock_name(lock),
    });
    match sm.read(&op).map_err(|e| e.to_string())?.outcome {
        Some(Outcome::LockHolder(h)) => Ok(h),
        other => Err(format!("lock holder read answered {other:?}")),
    }
}

fn read_election(
    sm: &StateMachine,
    election: usize,
) -> Result<synod_kvstore::LeaderResponse, String> {
    let op = Op::Leader(Leader {
        election: election_name(election),
    });
    match sm.read(&op).map_err(|e| e.to_string())?.outcome {
        Some(Outcome::Leader(l)) => Ok(l),
        other => Err(format!("election leader read answered {other:?}")),
    }
}

/// Whether a slot's request touches coordination.
fn is_coordination(request: &KvRequest) -> bool {
    request.fence.is_some()
        || !matches!(
            request.op,
            Some(Op::Put(_) | Op::Get(_) | Op::CompareAndSwap(_)) | None
        )
}

impl ReplicaView {
    /// The view of `sm`'s current state (after a start or a snapshot
    /// install: history before it is not this replica's any more).
    pub fn read(sm: &StateMachine) -> Result<ReplicaView, String> {
        let mut view = ReplicaView::default();
        for lock in 0..LOCKS {
            let h = read_lock(sm, lock)?;
            view.locks.push(LockView {
                holder: h.holder,
                token: h.token,
                last_grant: (h.holder, h.token),
                revoked: BTreeMap::new(),
            });
        }
        for election in 0..ELECTIONS {
            let l = read_election(sm, election)?;
            let (leader, revision) = l.leader.map_or((0, 0), |l| (l.session, l.revision));
            view.elections.push(ElectionView {
                leader,
                revision,
                last_revision: revision,
            });
        }
        Ok(view)
    }

    /// Checks one slot this replica just applied (see the module docs).
    /// Returns whether the slot touched
    /// coordination state: then, once the round's slots are all applied,
    /// [`check_state`](Self::check_state) compares the replica's state.
    pub fn check_slot(
        &mut self,
        slot: &AppliedSlot<'_>,
        out: &mut Vec<Violation>,
    ) -> Result<bool, String> {
        let AppliedSlot {
            commands,
            responses,
            effects,
            revision_before,
        } = *slot;
        let requests: Vec<Option<KvRequest>> = commands
            .iter()
            .map(|bytes| KvRequest::decode(bytes.as_slice()).ok())
            .collect();
        let touched = requests.iter().flatten().any(is_coordination)
            || !effects.session_events.is_empty()
            || effects.events.iter().any(|e| {
                matches!(
                    e.event_kind(),
                    Some(EventKind::LockHolder | EventKind::ElectionLeader)
                )
            });
        if !touched {
            return Ok(false);
        }
        let ended: BTreeSet<u64> = effects
            .session_events
            .iter()
            .filter_map(|e| match e {
                SessionEvent::Ended { session, .. } => Some(*session),
                _ => None,
            })
            .collect();
        let unlocked: BTreeSet<(usize, u64)> = requests
            .iter()
            .flatten()
            .filter_map(|r| match &r.op {
                Some(Op::Unlock(u)) => Some((lock_index(&u.name)?, u.session)),
                _ => None,
            })
            .collect();
        let lock_events: Vec<(usize, &synod_kvstore::Event)> = effects
            .events
            .iter()
            .filter(|e| e.event_kind() == Some(EventKind::LockHolder))
            .filter_map(|e| Some((lock_index(&e.key)?, e)))
            .collect();
        let mut next_event = 0;
        let mut advance = |view: &mut ReplicaView, through: u64, out: &mut Vec<Violation>| {
            while let Some(&(lock, e)) = lock_events.get(next_event) {
                if e.revision > through {
                    break;
                }
                next_event += 1;
                view.lock_event(lock, e, &unlocked, &ended, out);
            }
        };
        for (request, response) in requests.iter().zip(responses) {
            let Some(request) = request else { continue };
            let Some(fence) = &request.fence else {
                continue;
            };
            let Some(lock) = lock_index(&fence.lock_name) else {
                continue;
            };
            // A retry answered from the exactly-once table carries the
            // revision of its first apply, in an earlier slot.
            if response.revision < revision_before
                || (response.revision == revision_before
                    && matches!(response.outcome, Some(Outcome::Put(_))))
            {
                continue;
            }
            match &response.outcome {
                Some(Outcome::Put(_)) => {
                    advance(self, response.revision - 1, out);
                    let view = &self.locks[lock];
                    if let Some((at, why)) = view.revoked.get(&fence.token) {
                        out.push(violation(
                            Oracle::Fences,
                            format!(
                                "a write fenced with token {} of lock/{lock} was accepted at \
                                 revision {}, but that token's holder {why} at revision {at}",
                                fence.token, response.revision
                            ),
                        ));
                    } else if view.holder == 0 || view.token != fence.token {
                        out.push(violation(
                            Oracle::Fences,
                            format!(
                                "a write fenced with token {} of lock/{lock} was accepted at \
                                 revision {}, but the current token was {} (holder {})",
                                fence.token, response.revision, view.token, view.holder
                            ),
                        ));
                    }
                }
                Some(Outcome::Error(e)) if e.code == ErrorCode::FencingTokenRejected as i32 => {
                    advance(self, response.revision, out);
                    let view = &self.locks[lock];
                    if view.holder != 0 && view.token == fence.token {
                        out.push(violation(
                            Oracle::Fences,
                            format!(
                                "a write fenced with lock/{lock}'s current token {} (holder {}) \
                                 was refused",
                                fence.token, view.holder
                            ),
                        ));
                    }
                }
                _ => {}
            }
        }
        advance(self, u64::MAX, out);
        Ok(true)
    }

    /// Follows one lock-holder change at its revision.
    fn lock_event(
        &mut self,
        lock: usize,
        e: &synod_kvstore::Event,
        unlocked: &BTreeSet<(usize, u64)>,
        ended: &BTreeSet<u64>,
        out: &mut Vec<Violation>,
    ) {
        let view = &mut self.locks[lock];
        if e.prev_session != view.holder {
            out.push(violation(
                Oracle::Locks,
                format!(
                    "lock/{lock} went from holder {} to {} at revision {}, but session {} held it",
                    e.prev_session, e.session, e.revision, view.holder
                ),
            ));
        }
        if view.holder != 0 && e.session != view.holder {
            let why = if unlocked.contains(&(lock, view.holder)) {
                "unlocked"
            } else if ended.contains(&view.holder) {
                "lost its session"
            } else {
                out.push(violation(
                    Oracle::Locks,
                    format!(
                        "lock/{lock} was granted to session {} at revision {} while live \
                         session {} held it and neither unlocked nor ended",
                        e.session, e.revision, view.holder
                    ),
                ));
                "was replaced"
            };
            view.revoked.insert(view.token, (e.revision, why));
        }
        view.holder = e.session;
        view.token = if e.session != 0 { e.revision } else { 0 };
    }

    /// Compares the replica's state after a round's slots with the events
    /// and the invariants; `leaders` maps (election, revision) to the
    /// leader seen with it, across replicas and clients.
    pub fn check_state(
        &mut self,
        sm: &StateMachine,
        leaders: &mut BTreeMap<(usize, u64), u64>,
        out: &mut Vec<Violation>,
    ) -> Result<(), String> {
        let live: BTreeSet<u64> = sm
            .sessions()
            .map_err(|e| e.to_string())?
            .iter()
            .map(|s| s.session)
            .collect();
        for lock in 0..LOCKS {
            let h = read_lock(sm, lock)?;
            let view = &mut self.locks[lock];
            let mut fail = |oracle, what: String| {
                out.push(violation(oracle, format!("lock/{lock}: {what}")));
            };
            if h.holder != 0 && !live.contains(&h.holder) {
                fail(
                    Oracle::Locks,
                    format!("held by session {} which is not open", h.holder),
                );
            }
            if h.holder != 0 && h.waiters.contains(&h.holder) {
                fail(
                    Oracle::Locks,
                    format!("holder {} also waits for it", h.holder),
                );
            }
            if h.holder != 0 && h.delayed_revision != 0 {
                fail(
                    Oracle::Locks,
                    format!("held by {} during lock-delay", h.holder),
                );
            }
            if let Some(w) = h.waiters.iter().find(|w| !live.contains(w)) {
                fail(Oracle::Locks, format!("waiter {w} is not an open session"));
            }
            if h.holder != view.holder {
                fail(
                    Oracle::Locks,
                    format!("held by {} but its events say {}", h.holder, view.holder),
                );
            }
            if h.holder != 0 && h.token != view.token {
                fail(
                    Oracle::Fences,
                    format!(
                        "holder {} has token {}, not its grant's revision {}",
                        h.holder, h.token, view.token
                    ),
                );
            }
            if h.holder != 0 && (h.holder, h.token) != view.last_grant {
                let (before_holder, before) = view.last_grant;
                if h.token <= before {
                    fail(
                        Oracle::Tokens,
                        format!(
                            "granted to session {} with token {}, not above the previous \
                             grant's token {before} (session {before_holder})",
                            h.holder, h.token
                        ),
                    );
                }
                view.last_grant = (h.holder, h.token);
            }
            view.holder = h.holder;
            view.token = h.token;
        }
        for election in 0..ELECTIONS {
            let l = read_election(sm, election)?;
            let waiters = l.waiters;
            let (leader, revision) = l.leader.map_or((0, 0), |l| (l.session, l.revision));
            let view = &mut self.elections[election];
            let mut fail = |what: String| {
                out.push(violation(
                    Oracle::Elections,
                    format!("election/{election}: {what}"),
                ));
            };
            if leader != 0 {
                if !live.contains(&leader) {
                    fail(format!("led by session {leader} which is not open"));
                }
                if waiters.contains(&leader) {
                    fail(format!("leader {leader} is also a candidate"));
                }
                if let Some(other) = observe_leader(leaders, election, revision, leader) {
                    fail(other);
                }
                if (leader, revision) != (view.leader, view.revision) {
                    if revision <= view.last_revision {
                        fail(format!(
                            "session {leader} leads since revision {revision}, not above the \
                             previous leadership's {}",
                            view.last_revision
                        ));
                    }
                    view.last_revision = view.last_revision.max(revision);
                }
            }
            view.leader = leader;
            view.revision = revision;
        }
        Ok(())
    }
}

/// Records that `session` leads `election` since `revision`; a message if
/// another session was seen leading at that same revision.
pub fn observe_leader(
    leaders: &mut BTreeMap<(usize, u64), u64>,
    election: usize,
    revision: u64,
    session: u64,
) -> Option<String> {
    let seen = *leaders.entry((election, revision)).or_insert(session);
    (seen != session)
        .then(|| format!("two leaders at revision {revision}: sessions {seen} and {session}"))
}
