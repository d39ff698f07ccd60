//! Redis commands and replies as they travel in the log and back: [`RedisCommand`] (a client's
//! arguments and the random seed every replica draws from), [`RedisMulti`] (a `MULTI` block),
//! [`RedisReply`] (the RESP value typed as RESP3 types it), their validation against the limits,
//! and the two command tables: the commands the state machine runs ([`COMMANDS`], [`spec`]) and
//! those the node's Redis endpoint runs itself ([`ENDPOINT_COMMANDS`], [`endpoint_spec`]). The
//! node dispatches by them and answers `COMMAND` from them; `synod-cli` builds its help from them.
//!
//! The state machine executes the commands in the log (`kvstore/src/redis/`); the Redis endpoint
//! encodes replies in RESP2 or RESP3.

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
    /// Whether it only reads (so it is served outside the log, as a linearizable read).
    pub read_only: bool,
    /// Position of the first key argument (0 = none), as `COMMAND` reports it.
    pub first_key: i64,
    /// Position of the last key argument (-1 = the last argument).
    pub last_key: i64,
    /// Step between key arguments.
    pub step: i64,
    /// The group Redis's documentation files it under.
    pub group: Group,
}

/// The groups of Redis's command documentation (`COMMAND DOCS`'s `group`), for the commands the
/// state machine runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    /// `connection`: `PING`, `ECHO`.
    Connection,
    /// `generic`: keys whatever their type.
    Keyspace,
    /// `string`.
    String,
    /// `hash`.
    Hash,
    /// `set`.
    Set,
    /// `list`.
    List,
    /// `sorted-set`.
    SortedSet,
}

