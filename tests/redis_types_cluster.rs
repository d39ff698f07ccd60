//! Hashes, sets, lists and sorted sets on a real 3-node cluster (in-process
//! nodes talking QUIC, clients on TCP): each type written through one node
//! and read through the others (followers forward to the leader, and reads
//! are linearizable, so a write is visible through any node as soon as it
//! is acknowledged), `WRONGTYPE` across types, and `DEL`, `EXPIRE` and
//! `RENAME` of a collection. The semantics of each command are in the state
//! machine's tests (`kvstore/tests/redis_types.rs`).

mod quic_cluster;

use std::sync::OnceLock;
use std::time::Duration;

use quic_cluster::{bulk, int, nil, ok, Client, Cluster, Value};

/// One 3-node cluster shared by the tests of this file; each test uses
/// keys under its own prefix.
fn cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(|| Cluster::start("types", 3, None))
}

/// Clients of nodes 2 and 3, and of a node that does not lead.
fn clients() -> (Client, Client, Client) {
    let cluster = cluster();
    (
        cluster.client(2),
        cluster.client(3),
        cluster.client(cluster.follower()),
    )
}

fn strings(values: &[&str]) -> Value {
    Value::Array(Some(values.iter().map(|v| bulk(v)).collect()))
}

/// The items of an array reply as text, sorted (for unordered replies).
fn sorted(reply: &Value) -> Vec<String> {
    let mut items: Vec<String> = reply.items().iter().map(Value::text).collect();
    items.sort();
    items
}

fn is_wrongtype(reply: &Value) -> bool {
    matches!(reply, Value::Error(e) if e.starts_with("WRONGTYPE"))
}

#[test]
fn a_hash_written_through_one_node_reads_the_same_through_the_others() {
    let (mut n2, mut n3, mut follower) = clients();
    assert_eq!(n2.cmd("HSET types:h f1 a f2 b f3 c"), int(3));
    assert_eq!(n3.cmd("HSET types:h f2 B"), int(0));
    assert_eq!(n3.cmd("HINCRBY types:h n 5"), int(5));
    assert_eq!(n2.cmd("HDEL types:h f3"), int(1));
    for c in [&mut n2, &mut n3, &mut follower] {
        assert_eq!(c.cmd("HGET types:h f2"), bulk("B"));
        assert_eq!(c.cmd("HLEN types:h"), int(3));
        assert_eq!(
            c.cmd("HMGET types:h f1 f3 n"),
            Value::Array(Some(vec![bulk("a"), nil(), bulk("5")]))
        );
        assert_eq!(sorted(&c.cmd("HKEYS types:h")), ["f1", "f2", "n"]);
        assert_eq!(c.cmd("HEXISTS types:h f3"), int(0));
        assert_eq!(c.cmd("TYPE types:h"), Value::Simple("hash".into()));
    }
}

#[test]
fn a_set_written_through_one_node_reads_the_same_through_the_others() {
    let (mut n2, mut n3, mut follower) = clients();
    assert_eq!(n2.cmd("SADD types:s a b c d"), int(4));
    assert_eq!(n3.cmd("SREM types:s d nope"), int(1));
    assert_eq!(n3.cmd("SADD types:s2 b c e"), int(3));
    assert_eq!(n2.cmd("SINTERSTORE types:s3 types:s types:s2"), int(2));
    for c in [&mut n2, &mut n3, &mut follower] {
        assert_eq!(sorted(&c.cmd("SMEMBERS types:s")), ["a", "b", "c"]);
        assert_eq!(c.cmd("SCARD types:s"), int(3));
        assert_eq!(c.cmd("SISMEMBER types:s d"), int(0));
        assert_eq!(sorted(&c.cmd("SMEMBERS types:s3")), ["b", "c"]);
        assert_eq!(
            sorted(&c.cmd("SUNION types:s types:s2")),
            ["a", "b", "c", "e"]
        );
        assert_eq!(c.cmd("TYPE types:s"), Value::Simple("set".into()));
    }
}

