//! Set commands. A member is one row of `sm_redis_elements` (member → empty).

use std::collections::BTreeSet;
use std::ops::Bound;

use redb::ReadableTable;

use super::hash::{check_length, check_pick_count, random_indexes};
use super::number::{int_arg, parse_int};
use super::store::{Coll, View};
use super::{
    check_element, check_key, err, scan_elements, syntax, Ctx, RedisReply, ReplyBudget, Res, Rng,
};
use crate::tables::KvRecord;
use crate::KIND_SET;

/// The members of the set `record` (if any), in order, within the reply budget.
fn members<T: ReadableTable<&'static [u8], &'static [u8]>>(
    v: &View<'_, T>,
    record: Option<&KvRecord>,
    budget: &mut ReplyBudget,
) -> Res<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    if let Some(record) = record {
        v.walk(
            record.collection_id,
            Bound::Unbounded,
            Bound::Unbounded,
            false,
            |member, _| {
                budget.take(member.len())?;
                out.push(member.to_vec());
                Ok(true)
            },
        )?;
    }
    Ok(out)
}

fn is_member<T: ReadableTable<&'static [u8], &'static [u8]>>(
    v: &View<'_, T>,
    record: Option<&KvRecord>,
    member: &[u8],
) -> Res<bool> {
    match record {
        None => Ok(false),
        Some(r) => Ok(v.element(r.collection_id, member)?.is_some()),
    }
}

/// Which set algebra.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Algebra {
    Inter,
    Union,
    Diff,
}

/// The result of `op` over the sets at `keys` (absent keys are empty sets), stopping an
/// intersection at `limit` members (0 = no limit).
fn combine<T: ReadableTable<&'static [u8], &'static [u8]>>(
    v: &View<'_, T>,
    keys: &[Vec<u8>],
    op: Algebra,
    limit: u64,
) -> Res<BTreeSet<Vec<u8>>> {
    let mut records = Vec::with_capacity(keys.len());
    for key in keys {
        check_key(key)?;
        records.push(v.typed(key, KIND_SET)?);
    }
    let mut budget = ReplyBudget::default();
    let mut result = BTreeSet::new();
    match op {
        Algebra::Inter => {
            if records.iter().any(Option::is_none) {
                return Ok(result);
            }
            let smallest = records
                .iter()
                .enumerate()
                .min_by_key(|(_, r)| r.as_ref().map_or(0, |r| r.length))
                .map(|(i, _)| i)
                .unwrap_or(0);
            for member in members(v, records[smallest].as_ref(), &mut budget)? {
                let mut everywhere = true;
                for (i, record) in records.iter().enumerate() {
                    if i != smallest && !is_member(v, record.as_ref(), &member)? {
                        everywhere = false;
                        break;
                    }
                }
                if everywhere {
                    result.insert(member);
                    if limit != 0 && result.len() as u64 >= limit {
                        break;
                    }
                }
            }
        }
        Algebra::Union => {
            for record in &records {
                result.extend(members(v, record.as_ref(), &mut budget)?);
            }
        }
        Algebra::Diff => {
            for member in members(v, records[0].as_ref(), &mut budget)? {
                let mut elsewhere = false;
                for record in &records[1..] {
                    if is_member(v, record.as_ref(), &member)? {
                        elsewhere = true;
                        break;
                    }
                }
                if !elsewhere {
                    result.insert(member);
                }
            }
        }
    }
    Ok(result)
}

