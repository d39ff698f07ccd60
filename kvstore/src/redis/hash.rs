//! Hash commands. A field is one row of `sm_redis_elements` (field → value).

use std::ops::Bound;

use redb::ReadableTable;

use super::number::{float_arg, format_stored_float, int_arg, parse_float, parse_int};
use super::store::{Coll, View};
use super::{
    check_element, check_key, err, scan_elements, syntax, Ctx, RedisReply, ReplyBudget, Res, Rng,
};
use crate::KIND_HASH;
use synod_wire::limits::{MAX_COLLECTION_ELEMENTS, MAX_VALUE_BYTES};

pub(super) fn read<T: ReadableTable<&'static [u8], &'static [u8]>>(
    v: &View<'_, T>,
    name: &str,
    args: &[Vec<u8>],
    rng: &mut Rng,
) -> Res<RedisReply> {
    let key = &args[1];
    check_key(key)?;
    let record = v.typed(key, KIND_HASH)?;
    let id = record.as_ref().map(|r| r.collection_id);
    let get = |field: &[u8]| -> Res<Option<Vec<u8>>> {
        match id {
            None => Ok(None),
            Some(id) => v.element(id, field),
        }
    };
    match name {
        "hget" => Ok(get(&args[2])?.map_or_else(RedisReply::nil, RedisReply::bulk)),
        "hmget" => {
            let mut items = Vec::with_capacity(args.len() - 2);
            let mut budget = ReplyBudget::default();
            for field in &args[2..] {
                let value = get(field)?;
                budget.take(value.as_ref().map_or(0, Vec::len))?;
                items.push(value.map_or_else(RedisReply::nil, RedisReply::bulk));
            }
            Ok(RedisReply::array(items))
        }
        "hlen" => Ok(RedisReply::int(record.map_or(0, |r| r.length as i64))),
        "hstrlen" => Ok(RedisReply::int(
            get(&args[2])?.map_or(0, |value| value.len() as i64),
        )),
        "hexists" => Ok(RedisReply::int(get(&args[2])?.is_some() as i64)),
        "hkeys" | "hvals" | "hgetall" => {
            let reply = if name == "hgetall" {
                RedisReply::map
            } else {
                RedisReply::array
            };
            let Some(id) = id else {
                return Ok(reply(Vec::new()));
            };
            let mut items = Vec::new();
            let mut budget = ReplyBudget::default();
            v.walk(
                id,
                Bound::Unbounded,
                Bound::Unbounded,
                false,
                |field, value| {
                    if name != "hvals" {
                        budget.take(field.len())?;
                        items.push(RedisReply::bulk(field.to_vec()));
                    }
                    if name != "hkeys" {
                        budget.take(value.len())?;
                        items.push(RedisReply::bulk(value.to_vec()));
                    }
                    Ok(true)
                },
            )?;
            Ok(reply(items))
        }
        "hrandfield" => randfield(v, args, record.map(|r| (r.collection_id, r.length)), rng),
        _ => {
            let Some(id) = id else {
                return scan_elements(v, None, &args[2..], |_, _| Vec::new());
            };
            scan_elements(v, Some((id, Vec::new())), &args[2..], |field, value| {
                vec![
                    RedisReply::bulk(field.to_vec()),
                    RedisReply::bulk(value.to_vec()),
                ]
            })
        }
    }
}

/// Indexes for a random pick of `count` items among `len` (Redis's count rules: positive
/// distinct, negative with repetition), in ascending order for distinct picks.
pub(super) fn random_indexes(rng: &mut Rng, len: u64, count: i64) -> Vec<u64> {
    if count < 0 {
        return (0..count.unsigned_abs()).map(|_| rng.below(len)).collect();
    }
    let count = count as u64;
    if count >= len {
        return (0..len).collect();
    }
    // Floyd's sampling: `count` distinct indexes in O(count).
    let mut chosen = std::collections::BTreeSet::new();
    for j in (len - count)..len {
        let t = rng.below(j + 1);
        if !chosen.insert(t) {
            chosen.insert(j);
        }
    }
    chosen.into_iter().collect()
}

/// Most picks a random-pick command with a negative count (repetition allowed) makes: as many
/// as the smallest items fill a reply of [`MAX_REPLY_BYTES`](synod_wire::limits::MAX_REPLY_BYTES).
pub(super) const MAX_RANDOM_PICKS: u64 = (synod_wire::limits::MAX_REPLY_BYTES / 16) as u64;

/// Refuse a random-pick count whose reply could not be sent (checked before any pick is made).
pub(super) fn check_pick_count(count: i64) -> Res<i64> {
    if count < 0 && count.unsigned_abs() > MAX_RANDOM_PICKS {
        return err("value is out of range");
    }
    Ok(count)
}

/// Parses `[count [WITHVALUES|WITHSCORES]]` of the random-pick commands.
pub(super) fn random_args(args: &[Vec<u8>], with_word: &[u8]) -> Res<(Option<i64>, bool)> {
    match &args[2..] {
        [] => Ok((None, false)),
        [count] => Ok((Some(check_pick_count(int_arg(count)?)?), false)),
        [count, with] if with.eq_ignore_ascii_case(with_word) => {
            let count = check_pick_count(int_arg(count)?)?;
            Ok((Some(count), true))
        }
        _ => syntax(),
    }
}

