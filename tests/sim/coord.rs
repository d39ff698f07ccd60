//! Simulated clients of the coordination primitives, as the client library
//! (`client/src`: `Session`, `Mutex`, `Fenced`, `Election`) uses them:
//! sessions opened with a TTL and kept alive every third of it (or
//! abandoned), locks taken, polled, released, fenced writes with the
//! grant's token, campaigns, proclaims and resignations.
//!
//! Each client has two request streams, each its own exactly-once client
//! id (like the library's background keep-alive task): the main one, one
//! request at a time, and keep-alives. An *abandoning* client stops its
//! keep-alives at a random moment and then behaves like a paused process
//! that wakes up: it goes on writing with the fencing tokens it still
//! believes current (a zombie), which the cluster must refuse once its
//! session expired.

use std::collections::{BTreeMap, BTreeSet};

use prost::Message;
use synod_kvstore::{
    Campaign, CloseSession, ElectionStatus, ErrorCode, KeepAlive, Lock, LockStatus, Op,
    OpenSession, Outcome, Proclaim, Put, Request as KvRequest, Resign, Response, Unlock,
};
use synod_paxos::{NodeId, Rng};

/// Locks the clients contend for.
pub const LOCKS: usize = 2;
/// Elections they run in.
pub const ELECTIONS: usize = 2;

pub fn lock_name(lock: usize) -> Vec<u8> {
    format!("lock/{lock}").into_bytes()
}

pub fn election_name(election: usize) -> Vec<u8> {
    format!("election/{election}").into_bytes()
}

/// The key a lock protects: only fenced writes touch it.
pub fn resource_key(lock: usize) -> Vec<u8> {
    format!("resource/{lock}").into_bytes()
}

/// The lock index of a lock name the simulator uses.
pub fn lock_index(name: &[u8]) -> Option<usize> {
    (0..LOCKS).find(|&l| lock_name(l) == name)
}

/// Coordination clients' exactly-once ids live at and above this (the
/// key-value clients' ids are far below).
pub const COORD_ID_BASE: u64 = 1 << 40;
/// Ids of one stream: `COORD_ID_BASE + stream × STREAM_STRIDE +
/// generation`.
const STREAM_STRIDE: u64 = 1_000_000;
/// The main stream of a client.
pub const MAIN: usize = 0;
/// Its keep-alive stream.
pub const KEEPALIVE: usize = 1;

/// Session TTLs are drawn from this range (ms); the smallest TTL the state
/// machine allows is 1 s.
pub const TTL_MS: (u64, u64) = (1_000, 2_000);

/// Whether exactly-once id `kv_id` belongs to a coordination client.
pub fn is_coord(kv_id: u64) -> bool {
    kv_id >= COORD_ID_BASE
}

/// The (client index, stream) of a coordination client's exactly-once id.
pub fn stream_of(kv_id: u64) -> (usize, usize) {
    let stream = ((kv_id - COORD_ID_BASE) / STREAM_STRIDE) as usize;
    (stream / 2, stream % 2)
}

/// What a coordination request asks (to read its answer).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CoordOp {
    Open {
        ttl_ms: u64,
    },
    KeepAlive {
        session: u64,
    },
    Close {
        session: u64,
    },
    Lock {
        lock: usize,
        wait: bool,
    },
    Unlock {
        lock: usize,
    },
    /// A put of the lock's resource fenced with `token`; `stale` if the
    /// client itself unlocked since (a buggy application).
    FencedWrite {
        lock: usize,
        token: u64,
        stale: bool,
    },
    Campaign {
        election: usize,
    },
    Proclaim {
        election: usize,
    },
    Resign {
        election: usize,
    },
}

impl CoordOp {
    /// The state machine request for this op of `session`, numbered `seq`
    /// by client `kv_id`; `value` tells writes apart.
    pub fn request(&self, kv_id: u64, seq: u64, session: u64, value: &[u8]) -> KvRequest {
        let op = match self {
            CoordOp::Open { ttl_ms } => Op::OpenSession(OpenSession { ttl_ms: *ttl_ms }),
            CoordOp::KeepAlive { session } => Op::KeepAlive(KeepAlive { session: *session }),
            CoordOp::Close { session } => Op::CloseSession(CloseSession { session: *session }),
            CoordOp::Lock { lock, wait } => Op::Lock(Lock {
                name: lock_name(*lock),
                session,
                wait: *wait,
            }),
            CoordOp::Unlock { lock } => Op::Unlock(Unlock {
                name: lock_name(*lock),
                session,
            }),
            CoordOp::FencedWrite { lock, token, .. } => {
                let put = Op::Put(Put {
                    key: resource_key(*lock),
                    value: value.to_vec(),
                    prev_kv: false,
                });
                return KvRequest::from_client(kv_id, seq, put).fenced(lock_name(*lock), *token);
            }
            CoordOp::Campaign { election } => Op::Campaign(Campaign {
                election: election_name(*election),
                session,
                value: value.to_vec(),
            }),
            CoordOp::Proclaim { election } => Op::Proclaim(Proclaim {
                election: election_name(*election),
                session,
                value: value.to_vec(),
            }),
            CoordOp::Resign { election } => Op::Resign(Resign {
                election: election_name(*election),
                session,
            }),
        };
        KvRequest::from_client(kv_id, seq, op)
    }
}

