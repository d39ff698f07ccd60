//! Property tests over generated logs: the state machine agrees with a simple in-memory model,
//! and two state machines fed the same slots end in identical states.

mod common;

use std::collections::{BTreeMap, HashMap};

use common::generate::Clients;
use common::*;
use prost::Message;
use synod_kvstore::{
    CompareAndSwapResponse, CompareOp, CompareTarget, DeleteRangeResponse, DeleteResponse,
    Expected, GetResponse, IncrResponse, KeyValue, Op, Outcome, PutResponse, Request, RequestError,
    Response, ScanResponse, StateMachine, TxnOpKind, TxnOpResponse, TxnOutcome, TxnResponse,
};
use synod_wire::limits::MAX_SCAN_LIMIT;

/// The specification, written as plainly as possible: a sorted map and a counter.
#[derive(Default)]
struct Model {
    kv: BTreeMap<Vec<u8>, KeyValue>,
    revision: u64,
    clients: HashMap<u64, (u64, Response)>,
}

fn in_range(key: &[u8], start: &[u8], end: &[u8], prefix: &[u8]) -> bool {
    key >= start && (end.is_empty() || key < end) && key.starts_with(prefix)
}

impl Model {
    fn apply(&mut self, request: &Request) -> Response {
        if let Err(e) = request.validate_header() {
            return Response::error(self.revision, &e);
        }
        let id = request.client_id;
        if id != 0 {
            match self.clients.get(&id) {
                Some((last, response)) if request.seq == *last => return response.clone(),
                Some((last, _)) if request.seq < *last => {
                    let e = RequestError::StaleSequence {
                        client_id: id,
                        seq: request.seq,
                        last_seq: *last,
                    };
                    return Response::error(self.revision, &e);
                }
                None if request.seq > 1 => {
                    let e = RequestError::UnknownClient {
                        client_id: id,
                        seq: request.seq,
                    };
                    return Response::error(self.revision, &e);
                }
                _ => {}
            }
        }
        let mut pending = Pending {
            kv: &mut self.kv,
            revision: self.revision + 1,
            changed: false,
        };
        let executed = request
            .validate()
            .and_then(|()| pending.op(request.op.as_ref().unwrap()));
        let response = match executed {
            Ok(outcome) => {
                if pending.changed {
                    self.revision += 1;
                }
                Response {
                    revision: self.revision,
                    outcome: Some(outcome),
                }
            }
            Err(e) => Response::error(self.revision, &e),
        };
        if id != 0 {
            self.clients.insert(id, (request.seq, response.clone()));
        }
        response
    }
}

struct Pending<'a> {
    kv: &'a mut BTreeMap<Vec<u8>, KeyValue>,
    revision: u64,
    changed: bool,
}