pub(super) fn read<T: ReadableTable<&'static [u8], &'static [u8]>>(
    v: &View<'_, T>,
    name: &str,
    args: &[Vec<u8>],
    rng: &mut Rng,
) -> Res<RedisReply> {
    match name {
        "sinter" => Ok(set_reply(combine(v, &args[1..], Algebra::Inter, 0)?)),
        "sunion" => Ok(set_reply(combine(v, &args[1..], Algebra::Union, 0)?)),
        "sdiff" => Ok(set_reply(combine(v, &args[1..], Algebra::Diff, 0)?)),
        "sintercard" => {
            let (keys, limit) = numkeys_and_limit(args)?;
            Ok(RedisReply::int(
                combine(v, keys, Algebra::Inter, limit)?.len() as i64,
            ))
        }
        _ => {
            let key = &args[1];
            check_key(key)?;
            let record = v.typed(key, KIND_SET)?;
            match name {
                "scard" => Ok(RedisReply::int(record.map_or(0, |r| r.length as i64))),
                "sismember" => Ok(RedisReply::int(
                    is_member(v, record.as_ref(), &args[2])? as i64
                )),
                "smismember" => {
                    let mut items = Vec::new();
                    for member in &args[2..] {
                        items.push(RedisReply::int(
                            is_member(v, record.as_ref(), member)? as i64
                        ));
                    }
                    Ok(RedisReply::array(items))
                }
                "smembers" => Ok(set_reply(members(
                    v,
                    record.as_ref(),
                    &mut ReplyBudget::default(),
                )?)),
                "srandmember" => {
                    let count = match &args[2..] {
                        [] => None,
                        [count] => Some(check_pick_count(int_arg(count)?)?),
                        _ => return syntax(),
                    };
                    let all = members(v, record.as_ref(), &mut ReplyBudget::default())?;
                    if all.is_empty() {
                        return Ok(match count {
                            None => RedisReply::nil(),
                            Some(_) => RedisReply::array(Vec::new()),
                        });
                    }
                    let picks = random_indexes(rng, all.len() as u64, count.unwrap_or(1));
                    let mut budget = ReplyBudget::default();
                    let mut items = Vec::with_capacity(picks.len());
                    for index in picks {
                        let member = &all[index as usize];
                        budget.take(member.len())?;
                        items.push(RedisReply::bulk(member.clone()));
                    }
                    if count.is_none() {
                        return Ok(items.pop().unwrap_or_else(RedisReply::nil));
                    }
                    Ok(RedisReply::array(items))
                }
                _ => scan_elements(
                    v,
                    record.map(|r| (r.collection_id, Vec::new())),
                    &args[2..],
                    |member, _| vec![RedisReply::bulk(member.to_vec())],
                ),
            }
        }
    }
}

/// `numkeys key... [LIMIT n]` of `SINTERCARD` (and `ZINTERCARD`), with Redis's errors: a
/// `numkeys` that is not a positive integer is "numkeys should be greater than 0", a `LIMIT`
/// that is not a non-negative integer "LIMIT can't be negative".
pub(super) fn numkeys_and_limit(args: &[Vec<u8>]) -> Res<(&[Vec<u8>], u64)> {
    let numkeys = match parse_int(&args[1]) {
        Some(n) if n > 0 => n,
        _ => return err("numkeys should be greater than 0"),
    };
    let numkeys = numkeys as usize;
    if numkeys > args.len() - 2 {
        return err("Number of keys can't be greater than number of args");
    }
    let keys = &args[2..2 + numkeys];
    let mut limit = 0u64;
    let rest = &args[2 + numkeys..];
    match rest {
        [] => {}
        [word, n] if word.eq_ignore_ascii_case(b"limit") => match parse_int(n) {
            Some(n) if n >= 0 => limit = n as u64,
            _ => return err("LIMIT can't be negative"),
        },
        _ => return syntax(),
    }
    Ok((keys, limit))
}

