//! RESP2: the Redis serialization protocol, the requests it carries and the
//! replies Synod writes back.
//!
//! A request is either an array of bulk strings (`*2\r\n$3\r\nGET\r\n$1\r\na\r\n`,
//! what every client library sends) or an inline command (`GET a\r\n`, what a
//! person types into `telnet`), split the way Redis splits it: spaces
//! separate arguments, `"..."` understands `\n \r \t \b \a \\ \" \xHH`,
//! `'...'` understands `\'`.
//!
//! Every byte is untrusted. The parser never allocates in proportion to a
//! length it has not checked against the limits below, never panics, and
//! answers anything malformed with a [`ProtocolError`] whose text is the
//! one Redis uses (`Protocol error: invalid bulk length`, ...). After a
//! protocol error the connection cannot be resynchronised, so the caller
//! answers `-ERR Protocol error: ...` and closes it, as Redis does.

use synod_wire::limits::{MAX_REQUEST_BYTES, MAX_VALUE_BYTES};
use synod_wire::resp::{self as wire, write_header, Aggregate};

/// Largest bulk string (one argument) accepted: a value (1 MiB).
pub const MAX_BULK_BYTES: usize = MAX_VALUE_BYTES;
/// Most arguments (the command name included) in one request: what one
/// state-machine Redis command takes.
pub const MAX_ARGS: usize = synod_wire::limits::MAX_REDIS_ARGS;
/// Largest inline command line, in bytes (Redis uses the same 64 KiB).
pub const MAX_INLINE_BYTES: usize = 64 * 1024;
/// Largest sum of argument lengths of one request: a whole state-machine
/// request.
pub const MAX_COMMAND_BYTES: usize = MAX_REQUEST_BYTES;
/// Longest `*<count>` or `$<length>` header line, `\r\n` excluded.
const MAX_HEADER_BYTES: usize = 32;
/// Most bytes a connection may hold unparsed: one command at its limits,
/// with its headers. More means the peer is not speaking RESP.
/// (The array header and each bulk header take at most
/// `MAX_HEADER_BYTES + 3` bytes, each bulk's closing CRLF 2.)
pub const MAX_PENDING_BYTES: usize = MAX_COMMAND_BYTES + (MAX_ARGS + 1) * (MAX_HEADER_BYTES + 5);

/// A request Redis would refuse as a protocol error; the connection must be
/// closed after answering it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Protocol error: {0}")]
pub struct ProtocolError(pub String);

impl ProtocolError {
    fn new(what: impl Into<String>) -> ProtocolError {
        ProtocolError(what.into())
    }
}

/// One parsed request: its arguments (the first is the command name) and
/// how many bytes of the buffer it used. `args` is empty for requests Redis
/// skips silently (`*0`, `*-1`, a blank inline line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    /// The arguments.
    pub args: Vec<Vec<u8>>,
    /// Bytes consumed from the front of the buffer.
    pub consumed: usize,
}

/// Most arguments of a request before the connection authenticated (Redis
/// 7's limit since CVE-2021-32675).
pub const PRE_AUTH_MAX_ARGS: usize = 10;
/// Largest argument of a request before the connection authenticated.
pub const PRE_AUTH_MAX_BULK_BYTES: usize = 16 * 1024;

/// Parses the first request in `buf`, as an authenticated connection's.
/// `Ok(None)` means the request is not complete yet: read more bytes and
/// call again with the same start. (A connection keeps a
/// [`RequestParser`] instead, which does not parse a request's bytes
/// again on every read.)
pub fn parse_request(buf: &[u8]) -> Result<Option<Parsed>, ProtocolError> {
    RequestParser::default().parse(buf, true)
}

/// One connection's parser: it keeps what it learned of an incomplete
/// request, so a request trickled in over many reads costs time in
/// proportion to its size, not to its size times the number of reads.
#[derive(Debug, Default)]
pub struct RequestParser {
    progress: Progress,
    /// Bytes of headers parsed, arguments copied and inline lines scanned,
    /// for the tests of the parser's cost.
    #[cfg(test)]
    examined: usize,
}

