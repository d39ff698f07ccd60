//! The leader's key expiry clock: the deadlines of keys with a TTL on the leader's own clock,
//! and the commands to propose when they pass. Pure: no clock read, no IO; time comes in as
//! `now_ms`. The key counterpart of [`SessionClock`](crate::SessionClock), driven the same way.
//!
//! # Driving it (node runtime)
//! One `KeyExpiryClock` per node, fed with a monotonic clock in milliseconds:
//! 1. On becoming leader: [`become_leader`](KeyExpiryClock::become_leader)`(now_ms,
//!    &sm.key_expiries()?)`. Each key's deadline restarts at `now + remaining TTL` (the last
//!    checkpointed remaining TTL, or the TTL set if none was checkpointed since), so no key
//!    expires earlier than its writer can expect.
//! 2. After each applied slot, while leader: [`observe`](KeyExpiryClock::observe)`(now_ms,
//!    &effects.key_expiry_events)`. A TTL of `t` set by a write applied at `now_ms` expires at
//!    `now_ms + t`: never before its writer got the answer plus `t`.
//! 3. Whenever [`next_wakeup_ms`](KeyExpiryClock::next_wakeup_ms) passes (or on every tick), and
//!    before proposing a client's command: [`poll`](KeyExpiryClock::poll)`(now_ms)` and propose
//!    each returned op as [`Request::anonymous`](crate::Request::anonymous). It returns
//!    [`ExpireKeys`] for keys past their deadline and every `checkpoint_interval_ms` a
//!    [`CheckpointKeys`] of every key's remaining TTL, each split into commands of at most
//!    [`MAX_KEY_EXPIRY_ENTRIES`] entries and [`MAX_KEY_EXPIRY_BATCH_BYTES`] of keys. A key not
//!    yet seen deleted is proposed again after `retry_ms`; duplicates are harmless (apply checks
//!    expiry revisions). Polling before proposing a client's command puts the expiry of every
//!    key whose deadline passed ahead of that command in the log, so a write that arrives after
//!    a key's deadline never sees the key.
//! 4. On losing leadership: [`step_down`](KeyExpiryClock::step_down).
//!
//! Reads served by the leader ask [`is_expired`](KeyExpiryClock::is_expired) and
//! [`remaining_ms`](KeyExpiryClock::remaining_ms) (for `TTL`).
//!
//! # Leader changes (etcd#9395)
//! As with sessions: without checkpoints every new leader would restart every deadline at the
//! full TTL that was set, so leader changes more frequent than a TTL would keep the key forever.
//! With a checkpoint every `C` ms, a leader whose term lasts `T >= C` makes the recorded
//! remaining TTL drop by at least `T - C`, so a key expires after at most about `2 × TTL` of
//! cumulated leadership (plus the time without a leader and commit latency). A key never
//! expires early: a new leader gives it at least what the last leader had left.
//!
//! # Costs
//! Memory: two copies of each key with a TTL. [`observe`](KeyExpiryClock::observe) and
//! [`next_wakeup_ms`](KeyExpiryClock::next_wakeup_ms) are O(log n); [`poll`](KeyExpiryClock::poll)
//! is O(log n) per expired key, plus O(n) when it checkpoints (every key with a TTL is rewritten
//! in the state machine once per checkpoint interval: with very many keys with a TTL, use a
//! longer interval).

use std::collections::{BTreeMap, BTreeSet};

use super::KeyExpiry;
use crate::effects::KeyExpiryEvent;
use crate::SessionClockConfig;
use synod_wire::command::{CheckpointKeys, ExpireKeyEntry, ExpireKeys, KeyCheckpointEntry, Op};
use synod_wire::limits::{MAX_KEY_EXPIRY_BATCH_BYTES, MAX_KEY_EXPIRY_ENTRIES};

/// Settings of a [`KeyExpiryClock`]. They only shape what the leader proposes (not how commands
/// apply), so nodes may differ, though they normally share them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyExpiryConfig {
    /// How often the leader checkpoints remaining TTLs, in ms (at least 1; default 5 000).
    pub checkpoint_interval_ms: u64,
    /// How long to wait for a proposed expiry to apply before proposing it again, in ms (at
    /// least 1; default 2 000).
    pub retry_ms: u64,
}

impl Default for KeyExpiryConfig {
    fn default() -> KeyExpiryConfig {
        KeyExpiryConfig::like_sessions(&SessionClockConfig::default())
    }
}

impl KeyExpiryConfig {
    /// The checkpoint interval and retry interval of the session clock.
    pub fn like_sessions(sessions: &SessionClockConfig) -> KeyExpiryConfig {
        KeyExpiryConfig {
            checkpoint_interval_ms: sessions.checkpoint_interval_ms,
            retry_ms: sessions.retry_ms,
        }
    }
}

