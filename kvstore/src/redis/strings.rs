//! String commands that read and write in one step: `SET .. GET`, `GETSET`, `APPEND`, `GETDEL`,
//! `GETEX`, `SETRANGE`, `SETBIT`, `INCRBYFLOAT`; and the string reads `STRLEN`, `GETRANGE`/`SUBSTR`,
//! `GETBIT`, `BITCOUNT`, `BITPOS`, `LCS`.
//!
//! The plain string commands (`GET`, `MGET`, `SETNX`, `MSET`, `MSETNX`, `DEL`, `INCR`, ...) are
//! here too for `MULTI` blocks, which run as one state-machine command: outside a block the Redis
//! endpoint maps them to the store's own ops (`Get`, `Put`, `Txn`, `Incr`).

use redb::ReadableTable;

use super::number::{float_arg, format_stored_float, int_arg, parse_float, parse_int};
use super::store::View;
use super::{check_key, err, syntax, wrong_type, Ctx, Fail, RedisReply, ReplyBudget, Res};
use crate::key_expiry;
use crate::writer::TtlMode;
use crate::KIND_STRING;
use synod_wire::command::Persist;
use synod_wire::limits::MAX_VALUE_BYTES;

/// Most cells (length of one string times the other's) `LCS` computes (16 Mi, 64 MiB of
/// table); longer inputs are refused.
const MAX_LCS_CELLS: u64 = 16 * 1024 * 1024;

fn too_large<T>() -> Res<T> {
    err("string exceeds maximum allowed size (proto-max-bulk-len)")
}

pub(super) fn read<T: ReadableTable<&'static [u8], &'static [u8]>>(
    v: &View<'_, T>,
    name: &str,
    args: &[Vec<u8>],
) -> Res<RedisReply> {
    if name == "mget" {
        return mget(v, &args[1..]);
    }
    check_key(&args[1])?;
    match name {
        "get" => Ok(v
            .string(&args[1])?
            .map_or_else(RedisReply::nil, RedisReply::bulk)),
        "strlen" => Ok(RedisReply::int(
            v.string(&args[1])?.map_or(0, |s| s.len() as i64),
        )),
        "getrange" | "substr" => {
            let (start, end) = (int_arg(&args[2])?, int_arg(&args[3])?);
            let value = v.string(&args[1])?.unwrap_or_default();
            Ok(RedisReply::bulk(get_range(&value, start, end)))
        }
        "getbit" => {
            let offset = bit_offset(&args[2])?;
            let value = v.string(&args[1])?.unwrap_or_default();
            let byte = value.get((offset / 8) as usize).copied().unwrap_or(0);
            Ok(RedisReply::int(i64::from((byte >> (7 - offset % 8)) & 1)))
        }
        "bitcount" => bitcount(v, args),
        "bitpos" => bitpos(v, args),
        _ => lcs(v, args),
    }
}

/// `MGET key...`: each key's string, nil for a missing key or one of another type.
fn mget<T: ReadableTable<&'static [u8], &'static [u8]>>(
    v: &View<'_, T>,
    keys: &[Vec<u8>],
) -> Res<RedisReply> {
    let mut budget = ReplyBudget::default();
    let mut values = Vec::with_capacity(keys.len());
    for key in keys {
        check_key(key)?;
        let value = match v.record(key)? {
            Some(record) if record.kind == KIND_STRING => {
                budget.take(record.value.len())?;
                RedisReply::bulk(record.value)
            }
            _ => RedisReply::nil(),
        };
        values.push(value);
    }
    Ok(RedisReply::array(values))
}

/// Redis's `GETRANGE`: inclusive, negative from the end, clamped.
fn get_range(value: &[u8], start: i64, end: i64) -> Vec<u8> {
    let len = value.len() as i64;
    if len == 0 || (start < 0 && end < 0 && start > end) {
        return Vec::new();
    }
    let start = if start < 0 {
        (len + start).max(0)
    } else {
        start
    };
    let end = if end < 0 { (len + end).max(0) } else { end };
    let end = end.min(len - 1);
    if start > end {
        return Vec::new();
    }
    value[start as usize..=end as usize].to_vec()
}

/// A bit offset: 0 to 2^32 - 1, as Redis allows.
fn bit_offset(arg: &[u8]) -> Res<u64> {
    match parse_int(arg) {
        Some(n) if (0..(1i64 << 32)).contains(&n) => Ok(n as u64),
        _ => err("bit offset is not an integer or out of range"),
    }
}