/// What is known of the incomplete request at the front of the buffer.
#[derive(Debug, Default)]
enum Progress {
    /// Nothing.
    #[default]
    Start,
    /// An array of `count` bulk strings, of which `args` are parsed; the
    /// next header starts at `next`; `total_bytes` is the sum of their
    /// lengths.
    Multibulk {
        count: usize,
        args: Vec<Vec<u8>>,
        next: usize,
        total_bytes: usize,
    },
    /// An inline command whose first `scanned` bytes hold no newline.
    Inline { scanned: usize },
}

/// The limits a request is checked against.
#[derive(Clone, Copy)]
struct Limits {
    max_args: usize,
    max_bulk_bytes: usize,
    /// The prefix of the error texts (`unauthenticated ` before AUTH).
    qualifier: &'static str,
}

impl RequestParser {
    /// Parses the first request in `buf`, which starts where the previous
    /// call's `buf` did until a request is returned (then right after it).
    /// Before the connection authenticated, requests are held to
    /// [`PRE_AUTH_MAX_ARGS`] arguments of [`PRE_AUTH_MAX_BULK_BYTES`].
    pub fn parse(
        &mut self,
        buf: &[u8],
        authenticated: bool,
    ) -> Result<Option<Parsed>, ProtocolError> {
        let limits = if authenticated {
            Limits {
                max_args: MAX_ARGS,
                max_bulk_bytes: MAX_BULK_BYTES,
                qualifier: "",
            }
        } else {
            Limits {
                max_args: PRE_AUTH_MAX_ARGS,
                max_bulk_bytes: PRE_AUTH_MAX_BULK_BYTES,
                qualifier: "unauthenticated ",
            }
        };
        let result = match buf.first() {
            None => Ok(None),
            Some(b'*') => self.parse_multibulk(buf, limits),
            Some(_) => self.parse_inline(buf),
        };
        if !matches!(result, Ok(None)) {
            self.progress = Progress::Start;
        }
        result
    }

    fn parse_multibulk(
        &mut self,
        buf: &[u8],
        limits: Limits,
    ) -> Result<Option<Parsed>, ProtocolError> {
        if !matches!(self.progress, Progress::Multibulk { .. }) {
            let Some(end) = line_end(buf, 1, MAX_HEADER_BYTES, "too big mbulk count string")?
            else {
                return Ok(None);
            };
            let count = parse_i64(&buf[1..end])
                .ok_or_else(|| ProtocolError::new("invalid multibulk length"))?;
            if count <= 0 {
                return Ok(Some(Parsed {
                    args: Vec::new(),
                    consumed: end + 2,
                }));
            }
            if count as u64 > limits.max_args as u64 {
                return Err(ProtocolError::new(format!(
                    "{}invalid multibulk length: {count} arguments, limit {}",
                    limits.qualifier, limits.max_args
                )));
            }
            self.progress = Progress::Multibulk {
                count: count as usize,
                args: Vec::with_capacity(count as usize),
                next: end + 2,
                total_bytes: 0,
            };
        }
        let Progress::Multibulk {
            count,
            args,
            next,
            total_bytes,
        } = &mut self.progress
        else {
            unreachable!("set above");
        };
        while args.len() < *count {
            let pos = *next;
            let Some(&marker) = buf.get(pos) else {
                return Ok(None);
            };
            if marker != b'$' {
                return Err(ProtocolError::new(format!(
                    "expected '$', got '{}'",
                    char::from(marker).escape_default()
                )));
            }
            let Some(end) = line_end(buf, pos + 1, MAX_HEADER_BYTES, "too big bulk count string")?
            else {
                return Ok(None);
            };
            let len = parse_i64(&buf[pos + 1..end])
                .filter(|len| (0..=limits.max_bulk_bytes as i64).contains(len))
                .ok_or_else(|| {
                    ProtocolError::new(format!(
                        "{}invalid bulk length (limit {} bytes)",
                        limits.qualifier, limits.max_bulk_bytes
                    ))
                })? as usize;
            if *total_bytes + len > MAX_COMMAND_BYTES {
                return Err(ProtocolError::new(format!(
                    "request too large (limit {MAX_COMMAND_BYTES} bytes)"
                )));
            }
            let start = end + 2;
            if buf.len() < start + len + 2 {
                return Ok(None);
            }
            if &buf[start + len..start + len + 2] != b"\r\n" {
                return Err(ProtocolError::new("bulk string not terminated by CRLF"));
            }
            args.push(buf[start..start + len].to_vec());
            #[cfg(test)]
            {
                self.examined += start - pos + len;
            }
            *total_bytes += len;
            *next = start + len + 2;
        }
        let consumed = *next;
        assert!(consumed <= buf.len(), "parsed past the buffer");
        Ok(Some(Parsed {
            args: std::mem::take(args),
            consumed,
        }))
    }

