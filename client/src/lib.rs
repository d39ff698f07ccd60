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
#![warn(missing_docs)]

mod client;
mod error;

pub use client::{Client, ClientConfig};
pub use error::ClientError;
pub use synod_kvstore::{KeyValue, Op, Response};
