//! The command table: names, arities, flags (what `COMMAND` reports) and
//! dispatch, with Redis's checks in Redis's order: unknown command, wrong
//! number of arguments, authentication.

use synod_wire::redis::{self as sm_redis, CommandSpec};

use super::resp::{parse_i64, Reply};
use super::{admin, coord, data, expiry, keyspace, multi, strings, Conn, RedisShared};

/// One command as `COMMAND` describes it.
pub(super) struct Spec {
    /// Lower-case name.
    pub name: &'static str,
    /// Redis arity: `n` exactly n arguments (the name included), `-n` at
    /// least n.
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

const fn spec(
    name: &'static str,
    arity: i64,
    flags: &'static [&'static str],
    keys: (i64, i64, i64),
) -> Spec {
    Spec {
        name,
        arity,
        flags,
        first_key: keys.0,
        last_key: keys.1,
        step: keys.2,
    }
}

const NO_KEYS: (i64, i64, i64) = (0, 0, 0);
const ONE_KEY: (i64, i64, i64) = (1, 1, 1);
const ALL_KEYS: (i64, i64, i64) = (1, -1, 1);
const PAIRS: (i64, i64, i64) = (1, -1, 2);
const R: &[&str] = &["readonly", "fast"];
const W: &[&str] = &["write", "denyoom"];
const WF: &[&str] = &["write", "denyoom", "fast"];
const CONN: &[&str] = &["fast", "no-auth", "loading", "stale"];
const ADMIN: &[&str] = &["loading", "stale"];
const BLOCKING: &[&str] = &["write", "blocking"];
const TRANSACTION: &[&str] = &["noscript", "loading", "stale", "fast"];

/// Every command the endpoint knows.
pub(super) static COMMANDS: &[Spec] = &[
    spec("ping", -1, &["fast"], NO_KEYS),
    spec("echo", 2, &["fast"], NO_KEYS),
    spec("auth", -2, CONN, NO_KEYS),
    spec("hello", -1, CONN, NO_KEYS),
    spec("quit", -1, CONN, NO_KEYS),
    spec("select", 2, &["fast", "loading", "stale"], NO_KEYS),
    spec("command", -1, ADMIN, NO_KEYS),
    spec("info", -1, ADMIN, NO_KEYS),
    spec("config", -2, ADMIN, NO_KEYS),
    spec("client", -2, ADMIN, NO_KEYS),
    spec("dbsize", 1, &["readonly"], NO_KEYS),
    spec("time", 1, &["random", "fast", "loading", "stale"], NO_KEYS),
    spec("get", 2, R, ONE_KEY),
    spec("set", -3, W, ONE_KEY),
    spec("setnx", 3, WF, ONE_KEY),
    spec("mget", -2, R, ALL_KEYS),
    spec("mset", -3, W, PAIRS),
    spec("msetnx", -3, W, PAIRS),
    spec("del", -2, &["write"], ALL_KEYS),
    spec("unlink", -2, &["write", "fast"], ALL_KEYS),
    spec("exists", -2, R, ALL_KEYS),
    spec("incr", 2, WF, ONE_KEY),
    spec("incrby", 3, WF, ONE_KEY),
    spec("decr", 2, WF, ONE_KEY),
    spec("decrby", 3, WF, ONE_KEY),
    spec("keys", 2, &["readonly"], NO_KEYS),
    spec("scan", -2, &["readonly"], NO_KEYS),
    spec("ttl", 2, R, ONE_KEY),
    spec("pttl", 2, R, ONE_KEY),
    spec("persist", 2, &["write", "fast"], ONE_KEY),
    spec("expire", -3, &["write", "fast"], ONE_KEY),
    spec("pexpire", -3, &["write", "fast"], ONE_KEY),
    spec("expireat", -3, &["write", "fast"], ONE_KEY),
    spec("pexpireat", -3, &["write", "fast"], ONE_KEY),
    spec("expiretime", 2, R, ONE_KEY),
    spec("pexpiretime", 2, R, ONE_KEY),
    spec("synod.cas", 4, W, ONE_KEY),
    spec("synod.setfenced", 5, W, (3, 3, 1)),
    spec("synod.status", 1, &["fast", "loading", "stale"], NO_KEYS),
    spec("synod.members", 1, &["admin"], NO_KEYS),
    spec("synod.member", -3, &["admin"], NO_KEYS),
    spec("synod.lock", -2, &["write"], NO_KEYS),
    spec("synod.unlock", 2, &["write"], NO_KEYS),
    spec("synod.lockinfo", 2, &["readonly"], NO_KEYS),
    spec("synod.campaign", -3, &["write"], NO_KEYS),
    spec("synod.proclaim", 3, &["write"], NO_KEYS),
    spec("synod.resign", 2, &["write"], NO_KEYS),
    spec("synod.leader", 2, &["readonly"], NO_KEYS),
    spec("synod.session", 1, &["fast"], NO_KEYS),
    spec("setex", 4, W, ONE_KEY),
    spec("psetex", 4, W, ONE_KEY),
    spec("blpop", -3, BLOCKING, (1, -2, 1)),
    spec("brpop", -3, BLOCKING, (1, -2, 1)),
    spec("brpoplpush", 4, BLOCKING, (1, 2, 1)),
    spec("blmove", 6, BLOCKING, (1, 2, 1)),
    spec("blmpop", -5, BLOCKING, NO_KEYS),
    spec("bzpopmin", -3, BLOCKING, (1, -2, 1)),
    spec("bzpopmax", -3, BLOCKING, (1, -2, 1)),
    spec("bzmpop", -5, BLOCKING, NO_KEYS),
    spec("multi", 1, TRANSACTION, NO_KEYS),
    spec("exec", 1, TRANSACTION, NO_KEYS),
    spec("discard", 1, TRANSACTION, NO_KEYS),
    spec("watch", -2, TRANSACTION, ALL_KEYS),
    spec("unwatch", 1, TRANSACTION, NO_KEYS),
];

