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

use crate::error::StorageError;
use crate::exec::{ExecError, Writer};
use crate::limits::{
    MAX_ELEMENT_NAME_BYTES, MAX_KEY_BYTES, MAX_MULTI_COMMANDS, MAX_REDIS_ARGS,
    MAX_REDIS_REPLY_BYTES,
};

pub(crate) use store::drop_elements;
use store::View;

/// One Redis command to apply (or, if read-only, to serve outside the log).
#[derive(Clone, PartialEq, prost::Message)]
pub struct RedisCommand {
    /// The arguments, the command name first (any case).
    #[prost(bytes = "vec", repeated, tag = "1")]
    pub args: Vec<Vec<u8>>,
    /// The seed of the command's random choices (`SPOP`, `SRANDMEMBER`, `RANDOMKEY`, ...).
    #[prost(uint64, tag = "2")]
    pub seed: u64,
}

impl RedisCommand {
    /// The command `args` with the random seed `seed`.
    pub fn new(args: Vec<Vec<u8>>, seed: u64) -> RedisCommand {
        RedisCommand { args, seed }
    }

    /// Whether the command only reads (by its name; an unknown name is not read-only).
    pub fn is_read_only(&self) -> bool {
        self.args
            .first()
            .and_then(|name| spec(name))
            .is_some_and(|spec| spec.read_only)
    }
}

/// A Redis `MULTI` block: commands run in order as ONE state-machine command (atomic, applied
/// once, all writes at one revision), unless a watched key changed since it was watched (then
/// nothing runs and the reply is a nil array, as `EXEC` answers after a failed `WATCH`). A
/// command's error is its own reply; the others still run, as in Redis.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RedisMulti {
    /// The queued commands, in order.
    #[prost(message, repeated, tag = "1")]
    pub commands: Vec<RedisCommand>,
    /// The keys `WATCH`ed before the block, with what they were then.
    #[prost(message, repeated, tag = "2")]
    pub watched: Vec<WatchedKey>,
}

/// A key `WATCH`ed by a connection: the block runs only if the key's modification and expiry
/// revisions are still these.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WatchedKey {
    /// The key.
    #[prost(bytes = "vec", tag = "1")]
    pub key: Vec<u8>,
    /// Its `mod_revision` when watched; 0 if it did not exist.
    #[prost(uint64, tag = "2")]
    pub mod_revision: u64,
    /// The revision of the write that gave it its expiry; 0 if it had none (so `EXPIRE` and
    /// `PERSIST` count as changes, as in Redis).
    #[prost(uint64, tag = "3")]
    pub expiry_revision: u64,
}

/// A Redis reply (RESP2 value).
#[derive(Clone, PartialEq, prost::Message)]
pub struct RedisReply {
    /// The value; `None` is never produced.
    #[prost(oneof = "ReplyKind", tags = "1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11")]
    pub kind: Option<ReplyKind>,
}

/// The kinds of [`RedisReply`].
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum ReplyKind {
    /// `+text`.
    #[prost(string, tag = "1")]
    Status(String),
    /// `-CODE text`: the text starts with the error code (`ERR`, `WRONGTYPE`, ...).
    #[prost(string, tag = "2")]
    Error(String),
    /// `:n`.
    #[prost(sint64, tag = "3")]
    Integer(i64),
    /// `$len` and the bytes.
    #[prost(bytes = "vec", tag = "4")]
    Bulk(Vec<u8>),
    /// `$-1` (the value is ignored).
    #[prost(bool, tag = "5")]
    Nil(bool),
    /// `*n` and the items.
    #[prost(message, tag = "6")]
    Array(RedisArray),
    /// `*-1` (the value is ignored).
    #[prost(bool, tag = "7")]
    NilArray(bool),
    /// A double, as the text Redis gives it (`3`, `2.5`, `inf`): RESP2 sends it as a bulk
    /// string, RESP3 as `,text`.
    #[prost(string, tag = "8")]
    Double(String),
    /// A map, its keys and values alternating: RESP2 sends a flat array, RESP3 `%n`.
    #[prost(message, tag = "9")]
    Map(RedisArray),
    /// A set: RESP2 sends an array, RESP3 `~n`.
    #[prost(message, tag = "10")]
    Set(RedisArray),
    /// Pairs (member and score, field and value), alternating: RESP2 sends a flat array, RESP3
    /// an array of two-item arrays.
    #[prost(message, tag = "11")]
    Pairs(RedisArray),
}

/// The items of an array reply.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RedisArray {
    /// The items, in order.
    #[prost(message, repeated, tag = "1")]
    pub items: Vec<RedisReply>,
}

