//! Commands over the whole keyspace: `KEYS`, `SCAN`, `DBSIZE`, with
//! Redis's glob patterns.
//!
//! Synod's scans continue from a key, Redis's from an integer cursor. A
//! `SCAN` that has more to return stores the key to continue from in a
//! node-wide, bounded [`CursorTable`] and answers the cursor's number; the
//! number names this node's table, so the iteration must continue on the
//! same node (a connection pool spread over nodes gets `ERR invalid
//! cursor`). Each page is a linearizable read; as in Redis, a key present
//! during the whole iteration is returned, one added or removed meanwhile
//! may or may not be.

use std::collections::{HashMap, VecDeque};
use std::time::{SystemTime, UNIX_EPOCH};

use synod_kvstore::{Op, Outcome, Scan, ScanResponse};
use synod_wire::limits::MAX_SCAN_LIMIT;

use super::resp::{parse_i64, Reply};
use super::{read, RedisShared};

/// Most cursors a node remembers; the oldest is forgotten first.
pub(super) const MAX_CURSORS: usize = 16_384;
/// Most keys `KEYS` returns; a larger answer is refused (use `SCAN`).
pub(super) const MAX_KEYS_REPLY: usize = 100_000;
/// Keys examined by one `SCAN` without `COUNT` (Redis's default).
const DEFAULT_SCAN_COUNT: u32 = 10;

/// Most pattern steps one `KEYS`, `SCAN` or `*SCAN ... MATCH` may spend
/// (a fraction of a second): a pattern crafted to backtrack over long keys
/// gets an error instead of a CPU.
pub(super) const MAX_GLOB_STEPS: u64 = 50_000_000;

/// Whether `text` matches the glob `pattern` (Redis's `stringmatchlen`:
/// `*`, `?`, `[abc]`, `[^a-z]`, `\` escapes). Iterative, O(len × len):
/// for patterns from the configuration, not from clients (see [`Glob`]).
pub(super) fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let mut unbounded = u64::MAX;
    glob_match_within(pattern, text, &mut unbounded).expect("an unbounded budget")
}

/// A client's pattern with a budget of [`MAX_GLOB_STEPS`] for one command.
pub(super) struct Glob {
    pattern: Vec<u8>,
    steps_left: u64,
}

impl Glob {
    /// `pattern` with a fresh budget.
    pub(super) fn new(pattern: Vec<u8>) -> Glob {
        Glob {
            pattern,
            steps_left: MAX_GLOB_STEPS,
        }
    }

    /// Keeps the items whose key (`key_of`) matches, on a blocking thread:
    /// matching never holds a runtime worker, which the consensus core
    /// needs. An error once the command's budget is spent.
    pub(super) async fn retain<T: Send + 'static>(
        &mut self,
        items: Vec<T>,
        key_of: fn(&T) -> &[u8],
    ) -> Result<Vec<T>, Reply> {
        let mut glob = Glob {
            pattern: std::mem::take(&mut self.pattern),
            steps_left: self.steps_left,
        };
        let (glob, kept) = tokio::task::spawn_blocking(move || {
            let mut kept = Vec::new();
            for item in items {
                match glob_match_within(&glob.pattern, key_of(&item), &mut glob.steps_left) {
                    Some(true) => kept.push(item),
                    Some(false) => {}
                    None => return (glob, None),
                }
            }
            (glob, Some(kept))
        })
        .await
        .map_err(|_| Reply::err("pattern matching failed"))?;
        *self = glob;
        kept.ok_or_else(|| {
            Reply::err(format!(
                "the pattern took over {MAX_GLOB_STEPS} steps to match against these keys; \
                 use a simpler pattern"
            ))
        })
    }
}

