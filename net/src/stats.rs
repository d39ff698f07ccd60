//! Counters of what the network layer sent, received and dropped.
//!
//! Counters only grow; read them as snapshots ([`PeerStats`],
//! [`ServerStats`]). Updating one is a relaxed atomic add: no lock, no wait.

use std::sync::atomic::{AtomicU64, Ordering};

/// What happened to envelopes for one peer, as counted by its
/// [`PeerSender`](crate::PeerSender) queue and sender task.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PeerStats {
    /// Envelopes accepted into the queue.
    pub queued: u64,
    /// Envelopes refused because the queue was full.
    pub dropped_full: u64,
    /// Envelopes written to a stream of a live connection (not proof of
    /// delivery).
    pub sent: u64,
    /// Envelopes taken from the queue but not written: no connection at the
    /// time, or the write failed.
    pub lost: u64,
    /// Envelopes whose encoding exceeded the peer frame limit.
    pub oversized: u64,
    /// Connections established.
    pub connects: u64,
    /// Connection attempts that failed (each followed by a backoff).
    pub connect_failures: u64,
    /// The connection's smoothed round-trip time (QUIC's estimate) when a
    /// batch was last written, in microseconds; 0 before the first.
    pub rtt_micros: u64,
}

#[derive(Debug, Default)]
pub(crate) struct PeerCounters {
    pub queued: AtomicU64,
    pub dropped_full: AtomicU64,
    pub sent: AtomicU64,
    pub lost: AtomicU64,
    pub oversized: AtomicU64,
    pub connects: AtomicU64,
    pub connect_failures: AtomicU64,
    pub rtt_micros: AtomicU64,
}

impl PeerCounters {
    pub fn snapshot(&self) -> PeerStats {
        PeerStats {
            queued: get(&self.queued),
            dropped_full: get(&self.dropped_full),
            sent: get(&self.sent),
            lost: get(&self.lost),
            oversized: get(&self.oversized),
            connects: get(&self.connects),
            connect_failures: get(&self.connect_failures),
            rtt_micros: get(&self.rtt_micros),
        }
    }
}

/// What the accepting side of a node saw, peers and clients together.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServerStats {
    /// Peer envelopes handed to the runtime.
    pub envelopes_delivered: u64,
    /// Peer envelopes dropped because `from` did not match the sender's
    /// certificate.
    pub envelopes_wrong_sender: u64,
    /// Peer envelopes dropped because `to` was not this node.
    pub envelopes_misaddressed: u64,
    /// Peer or client streams closed for an oversized or malformed frame.
    pub bad_streams: u64,
    /// Peer connections closed because the certificate names no node.
    pub rejected_peer_connections: u64,
    /// Client connections accepted (handshake done, client protocol).
    pub client_connections: u64,
    /// Client requests handed to the runtime.
    pub requests_delivered: u64,
    /// Client requests answered `OVERLOADED` because the request queue was
    /// full.
    pub requests_overloaded: u64,
}

#[derive(Debug, Default)]
pub(crate) struct ServerCounters {
    pub envelopes_delivered: AtomicU64,
    pub envelopes_wrong_sender: AtomicU64,
    pub envelopes_misaddressed: AtomicU64,
    pub bad_streams: AtomicU64,
    pub rejected_peer_connections: AtomicU64,
    pub client_connections: AtomicU64,
    pub requests_delivered: AtomicU64,
    pub requests_overloaded: AtomicU64,
}

impl ServerCounters {
    pub fn snapshot(&self) -> ServerStats {
        ServerStats {
            envelopes_delivered: get(&self.envelopes_delivered),
            envelopes_wrong_sender: get(&self.envelopes_wrong_sender),
            envelopes_misaddressed: get(&self.envelopes_misaddressed),
            bad_streams: get(&self.bad_streams),
            rejected_peer_connections: get(&self.rejected_peer_connections),
            client_connections: get(&self.client_connections),
            requests_delivered: get(&self.requests_delivered),
            requests_overloaded: get(&self.requests_overloaded),
        }
    }
}

/// Sets a gauge to `value`.
pub(crate) fn set(gauge: &AtomicU64, value: u64) {
    gauge.store(value, Ordering::Relaxed);
}

/// Adds `n` to a counter.
pub(crate) fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

fn get(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}
