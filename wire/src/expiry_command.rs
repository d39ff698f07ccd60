//! Key expiry: the commands that give keys a time to live, and their responses.
//!
//! Protobuf messages written with prost derives, like [`crate::command`]. Schema (tags of the
//! [`Op`](crate::Op) and [`Outcome`](crate::Outcome) variants carrying them are listed in
//! [`crate::command`] and [`crate::response`]):
//!
//! ```text
//! message KeyTtl             { uint64 ttl_ms = 1; bool keep = 2; }      // Request.key_ttl = 64
//! message Expire             { bytes key = 1; sint64 ttl_ms = 2; ExpireIf condition = 3;
//!                              uint64 expiry_revision = 4; }
//! enum ExpireIf              { ALWAYS = 0; NO_EXPIRY = 1; HAS_EXPIRY = 2; EXPIRY_REVISION = 3; }
//! message Persist            { bytes key = 1; }
//! message Ttl                { bytes key = 1; }
//! message ExpireKeys         { repeated ExpireKeyEntry entries = 1; }
//! message ExpireKeyEntry     { bytes key = 1; uint64 expiry_revision = 2; }
//! message CheckpointKeys     { repeated KeyCheckpointEntry entries = 1; }
//! message KeyCheckpointEntry { bytes key = 1; uint64 expiry_revision = 2; uint64 remaining_ms = 3; }
//! message ExpireResponse     { bool applied = 1; }
//! message PersistResponse    { bool removed = 1; }
//! message TtlResponse        { bool exists = 1; uint64 expiry_revision = 2; uint64 remaining_ms = 3;
//!                              bool leader_clock = 4; }
//! message ExpireKeysResponse { uint64 deleted = 1; }
//! message CheckpointKeysResponse { uint64 applied = 1; }
//! ```
//!
//! # Time without a clock
//! As for sessions (`synod_kvstore::coord::session`), apply never reads a clock. A key's expiry is recorded as
//! the revision of the command that set it (its *expiry revision*, which names this one expiry:
//! setting, changing or removing it again gives a new one) and the TTL a new leader must give
//! it (the TTL set, or the remaining TTL of the last checkpoint). The leader's
//! `synod_kvstore::KeyExpiryClock` keeps each deadline on its own clock and proposes
//! [`ExpireKeys`] naming `(key, expiry revision)` when it passes; the key is deleted only when
//! that command applies, and only if its expiry is still the one named, so a key set again,
//! persisted or given another TTL meanwhile lives on. Now and then the leader records every
//! key's remaining TTL ([`CheckpointKeys`]) so that frequent leader changes cannot keep a key
//! alive forever (see `synod_kvstore::key_expiry::clock`).
//!
//! # Which writes keep a key's TTL
//! A request's [`KeyTtl`] (`Request::key_ttl`) says what becomes of the expiry of every key it
//! writes with a value (put, compare-and-swap, incr, transaction puts): a new TTL, keep the
//! current one, or none. Without it each op does what its Redis counterpart does: a put, a
//! compare-and-swap or a transaction put removes the TTL (Redis `SET`, `GETSET`, `MSET`), an
//! incr keeps it (Redis `INCR`). Deleting a key always ends its expiry.
//!
//! [`ExpireKeys`] and [`CheckpointKeys`] are proposed by the leader only: the client-facing
//! service refuses them ([`Op::is_leader_only`](crate::Op::is_leader_only)).

/// What a request does to the expiry of each key it writes a value to (see the
/// [module docs](self)).
///
/// `keep` keeps the key's current expiry (none if it had none or was absent); otherwise
/// `ttl_ms >= 1` gives it a new TTL and `ttl_ms == 0` removes its expiry. `keep` together with a
/// `ttl_ms` is refused with [`RequestError::KeyTtlConflict`](crate::RequestError::KeyTtlConflict).
#[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
pub struct KeyTtl {
    /// The new TTL in ms (at most [`MAX_KEY_TTL_MS`](crate::limits::MAX_KEY_TTL_MS)); 0 = no
    /// expiry.
    #[prost(uint64, tag = "1")]
    pub ttl_ms: u64,
    /// Keep each key's current expiry.
    #[prost(bool, tag = "2")]
    pub keep: bool,
}

impl KeyTtl {
    /// Expire each written key `ttl_ms` from when the write applies.
    pub fn expire_in(ttl_ms: u64) -> KeyTtl {
        KeyTtl {
            ttl_ms,
            keep: false,
        }
    }

    /// Keep each written key's current expiry (Redis `KEEPTTL`).
    pub fn keep() -> KeyTtl {
        KeyTtl {
            ttl_ms: 0,
            keep: true,
        }
    }

    /// Remove each written key's expiry.
    pub fn none() -> KeyTtl {
        KeyTtl::default()
    }
}

