//! `synod-cli`: a shell for Synod's Redis-protocol endpoint, in the style
//! of `redis-cli`.
//!
//! - `synod-cli [-h HOST] [-p PORT] [-a PASSWORD] COMMAND ARGS...` runs one
//!   command, prints its reply and exits 1 on an error reply.
//! - With no command and standard input not a terminal, it runs the
//!   commands of standard input, one a line (`#` starts a comment line),
//!   and exits 1 if any failed.
//! - Otherwise it is an interactive shell ([`repl`]).
//!
//! Replies are printed as `redis-cli` prints them: for a person when
//! standard output is a terminal (or `--no-raw`), raw for scripts
//! otherwise (or `--raw`).

mod commands;
mod format;
mod repl;
mod resp;
mod shell;
mod tokenize;

use std::io::{self, BufRead, IsTerminal};
use std::process::ExitCode;

use clap::{ArgAction, Parser};

use crate::shell::{write_stderr, Next, Output, Session, Shell};
use crate::tokenize::split_line;

/// The command line.
#[derive(Parser, Debug)]
#[command(
    name = "synod-cli",
    version,
    about = "A shell for Synod's Redis-protocol endpoint",
    disable_help_flag = true,
    after_help = "With a COMMAND, runs it and exits (1 on an error reply). Without one, runs \
                  the commands of standard input, one a line, or opens an interactive shell \
                  when standard input is a terminal. Type HELP in the shell."
)]
struct Args {
    /// The node's host.
    #[arg(short = 'h', long, default_value = "127.0.0.1")]
    host: String,
    /// The node's Redis-protocol port (node 1 of `synod dev` by default).
    #[arg(short = 'p', long, default_value_t = 7402)]
    port: u16,
    /// Password, sent with AUTH on connecting.
    #[arg(short = 'a', long)]
    password: Option<String>,
    /// Print replies raw (as for a script) even on a terminal.
    #[arg(long, conflicts_with = "no_raw")]
    raw: bool,
    /// Print replies for a person even when standard output is not a
    /// terminal.
    #[arg(long)]
    no_raw: bool,
    /// Print help.
    #[arg(long, action = ArgAction::Help)]
    help: Option<bool>,
    /// A command to run, with its arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let output = if args.raw {
        Output::Raw
    } else if args.no_raw || io::stdout().is_terminal() {
        Output::Tty
    } else {
        Output::Raw
    };
    let session = Session::new(args.host, args.port, args.password);
    let mut shell = Shell::new(session, output);
    if !args.command.is_empty() {
        let command: Vec<Vec<u8>> = args.command.into_iter().map(String::into_bytes).collect();
        return one_shot(&mut shell, &command);
    }
    if io::stdin().is_terminal() {
        shell.connect();
        return match repl::run(&mut shell) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                write_stderr(format!("synod-cli: terminal error: {error}\n").as_bytes());
                ExitCode::FAILURE
            }
        };
    }
    script(&mut shell)
}

fn exit_code(shell: &Shell) -> ExitCode {
    if shell.failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Commands answered without a node.
fn is_local(name: &[u8]) -> bool {
    [&b"HELP"[..], b"?", b"EXIT"]
        .iter()
        .any(|local| name.eq_ignore_ascii_case(local))
}

/// `synod-cli COMMAND ARGS...`.
fn one_shot(shell: &mut Shell, command: &[Vec<u8>]) -> ExitCode {
    if !is_local(&command[0]) && !shell.connect() {
        return ExitCode::FAILURE;
    }
    shell.execute(command);
    exit_code(shell)
}

/// Commands from standard input, one a line, until its end, `QUIT` or
/// `EXIT`. Blank lines and lines starting with `#` are skipped; a failed
/// command is reported and the next one runs.
fn script(shell: &mut Shell) -> ExitCode {
    if !shell.connect() {
        return ExitCode::FAILURE;
    }
    for (number, line) in io::stdin().lock().split(b'\n').enumerate() {
        let line = match line {
            Ok(line) => line,
            Err(error) => {
                shell.complain(&format!("synod-cli: reading standard input: {error}"));
                break;
            }
        };
        if line.trim_ascii_start().starts_with(b"#") {
            continue;
        }
        match split_line(&line) {
            Ok(args) if args.is_empty() => {}
            Ok(args) => {
                if shell.execute(&args) == Next::Leave {
                    break;
                }
            }
            Err(error) => shell.complain(&format!(
                "line {}: Invalid argument(s): {error}",
                number + 1
            )),
        }
    }
    exit_code(shell)
}
