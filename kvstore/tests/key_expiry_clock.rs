//! The leader's key expiry clock driving a state machine on a fake clock: keys expire at their
//! deadline and never before, a key written again meanwhile survives, checkpoints carry the
//! remaining TTL across leader changes, and frequent leader changes cannot keep a key alive
//! forever (etcd#9395, for keys).

mod coord;

use coord::{Coord, Rng};
use synod_kvstore::{
    Expire, ExpireIf, KeyExpiryClock, KeyExpiryConfig, KeyExpiryEvent, KeyTtl, Op, Persist, Put,
    Request, Response,
};

fn config() -> KeyExpiryConfig {
    KeyExpiryConfig {
        checkpoint_interval_ms: 1_000,
        retry_ms: 500,
    }
}

/// A state machine driven by whichever node leads, with a fake clock in ms.
struct Driver {
    coord: Coord,
    clock: KeyExpiryClock,
    now_ms: u64,
    /// Every key deleted by its expiry, with the time it applied.
    expired: Vec<(u64, Vec<u8>)>,
    /// Proposals the network "loses" from now on (none by default).
    lose_proposals: bool,
}

impl Driver {
    fn new() -> Driver {
        let mut driver = Driver {
            coord: Coord::new(),
            clock: KeyExpiryClock::new(config()),
            now_ms: 0,
            expired: Vec::new(),
            lose_proposals: false,
        };
        driver.new_leader();
        driver
    }

    /// A leader change: a fresh clock that knows only what the state machine recorded.
    fn new_leader(&mut self) {
        self.clock = KeyExpiryClock::new(config());
        let expiries = self.coord.sm.key_expiries().unwrap();
        self.clock.become_leader(self.now_ms, &expiries);
    }

    fn apply(&mut self, requests: &[Request]) -> Vec<Response> {
        let before: Vec<Vec<u8>> = requests
            .iter()
            .filter_map(|r| match &r.op {
                Some(Op::ExpireKeys(e)) => Some(e.entries.iter().map(|e| e.key.clone())),
                _ => None,
            })
            .flatten()
            .filter(|key| self.coord.get(key).is_some())
            .collect();
        let responses = self.coord.apply(requests);
        let effects = std::mem::take(&mut self.coord.effects);
        self.clock.observe(self.now_ms, &effects.key_expiry_events);
        for key in before {
            if self.coord.get(&key).is_none() {
                self.expired.push((self.now_ms, key));
            }
        }
        responses
    }

    fn put(&mut self, key: &[u8], ttl: Option<KeyTtl>) -> Response {
        let mut request = Request::anonymous(Op::Put(Put {
            key: key.to_vec(),
            value: b"v".to_vec(),
            prev_kv: false,
        }));
        request.key_ttl = ttl;
        self.apply(&[request]).remove(0)
    }

    fn op(&mut self, op: Op) -> Response {
        self.apply(&[Request::anonymous(op)]).remove(0)
    }

    /// Advance the clock to `now_ms` and apply whatever the leader proposes then.
    fn advance_to(&mut self, now_ms: u64) {
        assert!(now_ms >= self.now_ms);
        self.now_ms = now_ms;
        let ops = self.clock.poll(now_ms);
        if !ops.is_empty() && !self.lose_proposals {
            let requests: Vec<Request> = ops.into_iter().map(Request::anonymous).collect();
            self.apply(&requests);
        }
    }

    fn run_until(&mut self, until_ms: u64, step_ms: u64) {
        while self.now_ms < until_ms {
            let next = (self.now_ms + step_ms).min(until_ms);
            self.advance_to(next);
        }
    }

    fn exists(&self, key: &[u8]) -> bool {
        self.coord.get(key).is_some()
    }

    fn expired_at(&self, key: &[u8]) -> Option<u64> {
        self.expired
            .iter()
            .find(|(_, k)| k == key)
            .map(|(at, _)| *at)
    }

    fn recorded_remaining_ms(&self, key: &[u8]) -> u64 {
        let expiries = self.coord.sm.key_expiries().unwrap();
        expiries.iter().find(|e| e.key == key).unwrap().remaining_ms
    }
}

#[test]
fn the_leader_expires_a_key_exactly_at_its_deadline() {
    let mut d = Driver::new();
    d.now_ms = 100;
    d.put(b"k", Some(KeyTtl::expire_in(2_500)));
    d.run_until(2_599, 10);
    assert!(d.exists(b"k"), "alive before its TTL");
    assert!(!d.clock.is_expired(b"k", 2_599));
    assert!(d.clock.is_expired(b"k", 2_600));
    assert!(!d.clock.any_expired(2_599));
    assert!(d.clock.any_expired(2_600));
    d.advance_to(2_600);
    assert!(!d.exists(b"k"));
    assert_eq!(d.expired_at(b"k"), Some(2_600));
    assert_eq!(d.clock.tracked(), 0, "the deletion untracks it");
    assert!(
        !d.clock.any_expired(u64::MAX),
        "nor is it counted as expired"
    );
}

