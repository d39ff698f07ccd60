//! Receiving snapshot streams: one at a time, whatever peers send.
//!
//! A lagging node may be sent the same snapshot twice (its source offers it again when the first
//! stream takes longer than an election timeout) or snapshots from two sources (the leader
//! changed). Chunks carry no stream id, so the receiver keeps the first stream and drops the
//! rest: a snapshot at one applied index from one node is the same bytes in every stream, so of
//! its chunks only the next number is taken, whichever copy brings it, and chunks of another
//! snapshot are dropped until the current stream went [`SNAPSHOT_STALL`] without a chunk.
//! Replacing the current stream at once would let two streams abort each other for ever
//! (issue 11, finding 4).

use std::time::Duration;

use synod_paxos::{Instant, NodeId};

use crate::bugs::Bug;
use crate::{SnapshotChunk, SnapshotInstaller, StateMachine, StorageError};

/// How long a snapshot being received may go without a chunk before a stream of another
/// snapshot may replace it.
pub const SNAPSHOT_STALL: Duration = Duration::from_secs(2);

/// The snapshot stream a node is receiving, if any; see the module docs.
#[derive(Debug, Default)]
pub struct SnapshotReceiver {
    stream: Option<Stream>,
}

/// A snapshot being received.
#[derive(Debug)]
struct Stream {
    from: NodeId,
    applied_index: u64,
    installer: SnapshotInstaller,
    last_chunk_at: Instant,
}

impl Stream {
    fn is_of(&self, from: NodeId, chunk: &SnapshotChunk) -> bool {
        self.from == from && self.applied_index == chunk.applied_index
    }
}

impl SnapshotReceiver {
    /// Takes one chunk `from` sent. A first chunk starts a stream if none is being received
    /// (or the current one stalled) and the snapshot is past `applied_through` (the caller's
    /// commit index: an older snapshot would take nothing new). Returns the installer once its
    /// last chunk validated, if the snapshot is still past `applied_through`: the caller passes
    /// it to
    /// [`StateMachine::complete_install`]. A chunk that fails validation abandons its stream
    /// (logged); the source sends another later.
    ///
    /// # Errors
    /// Only a storage failure starting a new installer.
    pub fn receive(
        &mut self,
        state_machine: &StateMachine,
        now: Instant,
        from: NodeId,
        chunk: &SnapshotChunk,
        applied_through: u64,
    ) -> Result<Option<SnapshotInstaller>, StorageError> {
        match self.verdict(state_machine, now, from, chunk) {
            Verdict::Drop => return Ok(None),
            Verdict::Continue => {}
            Verdict::Start => {
                if chunk.applied_index <= applied_through {
                    return Ok(None);
                }
                self.stream = Some(Stream {
                    from,
                    applied_index: chunk.applied_index,
                    installer: state_machine.snapshot_installer()?,
                    last_chunk_at: now,
                });
            }
        }
        let stream = self.stream.as_mut().expect("a stream takes this chunk");
        stream.last_chunk_at = now;
        match stream.installer.push(chunk) {
            Ok(false) => Ok(None),
            Ok(true) => {
                let stream = self.stream.take().expect("the stream just completed");
                // The log may have caught up past the snapshot meanwhile.
                Ok((stream.applied_index > applied_through).then_some(stream.installer))
            }
            Err(e) => {
                tracing::warn!(%from, error = %e, "snapshot transfer abandoned");
                self.stream = None;
                Ok(None)
            }
        }
    }

    fn verdict(
        &self,
        state_machine: &StateMachine,
        now: Instant,
        from: NodeId,
        chunk: &SnapshotChunk,
    ) -> Verdict {
        let Some(stream) = &self.stream else {
            return if chunk.seq == 0 {
                Verdict::Start
            } else {
                Verdict::Drop
            };
        };
        if chunk.seq == 0 && state_machine.bugs().has(Bug::SnapshotStreamReplacedAtOnce) {
            return Verdict::Start;
        }
        if stream.is_of(from, chunk) {
            // Any other number than the next is from another copy of this stream, behind
            // or ahead (or this copy lost a chunk: a copy behind fills the gap).
            return if chunk.seq == stream.installer.next_seq() {
                Verdict::Continue
            } else {
                Verdict::Drop
            };
        }
        if chunk.seq == 0 && now >= stream.last_chunk_at + SNAPSHOT_STALL {
            Verdict::Start
        } else {
            tracing::debug!(%from, "a chunk of a second snapshot stream ignored");
            Verdict::Drop
        }
    }
}

/// What [`SnapshotReceiver::receive`] does with a chunk.
enum Verdict {
    /// Push it to the stream being received.
    Continue,
    /// Start a new stream with it (replacing any other).
    Start,
    /// Ignore it.
    Drop,
}
