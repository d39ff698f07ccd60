//! List commands. Element `i` (from 0) of a list is the row at index `list_head + i`, so pushes
//! and pops at either end, `LINDEX`, `LSET` and `LRANGE` touch only the rows they need; `LREM`
//! and `LINSERT` rewrite the list from the change on.

use std::ops::Bound;

use redb::ReadableTable;

use super::hash::check_length;
use super::number::{clamp_range, int_arg, parse_int};
use super::store::{Coll, View};
use super::{check_key, err, syntax, Ctx, RedisReply, ReplyBudget, Res};
use crate::tables::KvRecord;
use crate::KIND_LIST;
use synod_wire::limits::MAX_VALUE_BYTES;

fn index_key(head: u64, i: u64) -> [u8; 8] {
    head.wrapping_add(i).to_be_bytes()
}

/// Elements `first..=last` of the list `record`, in order.
fn elements<T: ReadableTable<&'static [u8], &'static [u8]>>(
    v: &View<'_, T>,
    record: &KvRecord,
    first: u64,
    last: u64,
    budget: &mut ReplyBudget,
) -> Res<Vec<Vec<u8>>> {
    let (low, high) = (
        index_key(record.list_head, first),
        index_key(record.list_head, last),
    );
    let mut out = Vec::new();
    v.walk(
        record.collection_id,
        Bound::Included(&low),
        Bound::Included(&high),
        false,
        |_, value| {
            budget.take(value.len())?;
            out.push(value.to_vec());
            Ok(true)
        },
    )?;
    Ok(out)
}

pub(super) fn read<T: ReadableTable<&'static [u8], &'static [u8]>>(
    v: &View<'_, T>,
    name: &str,
    args: &[Vec<u8>],
) -> Res<RedisReply> {
    let key = &args[1];
    check_key(key)?;
    let record = v.typed(key, KIND_LIST)?;
    match name {
        "llen" => Ok(RedisReply::int(record.map_or(0, |r| r.length as i64))),
        "lindex" => {
            let index = int_arg(&args[2])?;
            let Some(record) = record else {
                return Ok(RedisReply::nil());
            };
            let Some(i) = resolve(index, record.length) else {
                return Ok(RedisReply::nil());
            };
            Ok(
                v.element(record.collection_id, &index_key(record.list_head, i))?
                    .map_or_else(RedisReply::nil, RedisReply::bulk),
            )
        }
        "lrange" => {
            let (start, stop) = (int_arg(&args[2])?, int_arg(&args[3])?);
            let Some(record) = record else {
                return Ok(RedisReply::array(Vec::new()));
            };
            let Some((first, last)) = clamp_range(start, stop, record.length) else {
                return Ok(RedisReply::array(Vec::new()));
            };
            Ok(RedisReply::bulks(elements(
                v,
                &record,
                first,
                last,
                &mut ReplyBudget::default(),
            )?))
        }
        _ => lpos(v, record, args),
    }
}

/// The position of Redis index `index` (negative from the end) in a list of `len`.
fn resolve(index: i64, len: u64) -> Option<u64> {
    let len = len as i64;
    let i = if index < 0 { len + index } else { index };
    (0..len).contains(&i).then_some(i as u64)
}

