//! The string commands. Each is one state-machine command, so each is
//! atomic: multi-key writes and conditional writes (`SET NX/XX/GET`,
//! `MSET`, `MSETNX`, `DEL k...`) are one transaction or compare-and-swap.
//! Writes treat a key's TTL as Redis does: `SET` (without `KEEPTTL`),
//! `SETEX`, `MSET` remove or replace it, `INCR` keeps it. The string
//! commands that must look at the key's type or value before writing
//! (`GETSET`, `APPEND`, `SETRANGE`, ...) run in the state machine
//! (`data`).

use std::collections::HashMap;

use synod_kvstore::{
    Compare, CompareAndSwap, CompareOp, CompareTarget, Delete, Get, Incr, KeyTtl, KeyValue, Op,
    Outcome, Put, Txn, TxnOp, TxnOpKind, TxnOutcome, TxnResponse, KIND_STRING,
};
use synod_wire::limits::MAX_TXN_OPS;

use super::expiry::{ttl_ms, Base, Unit};
use super::resp::{int_arg, Reply};
use super::{check_key, data, read, write, write_with_ttl, Conn, RedisShared};

/// Runs the string command `name` (lower case, arity already checked).
pub(super) async fn execute(
    shared: &RedisShared,
    conn: &mut Conn,
    name: &str,
    args: &[Vec<u8>],
) -> Reply {
    let result = match name {
        "get" => get(shared, &args[1]).await.and_then(string_or_nil),
        "set" => set(shared, conn, args).await,
        "setnx" => setnx(shared, conn, args).await,
        "mget" => mget(shared, &args[1..]).await,
        "mset" => mset(shared, conn, args, false).await,
        "msetnx" => mset(shared, conn, args, true).await,
        "del" | "unlink" => del(shared, conn, &args[1..]).await,
        "exists" => exists(shared, &args[1..]).await,
        "incr" => incr(shared, conn, &args[1], Ok(1)).await,
        "decr" => incr(shared, conn, &args[1], Ok(-1)).await,
        "incrby" => incr(shared, conn, &args[1], int_arg(&args[2])).await,
        "decrby" => {
            let delta = int_arg(&args[2]).and_then(|n| {
                n.checked_neg()
                    .ok_or_else(|| Reply::err("decrement would overflow"))
            });
            incr(shared, conn, &args[1], delta).await
        }
        "setex" | "psetex" => setex(shared, conn, name, args).await,
        _ => Err(Reply::err(format!("command '{name}' is not implemented"))),
    };
    result.unwrap_or_else(|error| error)
}

fn value_or_nil(kv: Option<KeyValue>) -> Reply {
    kv.map_or(Reply::Nil, |kv| Reply::Bulk(kv.value))
}

fn wrong_type() -> Reply {
    Reply::Error("WRONGTYPE Operation against a key holding the wrong kind of value".into())
}

/// `GET`'s reply: the string, nil, or `WRONGTYPE` for a collection.
fn string_or_nil(kv: Option<KeyValue>) -> Result<Reply, Reply> {
    match kv {
        Some(kv) if kv.kind != KIND_STRING => Err(wrong_type()),
        kv => Ok(value_or_nil(kv)),
    }
}

/// `SETEX key seconds value` / `PSETEX key ms value` (`name`): the TTL in
/// ms, or Redis's error.
pub(super) fn setex_ttl_ms(name: &str, args: &[Vec<u8>]) -> Result<u64, Reply> {
    let unit = if name == "setex" {
        Unit::Seconds
    } else {
        Unit::Millis
    };
    let time = int_arg(&args[2])?;
    if time <= 0 {
        return Err(Reply::err(format!(
            "invalid expire time in '{name}' command"
        )));
    }
    let ms = ttl_ms(time, unit, Base::FromNow, name)?;
    check_key(&args[1])?;
    Ok(ms.unsigned_abs())
}

/// `SETEX key seconds value` / `PSETEX key ms value`.
async fn setex(
    shared: &RedisShared,
    conn: &mut Conn,
    name: &str,
    args: &[Vec<u8>],
) -> Result<Reply, Reply> {
    let ms = setex_ttl_ms(name, args)?;
    let op = Op::Put(Put {
        key: args[1].clone(),
        value: args[3].clone(),
        prev_kv: false,
    });
    match write_with_ttl(shared, conn, op, Some(KeyTtl::expire_in(ms))).await? {
        Outcome::Put(_) => Ok(Reply::ok()),
        _ => Err(unexpected()),
    }
}

fn unexpected() -> Reply {
    Reply::err("the state machine answered with an unexpected outcome")
}

