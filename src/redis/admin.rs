//! Connection and server commands: `PING`, `AUTH`, `HELLO`, `SELECT`,
//! `INFO`, `CONFIG GET`, `CLIENT`.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use synod_paxos::Role;

use super::keyspace::glob_match;
use super::resp::{parse_i64, Protocol, Reply};
use super::{Conn, RedisShared};

/// The Redis version Synod's endpoint behaves like, reported by `HELLO`
/// and `INFO` (some clients choose features by it).
pub(super) const REDIS_VERSION: &str = "7.0.0";

/// `TIME`: this node's wall clock, seconds and microseconds since the Unix
/// epoch, as Redis answers it (the clock Synod turns `EXPIREAT`/`PXAT` times
/// into TTLs with).
pub(super) fn time() -> Reply {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Reply::Array(vec![
        Reply::text(since.as_secs().to_string()),
        Reply::text(since.subsec_micros().to_string()),
    ])
}

pub(super) fn ping(args: &[Vec<u8>]) -> Reply {
    match args {
        [_] => Reply::Simple("PONG".into()),
        [_, message] => Reply::Bulk(message.clone()),
        _ => Reply::err("wrong number of arguments for 'ping' command"),
    }
}

/// Compares without returning early, so the time taken does not tell how
/// much of a guess was right.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for (i, x) in a.iter().enumerate() {
        diff |= usize::from(x ^ b.get(i).copied().unwrap_or(!x));
    }
    diff == 0
}

/// Checks `user` (only `default` exists) and `password`.
fn check_credentials(shared: &RedisShared, user: &[u8], password: &[u8]) -> Result<(), Reply> {
    let Some(expected) = shared.password.as_deref() else {
        return Err(Reply::err(
            "AUTH <password> called without any password configured for the default user. \
             Are you sure your configuration is correct?",
        ));
    };
    if user == b"default" && same_secret(password, expected.as_bytes()) {
        Ok(())
    } else {
        Err(Reply::Error(
            "WRONGPASS invalid username-password pair or user is disabled.".into(),
        ))
    }
}

/// `AUTH password` or `AUTH default password`.
pub(super) fn auth(shared: &RedisShared, conn: &mut Conn, args: &[Vec<u8>]) -> Reply {
    let (user, password) = match args {
        [_, password] => (&b"default"[..], password),
        [_, user, password] => (user.as_slice(), password),
        _ => return Reply::err("syntax error"),
    };
    match check_credentials(shared, user, password) {
        Ok(()) => {
            conn.authenticated = true;
            Reply::ok()
        }
        Err(error) => error,
    }
}

/// `HELLO [2|3 [AUTH user password] [SETNAME name]]`: switches the
/// connection to RESP2 or RESP3 once the options are accepted.
pub(super) async fn hello(shared: &RedisShared, conn: &mut Conn, args: &[Vec<u8>]) -> Reply {
    let mut protocol = conn.protocol;
    if let Some(version) = args.get(1) {
        match parse_i64(version) {
            None => return Reply::err("Protocol version is not an integer or out of range"),
            Some(2) => protocol = Protocol::Resp2,
            Some(3) => protocol = Protocol::Resp3,
            Some(_) => {
                return Reply::Error(
                    "NOPROTO sorry, this protocol version is not supported.".into(),
                )
            }
        }
    }
    let mut i = 2;
    let mut name = None;
    while i < args.len() {
        match args[i].to_ascii_uppercase().as_slice() {
            b"AUTH" if i + 2 < args.len() => {
                if let Err(error) = check_credentials(shared, &args[i + 1], &args[i + 2]) {
                    return error;
                }
                conn.authenticated = true;
                i += 3;
            }
            b"SETNAME" if i + 1 < args.len() => {
                name = Some(args[i + 1].clone());
                i += 2;
            }
            _ => {
                return Reply::err(format!(
                    "syntax error in HELLO option '{}'",
                    String::from_utf8_lossy(&args[i])
                ))
            }
        }
    }
    if !conn.authenticated {
        return Reply::Error(
            "NOAUTH HELLO must be called with the client already authenticated, otherwise the \
             HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and \
             select the RESP protocol version at the same time"
                .into(),
        );
    }
    if name.is_some() {
        conn.name = name;
    }
    conn.protocol = protocol;
    let leads = matches!(shared.backend.status().await, Ok(s) if s.role == Role::Leader);
    let pairs: Vec<(&str, Reply)> = vec![
        ("server", Reply::text("redis")),
        ("version", Reply::text(REDIS_VERSION)),
        (
            "proto",
            Reply::Integer(if protocol == Protocol::Resp3 { 3 } else { 2 }),
        ),
        ("id", Reply::Integer(client_number(conn))),
        ("mode", Reply::text("standalone")),
        (
            "role",
            Reply::text(if leads { "master" } else { "replica" }),
        ),
        ("modules", Reply::Array(Vec::new())),
    ];
    Reply::Map(
        pairs
            .into_iter()
            .flat_map(|(key, value)| [Reply::text(key), value])
            .collect(),
    )
}