fn randfield<T: ReadableTable<&'static [u8], &'static [u8]>>(
    v: &View<'_, T>,
    args: &[Vec<u8>],
    found: Option<(u64, u64)>,
    rng: &mut Rng,
) -> Res<RedisReply> {
    let (count, with_values) = random_args(args, b"withvalues")?;
    let Some((id, len)) = found else {
        return Ok(match count {
            None => RedisReply::nil(),
            Some(_) => RedisReply::array(Vec::new()),
        });
    };
    let all = v.all(id)?;
    let picks = random_indexes(rng, len, count.unwrap_or(1));
    let mut budget = ReplyBudget::default();
    let mut items = Vec::new();
    for index in picks {
        let (field, value) = &all[index as usize];
        budget.take(field.len())?;
        items.push(RedisReply::bulk(field.clone()));
        if with_values {
            budget.take(value.len())?;
            items.push(RedisReply::bulk(value.clone()));
        }
    }
    if count.is_none() {
        return Ok(items.pop().unwrap_or_else(RedisReply::nil));
    }
    Ok(if with_values {
        RedisReply::pairs(items)
    } else {
        RedisReply::array(items)
    })
}

pub(super) fn write(ctx: &mut Ctx<'_, '_, '_>, name: &str, args: &[Vec<u8>]) -> Res<RedisReply> {
    let key = &args[1];
    check_key(key)?;
    let mut hash = Coll::open(ctx, key, KIND_HASH)?;
    match name {
        "hset" | "hmset" => {
            if !args.len().is_multiple_of(2) {
                return err(format!("wrong number of arguments for '{name}' command"));
            }
            let mut new_fields = std::collections::BTreeSet::new();
            for pair in args[2..].chunks(2) {
                check_element(&pair[0])?;
                if pair[1].len() > MAX_VALUE_BYTES {
                    return err("value too large");
                }
                if hash_get(ctx, &hash, &pair[0])?.is_none() {
                    new_fields.insert(pair[0].as_slice());
                }
            }
            let added = new_fields.len() as i64;
            hash.length += added as u64;
            check_length(hash.length)?;
            for pair in args[2..].chunks(2) {
                hash.put(ctx, &pair[0], &pair[1])?;
            }
            hash.save(ctx)?;
            Ok(if name == "hset" {
                RedisReply::int(added)
            } else {
                RedisReply::ok()
            })
        }
        "hsetnx" => {
            check_element(&args[2])?;
            if hash_get(ctx, &hash, &args[2])?.is_some() {
                return Ok(RedisReply::int(0));
            }
            hash.length += 1;
            check_length(hash.length)?;
            hash.put(ctx, &args[2], &args[3])?;
            hash.save(ctx)?;
            Ok(RedisReply::int(1))
        }
        "hdel" => {
            let mut removed = 0;
            for field in &args[2..] {
                if hash.existed() && hash.remove(ctx, field)? {
                    removed += 1;
                    hash.length -= 1;
                }
            }
            if removed > 0 {
                hash.save(ctx)?;
            }
            Ok(RedisReply::int(removed))
        }
        "hincrby" => {
            check_element(&args[2])?;
            let delta = int_arg(&args[3])?;
            let current = match hash_get(ctx, &hash, &args[2])? {
                None => {
                    hash.length += 1;
                    check_length(hash.length)?;
                    0
                }
                Some(value) => match parse_int(&value) {
                    Some(n) => n,
                    None => return err("hash value is not an integer"),
                },
            };
            let Some(result) = current.checked_add(delta) else {
                return err("increment or decrement would overflow");
            };
            hash.put(ctx, &args[2], result.to_string().as_bytes())?;
            hash.save(ctx)?;
            Ok(RedisReply::int(result))
        }
        _ => {
            check_element(&args[2])?;
            let delta = float_arg(&args[3])?;
            if delta.is_nan() || delta.is_infinite() {
                return err("value is NaN or Infinity");
            }
            let current = match hash_get(ctx, &hash, &args[2])? {
                None => {
                    hash.length += 1;
                    check_length(hash.length)?;
                    0.0
                }
                Some(value) => match parse_float(&value) {
                    Some(n) => n,
                    None => return err("hash value is not a float"),
                },
            };
            let result = current + delta;
            if result.is_nan() || result.is_infinite() {
                return err("increment would produce NaN or Infinity");
            }
            let text = format_stored_float(result);
            hash.put(ctx, &args[2], text.as_bytes())?;
            hash.save(ctx)?;
            Ok(RedisReply::bulk(text.into_bytes()))
        }
    }
}

fn hash_get(ctx: &Ctx<'_, '_, '_>, hash: &Coll, field: &[u8]) -> Res<Option<Vec<u8>>> {
    ctx.view().element(hash.id, field)
}

/// Refuse a collection growing past [`MAX_COLLECTION_ELEMENTS`].
pub(super) fn check_length(length: u64) -> Res<()> {
    if length > MAX_COLLECTION_ELEMENTS {
        return err(format!(
            "collection too large: Synod's limit is {MAX_COLLECTION_ELEMENTS} elements"
        ));
    }
    Ok(())
}
