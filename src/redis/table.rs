//! Dispatch: which function runs each command, with Redis's checks in Redis's
//! order: unknown command, wrong number of arguments, authentication. The
//! commands themselves (names, arities, flags, key positions: what `COMMAND`
//! reports) are [`sm_redis::ENDPOINT_COMMANDS`] and, for those the state
//! machine runs, [`sm_redis::COMMANDS`], both in `synod-wire` so that
//! `synod-cli`'s help is built from the same tables.

use synod_wire::redis::{self as sm_redis, CommandSpec, EndpointSpec};

use super::resp::Reply;
use super::{admin, coord, data, expiry, keyspace, multi, strings, Conn, RedisShared};

/// Whether `name` (any case) waits for data (see [`data::blocking`]).
pub(super) fn is_blocking(name: &[u8]) -> bool {
    lookup(name).is_some_and(EndpointSpec::is_blocking)
}

/// The spec of `name` (any case), if the endpoint runs it itself.
pub(super) fn lookup(name: &[u8]) -> Option<&'static EndpointSpec> {
    sm_redis::endpoint_spec(name)
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
        (Some(spec), _) => (spec.name, spec.arity, spec.runs_before_auth()),
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
        sm_redis::ENDPOINT_COMMANDS
            .iter()
            .map(describe)
            .chain(data_commands().map(describe_data))
    };
    let Some(sub) = args.get(1) else {
        return Reply::Array(all().collect());
    };
    match sub.to_ascii_uppercase().as_slice() {
        b"COUNT" if args.len() == 2 => {
            Reply::Integer((sm_redis::ENDPOINT_COMMANDS.len() + data_commands().count()) as i64)
        }
        b"LIST" => Reply::Array(
            sm_redis::ENDPOINT_COMMANDS
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
fn describe(spec: &EndpointSpec) -> Reply {
    entry(
        spec.name,
        spec.arity,
        spec.flags,
        (spec.first_key, spec.last_key, spec.step),
    )
}

/// [`describe`] for a command the state machine runs.
fn describe_data(spec: &CommandSpec) -> Reply {
    entry(
        spec.name,
        spec.arity,
        spec.flags(),
        (spec.first_key, spec.last_key, spec.step),
    )
}

fn entry(name: &str, arity: i64, flags: &[&str], keys: (i64, i64, i64)) -> Reply {
    Reply::Array(vec![
        Reply::text(name),
        Reply::Integer(arity),
        Reply::Array(flags.iter().map(|f| Reply::Simple((*f).into())).collect()),
        Reply::Integer(keys.0),
        Reply::Integer(keys.1),
        Reply::Integer(keys.2),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_lists_every_command_once() {
        let mut names: Vec<&str> = sm_redis::ENDPOINT_COMMANDS.iter().map(|s| s.name).collect();
        names.extend(data_commands().map(|s| s.name));
        let listed = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), listed);
        let run_by_both = sm_redis::COMMANDS
            .iter()
            .filter(|spec| lookup(spec.name.as_bytes()).is_some())
            .count();
        assert_eq!(
            data_commands().count() + run_by_both,
            sm_redis::COMMANDS.len()
        );
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