fn lpos<T: ReadableTable<&'static [u8], &'static [u8]>>(
    v: &View<'_, T>,
    record: Option<KvRecord>,
    args: &[Vec<u8>],
) -> Res<RedisReply> {
    let target = &args[2];
    let (mut rank, mut count, mut max_len) = (1i64, None, 0i64);
    let mut i = 3;
    while i < args.len() {
        let Some(value) = args.get(i + 1) else {
            return syntax();
        };
        match args[i].to_ascii_lowercase().as_slice() {
            b"rank" => {
                rank = int_arg(value)?;
                if rank == 0 {
                    return err("RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list");
                }
                if rank == i64::MIN {
                    return err("value is out of range");
                }
            }
            b"count" => {
                let n = int_arg(value)?;
                if n < 0 {
                    return err("COUNT can't be negative");
                }
                count = Some(n);
            }
            b"maxlen" => {
                max_len = int_arg(value)?;
                if max_len < 0 {
                    return err("MAXLEN can't be negative");
                }
            }
            _ => return syntax(),
        }
        i += 2;
    }
    let Some(record) = record else {
        return Ok(if count.is_some() {
            RedisReply::array(Vec::new())
        } else {
            RedisReply::nil()
        });
    };
    let wanted = match count {
        None => 1,
        Some(0) => u64::MAX,
        Some(n) => n as u64,
    };
    let reverse = rank < 0;
    let mut skip = rank.unsigned_abs() - 1;
    let mut found = Vec::new();
    let mut seen = 0i64;
    let len = record.length as i64;
    v.walk(
        record.collection_id,
        Bound::Unbounded,
        Bound::Unbounded,
        reverse,
        |_, value| {
            if max_len != 0 && seen >= max_len {
                return Ok(false);
            }
            let position = if reverse { len - 1 - seen } else { seen };
            seen += 1;
            if value == target.as_slice() {
                if skip > 0 {
                    skip -= 1;
                } else {
                    found.push(position);
                    if found.len() as u64 >= wanted {
                        return Ok(false);
                    }
                }
            }
            Ok(true)
        },
    )?;
    Ok(match count {
        Some(_) => RedisReply::array(found.into_iter().map(RedisReply::int).collect()),
        None => found
            .first()
            .map_or_else(RedisReply::nil, |p| RedisReply::int(*p)),
    })
}

/// Which end of a list.
#[derive(Clone, Copy, PartialEq, Eq)]
enum End {
    Left,
    Right,
}

fn end_arg(arg: &[u8]) -> Res<End> {
    if arg.eq_ignore_ascii_case(b"left") {
        Ok(End::Left)
    } else if arg.eq_ignore_ascii_case(b"right") {
        Ok(End::Right)
    } else {
        syntax()
    }
}

fn push(ctx: &mut Ctx<'_, '_, '_>, list: &mut Coll, end: End, value: &[u8]) -> Res<()> {
    match end {
        End::Left => {
            list.list_head = list.list_head.wrapping_sub(1);
            list.put(ctx, &index_key(list.list_head, 0), value)?;
        }
        End::Right => {
            list.put(ctx, &index_key(list.list_head, list.length), value)?;
        }
    }
    list.length += 1;
    Ok(())
}

fn pop(ctx: &mut Ctx<'_, '_, '_>, list: &mut Coll, end: End) -> Res<Option<Vec<u8>>> {
    if list.length == 0 {
        return Ok(None);
    }
    let at = match end {
        End::Left => index_key(list.list_head, 0),
        End::Right => index_key(list.list_head, list.length - 1),
    };
    let value = ctx.view().element(list.id, &at)?;
    list.remove(ctx, &at)?;
    list.length -= 1;
    if end == End::Left {
        list.list_head = list.list_head.wrapping_add(1);
    }
    Ok(value)
}

/// Pop `n` elements (at most the length) from `end`, in pop order; reads them all before
/// removing any, so a reply over the budget changes nothing.
fn pop_many(ctx: &mut Ctx<'_, '_, '_>, list: &mut Coll, end: End, n: u64) -> Res<Vec<Vec<u8>>> {
    let n = n.min(list.length);
    if n == 0 {
        return Ok(Vec::new());
    }
    let record = KvRecord {
        collection_id: list.id,
        list_head: list.list_head,
        ..KvRecord::default()
    };
    let (first, last) = match end {
        End::Left => (0, n - 1),
        End::Right => (list.length - n, list.length - 1),
    };
    let mut values = elements(
        &ctx.view(),
        &record,
        first,
        last,
        &mut ReplyBudget::default(),
    )?;
    if end == End::Right {
        values.reverse();
    }
    for _ in 0..n {
        pop(ctx, list, end)?;
    }
    Ok(values)
}

/// Replace every element of `list` by `values` (same id, same head).
fn rewrite(ctx: &mut Ctx<'_, '_, '_>, list: &mut Coll, values: &[Vec<u8>]) -> Res<()> {
    for i in 0..list.length {
        list.remove(ctx, &index_key(list.list_head, i))?;
    }
    for (i, value) in values.iter().enumerate() {
        list.put(ctx, &index_key(list.list_head, i as u64), value)?;
    }
    list.length = values.len() as u64;
    Ok(())
}

