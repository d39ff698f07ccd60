//! The Synod client library.
//!
//! A [`Client`] talks to any set of nodes over QUIC with mutual TLS, finds
//! the leader, follows redirects, and retries a write with the same
//! `(client id, sequence number)` so it is applied once however many times
//! it is sent. Reads are linearizable by default (served by the leader under
//! its lease or after a ReadIndex round, or by a follower once it applied
//! through a read index from the leader); [`Client::get_serializable`] may
//! read from any node's applied state, possibly stale.
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
//! # Connections
//! - Endpoints are `host:port`, the host an IP address or a DNS name
//!   ([`Endpoint`]; [`ClientConfig::new`] takes text, endpoints or socket
//!   addresses). A DNS name is resolved whenever it is dialed, every
//!   address it resolves to tried at once, so a node that moved is found.
//! - Each node's certificate must name the host it is dialed by, or the
//!   name [`ClientConfig::server_name`] sets for every endpoint; a leader
//!   found through a redirect must carry `node-<id>`, as every node
//!   certificate does.
//! - A TLS mistake (a client certificate from another CA, a node
//!   certificate that does not name the host, an untrusted CA) fails the
//!   call at once with [`ClientError::Tls`] and rustls's reason, once every
//!   endpoint refused, rather than being retried until the timeout.
//! - [`Client::status`] asks every endpoint's node for its role, leader,
//!   commit and applied index and revision; [`Client::close`] closes the
//!   connections gracefully, after which calls fail with
//!   [`ClientError::Closed`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), synod_client::ClientError> {
//! use std::path::Path;
//! use synod_client::{Client, ClientConfig};
//! let config = ClientConfig::new(
//!     ["db-1.internal:7401", "db-2.internal:7401", "db-3.internal:7401"],
//!     Path::new("certs/ca.pem"),
//!     Path::new("certs/client-app.pem"),
//!     Path::new("certs/client-app.key"),
//! )?;
//! let client = Client::connect(config).await?;
//! for node in client.status().await? {
//!     match node.status {
//!         Ok(s) => println!("{}: node {} {:?}, leader {:?}", node.endpoint, s.id, s.role, s.leader),
//!         Err(e) => println!("{}: {e}", node.endpoint),
//!     }
//! }
//! client.close().await;
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
mod connections;
mod election;
mod endpoint;
mod error;
mod fenced;
mod members;
mod mutex;
mod options;
mod range;
mod session;
mod status;
mod txn;
mod undo;
mod watch;

pub use client::{Client, ClientConfig, DEFAULT_TIMEOUT};
pub use election::{Election, Observer};
pub use endpoint::{Endpoint, IntoEndpoint, InvalidEndpoint};
pub use error::{ClientError, TlsError};
pub use fenced::Fenced;
pub use members::{Member, Members};
pub use mutex::{FencingToken, Mutex};
pub use options::WriteOptions;
pub use range::{Range, RangePage, RangePages};
pub use session::Session;
pub use status::{EndpointStatus, NodeRole, NodeStatus};
pub use synod_wire::{
    Compare, CompareOp, CompareTarget, ErrorCode, Event, EventFilter, EventKind, EventSpace,
    KeyValue, LeaderInfo, LockHolderResponse, Op, Response, TxnOp, TxnOpResponse, TxnOutcome,
};
pub use txn::{Transaction, TxnResult};
pub use watch::Watcher;
