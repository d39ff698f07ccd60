//! The interactive shell: a rustyline editor with the prompt
//! `host:port> `, history in `~/.synod_cli_history`, TAB completion of
//! command names (and of `HELP`'s topics) and, as `redis-cli` does, the
//! rest of a command's syntax hinted after the cursor.

use std::borrow::Cow;
use std::path::PathBuf;

use rustyline::completion::{Completer, Pair};
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::{Hint, Hinter};
use rustyline::history::DefaultHistory;
use rustyline::validate::Validator;
use rustyline::{CompletionType, Config, Context, Editor, Helper};

use crate::commands::{self, Group};
use crate::shell::{write_stderr, Next, Shell};
use crate::tokenize::split_line;

/// Lines kept in the history file.
pub const HISTORY_LINES: usize = 1000;

/// Where history is kept: `$SYNOD_CLI_HISTFILE` if set (empty: nowhere),
/// else `$HOME/.synod_cli_history`.
pub fn history_path() -> Option<PathBuf> {
    match std::env::var_os("SYNOD_CLI_HISTFILE") {
        Some(path) if path.is_empty() => None,
        Some(path) => Some(PathBuf::from(path)),
        None => std::env::var_os("HOME")
            .filter(|home| !home.is_empty())
            .map(|home| PathBuf::from(home).join(".synod_cli_history")),
    }
}

/// Whether a line may be kept in the history file: not if it carries a
/// password (`AUTH`, `HELLO ... AUTH ...`).
pub fn keep_in_history(args: &[Vec<u8>]) -> bool {
    let is = |arg: &Vec<u8>, word: &[u8]| arg.eq_ignore_ascii_case(word);
    !(is(&args[0], b"AUTH") || (is(&args[0], b"HELLO") && args.iter().any(|a| is(a, b"AUTH"))))
}

/// `candidate` in the case the user types in: lower case if `typed` is.
fn same_case(candidate: &str, typed: &str) -> String {
    let lower = typed.chars().any(|c| c.is_ascii_lowercase())
        && !typed.chars().any(|c| c.is_ascii_uppercase());
    if lower {
        candidate.to_ascii_lowercase()
    } else {
        candidate.to_string()
    }
}

/// The completions of the word ending at the cursor: command names as the
/// first word, command names and `@group`s after `HELP`.
pub fn completions(line: &str, pos: usize) -> (usize, Vec<Pair>) {
    let before = &line[..pos];
    let start = before
        .rfind(|c: char| c.is_ascii_whitespace())
        .map_or(0, |at| at + 1);
    let word = &before[start..];
    let previous: Vec<&str> = before[..start].split_ascii_whitespace().collect();
    let pair = |name: &str, space: bool| Pair {
        display: same_case(name, word),
        replacement: same_case(name, word) + if space { " " } else { "" },
    };
    let candidates = match previous.as_slice() {
        [] => commands::starting_with(word)
            .map(|c| pair(c.name, c.needs_args()))
            .collect(),
        [help] if help.eq_ignore_ascii_case("HELP") || *help == "?" => {
            let groups = Group::ALL
                .iter()
                .map(|g| format!("@{}", g.name()))
                .filter(|g| g.len() >= word.len() && g[..word.len()].eq_ignore_ascii_case(word))
                .map(|g| pair(&g, false));
            commands::starting_with(word)
                .map(|c| pair(c.name, false))
                .chain(groups)
                .collect()
        }
        _ => Vec::new(),
    };
    (start, candidates)
}

/// The syntax's words, a bracketed part counting as one.
fn syntax_words(syntax: &str) -> Vec<&str> {
    let mut words = Vec::new();
    let (mut depth, mut start) = (0usize, None);
    for (at, c) in syntax.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth = depth.saturating_sub(1),
            ' ' if depth == 0 => {
                if let Some(from) = start.take() {
                    words.push(&syntax[from..at]);
                }
                continue;
            }
            _ => {}
        }
        start.get_or_insert(at);
    }
    if let Some(from) = start {
        words.push(&syntax[from..]);
    }
    words
}

/// The rest of the command's syntax after what is typed, when the cursor
/// is at the end of a complete word: `SET a ` hints `value [NX | XX] ...`.
pub fn syntax_hint(line: &str, pos: usize) -> Option<String> {
    if pos < line.len() {
        return None;
    }
    let args = split_line(line.as_bytes()).ok()?;
    let name = String::from_utf8_lossy(args.first()?).into_owned();
    let command = commands::lookup(&name)?;
    let words = syntax_words(command.args);
    let ends_with_space = line.ends_with(|c: char| c.is_ascii_whitespace());
    if !ends_with_space && args.len() > 1 {
        return None;
    }
    let typed = args.len() - 1;
    let rest = match words.get(typed..) {
        Some(rest) if !rest.is_empty() => rest.join(" "),
        // Past the end of a repeating syntax, the repeated part is still
        // welcome.
        _ => words
            .last()
            .filter(|w| w.contains("..."))
            .map(|w| w.to_string())?,
    };
    Some(if ends_with_space {
        rest
    } else {
        format!(" {rest}")
    })
}