#[test]
fn a_list_written_through_one_node_reads_the_same_through_the_others() {
    let (mut n2, mut n3, mut follower) = clients();
    assert_eq!(n2.cmd("RPUSH types:l b c d"), int(3));
    assert_eq!(n3.cmd("LPUSH types:l a"), int(4));
    assert_eq!(n2.cmd("LSET types:l 2 C"), ok());
    assert_eq!(n3.cmd("RPOP types:l"), bulk("d"));
    assert_eq!(n2.cmd("LINSERT types:l BEFORE C x"), int(4));
    for c in [&mut n2, &mut n3, &mut follower] {
        assert_eq!(c.cmd("LRANGE types:l 0 -1"), strings(&["a", "b", "x", "C"]));
        assert_eq!(c.cmd("LLEN types:l"), int(4));
        assert_eq!(c.cmd("LINDEX types:l -1"), bulk("C"));
        assert_eq!(c.cmd("LPOS types:l x"), int(2));
        assert_eq!(c.cmd("TYPE types:l"), Value::Simple("list".into()));
    }
    // A blocking pop through one node is served by a push through another.
    let port = cluster().redis_ports[2];
    let waiter = std::thread::spawn(move || Client::connect(port).cmd("BLPOP types:empty 0"));
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(n2.cmd("RPUSH types:empty woken"), int(1));
    assert_eq!(waiter.join().unwrap(), strings(&["types:empty", "woken"]));
    assert_eq!(follower.cmd("EXISTS types:empty"), int(0));
}

#[test]
fn a_sorted_set_written_through_one_node_reads_the_same_through_the_others() {
    let (mut n2, mut n3, mut follower) = clients();
    assert_eq!(n2.cmd("ZADD types:z 1 a 2 b 3 c"), int(3));
    assert_eq!(n3.cmd("ZINCRBY types:z 10 a"), bulk("11"));
    assert_eq!(n2.cmd("ZREM types:z b"), int(1));
    assert_eq!(n3.cmd("ZADD types:z 2.5 d"), int(1));
    for c in [&mut n2, &mut n3, &mut follower] {
        assert_eq!(
            c.cmd("ZRANGE types:z 0 -1 WITHSCORES"),
            strings(&["d", "2.5", "c", "3", "a", "11"])
        );
        assert_eq!(c.cmd("ZSCORE types:z a"), bulk("11"));
        assert_eq!(c.cmd("ZRANK types:z a"), int(2));
        assert_eq!(c.cmd("ZCOUNT types:z 3 +inf"), int(2));
        assert_eq!(c.cmd("ZRANGEBYSCORE types:z (2.5 11"), strings(&["c", "a"]));
        assert_eq!(c.cmd("TYPE types:z"), Value::Simple("zset".into()));
    }
}

#[test]
fn every_type_answers_wrongtype_to_another_types_command_and_keeps_its_data() {
    let (mut n2, mut n3, mut follower) = clients();
    assert_eq!(n2.cmd("SET types:w:string v"), ok());
    assert_eq!(n2.cmd("HSET types:w:hash f v"), int(1));
    assert_eq!(n2.cmd("SADD types:w:set m"), int(1));
    assert_eq!(n2.cmd("RPUSH types:w:list e"), int(1));
    assert_eq!(n2.cmd("ZADD types:w:zset 1 m"), int(1));
    let commands: [(&str, &str); 5] = [
        ("string", "GET types:w:{}"),
        ("hash", "HSET types:w:{} f2 v"),
        ("set", "SADD types:w:{} m2"),
        ("list", "RPUSH types:w:{} e2"),
        ("zset", "ZADD types:w:{} 2 m2"),
    ];
    for (own, _) in commands {
        for (other, command) in commands {
            if own == other {
                continue;
            }
            let line = command.replace("{}", own);
            for c in [&mut n3, &mut follower] {
                assert!(is_wrongtype(&c.cmd(&line)), "{line} on a {own}");
            }
        }
    }
    assert!(is_wrongtype(&n3.cmd("APPEND types:w:list x")));
    assert!(is_wrongtype(&n3.cmd("INCR types:w:hash")));
    assert!(is_wrongtype(&n3.cmd("LPOP types:w:zset")));
    assert!(is_wrongtype(
        &n3.cmd("SUNIONSTORE types:w:out types:w:set types:w:hash")
    ));
    assert_eq!(n3.cmd("EXISTS types:w:out"), int(0));
    // Nothing changed.
    assert_eq!(follower.cmd("GET types:w:string"), bulk("v"));
    assert_eq!(follower.cmd("HGETALL types:w:hash"), strings(&["f", "v"]));
    assert_eq!(follower.cmd("SMEMBERS types:w:set"), strings(&["m"]));
    assert_eq!(follower.cmd("LRANGE types:w:list 0 -1"), strings(&["e"]));
    assert_eq!(follower.cmd("ZRANGE types:w:zset 0 -1"), strings(&["m"]));
}

