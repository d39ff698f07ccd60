//! Running commands, whichever way they come (the command line, a script
//! on standard input, the interactive shell): the connection to one node,
//! the shell's own commands (`HELP`, `EXIT`, `CONNECT`) and printing
//! replies.

use std::io::{self, Write};

use thiserror::Error;

use crate::commands;
use crate::format;
use crate::resp::{describe, describe_io, Connection, Reply, RespError};

/// Why the shell has no usable connection.
#[derive(Debug, Error)]
pub enum ConnectError {
    /// Nothing answered at the address.
    #[error("Could not connect to Synod at {addr}: {}", describe_io(.source))]
    Unreachable {
        /// `host:port`.
        addr: String,
        /// What connecting said.
        source: io::Error,
    },
    /// The node refused the password (the connection stays open,
    /// unauthenticated).
    #[error("AUTH failed: {0}")]
    Auth(String),
    /// The connection broke while authenticating.
    #[error("Could not authenticate to Synod at {addr}: {}", describe(.source))]
    Lost {
        /// `host:port`.
        addr: String,
        /// What broke.
        source: RespError,
    },
}

/// Credentials sent with `AUTH` on every (re)connection.
#[derive(Clone, Debug)]
struct Credentials {
    user: Option<Vec<u8>>,
    password: Vec<u8>,
}

/// A node to talk to and, when connected, the connection to it.
pub struct Session {
    host: String,
    port: u16,
    credentials: Option<Credentials>,
    connection: Option<Connection>,
}

impl Session {
    /// A session with `host:port`, not connected yet.
    pub fn new(host: String, port: u16, password: Option<String>) -> Session {
        Session {
            host,
            port,
            credentials: password.map(|p| Credentials {
                user: None,
                password: p.into_bytes(),
            }),
            connection: None,
        }
    }

    /// `host:port`.
    pub fn addr(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// Whether a connection is open.
    pub fn is_connected(&self) -> bool {
        self.connection.is_some()
    }

    /// Drops a connection the server closed while it was idle, so that the
    /// next command opens a new one instead of failing on the old one.
    pub fn forget_if_closed(&mut self) {
        if self
            .connection
            .as_ref()
            .is_some_and(Connection::closed_by_server)
        {
            self.connection = None;
        }
    }

    /// Opens a connection (closing any open one) and authenticates if a
    /// password is known. Blocks for at most the connect timeout per
    /// address, then for the `AUTH` reply.
    pub fn connect(&mut self) -> Result<(), ConnectError> {
        self.connection = None;
        let mut connection = Connection::connect(&self.host, self.port).map_err(|source| {
            ConnectError::Unreachable {
                addr: self.addr(),
                source,
            }
        })?;
        let auth = self.credentials.clone().map(|credentials| {
            let mut args = vec![b"AUTH".to_vec()];
            args.extend(credentials.user);
            args.push(credentials.password);
            connection.call(&args)
        });
        match auth {
            None | Some(Ok(Reply::Simple(_))) => {
                self.connection = Some(connection);
                Ok(())
            }
            Some(Ok(Reply::Error(message))) => {
                self.connection = Some(connection);
                Err(ConnectError::Auth(message))
            }
            Some(Ok(other)) => {
                self.connection = Some(connection);
                Err(ConnectError::Auth(format!("unexpected reply {other:?}")))
            }
            Some(Err(source)) => Err(ConnectError::Lost {
                addr: self.addr(),
                source,
            }),
        }
    }

    /// Sends `args` and returns the reply. A broken connection is
    /// dropped; [`Session::connect`] opens a new one.
    pub fn call(&mut self, args: &[Vec<u8>]) -> Result<Reply, CallError> {
        let Some(connection) = self.connection.as_mut() else {
            return Err(CallError::NotConnected);
        };
        match connection.call(args) {
            Ok(reply) => {
                self.remember_credentials(args, &reply);
                Ok(reply)
            }
            Err(source) => {
                self.connection = None;
                Err(CallError::Lost {
                    addr: self.addr(),
                    source,
                })
            }
        }
    }

    /// After a successful `AUTH` typed in the shell, reconnections use the
    /// same credentials.
    fn remember_credentials(&mut self, args: &[Vec<u8>], reply: &Reply) {
        if !args[0].eq_ignore_ascii_case(b"AUTH") || !matches!(reply, Reply::Simple(_)) {
            return;
        }
        self.credentials = match args {
            [_, password] => Some(Credentials {
                user: None,
                password: password.clone(),
            }),
            [_, user, password] => Some(Credentials {
                user: Some(user.clone()),
                password: password.clone(),
            }),
            _ => return,
        };
    }

    /// The same credentials at another address, not connected.
    fn moved_to(&self, host: String, port: u16) -> Session {
        Session {
            host,
            port,
            credentials: self.credentials.clone(),
            connection: None,
        }
    }
}

/// Why a command got no reply.
#[derive(Debug, Error)]
pub enum CallError {
    /// There is no connection.
    #[error("not connected")]
    NotConnected,
    /// The connection broke after the command was sent: it may or may not
    /// have run.
    #[error(
        "Connection to Synod at {addr} lost: {} (the command may or may not have run)",
        describe(.source)
    )]
    Lost {
        /// `host:port`.
        addr: String,
        /// What broke.
        source: RespError,
    },
}

