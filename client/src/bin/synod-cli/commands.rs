//! The commands `synod-cli` knows: every command of Synod's Redis-protocol
//! endpoint plus the shell's own, with the syntax and summary `HELP` shows,
//! the arity (Redis's convention) and the group. Completion and hints are
//! built from this table; the server stays the judge of what is valid.
//!
//! # One table with the server's
//! Every name and arity comes from the tables the node runs commands by, in
//! `synod-wire`: [`synod_wire::redis::ENDPOINT_COMMANDS`] for the commands
//! the Redis endpoint runs itself (`AUTH`, `SET`, `SYNOD.*`, the blocking
//! pops, ...) and [`synod_wire::redis::COMMANDS`] for the state machine's
//! (hashes, sets, lists, sorted sets and the rest: name, arity, group and
//! key positions, with a summary pointing to Redis's documentation).
//! [`DOCUMENTED`] holds only the help written here: syntax, summary and
//! example for the endpoint's commands, for state-machine commands worth
//! more than the derived summary, and for the shell's own, whose arities
//! are [`SHELL_ARITIES`]. The tests below fail when help is missing for a
//! command of the node, or written for one nobody runs.

use std::sync::OnceLock;

use synod_wire::redis::{self as wire, CommandSpec};

/// What a command is about; `HELP @group` lists one group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Group {
    /// The connection: authentication, protocol, naming.
    Connection,
    /// The node: information and introspection.
    Server,
    /// String values.
    String,
    /// Keys as a whole: existence, deletion, listing, expiry.
    Keyspace,
    /// Hash values.
    Hash,
    /// List values.
    List,
    /// Set values.
    Set,
    /// Sorted-set values.
    SortedSet,
    /// Lists and sorted sets: the blocking pops.
    Blocking,
    /// Transactions: `MULTI` blocks and optimistic locking.
    Transaction,
    /// Synod's own commands: compare-and-swap, locks, elections, status.
    Synod,
    /// Handled by `synod-cli` itself, never sent.
    Shell,
}

impl Group {
    /// Every group, in the order `HELP` lists them.
    pub const ALL: [Group; 12] = [
        Group::Connection,
        Group::Server,
        Group::String,
        Group::Keyspace,
        Group::Hash,
        Group::List,
        Group::Set,
        Group::SortedSet,
        Group::Blocking,
        Group::Transaction,
        Group::Synod,
        Group::Shell,
    ];

    /// The name used after `@` in `HELP @group`.
    pub fn name(self) -> &'static str {
        match self {
            Group::Connection => "connection",
            Group::Server => "server",
            Group::String => "string",
            Group::Keyspace => "keyspace",
            Group::Hash => "hash",
            Group::List => "list",
            Group::Set => "set",
            Group::SortedSet => "sorted-set",
            Group::Blocking => "blocking",
            Group::Transaction => "transactions",
            Group::Synod => "synod",
            Group::Shell => "shell",
        }
    }

    /// The group of a state-machine command.
    fn of(group: wire::Group) -> Group {
        match group {
            wire::Group::Connection => Group::Connection,
            wire::Group::Keyspace => Group::Keyspace,
            wire::Group::String => Group::String,
            wire::Group::Hash => Group::Hash,
            wire::Group::List => Group::List,
            wire::Group::Set => Group::Set,
            wire::Group::SortedSet => Group::SortedSet,
        }
    }
}

/// One command as `HELP` describes it.
#[derive(Debug, Clone, Copy)]
pub struct Command {
    /// Upper-case name.
    pub name: &'static str,
    /// Redis arity: `n` exactly n words (the name included), `-n` at least n.
    pub arity: i32,
    /// The arguments' syntax, after the name.
    pub args: &'static str,
    /// One line on what it does and answers.
    pub summary: &'static str,
    /// An example line, or "".
    pub example: &'static str,
    /// Its group.
    pub group: Group,
}

impl Command {
    /// Whether the command needs at least one argument (from its arity):
    /// completing its name then also types the space after it.
    pub fn needs_args(&self) -> bool {
        self.arity.abs() > 1
    }

    /// `NAME args`.
    pub fn syntax(&self) -> String {
        if self.args.is_empty() {
            self.name.to_string()
        } else {
            format!("{} {}", self.name, self.args)
        }
    }

