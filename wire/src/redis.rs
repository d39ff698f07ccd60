//! Redis commands and replies as they travel in the log and back: [`RedisCommand`] (a client's
//! arguments and the random seed every replica draws from), [`RedisMulti`] (a `MULTI` block),
//! [`RedisReply`] (the RESP value typed as RESP3 types it), the table of the commands the state
//! machine runs ([`COMMANDS`], [`spec`]) and their validation against the limits.
//!
//! The state machine executes them (`kvstore/src/redis/`); the Redis endpoint encodes replies
//! in RESP2 or RESP3.

use crate::error::RequestError;
use crate::limits::{MAX_KEY_BYTES, MAX_MULTI_COMMANDS, MAX_REDIS_ARGS};

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
        RedisReply::of(ReplyKind::Double(format_double(value)))
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

/// Validation of a [`RedisMulti`]: each command as [`validate`] checks it, at most
/// [`MAX_MULTI_COMMANDS`] of them, and watched keys that are keys.
pub fn validate_multi(multi: &RedisMulti) -> Result<(), RequestError> {
    if multi.commands.len() > MAX_MULTI_COMMANDS {
        return Err(RequestError::BadRedisCommand(format!(
            "{} commands in one MULTI block, limit {MAX_MULTI_COMMANDS}",
            multi.commands.len()
        )));
    }
    for watched in &multi.watched {
        if watched.key.is_empty() || watched.key.len() > MAX_KEY_BYTES {
            return Err(RequestError::BadRedisCommand(
                "a watched key is empty or too large".into(),
            ));
        }
    }
    multi.commands.iter().try_for_each(validate)
}

/// Validation of a [`RedisCommand`] against the limits (the rest is checked when it runs).
pub fn validate(command: &RedisCommand) -> Result<(), RequestError> {
    if command.args.is_empty() {
        return Err(RequestError::BadRedisCommand("no command name".into()));
    }
    if command.args.len() > MAX_REDIS_ARGS {
        return Err(RequestError::BadRedisCommand(format!(
            "{} arguments, limit {MAX_REDIS_ARGS}",
            command.args.len()
        )));
    }
    Ok(())
}

/// A score as Redis replies it: the shortest text that reads back as the same double, in the
/// style of `%g` (exponent form below 1e-4 and from 1e17), `inf` and `-inf`.
pub fn format_double(value: f64) -> String {
    if value.is_infinite() {
        return if value > 0.0 { "inf" } else { "-inf" }.into();
    }
    if value == 0.0 {
        return if value.is_sign_negative() { "-0" } else { "0" }.into();
    }
    let scientific = format!("{value:e}");
    let (mantissa, exponent) = scientific
        .split_once('e')
        .expect("scientific notation has an exponent");
    let exponent: i32 = exponent.parse().expect("the exponent is an integer");
    if !(-4..17).contains(&exponent) {
        let sign = if exponent < 0 { '-' } else { '+' };
        return format!("{mantissa}e{sign}{:02}", exponent.abs());
    }
    format!("{value}")
}