#[test]
fn set_with_get_on_a_collection_answers_wrongtype_and_changes_nothing() {
    let (mut n2, mut n3, mut follower) = clients();
    assert_eq!(n2.cmd("HSET types:sg:h f v"), int(1));
    assert_eq!(n2.cmd("RPUSH types:sg:l a b"), int(2));
    for line in [
        "SET types:sg:h x GET",
        "SET types:sg:h x XX GET",
        "SET types:sg:h x NX GET",
        "SET types:sg:h x GET EX 100",
        "SET types:sg:h x GET KEEPTTL",
        "SET types:sg:h x GET PXAT 1",
        "SET types:sg:l x GET",
    ] {
        assert!(is_wrongtype(&n3.cmd(line)), "{line}");
    }
    assert_eq!(follower.cmd("HGETALL types:sg:h"), strings(&["f", "v"]));
    assert_eq!(follower.cmd("TTL types:sg:h"), int(-1));
    assert_eq!(follower.cmd("LRANGE types:sg:l 0 -1"), strings(&["a", "b"]));
    // On a string or an absent key, SET .. GET answers the old value with
    // each option, as Redis does; without GET a collection is overwritten.
    assert_eq!(n3.cmd("SET types:sg:s v1 GET"), nil());
    assert_eq!(n3.cmd("SET types:sg:s v2 GET EX 100"), bulk("v1"));
    assert!(follower.cmd("TTL types:sg:s").int().unwrap() > 0);
    assert_eq!(n3.cmd("SET types:sg:s v3 GET KEEPTTL"), bulk("v2"));
    assert!(follower.cmd("TTL types:sg:s").int().unwrap() > 0);
    assert_eq!(n3.cmd("SET types:sg:s v4 NX GET"), bulk("v3"));
    assert_eq!(n3.cmd("SET types:sg:s v5 XX GET"), bulk("v3"));
    assert_eq!(follower.cmd("TTL types:sg:s"), int(-1));
    assert_eq!(n3.cmd("SET types:sg:absent v XX GET"), nil());
    assert_eq!(follower.cmd("EXISTS types:sg:absent"), int(0));
    assert_eq!(n3.cmd("SET types:sg:s v6 GET PXAT 1"), bulk("v5"));
    assert_eq!(follower.cmd("EXISTS types:sg:s"), int(0));
    assert_eq!(n2.cmd("SET types:sg:l now-a-string"), ok());
    assert_eq!(follower.cmd("GET types:sg:l"), bulk("now-a-string"));
}

#[test]
fn del_expire_and_rename_of_a_collection_take_its_elements_along() {
    let (mut n2, mut n3, mut follower) = clients();
    // DEL removes the elements: a new collection of the name starts empty.
    assert_eq!(n2.cmd("SADD types:d:s a b c"), int(3));
    assert_eq!(n3.cmd("DEL types:d:s"), int(1));
    assert_eq!(follower.cmd("SCARD types:d:s"), int(0));
    assert_eq!(n2.cmd("SADD types:d:s z"), int(1));
    assert_eq!(follower.cmd("SMEMBERS types:d:s"), strings(&["z"]));
    // RENAME moves a collection whole and keeps its TTL.
    assert_eq!(n2.cmd("ZADD types:d:z 1 a 2 b"), int(2));
    assert_eq!(n3.cmd("EXPIRE types:d:z 1000"), int(1));
    assert_eq!(n3.cmd("RENAME types:d:z types:d:z2"), ok());
    assert_eq!(follower.cmd("EXISTS types:d:z"), int(0));
    assert_eq!(follower.cmd("ZRANGE types:d:z2 0 -1"), strings(&["a", "b"]));
    assert!(follower.cmd("TTL types:d:z2").int().unwrap() > 0);
    // RENAME over a key of another type replaces it.
    assert_eq!(n2.cmd("RPUSH types:d:l x y"), int(2));
    assert_eq!(n3.cmd("RENAME types:d:z2 types:d:l"), ok());
    assert_eq!(follower.cmd("TYPE types:d:l"), Value::Simple("zset".into()));
    assert!(is_wrongtype(&follower.cmd("LRANGE types:d:l 0 -1")));
    // EXPIRE: the collection and its elements go when the TTL passes.
    assert_eq!(n2.cmd("HSET types:d:h f v g w"), int(2));
    assert_eq!(n3.cmd("PEXPIRE types:d:h 200"), int(1));
    assert!(follower.cmd("PTTL types:d:h").int().unwrap() > 0);
    let mut gone = false;
    for _ in 0..200 {
        if follower.cmd("EXISTS types:d:h") == int(0) {
            gone = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    assert!(gone, "an expired hash is deleted");
    assert_eq!(follower.cmd("HLEN types:d:h"), int(0));
    assert_eq!(n2.cmd("HSET types:d:h fresh 1"), int(1));
    assert_eq!(follower.cmd("HGETALL types:d:h"), strings(&["fresh", "1"]));
    assert_eq!(follower.cmd("TTL types:d:h"), int(-1));
}
