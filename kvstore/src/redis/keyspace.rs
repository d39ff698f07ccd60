//! Keyspace commands over every type: `TYPE`, `EXISTS`, `RENAME`, `RENAMENX`, `COPY`, `MOVE`,
//! `RANDOMKEY`, `OBJECT`, `FLUSHDB`, `FLUSHALL`.

use std::ops::Bound;

use redb::ReadableTable;

use super::number::parse_int;
use super::store::{Coll, View};
use super::{check_key, err, not_integer, syntax, Ctx, RedisReply, Res, Rng};
use crate::key_expiry;
use crate::tables::KvRecord;
use crate::writer::TtlMode;
use crate::{kind_name, KIND_HASH, KIND_LIST, KIND_SET, KIND_STRING, KIND_ZSET};
use synod_wire::command::{DeleteRange, Expire, ExpireIf, Persist};
use synod_wire::limits::MAX_KEY_TTL_MS;

/// Keys `RANDOMKEY` counts before it falls back to a random seek (which is not uniform).
const RANDOMKEY_EXACT_KEYS: usize = 1024;

pub(super) fn read<T: ReadableTable<&'static [u8], &'static [u8]>>(
    v: &View<'_, T>,
    name: &str,
    args: &[Vec<u8>],
    rng: &mut Rng,
) -> Res<RedisReply> {
    match name {
        "type" => {
            check_key(&args[1])?;
            let kind = v.record(&args[1])?.map(|r| r.kind);
            Ok(RedisReply::status(kind.map_or("none", kind_name)))
        }
        "exists" => {
            let mut found = 0;
            for key in &args[1..] {
                check_key(key)?;
                found += i64::from(v.record(key)?.is_some());
            }
            Ok(RedisReply::int(found))
        }
        "randomkey" => random_key(v, rng),
        "memory" => memory(v, args),
        _ => object(v, args),
    }
}

/// Elements `MEMORY USAGE` samples to estimate a collection's size (Redis's default).
const MEMORY_SAMPLES: usize = 5;

/// `MEMORY USAGE key [SAMPLES n]`: an estimate in bytes of what the key holds (its key, value
/// or sampled elements, and a fixed overhead per row), not of any allocator's use.
fn memory<T: ReadableTable<&'static [u8], &'static [u8]>>(
    v: &View<'_, T>,
    args: &[Vec<u8>],
) -> Res<RedisReply> {
    if !args[1].eq_ignore_ascii_case(b"usage") || !(args.len() == 3 || args.len() == 5) {
        return err(format!(
            "unknown subcommand or wrong number of arguments for '{}'. Try MEMORY HELP.",
            String::from_utf8_lossy(&args[1])
        ));
    }
    check_key(&args[2])?;
    let Some(record) = v.record(&args[2])? else {
        return Ok(RedisReply::nil());
    };
    const ROW_OVERHEAD: u64 = 48;
    let mut bytes = args[2].len() as u64 + ROW_OVERHEAD + record.value.len() as u64;
    if record.kind != KIND_STRING {
        let (mut sampled, mut sample_bytes) = (0u64, 0u64);
        v.walk(
            record.collection_id,
            Bound::Unbounded,
            Bound::Unbounded,
            false,
            |k, val| {
                sampled += 1;
                sample_bytes += (k.len() + val.len()) as u64 + ROW_OVERHEAD;
                Ok(sampled < MEMORY_SAMPLES as u64)
            },
        )?;
        if let Some(per_element) = sample_bytes.checked_div(sampled) {
            bytes += per_element * record.length;
        }
    }
    Ok(RedisReply::int(bytes as i64))
}

fn random_key<T: ReadableTable<&'static [u8], &'static [u8]>>(
    v: &View<'_, T>,
    rng: &mut Rng,
) -> Res<RedisReply> {
    let mut first = Vec::new();
    for row in v.kv.iter()?.take(RANDOMKEY_EXACT_KEYS) {
        first.push(row?.0.value().to_vec());
    }
    if first.is_empty() {
        return Ok(RedisReply::nil());
    }
    if first.len() < RANDOMKEY_EXACT_KEYS {
        let pick = rng.below(first.len() as u64) as usize;
        return Ok(RedisReply::bulk(first.swap_remove(pick)));
    }
    let start = rng.next_u64().to_be_bytes();
    let found = match v.kv.range::<&[u8]>(start.as_slice()..)?.next() {
        Some(row) => row?.0.value().to_vec(),
        None => first.swap_remove(0),
    };
    Ok(RedisReply::bulk(found))
}

