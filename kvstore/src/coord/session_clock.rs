//! The leader's session clock: deadlines of sessions and lock-delays on the leader's own clock,
//! and the commands to propose when they pass. Pure: no clock read, no IO; time comes in as
//! `now_ms`.
//!
//! # Driving it (node runtime)
//! One `SessionClock` per node, fed with a monotonic clock in milliseconds:
//! 1. On becoming leader (after applying everything committed before its election, if it can):
//!    [`become_leader`](SessionClock::become_leader)`(now_ms, &sm.sessions()?,
//!    &sm.delayed_locks()?)`. Each session's deadline restarts at `now + remaining TTL` (the last
//!    checkpointed remaining TTL, or the full TTL if the session was opened or kept alive since),
//!    so no session expires earlier than its client can expect, and each lock-delay restarts at
//!    a full `lock_delay_ms`.
//! 2. After each applied slot, while leader: [`observe`](SessionClock::observe)`(now_ms,
//!    &effects.session_events)`, the slot's effects from
//!    [`StateMachine::apply_slots`](crate::StateMachine::apply_slots).
//!    Slots applied before `become_leader` must not be observed again (the listing covers them).
//! 3. Whenever [`next_wakeup_ms`](SessionClock::next_wakeup_ms) passes (or on every tick):
//!    [`poll`](SessionClock::poll)`(now_ms)` and propose each returned op as
//!    [`Request::anonymous`](crate::Request::anonymous). It returns [`ExpireSession`] for
//!    sessions past their deadline, [`ReleaseLockDelay`] for lock-delays that ran out, and every
//!    `checkpoint_interval_ms` a [`CheckpointSessions`] of every session's remaining TTL (split
//!    into commands of at most [`MAX_CHECKPOINT_ENTRIES`] entries). An op not yet seen applied
//!    is proposed again after `retry_ms`; duplicates are harmless (apply checks keep-alive counts
//!    and delay revisions).
//! 4. On losing leadership: [`step_down`](SessionClock::step_down).
//!
//! # Why checkpoints (etcd#9395)
//! Without them every new leader would restart every deadline at a full TTL, so leader changes
//! more frequent than the TTL would keep an abandoned session alive forever. With a checkpoint
//! every `C` ms, a leader whose term lasts `T >= C` makes the stored remaining TTL drop by at
//! least `T - C` (minus the polling delay); with terms of at least `2C`, an abandoned session
//! expires after at most about `2 × TTL` of cumulated leadership, plus the time without a leader
//! and commit latency. A term shorter than `C` makes no progress, so `C` should be well below
//! typical leader lifetimes (default 5 s). A session kept alive is never
//! expired: each keep-alive restores a full TTL in the state machine, and a checkpoint or a
//! session expiry decided before a keep-alive applied is ignored by apply (keep-alive counts
//! differ).

use std::collections::BTreeMap;

use super::lock::DelayedLock;
use super::session::SessionInfo;
use crate::bugs::Bug;
use crate::effects::SessionEvent;
use synod_wire::command::{
    CheckpointEntry, CheckpointSessions, ExpireSession, Op, ReleaseLockDelay,
};
use synod_wire::limits::MAX_CHECKPOINT_ENTRIES;

/// Settings of a [`SessionClock`]. They only shape what the leader proposes (not how commands
/// apply), so nodes may differ, though they normally share them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionClockConfig {
    /// How often the leader checkpoints remaining TTLs, in ms (at least 1; default 5 000).
    pub checkpoint_interval_ms: u64,
    /// How long a lock lost by session expiry stays unavailable, in ms (default 10 000; 0 ends
    /// the delay at the next poll).
    pub lock_delay_ms: u64,
    /// How long to wait for a proposed session expiry or lock-delay release to apply before
    /// proposing it again, in ms (at least 1; default 2 000).
    pub retry_ms: u64,
    /// Deliberately broken rules (tests only).
    #[cfg(feature = "bug-injection")]
    pub bugs: crate::Bugs,
}

impl Default for SessionClockConfig {
    fn default() -> SessionClockConfig {
        SessionClockConfig {
            checkpoint_interval_ms: 5_000,
            lock_delay_ms: 10_000,
            retry_ms: 2_000,
            #[cfg(feature = "bug-injection")]
            bugs: crate::Bugs::default(),
        }
    }
}

