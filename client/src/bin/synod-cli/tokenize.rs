//! Splitting an input line into arguments the way `redis-cli` does
//! (`sdssplitargs`): words separated by white space; `"..."` with the
//! escapes `\n \r \t \b \a \\ \" \xHH`; `'...'` with only `\'`. A closing
//! quote must end the word.

use thiserror::Error;

/// Why a line could not be split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum SplitError {
    /// A quote was opened and never closed.
    #[error("unbalanced quotes")]
    Unbalanced,
    /// A closing quote was followed by something other than white space.
    #[error("a closing quote must be followed by a space")]
    TextAfterQuote,
}

fn is_space(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\n' | b'\r' | b'\x0b' | b'\x0c')
}

fn hex_value(byte: u8) -> Option<u8> {
    (byte as char).to_digit(16).map(|d| d as u8)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Quote {
    None,
    Double,
    Single,
}

/// The arguments of `line`; an empty line gives none.
pub fn split_line(line: &[u8]) -> Result<Vec<Vec<u8>>, SplitError> {
    let mut args = Vec::new();
    let mut i = 0;
    loop {
        while i < line.len() && is_space(line[i]) {
            i += 1;
        }
        if i == line.len() {
            return Ok(args);
        }
        let mut arg = Vec::new();
        let mut quote = Quote::None;
        // Each pass consumes at least one byte, so the loop ends.
        loop {
            let Some(&byte) = line.get(i) else {
                if quote != Quote::None {
                    return Err(SplitError::Unbalanced);
                }
                break;
            };
            match quote {
                Quote::Double => match byte {
                    b'\\'
                        if i + 3 < line.len()
                            && line[i + 1] == b'x'
                            && hex_value(line[i + 2]).is_some()
                            && hex_value(line[i + 3]).is_some() =>
                    {
                        let high = hex_value(line[i + 2]).unwrap_or(0);
                        let low = hex_value(line[i + 3]).unwrap_or(0);
                        arg.push(high * 16 + low);
                        i += 3;
                    }
                    b'\\' if i + 1 < line.len() => {
                        i += 1;
                        arg.push(match line[i] {
                            b'n' => b'\n',
                            b'r' => b'\r',
                            b't' => b'\t',
                            b'b' => b'\x08',
                            b'a' => b'\x07',
                            other => other,
                        });
                    }
                    b'"' => {
                        if line.get(i + 1).is_some_and(|b| !is_space(*b)) {
                            return Err(SplitError::TextAfterQuote);
                        }
                        quote = Quote::None;
                        i += 1;
                        break;
                    }
                    other => arg.push(other),
                },
                Quote::Single => match byte {
                    b'\\' if line.get(i + 1) == Some(&b'\'') => {
                        arg.push(b'\'');
                        i += 1;
                    }
                    b'\'' => {
                        if line.get(i + 1).is_some_and(|b| !is_space(*b)) {
                            return Err(SplitError::TextAfterQuote);
                        }
                        quote = Quote::None;
                        i += 1;
                        break;
                    }
                    other => arg.push(other),
                },
                Quote::None => match byte {
                    b if is_space(b) => break,
                    b'"' => quote = Quote::Double,
                    b'\'' => quote = Quote::Single,
                    other => arg.push(other),
                },
            }
            i += 1;
        }
        debug_assert_eq!(quote, Quote::None);
        args.push(arg);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(line: &str) -> Vec<String> {
        split_line(line.as_bytes())
            .unwrap()
            .into_iter()
            .map(|a| String::from_utf8(a).unwrap())
            .collect()
    }

    #[test]
    fn words_are_separated_by_any_white_space() {
        assert_eq!(split("  SET\ta   1 \r\n"), ["SET", "a", "1"]);
        assert!(split("").is_empty());
        assert!(split("   ").is_empty());
    }

    #[test]
    fn double_quotes_keep_spaces_and_understand_escapes() {
        assert_eq!(split(r#"SET "a b" "x\"y\\z""#), ["SET", "a b", r#"x"y\z"#]);
        assert_eq!(split(r#"ECHO "l1\nl2\t!""#), ["ECHO", "l1\nl2\t!"]);
        assert_eq!(
            split_line(br#"SET k "\x00\xff\x41""#).unwrap()[2],
            vec![0u8, 0xff, b'A']
        );
        assert_eq!(split(r#"ECHO "\xZZ""#), ["ECHO", "xZZ"]);
        assert_eq!(split(r#"ECHO """#), ["ECHO", ""]);
    }

    #[test]
    fn single_quotes_are_literal_but_for_an_escaped_quote() {
        assert_eq!(split(r"SET 'a b' 'it\'s \n'"), ["SET", "a b", r"it's \n"]);
        assert_eq!(split(r#"ECHO 'say "hi"'"#), ["ECHO", r#"say "hi""#]);
    }

    #[test]
    fn a_quote_may_open_inside_a_word() {
        assert_eq!(split(r#"SET pre"fix suffix""#), ["SET", "prefix suffix"]);
    }

    #[test]
    fn unbalanced_or_glued_quotes_are_refused() {
        assert_eq!(split_line(br#"SET "a"#), Err(SplitError::Unbalanced));
        assert_eq!(split_line(b"SET 'a"), Err(SplitError::Unbalanced));
        assert_eq!(split_line(br#"SET "a\"#), Err(SplitError::Unbalanced));
        assert_eq!(split_line(br#"SET "a"b"#), Err(SplitError::TextAfterQuote));
        assert_eq!(split_line(b"SET 'a'b"), Err(SplitError::TextAfterQuote));
    }

    #[test]
    fn non_ascii_text_passes_through() {
        assert_eq!(split("SET clé \"värde ü\""), ["SET", "clé", "värde ü"]);
    }
}
