//! How a node that lacks chosen values gets them: whom it fetches from, how
//! often, and how often it offers a lagging peer a snapshot instead.
//!
//! The rules:
//! - a node fetches while a leader (or a promise's compaction point) told
//!   it of a commit index above its own, at most once per heartbeat
//!   interval, from its catch-up source if it has one, else from the node
//!   it believes leads, never from itself;
//! - a catch-up source (a node known to hold chosen values this one lacks,
//!   set when a promise showed it is behind that node's compaction point)
//!   is dropped once it sent nothing that moved the commit index for an
//!   election timeout (it may have died), or once a snapshot is installed;
//! - a peer that asks for compacted slots is offered a snapshot at most
//!   once per election timeout.
//!
//! [`CatchUp`] keeps the state of these rules and never sees the replica:
//! its methods take the commit index, the believed leader and the config,
//! and return the fetch to send, or whether to offer a snapshot.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::config::Config;
use crate::message::Message;
use crate::time::Instant;
use crate::types::{NodeId, Slot};

/// The catch-up state of one node.
pub(crate) struct CatchUp {
    /// Highest commit index any leader told us of (or a promise's
    /// compaction point showed).
    known_commit: Slot,
    /// No fetch before this (local clock).
    next_fetch_at: Instant,
    /// A node known to hold chosen values we lack; fetched from before the
    /// leader.
    source: Option<NodeId>,
    /// When `source` was set or last moved the commit index.
    progress_at: Instant,
    /// When we last asked the driver to send each peer a snapshot.
    snapshot_offered_at: BTreeMap<NodeId, Instant>,
}

impl CatchUp {
    /// Nothing known to fetch, free to fetch from `now`.
    pub(crate) fn new(now: Instant) -> CatchUp {
        CatchUp {
            known_commit: Slot(0),
            next_fetch_at: now,
            source: None,
            progress_at: now,
            snapshot_offered_at: BTreeMap::new(),
        }
    }

    /// Some node's commit index is at least `commit`.
    pub(crate) fn learn_commit(&mut self, commit: Slot) {
        self.known_commit = self.known_commit.max(commit);
    }

    /// Fetches from `source`, which holds chosen values this node lacks,
    /// before the leader.
    pub(crate) fn start_from(&mut self, now: Instant, source: NodeId) {
        self.source = Some(source);
        self.progress_at = now;
    }

    /// A snapshot was installed: back to fetching from the leader.
    pub(crate) fn forget_source(&mut self) {
        self.source = None;
    }

    /// Lifts the rate limit: the next fetch may go now.
    pub(crate) fn fetch_now(&mut self, now: Instant) {
        self.next_fetch_at = now;
    }

    /// Chosen values from `from` moved the commit index.
    pub(crate) fn progressed(&mut self, now: Instant, from: NodeId) {
        if self.source == Some(from) {
            self.progress_at = now;
        }
    }

    /// The fetch node `me`, with commit index `commit` and believing
    /// `leader` leads, should send now, if any.
    pub(crate) fn fetch(
        &mut self,
        now: Instant,
        me: NodeId,
        commit: Slot,
        leader: Option<NodeId>,
        config: &Config,
    ) -> Option<(NodeId, Message)> {
        if let Some(source) = self.source {
            if now >= self.progress_at + config.election_timeout {
                // Nothing from it moved the commit index for an election
                // timeout: it may be down. Fall back to the leader.
                tracing::info!(node = %me, %source, "catch-up source silent; fetching from the leader");
                self.source = None;
            }
        }
        let source = self.source.or(leader)?;
        if source == me || self.known_commit <= commit || !self.take_fetch_turn(now, config) {
            return None;
        }
        let first_slot = commit.next();
        Some((source, Message::Fetch { first_slot }))
    }

    /// True if a fetch may go now (at most one per heartbeat interval); if
    /// so, the next one waits.
    pub(crate) fn take_fetch_turn(&mut self, now: Instant, config: &Config) -> bool {
        if now < self.next_fetch_at {
            return false;
        }
        self.next_fetch_at = now + config.heartbeat_interval;
        true
    }

    /// True if `peer`, which asked for compacted slots, should be sent a
    /// snapshot now: at most once per `interval`.
    pub(crate) fn offer_snapshot(
        &mut self,
        now: Instant,
        peer: NodeId,
        interval: Duration,
    ) -> bool {
        let due = self
            .snapshot_offered_at
            .get(&peer)
            .is_none_or(|at| now >= *at + interval);
        if due {
            self.snapshot_offered_at.insert(peer, now);
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::at_ms;

    #[test]
    fn fetches_from_the_source_until_it_falls_silent_then_from_the_leader() {
        let config = Config::new(NodeId(1), vec![NodeId(1), NodeId(2), NodeId(3)]);
        let mut catch_up = CatchUp::new(at_ms(0));
        let (me, leader) = (NodeId(1), Some(NodeId(2)));
        assert_eq!(
            catch_up.fetch(at_ms(0), me, Slot(5), leader, &config),
            None,
            "nothing known to lack"
        );
        catch_up.learn_commit(Slot(9));
        catch_up.start_from(at_ms(0), NodeId(3));
        let (to, _) = catch_up
            .fetch(at_ms(0), me, Slot(5), leader, &config)
            .unwrap();
        assert_eq!(to, NodeId(3));
        assert_eq!(
            catch_up.fetch(at_ms(1), me, Slot(5), leader, &config),
            None,
            "rate limited"
        );
        let silent = at_ms(0) + config.election_timeout;
        let (to, message) = catch_up
            .fetch(silent, me, Slot(5), leader, &config)
            .unwrap();
        assert_eq!(to, NodeId(2));
        assert_eq!(
            message,
            Message::Fetch {
                first_slot: Slot(6)
            }
        );
    }

    #[test]
    fn offers_a_peer_a_snapshot_once_per_interval() {
        let mut catch_up = CatchUp::new(at_ms(0));
        let interval = Duration::from_millis(100);
        assert!(catch_up.offer_snapshot(at_ms(0), NodeId(2), interval));
        assert!(!catch_up.offer_snapshot(at_ms(99), NodeId(2), interval));
        assert!(catch_up.offer_snapshot(at_ms(99), NodeId(3), interval));
        assert!(catch_up.offer_snapshot(at_ms(100), NodeId(2), interval));
    }
}
