//! Driving each simulated machine's node: the same `synod::node::Node`
//! that `synod start` runs, through the same rounds (sends, records handed
//! to the log, finish at once; `Node::log_durable` and the messages it
//! releases once the log syncs), with the log's fsync an event of its own, so that the
//! node takes inputs while its rounds wait for the disk, and crashes fall
//! between a round's sends and its fsync. What comes out (applied
//! slots, answers, snapshots) feeds the oracles and the simulated clients.
//!
//! Oracle of the durability rule, checked at every crash: every Accept or
//! Heartbeat the node sent early is covered by the promise it restarts with (a proposer's messages at ballot b rely on its own durable
//! promise of b).

use std::collections::BTreeMap;

use prost::Message as _;
use synod::node::{Answer, AppliedSlot, Node, NodeError, ReadConsistency};
use synod_kvstore::membership::{decode_membership_command, membership_command};
use synod_kvstore::{
    Get, Op, Request as KvRequest, SimDisk, SimRedbBackend, Snapshot, SnapshotChunk, WalLog,
};
use synod_paxos::{Ballot, Message, NodeId, ReadId, ReadySeq, Record, Slot, Storage};

use super::coord::{is_coord, CoordAnswer, CoordReply};
use super::coord_oracles::{self, ReplicaView};
use super::snapshots::snapshot_chunks;
use super::trace::describe_value;
use super::workload::{read_value, write_outcome, Client, Reply, Request};
use super::{Event, Simulation, SNAPSHOT_CHUNK_BYTES};
use crate::support::linearizability::KvOutcome;

/// In the crash mixes, the chance (per mille) that a machine crashes
/// before its log's fsync (more often when the rounds it covers raise the
/// promise: see `FaultMix::promise_crash_per_mille`).
const CRASH_MID_ROUND_PER_MILLE: u64 = 2;

/// The simulated time an fsync of the log takes: uniform in this range (µs).
const LOG_SYNC_US: (u64, u64) = (50, 1_500);

impl Simulation {
    /// The machine loses power: the node is gone, and so is everything
    /// its disks had not synced. Checks the durability rule's oracle: the
    /// promise the node restarts with covers every proposer message it sent
    /// before its round was durable.
    pub(super) fn crash(&mut self, node: usize) -> Result<(), String> {
        self.note(|| format!("crash n{}", node + 1));
        if self.nodes[node].leading.is_some() {
            self.truth.term_ended(node, self.now_us);
        }
        // What the log's disk kept of what it had not synced: nothing, all, a prefix (a torn
        // write), or any of its sectors (a volatile cache written back in any order).
        let seed = self.rng.next_u64();
        let mut tear = synod_paxos::Rng::new(seed);
        let n = &mut self.nodes[node];
        // Kill the disks before the node and its log, so nothing they do on
        // the way down is written.
        n.disk = n.disk.crash();
        n.log_disk = match tear.below(4) {
            0 => n.log_disk.crash(),
            1 => n
                .log_disk
                .crash_torn(&mut |unsynced| tear.below(unsynced + 1)),
            2 => n.log_disk.crash_scattered(&mut || tear.below(2) == 0),
            _ => n.log_disk.crash_torn(&mut |unsynced| unsynced),
        };
        n.node = None;
        n.log = None;
        n.state_sync_fails = false;
        n.incarnation += 1;
        n.reads.clear();
        n.leading = None;
        n.log_queue.clear();
        let relied_on = n.relied_on.take();
        let durable = WalLog::open_on(n.log_disk.clone(), self.wal_options())
            .and_then(|log| log.load())
            .map_err(|e| format!("n{} cannot open its log after a crash: {e}", node + 1))?;
        if let Some(ballot) = relied_on.filter(|b| *b > durable.promised) {
            return Err(format!(
                "n{} sent Phase 2 messages at ballot {ballot} before its own promise of it \
                 was durable, and crashed with promise {}",
                node + 1,
                durable.promised
            ));
        }
        Ok(())
    }

