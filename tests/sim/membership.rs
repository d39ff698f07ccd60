//! Membership changes in the simulation, and their oracles.
//!
//! With `SimOptions::membership_changes`, the run starts `spares` machines
//! beyond the founding ones, empty and joining, and now and then asks the
//! leader for a change (add a spare as a learner, promote a learner, remove a
//! voter: a crashed one if any, the leader itself at times), through the
//! same `Node::propose_change` an operator's `synod member` reaches.
//!
//! The oracles keep their own model of the memberships, replayed from the
//! chosen values with Lamport's α rule (a change chosen in slot i governs
//! from i + α):
//! - every slot is chosen under the membership that governs it: some ballot
//!   has durable acceptances from a quorum of that membership's voters (so a
//!   removed node, or a learner, never helps choose a value);
//! - consecutive memberships differ by at most one voter, so their quorums
//!   intersect;
//! - at the end, every member's core agrees with the model on the
//!   membership governing its next slot, and (with the other final checks)
//!   every member applied the whole log.

use std::collections::{BTreeMap, BTreeSet};

use synod::node::Node;
use synod_paxos::{
    Ballot, Change, Member, Membership, MembershipLog, NodeId, Record, Slot, Value,
    ACTIVATION_DELAY,
};

use super::{Event, Simulation};

/// The oracles' own view of the memberships and of who accepted what.
pub struct MembershipOracle {
    model: MembershipLog,
    /// Durable acceptances of slots not yet seen chosen: slot → ballot →
    /// acceptors.
    accepts: BTreeMap<Slot, BTreeMap<Ballot, BTreeSet<NodeId>>>,
    /// Changes chosen so far.
    pub changes: u64,
}

impl MembershipOracle {
    /// The model of a cluster founded by nodes `1..=founding`.
    pub fn new(founding: usize) -> MembershipOracle {
        let voters = (1..=founding as u32).map(|id| Member {
            id: NodeId(id),
            voter: true,
            peer_addr: String::new(),
            client_addr: String::new(),
        });
        MembershipOracle {
            model: MembershipLog::new(Membership::founding(voters)),
            accepts: BTreeMap::new(),
            changes: 0,
        }
    }

    /// Notes the acceptances among `records`, which `node` is about to make
    /// durable.
    pub fn record_accepts(&mut self, node: NodeId, records: &[Record]) {
        for record in records {
            if let Record::Accepted { slot, ballot, .. } = record {
                self.accepts
                    .entry(*slot)
                    .or_default()
                    .entry(*ballot)
                    .or_default()
                    .insert(node);
            }
        }
    }

    /// Every member (voter or learner) of the newest membership, in order.
    pub fn final_members(&self) -> Vec<NodeId> {
        self.model.latest().members().map(|m| m.id).collect()
    }

    /// Checks that `node`'s core agrees with the model on the membership
    /// governing its next slot.
    pub fn check_node(&self, index: usize, node: Option<&Node>) -> Result<(), String> {
        let Some(node) = node else {
            return Ok(());
        };
        let replica = node.replica();
        let next = replica.commit_index().next();
        let voters = |m: &Membership| m.voters().collect::<Vec<_>>();
        let model = voters(self.model.governing(next));
        let core = voters(replica.membership().governing(next));
        if model != core {
            return Err(format!(
                "n{} thinks slot {next} is governed by voters {core:?}, the chosen changes say {model:?}",
                index + 1
            ));
        }
        Ok(())
    }
}

impl Simulation {
    /// The oracles on a slot seen chosen for the first time (every lower
    /// slot was seen before): it was chosen under the membership that
    /// governs it, and a change in it keeps quorums intersecting.
    pub(super) fn membership_chosen(&mut self, slot: Slot, value: &Value) -> Result<(), String> {
        let oracle = &mut self.membership_oracle;
        let governing = oracle.model.governing(slot).clone();
        let accepts = oracle.accepts.remove(&slot).unwrap_or_default();
        let chosen_by_quorum = accepts.values().any(|nodes| governing.has_quorum(nodes));
        if !chosen_by_quorum {
            return Err(format!(
                "slot {slot} was chosen without a quorum of its governing voters {:?} at any \
                 ballot (acceptances: {accepts:?})",
                governing.voters().collect::<Vec<_>>()
            ));
        }
        if let Value::Reconfigure(change) = value {
            let before: BTreeSet<NodeId> = oracle.model.latest().voters().collect();
            if oracle
                .model
                .record_chosen(slot, change, ACTIVATION_DELAY)
                .is_ok()
            {
                oracle.changes += 1;
                let after: BTreeSet<NodeId> = oracle.model.latest().voters().collect();
                if before.symmetric_difference(&after).count() > 1 {
                    return Err(format!(
                        "slot {slot}: membership change {change} moves from voters {before:?} to \
                         {after:?}: their quorums need not intersect"
                    ));
                }
            }
            self.note(|| format!("slot {slot}: membership change {change} chosen"));
        }
        // Late acceptances (retransmissions) of slots already chosen.
        self.membership_oracle.accepts.retain(|s, _| *s > slot);
        Ok(())
    }

    /// Asks the leader, if there is one, for the next membership change.
    pub(super) fn membership_change(&mut self) -> Result<(), String> {
        if !self.faults_active {
            return Ok(());
        }
        let delay = 200_000 + self.rng.below(500_000);
        self.schedule(delay, Event::MembershipChange);
        let Some(leader) = (0..self.nodes.len()).find(|n| {
            self.nodes[*n]
                .node
                .as_ref()
                .is_some_and(|node| node.replica().is_leader())
        }) else {
            return Ok(());
        };
        let latest = self.nodes[leader]
            .node
            .as_ref()
            .expect("up")
            .replica()
            .membership()
            .latest()
            .clone();
        let voters: Vec<NodeId> = latest.voters().collect();
        let learner = latest.members().find(|m| !m.voter).map(|m| m.id);
        let unused_spare = (self.options.nodes..self.nodes.len())
            .map(|n| NodeId(n as u32 + 1))
            .find(|id| !latest.is_member(*id) && !latest.is_retired(*id));
        let change = if let Some(learner) = learner {
            Change::Promote(learner)
        } else if voters.len() > 3 || (unused_spare.is_none() && voters.len() > 2) {
            // Replace a crashed voter first; else remove any, the leader
            // itself at times.
            let crashed = voters
                .iter()
                .find(|id| self.nodes[id.0 as usize - 1].node.is_none());
            let victim = match crashed {
                Some(id) => *id,
                None => voters[self.rng.below(voters.len() as u64) as usize],
            };
            Change::Remove(victim)
        } else if let Some(id) = unused_spare {
            Change::AddLearner {
                id,
                peer_addr: format!("sim-peer-{}", id.0),
                client_addr: format!("sim-client-{}", id.0),
            }
        } else {
            return Ok(());
        };
        let now = self.local_now(leader);
        let result = self.nodes[leader]
            .node
            .as_mut()
            .expect("up")
            .propose_change(now, change.clone());
        self.note(|| format!("n{} asked to {change}: {result:?}", leader + 1));
        self.drive(leader, None)
    }
}
