//! The Redis data commands the state machine runs itself (strings beyond
//! GET/SET, keyspace, hashes, sets, lists, sorted sets): see
//! `kvstore/src/redis/`. This module sends each one as a single
//! state-machine command ([`Op::Redis`]): a read-only one as a
//! linearizable read (see [`Backend::call`](super::backend::Backend::call)), any other as this
//! connection's next exactly-once write.
//!
//! What the endpoint adds before the command reaches the log: a random
//! seed (so that `SPOP`, `SRANDMEMBER`, ... pick the same on every
//! replica), absolute times turned into TTLs on this node's clock
//! (`GETEX .. EXAT`), Redis's integer cursors for `HSCAN`, `SSCAN` and
//! `ZSCAN` (kept in the node's cursor table, like `SCAN`'s) and their
//! `MATCH` filter, and the blocking list and sorted-set pops.
//!
//! # Blocking pops
//!
//! `BLPOP`, `BRPOP`, `BLMOVE`, `BRPOPLPUSH`, `BLMPOP`, `BZPOPMIN`,
//! `BZPOPMAX` and `BZMPOP` wait by polling: each attempt is the
//! non-blocking pop as one exactly-once write (so an element is popped
//! once, by one client, even across leader changes: a retried attempt is
//! answered from the dedup table), and between attempts the client waits
//! on cheap linearizable reads of the keys' lengths, backing off from 1 ms
//! to 50 ms. What differs from Redis: waiting clients are not served in
//! arrival order (whoever polls first after a push wins), and a wake-up
//! takes up to the backoff.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use synod_kvstore::{Op, Outcome, RedisCommand, RedisReply, ReplyKind};

use super::expiry::{ttl_ms, Base, Unit};
use super::keyspace::Glob;
use super::resp::{int_arg, Reply};
use super::{read, write, Conn, RedisShared};

/// First pause of a blocking pop between attempts.
const FIRST_POLL: Duration = Duration::from_millis(1);
/// Longest pause of a blocking pop between attempts.
const MAX_POLL: Duration = Duration::from_millis(50);

/// A seed for the command's random choices: different for every command
/// of this process (a counter mixed with the start time).
pub(super) fn seed() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let start = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos() as u64;
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut z = start ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 33)).wrapping_mul(0xFF51_AFD7_ED55_8CCD);
    z ^ (z >> 33)
}

/// The endpoint's reply for a state-machine reply.
pub(super) fn to_reply(reply: RedisReply) -> Reply {
    match reply.kind {
        Some(ReplyKind::Status(text)) => Reply::Simple(text),
        Some(ReplyKind::Error(text)) => Reply::Error(text),
        Some(ReplyKind::Integer(n)) => Reply::Integer(n),
        Some(ReplyKind::Bulk(bytes)) => Reply::Bulk(bytes),
        Some(ReplyKind::Nil(_)) => Reply::Nil,
        Some(ReplyKind::NilArray(_)) => Reply::NilArray,
        Some(ReplyKind::Array(array)) => {
            Reply::Array(array.items.into_iter().map(to_reply).collect())
        }
        Some(ReplyKind::Double(text)) => Reply::Double(text),
        Some(ReplyKind::Map(array)) => Reply::Map(array.items.into_iter().map(to_reply).collect()),
        Some(ReplyKind::Set(array)) => Reply::Set(array.items.into_iter().map(to_reply).collect()),
        Some(ReplyKind::Pairs(array)) => {
            Reply::Pairs(array.items.into_iter().map(to_reply).collect())
        }
        None => Reply::err("the state machine gave an empty reply"),
    }
}

/// Runs `args` in the state machine: as a read if the command only reads.
pub(super) async fn run(
    shared: &RedisShared,
    conn: &mut Conn,
    args: Vec<Vec<u8>>,
) -> Result<RedisReply, Reply> {
    let command = RedisCommand::new(args, seed());
    let read_only = command.is_read_only();
    let op = Op::Redis(command);
    let outcome = if read_only {
        read(shared, op).await?
    } else {
        write(shared, conn, op).await?
    };
    match outcome {
        Outcome::Redis(reply) => Ok(reply),
        _ => Err(Reply::err(
            "the state machine answered with an unexpected outcome",
        )),
    }
}

/// Runs a command of the state machine's table (arity already checked).
pub(super) async fn execute(
    shared: &RedisShared,
    conn: &mut Conn,
    name: &str,
    args: &[Vec<u8>],
) -> Reply {
    let result = match name {
        "getex" => getex(shared, conn, args).await,
        "hscan" | "sscan" | "zscan" => scan(shared, conn, name, args).await,
        _ => run(shared, conn, args.to_vec()).await.map(to_reply),
    };
    result.unwrap_or_else(|error| error)
}

/// `GETEX`, with `EXAT`/`PXAT` turned into a TTL here.
async fn getex(shared: &RedisShared, conn: &mut Conn, args: &[Vec<u8>]) -> Result<Reply, Reply> {
    let forwarded = getex_in_state_machine_form(args)?;
    run(shared, conn, forwarded).await.map(to_reply)
}

