//! Deliberately broken coordination rules, for showing that the simulator's oracles catch them
//! (like `synod_paxos::Bugs`). [`Bugs`] only exists with the `bug-injection` feature, which only
//! tests enable; without it every switch is a constant `false` and compiles away.

/// One deliberately broken rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Bug {
    GrantHeldLocks,
    SessionIdTokens,
    FenceDuringLockDelay,
    ElectionReusesRevision,
    KeepAliveKeepsDeadline,
    NoCheckpoints,
    WalCutsAfterCorruptFrame,
    SnapshotStreamReplacedAtOnce,
}

/// Deliberately broken rules. Only exists with the `bug-injection` feature. The state machine
/// reads the first four (from [`Options`](crate::Options)), the session clock the next two
/// (from [`SessionClockConfig`](crate::SessionClockConfig)), the write-ahead log the next (from
/// [`WalOptions`](crate::WalOptions)), the snapshot receiver the last (from the state machine's
/// `Options`).
#[cfg(feature = "bug-injection")]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Bugs {
    /// A lock request is granted even while another live session holds the lock.
    pub grant_held_locks: bool,
    /// A grant's fencing token is the holder's session id, not the grant's revision (so a
    /// session that locks again gets an older token than the holder before it).
    pub session_id_tokens: bool,
    /// During lock-delay (no holder) fenced writes are let through unchecked.
    pub fence_during_lock_delay: bool,
    /// A candidate promoted to election leader keeps the previous leader's revision.
    pub election_reuses_revision: bool,
    /// The session clock counts a keep-alive but does not restart the session's deadline.
    pub keepalive_keeps_deadline: bool,
    /// The session clock never checkpoints remaining TTLs (etcd#9395).
    pub no_checkpoints: bool,
    /// `WalLog` opening cuts the last segment at its first bad frame, whatever follows it,
    /// even a valid (synced, reported) frame or a damaged whole one (issue 11, finding 2).
    pub wal_cuts_after_corrupt_frame: bool,
    /// The first chunk of a second snapshot stream replaces the one being received at once,
    /// whatever its progress (issue 11, finding 4: two streams then abort each other).
    pub snapshot_stream_replaced_at_once: bool,
}

#[cfg(feature = "bug-injection")]
impl Bugs {
    pub(crate) fn has(&self, bug: Bug) -> bool {
        match bug {
            Bug::GrantHeldLocks => self.grant_held_locks,
            Bug::SessionIdTokens => self.session_id_tokens,
            Bug::FenceDuringLockDelay => self.fence_during_lock_delay,
            Bug::ElectionReusesRevision => self.election_reuses_revision,
            Bug::KeepAliveKeepsDeadline => self.keepalive_keeps_deadline,
            Bug::NoCheckpoints => self.no_checkpoints,
            Bug::WalCutsAfterCorruptFrame => self.wal_cuts_after_corrupt_frame,
            Bug::SnapshotStreamReplacedAtOnce => self.snapshot_stream_replaced_at_once,
        }
    }
}

/// The switches the crate's code consults: [`Bugs`] with the feature, nothing without.
#[cfg(feature = "bug-injection")]
pub(crate) type Active = Bugs;

/// The switches the crate's code consults: none without the `bug-injection` feature.
#[cfg(not(feature = "bug-injection"))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Active;

#[cfg(not(feature = "bug-injection"))]
impl Active {
    #[inline(always)]
    pub(crate) fn has(&self, _bug: Bug) -> bool {
        false
    }
}
