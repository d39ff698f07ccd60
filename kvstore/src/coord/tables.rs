//! The coordination tables (sessions, what each session owns, locks, elections) and, beside
//! them, the other tables that map bytes to bytes: key expiries, the membership log, the
//! elements of Redis collections, the watch history. They sit together because snapshots
//! stream and stage them all one way ([`COORD_TABLES`]) and a command opens them as one
//! [`CoordTables`]; the rules of each are its own module's (`key_expiry`, `membership`, `redis`,
//! `watch`).
//!
//! | table | key | value |
//! |---|---|---|
//! | `sm_elections` | election name | [`QueueRecord`]: leader, its value and revision, candidates |
//! | `sm_key_expiry` | user key | [`KeyExpiryRecord`]: expiry revision, remaining TTL |
//! | `sm_locks` | lock name | [`QueueRecord`]: holder, token, lock-delay, waiters |
//! | `sm_membership` | `log` | the cluster's membership log (see [`crate::membership`]) |
//! | `sm_redis_elements` | collection id (8 bytes BE) ‖ element key | element value (see [`crate::redis`]) |
//! | `sm_session_owned` | session (8 bytes BE) ‖ kind (1 byte) ‖ name | empty |
//! | `sm_sessions` | session (8 bytes BE) | [`SessionRecord`]: TTL, remaining TTL, counts |
//! | `sm_watch_events` | revision (8 bytes BE) ‖ index (4 bytes BE) | an [`Event`](crate::Event) |
//!
//! `sm_session_owned` lists, per session, its ephemeral keys (kind 0), the locks it holds or
//! waits for (kind 1) and the elections it leads or waits in (kind 2), so ending a session
//! visits exactly what it owns, in a fixed order. Every table maps bytes to bytes, so snapshots
//! copy them all the same way ([`COORD_TABLES`]); the names sort in the order of that list.
//! Records are prost messages.

use prost::Message;
use redb::{
    ReadableTable, ReadableTableMetadata, Table, TableDefinition, TableHandle, WriteTransaction,
};

use crate::error::StorageError;
use crate::tables::decode_record;

/// Election name to its [`QueueRecord`].
pub(crate) const ELECTIONS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("sm_elections");
/// User key (with an expiry) to its [`KeyExpiryRecord`].
pub(crate) const KEY_EXPIRY: TableDefinition<&[u8], &[u8]> = TableDefinition::new("sm_key_expiry");
/// Lock name to its [`QueueRecord`].
pub(crate) const LOCKS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("sm_locks");
/// `log` to the encoded membership log.
pub(crate) const MEMBERSHIP: TableDefinition<&[u8], &[u8]> = TableDefinition::new("sm_membership");
/// The elements of the Redis collections (hashes, sets, lists, sorted sets): see
/// [`crate::redis`] for the layout.
pub(crate) const REDIS_ELEMENTS: TableDefinition<&[u8], &[u8]> =
    TableDefinition::new("sm_redis_elements");
/// [`owned_key`] to nothing: what each session owns.
pub(crate) const SESSION_OWNED: TableDefinition<&[u8], &[u8]> =
    TableDefinition::new("sm_session_owned");
/// Session id (8 bytes BE) to its [`SessionRecord`].
pub(crate) const SESSIONS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("sm_sessions");
/// [`event_key`] to an encoded [`Event`](crate::Event).
pub(crate) const WATCH_EVENTS: TableDefinition<&[u8], &[u8]> =
    TableDefinition::new("sm_watch_events");

/// A coordination table and the table a snapshot install stages it in.
#[derive(Clone, Copy)]
pub(crate) struct CoordTable {
    /// The live `sm_*` table.
    pub live: TableDefinition<'static, &'static [u8], &'static [u8]>,
    /// Its staging copy during a snapshot install.
    pub staged: TableDefinition<'static, &'static [u8], &'static [u8]>,
}

