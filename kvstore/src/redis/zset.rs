//! Sorted-set commands. A member has two rows in `sm_redis_elements`: `0x00 ‖ member → score`
//! (lookups and lexicographic ranges) and `0x01 ‖ ordered score ‖ member → empty` (score
//! order: ranks and score ranges).

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

use redb::ReadableTable;

use super::hash::{check_length, random_args, random_indexes};
use super::number::{
    float_arg, format_double, int_arg, ordered_score, parse_float, parse_int, score_from_ordered,
};
use super::set::numkeys_and_limit;
use super::store::{Coll, View};
use super::{
    check_element, check_key, err, scan_elements, syntax, wrong_type, Ctx, RedisReply, ReplyBudget,
    Res, Rng,
};
use crate::tables::KvRecord;
use crate::{KIND_SET, KIND_ZSET};

const MEMBER: u8 = 0;
const ORDER: u8 = 1;

fn member_key(member: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + member.len());
    key.push(MEMBER);
    key.extend_from_slice(member);
    key
}

fn order_key(score: f64, member: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(9 + member.len());
    key.push(ORDER);
    key.extend_from_slice(&ordered_score(score));
    key.extend_from_slice(member);
    key
}

fn decode_score(bytes: &[u8]) -> f64 {
    let mut raw = [0u8; 8];
    raw.copy_from_slice(&bytes[..8]);
    f64::from_bits(u64::from_be_bytes(raw))
}

fn score<T: ReadableTable<&'static [u8], &'static [u8]>>(
    v: &View<'_, T>,
    id: u64,
    member: &[u8],
) -> Res<Option<f64>> {
    Ok(v.element(id, &member_key(member))?
        .map(|b| decode_score(&b)))
}

/// A bound of a score range.
#[derive(Clone, Copy)]
struct ScoreBound {
    value: f64,
    exclusive: bool,
}

fn score_bound(arg: &[u8]) -> Res<ScoreBound> {
    let (exclusive, text) = match arg.first() {
        Some(b'(') => (true, &arg[1..]),
        _ => (false, arg),
    };
    match parse_float(text) {
        Some(value) => Ok(ScoreBound { value, exclusive }),
        None => err("min or max is not a float"),
    }
}

/// A bound of a lexicographic range.
#[derive(Clone)]
enum LexBound {
    Min,
    Max,
    Inclusive(Vec<u8>),
    Exclusive(Vec<u8>),
}

fn lex_bound(arg: &[u8]) -> Res<LexBound> {
    match arg.first() {
        Some(b'-') if arg.len() == 1 => Ok(LexBound::Min),
        Some(b'+') if arg.len() == 1 => Ok(LexBound::Max),
        Some(b'[') => Ok(LexBound::Inclusive(arg[1..].to_vec())),
        Some(b'(') => Ok(LexBound::Exclusive(arg[1..].to_vec())),
        _ => err("min or max not valid string range item"),
    }
}

/// What a range selects.
enum Selection {
    Rank(i64, i64),
    Score(ScoreBound, ScoreBound),
    Lex(LexBound, LexBound),
}

/// A range query: the selection (bounds as `min, max` even when reversed), the direction, and
/// `LIMIT offset count` (count < 0: no limit).
struct Query {
    selection: Selection,
    reverse: bool,
    offset: i64,
    count: i64,
}

fn above_min(score: f64, min: ScoreBound) -> bool {
    if min.exclusive {
        score > min.value
    } else {
        score >= min.value
    }
}

fn below_max(score: f64, max: ScoreBound) -> bool {
    if max.exclusive {
        score < max.value
    } else {
        score <= max.value
    }
}

fn lex_above_min(member: &[u8], min: &LexBound) -> bool {
    match min {
        LexBound::Min => true,
        LexBound::Max => false,
        LexBound::Inclusive(m) => member >= m.as_slice(),
        LexBound::Exclusive(m) => member > m.as_slice(),
    }
}

fn lex_below_max(member: &[u8], max: &LexBound) -> bool {
    match max {
        LexBound::Min => false,
        LexBound::Max => true,
        LexBound::Inclusive(m) => member <= m.as_slice(),
        LexBound::Exclusive(m) => member < m.as_slice(),
    }
}