impl RedisReply {
    fn of(kind: ReplyKind) -> RedisReply {
        RedisReply { kind: Some(kind) }
    }

    /// `+OK`.
    pub fn ok() -> RedisReply {
        RedisReply::status("OK")
    }

    /// `+text`.
    pub fn status(text: &str) -> RedisReply {
        RedisReply::of(ReplyKind::Status(text.to_string()))
    }

    /// `-ERR message`.
    pub fn err(message: impl std::fmt::Display) -> RedisReply {
        RedisReply::of(ReplyKind::Error(format!("ERR {message}")))
    }

    /// An error reply whose text already starts with its code.
    pub fn coded_error(text: impl Into<String>) -> RedisReply {
        RedisReply::of(ReplyKind::Error(text.into()))
    }

    /// `:n`.
    pub fn int(n: i64) -> RedisReply {
        RedisReply::of(ReplyKind::Integer(n))
    }

    /// A bulk string.
    pub fn bulk(bytes: impl Into<Vec<u8>>) -> RedisReply {
        RedisReply::of(ReplyKind::Bulk(bytes.into()))
    }

    /// `$-1`.
    pub fn nil() -> RedisReply {
        RedisReply::of(ReplyKind::Nil(true))
    }

    /// `*-1`.
    pub fn nil_array() -> RedisReply {
        RedisReply::of(ReplyKind::NilArray(true))
    }

    /// An array.
    pub fn array(items: Vec<RedisReply>) -> RedisReply {
        RedisReply::of(ReplyKind::Array(RedisArray { items }))
    }

    /// A double (see [`ReplyKind::Double`]).
    pub fn double(value: f64) -> RedisReply {
        RedisReply::of(ReplyKind::Double(number::format_double(value)))
    }

    /// A map of `items`, keys and values alternating.
    pub fn map(items: Vec<RedisReply>) -> RedisReply {
        RedisReply::of(ReplyKind::Map(RedisArray { items }))
    }

    /// A set of `items`.
    pub fn set(items: Vec<RedisReply>) -> RedisReply {
        RedisReply::of(ReplyKind::Set(RedisArray { items }))
    }

    /// Pairs of `items`, alternating (an even number of items).
    pub fn pairs(items: Vec<RedisReply>) -> RedisReply {
        debug_assert!(items.len().is_multiple_of(2));
        RedisReply::of(ReplyKind::Pairs(RedisArray { items }))
    }

    /// This reply as RESP2 types it: doubles as bulk strings, maps, sets and pairs as flat
    /// arrays (what a RESP2 client receives).
    pub fn into_resp2(self) -> RedisReply {
        match self.kind {
            Some(ReplyKind::Double(text)) => RedisReply::bulk(text.into_bytes()),
            Some(
                ReplyKind::Map(array)
                | ReplyKind::Set(array)
                | ReplyKind::Pairs(array)
                | ReplyKind::Array(array),
            ) => RedisReply::array(
                array
                    .items
                    .into_iter()
                    .map(RedisReply::into_resp2)
                    .collect(),
            ),
            kind => RedisReply { kind },
        }
    }

    /// An array of bulk strings.
    pub fn bulks(items: impl IntoIterator<Item = Vec<u8>>) -> RedisReply {
        RedisReply::array(items.into_iter().map(RedisReply::bulk).collect())
    }

    /// The error text, if this is an error reply.
    pub fn as_error(&self) -> Option<&str> {
        match &self.kind {
            Some(ReplyKind::Error(text)) => Some(text),
            _ => None,
        }
    }
}

/// One Redis command as the state machine knows it: what `COMMAND` reports and how it runs.
#[derive(Debug)]
pub struct CommandSpec {
    /// Lower-case name.
    pub name: &'static str,
    /// Redis arity: `n` exactly n arguments (the name included), `-n` at least n.
    pub arity: i64,
    /// Whether it only reads (so it is served outside the log, under the leader's lease).
    pub read_only: bool,
    /// Position of the first key argument (0 = none), as `COMMAND` reports it.
    pub first_key: i64,
    /// Position of the last key argument (-1 = the last argument).
    pub last_key: i64,
    /// Step between key arguments.
    pub step: i64,
}

const fn c(name: &'static str, arity: i64, read_only: bool, keys: (i64, i64, i64)) -> CommandSpec {
    CommandSpec {
        name,
        arity,
        read_only,
        first_key: keys.0,
        last_key: keys.1,
        step: keys.2,
    }
}