    fn parse_inline(&mut self, buf: &[u8]) -> Result<Option<Parsed>, ProtocolError> {
        let scanned = match self.progress {
            Progress::Inline { scanned } => scanned.min(buf.len()),
            _ => 0,
        };
        let window = &buf[..buf.len().min(MAX_INLINE_BYTES + 1)];
        #[cfg(test)]
        {
            self.examined += window.len().saturating_sub(scanned);
        }
        let Some(newline) = window[scanned.min(window.len())..]
            .iter()
            .position(|&b| b == b'\n')
            .map(|i| scanned + i)
        else {
            if window.len() > MAX_INLINE_BYTES {
                return Err(ProtocolError::new("too big inline request"));
            }
            self.progress = Progress::Inline {
                scanned: window.len(),
            };
            return Ok(None);
        };
        let mut line = &buf[..newline];
        if let Some(stripped) = line.strip_suffix(b"\r") {
            line = stripped;
        }
        let args = split_args(line)?;
        if args.len() > MAX_ARGS {
            return Err(ProtocolError::new(format!(
                "too many arguments in inline request (limit {MAX_ARGS})"
            )));
        }
        Ok(Some(Parsed {
            args,
            consumed: newline + 1,
        }))
    }
}

/// Finds the `\r\n` ending the line that starts at `from`; `Ok(None)` if
/// not there yet, an error named `what` if the line is longer than `max`.
fn line_end(
    buf: &[u8],
    from: usize,
    max: usize,
    what: &str,
) -> Result<Option<usize>, ProtocolError> {
    let window = &buf[from..buf.len().min(from + max + 2)];
    match window.windows(2).position(|w| w == b"\r\n") {
        Some(i) => Ok(Some(from + i)),
        None if window.len() >= max + 2 => Err(ProtocolError::new(what)),
        None => Ok(None),
    }
}

/// A decimal integer as Redis's `string2ll` reads it: optional `-`, digits,
/// no `+`, no spaces, no leading zeros (except `0` itself).
pub fn parse_i64(bytes: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(bytes).ok()?;
    let digits = text.strip_prefix('-').unwrap_or(text);
    let canonical = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'))
        && text != "-0";
    if !canonical {
        return None;
    }
    text.parse().ok()
}

/// An integer argument as [`parse_i64`] reads it, or Redis's error reply.
pub(super) fn int_arg(arg: &[u8]) -> Result<i64, Reply> {
    parse_i64(arg).ok_or_else(|| Reply::err("value is not an integer or out of range"))
}

