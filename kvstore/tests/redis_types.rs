//! The Redis data model in the state machine: semantics per type, a model-based property test of
//! each type against a plain in-memory model, and replicas agreeing after random command logs.

mod common;

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use common::*;
use prost::Message;
use synod_kvstore::{
    ExpireKeyEntry, ExpireKeys, Op, Outcome, RedisCommand, RedisReply, ReplyKind, Request,
    StateMachine,
};

fn command(args: &[&[u8]]) -> Op {
    Op::Redis(RedisCommand::new(
        args.iter().map(|a| a.to_vec()).collect(),
        7,
    ))
}

/// Apply one Redis command as its own slot; its reply, as a RESP2 client gets it.
fn run(h: &mut Harness, args: &[&[u8]]) -> RedisReply {
    match h.op(command(args)).outcome {
        Some(Outcome::Redis(reply)) => reply.into_resp2(),
        other => panic!("{args:?} answered {other:?}"),
    }
}

/// Serve a read-only Redis command outside the log; its reply, as a RESP2 client gets it.
fn read(h: &Harness, args: &[&[u8]]) -> RedisReply {
    match h.sm.read(&command(args)).unwrap().outcome {
        Some(Outcome::Redis(reply)) => reply.into_resp2(),
        other => panic!("{args:?} answered {other:?}"),
    }
}

fn int(n: i64) -> RedisReply {
    RedisReply::int(n)
}

fn bulks(items: &[&[u8]]) -> RedisReply {
    RedisReply::bulks(items.iter().map(|i| i.to_vec()))
}

fn is_wrongtype(reply: &RedisReply) -> bool {
    reply.as_error().is_some_and(|e| e.starts_with("WRONGTYPE"))
}

#[test]
fn a_hash_field_update_writes_only_that_field_and_keeps_the_others() {
    let mut h = Harness::new();
    assert_eq!(
        run(&mut h, &[b"hset", b"h", b"a", b"1", b"b", b"2"]),
        int(2)
    );
    assert_eq!(run(&mut h, &[b"hset", b"h", b"a", b"9"]), int(0));
    assert_eq!(run(&mut h, &[b"hincrby", b"h", b"b", b"5"]), int(7));
    assert_eq!(
        read(&h, &[b"hgetall", b"h"]),
        bulks(&[b"a", b"9", b"b", b"7"])
    );
    assert_eq!(read(&h, &[b"hlen", b"h"]), int(2));
    let kv = h.get(b"h").unwrap();
    assert_eq!(kv.kind, synod_kvstore::KIND_HASH);
    assert_eq!(kv.version, 3, "each command is one write of the key");
    assert_eq!(run(&mut h, &[b"hdel", b"h", b"a", b"b", b"zz"]), int(2));
    assert!(h.get(b"h").is_none(), "an emptied hash is deleted");
}

#[test]
fn every_type_refuses_commands_of_another_type_with_wrongtype_and_changes_nothing() {
    let mut h = Harness::new();
    run(&mut h, &[b"sadd", b"s", b"x"]);
    let revision = h.sm.revision();
    for args in [
        &[&b"hset"[..], b"s", b"f", b"v"][..],
        &[b"lpush", b"s", b"v"],
        &[b"zadd", b"s", b"1", b"m"],
        &[b"append", b"s", b"v"],
        &[b"incrbyfloat", b"s", b"1"],
    ] {
        assert!(is_wrongtype(&run(&mut h, args)), "{args:?}");
    }
    assert!(is_wrongtype(&read(&h, &[b"strlen", b"s"])));
    assert_eq!(
        h.sm.revision(),
        revision,
        "refused commands consume no revision"
    );
    assert_eq!(read(&h, &[b"smembers", b"s"]), bulks(&[b"x"]));
    assert_eq!(read(&h, &[b"type", b"s"]), RedisReply::status("set"));
}

/// The remaining TTL of `key` in ms (0: none), and whether it exists.
fn ttl(h: &Harness, key: &[u8]) -> (bool, u64) {
    match h
        .sm
        .read(&Op::Ttl(synod_kvstore::Ttl { key: key.to_vec() }))
        .unwrap()
        .outcome
    {
        Some(Outcome::Ttl(t)) => (t.exists, t.remaining_ms),
        other => panic!("ttl answered {other:?}"),
    }
}

