//! The sans-IO node's own rules, driven by hand: snapshot streams, the
//! rounds around a snapshot install, backup snapshots, and which rounds
//! the log has made durable.

use prost::Message as _;
use synod::node::{Answer, CompactionPolicy, Node, NodeConfig, NodeError, ReadConsistency};
use synod_kvstore::SNAPSHOT_STALL;
use synod_kvstore::{
    Expire, ExpireIf, Op, Outcome, Put, RedisCommand, ReplyKind, Request, SessionClockConfig,
    SnapshotChunk, StateMachine,
};
use synod_paxos::{
    Ballot, Config, DurableState, Envelope, Instant, Message, NodeId, ReadId, Slot, Value,
};

fn at_ms(ms: u64) -> Instant {
    Instant::from_micros(ms * 1000)
}

/// Node `id` of a 3-node cluster, empty.
fn member(id: u32) -> Node {
    let config = NodeConfig {
        paxos: Config::new(NodeId(id), vec![NodeId(1), NodeId(2), NodeId(3)]),
        compaction: CompactionPolicy::default(),
        sessions: SessionClockConfig::default(),
        first_anonymous_seq: 1,
        founding: Vec::new(),
    };
    Node::new(
        config,
        DurableState::default(),
        StateMachine::in_memory().unwrap(),
        at_ms(0),
    )
    .unwrap()
}

/// Node 2 of a 3-node cluster, empty.
fn follower() -> Node {
    member(2)
}

fn put(key: &str, value_bytes: usize) -> Vec<u8> {
    Request::anonymous(Op::Put(Put {
        key: key.as_bytes().to_vec(),
        value: vec![7; value_bytes],
        prev_kv: false,
    }))
    .encode_to_vec()
}

/// The chunks of a snapshot of a state machine that applied `slots` slots,
/// each one put of `value_bytes` bytes.
fn snapshot(slots: u64, value_bytes: usize) -> Vec<SnapshotChunk> {
    let mut source = StateMachine::in_memory().unwrap();
    for slot in 1..=slots {
        let commands = [put(&format!("k{slot}"), value_bytes)];
        source.apply_slots([(slot, &commands[..])]).unwrap();
    }
    source
        .snapshot()
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap()
}

fn feed(node: &mut Node, now: Instant, from: u32, chunks: &[SnapshotChunk]) {
    for chunk in chunks {
        node.snapshot_chunk(now, NodeId(from), chunk.clone())
            .unwrap();
    }
}

fn applied(node: &Node) -> u64 {
    node.state_machine().applied_index()
}

#[test]
fn a_second_snapshot_stream_does_not_replace_one_being_received() {
    // Three values of almost 1 MiB: several chunks per snapshot.
    let first = snapshot(3, 1_000_000);
    let second = snapshot(4, 1_000_000);
    assert!(
        first.len() >= 3 && second.len() >= 3,
        "multi-chunk snapshots"
    );
    let mut node = follower();
    feed(&mut node, at_ms(10), 1, &first[..1]);
    // The source offers a fresh snapshot while the first is on its way.
    feed(&mut node, at_ms(20), 1, &second[..1]);
    feed(&mut node, at_ms(30), 1, &first[1..]);
    assert_eq!(applied(&node), 3, "the first stream completes");
    feed(&mut node, at_ms(40), 1, &second[1..]);
    assert_eq!(
        applied(&node),
        3,
        "the second stream's later chunks are ignored"
    );
}

#[test]
fn two_copies_of_one_snapshot_stream_interleaved_install_it_once() {
    // The source offered the same snapshot twice; both copies arrive
    // interleaved, each in order. Whichever brings the next chunk is taken.
    let copy = snapshot(3, 1_000_000);
    assert!(copy.len() >= 3, "a multi-chunk snapshot");
    let mut node = follower();
    feed(&mut node, at_ms(10), 1, &copy[..1]);
    feed(&mut node, at_ms(11), 1, &copy[..2]);
    feed(&mut node, at_ms(12), 1, &copy[1..2]);
    assert_eq!(applied(&node), 0);
    feed(&mut node, at_ms(13), 1, &copy[2..]);
    assert_eq!(applied(&node), 3, "installed from chunks of both copies");
    feed(&mut node, at_ms(14), 1, &copy[2..]);
    assert_eq!(applied(&node), 3);
}