/// A hint that is only shown: the right arrow does not type it.
pub struct SyntaxHint(String);

impl Hint for SyntaxHint {
    fn display(&self) -> &str {
        &self.0
    }

    fn completion(&self) -> Option<&str> {
        None
    }
}

/// Completion, hints and their colour for the editor.
struct CliHelper;

impl Completer for CliHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        Ok(completions(line, pos))
    }
}

impl Hinter for CliHelper {
    type Hint = SyntaxHint;

    fn hint(&self, line: &str, pos: usize, _ctx: &Context<'_>) -> Option<SyntaxHint> {
        syntax_hint(line, pos).map(SyntaxHint)
    }
}

impl Highlighter for CliHelper {
    fn highlight_hint<'h>(&self, hint: &'h str) -> Cow<'h, str> {
        Cow::Owned(format!("\x1b[90m{hint}\x1b[0m"))
    }
}

impl Validator for CliHelper {}

impl Helper for CliHelper {}

/// Reads commands from the terminal until `QUIT`, `EXIT`, ctrl-d or
/// ctrl-c. A failed command is reported and the shell goes on.
pub fn run(shell: &mut Shell) -> Result<(), ReadlineError> {
    let config = Config::builder()
        .max_history_size(HISTORY_LINES)?
        .history_ignore_dups(true)?
        .history_ignore_space(true)
        .auto_add_history(false)
        .completion_type(CompletionType::List)
        .build();
    let mut editor: Editor<CliHelper, DefaultHistory> = Editor::with_config(config)?;
    editor.set_helper(Some(CliHelper));
    let history = history_path();
    if let Some(path) = &history {
        // A first run has no history yet.
        let _ = editor.load_history(path);
    }
    let mut history_warned = false;
    loop {
        let line = match editor.readline(&shell.prompt()) {
            Ok(line) => line,
            Err(ReadlineError::Eof | ReadlineError::Interrupted) => return Ok(()),
            Err(error) => return Err(error),
        };
        let args = match split_line(line.as_bytes()) {
            Ok(args) => args,
            Err(error) => {
                editor.add_history_entry(line.as_str())?;
                shell.complain(&format!("Invalid argument(s): {error}"));
                continue;
            }
        };
        if args.is_empty() {
            continue;
        }
        if keep_in_history(&args) && editor.add_history_entry(line.as_str())? {
            if let Some(path) = &history {
                if let Err(error) = editor.save_history(path) {
                    if !history_warned {
                        history_warned = true;
                        let message = format!("History not saved in {}: {error}\n", path.display());
                        write_stderr(message.as_bytes());
                    }
                }
            }
        }
        if args[0].eq_ignore_ascii_case(b"CLEAR") {
            editor.clear_screen()?;
            continue;
        }
        if shell.execute(&args) == Next::Leave {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replacements(line: &str) -> Vec<String> {
        completions(line, line.len())
            .1
            .into_iter()
            .map(|p| p.replacement)
            .collect()
    }

    #[test]
    fn command_names_complete_in_the_case_typed() {
        assert_eq!(replacements("DBS"), ["DBSIZE"]);
        assert_eq!(replacements("decrb"), ["decrby "]);
        assert_eq!(
            replacements("SYNOD.LOCK"),
            ["SYNOD.LOCK ", "SYNOD.LOCKINFO "]
        );
        assert_eq!(completions("  ge", 4).0, 2);
        assert!(replacements("GET a").is_empty());
    }

    #[test]
    fn help_topics_complete_with_commands_and_groups() {
        assert_eq!(replacements("HELP SYNOD.LE"), ["SYNOD.LEADER"]);
        assert_eq!(replacements("help @sy"), ["@synod"]);
    }

    #[test]
    fn hints_show_the_arguments_still_to_type() {
        assert_eq!(syntax_hint("GET", 3).as_deref(), Some(" key"));
        assert_eq!(syntax_hint("get ", 4).as_deref(), Some("key"));
        assert_eq!(syntax_hint("GET a", 5), None);
        assert_eq!(syntax_hint("GET a ", 6), None);
        assert_eq!(
            syntax_hint("SET a 1 ", 8).as_deref(),
            Some("[NX | XX] [GET] [EX seconds | PX milliseconds | KEEPTTL]")
        );
        assert_eq!(syntax_hint("DEL a b ", 8).as_deref(), Some("[key ...]"));
        assert_eq!(syntax_hint("DBSIZE", 6), None);
        assert_eq!(syntax_hint("NOPE ", 5), None);
        assert_eq!(syntax_hint("GET", 1), None);
    }

    #[test]
    fn passwords_stay_out_of_the_history() {
        let args = |line: &str| split_line(line.as_bytes()).unwrap();
        assert!(!keep_in_history(&args("auth secret")));
        assert!(!keep_in_history(&args("HELLO 2 AUTH default secret")));
        assert!(keep_in_history(&args("HELLO 2")));
        assert!(keep_in_history(&args("SET a 1")));
    }
}
