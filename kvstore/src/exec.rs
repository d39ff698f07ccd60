//! Executing validated ops against the kv and coordination tables.
//!
//! Reads ([`get`], [`scan`]) work on any readable table, so the same code serves `apply` (inside
//! the write transaction) and `read` (in a read transaction). Writes go through [`execute`], which
//! assumes a request that passed [`Request::validate`](crate::Request::validate) and checks every
//! condition that can refuse the command (its fence, its session, the key's value for incr, ...)
//! before it writes anything, so a refused command leaves every table as it was.
//!
//! Every key a command writes is owned by the request's session (0 = none); ownership changes
//! are mirrored in `sm_session_owned` (see [`crate::coord::session`]). Every change of a key records a
//! watch [`Event`] in the slot's effects. Every key written gets the expiry the request's
//! `key_ttl` (or the op's default) says, and every key deleted loses its expiry (see
//! [`crate::key_expiry`]).

use std::cmp::Ordering;
use std::collections::HashMap;

use prost::Message;
use redb::{ReadableTable, Table};

use crate::bugs::Active;
use crate::coord::tables::CoordTables;
use crate::coord::{election, lock, session};
use crate::effects::SlotEffects;
use crate::error::StorageError;
use crate::key_expiry::{self, TtlMode};
use crate::range::KeyInterval;
use crate::redis;
use crate::tables::{decode_record, get_kv, KvRecord};
use crate::KIND_STRING;
use crate::{Event, EventKind};
use synod_wire::command::{
    Compare, CompareAndSwap, CompareOp, CompareTarget, DeleteRange, Expected, Incr, KeyTtl, Op,
    Request, Scan, Txn, TxnOp, TxnOpKind,
};
use synod_wire::limits::{
    MAX_KEY_BYTES, MAX_REPLY_BYTES, MAX_SCAN_LIMIT, MAX_SCAN_RESPONSE_BYTES, MAX_SESSION_KEYS,
    MAX_VALUE_BYTES,
};
use synod_wire::response::{
    CompareAndSwapResponse, DeleteRangeResponse, DeleteResponse, GetResponse, IncrResponse,
    Outcome, PutResponse, ScanResponse, TxnOpResponse, TxnOutcome, TxnResponse,
};
use synod_wire::RequestError;

/// The kv table as opened in a write transaction.
pub(crate) type KvTable<'txn> = Table<'txn, &'static [u8], &'static [u8]>;

/// Why executing a command stopped: the command is refused, or storage failed.
#[derive(Debug)]
pub(crate) enum ExecError {
    Request(RequestError),
    Storage(StorageError),
}

impl From<RequestError> for ExecError {
    fn from(e: RequestError) -> ExecError {
        ExecError::Request(e)
    }
}

impl From<StorageError> for ExecError {
    fn from(e: StorageError) -> ExecError {
        ExecError::Storage(e)
    }
}

impl From<redb::StorageError> for ExecError {
    fn from(e: redb::StorageError) -> ExecError {
        ExecError::Storage(e.into())
    }
}

/// Read `key`.
pub(crate) fn get(
    kv: &impl ReadableTable<&'static [u8], &'static [u8]>,
    key: &[u8],
) -> Result<GetResponse, StorageError> {
    Ok(GetResponse {
        kv: get_kv(kv, key)?.map(|r| r.to_key_value(key, true)),
    })
}

