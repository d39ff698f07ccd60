//! Responses of the coordination commands (sessions, locks, elections).
//!
//! Protobuf messages with prost derives, like [`crate::response`]. Schema:
//!
//! ```text
//! message OpenSessionResponse        { uint64 session = 1; uint64 ttl_ms = 2; }
//! message KeepAliveResponse          { uint64 ttl_ms = 1; uint64 keepalives = 2; }
//! message CloseSessionResponse       { uint64 deleted_keys = 1; uint64 released = 2; }
//! message ExpireSessionResponse      { bool expired = 1; uint64 deleted_keys = 2;
//!                                      uint64 released = 3; }
//! message CheckpointSessionsResponse { uint64 applied = 1; }
//! message LockResponse               { LockStatus status = 1; uint64 token = 2; uint64 holder = 3;
//!                                      uint64 position = 4; bool delayed = 5; }
//! message UnlockResponse             { bool released = 1; uint64 next_holder = 2; }
//! message ReleaseLockDelayResponse   { bool released = 1; uint64 holder = 2; }
//! message LockHolderResponse         { uint64 holder = 1; uint64 token = 2;
//!                                      repeated uint64 waiters = 3; uint64 delayed_revision = 4; }
//! message CampaignResponse           { ElectionStatus status = 1; uint64 position = 2;
//!                                      LeaderInfo leader = 3; }
//! message ProclaimResponse           { uint64 revision = 1; }
//! message ResignResponse             { bool resigned = 1; uint64 next_leader = 2; }
//! message LeaderResponse             { LeaderInfo leader = 1; repeated uint64 waiters = 2; }
//! message LeaderInfo                 { uint64 session = 1; bytes value = 2; uint64 revision = 3; }
//! enum LockStatus                    { UNSPECIFIED = 0; GRANTED = 1; QUEUED = 2; BUSY = 3; }
//! enum ElectionStatus                { UNSPECIFIED = 0; ELECTED = 1; QUEUED = 2; }
//! ```

/// Result of [`Op::OpenSession`](crate::Op::OpenSession).
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct OpenSessionResponse {
    /// The new session's id: the store revision its opening consumed.
    #[prost(uint64, tag = "1")]
    pub session: u64,
    /// Its TTL.
    #[prost(uint64, tag = "2")]
    pub ttl_ms: u64,
}

/// Result of [`Op::KeepAlive`](crate::Op::KeepAlive).
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct KeepAliveResponse {
    /// The session's TTL: it lives at least this long after the keep-alive was sent.
    #[prost(uint64, tag = "1")]
    pub ttl_ms: u64,
    /// How many keep-alives the session has seen, this one included.
    #[prost(uint64, tag = "2")]
    pub keepalives: u64,
}

/// Result of [`Op::CloseSession`](crate::Op::CloseSession).
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct CloseSessionResponse {
    /// Ephemeral keys deleted.
    #[prost(uint64, tag = "1")]
    pub deleted_keys: u64,
    /// Locks and elections released or left.
    #[prost(uint64, tag = "2")]
    pub released: u64,
}

/// Result of [`Op::ExpireSession`](crate::Op::ExpireSession).
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct ExpireSessionResponse {
    /// False if the session was gone already or a keep-alive applied since the leader decided.
    #[prost(bool, tag = "1")]
    pub expired: bool,
    /// Ephemeral keys deleted.
    #[prost(uint64, tag = "2")]
    pub deleted_keys: u64,
    /// Locks and elections released or left.
    #[prost(uint64, tag = "3")]
    pub released: u64,
}

/// Result of [`Op::CheckpointSessions`](crate::Op::CheckpointSessions).
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct CheckpointSessionsResponse {
    /// Entries applied (the others named unknown sessions or stale keep-alive counts).
    #[prost(uint64, tag = "1")]
    pub applied: u64,
}

/// What happened to a [`Lock`](crate::Lock) request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum LockStatus {
    /// Not set (never produced by this crate).
    Unspecified = 0,
    /// The session holds the lock (now, or already did); `token` is its fencing token.
    Granted = 1,
    /// The session waits in the lock's queue at `position` (1 = next).
    Queued = 2,
    /// The lock is held (or in lock-delay) and the request did not ask to wait.
    Busy = 3,
}