/// One request stream of a client.
pub struct Stream {
    base: u64,
    generation: u64,
    next_seq: u64,
    pub pending: Option<Pending>,
    pub leader_guess: usize,
}

/// The request a stream waits for.
pub struct Pending {
    pub seq: u64,
    pub op: CoordOp,
    /// The life (session) it was sent for.
    pub life: u64,
    pub bytes: Vec<u8>,
    pub attempt: u64,
    pub give_up_at: u64,
}

impl Stream {
    fn new(client: usize, stream: usize, nodes: usize) -> Stream {
        Stream {
            base: COORD_ID_BASE + (client * 2 + stream) as u64 * STREAM_STRIDE,
            generation: 0,
            next_seq: 1,
            pending: None,
            leader_guess: (client + stream) % nodes,
        }
    }

    /// The exactly-once id the stream sends under now.
    pub fn kv_id(&self) -> u64 {
        self.base + self.generation
    }

    /// Starts `op`; returns its sequence number.
    fn start(
        &mut self,
        op: CoordOp,
        life: u64,
        session: u64,
        value: &[u8],
        give_up_at: u64,
    ) -> u64 {
        assert!(self.pending.is_none(), "one request at a time per stream");
        let seq = self.next_seq;
        self.next_seq += 1;
        let bytes = op
            .request(self.kv_id(), seq, session, value)
            .encode_to_vec();
        self.pending = Some(Pending {
            seq,
            op,
            life,
            bytes,
            attempt: 0,
            give_up_at,
        });
        seq
    }

    /// Gives up on the pending request: it may still apply, so the stream
    /// starts over under a new id (the exactly-once rule).
    pub fn abandon(&mut self) {
        self.pending = None;
        self.generation += 1;
        self.next_seq = 1;
    }
}

/// One session of a client, from its open to its end (or until the client
/// forgets it).
pub struct Life {
    pub id: u64,
    /// 0 until the open is answered.
    pub session: u64,
    pub ttl_ms: u64,
    /// When the client stops keeping the session alive (`None`: never).
    pub abandon_at_us: Option<u64>,
    /// When an abandoning client forgets the session and opens another.
    pub forget_at_us: u64,
    /// The cluster said the session is gone.
    pub lost: bool,
    /// Locks the client believes it holds, with their tokens.
    pub held: BTreeMap<usize, u64>,
    pub queued: BTreeSet<usize>,
    pub leading: BTreeSet<usize>,
    pub candidate: BTreeSet<usize>,
    /// Tokens of locks it released (for stale writes).
    pub released: Vec<(usize, u64)>,
}

impl Life {
    pub fn abandoned(&self, now_us: u64) -> bool {
        self.abandon_at_us.is_some_and(|at| now_us >= at)
    }
}

/// What a client learned from an answer that the oracles want too.
#[derive(Debug, Default)]
pub struct Learned {
    /// (election, revision, session): the client was told `session` leads
    /// the election since `revision`.
    pub leader: Option<(usize, u64, u64)>,
}

/// Counts for the run's report.
#[derive(Debug, Default, Clone, Copy)]
pub struct CoordStats {
    pub sessions_opened: u64,
    pub sessions_abandoned: u64,
    pub keepalives_acked: u64,
    pub grants: u64,
    pub fenced_accepted: u64,
    pub fenced_rejected: u64,
    pub zombie_writes_rejected: u64,
    pub elected: u64,
    /// Sessions a keeping client learned were gone.
    pub kept_sessions_lost: u64,
}

impl CoordStats {
    /// The sum of two counts.
    pub fn add(&self, o: &CoordStats) -> CoordStats {
        CoordStats {
            sessions_opened: self.sessions_opened + o.sessions_opened,
            sessions_abandoned: self.sessions_abandoned + o.sessions_abandoned,
            keepalives_acked: self.keepalives_acked + o.keepalives_acked,
            grants: self.grants + o.grants,
            fenced_accepted: self.fenced_accepted + o.fenced_accepted,
            fenced_rejected: self.fenced_rejected + o.fenced_rejected,
            zombie_writes_rejected: self.zombie_writes_rejected + o.zombie_writes_rejected,
            elected: self.elected + o.elected,
            kept_sessions_lost: self.kept_sessions_lost + o.kept_sessions_lost,
        }
    }
}

