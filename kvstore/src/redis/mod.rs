//! Redis's data model inside the state machine: strings, hashes, sets, lists and sorted sets,
//! each Redis command applied as ONE state-machine command ([`Op::Redis`](crate::Op::Redis)).
//!
//! The log carries the command's arguments as the client sent them ([`RedisCommand`]), and every
//! node parses and executes them the same way, as RedisRaft does: so every command is atomic,
//! exactly-once (the dedup table answers a retry), fenced if the request carries a fence, and
//! consumes one revision when it changes something. Nothing here reads a clock; the commands
//! that need randomness (`SPOP`, `SRANDMEMBER`, `RANDOMKEY`, ...) draw it from the command's
//! `seed`, chosen by the node that proposed it, so every replica draws the same. Absolute times
//! (`GETEX .. EXAT`) are turned into TTLs by the Redis endpoint before they reach the log.
//!
//! # Storage
//!
//! A key of any type has its `KvRecord` in `sm_kv`, so `DEL`, key expiry, `FLUSHDB`
//! (delete-range), `KEYS`/`SCAN`, watches and revisions cover every type alike. A string keeps its
//! value there. A collection keeps a small header there instead (its kind, its length, its
//! collection id, a list's head index) and one row per element in `sm_redis_elements`, under the
//! 8-byte big-endian collection id:
//!
//! | kind | element key after the id | element value |
//! |---|---|---|
//! | hash | field | value |
//! | set | member | empty |
//! | list | index (8 bytes BE) | element |
//! | sorted set | `0x00` ‖ member | score (8 bytes, f64 BE bits) |
//! | sorted set | `0x01` ‖ ordered score (8 bytes) ‖ member | empty |
//!
//! So changing one element writes one or two rows and the header, never the whole collection.
//! A list's elements sit at consecutive indexes from its head (`list_head`): pushing on the left
//! takes `head - 1`, on the right `head + length`, both O(1); inserting or removing in the middle
//! shifts the elements after it. The sorted set's second row orders members by score then
//! member (the score's bits mapped so that byte order is numeric order).
//!
//! The collection id is the revision of the command that created the collection (times 256,
//! plus a counter within the command), so it is unique for ever; `RENAME` moves the header and
//! keeps the id, so it is O(1) whatever the size. Deleting a collection removes its id's range.
//! An emptied collection is deleted, as Redis does.
//!
//! # Replies
//!
//! A command answers a [`RedisReply`], the RESP value Redis would send, typed as RESP3 types it
//! (a score is a double, `HGETALL` a map, `SMEMBERS` a set, `ZRANGE .. WITHSCORES` member/score
//! pairs) so that the Redis endpoint can encode it in either protocol: RESP2 sends those as bulk
//! strings and flat arrays. Errors Redis reports
//! (`WRONGTYPE`, syntax errors, ...) are error replies inside a successful response: they change
//! nothing, as every check is made before the first write.

pub(crate) mod elements;
mod hash;
mod keyspace;
mod list;
mod number;
mod set;
mod store;
mod strings;
mod zset;

use prost::Message as _;
use redb::ReadableTable;

use crate::error::{ExecError, StorageError};
use crate::writer::Writer;
use synod_wire::limits::{MAX_ELEMENT_NAME_BYTES, MAX_KEY_BYTES, MAX_REPLY_BYTES};

use store::View;
use synod_wire::redis::{spec, CommandSpec, RedisCommand, RedisMulti, RedisReply};

/// Why a Redis command stopped: an error reply for the client (nothing was written), or a
/// storage failure.
#[derive(Debug)]
pub(crate) enum Fail {
    Reply(RedisReply),
    Storage(StorageError),
}

impl From<StorageError> for Fail {
    fn from(e: StorageError) -> Fail {
        Fail::Storage(e)
    }
}

impl From<redb::StorageError> for Fail {
    fn from(e: redb::StorageError) -> Fail {
        Fail::Storage(e.into())
    }
}

impl From<ExecError> for Fail {
    fn from(e: ExecError) -> Fail {
        match e {
            ExecError::Storage(e) => Fail::Storage(e),
            ExecError::Request(e) => Fail::Reply(RedisReply::err(e)),
        }
    }
}

/// The result of a command's step.
pub(crate) type Res<T> = Result<T, Fail>;

/// Stop with `-ERR message`.
pub(crate) fn err<T>(message: impl std::fmt::Display) -> Res<T> {
    Err(Fail::Reply(RedisReply::err(message)))
}