    /// Flips one bit of what `node`'s (down) log disk synced, in the first
    /// half of its newest segment, and checks the log refuses to open (or,
    /// should the bit have fallen where a torn write may lie, opens with
    /// every record it held); then the operator mends the bit.
    pub(super) fn flip_a_synced_bit(&mut self, node: usize) -> Result<(), String> {
        let disk = self.nodes[node].log_disk.clone();
        let Some(segment) = disk
            .file_names()
            .into_iter()
            .filter(|f| f.ends_with(".wal"))
            .max()
        else {
            return Ok(());
        };
        let synced = disk.synced_bytes(&segment).unwrap_or(0);
        if synced < 1024 {
            return Ok(());
        }
        let before = WalLog::open_on(disk.clone(), self.wal_options())
            .and_then(|log| log.load())
            .map_err(|e| format!("n{} cannot open its log: {e}", node + 1))?;
        let offset = 64 + self.rng.below(synced / 2 - 64);
        let bit = self.rng.below(8) as u8;
        disk.flip_bit(&segment, offset, bit)
            .map_err(|e| e.to_string())?;
        self.note(|| {
            format!(
                "n{}: bit {bit} of {segment} byte {offset} flipped",
                node + 1
            )
        });
        match WalLog::open_on(disk.clone(), self.wal_options()).and_then(|log| log.load()) {
            Err(_) => {}
            Ok(after) if after == before => {}
            Ok(_) => {
                return Err(format!(
                    "n{} opened a log with bit {bit} of {segment} byte {offset} flipped and lost \
                     synced records",
                    node + 1
                ))
            }
        }
        disk.flip_bit(&segment, offset, bit)
            .map_err(|e| e.to_string())
    }

    /// The node stops on a storage error, as `synod start` does: the
    /// machine goes down and restarts later from what its disks synced.
    fn stop(&mut self, node: usize, error: &dyn std::fmt::Display) -> Result<(), String> {
        self.note(|| format!("n{} stops: {error}", node + 1));
        self.crash(node)?;
        self.restart_later(node);
        Ok(())
    }

    /// Schedules the restart of a machine that went down.
    fn restart_later(&mut self, node: usize) {
        let delay = 50_000 + self.rng.below(1_000_000);
        self.schedule(delay, Event::Restart(node));
    }

    /// Hands a client's request to `node`.
    pub(super) fn on_request(
        &mut self,
        node: usize,
        client: usize,
        request: Request,
    ) -> Result<(), String> {
        let now = self.local_now(node);
        let newest_chosen = self.chosen.keys().next_back().copied().unwrap_or_default();
        let n = &mut self.nodes[node];
        let Some(running) = n.node.as_mut() else {
            return Ok(());
        };
        let decode =
            |bytes: &[u8]| KvRequest::decode(bytes).expect("the simulator sends valid requests");
        let lease_read = match request {
            Request::Write(command) => {
                running.write(now, decode(&command.encode()));
                None
            }
            Request::Coord { bytes, .. } => {
                running.write(now, decode(&bytes));
                None
            }
            Request::Read { attempt, key, .. } => {
                let read = KvRequest::anonymous(Op::Get(Get { key }));
                let id = running.read(now, read, ReadConsistency::Linearizable);
                n.reads.insert(
                    id,
                    PendingRead {
                        client,
                        attempt,
                        must_see: newest_chosen,
                    },
                );
                // Answered within the same call means served under the
                // lease, with no round trip.
                Some(id)
            }
        };
        self.drive(node, lease_read)
    }

    /// Runs one round of `node`'s node. `lease_read` is a read asked in
    /// this same call: if it is answered now, it was served under the
    /// lease, and must not miss any slot chosen anywhere.
    pub(super) fn drive(&mut self, node: usize, lease_read: Option<ReadId>) -> Result<(), String> {
        let now = self.local_now(node);
        let Some(running) = self.nodes[node].node.as_mut() else {
            return Ok(());
        };
        let round = running
            .begin_round(now)
            .map_err(|e| format!("n{}: {e}", node + 1))?;
        self.follow_terms(node);
        // The ballot of the proposer messages sent before their round's
        // fsync: they rely on a durable promise of at least that ballot.
        let relies_on = round
            .send
            .iter()
            .filter_map(|e| match e.message {
                Message::Accept { ballot, .. } | Message::Heartbeat { ballot, .. } => Some(ballot),
                _ => None,
            })
            .max();
        let n = &mut self.nodes[node];
        n.relied_on = n.relied_on.max(relies_on);
        for envelope in round.send {
            self.send(envelope);
        }
        if !round.persist.is_empty() {
            let n = &mut self.nodes[node];
            if n.log_queue.is_empty() {
                let incarnation = n.incarnation;
                let delay = LOG_SYNC_US.0 + self.rng.below(LOG_SYNC_US.1 - LOG_SYNC_US.0);
                self.schedule(delay, Event::LogSync { node, incarnation });
            }
            self.nodes[node].log_queue.push((round.seq, round.persist));
        }
        let running = self.nodes[node].node.as_mut().expect("up");
        let mut revision_before = running.state_machine().revision();
        let output = match running.finish_round(now) {
            Ok(output) => output,
            Err(e) if self.nodes[node].state_sync_fails => {
                return self.stop(node, &e);
            }
            Err(e) => return Err(format!("n{}: {e}", node + 1)),
        };
        let mut touched = false;
        for slot in &output.applied {
            touched |= self.check_applied(node, slot, revision_before)?;
            revision_before = slot.revision;
        }
        if touched {
            let n = &mut self.nodes[node];
            let mut violations = Vec::new();
            n.view.check_state(
                n.node.as_ref().expect("up").state_machine(),
                &mut self.truth.leaders,
                &mut violations,
            )?;
            self.report(node, violations)?;
        }
        for answer in output.answers {
            self.answer(node, answer, lease_read)?;
        }
        for (peer, snapshot) in output.snapshots {
            self.send_snapshot(node, peer, snapshot);
        }
        if self.nodes[node]
            .node
            .as_ref()
            .is_some_and(|n| n.has_output())
        {
            return self.drive(node, None);
        }
        Ok(())
    }

