//! The owner-plus-FIFO-queue record shared by locks and elections ([`QueueRecord`]).

use prost::Message;
use redb::{ReadableTable, Table};

use super::owned;
use super::tables::{get_record, CoordTables, QueueRecord, Waiter};
use crate::error::{ExecError, StorageError};
use synod_wire::error::display_name;
use synod_wire::limits::MAX_QUEUE_WAITERS;
use synod_wire::RequestError;

/// The record of `name` in `table` (`table_name` for errors); an empty one if absent.
pub(crate) fn load(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    table_name: &'static str,
    name: &[u8],
) -> Result<QueueRecord, StorageError> {
    Ok(get_record(table, table_name, name)?.unwrap_or_default())
}

/// Store `record` as `name`'s, or delete it if it holds nothing.
pub(crate) fn store(
    table: &mut Table<'_, &'static [u8], &'static [u8]>,
    name: &[u8],
    record: &QueueRecord,
) -> Result<(), StorageError> {
    if record.is_vacant() {
        table.remove(name)?;
    } else {
        table.insert(name, record.encode_to_vec().as_slice())?;
    }
    Ok(())
}

/// Append `session` (which must exist) to the queue of `what` `name`, recording the claim.
/// Returns its 1-based position.
pub(crate) fn enqueue(
    coord: &mut CoordTables<'_>,
    record: &mut QueueRecord,
    (what, kind): (&'static str, u8),
    name: &[u8],
    session: u64,
    value: &[u8],
) -> Result<u64, ExecError> {
    if record.waiters.len() >= MAX_QUEUE_WAITERS {
        return Err(RequestError::TooManyWaiters {
            what,
            name: display_name(name),
            limit: MAX_QUEUE_WAITERS,
        }
        .into());
    }
    owned::add_claim(coord, session, kind, name)?;
    record.waiters.push(Waiter {
        session,
        value: value.to_vec(),
    });
    Ok(record.waiters.len() as u64)
}

/// Take `session` out of the queue; whether it was in it.
pub(crate) fn remove_waiter(record: &mut QueueRecord, session: u64) -> bool {
    let before = record.waiters.len();
    record.waiters.retain(|w| w.session != session);
    record.waiters.len() != before
}

/// Make the next waiter (if any) the holder at `revision`; returns it. The record must have no
/// holder.
pub(crate) fn promote_next(record: &mut QueueRecord, revision: u64) -> Option<Waiter> {
    assert_eq!(record.holder, 0, "promote only into a free record");
    if record.waiters.is_empty() {
        return None;
    }
    let next = record.waiters.remove(0);
    record.holder = next.session;
    record.holder_revision = revision;
    record.holder_value = next.value.clone();
    Some(next)
}