const K1: (i64, i64, i64) = (1, 1, 1);
const K2: (i64, i64, i64) = (1, 2, 1);
const KALL: (i64, i64, i64) = (1, -1, 1);
const NOKEY: (i64, i64, i64) = (0, 0, 0);
/// Keys given by a count argument (`SINTERCARD`, `ZUNION`, `LMPOP`, ...): `COMMAND` reports none.
const KNUM: (i64, i64, i64) = (0, 0, 0);

/// Every Redis command the state machine runs, by name.
pub static COMMANDS: &[CommandSpec] = &[
    // Connection: the Redis endpoint answers these itself, and sends them here only in `MULTI`
    // blocks, whose replies they are part of.
    c("ping", -1, true, NOKEY),
    c("echo", 2, true, NOKEY),
    // Keyspace.
    c("type", 2, true, K1),
    c("exists", -2, true, KALL),
    c("del", -2, false, KALL),
    c("unlink", -2, false, KALL),
    c("pexpire", -3, false, K1),
    c("persist", 2, false, K1),
    c("rename", 3, false, K2),
    c("renamenx", 3, false, K2),
    c("copy", -3, false, K2),
    c("randomkey", 1, true, NOKEY),
    c("object", -2, true, (2, 2, 1)),
    c("memory", -2, true, (2, 2, 1)),
    c("flushdb", -1, false, NOKEY),
    c("flushall", -1, false, NOKEY),
    c("move", 3, false, K1),
    // Strings. `set` is the state machine's form of `SET .. GET` (see `strings::set`); the
    // Redis endpoint runs its own `SET`, `GET`, `MSET`, `INCR`, ... and sends them here only in
    // `MULTI` blocks.
    c("set", -3, false, K1),
    c("get", 2, true, K1),
    c("mget", -2, true, KALL),
    c("setnx", 3, false, K1),
    c("mset", -3, false, (1, -1, 2)),
    c("msetnx", -3, false, (1, -1, 2)),
    c("incr", 2, false, K1),
    c("decr", 2, false, K1),
    c("incrby", 3, false, K1),
    c("decrby", 3, false, K1),
    c("getset", 3, false, K1),
    c("append", 3, false, K1),
    c("strlen", 2, true, K1),
    c("getdel", 2, false, K1),
    c("getex", -2, false, K1),
    c("setrange", 4, false, K1),
    c("getrange", 4, true, K1),
    c("substr", 4, true, K1),
    c("setbit", 4, false, K1),
    c("getbit", 3, true, K1),
    c("bitcount", -2, true, K1),
    c("bitpos", -3, true, K1),
    c("lcs", -3, true, K2),
    c("incrbyfloat", 3, false, K1),
    // Hashes.
    c("hset", -4, false, K1),
    c("hmset", -4, false, K1),
    c("hsetnx", 4, false, K1),
    c("hget", 3, true, K1),
    c("hmget", -3, true, K1),
    c("hdel", -3, false, K1),
    c("hlen", 2, true, K1),
    c("hstrlen", 3, true, K1),
    c("hexists", 3, true, K1),
    c("hkeys", 2, true, K1),
    c("hvals", 2, true, K1),
    c("hgetall", 2, true, K1),
    c("hincrby", 4, false, K1),
    c("hincrbyfloat", 4, false, K1),
    c("hrandfield", -2, true, K1),
    c("hscan", -3, true, K1),
    // Sets.
    c("sadd", -3, false, K1),
    c("srem", -3, false, K1),
    c("scard", 2, true, K1),
    c("sismember", 3, true, K1),
    c("smismember", -3, true, K1),
    c("smembers", 2, true, K1),
    c("srandmember", -2, true, K1),
    c("spop", -2, false, K1),
    c("smove", 4, false, K2),
    c("sinter", -2, true, KALL),
    c("sintercard", -3, true, KNUM),
    c("sinterstore", -3, false, KALL),
    c("sunion", -2, true, KALL),
    c("sunionstore", -3, false, KALL),
    c("sdiff", -2, true, KALL),
    c("sdiffstore", -3, false, KALL),
    c("sscan", -3, true, K1),
    // Lists.
    c("lpush", -3, false, K1),
    c("rpush", -3, false, K1),
    c("lpushx", -3, false, K1),
    c("rpushx", -3, false, K1),
    c("lpop", -2, false, K1),
    c("rpop", -2, false, K1),
    c("llen", 2, true, K1),
    c("lindex", 3, true, K1),
    c("lset", 4, false, K1),
    c("lrange", 4, true, K1),
    c("ltrim", 4, false, K1),
    c("lrem", 4, false, K1),
    c("linsert", 5, false, K1),
    c("lpos", -3, true, K1),
    c("rpoplpush", 3, false, K2),
    c("lmove", 5, false, K2),
    c("lmpop", -4, false, KNUM),
    // Sorted sets.
    c("zadd", -4, false, K1),
    c("zincrby", 4, false, K1),
    c("zrem", -3, false, K1),
    c("zcard", 2, true, K1),
    c("zscore", 3, true, K1),
    c("zmscore", -3, true, K1),
    c("zrank", -3, true, K1),
    c("zrevrank", -3, true, K1),
    c("zcount", 4, true, K1),
    c("zlexcount", 4, true, K1),
    c("zrange", -4, true, K1),
    c("zrevrange", -4, true, K1),
    c("zrangebyscore", -4, true, K1),
    c("zrevrangebyscore", -4, true, K1),
    c("zrangebylex", -4, true, K1),
    c("zrevrangebylex", -4, true, K1),
    c("zrangestore", -5, false, K2),
    c("zremrangebyrank", 4, false, K1),
    c("zremrangebyscore", 4, false, K1),
    c("zremrangebylex", 4, false, K1),
    c("zpopmin", -2, false, K1),
    c("zpopmax", -2, false, K1),
    c("zmpop", -4, false, KNUM),
    c("zrandmember", -2, true, K1),
    c("zunionstore", -4, false, KNUM),
    c("zinterstore", -4, false, KNUM),
    c("zdiffstore", -4, false, KNUM),
    c("zunion", -3, true, KNUM),
    c("zinter", -3, true, KNUM),
    c("zdiff", -3, true, KNUM),
    c("zintercard", -3, true, KNUM),
    c("zscan", -3, true, K1),
];