/// Every coordination table, sorted by name: the order snapshots stream and hash them in.
pub(crate) const COORD_TABLES: [CoordTable; 8] = [
    CoordTable {
        live: ELECTIONS,
        staged: TableDefinition::new("snapshot_install_elections"),
    },
    CoordTable {
        live: KEY_EXPIRY,
        staged: TableDefinition::new("snapshot_install_key_expiry"),
    },
    CoordTable {
        live: LOCKS,
        staged: TableDefinition::new("snapshot_install_locks"),
    },
    CoordTable {
        live: MEMBERSHIP,
        staged: TableDefinition::new("snapshot_install_membership"),
    },
    CoordTable {
        live: REDIS_ELEMENTS,
        staged: TableDefinition::new("snapshot_install_redis_elements"),
    },
    CoordTable {
        live: SESSION_OWNED,
        staged: TableDefinition::new("snapshot_install_session_owned"),
    },
    CoordTable {
        live: SESSIONS,
        staged: TableDefinition::new("snapshot_install_sessions"),
    },
    CoordTable {
        live: WATCH_EVENTS,
        staged: TableDefinition::new("snapshot_install_watch_events"),
    },
];

/// The index in [`COORD_TABLES`] of the table named `name`.
pub(crate) fn coord_table_index(name: &str) -> Option<usize> {
    COORD_TABLES.iter().position(|t| t.live.name() == name)
}

/// Kind byte of an ephemeral key in [`owned_key`].
pub(crate) const OWNED_KEY: u8 = 0;
/// Kind byte of a lock held or waited for.
pub(crate) const OWNED_LOCK: u8 = 1;
/// Kind byte of an election led or waited in.
pub(crate) const OWNED_ELECTION: u8 = 2;

/// What `sm_sessions` stores for a session.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub(crate) struct SessionRecord {
    /// The TTL it was opened with.
    #[prost(uint64, tag = "1")]
    pub ttl_ms: u64,
    /// The TTL a new leader gives it: the last checkpointed remaining TTL, or the full TTL after
    /// the open or a keep-alive.
    #[prost(uint64, tag = "2")]
    pub remaining_ms: u64,
    /// Keep-alives applied so far.
    #[prost(uint64, tag = "3")]
    pub keepalives: u64,
    /// Ephemeral keys it owns.
    #[prost(uint64, tag = "4")]
    pub keys: u64,
    /// Locks and elections it holds, leads or waits for.
    #[prost(uint64, tag = "5")]
    pub claims: u64,
}

/// What `sm_key_expiry` stores for a key with an expiry (see [`synod_wire::expiry_command`]).
#[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
pub(crate) struct KeyExpiryRecord {
    /// The revision of the command that set this expiry: it names the expiry in
    /// [`ExpireKeys`](crate::ExpireKeys) and [`CheckpointKeys`](crate::CheckpointKeys).
    #[prost(uint64, tag = "1")]
    pub revision: u64,
    /// The TTL a new leader gives the key: the TTL set, or the last checkpointed remaining TTL.
    #[prost(uint64, tag = "2")]
    pub remaining_ms: u64,
}

/// What `sm_locks` and `sm_elections` store: an owner and a FIFO queue of waiters.
///
/// Invariant: if there is no holder and no lock-delay, the queue is empty (a freed lock or
/// election goes to the next waiter in the same command), and the record is deleted.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub(crate) struct QueueRecord {
    /// The holder (lock) or leader (election); 0 if none.
    #[prost(uint64, tag = "1")]
    pub holder: u64,
    /// The revision the holder got it at: the lock's fencing token, the leader's revision.
    #[prost(uint64, tag = "2")]
    pub holder_revision: u64,
    /// The leader's value (elections only).
    #[prost(bytes = "vec", tag = "3")]
    pub holder_value: Vec<u8>,
    /// Locks only: if in lock-delay, the revision the delay began at; else 0.
    #[prost(uint64, tag = "4")]
    pub delayed_revision: u64,
    /// Waiting sessions, next first.
    #[prost(message, repeated, tag = "5")]
    pub waiters: Vec<Waiter>,
}

/// A waiter in a [`QueueRecord`].
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub(crate) struct Waiter {
    /// Its session.
    #[prost(uint64, tag = "1")]
    pub session: u64,
    /// The value it will announce as leader (elections only).
    #[prost(bytes = "vec", tag = "2")]
    pub value: Vec<u8>,
}

impl QueueRecord {
    /// Whether the record holds nothing worth keeping.
    pub fn is_vacant(&self) -> bool {
        self.holder == 0 && self.delayed_revision == 0 && self.waiters.is_empty()
    }