/// The (member, score) pairs `query` selects from the sorted set `record`, in reply order.
fn select<T: ReadableTable<&'static [u8], &'static [u8]>>(
    v: &View<'_, T>,
    record: &KvRecord,
    query: &Query,
    budget: &mut ReplyBudget,
) -> Res<Vec<(Vec<u8>, f64)>> {
    let id = record.collection_id;
    let mut out = Vec::new();
    let (mut skip, limit) = (
        query.offset.max(0) as u64,
        if query.count < 0 {
            u64::MAX
        } else {
            query.count as u64
        },
    );
    if query.offset < 0 || limit == 0 {
        return Ok(out);
    }
    let mut take = |member: &[u8], score: f64, out: &mut Vec<(Vec<u8>, f64)>| -> Res<bool> {
        if skip > 0 {
            skip -= 1;
            return Ok(true);
        }
        budget.take(member.len() + 24)?;
        out.push((member.to_vec(), score));
        Ok((out.len() as u64) < limit)
    };
    match &query.selection {
        Selection::Rank(start, stop) => {
            let Some((first, last)) = super::number::clamp_range(*start, *stop, record.length)
            else {
                return Ok(out);
            };
            skip = first;
            let wanted = last - first + 1;
            let mut taken = 0u64;
            let lo = [ORDER];
            let hi = [ORDER + 1];
            v.walk(
                id,
                Bound::Included(&lo),
                Bound::Excluded(&hi),
                query.reverse,
                |sub, _| {
                    if skip > 0 {
                        skip -= 1;
                        return Ok(true);
                    }
                    let member = &sub[9..];
                    budget.take(member.len() + 24)?;
                    out.push((member.to_vec(), score_from_ordered(&sub[1..9])));
                    taken += 1;
                    Ok(taken < wanted)
                },
            )?;
        }
        Selection::Score(min, max) => {
            let lo = [&[ORDER][..], &ordered_score(min.value)].concat();
            let hi_bits = u64::from_be_bytes(ordered_score(max.value)).saturating_add(1);
            let hi = [&[ORDER][..], &hi_bits.to_be_bytes()].concat();
            if min.value > max.value {
                return Ok(out);
            }
            v.walk(
                id,
                Bound::Included(&lo),
                Bound::Excluded(&hi),
                query.reverse,
                |sub, _| {
                    let score = score_from_ordered(&sub[1..9]);
                    if !above_min(score, *min) {
                        return Ok(!query.reverse);
                    }
                    if !below_max(score, *max) {
                        return Ok(query.reverse);
                    }
                    take(&sub[9..], score, &mut out)
                },
            )?;
        }
        Selection::Lex(min, max) => {
            let lo = [MEMBER];
            let hi = [MEMBER + 1];
            let from = match min {
                LexBound::Inclusive(m) | LexBound::Exclusive(m) => member_key(m),
                _ => lo.to_vec(),
            };
            v.walk(
                id,
                Bound::Included(if query.reverse { &lo[..] } else { &from }),
                Bound::Excluded(&hi),
                query.reverse,
                |sub, value| {
                    let member = &sub[1..];
                    if !lex_above_min(member, min) {
                        return Ok(!query.reverse);
                    }
                    if !lex_below_max(member, max) {
                        return Ok(query.reverse);
                    }
                    take(member, decode_score(value), &mut out)
                },
            )?;
        }
    }
    Ok(out)
}

/// The members, or with `with_scores` member/score pairs (RESP3 nests each pair).
fn pairs_reply(pairs: Vec<(Vec<u8>, f64)>, with_scores: bool) -> RedisReply {
    let mut items = Vec::with_capacity(pairs.len() * if with_scores { 2 } else { 1 });
    for (member, score) in pairs {
        items.push(RedisReply::bulk(member));
        if with_scores {
            items.push(RedisReply::double(score));
        }
    }
    if with_scores {
        RedisReply::pairs(items)
    } else {
        RedisReply::array(items)
    }
}