impl SessionClockConfig {
    /// Whether `bug` is switched on (never without the `bug-injection` feature).
    fn has_bug(&self, bug: Bug) -> bool {
        #[cfg(feature = "bug-injection")]
        return self.bugs.has(bug);
        #[cfg(not(feature = "bug-injection"))]
        crate::bugs::Active.has(bug)
    }
}

/// A session as the leader tracks it.
#[derive(Clone, Debug)]
struct Tracked {
    ttl_ms: u64,
    keepalives: u64,
    deadline_ms: u64,
    /// When the session's expiry was last proposed for the current deadline.
    proposed_at_ms: Option<u64>,
}

/// A lock-delay as the leader tracks it.
#[derive(Clone, Debug)]
struct Delay {
    delayed_revision: u64,
    due_ms: u64,
    proposed_at_ms: Option<u64>,
}

/// Session deadlines and lock-delays on the leader's clock (see the [module docs](self)).
///
/// Memory: one entry per open session and per delayed lock. Every method is O(log n) except
/// [`become_leader`](Self::become_leader), [`poll`](Self::poll) and
/// [`next_wakeup_ms`](Self::next_wakeup_ms), which visit every entry.
#[derive(Clone, Debug)]
pub struct SessionClock {
    config: SessionClockConfig,
    leader: bool,
    sessions: BTreeMap<u64, Tracked>,
    delays: BTreeMap<Vec<u8>, Delay>,
    next_checkpoint_ms: u64,
}

impl SessionClock {
    /// A clock of a node that is not leader.
    ///
    /// # Panics
    /// If `checkpoint_interval_ms` or `retry_ms` is 0.
    pub fn new(config: SessionClockConfig) -> SessionClock {
        assert!(
            config.checkpoint_interval_ms >= 1,
            "checkpoint interval must be positive"
        );
        assert!(config.retry_ms >= 1, "retry interval must be positive");
        SessionClock {
            config,
            leader: false,
            sessions: BTreeMap::new(),
            delays: BTreeMap::new(),
            next_checkpoint_ms: 0,
        }
    }

    /// The settings.
    pub fn config(&self) -> &SessionClockConfig {
        &self.config
    }

    /// Whether [`become_leader`](Self::become_leader) was called since the last
    /// [`step_down`](Self::step_down).
    pub fn is_leader(&self) -> bool {
        self.leader
    }

    /// Start tracking as leader from the state machine's `sessions` and `delayed` locks:
    /// deadlines at `now_ms + remaining_ms`, delays ending at `now_ms + lock_delay_ms`, the first
    /// checkpoint one interval from now. Replaces whatever was tracked.
    pub fn become_leader(
        &mut self,
        now_ms: u64,
        sessions: &[SessionInfo],
        delayed: &[DelayedLock],
    ) {
        self.leader = true;
        self.sessions = sessions
            .iter()
            .map(|s| {
                let tracked = Tracked {
                    ttl_ms: s.ttl_ms,
                    keepalives: s.keepalives,
                    deadline_ms: now_ms.saturating_add(s.remaining_ms.min(s.ttl_ms)),
                    proposed_at_ms: None,
                };
                (s.session, tracked)
            })
            .collect();
        self.delays = delayed
            .iter()
            .map(|d| (d.name.clone(), self.new_delay(now_ms, d.delayed_revision)))
            .collect();
        self.next_checkpoint_ms = now_ms.saturating_add(self.config.checkpoint_interval_ms);
    }

    /// Stop being leader: forget every deadline (a later leader rebuilds them from the state
    /// machine).
    pub fn step_down(&mut self) {
        self.leader = false;
        self.sessions.clear();
        self.delays.clear();
    }

    fn new_delay(&self, now_ms: u64, delayed_revision: u64) -> Delay {
        Delay {
            delayed_revision,
            due_ms: now_ms.saturating_add(self.config.lock_delay_ms),
            proposed_at_ms: None,
        }
    }

