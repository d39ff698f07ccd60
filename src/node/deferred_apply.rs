//! A follower's committed slots, gathered into fewer state-machine
//! transactions.
//!
//! Every apply is one redb transaction, and a transaction costs more than
//! the small commands in it (see `cargo bench -p synod-kvstore --bench
//! apply_set`). A leader applies what each round commits at once: its clients
//! wait for the answers. A follower answers nobody for its writes, so it
//! lets committed slots gather for a few milliseconds and applies them
//! together, unless something must see them first (see
//! [`Node::finish_round`](super::Node::finish_round)): a read released to
//! it, a snapshot for a peer, or a change of role.
//!
//! Nothing about durability changes: a slot is durable at a majority's logs
//! when it is chosen, and a node that stops with slots gathered here gets
//! them again from its log when it restarts (the state machine's applied
//! index says where replay starts).

use synod_paxos::{Instant, Slot, Value};

/// Most commands (a no-op counts one) gathered before they are applied.
const MAX_COMMANDS: usize = 256;

/// Longest a committed slot waits to be applied while rounds keep coming
/// (an idle follower applies at its next tick, every few milliseconds).
const MAX_WAIT: std::time::Duration = std::time::Duration::from_millis(4);

/// Committed slots not applied yet, in slot order, following the state
/// machine's applied index one by one.
#[derive(Debug, Default)]
pub(super) struct DeferredApply {
    slots: Vec<(Slot, Value)>,
    /// The commands in `slots`, each no-op counted as one.
    commands: usize,
    /// When the oldest slot gathered was committed here.
    since: Option<Instant>,
}

impl DeferredApply {
    /// Gathers the slots a round committed at `now`.
    pub(super) fn gather(&mut self, now: Instant, committed: Vec<(Slot, Value)>) {
        if committed.is_empty() {
            return;
        }
        if let (Some((last, _)), Some((first, _))) = (self.slots.last(), committed.first()) {
            assert!(
                *first > *last,
                "committed slots come in order: {first} after {last}"
            );
        }
        self.since.get_or_insert(now);
        for (slot, value) in committed {
            self.commands += match &value {
                Value::Commands(commands) => commands.len().max(1),
                Value::Noop | Value::Reconfigure(_) => 1,
            };
            self.slots.push((slot, value));
        }
    }

    /// True when the slots gathered should be applied without waiting
    /// longer: enough commands, or the oldest waited long enough.
    pub(super) fn is_due(&self, now: Instant) -> bool {
        self.commands >= MAX_COMMANDS
            || self
                .since
                .is_some_and(|since| now.saturating_since(since) >= MAX_WAIT)
    }

    /// Takes every slot gathered, to apply now.
    pub(super) fn take(&mut self) -> Vec<(Slot, Value)> {
        self.commands = 0;
        self.since = None;
        std::mem::take(&mut self.slots)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at_ms(ms: u64) -> Instant {
        Instant::from_micros(ms * 1_000)
    }

    fn commands(n: usize) -> Value {
        Value::Commands(vec![b"c".to_vec(); n])
    }

    #[test]
    fn slots_wait_until_the_oldest_waited_long_enough() {
        let mut deferred = DeferredApply::default();
        deferred.gather(at_ms(10), vec![(Slot(1), commands(3))]);
        deferred.gather(at_ms(12), vec![(Slot(2), Value::Noop)]);
        assert!(!deferred.is_due(at_ms(13)));
        assert!(deferred.is_due(at_ms(14)), "the first slot waited 4 ms");
        let slots: Vec<Slot> = deferred.take().into_iter().map(|(s, _)| s).collect();
        assert_eq!(slots, vec![Slot(1), Slot(2)]);
        assert!(!deferred.is_due(at_ms(100)), "nothing left to apply");
    }

    #[test]
    fn enough_commands_are_due_at_once() {
        let mut deferred = DeferredApply::default();
        deferred.gather(at_ms(1), vec![(Slot(1), commands(MAX_COMMANDS - 1))]);
        assert!(!deferred.is_due(at_ms(1)));
        deferred.gather(at_ms(1), vec![(Slot(2), Value::Noop)]);
        assert!(deferred.is_due(at_ms(1)));
    }

    #[test]
    #[should_panic(expected = "committed slots come in order")]
    fn slots_out_of_order_are_a_bug() {
        let mut deferred = DeferredApply::default();
        deferred.gather(at_ms(1), vec![(Slot(2), Value::Noop)]);
        deferred.gather(at_ms(1), vec![(Slot(2), Value::Noop)]);
    }
}
