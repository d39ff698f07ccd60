//! The learner side of a replica: which slots are chosen, delivering them in
//! order, catching up by fetch or snapshot (whom from and how often is
//! [`crate::catch_up`]'s), and compaction.
//!
//! An `impl Replica` in a child module of `replica`: the log and the commit
//! index it keeps are the ones the acceptor writes and the roles' dispatch
//! reads, so it works on `Replica`'s private fields directly.

use super::Replica;
use crate::membership::MembershipLog;
use crate::message::{Message, MESSAGE_OVERHEAD_BYTES};
use crate::storage::{Record, SlotState};
use crate::time::Instant;
use crate::types::{Ballot, NodeId, Slot, Value};

impl Replica {
    /// Forgets log slots through `through`, which the driver has captured in
    /// a durable state-machine snapshot. Peers that need them later get a
    /// snapshot instead (see `Ready::snapshots_to_send`). `through` must be
    /// applied already.
    pub fn compact(&mut self, through: Slot) {
        assert!(
            through <= self.delivered,
            "compacting slots not yet applied"
        );
        if through <= self.compacted_through {
            return;
        }
        self.compacted_through = through;
        let kept = self.log.split_off(&through.next());
        let forgotten = std::mem::replace(&mut self.log, kept);
        self.log_bytes -= forgotten
            .values()
            .map(|state| state.value().size_bound_bytes() as u64)
            .sum::<u64>();
        self.persist(Record::Compacted(through));
    }

    /// The driver installed a snapshot of the state machine taken at
    /// `through` (durably, before this call). Slots up to there count as
    /// chosen and applied; later chosen slots are delivered as usual. The
    /// driver must only install snapshots ahead of `commit_index()`; one
    /// that is not, or one above [`Slot::MAX`], is ignored and `false`
    /// returned.
    /// `membership` is the snapshot's: the memberships governing the slots
    /// after `through`.
    pub fn install_snapshot(
        &mut self,
        now: Instant,
        through: Slot,
        membership: MembershipLog,
    ) -> bool {
        if through <= self.commit || through > Slot::MAX || membership.is_unknown() {
            return false;
        }
        tracing::info!(node = %self.config.id, slot = %through, "snapshot installed");
        self.membership = membership;
        self.membership.forget_before(through.next());
        self.commit = through;
        self.delivered = through;
        self.catch_up.learn_commit(through);
        self.compact(through);
        self.catch_up.forget_source();
        self.advance_commit();
        self.catch_up.fetch_now(now);
        self.maybe_fetch(now);
        self.settle(now);
        true
    }

    /// Slots through this one are compacted away.
    pub fn compacted_through(&self) -> Slot {
        self.compacted_through
    }

    /// The leader of `ballot` says everything through `leader_commit` is
    /// chosen: values we accepted at that same ballot are the chosen ones.
    pub(super) fn learn_commit(&mut self, now: Instant, ballot: Ballot, leader_commit: Slot) {
        self.catch_up.learn_commit(leader_commit);
        if leader_commit <= self.commit {
            return;
        }
        let learned: Vec<(Slot, Value)> = self
            .log
            .range(self.commit.next()..=leader_commit)
            .filter_map(|(slot, state)| match state {
                SlotState::Accepted { ballot: b, value } if *b == ballot => {
                    Some((*slot, value.clone()))
                }
                _ => None,
            })
            .collect();
        for (slot, value) in learned {
            self.mark_chosen(slot, value);
        }
        self.advance_commit();
        self.maybe_fetch(now);
    }

    /// Records that `value` is chosen in `slot`.
    pub(super) fn mark_chosen(&mut self, slot: Slot, value: Value) {
        if slot <= self.compacted_through {
            return;
        }
        if let Some(SlotState::Chosen(chosen)) = self.log.get(&slot) {
            assert_eq!(
                chosen, &value,
                "safety violation: chosen slot {slot} changed"
            );
            return;
        }
        self.put_slot(slot, SlotState::Chosen(value.clone()));
        self.persist(Record::Chosen { slot, value });
    }

