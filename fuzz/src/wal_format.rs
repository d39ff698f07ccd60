//! The on-disk format of `synod_kvstore::WalLog` segments, written from its documentation
//! (the table at the top of `kvstore/src/wal.rs` and the docs of `encode_record` and
//! `encode_value`), so the `wal_open` target can build segments whose frames pass the length
//! and hash checks and reach the record decoder and the replay behind them.
//!
//! # What this assumes (change here when the format changes)
//! - A segment file is named by a 20-digit number and `.wal` ([`segment_file_name`]).
//! - A segment is frames back to back; a frame is `len: u64 LE`, `hash: u64 LE`, then `len`
//!   payload bytes ([`frame`]). Nothing binds a frame to its segment or offset yet: when frames
//!   carry those, add them in [`frame`], which takes the segment number and offset for that.
//! - `hash` is FNV-1a 64 over the payload's length (8 bytes, big-endian) then its bytes
//!   ([`fnv1a_field`]).
//! - A payload is records back to back; a record is a tag byte then its fields, u64s
//!   little-endian: `1` Promised(ballot), `2` Accepted(slot, ballot, value), `3` Chosen(slot,
//!   value), `4` Compacted(slot) ([`encode_record`]).
//! - A value is `0` for a no-op, or `1`, a u32 LE count, then per command a u32 LE length and
//!   its bytes ([`encode_value`]).

use synod_paxos::{Record, Value};

/// File name of segment `number`.
pub fn segment_file_name(number: u64) -> String {
    format!("{number:020}.wal")
}

/// FNV-1a 64 of one length-prefixed field: the length as 8 big-endian bytes, then the bytes.
pub fn fnv1a_field(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let length = (bytes.len() as u64).to_be_bytes();
    for &b in length.iter().chain(bytes) {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// Appends a frame around `payload` to `segment`. `segment_number` and the frame's offset
/// (`segment.len()` before the call) are what a frame bound to its place would need; the
/// current format ignores them.
pub fn frame(segment: &mut Vec<u8>, _segment_number: u64, payload: &[u8]) {
    segment.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    segment.extend_from_slice(&fnv1a_field(payload).to_le_bytes());
    segment.extend_from_slice(payload);
}

/// Appends one record's encoding to `out`.
pub fn encode_record(record: &Record, out: &mut Vec<u8>) {
    match record {
        Record::Promised(ballot) => {
            out.push(1);
            out.extend_from_slice(&ballot.0.to_le_bytes());
        }
        Record::Accepted {
            slot,
            ballot,
            value,
        } => {
            out.push(2);
            out.extend_from_slice(&slot.0.to_le_bytes());
            out.extend_from_slice(&ballot.0.to_le_bytes());
            encode_value(value, out);
        }
        Record::Chosen { slot, value } => {
            out.push(3);
            out.extend_from_slice(&slot.0.to_le_bytes());
            encode_value(value, out);
        }
        Record::Compacted(through) => {
            out.push(4);
            out.extend_from_slice(&through.0.to_le_bytes());
        }
    }
}

/// Appends one value's encoding to `out`.
pub fn encode_value(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Noop => out.push(0),
        Value::Commands(commands) => {
            out.push(1);
            out.extend_from_slice(&(commands.len() as u32).to_le_bytes());
            for command in commands {
                out.extend_from_slice(&(command.len() as u32).to_le_bytes());
                out.extend_from_slice(command);
            }
        }
    }
}