/// Stop with Redis's `WRONGTYPE` error.
pub(crate) fn wrong_type<T>() -> Res<T> {
    Err(Fail::Reply(RedisReply::coded_error(
        "WRONGTYPE Operation against a key holding the wrong kind of value",
    )))
}

/// Stop with Redis's syntax error.
pub(crate) fn syntax<T>() -> Res<T> {
    err("syntax error")
}

/// Stop with Redis's error for a bad integer.
pub(crate) fn not_integer<T>() -> Res<T> {
    err("value is not an integer or out of range")
}

/// Check a key argument: non-empty, at most [`MAX_KEY_BYTES`].
pub(crate) fn check_key(key: &[u8]) -> Res<()> {
    if key.is_empty() {
        return err("empty keys are not supported by Synod");
    }
    if key.len() > MAX_KEY_BYTES {
        return err(format!(
            "key too large: {} bytes, limit {MAX_KEY_BYTES}",
            key.len()
        ));
    }
    Ok(())
}

/// Check a hash field or (sorted) set member: at most [`MAX_ELEMENT_NAME_BYTES`].
pub(crate) fn check_element(name: &[u8]) -> Res<()> {
    if name.len() > MAX_ELEMENT_NAME_BYTES {
        return err(format!(
            "element too large: {} bytes, limit {MAX_ELEMENT_NAME_BYTES} for a field or member",
            name.len()
        ));
    }
    Ok(())
}

/// Elements `SCAN` returns per call without `COUNT` (Redis's default).
const DEFAULT_SCAN_COUNT: u64 = 10;

/// One page of a collection scan. `options` are the state machine's form of `HSCAN`, `SSCAN`,
/// `ZSCAN`: `resume [COUNT n]`, where `resume` is empty (start) or a byte 1 followed by the
/// element key to continue at; the Redis endpoint maps Redis's integer cursors to these (and
/// applies `MATCH`). Replies `[next resume (empty: done), [items]]`, each element giving the items `map` makes.
/// `found` is the collection's id and the element-key prefix its scanned rows share.
pub(crate) fn scan_elements<T: ReadableTable<&'static [u8], &'static [u8]>>(
    v: &View<'_, T>,
    found: Option<(u64, Vec<u8>)>,
    options: &[Vec<u8>],
    map: impl Fn(&[u8], &[u8]) -> Vec<RedisReply>,
) -> Res<RedisReply> {
    let resume = &options[0];
    let mut count = DEFAULT_SCAN_COUNT;
    let mut i = 1;
    while i < options.len() {
        match (
            options[i].to_ascii_lowercase().as_slice(),
            options.get(i + 1),
        ) {
            (b"count", Some(n)) => match number::parse_int(n) {
                Some(n) if n >= 1 => count = n as u64,
                Some(_) => return syntax(),
                None => return not_integer(),
            },
            _ => return syntax(),
        }
        i += 2;
    }
    let Some((id, prefix)) = found else {
        return Ok(RedisReply::array(vec![
            RedisReply::bulk(Vec::new()),
            RedisReply::array(Vec::new()),
        ]));
    };
    let mut start = prefix.clone();
    start.extend_from_slice(resume.get(1..).unwrap_or_default());
    let mut end = prefix.clone();
    let to = match end.last_mut() {
        Some(last) => {
            *last += 1;
            std::ops::Bound::Excluded(end.as_slice())
        }
        None => std::ops::Bound::Unbounded,
    };
    let mut items = Vec::new();
    let mut taken = 0u64;
    let mut next = Vec::new();
    let mut budget = ReplyBudget::default();
    v.walk(
        id,
        std::ops::Bound::Included(start.as_slice()),
        to,
        false,
        |sub, value| {
            if taken == count {
                next = vec![1];
                next.extend_from_slice(&sub[prefix.len()..]);
                return Ok(false);
            }
            budget.take(sub.len() + value.len())?;
            items.extend(map(&sub[prefix.len()..], value));
            taken += 1;
            Ok(true)
        },
    )?;
    Ok(RedisReply::array(vec![
        RedisReply::bulk(next),
        RedisReply::array(items),
    ]))
}

/// Counts the element bytes of a reply against [`MAX_REPLY_BYTES`].
#[derive(Default)]
pub(crate) struct ReplyBudget {
    used_bytes: usize,
}