    /// `node`'s log syncs every round waiting for it, with one fsync (the
    /// group commit of the log's thread), unless the machine crashes first;
    /// then their later messages go and the node hears they are durable.
    pub(super) fn on_log_sync(&mut self, node: usize, incarnation: u64) -> Result<(), String> {
        let n = &mut self.nodes[node];
        if n.incarnation != incarnation || n.node.is_none() || n.log_queue.is_empty() {
            return Ok(());
        }
        let rounds = std::mem::take(&mut n.log_queue);
        let last = rounds.last().expect("not empty").0;
        let records: Vec<Record> = rounds.into_iter().flat_map(|(_, r)| r).collect();
        let raises_promise = records.iter().any(|r| matches!(r, Record::Promised(_)));
        let crash_per_mille = match (raises_promise, self.options.mix.crashes) {
            (true, _) => self.options.mix.promise_crash_per_mille,
            (false, true) => CRASH_MID_ROUND_PER_MILLE,
            (false, false) => 0,
        };
        if !records.is_empty() && self.faults_active && self.rng.chance(crash_per_mille, 1000) {
            self.note(|| format!("n{} crashes before its fsync", node + 1));
            self.crash(node)?;
            self.restart_later(node);
            return Ok(());
        }
        self.membership_oracle
            .record_accepts(NodeId(node as u32 + 1), &records);
        let log = self.nodes[node].log.as_mut().expect("up");
        if let Err(e) = log.persist(&records) {
            // A failed fsync or a full disk stops the node (the driver's
            // `?`): nothing that relied on these records may go out. It
            // restarts from what its disks synced.
            return self.stop(node, &e);
        }
        let now = self.local_now(node);
        let released = self.nodes[node]
            .node
            .as_mut()
            .expect("up")
            .log_durable(now, last);
        for envelope in released {
            self.send(envelope);
        }
        self.drive(node, None)
    }

    /// Starts and ends the node's leader terms in the oracles' truth, as
    /// its session clock starts and stops leading.
    fn follow_terms(&mut self, node: usize) {
        let n = &self.nodes[node];
        let now_leading = n.node.as_ref().and_then(|n| n.leading());
        let before = n.leading;
        if before == now_leading {
            return;
        }
        self.nodes[node].leading = now_leading;
        if before.is_some() {
            self.truth.term_ended(node, self.now_us);
        }
        if let Some(ballot) = now_leading {
            self.truth.term_started(node, self.now_us);
            self.note(|| format!("n{} leads sessions with ballot {ballot}", node + 1));
            if self.options.mix.leader_churn && self.faults_active {
                let incarnation = self.nodes[node].incarnation;
                let term = 800_000 + self.rng.below(800_000);
                self.schedule(
                    term,
                    Event::ChurnCrash {
                        node,
                        incarnation,
                        ballot,
                    },
                );
            }
        }
    }