/// The connection's number as `CLIENT ID` and `HELLO` show it: its client
/// id without the marker bit.
fn client_number(conn: &Conn) -> i64 {
    (conn.client_id & (u64::MAX >> 1)) as i64
}

/// `SELECT index`: only database 0 exists.
pub(super) fn select(args: &[Vec<u8>]) -> Reply {
    match parse_i64(&args[1]) {
        None => Reply::err("value is not an integer or out of range"),
        Some(0) => Reply::ok(),
        Some(_) => Reply::err("DB index is out of range"),
    }
}

/// `INFO [section ...]`: sections `server`, `clients`, `replication` and
/// `synod` (role, leader, ballot, commit and applied index, revision).
pub(super) async fn info(shared: &RedisShared, args: &[Vec<u8>]) -> Reply {
    let wanted: Vec<String> = args[1..]
        .iter()
        .map(|a| String::from_utf8_lossy(a).to_ascii_lowercase())
        .collect();
    let all = wanted.is_empty()
        || wanted
            .iter()
            .any(|w| w == "all" || w == "everything" || w == "default");
    let show = |section: &str| all || wanted.iter().any(|w| w == section);
    let status = match shared.backend.status().await {
        Ok(status) => status,
        Err(error) => return Reply::err(error),
    };
    let mut text = String::new();
    let uptime = shared.started.elapsed().as_secs();
    if show("server") {
        let _ = write!(
            text,
            "# Server\r\nredis_version:{REDIS_VERSION}\r\nsynod_version:{}\r\n\
             redis_mode:standalone\r\nos:{} {}\r\nprocess_id:{}\r\ntcp_port:{}\r\n\
             uptime_in_seconds:{uptime}\r\nuptime_in_days:{}\r\n\r\n",
            env!("CARGO_PKG_VERSION"),
            std::env::consts::OS,
            std::env::consts::ARCH,
            std::process::id(),
            shared.port,
            uptime / 86_400,
        );
    }
    if show("clients") {
        let _ = write!(
            text,
            "# Clients\r\nconnected_clients:{}\r\nblocked_clients:{}\r\n\r\n",
            shared.connections.load(Ordering::Relaxed),
            shared.blocked.load(Ordering::Relaxed)
        );
    }
    let leads = status.role == Role::Leader;
    if show("replication") {
        let _ = write!(
            text,
            "# Replication\r\nrole:{}\r\n\r\n",
            if leads { "master" } else { "slave" }
        );
    }
    if show("synod") {
        let role = status.role.name();
        let _ = write!(
            text,
            "# Synod\r\nnode_id:{}\r\npaxos_role:{role}\r\nleader_id:{}\r\nballot:{}\r\n\
             ballot_round:{}\r\ncommit_index:{}\r\napplied_index:{}\r\nrevision:{}\r\n\
             compacted_through:{}\r\n\r\n",
            status.id.0,
            status.leader.map_or(0, |l| l.0),
            status.ballot.0,
            status.ballot.0 >> 32,
            status.commit_index.0,
            status.applied_index.0,
            status.revision,
            status.compacted_through.0,
        );
    }
    // Redis ends the text without the last blank line.
    while text.ends_with("\r\n\r\n") {
        text.truncate(text.len() - 2);
    }
    Reply::text(text)
}

/// The settings `CONFIG GET` reports (what `redis-benchmark` asks for).
const SETTINGS: &[(&str, &str)] = &[
    ("databases", "1"),
    ("save", ""),
    ("appendonly", "yes"),
    ("appendfsync", "always"),
    ("maxmemory", "0"),
];

/// [`SETTINGS`] and the connection limits of the node's configuration
/// (`[redis] timeout_s` and `max_clients`), which `CONFIG SET` cannot change.
fn fixed_settings(shared: &RedisShared) -> Vec<(String, String)> {
    let mut fixed: Vec<(String, String)> = SETTINGS
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    let timeout = shared.idle_timeout.map_or(0, |t| t.as_secs());
    fixed.push(("timeout".into(), timeout.to_string()));
    fixed.push(("maxclients".into(), shared.max_clients.to_string()));
    fixed
}

/// Whether `CONFIG SET` accepts `name`: Redis's encoding thresholds and
/// lazy-free switches, which Redis's own tests set. Synod stores every type
/// one way and frees in the applying command, so they change nothing; they
/// are remembered so `CONFIG GET` answers what was set.
fn accepted_setting(name: &str) -> bool {
    let encoding = ["hash-", "set-", "zset-", "list-"]
        .iter()
        .any(|p| name.starts_with(p))
        && (name.contains("-max-") || name == "list-compress-depth");
    encoding || name.starts_with("lazyfree-")
}

