//! Reading and writing collection headers (in `sm_kv`) and elements (in `sm_redis_elements`).
//!
//! It takes the parent's command context (`Ctx`, `Res`, `wrong_type`) as every command module
//! does, and the parent hands its `View` to them: the storage layer of the Redis commands, split
//! out of `redis/mod.rs` for length, so the imports go both ways.

use std::ops::Bound;

use prost::Message;
use redb::ReadableTable;

use super::elements::{after_collection, drop_elements, element_key};
use super::{wrong_type, Ctx, Res};
use crate::tables::{get_kv, KvRecord};
use crate::EventKind;
use crate::KIND_STRING;

/// The kv and element tables, readable (in a read or a write transaction).
pub(crate) struct View<'a, T> {
    pub kv: &'a T,
    pub elements: &'a T,
}

impl<T: ReadableTable<&'static [u8], &'static [u8]>> View<'_, T> {
    /// The record of `key`, if any.
    pub fn record(&self, key: &[u8]) -> Res<Option<KvRecord>> {
        Ok(get_kv(self.kv, key)?)
    }

    /// The record of `key` if it is of `kind`; `None` if absent; `WRONGTYPE` otherwise.
    pub fn typed(&self, key: &[u8], kind: u32) -> Res<Option<KvRecord>> {
        match self.record(key)? {
            Some(record) if record.kind != kind => wrong_type(),
            found => Ok(found),
        }
    }

    /// The value of `key` if it is a string; `None` if absent; `WRONGTYPE` otherwise.
    pub fn string(&self, key: &[u8]) -> Res<Option<Vec<u8>>> {
        Ok(self.typed(key, KIND_STRING)?.map(|r| r.value))
    }

    /// Element `sub` of collection `id`.
    pub fn element(&self, id: u64, sub: &[u8]) -> Res<Option<Vec<u8>>> {
        Ok(self
            .elements
            .get(element_key(id, sub).as_slice())?
            .map(|g| g.value().to_vec()))
    }

    /// Visit the elements of collection `id` whose element key is within `(from, to)`, in
    /// order (`reverse`: from the last), until `visit` returns false. The element key given to
    /// `visit` is without the id.
    pub fn walk(
        &self,
        id: u64,
        from: Bound<&[u8]>,
        to: Bound<&[u8]>,
        reverse: bool,
        mut visit: impl FnMut(&[u8], &[u8]) -> Res<bool>,
    ) -> Res<()> {
        let bound = |b: Bound<&[u8]>, low: bool| -> Bound<Vec<u8>> {
            match b {
                Bound::Included(s) => Bound::Included(element_key(id, s)),
                Bound::Excluded(s) => Bound::Excluded(element_key(id, s)),
                Bound::Unbounded if low => Bound::Included(id.to_be_bytes().to_vec()),
                Bound::Unbounded => Bound::Excluded(after_collection(id)),
            }
        };
        let (low, high) = (bound(from, true), bound(to, false));
        fn as_ref(b: &Bound<Vec<u8>>) -> Bound<&[u8]> {
            match b {
                Bound::Included(v) => Bound::Included(v.as_slice()),
                Bound::Excluded(v) => Bound::Excluded(v.as_slice()),
                Bound::Unbounded => Bound::Unbounded,
            }
        }
        if let (Bound::Included(l) | Bound::Excluded(l), Bound::Included(h) | Bound::Excluded(h)) =
            (&low, &high)
        {
            if l > h {
                return Ok(());
            }
        }
        let range = self
            .elements
            .range::<&[u8]>((as_ref(&low), as_ref(&high)))?;
        if reverse {
            for row in range.rev() {
                let (k, v) = row?;
                if !visit(&k.value()[8..], v.value())? {
                    break;
                }
            }
        } else {
            for row in range {
                let (k, v) = row?;
                if !visit(&k.value()[8..], v.value())? {
                    break;
                }
            }
        }
        Ok(())
    }

    /// Every element of collection `id`, in order, as (element key, value).
    pub fn all(&self, id: u64) -> Res<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut out = Vec::new();
        self.walk(id, Bound::Unbounded, Bound::Unbounded, false, |k, v| {
            out.push((k.to_vec(), v.to_vec()));
            Ok(true)
        })?;
        Ok(out)
    }
}

/// A collection being changed by one command: its key, its record before the command (if it
/// existed) and what it becomes.
pub(crate) struct Coll {
    pub key: Vec<u8>,
    pub prev: Option<KvRecord>,
    pub kind: u32,
    pub id: u64,
    pub length: u64,
    pub list_head: u64,
}

impl Coll {
    /// The collection at `key` of `kind`, existing or about to be created (`WRONGTYPE` if the
    /// key holds another type).
    pub fn open(ctx: &mut Ctx<'_, '_, '_>, key: &[u8], kind: u32) -> Res<Coll> {
        let prev = ctx.view().typed(key, kind)?;
        Ok(match prev {
            Some(record) => Coll {
                key: key.to_vec(),
                kind,
                id: record.collection_id,
                length: record.length,
                list_head: record.list_head,
                prev: Some(record),
            },
            None => Coll {
                key: key.to_vec(),
                kind,
                id: ctx.new_collection_id(),
                length: 0,
                list_head: 1 << 63,
                prev: None,
            },
        })
    }

    /// Whether the collection exists (before this command).
    pub fn existed(&self) -> bool {
        self.prev.is_some()
    }

    /// Write element `sub` (the caller keeps `length` right).
    pub fn put(&self, ctx: &mut Ctx<'_, '_, '_>, sub: &[u8], value: &[u8]) -> Res<()> {
        ctx.w
            .coord
            .elements
            .insert(element_key(self.id, sub).as_slice(), value)?;
        Ok(())
    }

    /// Remove element `sub`; whether it was there (the caller keeps `length` right).
    pub fn remove(&self, ctx: &mut Ctx<'_, '_, '_>, sub: &[u8]) -> Res<bool> {
        Ok(ctx
            .w
            .coord
            .elements
            .remove(element_key(self.id, sub).as_slice())?
            .is_some())
    }

    /// Record the command's change of the collection: write its header at this command's
    /// revision (keeping its expiry), or delete the key if it is now empty. Call once, after
    /// the elements changed, and only if something changed.
    pub fn save(self, ctx: &mut Ctx<'_, '_, '_>) -> Res<()> {
        if self.length == 0 {
            if self.prev.is_some() {
                ctx.w.remove_key(&self.key, true)?;
            } else {
                // Nothing was stored, or every element added was removed again.
                drop_elements(&mut ctx.w.coord.elements, self.id)?;
            }
            return Ok(());
        }
        let w = &mut *ctx.w;
        let record = KvRecord {
            value: Vec::new(),
            create_revision: self.prev.as_ref().map_or(w.revision, |p| p.create_revision),
            mod_revision: w.revision,
            version: self.prev.as_ref().map_or(1, |p| p.version + 1),
            session: 0,
            kind: self.kind,
            length: self.length,
            collection_id: self.id,
            list_head: self.list_head,
        };
        w.kv.insert(self.key.as_slice(), record.encode_to_vec().as_slice())?;
        w.changed = true;
        w.event(
            EventKind::Put,
            &self.key,
            (self.prev.as_ref().map(|_| Vec::new()), 0),
            (Some(Vec::new()), 0),
        );
        Ok(())
    }
}