/// Result of [`Op::Lock`](crate::Op::Lock).
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct LockResponse {
    /// A [`LockStatus`].
    #[prost(enumeration = "LockStatus", tag = "1")]
    pub status: i32,
    /// When granted: the fencing token (the revision of the grant). Otherwise 0.
    #[prost(uint64, tag = "2")]
    pub token: u64,
    /// The holder's session (0 if none, e.g. during lock-delay).
    #[prost(uint64, tag = "3")]
    pub holder: u64,
    /// When queued: the position in the queue, 1 = next. Otherwise 0.
    #[prost(uint64, tag = "4")]
    pub position: u64,
    /// Whether the lock is in lock-delay.
    #[prost(bool, tag = "5")]
    pub delayed: bool,
}

impl LockResponse {
    /// The status as a [`LockStatus`] ([`LockStatus::Unspecified`] if unknown).
    pub fn lock_status(&self) -> LockStatus {
        LockStatus::try_from(self.status).unwrap_or(LockStatus::Unspecified)
    }
}

/// Result of [`Op::Unlock`](crate::Op::Unlock).
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct UnlockResponse {
    /// True if the session held the lock and released it; false if it only left the queue.
    #[prost(bool, tag = "1")]
    pub released: bool,
    /// The session granted the lock next (0 if none).
    #[prost(uint64, tag = "2")]
    pub next_holder: u64,
}

/// Result of [`Op::ReleaseLockDelay`](crate::Op::ReleaseLockDelay).
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct ReleaseLockDelayResponse {
    /// False if the lock was not in that delay (stale command).
    #[prost(bool, tag = "1")]
    pub released: bool,
    /// The session granted the lock at the end of the delay (0 if none waited).
    #[prost(uint64, tag = "2")]
    pub holder: u64,
}

/// Result of [`Op::LockHolder`](crate::Op::LockHolder).
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct LockHolderResponse {
    /// The holder's session (0 if the lock is free or delayed).
    #[prost(uint64, tag = "1")]
    pub holder: u64,
    /// The current fencing token (0 if no holder).
    #[prost(uint64, tag = "2")]
    pub token: u64,
    /// Waiting sessions, next first.
    #[prost(uint64, repeated, tag = "3")]
    pub waiters: Vec<u64>,
    /// If the lock is in lock-delay: the revision the delay began at; else 0.
    #[prost(uint64, tag = "4")]
    pub delayed_revision: u64,
}

/// What happened to a [`Campaign`](crate::Campaign).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum ElectionStatus {
    /// Not set (never produced by this crate).
    Unspecified = 0,
    /// The session is the leader (now, or already was).
    Elected = 1,
    /// The session waits in the election's queue at `position` (1 = next).
    Queued = 2,
}

/// An election's leader.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct LeaderInfo {
    /// The leader's session.
    #[prost(uint64, tag = "1")]
    pub session: u64,
    /// The value it announced (campaign or latest proclaim).
    #[prost(bytes = "vec", tag = "2")]
    pub value: Vec<u8>,
    /// The revision at which it became leader; unique per leadership, increasing, so usable as a
    /// term number. A proclaim does not change it.
    #[prost(uint64, tag = "3")]
    pub revision: u64,
}

/// Result of [`Op::Campaign`](crate::Op::Campaign).
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct CampaignResponse {
    /// An [`ElectionStatus`].
    #[prost(enumeration = "ElectionStatus", tag = "1")]
    pub status: i32,
    /// When queued: the position in the queue, 1 = next. Otherwise 0.
    #[prost(uint64, tag = "2")]
    pub position: u64,
    /// The current leader (the candidate itself if elected).
    #[prost(message, optional, tag = "3")]
    pub leader: Option<LeaderInfo>,
}

impl CampaignResponse {
    /// The status as an [`ElectionStatus`] ([`ElectionStatus::Unspecified`] if unknown).
    pub fn election_status(&self) -> ElectionStatus {
        ElectionStatus::try_from(self.status).unwrap_or(ElectionStatus::Unspecified)
    }
}

/// Result of [`Op::Proclaim`](crate::Op::Proclaim).
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct ProclaimResponse {
    /// The revision at which the proclaiming session became leader.
    #[prost(uint64, tag = "1")]
    pub revision: u64,
}

/// Result of [`Op::Resign`](crate::Op::Resign).
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct ResignResponse {
    /// True if the session was leader and resigned; false if it only left the queue.
    #[prost(bool, tag = "1")]
    pub resigned: bool,
    /// The session that became leader next (0 if none).
    #[prost(uint64, tag = "2")]
    pub next_leader: u64,
}

/// Result of [`Op::Leader`](crate::Op::Leader).
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct LeaderResponse {
    /// The leader, if any.
    #[prost(message, optional, tag = "1")]
    pub leader: Option<LeaderInfo>,
    /// Queued candidates' sessions, next first.
    #[prost(uint64, repeated, tag = "2")]
    pub waiters: Vec<u64>,
}
