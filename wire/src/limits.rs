//! Size and count limits: on requests, on answers, on the frames that carry both, and on the
//! state machine's own tables. This is the one place they are set; the network layer's frame
//! limits, the Redis endpoint's forwarding and the state machine all read them from here, so a
//! request one node accepts is never refused by another on its way (checked below at compile
//! time).
//!
//! Every input reaching the state machine is untrusted (it came from a client over the network,
//! through the log), so every size and count it can influence is bounded here. A request over a
//! limit is refused with a typed [`RequestError`](crate::RequestError) before it touches any
//! table; nothing in this crate allocates in proportion to a client's claim without checking it
//! against one of these constants first.
//!
//! The limits are part of the replicated state machine's definition: every node of a cluster must
//! run with the same values, or they would apply the same log differently.

/// Largest encoded [`Request`](crate::Request) accepted, in bytes ([`MAX_VALUE_BYTES`] + 1 MiB).
///
/// Checked on the raw bytes before decoding. It leaves room for a write of the largest value
/// with its key, and caps the total payload of a transaction or a Redis command, whatever its
/// op or argument count. (A compare-and-swap whose expected and new values together pass it is
/// refused.)
pub const MAX_REQUEST_BYTES: usize = MAX_VALUE_BYTES + 1024 * 1024;

/// Largest key, in bytes (4 KiB). Keys must also be non-empty.
///
/// Range bounds and prefixes (which may be empty) obey the same bound.
pub const MAX_KEY_BYTES: usize = 4 * 1024;

/// Largest value, in bytes (4 MiB): a string, a hash field's value, a list element. Empty values
/// are allowed.
///
/// Why 4 MiB and not Redis's 512 MB: every write travels whole through the log (one Paxos
/// `Accept` to every node, one write-ahead log frame, kept in the exactly-once table when a
/// command answers with it), and a leader keeps up to eight slots in flight in one peer message,
/// so one value must stay a small fraction of a peer frame. Redis strings that grow by `APPEND`,
/// `SETRANGE` or `SETBIT` stop at this size too.
pub const MAX_VALUE_BYTES: usize = 4 * 1024 * 1024;

/// Most arguments of one [`RedisCommand`](crate::RedisCommand), its name included (65 536): room
/// for the batches clients send in one command (an `MSET` of 10 000 pairs, as Redis's own test
/// suite sends, or an `SADD` of 60 000 members), while the Redis endpoint's parse of one request
/// stays bounded (an argument costs it at most 64 bytes beyond its own, so 4 MiB at this limit,
/// besides [`MAX_REQUEST_BYTES`]).
pub const MAX_REDIS_ARGS: usize = 64 * 1024;

/// Most commands in one Redis `MULTI` block (10 000), which runs as one state-machine command.
pub const MAX_MULTI_COMMANDS: usize = 10_000;

/// Largest hash field, set member or sorted-set member, in bytes (64 KiB): these are part of an
/// `sm_redis_elements` key, and keys are kept small so the table's pages stay small.
pub const MAX_ELEMENT_NAME_BYTES: usize = 64 * 1024;

/// Most elements of one Redis collection (1 048 576). Deleting a collection (`DEL`, expiry,
/// `FLUSHDB`, overwriting it) removes its elements in one apply, so this bounds that apply's
/// work; an add past it is refused and changes nothing.
pub const MAX_COLLECTION_ELEMENTS: u64 = 1 << 20;

/// Most bytes of stored data one command's answer carries (12 MiB): a Redis command's reply
/// (element data), a transaction's reads (the keys and values its gets return and the previous
/// values its puts and deletes return). 4 MiB below [`MAX_RESPONSE_FRAME_BYTES`], room for the
/// response around the data. A command whose answer would be larger is refused before it
/// changes anything (a Redis read such as `HGETALL` of a huge hash: page it with the `*SCAN`
/// commands or ranges instead; a transaction: split it).
pub const MAX_REPLY_BYTES: usize = 12 * 1024 * 1024;

/// Largest client request frame (6 MiB): a request of [`MAX_REQUEST_BYTES`] with 1 MiB of room
/// for the API call and frame around it. A node that forwards a request (a follower's Redis
/// endpoint to its leader) sends it in a frame of this size, so whatever the state machine
/// accepts can be forwarded.
pub const MAX_REQUEST_FRAME_BYTES: usize = MAX_REQUEST_BYTES + 1024 * 1024;

/// Largest client response frame (16 MiB). Every answer the state machine gives fits: a scan is
/// cut at [`MAX_SCAN_RESPONSE_BYTES`], a command's data at [`MAX_REPLY_BYTES`], a watch answer at
/// its own event budget (it pages the rest).
pub const MAX_RESPONSE_FRAME_BYTES: usize = 16 * 1024 * 1024;

/// Most key-value calls in one `KvBatchCall` (256): each is one request waiting at the leader's
/// core, as if it came alone. A follower's Redis endpoint batches the commands it forwards to
/// the leader under this bound.
pub const MAX_KV_BATCH_CALLS: usize = 256;

