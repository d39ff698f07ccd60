//! [`Writer`]: the writes of one command, with the bookkeeping that every write and every
//! deletion of a key carries, in one place so that no command can skip it:
//!
//! - its owner: every key a command writes is owned by the request's session (0 = none), and
//!   ownership changes are mirrored in `sm_session_owned` (`coord::owned`);
//! - its key expiry: a key written gets the expiry the request's `key_ttl` (or the op's default,
//!   a [`TtlMode`]) says, and a key deleted loses its expiry, so `sm_key_expiry` only ever holds
//!   keys that exist;
//! - a collection's elements: a collection key overwritten by a string or deleted drops them
//!   (`redis::elements`);
//! - the watch [`Event`] of every change, in the slot's effects;
//! - `changed`: whether the command consumed its revision.
//!
//! # No import circle
//! The commands (`kv`, `coord::{session, lock, election}`, `key_expiry`, `redis`) take a
//! `&mut Writer`; the writer imports none of them, only the tables and the two table-level
//! helpers above (`coord::owned`, `redis::elements`). So the graph is a line:
//! `state_machine` → `exec` (the dispatcher) → the commands → `writer` → the tables.

use prost::Message;
use redb::Table;

use crate::bugs::Active;
use crate::coord::owned;
use crate::coord::tables::{CoordTables, KeyExpiryRecord};
use crate::effects::{KeyExpiryEvent, SlotEffects};
use crate::error::{ExecError, StorageError};
use crate::range::KeyInterval;
use crate::redis::elements::drop_elements;
use crate::tables::{decode_record, get_kv, KvRecord};
use crate::{Event, EventKind, KIND_STRING};
use synod_wire::command::{DeleteRange, KeyTtl, Request};
use synod_wire::limits::MAX_SESSION_KEYS;
use synod_wire::response::{DeleteRangeResponse, PutResponse};
use synod_wire::RequestError;

/// The kv table as opened in a write transaction.
pub(crate) type KvTable<'txn> = Table<'txn, &'static [u8], &'static [u8]>;

/// What a write does to the key expiry of a key it writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TtlMode {
    /// Remove it.
    Clear,
    /// Keep it as it is.
    Keep,
    /// A new expiry, this many ms from now.
    Set(u64),
}

impl TtlMode {
    /// The mode of a request's `key_ttl`, or `default` without one.
    pub fn of(key_ttl: Option<KeyTtl>, default: TtlMode) -> TtlMode {
        match key_ttl {
            None => default,
            Some(KeyTtl { keep: true, .. }) => TtlMode::Keep,
            Some(KeyTtl { ttl_ms: 0, .. }) => TtlMode::Clear,
            Some(KeyTtl { ttl_ms, .. }) => TtlMode::Set(ttl_ms),
        }
    }
}

/// Writes of one command: every key written gets `revision` as its mod revision; `changed` says
/// whether anything was written, i.e. whether the command consumes that revision.
pub(crate) struct Writer<'a, 'txn> {
    pub kv: &'a mut KvTable<'txn>,
    pub coord: &'a mut CoordTables<'txn>,
    pub effects: &'a mut SlotEffects,
    /// The revision this command writes at: the store revision plus one.
    pub revision: u64,
    /// Whether the command changed the state (and so consumes `revision`).
    pub changed: bool,
    /// The session owning every key this command writes (0 = none).
    session: u64,
    /// What becomes of the key expiry of every key this command writes (`None`: the op's
    /// default).
    key_ttl: Option<KeyTtl>,
    /// Deliberately broken rules (none outside tests).
    pub bugs: Active,
}

impl<'a, 'txn> Writer<'a, 'txn> {
    /// The writer of `request`'s op, at `revision` (the store revision plus one), changing
    /// nothing yet.
    pub(crate) fn new(
        kv: &'a mut KvTable<'txn>,
        coord: &'a mut CoordTables<'txn>,
        effects: &'a mut SlotEffects,
        revision: u64,
        request: &Request,
        bugs: Active,
    ) -> Writer<'a, 'txn> {
        Writer {
            kv,
            coord,
            effects,
            revision,
            changed: false,
            session: request.session,
            key_ttl: request.key_ttl,
            bugs,
        }
    }
}