#[test]
fn a_chunk_lost_from_a_snapshot_stream_is_taken_from_a_later_copy() {
    let copy = snapshot(3, 1_000_000);
    let mut node = follower();
    feed(&mut node, at_ms(10), 1, &copy[..1]);
    // Chunk 1 is lost; the rest of this copy is ahead of the gap.
    feed(&mut node, at_ms(11), 1, &copy[2..]);
    assert_eq!(applied(&node), 0);
    // The source offers the snapshot again.
    feed(&mut node, at_ms(600), 1, &copy);
    assert_eq!(applied(&node), 3);
}

#[test]
fn a_stalled_snapshot_stream_gives_way_to_a_new_one() {
    let first = snapshot(3, 1_000_000);
    let second = snapshot(4, 1_000_000);
    let mut node = follower();
    feed(&mut node, at_ms(10), 1, &first[..1]);
    let later = at_ms(10) + SNAPSHOT_STALL + std::time::Duration::from_millis(1);
    feed(&mut node, later, 3, &second);
    assert_eq!(applied(&node), 4, "the new stream replaced the stalled one");
}

#[test]
fn a_snapshot_installed_in_the_round_that_committed_slots_applies_cleanly() {
    let mut node = follower();
    // The leader's Accept commits slot 1 at node 2...
    let ballot = Ballot::new(1, NodeId(1));
    node.step(
        at_ms(10),
        Envelope {
            from: NodeId(1),
            to: NodeId(2),
            message: Message::Accept {
                ballot,
                entries: vec![(Slot(1), Value::Commands(vec![put("k1", 10)]))],
                commit: Slot(1),
                lazy: false,
            },
        },
    );
    // ...and, before the round that applies it, a snapshot through slot 5
    // arrives and is installed.
    feed(&mut node, at_ms(11), 1, &snapshot(5, 10));
    let round = node.begin_round(at_ms(12)).unwrap();
    assert!(!round.persist.is_empty());
    let output = node.finish_round(at_ms(12)).unwrap();
    assert!(output.applied.is_empty(), "slot 1 is inside the snapshot");
    assert_eq!(applied(&node), 5);
    assert_eq!(node.replica().commit_index(), Slot(5));
}

/// Runs rounds of a one-node cluster's node until nothing is left to do,
/// persisting into `log`.
fn settle(node: &mut Node, log: &mut synod_paxos::MemStorage, now: Instant) {
    use synod_paxos::Storage as _;
    for _ in 0..10 {
        let round = node.begin_round(now).unwrap();
        log.persist(&round.persist).unwrap();
        node.finish_round(now).unwrap();
        node.log_durable(now, round.seq);
    }
}

#[test]
fn a_log_of_large_slots_is_compacted_before_it_reaches_its_byte_bound() {
    let mut paxos = Config::new(NodeId(1), vec![NodeId(1)]);
    paxos.max_log_bytes = 1 << 20;
    let config = NodeConfig {
        paxos,
        // By slot count alone, nothing would be compacted in this test.
        compaction: CompactionPolicy {
            flush_every_slots: 1_000,
            every_slots: 10_000,
            keep_slots: 1_000,
        },
        sessions: SessionClockConfig::default(),
        first_anonymous_seq: 1,
        founding: Vec::new(),
    };
    let mut log = synod_paxos::MemStorage::new();
    let state_machine = StateMachine::in_memory().unwrap();
    let mut node = Node::new(config, DurableState::default(), state_machine, at_ms(0)).unwrap();
    node.campaign(at_ms(1));
    settle(&mut node, &mut log, at_ms(1));
    assert!(node.replica().is_leader());
    for i in 0..40u64 {
        let now = at_ms(10 + i);
        let write = Request::decode(put(&format!("big{i}"), 100_000).as_slice()).unwrap();
        node.write(now, write);
        settle(&mut node, &mut log, now);
    }
    assert_eq!(
        applied(&node),
        41,
        "every write applied (one slot each, and the no-op)"
    );
    assert!(
        node.replica().log_bytes() <= 1 << 20,
        "the log stays under its byte bound: {} bytes",
        node.replica().log_bytes()
    );
    assert!(node.status().compacted_through > Slot(0));
}

