//! `synod-cli` as its users run it: one-shot commands and scripts on
//! standard input against a small fake RESP server, and the interactive
//! shell driven through a real pseudo-terminal (tmux), reading the screen.
//!
//! The fake answers a handful of commands the way Synod's endpoint does;
//! what the endpoint itself answers is tested in the root package.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const CLI: &str = env!("CARGO_BIN_EXE_synod-cli");
/// How long a test waits for text to appear on the screen.
const SCREEN_WAIT: Duration = Duration::from_secs(10);

/// A command as the fake received it.
type Args = Vec<Vec<u8>>;

/// A RESP server on 127.0.0.1 with an in-memory key space.
struct FakeNode {
    port: u16,
    received: Arc<Mutex<Vec<Args>>>,
    /// Connections closed by `HANGUP`.
    hangups: Arc<AtomicUsize>,
}

impl FakeNode {
    /// Starts serving on a free port, asking for `password` if set. Its
    /// threads end with the test process.
    fn start(password: Option<&'static str>) -> FakeNode {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let store = Arc::new(Mutex::new(BTreeMap::new()));
        let hangups = Arc::new(AtomicUsize::new(0));
        let (log, hung_up) = (Arc::clone(&received), Arc::clone(&hangups));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (log, store) = (Arc::clone(&log), Arc::clone(&store));
                let hung_up = Arc::clone(&hung_up);
                std::thread::spawn(move || {
                    if serve(stream, password, &log, &store) == End::HungUp {
                        hung_up.fetch_add(1, Ordering::SeqCst);
                    }
                });
            }
        });
        FakeNode {
            port,
            received,
            hangups,
        }
    }

    /// Waits until `HANGUP` has closed `count` connections in all.
    fn wait_for_hangups(&self, count: usize) {
        let deadline = Instant::now() + SCREEN_WAIT;
        while self.hangups.load(Ordering::SeqCst) < count {
            assert!(Instant::now() < deadline, "no hang-up");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn received(&self) -> Vec<Args> {
        self.received.lock().unwrap().clone()
    }
}

fn read_request(reader: &mut impl BufRead) -> Option<Args> {
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let count: usize = line.strip_prefix('*')?.trim_end().parse().ok()?;
    let mut args = Vec::with_capacity(count);
    for _ in 0..count {
        line.clear();
        reader.read_line(&mut line).ok()?;
        let len: usize = line.strip_prefix('$')?.trim_end().parse().ok()?;
        let mut arg = vec![0; len + 2];
        reader.read_exact(&mut arg).ok()?;
        arg.truncate(len);
        args.push(arg);
    }
    Some(args)
}

fn bulk(value: &[u8]) -> Vec<u8> {
    [format!("${}\r\n", value.len()).as_bytes(), value, b"\r\n"].concat()
}

/// How a fake connection ended.
#[derive(PartialEq, Eq)]
enum End {
    /// The client left, or `QUIT` or `DROP`.
    Other,
    /// `HANGUP`: answered, then closed by the server.
    HungUp,
}

/// Serves one connection. Besides a few Redis commands: `HANGUP` answers
/// OK and closes (as a node that restarts between two commands), `DROP`
/// closes without answering (as a node that dies during a command).
fn serve(
    stream: TcpStream,
    password: Option<&str>,
    log: &Mutex<Vec<Args>>,
    store: &Mutex<BTreeMap<Vec<u8>, Vec<u8>>>,
) -> End {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    let mut authenticated = password.is_none();
    while let Some(args) = read_request(&mut reader) {
        log.lock().unwrap().push(args.clone());
        let name = String::from_utf8_lossy(&args[0]).to_ascii_uppercase();
        let mut store = store.lock().unwrap();
        let reply: Vec<u8> = match (name.as_str(), &args[1..]) {
            ("AUTH", [given]) => match password {
                Some(p) if p.as_bytes() == given.as_slice() => {
                    authenticated = true;
                    b"+OK\r\n".to_vec()
                }
                Some(_) => {
                    b"-WRONGPASS invalid username-password pair or user is disabled.\r\n".to_vec()
                }
                None => b"-ERR AUTH <password> called without any password configured for \
                          the default user. Are you sure your configuration is correct?\r\n"
                    .to_vec(),
            },
            _ if !authenticated => b"-NOAUTH Authentication required.\r\n".to_vec(),
            ("PING", []) => b"+PONG\r\n".to_vec(),
            ("ECHO", [message]) => bulk(message),
            ("QUIT", []) => {
                let _ = writer.write_all(b"+OK\r\n");
                return End::Other;
            }
            ("HANGUP", []) => {
                let _ = writer.write_all(b"+OK\r\n");
                drop((reader, writer));
                return End::HungUp;
            }
            ("DROP", []) => return End::Other,
            ("SET", [key, value]) => {
                store.insert(key.clone(), value.clone());
                b"+OK\r\n".to_vec()
            }
            ("GET", [key]) => store.get(key).map_or(b"$-1\r\n".to_vec(), |v| bulk(v)),
            ("INCR", [key]) => {
                let old = store.get(key).map_or(Some(0), |v| {
                    std::str::from_utf8(v)
                        .ok()
                        .and_then(|v| v.parse::<i64>().ok())
                });
                match old {
                    Some(old) => {
                        store.insert(key.clone(), (old + 1).to_string().into_bytes());
                        format!(":{}\r\n", old + 1).into_bytes()
                    }
                    None => b"-ERR value is not an integer or out of range\r\n".to_vec(),
                }
            }
            ("DBSIZE", []) => format!(":{}\r\n", store.len()).into_bytes(),
            ("MGET", keys) if !keys.is_empty() => {
                let mut reply = format!("*{}\r\n", keys.len()).into_bytes();
                for key in keys {
                    reply.extend(store.get(key).map_or(b"$-1\r\n".to_vec(), |v| bulk(v)));
                }
                reply
            }
            ("SCAN", [_cursor]) => {
                let mut reply = format!("*2\r\n$1\r\n0\r\n*{}\r\n", store.len()).into_bytes();
                for key in store.keys() {
                    reply.extend(bulk(key));
                }
                reply
            }
            _ => format!(
                "-ERR unknown command '{}', with args beginning with: \r\n",
                String::from_utf8_lossy(&args[0])
            )
            .into_bytes(),
        };
        if writer.write_all(&reply).is_err() {
            return End::Other;
        }
    }
    End::Other
}

/// A port nothing listens on (bound, then released).
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn cli(port: u16, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(CLI)
        .arg("-p")
        .arg(port.to_string())
        .args(args)
        .env("SYNOD_CLI_HISTFILE", "")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    // synod-cli may exit before it reads (no node): a broken pipe is fine.
    let _ = input.write_all(stdin.as_bytes());
    drop(input);
    child.wait_with_output().unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn words(line: &[&str]) -> Args {
    line.iter().map(|w| w.as_bytes().to_vec()).collect()
}

#[test]
fn one_shot_prints_the_reply_as_redis_cli_does() {
    let node = FakeNode::start(None);
    let run = |args: &[&str]| stdout(&cli(node.port, &[&["--no-raw"], args].concat(), ""));
    assert_eq!(run(&["SET", "a", "1"]), "OK\n");
    assert_eq!(run(&["GET", "a"]), "\"1\"\n");
    assert_eq!(run(&["INCR", "a"]), "(integer) 2\n");
    assert_eq!(run(&["GET", "missing"]), "(nil)\n");
    assert_eq!(run(&["MGET", "a", "missing"]), "1) \"2\"\n2) (nil)\n");
    assert_eq!(run(&["SCAN", "0"]), "1) \"0\"\n2) 1) \"a\"\n");
}

#[test]
fn one_shot_sends_its_arguments_as_given() {
    let node = FakeNode::start(None);
    let output = cli(node.port, &["SET", "key with space", "-1"], "");
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(node.received(), [words(&["SET", "key with space", "-1"])]);
}

#[test]
fn one_shot_output_is_raw_when_not_on_a_terminal() {
    let node = FakeNode::start(None);
    cli(node.port, &["SET", "a", "x y"], "");
    assert_eq!(stdout(&cli(node.port, &["GET", "a"], "")), "x y\n");
    assert_eq!(
        stdout(&cli(node.port, &["MGET", "a", "b", "a"], "")),
        "x y\n\nx y\n"
    );
    assert_eq!(stdout(&cli(node.port, &["DBSIZE"], "")), "1\n");
}

#[test]
fn an_error_reply_exits_non_zero() {
    let node = FakeNode::start(None);
    let output = cli(node.port, &["--no-raw", "NOPE", "x"], "");
    assert_eq!(output.status.code(), Some(1));
    assert!(stdout(&output).starts_with("(error) ERR unknown command 'NOPE'"));
    // For scripts the error goes to standard error, the values to standard
    // output.
    let output = cli(node.port, &["NOPE"], "");
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(stdout(&output), "");
    assert!(stderr(&output).starts_with("(error) ERR unknown command"));
}

#[test]
fn an_unreachable_node_is_reported_without_a_panic() {
    let port = closed_port();
    for stdin in ["", "PING\n"] {
        let args: &[&str] = if stdin.is_empty() { &["PING"] } else { &[] };
        let output = cli(port, args, stdin);
        assert_eq!(output.status.code(), Some(1));
        assert_eq!(
            stderr(&output),
            format!("Could not connect to Synod at 127.0.0.1:{port}: Connection refused\n")
        );
    }
}

#[test]
fn help_needs_no_node() {
    let output = cli(closed_port(), &["HELP", "get"], "");
    assert!(output.status.success());
    assert!(stdout(&output).contains("  GET key\n  summary: "));
}

#[test]
fn the_password_is_sent_before_the_first_command() {
    let node = FakeNode::start(Some("secret"));
    let output = cli(node.port, &["-a", "secret", "--no-raw", "PING"], "");
    assert_eq!(stdout(&output), "PONG\n");
    assert_eq!(
        node.received(),
        [words(&["AUTH", "secret"]), words(&["PING"])]
    );
    let output = cli(node.port, &["-a", "wrong", "PING"], "");
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).starts_with("AUTH failed: WRONGPASS"));
    assert_eq!(node.received().len(), 3, "PING was not sent");
}

