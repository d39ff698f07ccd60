//! The simulated clients' side: key-value commands, the state machine the
//! simulated nodes apply them to, and the clients that issue them.

use prost::Message;
use synod_kvstore::{CompareAndSwap, Expected, Op, Outcome, Put, Request as KvRequest, Response};
use synod_paxos::{NodeId, Rng};

use crate::support::linearizability::{KvOp, KvOutcome, Operation};

/// A write as it travels in the log: who sent it, its sequence number, what
/// it does. Reads never enter the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriteCommand {
    pub client: u64,
    pub seq: u64,
    pub op: KvOp,
}

impl WriteCommand {
    /// The log bytes: the state machine's own `Request` encoding.
    pub fn encode(&self) -> Vec<u8> {
        let op = match &self.op {
            KvOp::Put { key, value } => Op::Put(Put {
                key: key.clone(),
                value: value.clone(),
                prev_kv: false,
            }),
            KvOp::Cas { key, expected, new } => Op::CompareAndSwap(CompareAndSwap {
                key: key.clone(),
                expected: Some(match expected {
                    Some(value) => Expected::Value(value.clone()),
                    None => Expected::ModRevision(0),
                }),
                new_value: new.clone(),
            }),
            KvOp::Get { .. } => panic!("reads are not logged"),
        };
        KvRequest::from_client(self.client, self.seq, op).encode_to_vec()
    }

    /// Who sent the logged command `bytes` and its sequence number (the
    /// simulator only logs its own, well-formed commands).
    pub fn origin(bytes: &[u8]) -> (u64, u64) {
        let request = KvRequest::decode(bytes).expect("the simulator logs valid requests");
        (request.client_id, request.seq)
    }
}

/// What the client learns from the state machine's answer to its write;
/// `None` for a refusal (a retry older than the client's last request).
pub fn write_outcome(response: &Response) -> Option<KvOutcome> {
    match &response.outcome {
        Some(Outcome::Put(_)) => Some(KvOutcome::Put),
        Some(Outcome::CompareAndSwap(cas)) => Some(KvOutcome::Cas(cas.succeeded)),
        _ => None,
    }
}

/// The value a get response carries.
pub fn read_value(response: &Response) -> Option<Vec<u8>> {
    match &response.outcome {
        Some(Outcome::Get(get)) => get.kv.as_ref().map(|kv| kv.value.clone()),
        other => panic!("a get answered with {other:?}"),
    }
}

/// A request from a client to a node.
#[derive(Clone, Debug)]
pub enum Request {
    Write(WriteCommand),
    Read {
        attempt: u64,
        key: Vec<u8>,
    },
    /// A coordination client's request: the encoded state machine
    /// request (its exactly-once id and sequence number inside).
    Coord {
        bytes: Vec<u8>,
    },
}

/// A node's answer.
#[derive(Clone, Debug)]
pub enum Reply {
    /// The write `seq` or read `attempt` finished with this outcome.
    Done { tag: u64, outcome: KvOutcome },
    /// Not the leader; try `leader`.
    Redirect { tag: u64, leader: Option<NodeId> },
}

/// What one client is doing.
pub struct Client {
    pub id: u64,
    /// Bumped when the client abandons a write: the state machine's
    /// exactly-once rule wants a client that gave up on a request to start
    /// over under a new id.
    generation: u64,
    /// Sequence number of the next write under the current generation.
    next_seq: u64,
    next_read_tag: u64,
    next_value: u64,
    /// The op in progress: its history entry (complete unset), the request
    /// tag replies must carry, the current attempt, and when to give up.
    pub current: Option<InFlight>,
    pub leader_guess: usize,
    pub done: Vec<Operation>,
}

pub struct InFlight {
    pub op: Operation,
    pub tag: u64,
    pub attempt: u64,
    pub give_up_at: u64,
}

/// Read tags live above this, apart from write sequence numbers.
const READ_TAG: u64 = 1 << 62;

/// Client ids in the state machine: `logical id × CLIENT_ID_STRIDE +
/// generation`.
const CLIENT_ID_STRIDE: u64 = 1_000_000;

impl Client {
    /// The id the state machine knows this client by now.
    pub fn kv_client_id(&self) -> u64 {
        self.id * CLIENT_ID_STRIDE + self.generation
    }

    /// The index (0-based) of the client that sent under `kv_client_id`.
    pub fn index_of(kv_client_id: u64) -> usize {
        (kv_client_id / CLIENT_ID_STRIDE) as usize - 1
    }

    pub fn new(id: u64, nodes: usize) -> Client {
        Client {
            id,
            generation: 0,
            next_seq: 1,
            next_read_tag: READ_TAG,
            next_value: 1,
            current: None,
            leader_guess: (id as usize) % nodes,
            done: Vec::new(),
        }
    }

    /// Starts a random operation at `now_us` and returns the request.
    pub fn start(&mut self, rng: &mut Rng, keys: usize, now_us: u64, patience_us: u64) -> Request {
        assert!(self.current.is_none(), "one operation at a time");
        let key = format!("k{}", rng.below(keys as u64)).into_bytes();
        let value = format!("c{}v{}", self.id, self.next_value).into_bytes();
        self.next_value += 1;
        let roll = rng.below(10);
        let op = if roll < 4 {
            KvOp::Get { key }
        } else if roll < 8 {
            KvOp::Put { key, value }
        } else {
            let expected = (rng.below(3) > 0).then(|| {
                format!("c{}v{}", rng.below(4), rng.below(self.next_value.max(2))).into_bytes()
            });
            KvOp::Cas {
                key,
                expected,
                new: value,
            }
        };
        let tag = if matches!(op, KvOp::Get { .. }) {
            self.next_read_tag += 1;
            self.next_read_tag
        } else {
            self.next_seq += 1;
            self.next_seq - 1
        };
        self.current = Some(InFlight {
            op: Operation {
                client: self.id,
                invoke: now_us,
                complete: None,
                op,
                outcome: KvOutcome::Unknown,
            },
            tag,
            attempt: 0,
            give_up_at: now_us + patience_us,
        });
        self.request()
    }

    /// The request for the current operation (sent again on retries).
    pub fn request(&self) -> Request {
        let current = self.current.as_ref().expect("an operation in flight");
        match &current.op.op {
            KvOp::Get { key } => Request::Read {
                attempt: current.tag,
                key: key.clone(),
            },
            op => Request::Write(WriteCommand {
                client: self.kv_client_id(),
                seq: current.tag,
                op: op.clone(),
            }),
        }
    }

    /// Records the outcome of the current operation.
    pub fn finish(&mut self, now_us: u64, outcome: KvOutcome) {
        let mut current = self.current.take().expect("an operation in flight");
        current.op.complete = Some(now_us);
        current.op.outcome = outcome;
        self.done.push(current.op);
    }

    /// Gives up on the current operation: a write may still take effect
    /// later, so it stays in the history as never completed; a read that
    /// never returned had no effect and is dropped.
    pub fn abandon(&mut self) {
        let current = self.current.take().expect("an operation in flight");
        if !matches!(current.op.op, KvOp::Get { .. }) {
            self.done.push(current.op);
            self.generation += 1;
            self.next_seq = 1;
        }
    }
}
