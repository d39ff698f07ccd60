//! RESP, the Redis protocol, as a client speaks it: a command written as an array of bulk
//! strings ([`encode_command`]), one reply read from a blocking reader ([`read_reply`]) into a
//! [`Reply`], and the frame of each reply type ([`write_bulk`], [`write_header`], ...), with
//! which the node's Redis endpoint writes its replies too, so the two sides share one encoding.
//!
//! [`read_reply`] takes RESP2 and RESP3 (after `HELLO 3`). Every byte it reads is untrusted: it
//! parses without recursion, allocates nothing in proportion to a length before checking it
//! against the limits below, and answers anything malformed, cut short or beyond a limit with a
//! typed [`RespError`], never a panic. The limits are the reader's own, not the cluster's (see
//! [`limits`](crate::limits)): they keep a misbehaving server from making a client allocate
//! without bound or overflow its stack, and are as generous as Redis's.

use std::io::{self, BufRead, Read, Write as _};

use thiserror::Error;

/// Longest bulk string accepted in a reply, in bytes (Redis's `proto-max-bulk-len`, 512 MiB).
pub const MAX_BULK_BYTES: usize = 512 * 1024 * 1024;
/// Most elements accepted in one array, set or push of a reply (a map's keys and values count
/// one each).
pub const MAX_ARRAY_LEN: usize = 1 << 24;
/// Deepest nesting of arrays, maps, sets, pushes and attributes accepted in a reply.
pub const MAX_DEPTH: usize = 32;
/// Longest simple string, error or header line accepted, in bytes, CRLF included (1 MiB).
pub const MAX_LINE_BYTES: usize = 1024 * 1024;
/// Elements reserved ahead for an aggregate, whatever length it announces.
const AGGREGATE_RESERVE: usize = 1024;

/// One reply, typed as it came on the wire. RESP2 has the first seven kinds; the others come only
/// on a connection switched to RESP3 by `HELLO 3`. A RESP3 attribute (`|`) is read and dropped:
/// the reply it annotates is returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `+text`: a status such as `OK` or `PONG`.
    Simple(String),
    /// `-CODE message` (or RESP3's bulk error `!len`): the whole text, code included.
    Error(String),
    /// `:n`.
    Integer(i64),
    /// `$len` and the bytes.
    Bulk(Vec<u8>),
    /// `$-1`: the null bulk string (an absent key).
    Nil,
    /// `*n` and the elements.
    Array(Vec<Reply>),
    /// `*-1`: the null array.
    NilArray,
    /// RESP3 `_`: null.
    Null,
    /// RESP3 `,text`: a double as its text (`2.5`, `inf`).
    Double(String),
    /// RESP3 `#t` or `#f`.
    Boolean(bool),
    /// RESP3 `(digits`: an integer of any size, as its text.
    BigNumber(String),
    /// RESP3 `=len`: text with its three-letter format (`txt`, `mkd`).
    Verbatim {
        /// The format, such as `txt`.
        format: String,
        /// The text, after the format and its `:`.
        text: Vec<u8>,
    },
    /// RESP3 `%n`: keys and values alternating (2n elements).
    Map(Vec<Reply>),
    /// RESP3 `~n`.
    Set(Vec<Reply>),
    /// RESP3 `>n`: a message the server sent unasked (a subscription's, an invalidation).
    Push(Vec<Reply>),
}

/// How a reply broke the protocol or its limits.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Violation {
    /// A line longer than [`MAX_LINE_BYTES`].
    #[error("a line longer than {MAX_LINE_BYTES} bytes")]
    LineTooLong,
    /// A line with nothing on it, not even the type byte.
    #[error("an empty line")]
    EmptyLine,
    /// A type byte RESP does not have.
    #[error("unexpected type byte {:?}", char::from(*.0))]
    UnknownType(u8),
    /// An integer, length or count that is not a decimal integer.
    #[error("'{0}' is not an integer")]
    NotAnInteger(String),
    /// A length or count below -1 or above its limit ([`MAX_BULK_BYTES`], [`MAX_ARRAY_LEN`]).
    #[error("length {0} out of range")]
    LengthOutOfRange(i64),
    /// Aggregates nested deeper than [`MAX_DEPTH`].
    #[error("aggregates nested deeper than {MAX_DEPTH}")]
    TooDeep,
    /// A bulk string whose bytes are not followed by CRLF.
    #[error("a bulk string without CRLF")]
    BulkWithoutCrlf,
    /// A double, boolean, big number or verbatim string whose text is not one.
    #[error("malformed {kind}: '{text}'")]
    Malformed {
        /// Which type.
        kind: &'static str,
        /// Its text.
        text: String,
    },
}