    /// A state-machine command that [`DOCUMENTED`] has no help for, as its
    /// spec tells it: `key` and `arg` words as many as its arity asks, and
    /// a summary pointing to Redis's documentation. Called once per command
    /// for the process (see [`commands`]): the strings it leaks are the
    /// table's, which lives as long.
    fn from_spec(spec: &CommandSpec) -> Command {
        let leak = |text: String| -> &'static str { Box::leak(text.into_boxed_str()) };
        let is_key = |at: i64| {
            spec.first_key > 0
                && at >= spec.first_key
                && (spec.last_key < 0 || at <= spec.last_key)
                && (at - spec.first_key) % spec.step.max(1) == 0
        };
        let required = spec.arity.unsigned_abs().saturating_sub(1) as i64;
        let mut words: Vec<&str> = (1..=required)
            .map(|at| if is_key(at) { "key" } else { "arg" })
            .collect();
        if spec.arity < 0 {
            let all_keys = spec.last_key == -1 && spec.step == 1;
            words.push(if all_keys { "[key ...]" } else { "[arg ...]" });
        }
        let how = if spec.read_only {
            "a read, served by the leader under its lease"
        } else {
            "a write, applied through the log"
        };
        Command {
            name: leak(spec.name.to_ascii_uppercase()),
            arity: spec.arity as i32,
            args: leak(words.join(" ")),
            summary: leak(format!(
                "As in Redis (https://redis.io/commands/{}/); {how}.",
                spec.name
            )),
            example: "",
            group: Group::of(spec.group),
        }
    }
}

/// Help written here for one command: all of [`Command`] but the arity,
/// which comes from the node's tables (or, for the shell's own commands,
/// from [`SHELL_ARITIES`]).
#[derive(Debug, Clone, Copy)]
pub struct Written {
    /// Upper-case name.
    pub name: &'static str,
    /// The arguments' syntax, after the name.
    pub args: &'static str,
    /// One line on what it does and answers.
    pub summary: &'static str,
    /// An example line, or "".
    pub example: &'static str,
    /// Its group.
    pub group: Group,
}

impl Written {
    /// The command, its arity from the endpoint's table, the state
    /// machine's or the shell's.
    ///
    /// # Panics
    /// If no table has it (a test runs every entry through here).
    fn command(&self) -> Command {
        let name = self.name.as_bytes();
        let arity = wire::endpoint_spec(name)
            .map(|spec| spec.arity)
            .or_else(|| wire::spec(name).map(|spec| spec.arity))
            .or_else(|| {
                SHELL_ARITIES
                    .iter()
                    .find(|(shell, _)| *shell == self.name)
                    .map(|(_, arity)| i64::from(*arity))
            })
            .unwrap_or_else(|| panic!("{} is in no command table", self.name));
        Command {
            name: self.name,
            arity: arity as i32,
            args: self.args,
            summary: self.summary,
            example: self.example,
            group: self.group,
        }
    }
}

/// The shell's own commands, handled by `synod-cli` and never sent, with
/// their arities: the only commands in neither of the node's tables.
const SHELL_ARITIES: [(&str, i32); 4] = [("HELP", -1), ("CONNECT", -2), ("CLEAR", 1), ("EXIT", 1)];

const fn cmd(
    name: &'static str,
    args: &'static str,
    summary: &'static str,
    group: Group,
) -> Written {
    Written {
        name,
        args,
        summary,
        example: "",
        group,
    }
}

const fn with_example(written: Written, example: &'static str) -> Written {
    Written { example, ..written }
}

use Group::{Connection, Keyspace, Server, Shell, Synod};

