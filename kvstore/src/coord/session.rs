//! Sessions: open, keep-alive, close, expire, checkpoint, and what a session owns.
//!
//! # Time without a clock
//! Apply never reads a clock. A session's record holds its TTL, the remaining TTL a new leader
//! must give it, and its keep-alive count; nothing in the state machine knows when it is due.
//! The leader's [`SessionClock`](crate::SessionClock) keeps the deadlines on the leader's clock and
//! proposes [`ExpireSession`] when one passes; the session ends only when that command applies.
//!
//! - Open: the id is the revision the open consumes (unique, increasing, the same on every
//!   node); remaining = TTL.
//! - Keep-alive: count + 1, remaining = TTL (a new leader gives a full TTL again). Consumes no
//!   revision: no key, holder or leader changes.
//! - Checkpoint: per entry, remaining = the leader's remaining TTL, if the keep-alive count
//!   still matches (else a keep-alive applied since, and its full TTL stands).
//! - Expire: ends the session only if the keep-alive count matches the leader's, so a keep-alive
//!   that applied after the leader decided wins.
//! - Close and expire delete the session's ephemeral keys, release its locks (session expiry
//!   puts them in lock-delay, see [`super::lock`]), pass its elections on and take it out of
//!   every queue, all in one command at one revision.
//!
//! What a session owns is recorded as it changes hands (see `owned`), so ending one visits
//! exactly what it owns.

use std::ops::Bound;

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata};

use super::owned::corrupt;
use super::tables::{owned_key, SessionRecord, OWNED_ELECTION, OWNED_KEY, OWNED_LOCK, SESSIONS};
use super::{election, lock};
use crate::effects::SessionEvent;
use crate::error::{ExecError, StorageError};
use crate::tables::decode_record;
use crate::writer::Writer;
use synod_wire::command::{
    CheckpointSessions, CloseSession, ExpireSession, KeepAlive, OpenSession,
};
use synod_wire::limits::MAX_SESSIONS;
use synod_wire::response::{
    CheckpointSessionsResponse, CloseSessionResponse, ExpireSessionResponse, KeepAliveResponse,
    OpenSessionResponse,
};
use synod_wire::RequestError;

/// An open session as the state machine records it: what a new leader's
/// [`SessionClock`](crate::SessionClock) starts from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionInfo {
    /// The session id.
    pub session: u64,
    /// Its TTL.
    pub ttl_ms: u64,
    /// The TTL a new leader gives it: the last checkpointed remaining TTL, or the full TTL if it
    /// was opened or kept alive since.
    pub remaining_ms: u64,
    /// Keep-alives applied so far.
    pub keepalives: u64,
}

/// Apply an [`OpenSession`].
pub(crate) fn open(
    w: &mut Writer<'_, '_>,
    open: &OpenSession,
) -> Result<OpenSessionResponse, ExecError> {
    if w.coord.sessions()?.len()? >= MAX_SESSIONS {
        return Err(RequestError::TooManySessions {
            limit: MAX_SESSIONS,
        }
        .into());
    }
    let session = w.revision;
    if w.coord.session(session)?.is_some() {
        return Err(corrupt(format!("session {session} exists before its revision")).into());
    }
    let record = SessionRecord {
        ttl_ms: open.ttl_ms,
        remaining_ms: open.ttl_ms,
        keepalives: 0,
        keys: 0,
        claims: 0,
    };
    w.coord.put_session(session, &record)?;
    w.changed = true;
    w.effects.session_events.push(SessionEvent::Opened {
        session,
        ttl_ms: open.ttl_ms,
    });
    Ok(OpenSessionResponse {
        session,
        ttl_ms: open.ttl_ms,
    })
}

/// Apply a [`KeepAlive`].
pub(crate) fn keep_alive(
    w: &mut Writer<'_, '_>,
    keep_alive: &KeepAlive,
) -> Result<KeepAliveResponse, ExecError> {
    let session = keep_alive.session;
    let mut record = w
        .coord
        .session(session)?
        .ok_or(RequestError::SessionNotFound { session })?;
    record.keepalives += 1;
    record.remaining_ms = record.ttl_ms;
    w.coord.put_session(session, &record)?;
    w.effects.session_events.push(SessionEvent::KeptAlive {
        session,
        keepalives: record.keepalives,
    });
    Ok(KeepAliveResponse {
        ttl_ms: record.ttl_ms,
        keepalives: record.keepalives,
    })
}

