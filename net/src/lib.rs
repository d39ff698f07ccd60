//! Synod's network layer.
#![warn(missing_docs)]

pub mod error;
pub mod proto;
pub mod wire;

pub use error::{FrameError, NetError, WireError};
pub use wire::{decode_peer, encode_peer};