/// Parses a `ZRANGE`-family command into a query; whether `WITHSCORES` was given.
fn parse_range(name: &str, args: &[Vec<u8>], first: usize) -> Res<(Query, bool)> {
    let (mut by_score, mut by_lex, mut reverse, mut with_scores) = (false, false, false, false);
    let (mut offset, mut count, mut limited) = (0i64, -1i64, false);
    match name {
        "zrangebyscore" | "zrevrangebyscore" => by_score = true,
        "zrangebylex" | "zrevrangebylex" => by_lex = true,
        _ => {}
    }
    if name.starts_with("zrev") {
        reverse = true;
    }
    let mut i = first + 2;
    while i < args.len() {
        match args[i].to_ascii_lowercase().as_slice() {
            b"withscores" if !by_lex => with_scores = true,
            b"limit" if i + 2 < args.len() && name != "zrevrange" => {
                offset = int_arg(&args[i + 1])?;
                count = int_arg(&args[i + 2])?;
                limited = true;
                i += 2;
            }
            b"byscore" if name == "zrange" || name == "zrangestore" => by_score = true,
            b"bylex" if name == "zrange" || name == "zrangestore" => by_lex = true,
            b"rev" if name == "zrange" || name == "zrangestore" => reverse = true,
            _ => return syntax(),
        }
        i += 1;
    }
    if by_score && by_lex {
        return syntax();
    }
    if limited && !by_score && !by_lex {
        return err(
            "syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX",
        );
    }
    if with_scores && by_lex {
        return err("syntax error, WITHSCORES not supported in combination with BYLEX");
    }
    // With REV the arguments come max first (except by rank).
    let (a, b) = (&args[first], &args[first + 1]);
    let selection = if by_score {
        let (min, max) = if reverse { (b, a) } else { (a, b) };
        Selection::Score(score_bound(min)?, score_bound(max)?)
    } else if by_lex {
        let (min, max) = if reverse { (b, a) } else { (a, b) };
        Selection::Lex(lex_bound(min)?, lex_bound(max)?)
    } else {
        Selection::Rank(int_arg(a)?, int_arg(b)?)
    };
    Ok((
        Query {
            selection,
            reverse,
            offset,
            count,
        },
        with_scores,
    ))
}

pub(super) fn read<T: ReadableTable<&'static [u8], &'static [u8]>>(
    v: &View<'_, T>,
    name: &str,
    args: &[Vec<u8>],
    rng: &mut Rng,
) -> Res<RedisReply> {
    match name {
        "zunion" | "zinter" | "zdiff" => {
            let (result, with_scores) = combine(v, name, args, 1)?;
            Ok(pairs_reply(sorted(result), with_scores))
        }
        "zintercard" => {
            // Redis checks ZINTERCARD's numkeys as ZINTER's.
            if parse_int(&args[1]).is_some_and(|n| n < 1) {
                return err("at least 1 input key is needed for 'zintercard' command");
            }
            let (keys, limit) = numkeys_and_limit(args)?;
            let mut inputs = Vec::new();
            for key in keys {
                check_key(key)?;
                inputs.push(load(v, key)?);
            }
            let mut count = aggregate(inputs, &[], Aggregate::Sum, Op::Inter).len() as u64;
            if limit != 0 {
                count = count.min(limit);
            }
            Ok(RedisReply::int(count as i64))
        }
        _ => {
            let key = &args[1];
            check_key(key)?;
            let record = v.typed(key, KIND_ZSET)?;
            single_read(v, name, args, record, rng)
        }
    }
}