const fn c(
    group: Group,
    name: &'static str,
    arity: i64,
    read_only: bool,
    keys: (i64, i64, i64),
) -> CommandSpec {
    CommandSpec {
        group,
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

// (`Group::String` stays qualified: `String` is the type.)
use Group::{Connection, Hash, Keyspace, List, Set, SortedSet};

/// Every Redis command the state machine runs, by name.
pub static COMMANDS: &[CommandSpec] = &[
    // Connection: the Redis endpoint answers these itself, and sends them here only in `MULTI`
    // blocks, whose replies they are part of.
    c(Connection, "ping", -1, true, NOKEY),
    c(Connection, "echo", 2, true, NOKEY),
    // Keyspace.
    c(Keyspace, "type", 2, true, K1),
    c(Keyspace, "exists", -2, true, KALL),
    c(Keyspace, "del", -2, false, KALL),
    c(Keyspace, "unlink", -2, false, KALL),
    c(Keyspace, "pexpire", -3, false, K1),
    c(Keyspace, "persist", 2, false, K1),
    c(Keyspace, "rename", 3, false, K2),
    c(Keyspace, "renamenx", 3, false, K2),
    c(Keyspace, "copy", -3, false, K2),
    c(Keyspace, "randomkey", 1, true, NOKEY),
    c(Keyspace, "object", -2, true, (2, 2, 1)),
    c(Keyspace, "memory", -2, true, (2, 2, 1)),
    c(Keyspace, "flushdb", -1, false, NOKEY),
    c(Keyspace, "flushall", -1, false, NOKEY),
    c(Keyspace, "move", 3, false, K1),
    // Strings. `set` is the state machine's form of `SET .. GET` (see `strings::set`); the
    // Redis endpoint runs its own `SET`, `GET`, `MSET`, `INCR`, ... and sends them here only in
    // `MULTI` blocks.
    c(Group::String, "set", -3, false, K1),
    c(Group::String, "get", 2, true, K1),
    c(Group::String, "mget", -2, true, KALL),
    c(Group::String, "setnx", 3, false, K1),
    c(Group::String, "mset", -3, false, (1, -1, 2)),
    c(Group::String, "msetnx", -3, false, (1, -1, 2)),
    c(Group::String, "incr", 2, false, K1),
    c(Group::String, "decr", 2, false, K1),
    c(Group::String, "incrby", 3, false, K1),
    c(Group::String, "decrby", 3, false, K1),
    c(Group::String, "getset", 3, false, K1),
    c(Group::String, "append", 3, false, K1),
    c(Group::String, "strlen", 2, true, K1),
    c(Group::String, "getdel", 2, false, K1),
    c(Group::String, "getex", -2, false, K1),
    c(Group::String, "setrange", 4, false, K1),
    c(Group::String, "getrange", 4, true, K1),
    c(Group::String, "substr", 4, true, K1),
    c(Group::String, "setbit", 4, false, K1),
    c(Group::String, "getbit", 3, true, K1),
    c(Group::String, "bitcount", -2, true, K1),
    c(Group::String, "bitpos", -3, true, K1),
    c(Group::String, "lcs", -3, true, K2),
    c(Group::String, "incrbyfloat", 3, false, K1),
    // Hashes.
    c(Hash, "hset", -4, false, K1),
    c(Hash, "hmset", -4, false, K1),
    c(Hash, "hsetnx", 4, false, K1),
    c(Hash, "hget", 3, true, K1),
    c(Hash, "hmget", -3, true, K1),
    c(Hash, "hdel", -3, false, K1),
    c(Hash, "hlen", 2, true, K1),
    c(Hash, "hstrlen", 3, true, K1),
    c(Hash, "hexists", 3, true, K1),
    c(Hash, "hkeys", 2, true, K1),
    c(Hash, "hvals", 2, true, K1),
    c(Hash, "hgetall", 2, true, K1),
    c(Hash, "hincrby", 4, false, K1),
    c(Hash, "hincrbyfloat", 4, false, K1),
    c(Hash, "hrandfield", -2, true, K1),
    c(Hash, "hscan", -3, true, K1),
    // Sets.
    c(Set, "sadd", -3, false, K1),
    c(Set, "srem", -3, false, K1),
    c(Set, "scard", 2, true, K1),
    c(Set, "sismember", 3, true, K1),
    c(Set, "smismember", -3, true, K1),
    c(Set, "smembers", 2, true, K1),
    c(Set, "srandmember", -2, true, K1),
    c(Set, "spop", -2, false, K1),
    c(Set, "smove", 4, false, K2),
    c(Set, "sinter", -2, true, KALL),
    c(Set, "sintercard", -3, true, KNUM),
    c(Set, "sinterstore", -3, false, KALL),
    c(Set, "sunion", -2, true, KALL),
    c(Set, "sunionstore", -3, false, KALL),
    c(Set, "sdiff", -2, true, KALL),
    c(Set, "sdiffstore", -3, false, KALL),
    c(Set, "sscan", -3, true, K1),
    // Lists.
    c(List, "lpush", -3, false, K1),
    c(List, "rpush", -3, false, K1),
    c(List, "lpushx", -3, false, K1),
    c(List, "rpushx", -3, false, K1),
    c(List, "lpop", -2, false, K1),
    c(List, "rpop", -2, false, K1),
    c(List, "llen", 2, true, K1),
    c(List, "lindex", 3, true, K1),
    c(List, "lset", 4, false, K1),
    c(List, "lrange", 4, true, K1),
    c(List, "ltrim", 4, false, K1),
    c(List, "lrem", 4, false, K1),
    c(List, "linsert", 5, false, K1),
    c(List, "lpos", -3, true, K1),
    c(List, "rpoplpush", 3, false, K2),
    c(List, "lmove", 5, false, K2),
    c(List, "lmpop", -4, false, KNUM),
    // Sorted sets.
    c(SortedSet, "zadd", -4, false, K1),
    c(SortedSet, "zincrby", 4, false, K1),
    c(SortedSet, "zrem", -3, false, K1),
    c(SortedSet, "zcard", 2, true, K1),
    c(SortedSet, "zscore", 3, true, K1),
    c(SortedSet, "zmscore", -3, true, K1),
    c(SortedSet, "zrank", -3, true, K1),
    c(SortedSet, "zrevrank", -3, true, K1),
    c(SortedSet, "zcount", 4, true, K1),
    c(SortedSet, "zlexcount", 4, true, K1),
    c(SortedSet, "zrange", -4, true, K1),
    c(SortedSet, "zrevrange", -4, true, K1),
    c(SortedSet, "zrangebyscore", -4, true, K1),
    c(SortedSet, "zrevrangebyscore", -4, true, K1),
    c(SortedSet, "zrangebylex", -4, true, K1),
    c(SortedSet, "zrevrangebylex", -4, true, K1),
    c(SortedSet, "zrangestore", -5, false, K2),
    c(SortedSet, "zremrangebyrank", 4, false, K1),
    c(SortedSet, "zremrangebyscore", 4, false, K1),
    c(SortedSet, "zremrangebylex", 4, false, K1),
    c(SortedSet, "zpopmin", -2, false, K1),
    c(SortedSet, "zpopmax", -2, false, K1),
    c(SortedSet, "zmpop", -4, false, KNUM),
    c(SortedSet, "zrandmember", -2, true, K1),
    c(SortedSet, "zunionstore", -4, false, KNUM),
    c(SortedSet, "zinterstore", -4, false, KNUM),
    c(SortedSet, "zdiffstore", -4, false, KNUM),
    c(SortedSet, "zunion", -3, true, KNUM),
    c(SortedSet, "zinter", -3, true, KNUM),
    c(SortedSet, "zdiff", -3, true, KNUM),
    c(SortedSet, "zintercard", -3, true, KNUM),
    c(SortedSet, "zscan", -3, true, K1),
];

/// The spec of the command `name` (any case), if the state machine runs it.
pub fn spec(name: &[u8]) -> Option<&'static CommandSpec> {
    COMMANDS
        .iter()
        .find(|spec| spec.name.as_bytes().eq_ignore_ascii_case(name))
}

impl CommandSpec {
    /// The key arguments of `args` (the command name first), by the positions `COMMAND`
    /// reports; `None` when it reports none (no keys, or keys given by a count argument).
    pub fn key_args<'a>(&self, args: &'a [Vec<u8>]) -> Option<impl Iterator<Item = &'a [u8]>> {
        if self.first_key <= 0 || self.step <= 0 {
            return None;
        }
        let count = args.len() as i64;
        let last = if self.last_key < 0 {
            count + self.last_key
        } else {
            self.last_key.min(count - 1)
        };
        let (first, step) = (self.first_key as usize, self.step as usize);
        let last = usize::try_from(last).ok()?;
        Some(
            args.get(first..=last)
                .unwrap_or_default()
                .iter()
                .step_by(step)
                .map(Vec::as_slice),
        )
    }

    /// The Redis flags `COMMAND` reports for it: those of a fast read or of a write.
    pub fn flags(&self) -> &'static [&'static str] {
        if self.read_only {
            READ
        } else {
            WRITE
        }
    }
}