#[test]
fn set_with_get_refuses_a_collection_and_otherwise_answers_the_old_string() {
    let mut h = Harness::new();
    run(&mut h, &[b"hset", b"h", b"f", b"v"]);
    let revision = h.sm.revision();
    for args in [
        &[&b"set"[..], b"h", b"x", b"GET"][..],
        &[b"set", b"h", b"x", b"NX", b"GET"],
        &[b"set", b"h", b"x", b"XX", b"GET", b"PX", b"100"],
        &[b"set", b"h", b"x", b"GET", b"EXPIRED"],
    ] {
        assert!(is_wrongtype(&run(&mut h, args)), "{args:?}");
    }
    assert_eq!(h.sm.revision(), revision, "nothing changed");
    assert_eq!(read(&h, &[b"hgetall", b"h"]), bulks(&[b"f", b"v"]));

    let nil = RedisReply::nil();
    assert_eq!(run(&mut h, &[b"set", b"s", b"1", b"GET"]), nil);
    assert_eq!(
        run(&mut h, &[b"set", b"s", b"2", b"GET", b"PX", b"5000"]),
        RedisReply::bulk(b"1".to_vec())
    );
    assert_eq!(ttl(&h, b"s"), (true, 5000));
    assert_eq!(
        run(&mut h, &[b"set", b"s", b"3", b"GET", b"KEEPTTL"]),
        RedisReply::bulk(b"2".to_vec())
    );
    assert_eq!(ttl(&h, b"s"), (true, 5000));
    assert_eq!(
        run(&mut h, &[b"set", b"s", b"4", b"NX", b"GET"]),
        RedisReply::bulk(b"3".to_vec())
    );
    assert_eq!(
        run(&mut h, &[b"set", b"s", b"5", b"xx", b"get"]),
        RedisReply::bulk(b"3".to_vec())
    );
    assert_eq!(
        ttl(&h, b"s"),
        (true, 0),
        "SET without KEEPTTL clears the TTL"
    );
    assert_eq!(run(&mut h, &[b"set", b"absent", b"v", b"XX", b"GET"]), nil);
    assert!(h.get(b"absent").is_none());
    assert_eq!(
        run(&mut h, &[b"set", b"s", b"6", b"GET", b"EXPIRED"]),
        RedisReply::bulk(b"5".to_vec())
    );
    assert!(h.get(b"s").is_none(), "a time already past deletes the key");
    // Without GET, a collection is overwritten, and NX/XX answer as Redis's SET.
    assert_eq!(run(&mut h, &[b"set", b"h", b"str", b"NX"]), nil);
    assert_eq!(
        run(&mut h, &[b"set", b"h", b"str", b"XX"]),
        RedisReply::ok()
    );
    assert_eq!(h.get(b"h").unwrap().value, b"str");
    for args in [
        &[&b"set"[..], b"k", b"v", b"NX", b"XX"][..],
        &[b"set", b"k", b"v", b"PX", b"0"],
        &[b"set", b"k", b"v", b"PX"],
        &[b"set", b"k", b"v", b"KEEPTTL", b"PX", b"5"],
        &[b"set", b"k", b"v", b"EX", b"5"],
    ] {
        assert!(run(&mut h, args).as_error().is_some(), "{args:?}");
    }
    assert!(h.get(b"k").is_none());
}

#[test]
fn del_expiry_and_flushdb_remove_a_collections_elements() {
    let mut h = Harness::new();
    run(&mut h, &[b"rpush", b"l", b"a", b"b"]);
    h.op(delete(b"l"));
    run(&mut h, &[b"rpush", b"l", b"c"]);
    assert_eq!(read(&h, &[b"lrange", b"l", b"0", b"-1"]), bulks(&[b"c"]));

    run(&mut h, &[b"zadd", b"z", b"1", b"m"]);
    let expire = h.op(synod_kvstore::Op::Expire(synod_kvstore::Expire {
        key: b"z".to_vec(),
        ttl_ms: 1000,
        condition: 0,
        expiry_revision: 0,
    }));
    assert!(!expire.is_error());
    let expiry_revision = h.sm.revision();
    h.op(Op::ExpireKeys(ExpireKeys {
        entries: vec![ExpireKeyEntry {
            key: b"z".to_vec(),
            expiry_revision,
        }],
    }));
    assert!(h.get(b"z").is_none());
    run(&mut h, &[b"zadd", b"z", b"2", b"n"]);
    assert_eq!(
        read(&h, &[b"zrange", b"z", b"0", b"-1", b"withscores"]),
        bulks(&[b"n", b"2"])
    );

    run(&mut h, &[b"flushdb", b"async"]);
    assert!(h.all().is_empty());
    // No element outlives its key: a new set at an old key starts empty.
    run(&mut h, &[b"sadd", b"probe", b"1"]);
    assert_eq!(read(&h, &[b"smembers", b"probe"]), bulks(&[b"1"]));
}