fn single_read<T: ReadableTable<&'static [u8], &'static [u8]>>(
    v: &View<'_, T>,
    name: &str,
    args: &[Vec<u8>],
    record: Option<KvRecord>,
    rng: &mut Rng,
) -> Res<RedisReply> {
    let id = record.as_ref().map(|r| r.collection_id);
    let score_of = |member: &[u8]| -> Res<Option<f64>> {
        match id {
            None => Ok(None),
            Some(id) => score(v, id, member),
        }
    };
    match name {
        "zcard" => Ok(RedisReply::int(record.map_or(0, |r| r.length as i64))),
        "zscore" => Ok(score_of(&args[2])?.map_or_else(RedisReply::nil, RedisReply::double)),
        "zmscore" => {
            let mut items = Vec::new();
            for member in &args[2..] {
                items.push(score_of(member)?.map_or_else(RedisReply::nil, RedisReply::double));
            }
            Ok(RedisReply::array(items))
        }
        "zrank" | "zrevrank" => {
            let with_score = match &args[3..] {
                [] => false,
                [w] if w.eq_ignore_ascii_case(b"withscore") => true,
                _ => return syntax(),
            };
            let Some(record) = record else {
                return Ok(if with_score {
                    RedisReply::nil_array()
                } else {
                    RedisReply::nil()
                });
            };
            let Some(s) = score(v, record.collection_id, &args[2])? else {
                return Ok(if with_score {
                    RedisReply::nil_array()
                } else {
                    RedisReply::nil()
                });
            };
            let target = order_key(s, &args[2]);
            let mut below = 0i64;
            let lo = [ORDER];
            v.walk(
                record.collection_id,
                Bound::Included(&lo),
                Bound::Excluded(&target),
                false,
                |_, _| {
                    below += 1;
                    Ok(true)
                },
            )?;
            let rank = if name == "zrank" {
                below
            } else {
                record.length as i64 - 1 - below
            };
            Ok(if with_score {
                RedisReply::array(vec![RedisReply::int(rank), RedisReply::double(s)])
            } else {
                RedisReply::int(rank)
            })
        }
        "zcount" | "zlexcount" => {
            let selection = if name == "zcount" {
                Selection::Score(score_bound(&args[2])?, score_bound(&args[3])?)
            } else {
                Selection::Lex(lex_bound(&args[2])?, lex_bound(&args[3])?)
            };
            let Some(record) = record else {
                return Ok(RedisReply::int(0));
            };
            let query = Query {
                selection,
                reverse: false,
                offset: 0,
                count: -1,
            };
            let found = select(v, &record, &query, &mut ReplyBudget::default())?;
            Ok(RedisReply::int(found.len() as i64))
        }
        "zrandmember" => {
            let (count, with_scores) = random_args(args, b"withscores")?;
            let Some(record) = record else {
                return Ok(match count {
                    None => RedisReply::nil(),
                    Some(_) => RedisReply::array(Vec::new()),
                });
            };
            let all = all_pairs(v, &record)?;
            let picks = random_indexes(rng, record.length, count.unwrap_or(1));
            let mut budget = ReplyBudget::default();
            let mut chosen = Vec::with_capacity(picks.len());
            for index in picks {
                let (member, score) = &all[index as usize];
                budget.take(member.len() + 24)?;
                chosen.push((member.clone(), *score));
            }
            if count.is_none() {
                return Ok(chosen
                    .pop()
                    .map_or_else(RedisReply::nil, |(m, _)| RedisReply::bulk(m)));
            }
            Ok(pairs_reply(chosen, with_scores))
        }
        "zscan" => scan_elements(
            v,
            record.map(|r| (r.collection_id, vec![MEMBER])),
            &args[2..],
            |member, value| {
                vec![
                    RedisReply::bulk(member.to_vec()),
                    RedisReply::bulk(format_double(decode_score(value)).into_bytes()),
                ]
            },
        ),
        _ => {
            let (query, with_scores) = parse_range(name, args, 2)?;
            let Some(record) = record else {
                return Ok(RedisReply::array(Vec::new()));
            };
            let found = select(v, &record, &query, &mut ReplyBudget::default())?;
            Ok(pairs_reply(found, with_scores))
        }
    }
}

/// Every (member, score) of the sorted set `record`, in member order.
fn all_pairs<T: ReadableTable<&'static [u8], &'static [u8]>>(
    v: &View<'_, T>,
    record: &KvRecord,
) -> Res<Vec<(Vec<u8>, f64)>> {
    let mut out = Vec::new();
    let mut budget = ReplyBudget::default();
    let (lo, hi) = ([MEMBER], [MEMBER + 1]);
    v.walk(
        record.collection_id,
        Bound::Included(&lo),
        Bound::Excluded(&hi),
        false,
        |sub, value| {
            budget.take(sub.len() + 24)?;
            out.push((sub[1..].to_vec(), decode_score(value)));
            Ok(true)
        },
    )?;
    Ok(out)
}

/// The members of a sorted set or a set (score 1) at `key`; `None` if absent.
fn load<T: ReadableTable<&'static [u8], &'static [u8]>>(
    v: &View<'_, T>,
    key: &[u8],
) -> Res<Option<BTreeMap<Vec<u8>, f64>>> {
    let Some(record) = v.record(key)? else {
        return Ok(None);
    };
    match record.kind {
        KIND_ZSET => Ok(Some(all_pairs(v, &record)?.into_iter().collect())),
        KIND_SET => {
            let mut budget = ReplyBudget::default();
            let mut members = BTreeMap::new();
            v.walk(
                record.collection_id,
                Bound::Unbounded,
                Bound::Unbounded,
                false,
                |member, _| {
                    budget.take(member.len() + 24)?;
                    members.insert(member.to_vec(), 1.0);
                    Ok(true)
                },
            )?;
            Ok(Some(members))
        }
        _ => wrong_type(),
    }
}

