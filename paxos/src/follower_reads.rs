//! Linearizable reads served by a follower (ReadIndex, asked of the leader).
//!
//! A follower holds each linearizable read its driver hands it, and asks the
//! leader for a read index with one [`Message::ReadIndex`](crate::Message)
//! for every read taken since its last request (sent with the next `Ready`).
//! The leader answers once it has confirmed, after the request arrived, that
//! it still leads: at once under its lease, otherwise after a heartbeat
//! round, with its commit index then. Every write acknowledged before the
//! read arrived is chosen at or below that index, so the follower releases
//! the read once its own commit index reaches the index: its driver applies
//! every committed slot before serving the reads of a `Ready`.
//!
//! The leader then only checks its lease and sends one small message per
//! batch of reads; it neither reads nor ships values for them. One request
//! waits for an answer at a time: the reads that arrive meanwhile go
//! together in the next, so a busy follower sends few large requests rather
//! than one per read.
//!
//! A request that stays unanswered for the replica's resend interval, or
//! that went to a node no longer believed to lead, is given up and its
//! reads go in the next request (to the leader believed then): asking
//! again after the reads arrived keeps them linearizable. A read is failed
//! (the driver sends its client to the leader) when the leader refuses it,
//! or when it was not released within the replica's timeout (an election
//! timeout). Request numbers start at a random point at each start, so a
//! late answer to an earlier run's request matches none of this run's. The
//! number of reads held is bounded.

use std::time::Duration;

use crate::leader::QueueFull;
use crate::ready::ReadId;
use crate::time::Instant;
use crate::types::{NodeId, Slot};

/// The request waiting for an answer.
struct Asked {
    /// Its number.
    request: u64,
    /// The node asked.
    leader: NodeId,
    /// When it was sent.
    sent_at: Instant,
    /// When the oldest of its reads arrived.
    since: Instant,
    reads: Vec<ReadId>,
}

/// Reads granted a read index, waiting for this node's commit index.
struct Granted {
    index: Slot,
    /// When the oldest of them arrived.
    since: Instant,
    reads: Vec<ReadId>,
}

/// The linearizable reads a follower holds.
pub(crate) struct FollowerReads {
    /// Reads taken since the last request (or taken back from it).
    unsent: Vec<ReadId>,
    /// When the oldest of `unsent` arrived.
    unsent_since: Option<Instant>,
    asked: Option<Asked>,
    granted: Vec<Granted>,
    /// The number of the next request.
    next_request: u64,
}

impl FollowerReads {
    /// No reads held; requests numbered from `first_request`.
    pub(crate) fn new(first_request: u64) -> FollowerReads {
        FollowerReads {
            unsent: Vec::new(),
            unsent_since: None,
            asked: None,
            granted: Vec::new(),
            next_request: first_request,
        }
    }

    /// Holds read `id`, arrived at `now`, for the next request; refused
    /// while `max` reads are held.
    pub(crate) fn queue(&mut self, now: Instant, id: ReadId, max: usize) -> Result<(), QueueFull> {
        if self.held() >= max {
            return Err(QueueFull);
        }
        self.unsent.push(id);
        self.unsent_since.get_or_insert(now);
        Ok(())
    }

    /// True if reads wait for a request and none is unanswered.
    pub(crate) fn may_ask(&self) -> bool {
        !self.unsent.is_empty() && self.asked.is_none()
    }

    /// Moves the reads waiting for a request into a new request to
    /// `leader`, sent at `now`; returns its number.
    pub(crate) fn ask(&mut self, now: Instant, leader: NodeId) -> u64 {
        assert!(self.asked.is_none(), "one request at a time");
        let request = self.next_request;
        self.next_request = self.next_request.wrapping_add(1);
        self.asked = Some(Asked {
            request,
            leader,
            sent_at: now,
            since: self.unsent_since.take().expect("reads wait"),
            reads: std::mem::take(&mut self.unsent),
        });
        request
    }

    /// Gives up the reads waiting for a request (no leader to ask).
    pub(crate) fn drop_unsent(&mut self) -> Vec<ReadId> {
        self.unsent_since = None;
        std::mem::take(&mut self.unsent)
    }

    /// True if the unanswered request went to another node than `leader`,
    /// or was sent `resend_after` or longer before `now`.
    pub(crate) fn must_ask_again(
        &self,
        leader: Option<NodeId>,
        now: Instant,
        resend_after: Duration,
    ) -> bool {
        self.asked
            .as_ref()
            .is_some_and(|a| Some(a.leader) != leader || a.sent_at + resend_after <= now)
    }

    /// Gives up the unanswered request: its reads go in the next one (a
    /// late answer to it is ignored).
    pub(crate) fn take_back_asked(&mut self) {
        if let Some(asked) = self.asked.take() {
            let since = self
                .unsent_since
                .map_or(asked.since, |s| s.min(asked.since));
            self.unsent_since = Some(since);
            let mut reads = asked.reads;
            reads.append(&mut self.unsent);
            self.unsent = reads;
        }
    }

