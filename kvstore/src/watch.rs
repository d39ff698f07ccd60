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
//! The history keeps the newest events, at most [`WATCH_HISTORY_EVENTS`] events and
//! [`WATCH_HISTORY_BYTES`] encoded bytes, dropping the oldest whole revisions first.
//! `sm_meta` records `watch_compacted` (the highest revision of which some event was dropped; 0
//! if none) and `watch_bytes` (the encoded size of the events kept). It is replicated state (the
//! same on every node, included in snapshots and the state hash), so any node answers late
//! subscribers the same way: [`StateMachine::events_since`](crate::StateMachine::events_since)
//! gives the events from a revision on, or [`WatchError::Compacted`] if some were dropped.
//! Live watchers get each slot's events from its effects, returned by
//! [`StateMachine::apply_slots`](crate::StateMachine::apply_slots), without reading storage.
//!
//! # Where it lives: memory first, the table `sm_watch_events` at durable commits
//! The whole history is kept in memory (`History`, bounded as above) and answers
//! `events_since`. Each applied slot appends its events there and trims the oldest, and the
//! apply transaction writes only the two meta keys. The table `sm_watch_events` is brought up
//! to date (`History::store`) in every transaction that makes the state durable (a flush, a
//! membership change) and before the state is read whole (a snapshot, the state hash) or the
//! database closed. Writing every event to the table at every apply, and trimming it there,
//! cost about 15% of a put's CPU on a loaded cluster (README, "What the watch history costs a
//! write"); at a flush, events written and dropped since the last one never reach the table.
//!
//! Why this loses nothing: apply commits are not durable by themselves (see
//! [`StateMachine`](crate::StateMachine)'s durability rules); a crash reverts to the last
//! durable commit, whose table was complete, and replay from its applied index re-creates the
//! events after it. The one way an apply commit becomes durable without a durable commit after
//! it is redb's clean close, so dropping the state machine stores the history first. Should that
//! store fail while the close succeeds, the table is found short of `watch_bytes` at the next
//! open, and the history is declared compacted through the current revision
//! (`History::load`): late subscribers of this node are told to re-read, never given a history
//! with a gap. This node's history (its compaction point, and so its state hash) then differs
//! from the other replicas' until a snapshot replaces its state: a rare failure (the store and
//! the close write the same file) traded for never serving a gap.
//!
//! Event schema (prost):
//!
//! ```text
//! message Event { uint64 revision = 1; EventKind kind = 2; bytes key = 3;
//!                 optional bytes prev_value = 4; optional bytes value = 5;
//!                 uint64 session = 6; uint64 prev_session = 7; }
//! enum EventKind { PUT = 0; DELETE = 1; LOCK_HOLDER = 2; ELECTION_LEADER = 3; }
//! ```

use std::collections::VecDeque;

use prost::Message;
use redb::{Database, Durability, ReadableDatabase, Table, WriteTransaction};

use crate::coord::tables::{event_key, event_key_place, WATCH_EVENTS};
use crate::error::StorageError;
use crate::tables::{decode_record, get_meta, META};
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

/// How to undo the [`History::record`]s of an apply transaction that failed.
#[derive(Debug)]
pub(crate) struct Undo {
    /// `compacted` before.
    compacted: u64,
    /// `bytes` before.
    bytes: u64,
    /// Rows added and still in the history.
    added: usize,
    /// Rows that were there before and were dropped, oldest first.
    dropped: Vec<HistoryRow>,
}

/// How far a [`History::store`] brought the table (see [`History::stored`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Stored {
    through: Option<(u64, u32)>,
    compacted: u64,
}

/// One event of the history: its place and its encoding (the table's row).
#[derive(Debug)]
struct HistoryRow {
    /// The event's revision.
    revision: u64,
    /// Its position among the events of its revision.
    index: u32,
    /// The encoded [`Event`].
    encoded: Vec<u8>,
}

impl HistoryRow {
    /// Where the row sorts: the order of its table key.
    fn place(&self) -> (u64, u32) {
        (self.revision, self.index)
    }
}

/// The watch history of a state machine, in memory (see the module docs), and how much of it
/// the table `sm_watch_events` holds.
///
/// Invariants: `rows` are in key order, hold at most [`WATCH_HISTORY_EVENTS`] events of
/// `bytes` ≤ [`WATCH_HISTORY_BYTES`] encoded bytes in all, and every revision in them is above
/// `compacted`. The table holds exactly the rows of `rows` up to `stored_through`, plus the rows
/// dropped from memory since the last store (revisions in `(stored_compacted, compacted]`).
#[derive(Debug)]
pub(crate) struct History {
    rows: VecDeque<HistoryRow>,
    /// `watch_compacted`.
    compacted: u64,
    /// `watch_bytes`: the encoded size of `rows`.
    bytes: u64,
    /// The newest row written to the table (`None`: none).
    stored_through: Option<(u64, u32)>,
    /// `compacted` when the table was last brought up to date.
    stored_compacted: u64,
    /// The table's rows are not known (a history that could not be read): the next store
    /// empties it first.
    table_unknown: bool,
}