/// [`glob_match`] spending at most `steps_left` steps: `None` once they are
/// spent.
fn glob_match_within(pattern: &[u8], text: &[u8], steps_left: &mut u64) -> Option<bool> {
    let (mut p, mut t) = (0, 0);
    // Where to resume after the last `*`: (pattern after it, text position).
    let mut star: Option<(usize, usize)> = None;
    loop {
        *steps_left = steps_left.checked_sub(1)?;
        if p < pattern.len() && pattern[p] == b'*' {
            while p < pattern.len() && pattern[p] == b'*' {
                p += 1;
            }
            if p == pattern.len() {
                return Some(true);
            }
            star = Some((p, t));
            continue;
        }
        if p < pattern.len() && t < text.len() {
            let (matched, next) = match_one(pattern, p, text[t]);
            // A character class costs its length.
            *steps_left = steps_left.checked_sub((next - p) as u64)?;
            if matched {
                p = next;
                t += 1;
                continue;
            }
        } else if p == pattern.len() && t == text.len() {
            return Some(true);
        }
        match star {
            Some((after, from)) if from < text.len() => {
                star = Some((after, from + 1));
                p = after;
                t = from + 1;
            }
            _ => return Some(false),
        }
    }
}

/// Matches one pattern token at `p` (not `*`) against `c`: whether it
/// matches, and the position after the token.
fn match_one(pattern: &[u8], p: usize, c: u8) -> (bool, usize) {
    match pattern[p] {
        b'?' => (true, p + 1),
        b'\\' if p + 1 < pattern.len() => (pattern[p + 1] == c, p + 2),
        b'[' => {
            let mut i = p + 1;
            let negate = pattern.get(i) == Some(&b'^');
            if negate {
                i += 1;
            }
            let mut matched = false;
            while i < pattern.len() && pattern[i] != b']' {
                if pattern[i] == b'\\' && i + 1 < pattern.len() {
                    matched |= pattern[i + 1] == c;
                    i += 2;
                } else if i + 2 < pattern.len() && pattern[i + 1] == b'-' {
                    let (a, b) = (pattern[i], pattern[i + 2]);
                    let (low, high) = (a.min(b), a.max(b));
                    matched |= (low..=high).contains(&c);
                    i += 3;
                } else {
                    matched |= pattern[i] == c;
                    i += 1;
                }
            }
            // An unterminated class runs to the end of the pattern.
            (matched != negate, (i + 1).min(pattern.len()))
        }
        literal => (literal == c, p + 1),
    }
}

/// The bytes every match of `pattern` starts with: its literal prefix.
pub(super) fn literal_prefix(pattern: &[u8]) -> Vec<u8> {
    let mut prefix = Vec::new();
    let mut i = 0;
    while i < pattern.len() {
        match pattern[i] {
            b'*' | b'?' | b'[' => break,
            b'\\' if i + 1 < pattern.len() => {
                prefix.push(pattern[i + 1]);
                i += 2;
            }
            b'\\' => break,
            c => {
                prefix.push(c);
                i += 1;
            }
        }
    }
    prefix
}

/// `SCAN` cursors of one node: number → key to continue from.
pub struct CursorTable {
    base: u64,
    next: u64,
    resume: HashMap<u64, Vec<u8>>,
    order: VecDeque<u64>,
}

impl Default for CursorTable {
    /// Cursor numbers start from the node's start time (bits 47–24,
    /// seconds), so a cursor from before a restart is most likely unknown
    /// rather than mistaken for a new one.
    fn default() -> CursorTable {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        CursorTable {
            base: (secs & 0xFF_FFFF) << 24,
            next: 1,
            resume: HashMap::new(),
            order: VecDeque::new(),
        }
    }
}

impl CursorTable {
    /// Remembers `resume`; returns its cursor (never 0).
    pub fn insert(&mut self, resume: Vec<u8>) -> u64 {
        if self.order.len() >= MAX_CURSORS {
            if let Some(oldest) = self.order.pop_front() {
                self.resume.remove(&oldest);
            }
        }
        let cursor = self.base | (self.next & 0xFF_FFFF);
        self.next = (self.next % 0xFF_FFFF) + 1;
        if self.resume.insert(cursor, resume).is_some() {
            self.order.retain(|c| *c != cursor);
        }
        self.order.push_back(cursor);
        debug_assert!(self.order.len() <= MAX_CURSORS);
        cursor
    }

    /// The key `cursor` continues from, if remembered.
    pub fn get(&self, cursor: u64) -> Option<Vec<u8>> {
        self.resume.get(&cursor).cloned()
    }
}

