//! The session oracles `keepalive` (e) and `abandon` (f), on the ground
//! truth of the run: when each session's slots first applied anywhere, in
//! simulated time, and when each node's session clock led. See
//! `coord_oracles` for their exact statements.

use std::collections::BTreeMap;

use synod_kvstore::SessionEvent;

use super::coord_oracles::{violation, Oracle, Violation};

/// A session's life in true (simulated) time, from the first apply of
/// each of its slots anywhere.
#[derive(Clone, Debug)]
pub struct SessionTruth {
    pub ttl_ms: u64,
    /// When its open and each keep-alive first applied.
    pub alive_us: Vec<u64>,
    /// When it ended, and whether by expiry.
    pub ended: Option<(u64, bool)>,
}

/// A leadership: when a node's session clock started and stopped leading.
#[derive(Clone, Copy, Debug)]
pub struct Term {
    pub node: usize,
    pub start_us: u64,
    pub end_us: Option<u64>,
}

/// The bound of the `abandon` oracle while leaders change.
#[derive(Clone, Copy, Debug)]
pub struct BoundParams {
    pub checkpoint_ms: f64,
    pub drift: f64,
    /// For a checkpoint to commit and reach the next leader.
    pub propagate_ms: f64,
    /// For the leader to notice the deadline and commit the expiry.
    pub expire_ms: f64,
}

/// Ground truth of the run's sessions and leaderships.
#[derive(Default)]
pub struct Truth {
    pub sessions: BTreeMap<u64, SessionTruth>,
    pub terms: Vec<Term>,
    /// (election, revision) → the leader seen with it.
    pub leaders: BTreeMap<(usize, u64), u64>,
    pub expired: u64,
    pub closed: u64,
    /// How close expiries came to the earliest the `keepalive` oracle
    /// allows (smallest `x - k - (TTL/(1+drift) - 2 ms)`), in µs.
    pub closest_early_us: Option<u64>,
    /// How close expiries came to the `abandon` bound while leaders
    /// changed (smallest `bound - x`), in µs.
    pub closest_late_us: Option<u64>,
}

impl Truth {
    /// Takes in the session events of a slot applied for the first time
    /// anywhere at `now_us`; checks `keepalive` on expiries.
    pub fn first_apply(
        &mut self,
        now_us: u64,
        events: &[SessionEvent],
        drift_ppm: u64,
        out: &mut Vec<Violation>,
    ) {
        for event in events {
            match event {
                SessionEvent::Opened { session, ttl_ms } => {
                    self.sessions.insert(
                        *session,
                        SessionTruth {
                            ttl_ms: *ttl_ms,
                            alive_us: vec![now_us],
                            ended: None,
                        },
                    );
                }
                SessionEvent::KeptAlive { session, .. } => {
                    if let Some(s) = self.sessions.get_mut(session) {
                        s.alive_us.push(now_us);
                    }
                }
                SessionEvent::Ended { session, expired } => {
                    let Some(s) = self.sessions.get_mut(session) else {
                        continue;
                    };
                    s.ended = Some((now_us, *expired));
                    if !*expired {
                        self.closed += 1;
                        continue;
                    }
                    self.expired += 1;
                    let last = *s.alive_us.last().expect("opened");
                    let min_us = s.ttl_ms * 1_000 * 1_000_000 / (1_000_000 + drift_ppm);
                    let min_us = min_us.saturating_sub(2_000);
                    let margin = (now_us - last).saturating_sub(min_us);
                    self.closest_early_us =
                        Some(self.closest_early_us.map_or(margin, |m| m.min(margin)));
                    if now_us - last < min_us {
                        out.push(violation(
                            Oracle::KeepAlive,
                            format!(
                                "session {session} (TTL {} ms) expired {} ms after its last \
                                 keep-alive applied; no expiry may come before {} ms",
                                s.ttl_ms,
                                (now_us - last) / 1_000,
                                min_us / 1_000
                            ),
                        ));
                    }
                }
                _ => {}
            }
        }
    }

    pub fn term_started(&mut self, node: usize, now_us: u64) {
        self.terms.push(Term {
            node,
            start_us: now_us,
            end_us: None,
        });
    }

