//! The leader's session duties in the core task: drives the pure
//! [`SessionClock`] with the core's monotonic clock and proposes what it
//! returns (session expiries, lock-delay releases, TTL checkpoints).
//!
//! The core task calls, in this order, every round:
//! 1. [`follow_role`](SessionTimer::follow_role) before taking `Ready`: on a
//!    new leadership (a new ballot of ours) the clock restarts every
//!    deadline from the state machine's listing; on losing it, it forgets
//!    them. Slots applied after that point are observed; slots applied
//!    before are in the listing, so nothing is counted twice.
//! 2. [`due`](SessionTimer::due), and propose each op as an anonymous
//!    request (client id 0, sequence 0: no waiter is ever registered under
//!    it, so applying it answers nobody).
//! 3. [`observe`](SessionTimer::observe) after each applied slot with its
//!    session events.
//!
//! The deterministic simulator (`tests/sim`) drives this same type from its
//! simulated nodes, in the same order, so what it checks is what runs.
//!
//! Cost: `due` compares one cached instant per round; the clock's O(n)
//! `poll` and `next_wakeup_ms` run only when that instant passes (a
//! deadline, a retry or a checkpoint is due), and `become_leader` reads
//! every session once per leadership.

use synod_kvstore::{
    Op, SessionClock, SessionClockConfig, SessionEvent, StateMachine, StorageError,
};
use synod_paxos::{Ballot, Replica};

use super::leadership::{LeadershipChange, LeadershipWatch};

/// The session clock plus what the core needs to drive it cheaply (see the
/// module docs for the order of calls). Pure: time comes in as `now_ms`
/// from a monotonic clock.
pub struct SessionTimer {
    clock: SessionClock,
    /// The leadership the clock runs for.
    leadership: LeadershipWatch,
    /// No poll can return anything before this (ms on the core's clock);
    /// `None`: ask the clock.
    wakeup_ms: Option<u64>,
}

impl SessionTimer {
    /// A timer of a node that does not lead yet.
    pub fn new(config: SessionClockConfig) -> SessionTimer {
        SessionTimer {
            clock: SessionClock::new(config),
            leadership: LeadershipWatch::default(),
            wakeup_ms: None,
        }
    }

    /// Starts or stops the leader's duties when `replica`'s leadership
    /// changed since the last call. A leadership lost and won again between
    /// two calls shows as a new ballot and restarts the deadlines too.
    pub fn follow_role(
        &mut self,
        now_ms: u64,
        replica: &Replica,
        state_machine: &StateMachine,
    ) -> Result<(), StorageError> {
        let node = replica.status().id;
        match self.leadership.follow(replica) {
            LeadershipChange::Unchanged => return Ok(()),
            LeadershipChange::Started(ballot) => {
                let sessions = state_machine.sessions()?;
                let delayed = state_machine.delayed_locks()?;
                self.clock.become_leader(now_ms, &sessions, &delayed);
                tracing::info!(
                    %node,
                    %ballot,
                    sessions = sessions.len(),
                    delayed_locks = delayed.len(),
                    "leading: session deadlines restarted from their remaining TTLs"
                );
            }
            LeadershipChange::Ended => {
                self.clock.step_down();
                tracing::debug!(%node, "no longer leading: session deadlines dropped");
            }
        }
        self.wakeup_ms = None;
        Ok(())
    }

    /// The ballot this node leads with, while its session clock runs as
    /// leader (since the last [`follow_role`](Self::follow_role)).
    pub fn leading(&self) -> Option<Ballot> {
        self.leadership.leading()
    }

    /// Forgets the leadership seen, so the next
    /// [`follow_role`](Self::follow_role) rebuilds the deadlines from the
    /// state machine (after the state machine was replaced by a snapshot).
    pub fn reset(&mut self) {
        self.clock.step_down();
        self.leadership.forget();
        self.wakeup_ms = None;
    }

    /// Takes in the session events of a slot applied at `now_ms`.
    pub fn observe(&mut self, now_ms: u64, events: &[SessionEvent]) {
        if events.is_empty() || !self.clock.is_leader() {
            return;
        }
        self.clock.observe(now_ms, events);
        // Keep-alives and ends only move deadlines later or drop them, so
        // the cached wakeup stays a safe (maybe early) bound; new deadlines
        // may come sooner than it.
        let lock_delay_ms = self.clock.config().lock_delay_ms;
        for event in events {
            let new_deadline_ms = match event {
                SessionEvent::Opened { ttl_ms, .. } => now_ms.saturating_add(*ttl_ms),
                SessionEvent::LockDelayed { .. } => now_ms.saturating_add(lock_delay_ms),
                _ => continue,
            };
            if let Some(wakeup_ms) = self.wakeup_ms.as_mut() {
                *wakeup_ms = (*wakeup_ms).min(new_deadline_ms);
            }
        }
    }

    /// The ops the leader must propose at `now_ms` (empty unless leader).
    pub fn due(&mut self, now_ms: u64) -> Vec<Op> {
        if !self.clock.is_leader() {
            return Vec::new();
        }
        let clock = &self.clock;
        let wakeup_ms = *self
            .wakeup_ms
            .get_or_insert_with(|| clock.next_wakeup_ms().unwrap_or(u64::MAX));
        if now_ms < wakeup_ms {
            return Vec::new();
        }
        let ops = self.clock.poll(now_ms);
        self.wakeup_ms = None;
        ops
    }
}