/// `CONFIG GET pattern...`, `CONFIG SET name value...` (the settings
/// [`accepted_setting`] names, and a fixed setting of [`SETTINGS`] to the
/// value it has, which changes nothing: Redis's test suite sets `save ""`),
/// `CONFIG RESETSTAT`.
pub(super) fn config(shared: &RedisShared, args: &[Vec<u8>]) -> Reply {
    let sub = args[1].to_ascii_uppercase();
    if sub.as_slice() == b"RESETSTAT" {
        return Reply::ok();
    }
    if sub.as_slice() == b"SET" {
        if args.len() < 4 || !args.len().is_multiple_of(2) {
            return Reply::err("wrong number of arguments for 'config|set' command");
        }
        let mut pairs = Vec::new();
        let fixed_settings = fixed_settings(shared);
        for pair in args[2..].chunks(2) {
            let name = String::from_utf8_lossy(&pair[0]).to_ascii_lowercase();
            let fixed = fixed_settings.iter().find(|(fixed, _)| *fixed == name);
            if fixed.is_some_and(|(_, value)| value.as_bytes() == pair[1].as_slice()) {
                continue;
            }
            if fixed.is_some() && (name == "timeout" || name == "maxclients") {
                return Reply::err(format!(
                    "CONFIG SET failed (possibly related to argument '{name}') - set it in the \
                     node's configuration ([redis] timeout_s / max_clients)"
                ));
            }
            if !accepted_setting(&name) {
                return Reply::err(format!(
                    "CONFIG SET failed (possibly related to argument '{name}') - Synod does not support changing it"
                ));
            }
            pairs.push((name, String::from_utf8_lossy(&pair[1]).into_owned()));
        }
        shared.settings.lock().expect("settings lock").extend(pairs);
        return Reply::ok();
    }
    if sub.as_slice() != b"GET" {
        return Reply::err(format!(
            "CONFIG {} is not supported by Synod",
            String::from_utf8_lossy(&sub)
        ));
    }
    if args.len() < 3 {
        return Reply::err("wrong number of arguments for 'config|get' command");
    }
    let mut out = Vec::new();
    let set = shared.settings.lock().expect("settings lock").clone();
    for (name, value) in fixed_settings(shared).into_iter().chain(set) {
        if args[2..]
            .iter()
            .any(|p| glob_match(&p.to_ascii_lowercase(), name.as_bytes()))
        {
            out.push(Reply::text(name));
            out.push(Reply::text(value));
        }
    }
    Reply::Map(out)
}

/// `CLIENT ID | GETNAME | SETNAME name | SETINFO attr value`.
pub(super) fn client(conn: &mut Conn, args: &[Vec<u8>]) -> Reply {
    let sub = args[1].to_ascii_uppercase();
    match (sub.as_slice(), args.len()) {
        (b"ID", 2) => Reply::Integer(client_number(conn)),
        (b"GETNAME", 2) => conn.name.clone().map_or(Reply::Nil, Reply::Bulk),
        (b"SETNAME", 3) => {
            let name = &args[2];
            if name.iter().any(|&b| !(b'!'..=b'~').contains(&b)) {
                return Reply::err(
                    "Client names cannot contain spaces, newlines or special characters.",
                );
            }
            conn.name = (!name.is_empty()).then(|| name.clone());
            Reply::ok()
        }
        (b"SETINFO", 4) => Reply::ok(),
        (b"ID" | b"GETNAME" | b"SETNAME" | b"SETINFO", _) => Reply::err(format!(
            "wrong number of arguments for 'client|{}' command",
            String::from_utf8_lossy(&sub).to_ascii_lowercase()
        )),
        _ => Reply::err(format!(
            "unknown subcommand '{}'. Try CLIENT HELP.",
            String::from_utf8_lossy(&args[1])
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_equal_only_when_equal() {
        assert!(same_secret(b"hunter2", b"hunter2"));
        assert!(!same_secret(b"hunter2", b"hunter3"));
        assert!(!same_secret(b"hunter2", b"hunter22"));
        assert!(!same_secret(b"", b"x"));
        assert!(same_secret(b"", b""));
    }

    #[test]
    fn select_only_knows_database_zero() {
        assert_eq!(select(&[b"SELECT".to_vec(), b"0".to_vec()]), Reply::ok());
        assert_eq!(
            select(&[b"SELECT".to_vec(), b"1".to_vec()]),
            Reply::err("DB index is out of range")
        );
        assert_eq!(
            select(&[b"SELECT".to_vec(), b"x".to_vec()]),
            Reply::err("value is not an integer or out of range")
        );
    }
}
