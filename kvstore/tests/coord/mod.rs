//! Helpers shared by the coordination tests (sessions, locks, elections, watch).
#![allow(dead_code)]

use prost::Message;
use synod_kvstore::{
    Campaign, CampaignResponse, CloseSession, Delete, ElectionStatus, Event, ExpireSession,
    KeepAlive, Leader, LeaderResponse, Lock, LockHolder, LockHolderResponse, LockResponse,
    LockStatus, Op, OpenSession, Outcome, Proclaim, Put, Request, Resign, Response, SessionClock,
    SessionClockConfig, SessionEvent, SlotEffects, StateMachine, Unlock,
};

pub const TTL_MS: u64 = 10_000;

/// A state machine with helpers for coordination commands, each applied as its own slot.
pub struct Coord {
    pub sm: StateMachine,
    /// What the last slot applied by [`Coord::apply`] did besides its responses.
    pub effects: SlotEffects,
}

impl Coord {
    pub fn new() -> Coord {
        Coord::with(StateMachine::in_memory().unwrap())
    }

    pub fn with(sm: StateMachine) -> Coord {
        Coord {
            sm,
            effects: SlotEffects::default(),
        }
    }

    /// Apply requests as the next slot; its effects go to `self.effects`.
    pub fn apply(&mut self, requests: &[Request]) -> Vec<Response> {
        let commands: Vec<Vec<u8>> = requests.iter().map(Message::encode_to_vec).collect();
        let slot = self.sm.applied_index() + 1;
        let applied = self
            .sm
            .apply_slots([(slot, commands.as_slice())])
            .unwrap()
            .remove(0);
        self.effects = applied.effects;
        applied.responses
    }

    pub fn request(&mut self, request: Request) -> Response {
        self.apply(&[request]).remove(0)
    }

    pub fn op(&mut self, op: Op) -> Response {
        self.request(Request::anonymous(op))
    }

    pub fn open(&mut self, ttl_ms: u64) -> u64 {
        match self.op(Op::OpenSession(OpenSession { ttl_ms })).outcome {
            Some(Outcome::OpenSession(o)) => o.session,
            other => panic!("open answered {other:?}"),
        }
    }

    pub fn keep_alive(&mut self, session: u64) -> Response {
        self.op(Op::KeepAlive(KeepAlive { session }))
    }

    pub fn close(&mut self, session: u64) -> Response {
        self.op(Op::CloseSession(CloseSession { session }))
    }

    /// Expire `session` as the leader would, with its current keep-alive count.
    pub fn expire(&mut self, session: u64) -> Response {
        let keepalives = self
            .sm
            .sessions()
            .unwrap()
            .iter()
            .find(|s| s.session == session)
            .map_or(0, |s| s.keepalives);
        self.op(Op::ExpireSession(ExpireSession {
            session,
            keepalives,
        }))
    }

    pub fn is_open(&self, session: u64) -> bool {
        self.sm
            .sessions()
            .unwrap()
            .iter()
            .any(|s| s.session == session)
    }

    pub fn put(&mut self, key: &[u8], value: &[u8], session: u64) -> Response {
        self.request(
            Request::anonymous(Op::Put(Put {
                key: key.to_vec(),
                value: value.to_vec(),
                prev_kv: false,
            }))
            .in_session(session),
        )
    }

    pub fn delete(&mut self, key: &[u8]) -> Response {
        self.op(Op::Delete(Delete {
            key: key.to_vec(),
            prev_kv: false,
        }))
    }

    pub fn get(&self, key: &[u8]) -> Option<synod_kvstore::KeyValue> {
        let op = Op::Get(synod_kvstore::Get { key: key.to_vec() });
        match self.sm.read(&op).unwrap().outcome {
            Some(Outcome::Get(g)) => g.kv,
            other => panic!("get answered {other:?}"),
        }
    }

    pub fn lock(&mut self, name: &[u8], session: u64, wait: bool) -> LockResponse {
        let r = self.op(Op::Lock(Lock {
            name: name.to_vec(),
            session,
            wait,
        }));
        match r.outcome {
            Some(Outcome::Lock(l)) => l,
            other => panic!("lock answered {other:?}"),
        }
    }

    pub fn unlock(&mut self, name: &[u8], session: u64) -> Response {
        self.op(Op::Unlock(Unlock {
            name: name.to_vec(),
            session,
        }))
    }

    pub fn holder(&self, name: &[u8]) -> LockHolderResponse {
        let op = Op::LockHolder(LockHolder {
            name: name.to_vec(),
        });
        match self.sm.read(&op).unwrap().outcome {
            Some(Outcome::LockHolder(h)) => h,
            other => panic!("lock holder answered {other:?}"),
        }
    }

    pub fn campaign(&mut self, election: &[u8], session: u64, value: &[u8]) -> CampaignResponse {
        let r = self.op(Op::Campaign(Campaign {
            election: election.to_vec(),
            session,
            value: value.to_vec(),
        }));
        match r.outcome {
            Some(Outcome::Campaign(c)) => c,
            other => panic!("campaign answered {other:?}"),
        }
    }