    /// 1-based position of `session` in the queue.
    pub fn position(&self, session: u64) -> Option<u64> {
        self.waiters
            .iter()
            .position(|w| w.session == session)
            .map(|i| i as u64 + 1)
    }

    /// The waiting sessions, next first.
    pub fn waiter_sessions(&self) -> Vec<u64> {
        self.waiters.iter().map(|w| w.session).collect()
    }
}

/// The `sm_sessions` key of `session`.
pub(crate) fn session_key(session: u64) -> [u8; 8] {
    session.to_be_bytes()
}

/// The `sm_session_owned` key of `name` of `kind` owned by `session`.
pub(crate) fn owned_key(session: u64, kind: u8, name: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(9 + name.len());
    key.extend_from_slice(&session.to_be_bytes());
    key.push(kind);
    key.extend_from_slice(name);
    key
}

/// The `sm_watch_events` key of the `index`-th event of `revision`.
pub(crate) fn event_key(revision: u64, index: u32) -> [u8; 12] {
    let mut key = [0u8; 12];
    key[..8].copy_from_slice(&revision.to_be_bytes());
    key[8..].copy_from_slice(&index.to_be_bytes());
    key
}

/// The revision and index of an `sm_watch_events` key ([`event_key`]'s inverse); `None` if
/// `key` is not 12 bytes long.
pub(crate) fn event_key_place(key: &[u8]) -> Option<(u64, u32)> {
    let key: &[u8; 12] = key.try_into().ok()?;
    let (revision, index) = key.split_at(8);
    Some((
        u64::from_be_bytes(revision.try_into().ok()?),
        u32::from_be_bytes(index.try_into().ok()?),
    ))
}

/// A bytes-to-bytes table open in a write transaction.
pub(crate) type BytesTable<'txn> = Table<'txn, &'static [u8], &'static [u8]>;

/// The coordination tables of a write transaction (the watch history excepted: it is written
/// at durable commits only, see [`crate::watch`]).
///
/// The key expiries and the Redis elements are opened at once: every write asks the first
/// (see [`remove_key_expiry`](Self::remove_key_expiry)) and Redis reads borrow the second
/// beside the kv table. The others are opened by their accessor, at the first command that
/// uses them: a batch of plain writes uses none of them, and each table opened costs a lookup
/// in redb's table tree, another at the commit, and allocations. A table opened or not holds
/// the same rows.
pub(crate) struct CoordTables<'txn> {
    txn: &'txn WriteTransaction,
    sessions: Option<BytesTable<'txn>>,
    owned: Option<BytesTable<'txn>>,
    locks: Option<BytesTable<'txn>>,
    elections: Option<BytesTable<'txn>>,
    membership: Option<BytesTable<'txn>>,
    /// The key expiries.
    pub key_expiry: BytesTable<'txn>,
    /// The elements of Redis collections.
    pub elements: BytesTable<'txn>,
}

/// The table in `slot`, opened in `txn` if it was not yet.
fn opened<'s, 'txn>(
    slot: &'s mut Option<BytesTable<'txn>>,
    txn: &'txn WriteTransaction,
    definition: TableDefinition<'static, &'static [u8], &'static [u8]>,
) -> Result<&'s mut BytesTable<'txn>, StorageError> {
    Ok(match slot {
        Some(table) => table,
        None => slot.insert(txn.open_table(definition)?),
    })
}

impl<'txn> CoordTables<'txn> {
    /// The tables of `txn`; opens the key expiries and the Redis elements.
    pub fn open(txn: &'txn WriteTransaction) -> Result<CoordTables<'txn>, StorageError> {
        Ok(CoordTables {
            txn,
            sessions: None,
            owned: None,
            locks: None,
            elections: None,
            membership: None,
            key_expiry: txn.open_table(KEY_EXPIRY)?,
            elements: txn.open_table(REDIS_ELEMENTS)?,
        })
    }

    /// The sessions.
    pub fn sessions(&mut self) -> Result<&mut BytesTable<'txn>, StorageError> {
        opened(&mut self.sessions, self.txn, SESSIONS)
    }