impl History {
    /// The history stored in `db` (its table and meta keys), as of the last commit, for a state
    /// machine at store revision `revision`.
    ///
    /// If the table does not hold what the meta keys say (its newest events never reached it,
    /// see the module docs; or a received snapshot broke the bounds), the history is declared
    /// compacted through `revision` in one `Immediate` commit that empties the table, and a
    /// warning is logged. Errors are storage failures only.
    pub fn load(db: &Database, revision: u64) -> Result<History, StorageError> {
        let txn = db.begin_read()?;
        let meta = txn.open_table(META)?;
        let compacted = get_meta(&meta, WATCH_COMPACTED)?;
        let bytes = get_meta(&meta, WATCH_BYTES)?;
        let table = txn.open_table(WATCH_EVENTS)?;
        let first_kept = event_key(compacted.saturating_add(1), 0);
        let mut rows = VecDeque::new();
        let mut stored_bytes = 0u64;
        let mut readable = true;
        for row in table.range::<&[u8]>(first_kept.as_slice()..)? {
            let (key, value) = row?;
            let Some((revision, index)) = event_key_place(key.value()) else {
                readable = false;
                break;
            };
            let encoded = value.value().to_vec();
            stored_bytes += encoded.len() as u64;
            rows.push_back(HistoryRow {
                revision,
                index,
                encoded,
            });
            if rows.len() as u64 > WATCH_HISTORY_EVENTS || stored_bytes > WATCH_HISTORY_BYTES {
                readable = false;
                break;
            }
        }
        drop((table, meta, txn));
        if readable && stored_bytes == bytes {
            let history = History {
                stored_through: rows.back().map(HistoryRow::place),
                rows,
                compacted,
                bytes,
                stored_compacted: compacted,
                table_unknown: false,
            };
            history.assert_bounds();
            return Ok(history);
        }
        tracing::warn!(
            stored_bytes,
            expected_bytes = bytes,
            revision,
            "the stored watch history does not hold what its meta keys say (its store at the \
             last close failed, or a snapshot broke its bounds); declaring it compacted through \
             the current revision"
        );
        let mut history = History::compacted_through(revision.max(compacted));
        let mut txn = db.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        let stored = history.store(&txn)?;
        txn.commit()?;
        history.stored(stored);
        Ok(history)
    }

    /// An empty history, compacted through `revision`, whose table is to be emptied at the next
    /// [`store`](History::store): what a history that cannot be read is replaced by.
    pub fn compacted_through(revision: u64) -> History {
        History {
            rows: VecDeque::new(),
            compacted: revision,
            bytes: 0,
            stored_through: None,
            stored_compacted: 0,
            table_unknown: true,
        }
    }

    /// Start recording the slots of one apply transaction: what [`roll_back`](History::roll_back)
    /// needs to undo them if the transaction fails.
    pub fn begin(&self) -> Undo {
        Undo {
            compacted: self.compacted,
            bytes: self.bytes,
            added: 0,
            dropped: Vec::new(),
        }
    }

    /// Undo the [`record`](History::record)s made since `undo` was [`begin`](History::begin)
    /// (their transaction did not commit).
    pub fn roll_back(&mut self, undo: Undo) {
        for _ in 0..undo.added {
            self.rows.pop_back().expect("an added row is still there");
        }
        for row in undo.dropped.into_iter().rev() {
            self.rows.push_front(row);
        }
        self.compacted = undo.compacted;
        self.bytes = undo.bytes;
        self.assert_bounds();
    }

    /// Append one slot's `events` (in revision order) to the history and trim it to its bounds,
    /// noting in `undo` how to take it back. Returns whether anything changed (the meta keys are
    /// then to be written).
    ///
    /// Events that would be dropped at once are never kept; a revision partly over the bounds
    /// is dropped whole. Deterministic: depends only on the events and the history.
    pub fn record(&mut self, events: &[Event], undo: &mut Undo) -> bool {
        if events.is_empty() {
            return false;
        }
        let sizes: Vec<u64> = events.iter().map(|e| e.encoded_len() as u64).collect();
        let mut compacted = self.compacted;
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
        // touched.
        while let Some(oldest) = self.rows.front() {
            let over = self.rows.len() as u64 + new_count > WATCH_HISTORY_EVENTS
                || self.bytes + new_bytes > WATCH_HISTORY_BYTES;
            if !over && oldest.revision > compacted {
                break;
            }
            compacted = compacted.max(oldest.revision);
            self.bytes -= oldest.encoded.len() as u64;
            let added_by_this_transaction = self.rows.len() <= undo.added;
            let oldest = self.rows.pop_front().expect("the oldest row is there");
            if added_by_this_transaction {
                undo.added -= 1;
            } else {
                undo.dropped.push(oldest);
            }
        }
        let mut index = 0u32;
        for (i, event) in events.iter().enumerate() {
            index = match i {
                0 => 0,
                _ if events[i - 1].revision == event.revision => index + 1,
                _ => 0,
            };
            if i >= start {
                assert!(
                    self.rows
                        .back()
                        .is_none_or(|last| last.place() < (event.revision, index)),
                    "watch events are recorded in revision order"
                );
                self.rows.push_back(HistoryRow {
                    revision: event.revision,
                    index,
                    encoded: event.encode_to_vec(),
                });
                undo.added += 1;
            }
        }
        self.compacted = compacted;
        self.bytes += new_bytes;
        self.assert_bounds();
        true
    }