/// How replies are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// For a person: [`format::tty`].
    Tty,
    /// For a script: [`format::raw`]; error replies go to standard error.
    Raw,
}

/// Whether to go on reading commands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Read the next command.
    Continue,
    /// Leave (`QUIT`, `EXIT`).
    Leave,
}

/// Runs commands on a session and prints what they answer.
pub struct Shell {
    /// The node talked to.
    pub session: Session,
    /// How replies are printed.
    pub output: Output,
    /// Whether any command failed (an error reply, no connection, a line
    /// that could not be split).
    pub failed: bool,
}

impl Shell {
    /// A shell on `session` printing as `output`.
    pub fn new(session: Session, output: Output) -> Shell {
        Shell {
            session,
            output,
            failed: false,
        }
    }

    /// What the interactive prompt shows: `host:port> `, or
    /// `not connected> `.
    pub fn prompt(&self) -> String {
        if self.session.is_connected() {
            format!("{}> ", self.session.addr())
        } else {
            "not connected> ".to_string()
        }
    }

    /// Reports a problem on standard error and remembers the failure.
    pub fn complain(&mut self, message: &dyn std::fmt::Display) {
        self.failed = true;
        write_stderr(format!("{message}\n").as_bytes());
    }

    /// Connects now and reports a failure; true if connected and
    /// authenticated. After a refused password the connection stays open
    /// (unauthenticated, so that `AUTH` can be typed again); otherwise the
    /// next command tries again.
    pub fn connect(&mut self) -> bool {
        match self.session.connect() {
            Ok(()) => true,
            Err(error) => {
                self.complain(&error);
                false
            }
        }
    }

    /// Runs one command (`args` not empty).
    pub fn execute(&mut self, args: &[Vec<u8>]) -> Next {
        assert!(!args.is_empty(), "a command has a name");
        let name = String::from_utf8_lossy(&args[0]).to_ascii_uppercase();
        match name.as_str() {
            "HELP" | "?" => {
                let topic = args.get(1).map(|t| String::from_utf8_lossy(t).into_owned());
                write_stdout(commands::help(topic.as_deref()).as_bytes());
                Next::Continue
            }
            "EXIT" => Next::Leave,
            "QUIT" if !self.session.is_connected() => Next::Leave,
            "QUIT" => {
                self.send(args);
                Next::Leave
            }
            "CONNECT" => {
                self.reconnect(args);
                Next::Continue
            }
            _ => {
                self.send(args);
                Next::Continue
            }
        }
    }

    /// `CONNECT host [port]`.
    fn reconnect(&mut self, args: &[Vec<u8>]) {
        let (host, port) = match args {
            [_, host] => (host, Ok(self.session.port)),
            [_, host, port] => (
                host,
                String::from_utf8_lossy(port)
                    .parse::<u16>()
                    .map_err(|_| "the port must be a number from 0 to 65535"),
            ),
            _ => (&args[0], Err("usage: CONNECT host [port]")),
        };
        match port {
            Ok(port) => {
                let host = String::from_utf8_lossy(host).into_owned();
                self.session = self.session.moved_to(host, port);
                self.connect();
            }
            Err(message) => self.complain(&message),
        }
    }

    fn send(&mut self, args: &[Vec<u8>]) {
        self.session.forget_if_closed();
        if !self.session.is_connected() {
            self.connect();
            if !self.session.is_connected() {
                return;
            }
        }
        match self.session.call(args) {
            Ok(reply) => self.print(&reply, &args[0]),
            Err(error) => self.complain(&error),
        }
    }

    fn print(&mut self, reply: &Reply, name: &[u8]) {
        match (reply, self.output) {
            (Reply::Error(_), Output::Tty) => {
                self.failed = true;
                write_stdout(format::tty(reply).as_bytes());
            }
            (Reply::Error(_), Output::Raw) => {
                self.failed = true;
                write_stderr(format::tty(reply).as_bytes());
            }
            // INFO's text reads best as it is, as in redis-cli.
            (Reply::Bulk(text), Output::Tty) if name.eq_ignore_ascii_case(b"INFO") => {
                write_stdout(&[text.as_slice(), b"\n"].concat());
            }
            (_, Output::Tty) => write_stdout(format::tty(reply).as_bytes()),
            (_, Output::Raw) => write_stdout(&format::raw(reply)),
        }
    }
}

/// Writes to standard output and flushes. A closed output (`synod-cli
/// KEYS '*' | head`) is ignored: nobody is left to tell, and `print!`
/// would panic.
pub fn write_stdout(bytes: &[u8]) {
    let mut stdout = io::stdout().lock();
    let _ = stdout.write_all(bytes).and_then(|()| stdout.flush());
}

/// Writes to standard error, ignoring a closed one.
pub fn write_stderr(bytes: &[u8]) {
    let _ = io::stderr().lock().write_all(bytes);
}