    pub fn proclaim(&mut self, election: &[u8], session: u64, value: &[u8]) -> Response {
        self.op(Op::Proclaim(Proclaim {
            election: election.to_vec(),
            session,
            value: value.to_vec(),
        }))
    }

    pub fn resign(&mut self, election: &[u8], session: u64) -> Response {
        self.op(Op::Resign(Resign {
            election: election.to_vec(),
            session,
        }))
    }

    pub fn leader(&self, election: &[u8]) -> LeaderResponse {
        let op = Op::Leader(Leader {
            election: election.to_vec(),
        });
        match self.sm.read(&op).unwrap().outcome {
            Some(Outcome::Leader(l)) => l,
            other => panic!("leader answered {other:?}"),
        }
    }

    /// The watch events of the last applied slot.
    pub fn last_events(&self) -> Vec<Event> {
        self.effects.events.clone()
    }
}

pub fn granted(l: &LockResponse) -> bool {
    l.lock_status() == LockStatus::Granted
}

pub fn elected(c: &CampaignResponse) -> bool {
    c.election_status() == ElectionStatus::Elected
}

/// One node's view in a leader-clock simulation: a state machine (the replicated state, the
/// same on every node) driven by whichever node is leader, with a fake clock in ms.
pub struct Driver {
    pub coord: Coord,
    pub clock: SessionClock,
    pub now_ms: u64,
    /// Every session event seen, with the time it applied.
    pub history: Vec<(u64, SessionEvent)>,
}

impl Driver {
    pub fn new(config: SessionClockConfig) -> Driver {
        let mut driver = Driver {
            coord: Coord::new(),
            clock: SessionClock::new(config),
            now_ms: 0,
            history: Vec::new(),
        };
        driver.new_leader();
        driver
    }

    /// A leader change: a fresh clock that knows only what the state machine recorded.
    pub fn new_leader(&mut self) {
        let config = self.clock.config().clone();
        self.clock = SessionClock::new(config);
        let sessions = self.coord.sm.sessions().unwrap();
        let delayed = self.coord.sm.delayed_locks().unwrap();
        self.clock.become_leader(self.now_ms, &sessions, &delayed);
    }

    /// Apply `requests` as a slot now and let the leader observe it.
    pub fn apply(&mut self, requests: &[Request]) -> Vec<Response> {
        let responses = self.coord.apply(requests);
        self.observe();
        responses
    }

    pub fn op(&mut self, op: Op) -> Response {
        self.apply(&[Request::anonymous(op)]).remove(0)
    }

    fn observe(&mut self) {
        let effects = std::mem::take(&mut self.coord.effects);
        self.clock.observe(self.now_ms, &effects.session_events);
        for e in effects.session_events {
            self.history.push((self.now_ms, e));
        }
    }

    /// Advance the clock to `now_ms` and apply whatever the leader proposes then.
    pub fn advance_to(&mut self, now_ms: u64) {
        assert!(now_ms >= self.now_ms);
        self.now_ms = now_ms;
        let ops = self.clock.poll(now_ms);
        if !ops.is_empty() {
            let requests: Vec<Request> = ops.into_iter().map(Request::anonymous).collect();
            self.apply(&requests);
        }
    }

    /// Advance in steps of `step_ms` up to `until_ms`.
    pub fn run_until(&mut self, until_ms: u64, step_ms: u64) {
        while self.now_ms < until_ms {
            let next = (self.now_ms + step_ms).min(until_ms);
            self.advance_to(next);
        }
    }

    /// When `session` ended by expiry, if it did.
    pub fn expired_at(&self, session: u64) -> Option<u64> {
        self.history.iter().find_map(|(t, e)| match e {
            SessionEvent::Ended {
                session: s,
                expired: true,
            } if *s == session => Some(*t),
            _ => None,
        })
    }
}

/// The error code of a response, panicking if it is not an error.
pub fn code(response: &Response) -> synod_kvstore::ErrorCode {
    response
        .as_error()
        .unwrap_or_else(|| panic!("expected an error, got {response:?}"))
        .error_code()
}

/// SplitMix64, so every generated test input replays from its seed.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// Uniform in `lo..=hi`.
    pub fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }
}

/// The slot after which the fuzz tests restore a third replica from a snapshot.
pub const RESTORE_AT_SLOT: u64 = 30;

/// After `slot` applied on replicas `a` and `b` (and on `restored`, once made): at
/// [`RESTORE_AT_SLOT`] restores a third replica from `a`'s snapshot; then asserts all hold the
/// same state.
pub fn assert_replicas_agree(
    seed: u64,
    slot: u64,
    a: &StateMachine,
    b: &StateMachine,
    restored: &mut Option<StateMachine>,
) {
    if slot == RESTORE_AT_SLOT {
        let mut c = StateMachine::in_memory().unwrap();
        c.install_snapshot(a.snapshot().unwrap().map(Result::unwrap))
            .unwrap();
        *restored = Some(c);
    }
    let hash = a.state_hash().unwrap();
    assert_eq!(hash, b.state_hash().unwrap(), "seed {seed} slot {slot}");
    if let Some(c) = restored {
        assert_eq!(hash, c.state_hash().unwrap(), "seed {seed} slot {slot}");
    }
}