#[test]
fn rename_moves_a_collection_whole_and_copy_duplicates_it() {
    let mut h = Harness::new();
    run(&mut h, &[b"sadd", b"a", b"1", b"2", b"3"]);
    run(&mut h, &[b"getset", b"b", b"old"]);
    assert_eq!(run(&mut h, &[b"rename", b"a", b"b"]), RedisReply::ok());
    assert_eq!(read(&h, &[b"type", b"a"]), RedisReply::status("none"));
    assert_eq!(read(&h, &[b"smembers", b"b"]), bulks(&[b"1", b"2", b"3"]));
    assert_eq!(run(&mut h, &[b"copy", b"b", b"c"]), int(1));
    assert_eq!(run(&mut h, &[b"srem", b"b", b"1"]), int(1));
    assert_eq!(read(&h, &[b"smembers", b"c"]), bulks(&[b"1", b"2", b"3"]));
    assert_eq!(run(&mut h, &[b"renamenx", b"b", b"c"]), int(0));
    assert_eq!(
        run(&mut h, &[b"rename", b"nope", b"x"]).as_error(),
        Some("ERR no such key")
    );
}

#[test]
fn a_retried_spop_is_answered_from_the_dedup_table_and_pops_once() {
    let mut h = Harness::new();
    run(&mut h, &[b"sadd", b"s", b"a", b"b", b"c"]);
    let pop = Request::from_client(9, 1, command(&[b"spop", b"s"]));
    let first = h.apply(std::slice::from_ref(&pop)).remove(0);
    let retry = h.apply(&[pop]).remove(0);
    assert_eq!(first, retry);
    assert_eq!(read(&h, &[b"scard", b"s"]), int(2));
}

#[test]
fn a_huge_negative_random_pick_count_is_refused_before_any_pick() {
    let mut h = Harness::new();
    run(&mut h, &[b"hset", b"h", b"f", b"v"]);
    run(&mut h, &[b"sadd", b"s", b"m"]);
    run(&mut h, &[b"zadd", b"z", b"1", b"m"]);
    for args in [
        &[&b"hrandfield"[..], b"h", b"-9223372036854770000"][..],
        &[b"srandmember", b"s", b"-9223372036854770000"],
        &[b"zrandmember", b"z", b"-9223372036854770000"],
    ] {
        let reply = read(&h, args);
        assert!(
            reply.as_error().is_some_and(|e| e.contains("out of range")),
            "{args:?}: {reply:?}"
        );
    }
    let Some(ReplyKind::Array(picks)) = read(&h, &[b"srandmember", b"s", b"-5"]).kind else {
        panic!("no picks");
    };
    assert_eq!(picks.items.len(), 5);
}

#[test]
fn a_snapshot_carries_every_collection() {
    let mut h = Harness::new();
    run(&mut h, &[b"hset", b"h", b"f", b"v"]);
    run(&mut h, &[b"rpush", b"l", b"1", b"2"]);
    run(&mut h, &[b"zadd", b"z", b"1.5", b"m"]);
    let mut restored = StateMachine::in_memory().unwrap();
    restored
        .install_snapshot(h.sm.snapshot().unwrap().map(Result::unwrap))
        .unwrap();
    assert_eq!(restored.state_hash().unwrap(), h.sm.state_hash().unwrap());
    let r = Harness::with(restored);
    assert_eq!(
        read(&r, &[b"lrange", b"l", b"0", b"-1"]),
        bulks(&[b"1", b"2"])
    );
    assert_eq!(
        read(&r, &[b"zscore", b"z", b"m"]),
        RedisReply::bulk(b"1.5".to_vec())
    );
}