    /// Take in the session events of slots applied at `now_ms`. Ignored unless leader.
    pub fn observe(&mut self, now_ms: u64, events: &[SessionEvent]) {
        if !self.leader {
            return;
        }
        for event in events {
            match event {
                SessionEvent::Opened { session, ttl_ms } => {
                    let tracked = Tracked {
                        ttl_ms: *ttl_ms,
                        keepalives: 0,
                        deadline_ms: now_ms.saturating_add(*ttl_ms),
                        proposed_at_ms: None,
                    };
                    self.sessions.insert(*session, tracked);
                }
                SessionEvent::KeptAlive {
                    session,
                    keepalives,
                } => {
                    let keeps_deadline = self.config.has_bug(Bug::KeepAliveKeepsDeadline);
                    if let Some(tracked) = self.sessions.get_mut(session) {
                        tracked.keepalives = *keepalives;
                        if !keeps_deadline {
                            tracked.deadline_ms = now_ms.saturating_add(tracked.ttl_ms);
                        }
                        tracked.proposed_at_ms = None;
                    }
                }
                SessionEvent::Checkpointed { .. } => {}
                SessionEvent::Ended { session, .. } => {
                    self.sessions.remove(session);
                }
                SessionEvent::LockDelayed {
                    name,
                    delayed_revision,
                } => {
                    let delay = self.new_delay(now_ms, *delayed_revision);
                    self.delays.insert(name.clone(), delay);
                }
                SessionEvent::LockDelayEnded {
                    name,
                    delayed_revision,
                } => {
                    if self
                        .delays
                        .get(name)
                        .is_some_and(|d| d.delayed_revision == *delayed_revision)
                    {
                        self.delays.remove(name);
                    }
                }
            }
        }
    }

    /// The commands to propose at `now_ms` (empty unless leader); see the [module docs](self).
    pub fn poll(&mut self, now_ms: u64) -> Vec<Op> {
        if !self.leader {
            return Vec::new();
        }
        let mut ops = Vec::new();
        let retry_ms = self.config.retry_ms;
        let due = |at_ms: u64, proposed_at_ms: Option<u64>| {
            at_ms <= now_ms && proposed_at_ms.is_none_or(|p| p.saturating_add(retry_ms) <= now_ms)
        };
        for (&session, tracked) in &mut self.sessions {
            if due(tracked.deadline_ms, tracked.proposed_at_ms) {
                tracked.proposed_at_ms = Some(now_ms);
                ops.push(Op::ExpireSession(ExpireSession {
                    session,
                    keepalives: tracked.keepalives,
                }));
            }
        }
        for (name, delay) in &mut self.delays {
            if due(delay.due_ms, delay.proposed_at_ms) {
                delay.proposed_at_ms = Some(now_ms);
                ops.push(Op::ReleaseLockDelay(ReleaseLockDelay {
                    name: name.clone(),
                    delayed_revision: delay.delayed_revision,
                }));
            }
        }
        if now_ms >= self.next_checkpoint_ms && !self.config.has_bug(Bug::NoCheckpoints) {
            self.next_checkpoint_ms = now_ms.saturating_add(self.config.checkpoint_interval_ms);
            let entries: Vec<CheckpointEntry> = self
                .sessions
                .iter()
                .filter(|(_, t)| t.deadline_ms > now_ms)
                .map(|(&session, t)| CheckpointEntry {
                    session,
                    remaining_ms: t.deadline_ms - now_ms,
                    keepalives: t.keepalives,
                })
                .collect();
            for chunk in entries.chunks(MAX_CHECKPOINT_ENTRIES) {
                ops.push(Op::CheckpointSessions(CheckpointSessions {
                    entries: chunk.to_vec(),
                }));
            }
        }
        ops
    }

    /// The earliest time [`poll`](Self::poll) may return something (`None` unless leader).
    pub fn next_wakeup_ms(&self) -> Option<u64> {
        if !self.leader {
            return None;
        }
        let retry = |at: u64, proposed: Option<u64>| match proposed {
            None => at,
            Some(p) => at.max(p.saturating_add(self.config.retry_ms)),
        };
        let sessions = self
            .sessions
            .values()
            .map(|t| retry(t.deadline_ms, t.proposed_at_ms));
        let delays = self
            .delays
            .values()
            .map(|d| retry(d.due_ms, d.proposed_at_ms));
        sessions
            .chain(delays)
            .chain(std::iter::once(self.next_checkpoint_ms))
            .min()
    }

    /// The deadline of `session` on this leader's clock, if tracked.
    pub fn deadline_ms(&self, session: u64) -> Option<u64> {
        self.sessions.get(&session).map(|t| t.deadline_ms)
    }

    /// How many sessions and lock-delays are tracked.
    pub fn tracked(&self) -> (usize, usize) {
        (self.sessions.len(), self.delays.len())
    }
}