fn all_values(ctx: &Ctx<'_, '_, '_>, list: &Coll) -> Res<Vec<Vec<u8>>> {
    Ok(ctx
        .view()
        .all(list.id)?
        .into_iter()
        .map(|(_, v)| v)
        .collect())
}

pub(super) fn write(ctx: &mut Ctx<'_, '_, '_>, name: &str, args: &[Vec<u8>]) -> Res<RedisReply> {
    match name {
        "rpoplpush" => lmove(ctx, &args[1], &args[2], End::Right, End::Left),
        "lmove" => {
            let (from, to) = (end_arg(&args[3])?, end_arg(&args[4])?);
            lmove(ctx, &args[1], &args[2], from, to)
        }
        "lmpop" => lmpop(ctx, args),
        _ => {
            let key = &args[1];
            check_key(key)?;
            let mut list = Coll::open(ctx, key, KIND_LIST)?;
            match name {
                "lpush" | "rpush" | "lpushx" | "rpushx" => {
                    if name.ends_with('x') && !list.existed() {
                        return Ok(RedisReply::int(0));
                    }
                    if args[2..].iter().any(|v| v.len() > MAX_VALUE_BYTES) {
                        return err("value too large");
                    }
                    check_length(list.length + (args.len() - 2) as u64)?;
                    let end = if name.starts_with('l') {
                        End::Left
                    } else {
                        End::Right
                    };
                    for value in &args[2..] {
                        push(ctx, &mut list, end, value)?;
                    }
                    let length = list.length;
                    list.save(ctx)?;
                    Ok(RedisReply::int(length as i64))
                }
                "lpop" | "rpop" => {
                    let end = if name == "lpop" {
                        End::Left
                    } else {
                        End::Right
                    };
                    let count = match &args[2..] {
                        [] => None,
                        [n] => match parse_int(n) {
                            Some(n) if n >= 0 => Some(n as u64),
                            _ => return err("value is out of range, must be positive"),
                        },
                        // Redis counts a second count as a wrong arity.
                        _ => return err(format!("wrong number of arguments for '{name}' command")),
                    };
                    if !list.existed() {
                        return Ok(match count {
                            None => RedisReply::nil(),
                            Some(_) => RedisReply::nil_array(),
                        });
                    }
                    let mut popped = pop_many(ctx, &mut list, end, count.unwrap_or(1))?;
                    if !popped.is_empty() {
                        list.save(ctx)?;
                    }
                    Ok(match count {
                        None => popped.pop().map_or_else(RedisReply::nil, RedisReply::bulk),
                        Some(_) => RedisReply::bulks(popped),
                    })
                }
                "lset" => {
                    let index = int_arg(&args[2])?;
                    if !list.existed() {
                        return err("no such key");
                    }
                    let Some(i) = resolve(index, list.length) else {
                        return err("index out of range");
                    };
                    list.put(ctx, &index_key(list.list_head, i), &args[3])?;
                    list.save(ctx)?;
                    Ok(RedisReply::ok())
                }
                "ltrim" => {
                    let (start, stop) = (int_arg(&args[2])?, int_arg(&args[3])?);
                    if !list.existed() {
                        return Ok(RedisReply::ok());
                    }
                    let (keep_first, keep_last) =
                        clamp_range(start, stop, list.length).unwrap_or((list.length, list.length));
                    for i in 0..keep_first.min(list.length) {
                        list.remove(ctx, &index_key(list.list_head, i))?;
                    }
                    if keep_first < list.length {
                        for i in keep_last + 1..list.length {
                            list.remove(ctx, &index_key(list.list_head, i))?;
                        }
                        list.list_head = list.list_head.wrapping_add(keep_first);
                        list.length = keep_last - keep_first + 1;
                    } else {
                        list.length = 0;
                    }
                    list.save(ctx)?;
                    Ok(RedisReply::ok())
                }
                "lrem" => {
                    let count = int_arg(&args[2])?;
                    if !list.existed() {
                        return Ok(RedisReply::int(0));
                    }
                    let mut values = all_values(ctx, &list)?;
                    let target = &args[3];
                    let limit = if count == 0 {
                        usize::MAX
                    } else {
                        count.unsigned_abs() as usize
                    };
                    let mut removed = 0usize;
                    let mut keep = vec![true; values.len()];
                    let order: Box<dyn Iterator<Item = usize>> = if count < 0 {
                        Box::new((0..values.len()).rev())
                    } else {
                        Box::new(0..values.len())
                    };
                    for i in order {
                        if removed == limit {
                            break;
                        }
                        if values[i] == *target {
                            keep[i] = false;
                            removed += 1;
                        }
                    }
                    if removed > 0 {
                        let mut flags = keep.into_iter();
                        values.retain(|_| flags.next().unwrap_or(true));
                        rewrite(ctx, &mut list, &values)?;
                        list.save(ctx)?;
                    }
                    Ok(RedisReply::int(removed as i64))
                }
                _ => {
                    let before = if args[2].eq_ignore_ascii_case(b"before") {
                        true
                    } else if args[2].eq_ignore_ascii_case(b"after") {
                        false
                    } else {
                        return syntax();
                    };
                    if !list.existed() {
                        return Ok(RedisReply::int(0));
                    }
                    check_length(list.length + 1)?;
                    let mut values = all_values(ctx, &list)?;
                    let Some(at) = values.iter().position(|v| *v == args[3]) else {
                        return Ok(RedisReply::int(-1));
                    };
                    values.insert(if before { at } else { at + 1 }, args[4].clone());
                    rewrite(ctx, &mut list, &values)?;
                    let length = list.length;
                    list.save(ctx)?;
                    Ok(RedisReply::int(length as i64))
                }
            }
        }
    }
}