/// Read a range, bounded by the scan's limit and [`MAX_SCAN_RESPONSE_BYTES`].
pub(crate) fn scan(
    kv: &impl ReadableTable<&'static [u8], &'static [u8]>,
    scan: &Scan,
) -> Result<ScanResponse, StorageError> {
    let limit = if scan.limit == 0 {
        MAX_SCAN_LIMIT
    } else {
        scan.limit.min(MAX_SCAN_LIMIT)
    } as usize;
    let mut response = ScanResponse::default();
    let Some(interval) = KeyInterval::new(&scan.start, &scan.end, &scan.prefix) else {
        return Ok(response);
    };
    let mut size_bytes = 0usize;
    for entry in kv.range::<&[u8]>(interval.bounds())? {
        let (key, value) = entry?;
        if response.kvs.len() == limit {
            response.more = true;
            break;
        }
        let record: KvRecord = decode_record("sm_kv", value.value())?;
        let key = key.value();
        let entry_bytes = key.len()
            + if scan.keys_only {
                0
            } else {
                record.value.len()
            };
        if !response.kvs.is_empty() && size_bytes + entry_bytes > MAX_SCAN_RESPONSE_BYTES {
            response.more = true;
            break;
        }
        size_bytes += entry_bytes;
        response.kvs.push(record.to_key_value(key, !scan.keys_only));
    }
    Ok(response)
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
    /// What becomes of the expiry of every key this command writes (`None`: the op's default).
    key_ttl: Option<KeyTtl>,
    /// Deliberately broken rules (none outside tests).
    pub bugs: Active,
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
    fn check_owner<'k>(&self, keys: impl IntoIterator<Item = &'k [u8]>) -> Result<(), ExecError> {
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
            redis::drop_elements(&mut self.coord.elements, collection.collection_id)?;
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
        let prev_session = prev.as_ref().map_or(0, |p| p.session);
        if prev_session != self.session {
            if prev_session != 0 {
                session::detach_key(self.coord, prev_session, key)?;
            }
            if self.session != 0 {
                session::attach_key(self.coord, self.session, key)?;
            }
        }
        self.changed = true;
        key_expiry::after_write(self, key, TtlMode::of(self.key_ttl, ttl_default))?;
        let prev_value = prev.as_ref().map(|p| p.value.clone());
        self.event(
            EventKind::Put,
            key,
            (prev_value, prev_session),
            (Some(value.to_vec()), self.session),
        );
        Ok(PutResponse {
            prev: prev.filter(|_| prev_kv).map(|p| p.to_key_value(key, true)),
        })
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
            redis::drop_elements(&mut self.coord.elements, record.collection_id)?;
        }
        if detach && record.session != 0 {
            session::detach_key(self.coord, record.session, key)?;
        }
        key_expiry::clear(self, key)?;
        self.changed = true;
        self.event(
            EventKind::Delete,
            key,
            (Some(record.value.clone()), record.session),
            (None, 0),
        );
        Ok(())
    }

    fn delete(&mut self, key: &[u8], prev_kv: bool) -> Result<DeleteResponse, ExecError> {
        let removed = self.remove_key(key, true)?;
        Ok(DeleteResponse {
            deleted: removed.is_some(),
            prev: removed
                .filter(|_| prev_kv)
                .map(|p| p.to_key_value(key, true)),
        })
    }

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

    fn compare_and_swap(
        &mut self,
        cas: &CompareAndSwap,
    ) -> Result<CompareAndSwapResponse, ExecError> {
        let current = get_kv(self.kv, &cas.key)?;
        let matches = match (&cas.expected, &current) {
            (None, current) => current.is_none(),
            (Some(Expected::Value(expected)), Some(current)) => {
                current.kind == KIND_STRING && current.value == *expected
            }
            (Some(Expected::Value(_)), None) => false,
            (Some(Expected::ModRevision(expected)), current) => {
                current.as_ref().map_or(0, |c| c.mod_revision) == *expected
            }
        };
        if !matches {
            return Ok(CompareAndSwapResponse {
                succeeded: false,
                current: current.map(|c| c.to_key_value(&cas.key, true)),
            });
        }
        self.check_owner([cas.key.as_slice()])?;
        self.put(&cas.key, &cas.new_value, false, TtlMode::Clear)?;
        Ok(CompareAndSwapResponse {
            succeeded: true,
            current: None,
        })
    }

    fn incr(&mut self, incr: &Incr) -> Result<IncrResponse, ExecError> {
        let current = match get_kv(self.kv, &incr.key)? {
            None => 0,
            Some(record) if record.kind != KIND_STRING => {
                return Err(RequestError::WrongType.into())
            }
            Some(record) => parse_canonical_i64(&record.value).ok_or(RequestError::NotAnInteger)?,
        };
        let value = current
            .checked_add(incr.delta)
            .ok_or(RequestError::IncrOverflow)?;
        self.check_owner([incr.key.as_slice()])?;
        self.put(
            &incr.key,
            value.to_string().as_bytes(),
            false,
            TtlMode::Keep,
        )?;
        Ok(IncrResponse { value })
    }

    /// Refuses `branch` if its answer would carry more than [`MAX_REPLY_BYTES`] of stored data:
    /// the keys and values its gets return and the previous values its puts and deletes return,
    /// each as it will be when that op runs (a key written earlier in the branch counts with its
    /// new value). Checked before the branch writes anything, so a refused transaction changes
    /// nothing; without it the answer could outgrow its frame after the writes were applied.
    fn check_txn_reply(&self, branch: &[TxnOp]) -> Result<(), ExecError> {
        let answers = |op: &TxnOp| match &op.op {
            Some(TxnOpKind::Get(_)) => true,
            Some(TxnOpKind::Put(put)) => put.prev_kv,
            Some(TxnOpKind::Delete(delete)) => delete.prev_kv,
            None => false,
        };
        let worst_case =
            branch.iter().filter(|op| answers(op)).count() * (MAX_VALUE_BYTES + MAX_KEY_BYTES);
        if worst_case <= MAX_REPLY_BYTES {
            return Ok(());
        }
        // Value sizes of keys written earlier in the branch (`None`: deleted).
        let mut written: HashMap<&[u8], Option<usize>> = HashMap::new();
        let mut total = 0usize;
        for op in branch {
            let (key, new_len) = match &op.op {
                Some(TxnOpKind::Get(get)) => (get.key.as_slice(), None),
                Some(TxnOpKind::Put(put)) => (put.key.as_slice(), Some(Some(put.value.len()))),
                Some(TxnOpKind::Delete(delete)) => (delete.key.as_slice(), Some(None)),
                None => continue,
            };
            if answers(op) {
                let len = match written.get(key) {
                    Some(len) => *len,
                    None => get_kv(self.kv, key)?.map(|record| record.value.len()),
                };
                total += len.map_or(0, |len| key.len() + len);
                if total > MAX_REPLY_BYTES {
                    return Err(RequestError::ResponseTooLarge {
                        size_bytes: total,
                        limit_bytes: MAX_REPLY_BYTES,
                    }
                    .into());
                }
            }
            if let Some(new_len) = new_len {
                written.insert(key, new_len);
            }
        }
        Ok(())
    }

    fn txn(&mut self, txn: &Txn) -> Result<TxnResponse, ExecError> {
        let mut succeeded = true;
        for compare in &txn.compares {
            if !compare_holds(self.kv, compare)? {
                succeeded = false;
                break;
            }
        }
        let branch = if succeeded {
            &txn.success
        } else {
            &txn.failure
        };
        self.check_owner(branch.iter().filter_map(|op| match &op.op {
            Some(TxnOpKind::Put(put)) => Some(put.key.as_slice()),
            _ => None,
        }))?;
        self.check_txn_reply(branch)?;
        let mut responses = Vec::with_capacity(branch.len());
        for txn_op in branch {
            let outcome = match &txn_op.op {
                // Refused by validation; nothing to do for it here.
                None => None,
                Some(TxnOpKind::Put(put)) => Some(TxnOutcome::Put(self.put(
                    &put.key,
                    &put.value,
                    put.prev_kv,
                    TtlMode::Clear,
                )?)),
                Some(TxnOpKind::Delete(delete)) => Some(TxnOutcome::Delete(
                    self.delete(&delete.key, delete.prev_kv)?,
                )),
                Some(TxnOpKind::Get(g)) => Some(TxnOutcome::Get(get(self.kv, &g.key)?)),
            };
            responses.push(TxnOpResponse { outcome });
        }
        Ok(TxnResponse {
            succeeded,
            responses,
        })
    }
}

