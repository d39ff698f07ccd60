//! The simulated clients' side: key-value commands, the state machine the
//! simulated nodes apply them to, and the clients that issue them.

use std::collections::BTreeMap;

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
    /// Bytes for the log: `client seq tag key_len key [expected_flag expected_len expected] value_len value`.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend(self.client.to_le_bytes());
        out.extend(self.seq.to_le_bytes());
        let put_bytes = |out: &mut Vec<u8>, bytes: &[u8]| {
            out.extend((bytes.len() as u32).to_le_bytes());
            out.extend(bytes);
        };
        match &self.op {
            KvOp::Put { key, value } => {
                out.push(1);
                put_bytes(&mut out, key);
                put_bytes(&mut out, value);
            }
            KvOp::Cas { key, expected, new } => {
                out.push(2);
                put_bytes(&mut out, key);
                out.push(u8::from(expected.is_some()));
                put_bytes(&mut out, expected.as_deref().unwrap_or_default());
                put_bytes(&mut out, new);
            }
            KvOp::Get { .. } => panic!("reads are not logged"),
        }
        out
    }

    /// The inverse of `encode`; the simulator only decodes its own bytes.
    pub fn decode(bytes: &[u8]) -> WriteCommand {
        let mut reader = Reader { bytes, at: 0 };
        let client = reader.u64();
        let seq = reader.u64();
        let op = match reader.take(1)[0] {
            1 => KvOp::Put {
                key: reader.field(),
                value: reader.field(),
            },
            _ => {
                let key = reader.field();
                let has_expected = reader.take(1)[0] == 1;
                let expected = reader.field();
                KvOp::Cas {
                    key,
                    expected: has_expected.then_some(expected),
                    new: reader.field(),
                }
            }
        };
        WriteCommand { client, seq, op }
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> &[u8] {
        let s = &self.bytes[self.at..self.at + n];
        self.at += n;
        s
    }

    fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.take(8).try_into().expect("8 bytes"))
    }

    fn field(&mut self) -> Vec<u8> {
        let len = u32::from_le_bytes(self.take(4).try_into().expect("4 bytes")) as usize;
        self.take(len).to_vec()
    }
}

/// The replicated state of one simulated node: keys and the exactly-once
/// table. Lost on crash and rebuilt by replaying the log.
#[derive(Default, Clone, Debug, PartialEq, Eq)]
pub struct KvModel {
    data: BTreeMap<Vec<u8>, Vec<u8>>,
    last_seen: BTreeMap<u64, (u64, KvOutcome)>,
}

impl KvModel {
    /// Applies a logged write once per (client, seq); a retry gets the first
    /// outcome. `None` for a sequence number older than the client's last.
    pub fn apply(&mut self, command: &WriteCommand) -> Option<KvOutcome> {
        if let Some((seq, outcome)) = self.last_seen.get(&command.client) {
            if *seq == command.seq {
                return Some(outcome.clone());
            }
            if *seq > command.seq {
                return None;
            }
        }
        let outcome = match &command.op {
            KvOp::Put { key, value } => {
                self.data.insert(key.clone(), value.clone());
                KvOutcome::Put
            }
            KvOp::Cas { key, expected, new } => {
                let ok = self.data.get(key) == expected.as_ref();
                if ok {
                    self.data.insert(key.clone(), new.clone());
                }
                KvOutcome::Cas(ok)
            }
            KvOp::Get { .. } => unreachable!("reads are not logged"),
        };
        self.last_seen
            .insert(command.client, (command.seq, outcome.clone()));
        Some(outcome)
    }

    /// The current value of `key`.
    pub fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.data.get(key).cloned()
    }
}

/// A request from a client to a node.
#[derive(Clone, Debug)]
pub enum Request {
    Write(WriteCommand),
    Read { attempt: u64, key: Vec<u8> },
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
    next_seq: u64,
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

impl Client {
    pub fn new(id: u64, nodes: usize) -> Client {
        Client {
            id,
            next_seq: 1,
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
        let tag = self.next_seq;
        self.next_seq += 1;
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
                client: self.id,
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
        }
    }
}