fn syntax_error() -> Reply {
    Reply::err("syntax error")
}

/// A linearizable read of `key`.
async fn get(shared: &RedisShared, key: &[u8]) -> Result<Option<KeyValue>, Reply> {
    check_key(key)?;
    match read(shared, Op::Get(Get { key: key.to_vec() })).await? {
        Outcome::Get(get) => Ok(get.kv),
        _ => Err(unexpected()),
    }
}

async fn txn(
    shared: &RedisShared,
    conn: &mut Conn,
    txn: Txn,
    key_ttl: Option<KeyTtl>,
) -> Result<TxnResponse, Reply> {
    match write_with_ttl(shared, conn, Op::Txn(txn), key_ttl).await? {
        Outcome::Txn(response) => Ok(response),
        _ => Err(unexpected()),
    }
}

fn version_compare(key: &[u8], op: CompareOp) -> Compare {
    Compare {
        key: key.to_vec(),
        target: CompareTarget::Version as i32,
        op: op as i32,
        value: Vec::new(),
        number: 0,
    }
}

fn txn_op(kind: TxnOpKind) -> TxnOp {
    TxnOp { op: Some(kind) }
}

fn put_op(key: &[u8], value: &[u8], prev_kv: bool) -> TxnOp {
    txn_op(TxnOpKind::Put(Put {
        key: key.to_vec(),
        value: value.to_vec(),
        prev_kv,
    }))
}

/// The key of a put or get result of a transaction branch.
fn txn_kv(response: &TxnResponse, index: usize) -> Option<KeyValue> {
    let outcome = response.responses.get(index)?.outcome.as_ref()?;
    let kv = match outcome {
        TxnOutcome::Put(put) => put.prev.as_ref(),
        TxnOutcome::Get(get) => get.kv.as_ref(),
        TxnOutcome::Delete(delete) => delete.prev.as_ref(),
    };
    kv.cloned()
}

/// What `SET` does to the key's expiry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SetTtl {
    /// Remove it (no option).
    Clear,
    /// Keep it (`KEEPTTL`).
    Keep,
    /// Expire in this many ms (`EX`, `PX`, a future `EXAT` or `PXAT`).
    In(u64),
    /// Already expired (`EXAT` or `PXAT` in the past): Redis sets the key
    /// and deletes it at once, so this `SET` deletes it.
    Past,
}

/// The options of a `SET`, parsed.
#[derive(Clone, Copy, Debug)]
pub(super) struct SetOptions {
    nx: bool,
    xx: bool,
    want_old: bool,
    ttl: SetTtl,
}

/// Parses `SET key value [NX | XX] [GET] [EX s | PX ms | EXAT t | PXAT t |
/// KEEPTTL]`, with absolute times turned into TTLs on this node's clock.
pub(super) fn parse_set(args: &[Vec<u8>]) -> Result<SetOptions, Reply> {
    let (mut nx, mut xx, mut want_old, mut keepttl) = (false, false, false, false);
    let mut expiry: Option<(&[u8], Unit, Base)> = None;
    let mut i = 3;
    while i < args.len() {
        let option = args[i].to_ascii_uppercase();
        match option.as_slice() {
            b"NX" if !xx => nx = true,
            b"XX" if !nx => xx = true,
            b"GET" => want_old = true,
            b"KEEPTTL" if expiry.is_none() => keepttl = true,
            b"EX" | b"PX" | b"EXAT" | b"PXAT"
                if expiry.is_none() && !keepttl && i + 1 < args.len() =>
            {
                let unit = match option.as_slice() {
                    b"EX" | b"EXAT" => Unit::Seconds,
                    _ => Unit::Millis,
                };
                let base = match option.as_slice() {
                    b"EX" | b"PX" => Base::FromNow,
                    _ => Base::UnixEpoch,
                };
                i += 1;
                expiry = Some((&args[i], unit, base));
            }
            _ => return Err(syntax_error()),
        }
        i += 1;
    }
    let ttl = match expiry {
        None if keepttl => SetTtl::Keep,
        None => SetTtl::Clear,
        Some((time, unit, base)) => {
            let time = int_arg(time)?;
            if time <= 0 {
                return Err(Reply::err("invalid expire time in 'set' command"));
            }
            match ttl_ms(time, unit, base, "set")? {
                ms if ms > 0 => SetTtl::In(ms.unsigned_abs()),
                _ => SetTtl::Past,
            }
        }
    };
    check_key(&args[1])?;
    Ok(SetOptions {
        nx,
        xx,
        want_old,
        ttl,
    })
}