/// Whether `compare` holds against the current table.
fn compare_holds(
    kv: &impl ReadableTable<&'static [u8], &'static [u8]>,
    compare: &Compare,
) -> Result<bool, StorageError> {
    let (Ok(target), Ok(op)) = (
        CompareTarget::try_from(compare.target),
        CompareOp::try_from(compare.op),
    ) else {
        // Refused by validation.
        return Ok(false);
    };
    let record = get_kv(kv, &compare.key)?;
    let number = |f: fn(&KvRecord) -> u64| record.as_ref().map_or(0, f).cmp(&compare.number);
    let ordering = match target {
        CompareTarget::Value => match &record {
            // A collection has no value to compare, like an absent key.
            None => return Ok(false),
            Some(r) if r.kind != KIND_STRING => return Ok(false),
            Some(r) => r.value.as_slice().cmp(compare.value.as_slice()),
        },
        CompareTarget::Version => number(|r| r.version),
        CompareTarget::CreateRevision => number(|r| r.create_revision),
        CompareTarget::ModRevision => number(|r| r.mod_revision),
    };
    Ok(match op {
        CompareOp::Equal => ordering == Ordering::Equal,
        CompareOp::NotEqual => ordering != Ordering::Equal,
        CompareOp::Less => ordering == Ordering::Less,
        CompareOp::Greater => ordering == Ordering::Greater,
    })
}