pub struct CoordClient {
    pub index: usize,
    pub streams: [Stream; 2],
    pub life: Option<Life>,
    next_life: u64,
    next_value: u64,
    /// No new work (the run winds down).
    pub stopped: bool,
    pub stats: CoordStats,
}

impl CoordClient {
    pub fn new(index: usize, nodes: usize) -> CoordClient {
        CoordClient {
            index,
            streams: [
                Stream::new(index, MAIN, nodes),
                Stream::new(index, KEEPALIVE, nodes),
            ],
            life: None,
            next_life: 1,
            next_value: 1,
            stopped: false,
            stats: CoordStats::default(),
        }
    }

    fn value(&mut self) -> Vec<u8> {
        self.next_value += 1;
        format!("cc{}v{}", self.index, self.next_value).into_bytes()
    }

    /// Starts `op` on `stream`; returns its sequence number.
    pub fn start(&mut self, stream: usize, op: CoordOp, now_us: u64, patience_us: u64) -> u64 {
        let (life, session) = self.life.as_ref().map_or((0, 0), |l| (l.id, l.session));
        let value = self.value();
        self.streams[stream].start(op, life, session, &value, now_us + patience_us)
    }

    /// The next op of the main stream at `now_us`.
    pub fn next_op(&mut self, rng: &mut Rng, now_us: u64) -> CoordOp {
        let forget = self.life.as_ref().is_some_and(|l| {
            l.lost
                || l.session == 0
                || (l.abandoned(now_us) && (now_us >= l.forget_at_us || l.held.is_empty()))
        });
        if forget {
            self.life = None;
        }
        let Some(life) = self.life.as_mut() else {
            let ttl_ms = TTL_MS.0 + rng.below(TTL_MS.1 - TTL_MS.0 + 1);
            let abandon_at_us = rng
                .chance(1, 3)
                .then(|| now_us + 300_000 + rng.below(2_700_000));
            let forget_at_us = abandon_at_us.map_or(u64::MAX, |at| {
                at + 2 * ttl_ms * 1_000 + rng.below(1_000_000)
            });
            self.life = Some(Life {
                id: self.next_life,
                session: 0,
                ttl_ms,
                abandon_at_us,
                forget_at_us,
                lost: false,
                held: BTreeMap::new(),
                queued: BTreeSet::new(),
                leading: BTreeSet::new(),
                candidate: BTreeSet::new(),
                released: Vec::new(),
            });
            self.next_life += 1;
            return CoordOp::Open { ttl_ms };
        };
        let pick = |rng: &mut Rng, n: usize| rng.below(n as u64) as usize;
        if life.abandoned(now_us) {
            // A zombie: writes with a token it still believes current.
            let held: Vec<(usize, u64)> = life.held.iter().map(|(l, t)| (*l, *t)).collect();
            let (lock, token) = held[pick(rng, held.len())];
            return CoordOp::FencedWrite {
                lock,
                token,
                stale: false,
            };
        }
        let roll = rng.below(100);
        if !life.held.is_empty() && roll < 35 {
            let held: Vec<(usize, u64)> = life.held.iter().map(|(l, t)| (*l, *t)).collect();
            let (lock, token) = held[pick(rng, held.len())];
            return CoordOp::FencedWrite {
                lock,
                token,
                stale: false,
            };
        }
        if !life.held.is_empty() && roll < 50 {
            let held: Vec<usize> = life.held.keys().copied().collect();
            return CoordOp::Unlock {
                lock: held[pick(rng, held.len())],
            };
        }
        if !life.queued.is_empty() && roll < 60 {
            // A waiter learns its grant by asking again (the library
            // watches instead; the answer is the same).
            let queued: Vec<usize> = life.queued.iter().copied().collect();
            return CoordOp::Lock {
                lock: queued[pick(rng, queued.len())],
                wait: true,
            };
        }
        if !life.released.is_empty() && roll < 63 {
            let (lock, token) = life.released[pick(rng, life.released.len())];
            return CoordOp::FencedWrite {
                lock,
                token,
                stale: true,
            };
        }
        if roll < 75 {
            let lock = pick(rng, LOCKS);
            if let Some(&token) = life.held.get(&lock) {
                return CoordOp::FencedWrite {
                    lock,
                    token,
                    stale: false,
                };
            }
            return CoordOp::Lock {
                lock,
                wait: !rng.chance(1, 3),
            };
        }
        if roll < 95 {
            let election = pick(rng, ELECTIONS);
            if life.leading.contains(&election) {
                return if rng.chance(2, 3) {
                    CoordOp::Proclaim { election }
                } else {
                    CoordOp::Resign { election }
                };
            }
            if life.candidate.contains(&election) && rng.chance(1, 4) {
                return CoordOp::Resign { election };
            }
            return CoordOp::Campaign { election };
        }
        if life.abandon_at_us.is_none() {
            return CoordOp::Close {
                session: life.session,
            };
        }
        CoordOp::Lock {
            lock: pick(rng, LOCKS),
            wait: true,
        }
    }