    /// `from` answered `request`: with `Some(index)` its reads wait for the
    /// commit index to reach `index`; with `None` they are returned, to
    /// fail. An answer to another request than the one unanswered, or from
    /// another node than the one asked, changes nothing.
    pub(crate) fn answer(
        &mut self,
        from: NodeId,
        request: u64,
        index: Option<Slot>,
    ) -> Vec<ReadId> {
        if !self
            .asked
            .as_ref()
            .is_some_and(|a| a.request == request && a.leader == from)
        {
            return Vec::new();
        }
        let asked = self.asked.take().expect("checked above");
        match index {
            Some(index) => {
                self.granted.push(Granted {
                    index,
                    since: asked.since,
                    reads: asked.reads,
                });
                Vec::new()
            }
            None => asked.reads,
        }
    }

    /// The granted reads whose index `commit` reached.
    pub(crate) fn release(&mut self, commit: Slot) -> Vec<ReadId> {
        self.take_granted(|g| g.index <= commit)
    }

    /// The reads held for `timeout` or longer at `now`, not released: the
    /// leader does not answer, or the commit index does not reach the index
    /// granted.
    pub(crate) fn expire(&mut self, now: Instant, timeout: Duration) -> Vec<ReadId> {
        let late = |since: Instant| since + timeout <= now;
        let mut expired = self.take_granted(|g| late(g.since));
        if self.asked.as_ref().is_some_and(|a| late(a.since)) {
            let asked = self.asked.take().expect("checked above");
            expired.extend(asked.reads);
        }
        if self.unsent_since.is_some_and(late) {
            expired.extend(self.drop_unsent());
        }
        expired
    }

    /// Reads held, in all three places.
    pub(crate) fn held(&self) -> usize {
        let asked = self.asked.as_ref().map_or(0, |a| a.reads.len());
        let granted: usize = self.granted.iter().map(|g| g.reads.len()).sum();
        self.unsent.len() + asked + granted
    }

    /// True if a granted read's index is at or below `commit`.
    pub(crate) fn releasable(&self, commit: Slot) -> bool {
        self.granted.iter().any(|g| g.index <= commit)
    }

    fn take_granted(&mut self, done: impl Fn(&Granted) -> bool) -> Vec<ReadId> {
        let mut taken = Vec::new();
        self.granted.retain_mut(|granted| {
            if done(granted) {
                taken.append(&mut granted.reads);
                false
            } else {
                true
            }
        });
        taken
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::at_ms as at;

    #[test]
    fn reads_wait_for_the_answer_then_for_the_commit_index() {
        let mut reads = FollowerReads::new(7);
        reads.queue(at(1), 10, 8).unwrap();
        reads.queue(at(2), 11, 8).unwrap();
        let request = reads.ask(at(2), NodeId(1));
        assert!(!reads.may_ask());
        reads.queue(at(3), 12, 8).unwrap();
        assert!(!reads.may_ask(), "one request in flight at a time");
        // An answer from another node, or to another request, is ignored.
        assert!(reads.answer(NodeId(2), request, Some(Slot(5))).is_empty());
        assert!(reads
            .answer(NodeId(1), request + 1, Some(Slot(5)))
            .is_empty());
        assert!(reads.release(Slot(9)).is_empty());
        assert!(reads.answer(NodeId(1), request, Some(Slot(5))).is_empty());
        assert!(reads.release(Slot(4)).is_empty());
        assert_eq!(reads.release(Slot(5)), vec![10, 11]);
        assert_eq!(reads.held(), 1);
        assert!(reads.may_ask());
        let second = reads.ask(at(3), NodeId(1));
        assert_eq!(reads.answer(NodeId(1), second, None), vec![12]);
        assert_eq!(reads.held(), 0);
    }

    #[test]
    fn an_unanswered_request_is_asked_again() {
        let mut reads = FollowerReads::new(0);
        reads.queue(at(1), 1, 8).unwrap();
        let first = reads.ask(at(1), NodeId(1));
        reads.queue(at(2), 2, 8).unwrap();
        let resend = Duration::from_millis(10);
        assert!(!reads.must_ask_again(Some(NodeId(1)), at(10), resend));
        assert!(reads.must_ask_again(Some(NodeId(1)), at(11), resend));
        assert!(reads.must_ask_again(Some(NodeId(2)), at(2), resend));
        reads.take_back_asked();
        let second = reads.ask(at(11), NodeId(2));
        // The late answer to the first request is ignored.
        assert!(reads.answer(NodeId(1), first, Some(Slot(1))).is_empty());
        assert!(reads.answer(NodeId(2), second, Some(Slot(3))).is_empty());
        assert_eq!(reads.release(Slot(3)), vec![1, 2]);
    }

    #[test]
    fn reads_are_bounded_and_expire() {
        let mut reads = FollowerReads::new(0);
        reads.queue(at(1), 1, 2).unwrap();
        reads.queue(at(2), 2, 2).unwrap();
        assert_eq!(reads.queue(at(2), 3, 2), Err(QueueFull));
        let request = reads.ask(at(2), NodeId(1));
        reads.answer(NodeId(1), request, Some(Slot(7)));
        reads.queue(at(5), 3, 2).unwrap_err();
        let timeout = Duration::from_millis(10);
        assert!(reads.expire(at(10), timeout).is_empty());
        assert_eq!(reads.expire(at(11), timeout), vec![1, 2]);
        reads.queue(at(5), 3, 2).unwrap();
        reads.ask(at(5), NodeId(1));
        reads.queue(at(6), 4, 2).unwrap();
        assert_eq!(reads.expire(at(16), timeout), vec![3, 4]);
        assert_eq!(reads.held(), 0);
    }
}
