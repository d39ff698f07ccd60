//! Key ranges of [`Scan`](crate::Scan) and [`DeleteRange`](crate::DeleteRange): `start`, `end` and
//! `prefix` reduced to one half-open interval `[lower, upper)`.

use std::ops::Bound;

/// A non-empty half-open key interval `[lower, upper)`; `upper == None` means unbounded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct KeyInterval {
    pub lower: Vec<u8>,
    pub upper: Option<Vec<u8>>,
}

impl KeyInterval {
    /// The interval of the keys `k` with `start <= k`, `k < end` (unless `end` is empty) and
    /// `k` starting with `prefix`; `None` if no key can be in it.
    pub fn new(start: &[u8], end: &[u8], prefix: &[u8]) -> Option<KeyInterval> {
        let lower = start.max(prefix).to_vec();
        let end_bound = (!end.is_empty()).then(|| end.to_vec());
        let prefix_bound = prefix_end(prefix);
        let upper = match (end_bound, prefix_bound) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        match &upper {
            Some(u) if *u <= lower => None,
            _ => Some(KeyInterval { lower, upper }),
        }
    }

    /// The interval as bounds redb's `range` accepts.
    pub fn bounds(&self) -> (Bound<&[u8]>, Bound<&[u8]>) {
        let upper = match &self.upper {
            Some(u) => Bound::Excluded(u.as_slice()),
            None => Bound::Unbounded,
        };
        (Bound::Included(self.lower.as_slice()), upper)
    }
}

/// The smallest key above every key starting with `prefix`, or `None` if there is none (empty
/// prefix, or all bytes 0xff).
pub(crate) fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_increments_the_last_byte_below_0xff() {
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(b"a\xff\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_end(b"\xff"), None);
        assert_eq!(prefix_end(b""), None);
    }

    #[test]
    fn interval_intersects_range_and_prefix() {
        let i = KeyInterval::new(b"a/m", b"", b"a/").unwrap();
        assert_eq!(i.lower, b"a/m".to_vec());
        assert_eq!(i.upper, Some(b"a0".to_vec()));
        let i = KeyInterval::new(b"", b"a/c", b"a/").unwrap();
        assert_eq!(i.lower, b"a/".to_vec());
        assert_eq!(i.upper, Some(b"a/c".to_vec()));
        let all = KeyInterval::new(b"", b"", b"").unwrap();
        assert_eq!(all.upper, None);
    }

    #[test]
    fn empty_intervals_are_none() {
        assert_eq!(KeyInterval::new(b"b", b"a", b""), None);
        assert_eq!(KeyInterval::new(b"b", b"b", b""), None);
        assert_eq!(KeyInterval::new(b"c", b"", b"b"), None);
    }
}
