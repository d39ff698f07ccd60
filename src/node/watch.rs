//! Watches served by a node: the watch history read by the core task, and a
//! long-poll that waits for the next matching events without asking the
//! core again.
//!
//! The core task publishes every applied slot's events on a broadcast
//! channel ([`AppliedEvents`]). A watcher subscribes *before* it reads the
//! history, so no slot applied in between is missed; events the read
//! already returned are skipped by revision. A watcher that falls behind
//! the channel reads the history again from where it was.

use std::time::Duration;

use synod_kvstore::{Event, EventFilter, WatchBatch};
use tokio::sync::{broadcast, oneshot};
use tokio::time::Instant;

use super::{CoreCall, NodeError, NodeHandle};

/// Applied slots kept for watchers that have not looked yet; a watcher
/// further behind reads the history again.
pub(super) const APPLIED_EVENTS_QUEUE: usize = 1024;

/// Longest a watch call waits for events before answering with none.
pub const MAX_WATCH_WAIT: Duration = Duration::from_secs(30);

/// The watch events of one applied slot.
#[derive(Debug)]
pub struct AppliedEvents {
    /// The events, in revision order.
    pub events: Vec<Event>,
    /// The store revision after the slot.
    pub revision: u64,
}

/// What a watch call found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchAnswer {
    /// The next events (possibly none, if the wait ran out).
    Batch(WatchBatch),
    /// Events at or after the requested revision were dropped from the
    /// bounded history: re-read the state and watch from `revision + 1`.
    Compacted {
        /// The highest revision with dropped events.
        compacted_through: u64,
        /// The store revision now.
        revision: u64,
    },
}

impl NodeHandle {
    /// The events matching `filter` from `from_revision` on, at most about
    /// `limit` (whole revisions; 0 = the history's size), from this node's
    /// applied state (any role). If there are none yet, waits up to `wait`
    /// (capped at [`MAX_WATCH_WAIT`]) for the first slot that brings some,
    /// then answers with that slot's matching events; if none come, answers
    /// with an empty batch whose `next_revision` says where to ask again.
    ///
    /// Costs one history read on the core task, plus one more only if this
    /// watcher falls behind the applied slots while it waits.
    pub async fn watch(
        &self,
        from_revision: u64,
        filter: EventFilter,
        limit: usize,
        wait: Duration,
    ) -> Result<WatchAnswer, NodeError> {
        let deadline = Instant::now() + wait.min(MAX_WATCH_WAIT);
        // Subscribe first: a slot applied during the read is then seen
        // twice rather than never.
        let mut live = self.applied_events.subscribe();
        let mut next_revision = from_revision;
        loop {
            let batch = match self.read_history(next_revision, &filter, limit).await? {
                WatchAnswer::Batch(batch) => batch,
                compacted => return Ok(compacted),
            };
            if !batch.events.is_empty() || Instant::now() >= deadline {
                return Ok(WatchAnswer::Batch(batch));
            }
            next_revision = batch.next_revision;
            let mut revision = batch.revision;
            loop {
                let slot = match tokio::time::timeout_at(deadline, live.recv()).await {
                    Err(_) => {
                        return Ok(WatchAnswer::Batch(WatchBatch {
                            events: Vec::new(),
                            next_revision,
                            revision,
                        }))
                    }
                    Ok(Ok(slot)) => slot,
                    // Missed slots: read the history again from here.
                    Ok(Err(broadcast::error::RecvError::Lagged(_))) => break,
                    Ok(Err(broadcast::error::RecvError::Closed)) => {
                        return Err(NodeError::ShuttingDown)
                    }
                };
                let events: Vec<Event> = slot
                    .events
                    .iter()
                    .filter(|e| e.revision >= next_revision && filter.matches(e))
                    .cloned()
                    .collect();
                next_revision = next_revision.max(slot.revision + 1);
                revision = revision.max(slot.revision);
                if !events.is_empty() {
                    return Ok(WatchAnswer::Batch(WatchBatch {
                        events,
                        next_revision,
                        revision,
                    }));
                }
            }
        }
    }

    async fn read_history(
        &self,
        from_revision: u64,
        filter: &EventFilter,
        limit: usize,
    ) -> Result<WatchAnswer, NodeError> {
        let (respond, answer) = oneshot::channel();
        self.call(CoreCall::Watch {
            from_revision,
            filter: filter.clone(),
            limit,
            respond,
        })
        .await?;
        answer.await.map_err(|_| NodeError::ShuttingDown)?
    }
}
