//! Size and count limits on requests and on the state machine's own tables.
//!
//! Every input reaching the state machine is untrusted (it came from a client over the network,
//! through the log), so every size and count it can influence is bounded here. A request over a
//! limit is refused with a typed [`RequestError`](crate::RequestError) before it touches any
//! table; nothing in this crate allocates in proportion to a client's claim without checking it
//! against one of these constants first.
//!
//! The limits are part of the replicated state machine's definition: every node of a cluster must
//! run with the same values, or they would apply the same log differently.

/// Largest encoded [`Request`](crate::Request) accepted, in bytes (4 MiB).
///
/// Checked on the raw bytes before decoding. It leaves room for the largest single-key request (a
/// compare-and-swap carries an expected and a new value of up to [`MAX_VALUE_BYTES`] each) and
/// caps the total payload of a transaction, whatever its op count.
pub const MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024;

/// Largest key, in bytes (4 KiB). Keys must also be non-empty.
///
/// Range bounds and prefixes (which may be empty) obey the same bound.
pub const MAX_KEY_BYTES: usize = 4 * 1024;

/// Largest value, in bytes (1 MiB). Empty values are allowed.
pub const MAX_VALUE_BYTES: usize = 1024 * 1024;

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
/// forgotten; see [`crate::StateMachine`] for the rule and what a forgotten client sees.
pub const MAX_DEDUP_CLIENTS: u64 = 100_000;
