//! What applying one slot did, besides its responses: the watch events it produced, the
//! session events the leader's [`SessionClock`](crate::SessionClock) needs and the key expiry
//! events its [`KeyExpiryClock`](crate::KeyExpiryClock) needs.
//!
//! Collected in memory during [`StateMachine::apply_slots`](crate::StateMachine::apply_slots)
//! and handed to the node runtime in each slot's [`AppliedSlot`](crate::AppliedSlot): the
//! cheap notification point for live watchers and for the session clock. Nothing here is read
//! back by the state machine; the durable copy of the events is the watch history.

use crate::Event;

/// The effects of one applied slot.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SlotEffects {
    /// The slot these effects are of.
    pub slot: u64,
    /// Every watch event of the slot, in revision order (also appended to the watch history).
    pub events: Vec<Event>,
    /// Session and lock-delay changes, in apply order, for
    /// [`SessionClock::observe`](crate::SessionClock::observe).
    pub session_events: Vec<SessionEvent>,
    /// Key expiries set and ended, in apply order, for
    /// [`KeyExpiryClock::observe`](crate::KeyExpiryClock::observe).
    pub key_expiry_events: Vec<KeyExpiryEvent>,
}

/// A change of a key's expiry, which the leader's key expiry clock tracks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyExpiryEvent {
    /// The key got a new expiry: it expires `ttl_ms` from now.
    Set {
        /// The key.
        key: Vec<u8>,
        /// Its expiry revision (what an [`ExpireKeys`](crate::ExpireKeys) must name).
        expiry_revision: u64,
        /// The TTL.
        ttl_ms: u64,
    },
    /// The key no longer has an expiry: removed, or the key was deleted (by any command,
    /// including its expiry) or written without keeping its TTL.
    Cleared {
        /// The key.
        key: Vec<u8>,
    },
}

/// A change the leader's session clock tracks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionEvent {
    /// A session was opened.
    Opened {
        /// The session.
        session: u64,
        /// Its TTL.
        ttl_ms: u64,
    },
    /// A keep-alive applied: the session's deadline restarts at a full TTL.
    KeptAlive {
        /// The session.
        session: u64,
        /// Its keep-alive count now (what an [`ExpireSession`](crate::ExpireSession) must name).
        keepalives: u64,
    },
    /// A checkpoint entry applied.
    Checkpointed {
        /// The session.
        session: u64,
        /// The remaining TTL recorded.
        remaining_ms: u64,
    },
    /// A session was closed or expired; it is gone.
    Ended {
        /// The session.
        session: u64,
        /// True if by [`ExpireSession`](crate::ExpireSession), false if by
        /// [`CloseSession`](crate::CloseSession).
        expired: bool,
    },
    /// A lock lost its holder by session expiry and is in lock-delay until a
    /// [`ReleaseLockDelay`](crate::ReleaseLockDelay) naming this revision applies.
    LockDelayed {
        /// The lock.
        name: Vec<u8>,
        /// The revision the delay began at.
        delayed_revision: u64,
    },
    /// A lock-delay ended.
    LockDelayEnded {
        /// The lock.
        name: Vec<u8>,
        /// The revision the delay had begun at.
        delayed_revision: u64,
    },
}