/// Whether `name` (lower case) waits for data (see [`data::blocking`]).
pub(super) fn is_blocking(name: &[u8]) -> bool {
    lookup(name).is_some_and(|spec| spec.flags == BLOCKING)
}

/// The spec of `name` (any case).
pub(super) fn lookup(name: &[u8]) -> Option<&'static Spec> {
    COMMANDS
        .iter()
        .find(|spec| spec.name.as_bytes().eq_ignore_ascii_case(name))
}

fn unknown_command(args: &[Vec<u8>]) -> Reply {
    let quoted: String = args[1..]
        .iter()
        .take(20)
        .map(|a| format!("'{}' ", String::from_utf8_lossy(&a[..a.len().min(128)])))
        .collect();
    let name = String::from_utf8_lossy(&args[0][..args[0].len().min(128)]).into_owned();
    Reply::err(format!(
        "unknown command '{name}', with args beginning with: {quoted}"
    ))
}

/// Runs one command; returns the reply and whether to close the
/// connection after sending it.
pub(super) async fn execute(
    shared: &RedisShared,
    conn: &mut Conn,
    args: Vec<Vec<u8>>,
) -> (Reply, bool) {
    debug_assert!(!args.is_empty());
    let (name, arity, no_auth) = match (lookup(&args[0]), sm_redis::spec(&args[0])) {
        (Some(spec), _) => (spec.name, spec.arity, spec.flags.contains(&"no-auth")),
        (None, Some(spec)) => (spec.name, spec.arity, false),
        (None, None) => return (multi::refuse(conn, unknown_command(&args)), false),
    };
    let n = args.len() as i64;
    if (arity > 0 && n != arity) || n < -arity {
        let error = Reply::err(format!("wrong number of arguments for '{name}' command"));
        return (multi::refuse(conn, error), false);
    }
    if !conn.authenticated && !no_auth {
        let error = Reply::Error("NOAUTH Authentication required.".into());
        return (multi::refuse(conn, error), false);
    }
    if conn.block.is_some() && !multi::runs_inside_block(name) {
        return (multi::queue(conn, name, &args), false);
    }
    if lookup(&args[0]).is_none() {
        return (data::execute(shared, conn, name, &args).await, false);
    }
    let reply = match name {
        "quit" => return (Reply::ok(), true),
        "ping" => admin::ping(&args),
        "time" => admin::time(),
        "echo" => Reply::Bulk(args[1].clone()),
        "auth" => admin::auth(shared, conn, &args),
        "hello" => admin::hello(shared, conn, &args).await,
        "select" => admin::select(&args),
        "command" => command(&args),
        "info" => admin::info(shared, &args).await,
        "config" => admin::config(shared, &args),
        "client" => admin::client(conn, &args),
        "dbsize" => keyspace::dbsize(shared).await,
        "keys" => keyspace::keys(shared, &args).await,
        "scan" => keyspace::scan(shared, &args).await,
        "synod.cas" => coord::cas(shared, conn, &args).await,
        "synod.setfenced" => coord::set_fenced(shared, conn, &args).await,
        "synod.status" => coord::status(shared).await,
        "synod.members" => coord::members(shared).await,
        "synod.member" => coord::member(shared, &args).await,
        "synod.lock" => coord::lock(shared, conn, &args).await,
        "synod.unlock" => coord::unlock(shared, conn, &args).await,
        "synod.lockinfo" => coord::lock_info(shared, &args).await,
        "synod.campaign" => coord::campaign(shared, conn, &args).await,
        "synod.proclaim" => coord::proclaim(shared, conn, &args).await,
        "synod.resign" => coord::resign(shared, conn, &args).await,
        "synod.leader" => coord::leader(shared, &args).await,
        "synod.session" => coord::session(conn),
        "multi" => multi::multi(conn),
        "exec" => multi::exec(shared, conn).await,
        "discard" => multi::discard(conn),
        "watch" => multi::watch(shared, conn, &args[1..]).await,
        "unwatch" => multi::unwatch(conn),
        "ttl" | "pttl" | "expiretime" | "pexpiretime" | "persist" | "expire" | "pexpire"
        | "expireat" | "pexpireat" => expiry::execute(shared, conn, name, &args).await,
        "blpop" | "brpop" | "brpoplpush" | "blmove" | "blmpop" | "bzpopmin" | "bzpopmax"
        | "bzmpop" => data::blocking(shared, conn, name, &args).await,
        _ => strings::execute(shared, conn, name, &args).await,
    };
    (reply, false)
}