/// Runs rounds at `now` (the node's records count as persisted) and
/// returns the answers.
fn rounds(node: &mut Node, now: Instant, n: usize) -> Vec<Answer> {
    (0..n).flat_map(|_| round(node, now).answers).collect()
}

/// One round at `now`, its records taken as durable at once.
fn round(node: &mut Node, now: Instant) -> synod::node::RoundOutput {
    let round = node.begin_round(now).unwrap();
    let output = node.finish_round(now).unwrap();
    node.log_durable(now, round.seq);
    output
}

/// The answer to backup snapshot `id` among `answers`.
fn backup_answer(answers: Vec<Answer>, id: ReadId) -> Result<synod_kvstore::Snapshot, NodeError> {
    answers
        .into_iter()
        .find_map(|answer| match answer {
            Answer::Snapshot { id: got, answer } if got == id => Some(answer),
            _ => None,
        })
        .expect("the backup snapshot is answered")
}

/// The leader of a one-node cluster, elected, and the time (ms) it took.
fn one_node_leader() -> (Node, u64) {
    let config = NodeConfig {
        paxos: Config::new(NodeId(1), vec![NodeId(1)]),
        compaction: CompactionPolicy::default(),
        sessions: SessionClockConfig::default(),
        first_anonymous_seq: 1,
        founding: Vec::new(),
    };
    let mut leader = Node::new(
        config,
        DurableState::default(),
        StateMachine::in_memory().unwrap(),
        at_ms(0),
    )
    .unwrap();
    let mut now = 0;
    while leader.leading().is_none() {
        now += 10;
        assert!(now < 10_000, "a one-node cluster elects itself");
        leader.tick(at_ms(now));
        rounds(&mut leader, at_ms(now), 2);
    }
    (leader, now)
}

/// Proposes `request` at `leader`, a one-node cluster's, and runs a round a
/// millisecond until it is answered (`now` goes on meanwhile).
fn write_until_answered(
    leader: &mut Node,
    now: &mut u64,
    request: Request,
) -> Result<synod_kvstore::Response, NodeError> {
    let (client_id, seq) = leader.write(at_ms(*now), request);
    for _ in 0..10_000 {
        *now += 1;
        let answer = rounds(leader, at_ms(*now), 1)
            .into_iter()
            .find_map(|answer| match answer {
                Answer::Write {
                    client_id: c,
                    seq: s,
                    answer,
                } if (c, s) == (client_id, seq) => Some(answer),
                _ => None,
            });
        if let Some(answer) = answer {
            return answer;
        }
    }
    panic!("the write is answered");
}

/// Reads `request` linearizably at `leader` at `now`, and runs rounds at
/// `now` (no tick, so no clock moves) until it is answered.
fn read_at(
    leader: &mut Node,
    now: u64,
    request: Request,
) -> Result<synod_kvstore::Response, NodeError> {
    let id = leader.read(at_ms(now), request, ReadConsistency::Linearizable);
    for _ in 0..100 {
        let answer = rounds(leader, at_ms(now), 1)
            .into_iter()
            .find_map(|answer| match answer {
                Answer::Read { id: got, answer } if got == id => Some(answer),
                _ => None,
            });
        if let Some(answer) = answer {
            return answer;
        }
    }
    panic!("the read is answered");
}