/// `SET` in the state machine's form (see `kvstore/src/redis/`): the
/// expiry as a TTL (`PX`), `KEEPTTL`, or `EXPIRED` for a time already past.
pub(super) fn set_in_state_machine_form(args: &[Vec<u8>], options: SetOptions) -> Vec<Vec<u8>> {
    let mut forwarded = vec![b"set".to_vec(), args[1].clone(), args[2].clone()];
    if options.nx {
        forwarded.push(b"NX".to_vec());
    }
    if options.xx {
        forwarded.push(b"XX".to_vec());
    }
    if options.want_old {
        forwarded.push(b"GET".to_vec());
    }
    match options.ttl {
        SetTtl::Clear => {}
        SetTtl::Keep => forwarded.push(b"KEEPTTL".to_vec()),
        SetTtl::In(ms) => {
            forwarded.push(b"PX".to_vec());
            forwarded.push(ms.to_string().into_bytes());
        }
        SetTtl::Past => forwarded.push(b"EXPIRED".to_vec()),
    }
    forwarded
}

/// `SET key value [NX | XX] [GET] [EX s | PX ms | EXAT t | PXAT t | KEEPTTL]`.
async fn set(shared: &RedisShared, conn: &mut Conn, args: &[Vec<u8>]) -> Result<Reply, Reply> {
    let options = parse_set(args)?;
    let SetOptions {
        nx,
        xx,
        want_old,
        ttl,
    } = options;
    let (key, value) = (&args[1], &args[2]);
    if want_old {
        // The state machine's `set` answers `WRONGTYPE` for a collection
        // without changing it (a put would overwrite it).
        let forwarded = set_in_state_machine_form(args, options);
        return data::run(shared, conn, forwarded).await.map(data::to_reply);
    }
    let key_ttl = match ttl {
        SetTtl::Clear | SetTtl::Past => None,
        SetTtl::Keep => Some(KeyTtl::keep()),
        SetTtl::In(ms) => Some(KeyTtl::expire_in(ms)),
    };
    let write_op = if ttl == SetTtl::Past {
        txn_op(TxnOpKind::Delete(Delete {
            key: key.clone(),
            prev_kv: false,
        }))
    } else {
        put_op(key, value, false)
    };
    if !nx && !xx {
        let op = match write_op.op {
            Some(TxnOpKind::Put(put)) => Op::Put(put),
            Some(TxnOpKind::Delete(delete)) => Op::Delete(delete),
            _ => return Err(unexpected()),
        };
        return match write_with_ttl(shared, conn, op, key_ttl).await? {
            Outcome::Put(_) | Outcome::Delete(_) => Ok(Reply::ok()),
            _ => Err(unexpected()),
        };
    }
    let compare = version_compare(
        key,
        if nx {
            CompareOp::Equal
        } else {
            CompareOp::Greater
        },
    );
    let response = txn(
        shared,
        conn,
        Txn {
            compares: vec![compare],
            success: vec![write_op],
            failure: Vec::new(),
        },
        key_ttl,
    )
    .await?;
    Ok(if response.succeeded {
        Reply::ok()
    } else {
        Reply::Nil
    })
}

async fn setnx(shared: &RedisShared, conn: &mut Conn, args: &[Vec<u8>]) -> Result<Reply, Reply> {
    check_key(&args[1])?;
    let op = Op::CompareAndSwap(CompareAndSwap {
        key: args[1].clone(),
        expected: None,
        new_value: args[2].clone(),
    });
    match write(shared, conn, op).await? {
        Outcome::CompareAndSwap(cas) => Ok(Reply::Integer(cas.succeeded.into())),
        _ => Err(unexpected()),
    }
}

/// The distinct keys of `keys`, in first-seen order.
fn distinct(keys: &[Vec<u8>]) -> Result<Vec<Vec<u8>>, Reply> {
    let mut seen = HashMap::new();
    let mut out = Vec::new();
    for key in keys {
        check_key(key)?;
        if seen.insert(key.as_slice(), ()).is_none() {
            out.push(key.clone());
        }
    }
    Ok(out)
}

fn too_many_keys() -> Reply {
    Reply::err(format!(
        "too many keys for one atomic command (Synod's limit is {MAX_TXN_OPS})"
    ))
}