fn hex_digit(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// Splits an inline line into arguments like Redis's `sdssplitargs`.
pub fn split_args(line: &[u8]) -> Result<Vec<Vec<u8>>, ProtocolError> {
    let unbalanced = || ProtocolError::new("unbalanced quotes in request");
    let mut args = Vec::new();
    let mut i = 0;
    loop {
        while i < line.len() && line[i].is_ascii_whitespace() {
            i += 1;
        }
        if i == line.len() {
            return Ok(args);
        }
        let mut arg = Vec::new();
        let quote = match line[i] {
            q @ (b'"' | b'\'') => {
                i += 1;
                Some(q)
            }
            _ => None,
        };
        loop {
            let Some(&c) = line.get(i) else {
                if quote.is_some() {
                    return Err(unbalanced());
                }
                break;
            };
            match quote {
                None if c.is_ascii_whitespace() => break,
                None => {
                    arg.push(c);
                    i += 1;
                }
                Some(q) if c == q => {
                    // A closing quote must be followed by a space or the end.
                    if line.get(i + 1).is_some_and(|n| !n.is_ascii_whitespace()) {
                        return Err(unbalanced());
                    }
                    i += 1;
                    break;
                }
                Some(b'"') if c == b'\\' && line.get(i + 1) == Some(&b'x') => {
                    let hex = line
                        .get(i + 2)
                        .and_then(|&h| hex_digit(h))
                        .zip(line.get(i + 3).and_then(|&l| hex_digit(l)));
                    match hex {
                        Some((h, l)) => {
                            arg.push(h * 16 + l);
                            i += 4;
                        }
                        None => {
                            arg.push(b'\\');
                            i += 1;
                        }
                    }
                }
                Some(b'"') if c == b'\\' && i + 1 < line.len() => {
                    arg.push(match line[i + 1] {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 0x08,
                        b'a' => 0x07,
                        other => other,
                    });
                    i += 2;
                }
                Some(b'\'') if c == b'\\' && line.get(i + 1) == Some(&b'\'') => {
                    arg.push(b'\'');
                    i += 2;
                }
                Some(_) => {
                    arg.push(c);
                    i += 1;
                }
            }
        }
        args.push(arg);
    }
}

/// The protocol version a connection speaks: RESP2 until `HELLO 3`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Protocol {
    /// RESP2: nulls are `$-1`/`*-1`; doubles are bulk strings; maps, sets
    /// and pairs are flat arrays.
    #[default]
    Resp2,
    /// RESP3: nulls are `_`, doubles `,`, maps `%`, sets `~`, and pairs
    /// two-item arrays.
    Resp3,
}

/// A reply, typed as RESP3 types it; [`Reply::encode`] writes it in either
/// protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `+text`: a status such as `OK` or `PONG`.
    Simple(String),
    /// `-CODE message`: the text starts with the error code (`ERR`,
    /// `NOAUTH`, `WRONGPASS`, ...).
    Error(String),
    /// `:n`.
    Integer(i64),
    /// `$len` and the bytes.
    Bulk(Vec<u8>),
    /// `$-1` (RESP3 `_`): the null bulk string (an absent key).
    Nil,
    /// `*n` and the elements.
    Array(Vec<Reply>),
    /// `*-1` (RESP3 `_`): the null array.
    NilArray,
    /// A double as its text (`2.5`, `inf`): RESP2 a bulk string, RESP3
    /// `,text`.
    Double(String),
    /// Keys and values alternating: RESP2 a flat array, RESP3 `%n`.
    Map(Vec<Reply>),
    /// RESP2 an array, RESP3 `~n`.
    Set(Vec<Reply>),
    /// Pairs alternating (member and score, field and value): RESP2 a flat
    /// array, RESP3 an array of two-item arrays.
    Pairs(Vec<Reply>),
}

impl Reply {
    /// `+OK`.
    pub fn ok() -> Reply {
        Reply::Simple("OK".into())
    }

    /// `-ERR message`.
    pub fn err(message: impl std::fmt::Display) -> Reply {
        Reply::Error(format!("ERR {message}"))
    }

    /// A bulk string from text.
    pub fn text(text: impl Into<String>) -> Reply {
        Reply::Bulk(text.into().into_bytes())
    }