#[test]
fn a_backup_snapshot_is_served_like_a_read_by_the_leader_with_every_acknowledged_write() {
    // A follower that knows no leader refuses a linearizable backup; a
    // serializable one is its applied state.
    let mut node = follower();
    let id = node.snapshot_for_backup(at_ms(1), ReadConsistency::Linearizable);
    let answer = backup_answer(rounds(&mut node, at_ms(1), 1), id);
    assert!(
        matches!(answer, Err(NodeError::NotLeader { .. })),
        "{answer:?}"
    );
    feed(&mut node, at_ms(2), 1, &snapshot(5, 10));
    let id = node.snapshot_for_backup(at_ms(3), ReadConsistency::Serializable);
    let snapshot = backup_answer(rounds(&mut node, at_ms(3), 1), id).unwrap();
    assert_eq!(snapshot.applied_index(), 5);

    // A one-node cluster's leader takes it after the writes it acknowledged.
    let (mut leader, mut now) = one_node_leader();
    let request = Request::decode(put("backed-up", 3).as_slice()).unwrap();
    write_until_answered(&mut leader, &mut now, request).unwrap();
    let id = leader.snapshot_for_backup(at_ms(now), ReadConsistency::Linearizable);
    let mut answers = Vec::new();
    for _ in 0..100 {
        now += 1;
        leader.tick(at_ms(now));
        answers.extend(rounds(&mut leader, at_ms(now), 1));
        if answers
            .iter()
            .any(|a| matches!(a, Answer::Snapshot { id: got, .. } if *got == id))
        {
            break;
        }
    }
    let snapshot = backup_answer(answers, id).unwrap();
    let mut copy = StateMachine::in_memory().unwrap();
    copy.install_snapshot(snapshot.map(Result::unwrap)).unwrap();
    let got = copy
        .read(&Op::Get(synod_kvstore::Get {
            key: b"backed-up".to_vec(),
        }))
        .unwrap();
    let value = match got.outcome {
        Some(synod_kvstore::Outcome::Get(get)) => get.kv.map(|kv| kv.value),
        other => panic!("a get answered {other:?}"),
    };
    assert_eq!(
        value,
        Some(vec![7; 3]),
        "the acknowledged write is in the snapshot"
    );
}

/// An acceptor's replies wait for the records they report, and a round
/// with nothing to persist waits behind an earlier round that has some:
/// the log reporting the first round durable releases both, in order.
#[test]
fn replies_wait_for_the_log_and_a_round_without_records_waits_behind_one_with() {
    let mut node = follower();
    let ballot = Ballot::new(1, NodeId(1));
    let from_leader = |message| Envelope {
        from: NodeId(1),
        to: NodeId(2),
        message,
    };
    node.step(
        at_ms(10),
        from_leader(Message::Accept {
            ballot,
            entries: vec![(Slot(1), Value::Commands(vec![put("k", 10)]))],
            commit: Slot(0),
            lazy: false,
        }),
    );
    let first = node.begin_round(at_ms(10)).unwrap();
    assert!(!first.persist.is_empty(), "the acceptance is recorded");
    assert!(first.send.is_empty(), "Accepted waits for the record");
    node.finish_round(at_ms(10)).unwrap();

    // Same ballot, nothing new to record, but its ack still reports the
    // promise the first round records.
    node.step(
        at_ms(11),
        from_leader(Message::Heartbeat {
            ballot,
            commit: Slot(0),
            round: 1,
        }),
    );
    let second = node.begin_round(at_ms(11)).unwrap();
    assert!(second.persist.is_empty());
    assert!(
        second.send.is_empty(),
        "the ack waits behind the first round"
    );
    node.finish_round(at_ms(11)).unwrap();
    assert_eq!(node.rounds_waiting(), 2);

    let released = node.log_durable(at_ms(12), first.seq);
    let kinds: Vec<&str> = released
        .iter()
        .map(|e| match e.message {
            Message::Accepted { .. } => "accepted",
            Message::HeartbeatAck { .. } => "heartbeat ack",
            _ => "other",
        })
        .collect();
    assert_eq!(kinds, ["accepted", "heartbeat ack"]);
    assert!(released.iter().all(|e| e.to == NodeId(1)));
    assert_eq!(node.rounds_waiting(), 0);

    // With nothing waiting, a round without records is durable at once.
    node.step(
        at_ms(13),
        from_leader(Message::Heartbeat {
            ballot,
            commit: Slot(0),
            round: 2,
        }),
    );
    let third = node.begin_round(at_ms(13)).unwrap();
    assert!(third.persist.is_empty());
    assert_eq!(third.send.len(), 1, "the ack goes at once");
    node.finish_round(at_ms(13)).unwrap();
    assert_eq!(node.rounds_waiting(), 0);
}