#[test]
fn strings_grow_and_are_read_bit_by_bit() {
    let mut h = Harness::new();
    assert_eq!(run(&mut h, &[b"setrange", b"k", b"2", b"ab"]), int(4));
    assert_eq!(
        read(&h, &[b"getrange", b"k", b"0", b"-1"]),
        RedisReply::bulk(b"\0\0ab".to_vec())
    );
    assert_eq!(run(&mut h, &[b"setbit", b"b", b"7", b"1"]), int(0));
    assert_eq!(read(&h, &[b"bitcount", b"b"]), int(1));
    assert_eq!(read(&h, &[b"bitpos", b"b", b"1"]), int(7));
    assert_eq!(run(&mut h, &[b"append", b"b", b"x"]), int(2));
    let too_far = (synod_wire::limits::MAX_VALUE_BYTES as u64 * 8).to_string();
    assert!(run(&mut h, &[b"setbit", b"b", too_far.as_bytes(), b"1"])
        .as_error()
        .unwrap()
        .contains("maximum allowed size"));
    assert_eq!(
        run(&mut h, &[b"getdel", b"b"]),
        RedisReply::bulk(b"\x01x".to_vec())
    );
    assert!(h.get(b"b").is_none());
}

/// The plain model of every type.
#[derive(Clone, Debug, PartialEq)]
enum Value {
    Str(Vec<u8>),
    Hash(BTreeMap<Vec<u8>, Vec<u8>>),
    Set(BTreeSet<Vec<u8>>),
    List(VecDeque<Vec<u8>>),
    Zset(BTreeMap<Vec<u8>, i64>),
}

fn wrongtype() -> RedisReply {
    RedisReply::coded_error("WRONGTYPE Operation against a key holding the wrong kind of value")
}

/// What the model answers to `args`, changing `db` as Redis would.
fn model(db: &mut BTreeMap<Vec<u8>, Value>, args: &[Vec<u8>]) -> RedisReply {
    let name = String::from_utf8(args[0].clone()).unwrap();
    let key = args[1].clone();
    let entry = db.get(&key).cloned();
    macro_rules! typed {
        ($variant:ident, $default:expr) => {
            match entry {
                None => $default,
                Some(Value::$variant(v)) => v,
                Some(_) => return wrongtype(),
            }
        };
    }
    let store = |db: &mut BTreeMap<Vec<u8>, Value>, value: Value| {
        let empty = match &value {
            Value::Hash(m) => m.is_empty(),
            Value::Set(s) => s.is_empty(),
            Value::List(l) => l.is_empty(),
            Value::Zset(z) => z.is_empty(),
            Value::Str(_) => false,
        };
        if empty {
            db.remove(&key);
        } else {
            db.insert(key.clone(), value);
        }
    };
    match name.as_str() {
        "del" => int(db.remove(&key).is_some() as i64),
        "type" => RedisReply::status(match entry {
            None => "none",
            Some(Value::Str(_)) => "string",
            Some(Value::Hash(_)) => "hash",
            Some(Value::Set(_)) => "set",
            Some(Value::List(_)) => "list",
            Some(Value::Zset(_)) => "zset",
        }),
        "append" => {
            let mut s = typed!(Str, Vec::new());
            s.extend_from_slice(&args[2]);
            let len = s.len();
            store(db, Value::Str(s));
            int(len as i64)
        }
        "hset" => {
            let mut m = typed!(Hash, BTreeMap::new());
            let new = m.insert(args[2].clone(), args[3].clone()).is_none();
            store(db, Value::Hash(m));
            int(new as i64)
        }
        "hdel" => {
            let mut m = typed!(Hash, BTreeMap::new());
            let gone = m.remove(&args[2]).is_some();
            store(db, Value::Hash(m));
            int(gone as i64)
        }
        "hgetall" => {
            let m = typed!(Hash, BTreeMap::new());
            RedisReply::bulks(m.into_iter().flat_map(|(k, v)| [k, v]))
        }
        "sadd" | "srem" => {
            let mut s = typed!(Set, BTreeSet::new());
            let changed = if name == "sadd" {
                s.insert(args[2].clone())
            } else {
                s.remove(&args[2])
            };
            store(db, Value::Set(s));
            int(changed as i64)
        }
        "smembers" => RedisReply::bulks(typed!(Set, BTreeSet::new())),
        "lpush" | "rpush" => {
            let mut l = typed!(List, VecDeque::new());
            if name == "lpush" {
                l.push_front(args[2].clone());
            } else {
                l.push_back(args[2].clone());
            }
            let len = l.len();
            store(db, Value::List(l));
            int(len as i64)
        }
        "lpop" | "rpop" => {
            let mut l = typed!(List, VecDeque::new());
            let popped = if name == "lpop" {
                l.pop_front()
            } else {
                l.pop_back()
            };
            store(db, Value::List(l));
            popped.map_or_else(RedisReply::nil, RedisReply::bulk)
        }
        "lrem" => {
            let mut l = typed!(List, VecDeque::new());
            let before = l.len();
            l.retain(|v| *v != args[3]);
            let removed = before - l.len();
            store(db, Value::List(l));
            int(removed as i64)
        }
        "lrange" => RedisReply::bulks(typed!(List, VecDeque::new())),
        "zadd" => {
            let mut z = typed!(Zset, BTreeMap::new());
            let score: i64 = std::str::from_utf8(&args[2]).unwrap().parse().unwrap();
            let new = z.insert(args[3].clone(), score).is_none();
            store(db, Value::Zset(z));
            int(new as i64)
        }
        "zrem" => {
            let mut z = typed!(Zset, BTreeMap::new());
            let gone = z.remove(&args[2]).is_some();
            store(db, Value::Zset(z));
            int(gone as i64)
        }
        "zrange" => {
            let z = typed!(Zset, BTreeMap::new());
            let mut pairs: Vec<(Vec<u8>, i64)> = z.into_iter().collect();
            pairs.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
            RedisReply::bulks(
                pairs
                    .into_iter()
                    .flat_map(|(m, s)| [m, s.to_string().into_bytes()]),
            )
        }
        other => panic!("the model has no {other}"),
    }
}

