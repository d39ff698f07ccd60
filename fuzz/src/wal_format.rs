//! Segments for the `wal_open` target, in the log's own layout
//! (`synod_kvstore::wal_format`): correct headers, lengths and hashes around any records, so
//! the fuzzer gets past the frame checks to the record decoder and the replay.

use synod_paxos::Record;

pub use synod_kvstore::wal_format::segment_file_name;

/// A new segment `number`: just its header.
pub fn new_segment(number: u64) -> Vec<u8> {
    synod_kvstore::wal_format::segment_header(number, synod_kvstore::WAL_FORMAT)
}

/// Appends a frame around `payload` to `segment` (segment `number`'s bytes so far), marked as
/// written with a sync if `synced`.
pub fn frame(segment: &mut Vec<u8>, number: u64, payload: &[u8], synced: bool) {
    synod_kvstore::wal_format::append_frame(segment, number, payload, synced);
}

/// Appends one record's encoding to `out`.
pub fn encode_record(record: &Record, out: &mut Vec<u8>) {
    out.extend(synod_kvstore::wal_format::encode_records(
        std::slice::from_ref(record),
    ));
}