/// The leader's Accept of `slot` (one put of `key`), committing through `commit`.
fn accept(slot: u64, key: &str, commit: u64) -> Envelope {
    Envelope {
        from: NodeId(1),
        to: NodeId(2),
        message: Message::Accept {
            ballot: Ballot::new(1, NodeId(1)),
            entries: vec![(Slot(slot), Value::Commands(vec![put(key, 10)]))],
            commit: Slot(commit),
            lazy: false,
        },
    }
}

/// A follower that accepted slots 1 and 2 and learned at 11 ms that slot 1
/// is chosen.
fn follower_with_slot_1_committed() -> Node {
    let mut node = follower();
    node.step(at_ms(10), accept(1, "k1", 0));
    round(&mut node, at_ms(10));
    node.step(at_ms(11), accept(2, "k2", 1));
    round(&mut node, at_ms(11));
    assert_eq!(node.replica().commit_index(), Slot(1));
    node
}

#[test]
fn a_follower_applies_committed_slots_together_a_few_milliseconds_later() {
    let mut node = follower_with_slot_1_committed();
    assert_eq!(applied(&node), 0, "slot 1 waits for company");
    node.step(at_ms(12), accept(3, "k3", 2));
    let output = round(&mut node, at_ms(12));
    assert!(output.applied.is_empty());
    assert_eq!(applied(&node), 0);
    // 4 ms after slot 1 was committed here, a round (a tick's, say) applies
    // both slots in one transaction.
    let output = round(&mut node, at_ms(15));
    let slots: Vec<Slot> = output.applied.iter().map(|a| a.slot).collect();
    assert_eq!(slots, vec![Slot(1), Slot(2)]);
    assert_eq!(applied(&node), 2);
}

#[test]
fn a_follower_applies_what_it_gathered_before_it_stops() {
    let mut node = follower_with_slot_1_committed();
    assert_eq!(applied(&node), 0);
    node.flush(at_ms(11)).unwrap();
    assert_eq!(applied(&node), 1);
}

/// Rounds of every node at `now`, each durable at once, delivering the
/// messages `deliver` lets through until none is left; returns the answers
/// and the messages held back, in the order sent.
fn pump(
    nodes: &mut [Node],
    now: Instant,
    deliver: impl Fn(&Envelope) -> bool,
) -> (Vec<(usize, Answer)>, Vec<Envelope>) {
    let (mut answers, mut held) = (Vec::new(), Vec::new());
    for _ in 0..50 {
        let mut sent = Vec::new();
        for (i, node) in nodes.iter_mut().enumerate() {
            let round = node.begin_round(now).unwrap();
            sent.extend(round.send);
            let output = node.finish_round(now).unwrap();
            answers.extend(output.answers.into_iter().map(|a| (i, a)));
            sent.extend(node.log_durable(now, round.seq));
        }
        let (now_sent, later): (Vec<Envelope>, Vec<Envelope>) =
            sent.into_iter().partition(|e| deliver(e));
        held.extend(later);
        if now_sent.is_empty() {
            break;
        }
        for envelope in now_sent {
            let to = envelope.to.0 as usize - 1;
            nodes[to].step(now, envelope);
        }
    }
    (answers, held)
}

/// The answer node 1 gave to write (`client_id`, `seq`), if any.
fn answer_of(
    answers: Vec<(usize, Answer)>,
    client_id: u64,
    seq: u64,
) -> Option<Result<synod_kvstore::Response, NodeError>> {
    answers.into_iter().find_map(|(node, answer)| match answer {
        Answer::Write {
            client_id: c,
            seq: s,
            answer,
        } if node == 0 && (c, s) == (client_id, seq) => Some(answer),
        _ => None,
    })
}

