//! Locks with fencing tokens, FIFO waiters and lock-delay; the fence check of writes.
//!
//! A lock has at most one holder session and a FIFO queue of waiting sessions (a record in
//! `sm_locks`). Granting consumes a revision, and that revision is the grant's fencing
//! token: tokens of one lock strictly increase, since every later grant happens in a later
//! command. A write fenced with `(lock, token)` applies only while `token` is the lock's
//! current one, else it is refused with
//! [`RequestError::FencingTokenRejected`].
//!
//! Unlock and session close hand the lock to the next waiter in the same command. A session
//! that *expires* while holding a lock leaves the lock in **lock-delay** (as in Chubby): no
//! holder, waiters stay queued, nobody is granted it, until the leader proposes
//! [`ReleaseLockDelay`] naming the revision the delay began at. Apply has no clock, so the
//! delay's length is the leader's business: its [`SessionClock`](crate::SessionClock) proposes
//! the release `lock_delay_ms` after it saw the delay begin (a new leader restarts the full
//! delay, so a delay may last longer than configured, never shorter on the leader's clock).
//! The point: a holder whose session expired may not know it yet (paused, partitioned) and may
//! still act on unfenced resources; the delay gives it time to notice. Fenced writes need no
//! delay: its token is rejected from the moment its session expired.

use redb::{Database, ReadableDatabase, ReadableTable};

use super::owned;
use super::queue;
use super::tables::{QueueRecord, LOCKS, OWNED_LOCK};
use crate::bugs::{Active, Bug};
use crate::effects::SessionEvent;
use crate::error::{ExecError, StorageError};
use crate::tables::decode_record;
use crate::writer::Writer;
use crate::EventKind;
use synod_wire::command::{Fence, Lock, ReleaseLockDelay, Unlock};
use synod_wire::error::display_name;
use synod_wire::response::{
    LockHolderResponse, LockResponse, LockStatus, ReleaseLockDelayResponse, UnlockResponse,
};
use synod_wire::RequestError;

/// A lock in lock-delay, as the state machine records it: what a new leader's
/// [`SessionClock`](crate::SessionClock) must schedule a release for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DelayedLock {
    /// The lock.
    pub name: Vec<u8>,
    /// The revision its delay began at (what the [`ReleaseLockDelay`] must name).
    pub delayed_revision: u64,
}

const WHAT: (&str, u8) = ("lock", OWNED_LOCK);

fn load(w: &mut Writer<'_, '_>, name: &[u8]) -> Result<QueueRecord, StorageError> {
    queue::load(w.coord.locks()?, "sm_locks", name)
}

/// Grant the next waiter of a free, undelayed lock, recording the holder change from
/// `prev_holder`. Returns the new holder (0 if none waited).
fn grant_next(
    w: &mut Writer<'_, '_>,
    record: &mut QueueRecord,
    name: &[u8],
    prev_holder: u64,
) -> u64 {
    let next = queue::promote_next(record, w.revision).map_or(0, |n| n.session);
    if next != 0 && w.bugs.has(Bug::SessionIdTokens) {
        record.holder_revision = next;
    }
    if next != 0 || prev_holder != 0 {
        w.changed = true;
        w.event(
            EventKind::LockHolder,
            name,
            (None, prev_holder),
            (None, next),
        );
    }
    next
}

/// Apply a [`Lock`].
pub(crate) fn lock(w: &mut Writer<'_, '_>, lock: &Lock) -> Result<LockResponse, ExecError> {
    let (name, session) = (lock.name.as_slice(), lock.session);
    if w.coord.session(session)?.is_none() {
        return Err(RequestError::SessionNotFound { session }.into());
    }
    let mut record = load(w, name)?;
    let delayed = record.delayed_revision != 0;
    if record.holder == session {
        return Ok(LockResponse {
            status: LockStatus::Granted as i32,
            token: record.holder_revision,
            holder: session,
            ..Default::default()
        });
    }
    if let Some(position) = record.position(session) {
        return Ok(LockResponse {
            status: LockStatus::Queued as i32,
            holder: record.holder,
            position,
            delayed,
            ..Default::default()
        });
    }
    let grant_held = w.bugs.has(Bug::GrantHeldLocks) && record.holder != 0;
    if (record.holder == 0 || grant_held) && !delayed {
        assert!(
            grant_held || record.waiters.is_empty(),
            "a free lock has no waiters"
        );
        owned::add_claim(w.coord, session, OWNED_LOCK, name)?;
        record.holder = session;
        record.holder_revision = if w.bugs.has(Bug::SessionIdTokens) {
            session
        } else {
            w.revision
        };
        queue::store(w.coord.locks()?, name, &record)?;
        w.changed = true;
        w.event(EventKind::LockHolder, name, (None, 0), (None, session));
        return Ok(LockResponse {
            status: LockStatus::Granted as i32,
            token: record.holder_revision,
            holder: session,
            ..Default::default()
        });
    }
    if !lock.wait {
        return Ok(LockResponse {
            status: LockStatus::Busy as i32,
            holder: record.holder,
            delayed,
            ..Default::default()
        });
    }
    let position = queue::enqueue(w.coord, &mut record, WHAT, name, session, b"")?;
    queue::store(w.coord.locks()?, name, &record)?;
    w.changed = true;
    Ok(LockResponse {
        status: LockStatus::Queued as i32,
        holder: record.holder,
        position,
        delayed,
        ..Default::default()
    })
}

