//! A simulated node's session duties, as the node runtime's core task
//! does them, and how coordination violations fail a run.

use prost::Message as _;

use super::coord_oracles::Violation;
use super::session_oracles::BoundParams;
use super::{Event, Simulation};

impl Simulation {
    /// The core task's `lead_sessions`: follow leadership changes, then
    /// propose what the session clock says is due, on the node's own clock.
    pub(super) fn lead_sessions(&mut self, node: usize) -> Result<(), String> {
        let now = self.local_now(node);
        let now_ms = now.as_micros() / 1_000;
        let n = &mut self.nodes[node];
        let replica = n.replica.as_mut().expect("up");
        let before = n.timer.leading();
        n.timer
            .follow_role(now_ms, replica, &n.state_machine)
            .map_err(|e| e.to_string())?;
        let after = n.timer.leading();
        for op in n.timer.due(now_ms) {
            let bytes = synod_kvstore::Request::anonymous(op).encode_to_vec();
            // Refused: the clock proposes again after its retry interval.
            let _ = replica.propose(now, bytes);
        }
        if before != after {
            if before.is_some() {
                self.truth.term_ended(node, self.now_us);
            }
            if let Some(ballot) = after {
                self.truth.term_started(node, self.now_us);
                self.note(|| format!("n{} leads sessions with ballot {ballot}", node + 1));
                if self.options.mix.leader_churn && self.faults_active {
                    let incarnation = self.nodes[node].incarnation;
                    let term = 800_000 + self.rng.below(800_000);
                    self.schedule(
                        term,
                        Event::ChurnCrash {
                            node,
                            incarnation,
                            ballot,
                        },
                    );
                }
            }
        }
        Ok(())
    }

    /// Fails the run with the first violation of an oracle that is on.
    pub(super) fn report(&self, node: usize, violations: Vec<Violation>) -> Result<(), String> {
        match violations
            .into_iter()
            .find(|v| self.options.coord_oracles.0.contains(&v.oracle))
        {
            Some(v) => Err(format!(
                "[{}] at n{} ({} ms): {}",
                v.oracle.name(),
                node + 1,
                self.now_us / 1_000,
                v.message
            )),
            None => Ok(()),
        }
    }

    /// The coordination checks at the end of the run.
    pub(super) fn coord_final_checks(&mut self) -> Result<(), String> {
        let drift = self.drift_bound_ppm as f64 / 1e6;
        let bound = self.options.mix.commits_promptly().then_some(BoundParams {
            checkpoint_ms: self.options.sessions.checkpoint_interval_ms as f64,
            drift,
            propagate_ms: 150.0,
            expire_ms: 100.0,
        });
        let mut violations = Vec::new();
        self.truth.abandon_checks(
            self.now_us,
            self.heal_at_us,
            drift,
            bound.as_ref(),
            &mut violations,
        );
        self.report(0, violations)
    }
}