/// Resolve `start..=end` (negative from the end) over `len` units; `None` if empty.
fn unit_range(start: i64, end: i64, len: i64) -> Option<(i64, i64)> {
    if start < 0 && end < 0 && start > end {
        return None;
    }
    let start = if start < 0 {
        (len + start).max(0)
    } else {
        start
    };
    let end = if end < 0 { (len + end).max(0) } else { end };
    let end = end.min(len - 1);
    (start <= end && len > 0).then_some((start, end))
}

fn bit_at(value: &[u8], bit: i64) -> u8 {
    (value[(bit / 8) as usize] >> (7 - bit % 8)) & 1
}

/// Parses `[start end [BYTE|BIT]]` from `args[from..]`; whether the unit is bits.
fn range_args(args: &[Vec<u8>], from: usize) -> Res<(Option<i64>, Option<i64>, bool)> {
    let start = args.get(from).map(|a| int_arg(a)).transpose()?;
    let end = args.get(from + 1).map(|a| int_arg(a)).transpose()?;
    let bits = match args.get(from + 2) {
        None => false,
        Some(unit) if unit.eq_ignore_ascii_case(b"bit") => true,
        Some(unit) if unit.eq_ignore_ascii_case(b"byte") => false,
        Some(_) => return syntax(),
    };
    if args.len() > from + 3 {
        return syntax();
    }
    Ok((start, end, bits))
}

fn bitcount<T: ReadableTable<&'static [u8], &'static [u8]>>(
    v: &View<'_, T>,
    args: &[Vec<u8>],
) -> Res<RedisReply> {
    if args.len() == 3 {
        return syntax();
    }
    let (start, end, bits) = range_args(args, 2)?;
    let value = v.string(&args[1])?.unwrap_or_default();
    let count = match (start, end) {
        (Some(start), Some(end)) if bits => match unit_range(start, end, value.len() as i64 * 8) {
            None => 0,
            Some((s, e)) => (s..=e).filter(|b| bit_at(&value, *b) == 1).count() as i64,
        },
        (Some(start), Some(end)) => match unit_range(start, end, value.len() as i64) {
            None => 0,
            Some((s, e)) => value[s as usize..=e as usize]
                .iter()
                .map(|b| i64::from(b.count_ones()))
                .sum(),
        },
        _ => value.iter().map(|b| i64::from(b.count_ones())).sum(),
    };
    Ok(RedisReply::int(count))
}

fn bitpos<T: ReadableTable<&'static [u8], &'static [u8]>>(
    v: &View<'_, T>,
    args: &[Vec<u8>],
) -> Res<RedisReply> {
    let bit = match args[2].as_slice() {
        b"0" => 0u8,
        b"1" => 1u8,
        _ => return err("The bit argument must be 1 or 0."),
    };
    let (start, end, bits) = range_args(args, 3)?;
    let value = v.string(&args[1])?;
    let Some(value) = value.filter(|v| !v.is_empty()) else {
        return Ok(RedisReply::int(if bit == 1 { -1 } else { 0 }));
    };
    let end_given = end.is_some();
    let len_units = if bits {
        value.len() as i64 * 8
    } else {
        value.len() as i64
    };
    let Some((s, e)) = unit_range(start.unwrap_or(0), end.unwrap_or(-1), len_units) else {
        return Ok(RedisReply::int(-1));
    };
    let (first_bit, last_bit) = if bits { (s, e) } else { (s * 8, e * 8 + 7) };
    for b in first_bit..=last_bit {
        if bit_at(&value, b) == bit {
            return Ok(RedisReply::int(b));
        }
    }
    // Looking for a clear bit without an end: the string counts as padded with zeros.
    if bit == 0 && !end_given && !bits {
        return Ok(RedisReply::int(last_bit + 1));
    }
    Ok(RedisReply::int(-1))
}