/// Why no reply could be had.
#[derive(Debug, Error)]
pub enum RespError {
    /// The stream failed.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// The server closed the connection, before or in the middle of a reply.
    #[error("the server closed the connection")]
    Closed,
    /// The server sent something that is not RESP, or beyond the limits.
    #[error("protocol error: {0}")]
    Protocol(#[from] Violation),
}

/// The kinds of aggregate, by the header that opens them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregate {
    /// `*n`: n elements.
    Array,
    /// RESP3 `%n`: n keys, each followed by its value.
    Map,
    /// RESP3 `~n`: n elements.
    Set,
    /// RESP3 `>n`: n elements.
    Push,
    /// RESP3 `|n`: n keys and values about the reply that follows.
    Attribute,
}

impl Aggregate {
    fn type_byte(self) -> u8 {
        match self {
            Aggregate::Array => b'*',
            Aggregate::Map => b'%',
            Aggregate::Set => b'~',
            Aggregate::Push => b'>',
            Aggregate::Attribute => b'|',
        }
    }

    /// Elements per unit of the announced count: 2 for maps and attributes.
    fn width(self) -> usize {
        match self {
            Aggregate::Map | Aggregate::Attribute => 2,
            _ => 1,
        }
    }

    fn finish(self, items: Vec<Reply>) -> Option<Reply> {
        match self {
            Aggregate::Array => Some(Reply::Array(items)),
            Aggregate::Map => Some(Reply::Map(items)),
            Aggregate::Set => Some(Reply::Set(items)),
            Aggregate::Push => Some(Reply::Push(items)),
            Aggregate::Attribute => None,
        }
    }
}

// Writing. The functions below append one frame to `out` and never fail; they allocate nothing
// but `out`'s growth, so the node's endpoint calls them for every reply.

/// Appends an aggregate's header: `*n\r\n`, `%n\r\n`, ... `count` is the number of elements,
/// or of pairs for a map or an attribute; the caller writes them next.
#[inline]
pub fn write_header(out: &mut Vec<u8>, kind: Aggregate, count: usize) {
    out.push(kind.type_byte());
    write_decimal(out, count as i64);
}

/// Appends `$len\r\n`, `bytes` and `\r\n`.
#[inline]
pub fn write_bulk(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(b'$');
    write_decimal(out, bytes.len() as i64);
    out.extend_from_slice(bytes);
    out.extend_from_slice(b"\r\n");
}

/// Appends `:n\r\n`.
#[inline]
pub fn write_integer(out: &mut Vec<u8>, n: i64) {
    out.push(b':');
    write_decimal(out, n);
}

/// Appends `+text\r\n`, line breaks in `text` written as spaces (they would end it early).
#[inline]
pub fn write_simple(out: &mut Vec<u8>, text: &str) {
    write_line(out, b'+', text);
}

/// Appends `-text\r\n`, line breaks in `text` written as spaces. `text` starts with the error
/// code (`ERR`, `WRONGTYPE`, ...).
#[inline]
pub fn write_error(out: &mut Vec<u8>, text: &str) {
    write_line(out, b'-', text);
}

/// Appends RESP3's `,text\r\n`, line breaks in `text` written as spaces. (RESP2 sends a double
/// as a bulk string.)
#[inline]
pub fn write_double(out: &mut Vec<u8>, text: &str) {
    write_line(out, b',', text);
}

/// RESP2's null bulk string.
pub const NIL: &[u8] = b"$-1\r\n";
/// RESP2's null array.
pub const NIL_ARRAY: &[u8] = b"*-1\r\n";
/// RESP3's null, for both.
pub const NULL: &[u8] = b"_\r\n";