impl Pending<'_> {
    fn put(&mut self, key: &[u8], value: &[u8], prev_kv: bool) -> PutResponse {
        let prev = self.kv.get(key).cloned();
        let kv = KeyValue {
            key: key.to_vec(),
            value: value.to_vec(),
            create_revision: prev.as_ref().map_or(self.revision, |p| p.create_revision),
            mod_revision: self.revision,
            version: prev.as_ref().map_or(1, |p| p.version + 1),
            session: 0,
            kind: 0,
        };
        self.kv.insert(key.to_vec(), kv);
        self.changed = true;
        PutResponse {
            prev: if prev_kv { prev } else { None },
        }
    }

    fn delete(&mut self, key: &[u8], prev_kv: bool) -> DeleteResponse {
        let prev = self.kv.remove(key);
        self.changed |= prev.is_some();
        DeleteResponse {
            deleted: prev.is_some(),
            prev: if prev_kv { prev } else { None },
        }
    }

    fn get(&self, key: &[u8]) -> GetResponse {
        GetResponse {
            kv: self.kv.get(key).cloned(),
        }
    }

    fn op(&mut self, op: &Op) -> Result<Outcome, RequestError> {
        Ok(match op {
            Op::Put(p) => Outcome::Put(self.put(&p.key, &p.value, p.prev_kv)),
            Op::Get(g) => Outcome::Get(self.get(&g.key)),
            Op::Delete(d) => Outcome::Delete(self.delete(&d.key, d.prev_kv)),
            Op::DeleteRange(r) => {
                let doomed: Vec<Vec<u8>> = self
                    .kv
                    .keys()
                    .filter(|k| in_range(k, &r.start, &r.end, &r.prefix))
                    .cloned()
                    .collect();
                for key in &doomed {
                    self.delete(key, false);
                }
                Outcome::DeleteRange(DeleteRangeResponse {
                    deleted: doomed.len() as u64,
                })
            }
            Op::Scan(s) => {
                let limit = if s.limit == 0 {
                    MAX_SCAN_LIMIT
                } else {
                    s.limit
                } as usize;
                let mut kvs: Vec<KeyValue> = self
                    .kv
                    .values()
                    .filter(|kv| in_range(&kv.key, &s.start, &s.end, &s.prefix))
                    .cloned()
                    .collect();
                let more = kvs.len() > limit;
                kvs.truncate(limit);
                if s.keys_only {
                    kvs.iter_mut().for_each(|kv| kv.value.clear());
                }
                Outcome::Scan(ScanResponse { kvs, more })
            }
            Op::CompareAndSwap(c) => {
                let current = self.kv.get(&c.key).cloned();
                let matches = match &c.expected {
                    None => current.is_none(),
                    Some(Expected::Value(v)) => current.as_ref().is_some_and(|kv| kv.value == *v),
                    Some(Expected::ModRevision(m)) => {
                        current.as_ref().map_or(0, |kv| kv.mod_revision) == *m
                    }
                };
                if matches {
                    self.put(&c.key, &c.new_value, false);
                }
                Outcome::CompareAndSwap(CompareAndSwapResponse {
                    succeeded: matches,
                    current: if matches { None } else { current },
                })
            }
            Op::Txn(t) => {
                let succeeded = t.compares.iter().all(|c| {
                    let kv = self.kv.get(&c.key);
                    let target = CompareTarget::try_from(c.target).unwrap();
                    let ordering = match target {
                        CompareTarget::Value => match kv {
                            None => return false,
                            Some(kv) => kv.value.cmp(&c.value),
                        },
                        CompareTarget::Version => kv.map_or(0, |kv| kv.version).cmp(&c.number),
                        CompareTarget::CreateRevision => {
                            kv.map_or(0, |kv| kv.create_revision).cmp(&c.number)
                        }
                        CompareTarget::ModRevision => {
                            kv.map_or(0, |kv| kv.mod_revision).cmp(&c.number)
                        }
                    };
                    match CompareOp::try_from(c.op).unwrap() {
                        CompareOp::Equal => ordering.is_eq(),
                        CompareOp::NotEqual => ordering.is_ne(),
                        CompareOp::Less => ordering.is_lt(),
                        CompareOp::Greater => ordering.is_gt(),
                    }
                });
                let branch = if succeeded { &t.success } else { &t.failure };
                let responses = branch
                    .iter()
                    .map(|op| TxnOpResponse {
                        outcome: Some(match op.op.as_ref().unwrap() {
                            TxnOpKind::Put(p) => {
                                TxnOutcome::Put(self.put(&p.key, &p.value, p.prev_kv))
                            }
                            TxnOpKind::Delete(d) => {
                                TxnOutcome::Delete(self.delete(&d.key, d.prev_kv))
                            }
                            TxnOpKind::Get(g) => TxnOutcome::Get(self.get(&g.key)),
                        }),
                    })
                    .collect();
                Outcome::Txn(TxnResponse {
                    succeeded,
                    responses,
                })
            }
            Op::Incr(i) => {
                let current = match self.kv.get(&i.key) {
                    None => 0,
                    Some(kv) => {
                        let text = String::from_utf8(kv.value.clone())
                            .map_err(|_| RequestError::NotAnInteger)?;
                        let n: i64 = text.parse().map_err(|_| RequestError::NotAnInteger)?;
                        if n.to_string() != text {
                            return Err(RequestError::NotAnInteger);
                        }
                        n
                    }
                };
                let value = current
                    .checked_add(i.delta)
                    .ok_or(RequestError::IncrOverflow)?;
                self.put(&i.key, value.to_string().as_bytes(), false);
                Outcome::Incr(IncrResponse { value })
            }
            other => unreachable!("the generator makes no coordination ops: {other:?}"),
        })
    }
}