/// A random command over a few keys, members and values, in the model's vocabulary.
fn random_command(rng: &mut Rng) -> Vec<Vec<u8>> {
    let keys: [&[u8]; 3] = [b"k1", b"k2", b"k3"];
    let key = rng.pick(&keys[..]).to_vec();
    let members: [&[u8]; 4] = [b"a", b"b", b"c", b"d"];
    let member = rng.pick(&members[..]).to_vec();
    let score = (rng.below(7) as i64 - 3).to_string().into_bytes();
    let names: [&[u8]; 18] = [
        b"del",
        b"type",
        b"append",
        b"hset",
        b"hdel",
        b"hgetall",
        b"sadd",
        b"srem",
        b"smembers",
        b"lpush",
        b"rpush",
        b"lpop",
        b"rpop",
        b"lrem",
        b"lrange",
        b"zadd",
        b"zrem",
        b"zrange",
    ];
    let name = names[rng.below(names.len() as u64) as usize];
    let args: Vec<Vec<u8>> = match name {
        b"del" | b"type" | b"hgetall" | b"smembers" | b"lpop" | b"rpop" => vec![],
        b"hset" => vec![member, score],
        b"lrem" => vec![b"0".to_vec(), member],
        b"lrange" => vec![b"0".to_vec(), b"-1".to_vec()],
        b"zadd" => vec![score, member],
        b"zrange" => vec![b"0".to_vec(), b"-1".to_vec(), b"withscores".to_vec()],
        _ => vec![member],
    };
    [vec![name.to_vec(), key], args].concat()
}

fn sm_op(args: &[Vec<u8>]) -> Op {
    if args[0] == b"del" {
        return delete(&args[1]);
    }
    Op::Redis(RedisCommand::new(args.to_vec(), 3))
}

#[test]
fn every_type_agrees_with_a_plain_model_over_random_commands() {
    for seed in 0..24u64 {
        let mut rng = Rng(seed);
        let mut h = Harness::new();
        let mut db = BTreeMap::new();
        for step in 0..300 {
            let args = random_command(&mut rng);
            let expected = model(&mut db, &args);
            let response = h.op(sm_op(&args));
            let got = match response.outcome {
                Some(Outcome::Redis(reply)) => reply.into_resp2(),
                Some(Outcome::Delete(d)) => int(d.deleted as i64),
                other => panic!("seed {seed} step {step}: {other:?}"),
            };
            assert_eq!(got, expected, "seed {seed} step {step}: {args:?}");
        }
        let keys: Vec<Vec<u8>> = h.all().into_iter().map(|kv| kv.key).collect();
        assert_eq!(keys, db.keys().cloned().collect::<Vec<_>>(), "seed {seed}");
    }
}

