//! Coordination commands: sessions, locks, elections and the fence a write may carry.
//!
//! Protobuf messages written with prost derives, like [`crate::command`]. Schema (tags of the
//! [`Op`](crate::Op) variants carrying them are listed in [`crate::command`]):
//!
//! ```text
//! message Fence              { bytes lock_name = 1; uint64 token = 2; }
//! message OpenSession        { uint64 ttl_ms = 1; }
//! message KeepAlive          { uint64 session = 1; }
//! message CloseSession       { uint64 session = 1; }
//! message ExpireSession      { uint64 session = 1; uint64 keepalives = 2; }
//! message CheckpointSessions { repeated CheckpointEntry entries = 1; }
//! message CheckpointEntry    { uint64 session = 1; uint64 remaining_ms = 2;
//!                              uint64 keepalives = 3; }
//! message Lock               { bytes name = 1; uint64 session = 2; bool wait = 3; }
//! message Unlock             { bytes name = 1; uint64 session = 2; }
//! message ReleaseLockDelay   { bytes name = 1; uint64 delayed_revision = 2; }
//! message LockHolder         { bytes name = 1; }
//! message Campaign           { bytes election = 1; uint64 session = 2; bytes value = 3; }
//! message Proclaim           { bytes election = 1; uint64 session = 2; bytes value = 3; }
//! message Resign             { bytes election = 1; uint64 session = 2; }
//! message Leader             { bytes election = 1; }
//! ```
//!
//! [`ExpireSession`], [`CheckpointSessions`] and [`ReleaseLockDelay`] are proposed by the leader
//! (see `synod_kvstore::SessionClock`), never by clients: the client-facing service must
//! refuse them ([`Op::is_leader_only`](crate::Op::is_leader_only)).

/// A fencing token a write presents: the write applies only if `token` is the current token of
/// lock `lock_name` (the revision at which its current holder was granted it).
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct Fence {
    /// The lock; non-empty, at most [`MAX_NAME_BYTES`](crate::limits::MAX_NAME_BYTES).
    #[prost(bytes = "vec", tag = "1")]
    pub lock_name: Vec<u8>,
    /// The token the writer was granted the lock with.
    #[prost(uint64, tag = "2")]
    pub token: u64,
}

/// Open a session that lives `ttl_ms` after its last keep-alive. Its id is the store revision
/// the open consumes, so ids are unique, increasing, and the same on every node.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct OpenSession {
    /// Time to live without keep-alive, from
    /// [`MIN_SESSION_TTL_MS`](crate::limits::MIN_SESSION_TTL_MS) to
    /// [`MAX_SESSION_TTL_MS`](crate::limits::MAX_SESSION_TTL_MS).
    #[prost(uint64, tag = "1")]
    pub ttl_ms: u64,
}

/// Keep a session alive: the leader restarts its deadline at a full TTL.
///
/// Does not consume a revision (it changes no key, holder or leader).
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct KeepAlive {
    /// The session.
    #[prost(uint64, tag = "1")]
    pub session: u64,
}

/// Close a session: delete its ephemeral keys, release its locks (with no lock-delay) and
/// elections, leave every queue it waits in.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct CloseSession {
    /// The session.
    #[prost(uint64, tag = "1")]
    pub session: u64,
}

/// Leader-only: the session's deadline passed on the leader's clock; end it like
/// [`CloseSession`], except that locks it held enter lock-delay.
///
/// Applies only if the session has seen exactly `keepalives` keep-alives, so a keep-alive applied
/// between the leader's decision and this command wins and the session lives on.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct ExpireSession {
    /// The session.
    #[prost(uint64, tag = "1")]
    pub session: u64,
    /// The keep-alive count the leader's decision was based on.
    #[prost(uint64, tag = "2")]
    pub keepalives: u64,
}