/// One command the Redis endpoint runs itself, as `COMMAND` describes it. The node dispatches
/// them (`src/redis/table.rs`); `synod-cli` writes its help for them.
#[derive(Debug)]
pub struct EndpointSpec {
    /// Lower-case name.
    pub name: &'static str,
    /// Redis arity: `n` exactly n arguments (the name included), `-n` at least n.
    pub arity: i64,
    /// Redis command flags.
    pub flags: &'static [&'static str],
    /// Position of the first key argument (0 = none).
    pub first_key: i64,
    /// Position of the last key argument (-1 = the last argument).
    pub last_key: i64,
    /// Step between key arguments.
    pub step: i64,
}

impl EndpointSpec {
    /// Whether it waits for data (the blocking pops).
    pub fn is_blocking(&self) -> bool {
        self.flags == BLOCKING
    }

    /// Whether a connection may run it before `AUTH`.
    pub fn runs_before_auth(&self) -> bool {
        self.flags.contains(&"no-auth")
    }
}

const fn e(
    name: &'static str,
    arity: i64,
    flags: &'static [&'static str],
    keys: (i64, i64, i64),
) -> EndpointSpec {
    EndpointSpec {
        name,
        arity,
        flags,
        first_key: keys.0,
        last_key: keys.1,
        step: keys.2,
    }
}

const PAIRS: (i64, i64, i64) = (1, -1, 2);
const READ: &[&str] = &["readonly", "fast"];
const WRITE: &[&str] = &["write", "denyoom"];
const WRITE_FAST: &[&str] = &["write", "denyoom", "fast"];
const CONN: &[&str] = &["fast", "no-auth", "loading", "stale"];
const ADMIN: &[&str] = &["loading", "stale"];
const BLOCKING: &[&str] = &["write", "blocking"];
const TRANSACTION: &[&str] = &["noscript", "loading", "stale", "fast"];

