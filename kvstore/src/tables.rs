//! The state machine's redb tables and the records stored in them.
//!
//! | table | key | value |
//! |---|---|---|
//! | `sm_kv` | user key | [`KvRecord`] (prost): value, create/mod revision, version, session |
//! | `sm_meta` | `"applied_index"`, `"revision"` | `u64` |
//! | `sm_dedup` | client id | [`DedupRecord`] (prost): last seq, where it was applied, response |
//!
//! The dedup table's eviction order is derived from its records and kept in memory
//! ([`DedupAges`](crate::dedup::DedupAges)); the table that once held it, `sm_dedup_age`, is
//! dropped when a state machine opens.
//!
//! Names start with `sm_` so the tables can share one database with the acceptor's. The
//! coordination tables (sessions, locks, elections, watch history) are in
//! [`coord::tables`](crate::coord::tables).

use prost::Message;
use redb::{ReadableTable, TableDefinition};

use crate::error::StorageError;
use synod_wire::response::{KeyValue, Response};

/// User keys to their [`KvRecord`].
pub(crate) const KV: TableDefinition<&[u8], &[u8]> = TableDefinition::new("sm_kv");
/// Applied index and revision.
pub(crate) const META: TableDefinition<&str, u64> = TableDefinition::new("sm_meta");
/// Client id to its [`DedupRecord`].
pub(crate) const DEDUP: TableDefinition<u64, &[u8]> = TableDefinition::new("sm_dedup");
/// The dedup table's eviction order as earlier versions stored it: (slot, position) of each
/// remembered client's last request to the client id. Dropped at open; a snapshot still streams
/// these rows (derived from `sm_dedup`), so nodes of either version install each other's.
pub(crate) const OLD_DEDUP_AGE: TableDefinition<(u64, u64), u64> =
    TableDefinition::new("sm_dedup_age");

/// `META` key of the last applied slot.
pub(crate) const APPLIED_INDEX: &str = "applied_index";
/// `META` key of the store revision.
pub(crate) const REVISION: &str = "revision";

/// What `sm_kv` stores for a key.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub(crate) struct KvRecord {
    #[prost(bytes = "vec", tag = "1")]
    pub value: Vec<u8>,
    #[prost(uint64, tag = "2")]
    pub create_revision: u64,
    #[prost(uint64, tag = "3")]
    pub mod_revision: u64,
    #[prost(uint64, tag = "4")]
    pub version: u64,
    /// The owning session of an ephemeral key; 0 for a persistent one.
    #[prost(uint64, tag = "5")]
    pub session: u64,
    /// The key's Redis type: [`KIND_STRING`] (the value is the string) or one of the collection
    /// kinds, whose elements live in `sm_redis_elements` (the value is then empty).
    #[prost(uint32, tag = "6")]
    pub kind: u32,
    /// A collection's element count; 0 for a string. Invariant: a collection key exists only
    /// while it holds at least one element (emptying it deletes the key, as in Redis).
    #[prost(uint64, tag = "7")]
    pub length: u64,
    /// A collection's id: the prefix of its elements in `sm_redis_elements`; unique among the
    /// collections that ever existed (see [`crate::redis`]), kept by `RENAME`.
    #[prost(uint64, tag = "8")]
    pub collection_id: u64,
    /// A list's index of its first element (see [`crate::redis`]); 0 for other kinds.
    #[prost(uint64, tag = "9")]
    pub list_head: u64,
}

impl KvRecord {
    /// The record as a [`KeyValue`] for `key`; with `with_value == false` the value is left empty.
    pub fn to_key_value(&self, key: &[u8], with_value: bool) -> KeyValue {
        KeyValue {
            key: key.to_vec(),
            value: if with_value {
                self.value.clone()
            } else {
                Vec::new()
            },
            create_revision: self.create_revision,
            mod_revision: self.mod_revision,
            version: self.version,
            session: self.session,
            kind: self.kind,
        }
    }
}

/// What `sm_dedup` stores for a client.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct DedupRecord {
    /// The client's last applied sequence number.
    #[prost(uint64, tag = "1")]
    pub seq: u64,
    /// The slot it was applied in.
    #[prost(uint64, tag = "2")]
    pub slot: u64,
    /// Its position in that slot's batch.
    #[prost(uint64, tag = "3")]
    pub position: u64,
    /// The response it got.
    #[prost(message, optional, tag = "4")]
    pub response: Option<Response>,
}

/// Decode a stored record of `table`.
pub(crate) fn decode_record<M: Message + Default>(
    table: &'static str,
    bytes: &[u8],
) -> Result<M, StorageError> {
    M::decode(bytes).map_err(|e| StorageError::Corrupt {
        table,
        reason: e.to_string(),
    })
}

/// The record of `key` in a kv table, if any.
pub(crate) fn get_kv(
    kv: &impl ReadableTable<&'static [u8], &'static [u8]>,
    key: &[u8],
) -> Result<Option<KvRecord>, StorageError> {
    match kv.get(key)? {
        None => Ok(None),
        Some(guard) => decode_record("sm_kv", guard.value()).map(Some),
    }
}

/// A meta value, 0 if never written.
pub(crate) fn get_meta(
    meta: &impl ReadableTable<&'static str, u64>,
    name: &str,
) -> Result<u64, StorageError> {
    Ok(meta.get(name)?.map(|g| g.value()).unwrap_or(0))
}
