//! The sans-IO Multi-Paxos core of Synod.
//!
//! A [`Replica`] is one node's acceptor, proposer and learner. It reads no
//! clock, opens no socket and writes no file: the driver (the `synod` node
//! runtime, or the simulator in `tests/`) feeds it time and messages and
//! carries out what it asks for:
//!
//! ```
//! use synod_paxos::{Config, DurableState, Instant, NodeId, Replica, Slot, Value};
//!
//! let config = Config::new(NodeId(1), vec![NodeId(1)]);
//! let mut replica = Replica::new(config, DurableState::default(), Slot(0), Instant::from_micros(0)).unwrap();
//! // A single node elects itself once its election timeout passes, and
//! // leads once its own promise is durable.
//! let now = Instant::from_micros(2_000_000);
//! replica.tick(now);
//! let ready = replica.ready();
//! // (persist ready.persist durably, then:)
//! replica.persisted(now, ready.seq);
//! assert!(replica.is_leader());
//! replica.propose(now, b"hello".to_vec()).unwrap();
//! let ready = replica.ready();
//! // 1. persist ready.persist (send the early messages meanwhile), apply
//! // ready.committed and serve ready.reads; 2. once durable, send the rest
//! // of ready.messages and report it:
//! replica.persisted(now, ready.seq);
//! // Its own acceptance, durable now, chooses the value (after the no-op a
//! // new leader commits first).
//! let committed = replica.ready().committed;
//! assert_eq!(committed.last().unwrap().1, Value::Commands(vec![b"hello".to_vec()]));
//! ```
//!
//! Safety invariants are asserted where they could break: a promise never
//! goes down, nothing is accepted above the promise, a chosen slot never
//! changes, a leader proposes one value per slot, the commit index only
//! grows; the state's invariants are numbered on `Replica` and checked after
//! every input.
//!
//! # Layout, by role
//! | module | what |
//! |---|---|
//! | `replica/` | the state, the public entry points, dispatch to the roles; `acceptor.rs` and `learner.rs` work on the log the roles share |
//! | `candidate` | Phase 1: prepares, promises, winning |
//! | `recovery` | what a new leader learns and re-proposes from the promises (pure functions) |
//! | `leader` | Phase 2: batching, the in-flight window, heartbeats, lease reads |
//! | `catch_up` | fetching chosen values this node lacks |
//! | `peer_input` | what a peer's message may claim, checked before it is handled |
//! | [`membership`] | voters and learners, chosen in the log |
//! | [`ready`], [`message`], [`storage`] | the output and the order to handle it; the messages; the log's storage contract |
//! | [`config`], [`types`], [`time`], [`rng`] | bounds and timeouts; slots, ballots and ids; the time and the seeded randomness the driver feeds in |
//!
//! The proposer of the Paxos papers is two roles here, `candidate` (Phase 1)
//! and `leader` (Phase 2); a rejection is [`Message::Reject`].
//! Each role takes what it needs and returns what happened; the replica
//! applies it.
#![warn(missing_docs)]

mod candidate;
mod catch_up;
pub mod config;
mod follower_reads;
mod leader;
pub mod membership;
pub mod message;
mod peer_input;
pub mod ready;
mod recovery;
mod replica;
pub mod rng;
pub mod storage;
pub mod time;
pub mod types;

#[cfg(feature = "bug-injection")]
pub use config::Bugs;
pub use config::{Config, ConfigError};
pub use membership::{Change, ChangeError, Member, Membership, MembershipLog, ACTIVATION_DELAY};
pub use message::{Envelope, Message};
pub use ready::{ReadId, Ready, ReadySeq};
pub use replica::{ChangeRefused, Replica, Role, Status, Unavailable, PROMOTE_MAX_LAG_SLOTS};
pub use rng::Rng;
pub use storage::{DurableState, MemStorage, Record, RecordRuleError, SlotState, Storage};
pub use time::Instant;
pub use types::{Ballot, Command, NodeId, Slot, Value};