/// Appends `n` in decimal and CRLF.
#[inline]
fn write_decimal(out: &mut Vec<u8>, n: i64) {
    // Writing to a Vec cannot fail, and formats in place (no String).
    let _ = write!(out, "{n}\r\n");
}

#[inline]
fn write_line(out: &mut Vec<u8>, type_byte: u8, text: &str) {
    out.push(type_byte);
    let bytes = text.as_bytes();
    if bytes.iter().any(|&b| b == b'\r' || b == b'\n') {
        out.extend(bytes.iter().map(|&b| match b {
            b'\r' | b'\n' => b' ',
            other => other,
        }));
    } else {
        out.extend_from_slice(bytes);
    }
    out.extend_from_slice(b"\r\n");
}

/// Appends a command, `args` with its name first, as an array of bulk strings (what every Redis
/// client sends).
pub fn encode_command<A: AsRef<[u8]>>(args: &[A], out: &mut Vec<u8>) {
    write_header(out, Aggregate::Array, args.len());
    for arg in args {
        write_bulk(out, arg.as_ref());
    }
}

// Reading.

/// Reads one line and returns it without its CRLF; `Ok(None)` at a clean end of stream.
fn read_line(input: &mut impl BufRead) -> Result<Option<Vec<u8>>, RespError> {
    let mut line = Vec::new();
    let limit = MAX_LINE_BYTES as u64;
    let read = input.take(limit).read_until(b'\n', &mut line)?;
    if read == 0 {
        return Ok(None);
    }
    if !line.ends_with(b"\r\n") {
        return Err(if line.len() as u64 == limit {
            Violation::LineTooLong.into()
        } else {
            RespError::Closed
        });
    }
    line.truncate(line.len() - 2);
    Ok(Some(line))
}

fn parse_int(text: &[u8]) -> Result<i64, Violation> {
    std::str::from_utf8(text)
        .ok()
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| Violation::NotAnInteger(String::from_utf8_lossy(text).into_owned()))
}

/// A length announced by a header: `None` for -1, refused below it or above `max`.
fn parse_len(text: &[u8], max: usize) -> Result<Option<usize>, Violation> {
    match parse_int(text)? {
        -1 => Ok(None),
        n if n >= 0 && n as u64 <= max as u64 => Ok(Some(n as usize)),
        n => Err(Violation::LengthOutOfRange(n)),
    }
}

/// Reads `len` bytes and the CRLF after them. The buffer grows with the bytes that come, not
/// with the length announced.
fn read_blob(input: &mut impl BufRead, len: usize) -> Result<Vec<u8>, RespError> {
    let wanted = len as u64 + 2;
    let mut body = Vec::with_capacity((len + 2).min(MAX_LINE_BYTES));
    if input.take(wanted).read_to_end(&mut body)? as u64 != wanted {
        return Err(RespError::Closed);
    }
    if !body.ends_with(b"\r\n") {
        return Err(Violation::BulkWithoutCrlf.into());
    }
    body.truncate(len);
    Ok(body)
}

