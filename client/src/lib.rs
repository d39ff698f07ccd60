//! The Synod client library.
//!
//! A [`Client`] talks to any set of nodes over QUIC with mutual TLS, finds
//! the leader, follows redirects, and retries a write with the same
//! `(client id, sequence number)` so it is applied once however many times
//! it is sent. Reads are linearizable by default (served by the leader under
//! its lease, or after a ReadIndex round); [`Client::get_serializable`] may
//! read from any node.
//!
//! ```no_run
//! # async fn demo() -> Result<(), synod_client::ClientError> {
//! use synod_client::{Client, ClientConfig};
//! let config = ClientConfig::from_dev_cluster("synod-data", 7400)?;
//! let client = Client::connect(config).await?;
//! client.put(b"greeting", b"hello").await?;
//! let kv = client.get(b"greeting").await?.expect("just written");
//! assert_eq!(kv.value, b"hello");
//! # Ok(()) }
//! ```
//!
//! # Coordination
//! - [`Session`]: a TTL kept alive in the background; locks, elections and
//!   ephemeral keys belong to one and end with it. The cluster's leader
//!   expires it when the TTL passes without a keep-alive.
//! - [`Mutex`]: a lock granted in FIFO order with a [`FencingToken`];
//!   [`Client::fenced`] writes apply only while that token is current.
//! - [`Election`]: campaign (wait to lead, with a value), proclaim, resign,
//!   leader, and [`Observer`], the stream of leaders.
//! - [`Watcher`]: the events of a key, a prefix, a lock or an election from
//!   a revision on, with [`next`](Watcher::next) or as a
//!   [`Stream`](futures_core::Stream).
//!
//! Waiting (for a lock, for leadership, for events) never polls: a watcher
//! reads one server stream on which the node sends the events as it applies
//! them, and reopens it at another node, from where it was, if that node
//! goes away. [`Mutex::lock`], [`Election::campaign`] and [`Observer`] wait
//! through a watcher too (a lock's holder, an election's leader), so they
//! hold one stream each while they wait.
//!
//! ```no_run
//! # async fn demo() -> Result<(), synod_client::ClientError> {
//! use std::time::Duration;
//! use synod_client::{Client, ClientConfig, Mutex, Session};
//! let client = Client::connect(ClientConfig::from_dev_cluster("synod-data", 7400)?).await?;
//! let session = Session::open(&client, Duration::from_secs(10)).await?;
//! let mutex = Mutex::new(&session, "counter-lock");
//! let token = mutex.lock().await?;
//! client.fenced(&token).incr(b"counter", 1).await?;
//! mutex.unlock().await?;
//! session.close().await?;
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

mod client;
mod election;
mod error;
mod fenced;
mod members;
mod mutex;
mod options;
mod range;
mod session;
mod txn;
mod undo;
mod watch;

pub use client::{Client, ClientConfig};
pub use election::{Election, Observer};
pub use error::ClientError;
pub use fenced::Fenced;
pub use members::{Member, Members};
pub use mutex::{FencingToken, Mutex};
pub use options::WriteOptions;
pub use range::{Range, RangePage, RangePages};
pub use session::Session;
pub use synod_wire::{
    Compare, CompareOp, CompareTarget, ErrorCode, Event, EventFilter, EventKind, EventSpace,
    KeyValue, LeaderInfo, LockHolderResponse, Op, Response, TxnOp, TxnOpResponse, TxnOutcome,
};
pub use txn::{Transaction, TxnResult};
pub use watch::Watcher;
