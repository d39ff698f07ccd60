//! The checks at the end of a run.

use std::collections::BTreeSet;

use synod_paxos::{NodeId, Value};

use super::workload::WriteCommand;
use super::{Simulation, AFTER_HEAL_US};
use crate::support::linearizability::{check_kv, KvOp, Operation};

impl Simulation {
    pub(super) fn final_checks(&mut self) -> Result<(), String> {
        self.coord_final_checks()?;
        let newest = self.chosen.keys().next_back().copied().unwrap_or_default();
        let members = self.membership_oracle.final_members();
        for (i, node) in self.nodes.iter().enumerate() {
            if !members.contains(&NodeId(i as u32 + 1)) || self.left_down.contains(&i) {
                continue;
            }
            self.membership_oracle.check_node(i, node.node.as_ref())?;
            if node.applied() != newest {
                return Err(format!(
                    "n{} applied through slot {} but slot {newest} is chosen (no convergence after heal)",
                    i + 1,
                    node.applied()
                ));
            }
            let reference = members
                .iter()
                .map(|id| id.0 as usize - 1)
                .find(|n| !self.left_down.contains(n))
                .unwrap_or(0);
            if node.state_hash() != self.nodes[reference].state_hash() {
                return Err(format!(
                    "n{} and n{} applied the same log but hold different states",
                    i + 1,
                    reference + 1
                ));
            }
        }
        let logged: BTreeSet<(u64, u64)> = self
            .chosen
            .values()
            .filter_map(|v| match v {
                Value::Commands(c) => Some(c),
                Value::Noop | Value::Reconfigure(_) => None,
            })
            .flatten()
            .map(|bytes| WriteCommand::origin(bytes))
            .collect();
        if let Some(lost) = self.acked_writes.difference(&logged).next() {
            return Err(format!(
                "acknowledged write {lost:?} (client, seq) is not in the log"
            ));
        }
        let Some(first) = self.first_write_after_heal_us else {
            return Err(format!(
                "no write committed within {} ms after the faults healed",
                AFTER_HEAL_US / 1000
            ));
        };
        let _ = first;
        let history = self.history();
        let result = check_kv(&history);
        if !result.is_linearizable() {
            return Err(format!("history of {} operations: {result}", history.len()));
        }
        Ok(())
    }

    pub(super) fn history(&self) -> Vec<Operation> {
        let mut history = Vec::new();
        for client in &self.clients {
            history.extend(client.done.iter().cloned());
            if let Some(current) = &client.current {
                if !matches!(current.op.op, KvOp::Get { .. }) {
                    history.push(current.op.clone());
                }
            }
        }
        history
    }
}