/// Apply a [`CloseSession`].
pub(crate) fn close(
    w: &mut Writer<'_, '_>,
    close: &CloseSession,
) -> Result<CloseSessionResponse, ExecError> {
    let session = close.session;
    if w.coord.session(session)?.is_none() {
        return Err(RequestError::SessionNotFound { session }.into());
    }
    let (deleted_keys, released) = end(w, session, false)?;
    Ok(CloseSessionResponse {
        deleted_keys,
        released,
    })
}

/// Apply an [`ExpireSession`].
pub(crate) fn expire(
    w: &mut Writer<'_, '_>,
    expire: &ExpireSession,
) -> Result<ExpireSessionResponse, ExecError> {
    match w.coord.session(expire.session)? {
        Some(record) if record.keepalives == expire.keepalives => {
            let (deleted_keys, released) = end(w, expire.session, true)?;
            Ok(ExpireSessionResponse {
                expired: true,
                deleted_keys,
                released,
            })
        }
        _ => Ok(ExpireSessionResponse::default()),
    }
}

/// Apply a [`CheckpointSessions`].
pub(crate) fn checkpoint(
    w: &mut Writer<'_, '_>,
    checkpoint: &CheckpointSessions,
) -> Result<CheckpointSessionsResponse, ExecError> {
    let mut applied = 0;
    for entry in &checkpoint.entries {
        let Some(mut record) = w.coord.session(entry.session)? else {
            continue;
        };
        if record.keepalives != entry.keepalives {
            continue;
        }
        record.remaining_ms = entry.remaining_ms.min(record.ttl_ms);
        w.coord.put_session(entry.session, &record)?;
        w.effects.session_events.push(SessionEvent::Checkpointed {
            session: entry.session,
            remaining_ms: record.remaining_ms,
        });
        applied += 1;
    }
    Ok(CheckpointSessionsResponse { applied })
}

/// End an existing session: delete its keys, release or leave its locks and elections, forget
/// it. Returns (keys deleted, locks and elections released or left).
fn end(w: &mut Writer<'_, '_>, session: u64, expired: bool) -> Result<(u64, u64), ExecError> {
    let lower = owned_key(session, 0, b"");
    let upper = session.checked_add(1).map(|next| owned_key(next, 0, b""));
    let upper_bound = match &upper {
        Some(u) => Bound::Excluded(u.as_slice()),
        None => Bound::Unbounded,
    };
    let bounds = (Bound::Included(lower.as_slice()), upper_bound);
    let mut owned = Vec::new();
    for row in w.coord.owned()?.range::<&[u8]>(bounds)? {
        let (key, _) = row?;
        let key = key.value();
        match key.get(8) {
            Some(&kind) => owned.push((kind, key[9..].to_vec())),
            None => return Err(corrupt(format!("owned key of {} bytes", key.len())).into()),
        }
    }
    let (mut deleted_keys, mut released) = (0, 0);
    for (kind, name) in owned {
        match kind {
            OWNED_KEY => {
                if w.remove_key(&name, false)?.is_some() {
                    deleted_keys += 1;
                }
            }
            OWNED_LOCK => {
                lock::session_ended(w, &name, session, expired)?;
                released += 1;
            }
            OWNED_ELECTION => {
                election::session_ended(w, &name, session)?;
                released += 1;
            }
            other => return Err(corrupt(format!("unknown owned kind {other}")).into()),
        }
    }
    w.coord
        .owned()?
        .retain_in::<&[u8], _>(bounds, |_, _| false)?;
    w.coord
        .sessions()?
        .remove(super::tables::session_key(session).as_slice())?;
    w.changed = true;
    w.effects
        .session_events
        .push(SessionEvent::Ended { session, expired });
    Ok((deleted_keys, released))
}

/// Every open session, by id (see [`StateMachine::sessions`](crate::StateMachine::sessions)).
pub(crate) fn list(db: &Database) -> Result<Vec<SessionInfo>, StorageError> {
    let txn = db.begin_read()?;
    let table = txn.open_table(SESSIONS)?;
    let mut sessions = Vec::new();
    for row in table.iter()? {
        let (key, value) = row?;
        let id: [u8; 8] = key
            .value()
            .try_into()
            .map_err(|_| corrupt(format!("key of {} bytes", key.value().len())))?;
        let record: SessionRecord = decode_record("sm_sessions", value.value())?;
        sessions.push(SessionInfo {
            session: u64::from_be_bytes(id),
            ttl_ms: record.ttl_ms,
            remaining_ms: record.remaining_ms,
            keepalives: record.keepalives,
        });
    }
    Ok(sessions)
}
