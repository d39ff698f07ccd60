//! The simulated clients' traffic: requests at the nodes, replies,
//! retries and redirects.

use super::workload::{Reply, Request};
use super::{Event, Simulation, AFTER_HEAL_US, ATTEMPT_TIMEOUT_US, PATIENCE_US};
use crate::support::linearizability::KvOp;

impl Simulation {
    pub(super) fn reply(&mut self, _node: usize, client: usize, reply: Reply) {
        for _ in 0..self.copies() {
            let delay = self.delay();
            self.schedule(
                delay,
                Event::Reply {
                    client,
                    reply: reply.clone(),
                },
            );
        }
    }

    pub(super) fn client_start(&mut self, client: usize) {
        if self.now_us >= self.heal_at_us + AFTER_HEAL_US {
            return;
        }
        let keys = self.options.keys;
        let now = self.now_us;
        let request_tag = {
            let c = &mut self.clients[client];
            c.start(&mut self.rng, keys, now, PATIENCE_US);
            c.current.as_ref().expect("started").tag
        };
        self.client_send(client, request_tag, 0);
    }

    pub(super) fn client_send(&mut self, client: usize, tag: u64, attempt: u64) {
        let c = &self.clients[client];
        if !c
            .current
            .as_ref()
            .is_some_and(|cur| cur.tag == tag && cur.attempt == attempt)
        {
            return;
        }
        let request = c.request();
        // Half the reads go first to any node: followers serve them too.
        let node = match request {
            Request::Read { .. } if attempt == 0 && self.rng.below(2) == 0 => {
                self.rng.below(self.nodes.len() as u64) as usize
            }
            _ => c.leader_guess,
        };
        self.send_request(node, client, request);
        self.schedule(
            ATTEMPT_TIMEOUT_US,
            Event::ClientTimeout {
                client,
                tag,
                attempt,
            },
        );
    }

    pub(super) fn on_reply(&mut self, client: usize, reply: Reply) {
        let Some(current) = self.clients[client].current.as_ref() else {
            return;
        };
        match reply {
            Reply::Done { tag, outcome } if tag == current.tag => {
                let is_write = !matches!(current.op.op, KvOp::Get { .. });
                let id = self.clients[client].kv_client_id();
                self.clients[client].finish(self.now_us, outcome);
                if is_write {
                    self.acked_writes.insert((id, tag));
                    if self.now_us >= self.heal_at_us {
                        self.first_write_after_heal_us.get_or_insert(self.now_us);
                    }
                }
                let think = self.rng.below(10_000);
                self.schedule(think, Event::ClientStart { client });
            }
            Reply::Redirect { tag, leader } if tag == current.tag => {
                let guess = leader.map(|l| l.0 as usize - 1);
                let pause = if guess.is_some() { 0 } else { 10_000 };
                self.retry(client, guess, pause);
            }
            _ => {}
        }
    }

    /// Sends the current operation again (to `guess`, or a random node),
    /// or gives it up when the client's patience ran out.
    pub(super) fn retry(&mut self, client: usize, guess: Option<usize>, pause_us: u64) {
        let now = self.now_us;
        let nodes = self.nodes.len() as u64;
        let random = self.rng.below(nodes) as usize;
        let c = &mut self.clients[client];
        let current = c.current.as_mut().expect("in flight");
        if now >= current.give_up_at {
            c.abandon();
            self.schedule(0, Event::ClientStart { client });
            return;
        }
        current.attempt += 1;
        let (tag, attempt) = (current.tag, current.attempt);
        c.leader_guess = guess.unwrap_or(random);
        self.schedule(
            pause_us,
            Event::ClientSend {
                client,
                tag,
                attempt,
            },
        );
    }
}