fn lcs<T: ReadableTable<&'static [u8], &'static [u8]>>(
    v: &View<'_, T>,
    args: &[Vec<u8>],
) -> Res<RedisReply> {
    check_key(&args[2])?;
    let (mut want_len, mut want_idx, mut with_match_len, mut min_match_len) =
        (false, false, false, 0i64);
    let mut i = 3;
    while i < args.len() {
        match args[i].to_ascii_lowercase().as_slice() {
            b"len" => want_len = true,
            b"idx" => want_idx = true,
            b"withmatchlen" => with_match_len = true,
            b"minmatchlen" if i + 1 < args.len() => {
                i += 1;
                min_match_len = int_arg(&args[i])?.max(0);
            }
            _ => return syntax(),
        }
        i += 1;
    }
    if want_len && want_idx {
        return err("If you want both the length and indexes, please just use IDX.");
    }
    let a = v.string(&args[1])?.unwrap_or_default();
    let b = v.string(&args[2])?.unwrap_or_default();
    let (alen, blen) = (a.len(), b.len());
    if (alen as u64 + 1) * (blen as u64 + 1) > MAX_LCS_CELLS {
        return err(format!(
            "LCS of strings this long is refused (over {MAX_LCS_CELLS} cells)"
        ));
    }
    let width = blen + 1;
    let mut table = vec![0u32; (alen + 1) * width];
    for i in 1..=alen {
        for j in 1..=blen {
            table[i * width + j] = if a[i - 1] == b[j - 1] {
                table[(i - 1) * width + j - 1] + 1
            } else {
                table[(i - 1) * width + j].max(table[i * width + j - 1])
            };
        }
    }
    let total = table[alen * width + blen] as usize;
    let mut result = vec![0u8; total];
    let mut matches = Vec::new();
    let (mut i, mut j, mut idx) = (alen, blen, total);
    let (mut a_start, mut a_end, mut b_start, mut b_end) = (alen, 0, 0, 0);
    while i > 0 && j > 0 {
        let mut emit = false;
        if a[i - 1] == b[j - 1] {
            result[idx - 1] = a[i - 1];
            if a_start == alen {
                a_start = i - 1;
                a_end = i - 1;
                b_start = j - 1;
                b_end = j - 1;
            } else if a_start == i && b_start == j {
                a_start -= 1;
                b_start -= 1;
            } else {
                emit = true;
            }
            if a_start == 0 || b_start == 0 {
                emit = true;
            }
            idx -= 1;
            i -= 1;
            j -= 1;
        } else {
            if table[(i - 1) * width + j] > table[i * width + j - 1] {
                i -= 1;
            } else {
                j -= 1;
            }
            if a_start != alen {
                emit = true;
            }
        }
        if emit {
            let match_len = (a_end - a_start + 1) as i64;
            if min_match_len == 0 || match_len >= min_match_len {
                let mut item = vec![
                    RedisReply::array(vec![
                        RedisReply::int(a_start as i64),
                        RedisReply::int(a_end as i64),
                    ]),
                    RedisReply::array(vec![
                        RedisReply::int(b_start as i64),
                        RedisReply::int(b_end as i64),
                    ]),
                ];
                if with_match_len {
                    item.push(RedisReply::int(match_len));
                }
                matches.push(RedisReply::array(item));
            }
            a_start = alen;
        }
    }
    Ok(if want_idx {
        RedisReply::array(vec![
            RedisReply::bulk(b"matches".to_vec()),
            RedisReply::array(matches),
            RedisReply::bulk(b"len".to_vec()),
            RedisReply::int(total as i64),
        ])
    } else if want_len {
        RedisReply::int(total as i64)
    } else {
        RedisReply::bulk(result)
    })
}