/// The spec of the command `name` (any case), if the state machine runs it.
pub fn spec(name: &[u8]) -> Option<&'static CommandSpec> {
    COMMANDS
        .iter()
        .find(|spec| spec.name.as_bytes().eq_ignore_ascii_case(name))
}

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

/// Counts the element bytes of a reply against [`MAX_REDIS_REPLY_BYTES`].
#[derive(Default)]
pub(crate) struct ReplyBudget {
    used_bytes: usize,
}

impl ReplyBudget {
    /// Take `bytes` more; fails once the reply would pass the limit.
    pub fn take(&mut self, bytes: usize) -> Res<()> {
        self.used_bytes += bytes + 16;
        if self.used_bytes > MAX_REDIS_REPLY_BYTES {
            return err(format!(
                "reply too large: over {MAX_REDIS_REPLY_BYTES} bytes; page it with a SCAN command or a range"
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
/// reply that would take the block's reply over [`MAX_REDIS_REPLY_BYTES`] is replaced by an error
/// (the command ran all the same).
pub(crate) fn execute_multi(
    w: &mut Writer<'_, '_>,
    multi: &RedisMulti,
) -> Result<RedisReply, ExecError> {
    for watched in &multi.watched {
        let mod_revision =
            crate::tables::get_kv(&*w.kv, &watched.key)?.map_or(0, |r| r.mod_revision);
        let expiry_revision = w.coord.expiry(&watched.key)?.map_or(0, |e| e.revision);
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
        replies.push(if reply_bytes > MAX_REDIS_REPLY_BYTES {
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

/// Validation of a [`RedisMulti`]: each command as [`validate`] checks it, at most
/// [`MAX_MULTI_COMMANDS`] of them, and watched keys that are keys.
pub(crate) fn validate_multi(multi: &RedisMulti) -> Result<(), crate::RequestError> {
    if multi.commands.len() > MAX_MULTI_COMMANDS {
        return Err(crate::RequestError::BadRedisCommand(format!(
            "{} commands in one MULTI block, limit {MAX_MULTI_COMMANDS}",
            multi.commands.len()
        )));
    }
    for watched in &multi.watched {
        if watched.key.is_empty() || watched.key.len() > MAX_KEY_BYTES {
            return Err(crate::RequestError::BadRedisCommand(
                "a watched key is empty or too large".into(),
            ));
        }
    }
    multi.commands.iter().try_for_each(validate)
}

/// Validation of a [`RedisCommand`] against the limits (the rest is checked when it runs).
pub(crate) fn validate(command: &RedisCommand) -> Result<(), crate::RequestError> {
    if command.args.is_empty() {
        return Err(crate::RequestError::BadRedisCommand(
            "no command name".into(),
        ));
    }
    if command.args.len() > MAX_REDIS_ARGS {
        return Err(crate::RequestError::BadRedisCommand(format!(
            "{} arguments, limit {MAX_REDIS_ARGS}",
            command.args.len()
        )));
    }
    Ok(())
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