    /// An array of bulk strings.
    pub fn bulks<I: IntoIterator<Item = Vec<u8>>>(items: I) -> Reply {
        Reply::Array(items.into_iter().map(Reply::Bulk).collect())
    }

    /// Whether this is an error reply.
    pub fn is_error(&self) -> bool {
        matches!(self, Reply::Error(_))
    }

    /// `ok` for a reply that is not an error; else the error's code (its
    /// first word) if it is one Synod sends, `ERR` otherwise: a small,
    /// fixed set of values, for counting replies.
    pub fn error_code(&self) -> &'static str {
        const CODES: &[&str] = &[
            "ERR",
            "WRONGTYPE",
            "NOAUTH",
            "WRONGPASS",
            "NOPROTO",
            "EXECABORT",
            "TRYAGAIN",
            "UNCERTAIN",
            "FENCED",
        ];
        let Reply::Error(text) = self else {
            return "ok";
        };
        let word = text.split(' ').next().unwrap_or_default();
        CODES.iter().find(|code| **code == word).unwrap_or(&"ERR")
    }

    /// Appends the encoding in `protocol` to `out`. Iterative (no
    /// recursion), so nesting depth costs no stack.
    pub fn encode(&self, protocol: Protocol, out: &mut Vec<u8>) {
        let resp3 = protocol == Protocol::Resp3;
        // The items left of each open aggregate, and whether they are
        // pairs to nest (RESP3), with how many were written.
        let mut stack: Vec<(std::slice::Iter<'_, Reply>, bool, usize)> = Vec::new();
        let mut next = Some(self);
        loop {
            if let Some(reply) = next.take() {
                match reply {
                    Reply::Array(items) => {
                        write_header(out, Aggregate::Array, items.len());
                        stack.push((items.iter(), false, 0));
                    }
                    Reply::Map(items) if resp3 => {
                        write_header(out, Aggregate::Map, items.len() / 2);
                        stack.push((items.iter(), false, 0));
                    }
                    Reply::Set(items) if resp3 => {
                        write_header(out, Aggregate::Set, items.len());
                        stack.push((items.iter(), false, 0));
                    }
                    Reply::Pairs(items) if resp3 => {
                        write_header(out, Aggregate::Array, items.len() / 2);
                        stack.push((items.iter(), true, 0));
                    }
                    Reply::Map(items) | Reply::Set(items) | Reply::Pairs(items) => {
                        write_header(out, Aggregate::Array, items.len());
                        stack.push((items.iter(), false, 0));
                    }
                    _ => encode_scalar(reply, resp3, out),
                }
            }
            match stack.last_mut() {
                None => return,
                Some((items, pairs, written)) => match items.next() {
                    Some(item) => {
                        if *pairs && *written % 2 == 0 {
                            out.extend_from_slice(b"*2\r\n");
                        }
                        *written += 1;
                        next = Some(item);
                    }
                    None => {
                        stack.pop();
                    }
                },
            }
        }
    }
}

