//! Replies as `redis-cli` shows them. On a terminal ([`tty`]): `"value"`
//! quoted with escapes, `(integer) 1`, `(nil)`, `(error) ERR ...`,
//! `(empty array)` and numbered array items, nested arrays indented under
//! their number; RESP3's types (after `HELLO 3`) as `(double) 2.5`,
//! `(true)`, `(big number) n`, maps, sets and pushes as arrays (a map's keys
//! and values alternating). For scripts ([`raw`]): values as they are, one
//! per line.

use std::fmt::Write as _;

use crate::resp::Reply;

/// `bytes` between double quotes, escaped so that they can be typed back:
/// `\\`, `\"`, `\n`, `\r`, `\t`, `\a`, `\b`, and `\xHH` for other control
/// characters and for bytes that are not UTF-8.
pub fn quoted(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() + 2);
    out.push('"');
    let push_escaped = |out: &mut String, c: char| match c {
        '\\' => out.push_str("\\\\"),
        '"' => out.push_str("\\\""),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\x07' => out.push_str("\\a"),
        '\x08' => out.push_str("\\b"),
        _ => {
            let mut utf8 = [0; 4];
            for byte in c.encode_utf8(&mut utf8).bytes() {
                let _ = write!(out, "\\x{byte:02x}");
            }
        }
    };
    match std::str::from_utf8(bytes) {
        Ok(text) => {
            for c in text.chars() {
                if c.is_control() || c == '\\' || c == '"' {
                    push_escaped(&mut out, c);
                } else {
                    out.push(c);
                }
            }
        }
        Err(_) => {
            for &byte in bytes {
                match byte {
                    b' '..=b'~' if byte != b'\\' && byte != b'"' => out.push(byte as char),
                    b'\\' | b'"' | b'\n' | b'\r' | b'\t' | b'\x07' | b'\x08' => {
                        push_escaped(&mut out, byte as char)
                    }
                    _ => {
                        let _ = write!(out, "\\x{byte:02x}");
                    }
                }
            }
        }
    }
    out.push('"');
    out
}

/// The elements of an aggregate (a map's keys and values alternating), or
/// `None` for a scalar.
fn elements(reply: &Reply) -> Option<&[Reply]> {
    match reply {
        Reply::Array(items) | Reply::Map(items) | Reply::Set(items) | Reply::Push(items) => {
            Some(items)
        }
        _ => None,
    }
}

fn scalar_tty(reply: &Reply, out: &mut String) {
    match reply {
        Reply::Simple(text) => out.push_str(text),
        Reply::Error(text) => {
            out.push_str("(error) ");
            out.push_str(text);
        }
        Reply::Integer(n) => {
            let _ = write!(out, "(integer) {n}");
        }
        Reply::Bulk(bytes) => out.push_str(&quoted(bytes)),
        Reply::Nil | Reply::NilArray | Reply::Null => out.push_str("(nil)"),
        Reply::Double(text) => {
            let _ = write!(out, "(double) {text}");
        }
        Reply::Boolean(true) => out.push_str("(true)"),
        Reply::Boolean(false) => out.push_str("(false)"),
        Reply::BigNumber(text) => {
            let _ = write!(out, "(big number) {text}");
        }
        Reply::Verbatim { text, .. } => out.push_str(&String::from_utf8_lossy(text)),
        Reply::Map(items) => {
            debug_assert!(items.is_empty());
            out.push_str("(empty map)");
        }
        Reply::Set(items) => {
            debug_assert!(items.is_empty());
            out.push_str("(empty set)");
        }
        Reply::Array(items) | Reply::Push(items) => {
            debug_assert!(items.is_empty());
            out.push_str("(empty array)");
        }
    }
    out.push('\n');
}

/// `reply` for a person at a terminal, ending with a newline.
pub fn tty(reply: &Reply) -> String {
    struct Frame<'a> {
        items: &'a [Reply],
        next: usize,
        /// Written before every item but the first, whose line already
        /// holds the parent's number.
        prefix: String,
        /// Digits of the largest index, so that numbers line up.
        width: usize,
    }
    let mut out = String::new();
    let mut stack: Vec<Frame<'_>> = Vec::new();
    let mut pending = Some((reply, String::new()));
    loop {
        if let Some((value, prefix)) = pending.take() {
            match elements(value) {
                Some(items) if !items.is_empty() => stack.push(Frame {
                    items,
                    next: 0,
                    prefix,
                    width: items.len().to_string().len(),
                }),
                _ => scalar_tty(value, &mut out),
            }
        }
        let Some(frame) = stack.last_mut() else {
            return out;
        };
        if frame.next == frame.items.len() {
            stack.pop();
            continue;
        }
        let index = frame.next;
        frame.next += 1;
        if index > 0 {
            out.push_str(&frame.prefix);
        }
        let _ = write!(out, "{:>width$}) ", index + 1, width = frame.width);
        let child_prefix = format!("{}{}", frame.prefix, " ".repeat(frame.width + 2));
        pending = Some((&frame.items[index], child_prefix));
    }
}

