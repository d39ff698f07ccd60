//! Executing one validated op in the slot's write transaction: [`execute`] checks the request's
//! fence, hands the op to the module it belongs to (`kv`, `coord::{session, lock, election}`,
//! `key_expiry`, `redis`) with a [`Writer`], and holds every command to the revision rule: a
//! command that changed something consumes exactly one revision, and a refused one leaves no
//! effect behind. Each command checks every condition that can refuse it before it writes
//! anything, so a refused command also leaves every table as it was.
//!
//! Reads outside the log go through `StateMachine::read`, which serves the kv reads itself
//! ([`kv::get`], [`kv::scan`]) and the others with [`read_coord`].

use crate::bugs::Active;
use crate::coord::tables::{CoordTables, ELECTIONS, KEY_EXPIRY, LOCKS, REDIS_ELEMENTS};
use crate::coord::{election, lock, session};
use crate::effects::SlotEffects;
use crate::error::{ExecError, StorageError};
use crate::key_expiry;
use crate::kv;
use crate::redis;
use crate::tables::KV;
use crate::writer::{KvTable, TtlMode, Writer};
use synod_wire::command::{Op, Request};
use synod_wire::response::Outcome;

/// Serve a coordination or key expiry query (LockHolder, Leader or Ttl) from a read transaction;
/// `None` for other ops.
pub(crate) fn read_coord(
    txn: &redb::ReadTransaction,
    op: &Op,
) -> Result<Option<Outcome>, StorageError> {
    Ok(match op {
        Op::LockHolder(h) => Some(Outcome::LockHolder(lock::holder(
            &txn.open_table(LOCKS)?,
            &h.name,
        )?)),
        Op::Leader(l) => Some(Outcome::Leader(election::leader(
            &txn.open_table(ELECTIONS)?,
            &l.election,
        )?)),
        Op::Ttl(t) => Some(Outcome::Ttl(key_expiry::ttl(
            &txn.open_table(KV)?,
            &txn.open_table(KEY_EXPIRY)?,
            &t.key,
        )?)),
        Op::Redis(command) => Some(Outcome::Redis(redis::read(
            &txn.open_table(KV)?,
            &txn.open_table(REDIS_ELEMENTS)?,
            command,
        )?)),
        _ => None,
    })
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
        effects.key_expiry_events.len(),
    );
    let next_revision = *revision + 1;
    let mut writer = Writer::new(kv, coord, effects, next_revision, request, bugs);
    match run(&mut writer, request, op) {
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
                .key_expiry_events
                .truncate(key_expiry_events_before);
            Err(e)
        }
    }
}

/// Check `request`'s fence, then execute `op` with the module it belongs to.
fn run(w: &mut Writer<'_, '_>, request: &Request, op: &Op) -> Result<Outcome, ExecError> {
    if let Some(fence) = &request.fence {
        lock::check_fence(w.coord.locks()?, fence, w.bugs)?;
    }
    Ok(match op {
        Op::Put(put) => {
            w.check_owner([put.key.as_slice()])?;
            Outcome::Put(w.put(&put.key, &put.value, put.prev_kv, TtlMode::Clear)?)
        }
        Op::Get(g) => Outcome::Get(kv::get(w.kv, &g.key)?),
        Op::Delete(delete) => Outcome::Delete(kv::delete(w, &delete.key, delete.prev_kv)?),
        Op::DeleteRange(range) => Outcome::DeleteRange(w.delete_range(range)?),
        Op::Scan(s) => Outcome::Scan(kv::scan(w.kv, s)?),
        Op::CompareAndSwap(cas) => Outcome::CompareAndSwap(kv::compare_and_swap(w, cas)?),
        Op::Txn(txn) => Outcome::Txn(kv::txn(w, txn)?),
        Op::Incr(incr) => Outcome::Incr(kv::incr(w, incr)?),
        Op::OpenSession(open) => Outcome::OpenSession(session::open(w, open)?),
        Op::KeepAlive(k) => Outcome::KeepAlive(session::keep_alive(w, k)?),
        Op::CloseSession(c) => Outcome::CloseSession(session::close(w, c)?),
        Op::ExpireSession(e) => Outcome::ExpireSession(session::expire(w, e)?),
        Op::CheckpointSessions(c) => Outcome::CheckpointSessions(session::checkpoint(w, c)?),
        Op::Lock(l) => Outcome::Lock(lock::lock(w, l)?),
        Op::Unlock(u) => Outcome::Unlock(lock::unlock(w, u)?),
        Op::ReleaseLockDelay(r) => Outcome::ReleaseLockDelay(lock::release_delay(w, r)?),
        Op::LockHolder(h) => Outcome::LockHolder(lock::holder(w.coord.locks()?, &h.name)?),
        Op::Campaign(c) => Outcome::Campaign(election::campaign(w, c)?),
        Op::Proclaim(p) => Outcome::Proclaim(election::proclaim(w, p)?),
        Op::Resign(r) => Outcome::Resign(election::resign(w, r)?),
        Op::Leader(l) => Outcome::Leader(election::leader(w.coord.elections()?, &l.election)?),
        Op::Expire(e) => Outcome::Expire(key_expiry::expire(w, e)?),
        Op::Persist(p) => Outcome::Persist(key_expiry::persist(w, p)?),
        Op::Ttl(t) => Outcome::Ttl(key_expiry::ttl(w.kv, &w.coord.key_expiry, &t.key)?),
        Op::ExpireKeys(e) => Outcome::ExpireKeys(key_expiry::expire_keys(w, e)?),
        Op::CheckpointKeys(c) => Outcome::CheckpointKeys(key_expiry::checkpoint(w, c)?),
        Op::Redis(command) => Outcome::Redis(redis::execute(w, command)?),
        Op::RedisMulti(multi) => Outcome::Redis(redis::execute_multi(w, multi)?),
    })
}
