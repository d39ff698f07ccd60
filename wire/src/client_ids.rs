//! The exactly-once client id space: who hands out which ids.
//!
//! The state machine remembers the last request of each client id (see
//! `synod_kvstore::StateMachine`), so two writers that share an id would
//! answer each other's requests. Each kind of writer therefore draws from
//! its own range of the 64-bit space:
//!
//! | ids | who |
//! |---|---|
//! | 0 ([`ANONYMOUS`]) | requests with no exactly-once record: reads, and commands a leader proposes itself (session and key expiry) |
//! | [`BY_HAND`] | programs that number their own requests (tests, tools) |
//! | [`CLIENT_LIBRARY`] | the Rust client library: one process-wide counter from a random point |
//! | [`RESERVED`] | nobody, yet |
//! | [`REDIS_CONNECTIONS`] | the Redis endpoint: one id per connection, bit 63 set, then the node id and a clock-driven counter |
//!
//! The ranges are disjoint and cover the space in this order (tested
//! below), and each generator's tests check it stays in its range.

use std::ops::{Range, RangeInclusive};

/// The id of requests with no exactly-once record.
pub const ANONYMOUS: u64 = 0;
/// Ids a program numbering its own requests may use.
pub const BY_HAND: Range<u64> = 1..1 << 16;
/// Ids the Rust client library hands out.
pub const CLIENT_LIBRARY: Range<u64> = 1 << 16..1 << 62;
/// Ids nobody hands out.
pub const RESERVED: Range<u64> = 1 << 62..1 << 63;
/// Ids of Redis-protocol connections (bit 63 set).
pub const REDIS_CONNECTIONS: RangeInclusive<u64> = 1 << 63..=u64::MAX;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ranges_are_disjoint_and_cover_every_id_in_order() {
        assert_eq!(ANONYMOUS + 1, BY_HAND.start);
        assert_eq!(BY_HAND.end, CLIENT_LIBRARY.start);
        assert_eq!(CLIENT_LIBRARY.end, RESERVED.start);
        assert_eq!(RESERVED.end, *REDIS_CONNECTIONS.start());
        assert_eq!(*REDIS_CONNECTIONS.end(), u64::MAX);
        for range in [&BY_HAND, &CLIENT_LIBRARY, &RESERVED] {
            assert!(range.start < range.end);
            assert!(!range.contains(&ANONYMOUS));
            assert!(!REDIS_CONNECTIONS.contains(&(range.end - 1)));
        }
    }
}