impl Writer<'_, '_> {
    /// Record a watch event at this command's revision.
    pub fn event(
        &mut self,
        kind: EventKind,
        key: &[u8],
        (prev_value, prev_session): (Option<Vec<u8>>, u64),
        (value, session): (Option<Vec<u8>>, u64),
    ) {
        self.effects.events.push(Event {
            revision: self.revision,
            kind: kind as i32,
            key: key.to_vec(),
            prev_value,
            value,
            session,
            prev_session,
        });
    }

    /// Refuse the command unless the request's session may own every key in `keys` (distinct):
    /// the session exists and stays within [`MAX_SESSION_KEYS`].
    pub(crate) fn check_owner<'k>(
        &mut self,
        keys: impl IntoIterator<Item = &'k [u8]>,
    ) -> Result<(), ExecError> {
        if self.session == 0 {
            return Ok(());
        }
        let record = self
            .coord
            .session(self.session)?
            .ok_or(RequestError::SessionNotFound {
                session: self.session,
            })?;
        let mut added = 0u64;
        for key in keys {
            if get_kv(self.kv, key)?.is_none_or(|r| r.session != self.session) {
                added += 1;
            }
        }
        if record.keys + added > MAX_SESSION_KEYS {
            return Err(RequestError::TooManySessionKeys {
                session: self.session,
                limit: MAX_SESSION_KEYS,
            }
            .into());
        }
        Ok(())
    }

    /// Write `key`, owned by the request's session, with the expiry the request's `key_ttl` says
    /// (`ttl_default` without one); the caller checked [`Self::check_owner`].
    pub(crate) fn put(
        &mut self,
        key: &[u8],
        value: &[u8],
        prev_kv: bool,
        ttl_default: TtlMode,
    ) -> Result<PutResponse, ExecError> {
        let prev = get_kv(self.kv, key)?;
        if let Some(collection) = prev.as_ref().filter(|p| p.kind != KIND_STRING) {
            // A string replaces a collection whole, as Redis's SET does.
            drop_elements(&mut self.coord.elements, collection.collection_id)?;
        }
        let record = match &prev {
            Some(p) => KvRecord {
                value: value.to_vec(),
                create_revision: p.create_revision,
                mod_revision: self.revision,
                version: p.version + 1,
                session: self.session,
                ..KvRecord::default()
            },
            None => KvRecord {
                value: value.to_vec(),
                create_revision: self.revision,
                mod_revision: self.revision,
                version: 1,
                session: self.session,
                ..KvRecord::default()
            },
        };
        self.kv.insert(key, record.encode_to_vec().as_slice())?;
        // The record's copy of the value becomes the event's.
        let value = record.value;
        let prev_session = prev.as_ref().map_or(0, |p| p.session);
        if prev_session != self.session {
            if prev_session != 0 {
                owned::detach_key(self.coord, prev_session, key)?;
            }
            if self.session != 0 {
                owned::attach_key(self.coord, self.session, key)?;
            }
        }
        self.changed = true;
        self.key_expiry_after_write(key, TtlMode::of(self.key_ttl, ttl_default))?;
        let response = PutResponse {
            prev: prev
                .as_ref()
                .filter(|_| prev_kv)
                .map(|p| p.to_key_value(key, true)),
        };
        // The previous value moves into the event (the response made its own copy, if any).
        let prev_value = prev.map(|p| p.value);
        self.event(
            EventKind::Put,
            key,
            (prev_value, prev_session),
            (Some(value), self.session),
        );
        Ok(response)
    }

    /// Remove `key` and record its deletion; `detach` also drops it from its owner's keys
    /// (false while the owner itself is being ended).
    pub fn remove_key(&mut self, key: &[u8], detach: bool) -> Result<Option<KvRecord>, ExecError> {
        let removed = match self.kv.remove(key)? {
            None => None,
            Some(guard) => Some(decode_record::<KvRecord>("sm_kv", guard.value())?),
        };
        if let Some(record) = &removed {
            self.deleted(key, record, detach)?;
        }
        Ok(removed)
    }

    /// Remove `key` with its expiry and record its deletion, but keep a collection's elements
    /// (`RENAME` gives them to another key).
    pub(crate) fn take_key(&mut self, key: &[u8]) -> Result<Option<KvRecord>, ExecError> {
        let removed = match self.kv.remove(key)? {
            None => None,
            Some(guard) => Some(decode_record::<KvRecord>("sm_kv", guard.value())?),
        };
        if let Some(record) = &removed {
            let moved = KvRecord {
                kind: KIND_STRING,
                ..record.clone()
            };
            self.deleted(key, &moved, true)?;
        }
        Ok(removed)
    }

    /// Bookkeeping of a key just removed from the kv table: its session, its expiry, a
    /// collection's elements, the watch event.
    fn deleted(&mut self, key: &[u8], record: &KvRecord, detach: bool) -> Result<(), ExecError> {
        if record.kind != KIND_STRING {
            drop_elements(&mut self.coord.elements, record.collection_id)?;
        }
        if detach && record.session != 0 {
            owned::detach_key(self.coord, record.session, key)?;
        }
        self.clear_key_expiry(key)?;
        self.changed = true;
        self.event(
            EventKind::Delete,
            key,
            (Some(record.value.clone()), record.session),
            (None, 0),
        );
        Ok(())
    }

    /// Remove every key in `range`, each with the bookkeeping of a deletion (a
    /// [`DeleteRange`], Redis's `FLUSHDB`).
    pub(crate) fn delete_range(
        &mut self,
        range: &DeleteRange,
    ) -> Result<DeleteRangeResponse, ExecError> {
        let mut removed = Vec::new();
        if let Some(interval) = KeyInterval::new(&range.start, &range.end, &range.prefix) {
            for row in self
                .kv
                .extract_from_if::<&[u8], _>(interval.bounds(), |_, _| true)?
            {
                let (key, value) = row?;
                let record: KvRecord = decode_record("sm_kv", value.value())?;
                removed.push((key.value().to_vec(), record));
            }
        }
        for (key, record) in &removed {
            self.deleted(key, record, true)?;
        }
        Ok(DeleteRangeResponse {
            deleted: removed.len() as u64,
        })
    }

    /// Give `key`, just written at this command's revision, the key expiry `mode` says.
    pub(crate) fn key_expiry_after_write(
        &mut self,
        key: &[u8],
        mode: TtlMode,
    ) -> Result<(), StorageError> {
        match mode {
            TtlMode::Keep => Ok(()),
            TtlMode::Clear => self.clear_key_expiry(key),
            TtlMode::Set(ttl_ms) => self.set_key_expiry(key, ttl_ms),
        }
    }

    /// A new key expiry of `key` (which exists) at this command's revision.
    pub(crate) fn set_key_expiry(&mut self, key: &[u8], ttl_ms: u64) -> Result<(), StorageError> {
        debug_assert!(ttl_ms > 0);
        let record = KeyExpiryRecord {
            revision: self.revision,
            remaining_ms: ttl_ms,
        };
        self.coord.put_key_expiry(key, &record)?;
        self.changed = true;
        self.effects.key_expiry_events.push(KeyExpiryEvent::Set {
            key: key.to_vec(),
            expiry_revision: record.revision,
            ttl_ms,
        });
        Ok(())
    }

    /// Remove the key expiry of `key`, if it has one (the key was deleted, or written without
    /// keeping its TTL).
    fn clear_key_expiry(&mut self, key: &[u8]) -> Result<(), StorageError> {
        if self.coord.remove_key_expiry(key)? {
            self.effects
                .key_expiry_events
                .push(KeyExpiryEvent::Cleared { key: key.to_vec() });
        }
        Ok(())
    }
}