/// `OBJECT ENCODING|REFCOUNT|IDLETIME|FREQ key`, `OBJECT HELP`. The encoding is the one Redis
/// 7.0 would pick with its default thresholds (Synod stores every type the same way).
fn object<T: ReadableTable<&'static [u8], &'static [u8]>>(
    v: &View<'_, T>,
    args: &[Vec<u8>],
) -> Res<RedisReply> {
    let sub = args[1].to_ascii_lowercase();
    if sub == b"help" {
        return Ok(RedisReply::bulks(
            [
                "OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "ENCODING <key>",
                "FREQ <key>",
                "IDLETIME <key>",
                "REFCOUNT <key>",
            ]
            .map(|line| line.as_bytes().to_vec()),
        ));
    }
    if args.len() != 3 {
        return err(format!(
            "unknown subcommand or wrong number of arguments for '{}'. Try OBJECT HELP.",
            String::from_utf8_lossy(&args[1])
        ));
    }
    check_key(&args[2])?;
    let Some(record) = v.record(&args[2])? else {
        return Ok(RedisReply::nil());
    };
    match sub.as_slice() {
        b"encoding" => Ok(RedisReply::bulk(encoding(v, &record)?)),
        b"refcount" => Ok(RedisReply::int(1)),
        b"idletime" => Ok(RedisReply::int(0)),
        b"freq" => err(
            "An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.",
        ),
        _ => err(format!(
            "unknown subcommand '{}'. Try OBJECT HELP.",
            String::from_utf8_lossy(&args[1])
        )),
    }
}

fn encoding<T: ReadableTable<&'static [u8], &'static [u8]>>(
    v: &View<'_, T>,
    record: &KvRecord,
) -> Res<&'static str> {
    let small = |max_len: u64, max_item: usize| -> Res<bool> {
        if record.length > max_len {
            return Ok(false);
        }
        let mut fits = true;
        v.walk(
            record.collection_id,
            Bound::Unbounded,
            Bound::Unbounded,
            false,
            |k, val| {
                let member = if record.kind == KIND_ZSET {
                    if k.first() != Some(&0) {
                        return Ok(false);
                    }
                    &k[1..]
                } else {
                    k
                };
                fits &= member.len() <= max_item && val.len() <= max_item;
                Ok(fits)
            },
        )?;
        Ok(fits)
    };
    Ok(match record.kind {
        KIND_STRING if parse_int(&record.value).is_some() => "int",
        KIND_STRING if record.value.len() <= 44 => "embstr",
        KIND_STRING => "raw",
        KIND_HASH if small(128, 64)? => "listpack",
        KIND_HASH => "hashtable",
        KIND_SET => {
            let mut ints = record.length <= 512;
            if ints {
                v.walk(
                    record.collection_id,
                    Bound::Unbounded,
                    Bound::Unbounded,
                    false,
                    |k, _| {
                        ints &= parse_int(k).is_some();
                        Ok(ints)
                    },
                )?;
            }
            if ints {
                "intset"
            } else {
                "hashtable"
            }
        }
        KIND_LIST => "quicklist",
        KIND_ZSET if small(128, 64)? => "listpack",
        KIND_ZSET => "skiplist",
        _ => "unknown",
    })
}

pub(super) fn write(ctx: &mut Ctx<'_, '_, '_>, name: &str, args: &[Vec<u8>]) -> Res<RedisReply> {
    match name {
        "rename" => rename(ctx, &args[1], &args[2], false),
        "renamenx" => rename(ctx, &args[1], &args[2], true),
        "copy" => copy(ctx, args),
        "pexpire" => pexpire(ctx, args),
        "persist" => {
            check_key(&args[1])?;
            let persist = Persist {
                key: args[1].clone(),
            };
            let removed = key_expiry::persist(ctx.w, &persist)?.removed;
            Ok(RedisReply::int(i64::from(removed)))
        }
        "move" => {
            check_key(&args[1])?;
            match parse_int(&args[2]) {
                Some(0) => err("source and destination objects are the same"),
                Some(_) => err("DB index is out of range"),
                None => err("value is not an integer or out of range"),
            }
        }
        _ => flush(ctx, args),
    }
}

/// The state machine's `PEXPIRE key ms [NX | XX]`, which the Redis endpoint sends in `MULTI`
/// blocks for `EXPIRE`, `PEXPIRE`, `EXPIREAT` and `PEXPIREAT` (absolute times turned into TTLs;
/// a TTL of 0 or less deletes the key). 1 if set, 0 if the key is missing or the condition fails.
fn pexpire(ctx: &mut Ctx<'_, '_, '_>, args: &[Vec<u8>]) -> Res<RedisReply> {
    check_key(&args[1])?;
    let ttl_ms = parse_int(&args[2]).map_or_else(not_integer, Ok)?;
    let condition = match &args[3..] {
        [] => ExpireIf::Always,
        [flag] if flag.eq_ignore_ascii_case(b"nx") => ExpireIf::NoExpiry,
        [flag] if flag.eq_ignore_ascii_case(b"xx") => ExpireIf::HasExpiry,
        _ => return syntax(),
    };
    let expire = Expire {
        key: args[1].clone(),
        ttl_ms: ttl_ms.min(MAX_KEY_TTL_MS as i64),
        condition: condition as i32,
        expiry_revision: 0,
    };
    let applied = key_expiry::expire(ctx.w, &expire)?.applied;
    Ok(RedisReply::int(i64::from(applied)))
}