/// A key as the leader tracks it.
#[derive(Clone, Debug)]
struct Tracked {
    expiry_revision: u64,
    deadline_ms: u64,
    /// When to propose its expiry (again): the deadline, then each retry.
    due_ms: u64,
}

/// Key deadlines on the leader's clock (see the [module docs](self)).
#[derive(Clone, Debug)]
pub struct KeyExpiryClock {
    config: KeyExpiryConfig,
    leader: bool,
    keys: BTreeMap<Vec<u8>, Tracked>,
    /// `(due_ms, key)` of every tracked key: what to expire next.
    queue: BTreeSet<(u64, Vec<u8>)>,
    /// How many tracked keys have each deadline: whether any key is past its deadline, for
    /// reads that do not name the keys they show.
    deadlines: BTreeMap<u64, usize>,
    next_checkpoint_ms: u64,
}

impl KeyExpiryClock {
    /// A clock of a node that is not leader.
    ///
    /// # Panics
    /// If `checkpoint_interval_ms` or `retry_ms` is 0.
    pub fn new(config: KeyExpiryConfig) -> KeyExpiryClock {
        assert!(
            config.checkpoint_interval_ms >= 1,
            "checkpoint interval must be positive"
        );
        assert!(config.retry_ms >= 1, "retry interval must be positive");
        KeyExpiryClock {
            config,
            leader: false,
            keys: BTreeMap::new(),
            queue: BTreeSet::new(),
            deadlines: BTreeMap::new(),
            next_checkpoint_ms: 0,
        }
    }

    /// The settings.
    pub fn config(&self) -> &KeyExpiryConfig {
        &self.config
    }

    /// Whether [`become_leader`](Self::become_leader) was called since the last
    /// [`step_down`](Self::step_down).
    pub fn is_leader(&self) -> bool {
        self.leader
    }

    /// Start tracking as leader from the state machine's key `expiries`: deadlines at
    /// `now_ms + remaining_ms`, the first checkpoint one interval from now. Replaces whatever was
    /// tracked.
    pub fn become_leader(&mut self, now_ms: u64, expiries: &[KeyExpiry]) {
        self.leader = true;
        self.keys.clear();
        self.queue.clear();
        self.deadlines.clear();
        for expiry in expiries {
            self.track(
                &expiry.key,
                expiry.expiry_revision,
                now_ms.saturating_add(expiry.remaining_ms),
            );
        }
        self.next_checkpoint_ms = now_ms.saturating_add(self.config.checkpoint_interval_ms);
    }

    /// Stop being leader: forget every deadline (a later leader rebuilds them from the state
    /// machine).
    pub fn step_down(&mut self) {
        self.leader = false;
        self.keys.clear();
        self.queue.clear();
        self.deadlines.clear();
    }

    fn track(&mut self, key: &[u8], expiry_revision: u64, deadline_ms: u64) {
        self.untrack(key);
        let tracked = Tracked {
            expiry_revision,
            deadline_ms,
            due_ms: deadline_ms,
        };
        self.queue.insert((deadline_ms, key.to_vec()));
        self.keys.insert(key.to_vec(), tracked);
        *self.deadlines.entry(deadline_ms).or_default() += 1;
        debug_assert_eq!(self.deadlines.values().sum::<usize>(), self.keys.len());
    }

    fn untrack(&mut self, key: &[u8]) {
        if let Some(old) = self.keys.remove(key) {
            self.queue.remove(&(old.due_ms, key.to_vec()));
            match self.deadlines.get_mut(&old.deadline_ms) {
                Some(1) => {
                    self.deadlines.remove(&old.deadline_ms);
                }
                Some(count) => *count -= 1,
                None => unreachable!("every tracked key's deadline is counted"),
            }
        }
    }

    /// Take in the expiry events of slots applied at `now_ms`. Ignored unless leader.
    pub fn observe(&mut self, now_ms: u64, events: &[KeyExpiryEvent]) {
        if !self.leader {
            return;
        }
        for event in events {
            match event {
                KeyExpiryEvent::Set {
                    key,
                    expiry_revision,
                    ttl_ms,
                } => self.track(key, *expiry_revision, now_ms.saturating_add(*ttl_ms)),
                KeyExpiryEvent::Cleared { key } => self.untrack(key),
            }
        }
    }

