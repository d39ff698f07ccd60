//! The leader's session duties in the core task: drives the pure
//! [`SessionClock`] with the core's monotonic clock and proposes what it
//! returns (session expiries, lock-delay releases, TTL checkpoints).
//!
//! The node, through [`LeaderDuties`](super::leader_duties::LeaderDuties),
//! calls in this order every round:
//! 1. [`become_leader`](SessionTimer::become_leader) on a new leadership (a
//!    new ballot of ours), which restarts every deadline from the state
//!    machine's listing, or [`step_down`](SessionTimer::step_down) on
//!    losing it, which forgets them. Slots applied after that point are
//!    observed; slots applied before are in the listing, so nothing is
//!    counted twice.
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
use synod_paxos::{Ballot, NodeId};

/// The session clock plus what the core needs to drive it cheaply (see the
/// module docs for the order of calls). Pure: time comes in as `now_ms`
/// from a monotonic clock.
pub(super) struct SessionTimer {
    clock: SessionClock,
    /// No poll can return anything before this (ms on the core's clock);
    /// `None`: ask the clock.
    wakeup_ms: Option<u64>,
}

impl SessionTimer {
    /// A timer of a node that does not lead yet.
    pub(super) fn new(config: SessionClockConfig) -> SessionTimer {
        SessionTimer {
            clock: SessionClock::new(config),
            wakeup_ms: None,
        }
    }

    /// Starts the leader's duties of `node`, leading with `ballot`: every
    /// deadline restarts from the state machine's listing.
    pub(super) fn become_leader(
        &mut self,
        now_ms: u64,
        state_machine: &StateMachine,
        node: NodeId,
        ballot: Ballot,
    ) -> Result<(), StorageError> {
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
        self.wakeup_ms = None;
        Ok(())
    }

    /// Stops the leader's duties: the deadlines are dropped.
    pub(super) fn step_down(&mut self) {
        self.clock.step_down();
        self.wakeup_ms = None;
    }

    /// Takes in the session events of a slot applied at `now_ms`.
    pub(super) fn observe(&mut self, now_ms: u64, events: &[SessionEvent]) {
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
    pub(super) fn due(&mut self, now_ms: u64) -> Vec<Op> {
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