/// `LMOVE` / `RPOPLPUSH`: pop from `from`'s end, push on `to`'s end, atomically.
fn lmove(
    ctx: &mut Ctx<'_, '_, '_>,
    from: &[u8],
    to: &[u8],
    from_end: End,
    to_end: End,
) -> Res<RedisReply> {
    check_key(from)?;
    check_key(to)?;
    let mut source = Coll::open(ctx, from, KIND_LIST)?;
    if !source.existed() {
        return Ok(RedisReply::nil());
    }
    if from == to {
        let value = pop(ctx, &mut source, from_end)?.unwrap_or_default();
        push(ctx, &mut source, to_end, &value)?;
        source.save(ctx)?;
        return Ok(RedisReply::bulk(value));
    }
    let mut target = Coll::open(ctx, to, KIND_LIST)?;
    check_length(target.length + 1)?;
    let value = pop(ctx, &mut source, from_end)?.unwrap_or_default();
    push(ctx, &mut target, to_end, &value)?;
    source.save(ctx)?;
    target.save(ctx)?;
    Ok(RedisReply::bulk(value))
}

/// `LMPOP numkeys key... LEFT|RIGHT [COUNT n]`: pop from the first non-empty list.
fn lmpop(ctx: &mut Ctx<'_, '_, '_>, args: &[Vec<u8>]) -> Res<RedisReply> {
    let numkeys = int_arg(&args[1])?;
    if numkeys <= 0 {
        return err("numkeys should be greater than 0");
    }
    let numkeys = numkeys as usize;
    if numkeys > args.len() - 3 {
        return syntax();
    }
    let keys = &args[2..2 + numkeys];
    let end = end_arg(&args[2 + numkeys])?;
    let mut count = 1u64;
    match &args[3 + numkeys..] {
        [] => {}
        [word, n] if word.eq_ignore_ascii_case(b"count") => match parse_int(n) {
            Some(n) if n > 0 => count = n as u64,
            _ => return err("count should be greater than 0"),
        },
        _ => return syntax(),
    }
    for key in keys {
        check_key(key)?;
        let mut list = Coll::open(ctx, key, KIND_LIST)?;
        if !list.existed() {
            continue;
        }
        let popped = pop_many(ctx, &mut list, end, count)?;
        list.save(ctx)?;
        return Ok(RedisReply::array(vec![
            RedisReply::bulk(key.clone()),
            RedisReply::bulks(popped),
        ]));
    }
    Ok(RedisReply::nil_array())
}
