//! What a node does because it leads, apart from Paxos: the session timer
//! and the key expiry timer, started and stopped together as one
//! leadership watch sees this node's leadership begin and end.
//!
//! The node calls [`follow_role`](LeaderDuties::follow_role) every round
//! before taking `Ready` (and before proposing a client's write, so that due
//! key expiries precede it), then proposes what the timers' `due` return,
//! and feeds each applied slot's events to the timers' `observe`.

use synod_kvstore::{StateMachine, StorageError};
use synod_paxos::{Ballot, Replica};

use super::expiry_timer::ExpiryTimer;
use super::leadership::{LeadershipChange, LeadershipWatch};
use super::session_timer::SessionTimer;

/// The leader's timers and the one leadership they follow.
pub(super) struct LeaderDuties {
    /// The leadership the timers run for.
    leadership: LeadershipWatch,
    /// Session expiries, lock-delay ends and TTL checkpoints.
    pub(super) sessions: SessionTimer,
    /// Key expiries and their TTL checkpoints.
    pub(super) expiry: ExpiryTimer,
}

impl LeaderDuties {
    /// The duties of a node that does not lead yet.
    pub(super) fn new(sessions: SessionTimer, expiry: ExpiryTimer) -> LeaderDuties {
        LeaderDuties {
            leadership: LeadershipWatch::default(),
            sessions,
            expiry,
        }
    }

    /// Starts or stops both timers when `replica`'s leadership changed
    /// since the last call. A leadership lost and won again between two
    /// calls shows as a new ballot and restarts them too.
    pub(super) fn follow_role(
        &mut self,
        now_ms: u64,
        replica: &Replica,
        state_machine: &StateMachine,
    ) -> Result<(), StorageError> {
        match self.leadership.follow(replica) {
            LeadershipChange::Unchanged => {}
            LeadershipChange::Started(ballot) => {
                let node = replica.status().id;
                self.sessions
                    .become_leader(now_ms, state_machine, node, ballot)?;
                self.expiry
                    .become_leader(now_ms, state_machine, node, ballot)?;
            }
            LeadershipChange::Ended => {
                self.sessions.step_down();
                self.expiry.step_down();
                tracing::debug!(
                    node = %replica.status().id,
                    "no longer leading: session and key deadlines dropped"
                );
            }
        }
        Ok(())
    }

    /// The ballot this node leads with, while its timers run as leader
    /// (since the last [`follow_role`](Self::follow_role)).
    pub(super) fn leading(&self) -> Option<Ballot> {
        self.leadership.leading()
    }

    /// Forgets the leadership seen, so the next
    /// [`follow_role`](Self::follow_role) rebuilds every deadline from the
    /// state machine (after it was replaced by a snapshot).
    pub(super) fn reset(&mut self) {
        self.leadership.forget();
        self.sessions.step_down();
        self.expiry.step_down();
    }
}
