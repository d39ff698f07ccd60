//! Redis transactions: `MULTI`, `EXEC`, `DISCARD`, `WATCH`, `UNWATCH`.
//!
//! Commands sent after `MULTI` are checked and queued on the connection
//! (each answered `+QUEUED`); `EXEC` sends the whole block as ONE
//! state-machine command ([`RedisMulti`]): atomic, applied once, exactly
//! once like any write of the connection, every write at one revision.
//! `WATCH key...` notes each key's modification and expiry revisions
//! (linearizable reads); the block carries them, and the state machine
//! runs it only if none changed (a write, a deletion, an expiry, `EXPIRE`
//! or `PERSIST`), else `EXEC` answers a nil array, as Redis does. A command
//! refused while queuing (unknown, wrong arity, bad options, or one a
//! block cannot hold) makes `EXEC` answer `EXECABORT` and run nothing.
//!
//! What a block can hold: the commands the state machine runs (strings,
//! keyspace, hashes, sets, lists, sorted sets, and `PING`/`ECHO`, which
//! answer in the block's reply as in Redis) and `EXPIRE`, `PEXPIRE`,
//! `EXPIREAT`, `PEXPIREAT` (without `GT`/`LT`), `PERSIST`, `SETEX`,
//! `PSETEX`. Not the endpoint's own commands (`TTL`, `KEYS`, `SCAN`, the
//! `*SCAN` cursors, blocking pops, `SYNOD.*`, connection and server
//! commands): the block is refused with an error naming the command.

use synod_kvstore::{Get, Op, Outcome, RedisCommand, RedisMulti, Ttl, WatchedKey};
use synod_wire::limits::MAX_MULTI_COMMANDS;

use super::data::{getex_in_state_machine_form, seed, to_reply};
use super::expiry::{expire_time_kind, ttl_ms};
use super::resp::{int_arg, Reply};
use super::strings::{parse_set, set_in_state_machine_form, setex_ttl_ms};
use super::{check_key, read, write, Conn, RedisShared};

/// Most keys one connection watches at once.
const MAX_WATCHED_KEYS: usize = 10_000;

/// A `MULTI` block being queued.
#[derive(Debug, Default)]
pub(super) struct Block {
    commands: Vec<RedisCommand>,
    /// A command was refused while queuing: `EXEC` aborts.
    failed: bool,
}

/// Whether `name` runs at once even inside a block (the transaction
/// commands themselves, and `QUIT`).
pub(super) fn runs_inside_block(name: &str) -> bool {
    matches!(
        name,
        "multi" | "exec" | "discard" | "watch" | "unwatch" | "quit"
    )
}

/// Marks the connection's block, if any, as failed (a command was refused
/// while queuing); returns `error` to send.
pub(super) fn refuse(conn: &mut Conn, error: Reply) -> Reply {
    if let Some(block) = conn.block.as_mut() {
        block.failed = true;
    }
    error
}

/// Queues the command `args` (known, arity checked) in the open block.
pub(super) fn queue(conn: &mut Conn, name: &str, args: &[Vec<u8>]) -> Reply {
    let block = conn.block.as_mut().expect("queue is called inside a block");
    if block.commands.len() >= MAX_MULTI_COMMANDS {
        return refuse(
            conn,
            Reply::err(format!(
                "more than {MAX_MULTI_COMMANDS} commands in one MULTI block"
            )),
        );
    }
    match in_state_machine_form(name, args) {
        Ok(args) => {
            block.commands.push(RedisCommand::new(args, seed()));
            Reply::Simple("QUEUED".into())
        }
        Err(error) => refuse(conn, error),
    }
}