    /// The commands to propose at `now_ms` (empty unless leader); see the [module docs](self).
    pub fn poll(&mut self, now_ms: u64) -> Vec<Op> {
        if !self.leader {
            return Vec::new();
        }
        let mut expired = Vec::new();
        let retry_at_ms = now_ms.saturating_add(self.config.retry_ms);
        while self.queue.first().is_some_and(|(due, _)| *due <= now_ms) {
            let Some((_, key)) = self.queue.pop_first() else {
                break;
            };
            let Some(tracked) = self.keys.get_mut(&key) else {
                debug_assert!(false, "a queued key is tracked");
                continue;
            };
            tracked.due_ms = retry_at_ms;
            expired.push(ExpireKeyEntry {
                key: key.clone(),
                expiry_revision: tracked.expiry_revision,
            });
            // A retry lies in the future (retry_ms >= 1), so this loop ends.
            debug_assert!(retry_at_ms > now_ms || now_ms == u64::MAX);
            if retry_at_ms > now_ms {
                self.queue.insert((retry_at_ms, key));
            }
        }
        let mut ops: Vec<Op> = batches(expired, |e| e.key.len())
            .into_iter()
            .map(|entries| Op::ExpireKeys(ExpireKeys { entries }))
            .collect();
        if now_ms >= self.next_checkpoint_ms {
            self.next_checkpoint_ms = now_ms.saturating_add(self.config.checkpoint_interval_ms);
            let entries: Vec<KeyCheckpointEntry> = self
                .keys
                .iter()
                .map(|(key, t)| KeyCheckpointEntry {
                    key: key.clone(),
                    expiry_revision: t.expiry_revision,
                    remaining_ms: t.deadline_ms.saturating_sub(now_ms),
                })
                .collect();
            ops.extend(
                batches(entries, |e| e.key.len())
                    .into_iter()
                    .map(|entries| Op::CheckpointKeys(CheckpointKeys { entries })),
            );
        }
        ops
    }

    /// The earliest time [`poll`](Self::poll) may return something (`None` unless leader).
    pub fn next_wakeup_ms(&self) -> Option<u64> {
        if !self.leader {
            return None;
        }
        let next_due = self.queue.first().map_or(u64::MAX, |(due, _)| *due);
        Some(next_due.min(self.next_checkpoint_ms))
    }

    /// The expiry revision and deadline of `key` on this leader's clock, if tracked.
    pub fn deadline_ms(&self, key: &[u8]) -> Option<(u64, u64)> {
        self.keys
            .get(key)
            .map(|t| (t.expiry_revision, t.deadline_ms))
    }

    /// Whether `key` has an expiry whose deadline is at or before `now_ms` on this leader's
    /// clock (false unless leader): the key is as good as gone, its deletion proposed or about
    /// to be.
    pub fn is_expired(&self, key: &[u8], now_ms: u64) -> bool {
        self.keys.get(key).is_some_and(|t| t.deadline_ms <= now_ms)
    }

    /// Whether any tracked key's deadline is at or before `now_ms` on this leader's clock (false
    /// unless leader): some key is as good as gone, though its deletion has not applied.
    pub fn any_expired(&self, now_ms: u64) -> bool {
        self.deadlines
            .first_key_value()
            .is_some_and(|(deadline_ms, _)| *deadline_ms <= now_ms)
    }

    /// The remaining TTL of `key` at `now_ms` on this leader's clock, if it tracks the expiry
    /// named `expiry_revision`.
    pub fn remaining_ms(&self, key: &[u8], expiry_revision: u64, now_ms: u64) -> Option<u64> {
        self.keys
            .get(key)
            .filter(|t| t.expiry_revision == expiry_revision)
            .map(|t| t.deadline_ms.saturating_sub(now_ms))
    }

    /// How many keys are tracked.
    pub fn tracked(&self) -> usize {
        self.keys.len()
    }
}

/// `entries` cut into batches of at most [`MAX_KEY_EXPIRY_ENTRIES`] entries and (unless one key
/// alone is larger, which keys never are) [`MAX_KEY_EXPIRY_BATCH_BYTES`] of keys.
fn batches<T>(entries: Vec<T>, key_len: impl Fn(&T) -> usize) -> Vec<Vec<T>> {
    let mut out: Vec<Vec<T>> = Vec::new();
    let mut bytes = 0;
    for entry in entries {
        let len = key_len(&entry);
        let full = out.last().is_none_or(|batch| {
            batch.len() >= MAX_KEY_EXPIRY_ENTRIES || bytes + len > MAX_KEY_EXPIRY_BATCH_BYTES
        });
        if full {
            out.push(Vec::new());
            bytes = 0;
        }
        bytes += len;
        out.last_mut().expect("a batch was pushed").push(entry);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_respect_the_entry_and_byte_bounds() {
        let many: Vec<usize> = vec![1; MAX_KEY_EXPIRY_ENTRIES * 2 + 1];
        let cut = batches(many, |n| *n);
        assert_eq!(
            cut.iter().map(Vec::len).collect::<Vec<_>>(),
            [MAX_KEY_EXPIRY_ENTRIES, MAX_KEY_EXPIRY_ENTRIES, 1]
        );
        let big = vec![4096usize; 600];
        for batch in batches(big, |n| *n) {
            assert!(batch.iter().sum::<usize>() <= MAX_KEY_EXPIRY_BATCH_BYTES);
        }
        assert!(batches(Vec::<usize>::new(), |n| *n).is_empty());
    }
}