pub(super) fn write(ctx: &mut Ctx<'_, '_, '_>, name: &str, args: &[Vec<u8>]) -> Res<RedisReply> {
    match name {
        "sinterstore" | "sunionstore" | "sdiffstore" => {
            let op = match name {
                "sinterstore" => Algebra::Inter,
                "sunionstore" => Algebra::Union,
                _ => Algebra::Diff,
            };
            check_key(&args[1])?;
            let result = combine(&ctx.view(), &args[2..], op, 0)?;
            let count = result.len() as i64;
            check_length(result.len() as u64)?;
            store(ctx, &args[1], result)?;
            Ok(RedisReply::int(count))
        }
        "smove" => smove(ctx, args),
        _ => {
            let key = &args[1];
            check_key(key)?;
            let mut set = Coll::open(ctx, key, KIND_SET)?;
            match name {
                "sadd" => {
                    let mut added = BTreeSet::new();
                    for member in &args[2..] {
                        check_element(member)?;
                        if ctx.view().element(set.id, member)?.is_none() {
                            added.insert(member.as_slice());
                        }
                    }
                    set.length += added.len() as u64;
                    check_length(set.length)?;
                    for member in &added {
                        set.put(ctx, member, &[])?;
                    }
                    if !added.is_empty() {
                        set.save(ctx)?;
                    }
                    Ok(RedisReply::int(added.len() as i64))
                }
                "srem" => {
                    let mut removed = 0;
                    for member in &args[2..] {
                        if set.existed() && set.remove(ctx, member)? {
                            removed += 1;
                            set.length -= 1;
                        }
                    }
                    if removed > 0 {
                        set.save(ctx)?;
                    }
                    Ok(RedisReply::int(removed))
                }
                _ => spop(ctx, set, args),
            }
        }
    }
}

/// Replace whatever is at `key` by the set `members` (deleting the key if it is empty).
pub(super) fn store(ctx: &mut Ctx<'_, '_, '_>, key: &[u8], members: BTreeSet<Vec<u8>>) -> Res<()> {
    if ctx.view().record(key)?.is_some() {
        ctx.w.remove_key(key, true)?;
    }
    let mut set = Coll::open(ctx, key, KIND_SET)?;
    for member in &members {
        set.put(ctx, member, &[])?;
    }
    set.length = members.len() as u64;
    set.save(ctx)
}

fn spop(ctx: &mut Ctx<'_, '_, '_>, mut set: Coll, args: &[Vec<u8>]) -> Res<RedisReply> {
    let count = match &args[2..] {
        [] => None,
        [count] => match parse_int(count) {
            Some(n) if n >= 0 => Some(n),
            _ => return err("value is out of range, must be positive"),
        },
        _ => return syntax(),
    };
    if !set.existed() {
        return Ok(match count {
            None => RedisReply::nil(),
            Some(_) => set_reply(Vec::new()),
        });
    }
    let all = members(&ctx.view(), set.prev.as_ref(), &mut ReplyBudget::default())?;
    let picks = random_indexes(&mut ctx.rng, all.len() as u64, count.unwrap_or(1));
    let mut popped = Vec::with_capacity(picks.len());
    for index in picks {
        let member = &all[index as usize];
        set.remove(ctx, member)?;
        set.length -= 1;
        popped.push(member.clone());
    }
    if !popped.is_empty() {
        set.save(ctx)?;
    }
    Ok(match count {
        None => popped.pop().map_or_else(RedisReply::nil, RedisReply::bulk),
        Some(_) => set_reply(popped),
    })
}

/// A set reply of `members` (RESP3 `~`).
fn set_reply(members: impl IntoIterator<Item = Vec<u8>>) -> RedisReply {
    RedisReply::set(members.into_iter().map(RedisReply::bulk).collect())
}

fn smove(ctx: &mut Ctx<'_, '_, '_>, args: &[Vec<u8>]) -> Res<RedisReply> {
    let (from, to, member) = (&args[1], &args[2], &args[3]);
    check_key(from)?;
    check_key(to)?;
    check_element(member)?;
    let mut source = Coll::open(ctx, from, KIND_SET)?;
    let target_record = ctx.view().typed(to, KIND_SET)?;
    if !source.existed() || ctx.view().element(source.id, member)?.is_none() {
        return Ok(RedisReply::int(0));
    }
    if from == to {
        return Ok(RedisReply::int(1));
    }
    let mut target = Coll::open(ctx, to, KIND_SET)?;
    let target_has = target_record.is_some() && ctx.view().element(target.id, member)?.is_some();
    if !target_has {
        target.length += 1;
        check_length(target.length)?;
        target.put(ctx, member, &[])?;
        target.save(ctx)?;
    }
    source.remove(ctx, member)?;
    source.length -= 1;
    source.save(ctx)?;
    Ok(RedisReply::int(1))
}
