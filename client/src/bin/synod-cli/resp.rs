//! A minimal blocking RESP2 client: one TCP connection, one command at a
//! time (the request is written whole, then the whole reply is read).
//! Replies are parsed without recursion and within bounds (line length,
//! bulk length, array length, nesting depth), so a misbehaving server
//! cannot make the shell allocate without limit or overflow its stack.

use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use thiserror::Error;

/// Longest bulk string accepted in a reply (Redis's `proto-max-bulk-len`).
pub const MAX_BULK_BYTES: usize = 512 * 1024 * 1024;
/// Most elements accepted in one array of a reply.
pub const MAX_ARRAY_LEN: usize = 1 << 24;
/// Deepest nesting of arrays accepted in a reply.
pub const MAX_DEPTH: usize = 32;
/// Longest status, error or header line accepted, CRLF included.
pub const MAX_LINE_BYTES: usize = 1024 * 1024;
/// Elements reserved ahead for an array, whatever length it announces.
const ARRAY_RESERVE: usize = 1024;
/// How long connecting to one address may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// One RESP2 reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `+OK`.
    Status(String),
    /// `-ERR ...`: the whole message, code included.
    Error(String),
    /// `:1`.
    Integer(i64),
    /// `$3\r\nabc`.
    Bulk(Vec<u8>),
    /// `$-1` or `*-1`.
    Nil,
    /// `*n` and its elements.
    Array(Vec<Reply>),
}

/// Why a command got no reply.
#[derive(Debug, Error)]
pub enum RespError {
    /// The socket failed.
    #[error("{}", describe_io(.0))]
    Io(#[from] io::Error),
    /// The server closed the connection.
    #[error("the server closed the connection")]
    Closed,
    /// The server sent something that is not RESP2 (or beyond the limits).
    #[error("protocol error: {0}")]
    Protocol(String),
}

/// An I/O error as a person reads it: "Connection refused" rather than
/// "Connection refused (os error 111)".
pub fn describe_io(error: &io::Error) -> String {
    let text = error.to_string();
    match text.find(" (os error ") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

/// Appends `args` to `out` as a RESP array of bulk strings.
pub fn encode(args: &[Vec<u8>], out: &mut Vec<u8>) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
}

/// Reads one line and returns it without its CRLF; `Ok(None)` at a clean
/// end of stream.
fn read_line(input: &mut impl BufRead) -> Result<Option<Vec<u8>>, RespError> {
    let mut line = Vec::new();
    let limit = MAX_LINE_BYTES as u64;
    let read = input.take(limit).read_until(b'\n', &mut line)?;
    if read == 0 {
        return Ok(None);
    }
    if !line.ends_with(b"\r\n") {
        return Err(if line.len() as u64 == limit {
            RespError::Protocol(format!("a line longer than {MAX_LINE_BYTES} bytes"))
        } else {
            RespError::Closed
        });
    }
    line.truncate(line.len() - 2);
    Ok(Some(line))
}

fn parse_int(text: &[u8]) -> Result<i64, RespError> {
    std::str::from_utf8(text)
        .ok()
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| {
            RespError::Protocol(format!(
                "'{}' is not an integer",
                String::from_utf8_lossy(text)
            ))
        })
}

/// A length announced by a `$` or `*` header: `None` for -1, refused above
/// `max`.
fn parse_len(text: &[u8], max: usize) -> Result<Option<usize>, RespError> {
    match parse_int(text)? {
        -1 => Ok(None),
        n if n >= 0 && n as u64 <= max as u64 => Ok(Some(n as usize)),
        n => Err(RespError::Protocol(format!("length {n} out of range"))),
    }
}

/// Reads one complete reply.
pub fn read_reply(input: &mut impl BufRead) -> Result<Reply, RespError> {
    // The arrays being filled, innermost last, with their announced lengths.
    let mut open: Vec<(Vec<Reply>, usize)> = Vec::new();
    loop {
        let Some(line) = read_line(input)? else {
            return Err(RespError::Closed);
        };
        let Some((&kind, rest)) = line.split_first() else {
            return Err(RespError::Protocol("an empty line".into()));
        };
        let mut value = match kind {
            b'+' => Reply::Status(String::from_utf8_lossy(rest).into_owned()),
            b'-' => Reply::Error(String::from_utf8_lossy(rest).into_owned()),
            b':' => Reply::Integer(parse_int(rest)?),
            b'$' => match parse_len(rest, MAX_BULK_BYTES)? {
                None => Reply::Nil,
                Some(len) => {
                    let mut body = vec![0; len + 2];
                    input.read_exact(&mut body).map_err(|e| match e.kind() {
                        io::ErrorKind::UnexpectedEof => RespError::Closed,
                        _ => RespError::Io(e),
                    })?;
                    if !body.ends_with(b"\r\n") {
                        return Err(RespError::Protocol("a bulk string without CRLF".into()));
                    }
                    body.truncate(len);
                    Reply::Bulk(body)
                }
            },
            b'*' => match parse_len(rest, MAX_ARRAY_LEN)? {
                None => Reply::Nil,
                Some(0) => Reply::Array(Vec::new()),
                Some(len) => {
                    if open.len() == MAX_DEPTH {
                        return Err(RespError::Protocol(format!(
                            "arrays nested deeper than {MAX_DEPTH}"
                        )));
                    }
                    open.push((Vec::with_capacity(len.min(ARRAY_RESERVE)), len));
                    continue;
                }
            },
            other => {
                return Err(RespError::Protocol(format!(
                    "unexpected type byte {:?}",
                    other as char
                )))
            }
        };
        // Hand the finished value to its array, closing every array it
        // completes; at most `MAX_DEPTH` steps.
        loop {
            let Some((items, len)) = open.last_mut() else {
                return Ok(value);
            };
            items.push(value);
            if items.len() < *len {
                break;
            }
            let (items, _) = open.pop().expect("an open array");
            value = Reply::Array(items);
        }
    }
}