/// One page of keys (no values) from `start` within `prefix`.
async fn page(
    shared: &RedisShared,
    start: Vec<u8>,
    prefix: Vec<u8>,
    limit: u32,
) -> Result<ScanResponse, Reply> {
    let op = Op::Scan(Scan {
        start,
        end: Vec::new(),
        prefix,
        limit,
        keys_only: true,
    });
    match read(shared, op).await? {
        Outcome::Scan(scan) => Ok(scan),
        _ => Err(Reply::err(
            "the state machine answered with an unexpected outcome",
        )),
    }
}

/// The key right after `key` in byte order.
fn successor(key: &[u8]) -> Vec<u8> {
    let mut next = key.to_vec();
    next.push(0);
    next
}

/// Calls `visit` with every key starting with `prefix`, page by page,
/// until it returns false.
async fn for_each_key(
    shared: &RedisShared,
    prefix: Vec<u8>,
    mut visit: impl FnMut(Vec<u8>) -> bool,
) -> Result<(), Reply> {
    let mut start = Vec::new();
    loop {
        let scan = page(shared, start, prefix.clone(), MAX_SCAN_LIMIT).await?;
        let Some(last) = scan.kvs.last() else {
            return Ok(());
        };
        start = successor(&last.key);
        for kv in scan.kvs {
            if !visit(kv.key) {
                return Ok(());
            }
        }
        if !scan.more {
            return Ok(());
        }
    }
}

/// `DBSIZE`: counts every key, page by page (not one snapshot).
pub(super) async fn dbsize(shared: &RedisShared) -> Reply {
    let mut count = 0i64;
    match for_each_key(shared, Vec::new(), |_| {
        count += 1;
        true
    })
    .await
    {
        Ok(()) => Reply::Integer(count),
        Err(error) => error,
    }
}

/// `KEYS pattern`: page by page, each page matched off the runtime's
/// workers within the command's [`MAX_GLOB_STEPS`].
pub(super) async fn keys(shared: &RedisShared, args: &[Vec<u8>]) -> Reply {
    let pattern = &args[1];
    let prefix = literal_prefix(pattern);
    let mut glob = Glob::new(pattern.clone());
    let mut found = Vec::new();
    let mut start = Vec::new();
    loop {
        let scan = match page(shared, start, prefix.clone(), MAX_SCAN_LIMIT).await {
            Ok(scan) => scan,
            Err(error) => return error,
        };
        let Some(last) = scan.kvs.last() else {
            break;
        };
        start = successor(&last.key);
        let keys = scan.kvs.into_iter().map(|kv| kv.key).collect();
        match glob.retain(keys, |key| key.as_slice()).await {
            Ok(matched) => found.extend(matched),
            Err(error) => return error,
        }
        if found.len() > MAX_KEYS_REPLY {
            return Reply::err(format!(
                "KEYS would return more than {MAX_KEYS_REPLY} keys; use SCAN"
            ));
        }
        if !scan.more {
            break;
        }
    }
    Reply::bulks(found)
}

