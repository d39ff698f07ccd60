//! The table of client requests waiting for their command to be applied.
//!
//! A client task registers a waiter under the request's key *before* it
//! hands the command to the core; the apply loop completes the waiter when
//! the command's slot is applied. Registration first means the answer can
//! never arrive before anyone waits for it. The table is bounded: when it is
//! full, `register` fails and the client is told to retry later, so a flood
//! of requests cannot grow memory without limit.
//!
//! A waiter is a callback (typically sending on a oneshot channel); it is
//! called exactly once, outside the table's lock, with either the value or
//! nothing at all if the waiter was cancelled (the client gave up) or the
//! table was drained (the node is shutting down). When the node stops
//! leading, every waiter gets the same answer at once (`complete_all`).
//!
//! The structure is shared between many client tasks and the apply loop, so
//! it is model-checked with loom: `RUSTFLAGS="--cfg loom" cargo test -p
//! synod-waiters --release` (with its own `CARGO_TARGET_DIR`).

#[cfg(loom)]
use loom::sync::Mutex;
use std::collections::HashMap;
use std::hash::Hash;
#[cfg(not(loom))]
use std::sync::Mutex;

/// What a waiter is called with: `Some(value)` when its request was
/// applied, `None` when it will never be answered here.
pub type Callback<V> = Box<dyn FnOnce(Option<V>) + Send>;

/// Why a waiter could not be registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegisterError {
    /// The table holds its maximum number of waiters.
    Full,
    /// A waiter with this key is already registered.
    Duplicate,
}

impl std::fmt::Display for RegisterError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RegisterError::Full => write!(f, "too many requests in flight; retry later"),
            RegisterError::Duplicate => write!(f, "this request is already in flight"),
        }
    }
}

impl std::error::Error for RegisterError {}

/// A bounded map from request key to waiter. Cheap operations under one
/// short lock; callbacks always run after the lock is released.
pub struct WaitTable<K, V> {
    capacity: usize,
    waiters: Mutex<HashMap<K, Callback<V>>>,
}

impl<K: Eq + Hash, V> WaitTable<K, V> {
    /// An empty table holding at most `capacity` waiters.
    pub fn new(capacity: usize) -> Self {
        assert!(capacity > 0, "a wait table needs room for one waiter");
        WaitTable {
            capacity,
            waiters: Mutex::new(HashMap::new()),
        }
    }

    /// Registers `callback` to be called once when `key` completes.
    pub fn register(&self, key: K, callback: Callback<V>) -> Result<(), RegisterError> {
        let mut waiters = self.waiters.lock().expect("wait table lock");
        if waiters.contains_key(&key) {
            return Err(RegisterError::Duplicate);
        }
        if waiters.len() >= self.capacity {
            return Err(RegisterError::Full);
        }
        waiters.insert(key, callback);
        assert!(waiters.len() <= self.capacity, "wait table over capacity");
        Ok(())
    }

    /// Answers the waiter of `key` with `value`; returns false if nobody
    /// waits (never registered, cancelled, or answered already).
    pub fn complete(&self, key: &K, value: V) -> bool {
        let callback = self.waiters.lock().expect("wait table lock").remove(key);
        match callback {
            Some(callback) => {
                callback(Some(value));
                true
            }
            None => false,
        }
    }

    /// Removes the waiter of `key` (its client gave up); it is called with
    /// `None`. Returns false if it was not there.
    pub fn cancel(&self, key: &K) -> bool {
        let callback = self.waiters.lock().expect("wait table lock").remove(key);
        match callback {
            Some(callback) => {
                callback(None);
                true
            }
            None => false,
        }
    }

    /// Removes every waiter, calling each with `None`.
    pub fn drain(&self) {
        let drained: Vec<Callback<V>> = {
            let mut waiters = self.waiters.lock().expect("wait table lock");
            waiters.drain().map(|(_, callback)| callback).collect()
        };
        for callback in drained {
            callback(None);
        }
    }

    /// Removes every waiter, calling each with `Some(answer())`: for an
    /// answer that is the same for all of them (e.g. "this node stopped
    /// leading; the outcome is unknown, retry").
    pub fn complete_all(&self, answer: impl Fn() -> V) {
        let drained: Vec<Callback<V>> = {
            let mut waiters = self.waiters.lock().expect("wait table lock");
            waiters.drain().map(|(_, callback)| callback).collect()
        };
        for callback in drained {
            callback(Some(answer()));
        }
    }

    /// Waiters registered now.
    pub fn len(&self) -> usize {
        self.waiters.lock().expect("wait table lock").len()
    }

    /// True if nobody waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::mpsc;

    fn channel_callback() -> (Callback<u32>, mpsc::Receiver<Option<u32>>) {
        let (tx, rx) = mpsc::channel();
        (
            Box::new(move |v| {
                tx.send(v).expect("receiver alive");
            }),
            rx,
        )
    }

    #[test]
    fn a_completed_waiter_gets_its_value_once() {
        let table = WaitTable::new(4);
        let (callback, rx) = channel_callback();
        table.register(1, callback).unwrap();
        assert!(table.complete(&1, 7));
        assert!(!table.complete(&1, 8), "answered only once");
        assert_eq!(rx.try_iter().collect::<Vec<_>>(), vec![Some(7)]);
    }

    #[test]
    fn a_full_table_refuses_new_waiters() {
        let table = WaitTable::new(1);
        table.register(1, channel_callback().0).unwrap();
        assert_eq!(
            table.register(2, channel_callback().0),
            Err(RegisterError::Full)
        );
        assert_eq!(
            table.register(1, channel_callback().0),
            Err(RegisterError::Duplicate)
        );
    }

    #[test]
    fn cancel_and_drain_answer_with_nothing() {
        let table = WaitTable::new(4);
        let (a, rx_a) = channel_callback();
        let (b, rx_b) = channel_callback();
        table.register(1, a).unwrap();
        table.register(2, b).unwrap();
        assert!(table.cancel(&1));
        table.drain();
        assert!(table.is_empty());
        assert_eq!(rx_a.try_iter().collect::<Vec<_>>(), vec![None]);
        assert_eq!(rx_b.try_iter().collect::<Vec<_>>(), vec![None]);
    }

    #[test]
    fn complete_all_answers_every_waiter_once_and_empties_the_table() {
        let table = WaitTable::new(4);
        let (a, rx_a) = channel_callback();
        let (b, rx_b) = channel_callback();
        table.register(1, a).unwrap();
        table.register(2, b).unwrap();
        table.complete_all(|| 9);
        assert!(table.is_empty());
        assert!(!table.complete(&1, 3), "already answered");
        assert_eq!(rx_a.try_iter().collect::<Vec<_>>(), vec![Some(9)]);
        assert_eq!(rx_b.try_iter().collect::<Vec<_>>(), vec![Some(9)]);
    }
}
