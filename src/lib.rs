//! Synod: a Paxos-backed replicated key-value database.
//!
//! The server binary and node runtime live here; the consensus core is in
//! [`synod_paxos`].
pub use synod_paxos as paxos;
