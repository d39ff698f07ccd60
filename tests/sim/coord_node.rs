//! How coordination violations fail a run.

use super::coord_oracles::Violation;
use super::session_oracles::BoundParams;
use super::Simulation;

impl Simulation {
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