/// Apply an [`Unlock`].
pub(crate) fn unlock(w: &mut Writer<'_, '_>, unlock: &Unlock) -> Result<UnlockResponse, ExecError> {
    let (name, session) = (unlock.name.as_slice(), unlock.session);
    let mut record = load(w, name)?;
    let response = if record.holder == session {
        record.holder = 0;
        record.holder_revision = 0;
        let next_holder = grant_next(w, &mut record, name, session);
        UnlockResponse {
            released: true,
            next_holder,
        }
    } else if queue::remove_waiter(&mut record, session) {
        w.changed = true;
        UnlockResponse::default()
    } else {
        return Err(RequestError::NotLockHolder {
            lock: display_name(name),
            session,
        }
        .into());
    };
    owned::remove_claim(w.coord, session, OWNED_LOCK, name)?;
    queue::store(w.coord.locks()?, name, &record)?;
    Ok(response)
}

/// Apply a [`ReleaseLockDelay`].
pub(crate) fn release_delay(
    w: &mut Writer<'_, '_>,
    release: &ReleaseLockDelay,
) -> Result<ReleaseLockDelayResponse, ExecError> {
    let name = release.name.as_slice();
    let mut record = load(w, name)?;
    if record.delayed_revision == 0 || record.delayed_revision != release.delayed_revision {
        return Ok(ReleaseLockDelayResponse::default());
    }
    record.delayed_revision = 0;
    w.changed = true;
    let holder = grant_next(w, &mut record, name, 0);
    queue::store(w.coord.locks()?, name, &record)?;
    w.effects.session_events.push(SessionEvent::LockDelayEnded {
        name: name.to_vec(),
        delayed_revision: release.delayed_revision,
    });
    Ok(ReleaseLockDelayResponse {
        released: true,
        holder,
    })
}

/// Session `session` ended (expired if `expired`): release lock `name` if it held it (into
/// lock-delay on session expiry, else to the next waiter), or take it out of the queue. The caller
/// forgets the session's claims.
pub(crate) fn session_ended(
    w: &mut Writer<'_, '_>,
    name: &[u8],
    session: u64,
    expired: bool,
) -> Result<(), ExecError> {
    let mut record = load(w, name)?;
    if record.holder == session {
        record.holder = 0;
        record.holder_revision = 0;
        if expired {
            record.delayed_revision = w.revision;
            w.event(EventKind::LockHolder, name, (None, session), (None, 0));
            w.effects.session_events.push(SessionEvent::LockDelayed {
                name: name.to_vec(),
                delayed_revision: w.revision,
            });
        } else {
            grant_next(w, &mut record, name, session);
        }
    } else if !queue::remove_waiter(&mut record, session) {
        return Err(StorageError::Corrupt {
            table: "sm_session_owned",
            reason: format!(
                "session {session} claims lock {} it neither holds nor waits for",
                display_name(name)
            ),
        }
        .into());
    }
    w.changed = true;
    queue::store(w.coord.locks()?, name, &record)?;
    Ok(())
}

/// Refuse the request unless `fence.token` is lock `fence.lock_name`'s current token.
pub(crate) fn check_fence(
    locks: &impl ReadableTable<&'static [u8], &'static [u8]>,
    fence: &Fence,
    bugs: Active,
) -> Result<(), ExecError> {
    let record = queue::load(locks, "sm_locks", &fence.lock_name)?;
    if bugs.has(Bug::FenceDuringLockDelay) && record.holder == 0 && record.delayed_revision != 0 {
        return Ok(());
    }
    let current = (record.holder != 0).then_some(record.holder_revision);
    if current != Some(fence.token) {
        return Err(RequestError::FencingTokenRejected {
            lock: display_name(&fence.lock_name),
            token: fence.token,
            current,
        }
        .into());
    }
    Ok(())
}

/// Answer a [`LockHolder`](crate::LockHolder) query.
pub(crate) fn holder(
    locks: &impl ReadableTable<&'static [u8], &'static [u8]>,
    name: &[u8],
) -> Result<LockHolderResponse, StorageError> {
    let record = queue::load(locks, "sm_locks", name)?;
    Ok(LockHolderResponse {
        holder: record.holder,
        token: record.holder_revision,
        waiters: record.waiter_sessions(),
        delayed_revision: record.delayed_revision,
    })
}

/// Every lock in lock-delay, by name (see
/// [`StateMachine::delayed_locks`](crate::StateMachine::delayed_locks)). Reads every lock.
pub(crate) fn delayed(db: &Database) -> Result<Vec<DelayedLock>, StorageError> {
    let txn = db.begin_read()?;
    let mut delayed = Vec::new();
    for row in txn.open_table(LOCKS)?.iter()? {
        let (key, value) = row?;
        let record: QueueRecord = decode_record("sm_locks", value.value())?;
        if record.delayed_revision != 0 {
            delayed.push(DelayedLock {
                name: key.value().to_vec(),
                delayed_revision: record.delayed_revision,
            });
        }
    }
    Ok(delayed)
}
