//! Records that gate no message, held back to go to the log with the next
//! round that must sync.
//!
//! A chosen value and a compaction point need not be durable before any
//! message leaves (see [`Record::must_sync`]): the log writes them without
//! an fsync, and a crash may lose them. Yet a round that holds nothing else
//! (a leader's round that learns its slot is chosen) still cost the log's
//! thread a wake-up, a write and a report back, once per slot. So the node
//! holds such records and hands them to the log in front of the next
//! round's records that must sync, in the order they came (the log sees the
//! same sequence of records, only in fewer writes). Held records are handed
//! over on their own once they are many, large, or a few milliseconds old,
//! so that an idle node still writes them soon, and all at once when the
//! node stops.

use synod_paxos::{Instant, Record};

/// Most records held.
const MAX_RECORDS: usize = 256;

/// Most bytes of chosen values held.
const MAX_BYTES: usize = 1 << 20;

/// Longest a record is held while rounds keep coming (an idle node's next
/// tick hands it over).
const MAX_WAIT: std::time::Duration = std::time::Duration::from_millis(5);

/// Records that gate no message, not yet handed to the log, in order.
#[derive(Debug, Default)]
pub(super) struct HeldRecords {
    records: Vec<Record>,
    /// Set by [`stop`](Self::stop): nothing is held any more.
    stopped: bool,
    /// Bytes of the chosen values in `records`.
    bytes: usize,
    /// When the oldest record was held.
    since: Option<Instant>,
}

impl HeldRecords {
    /// What a round at `now` hands to the log, given `persist`, the records
    /// it made: every record held and `persist` after them, or nothing if
    /// `persist` needs no sync and may wait (then it is held).
    pub(super) fn round(&mut self, now: Instant, persist: Vec<Record>) -> Vec<Record> {
        if self.stopped || persist.iter().any(Record::must_sync) {
            let mut records = self.take();
            records.extend(persist);
            return records;
        }
        for record in persist {
            if let Record::Chosen { value, .. } = &record {
                self.bytes += value.size_bound_bytes();
            }
            self.records.push(record);
        }
        if !self.records.is_empty() {
            self.since.get_or_insert(now);
        }
        if self.is_due(now) {
            self.take()
        } else {
            Vec::new()
        }
    }

    fn is_due(&self, now: Instant) -> bool {
        self.records.len() >= MAX_RECORDS
            || self.bytes >= MAX_BYTES
            || self
                .since
                .is_some_and(|since| now.saturating_since(since) >= MAX_WAIT)
    }

    /// The node is stopping: from now on every round hands over everything,
    /// held records first, so that its last round leaves none unwritten.
    pub(super) fn stop(&mut self) {
        self.stopped = true;
    }

    /// Takes every record held.
    fn take(&mut self) -> Vec<Record> {
        self.bytes = 0;
        self.since = None;
        std::mem::take(&mut self.records)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use synod_paxos::{Ballot, NodeId, Slot, Value};

    fn at_ms(ms: u64) -> Instant {
        Instant::from_micros(ms * 1_000)
    }

    fn chosen(slot: u64, bytes: usize) -> Record {
        Record::Chosen {
            slot: Slot(slot),
            value: Value::Commands(vec![vec![0; bytes]]),
        }
    }

    fn accepted(slot: u64) -> Record {
        Record::Accepted {
            slot: Slot(slot),
            ballot: Ballot::new(1, NodeId(1)),
            value: Value::Noop,
        }
    }

    #[test]
    fn records_that_need_no_sync_go_in_front_of_the_next_that_do() {
        let mut held = HeldRecords::default();
        assert!(held.round(at_ms(1), vec![chosen(1, 10)]).is_empty());
        assert!(held
            .round(at_ms(2), vec![Record::Compacted(Slot(1))])
            .is_empty());
        let records = held.round(at_ms(3), vec![accepted(2)]);
        assert_eq!(
            records,
            vec![chosen(1, 10), Record::Compacted(Slot(1)), accepted(2)]
        );
        assert!(held.take().is_empty());
    }

    #[test]
    fn a_stopped_node_holds_nothing() {
        let mut held = HeldRecords::default();
        assert!(held.round(at_ms(1), vec![chosen(1, 10)]).is_empty());
        held.stop();
        assert_eq!(held.round(at_ms(1), Vec::new()), vec![chosen(1, 10)]);
        assert_eq!(
            held.round(at_ms(1), vec![Record::Compacted(Slot(1))]),
            vec![Record::Compacted(Slot(1))]
        );
    }

    #[test]
    fn old_many_or_large_records_go_on_their_own() {
        let mut held = HeldRecords::default();
        assert!(held.round(at_ms(10), vec![chosen(1, 1)]).is_empty());
        assert!(held.round(at_ms(14), Vec::new()).is_empty());
        assert_eq!(held.round(at_ms(15), Vec::new()), vec![chosen(1, 1)]);

        for slot in 1..MAX_RECORDS as u64 {
            assert!(held.round(at_ms(20), vec![chosen(slot, 1)]).is_empty());
        }
        assert_eq!(
            held.round(at_ms(20), vec![chosen(999, 1)]).len(),
            MAX_RECORDS
        );

        assert_eq!(held.round(at_ms(30), vec![chosen(1, MAX_BYTES)]).len(), 1);
        assert!(held.take().is_empty());
    }
}
