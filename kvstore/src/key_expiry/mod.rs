//! Applying key expiry: TTLs set by writes and [`Expire`], removed by [`Persist`] and by every
//! deletion, keys deleted by the leader's [`ExpireKeys`], remaining TTLs recorded by
//! [`CheckpointKeys`]; and reading them ([`Ttl`](crate::Ttl), `list`).
//!
//! See [`synod_wire::expiry_command`] for the rules. Invariant: `sm_key_expiry` holds a record only
//! for a key that exists in `sm_kv`. The writer keeps it: every write gives the key the expiry
//! its request says and every deletion clears it, both in the writer's one bookkeeping of a key
//! write (`writer`), which this module's commands also go through.
//!
//! Apply never reads a clock: the leader's [`KeyExpiryClock`] ([`clock`]) keeps the deadlines
//! and proposes the commands that delete expired keys. It starts from the [`KeyExpiry`] records
//! read here, and this module only re-exports it: the two imports both ways are the record and
//! its one reader.

use redb::{Database, ReadableDatabase, ReadableTable};

use crate::coord::tables::{get_record, KeyExpiryRecord, KEY_EXPIRY};
use crate::effects::KeyExpiryEvent;
use crate::error::{ExecError, StorageError};
use crate::tables::decode_record;
use crate::writer::Writer;
use synod_wire::command::{CheckpointKeys, Expire, ExpireIf, ExpireKeys, Persist};
use synod_wire::response::{
    CheckpointKeysResponse, ExpireKeysResponse, ExpireResponse, PersistResponse, TtlResponse,
};

pub mod clock;

pub use clock::{KeyExpiryClock, KeyExpiryConfig};

/// A key's expiry as the state machine records it: what a new leader's
/// [`KeyExpiryClock`] starts from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyExpiry {
    /// The key.
    pub key: Vec<u8>,
    /// The revision of the command that set this expiry.
    pub expiry_revision: u64,
    /// The TTL a new leader gives the key: the TTL set, or the last checkpointed remaining TTL.
    pub remaining_ms: u64,
}

/// Apply an [`Expire`].
pub(crate) fn expire(w: &mut Writer<'_, '_>, expire: &Expire) -> Result<ExpireResponse, ExecError> {
    let key = expire.key.as_slice();
    if w.kv.get(key)?.is_none() {
        return Ok(ExpireResponse { applied: false });
    }
    let current = w.coord.key_expiry(key)?;
    let holds = match ExpireIf::try_from(expire.condition) {
        Ok(ExpireIf::Always) => true,
        Ok(ExpireIf::NoExpiry) => current.is_none(),
        Ok(ExpireIf::HasExpiry) => current.is_some(),
        Ok(ExpireIf::ExpiryRevision) => current.map_or(0, |c| c.revision) == expire.expiry_revision,
        // Refused by validation.
        Err(_) => false,
    };
    if !holds {
        return Ok(ExpireResponse { applied: false });
    }
    match u64::try_from(expire.ttl_ms) {
        Ok(ttl_ms) if ttl_ms > 0 => w.set_key_expiry(key, ttl_ms)?,
        _ => {
            w.remove_key(key, true)?;
        }
    }
    Ok(ExpireResponse { applied: true })
}

/// Apply a [`Persist`].
pub(crate) fn persist(
    w: &mut Writer<'_, '_>,
    persist: &Persist,
) -> Result<PersistResponse, ExecError> {
    let removed = w.coord.remove_key_expiry(&persist.key)?;
    if removed {
        w.changed = true;
        w.effects.key_expiry_events.push(KeyExpiryEvent::Cleared {
            key: persist.key.clone(),
        });
    }
    Ok(PersistResponse { removed })
}

/// Apply an [`ExpireKeys`].
pub(crate) fn expire_keys(
    w: &mut Writer<'_, '_>,
    expire: &ExpireKeys,
) -> Result<ExpireKeysResponse, ExecError> {
    let mut deleted = 0;
    for entry in &expire.entries {
        let named = w
            .coord
            .key_expiry(&entry.key)?
            .is_some_and(|r| r.revision == entry.expiry_revision);
        if named && w.remove_key(&entry.key, true)?.is_some() {
            deleted += 1;
        }
    }
    Ok(ExpireKeysResponse { deleted })
}

/// Apply a [`CheckpointKeys`].
pub(crate) fn checkpoint(
    w: &mut Writer<'_, '_>,
    checkpoint: &CheckpointKeys,
) -> Result<CheckpointKeysResponse, ExecError> {
    let mut applied = 0;
    for entry in &checkpoint.entries {
        let Some(mut record) = w.coord.key_expiry(&entry.key)? else {
            continue;
        };
        if record.revision != entry.expiry_revision {
            continue;
        }
        record.remaining_ms = record.remaining_ms.min(entry.remaining_ms);
        w.coord.put_key_expiry(&entry.key, &record)?;
        applied += 1;
    }
    Ok(CheckpointKeysResponse { applied })
}

/// Read the expiry of `key` (the state machine's view: the recorded remaining TTL).
pub(crate) fn ttl(
    kv: &impl ReadableTable<&'static [u8], &'static [u8]>,
    expiry: &impl ReadableTable<&'static [u8], &'static [u8]>,
    key: &[u8],
) -> Result<TtlResponse, StorageError> {
    if kv.get(key)?.is_none() {
        return Ok(TtlResponse::default());
    }
    let record: Option<KeyExpiryRecord> = get_record(expiry, "sm_key_expiry", key)?;
    Ok(TtlResponse {
        exists: true,
        expiry_revision: record.map_or(0, |r| r.revision),
        remaining_ms: record.map_or(0, |r| r.remaining_ms),
        leader_clock: false,
    })
}

/// Every key with an expiry, in key order (see
/// [`StateMachine::key_expiries`](crate::StateMachine::key_expiries)).
pub(crate) fn list(db: &Database) -> Result<Vec<KeyExpiry>, StorageError> {
    let txn = db.begin_read()?;
    let table = txn.open_table(KEY_EXPIRY)?;
    let mut keys = Vec::new();
    for row in table.iter()? {
        let (key, value) = row?;
        let record: KeyExpiryRecord = decode_record("sm_key_expiry", value.value())?;
        keys.push(KeyExpiry {
            key: key.value().to_vec(),
            expiry_revision: record.revision,
            remaining_ms: record.remaining_ms,
        });
    }
    Ok(keys)
}