#[test]
fn a_script_on_standard_input_runs_line_by_line() {
    let node = FakeNode::start(None);
    let script = "SET a 1\n# a comment\n\n  INCR a\nSET \"k 1\" 'it\\'s'\nGET \"k 1\"\nGET a\n";
    let output = cli(node.port, &["--no-raw"], script);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output), "OK\n(integer) 2\nOK\n\"it's\"\n\"2\"\n");
    assert_eq!(node.received()[2], words(&["SET", "k 1", "it's"]));
}

#[test]
fn a_script_goes_on_after_a_failure_and_exits_non_zero() {
    let node = FakeNode::start(None);
    let output = cli(node.port, &[], "SET a x\nINCR a\nSET 'unbalanced\nGET a\n");
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(stdout(&output), "OK\nx\n");
    let errors = stderr(&output);
    assert!(
        errors.contains("(error) ERR value is not an integer"),
        "{errors}"
    );
    assert!(
        errors.contains("line 3: Invalid argument(s): unbalanced quotes"),
        "{errors}"
    );
}

#[test]
fn a_connection_lost_during_a_command_is_reported_and_replaced() {
    let node = FakeNode::start(None);
    let output = cli(node.port, &[], "SET a 1\nDROP\nGET a\n");
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(stdout(&output), "OK\n1\n");
    assert_eq!(
        stderr(&output),
        format!(
            "Connection to Synod at 127.0.0.1:{} lost: the server closed the connection \
             (the command may or may not have run)\n",
            node.port
        )
    );
}