#[test]
fn a_leader_that_steps_down_answers_its_committed_writes_with_their_outcome() {
    let mut nodes = [member(1), member(2), member(3)];
    let mut now = 0;
    while nodes[0].leading().is_none() {
        now += 10;
        assert!(now < 10_000, "node 1 is elected");
        nodes[0].tick(at_ms(now));
        pump(&mut nodes, at_ms(now), |_| true);
    }
    // Slot 1 is the new leader's no-op; node 1 proposes a write in slot 2,
    // nodes 2 and 3 accept it, and node 1 hears
    // nothing more (its clock stands still meanwhile: it still leads).
    let request = Request::decode(put("w", 3).as_slice()).unwrap();
    let (client_id, seq) = nodes[0].write(at_ms(now), request);
    let others = |e: &Envelope| e.to != NodeId(1) && e.from != NodeId(1);
    pump(&mut nodes, at_ms(now), |e| e.to != NodeId(1));
    // Node 2 takes over and chooses the write again.
    now += 2_000;
    let mut to_node_1: Vec<Envelope> = Vec::new();
    let says_chosen = |e: &Envelope| matches!(e.message, Message::Heartbeat { commit, .. } | Message::Accept { commit, .. } if commit >= Slot(2));
    while !to_node_1.iter().any(says_chosen) {
        now += 10;
        assert!(now < 20_000, "node 2 is elected and sends");
        nodes[1].tick(at_ms(now));
        let (_, held) = pump(&mut nodes, at_ms(now), others);
        to_node_1.extend(held.into_iter().filter(|e| e.to == NodeId(1)));
    }
    // Node 1 gets node 2's messages at once: the Accept that carries the
    // write and one that says it is chosen. In the one round that follows it
    // no longer leads, and the write is committed.
    for envelope in to_node_1 {
        nodes[0].step(at_ms(now), envelope);
    }
    assert_eq!(nodes[0].replica().commit_index(), Slot(2));
    assert_eq!(applied(&nodes[0]), 1, "slot 2 is for the next round");
    let (answers, _) = pump(&mut nodes, at_ms(now), |_| false);
    let answer = answer_of(answers, client_id, seq).expect("node 1 answers its write");
    assert!(answer.is_ok(), "the write was chosen: {answer:?}");
}

/// The Redis command `args`, as the endpoint sends it.
fn redis(args: &[&str]) -> Request {
    Request::anonymous(Op::Redis(RedisCommand {
        args: args.iter().map(|a| a.as_bytes().to_vec()).collect(),
        seed: 0,
    }))
}

/// The Redis reply of a read's answer.
fn reply(answer: Result<synod_kvstore::Response, NodeError>) -> ReplyKind {
    match answer.unwrap().outcome {
        Some(Outcome::Redis(reply)) => reply.kind.expect("a reply has a kind"),
        other => panic!("a Redis command answered {other:?}"),
    }
}

/// A leader's Redis-typed reads, like its GETs, never show a key whose
/// deadline passed on its clock, also in the moment before the key's
/// deletion applies: they go through the log behind it.
#[test]
fn a_redis_read_at_the_leader_never_shows_a_key_past_its_deadline() {
    let (mut leader, mut now) = one_node_leader();
    for args in [
        ["sadd", "s1", "m"],
        ["hset", "h2", "f"],
        ["hset", "kept", "f"],
    ] {
        write_until_answered(
            &mut leader,
            &mut now,
            redis(&[args[0], args[1], args[2], "v"]),
        )
        .unwrap();
    }
    let expire = |key: &str, ttl_ms| {
        Request::anonymous(Op::Expire(Expire {
            key: key.as_bytes().to_vec(),
            ttl_ms,
            condition: ExpireIf::Always as i32,
            expiry_revision: 0,
        }))
    };
    write_until_answered(&mut leader, &mut now, expire("s1", 100)).unwrap();
    write_until_answered(&mut leader, &mut now, expire("h2", 300)).unwrap();
    assert_eq!(
        reply(read_at(&mut leader, now, redis(&["exists", "s1", "h2"]))),
        ReplyKind::Integer(2),
        "before their deadlines the keys are there"
    );
    // Past a deadline, with the key's deletion not yet applied, reads miss
    // the key, whether they name it where `COMMAND` says (`EXISTS`) or not
    // (`SINTERCARD` counts its keys first).
    now += 200;
    assert_eq!(
        reply(read_at(&mut leader, now, redis(&["sintercard", "1", "s1"]))),
        ReplyKind::Integer(0)
    );
    now += 200;
    assert_eq!(
        reply(read_at(&mut leader, now, redis(&["exists", "kept", "h2"]))),
        ReplyKind::Integer(1)
    );
    assert_eq!(
        reply(read_at(&mut leader, now, redis(&["hget", "kept", "f"]))),
        ReplyKind::Bulk(b"v".to_vec()),
        "a key without a deadline is read as before"
    );
}