fn random_slot(rng: &mut Rng, clients: &mut Clients) -> Vec<Request> {
    (0..rng.below(7)).map(|_| clients.request(rng)).collect()
}

fn encode(requests: &[Request]) -> Vec<Vec<u8>> {
    requests.iter().map(Message::encode_to_vec).collect()
}

#[test]
fn state_machine_agrees_with_the_model() {
    for seed in 0..400 {
        let mut rng = Rng(seed);
        let mut clients = Clients::new(5);
        let mut model = Model::default();
        let mut h = Harness::new();
        for slot in 1..=40u64 {
            let requests = random_slot(&mut rng, &mut clients);
            let got = h.apply(&requests);
            for (i, request) in requests.iter().enumerate() {
                let want = model.apply(request);
                assert_eq!(
                    got[i], want,
                    "seed {seed} slot {slot} command {i}: {request:?}"
                );
            }
            assert_eq!(h.sm.revision(), model.revision, "seed {seed} slot {slot}");
        }
        let all: Vec<KeyValue> = model.kv.values().cloned().collect();
        assert_eq!(h.all(), all, "seed {seed}: final state");
    }
}

#[test]
fn same_slots_give_identical_state_on_two_machines() {
    for seed in 0..40 {
        let path = TempPath::new(&format!("determinism-{seed}"));
        let mut rng = Rng(1_000 + seed);
        let mut clients = Clients::new(8);
        let mut in_memory = StateMachine::in_memory().unwrap();
        let mut on_file = StateMachine::open(&path.0).unwrap();
        for slot in 1..=30u64 {
            let mut batch = encode(&random_slot(&mut rng, &mut clients));
            if rng.one_in(4) {
                batch.push(rng.bytes(16)); // undecodable commands apply the same way too
            }
            let a = in_memory.apply_slots([(slot, batch.as_slice())]).unwrap();
            let b = on_file.apply_slots([(slot, batch.as_slice())]).unwrap();
            assert_eq!(a, b, "seed {seed} slot {slot}: responses and effects");
            assert_eq!(
                in_memory.state_hash().unwrap(),
                on_file.state_hash().unwrap(),
                "seed {seed} slot {slot}: state"
            );
        }
        assert_eq!(in_memory.revision(), on_file.revision());
    }
}

#[test]
// The update fills `bugs` when a workspace test build enables `bug-injection`.
#[allow(clippy::needless_update)]
fn dedup_eviction_is_deterministic() {
    let options = synod_kvstore::Options {
        max_dedup_clients: 3,
        ..Default::default()
    };
    let mut rng = Rng(77);
    let mut clients = Clients::new(10);
    let mut a = StateMachine::in_memory_with(options.clone()).unwrap();
    let mut b = StateMachine::in_memory_with(options).unwrap();
    for slot in 1..=200u64 {
        let batch = encode(&random_slot(&mut rng, &mut clients));
        assert_eq!(
            a.apply_slots([(slot, batch.as_slice())]).unwrap(),
            b.apply_slots([(slot, batch.as_slice())]).unwrap()
        );
        assert_eq!(
            a.state_hash().unwrap(),
            b.state_hash().unwrap(),
            "slot {slot}"
        );
    }
}