/// The command `args` as the state machine runs it in a block.
fn in_state_machine_form(name: &str, args: &[Vec<u8>]) -> Result<Vec<Vec<u8>>, Reply> {
    match name {
        "set" => Ok(set_in_state_machine_form(args, parse_set(args)?)),
        "getex" => getex_in_state_machine_form(args),
        "setex" | "psetex" => {
            let ms = setex_ttl_ms(name, args)?;
            Ok(vec![
                b"set".to_vec(),
                args[1].clone(),
                args[3].clone(),
                b"PX".to_vec(),
                ms.to_string().into_bytes(),
            ])
        }
        "expire" | "pexpire" | "expireat" | "pexpireat" => {
            let (unit, base) = expire_time_kind(name);
            check_key(&args[1])?;
            let ms = ttl_ms(int_arg(&args[2])?, unit, base, name)?;
            let mut forwarded = vec![
                b"pexpire".to_vec(),
                args[1].clone(),
                ms.to_string().into_bytes(),
            ];
            match &args[3..] {
                [] => {}
                [flag] if flag.eq_ignore_ascii_case(b"nx") || flag.eq_ignore_ascii_case(b"xx") => {
                    forwarded.push(flag.clone())
                }
                [flag] if flag.eq_ignore_ascii_case(b"gt") || flag.eq_ignore_ascii_case(b"lt") => {
                    return Err(Reply::err(format!(
                        "'{name}' with GT or LT inside MULTI is not supported by Synod"
                    )))
                }
                _ => return Err(Reply::err("Unsupported option")),
            }
            Ok(forwarded)
        }
        "persist" => Ok(args.to_vec()),
        "hscan" | "sscan" | "zscan" => Err(not_in_block(name)),
        _ if synod_wire::redis::spec(name.as_bytes()).is_some() => Ok(args.to_vec()),
        _ => Err(not_in_block(name)),
    }
}

fn not_in_block(name: &str) -> Reply {
    Reply::err(format!("'{name}' inside MULTI is not supported by Synod"))
}

/// `MULTI`.
pub(super) fn multi(conn: &mut Conn) -> Reply {
    if conn.block.is_some() {
        return Reply::err("MULTI calls can not be nested");
    }
    conn.block = Some(Block::default());
    Reply::ok()
}

/// `DISCARD`: drops the block and the watched keys.
pub(super) fn discard(conn: &mut Conn) -> Reply {
    if conn.block.take().is_none() {
        return Reply::err("DISCARD without MULTI");
    }
    conn.watched.clear();
    Reply::ok()
}

/// `UNWATCH`.
pub(super) fn unwatch(conn: &mut Conn) -> Reply {
    conn.watched.clear();
    Reply::ok()
}

/// `WATCH key...`: notes each key's modification revision now.
pub(super) async fn watch(shared: &RedisShared, conn: &mut Conn, keys: &[Vec<u8>]) -> Reply {
    if conn.block.is_some() {
        // As in Redis, this error leaves the block as it is.
        return Reply::err("WATCH inside MULTI is not allowed");
    }
    if conn.watched.len() + keys.len() > MAX_WATCHED_KEYS {
        return Reply::err(format!(
            "more than {MAX_WATCHED_KEYS} watched keys on one connection"
        ));
    }
    for key in keys {
        if let Err(error) = check_key(key) {
            return error;
        }
        let outcome = read(shared, Op::Get(Get { key: key.clone() })).await;
        let mod_revision = match outcome {
            Ok(Outcome::Get(get)) => get.kv.map_or(0, |kv| kv.mod_revision),
            Ok(_) => return unexpected(),
            Err(error) => return error,
        };
        let outcome = read(shared, Op::Ttl(Ttl { key: key.clone() })).await;
        let expiry_revision = match outcome {
            Ok(Outcome::Ttl(ttl)) => ttl.expiry_revision,
            Ok(_) => return unexpected(),
            Err(error) => return error,
        };
        conn.watched.push(WatchedKey {
            key: key.clone(),
            mod_revision,
            expiry_revision,
        });
    }
    Reply::ok()
}

/// `EXEC`: runs the block as one state-machine command, or aborts it.
pub(super) async fn exec(shared: &RedisShared, conn: &mut Conn) -> Reply {
    let Some(block) = conn.block.take() else {
        return Reply::err("EXEC without MULTI");
    };
    let watched = std::mem::take(&mut conn.watched);
    if block.failed {
        return Reply::Error("EXECABORT Transaction discarded because of previous errors.".into());
    }
    let multi = RedisMulti {
        commands: block.commands,
        watched,
    };
    match write(shared, conn, Op::RedisMulti(multi)).await {
        Ok(Outcome::Redis(reply)) => to_reply(reply),
        Ok(_) => unexpected(),
        Err(error) => error,
    }
}

fn unexpected() -> Reply {
    Reply::err("the state machine answered with an unexpected outcome")
}
