//! The cluster's membership as replicated state: `sm_membership` holds the
//! [`MembershipLog`] as of the applied slot, so it travels in snapshots and
//! survives restarts with the rest of the state machine (the consensus core
//! forgets a change once its slot is compacted).
//!
//! A chosen [`Change`] reaches the state machine as a *membership command*
//! ([`membership_command`]): its first byte, `0xFF`, is a protobuf key with
//! wire type 7, which no [`Request`](crate::Request) can start with, so it is
//! never mistaken for a client command (one that starts so but does not
//! decode as a change is refused as malformed, like any other bytes that are
//! no request). It is applied in its slot's write
//! transaction like any command (atomic with the applied index), moves no
//! revision and answers an empty response.

use redb::{ReadableTable, Table};
use synod_paxos::{Change, MembershipLog, Slot, ACTIVATION_DELAY};

use crate::error::StorageError;

/// First byte of a membership command.
const MEMBERSHIP_COMMAND: u8 = 0xFF;
/// The one key of `sm_membership`.
const LOG_KEY: &[u8] = b"log";

/// The command that carries `change` into the state machine.
pub fn membership_command(change: &Change) -> Vec<u8> {
    let mut bytes = vec![MEMBERSHIP_COMMAND];
    bytes.extend_from_slice(&change.encode());
    bytes
}

/// The change a membership command carries, if `bytes` is one (`Err` if it
/// is one but does not decode).
pub fn decode_membership_command(bytes: &[u8]) -> Option<Result<Change, String>> {
    let (first, rest) = bytes.split_first()?;
    (*first == MEMBERSHIP_COMMAND).then(|| Change::decode(rest).map_err(|e| e.to_string()))
}

/// The stored membership log (unknown if none is stored yet).
pub(crate) fn load(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
) -> Result<MembershipLog, StorageError> {
    match table.get(LOG_KEY)? {
        None => Ok(MembershipLog::default()),
        Some(bytes) => MembershipLog::decode(bytes.value()).map_err(|e| StorageError::Corrupt {
            table: "sm_membership",
            reason: e.to_string(),
        }),
    }
}

/// Stores `log`.
pub(crate) fn store(
    table: &mut Table<'_, &'static [u8], &'static [u8]>,
    log: &MembershipLog,
) -> Result<(), StorageError> {
    table.insert(LOG_KEY, log.encode().as_slice())?;
    Ok(())
}

/// Applies `change`, chosen in `slot`, to the stored log. A change that is not
/// valid against the newest membership changes nothing, as in the core.
pub(crate) fn record(
    table: &mut Table<'_, &'static [u8], &'static [u8]>,
    slot: u64,
    change: &Change,
) -> Result<(), StorageError> {
    let mut log = load(table)?;
    if log.is_unknown() {
        tracing::warn!(slot, %change, "membership change applied to an unknown membership; ignored");
        return Ok(());
    }
    if let Err(error) = log.record_chosen(Slot(slot), change, ACTIVATION_DELAY) {
        tracing::warn!(slot, %change, %error, "invalid membership change ignored");
    }
    log.forget_before(Slot(slot + 1));
    store(table, &log)
}