/// Every command the Redis endpoint runs itself: the connection's and the node's, its own
/// `SET`, `GET`, `INCR`, key expiry and the rest (the state machine runs them only inside
/// `MULTI` blocks), `SYNOD.*`, the blocking pops and the transaction commands.
pub static ENDPOINT_COMMANDS: &[EndpointSpec] = &[
    e("ping", -1, &["fast"], NOKEY),
    e("echo", 2, &["fast"], NOKEY),
    e("auth", -2, CONN, NOKEY),
    e("hello", -1, CONN, NOKEY),
    e("quit", -1, CONN, NOKEY),
    e("select", 2, &["fast", "loading", "stale"], NOKEY),
    e("command", -1, ADMIN, NOKEY),
    e("info", -1, ADMIN, NOKEY),
    e("config", -2, ADMIN, NOKEY),
    e("client", -2, ADMIN, NOKEY),
    e("dbsize", 1, &["readonly"], NOKEY),
    e("time", 1, &["random", "fast", "loading", "stale"], NOKEY),
    e("get", 2, READ, K1),
    e("set", -3, WRITE, K1),
    e("setnx", 3, WRITE_FAST, K1),
    e("mget", -2, READ, KALL),
    e("mset", -3, WRITE, PAIRS),
    e("msetnx", -3, WRITE, PAIRS),
    e("del", -2, &["write"], KALL),
    e("unlink", -2, &["write", "fast"], KALL),
    e("exists", -2, READ, KALL),
    e("incr", 2, WRITE_FAST, K1),
    e("incrby", 3, WRITE_FAST, K1),
    e("decr", 2, WRITE_FAST, K1),
    e("decrby", 3, WRITE_FAST, K1),
    e("keys", 2, &["readonly"], NOKEY),
    e("scan", -2, &["readonly"], NOKEY),
    e("ttl", 2, READ, K1),
    e("pttl", 2, READ, K1),
    e("persist", 2, &["write", "fast"], K1),
    e("expire", -3, &["write", "fast"], K1),
    e("pexpire", -3, &["write", "fast"], K1),
    e("expireat", -3, &["write", "fast"], K1),
    e("pexpireat", -3, &["write", "fast"], K1),
    e("expiretime", 2, READ, K1),
    e("pexpiretime", 2, READ, K1),
    e("synod.cas", 4, WRITE, K1),
    e("synod.setfenced", 5, WRITE, (3, 3, 1)),
    e("synod.status", 1, &["fast", "loading", "stale"], NOKEY),
    e("synod.members", 1, &["admin"], NOKEY),
    e("synod.member", -3, &["admin"], NOKEY),
    e("synod.lock", -2, &["write"], NOKEY),
    e("synod.unlock", 2, &["write"], NOKEY),
    e("synod.lockinfo", 2, &["readonly"], NOKEY),
    e("synod.campaign", -3, &["write"], NOKEY),
    e("synod.proclaim", 3, &["write"], NOKEY),
    e("synod.resign", 2, &["write"], NOKEY),
    e("synod.leader", 2, &["readonly"], NOKEY),
    e("synod.session", 1, &["fast"], NOKEY),
    e("setex", 4, WRITE, K1),
    e("psetex", 4, WRITE, K1),
    e("blpop", -3, BLOCKING, (1, -2, 1)),
    e("brpop", -3, BLOCKING, (1, -2, 1)),
    e("brpoplpush", 4, BLOCKING, K2),
    e("blmove", 6, BLOCKING, K2),
    e("blmpop", -5, BLOCKING, NOKEY),
    e("bzpopmin", -3, BLOCKING, (1, -2, 1)),
    e("bzpopmax", -3, BLOCKING, (1, -2, 1)),
    e("bzmpop", -5, BLOCKING, NOKEY),
    e("multi", 1, TRANSACTION, NOKEY),
    e("exec", 1, TRANSACTION, NOKEY),
    e("discard", 1, TRANSACTION, NOKEY),
    e("watch", -2, TRANSACTION, KALL),
    e("unwatch", 1, TRANSACTION, NOKEY),
];

/// The spec of the command `name` (any case), if the Redis endpoint runs it itself.
pub fn endpoint_spec(name: &[u8]) -> Option<&'static EndpointSpec> {
    ENDPOINT_COMMANDS
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_table_lists_every_command_once_in_lower_case() {
        for names in [
            COMMANDS.iter().map(|s| s.name).collect::<Vec<_>>(),
            ENDPOINT_COMMANDS.iter().map(|s| s.name).collect(),
        ] {
            assert!(names.iter().all(|n| *n == n.to_lowercase()), "{names:?}");
            let mut unique = names.clone();
            unique.sort_unstable();
            unique.dedup();
            assert_eq!(unique.len(), names.len(), "{names:?}");
        }
        assert!(endpoint_spec(b"GeT").is_some());
        assert!(endpoint_spec(b"hset").is_none());
        assert!(spec(b"HsEt").is_some());
    }

    #[test]
    fn key_args_follow_the_positions_command_reports() {
        let args = |words: &str| -> Vec<Vec<u8>> {
            words.split(' ').map(|w| w.as_bytes().to_vec()).collect()
        };
        let keys = |words: &str| -> Option<Vec<String>> {
            let args = args(words);
            let name = args[0].clone();
            let keys = spec(&name).unwrap().key_args(&args)?;
            Some(keys.map(|k| String::from_utf8_lossy(k).into()).collect())
        };
        assert_eq!(keys("hget h f").unwrap(), ["h"]);
        assert_eq!(keys("exists a b c").unwrap(), ["a", "b", "c"]);
        assert_eq!(keys("smove src dst m").unwrap(), ["src", "dst"]);
        assert_eq!(keys("randomkey"), None, "names no key");
        assert_eq!(keys("sintercard 2 a b"), None, "keys after a count");
    }

    #[test]
    fn only_the_blocking_pops_block_and_only_connection_commands_run_before_auth() {
        let blocking: Vec<&str> = ENDPOINT_COMMANDS
            .iter()
            .filter(|s| s.is_blocking())
            .map(|s| s.name)
            .collect();
        assert!(blocking.iter().all(|n| n.starts_with('b')), "{blocking:?}");
        assert_eq!(blocking.len(), 8);
        let before_auth: Vec<&str> = ENDPOINT_COMMANDS
            .iter()
            .filter(|s| s.runs_before_auth())
            .map(|s| s.name)
            .collect();
        assert_eq!(before_auth, ["auth", "hello", "quit"]);
    }
}