/// Serve a coordination or key expiry query (LockHolder, Leader or Ttl) from a read transaction;
/// `None` for other ops.
pub(crate) fn read_coord(
    txn: &redb::ReadTransaction,
    op: &Op,
) -> Result<Option<Outcome>, StorageError> {
    Ok(match op {
        Op::LockHolder(h) => Some(Outcome::LockHolder(lock::holder(
            &txn.open_table(crate::coord::tables::LOCKS)?,
            &h.name,
        )?)),
        Op::Leader(l) => Some(Outcome::Leader(election::leader(
            &txn.open_table(crate::coord::tables::ELECTIONS)?,
            &l.election,
        )?)),
        Op::Ttl(t) => Some(Outcome::Ttl(key_expiry::ttl(
            &txn.open_table(crate::tables::KV)?,
            &txn.open_table(crate::coord::tables::KEY_EXPIRY)?,
            &t.key,
        )?)),
        Op::Redis(command) => Some(Outcome::Redis(redis::read(
            &txn.open_table(crate::tables::KV)?,
            &txn.open_table(crate::coord::tables::REDIS_ELEMENTS)?,
            command,
        )?)),
        _ => None,
    })
}

/// Parse a value stored as decimal ASCII in canonical form (what `i64::to_string` produces):
/// optional `-`, no `+`, no leading zeros, no spaces, within `i64`.
pub(crate) fn parse_canonical_i64(bytes: &[u8]) -> Option<i64> {
    // 20 bytes hold every i64 ("-9223372036854775808"); longer is never canonical.
    if bytes.len() > 20 {
        return None;
    }
    let n: i64 = std::str::from_utf8(bytes).ok()?.parse().ok()?;
    (n.to_string().as_bytes() == bytes).then_some(n)
}

/// Execute the op of a validated `request` in a write transaction, after checking its fence.
/// `revision` is the store revision; it goes up by one if the op changed the state. Watch and
/// session events go to `effects`.
///
/// On `Err(ExecError::Request)` nothing was written (and no effect recorded); on
/// `Err(ExecError::Storage)` the caller must drop the transaction.
pub(crate) fn execute<'txn>(
    kv: &mut KvTable<'txn>,
    coord: &mut CoordTables<'txn>,
    effects: &mut SlotEffects,
    request: &Request,
    op: &Op,
    revision: &mut u64,
    bugs: Active,
) -> Result<Outcome, ExecError> {
    let (events_before, session_events_before, key_expiry_events_before) = (
        effects.events.len(),
        effects.session_events.len(),
        effects.expiry_events.len(),
    );
    let mut writer = Writer {
        kv,
        coord,
        effects,
        revision: *revision + 1,
        changed: false,
        session: request.session,
        key_ttl: request.key_ttl,
        bugs,
    };
    let next_revision = *revision + 1;
    match writer.run(request, op) {
        Ok(outcome) => {
            // Replicated state: checked in release builds too.
            assert_eq!(
                writer.revision, next_revision,
                "a command moves the revision by exactly one"
            );
            if writer.changed {
                *revision = writer.revision;
            } else {
                assert_eq!(
                    writer.effects.events.len(),
                    events_before,
                    "an event from a command that changed nothing"
                );
            }
            Ok(outcome)
        }
        Err(e) => {
            writer.effects.events.truncate(events_before);
            writer
                .effects
                .session_events
                .truncate(session_events_before);
            writer
                .effects
                .expiry_events
                .truncate(key_expiry_events_before);
            Err(e)
        }
    }
}