    /// Write `watch_compacted` and `watch_bytes` to `meta`.
    pub fn write_meta(&self, meta: &mut Table<'_, &'static str, u64>) -> Result<(), StorageError> {
        meta.insert(WATCH_COMPACTED, self.compacted)?;
        meta.insert(WATCH_BYTES, self.bytes)?;
        Ok(())
    }

    /// Whether the table holds the history as it is now (nothing to store).
    pub fn is_stored(&self) -> bool {
        !self.table_unknown
            && self.stored_compacted == self.compacted
            && self.stored_through >= self.rows.back().map(HistoryRow::place)
    }

    /// Bring the table and the meta keys up to date in `txn`: drop the rows dropped from the
    /// history since the last store and write the rows added. Costs the rows written and
    /// dropped, not the history.
    /// Once `txn` commits, pass the answer to [`stored`](History::stored).
    pub fn store(&self, txn: &WriteTransaction) -> Result<Stored, StorageError> {
        let stored = Stored {
            through: self
                .rows
                .back()
                .map(HistoryRow::place)
                .max(self.stored_through),
            compacted: self.compacted,
        };
        if self.is_stored() {
            return Ok(stored);
        }
        assert_eq!(
            self.bytes,
            self.rows
                .iter()
                .map(|r| r.encoded.len() as u64)
                .sum::<u64>(),
            "watch_bytes is the size of the events kept"
        );
        self.write_meta(&mut txn.open_table(META)?)?;
        let mut table = txn.open_table(WATCH_EVENTS)?;
        if self.table_unknown {
            table.retain(|_, _| false)?;
        } else if self.compacted > self.stored_compacted {
            let last_dropped = event_key(self.compacted, u32::MAX);
            table.retain_in::<&[u8], _>(..=last_dropped.as_slice(), |_, _| false)?;
        }
        let first_new = self
            .rows
            .partition_point(|row| Some(row.place()) <= self.stored_through);
        for row in self.rows.range(first_new..) {
            table.insert(
                event_key(row.revision, row.index).as_slice(),
                row.encoded.as_slice(),
            )?;
        }
        Ok(stored)
    }

    /// Note that a transaction in which [`store`](History::store) answered `stored` committed.
    pub fn stored(&mut self, stored: Stored) {
        self.stored_through = stored.through;
        self.stored_compacted = stored.compacted;
        self.table_unknown = false;
    }

    /// The events matching `filter` from `from_revision` on, for a state at store revision
    /// `revision` (see [`StateMachine::events_since`](crate::StateMachine::events_since)).
    pub fn events_since(
        &self,
        from_revision: u64,
        filter: &EventFilter,
        limit: usize,
        revision: u64,
    ) -> Result<WatchBatch, WatchError> {
        if self.compacted > 0 && from_revision <= self.compacted {
            return Err(WatchError::Compacted {
                from_revision,
                compacted_through: self.compacted,
                revision,
            });
        }
        let limit = if limit == 0 {
            WATCH_HISTORY_EVENTS as usize
        } else {
            limit
        };
        let first = self
            .rows
            .partition_point(|row| row.revision < from_revision);
        let mut events = Vec::new();
        let mut last_revision = 0;
        for row in self.rows.range(first..) {
            if events.len() >= limit && row.revision != last_revision {
                return Ok(WatchBatch {
                    events,
                    next_revision: row.revision,
                    revision,
                });
            }
            last_revision = row.revision;
            let event: Event = decode_record("sm_watch_events", &row.encoded)?;
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

    /// The bounds of the type's invariants.
    fn assert_bounds(&self) {
        assert!(self.rows.len() as u64 <= WATCH_HISTORY_EVENTS);
        assert!(self.bytes <= WATCH_HISTORY_BYTES);
        assert!(self
            .rows
            .front()
            .is_none_or(|oldest| oldest.revision > self.compacted));
    }
}