#[test]
fn remaining_ms_follows_the_leader_clock_for_the_expiry_it_tracks() {
    let mut d = Driver::new();
    let r = d.put(b"k", Some(KeyTtl::expire_in(1_000)));
    assert_eq!(d.clock.remaining_ms(b"k", r.revision, 0), Some(1_000));
    assert_eq!(d.clock.remaining_ms(b"k", r.revision, 400), Some(600));
    assert_eq!(d.clock.remaining_ms(b"k", r.revision, 5_000), Some(0));
    assert_eq!(d.clock.remaining_ms(b"k", r.revision + 1, 400), None);
    assert_eq!(d.clock.deadline_ms(b"k"), Some((r.revision, 1_000)));
    assert_eq!(d.clock.next_wakeup_ms(), Some(1_000));
}

#[test]
fn a_key_written_again_before_its_expiry_applied_survives() {
    let mut d = Driver::new();
    d.put(b"k", Some(KeyTtl::expire_in(1_000)));
    d.now_ms = 1_000;
    let ops = d.clock.poll(1_000);
    assert!(matches!(ops[0], Op::ExpireKeys(_)), "{ops:?}");
    // A write lands in the log between the leader's decision and its expiry command.
    d.put(b"k", None);
    let requests: Vec<Request> = ops.into_iter().map(Request::anonymous).collect();
    d.apply(&requests);
    assert!(d.exists(b"k"), "the plain SET made it persistent");
    d.run_until(10_000, 100);
    assert!(d.exists(b"k"));
    // Same with a new TTL: the old expiry's command cannot delete it early.
    d.put(b"j", Some(KeyTtl::expire_in(1_000)));
    d.now_ms += 1_000;
    let ops = d.clock.poll(d.now_ms);
    d.put(b"j", Some(KeyTtl::expire_in(5_000)));
    d.apply(&ops.into_iter().map(Request::anonymous).collect::<Vec<_>>());
    assert!(d.exists(b"j"));
    let set_at = d.now_ms;
    d.run_until(set_at + 4_999, 50);
    assert!(d.exists(b"j"));
    d.advance_to(set_at + 5_000);
    assert!(!d.exists(b"j"));
}

#[test]
fn expire_and_persist_move_or_drop_the_deadline() {
    let mut d = Driver::new();
    d.put(b"a", None);
    d.put(b"b", Some(KeyTtl::expire_in(1_000)));
    d.op(Op::Expire(Expire {
        key: b"a".to_vec(),
        ttl_ms: 300,
        condition: ExpireIf::Always as i32,
        expiry_revision: 0,
    }));
    d.op(Op::Persist(Persist { key: b"b".to_vec() }));
    assert!(d.clock.any_expired(300), "a's deadline moved earlier");
    assert!(!d.clock.any_expired(299));
    d.run_until(299, 10);
    assert!(d.exists(b"a"));
    d.advance_to(300);
    assert!(!d.exists(b"a"));
    d.run_until(5_000, 100);
    assert!(d.exists(b"b"));
    assert_eq!(d.clock.tracked(), 0);
}

#[test]
fn a_lost_expiry_is_proposed_again_after_the_retry_interval() {
    let mut d = Driver::new();
    d.put(b"k", Some(KeyTtl::expire_in(1_000)));
    d.lose_proposals = true;
    d.advance_to(1_000);
    d.lose_proposals = false;
    d.run_until(1_499, 1);
    assert!(d.exists(b"k"), "not proposed again before the retry");
    assert!(
        d.clock.is_expired(b"k", 1_499),
        "yet the leader knows it is due"
    );
    d.advance_to(1_500);
    assert!(!d.exists(b"k"));
}