/// `GETEX` as the state machine takes it: `EXAT`/`PXAT` turned into a TTL
/// on this node's clock (`PX`), or `EXPIRED` for a time already past.
pub(super) fn getex_in_state_machine_form(args: &[Vec<u8>]) -> Result<Vec<Vec<u8>>, Reply> {
    if let [option, time] = &args[2..] {
        let upper = option.to_ascii_uppercase();
        if upper == b"EXAT" || upper == b"PXAT" {
            let unit = if upper == b"EXAT" {
                Unit::Seconds
            } else {
                Unit::Millis
            };
            let time = int_arg(time)?;
            if time <= 0 {
                return Err(Reply::err("invalid expire time in 'getex' command"));
            }
            let ms = ttl_ms(time, unit, Base::UnixEpoch, "getex")?;
            let mut forwarded = args[..2].to_vec();
            if ms > 0 {
                forwarded.push(b"PX".to_vec());
                forwarded.push(ms.to_string().into_bytes());
            } else {
                forwarded.push(b"EXPIRED".to_vec());
            }
            return Ok(forwarded);
        }
    }
    if args[2..].iter().any(|a| a.eq_ignore_ascii_case(b"expired")) {
        return Err(Reply::err("syntax error"));
    }
    Ok(args.to_vec())
}

/// `HSCAN`/`SSCAN`/`ZSCAN key cursor [MATCH pattern] [COUNT n]`: Redis's
/// cursor numbers map to the state machine's resume keys in the node's
/// cursor table; `MATCH` filters each page here, as Redis filters after
/// fetching.
async fn scan(
    shared: &RedisShared,
    conn: &mut Conn,
    name: &str,
    args: &[Vec<u8>],
) -> Result<Reply, Reply> {
    let cursor: u64 = std::str::from_utf8(&args[2])
        .ok()
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| Reply::err("invalid cursor"))?;
    let mut pattern = None;
    let mut count = None;
    let mut i = 3;
    while i < args.len() {
        let Some(value) = args.get(i + 1) else {
            return Err(Reply::err("syntax error"));
        };
        match args[i].to_ascii_uppercase().as_slice() {
            b"MATCH" => pattern = Some(value.clone()),
            b"COUNT" => {
                let n = int_arg(value)?;
                if n < 1 {
                    return Err(Reply::err("syntax error"));
                }
                count = Some(value.clone());
            }
            _ => return Err(Reply::err("syntax error")),
        }
        i += 2;
    }
    let resume = if cursor == 0 {
        Vec::new()
    } else {
        shared
            .cursors
            .lock()
            .expect("cursor table lock")
            .get(cursor)
            .ok_or_else(|| Reply::err("invalid cursor"))?
    };
    let mut forwarded = vec![name.as_bytes().to_vec(), args[1].clone(), resume];
    if let Some(count) = count {
        forwarded.push(b"COUNT".to_vec());
        forwarded.push(count);
    }
    let reply = run(shared, conn, forwarded).await?;
    let Some(ReplyKind::Array(page)) = reply.kind else {
        return Ok(to_reply(reply));
    };
    let mut parts = page.items.into_iter();
    let (Some(next), Some(items)) = (parts.next(), parts.next()) else {
        return Err(Reply::err("the state machine gave a malformed scan page"));
    };
    let next = match next.kind {
        Some(ReplyKind::Bulk(next)) if !next.is_empty() => shared
            .cursors
            .lock()
            .expect("cursor table lock")
            .insert(next),
        _ => 0,
    };
    let Reply::Array(items) = to_reply(items) else {
        return Err(Reply::err("the state machine gave a malformed scan page"));
    };
    let stride = if name == "sscan" { 1 } else { 2 };
    let items = match pattern {
        None => items,
        Some(pattern) => {
            let entries: Vec<Vec<Reply>> = items.chunks(stride).map(<[Reply]>::to_vec).collect();
            // The item type `Glob::retain` is given, so a `&Vec`.
            #[allow(clippy::ptr_arg)]
            fn member(entry: &Vec<Reply>) -> &[u8] {
                match &entry[0] {
                    Reply::Bulk(member) => member.as_slice(),
                    _ => &[],
                }
            }
            Glob::new(pattern)
                .retain(entries, member)
                .await?
                .into_iter()
                .flatten()
                .collect()
        }
    };
    Ok(Reply::Array(vec![
        Reply::text(next.to_string()),
        Reply::Array(items),
    ]))
}

/// The blocking pops, by polling (see the module docs). `name` is the
/// blocking command; its timeout is the last argument except for
/// `BLMPOP`/`BZMPOP` (the first) and `BLMOVE`/`BRPOPLPUSH` (the last).
pub(super) async fn blocking(
    shared: &RedisShared,
    conn: &mut Conn,
    name: &str,
    args: &[Vec<u8>],
) -> Reply {
    match blocking_pop(shared, conn, name, args).await {
        Ok(reply) | Err(reply) => reply,
    }
}