/// Leader-only: record each session's remaining TTL on the leader's clock, so a new leader
/// restarts deadlines from there instead of from a full TTL.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct CheckpointSessions {
    /// At most [`MAX_CHECKPOINT_ENTRIES`](crate::limits::MAX_CHECKPOINT_ENTRIES).
    #[prost(message, repeated, tag = "1")]
    pub entries: Vec<CheckpointEntry>,
}

/// One session's remaining TTL in a [`CheckpointSessions`].
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct CheckpointEntry {
    /// The session (unknown sessions are skipped).
    #[prost(uint64, tag = "1")]
    pub session: u64,
    /// Its remaining TTL on the leader's clock (capped at the session's TTL when applied).
    #[prost(uint64, tag = "2")]
    pub remaining_ms: u64,
    /// The keep-alive count the leader saw; the entry is skipped if a later keep-alive applied.
    #[prost(uint64, tag = "3")]
    pub keepalives: u64,
}

/// Acquire lock `name` for `session`: granted at once with a fencing token if the lock is free,
/// else queued (FIFO) if `wait`, else refused (try-lock).
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct Lock {
    /// The lock; non-empty, at most [`MAX_NAME_BYTES`](crate::limits::MAX_NAME_BYTES).
    #[prost(bytes = "vec", tag = "1")]
    pub name: Vec<u8>,
    /// The session that will hold it.
    #[prost(uint64, tag = "2")]
    pub session: u64,
    /// Queue behind the current holder instead of failing.
    #[prost(bool, tag = "3")]
    pub wait: bool,
}

/// Release lock `name` held by `session` (the next waiter is granted it), or leave its queue.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct Unlock {
    /// The lock.
    #[prost(bytes = "vec", tag = "1")]
    pub name: Vec<u8>,
    /// The holder or waiter.
    #[prost(uint64, tag = "2")]
    pub session: u64,
}

/// Leader-only: end the lock-delay of lock `name` that began at `delayed_revision` (the next
/// waiter is granted the lock). A stale command (another delay began since) does nothing.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct ReleaseLockDelay {
    /// The lock.
    #[prost(bytes = "vec", tag = "1")]
    pub name: Vec<u8>,
    /// The revision at which the delay began (the holder's session expired).
    #[prost(uint64, tag = "2")]
    pub delayed_revision: u64,
}

/// Read-only: who holds lock `name`, with which token, and who waits.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct LockHolder {
    /// The lock.
    #[prost(bytes = "vec", tag = "1")]
    pub name: Vec<u8>,
}

/// Run for leader of `election` with `value`: become leader at once if there is none, else
/// queue (FIFO) behind the leader and earlier candidates.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct Campaign {
    /// The election; non-empty, at most [`MAX_NAME_BYTES`](crate::limits::MAX_NAME_BYTES).
    #[prost(bytes = "vec", tag = "1")]
    pub election: Vec<u8>,
    /// The candidate's session.
    #[prost(uint64, tag = "2")]
    pub session: u64,
    /// The value the candidate announces as leader; at most
    /// [`MAX_ELECTION_VALUE_BYTES`](crate::limits::MAX_ELECTION_VALUE_BYTES).
    #[prost(bytes = "vec", tag = "3")]
    pub value: Vec<u8>,
}

/// The leader of `election` announces a new value (its leadership revision stays).
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct Proclaim {
    /// The election.
    #[prost(bytes = "vec", tag = "1")]
    pub election: Vec<u8>,
    /// The leader's session.
    #[prost(uint64, tag = "2")]
    pub session: u64,
    /// The new value.
    #[prost(bytes = "vec", tag = "3")]
    pub value: Vec<u8>,
}

/// Give up leadership of `election` (the next candidate becomes leader), or leave its queue.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct Resign {
    /// The election.
    #[prost(bytes = "vec", tag = "1")]
    pub election: Vec<u8>,
    /// The leader's or candidate's session.
    #[prost(uint64, tag = "2")]
    pub session: u64,
}

/// Read-only: the leader of `election` (session, value, revision) and the queued candidates.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct Leader {
    /// The election.
    #[prost(bytes = "vec", tag = "1")]
    pub election: Vec<u8>,
}