#[test]
fn replicas_applying_the_same_random_redis_log_agree_and_a_snapshot_restores_the_same_state() {
    for seed in 0..8u64 {
        let mut rng = Rng(1000 + seed);
        let mut a = Harness::new();
        let mut b = Harness::new();
        for slot in 1..=120u64 {
            let mut batch = Vec::new();
            for _ in 0..=rng.below(4) {
                let mut args = random_command(&mut rng);
                if rng.one_in(6) {
                    args = vec![b"spop".to_vec(), args[1].clone()];
                } else if rng.one_in(8) {
                    args = vec![b"rename".to_vec(), args[1].clone(), b"k1".to_vec()];
                }
                let mut request = Request::anonymous(sm_op(&args));
                if let Some(Op::Redis(c)) = request.op.as_mut() {
                    c.seed = rng.next_u64();
                }
                batch.push(request.encode_to_vec());
            }
            let ra = a.apply_raw(&batch);
            let rb = b.apply_raw(&batch);
            assert_eq!(ra, rb, "seed {seed} slot {slot}");
            assert_eq!(
                a.sm.state_hash().unwrap(),
                b.sm.state_hash().unwrap(),
                "seed {seed} slot {slot}"
            );
        }
        let mut restored = StateMachine::in_memory().unwrap();
        restored
            .install_snapshot(a.sm.snapshot().unwrap().map(Result::unwrap))
            .unwrap();
        assert_eq!(restored.state_hash().unwrap(), a.sm.state_hash().unwrap());
        // Every header's length is the number of elements its collection holds.
        for kv in a.all() {
            let (count, all): (&[u8], Vec<&[u8]>) = match kv.kind {
                synod_kvstore::KIND_HASH => (b"hlen", vec![b"hgetall", &kv.key]),
                synod_kvstore::KIND_SET => (b"scard", vec![b"smembers", &kv.key]),
                synod_kvstore::KIND_LIST => (b"llen", vec![b"lrange", &kv.key, b"0", b"-1"]),
                synod_kvstore::KIND_ZSET => (b"zcard", vec![b"zrange", &kv.key, b"0", b"-1"]),
                _ => continue,
            };
            let Some(ReplyKind::Integer(n)) = read(&a, &[count, &kv.key]).kind else {
                panic!("seed {seed}: no count");
            };
            let Some(ReplyKind::Array(items)) = read(&a, &all).kind else {
                panic!("seed {seed}: no items");
            };
            let per_element = if kv.kind == synod_kvstore::KIND_HASH {
                2
            } else {
                1
            };
            assert_eq!(items.items.len() as i64, n * per_element, "seed {seed}");
            assert!(n > 0, "seed {seed}: an empty collection was kept");
        }
    }
}

#[test]
fn intercard_and_hincrbyfloat_refuse_bad_arguments_with_redis_texts() {
    let mut h = Harness::new();
    run(&mut h, &[b"sadd", b"s", b"a"]);
    let error = |reply: RedisReply| reply.as_error().unwrap_or_default().to_owned();
    for name in [&b"sintercard"[..], b"zintercard"] {
        for args in [
            &[name, b"1", b"s", b"LIMIT", b"-1"][..],
            &[name, b"1", b"s", b"LIMIT", b"a"],
        ] {
            assert_eq!(error(read(&h, args)), "ERR LIMIT can't be negative");
        }
    }
    for numkeys in [&b"0"[..], b"a", b"-1"] {
        assert_eq!(
            error(read(&h, &[b"sintercard", numkeys, b"s"])),
            "ERR numkeys should be greater than 0"
        );
    }
    for increment in [&b"+inf"[..], b"-inf", b"inf"] {
        assert_eq!(
            error(run(&mut h, &[b"hincrbyfloat", b"h", b"f", increment])),
            "ERR value is NaN or Infinity"
        );
    }
    assert!(h.get(b"h").is_none(), "a refused increment creates nothing");
    run(&mut h, &[b"hset", b"h", b"f", b"1.7976931348623157e308"]);
    assert_eq!(
        error(run(
            &mut h,
            &[b"hincrbyfloat", b"h", b"f", b"1.7976931348623157e308"]
        )),
        "ERR increment would produce NaN or Infinity"
    );
}