/// `SCAN cursor [MATCH pattern] [COUNT count] [TYPE type]`.
pub(super) async fn scan(shared: &RedisShared, args: &[Vec<u8>]) -> Reply {
    let invalid_cursor = || Reply::err("invalid cursor");
    let cursor: u64 = match std::str::from_utf8(&args[1])
        .ok()
        .and_then(|c| c.parse().ok())
    {
        Some(cursor) => cursor,
        None => return invalid_cursor(),
    };
    let (mut pattern, mut count, mut strings_only) = (None, DEFAULT_SCAN_COUNT, true);
    let mut i = 2;
    while i < args.len() {
        let Some(value) = args.get(i + 1) else {
            return Reply::err("syntax error");
        };
        match args[i].to_ascii_uppercase().as_slice() {
            b"MATCH" => pattern = Some(value.clone()),
            b"COUNT" => match parse_i64(value) {
                Some(n) if n >= 1 => count = n.min(i64::from(MAX_SCAN_LIMIT)) as u32,
                Some(_) => return Reply::err("syntax error"),
                None => return Reply::err("value is not an integer or out of range"),
            },
            b"TYPE" => strings_only = value.eq_ignore_ascii_case(b"string"),
            _ => return Reply::err("syntax error"),
        }
        i += 2;
    }
    let start = if cursor == 0 {
        Vec::new()
    } else {
        let known = shared
            .cursors
            .lock()
            .expect("cursor table lock")
            .get(cursor);
        match known {
            Some(start) => start,
            None => return invalid_cursor(),
        }
    };
    let prefix = pattern.as_deref().map(literal_prefix).unwrap_or_default();
    let scan = match page(shared, start, prefix, count).await {
        Ok(scan) => scan,
        Err(error) => return error,
    };
    let next = match (scan.more, scan.kvs.last()) {
        (true, Some(last)) => shared
            .cursors
            .lock()
            .expect("cursor table lock")
            .insert(successor(&last.key)),
        _ => 0,
    };
    let mut keys: Vec<Vec<u8>> = if strings_only {
        scan.kvs.into_iter().map(|kv| kv.key).collect()
    } else {
        Vec::new()
    };
    if let Some(pattern) = pattern {
        keys = match Glob::new(pattern).retain(keys, |key| key.as_slice()).await {
            Ok(keys) => keys,
            Err(error) => return error,
        };
    }
    Reply::Array(vec![Reply::text(next.to_string()), Reply::bulks(keys)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backtracking_pattern_spends_its_budget_and_stops() {
        let text = vec![b'a'; 4096];
        let mut pattern = vec![b'*'];
        pattern.extend(std::iter::repeat_n(b'a', 2048));
        pattern.push(b'b');
        let mut steps = u64::MAX;
        assert_eq!(glob_match_within(&pattern, &text, &mut steps), Some(false));
        let spent = u64::MAX - steps;
        assert!(spent > 2_000_000, "O(n × m): {spent} steps");
        let mut steps = spent - 1;
        assert_eq!(glob_match_within(&pattern, &text, &mut steps), None);
        // A simple pattern costs about the text's length.
        let mut steps = u64::MAX;
        assert_eq!(glob_match_within(b"a*", &text, &mut steps), Some(true));
        assert!(u64::MAX - steps < 10);
    }

    #[test]
    fn globs_match_like_redis() {
        let cases: &[(&str, &str, bool)] = &[
            ("*", "", true),
            ("*", "anything", true),
            ("h?llo", "hello", true),
            ("h?llo", "hllo", false),
            ("h*llo", "heeeello", true),
            ("h[ae]llo", "hallo", true),
            ("h[ae]llo", "hillo", false),
            ("h[^e]llo", "hallo", true),
            ("h[^e]llo", "hello", false),
            ("h[a-b]llo", "hbllo", true),
            ("h[b-a]llo", "hallo", true),
            ("user:*:name", "user:42:name", true),
            ("user:*:name", "user:42:age", false),
            ("a\\*b", "a*b", true),
            ("a\\*b", "axb", false),
            ("*a*b*c*", "xxaxxbxxcxx", true),
            ("*a*b*c*", "xxaxxcxxbxx", false),
            ("abc", "abcd", false),
            ("[abc", "a", true),
        ];
        for (pattern, text, expected) in cases {
            assert_eq!(
                glob_match(pattern.as_bytes(), text.as_bytes()),
                *expected,
                "{pattern} vs {text}"
            );
        }
    }

    #[test]
    fn a_pathological_pattern_stays_cheap() {
        let pattern = "a*".repeat(50) + "b";
        let text = "a".repeat(4096);
        assert!(!glob_match(pattern.as_bytes(), text.as_bytes()));
    }

    #[test]
    fn literal_prefixes_stop_at_the_first_wildcard() {
        assert_eq!(literal_prefix(b"user:*"), b"user:");
        assert_eq!(literal_prefix(b"a\\*b?"), b"a*b");
        assert_eq!(literal_prefix(b"*"), b"");
        assert_eq!(literal_prefix(b"[ab]"), b"");
    }

    #[test]
    fn the_cursor_table_forgets_the_oldest_and_never_hands_out_zero() {
        let mut table = CursorTable::default();
        let first = table.insert(b"a".to_vec());
        assert_ne!(first, 0);
        assert_eq!(table.get(first), Some(b"a".to_vec()));
        for i in 0..MAX_CURSORS {
            assert_ne!(table.insert(i.to_string().into_bytes()), 0);
        }
        assert_eq!(table.get(first), None);
        assert_eq!(table.resume.len(), MAX_CURSORS);
    }
}