pub(super) fn write(ctx: &mut Ctx<'_, '_, '_>, name: &str, args: &[Vec<u8>]) -> Res<RedisReply> {
    match name {
        "mset" | "msetnx" => return mset(ctx, &args[1..], name == "msetnx"),
        "del" | "unlink" => return del(ctx, &args[1..]),
        _ => {}
    }
    let key = &args[1];
    check_key(key)?;
    match name {
        "set" => return set(ctx, key, &args[2], &args[3..]),
        "setnx" => {
            return set(ctx, key, &args[2], &[b"nx".to_vec()])
                .map(|reply| RedisReply::int(i64::from(reply == RedisReply::ok())))
        }
        _ => {}
    }
    let current = ctx.view().string(key)?;
    match name {
        "incr" | "decr" | "incrby" | "decrby" => {
            let delta = match name {
                "incr" => 1,
                "decr" => -1,
                "incrby" => int_arg(&args[2])?,
                _ => match int_arg(&args[2])?.checked_neg() {
                    Some(delta) => delta,
                    None => return err("decrement would overflow"),
                },
            };
            let base = match &current {
                None => 0,
                Some(value) => int_value(value)?,
            };
            let Some(result) = base.checked_add(delta) else {
                return err("increment or decrement would overflow");
            };
            ctx.w
                .put(key, result.to_string().as_bytes(), false, TtlMode::Keep)?;
            Ok(RedisReply::int(result))
        }
        "getset" => {
            ctx.w.put(key, &args[2], false, TtlMode::Clear)?;
            Ok(current.map_or_else(RedisReply::nil, RedisReply::bulk))
        }
        "append" => {
            let mut value = current.unwrap_or_default();
            if value.len() + args[2].len() > MAX_VALUE_BYTES {
                return too_large();
            }
            value.extend_from_slice(&args[2]);
            ctx.w.put(key, &value, false, TtlMode::Keep)?;
            Ok(RedisReply::int(value.len() as i64))
        }
        "getdel" => {
            if current.is_some() {
                ctx.w.remove_key(key, true)?;
            }
            Ok(current.map_or_else(RedisReply::nil, RedisReply::bulk))
        }
        "getex" => getex(ctx, key, current, &args[2..]),
        "setrange" => {
            let offset = int_arg(&args[2])?;
            if offset < 0 {
                return err("offset is out of range");
            }
            let patch = &args[3];
            let mut value = current.unwrap_or_default();
            if patch.is_empty() {
                return Ok(RedisReply::int(value.len() as i64));
            }
            let end = offset as u64 + patch.len() as u64;
            if end > MAX_VALUE_BYTES as u64 {
                return too_large();
            }
            let (offset, end) = (offset as usize, end as usize);
            if value.len() < end {
                value.resize(end, 0);
            }
            value[offset..end].copy_from_slice(patch);
            ctx.w.put(key, &value, false, TtlMode::Keep)?;
            Ok(RedisReply::int(value.len() as i64))
        }
        "setbit" => {
            let offset = bit_offset(&args[2])?;
            let bit = match args[3].as_slice() {
                b"0" => 0u8,
                b"1" => 1u8,
                _ => return err("bit is not an integer or out of range"),
            };
            let byte = (offset / 8) as usize;
            if byte >= MAX_VALUE_BYTES {
                return too_large();
            }
            let mut value = current.unwrap_or_default();
            if value.len() <= byte {
                value.resize(byte + 1, 0);
            }
            let mask = 1u8 << (7 - offset % 8);
            let old = (value[byte] & mask != 0) as i64;
            if bit == 1 {
                value[byte] |= mask;
            } else {
                value[byte] &= !mask;
            }
            ctx.w.put(key, &value, false, TtlMode::Keep)?;
            Ok(RedisReply::int(old))
        }
        _ => {
            let increment = float_arg(&args[2])?;
            let base = match &current {
                None => 0.0,
                Some(value) => match parse_float(value) {
                    Some(f) if !value.is_empty() => f,
                    _ => return err("value is not a valid float"),
                },
            };
            let result = base + increment;
            if result.is_nan() || result.is_infinite() {
                return err("increment would produce NaN or Infinity");
            }
            let text = format_stored_float(result);
            ctx.w.put(key, text.as_bytes(), false, TtlMode::Keep)?;
            Ok(RedisReply::bulk(text.into_bytes()))
        }
    }
}

/// A stored string as an integer, or Redis's error.
fn int_value(value: &[u8]) -> Res<i64> {
    parse_int(value).map_or_else(|| err("value is not an integer or out of range"), Ok)
}

/// `MSET key value [key value ...]`, or `MSETNX` (all or nothing: only if no key exists; answers
/// 1 or 0). Writes clear the keys' TTLs, as Redis's do.
fn mset(ctx: &mut Ctx<'_, '_, '_>, pairs: &[Vec<u8>], only_new: bool) -> Res<RedisReply> {
    if !pairs.len().is_multiple_of(2) {
        return err(format!(
            "wrong number of arguments for '{}' command",
            if only_new { "msetnx" } else { "mset" }
        ));
    }
    for pair in pairs.chunks(2) {
        check_key(&pair[0])?;
        if pair[1].len() > MAX_VALUE_BYTES {
            return too_large();
        }
    }
    if only_new {
        for pair in pairs.chunks(2) {
            if ctx.view().record(&pair[0])?.is_some() {
                return Ok(RedisReply::int(0));
            }
        }
    }
    for pair in pairs.chunks(2) {
        ctx.w.put(&pair[0], &pair[1], false, TtlMode::Clear)?;
    }
    Ok(if only_new {
        RedisReply::int(1)
    } else {
        RedisReply::ok()
    })
}

/// `DEL key...` (and `UNLINK`): the number of keys that existed, of any type.
fn del(ctx: &mut Ctx<'_, '_, '_>, keys: &[Vec<u8>]) -> Res<RedisReply> {
    for key in keys {
        check_key(key)?;
    }
    let mut removed = 0;
    for key in keys {
        if ctx.w.remove_key(key, true)?.is_some() {
            removed += 1;
        }
    }
    Ok(RedisReply::int(removed))
}

