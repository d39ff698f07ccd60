#![deny(missing_docs)]

//! Durable state of a Synod node on redb: the replicated key-value state machine.
//!
//! - [`command`]: the requests clients send through the log ([`Request`], [`Op`]), protobuf
//!   messages written with prost derives; [`Request::decode_validated`] turns untrusted bytes
//!   into a checked request or a typed [`RequestError`], never a panic.
//! - [`response`]: what each command answers ([`Response`]).
//! - [`limits`]: every size and count bound on requests and on the state machine's tables.
//! - [`StateMachine`]: applies chosen log slots to redb tables, atomically with the applied
//!   index, deterministically, exactly once per client request; serves reads outside the log.
//! - [`RedbLog`]: the acceptor's promise and log on redb, the `synod_paxos::Storage` of a node;
//!   one fsync per `persist`, however many records.
//! - [`NodeStore`]: one database per node holding both, and the restart and compaction rules.
//! - [`snapshot`]: a consistent snapshot of the state machine streamed in bounded chunks
//!   ([`Snapshot`]), and its atomic installation on another node ([`SnapshotInstaller`]).

pub mod command;
mod dedup;
pub mod error;
mod exec;
mod fnv;
mod install;
pub mod limits;
mod log_store;
mod node_store;
mod range;
pub mod response;
pub mod snapshot;
mod state_machine;
mod tables;
mod validate;

pub use command::{
    Compare, CompareAndSwap, CompareOp, CompareTarget, Delete, DeleteRange, Expected, Get, Incr,
    Op, Put, Request, Scan, Txn, TxnOp, TxnOpKind,
};
pub use error::{RequestError, StorageError};
pub use install::{SnapshotError, SnapshotInstaller};
pub use log_store::RedbLog;
pub use node_store::NodeStore;
pub use response::{
    CompareAndSwapResponse, DeleteRangeResponse, DeleteResponse, ErrorCode, ErrorResponse,
    GetResponse, IncrResponse, KeyValue, Outcome, PutResponse, Response, ScanResponse,
    TxnOpResponse, TxnOutcome, TxnResponse,
};
pub use snapshot::{Snapshot, SnapshotChunk};
pub use state_machine::{Options, StateMachine};
