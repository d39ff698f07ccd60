//! Watch events: every applied change, kept in a bounded history for late subscribers.
//!
//! # What becomes an event
//! Three separate keyspaces ([`EventSpace`](crate::EventSpace)):
//! - **keys**: every put ([`EventKind::Put`](crate::EventKind::Put)) and every deletion ([`EventKind::Delete`](crate::EventKind::Delete)) of a
//!   key, including each key of a delete-range and each ephemeral key deleted with its session;
//! - **locks**: every change of a lock's holder ([`EventKind::LockHolder`](crate::EventKind::LockHolder)): a grant (`session`
//!   = the new holder, whose fencing token is the event's revision) or a release (`session` 0);
//!   queueing and lock-delay's end without a waiter change no holder and make no event;
//! - **elections**: every change of an election's leader or of its value
//!   ([`EventKind::ElectionLeader`](crate::EventKind::ElectionLeader)): `value` is the leader's value (`None` when no leader is
//!   left), `session` the leader.
//!
//! Lock and election names live in their own keyspaces, so a lock named `a/x` never shows up to
//! a watcher of keys under `a/`. All events of one command share its revision, in the order the
//! command made them.
//!
//! # The history
//! The table `sm_watch_events` keeps the newest events, at most
//! [`WATCH_HISTORY_EVENTS`] events and [`WATCH_HISTORY_BYTES`] encoded bytes, dropping the
//! oldest whole revisions first. `sm_meta` records `watch_compacted` (the highest revision of
//! which some event was dropped; 0 if none) and `watch_bytes`. It is replicated state (the same
//! on every node, included in snapshots and the state hash), so any node answers late
//! subscribers the same way: [`StateMachine::events_since`](crate::StateMachine::events_since)
//! gives the events from a revision on, or [`WatchError::Compacted`] if some were dropped.
//! Live watchers get each slot's events from its effects, returned by
//! [`StateMachine::apply_slots`](crate::StateMachine::apply_slots), without reading storage.
//!
//! Each slot's events are appended, and the history trimmed, after the slot; one
//! `apply_slots` call opens the table and reads and writes the two meta keys once, for all its
//! slots (`History`).
//!
//! Event schema (prost):
//!
//! ```text
//! message Event { uint64 revision = 1; EventKind kind = 2; bytes key = 3;
//!                 optional bytes prev_value = 4; optional bytes value = 5;
//!                 uint64 session = 6; uint64 prev_session = 7; }
//! enum EventKind { PUT = 0; DELETE = 1; LOCK_HOLDER = 2; ELECTION_LEADER = 3; }
//! ```

use prost::Message;
use redb::{
    Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, Table, WriteTransaction,
};

use crate::coord::tables::{event_key, event_key_revision, WATCH_EVENTS};
use crate::error::StorageError;
use crate::tables::{decode_record, get_meta, META, REVISION};
use crate::{Event, EventFilter};
use synod_wire::limits::{WATCH_HISTORY_BYTES, WATCH_HISTORY_EVENTS};

/// `sm_meta` key: the highest revision some of whose events were dropped from the history.
pub(crate) const WATCH_COMPACTED: &str = "watch_compacted";
/// `sm_meta` key: the encoded size of the events in the history.
pub(crate) const WATCH_BYTES: &str = "watch_bytes";

/// An answer of [`StateMachine::events_since`](crate::StateMachine::events_since).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchBatch {
    /// Matching events in revision order.
    pub events: Vec<Event>,
    /// Where to continue: every event before this revision was looked at. Ask again from here
    /// (or follow the live events from here on).
    pub next_revision: u64,
    /// The store revision of the state read.
    pub revision: u64,
}

/// Why [`StateMachine::events_since`](crate::StateMachine::events_since) could not answer.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// Some events at or after the requested revision were dropped from the bounded history: the
    /// subscriber must re-read the current state (at `revision`) and watch from `revision + 1`.
    #[error(
        "watch history compacted: events through revision {compacted_through} were dropped, \
         asked from {from_revision} (current revision {revision})"
    )]
    Compacted {
        /// The revision asked from.
        from_revision: u64,
        /// The highest revision with dropped events; asking from above it works.
        compacted_through: u64,
        /// The current store revision.
        revision: u64,
    },
    /// The database failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// The watch history as one write transaction appends to it: the table is opened at the first
/// slot with events, `watch_compacted` and `watch_bytes` are read then and kept here, and
/// [`finish`](History::finish) writes them back once. Opening the table and reading and writing
/// the two meta keys for every slot cost more than appending a small slot's events.
///
/// Invariant: while open, `compacted` and `bytes` are what `sm_meta` would hold had every slot
/// recorded so far written them (what [`record`](History::record) did per slot before), so the
/// tables end the same.
pub(crate) struct History<'txn> {
    txn: &'txn WriteTransaction,
    open: Option<OpenHistory<'txn>>,
}

/// The history table and its meta values, once a slot had events.
struct OpenHistory<'txn> {
    table: Table<'txn, &'static [u8], &'static [u8]>,
    /// `watch_compacted` as of the last slot recorded.
    compacted: u64,
    /// `watch_bytes` as of the last slot recorded.
    bytes: u64,
}