/// The commands whose help is written here (see the module's doc), grouped
/// as `HELP` lists them.
pub static DOCUMENTED: &[Written] = &[
    cmd("PING", "[message]", "Answers PONG, or the message.", Connection),
    cmd("ECHO", "message", "Answers the message.", Connection),
    cmd(
        "AUTH",
        "[username] password",
        "Authenticates the connection (the only user is `default`).",
        Connection,
    ),
    cmd(
        "HELLO",
        "[protover [AUTH username password] [SETNAME clientname]]",
        "Handshake: server facts as field/value pairs; protover 3 switches the connection to \
         RESP3.",
        Connection,
    ),
    cmd(
        "SELECT",
        "index",
        "Selects a database; only database 0 exists.",
        Connection,
    ),
    cmd(
        "CLIENT",
        "ID | GETNAME | SETNAME name | SETINFO attr value",
        "This connection's id and name.",
        Connection,
    ),
    cmd(
        "QUIT",
        "",
        "Closes the connection; the shell leaves too.",
        Connection,
    ),
    cmd(
        "INFO",
        "[section ...]",
        "Node facts: sections server, clients, replication and synod (role, leader, ballot, \
         commit and applied index, revision).",
        Server,
    ),
    cmd(
        "COMMAND",
        "[COUNT | LIST | INFO command ...]",
        "Describes the endpoint's commands: name, arity, flags, key positions.",
        Server,
    ),
    cmd(
        "CONFIG",
        "GET parameter ...",
        "Reads settings (what redis-benchmark asks for); other subcommands are refused.",
        Server,
    ),
    cmd(
        "TIME",
        "",
        "The node's wall clock: [Unix seconds, microseconds].",
        Server,
    ),
    cmd(
        "DBSIZE",
        "",
        "The number of keys (counted page by page, not one snapshot).",
        Server,
    ),
    cmd(
        "GET",
        "key",
        "The value of key, or nil; a linearizable read.",
        Group::String,
    ),
    cmd(
        "SET",
        "key value [NX | XX] [GET] [EX seconds | PX milliseconds | KEEPTTL]",
        "Sets key to value; NX only if absent, XX only if present, GET answers the old value. \
             EX/PX give it a time to live (EXAT/PXAT, a Unix expiry time, work too), KEEPTTL \
             keeps its TTL; without them the key has none.",
        Group::String,
    ),
    cmd(
        "SETEX",
        "key seconds value",
        "Sets key to value with a time to live in seconds (SET key value EX seconds).",
        Group::String,
    ),
    cmd(
        "PSETEX",
        "key milliseconds value",
        "Sets key to value with a time to live in milliseconds (SET key value PX ms).",
        Group::String,
    ),
    cmd(
        "BLPOP",
        "key [key ...] timeout",
        "Pops the first element of the first non-empty list, waiting up to timeout seconds \
             (0: forever); answers [key, element] or nil.",
        Group::Blocking,
    ),
    cmd(
        "BRPOP",
        "key [key ...] timeout",
        "Like BLPOP, from the end of the list.",
        Group::Blocking,
    ),
    cmd(
        "BRPOPLPUSH",
        "source destination timeout",
        "Moves the last element of source to the head of destination, waiting for one.",
        Group::Blocking,
    ),
    cmd(
        "BLMOVE",
        "source destination LEFT | RIGHT LEFT | RIGHT timeout",
        "Moves an element from one end of source to one end of destination, waiting for one.",
        Group::Blocking,
    ),
    cmd(
        "BLMPOP",
        "timeout numkeys key [key ...] LEFT | RIGHT [COUNT count]",
        "Pops up to count elements from the first non-empty list, waiting for one.",
        Group::Blocking,
    ),
    cmd(
        "BZPOPMIN",
        "key [key ...] timeout",
        "Pops the lowest-scored member of the first non-empty sorted set, waiting for one.",
        Group::Blocking,
    ),
    cmd(
        "BZPOPMAX",
        "key [key ...] timeout",
        "Pops the highest-scored member of the first non-empty sorted set, waiting for one.",
        Group::Blocking,
    ),
    cmd(
        "BZMPOP",
        "timeout numkeys key [key ...] MIN | MAX [COUNT count]",
        "Pops up to count lowest or highest members of the first non-empty sorted set, \
             waiting for one.",
        Group::Blocking,
    ),
    cmd(
        "MULTI",
        "",
        "Starts a transaction: the commands that follow are queued (QUEUED) until EXEC.",
        Group::Transaction,
    ),
    cmd(
        "EXEC",
        "",
        "Runs the queued commands as one atomic write and answers their replies; nil if a \
             WATCHed key changed, EXECABORT if a command was refused while queuing.",
        Group::Transaction,
    ),
    cmd(
        "DISCARD",
        "",
        "Drops the queued commands and the watched keys.",
        Group::Transaction,
    ),
    cmd(
        "WATCH",
        "key [key ...]",
        "The next EXEC runs only if none of these keys changed meanwhile.",
        Group::Transaction,
    ),
    cmd(
        "UNWATCH",
        "",
        "Forgets the watched keys.",
        Group::Transaction,
    ),
    cmd(
        "GETSET",
        "key value",
        "Sets key to value and answers the old value, or nil.",
        Group::String,
    ),
    cmd(
        "SETNX",
        "key value",
        "Sets key only if it is absent: 1 if set, else 0.",
        Group::String,
    ),
    cmd(
        "MGET",
        "key [key ...]",
        "The values of the keys (nil for absent ones).",
        Group::String,
    ),
    cmd(
        "MSET",
        "key value [key value ...]",
        "Sets several keys in one transaction.",
        Group::String,
    ),
    cmd(
        "MSETNX",
        "key value [key value ...]",
        "Sets several keys only if none exists: 1 if set, else 0.",
        Group::String,
    ),
    cmd(
        "INCR",
        "key",
        "Adds 1 to the integer at key (absent = 0); answers the new value.",
        Group::String,
    ),
    cmd(
        "INCRBY",
        "key increment",
        "Adds increment to the integer at key; answers the new value.",
        Group::String,
    ),
    cmd(
        "DECR",
        "key",
        "Subtracts 1 from the integer at key; answers the new value.",
        Group::String,
    ),
    cmd(
        "DECRBY",
        "key decrement",
        "Subtracts decrement from the integer at key; answers the new value.",
        Group::String,
    ),
    cmd(
        "APPEND",
        "key value",
        "Appends value to the value at key; answers the new length.",
        Group::String,
    ),
    cmd(
        "STRLEN",
        "key",
        "The length of the value at key (0 if absent).",
        Group::String,
    ),
    cmd(
        "DEL",
        "key [key ...]",
        "Deletes the keys; answers how many existed.",
        Keyspace,
    ),
    cmd(
        "UNLINK",
        "key [key ...]",
        "Same as DEL.",
        Keyspace,
    ),
    cmd(
        "EXISTS",
        "key [key ...]",
        "How many of the keys exist (a key named twice counts twice).",
        Keyspace,
    ),
    cmd(
        "TYPE",
        "key",
        "The type of the value at key (string, hash, list, set, zset), or none if absent.",
        Keyspace,
    ),
    cmd(
        "KEYS",
        "pattern",
        "The keys matching a glob pattern (* ? [abc] [^a-z] \\x); large answers are refused: use SCAN.",
        Keyspace,
    ),
    cmd(
        "SCAN",
        "cursor [MATCH pattern] [COUNT count] [TYPE type]",
        "One page of keys from cursor (start with 0): the next cursor (0 at the end) and the keys.",
        Keyspace,
    ),
    cmd(
        "EXPIRE",
        "key seconds [NX | XX | GT | LT]",
        "Gives key a time to live in seconds (0 or less deletes it): 1 if set, 0 if the key is \
             absent or the condition fails. The leader deletes the key when it runs out.",
        Keyspace,
    ),
    cmd(
        "PEXPIRE",
        "key milliseconds [NX | XX | GT | LT]",
        "Gives key a time to live in milliseconds, as EXPIRE.",
        Keyspace,
    ),
    cmd(
        "EXPIREAT",
        "key unix-seconds [NX | XX | GT | LT]",
        "Makes key expire at a Unix time in seconds, as EXPIRE.",
        Keyspace,
    ),
    cmd(
        "PEXPIREAT",
        "key unix-milliseconds [NX | XX | GT | LT]",
        "Makes key expire at a Unix time in milliseconds, as EXPIRE.",
        Keyspace,
    ),
    cmd(
        "EXPIRETIME",
        "key",
        "The Unix time in seconds key expires at: -1 if it has no expiry, -2 if it is absent.",
        Keyspace,
    ),
    cmd(
        "PEXPIRETIME",
        "key",
        "The Unix time in milliseconds key expires at: -1 if it has no expiry, -2 if absent.",
        Keyspace,
    ),
    cmd(
        "TTL",
        "key",
        "Seconds left to live: -1 if the key has no expiry, -2 if it is absent.",
        Keyspace,
    ),
    cmd(
        "PTTL",
        "key",
        "Milliseconds left to live: -1 if the key has no expiry, -2 if it is absent.",
        Keyspace,
    ),
    cmd(
        "PERSIST",
        "key",
        "Removes the key's time to live: 1 if it had one, else 0.",
        Keyspace,
    ),
    with_example(
        cmd(
            "SYNOD.CAS",
            "key expected new",
            "Compare-and-swap: sets key to new only if it holds expected; 1 if swapped, else 0.",
            Synod,
        ),
        "SYNOD.CAS config v1 v2",
    ),
    with_example(
        cmd(
            "SYNOD.SETFENCED",
            "lock token key value",
            "SET key value only while token is the current fencing token of lock; else a FENCED error.",
            Synod,
        ),
        "SYNOD.SETFENCED jobs 7 owner worker-1",
    ),
    with_example(
        cmd(
            "SYNOD.STATUS",
            "",
            "This node's view: node_id, role, leader_id, ballot, commit_index, applied_index, \
             revision, compacted_through.",
            Synod,
        ),
        "SYNOD.STATUS",
    ),
    with_example(
        cmd(
            "SYNOD.MEMBERS",
            "",
            "The cluster's members, from the leader: id, role (leader, voter, learner), \
             peer_addr, client_addr, commit_index, heard_ms_ago.",
            Synod,
        ),
        "SYNOD.MEMBERS",
    ),
    with_example(
        cmd(
            "SYNOD.MEMBER",
            "ADD id peer_addr client_addr | PROMOTE id | REMOVE id",
            "One membership change at the leader, OK once it governs. ADD adds a learner (a node \
             started with --join); PROMOTE makes a caught-up learner a voter; REMOVE removes a \
             member for good.",
            Synod,
        ),
        "SYNOD.MEMBER PROMOTE 4",
    ),
    with_example(
        cmd(
            "SYNOD.LOCK",
            "name [ttl_ms]",
            "Tries to take lock name for this connection's session (opened with ttl_ms, default \
             10000): the fencing token, or nil if another session holds it.",
            Synod,
        ),
        "SYNOD.LOCK jobs 5000",
    ),
    with_example(
        cmd(
            "SYNOD.UNLOCK",
            "name",
            "Releases lock name: 1 if this connection held it, else 0.",
            Synod,
        ),
        "SYNOD.UNLOCK jobs",
    ),
    with_example(
        cmd(
            "SYNOD.LOCKINFO",
            "name",
            "Lock name's holder session, fencing token and number of waiters.",
            Synod,
        ),
        "SYNOD.LOCKINFO jobs",
    ),
    with_example(
        cmd(
            "SYNOD.CAMPAIGN",
            "election value [ttl_ms]",
            "Runs for leader of election with value: status elected and revision, or status \
             queued and position.",
            Synod,
        ),
        "SYNOD.CAMPAIGN scheduler node-a",
    ),
    with_example(
        cmd(
            "SYNOD.PROCLAIM",
            "election value",
            "The leader (this connection) announces a new value; answers its revision.",
            Synod,
        ),
        "SYNOD.PROCLAIM scheduler node-a:v2",
    ),
    with_example(
        cmd(
            "SYNOD.RESIGN",
            "election",
            "Leaves election: 1 if this connection led it, 0 if it was only queued or absent.",
            Synod,
        ),
        "SYNOD.RESIGN scheduler",
    ),
    with_example(
        cmd(
            "SYNOD.LEADER",
            "election",
            "The leader of election: value, session and revision, or nil.",
            Synod,
        ),
        "SYNOD.LEADER scheduler",
    ),
    with_example(
        cmd(
            "SYNOD.SESSION",
            "",
            "This connection's session id (opened by SYNOD.LOCK or SYNOD.CAMPAIGN), or nil.",
            Synod,
        ),
        "SYNOD.SESSION",
    ),
    cmd(
        "HELP",
        "[command | @group | prefix]",
        "Lists the commands, or describes one (HELP GET), a group (HELP @synod) or those \
         starting with a prefix (HELP SYNOD.).",
        Shell,
    ),
    cmd(
        "CONNECT",
        "host [port]",
        "Connects the shell to another node (same password).",
        Shell,
    ),
    cmd("CLEAR", "", "Clears the screen.", Shell),
    cmd("EXIT", "", "Leaves the shell (so do QUIT and ctrl-d).", Shell),
];