/// A scalar's frame, written by `synod_wire::resp`'s writers: the ones
/// `synod-cli` and the tests' client read back (simple strings, errors and
/// doubles have their line breaks written as spaces there).
fn encode_scalar(reply: &Reply, resp3: bool, out: &mut Vec<u8>) {
    match reply {
        Reply::Simple(text) => wire::write_simple(out, text),
        Reply::Error(text) => wire::write_error(out, text),
        Reply::Integer(n) => wire::write_integer(out, *n),
        Reply::Bulk(bytes) => wire::write_bulk(out, bytes),
        Reply::Double(text) if resp3 => wire::write_double(out, text),
        Reply::Double(text) => wire::write_bulk(out, text.as_bytes()),
        Reply::Nil | Reply::NilArray if resp3 => out.extend_from_slice(wire::NULL),
        Reply::Nil => out.extend_from_slice(wire::NIL),
        Reply::NilArray => out.extend_from_slice(wire::NIL_ARRAY),
        Reply::Array(_) | Reply::Map(_) | Reply::Set(_) | Reply::Pairs(_) => {
            unreachable!("aggregates are encoded by Reply::encode")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(parts: &[&str]) -> Vec<Vec<u8>> {
        parts.iter().map(|p| p.as_bytes().to_vec()).collect()
    }

    /// Feeds `request` to one parser a byte at a time, as a client
    /// trickling it would; returns the request and the bytes examined.
    fn trickle(request: &[u8], authenticated: bool) -> (Parsed, usize) {
        let mut parser = RequestParser::default();
        for end in 1..request.len() {
            let partial = parser.parse(&request[..end], authenticated).unwrap();
            assert_eq!(partial, None, "complete at {end} of {}", request.len());
        }
        let parsed = parser.parse(request, authenticated).unwrap().unwrap();
        (parsed, parser.examined)
    }

    #[test]
    fn a_request_trickled_a_byte_at_a_time_is_examined_once() {
        // 2,000 arguments: each header and argument is looked at once, not
        // again on every read.
        let mut request = b"*2000\r\n".to_vec();
        for i in 0..2000 {
            let arg = format!("a{i}");
            request.extend_from_slice(format!("${}\r\n{arg}\r\n", arg.len()).as_bytes());
        }
        let (parsed, examined) = trickle(&request, true);
        assert_eq!(parsed.args.len(), 2000);
        assert_eq!(parsed.consumed, request.len());
        assert!(
            examined <= request.len(),
            "{examined} bytes examined for a {}-byte request",
            request.len()
        );
        // An inline line.
        let line = format!("SET k {}\r\n", "v".repeat(20_000));
        let (parsed, examined) = trickle(line.as_bytes(), true);
        assert_eq!(parsed.args.len(), 3);
        assert!(examined <= line.len() + 1, "{examined} for {}", line.len());
    }

    #[test]
    fn requests_before_auth_are_held_to_small_limits() {
        let many = format!("*11\r\n{}", "$1\r\na\r\n".repeat(11));
        let mut parser = RequestParser::default();
        let err = parser.parse(many.as_bytes(), false).unwrap_err();
        assert!(err.to_string().contains("unauthenticated"), "{err}");
        assert!(RequestParser::default()
            .parse(many.as_bytes(), true)
            .unwrap()
            .is_some());
        let big = format!("*2\r\n$4\r\nAUTH\r\n$16385\r\n{}\r\n", "p".repeat(16385));
        let err = RequestParser::default()
            .parse(big.as_bytes(), false)
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("unauthenticated invalid bulk length"),
            "{err}"
        );
        let small = format!("*2\r\n$4\r\nAUTH\r\n$16384\r\n{}\r\n", "p".repeat(16384));
        assert!(RequestParser::default()
            .parse(small.as_bytes(), false)
            .unwrap()
            .is_some());
    }

    fn parse_all(buf: &[u8]) -> Result<Vec<Vec<Vec<u8>>>, ProtocolError> {
        let mut out = Vec::new();
        let mut pos = 0;
        while let Some(parsed) = parse_request(&buf[pos..])? {
            out.push(parsed.args);
            pos += parsed.consumed;
        }
        Ok(out)
    }

    #[test]
    fn multibulk_requests_parse_and_pipeline() {
        let buf = b"*2\r\n$3\r\nGET\r\n$1\r\na\r\n*3\r\n$3\r\nSET\r\n$1\r\nb\r\n$0\r\n\r\n";
        assert_eq!(
            parse_all(buf).unwrap(),
            vec![args(&["GET", "a"]), args(&["SET", "b", ""])]
        );
    }

    #[test]
    fn every_prefix_of_a_request_is_incomplete_not_an_error() {
        let buf = b"*2\r\n$4\r\nECHO\r\n$5\r\nhello\r\n";
        for cut in 0..buf.len() {
            assert_eq!(parse_request(&buf[..cut]), Ok(None), "cut at {cut}");
        }
        assert!(parse_request(buf).unwrap().is_some());
    }

    #[test]
    fn inline_requests_split_like_redis() {
        assert_eq!(
            parse_all(b"SET a \"x y\\n\\x41\" 'it\\'s'\r\nPING\n\r\n").unwrap(),
            vec![
                vec![
                    b"SET".to_vec(),
                    b"a".to_vec(),
                    b"x y\nA".to_vec(),
                    b"it's".to_vec()
                ],
                args(&["PING"]),
                vec![],
            ]
        );
    }

    #[test]
    fn malformed_requests_get_redis_protocol_errors() {
        let cases: &[(&[u8], &str)] = &[
            (b"*x\r\n", "invalid multibulk length"),
            (b"*1\r\n+GET\r\n", "expected '$', got '+'"),
            (b"*1\r\n$-5\r\n", "invalid bulk length"),
            (b"*1\r\n$3\r\nGETxx", "not terminated by CRLF"),
            (b"*99999999\r\n", "invalid multibulk length"),
            (b"*1\r\n$99999999\r\n", "invalid bulk length"),
            (b"SET \"a\r\n", "unbalanced quotes"),
            (b"SET \"a\"b\r\n", "unbalanced quotes"),
        ];
        for (input, expected) in cases {
            let err = parse_request(input).unwrap_err().to_string();
            assert!(err.starts_with("Protocol error: "), "{err}");
            assert!(err.contains(expected), "{err} for {input:?}");
        }
    }

    #[test]
    fn overlong_lines_are_refused_before_they_are_complete() {
        let long_inline = vec![b'a'; MAX_INLINE_BYTES + 1];
        assert!(parse_request(&long_inline).is_err());
        let long_header = [b"*".as_slice(), &[b'1'; 40]].concat();
        assert!(parse_request(&long_header).is_err());
    }

    #[test]
    fn a_command_over_the_total_limit_is_refused_from_its_headers() {
        let mut buf = format!("*{}\r\n", 6).into_bytes();
        for _ in 0..5 {
            buf.extend_from_slice(format!("${MAX_BULK_BYTES}\r\n").as_bytes());
            buf.extend(std::iter::repeat_n(b'v', MAX_BULK_BYTES));
            buf.extend_from_slice(b"\r\n");
        }
        let err = parse_request(&buf).unwrap_err();
        assert!(err.0.contains("request too large"), "{err}");
    }

    #[test]
    fn random_bytes_never_panic() {
        // xorshift: deterministic, no dependency.
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let alphabet = b"*$\r\n-0123456789 \"'\\xabGETSET";
        for _ in 0..20_000 {
            let len = (next() % 64) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    let r = next();
                    if r % 3 == 0 {
                        r as u8
                    } else {
                        alphabet[(r >> 8) as usize % alphabet.len()]
                    }
                })
                .collect();
            let _ = parse_all(&bytes);
        }
    }

    #[test]
    fn replies_encode_as_resp2() {
        let mut out = Vec::new();
        Reply::Array(vec![
            Reply::ok(),
            Reply::Integer(-3),
            Reply::Bulk(b"a\r\nb".to_vec()),
            Reply::Nil,
            Reply::Array(vec![Reply::NilArray, Reply::Array(vec![])]),
            Reply::err("bad\r\nthing"),
        ])
        .encode(Protocol::Resp2, &mut out);
        assert_eq!(
            out,
            b"*6\r\n+OK\r\n:-3\r\n$4\r\na\r\nb\r\n$-1\r\n*2\r\n*-1\r\n*0\r\n-ERR bad  thing\r\n"
        );
    }

    #[test]
    fn typed_replies_encode_flat_in_resp2_and_as_their_type_in_resp3() {
        let reply = Reply::Array(vec![
            Reply::Double("2.5".into()),
            Reply::Map(vec![Reply::text("f"), Reply::Nil]),
            Reply::Set(vec![Reply::text("m")]),
            Reply::Pairs(vec![
                Reply::text("a"),
                Reply::Double("1".into()),
                Reply::text("b"),
                Reply::Double("inf".into()),
            ]),
            Reply::NilArray,
        ]);
        let mut resp2 = Vec::new();
        reply.encode(Protocol::Resp2, &mut resp2);
        assert_eq!(
            String::from_utf8(resp2).unwrap(),
            "*5\r\n$3\r\n2.5\r\n*2\r\n$1\r\nf\r\n$-1\r\n*1\r\n$1\r\nm\r\n\
             *4\r\n$1\r\na\r\n$1\r\n1\r\n$1\r\nb\r\n$3\r\ninf\r\n*-1\r\n"
        );
        let mut resp3 = Vec::new();
        reply.encode(Protocol::Resp3, &mut resp3);
        assert_eq!(
            String::from_utf8(resp3).unwrap(),
            "*5\r\n,2.5\r\n%1\r\n$1\r\nf\r\n_\r\n~1\r\n$1\r\nm\r\n\
             *2\r\n*2\r\n$1\r\na\r\n,1\r\n*2\r\n$1\r\nb\r\n,inf\r\n_\r\n"
        );
    }

    /// The node writes replies and `synod-cli` and the tests read them with
    /// `synod_wire::resp`: every kind of reply, in both protocols, reads
    /// back as what it is.
    #[test]
    fn every_reply_kind_reads_back_with_the_wire_reader() {
        use synod_wire::resp::{read_reply, Reply as Read};
        let text = |t: &str| Read::Bulk(t.as_bytes().to_vec());
        let reply = Reply::Array(vec![
            Reply::ok(),
            Reply::err("bad\r\nthing"),
            Reply::Integer(i64::MIN),
            Reply::Bulk(b"a\r\nb".to_vec()),
            Reply::Nil,
            Reply::NilArray,
            Reply::Array(vec![]),
            Reply::Double("-2.5".into()),
            Reply::Map(vec![Reply::text("f"), Reply::Nil]),
            Reply::Set(vec![Reply::text("m")]),
            Reply::Pairs(vec![Reply::text("a"), Reply::Double("inf".into())]),
        ]);
        let common = [
            Read::Simple("OK".into()),
            Read::Error("ERR bad  thing".into()),
            Read::Integer(i64::MIN),
            Read::Bulk(b"a\r\nb".to_vec()),
        ];
        let resp2 = [
            Read::Nil,
            Read::NilArray,
            Read::Array(vec![]),
            text("-2.5"),
            Read::Array(vec![text("f"), Read::Nil]),
            Read::Array(vec![text("m")]),
            Read::Array(vec![text("a"), text("inf")]),
        ];
        let resp3 = [
            Read::Null,
            Read::Null,
            Read::Array(vec![]),
            Read::Double("-2.5".into()),
            Read::Map(vec![text("f"), Read::Null]),
            Read::Set(vec![text("m")]),
            Read::Array(vec![Read::Array(vec![
                text("a"),
                Read::Double("inf".into()),
            ])]),
        ];
        for (protocol, rest) in [(Protocol::Resp2, resp2), (Protocol::Resp3, resp3)] {
            let mut out = Vec::new();
            reply.encode(protocol, &mut out);
            let expected = Read::Array(common.iter().cloned().chain(rest).collect());
            assert_eq!(read_reply(&mut &out[..]).unwrap(), expected, "{protocol:?}");
        }
    }

    #[test]
    fn integers_parse_only_in_canonical_form() {
        assert_eq!(parse_i64(b"42"), Some(42));
        assert_eq!(parse_i64(b"-7"), Some(-7));
        assert_eq!(parse_i64(b"0"), Some(0));
        for bad in [
            &b""[..],
            b"-",
            b"+1",
            b"01",
            b"-0",
            b" 1",
            b"1a",
            b"99999999999999999999",
        ] {
            assert_eq!(parse_i64(bad), None, "{bad:?}");
        }
    }
}
