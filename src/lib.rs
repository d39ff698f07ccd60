//! Synod: a Paxos-backed replicated key-value database.
//!
//! This package holds the `synod` server: its configuration, the node
//! runtime that drives the consensus core ([`synod_paxos`]) with the
//! durable store ([`synod_kvstore`]) and the network, and the subcommands.
#![warn(missing_docs)]

pub mod backup;
pub mod bench;
pub mod cli;
pub mod config;
pub mod dev;
pub mod http;
pub mod logging;
pub mod member;
pub mod members;
pub mod metrics;
pub mod node;
pub mod redis;
pub mod server;
mod tcp;

pub use synod_paxos as paxos;