/// Every command `synod-cli` knows: [`DOCUMENTED`] with the arities of the
/// node's tables, then the state
/// machine's commands it does not document, as [`Command::from_spec`] tells
/// them. Built on first use.
pub fn commands() -> &'static [Command] {
    static COMMANDS: OnceLock<Vec<Command>> = OnceLock::new();
    COMMANDS.get_or_init(|| {
        let undocumented = wire::COMMANDS.iter().filter(|spec| {
            !DOCUMENTED
                .iter()
                .any(|command| command.name.eq_ignore_ascii_case(spec.name))
        });
        DOCUMENTED
            .iter()
            .map(Written::command)
            .chain(undocumented.map(Command::from_spec))
            .collect()
    })
}

/// The command named `name` (any case).
pub fn lookup(name: &str) -> Option<&'static Command> {
    commands()
        .iter()
        .find(|command| command.name.eq_ignore_ascii_case(name))
}

/// The commands whose names start with `prefix` (any case), in table
/// order.
pub fn starting_with(prefix: &str) -> impl Iterator<Item = &'static Command> + '_ {
    commands().iter().filter(move |command| {
        command.name.len() >= prefix.len()
            && command.name[..prefix.len()].eq_ignore_ascii_case(prefix)
    })
}

/// Width `HELP` wraps its text to.
const HELP_WIDTH: usize = 80;