async fn blocking_pop(
    shared: &RedisShared,
    conn: &mut Conn,
    name: &str,
    args: &[Vec<u8>],
) -> Result<Reply, Reply> {
    let multi = name == "blmpop" || name == "bzmpop";
    let timeout_arg = if multi {
        &args[1]
    } else {
        &args[args.len() - 1]
    };
    let timeout = parse_timeout(timeout_arg)?;
    // The non-blocking command each attempt runs, and the keys it waits on.
    let (attempt, keys): (Vec<Vec<u8>>, Vec<Vec<u8>>) = match name {
        "blpop" | "brpop" | "bzpopmin" | "bzpopmax" => {
            let keys = args[1..args.len() - 1].to_vec();
            let pop = match name {
                "blpop" => "lmpop",
                "brpop" => "lmpop",
                _ => "zmpop",
            };
            let end: &[u8] = match name {
                "blpop" => b"LEFT",
                "brpop" => b"RIGHT",
                "bzpopmin" => b"MIN",
                _ => b"MAX",
            };
            let mut attempt = vec![pop.as_bytes().to_vec(), keys.len().to_string().into_bytes()];
            attempt.extend(keys.iter().cloned());
            attempt.push(end.to_vec());
            (attempt, keys)
        }
        "brpoplpush" => (
            vec![b"rpoplpush".to_vec(), args[1].clone(), args[2].clone()],
            vec![args[1].clone()],
        ),
        "blmove" => (
            vec![
                b"lmove".to_vec(),
                args[1].clone(),
                args[2].clone(),
                args[3].clone(),
                args[4].clone(),
            ],
            vec![args[1].clone()],
        ),
        _ => {
            let numkeys = int_arg(&args[2])?;
            if numkeys <= 0 {
                return Err(Reply::err("numkeys should be greater than 0"));
            }
            let numkeys = numkeys as usize;
            if numkeys + 3 > args.len() {
                return Err(Reply::err("syntax error"));
            }
            let pop = if name == "blmpop" { "lmpop" } else { "zmpop" };
            let mut attempt = vec![pop.as_bytes().to_vec()];
            attempt.extend(args[2..].iter().cloned());
            (attempt, args[3..3 + numkeys].to_vec())
        }
    };
    let deadline = timeout.map(|t| Instant::now() + t);
    let mut pause = FIRST_POLL;
    loop {
        let reply = run(shared, conn, attempt.clone()).await?;
        let got = !matches!(
            reply.kind,
            Some(ReplyKind::Nil(_)) | Some(ReplyKind::NilArray(_))
        );
        if got || reply.as_error().is_some() {
            return Ok(shape(name, to_reply(reply)));
        }
        // Wait until a key holds something, or the time is up.
        loop {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(Reply::NilArray);
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(MAX_POLL);
            if any_nonempty(shared, conn, &keys).await? {
                break;
            }
        }
    }
}

/// Whether any of `keys` exists (one linearizable read each).
async fn any_nonempty(
    shared: &RedisShared,
    conn: &mut Conn,
    keys: &[Vec<u8>],
) -> Result<bool, Reply> {
    for key in keys {
        let reply = run(shared, conn, vec![b"type".to_vec(), key.clone()]).await?;
        if !matches!(reply.kind, Some(ReplyKind::Status(ref t)) if t == "none") {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The reply of a blocking pop from its non-blocking attempt's reply.
fn shape(name: &str, reply: Reply) -> Reply {
    match name {
        // LMPOP answers [key, [element]]; BLPOP answers [key, element].
        "blpop" | "brpop" => match reply {
            Reply::Array(mut parts) if parts.len() == 2 => match parts.pop() {
                Some(Reply::Array(mut elements)) if !elements.is_empty() => {
                    Reply::Array(vec![parts.remove(0), elements.remove(0)])
                }
                _ => Reply::NilArray,
            },
            other => other,
        },
        // ZMPOP answers [key, [[member, score]]]; BZPOPMIN answers [key, member, score].
        "bzpopmin" | "bzpopmax" => match reply {
            Reply::Array(mut parts) if parts.len() == 2 => match parts.pop() {
                Some(Reply::Array(mut pairs)) if !pairs.is_empty() => match pairs.remove(0) {
                    Reply::Array(pair) => {
                        let mut out = vec![parts.remove(0)];
                        out.extend(pair);
                        Reply::Array(out)
                    }
                    _ => Reply::NilArray,
                },
                _ => Reply::NilArray,
            },
            other => other,
        },
        _ => reply,
    }
}

/// A blocking timeout in seconds (fractions allowed; 0 = for ever).
fn parse_timeout(arg: &[u8]) -> Result<Option<Duration>, Reply> {
    let text = std::str::from_utf8(arg).unwrap_or("");
    let seconds: f64 = text
        .parse()
        .map_err(|_| Reply::err("timeout is not a float or out of range"))?;
    if !seconds.is_finite() {
        return Err(Reply::err("timeout is not a float or out of range"));
    }
    if seconds < 0.0 {
        return Err(Reply::err("timeout is negative"));
    }
    if seconds == 0.0 {
        return Ok(None);
    }
    Ok(Some(Duration::from_secs_f64(seconds.min(1e9))))
}