/// The state machine's commands that clients call directly: all but those
/// the endpoint runs itself (`SET`, whose `GET` form it sends to the state
/// machine's `set`).
fn data_commands() -> impl Iterator<Item = &'static CommandSpec> {
    sm_redis::COMMANDS
        .iter()
        .filter(|spec| lookup(spec.name.as_bytes()).is_none())
}

/// `COMMAND`, `COMMAND COUNT`, `COMMAND INFO name...`, `COMMAND LIST`,
/// `COMMAND DOCS` (an error, on which `redis-cli` uses its built-in help
/// for Redis commands and lists the others from `COMMAND`).
fn command(args: &[Vec<u8>]) -> Reply {
    let all = || {
        COMMANDS
            .iter()
            .map(describe)
            .chain(data_commands().map(describe_data))
    };
    let Some(sub) = args.get(1) else {
        return Reply::Array(all().collect());
    };
    match sub.to_ascii_uppercase().as_slice() {
        b"COUNT" if args.len() == 2 => {
            Reply::Integer((COMMANDS.len() + data_commands().count()) as i64)
        }
        b"LIST" => Reply::Array(
            COMMANDS
                .iter()
                .map(|s| s.name)
                .chain(data_commands().map(|s| s.name))
                .map(Reply::text)
                .collect(),
        ),
        b"DOCS" => Reply::err("COMMAND DOCS is not supported by Synod"),
        b"INFO" => Reply::Array(
            args[2..]
                .iter()
                .map(|name| match (lookup(name), sm_redis::spec(name)) {
                    (Some(spec), _) => describe(spec),
                    (None, Some(spec)) => describe_data(spec),
                    (None, None) => Reply::NilArray,
                })
                .collect(),
        ),
        _ => Reply::err(format!(
            "unknown subcommand '{}'. Try COMMAND HELP.",
            String::from_utf8_lossy(sub)
        )),
    }
}

/// The first six fields of Redis's `COMMAND INFO` entry.
fn describe(spec: &Spec) -> Reply {
    Reply::Array(vec![
        Reply::text(spec.name),
        Reply::Integer(spec.arity),
        Reply::Array(
            spec.flags
                .iter()
                .map(|f| Reply::Simple((*f).into()))
                .collect(),
        ),
        Reply::Integer(spec.first_key),
        Reply::Integer(spec.last_key),
        Reply::Integer(spec.step),
    ])
}

/// [`describe`] for a command the state machine runs.
fn describe_data(spec: &CommandSpec) -> Reply {
    let flags: &[&str] = if spec.read_only { R } else { W };
    describe(&Spec {
        name: spec.name,
        arity: spec.arity,
        flags,
        first_key: spec.first_key,
        last_key: spec.last_key,
        step: spec.step,
    })
}

/// Parses an integer argument with Redis's error.
pub(super) fn int_arg(arg: &[u8]) -> Result<i64, Reply> {
    parse_i64(arg).ok_or_else(|| Reply::err("value is not an integer or out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_is_listed_once_in_lower_case() {
        let mut names: Vec<&str> = COMMANDS.iter().map(|s| s.name).collect();
        assert!(names.iter().all(|n| *n == n.to_lowercase()));
        names.extend(data_commands().map(|s| s.name));
        names.sort();
        names.dedup();
        assert_eq!(names.len(), COMMANDS.len() + data_commands().count());
        let run_by_both = sm_redis::COMMANDS
            .iter()
            .filter(|spec| lookup(spec.name.as_bytes()).is_some())
            .count();
        assert_eq!(
            data_commands().count() + run_by_both,
            sm_redis::COMMANDS.len()
        );
        assert!(lookup(b"GeT").is_some());
        assert!(lookup(b"nope").is_none());
    }

    #[test]
    fn unknown_commands_are_reported_like_redis() {
        let reply = unknown_command(&[b"FOO".to_vec(), b"a".to_vec()]);
        assert_eq!(
            reply,
            Reply::Error("ERR unknown command 'FOO', with args beginning with: 'a' ".into())
        );
    }
}