    /// What each session owns.
    pub fn owned(&mut self) -> Result<&mut BytesTable<'txn>, StorageError> {
        opened(&mut self.owned, self.txn, SESSION_OWNED)
    }

    /// The locks.
    pub fn locks(&mut self) -> Result<&mut BytesTable<'txn>, StorageError> {
        opened(&mut self.locks, self.txn, LOCKS)
    }

    /// The elections.
    pub fn elections(&mut self) -> Result<&mut BytesTable<'txn>, StorageError> {
        opened(&mut self.elections, self.txn, ELECTIONS)
    }

    /// The membership log.
    pub fn membership(&mut self) -> Result<&mut BytesTable<'txn>, StorageError> {
        opened(&mut self.membership, self.txn, MEMBERSHIP)
    }

    /// The record of `session`, if it is open.
    pub fn session(&mut self, session: u64) -> Result<Option<SessionRecord>, StorageError> {
        get_record(self.sessions()?, "sm_sessions", &session_key(session))
    }

    /// The key expiry of `key`, if it has one.
    pub fn key_expiry(&self, key: &[u8]) -> Result<Option<KeyExpiryRecord>, StorageError> {
        get_record(&self.key_expiry, "sm_key_expiry", key)
    }

    /// Store the expiry of `key`.
    pub fn put_key_expiry(
        &mut self,
        key: &[u8],
        record: &KeyExpiryRecord,
    ) -> Result<(), StorageError> {
        self.key_expiry
            .insert(key, record.encode_to_vec().as_slice())?;
        Ok(())
    }

    /// Remove the expiry of `key`; whether it had one. Every write without a TTL asks, so while
    /// no key has an expiry this answers from the table's length (redb keeps it in the root)
    /// without a lookup.
    pub fn remove_key_expiry(&mut self, key: &[u8]) -> Result<bool, StorageError> {
        if self.key_expiry.is_empty()? {
            return Ok(false);
        }
        Ok(self.key_expiry.remove(key)?.is_some())
    }

    /// Store the record of `session`.
    pub fn put_session(
        &mut self,
        session: u64,
        record: &SessionRecord,
    ) -> Result<(), StorageError> {
        self.sessions()?.insert(
            session_key(session).as_slice(),
            record.encode_to_vec().as_slice(),
        )?;
        Ok(())
    }
}

/// Create every coordination table that does not exist yet.
pub(crate) fn create_tables(txn: &WriteTransaction) -> Result<(), StorageError> {
    for table in COORD_TABLES {
        txn.open_table(table.live)?;
    }
    Ok(())
}

/// Drop the staging copies of the coordination tables (a snapshot install's leftovers).
pub(crate) fn delete_staged(txn: &WriteTransaction) -> Result<(), StorageError> {
    for table in COORD_TABLES {
        txn.delete_table(table.staged)?;
    }
    Ok(())
}

/// Replace each coordination table by its staged copy (a rename, not a copy).
pub(crate) fn swap_in_staged(txn: &WriteTransaction) -> Result<(), StorageError> {
    for table in COORD_TABLES {
        // An empty staged table was never opened; make sure it exists before the rename.
        txn.open_table(table.staged)?;
        txn.delete_table(table.live)?;
        txn.rename_table(table.staged, table.live)?;
    }
    Ok(())
}

/// The record under `key` of a bytes-to-record table, if any.
pub(crate) fn get_record<M: Message + Default>(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    table_name: &'static str,
    key: &[u8],
) -> Result<Option<M>, StorageError> {
    match table.get(key)? {
        None => Ok(None),
        Some(guard) => decode_record(table_name, guard.value()).map(Some),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coord_tables_are_sorted_by_name_and_staged_apart() {
        let names: Vec<&str> = COORD_TABLES.iter().map(|t| t.live.name()).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(names, sorted);
        for table in COORD_TABLES {
            assert!(table.live.name().starts_with("sm_"));
            assert!(table.staged.name().starts_with("snapshot_install_"));
        }
    }

    #[test]
    fn owned_keys_group_by_session_then_kind() {
        let a = owned_key(1, OWNED_LOCK, b"z");
        let b = owned_key(1, OWNED_ELECTION, b"a");
        let c = owned_key(2, OWNED_KEY, b"a");
        assert!(a < b && b < c);
        assert_eq!(event_key_place(&event_key(7, 3)), Some((7, 3)));
        assert_eq!(event_key_place(&[0; 11]), None);
    }
}