fn text_of(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn malformed(kind: &'static str, text: &[u8]) -> Violation {
    Violation::Malformed {
        kind,
        text: text_of(text),
    }
}

/// What one line (and, for a blob, the bytes after it) holds: a whole value, or the header of an
/// aggregate whose elements follow.
enum Item {
    Value(Reply),
    Open(Aggregate, usize),
}

fn read_item(input: &mut impl BufRead) -> Result<Item, RespError> {
    let Some(line) = read_line(input)? else {
        return Err(RespError::Closed);
    };
    let Some((&type_byte, rest)) = line.split_first() else {
        return Err(Violation::EmptyLine.into());
    };
    let aggregate = match type_byte {
        b'*' => Aggregate::Array,
        b'%' => Aggregate::Map,
        b'~' => Aggregate::Set,
        b'>' => Aggregate::Push,
        b'|' => Aggregate::Attribute,
        _ => return read_scalar(input, type_byte, rest).map(Item::Value),
    };
    let max = MAX_ARRAY_LEN / aggregate.width();
    Ok(match parse_len(rest, max)? {
        None if aggregate == Aggregate::Array => Item::Value(Reply::NilArray),
        None => return Err(Violation::LengthOutOfRange(-1).into()),
        Some(count) => Item::Open(aggregate, count * aggregate.width()),
    })
}

fn read_scalar(input: &mut impl BufRead, type_byte: u8, rest: &[u8]) -> Result<Reply, RespError> {
    Ok(match type_byte {
        b'+' => Reply::Simple(text_of(rest)),
        b'-' => Reply::Error(text_of(rest)),
        b':' => Reply::Integer(parse_int(rest)?),
        b'$' => match parse_len(rest, MAX_BULK_BYTES)? {
            None => Reply::Nil,
            Some(len) => Reply::Bulk(read_blob(input, len)?),
        },
        b'!' => match parse_len(rest, MAX_BULK_BYTES)? {
            None => return Err(Violation::LengthOutOfRange(-1).into()),
            Some(len) => Reply::Error(text_of(&read_blob(input, len)?)),
        },
        b'=' => match parse_len(rest, MAX_BULK_BYTES)? {
            None => return Err(Violation::LengthOutOfRange(-1).into()),
            Some(len) => {
                let blob = read_blob(input, len)?;
                if blob.len() < 4 || blob[3] != b':' {
                    return Err(malformed("verbatim string", &blob).into());
                }
                Reply::Verbatim {
                    format: text_of(&blob[..3]),
                    text: blob[4..].to_vec(),
                }
            }
        },
        b'_' if rest.is_empty() => Reply::Null,
        b'_' => return Err(malformed("null", rest).into()),
        b',' => {
            let text = std::str::from_utf8(rest).map_err(|_| malformed("double", rest))?;
            text.parse::<f64>().map_err(|_| malformed("double", rest))?;
            Reply::Double(text.to_owned())
        }
        b'#' => match rest {
            b"t" => Reply::Boolean(true),
            b"f" => Reply::Boolean(false),
            _ => return Err(malformed("boolean", rest).into()),
        },
        b'(' => {
            let digits = rest.strip_prefix(b"-").unwrap_or(rest);
            if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
                return Err(malformed("big number", rest).into());
            }
            Reply::BigNumber(text_of(rest))
        }
        other => return Err(Violation::UnknownType(other).into()),
    })
}