impl Writer<'_, '_> {
    fn run(&mut self, request: &Request, op: &Op) -> Result<Outcome, ExecError> {
        if let Some(fence) = &request.fence {
            lock::check_fence(&self.coord.locks, fence, self.bugs)?;
        }
        Ok(match op {
            Op::Put(put) => {
                self.check_owner([put.key.as_slice()])?;
                Outcome::Put(self.put(&put.key, &put.value, put.prev_kv, TtlMode::Clear)?)
            }
            Op::Get(g) => Outcome::Get(get(self.kv, &g.key)?),
            Op::Delete(delete) => Outcome::Delete(self.delete(&delete.key, delete.prev_kv)?),
            Op::DeleteRange(range) => Outcome::DeleteRange(self.delete_range(range)?),
            Op::Scan(s) => Outcome::Scan(scan(self.kv, s)?),
            Op::CompareAndSwap(cas) => Outcome::CompareAndSwap(self.compare_and_swap(cas)?),
            Op::Txn(txn) => Outcome::Txn(self.txn(txn)?),
            Op::Incr(incr) => Outcome::Incr(self.incr(incr)?),
            Op::OpenSession(open) => Outcome::OpenSession(session::open(self, open)?),
            Op::KeepAlive(k) => Outcome::KeepAlive(session::keep_alive(self, k)?),
            Op::CloseSession(c) => Outcome::CloseSession(session::close(self, c)?),
            Op::ExpireSession(e) => Outcome::ExpireSession(session::expire(self, e)?),
            Op::CheckpointSessions(c) => Outcome::CheckpointSessions(session::checkpoint(self, c)?),
            Op::Lock(l) => Outcome::Lock(lock::lock(self, l)?),
            Op::Unlock(u) => Outcome::Unlock(lock::unlock(self, u)?),
            Op::ReleaseLockDelay(r) => Outcome::ReleaseLockDelay(lock::release_delay(self, r)?),
            Op::LockHolder(h) => Outcome::LockHolder(lock::holder(&self.coord.locks, &h.name)?),
            Op::Campaign(c) => Outcome::Campaign(election::campaign(self, c)?),
            Op::Proclaim(p) => Outcome::Proclaim(election::proclaim(self, p)?),
            Op::Resign(r) => Outcome::Resign(election::resign(self, r)?),
            Op::Leader(l) => Outcome::Leader(election::leader(&self.coord.elections, &l.election)?),
            Op::Expire(e) => Outcome::Expire(key_expiry::expire(self, e)?),
            Op::Persist(p) => Outcome::Persist(key_expiry::persist(self, p)?),
            Op::Ttl(t) => Outcome::Ttl(key_expiry::ttl(self.kv, &self.coord.key_expiry, &t.key)?),
            Op::ExpireKeys(e) => Outcome::ExpireKeys(key_expiry::expire_keys(self, e)?),
            Op::CheckpointKeys(c) => Outcome::CheckpointKeys(key_expiry::checkpoint(self, c)?),
            Op::Redis(command) => Outcome::Redis(redis::execute(self, command)?),
            Op::RedisMulti(multi) => Outcome::Redis(redis::execute_multi(self, multi)?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::parse_canonical_i64;

    #[test]
    fn only_canonical_decimal_i64_parses() {
        assert_eq!(parse_canonical_i64(b"0"), Some(0));
        assert_eq!(parse_canonical_i64(b"-42"), Some(-42));
        assert_eq!(parse_canonical_i64(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_canonical_i64(b"-9223372036854775808"), Some(i64::MIN));
        for bad in [
            &b""[..],
            b"+1",
            b"01",
            b"-0",
            b" 1",
            b"1 ",
            b"1.0",
            b"abc",
            b"9223372036854775808",
            b"\xff",
        ] {
            assert_eq!(parse_canonical_i64(bad), None, "{bad:?}");
        }
    }
}