    pub fn term_ended(&mut self, node: usize, now_us: u64) {
        if let Some(term) = self
            .terms
            .iter_mut()
            .rev()
            .find(|t| t.node == node && t.end_us.is_none())
        {
            term.end_us = Some(now_us);
        }
    }

    /// Leaderships by start, each cut where the next one starts.
    fn clipped_terms(&self, end_us: u64) -> Vec<(u64, u64)> {
        let mut terms: Vec<(u64, u64)> = self
            .terms
            .iter()
            .map(|t| (t.start_us, t.end_us.unwrap_or(end_us)))
            .collect();
        terms.sort();
        for i in 0..terms.len().saturating_sub(1) {
            terms[i].1 = terms[i].1.min(terms[i + 1].0);
        }
        terms
    }

    /// The latest time a session with `ttl_ms`, last kept alive at
    /// `alive_us`, may still be open (see the module docs); `None` if the
    /// leaderships seen do not bound it.
    fn expiry_bound(
        terms: &[(u64, u64)],
        alive_us: u64,
        ttl_ms: u64,
        p: &BoundParams,
    ) -> Option<u64> {
        let mut budget_ms = ttl_ms as f64;
        for &(start, end) in terms {
            if end <= alive_us {
                continue;
            }
            let start = start.max(alive_us);
            let due_us = start as f64
                + (budget_ms / (1.0 - p.drift) + p.propagate_ms + p.expire_ms) * 1_000.0;
            if due_us <= end as f64 {
                return Some(due_us as u64);
            }
            let led_ms = (end - start) as f64 / 1_000.0;
            let credit_ms = (led_ms - p.propagate_ms) * (1.0 - p.drift) - p.checkpoint_ms;
            budget_ms = (budget_ms - credit_ms.max(0.0)).max(0.0);
        }
        None
    }

    /// The `abandon` checks at the end of a run (see the module docs).
    pub fn abandon_checks(
        &mut self,
        end_us: u64,
        heal_us: u64,
        drift: f64,
        bound: Option<&BoundParams>,
        out: &mut Vec<Violation>,
    ) {
        const SETTLE_US: u64 = 3_000_000;
        const ALLOWANCE_US: u64 = 1_000_000;
        let terms = self.clipped_terms(end_us);
        let mut closest_late_us = None;
        for (session, s) in &self.sessions {
            let last = *s.alive_us.last().expect("opened");
            if s.ended.is_none() {
                let ttl_us = (s.ttl_ms as f64 * 1_000.0 / (1.0 - drift)) as u64;
                let due = last.max(heal_us + SETTLE_US) + ttl_us + ALLOWANCE_US;
                if due <= end_us {
                    out.push(violation(
                        Oracle::Abandon,
                        format!(
                            "session {session} (TTL {} ms), last kept alive at {} ms, is still \
                             open at the end ({} ms) though the faults healed at {} ms",
                            s.ttl_ms,
                            last / 1_000,
                            end_us / 1_000,
                            heal_us / 1_000
                        ),
                    ));
                }
            }
            let Some(p) = bound else { continue };
            for (i, &alive) in s.alive_us.iter().enumerate() {
                let next = s.alive_us.get(i + 1).copied().or(s.ended.map(|(at, _)| at));
                let Some(due) = Self::expiry_bound(&terms, alive, s.ttl_ms, p) else {
                    continue;
                };
                let late = match next {
                    Some(next) => next > due,
                    None => due <= end_us,
                };
                if let (Some(next), Some((_, true)), None) = (next, s.ended, s.alive_us.get(i + 1))
                {
                    let margin = due.saturating_sub(next);
                    closest_late_us = Some(closest_late_us.map_or(margin, |m: u64| m.min(margin)));
                }
                if late {
                    let what = match (next, s.alive_us.get(i + 1)) {
                        (Some(_), Some(_)) => "was kept alive again",
                        (Some(_), None) => "ended",
                        (None, _) => "was still open",
                    };
                    out.push(violation(
                        Oracle::Abandon,
                        format!(
                            "session {session} (TTL {} ms) last kept alive at {} ms should have \
                             expired by {} ms given the leaderships since, but it {what} at {} ms",
                            s.ttl_ms,
                            alive / 1_000,
                            due / 1_000,
                            next.unwrap_or(end_us) / 1_000
                        ),
                    ));
                    break;
                }
            }
        }
        self.closest_late_us = closest_late_us;
    }
}
