//! The acceptor's log: [`WalLog`], an append-only write-ahead log in segments (the
//! `synod_paxos::Storage` of a node, see [`wal`] for the file format and the opening rules), and
//! the files under it, [`WalDisk`] (the real directory [`FsDisk`], the simulator's [`SimDisk`]).
//!
//! The log knows nothing of the state machine; [`NodeStore`](crate::NodeStore) puts the two
//! side by side in a node's directory.

mod disk;
mod wal;

pub(crate) use disk::sync_dir;
pub use disk::{FsDisk, SimDisk, WalDisk};
pub use wal::{
    format, LogError, WalLog, WalOptions, WAL_FORMAT, WAL_FORMAT_WITHOUT_SYNC_MARKS,
    WAL_RESERVE_STEP_BYTES, WAL_SYNC_UNSYNCED_BYTES,
};