impl<'txn> History<'txn> {
    /// The history of `txn`, not opened yet.
    pub fn new(txn: &'txn WriteTransaction) -> History<'txn> {
        History { txn, open: None }
    }

    /// Append one slot's `events` (in revision order) to the history and trim it to its bounds;
    /// `meta` is the transaction's `sm_meta`, read at the first slot with events.
    ///
    /// Events that would be dropped at once are never written; a revision partly over the bounds
    /// is dropped whole. Deterministic: depends only on the events and the stored history.
    pub fn record(
        &mut self,
        meta: &Table<'_, &'static str, u64>,
        events: &[Event],
    ) -> Result<(), StorageError> {
        if events.is_empty() {
            return Ok(());
        }
        let open = match &mut self.open {
            Some(open) => open,
            None => self.open.insert(OpenHistory {
                table: self.txn.open_table(WATCH_EVENTS)?,
                compacted: get_meta(meta, WATCH_COMPACTED)?,
                bytes: get_meta(meta, WATCH_BYTES)?,
            }),
        };
        open.record(events)
    }

    /// Write `watch_compacted` and `watch_bytes` to `meta` if some slot had events (as a slot
    /// with events always wrote them, even unchanged); then close the table.
    pub fn finish(self, meta: &mut Table<'_, &'static str, u64>) -> Result<(), StorageError> {
        if let Some(open) = self.open {
            meta.insert(WATCH_COMPACTED, open.compacted)?;
            meta.insert(WATCH_BYTES, open.bytes)?;
        }
        Ok(())
    }
}

impl OpenHistory<'_> {
    /// [`History::record`] of a non-empty slot.
    fn record(&mut self, events: &[Event]) -> Result<(), StorageError> {
        let history = &mut self.table;
        let mut compacted = self.compacted;
        let mut history_bytes = self.bytes;
        let sizes: Vec<u64> = events.iter().map(|e| e.encoded_len() as u64).collect();
        // The longest suffix of the new events that fits the bounds alone.
        let mut start = events.len();
        let mut new_bytes = 0u64;
        while start > 0
            && (events.len() - start + 1) as u64 <= WATCH_HISTORY_EVENTS
            && new_bytes + sizes[start - 1] <= WATCH_HISTORY_BYTES
        {
            start -= 1;
            new_bytes += sizes[start];
        }
        if start > 0 {
            compacted = compacted.max(events[start - 1].revision);
        }
        while start < events.len() && events[start].revision <= compacted {
            new_bytes -= sizes[start];
            start += 1;
        }
        let new_count = (events.len() - start) as u64;
        // Drop the oldest events until the new ones fit, then the rest of the last revision
        // touched. Over the bounds, the oldest event goes without a look first.
        loop {
            let over = history.len()? + new_count > WATCH_HISTORY_EVENTS
                || history_bytes + new_bytes > WATCH_HISTORY_BYTES;
            let (revision, size) = if over {
                let Some((key, value)) = history.pop_first()? else {
                    break;
                };
                (event_key_revision(key.value())?, value.value().len() as u64)
            } else {
                let Some((key, value)) = history.first()? else {
                    break;
                };
                let revision = event_key_revision(key.value())?;
                let size = value.value().len() as u64;
                drop((key, value));
                if revision > compacted {
                    break;
                }
                history.pop_first()?;
                (revision, size)
            };
            history_bytes = history_bytes.saturating_sub(size);
            compacted = compacted.max(revision);
        }
        let mut index = 0u32;
        for (i, event) in events.iter().enumerate() {
            index = match i {
                0 => 0,
                _ if events[i - 1].revision == event.revision => index + 1,
                _ => 0,
            };
            if i >= start {
                let bytes = event.encode_to_vec();
                history.insert(
                    event_key(event.revision, index).as_slice(),
                    bytes.as_slice(),
                )?;
            }
        }
        self.compacted = compacted;
        self.bytes = history_bytes + new_bytes;
        Ok(())
    }
}

/// The events matching `filter` from `from_revision` on (see
/// [`StateMachine::events_since`](crate::StateMachine::events_since)).
pub(crate) fn events_since(
    db: &Database,
    from_revision: u64,
    filter: &EventFilter,
    limit: usize,
) -> Result<WatchBatch, WatchError> {
    let txn = db.begin_read().map_err(StorageError::from)?;
    let meta = txn.open_table(META).map_err(StorageError::from)?;
    let revision = get_meta(&meta, REVISION)?;
    let compacted = get_meta(&meta, WATCH_COMPACTED)?;
    if compacted > 0 && from_revision <= compacted {
        return Err(WatchError::Compacted {
            from_revision,
            compacted_through: compacted,
            revision,
        });
    }
    let limit = if limit == 0 {
        WATCH_HISTORY_EVENTS as usize
    } else {
        limit
    };
    let history = txn.open_table(WATCH_EVENTS).map_err(StorageError::from)?;
    let start = event_key(from_revision.max(1), 0);
    let mut events = Vec::new();
    let mut last_revision = 0;
    let rows = history
        .range::<&[u8]>(start.as_slice()..)
        .map_err(StorageError::from)?;
    for row in rows {
        let (key, value) = row.map_err(StorageError::from)?;
        let event_revision = event_key_revision(key.value())?;
        if events.len() >= limit && event_revision != last_revision {
            return Ok(WatchBatch {
                events,
                next_revision: event_revision,
                revision,
            });
        }
        last_revision = event_revision;
        let event: Event = decode_record("sm_watch_events", value.value())?;
        if filter.matches(&event) {
            events.push(event);
        }
    }
    Ok(WatchBatch {
        events,
        next_revision: from_revision.max(revision + 1),
        revision,
    })
}