/// Reads one complete reply from `input`, blocking until it has come. A RESP3 push message
/// (`>`) is a reply like the others: the caller tells it from the answer it waits for.
///
/// # Errors
/// [`RespError::Closed`] if the stream ends before the reply does, [`RespError::Io`] if it
/// fails, [`RespError::Protocol`] if the bytes are not RESP or pass a limit. After an error the
/// stream's position is unknown: the connection cannot be used again.
pub fn read_reply(input: &mut impl BufRead) -> Result<Reply, RespError> {
    // The aggregates being filled, innermost last, with their kinds and element counts.
    let mut open: Vec<(Aggregate, Vec<Reply>, usize)> = Vec::new();
    loop {
        let mut value = match read_item(input)? {
            Item::Value(value) => Some(value),
            Item::Open(kind, 0) => kind.finish(Vec::new()),
            Item::Open(kind, len) => {
                if open.len() == MAX_DEPTH {
                    return Err(Violation::TooDeep.into());
                }
                open.push((kind, Vec::with_capacity(len.min(AGGREGATE_RESERVE)), len));
                continue;
            }
        };
        // Hand the finished value to its aggregate, closing every aggregate it completes; at
        // most `MAX_DEPTH` steps. A finished attribute is no value: it is dropped.
        while let Some(finished) = value.take() {
            let Some((_, items, len)) = open.last_mut() else {
                return Ok(finished);
            };
            items.push(finished);
            if items.len() == *len {
                let (kind, items, _) = open.pop().expect("an open aggregate");
                value = kind.finish(items);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &[u8]) -> Result<Reply, RespError> {
        read_reply(&mut &bytes[..])
    }

    fn bulk(text: &str) -> Reply {
        Reply::Bulk(text.as_bytes().to_vec())
    }

    fn violation(bytes: &[u8]) -> Violation {
        match parse(bytes) {
            Err(RespError::Protocol(violation)) => violation,
            other => panic!("{bytes:?} gave {other:?}"),
        }
    }

    #[test]
    fn commands_are_sent_as_arrays_of_bulk_strings() {
        let mut out = Vec::new();
        encode_command(&[b"SET".as_slice(), b"a b", b""], &mut out);
        assert_eq!(out, b"*3\r\n$3\r\nSET\r\n$3\r\na b\r\n$0\r\n\r\n");
    }

    #[test]
    fn every_resp2_reply_type_is_parsed() {
        assert_eq!(parse(b"+OK\r\n").unwrap(), Reply::Simple("OK".into()));
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
        assert_eq!(parse(b"*-1\r\n").unwrap(), Reply::NilArray);
        assert_eq!(parse(b"*0\r\n").unwrap(), Reply::Array(Vec::new()));
    }

    #[test]
    fn every_resp3_reply_type_is_parsed() {
        assert_eq!(parse(b"_\r\n").unwrap(), Reply::Null);
        assert_eq!(parse(b",-2.5\r\n").unwrap(), Reply::Double("-2.5".into()));
        assert_eq!(parse(b",inf\r\n").unwrap(), Reply::Double("inf".into()));
        assert_eq!(parse(b"#t\r\n").unwrap(), Reply::Boolean(true));
        assert_eq!(parse(b"#f\r\n").unwrap(), Reply::Boolean(false));
        assert_eq!(
            parse(b"(-123456789012345678901234567890\r\n").unwrap(),
            Reply::BigNumber("-123456789012345678901234567890".into())
        );
        assert_eq!(
            parse(b"!8\r\nERR a\r\nb\r\n").unwrap(),
            Reply::Error("ERR a\r\nb".into())
        );
        assert_eq!(
            parse(b"=8\r\ntxt:a\r\nb\r\n").unwrap(),
            Reply::Verbatim {
                format: "txt".into(),
                text: b"a\r\nb".to_vec()
            }
        );
        assert_eq!(
            parse(b"%2\r\n$1\r\na\r\n:1\r\n$1\r\nb\r\n_\r\n").unwrap(),
            Reply::Map(vec![bulk("a"), Reply::Integer(1), bulk("b"), Reply::Null])
        );
        assert_eq!(
            parse(b"~2\r\n$1\r\nx\r\n$1\r\ny\r\n").unwrap(),
            Reply::Set(vec![bulk("x"), bulk("y")])
        );
        assert_eq!(
            parse(b">2\r\n$10\r\ninvalidate\r\n*0\r\n").unwrap(),
            Reply::Push(vec![bulk("invalidate"), Reply::Array(Vec::new())])
        );
        assert_eq!(parse(b"%0\r\n").unwrap(), Reply::Map(Vec::new()));
    }

    #[test]
    fn attributes_are_dropped_and_the_reply_they_annotate_returned() {
        assert_eq!(
            parse(b"|1\r\n+ttl\r\n:3\r\n$1\r\nv\r\n").unwrap(),
            bulk("v")
        );
        // Inside an aggregate, an attribute is not one of its elements.
        assert_eq!(
            parse(b"*2\r\n:1\r\n|1\r\n+a\r\n*1\r\n:0\r\n:2\r\n").unwrap(),
            Reply::Array(vec![Reply::Integer(1), Reply::Integer(2)])
        );
        assert_eq!(parse(b"|0\r\n:5\r\n").unwrap(), Reply::Integer(5));
    }

    #[test]
    fn nested_aggregates_are_parsed_without_recursion() {
        let reply = parse(b"*3\r\n*2\r\n:1\r\n*1\r\n$1\r\nx\r\n$-1\r\n+s\r\n").unwrap();
        assert_eq!(
            reply,
            Reply::Array(vec![
                Reply::Array(vec![
                    Reply::Integer(1),
                    Reply::Array(vec![Reply::Bulk(b"x".to_vec())]),
                ]),
                Reply::Nil,
                Reply::Simple("s".into()),
            ])
        );
        let at_limit = "*1\r\n".repeat(MAX_DEPTH) + ":1\r\n";
        assert!(parse(at_limit.as_bytes()).is_ok());
    }

    #[test]
    fn replies_beyond_the_limits_are_refused() {
        let deep = "*1\r\n".repeat(MAX_DEPTH + 1) + ":1\r\n";
        assert_eq!(violation(deep.as_bytes()), Violation::TooDeep);
        let deep_maps = "%1\r\n+k\r\n".repeat(MAX_DEPTH + 1) + ":1\r\n";
        assert_eq!(violation(deep_maps.as_bytes()), Violation::TooDeep);
        let huge = format!("${}\r\n", MAX_BULK_BYTES + 1);
        assert!(matches!(
            violation(huge.as_bytes()),
            Violation::LengthOutOfRange(_)
        ));
        let long = format!("*{}\r\n", MAX_ARRAY_LEN + 1);
        assert!(matches!(
            violation(long.as_bytes()),
            Violation::LengthOutOfRange(_)
        ));
        let wide_map = format!("%{}\r\n", MAX_ARRAY_LEN / 2 + 1);
        assert!(matches!(
            violation(wide_map.as_bytes()),
            Violation::LengthOutOfRange(_)
        ));
        let line = [b"+".as_slice(), &vec![b'a'; MAX_LINE_BYTES]].concat();
        assert_eq!(violation(&line), Violation::LineTooLong);
    }

    #[test]
    fn malformed_replies_are_typed_errors() {
        assert_eq!(violation(b"*-2\r\n"), Violation::LengthOutOfRange(-2));
        assert_eq!(violation(b"%-1\r\n"), Violation::LengthOutOfRange(-1));
        assert_eq!(violation(b"?x\r\n"), Violation::UnknownType(b'?'));
        assert_eq!(violation(b"\r\n"), Violation::EmptyLine);
        assert!(matches!(violation(b":x\r\n"), Violation::NotAnInteger(_)));
        assert_eq!(violation(b"$1\r\nab\r\n"), Violation::BulkWithoutCrlf);
        for bad in [
            &b",x\r\n"[..],
            b"#y\r\n",
            b"(1a\r\n",
            b"(\r\n",
            b"=2\r\nab\r\n",
            b"_x\r\n",
        ] {
            assert!(
                matches!(violation(bad), Violation::Malformed { .. }),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_reply_cut_short_means_the_server_closed() {
        for cut in [
            &b""[..],
            b"+OK",
            b"$5\r\nab",
            b"*2\r\n:1\r\n",
            b"%1\r\n+k\r\n",
            b"|1\r\n+k\r\n:1\r\n",
        ] {
            assert!(matches!(parse(cut), Err(RespError::Closed)), "{cut:?}");
        }
    }

    #[test]
    fn random_bytes_never_panic() {
        // xorshift: deterministic, no dependency.
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let alphabet = b"*$%~>|_,#(=!+-:\r\n-0123456789tfx:";
        for _ in 0..20_000 {
            let len = (next() % 48) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|_| alphabet[next() as usize % alphabet.len()])
                .collect();
            let _ = parse(&bytes);
        }
    }

    #[test]
    fn what_the_writers_write_reads_back() {
        let mut out = Vec::new();
        write_header(&mut out, Aggregate::Array, 8);
        write_simple(&mut out, "a\r\nb");
        write_error(&mut out, "ERR x\ny");
        write_integer(&mut out, i64::MIN);
        write_bulk(&mut out, b"\r\n");
        out.extend_from_slice(NIL);
        out.extend_from_slice(NIL_ARRAY);
        write_header(&mut out, Aggregate::Map, 1);
        write_double(&mut out, "1.5");
        out.extend_from_slice(NULL);
        write_header(&mut out, Aggregate::Set, 0);
        assert_eq!(
            parse(&out).unwrap(),
            Reply::Array(vec![
                Reply::Simple("a  b".into()),
                Reply::Error("ERR x y".into()),
                Reply::Integer(i64::MIN),
                bulk("\r\n"),
                Reply::Nil,
                Reply::NilArray,
                Reply::Map(vec![Reply::Double("1.5".into()), Reply::Null]),
                Reply::Set(Vec::new()),
            ])
        );
    }
}