#[test]
fn replies_carry_resp3_types_that_flatten_to_what_resp2_clients_get() {
    let mut h = Harness::new();
    let typed = |h: &Harness, args: &[&[u8]]| match h.sm.read(&command(args)).unwrap().outcome {
        Some(Outcome::Redis(reply)) => reply,
        other => panic!("{args:?} answered {other:?}"),
    };
    run(&mut h, &[b"zadd", b"z", b"1", b"a", b"2.5", b"b"]);
    run(&mut h, &[b"hset", b"h", b"f", b"v"]);
    run(&mut h, &[b"sadd", b"s", b"m"]);
    let bulk = |b: &[u8]| RedisReply::bulk(b.to_vec());
    assert_eq!(typed(&h, &[b"zscore", b"z", b"b"]), RedisReply::double(2.5));
    assert_eq!(
        typed(&h, &[b"zrange", b"z", b"0", b"-1", b"withscores"]),
        RedisReply::pairs(vec![
            bulk(b"a"),
            RedisReply::double(1.0),
            bulk(b"b"),
            RedisReply::double(2.5)
        ])
    );
    assert_eq!(
        typed(&h, &[b"zrange", b"z", b"0", b"0"]),
        bulks(&[b"a"]),
        "without scores, a plain array"
    );
    assert_eq!(
        typed(&h, &[b"hgetall", b"h"]),
        RedisReply::map(vec![bulk(b"f"), bulk(b"v")])
    );
    assert_eq!(typed(&h, &[b"hgetall", b"nope"]), RedisReply::map(vec![]));
    assert_eq!(typed(&h, &[b"hkeys", b"h"]), bulks(&[b"f"]));
    assert_eq!(
        typed(&h, &[b"smembers", b"s"]),
        RedisReply::set(vec![bulk(b"m")])
    );
    assert_eq!(
        typed(&h, &[b"sunion", b"s", b"nope"]),
        RedisReply::set(vec![bulk(b"m")])
    );
    // RESP2 sees bulk strings and flat arrays.
    assert_eq!(read(&h, &[b"zscore", b"z", b"b"]), bulk(b"2.5"));
    assert_eq!(
        read(&h, &[b"zrange", b"z", b"0", b"-1", b"withscores"]),
        bulks(&[b"a", b"1", b"b", b"2.5"])
    );
    assert_eq!(read(&h, &[b"hgetall", b"h"]), bulks(&[b"f", b"v"]));
    // ZPOPMIN without a count answers one flat pair; with one, pairs.
    let popped = match h.op(command(&[b"zpopmin", b"z"])).outcome {
        Some(Outcome::Redis(reply)) => reply,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        popped,
        RedisReply::array(vec![bulk(b"a"), RedisReply::double(1.0)])
    );
    let popped = match h.op(command(&[b"zpopmax", b"z", b"1"])).outcome {
        Some(Outcome::Redis(reply)) => reply,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        popped,
        RedisReply::pairs(vec![bulk(b"b"), RedisReply::double(2.5)])
    );
}

#[test]
fn lpop_and_rpop_with_two_counts_answer_a_wrong_arity_and_pop_nothing() {
    let mut h = Harness::new();
    run(&mut h, &[b"rpush", b"l", b"a", b"b"]);
    for name in [&b"lpop"[..], b"rpop"] {
        let reply = run(&mut h, &[name, b"l", b"1", b"1"]);
        let expected = format!(
            "ERR wrong number of arguments for '{}' command",
            String::from_utf8_lossy(name)
        );
        assert_eq!(reply.as_error(), Some(expected.as_str()));
    }
    assert_eq!(read(&h, &[b"llen", b"l"]), int(2));
}

#[test]
fn sorted_set_pops_and_intercard_check_their_counts_first_with_redis_texts() {
    let mut h = Harness::new();
    run(&mut h, &[b"set", b"str", b"foo"]);
    let error = |reply: RedisReply| reply.as_error().unwrap_or_default().to_owned();
    for name in [&b"zpopmin"[..], b"zpopmax"] {
        assert_eq!(
            error(run(&mut h, &[name, b"str", b"-1"])),
            "ERR value is out of range, must be positive",
            "the count is checked before the type"
        );
    }
    for numkeys in [&b"0"[..], b"a", b"-1"] {
        assert_eq!(
            error(run(&mut h, &[b"zmpop", numkeys, b"z", b"MIN"])),
            "ERR numkeys should be greater than 0"
        );
    }
    assert_eq!(
        error(read(&h, &[b"zintercard", b"0", b"z"])),
        "ERR at least 1 input key is needed for 'zintercard' command"
    );
    assert_eq!(h.get(b"str").unwrap().value, b"foo");
}

