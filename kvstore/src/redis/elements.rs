//! The key layout of `sm_redis_elements`: a collection's elements sit under its 8-byte
//! big-endian id (see the module docs of `redis`), so one id's range is the whole collection.
//!
//! A table-level leaf: the writer drops a collection's elements through here when its key is
//! deleted or overwritten by a string, without depending on the Redis commands.

use redb::Table;

use crate::error::StorageError;

/// The `sm_redis_elements` key of element `sub` of collection `id`.
pub(super) fn element_key(id: u64, sub: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(8 + sub.len());
    key.extend_from_slice(&id.to_be_bytes());
    key.extend_from_slice(sub);
    key
}

/// The first key after every element of collection `id`.
pub(super) fn after_collection(id: u64) -> Vec<u8> {
    match id.checked_add(1) {
        Some(next) => next.to_be_bytes().to_vec(),
        None => vec![0xFF; 9],
    }
}

/// Remove every element of collection `id` (its key is being deleted or overwritten).
pub(crate) fn drop_elements(
    elements: &mut Table<'_, &'static [u8], &'static [u8]>,
    id: u64,
) -> Result<(), StorageError> {
    let low = id.to_be_bytes().to_vec();
    let high = after_collection(id);
    elements.retain_in::<&[u8], _>(low.as_slice()..high.as_slice(), |_, _| false)?;
    Ok(())
}