    /// The oracles on one applied slot: one value per slot, in order, and
    /// the coordination checks. Returns whether the slot touched
    /// coordination state.
    fn check_applied(
        &mut self,
        node: usize,
        applied: &AppliedSlot,
        revision_before: u64,
    ) -> Result<bool, String> {
        let slot = applied.slot;
        let first = !self.chosen.contains_key(&slot);
        match self.chosen.get(&slot) {
            Some(existing) if value_commands(existing) != applied.commands => {
                return Err(format!(
                    "slot {slot} has two values: {} and {} commands (at n{})",
                    describe_value(existing),
                    applied.commands.len(),
                    node + 1
                ));
            }
            Some(_) => {}
            None => {
                self.first_commit_us.get_or_insert(self.now_us);
                self.committed_commands += applied.commands.len() as u64;
                let value = value_of(&applied.commands);
                self.membership_chosen(slot, &value)?;
                self.chosen.insert(slot, value);
            }
        }
        let mut violations = Vec::new();
        if first {
            self.truth.first_apply(
                self.now_us,
                &applied.effects.session_events,
                self.drift_bound_ppm,
                &mut violations,
            );
        }
        let checked = coord_oracles::AppliedSlot {
            commands: &applied.commands,
            responses: &applied.responses,
            effects: &applied.effects,
            revision_before,
        };
        let touched = self.nodes[node]
            .view
            .check_slot(&checked, &mut violations)?;
        self.report(node, violations)?;
        Ok(touched)
    }

    /// Hands one of the node's answers to the client that asked.
    fn answer(
        &mut self,
        node: usize,
        answer: Answer,
        lease_read: Option<ReadId>,
    ) -> Result<(), String> {
        match answer {
            Answer::Write {
                client_id,
                seq,
                answer,
            } => {
                if is_coord(client_id) {
                    let answer = match answer {
                        Ok(response) => CoordAnswer::Done(response),
                        Err(
                            NodeError::NotLeader { leader } | NodeError::SteppedDown { leader },
                        ) => CoordAnswer::Redirect(leader),
                        // Busy: the client's attempt times out and retries.
                        Err(_) => return Ok(()),
                    };
                    self.coord_reply(CoordReply {
                        from: client_id,
                        seq,
                        answer,
                    });
                    return Ok(());
                }
                if client_id == 0 {
                    return Ok(());
                }
                let client = Client::index_of(client_id);
                if self.clients[client].kv_client_id() != client_id {
                    // An answer to a write the client gave up on (it went on
                    // under a new id, numbering from 1 again).
                    return Ok(());
                }
                match answer {
                    Ok(response) => {
                        if let Some(outcome) = write_outcome(&response) {
                            self.reply(node, client, Reply::Done { tag: seq, outcome });
                        }
                    }
                    // Retried under the same (client, seq): it applies once.
                    Err(NodeError::NotLeader { leader } | NodeError::SteppedDown { leader }) => {
                        self.reply(node, client, Reply::Redirect { tag: seq, leader });
                    }
                    Err(_) => {}
                }
            }
            Answer::Read { id, answer } => {
                let Some(PendingRead {
                    client,
                    attempt: tag,
                    must_see,
                }) = self.nodes[node].reads.remove(&id)
                else {
                    return Ok(());
                };
                match answer {
                    Ok(response) => {
                        // Leader or follower, lease or read index: a read
                        // misses no slot chosen before it arrived.
                        let applied = self.nodes[node].applied();
                        if applied < must_see {
                            return Err(format!(
                                "stale read at n{}: applied through slot {applied} but slot {must_see} was chosen before the read arrived",
                                node + 1
                            ));
                        }
                        if lease_read == Some(id) {
                            let applied = self.nodes[node].applied();
                            let newest =
                                self.chosen.keys().next_back().copied().unwrap_or_default();
                            if newest > applied {
                                return Err(format!(
                                    "stale lease read at n{}: applied through slot {applied} but slot {newest} is chosen",
                                    node + 1
                                ));
                            }
                        }
                        let outcome = KvOutcome::Get(read_value(&response));
                        self.reply(node, client, Reply::Done { tag, outcome });
                    }
                    Err(NodeError::NotLeader { leader }) => {
                        self.reply(node, client, Reply::Redirect { tag, leader });
                    }
                    Err(_) => {}
                }
            }
            // The simulated clients take no backups.
            Answer::Snapshot { .. } => {}
        }
        Ok(())
    }

    /// Ships `snapshot` from `from` to `to` chunk by chunk, in order, each
    /// chunk lost or cut like a message (the receiver waits for the lost
    /// chunk from a later copy of the stream; the peer asks again).
    fn send_snapshot(&mut self, from: usize, to: NodeId, snapshot: Snapshot) {
        let to = to.0 as usize - 1;
        let Ok(chunks) = snapshot_chunks(snapshot.with_chunk_bytes(SNAPSHOT_CHUNK_BYTES)) else {
            return;
        };
        self.note(|| {
            format!(
                "n{} streams a snapshot to n{} ({} chunks)",
                from + 1,
                to + 1,
                chunks.len()
            )
        });
        let incarnation = self.nodes[to].incarnation;
        let link_us_per_chunk = self.snapshot_stream_us / chunks.len().max(1) as u64;
        let mut delay = self.delay();
        for chunk in chunks {
            if self.partitions.blocks(from, to) || self.copies() == 0 {
                return;
            }
            delay += self.delay() + link_us_per_chunk;
            self.schedule(
                delay,
                Event::SnapshotChunk {
                    to,
                    incarnation,
                    from: NodeId(from as u32 + 1),
                    chunk,
                },
            );
        }
    }

