//! Numbers as Redis reads and writes them.

use super::{err, not_integer, Res};

/// An integer in Redis's strict form (optional `-`, digits, no leading zeros, no spaces).
pub(crate) fn parse_int(bytes: &[u8]) -> Option<i64> {
    if bytes.is_empty() || bytes.len() > 20 {
        return None;
    }
    let text = std::str::from_utf8(bytes).ok()?;
    let n: i64 = text.parse().ok()?;
    (n.to_string() == text).then_some(n)
}

/// An integer argument, or Redis's error.
pub(crate) fn int_arg(bytes: &[u8]) -> Res<i64> {
    parse_int(bytes).map_or_else(not_integer, Ok)
}

/// A float as Redis's `strtod` reads it (no spaces; `inf`, `+inf`, `-inf` allowed; NaN refused).
pub(crate) fn parse_float(bytes: &[u8]) -> Option<f64> {
    let text = std::str::from_utf8(bytes).ok()?;
    if text.is_empty() || text.len() > 5000 || text.starts_with(char::is_whitespace) {
        return None;
    }
    let lower = text.to_ascii_lowercase();
    let value = match lower.as_str() {
        "inf" | "+inf" | "infinity" | "+infinity" => f64::INFINITY,
        "-inf" | "-infinity" => f64::NEG_INFINITY,
        _ if lower.contains("inf") || lower.contains("nan") => return None,
        _ => text.parse().ok()?,
    };
    (!value.is_nan()).then_some(value)
}

/// A float argument, or Redis's error.
pub(crate) fn float_arg(bytes: &[u8]) -> Res<f64> {
    parse_float(bytes).map_or_else(|| err("value is not a valid float"), Ok)
}

pub(crate) use synod_wire::redis::format_double;

/// A float stored by `INCRBYFLOAT`: the shortest decimal text, never in exponent form.
pub(crate) fn format_stored_float(value: f64) -> String {
    format!("{value}")
}

/// The 8 bytes whose byte order is `value`'s numeric order (`-0` before `0`; no NaN).
pub(crate) fn ordered_score(value: f64) -> [u8; 8] {
    let bits = value.to_bits();
    let ordered = if bits >> 63 == 1 {
        !bits
    } else {
        bits | (1 << 63)
    };
    ordered.to_be_bytes()
}

/// The inverse of [`ordered_score`].
pub(crate) fn score_from_ordered(bytes: &[u8]) -> f64 {
    let mut raw = [0u8; 8];
    raw.copy_from_slice(&bytes[..8]);
    let ordered = u64::from_be_bytes(raw);
    let bits = if ordered >> 63 == 1 {
        ordered & !(1 << 63)
    } else {
        !ordered
    };
    f64::from_bits(bits)
}

/// Normalise a Redis range `start..=stop` (negative counts from the end) over `len` items:
/// `None` if it selects nothing.
pub(crate) fn clamp_range(start: i64, stop: i64, len: u64) -> Option<(u64, u64)> {
    let len = len as i64;
    let start = if start < 0 {
        (len + start).max(0)
    } else {
        start
    };
    let stop = if stop < 0 {
        len + stop
    } else {
        stop.min(len - 1)
    };
    if start > stop || start >= len || stop < 0 {
        return None;
    }
    Some((start as u64, stop as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_format_like_redis_replies() {
        assert_eq!(format_double(1.5), "1.5");
        assert_eq!(format_double(10.0), "10");
        assert_eq!(format_double(-0.25), "-0.25");
        assert_eq!(format_double(f64::INFINITY), "inf");
        assert_eq!(format_double(1e300), "1e+300");
        assert_eq!(format_double(1.5e-7), "1.5e-07");
        assert_eq!(format_double(0.1), "0.1");
    }

    #[test]
    fn ordered_scores_sort_numerically() {
        let values = [
            f64::NEG_INFINITY,
            -1e9,
            -1.5,
            -0.0,
            0.0,
            1e-9,
            2.0,
            f64::INFINITY,
        ];
        for pair in values.windows(2) {
            assert!(ordered_score(pair[0]) < ordered_score(pair[1]), "{pair:?}");
        }
        for v in values {
            assert_eq!(score_from_ordered(&ordered_score(v)).to_bits(), v.to_bits());
        }
    }

    #[test]
    fn integers_and_floats_parse_strictly() {
        assert_eq!(parse_int(b"-12"), Some(-12));
        assert_eq!(parse_int(b"012"), None);
        assert_eq!(parse_int(b" 1"), None);
        assert_eq!(parse_float(b"1.5"), Some(1.5));
        assert_eq!(parse_float(b"-inf"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_float(b"nan"), None);
        assert_eq!(parse_float(b" 1"), None);
        assert_eq!(parse_float(b""), None);
    }

    #[test]
    fn ranges_clamp_like_redis() {
        assert_eq!(clamp_range(0, -1, 3), Some((0, 2)));
        assert_eq!(clamp_range(-100, 100, 3), Some((0, 2)));
        assert_eq!(clamp_range(2, 1, 3), None);
        assert_eq!(clamp_range(5, 10, 3), None);
        assert_eq!(clamp_range(0, -1, 0), None);
    }
}