/// `reply` for a script, ending with a newline: strings as their bytes,
/// integers as digits, nil as an empty line, arrays one element per line
/// (nested arrays flattened), errors as their message.
pub fn raw(reply: &Reply) -> Vec<u8> {
    let mut out = Vec::new();
    let mut stack: Vec<std::slice::Iter<'_, Reply>> = Vec::new();
    let mut pending = Some(reply);
    loop {
        if let Some(value) = pending.take() {
            if let Some(items) = elements(value) {
                stack.push(items.iter());
            } else {
                match value {
                    Reply::Simple(text)
                    | Reply::Error(text)
                    | Reply::Double(text)
                    | Reply::BigNumber(text) => out.extend_from_slice(text.as_bytes()),
                    Reply::Integer(n) => out.extend_from_slice(n.to_string().as_bytes()),
                    Reply::Boolean(b) => out.push(if *b { b'1' } else { b'0' }),
                    Reply::Bulk(text) | Reply::Verbatim { text, .. } => out.extend_from_slice(text),
                    _ => {}
                }
                out.push(b'\n');
            }
        }
        let Some(items) = stack.last_mut() else {
            return out;
        };
        match items.next() {
            Some(item) => pending = Some(item),
            None => {
                stack.pop();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(text: &str) -> Reply {
        Reply::Bulk(text.as_bytes().to_vec())
    }

    #[test]
    fn scalars_look_like_redis_cli() {
        assert_eq!(tty(&Reply::Simple("OK".into())), "OK\n");
        assert_eq!(tty(&Reply::Integer(1)), "(integer) 1\n");
        assert_eq!(tty(&Reply::Nil), "(nil)\n");
        assert_eq!(tty(&bulk("value")), "\"value\"\n");
        assert_eq!(
            tty(&Reply::Error("ERR wrong number of arguments".into())),
            "(error) ERR wrong number of arguments\n"
        );
        assert_eq!(tty(&Reply::Array(Vec::new())), "(empty array)\n");
        assert_eq!(tty(&Reply::NilArray), "(nil)\n");
    }

    #[test]
    fn resp3_types_look_like_redis_cli() {
        assert_eq!(tty(&Reply::Null), "(nil)\n");
        assert_eq!(tty(&Reply::Double("2.5".into())), "(double) 2.5\n");
        assert_eq!(tty(&Reply::Boolean(true)), "(true)\n");
        assert_eq!(tty(&Reply::BigNumber("12".into())), "(big number) 12\n");
        assert_eq!(
            tty(&Reply::Map(vec![bulk("k"), Reply::Integer(1)])),
            "1) \"k\"\n2) (integer) 1\n"
        );
        assert_eq!(tty(&Reply::Set(Vec::new())), "(empty set)\n");
        assert_eq!(
            raw(&Reply::Set(vec![bulk("m"), Reply::Double("1.5".into())])),
            b"m\n1.5\n"
        );
    }

    #[test]
    fn strings_are_quoted_so_they_can_be_typed_back() {
        assert_eq!(quoted(b"a \"b\"\\\n\t"), r#""a \"b\"\\\n\t""#);
        assert_eq!(quoted(b"\x00\x7f"), r#""\x00\x7f""#);
        assert_eq!(quoted(&[0xff, b'a', b'"']), r#""\xffa\"""#);
        assert_eq!(quoted("clé ü".as_bytes()), "\"clé ü\"");
    }

    #[test]
    fn array_items_are_numbered_and_aligned() {
        let items: Vec<Reply> = (1..=10).map(|i| bulk(&format!("k{i}"))).collect();
        let text = tty(&Reply::Array(items));
        assert!(text.starts_with(" 1) \"k1\"\n 2) \"k2\"\n"), "{text}");
        assert!(text.ends_with("10) \"k10\"\n"), "{text}");
    }

    #[test]
    fn nested_arrays_are_indented_under_their_number() {
        let reply = Reply::Array(vec![
            bulk("0"),
            Reply::Array(vec![
                bulk("a"),
                Reply::Array(vec![Reply::Integer(1), Reply::Nil]),
            ]),
            Reply::Array(Vec::new()),
        ]);
        assert_eq!(
            tty(&reply),
            "1) \"0\"\n\
             2) 1) \"a\"\n\
             \x20  2) 1) (integer) 1\n\
             \x20     2) (nil)\n\
             3) (empty array)\n"
        );
    }

    #[test]
    fn raw_output_is_one_value_per_line() {
        let reply = Reply::Array(vec![
            bulk("a b"),
            Reply::Integer(7),
            Reply::Nil,
            Reply::Array(vec![bulk("x")]),
        ]);
        assert_eq!(raw(&reply), b"a b\n7\n\nx\n");
        assert_eq!(raw(&bulk("v")), b"v\n");
        assert_eq!(raw(&Reply::Nil), b"\n");
        assert_eq!(raw(&Reply::Array(Vec::new())), b"");
    }
}