    /// One snapshot chunk arrives.
    pub(super) fn snapshot_chunk(
        &mut self,
        node: usize,
        incarnation: u64,
        from: NodeId,
        chunk: SnapshotChunk,
    ) -> Result<(), String> {
        let now = self.local_now(node);
        let n = &mut self.nodes[node];
        let Some(running) = n.node.as_mut().filter(|_| n.incarnation == incarnation) else {
            return Ok(());
        };
        let before = running.state_machine().applied_index();
        if let Err(e) = running.snapshot_chunk(now, from, chunk) {
            if !n.state_sync_fails {
                return Err(format!("n{} cannot install a snapshot: {e}", node + 1));
            }
            return self.stop(node, &e);
        }
        let after = running.state_machine().applied_index();
        if after != before {
            n.view = ReplicaView::read(running.state_machine())?;
            self.snapshots_installed += 1;
            self.note(|| format!("n{} installed a snapshot at slot {}", node + 1, Slot(after)));
            self.follow_terms(node);
        }
        self.drive(node, None)
    }
}

/// The commands of a chosen value as the state machine applies them (none
/// for a no-op, one membership command for a change).
fn value_commands(value: &synod_paxos::Value) -> Vec<Vec<u8>> {
    match value {
        synod_paxos::Value::Noop => Vec::new(),
        synod_paxos::Value::Commands(commands) => commands.clone(),
        synod_paxos::Value::Reconfigure(change) => vec![membership_command(change)],
    }
}

/// The chosen value an applied slot's commands come from.
fn value_of(commands: &[Vec<u8>]) -> synod_paxos::Value {
    match commands {
        [] => synod_paxos::Value::Noop,
        [only] => match decode_membership_command(only) {
            Some(Ok(change)) => synod_paxos::Value::Reconfigure(change),
            _ => synod_paxos::Value::Commands(commands.to_vec()),
        },
        _ => synod_paxos::Value::Commands(commands.to_vec()),
    }
}

/// One simulated machine: its disks survive crashes, the node does not.
pub(super) struct Machine {
    /// The acceptor's write-ahead log, while the machine is up...
    pub(super) log: Option<WalLog<SimDisk>>,
    /// ...on this disk: what was synced survives a crash, and a crash may
    /// keep a torn prefix of what was not.
    pub(super) log_disk: SimDisk,
    /// The state machine's disk: what was synced survives a crash.
    pub(super) disk: SimRedbBackend,
    /// A failed fsync was injected on `disk`: a state machine error then
    /// stops the node, as it stops `synod start`.
    pub(super) state_sync_fails: bool,
    /// The node `synod start` runs, while the machine is up.
    pub(super) node: Option<Node>,
    pub(super) incarnation: u64,
    /// Reads asked of this node, by id.
    pub(super) reads: BTreeMap<ReadId, PendingRead>,
    pub(super) clock_offset_us: u64,
    pub(super) drift_ppm: i64,
    /// The ballot the node's leader clocks ran for at the last look.
    pub(super) leading: Option<Ballot>,
    /// The coordination state the oracles last saw on this replica.
    pub(super) view: ReplicaView,
    /// The log's queue: each round's records handed to it, not yet synced.
    pub(super) log_queue: Vec<(ReadySeq, Vec<Record>)>,
    /// The highest ballot of the proposer messages this incarnation sent
    /// before their round was durable.
    pub(super) relied_on: Option<Ballot>,
}

/// A read asked of a node, waiting for its answer.
pub(super) struct PendingRead {
    pub(super) client: usize,
    /// The client's attempt tag.
    pub(super) attempt: u64,
    /// The newest slot chosen anywhere when the read arrived: the node must
    /// have applied it before answering.
    pub(super) must_see: Slot,
}

impl Machine {
    /// The slot the state machine applied through (0 while down).
    pub(super) fn applied(&self) -> Slot {
        self.node
            .as_ref()
            .map_or(Slot(0), |n| Slot(n.state_machine().applied_index()))
    }

    /// The state machine's hash (`None` while down or unreadable).
    pub(super) fn state_hash(&self) -> Option<u64> {
        self.node.as_ref()?.state_machine().state_hash().ok()
    }
}
