//! [`LeadershipWatch`]: whether this node's leadership changed since the
//! last look, the one test behind the session timer, the key expiry timer
//! and the core's step-down handling.

use synod_paxos::{Ballot, Replica, Role};

/// How leadership changed since the last [`LeadershipWatch::follow`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeadershipChange {
    /// As it was.
    Unchanged,
    /// This node leads with a ballot it did not lead with at the last look
    /// (also when it lost and won again in between).
    Started(Ballot),
    /// This node no longer leads.
    Ended,
}

/// The ballot this node was seen leading with, if any.
#[derive(Debug, Default, Clone, Copy)]
pub struct LeadershipWatch {
    leading: Option<Ballot>,
}

impl LeadershipWatch {
    /// Looks at `replica` and says how its leadership changed since the
    /// last look.
    pub fn follow(&mut self, replica: &Replica) -> LeadershipChange {
        let status = replica.status();
        let leading = (status.role == Role::Leader).then_some(status.promised);
        if leading == self.leading {
            return LeadershipChange::Unchanged;
        }
        self.leading = leading;
        match leading {
            Some(ballot) => LeadershipChange::Started(ballot),
            None => LeadershipChange::Ended,
        }
    }

    /// The ballot seen leading with at the last look.
    pub fn leading(&self) -> Option<Ballot> {
        self.leading
    }

    /// Forgets what was seen: the next look reports any leadership as new.
    pub fn forget(&mut self) {
        self.leading = None;
    }
}
