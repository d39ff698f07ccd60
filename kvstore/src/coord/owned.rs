//! What each session owns: its ephemeral keys and the locks and elections it holds, leads or
//! waits for, one row each in `sm_session_owned`, and their counts in its record. Every change
//! of owner goes through here (a key written or deleted by the writer, a claim queued for or
//! dropped by a lock or an election), so the per-session limits
//! ([`MAX_SESSION_KEYS`](synod_wire::limits::MAX_SESSION_KEYS), [`MAX_SESSION_CLAIMS`]) cost
//! O(1) to check and ending a session visits exactly what it owns.
//!
//! These are table operations, below the writer and the commands that use them: nothing here
//! takes a [`Writer`](crate::writer::Writer).

use super::tables::{owned_key, CoordTables, OWNED_KEY};
use crate::error::{ExecError, StorageError};
use synod_wire::limits::MAX_SESSION_CLAIMS;
use synod_wire::RequestError;

/// A corrupt `sm_sessions` record or `sm_session_owned` row.
pub(super) fn corrupt(reason: String) -> StorageError {
    StorageError::Corrupt {
        table: "sm_sessions",
        reason,
    }
}

/// Record that `session` (which exists) owns ephemeral `key`.
pub(crate) fn attach_key(
    coord: &mut CoordTables<'_>,
    session: u64,
    key: &[u8],
) -> Result<(), StorageError> {
    let mut record = coord
        .session(session)?
        .ok_or_else(|| corrupt(format!("key attached to missing session {session}")))?;
    record.keys += 1;
    coord.put_session(session, &record)?;
    coord
        .owned()?
        .insert(owned_key(session, OWNED_KEY, key).as_slice(), &b""[..])?;
    Ok(())
}

/// Record that `session` no longer owns `key`.
pub(crate) fn detach_key(
    coord: &mut CoordTables<'_>,
    session: u64,
    key: &[u8],
) -> Result<(), StorageError> {
    let mut record = coord
        .session(session)?
        .ok_or_else(|| corrupt(format!("key owned by missing session {session}")))?;
    record.keys = record.keys.saturating_sub(1);
    coord.put_session(session, &record)?;
    coord
        .owned()?
        .remove(owned_key(session, OWNED_KEY, key).as_slice())?;
    Ok(())
}

/// Record that `session` now holds or waits for `name` of `kind`, within
/// [`MAX_SESSION_CLAIMS`]. The session must exist (else [`RequestError::SessionNotFound`]).
pub(crate) fn add_claim(
    coord: &mut CoordTables<'_>,
    session: u64,
    kind: u8,
    name: &[u8],
) -> Result<(), ExecError> {
    let mut record = coord
        .session(session)?
        .ok_or(RequestError::SessionNotFound { session })?;
    if record.claims >= MAX_SESSION_CLAIMS {
        return Err(RequestError::TooManyClaims {
            session,
            limit: MAX_SESSION_CLAIMS,
        }
        .into());
    }
    record.claims += 1;
    coord.put_session(session, &record)?;
    coord
        .owned()?
        .insert(owned_key(session, kind, name).as_slice(), &b""[..])?;
    Ok(())
}

/// Record that `session` no longer holds or waits for `name` of `kind`.
pub(crate) fn remove_claim(
    coord: &mut CoordTables<'_>,
    session: u64,
    kind: u8,
    name: &[u8],
) -> Result<(), StorageError> {
    if let Some(mut record) = coord.session(session)? {
        record.claims = record.claims.saturating_sub(1);
        coord.put_session(session, &record)?;
    }
    coord
        .owned()?
        .remove(owned_key(session, kind, name).as_slice())?;
    Ok(())
}