// The limits agree: a forwarded request fits its frame, and every bounded answer its frame.
const _: () = assert!(MAX_REQUEST_BYTES + 64 * 1024 <= MAX_REQUEST_FRAME_BYTES);
const _: () = assert!(MAX_REPLY_BYTES + 1024 * 1024 <= MAX_RESPONSE_FRAME_BYTES);
const _: () = assert!(MAX_SCAN_RESPONSE_BYTES + 1024 * 1024 <= MAX_RESPONSE_FRAME_BYTES);
const _: () = assert!(MAX_VALUE_BYTES + MAX_KEY_BYTES + 1024 * 1024 <= MAX_RESPONSE_FRAME_BYTES);

/// Most entries in each of a transaction's three lists (compares, success ops, failure ops).
///
/// Like etcd's `--max-txn-ops`, the bound applies to each list separately.
pub const MAX_TXN_OPS: usize = 64;

/// Largest `limit` a scan may ask for; a scan with `limit == 0` gets this many at most.
pub const MAX_SCAN_LIMIT: u32 = 10_000;

/// Most key and value bytes one scan returns (4 MiB).
///
/// A scan stops early (and says `more`) once its next entry would push the total of key and value
/// bytes past this; it always returns at least one entry if any is in range.
pub const MAX_SCAN_RESPONSE_BYTES: usize = 4 * 1024 * 1024;

/// Most clients the exactly-once table remembers (100 000).
///
/// When a new client would exceed it, the client whose last request was applied longest ago is
/// forgotten; see `synod_kvstore::StateMachine` for the rule and what a forgotten client sees.
pub const MAX_DEDUP_CLIENTS: u64 = 100_000;

/// Shortest session TTL a client may ask for, in milliseconds (1 s).
///
/// Below this a session would need keep-alives more often than a loaded cluster can commit them
/// reliably.
pub const MIN_SESSION_TTL_MS: u64 = 1_000;

/// Longest session TTL a client may ask for, in milliseconds (1 h).
///
/// Bounds how long an abandoned session (and its locks and ephemeral keys) can outlive its client.
pub const MAX_SESSION_TTL_MS: u64 = 60 * 60 * 1_000;

/// Most open sessions (100 000); opening one more is refused with
/// [`RequestError::TooManySessions`](crate::RequestError::TooManySessions).
pub const MAX_SESSIONS: u64 = 100_000;

/// Most ephemeral keys one session may own (10 000). Closing or expiring a session deletes them
/// all in one apply, so this bounds that apply's work.
pub const MAX_SESSION_KEYS: u64 = 10_000;

/// Most locks and elections one session may hold or wait for, together (1 024).
pub const MAX_SESSION_CLAIMS: u64 = 1_024;

/// Largest lock or election name, in bytes (256). Names must also be non-empty.
pub const MAX_NAME_BYTES: usize = 256;

/// Largest value a candidate of an election may carry, in bytes (1 KiB).
///
/// Every waiter's value is stored in the election's record, so this and
/// [`MAX_QUEUE_WAITERS`] bound that record to about 1 MiB.
pub const MAX_ELECTION_VALUE_BYTES: usize = 1024;

/// Most sessions waiting in one lock's or election's queue (1 024).
pub const MAX_QUEUE_WAITERS: usize = 1_024;

/// Most entries in one [`CheckpointSessions`](crate::CheckpointSessions) command (10 000); the
/// leader splits a larger checkpoint into several commands.
pub const MAX_CHECKPOINT_ENTRIES: usize = 10_000;

/// Most events the watch history keeps (10 000): older events are dropped first, whole
/// revisions at a time, and a subscriber asking for them is told they were compacted.
pub const WATCH_HISTORY_EVENTS: u64 = 10_000;

/// Most bytes (encoded events) the watch history keeps (64 MiB); the history is trimmed to the
/// tighter of this and [`WATCH_HISTORY_EVENTS`].
pub const WATCH_HISTORY_BYTES: u64 = 64 * 1024 * 1024;

/// Longest key TTL, in milliseconds (2^62 ms, about 146 million years): far beyond any use, and
/// small enough that a deadline on any clock, in ms or µs since boot, cannot overflow.
pub const MAX_KEY_TTL_MS: u64 = 1 << 62;

/// Most entries in one [`ExpireKeys`](crate::ExpireKeys) or
/// [`CheckpointKeys`](crate::CheckpointKeys) command (1 000); the leader splits larger batches.
pub const MAX_KEY_EXPIRY_ENTRIES: usize = 1_000;

/// Most key bytes the leader puts in one [`ExpireKeys`](crate::ExpireKeys) or
/// [`CheckpointKeys`](crate::CheckpointKeys) command (1 MiB), so that each stays well within
/// [`MAX_REQUEST_BYTES`] whatever the keys' sizes.
pub const MAX_KEY_EXPIRY_BATCH_BYTES: usize = 1024 * 1024;