/// The state machine's `SET key value [NX | XX] [GET] [PX ms | KEEPTTL | EXPIRED]`, which the
/// Redis endpoint sends for `SET .. GET` (a `SET` without `GET` is a plain put): the endpoint
/// turns `EX`, `EXAT` and `PXAT` into `PX`, or into Synod's `EXPIRED` for a time already past,
/// on which the key is deleted instead of written (Redis writes it and expires it at once).
/// With `GET`, a key of another type answers `WRONGTYPE` and nothing changes; without it, a
/// collection is overwritten, as Redis's `SET` does.
fn set(
    ctx: &mut Ctx<'_, '_, '_>,
    key: &[u8],
    value: &[u8],
    options: &[Vec<u8>],
) -> Res<RedisReply> {
    let (mut nx, mut xx, mut get) = (false, false, false);
    let mut ttl: Option<TtlMode> = None;
    let mut expired = false;
    let mut i = 0;
    while i < options.len() {
        let option = options[i].to_ascii_lowercase();
        match option.as_slice() {
            b"nx" if !xx => nx = true,
            b"xx" if !nx => xx = true,
            b"get" => get = true,
            b"keepttl" if ttl.is_none() && !expired => ttl = Some(TtlMode::Keep),
            b"expired" if ttl.is_none() => expired = true,
            b"px" if ttl.is_none() && !expired && i + 1 < options.len() => {
                i += 1;
                let ms = int_arg(&options[i])?;
                if ms <= 0 || ms.unsigned_abs() > synod_wire::limits::MAX_KEY_TTL_MS {
                    return err("invalid expire time in 'set' command");
                }
                ttl = Some(TtlMode::Set(ms.unsigned_abs()));
            }
            _ => return syntax(),
        }
        i += 1;
    }
    if value.len() > MAX_VALUE_BYTES {
        return too_large();
    }
    let record = ctx.view().record(key)?;
    if get && record.as_ref().is_some_and(|r| r.kind != KIND_STRING) {
        return wrong_type();
    }
    let exists = record.is_some();
    // NX writes only an absent key, XX only an existing one.
    let writes = if exists { !nx } else { !xx };
    if writes {
        if expired {
            if exists {
                ctx.w.remove_key(key, true)?;
            }
        } else {
            ctx.w
                .put(key, value, false, ttl.unwrap_or(TtlMode::Clear))?;
        }
    }
    Ok(match (get, writes) {
        (true, _) => record.map_or_else(RedisReply::nil, |r| RedisReply::bulk(r.value)),
        (false, true) => RedisReply::ok(),
        (false, false) => RedisReply::nil(),
    })
}

/// `GETEX key [EX s | PX ms | PERSIST]` (the endpoint turns `EXAT`/`PXAT` into `PX`, or into
/// Synod's `EXPIRED` for a time already past).
fn getex(
    ctx: &mut Ctx<'_, '_, '_>,
    key: &[u8],
    current: Option<Vec<u8>>,
    options: &[Vec<u8>],
) -> Res<RedisReply> {
    enum Change {
        None,
        Ttl(u64),
        Persist,
        Delete,
    }
    let invalid = || Fail::Reply(RedisReply::err("invalid expire time in 'getex' command"));
    let change = match options {
        [] => Change::None,
        [flag] if flag.eq_ignore_ascii_case(b"persist") => Change::Persist,
        [flag] if flag.eq_ignore_ascii_case(b"expired") => Change::Delete,
        [unit, time] if unit.eq_ignore_ascii_case(b"ex") || unit.eq_ignore_ascii_case(b"px") => {
            let n = int_arg(time)?;
            let ms = if unit.eq_ignore_ascii_case(b"ex") {
                n.checked_mul(1000).ok_or_else(invalid)?
            } else {
                n
            };
            if ms <= 0 || ms.unsigned_abs() > synod_wire::limits::MAX_KEY_TTL_MS {
                return Err(invalid());
            }
            Change::Ttl(ms as u64)
        }
        _ => return syntax(),
    };
    let Some(value) = current else {
        return Ok(RedisReply::nil());
    };
    match change {
        Change::None => {}
        Change::Ttl(ms) => ctx.w.key_expiry_after_write(key, TtlMode::Set(ms))?,
        Change::Persist => {
            key_expiry::persist(ctx.w, &Persist { key: key.to_vec() })?;
        }
        Change::Delete => {
            ctx.w.remove_key(key, true)?;
        }
    }
    Ok(RedisReply::bulk(value))
}