impl ReplyBudget {
    /// Take `bytes` more; fails once the reply would pass the limit.
    pub fn take(&mut self, bytes: usize) -> Res<()> {
        self.used_bytes += bytes + 16;
        if self.used_bytes > MAX_REPLY_BYTES {
            return err(format!(
                "reply too large: over {MAX_REPLY_BYTES} bytes; page it with a SCAN command or a range"
            ));
        }
        Ok(())
    }
}

/// A deterministic random number generator (splitmix64) seeded by the command.
pub(crate) struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        debug_assert!(n > 0);
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
}

/// Collection ids one revision can hand out (see the module docs).
const COLLECTIONS_PER_REVISION: u64 = 256;

/// The context of one write command: the writer, and the collection ids handed out so far.
pub(crate) struct Ctx<'w, 'a, 'txn> {
    pub w: &'w mut Writer<'a, 'txn>,
    created: u64,
    pub rng: Rng,
}

impl<'txn> Ctx<'_, '_, 'txn> {
    /// The tables as they stand, for reading.
    pub fn view(&self) -> View<'_, redb::Table<'txn, &'static [u8], &'static [u8]>> {
        View {
            kv: &*self.w.kv,
            elements: &self.w.coord.elements,
        }
    }

    /// A new collection id, never used before (see the module docs).
    pub fn new_collection_id(&mut self) -> u64 {
        assert!(
            self.created < COLLECTIONS_PER_REVISION,
            "a command (or MULTI block) creates at most {COLLECTIONS_PER_REVISION} collections"
        );
        let id = (self.w.revision << 8) | self.created;
        self.created += 1;
        id
    }
}

/// Apply `command` in a write transaction.
pub(crate) fn execute(
    w: &mut Writer<'_, '_>,
    command: &RedisCommand,
) -> Result<RedisReply, ExecError> {
    let Some((spec, args)) = checked(command) else {
        return Ok(arity_error(command));
    };
    let result = if spec.read_only {
        let view = View {
            kv: &*w.kv,
            elements: &w.coord.elements,
        };
        run_read(&view, spec.name, args, &mut Rng::new(command.seed))
    } else {
        let mut ctx = Ctx {
            w,
            created: 0,
            rng: Rng::new(command.seed),
        };
        run_write(&mut ctx, spec.name, args)
    };
    match result {
        Ok(reply) => Ok(reply),
        Err(Fail::Reply(reply)) => Ok(reply),
        Err(Fail::Storage(e)) => Err(ExecError::Storage(e)),
    }
}

/// Most collections one command creates (a destination key, or a copy); a block stops running
/// commands once fewer ids than this are left at its revision.
const MAX_CREATED_PER_COMMAND: u64 = 4;

/// Apply the `MULTI` block `multi` in a write transaction: the watched keys' check, then each
/// command in order with one shared collection-id counter (see [`Ctx::new_collection_id`]). A
/// reply that would take the block's reply over [`MAX_REPLY_BYTES`] is replaced by an error
/// (the command ran all the same).
pub(crate) fn execute_multi(
    w: &mut Writer<'_, '_>,
    multi: &RedisMulti,
) -> Result<RedisReply, ExecError> {
    for watched in &multi.watched {
        let mod_revision =
            crate::tables::get_kv(&*w.kv, &watched.key)?.map_or(0, |r| r.mod_revision);
        let expiry_revision = w.coord.key_expiry(&watched.key)?.map_or(0, |e| e.revision);
        if (mod_revision, expiry_revision) != (watched.mod_revision, watched.expiry_revision) {
            return Ok(RedisReply::nil_array());
        }
    }
    let mut ctx = Ctx {
        w,
        created: 0,
        rng: Rng::new(0),
    };
    let mut replies = Vec::with_capacity(multi.commands.len());
    let mut reply_bytes = 0usize;
    for command in &multi.commands {
        let reply = if ctx.created + MAX_CREATED_PER_COMMAND > COLLECTIONS_PER_REVISION {
            RedisReply::err("too many new collections in one transaction: this command did not run")
        } else {
            run_in_block(&mut ctx, command).map_err(ExecError::Storage)?
        };
        reply_bytes += reply.encoded_len();
        replies.push(if reply_bytes > MAX_REPLY_BYTES {
            RedisReply::err("EXEC reply too large: this command ran but its reply was dropped")
        } else {
            reply
        });
    }
    Ok(RedisReply::array(replies))
}