/// A connection to one node.
pub struct Connection {
    reader: BufReader<TcpStream>,
    writer: BufWriter<TcpStream>,
}

impl Connection {
    /// Connects to `host:port`, trying each address it resolves to for at
    /// most [`CONNECT_TIMEOUT`]. Blocks.
    pub fn connect(host: &str, port: u16) -> io::Result<Connection> {
        let mut last_error = None;
        for addr in (host, port).to_socket_addrs()? {
            match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
                Ok(stream) => {
                    stream.set_nodelay(true)?;
                    return Ok(Connection {
                        reader: BufReader::new(stream.try_clone()?),
                        writer: BufWriter::new(stream),
                    });
                }
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.unwrap_or_else(|| {
            io::Error::new(io::ErrorKind::NotFound, "the host name has no address")
        }))
    }

    /// Whether the server closed the connection while it was idle (a node
    /// restarted, an idle timeout): then nothing was sent on it since, and
    /// a new connection can be opened safely. Does not block.
    pub fn closed_by_server(&self) -> bool {
        if !self.reader.buffer().is_empty() {
            return true;
        }
        let stream = self.reader.get_ref();
        if stream.set_nonblocking(true).is_err() {
            return true;
        }
        let mut byte = [0u8; 1];
        // End of stream, unasked-for bytes or an error: all unusable.
        let closed = match stream.peek(&mut byte) {
            Ok(_) => true,
            Err(error) => error.kind() != io::ErrorKind::WouldBlock,
        };
        stream.set_nonblocking(false).is_err() || closed
    }

    /// Sends one command and waits for its reply, however long the server
    /// takes. An error leaves the connection unusable.
    pub fn call(&mut self, args: &[Vec<u8>]) -> Result<Reply, RespError> {
        assert!(!args.is_empty(), "a command has a name");
        let mut request = Vec::new();
        encode(args, &mut request);
        self.writer.write_all(&request)?;
        self.writer.flush()?;
        read_reply(&mut self.reader)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &[u8]) -> Result<Reply, RespError> {
        read_reply(&mut &bytes[..])
    }

    #[test]
    fn commands_are_sent_as_arrays_of_bulk_strings() {
        let mut out = Vec::new();
        encode(&[b"SET".to_vec(), b"a b".to_vec(), Vec::new()], &mut out);
        assert_eq!(out, b"*3\r\n$3\r\nSET\r\n$3\r\na b\r\n$0\r\n\r\n");
    }

    #[test]
    fn every_reply_type_is_parsed() {
        assert_eq!(parse(b"+OK\r\n").unwrap(), Reply::Status("OK".into()));
        assert_eq!(
            parse(b"-ERR no\r\n").unwrap(),
            Reply::Error("ERR no".into())
        );
        assert_eq!(parse(b":-42\r\n").unwrap(), Reply::Integer(-42));
        assert_eq!(
            parse(b"$5\r\na\r\nbc\r\n").unwrap(),
            Reply::Bulk(b"a\r\nbc".to_vec())
        );
        assert_eq!(parse(b"$-1\r\n").unwrap(), Reply::Nil);
        assert_eq!(parse(b"*-1\r\n").unwrap(), Reply::Nil);
        assert_eq!(parse(b"*0\r\n").unwrap(), Reply::Array(Vec::new()));
    }

    #[test]
    fn nested_arrays_are_parsed_without_recursion() {
        let reply = parse(b"*3\r\n*2\r\n:1\r\n*1\r\n$1\r\nx\r\n$-1\r\n+s\r\n").unwrap();
        assert_eq!(
            reply,
            Reply::Array(vec![
                Reply::Array(vec![
                    Reply::Integer(1),
                    Reply::Array(vec![Reply::Bulk(b"x".to_vec())]),
                ]),
                Reply::Nil,
                Reply::Status("s".into()),
            ])
        );
    }

    #[test]
    fn replies_beyond_the_limits_are_refused() {
        let deep = "*1\r\n".repeat(MAX_DEPTH + 1) + ":1\r\n";
        assert!(matches!(
            parse(deep.as_bytes()),
            Err(RespError::Protocol(_))
        ));
        let huge = format!("${}\r\n", MAX_BULK_BYTES + 1);
        assert!(matches!(
            parse(huge.as_bytes()),
            Err(RespError::Protocol(_))
        ));
        assert!(matches!(parse(b"*-2\r\n"), Err(RespError::Protocol(_))));
        assert!(matches!(parse(b"?x\r\n"), Err(RespError::Protocol(_))));
    }

    #[test]
    fn a_reply_cut_short_means_the_server_closed() {
        assert!(matches!(parse(b""), Err(RespError::Closed)));
        assert!(matches!(parse(b"+OK"), Err(RespError::Closed)));
        assert!(matches!(parse(b"$5\r\nab"), Err(RespError::Closed)));
        assert!(matches!(parse(b"*2\r\n:1\r\n"), Err(RespError::Closed)));
    }

    #[test]
    fn io_errors_read_without_the_os_error_number() {
        let error = io::Error::from_raw_os_error(111);
        assert!(!describe_io(&error).contains("os error"));
    }
}