#[derive(Clone, Copy)]
enum Aggregate {
    Sum,
    Min,
    Max,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Union,
    Inter,
    Diff,
}

fn weigh(score: f64, weight: f64) -> f64 {
    let product = score * weight;
    if product.is_nan() {
        0.0
    } else {
        product
    }
}

fn combine_scores(a: f64, b: f64, how: Aggregate) -> f64 {
    match how {
        Aggregate::Sum => {
            let sum = a + b;
            if sum.is_nan() {
                0.0
            } else {
                sum
            }
        }
        Aggregate::Min => a.min(b),
        Aggregate::Max => a.max(b),
    }
}

fn aggregate(
    inputs: Vec<Option<BTreeMap<Vec<u8>, f64>>>,
    weights: &[f64],
    how: Aggregate,
    op: Op,
) -> BTreeMap<Vec<u8>, f64> {
    let weight = |i: usize| weights.get(i).copied().unwrap_or(1.0);
    let mut result: BTreeMap<Vec<u8>, f64> = BTreeMap::new();
    match op {
        Op::Union => {
            for (i, input) in inputs.into_iter().enumerate() {
                for (member, score) in input.unwrap_or_default() {
                    let score = weigh(score, weight(i));
                    result
                        .entry(member)
                        .and_modify(|s| *s = combine_scores(*s, score, how))
                        .or_insert(score);
                }
            }
        }
        Op::Inter => {
            if inputs.iter().any(Option::is_none) {
                return result;
            }
            let inputs: Vec<BTreeMap<Vec<u8>, f64>> = inputs.into_iter().flatten().collect();
            let Some(first) = inputs.first() else {
                return result;
            };
            'members: for (member, score) in first {
                let mut total = weigh(*score, weight(0));
                for (i, other) in inputs.iter().enumerate().skip(1) {
                    match other.get(member) {
                        None => continue 'members,
                        Some(s) => total = combine_scores(total, weigh(*s, weight(i)), how),
                    }
                }
                result.insert(member.clone(), total);
            }
        }
        Op::Diff => {
            let mut inputs = inputs.into_iter();
            let Some(Some(first)) = inputs.next() else {
                return result;
            };
            let others: Vec<BTreeMap<Vec<u8>, f64>> = inputs.flatten().collect();
            for (member, score) in first {
                if !others.iter().any(|o| o.contains_key(&member)) {
                    result.insert(member, score);
                }
            }
        }
    }
    result
}

