//! The coordination clients' traffic: requests, replies, retries,
//! redirects and keep-alive timers.

use super::coord::{stream_of, CoordAnswer, CoordOp, CoordReply, KEEPALIVE, MAIN};
use super::coord_oracles::observe_leader;
use super::workload::Request;
use super::{Event, Simulation, AFTER_HEAL_US, ATTEMPT_TIMEOUT_US, PATIENCE_US};

impl Simulation {
    /// Sends `reply` back over the (lossy) network.
    pub(super) fn coord_reply(&mut self, reply: CoordReply) {
        for _ in 0..self.copies() {
            let delay = self.delay();
            self.schedule(delay, Event::CoordReply(reply.clone()));
        }
    }

    /// Starts the next operation of `client`'s main stream.
    pub(super) fn coord_start(&mut self, client: usize) {
        let now = self.now_us;
        let c = &mut self.coord[client];
        if c.stopped || c.streams[MAIN].pending.is_some() {
            return;
        }
        let op = if now >= self.heal_at_us + AFTER_HEAL_US {
            // Winding down: close a session still kept alive, like a client
            // that shuts down cleanly; sessions abandoned earlier expire.
            c.stopped = true;
            let open = c
                .life
                .as_ref()
                .filter(|l| l.session != 0 && !l.lost && !l.abandoned(now));
            match open {
                Some(life) => CoordOp::Close {
                    session: life.session,
                },
                None => return,
            }
        } else {
            c.next_op(&mut self.rng, now)
        };
        let seq = c.start(MAIN, op, now, PATIENCE_US);
        self.coord_send(client, MAIN, seq, 0);
    }

    /// Sends attempt `attempt` of request `seq` of `stream`, if still
    /// pending.
    pub(super) fn coord_send(&mut self, client: usize, stream: usize, seq: u64, attempt: u64) {
        let s = &self.coord[client].streams[stream];
        let Some(pending) = s
            .pending
            .as_ref()
            .filter(|p| p.seq == seq && p.attempt == attempt)
        else {
            return;
        };
        let node = s.leader_guess;
        let request = Request::Coord {
            bytes: pending.bytes.clone(),
        };
        self.send_request(node, client, request);
        self.schedule(
            ATTEMPT_TIMEOUT_US,
            Event::CoordTimeout {
                client,
                stream,
                seq,
                attempt,
            },
        );
    }

    pub(super) fn coord_timeout(&mut self, client: usize, stream: usize, seq: u64, attempt: u64) {
        let pending = self.coord[client].streams[stream].pending.as_ref();
        if pending.is_some_and(|p| p.seq == seq && p.attempt == attempt) {
            self.coord_retry(client, stream, None, 0);
        }
    }

    /// Sends the pending request again (to `guess`, or a random node), or
    /// gives it up once the client's patience ran out.
    fn coord_retry(&mut self, client: usize, stream: usize, guess: Option<usize>, pause_us: u64) {
        let now = self.now_us;
        let random = self.rng.below(self.nodes.len() as u64) as usize;
        let s = &mut self.coord[client].streams[stream];
        let pending = s.pending.as_mut().expect("in flight");
        if now >= pending.give_up_at {
            s.abandon();
            if stream == MAIN {
                self.schedule(0, Event::CoordStart { client });
            }
            return;
        }
        pending.attempt += 1;
        let (seq, attempt) = (pending.seq, pending.attempt);
        s.leader_guess = guess.unwrap_or(random);
        self.schedule(
            pause_us,
            Event::CoordSend {
                client,
                stream,
                seq,
                attempt,
            },
        );
    }

    pub(super) fn on_coord_reply(&mut self, reply: CoordReply) -> Result<(), String> {
        let (client, stream) = stream_of(reply.from);
        let s = &self.coord[client].streams[stream];
        if s.kv_id() != reply.from || s.pending.as_ref().is_none_or(|p| p.seq != reply.seq) {
            return Ok(());
        }
        let response = match reply.answer {
            CoordAnswer::Redirect(leader) => {
                let guess = leader.map(|l| l.0 as usize - 1);
                let pause = if guess.is_some() { 0 } else { 10_000 };
                self.coord_retry(client, stream, guess, pause);
                return Ok(());
            }
            CoordAnswer::Done(response) => response,
        };
        let now = self.now_us;
        let c = &mut self.coord[client];
        let pending = c.streams[stream].pending.take().expect("in flight");
        let learned = c.answered(&pending, &response, now);
        let opened = c
            .life
            .as_ref()
            .filter(|l| matches!(pending.op, CoordOp::Open { .. }) && l.id == pending.life)
            .filter(|l| l.session != 0)
            .map(|l| (l.id, l.ttl_ms));
        if let Some((election, revision, session)) = learned.leader {
            if let Some(message) =
                observe_leader(&mut self.truth.leaders, election, revision, session)
            {
                let violation = super::coord_oracles::Violation {
                    oracle: super::Oracle::Elections,
                    message: format!("election/{election} (a client's answer): {message}"),
                };
                self.report(0, vec![violation])?;
            }
        }
        if let Some((life, ttl_ms)) = opened {
            self.schedule(ttl_ms * 1_000 / 3, Event::CoordKeepAlive { client, life });
        }
        if stream == MAIN {
            let think = 20_000 + self.rng.below(60_000);
            self.schedule(think, Event::CoordStart { client });
        }
        Ok(())
    }

    /// The keep-alive timer of `life`: every third of the TTL, as the
    /// client library does, until the client abandons the session or stops.
    pub(super) fn coord_keepalive(&mut self, client: usize, life: u64) {
        let now = self.now_us;
        let c = &mut self.coord[client];
        let Some(l) = c.life.as_ref().filter(|l| l.id == life) else {
            return;
        };
        let period_us = l.ttl_ms * 1_000 / 3;
        if l.lost || l.abandoned(now) || c.stopped {
            return;
        }
        if let Some(op) = c.keepalive_due(life, now) {
            // A keep-alive not answered within a period is given up; the
            // next one goes out under a new id.
            let seq = c.start(KEEPALIVE, op, now, period_us.saturating_sub(50_000));
            self.coord_send(client, KEEPALIVE, seq, 0);
        }
        self.schedule(period_us, Event::CoordKeepAlive { client, life });
    }
}