/// Run one command of a `MULTI` block.
fn run_in_block(
    ctx: &mut Ctx<'_, '_, '_>,
    command: &RedisCommand,
) -> Result<RedisReply, StorageError> {
    let Some((spec, args)) = checked(command) else {
        return Ok(arity_error(command));
    };
    let result = if spec.read_only {
        run_read(&ctx.view(), spec.name, args, &mut Rng::new(command.seed))
    } else {
        ctx.rng = Rng::new(command.seed);
        run_write(ctx, spec.name, args)
    };
    match result {
        Ok(reply) | Err(Fail::Reply(reply)) => Ok(reply),
        Err(Fail::Storage(e)) => Err(e),
    }
}

/// Serve the read-only `command` from a read transaction's tables.
pub(crate) fn read<T: ReadableTable<&'static [u8], &'static [u8]>>(
    kv: &T,
    elements: &T,
    command: &RedisCommand,
) -> Result<RedisReply, StorageError> {
    let Some((spec, args)) = checked(command) else {
        return Ok(arity_error(command));
    };
    if !spec.read_only {
        return Ok(RedisReply::err("not a read-only command"));
    }
    let view = View { kv, elements };
    match run_read(&view, spec.name, args, &mut Rng::new(command.seed)) {
        Ok(reply) | Err(Fail::Reply(reply)) => Ok(reply),
        Err(Fail::Storage(e)) => Err(e),
    }
}

/// The spec and arguments of `command` if its name is known and its arity right.
fn checked(command: &RedisCommand) -> Option<(&'static CommandSpec, &[Vec<u8>])> {
    let spec = spec(command.args.first()?)?;
    let n = command.args.len() as i64;
    if (spec.arity > 0 && n != spec.arity) || n < -spec.arity {
        return None;
    }
    Some((spec, &command.args))
}

fn arity_error(command: &RedisCommand) -> RedisReply {
    match command.args.first() {
        None => RedisReply::err("empty command"),
        Some(name) => match spec(name) {
            Some(spec) => RedisReply::err(format!(
                "wrong number of arguments for '{}' command",
                spec.name
            )),
            None => RedisReply::err(format!(
                "unknown command '{}'",
                String::from_utf8_lossy(&name[..name.len().min(128)])
            )),
        },
    }
}

fn run_read<T: ReadableTable<&'static [u8], &'static [u8]>>(
    v: &View<'_, T>,
    name: &str,
    args: &[Vec<u8>],
    rng: &mut Rng,
) -> Res<RedisReply> {
    match name {
        "ping" => Ok(match args {
            [_] => RedisReply::status("PONG"),
            [_, message] => RedisReply::bulk(message.clone()),
            _ => return err("wrong number of arguments for 'ping' command"),
        }),
        "echo" => Ok(RedisReply::bulk(args[1].clone())),
        "type" | "exists" | "randomkey" | "object" | "memory" => keyspace::read(v, name, args, rng),
        "get" | "mget" | "strlen" | "getrange" | "substr" | "getbit" | "bitcount" | "bitpos"
        | "lcs" => strings::read(v, name, args),
        _ if name.starts_with('h') => hash::read(v, name, args, rng),
        _ if name.starts_with('s') => set::read(v, name, args, rng),
        _ if name.starts_with('l') => list::read(v, name, args),
        _ if name.starts_with('z') => zset::read(v, name, args, rng),
        _ => err(format!("command '{name}' is not implemented")),
    }
}

fn run_write(ctx: &mut Ctx<'_, '_, '_>, name: &str, args: &[Vec<u8>]) -> Res<RedisReply> {
    match name {
        "rename" | "renamenx" | "copy" | "pexpire" | "persist" | "flushdb" | "flushall"
        | "move" => keyspace::write(ctx, name, args),
        "set" | "setnx" | "mset" | "msetnx" | "del" | "unlink" | "incr" | "decr" | "incrby"
        | "decrby" | "getset" | "append" | "getdel" | "getex" | "setrange" | "setbit"
        | "incrbyfloat" => strings::write(ctx, name, args),
        "rpoplpush" | "lmove" | "lmpop" => list::write(ctx, name, args),
        _ if name.starts_with('h') => hash::write(ctx, name, args),
        _ if name.starts_with('s') => set::write(ctx, name, args),
        _ if name.starts_with('l') || name.starts_with('r') => list::write(ctx, name, args),
        _ if name.starts_with('z') => zset::write(ctx, name, args),
        _ => err(format!("command '{name}' is not implemented")),
    }
}