/// `text` after `label`, wrapped at word boundaries to [`HELP_WIDTH`],
/// continuation lines indented under the text.
fn wrapped(label: &str, text: &str, out: &mut String) {
    let indent = " ".repeat(label.len());
    out.push_str(label);
    let mut column = label.len();
    for (i, word) in text.split_whitespace().enumerate() {
        if i > 0 && column + 1 + word.len() > HELP_WIDTH {
            out.push('\n');
            out.push_str(&indent);
            column = indent.len();
        } else if i > 0 {
            out.push(' ');
            column += 1;
        }
        out.push_str(word);
        column += word.len();
    }
}

fn describe(command: &Command, out: &mut String) {
    out.push_str("\n  ");
    out.push_str(&command.syntax());
    out.push('\n');
    wrapped("  summary: ", command.summary, out);
    out.push_str("\n  group: ");
    out.push_str(command.group.name());
    if !command.example.is_empty() {
        out.push_str("\n  example: ");
        out.push_str(command.example);
    }
    out.push_str("\n\n");
}

fn list<'a>(commands: impl Iterator<Item = &'a Command>, out: &mut String) {
    for command in commands {
        out.push_str("  ");
        out.push_str(&command.syntax());
        out.push('\n');
    }
}

/// What `HELP topic` prints: with no topic the list of every command by
/// group; `@group` one group; a command's name its syntax, summary, group
/// and example; otherwise the commands starting with the topic.
pub fn help(topic: Option<&str>) -> String {
    let mut out = String::new();
    let Some(topic) = topic else {
        out.push_str(concat!(
            "synod-cli ",
            env!("CARGO_PKG_VERSION"),
            ", a shell for Synod's Redis-protocol endpoint.\n",
            "Type a command and its arguments; quote arguments with spaces as \"a b\" or 'a b'.\n",
            "HELP <command> describes one, HELP @<group> lists a group, TAB completes names.\n",
        ));
        for group in Group::ALL {
            out.push_str("\n@");
            out.push_str(group.name());
            out.push('\n');
            list(commands().iter().filter(|c| c.group == group), &mut out);
        }
        return out;
    };
    if let Some(name) = topic.strip_prefix('@') {
        match Group::ALL
            .iter()
            .find(|g| g.name().eq_ignore_ascii_case(name))
        {
            Some(group) => list(commands().iter().filter(|c| c.group == *group), &mut out),
            None => {
                out.push_str(&format!("No group '@{name}'. Groups:"));
                for group in Group::ALL {
                    out.push_str(" @");
                    out.push_str(group.name());
                }
                out.push('\n');
            }
        }
        return out;
    }
    if let Some(command) = lookup(topic) {
        describe(command, &mut out);
        return out;
    }
    let mut matching = starting_with(topic).peekable();
    if matching.peek().is_some() {
        list(matching, &mut out);
    } else {
        out.push_str(&format!(
            "No help for '{topic}'. HELP lists every command.\n"
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_is_listed_once_in_upper_case() {
        let mut names: Vec<&str> = commands().iter().map(|c| c.name).collect();
        assert!(names.iter().all(|n| *n == n.to_uppercase()));
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), commands().len());
    }

    #[test]
    fn every_command_of_the_state_machine_has_help_with_its_arity() {
        for spec in wire::COMMANDS {
            let command = lookup(spec.name).unwrap_or_else(|| panic!("no HELP for {}", spec.name));
            assert_eq!(i64::from(command.arity), spec.arity, "{}", spec.name);
            assert_ne!(command.group, Group::Shell, "{}", spec.name);
        }
    }

    #[test]
    fn help_describes_only_commands_the_node_or_the_shell_runs() {
        for command in commands() {
            let name = command.name.as_bytes();
            let known = wire::endpoint_spec(name).is_some() || wire::spec(name).is_some();
            let shell = SHELL_ARITIES.iter().any(|(n, _)| *n == command.name);
            assert_eq!(shell, command.group == Group::Shell, "{}", command.name);
            assert!(
                known != shell,
                "{} is run by nobody (or by both)",
                command.name
            );
        }
    }

    /// Every command the endpoint dispatches itself has help here, with
    /// its arity.
    #[test]
    fn help_covers_every_command_of_the_endpoint() {
        let missing: Vec<&str> = wire::ENDPOINT_COMMANDS
            .iter()
            .map(|spec| spec.name)
            .filter(|name| lookup(name).is_none())
            .collect();
        assert!(missing.is_empty(), "no HELP for {missing:?}");
        for spec in wire::ENDPOINT_COMMANDS {
            let command = lookup(spec.name).unwrap();
            assert_ne!(command.group, Group::Shell, "{}", spec.name);
            assert_eq!(i64::from(command.arity), spec.arity, "{}", spec.name);
        }
    }

    #[test]
    fn arity_agrees_with_the_syntax_of_commands_without_arguments() {
        for command in commands() {
            assert_eq!(
                command.args.is_empty(),
                command.arity == 1 || command.name == "QUIT"
            );
        }
    }

    #[test]
    fn state_machine_commands_without_written_help_get_it_from_their_spec() {
        let hset = lookup("hset").unwrap();
        assert_eq!(hset.syntax(), "HSET key arg arg [arg ...]");
        assert_eq!(hset.group, Group::Hash);
        assert!(hset.summary.contains("redis.io/commands/hset/"), "{hset:?}");
        assert_eq!(lookup("SINTER").unwrap().args, "key [key ...]");
        assert_eq!(lookup("RANDOMKEY").unwrap().args, "");
        let text = help(Some("@sorted-set"));
        assert!(text.contains("  ZADD key arg arg [arg ...]\n"), "{text}");
    }

    #[test]
    fn arity_tells_which_commands_need_arguments() {
        assert!(lookup("GET").unwrap().needs_args());
        assert!(lookup("MSET").unwrap().needs_args());
        assert!(!lookup("PING").unwrap().needs_args());
        assert!(!lookup("DBSIZE").unwrap().needs_args());
    }

    #[test]
    fn help_describes_one_command_with_its_syntax() {
        let text = help(Some("get"));
        assert!(text.contains("  GET key\n"), "{text}");
        assert!(text.contains("group: string"), "{text}");
        let text = help(Some("synod.cas"));
        assert!(text.contains("example: SYNOD.CAS config v1 v2"), "{text}");
    }

    #[test]
    fn long_summaries_wrap_under_their_label() {
        let text = help(Some("SYNOD.STATUS"));
        assert!(text.lines().all(|l| l.len() <= HELP_WIDTH), "{text}");
        assert!(text.contains("\n           "), "{text}");
    }

    #[test]
    fn help_lists_groups_prefixes_and_everything() {
        assert!(help(None).contains("@synod\n  SYNOD.CAS key expected new\n"));
        let group = help(Some("@keyspace"));
        assert!(group.contains("  SCAN cursor") && !group.contains("GET key"));
        let prefix = help(Some("synod.lo"));
        assert_eq!(prefix.lines().count(), 2, "{prefix}");
        assert!(help(Some("nope")).starts_with("No help for 'nope'"));
        assert!(help(Some("@nope")).starts_with("No group '@nope'"));
    }
}