#[test]
fn many_keys_expire_in_bounded_batches() {
    let mut d = Driver::new();
    for i in 0..2_500u32 {
        d.put(format!("k{i}").as_bytes(), Some(KeyTtl::expire_in(100)));
    }
    d.now_ms = 100;
    let ops = d.clock.poll(100);
    let sizes: Vec<usize> = ops
        .iter()
        .map(|op| match op {
            Op::ExpireKeys(e) => e.entries.len(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(sizes, [1_000, 1_000, 500]);
    d.apply(&ops.into_iter().map(Request::anonymous).collect::<Vec<_>>());
    assert!(d.coord.sm.key_expiries().unwrap().is_empty());
    assert_eq!(d.expired.len(), 2_500);
}

#[test]
fn a_new_leader_restarts_deadlines_from_the_checkpointed_remaining_ttl() {
    let mut d = Driver::new();
    d.put(b"k", Some(KeyTtl::expire_in(5_000)));
    d.run_until(3_000, 100); // checkpoints at 1 s, 2 s, 3 s
    assert_eq!(d.recorded_remaining_ms(b"k"), 2_000);
    d.now_ms = 3_500; // the leader fails; a new one is elected half a second later
    d.new_leader();
    assert_eq!(d.clock.deadline_ms(b"k").map(|(_, at)| at), Some(5_500));
    d.run_until(5_499, 100);
    assert!(d.exists(b"k"), "never earlier than its writer could expect");
    d.advance_to(5_500);
    assert!(!d.exists(b"k"));
}

/// Without checkpoints reaching the log the bound below could not hold: leader terms shorter than
/// the checkpoint interval restart the full TTL each time.
#[test]
fn leader_terms_shorter_than_the_checkpoint_interval_make_no_progress() {
    let mut d = Driver::new();
    d.put(b"k", Some(KeyTtl::expire_in(5_000)));
    for _ in 0..100 {
        let end = d.now_ms + 900;
        d.run_until(end, 100);
        d.new_leader();
    }
    assert!(d.exists(b"k"));
    assert_eq!(d.recorded_remaining_ms(b"k"), 5_000);
}

/// With terms of at least two checkpoint intervals, a key expires after at most about 2 × TTL of
/// cumulated leadership, within 3 × TTL of wall time with elections taking up to 300 ms, and
/// never before its TTL.
#[test]
fn a_key_expires_despite_frequent_leader_changes() {
    let c_ms = config().checkpoint_interval_ms;
    for seed in 0..50 {
        let mut rng = Rng(seed);
        let mut d = Driver::new();
        let ttl_ms = 10_000;
        d.put(b"k", Some(KeyTtl::expire_in(ttl_ms)));
        let mut led_ms = 0;
        while d.exists(b"k") {
            assert!(d.now_ms <= 3 * ttl_ms, "seed {seed}: alive at {}", d.now_ms);
            let term_start = d.now_ms;
            let term_end = d.now_ms + rng.between(2 * c_ms, 4 * c_ms);
            let step_ms = 1 + rng.below(100);
            while d.exists(b"k") && d.now_ms < term_end {
                d.advance_to((d.now_ms + step_ms).min(term_end));
            }
            led_ms += d.now_ms - term_start;
            d.now_ms += rng.below(300);
            d.new_leader();
        }
        let expired_at = d.expired_at(b"k").unwrap();
        assert!(expired_at >= ttl_ms, "seed {seed}: early at {expired_at}");
        assert!(led_ms <= 2 * ttl_ms + 2 * c_ms, "seed {seed}: {led_ms} ms");
    }
}

/// Whatever the leader changes (terms from 50 ms to 3 intervals), a key never expires before
/// its TTL measured from when its write applied, and a key re-set in time never expires.
#[test]
fn no_key_expires_early_across_leader_changes() {
    for seed in 0..50 {
        let mut rng = Rng(9_000 + seed);
        let mut d = Driver::new();
        let mut set_at = std::collections::BTreeMap::new();
        let mut next_leader_change = rng.between(50, 3_000);
        let mut checked = 0;
        while d.now_ms < 60_000 {
            let key = format!("k{}", rng.below(8)).into_bytes();
            if rng.below(3) == 0 {
                let ttl_ms = rng.between(100, 4_000);
                d.put(&key, Some(KeyTtl::expire_in(ttl_ms)));
                set_at.insert(key, d.now_ms + ttl_ms);
            }
            let next = (d.now_ms + rng.between(1, 200)).min(next_leader_change);
            d.run_until(next, 1 + rng.below(50));
            // Expiries since the last check are of the TTLs set before it.
            for (at, key) in &d.expired[checked..] {
                let due = set_at[key];
                assert!(
                    *at >= due,
                    "seed {seed}: {key:?} expired at {at}, due {due}"
                );
            }
            checked = d.expired.len();
            if d.now_ms == next_leader_change {
                d.now_ms += rng.below(300);
                d.new_leader();
                next_leader_change = d.now_ms + rng.between(50, 3_000);
            }
        }
        assert!(checked > 10, "seed {seed}: the test expires keys");
    }
}

#[test]
fn a_clock_that_does_not_lead_proposes_and_tracks_nothing() {
    let mut clock = KeyExpiryClock::new(config());
    clock.observe(
        0,
        &[KeyExpiryEvent::Set {
            key: b"k".to_vec(),
            expiry_revision: 1,
            ttl_ms: 1,
        }],
    );
    assert_eq!(clock.tracked(), 0);
    assert!(clock.poll(10).is_empty());
    assert_eq!(clock.next_wakeup_ms(), None);
    assert!(!clock.is_expired(b"k", 10));
    clock.become_leader(0, &[]);
    assert_eq!(clock.next_wakeup_ms(), Some(1_000), "the first checkpoint");
    clock.step_down();
    assert!(!clock.is_leader());
}