#[test]
fn a_script_stops_at_quit() {
    let node = FakeNode::start(None);
    let output = cli(node.port, &[], "SET a 1\nQUIT\nSET b 2\n");
    assert!(output.status.success());
    assert_eq!(stdout(&output), "OK\nOK\n");
    assert_eq!(node.received().len(), 2);
}

/// One tmux server of this test process, on its own socket, killed when
/// dropped.
struct Terminal {
    socket: String,
}

impl Terminal {
    /// Runs `command` in a detached 100×40 tmux window, or `None` (with a
    /// notice) when tmux is not installed.
    fn open(command: &str) -> Option<Terminal> {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        if Command::new("tmux").arg("-V").output().is_err() {
            println!("skipped: tmux is not installed (apt-get install -y tmux)");
            return None;
        }
        let socket = format!(
            "synod-cli-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let terminal = Terminal { socket };
        let status = terminal
            .tmux(&["-f", "/dev/null", "new-session", "-d", "-s", "cli"])
            .args(["-x", "100", "-y", "40", command])
            .args([";", "set-option", "-t", "cli", "remain-on-exit", "on"])
            .status()
            .unwrap();
        assert!(status.success());
        Some(terminal)
    }

    fn tmux(&self, args: &[&str]) -> Command {
        let mut command = Command::new("tmux");
        command.arg("-L").arg(&self.socket).args(args);
        command
    }

    /// Types `text` literally.
    fn type_text(&self, text: &str) {
        let status = self
            .tmux(&["send-keys", "-t", "cli", "-l", text])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Presses keys by tmux name (`Enter`, `Tab`, `C-u`, `Up`, `C-d`).
    fn press(&self, keys: &[&str]) {
        let status = self
            .tmux(&["send-keys", "-t", "cli"])
            .args(keys)
            .status()
            .unwrap();
        assert!(status.success());
    }

    fn screen(&self) -> String {
        let output = self
            .tmux(&["capture-pane", "-p", "-t", "cli"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Waits until the screen shows `text`; returns the screen. Spaces at
    /// the end of lines are left out on both sides, as tmux does not
    /// report them.
    fn wait_for(&self, text: &str) -> String {
        let text: Vec<&str> = text.split('\n').map(str::trim_end).collect();
        let text = text.join("\n");
        let deadline = Instant::now() + SCREEN_WAIT;
        loop {
            let screen = self.screen();
            if screen.contains(&text) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "the screen never showed {text:?}; it shows:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until the last line with text on the screen is `line` (the
    /// line being edited).
    fn wait_for_last_line(&self, line: &str) {
        let deadline = Instant::now() + SCREEN_WAIT;
        loop {
            let screen = self.screen();
            if screen.lines().rev().find(|l| !l.trim().is_empty()) == Some(line.trim_end()) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the last line never became {line:?}; the screen shows:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until the program in the window has exited.
    fn wait_for_exit(&self) {
        let deadline = Instant::now() + SCREEN_WAIT;
        loop {
            let output = self
                .tmux(&["display-message", "-p", "-t", "cli", "#{pane_dead}"])
                .output()
                .unwrap();
            if String::from_utf8_lossy(&output.stdout).trim() == "1" {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "synod-cli did not exit; the screen shows:\n{}",
                self.screen()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ = self.tmux(&["kill-server"]).status();
    }
}

/// A fresh directory for one test's history file.
fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("synod-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn shell_command(home: &Path, port: u16) -> String {
    format!(
        "env -u SYNOD_CLI_HISTFILE HOME='{}' TERM=xterm '{CLI}' -p {port}",
        home.display()
    )
}

#[test]
fn the_interactive_shell_as_a_person_sees_it() {
    let node = FakeNode::start(None);
    let home = scratch_dir("interactive");
    let Some(terminal) = Terminal::open(&shell_command(&home, node.port)) else {
        return;
    };
    let prompt = format!("127.0.0.1:{}> ", node.port);
    terminal.wait_for(&prompt);

    terminal.type_text("SET a 1");
    terminal.press(&["Enter"]);
    terminal.wait_for(&format!("{prompt}SET a 1\nOK\n"));

    terminal.type_text("get a");
    terminal.press(&["Enter"]);
    terminal.wait_for(&format!("{prompt}get a\n\"1\"\n"));

    terminal.type_text("HELP GET");
    terminal.press(&["Enter"]);
    terminal.wait_for("\n  GET key\n  summary: The value of key, or nil");

    // The rest of a command's syntax is hinted as it is typed.
    terminal.type_text("SET b ");
    terminal.wait_for_last_line(&format!(
        "{prompt}SET b value [NX | XX] [GET] [EX seconds | PX milliseconds | KEEPTTL]"
    ));
    terminal.press(&["C-u"]);

    // TAB completes a command name...
    terminal.type_text("DBS");
    terminal.press(&["Tab"]);
    terminal.wait_for_last_line(&format!("{prompt}DBSIZE"));
    terminal.press(&["Enter"]);
    terminal.wait_for(&format!("{prompt}DBSIZE\n(integer) 1\n"));
    // ...and lists the candidates when there are several.
    terminal.type_text("synod.lo");
    terminal.press(&["Tab"]);
    terminal.wait_for_last_line(&format!("{prompt}synod.lock name [ttl_ms]"));
    terminal.press(&["Tab"]);
    let screen = terminal.wait_for("synod.lockinfo");
    assert!(
        screen
            .lines()
            .any(|l| l.starts_with("synod.lock ") && l.ends_with(" synod.lockinfo")),
        "{screen}"
    );
    terminal.press(&["C-u"]);

    terminal.type_text(r#"ECHO "hello world" 'x'"#);
    terminal.press(&["Enter"]);
    terminal.wait_for("(error) ERR unknown command 'ECHO'");
    terminal.type_text(r#"ECHO "two words""#);
    terminal.press(&["Enter"]);
    terminal.wait_for("\"two words\"\n");

    // A node that closed the connection between two commands (it
    // restarted, say) is reconnected to without a word.
    terminal.type_text("HANGUP");
    terminal.press(&["Enter"]);
    terminal.wait_for(&format!("{prompt}HANGUP\nOK\n"));
    node.wait_for_hangups(1);
    terminal.type_text("MGET a nope");
    terminal.press(&["Enter"]);
    terminal.wait_for(&format!("{prompt}MGET a nope\n1) \"1\"\n2) (nil)\n"));

    terminal.type_text("AUTH hunter2");
    terminal.press(&["Enter"]);
    terminal.wait_for("(error) ERR AUTH <password> called without any password");

    // The up arrow brings back the last line kept in the history (AUTH,
    // with its password, is not kept).
    terminal.press(&["Up"]);
    terminal.wait_for_last_line(&format!("{prompt}MGET a nope"));
    terminal.press(&["C-u", "C-d"]);
    terminal.wait_for_exit();

    let screen = terminal.screen();
    assert!(!screen.contains("panicked"), "{screen}");
    let history = std::fs::read_to_string(home.join(".synod_cli_history")).unwrap();
    assert!(history.contains("SET a 1\n"), "{history}");
    assert!(history.contains("MGET a nope\n"), "{history}");
    assert!(!history.contains("hunter2"), "{history}");
    let _ = std::fs::remove_dir_all(&home);
}

#[test]
fn the_interactive_shell_without_a_node_says_so_and_keeps_going() {
    let port = closed_port();
    let home = scratch_dir("unreachable");
    let Some(terminal) = Terminal::open(&shell_command(&home, port)) else {
        return;
    };
    let refused = format!("Could not connect to Synod at 127.0.0.1:{port}: Connection refused");
    terminal.wait_for(&format!("{refused}\nnot connected> "));
    terminal.type_text("GET a");
    terminal.press(&["Enter"]);
    terminal.wait_for(&format!("not connected> GET a\n{refused}\nnot connected> "));
    terminal.type_text("HELP @synod");
    terminal.press(&["Enter"]);
    terminal.wait_for("  SYNOD.CAS key expected new\n");
    terminal.type_text("QUIT");
    terminal.press(&["Enter"]);
    terminal.wait_for_exit();
    assert!(!terminal.screen().contains("panicked"));
    let _ = std::fs::remove_dir_all(&home);
}