fn sorted(result: BTreeMap<Vec<u8>, f64>) -> Vec<(Vec<u8>, f64)> {
    let mut pairs: Vec<(Vec<u8>, f64)> = result.into_iter().collect();
    pairs.sort_by(|a, b| a.1.total_cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
    pairs
}

/// `ZUNION`/`ZINTER`/`ZDIFF` (from `numkeys` at `args[at]`) and their `STORE` forms: the
/// result and whether `WITHSCORES` was given.
fn combine<T: ReadableTable<&'static [u8], &'static [u8]>>(
    v: &View<'_, T>,
    name: &str,
    args: &[Vec<u8>],
    at: usize,
) -> Res<(BTreeMap<Vec<u8>, f64>, bool)> {
    let store = name.ends_with("store");
    let op = if name.starts_with("zunion") {
        Op::Union
    } else if name.starts_with("zinter") {
        Op::Inter
    } else {
        Op::Diff
    };
    let numkeys = int_arg(&args[at])?;
    if numkeys < 1 {
        return err(format!(
            "at least 1 input key is needed for '{name}' command"
        ));
    }
    let numkeys = numkeys as usize;
    if numkeys > args.len() - at - 1 {
        return syntax();
    }
    let keys = &args[at + 1..at + 1 + numkeys];
    let (mut weights, mut how, mut with_scores) = (Vec::new(), Aggregate::Sum, false);
    let mut i = at + 1 + numkeys;
    while i < args.len() {
        match args[i].to_ascii_lowercase().as_slice() {
            b"weights" if op != Op::Diff && i + numkeys < args.len() => {
                for w in &args[i + 1..=i + numkeys] {
                    match parse_float(w) {
                        Some(w) => weights.push(w),
                        None => return err("weight value is not a float"),
                    }
                }
                i += numkeys;
            }
            b"aggregate" if op != Op::Diff && i + 1 < args.len() => {
                how = match args[i + 1].to_ascii_lowercase().as_slice() {
                    b"sum" => Aggregate::Sum,
                    b"min" => Aggregate::Min,
                    b"max" => Aggregate::Max,
                    _ => return syntax(),
                };
                i += 1;
            }
            b"withscores" if !store => with_scores = true,
            _ => return syntax(),
        }
        i += 1;
    }
    let mut inputs = Vec::with_capacity(keys.len());
    for key in keys {
        check_key(key)?;
        inputs.push(load(v, key)?);
    }
    Ok((aggregate(inputs, &weights, how, op), with_scores))
}

pub(super) fn write(ctx: &mut Ctx<'_, '_, '_>, name: &str, args: &[Vec<u8>]) -> Res<RedisReply> {
    match name {
        "zunionstore" | "zinterstore" | "zdiffstore" => {
            check_key(&args[1])?;
            let (result, _) = combine(&ctx.view(), name, args, 2)?;
            let count = result.len() as i64;
            store(ctx, &args[1], result)?;
            Ok(RedisReply::int(count))
        }
        "zrangestore" => {
            check_key(&args[1])?;
            check_key(&args[2])?;
            let (query, with_scores) = parse_range("zrangestore", args, 3)?;
            if with_scores {
                return syntax();
            }
            let view = ctx.view();
            let found = match view.typed(&args[2], KIND_ZSET)? {
                None => Vec::new(),
                Some(record) => select(&view, &record, &query, &mut ReplyBudget::default())?,
            };
            let count = found.len() as i64;
            store(ctx, &args[1], found.into_iter().collect())?;
            Ok(RedisReply::int(count))
        }
        "zmpop" => zmpop(ctx, args),
        "zpopmin" | "zpopmax" if args.len() == 3 && parse_int(&args[2]).is_none_or(|n| n < 0) => {
            // Redis checks the count before the key's type.
            err("value is out of range, must be positive")
        }
        _ => {
            let key = &args[1];
            check_key(key)?;
            let zset = Coll::open(ctx, key, KIND_ZSET)?;
            match name {
                "zadd" => zadd(ctx, zset, args),
                "zincrby" => {
                    let increment = float_arg(&args[2])?;
                    check_element(&args[3])?;
                    incr(ctx, zset, &args[3], increment)
                }
                "zrem" => {
                    let mut zset = zset;
                    let mut removed = 0;
                    if zset.existed() {
                        for member in &args[2..] {
                            if let Some(s) = score(&ctx.view(), zset.id, member)? {
                                remove_member(ctx, &mut zset, member, s)?;
                                removed += 1;
                            }
                        }
                    }
                    if removed > 0 {
                        zset.save(ctx)?;
                    }
                    Ok(RedisReply::int(removed))
                }
                "zpopmin" | "zpopmax" => {
                    let count = match &args[2..] {
                        [] => None,
                        [n] => match parse_int(n) {
                            Some(n) if n >= 0 => Some(n),
                            _ => return err("value is out of range, must be positive"),
                        },
                        _ => return syntax(),
                    };
                    let popped = pop(ctx, zset, name == "zpopmax", count.unwrap_or(1))?;
                    if count.is_some() {
                        return Ok(pairs_reply(popped, true));
                    }
                    // Without a count, one member and its score, flat in RESP3 too.
                    Ok(RedisReply::array(
                        popped
                            .into_iter()
                            .flat_map(|(m, s)| [RedisReply::bulk(m), RedisReply::double(s)])
                            .collect(),
                    ))
                }
                _ => remove_range(ctx, zset, name, args),
            }
        }
    }
}

fn put_member(
    ctx: &mut Ctx<'_, '_, '_>,
    zset: &mut Coll,
    member: &[u8],
    old: Option<f64>,
    new: f64,
) -> Res<()> {
    match old {
        Some(old) => {
            zset.remove(ctx, &order_key(old, member))?;
        }
        None => zset.length += 1,
    }
    zset.put(ctx, &member_key(member), &new.to_bits().to_be_bytes())?;
    zset.put(ctx, &order_key(new, member), &[])?;
    Ok(())
}

fn remove_member(ctx: &mut Ctx<'_, '_, '_>, zset: &mut Coll, member: &[u8], old: f64) -> Res<()> {
    zset.remove(ctx, &member_key(member))?;
    zset.remove(ctx, &order_key(old, member))?;
    zset.length -= 1;
    Ok(())
}

fn incr(ctx: &mut Ctx<'_, '_, '_>, mut zset: Coll, member: &[u8], by: f64) -> Res<RedisReply> {
    let old = score(&ctx.view(), zset.id, member)?;
    let new = old.unwrap_or(0.0) + by;
    if new.is_nan() {
        return err("resulting score is not a number (NaN)");
    }
    if old.is_none() {
        check_length(zset.length + 1)?;
    }
    put_member(ctx, &mut zset, member, old, new)?;
    zset.save(ctx)?;
    Ok(RedisReply::double(new))
}

fn zadd(ctx: &mut Ctx<'_, '_, '_>, mut zset: Coll, args: &[Vec<u8>]) -> Res<RedisReply> {
    let (mut nx, mut xx, mut gt, mut lt, mut ch, mut incr_mode) =
        (false, false, false, false, false, false);
    let mut i = 2;
    while i < args.len() {
        match args[i].to_ascii_lowercase().as_slice() {
            b"nx" => nx = true,
            b"xx" => xx = true,
            b"gt" => gt = true,
            b"lt" => lt = true,
            b"ch" => ch = true,
            b"incr" => incr_mode = true,
            _ => break,
        }
        i += 1;
    }
    let pairs = &args[i..];
    if pairs.is_empty() || !pairs.len().is_multiple_of(2) {
        return syntax();
    }
    if nx && xx {
        return err("XX and NX options at the same time are not compatible");
    }
    if ((gt || lt) && nx) || (gt && lt) {
        return err("GT, LT, and/or NX options at the same time are not compatible");
    }
    if incr_mode && pairs.len() > 2 {
        return err("INCR option supports a single increment-element pair");
    }
    let mut parsed = Vec::with_capacity(pairs.len() / 2);
    for pair in pairs.chunks(2) {
        let Some(s) = parse_float(&pair[0]) else {
            return err("value is not a valid float");
        };
        check_element(&pair[1])?;
        parsed.push((s, pair[1].as_slice()));
    }
    // Plan every change before writing any.
    let mut plan: BTreeMap<&[u8], (Option<f64>, f64)> = BTreeMap::new();
    let (mut added, mut changed) = (0i64, 0i64);
    let mut incr_result = None;
    for (s, member) in parsed {
        let old = match plan.get(member) {
            Some((_, current)) => Some(*current),
            None => score(&ctx.view(), zset.id, member)?,
        };
        let new = if incr_mode {
            let n = old.unwrap_or(0.0) + s;
            if n.is_nan() {
                return err("resulting score is not a number (NaN)");
            }
            n
        } else {
            s
        };
        let allowed = match old {
            None => !xx,
            Some(old) => !nx && (!gt || new > old) && (!lt || new < old),
        };
        if !allowed {
            continue;
        }
        incr_result = Some(new);
        match old {
            None => added += 1,
            Some(old) if old != new => changed += 1,
            Some(_) => {}
        }
        let original = plan.get(member).map_or(old, |(o, _)| *o);
        plan.insert(member, (original, new));
    }
    check_length(zset.length + added as u64)?;
    let mut wrote = false;
    for (member, (old, new)) in &plan {
        if *old != Some(*new) {
            put_member(ctx, &mut zset, member, *old, *new)?;
            wrote = true;
        }
    }
    if wrote {
        zset.save(ctx)?;
    }
    if incr_mode {
        return Ok(incr_result.map_or_else(RedisReply::nil, RedisReply::double));
    }
    Ok(RedisReply::int(if ch { added + changed } else { added }))
}

/// Pop up to `count` members with the lowest (or highest) scores.
fn pop(
    ctx: &mut Ctx<'_, '_, '_>,
    mut zset: Coll,
    highest: bool,
    count: i64,
) -> Res<Vec<(Vec<u8>, f64)>> {
    let Some(record) = zset.prev.clone() else {
        return Ok(Vec::new());
    };
    let query = Query {
        selection: Selection::Rank(0, count - 1),
        reverse: highest,
        offset: 0,
        count: -1,
    };
    if count == 0 {
        return Ok(Vec::new());
    }
    let found = select(&ctx.view(), &record, &query, &mut ReplyBudget::default())?;
    for (member, s) in &found {
        remove_member(ctx, &mut zset, member, *s)?;
    }
    if !found.is_empty() {
        zset.save(ctx)?;
    }
    Ok(found)
}

/// `ZMPOP numkeys key... MIN|MAX [COUNT n]`.
fn zmpop(ctx: &mut Ctx<'_, '_, '_>, args: &[Vec<u8>]) -> Res<RedisReply> {
    let numkeys = match parse_int(&args[1]) {
        Some(n) if n > 0 => n,
        _ => return err("numkeys should be greater than 0"),
    };
    let numkeys = numkeys as usize;
    if numkeys > args.len() - 3 {
        return syntax();
    }
    let keys = &args[2..2 + numkeys];
    let highest = match args[2 + numkeys].to_ascii_lowercase().as_slice() {
        b"min" => false,
        b"max" => true,
        _ => return syntax(),
    };
    let mut count = 1i64;
    match &args[3 + numkeys..] {
        [] => {}
        [word, n] if word.eq_ignore_ascii_case(b"count") => match parse_int(n) {
            Some(n) if n > 0 => count = n,
            _ => return err("count should be greater than 0"),
        },
        _ => return syntax(),
    }
    for key in keys {
        check_key(key)?;
        let zset = Coll::open(ctx, key, KIND_ZSET)?;
        if !zset.existed() {
            continue;
        }
        let popped = pop(ctx, zset, highest, count)?;
        let items = popped
            .into_iter()
            .map(|(member, s)| {
                RedisReply::array(vec![RedisReply::bulk(member), RedisReply::double(s)])
            })
            .collect();
        return Ok(RedisReply::array(vec![
            RedisReply::bulk(key.clone()),
            RedisReply::array(items),
        ]));
    }
    Ok(RedisReply::nil_array())
}

/// `ZREMRANGEBYRANK`, `ZREMRANGEBYSCORE`, `ZREMRANGEBYLEX`.
fn remove_range(
    ctx: &mut Ctx<'_, '_, '_>,
    mut zset: Coll,
    name: &str,
    args: &[Vec<u8>],
) -> Res<RedisReply> {
    let selection = match name {
        "zremrangebyrank" => Selection::Rank(int_arg(&args[2])?, int_arg(&args[3])?),
        "zremrangebyscore" => Selection::Score(score_bound(&args[2])?, score_bound(&args[3])?),
        _ => Selection::Lex(lex_bound(&args[2])?, lex_bound(&args[3])?),
    };
    let Some(record) = zset.prev.clone() else {
        return Ok(RedisReply::int(0));
    };
    let query = Query {
        selection,
        reverse: false,
        offset: 0,
        count: -1,
    };
    let found = select(&ctx.view(), &record, &query, &mut ReplyBudget::default())?;
    for (member, s) in &found {
        remove_member(ctx, &mut zset, member, *s)?;
    }
    if !found.is_empty() {
        zset.save(ctx)?;
    }
    Ok(RedisReply::int(found.len() as i64))
}

/// Replace whatever is at `key` by the sorted set `members` (deleting the key if empty).
fn store(ctx: &mut Ctx<'_, '_, '_>, key: &[u8], members: BTreeMap<Vec<u8>, f64>) -> Res<()> {
    check_length(members.len() as u64)?;
    if ctx.view().record(key)?.is_some() {
        ctx.w.remove_key(key, true)?;
    }
    let mut zset = Coll::open(ctx, key, KIND_ZSET)?;
    let distinct: BTreeSet<&Vec<u8>> = members.keys().collect();
    debug_assert_eq!(distinct.len(), members.len());
    for (member, s) in &members {
        put_member(ctx, &mut zset, member, None, *s)?;
    }
    zset.save(ctx)
}
