//! The leader's key expiry duties in the core task: drives the pure
//! [`KeyExpiryClock`] with the core's monotonic clock, and tells the read
//! path what the clock knows.
//!
//! The node, through [`LeaderDuties`](super::leader_duties::LeaderDuties):
//! 1. starts it ([`become_leader`](ExpiryTimer::become_leader)) or stops it
//!    ([`step_down`](ExpiryTimer::step_down)) as its leadership changes, and
//!    proposes what [`due`](ExpiryTimer::due) returns (key expiries, TTL
//!    checkpoints) every round before taking `Ready`, and also right before
//!    proposing a client's write, so that the expiry of every key whose
//!    deadline passed precedes that write in the log;
//! 2. [`observe`](ExpiryTimer::observe)s each applied slot's expiry events;
//! 3. before answering a read as leader, asks
//!    [`needs_log`](ExpiryTimer::needs_log): a read that would show a key
//!    past its deadline (its deletion proposed but not applied yet) is
//!    served through the log instead, behind that deletion, so no read ever
//!    shows an expired key yet no read shows a deletion that is not
//!    committed either (a leader that dies first would leave the key in
//!    place); otherwise [`fill_ttl`](ExpiryTimer::fill_ttl) turns a TTL
//!    read's recorded remaining TTL into the leader's exact one.
//!
//! Cost: `due` and the read checks are O(log n) in the keys with a TTL (a
//! Redis-typed read's, once per key it names);
//! becoming leader reads every key expiry once.

use synod_kvstore::{
    KeyExpiryClock, KeyExpiryConfig, KeyExpiryEvent, Op, Outcome, Response, StateMachine,
    StorageError,
};
use synod_paxos::{Ballot, NodeId};
use synod_wire::redis::spec;

/// The key expiry clock, as the leader drives it.
pub(super) struct ExpiryTimer {
    clock: KeyExpiryClock,
}

impl ExpiryTimer {
    pub(super) fn new(config: KeyExpiryConfig) -> ExpiryTimer {
        ExpiryTimer {
            clock: KeyExpiryClock::new(config),
        }
    }

    /// Starts the leader's duties of `node`, leading with `ballot`: every
    /// key deadline restarts from its remaining TTL.
    pub(super) fn become_leader(
        &mut self,
        now_ms: u64,
        state_machine: &StateMachine,
        node: NodeId,
        ballot: Ballot,
    ) -> Result<(), StorageError> {
        let expiries = state_machine.key_expiries()?;
        self.clock.become_leader(now_ms, &expiries);
        tracing::info!(
            %node,
            %ballot,
            keys = expiries.len(),
            "leading: key deadlines restarted from their remaining TTLs"
        );
        Ok(())
    }

    /// Stops the leader's duties: the key deadlines are dropped.
    pub(super) fn step_down(&mut self) {
        self.clock.step_down();
    }

    /// Takes in the expiry events of a slot applied at `now_ms`.
    pub(super) fn observe(&mut self, now_ms: u64, events: &[KeyExpiryEvent]) {
        if !events.is_empty() {
            self.clock.observe(now_ms, events);
        }
    }

    /// The ops the leader must propose at `now_ms` (empty unless leader).
    pub(super) fn due(&mut self, now_ms: u64) -> Vec<Op> {
        match self.clock.next_wakeup_ms() {
            Some(wakeup_ms) if wakeup_ms <= now_ms => self.clock.poll(now_ms),
            _ => Vec::new(),
        }
    }

    /// Whether the leader must serve the read `op`, which gave `response`,
    /// through the log instead: it shows a key whose deadline passed at
    /// `now_ms`.
    pub(super) fn needs_log(&self, op: &Op, response: &Response, now_ms: u64) -> bool {
        if !self.clock.is_leader() {
            return false;
        }
        let expired = |key: &[u8]| self.clock.is_expired(key, now_ms);
        match (op, &response.outcome) {
            (_, Some(Outcome::Get(get))) => get.kv.as_ref().is_some_and(|kv| expired(&kv.key)),
            (_, Some(Outcome::Scan(scan))) => scan.kvs.iter().any(|kv| expired(&kv.key)),
            (Op::Ttl(t), Some(Outcome::Ttl(ttl))) => ttl.exists && expired(&t.key),
            // A Redis command's reply does not say which keys it shows: the keys it names where
            // `COMMAND` says, or any key for one that names them otherwise (`RANDOMKEY`,
            // `SINTERCARD`, ...).
            (Op::Redis(command), _) if self.clock.tracked() > 0 => {
                let spec = command.args.first().and_then(|name| spec(name));
                match spec.and_then(|spec| spec.key_args(&command.args)) {
                    Some(mut keys) => keys.any(expired),
                    None => self.clock.any_expired(now_ms),
                }
            }
            _ => false,
        }
    }

    /// Replaces the recorded remaining TTL of the answer to a TTL read `op`
    /// by the leader's, when this node leads and tracks that expiry.
    pub(super) fn fill_ttl(&self, op: &Op, response: &mut Response, now_ms: u64) {
        if let (Op::Ttl(t), Some(Outcome::Ttl(ttl))) = (op, response.outcome.as_mut()) {
            if ttl.expiry_revision == 0 {
                return;
            }
            let remaining = self.clock.remaining_ms(&t.key, ttl.expiry_revision, now_ms);
            if let Some(remaining_ms) = remaining {
                ttl.remaining_ms = remaining_ms;
                ttl.leader_clock = true;
            }
        }
    }
}