/// Apply a `MULTI` block of `commands`, watching `watched`, as one slot; its reply.
fn run_block(h: &mut Harness, commands: &[&[&[u8]]], watched: &[(&[u8], u64)]) -> RedisReply {
    let multi = synod_kvstore::RedisMulti {
        commands: commands
            .iter()
            .enumerate()
            .map(|(i, args)| RedisCommand::new(args.iter().map(|a| a.to_vec()).collect(), i as u64))
            .collect(),
        watched: watched
            .iter()
            .map(|(key, mod_revision)| synod_kvstore::WatchedKey {
                key: key.to_vec(),
                mod_revision: *mod_revision,
                expiry_revision: 0,
            })
            .collect(),
    };
    match h.op(Op::RedisMulti(multi)).outcome {
        Some(Outcome::Redis(reply)) => reply.into_resp2(),
        other => panic!("the block answered {other:?}"),
    }
}

#[test]
fn a_multi_block_runs_every_command_at_one_revision_and_answers_each() {
    let mut h = Harness::new();
    let before = h.sm.revision();
    let reply = run_block(
        &mut h,
        &[
            &[b"set", b"k", b"1"],
            &[b"incrby", b"k", b"5"],
            &[b"lpush", b"k", b"x"],
            &[b"mset", b"a", b"1", b"b", b"2"],
            &[b"mget", b"a", b"b", b"zz"],
            &[b"del", b"a", b"zz"],
            &[b"exists", b"a", b"b", b"k"],
        ],
        &[],
    );
    let Some(ReplyKind::Array(items)) = reply.kind else {
        panic!("an array reply: {reply:?}");
    };
    let items = items.items;
    assert_eq!(items[0], RedisReply::ok());
    assert_eq!(items[1], int(6));
    assert!(is_wrongtype(&items[2]), "{:?}", items[2]);
    assert_eq!(items[3], RedisReply::ok());
    assert_eq!(
        items[4],
        RedisReply::array(vec![
            RedisReply::bulk(b"1".to_vec()),
            RedisReply::bulk(b"2".to_vec()),
            RedisReply::nil()
        ])
    );
    assert_eq!(items[5], int(1));
    assert_eq!(items[6], int(2));
    assert_eq!(
        h.sm.revision(),
        before + 1,
        "one revision for the whole block"
    );
}

#[test]
fn a_multi_block_whose_watched_key_changed_runs_nothing() {
    let mut h = Harness::new();
    run(&mut h, &[b"set", b"w", b"1"]);
    let watched_at = h.sm.revision();
    run(&mut h, &[b"set", b"w", b"2"]);
    let reply = run_block(&mut h, &[&[b"set", b"other", b"x"]], &[(b"w", watched_at)]);
    assert_eq!(reply, RedisReply::nil_array());
    assert_eq!(read(&h, &[b"exists", b"other"]), int(0));
    // Watched at its current revision (and an absent key at 0): the block runs.
    let now = h.sm.revision();
    let reply = run_block(
        &mut h,
        &[&[b"set", b"other", b"x"]],
        &[(b"w", now), (b"absent", 0)],
    );
    assert_eq!(reply, RedisReply::array(vec![RedisReply::ok()]));
    // A new expiry counts as a change.
    let now = h.sm.revision();
    run(&mut h, &[b"pexpire", b"w", b"100000"]);
    let reply = run_block(&mut h, &[&[b"set", b"other", b"y"]], &[(b"w", now)]);
    assert_eq!(reply, RedisReply::nil_array());
}

#[test]
fn collections_created_by_one_block_get_distinct_ids() {
    let mut h = Harness::new();
    let sets: Vec<Vec<u8>> = (0..100).map(|i| format!("s{i}").into_bytes()).collect();
    let commands: Vec<Vec<&[u8]>> = sets
        .iter()
        .map(|key| vec![&b"sadd"[..], key.as_slice(), b"m"])
        .collect();
    let commands: Vec<&[&[u8]]> = commands.iter().map(Vec::as_slice).collect();
    run_block(&mut h, &commands, &[]);
    // Deleting one set leaves every other set whole.
    run(&mut h, &[b"del", b"s0"]);
    for key in &sets[1..] {
        assert_eq!(read(&h, &[b"smembers", key]), bulks(&[b"m"]), "{key:?}");
    }
}