/// The records of rounds run a millisecond apart at `leader` (each taken
/// as durable at once) until `done` holds for a round's answers.
fn persisted_until(
    leader: &mut Node,
    now: &mut u64,
    done: impl Fn(&[Answer]) -> bool,
) -> Vec<synod_paxos::Record> {
    let mut records = Vec::new();
    for _ in 0..1_000 {
        *now += 1;
        let round = leader.begin_round(at_ms(*now)).unwrap();
        records.extend(round.persist);
        let output = leader.finish_round(at_ms(*now)).unwrap();
        leader.log_durable(at_ms(*now), round.seq);
        if done(&output.answers) {
            return records;
        }
    }
    panic!("the rounds never got there");
}

/// A leader's round that only learns its slot is chosen hands the log
/// nothing: the chosen record waits for the next record that must sync, a
/// few milliseconds, or the node stopping.
#[test]
fn chosen_records_wait_for_the_next_record_that_must_sync() {
    use synod_paxos::Record;
    let (mut leader, mut now) = one_node_leader();
    // The slots of `records` that are chosen (`true`) or accepted (`false`).
    let slots = |records: &[Record], chosen: bool| -> Vec<u64> {
        records
            .iter()
            .filter_map(|r| match (r, chosen) {
                (Record::Chosen { slot, .. }, true) | (Record::Accepted { slot, .. }, false) => {
                    Some(slot.0)
                }
                _ => None,
            })
            .collect()
    };
    let chosen_slots = |records: &[Record]| slots(records, true);
    let accepted_slots = |records: &[Record]| slots(records, false);
    // Let whatever the election left held go out first.
    now += 10;
    persisted_until(&mut leader, &mut now, |_| true);
    now += 10;
    persisted_until(&mut leader, &mut now, |_| true);

    let answered = |answers: &[Answer]| answers.iter().any(|a| matches!(a, Answer::Write { .. }));
    leader.write(at_ms(now), Request::decode(put("a", 3).as_slice()).unwrap());
    let first = persisted_until(&mut leader, &mut now, answered);
    let [slot_a] = accepted_slots(&first)[..] else {
        panic!("one slot accepted: {first:?}");
    };
    assert!(
        chosen_slots(&first).is_empty(),
        "the chosen record is held: {first:?}"
    );

    // The next write's records carry it, in front.
    leader.write(at_ms(now), Request::decode(put("b", 3).as_slice()).unwrap());
    let second = persisted_until(&mut leader, &mut now, answered);
    assert_eq!(chosen_slots(&second[..1]), [slot_a], "{second:?}");
    let [slot_b] = accepted_slots(&second)[..] else {
        panic!("one slot accepted: {second:?}");
    };

    // With no more writes, it goes on its own a few milliseconds later.
    let next = persisted_until(&mut leader, &mut now, |_| true);
    assert!(chosen_slots(&next).is_empty(), "still held: {next:?}");
    let mut waited = Vec::new();
    for _ in 0..10 {
        waited.extend(persisted_until(&mut leader, &mut now, |_| true));
        if !chosen_slots(&waited).is_empty() {
            break;
        }
    }
    assert_eq!(chosen_slots(&waited), [slot_b]);

    // A node that stops hands over what it holds at once.
    leader.write(at_ms(now), Request::decode(put("c", 3).as_slice()).unwrap());
    let third = persisted_until(&mut leader, &mut now, answered);
    let [slot_c] = accepted_slots(&third)[..] else {
        panic!("one slot accepted: {third:?}");
    };
    leader.stop_holding();
    let last = persisted_until(&mut leader, &mut now, |_| true);
    assert_eq!(chosen_slots(&last), [slot_c]);
}