/// Set, change or end the expiry of an existing key (Redis `EXPIRE` and `PEXPIRE`).
///
/// Does nothing (`applied == false`) if the key is absent or the condition does not hold.
/// Otherwise a positive `ttl_ms` gives the key a new expiry (consuming a revision, which becomes
/// its expiry revision, but not changing its value, version or mod revision, and sending no watch
/// event) and a `ttl_ms` of 0 or less deletes the key now, as Redis does.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct Expire {
    /// The key; non-empty, at most [`MAX_KEY_BYTES`](crate::limits::MAX_KEY_BYTES).
    #[prost(bytes = "vec", tag = "1")]
    pub key: Vec<u8>,
    /// The TTL in ms, at most [`MAX_KEY_TTL_MS`](crate::limits::MAX_KEY_TTL_MS); 0 or less
    /// deletes the key.
    #[prost(sint64, tag = "2")]
    pub ttl_ms: i64,
    /// When to apply, an [`ExpireIf`].
    #[prost(enumeration = "ExpireIf", tag = "3")]
    pub condition: i32,
    /// With [`ExpireIf::ExpiryRevision`]: the expiry revision the key must have (0 = no expiry).
    #[prost(uint64, tag = "4")]
    pub expiry_revision: u64,
}

/// The condition of an [`Expire`], on the key's current expiry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum ExpireIf {
    /// Always (the key must exist, as for every condition).
    Always = 0,
    /// Only if the key has no expiry (Redis `NX`).
    NoExpiry = 1,
    /// Only if the key has an expiry (Redis `XX`).
    HasExpiry = 2,
    /// Only if the key's expiry revision is `expiry_revision` (0: it has no expiry): the
    /// compare-and-swap a client uses to compare TTLs it read (Redis `GT` and `LT`).
    ExpiryRevision = 3,
}

/// Remove the expiry of a key (Redis `PERSIST`). Consumes a revision if it removed one; changes
/// neither the value nor the key's version or mod revision.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct Persist {
    /// The key; non-empty, at most [`MAX_KEY_BYTES`](crate::limits::MAX_KEY_BYTES).
    #[prost(bytes = "vec", tag = "1")]
    pub key: Vec<u8>,
}

/// Read a key's expiry (Redis `TTL` and `PTTL`); read-only.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct Ttl {
    /// The key; non-empty, at most [`MAX_KEY_BYTES`](crate::limits::MAX_KEY_BYTES).
    #[prost(bytes = "vec", tag = "1")]
    pub key: Vec<u8>,
}

/// Leader-only: these keys' deadlines passed on the leader's clock; delete each whose expiry
/// revision is still the one named (others were set again, persisted or re-expired since).
///
/// All deletions happen at one revision, each with a delete watch event; deleting nothing
/// consumes no revision.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct ExpireKeys {
    /// At most [`MAX_KEY_EXPIRY_ENTRIES`](crate::limits::MAX_KEY_EXPIRY_ENTRIES).
    #[prost(message, repeated, tag = "1")]
    pub entries: Vec<ExpireKeyEntry>,
}

/// One key of an [`ExpireKeys`].
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct ExpireKeyEntry {
    /// The key.
    #[prost(bytes = "vec", tag = "1")]
    pub key: Vec<u8>,
    /// The expiry revision whose deadline passed.
    #[prost(uint64, tag = "2")]
    pub expiry_revision: u64,
}

/// Leader-only: record the keys' remaining TTLs on the leader's clock, so that a new leader
/// restarts their deadlines from there instead of from the TTL that was set. Consumes no
/// revision.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct CheckpointKeys {
    /// At most [`MAX_KEY_EXPIRY_ENTRIES`](crate::limits::MAX_KEY_EXPIRY_ENTRIES).
    #[prost(message, repeated, tag = "1")]
    pub entries: Vec<KeyCheckpointEntry>,
}

/// One key's remaining TTL in a [`CheckpointKeys`].
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct KeyCheckpointEntry {
    /// The key.
    #[prost(bytes = "vec", tag = "1")]
    pub key: Vec<u8>,
    /// The expiry revision the leader saw; the entry is skipped if the key's differs.
    #[prost(uint64, tag = "2")]
    pub expiry_revision: u64,
    /// The remaining TTL on the leader's clock (never raises the recorded one).
    #[prost(uint64, tag = "3")]
    pub remaining_ms: u64,
}

/// Result of an [`Expire`].
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct ExpireResponse {
    /// Whether the key existed and the condition held, so its expiry was set or it was deleted.
    #[prost(bool, tag = "1")]
    pub applied: bool,
}

/// Result of a [`Persist`].
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct PersistResponse {
    /// Whether the key had an expiry, now removed.
    #[prost(bool, tag = "1")]
    pub removed: bool,
}

/// Result of a [`Ttl`].
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct TtlResponse {
    /// Whether the key exists.
    #[prost(bool, tag = "1")]
    pub exists: bool,
    /// The key's expiry revision; 0 if it has no expiry (or does not exist).
    #[prost(uint64, tag = "2")]
    pub expiry_revision: u64,
    /// The remaining TTL in ms (0 without an expiry). With `leader_clock`, measured on the
    /// leader's clock when the read was served; otherwise the TTL a new leader would give the key
    /// (the TTL set or last checkpointed), an upper bound.
    #[prost(uint64, tag = "3")]
    pub remaining_ms: u64,
    /// Whether `remaining_ms` comes from the leader's clock (set by the node runtime, never by
    /// the state machine).
    #[prost(bool, tag = "4")]
    pub leader_clock: bool,
}

/// Result of an [`ExpireKeys`].
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct ExpireKeysResponse {
    /// How many keys were deleted.
    #[prost(uint64, tag = "1")]
    pub deleted: u64,
}

/// Result of a [`CheckpointKeys`].
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct CheckpointKeysResponse {
    /// How many entries matched a key's current expiry and were recorded.
    #[prost(uint64, tag = "1")]
    pub applied: u64,
}