/// `FLUSHDB` / `FLUSHALL` `[ASYNC | SYNC]`: every key, with its elements and expiry, in one
/// command (sessions, locks and elections stay).
fn flush(ctx: &mut Ctx<'_, '_, '_>, args: &[Vec<u8>]) -> Res<RedisReply> {
    match &args[1..] {
        [] => {}
        [mode] if mode.eq_ignore_ascii_case(b"async") || mode.eq_ignore_ascii_case(b"sync") => {}
        _ => return syntax(),
    }
    ctx.w.delete_range(&DeleteRange::default())?;
    Ok(RedisReply::ok())
}

/// The remaining TTL the state machine recorded for `key`, if it has an expiry.
fn recorded_ttl(ctx: &Ctx<'_, '_, '_>, key: &[u8]) -> Res<Option<u64>> {
    Ok(ctx.w.coord.key_expiry(key)?.map(|r| r.remaining_ms))
}

/// Give `key` (just written) the TTL `ttl_ms`, if any.
fn restore_ttl(ctx: &mut Ctx<'_, '_, '_>, key: &[u8], ttl_ms: Option<u64>) -> Res<()> {
    if let Some(ms) = ttl_ms.filter(|ms| *ms > 0) {
        ctx.w.key_expiry_after_write(key, TtlMode::Set(ms))?;
    }
    Ok(())
}

/// `RENAME` / `RENAMENX`: O(1) for every type (a collection keeps its id and elements). The
/// key's TTL moves with it, as last recorded by the state machine.
fn rename(ctx: &mut Ctx<'_, '_, '_>, from: &[u8], to: &[u8], only_new: bool) -> Res<RedisReply> {
    check_key(from)?;
    check_key(to)?;
    let view = ctx.view();
    if view.record(from)?.is_none() {
        return err("no such key");
    }
    let target_exists = view.record(to)?.is_some();
    if from == to {
        return Ok(if only_new {
            RedisReply::int(0)
        } else {
            RedisReply::ok()
        });
    }
    if only_new && target_exists {
        return Ok(RedisReply::int(0));
    }
    let ttl = recorded_ttl(ctx, from)?;
    let record = ctx.w.take_key(from)?.expect("the key was just read");
    if target_exists {
        ctx.w.remove_key(to, true)?;
    }
    place(ctx, to, record, None)?;
    restore_ttl(ctx, to, ttl)?;
    Ok(if only_new {
        RedisReply::int(1)
    } else {
        RedisReply::ok()
    })
}

/// Write `record`'s value or collection under `key` (absent now). With `new_id`, the
/// collection's elements are copied under that id; without, the record keeps its id.
fn place(ctx: &mut Ctx<'_, '_, '_>, key: &[u8], record: KvRecord, new_id: Option<u64>) -> Res<()> {
    if record.kind == KIND_STRING {
        ctx.w.put(key, &record.value, false, TtlMode::Clear)?;
        return Ok(());
    }
    let id = match new_id {
        None => record.collection_id,
        Some(id) => {
            let elements = ctx.view().all(record.collection_id)?;
            let target = Coll {
                key: key.to_vec(),
                prev: None,
                kind: record.kind,
                id,
                length: 0,
                list_head: 0,
            };
            for (sub, value) in elements {
                target.put(ctx, &sub, &value)?;
            }
            id
        }
    };
    Coll {
        key: key.to_vec(),
        prev: None,
        kind: record.kind,
        id,
        length: record.length,
        list_head: record.list_head,
    }
    .save(ctx)
}

/// `COPY source destination [DB db] [REPLACE]`: O(N) in the source's elements.
fn copy(ctx: &mut Ctx<'_, '_, '_>, args: &[Vec<u8>]) -> Res<RedisReply> {
    let (from, to) = (&args[1], &args[2]);
    check_key(from)?;
    check_key(to)?;
    let mut replace = false;
    let mut i = 3;
    while i < args.len() {
        match args[i].to_ascii_lowercase().as_slice() {
            b"replace" => replace = true,
            b"db" if i + 1 < args.len() => {
                i += 1;
                match parse_int(&args[i]) {
                    Some(0) => {}
                    Some(_) => return err("DB index is out of range"),
                    None => return err("value is not an integer or out of range"),
                }
            }
            _ => return syntax(),
        }
        i += 1;
    }
    if from == to {
        return err("source and destination objects are the same");
    }
    let view = ctx.view();
    let Some(record) = view.record(from)? else {
        return Ok(RedisReply::int(0));
    };
    let target_exists = view.record(to)?.is_some();
    if target_exists && !replace {
        return Ok(RedisReply::int(0));
    }
    let ttl = recorded_ttl(ctx, from)?;
    if target_exists {
        ctx.w.remove_key(to, true)?;
    }
    let new_id = (record.kind != KIND_STRING).then(|| ctx.new_collection_id());
    place(ctx, to, record, new_id)?;
    restore_ttl(ctx, to, ttl)?;
    Ok(RedisReply::int(1))
}