    /// The keep-alive to send for life `life` now, if one is due.
    pub fn keepalive_due(&self, life: u64, now_us: u64) -> Option<CoordOp> {
        let l = self.life.as_ref()?;
        let due = l.id == life
            && l.session != 0
            && !l.lost
            && !l.abandoned(now_us)
            && !self.stopped
            && self.streams[KEEPALIVE].pending.is_none();
        due.then_some(CoordOp::KeepAlive { session: l.session })
    }

    /// Takes in the answer to `pending` at `now_us`; returns what the
    /// oracles want to know.
    pub fn answered(&mut self, pending: &Pending, response: &Response, now_us: u64) -> Learned {
        let mut learned = Learned::default();
        let error = match &response.outcome {
            Some(Outcome::Error(e)) => ErrorCode::try_from(e.code).ok(),
            _ => None,
        };
        if let (CoordOp::FencedWrite { .. }, Some(ErrorCode::FencingTokenRejected)) =
            (&pending.op, error)
        {
            self.stats.fenced_rejected += 1;
        }
        let Some(life) = self.life.as_mut().filter(|l| l.id == pending.life) else {
            return learned;
        };
        if error == Some(ErrorCode::SessionNotFound) {
            if life.abandon_at_us.is_none() && !life.lost {
                self.stats.kept_sessions_lost += 1;
            }
            life.lost = true;
            return learned;
        }
        match (&pending.op, &response.outcome) {
            (CoordOp::Open { .. }, Some(Outcome::OpenSession(open))) => {
                life.session = open.session;
                self.stats.sessions_opened += 1;
                if life.abandon_at_us.is_some() {
                    self.stats.sessions_abandoned += 1;
                }
            }
            (CoordOp::KeepAlive { .. }, Some(Outcome::KeepAlive(_))) => {
                self.stats.keepalives_acked += 1;
            }
            (CoordOp::Close { .. }, _) => life.lost = true,
            (CoordOp::Lock { lock, .. }, Some(Outcome::Lock(answer))) => {
                match answer.lock_status() {
                    LockStatus::Granted => {
                        if life.held.insert(*lock, answer.token) != Some(answer.token) {
                            self.stats.grants += 1;
                        }
                        life.queued.remove(lock);
                    }
                    LockStatus::Queued => {
                        life.queued.insert(*lock);
                    }
                    _ => {}
                }
            }
            (CoordOp::Unlock { lock }, _) => {
                if let Some(token) = life.held.remove(lock) {
                    life.released.push((*lock, token));
                }
                life.queued.remove(lock);
            }
            (CoordOp::FencedWrite { lock, token, stale }, outcome) => match outcome {
                Some(Outcome::Put(_)) => self.stats.fenced_accepted += 1,
                _ if error == Some(ErrorCode::FencingTokenRejected) => {
                    if life.abandoned(now_us) && !stale {
                        self.stats.zombie_writes_rejected += 1;
                    }
                    if life.held.get(lock) == Some(token) {
                        life.held.remove(lock);
                    }
                }
                _ => {}
            },
            (CoordOp::Campaign { election }, Some(Outcome::Campaign(answer))) => {
                match answer.election_status() {
                    ElectionStatus::Elected => {
                        if life.leading.insert(*election) {
                            self.stats.elected += 1;
                        }
                        life.candidate.remove(election);
                    }
                    ElectionStatus::Queued => {
                        life.candidate.insert(*election);
                    }
                    ElectionStatus::Unspecified => {}
                }
                if let Some(leader) = &answer.leader {
                    learned.leader = Some((*election, leader.revision, leader.session));
                }
            }
            (CoordOp::Proclaim { election }, Some(Outcome::Proclaim(answer))) => {
                learned.leader = Some((*election, answer.revision, life.session));
            }
            (CoordOp::Proclaim { election }, _) => {
                life.leading.remove(election);
            }
            (CoordOp::Resign { election }, _) => {
                life.leading.remove(election);
                life.candidate.remove(election);
            }
            _ => {}
        }
        learned
    }
}

/// A node's answer to a coordination client.
#[derive(Clone, Debug)]
pub struct CoordReply {
    /// The exactly-once id the request came under.
    pub from: u64,
    pub seq: u64,
    pub answer: CoordAnswer,
}

#[derive(Clone, Debug)]
pub enum CoordAnswer {
    Done(Response),
    Redirect(Option<NodeId>),
}