/// The current values of `keys` (distinct), atomically per
/// [`MAX_TXN_OPS`] keys: one read-only transaction through the log each.
async fn values(
    shared: &RedisShared,
    keys: &[Vec<u8>],
) -> Result<HashMap<Vec<u8>, (Vec<u8>, u32)>, Reply> {
    let mut found = HashMap::new();
    if let [key] = keys {
        if let Some(kv) = get(shared, key).await? {
            found.insert(kv.key, (kv.value, kv.kind));
        }
        return Ok(found);
    }
    for chunk in keys.chunks(MAX_TXN_OPS) {
        let gets = chunk
            .iter()
            .map(|key| txn_op(TxnOpKind::Get(Get { key: key.clone() })))
            .collect();
        let op = Op::Txn(Txn {
            compares: Vec::new(),
            success: gets,
            failure: Vec::new(),
        });
        let Outcome::Txn(response) = read(shared, op).await? else {
            return Err(unexpected());
        };
        for (key, index) in chunk.iter().zip(0..) {
            if let Some(kv) = txn_kv(&response, index) {
                found.insert(key.clone(), (kv.value, kv.kind));
            }
        }
    }
    Ok(found)
}

async fn mget(shared: &RedisShared, keys: &[Vec<u8>]) -> Result<Reply, Reply> {
    let found = values(shared, &distinct(keys)?).await?;
    Ok(Reply::Array(
        keys.iter()
            .map(|key| match found.get(key) {
                Some((value, KIND_STRING)) => Reply::Bulk(value.clone()),
                _ => Reply::Nil,
            })
            .collect(),
    ))
}

async fn exists(shared: &RedisShared, keys: &[Vec<u8>]) -> Result<Reply, Reply> {
    let found = values(shared, &distinct(keys)?).await?;
    Ok(Reply::Integer(
        keys.iter().filter(|key| found.contains_key(*key)).count() as i64,
    ))
}

/// `MSET` (`only_new` false) and `MSETNX` (true): one transaction.
async fn mset(
    shared: &RedisShared,
    conn: &mut Conn,
    args: &[Vec<u8>],
    only_new: bool,
) -> Result<Reply, Reply> {
    if args.len().is_multiple_of(2) {
        let name = if only_new { "msetnx" } else { "mset" };
        return Err(Reply::err(format!(
            "wrong number of arguments for '{name}' command"
        )));
    }
    // A later pair wins over an earlier one with the same key, as in Redis.
    let mut last: HashMap<&[u8], &[u8]> = HashMap::new();
    for pair in args[1..].chunks(2) {
        check_key(&pair[0])?;
        last.insert(&pair[0], &pair[1]);
    }
    let keys = distinct(&args[1..].iter().step_by(2).cloned().collect::<Vec<_>>())?;
    if keys.len() > MAX_TXN_OPS {
        return Err(too_many_keys());
    }
    let success = keys
        .iter()
        .map(|key| put_op(key, last[key.as_slice()], false))
        .collect();
    let compares = if only_new {
        keys.iter()
            .map(|key| version_compare(key, CompareOp::Equal))
            .collect()
    } else {
        Vec::new()
    };
    let response = txn(
        shared,
        conn,
        Txn {
            compares,
            success,
            failure: Vec::new(),
        },
        None,
    )
    .await?;
    Ok(if only_new {
        Reply::Integer(response.succeeded.into())
    } else {
        Reply::ok()
    })
}

async fn del(shared: &RedisShared, conn: &mut Conn, keys: &[Vec<u8>]) -> Result<Reply, Reply> {
    let keys = distinct(keys)?;
    if let [key] = keys.as_slice() {
        let op = Op::Delete(Delete {
            key: key.clone(),
            prev_kv: false,
        });
        return match write(shared, conn, op).await? {
            Outcome::Delete(delete) => Ok(Reply::Integer(delete.deleted.into())),
            _ => Err(unexpected()),
        };
    }
    if keys.len() > MAX_TXN_OPS {
        return Err(too_many_keys());
    }
    let deletes = keys
        .iter()
        .map(|key| {
            txn_op(TxnOpKind::Delete(Delete {
                key: key.clone(),
                prev_kv: false,
            }))
        })
        .collect();
    let response = txn(
        shared,
        conn,
        Txn {
            compares: Vec::new(),
            success: deletes,
            failure: Vec::new(),
        },
        None,
    )
    .await?;
    let deleted = response
        .responses
        .iter()
        .filter(|r| matches!(&r.outcome, Some(TxnOutcome::Delete(d)) if d.deleted))
        .count();
    Ok(Reply::Integer(deleted as i64))
}

async fn incr(
    shared: &RedisShared,
    conn: &mut Conn,
    key: &[u8],
    delta: Result<i64, Reply>,
) -> Result<Reply, Reply> {
    let delta = delta?;
    check_key(key)?;
    let op = Op::Incr(Incr {
        key: key.to_vec(),
        delta,
    });
    match write(shared, conn, op).await? {
        Outcome::Incr(incr) => Ok(Reply::Integer(incr.value)),
        _ => Err(unexpected()),
    }
}