    /// Moves the commit index over every contiguous chosen slot and hands
    /// them to the driver.
    pub(super) fn advance_commit(&mut self) {
        let before = self.commit;
        while matches!(
            self.log.get(&self.commit.next()),
            Some(SlotState::Chosen(_))
        ) {
            self.commit = self.commit.next();
        }
        assert!(self.commit >= before, "commit index went down");
        if self.commit > before {
            self.deliver_committed();
            self.membership.forget_before(self.commit.next());
            self.release_reads();
        }
    }

    pub(super) fn deliver_committed(&mut self) {
        while self.delivered < self.commit {
            let slot = self.delivered.next();
            let value = self.chosen(slot).expect("committed slot is chosen").clone();
            if let Value::Reconfigure(change) = &value {
                let delay = self.activation_delay();
                match self.membership.record_chosen(slot, change, delay) {
                    Ok(()) => {
                        tracing::info!(node = %self.config.id, %slot, %change, "membership change chosen")
                    }
                    Err(error) => {
                        tracing::warn!(node = %self.config.id, %slot, %change, %error, "membership change chosen but invalid; ignored")
                    }
                }
            }
            self.ready.committed.push((slot, value));
            self.delivered = slot;
        }
    }

    /// Sends the fetch that catching up asks for now, if any (see
    /// [`crate::catch_up`]).
    pub(super) fn maybe_fetch(&mut self, now: Instant) {
        let (me, commit, leader) = (self.config.id, self.commit, self.leader_hint);
        if let Some((to, fetch)) = self.catch_up.fetch(now, me, commit, leader, &self.config) {
            self.send(to, fetch);
        }
    }

    pub(super) fn on_fetch(&mut self, now: Instant, from: NodeId, first_slot: Slot) {
        // A node that joined after the log began cannot apply it from the
        // start (it does not know the founding membership): it gets a
        // snapshot, which carries the membership.
        let joiner_from_start = first_slot == Slot(1) && !self.config.members.contains(&from);
        if first_slot <= self.compacted_through || joiner_from_start {
            // The values are gone; the driver sends our snapshot instead, at
            // most once per election timeout per peer.
            let interval = self.config.election_timeout;
            if self.catch_up.offer_snapshot(now, from, interval) {
                self.ready.snapshots_to_send.push(from);
            }
            return;
        }
        // At most `max_fetch_entries` and `max_message_bytes`, but at
        // least one entry, so that the follower always makes progress.
        let budget = self.config.max_message_bytes;
        let mut size = MESSAGE_OVERHEAD_BYTES;
        let mut entries: Vec<(Slot, Value)> = Vec::new();
        let chosen = self
            .log
            .range(first_slot..)
            .filter_map(|(slot, state)| match state {
                SlotState::Chosen(value) => Some((*slot, value)),
                SlotState::Accepted { .. } => None,
            })
            .take(self.config.max_fetch_entries);
        for (slot, value) in chosen {
            let bytes = value.size_bound_bytes();
            if !entries.is_empty() && size + bytes > budget {
                break;
            }
            size += bytes;
            entries.push((slot, value.clone()));
        }
        if !entries.is_empty() {
            self.send(from, Message::Chosen { entries });
        }
    }

    pub(super) fn on_chosen(&mut self, now: Instant, from: NodeId, entries: Vec<(Slot, Value)>) {
        if self.membership.is_unknown() {
            // A joining node waits for a snapshot (see `on_fetch`).
            return;
        }
        let horizon = self.slot_horizon();
        for (slot, value) in entries {
            if slot > horizon {
                break;
            }
            self.mark_chosen(slot, value);
        }
        let before = self.commit;
        self.advance_commit();
        if self.commit > before {
            self.catch_up.progressed(now, from);
        }
        self.catch_up.fetch_now(now);
        self.maybe_fetch(now);
    }
}
