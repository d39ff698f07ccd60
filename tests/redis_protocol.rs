//! The Redis-protocol endpoint against real in-process clusters: every
//! command with Redis's replies and errors, on the leader and on
//! followers, protocol abuse, authentication and Synod's own commands.
//! Key expiry is in `redis_expiry.rs`, `redis-cli` and `redis-benchmark`
//! in `redis_tools.rs`.

mod quic_cluster;

use std::sync::OnceLock;

use quic_cluster::{bulk, field, int, nil, ok, Client, Cluster, Value};

/// One 3-node cluster shared by the tests of this file; each test uses
/// keys under its own prefix.
fn cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(|| Cluster::start("shared", 3, None))
}

fn leader() -> Client {
    let cluster = cluster();
    cluster.client(cluster.leader())
}

fn follower() -> Client {
    let cluster = cluster();
    cluster.client(cluster.follower())
}

fn strings(values: &[&str]) -> Value {
    Value::Array(Some(values.iter().map(|v| bulk(v)).collect()))
}

#[test]
fn ping_echo_select_and_quit_behave_like_redis() {
    let mut c = follower();
    assert_eq!(c.cmd("PING"), Value::Simple("PONG".into()));
    assert_eq!(c.cmd("ping hello"), bulk("hello"));
    assert_eq!(c.cmd("ECHO x"), bulk("x"));
    assert_eq!(c.cmd("SELECT 0"), ok());
    assert_eq!(c.cmd("SELECT 1").error(), "ERR DB index is out of range");
    assert_eq!(
        c.cmd("SELECT x").error(),
        "ERR value is not an integer or out of range"
    );
    assert_eq!(c.cmd("QUIT"), ok());
    assert!(c.closed());
}

#[test]
fn hello_chooses_resp2_or_resp3_and_refuses_other_versions() {
    let mut c = follower();
    let hello = c.cmd("HELLO 2");
    assert_eq!(field(&hello, "proto"), Some(&int(2)));
    assert_eq!(field(&hello, "server"), Some(&bulk("redis")));
    assert!(c.cmd("HELLO 4").error().starts_with("NOPROTO"));
    assert_eq!(field(&c.cmd("HELLO"), "proto"), Some(&int(2)));
    let Value::Map(hello) = c.cmd("HELLO 3") else {
        panic!("HELLO 3 answers a map");
    };
    let proto = hello.chunks(2).find(|kv| kv[0] == bulk("proto"));
    assert_eq!(proto.map(|kv| &kv[1]), Some(&int(3)));
    // A refused HELLO leaves the protocol as it was.
    assert!(c.cmd("HELLO 2 NOPE").error().contains("syntax error"));
    assert_eq!(c.cmd("GET resp3:none"), Value::Null);
    assert!(matches!(c.cmd("HELLO 2"), Value::Array(Some(_))));
    assert_eq!(c.cmd("GET resp3:none"), nil());
}

#[test]
fn resp3_types_scores_as_doubles_hashes_as_maps_and_sets_as_sets() {
    let mut c = follower();
    assert!(matches!(c.cmd("HELLO 3"), Value::Map(_)));
    let double = |text: &str| Value::Double(text.into());
    assert_eq!(c.cmd("ZADD resp3:z 1 a 2.5 b"), int(2));
    assert_eq!(c.cmd("ZSCORE resp3:z b"), double("2.5"));
    assert_eq!(c.cmd("ZINCRBY resp3:z 1 a"), double("2"));
    assert_eq!(
        c.cmd("ZRANGE resp3:z 0 -1 WITHSCORES"),
        Value::Array(Some(vec![
            Value::Array(Some(vec![bulk("a"), double("2")])),
            Value::Array(Some(vec![bulk("b"), double("2.5")])),
        ]))
    );
    assert_eq!(c.cmd("ZRANGE resp3:z 0 0"), strings(&["a"]));
    assert_eq!(
        c.cmd("ZMSCORE resp3:z a nope"),
        Value::Array(Some(vec![double("2"), Value::Null]))
    );
    assert_eq!(
        c.cmd("ZPOPMIN resp3:z"),
        Value::Array(Some(vec![bulk("a"), double("2")]))
    );
    assert_eq!(
        c.cmd("BZPOPMAX resp3:z 0"),
        Value::Array(Some(vec![bulk("resp3:z"), bulk("b"), double("2.5")]))
    );
    assert_eq!(c.cmd("HSET resp3:h f v"), int(1));
    assert_eq!(
        c.cmd("HGETALL resp3:h"),
        Value::Map(vec![bulk("f"), bulk("v")])
    );
    assert_eq!(c.cmd("HGETALL resp3:none"), Value::Map(vec![]));
    assert_eq!(c.cmd("SADD resp3:s m"), int(1));
    assert_eq!(c.cmd("SMEMBERS resp3:s"), Value::Set(vec![bulk("m")]));
    assert_eq!(c.cmd("LPOP resp3:none 2"), Value::Null);
    assert_eq!(
        c.cmd("CONFIG GET appendonly"),
        Value::Map(vec![bulk("appendonly"), bulk("yes")])
    );
    // The same commands in RESP2.
    assert!(matches!(c.cmd("HELLO 2"), Value::Array(Some(_))));
    assert_eq!(c.cmd("HGETALL resp3:h"), strings(&["f", "v"]));
    assert_eq!(c.cmd("ZADD resp3:z 1.5 a"), int(1));
    assert_eq!(c.cmd("ZSCORE resp3:z a"), bulk("1.5"));
    assert_eq!(c.cmd("LPOP resp3:none 2"), Value::Array(None));
}

#[test]
fn command_config_client_and_info_give_tools_what_they_ask_for() {
    let mut c = follower();
    assert!(c.cmd("COMMAND COUNT").int().unwrap() > 30);
    assert!(c.cmd("COMMAND DOCS").error().contains("not supported"));
    let info = c.cmd("COMMAND INFO get nope");
    assert_eq!(info.items()[0].items()[0], bulk("get"));
    assert_eq!(info.items()[1], Value::Array(None));
    assert_eq!(c.cmd("CONFIG GET save"), strings(&["save", ""]));
    assert!(c.cmd("CONFIG SET save x").error().starts_with("ERR"));
    assert_eq!(c.cmd("CLIENT SETNAME me"), ok());
    assert_eq!(c.cmd("CLIENT GETNAME"), bulk("me"));
    let text = c.cmd("INFO").text();
    for line in [
        "redis_version:",
        "role:",
        "paxos_role:",
        "leader_id:",
        "ballot:",
        "commit_index:",
        "applied_index:",
        "revision:",
    ] {
        assert!(text.contains(line), "INFO lacks {line}: {text}");
    }
    assert!(!c.cmd("INFO synod").text().contains("# Server"));
}

#[test]
fn config_set_of_a_fixed_setting_to_its_value_changes_nothing_and_succeeds() {
    let mut c = follower();
    // Redis's test suite opens files with `CONFIG SET save ""`.
    assert_eq!(c.call(&["CONFIG", "SET", "save", ""]), ok());
    assert_eq!(c.call(&["CONFIG", "SET", "appendonly", "yes"]), ok());
    assert_eq!(c.cmd("CONFIG GET save"), strings(&["save", ""]));
    assert!(c
        .call(&["CONFIG", "SET", "appendonly", "no"])
        .error()
        .contains("does not support changing it"));
    assert!(c
        .call(&["CONFIG", "SET", "save", "", "maxmemory", "10"])
        .error()
        .contains("'maxmemory'"));
}

#[test]
fn time_answers_the_nodes_wall_clock_in_seconds_and_microseconds() {
    let mut c = follower();
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let reply = c.cmd("TIME");
    let [seconds, micros] = reply.items() else {
        panic!("TIME answered {reply:?}");
    };
    let seconds: u64 = seconds.text().parse().unwrap();
    let micros: u64 = micros.text().parse().unwrap();
    assert!(seconds >= before, "{seconds} < {before}");
    assert!(micros < 1_000_000);
    assert!(c
        .cmd("TIME now")
        .error()
        .contains("wrong number of arguments"));
}

#[test]
fn a_command_of_tens_of_thousands_of_arguments_is_served() {
    let mut c = follower();
    // Redis's suite sends an MSET of 10 001 pairs (20 003 arguments).
    let mut args = vec!["MSET"];
    for _ in 0..10_000 {
        args.extend(["many:k", "v"]);
    }
    args.extend(["many:k2", "v2"]);
    assert_eq!(c.call(&args), ok());
    assert_eq!(c.cmd("MGET many:k many:k2"), strings(&["v", "v2"]));
    let mut sadd = vec!["SADD".to_owned(), "many:s".to_owned()];
    sadd.extend((0..30_000).map(|i| format!("m{i}")));
    let sadd: Vec<&str> = sadd.iter().map(String::as_str).collect();
    assert_eq!(c.call(&sadd), int(30_000));
    assert_eq!(c.cmd("SCARD many:s"), int(30_000));
    let limit = synod_wire::limits::MAX_REDIS_ARGS;
    c.send_raw(format!("*{}\r\n", limit + 1).as_bytes());
    assert!(c.read().error().contains("invalid multibulk length"));
    assert!(c.closed());
}

#[test]
fn unknown_commands_and_wrong_arity_get_redis_errors() {
    let mut c = follower();
    assert_eq!(
        c.cmd("FROB a b").error(),
        "ERR unknown command 'FROB', with args beginning with: 'a' 'b' "
    );
    assert_eq!(
        c.cmd("GET").error(),
        "ERR wrong number of arguments for 'get' command"
    );
    assert_eq!(
        c.cmd("MSET a").error(),
        "ERR wrong number of arguments for 'mset' command"
    );
    assert_eq!(
        c.cmd("MSET a 1 b").error(),
        "ERR wrong number of arguments for 'mset' command"
    );
    assert_eq!(c.cmd("PING"), Value::Simple("PONG".into()));
}

#[test]
fn set_and_its_options_follow_redis() {
    let mut c = follower();
    assert_eq!(c.cmd("SET set:a 1"), ok());
    assert_eq!(c.cmd("GET set:a"), bulk("1"));
    assert_eq!(c.cmd("GET set:missing"), nil());
    assert_eq!(c.cmd("SET set:a 2 NX"), nil());
    assert_eq!(c.cmd("SET set:b 2 NX"), ok());
    assert_eq!(c.cmd("SET set:c 3 XX"), nil());
    assert_eq!(c.cmd("SET set:a 3 XX"), ok());
    assert_eq!(c.cmd("SET set:a 4 GET"), bulk("3"));
    assert_eq!(c.cmd("SET set:a 5 XX GET"), bulk("4"));
    assert_eq!(c.cmd("SET set:a 6 NX GET"), bulk("5"));
    assert_eq!(c.cmd("SET set:d 1 NX GET"), nil());
    assert_eq!(c.cmd("SET set:e 1 XX GET"), nil());
    assert_eq!(c.cmd("GET set:e"), nil());
    assert_eq!(c.cmd("SET set:a 7 KEEPTTL"), ok());
    assert_eq!(c.cmd("GET set:a"), bulk("7"));
    assert_eq!(c.cmd("SET set:a 1 NX XX").error(), "ERR syntax error");
    assert_eq!(c.cmd("SET set:a 1 BOGUS").error(), "ERR syntax error");
    assert_eq!(
        c.cmd("SET set:a 1 EX 0").error(),
        "ERR invalid expire time in 'set' command"
    );
    assert_eq!(c.cmd("GET set:a"), bulk("7"));
    assert!(c.call(&["SET", "", "x"]).error().contains("empty keys"));
}

#[test]
fn getset_setnx_mget_mset_and_msetnx() {
    let mut c = follower();
    assert_eq!(c.cmd("GETSET gs:a 1"), nil());
    assert_eq!(c.cmd("GETSET gs:a 2"), bulk("1"));
    assert_eq!(c.cmd("SETNX gs:a 3"), int(0));
    assert_eq!(c.cmd("SETNX gs:b 3"), int(1));
    assert_eq!(c.cmd("MSET gs:c 1 gs:d 2 gs:c 3"), ok());
    assert_eq!(
        c.cmd("MGET gs:a gs:b gs:c gs:d gs:none gs:a"),
        Value::Array(Some(vec![
            bulk("2"),
            bulk("3"),
            bulk("3"),
            bulk("2"),
            nil(),
            bulk("2")
        ]))
    );
    assert_eq!(c.cmd("MSETNX gs:e 1 gs:a 9"), int(0));
    assert_eq!(c.cmd("GET gs:e"), nil());
    assert_eq!(c.cmd("MSETNX gs:e 1 gs:f 2"), int(1));
    assert_eq!(c.cmd("MGET gs:e gs:f"), strings(&["1", "2"]));
    let many: Vec<String> = (0..65)
        .flat_map(|i| [format!("gs:m{i}"), "v".into()])
        .collect();
    let mut args = vec!["MSET"];
    args.extend(many.iter().map(String::as_str));
    assert!(c.call(&args).error().contains("too many keys"));
}

#[test]
fn del_and_exists_count_keys_like_redis() {
    let mut c = follower();
    assert_eq!(c.cmd("MSET de:a 1 de:b 2 de:c 3"), ok());
    assert_eq!(c.cmd("EXISTS de:a de:a de:none"), int(2));
    assert_eq!(c.cmd("EXISTS de:none"), int(0));
    assert_eq!(c.cmd("DEL de:a"), int(1));
    assert_eq!(c.cmd("DEL de:a"), int(0));
    assert_eq!(c.cmd("DEL de:b de:c de:b de:none"), int(2));
    assert_eq!(c.cmd("UNLINK de:b"), int(0));
    assert_eq!(c.cmd("EXISTS de:a de:b de:c"), int(0));
}

#[test]
fn incr_family_counts_and_refuses_non_integers() {
    let mut c = follower();
    assert_eq!(c.cmd("INCR in:a"), int(1));
    assert_eq!(c.cmd("INCRBY in:a 10"), int(11));
    assert_eq!(c.cmd("DECR in:a"), int(10));
    assert_eq!(c.cmd("DECRBY in:a 20"), int(-10));
    assert_eq!(c.cmd("GET in:a"), bulk("-10"));
    assert_eq!(c.cmd("SET in:s abc"), ok());
    let not_int = "ERR value is not an integer or out of range";
    assert_eq!(c.cmd("INCR in:s").error(), not_int);
    assert_eq!(c.cmd("INCRBY in:a x").error(), not_int);
    assert_eq!(c.cmd("SET in:max 9223372036854775807"), ok());
    assert_eq!(
        c.cmd("INCR in:max").error(),
        "ERR increment or decrement would overflow"
    );
    assert_eq!(
        c.cmd("DECRBY in:a -9223372036854775808").error(),
        "ERR decrement would overflow"
    );
}

#[test]
fn append_strlen_type_and_ttl_describe_strings() {
    let mut c = follower();
    assert_eq!(c.cmd("APPEND ap:a hello"), int(5));
    assert_eq!(c.cmd("APPEND ap:a _world"), int(11));
    assert_eq!(c.cmd("GET ap:a"), bulk("hello_world"));
    assert_eq!(c.cmd("STRLEN ap:a"), int(11));
    assert_eq!(c.cmd("STRLEN ap:none"), int(0));
    assert_eq!(c.cmd("TYPE ap:a"), Value::Simple("string".into()));
    assert_eq!(c.cmd("TYPE ap:none"), Value::Simple("none".into()));
    assert_eq!(c.cmd("TTL ap:a"), int(-1));
    assert_eq!(c.cmd("PTTL ap:none"), int(-2));
    assert_eq!(c.cmd("PERSIST ap:a"), int(0));
}

#[test]
fn concurrent_appends_all_land() {
    let cluster = cluster();
    let threads: Vec<_> = (1..=3)
        .map(|node| {
            let mut c = cluster.client(node);
            std::thread::spawn(move || {
                for _ in 0..10 {
                    assert!(c.cmd("APPEND cap:a x").int().is_some());
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    assert_eq!(leader().cmd("STRLEN cap:a"), int(30));
}

#[test]
fn keys_scan_and_dbsize_see_every_key() {
    let mut c = follower();
    for i in 0..25 {
        assert_eq!(c.cmd(&format!("SET ks:{i:02} v")), ok());
    }
    assert_eq!(c.cmd("SET ksx:other v"), ok());
    let mut keys: Vec<String> = c.cmd("KEYS ks:*").items().iter().map(Value::text).collect();
    keys.sort();
    let expected: Vec<String> = (0..25).map(|i| format!("ks:{i:02}")).collect();
    assert_eq!(keys, expected);
    assert_eq!(c.cmd("KEYS ks:1?").items().len(), 10);
    assert_eq!(c.cmd("KEYS ks:[0-1][05]").items().len(), 4);

    let (mut cursor, mut seen, mut pages) = ("0".to_string(), Vec::new(), 0);
    loop {
        let page = c.cmd(&format!("SCAN {cursor} MATCH ks:* COUNT 4"));
        cursor = page.items()[0].text();
        seen.extend(page.items()[1].items().iter().map(Value::text));
        pages += 1;
        if cursor == "0" {
            break;
        }
    }
    seen.sort();
    assert_eq!(seen, expected);
    assert!(pages >= 7, "COUNT 4 over 25 keys took {pages} pages");
    assert_eq!(c.cmd("SCAN 12345").error(), "ERR invalid cursor");
    assert_eq!(c.cmd("SCAN x").error(), "ERR invalid cursor");
    assert_eq!(c.cmd("SCAN 0 COUNT 0").error(), "ERR syntax error");
    assert!(c.cmd("DBSIZE").int().unwrap() >= 26);
}

#[test]
fn a_follower_accepts_writes_and_every_node_reads_them_at_once() {
    let cluster = cluster();
    let leader = cluster.leader();
    for writer in 1..=3 {
        let key = format!("lin:{writer}");
        assert_eq!(cluster.client(writer).call(&["SET", &key, "v"]), ok());
        for reader in 1..=3 {
            assert_eq!(
                cluster.client(reader).call(&["GET", &key]),
                bulk("v"),
                "written at node {writer} (leader {leader}), read at node {reader}"
            );
        }
    }
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let mut c = follower();
    let mut batch = Vec::new();
    for _ in 0..100 {
        batch.extend_from_slice(b"*2\r\n$4\r\nINCR\r\n$7\r\npipe:ct\r\n");
    }
    batch.extend_from_slice(b"GET pipe:ct\r\n");
    c.send_raw(&batch);
    for expected in 1..=100 {
        assert_eq!(c.read(), int(expected));
    }
    assert_eq!(c.read(), bulk("100"));
}

#[test]
fn inline_commands_work_with_quotes() {
    let mut c = follower();
    c.send_raw(b"SET inl:a \"two words\\n\"\r\nGET inl:a\r\n");
    assert_eq!(c.read(), ok());
    assert_eq!(c.read(), bulk("two words\n"));
}

#[test]
fn protocol_errors_are_answered_then_the_connection_closes() {
    let cases: &[(&[u8], &str)] = &[
        (
            b"*1\r\n+GET\r\n",
            "ERR Protocol error: expected '$', got '+'",
        ),
        (b"*x\r\n", "ERR Protocol error: invalid multibulk length"),
        (b"*1\r\n$-3\r\n", "ERR Protocol error: invalid bulk length"),
        (
            b"SET a \"b\r\n",
            "ERR Protocol error: unbalanced quotes in request",
        ),
    ];
    for (input, expected) in cases {
        let mut c = follower();
        c.send_raw(input);
        assert!(c.read().error().starts_with(expected), "{input:?}");
        assert!(c.closed(), "{input:?} left the connection open");
    }
}

#[test]
fn oversized_requests_are_refused() {
    let mut c = follower();
    let max_value = synod_wire::limits::MAX_VALUE_BYTES;
    c.send_raw(format!("*2\r\n$3\r\nGET\r\n${}\r\n", max_value + 1).as_bytes());
    assert!(c.read().error().contains("invalid bulk length"));
    assert!(c.closed());

    let mut c = follower();
    let long_key = "k".repeat(4097);
    assert!(c
        .call(&["SET", &long_key, "v"])
        .error()
        .contains("key too large"));
    // The largest value goes through a follower (forwarded to the leader) whole.
    let value = vec![b'v'; max_value];
    assert_eq!(c.call_bytes(&[b"SET", b"big:a", &value]), ok());
    assert_eq!(c.call(&["STRLEN", "big:a"]), int(max_value as i64));
    // So does a request of several large values up to the state machine's request limit: the
    // forwarding frame is sized from the same limits (`wire/src/limits.rs`).
    let third = vec![b'w'; (synod_wire::limits::MAX_REQUEST_BYTES - 64 * 1024) / 3];
    assert_eq!(
        c.call_bytes(&[b"MSET", b"big:b", &third, b"big:c", &third, b"big:d", &third]),
        ok()
    );
    assert_eq!(c.call(&["STRLEN", "big:d"]), int(third.len() as i64));
    assert!(c
        .call(&["APPEND", "big:a", "x"])
        .error()
        .contains("maximum allowed size"));
    c.send_raw(&vec![b'a'; 70 * 1024]);
    assert!(c.read().error().contains("too big inline request"));
    assert!(c.closed());
}

#[test]
fn random_bytes_never_take_the_endpoint_down() {
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let alphabet = b"*$\r\n-:+0123456789 \"'\\xGETSETPING";
    for _ in 0..50 {
        let mut c = follower();
        let len = 1 + next() % 300;
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                let r = next();
                if r % 4 == 0 {
                    r as u8
                } else {
                    alphabet[(r >> 8) as usize % alphabet.len()]
                }
            })
            .collect();
        c.send_raw(&bytes);
        // Whatever the answers, the connection may be dropped; never a crash.
        drop(c);
    }
    assert_eq!(follower().cmd("PING"), Value::Simple("PONG".into()));
    assert_eq!(leader().cmd("PING"), Value::Simple("PONG".into()));
}

#[test]
fn a_password_is_required_before_other_commands() {
    let cluster = Cluster::start("auth", 1, Some("s3cret"));
    let mut c = cluster.client(1);
    assert_eq!(c.cmd("GET a").error(), "NOAUTH Authentication required.");
    assert!(c
        .cmd("HELLO 2")
        .error()
        .starts_with("NOAUTH HELLO must be called"));
    assert!(c.cmd("AUTH nope").error().starts_with("WRONGPASS"));
    assert!(c
        .cmd("AUTH someone s3cret")
        .error()
        .starts_with("WRONGPASS"));
    assert_eq!(c.cmd("GET a").error(), "NOAUTH Authentication required.");
    assert_eq!(c.cmd("AUTH s3cret"), ok());
    assert_eq!(c.cmd("SET a 1"), ok());
    let mut d = cluster.client(1);
    assert_eq!(
        field(&d.cmd("HELLO 2 AUTH default s3cret"), "proto"),
        Some(&int(2))
    );
    assert_eq!(d.cmd("GET a"), bulk("1"));
    let mut open = follower();
    assert!(open.cmd("AUTH x").error().contains("without any password"));
}

#[test]
fn synod_cas_swaps_only_the_expected_value() {
    let mut c = follower();
    assert_eq!(c.cmd("SET cas:a 1"), ok());
    assert_eq!(c.cmd("SYNOD.CAS cas:a 2 3"), int(0));
    assert_eq!(c.cmd("SYNOD.CAS cas:a 1 3"), int(1));
    assert_eq!(c.cmd("GET cas:a"), bulk("3"));
    assert_eq!(c.cmd("SYNOD.CAS cas:none 1 3"), int(0));
}

#[test]
fn synod_status_names_the_leader_everywhere() {
    let cluster = cluster();
    let leader = cluster.leader() as i64;
    for node in 1..=3 {
        let status = cluster.client(node).cmd("SYNOD.STATUS");
        assert_eq!(field(&status, "node_id"), Some(&int(node as i64)));
        assert_eq!(field(&status, "leader_id"), Some(&int(leader)));
        let role = if node as i64 == leader {
            "leader"
        } else {
            "follower"
        };
        assert_eq!(field(&status, "role"), Some(&bulk(role)));
    }
}

#[test]
fn synod_members_lists_the_voters_from_any_node_and_refuses_bad_changes() {
    let cluster = cluster();
    let leader = cluster.leader() as i64;
    let follower = if leader == 1 { 2 } else { 1 };
    let mut c = cluster.client(follower);
    let reply = c.cmd("SYNOD.MEMBERS");
    let members = reply.items();
    assert_eq!(members.len(), 3, "{reply:?}");
    for (i, member) in members.iter().enumerate() {
        assert_eq!(field(member, "id"), Some(&int(i as i64 + 1)));
        let role = if i as i64 + 1 == leader {
            "leader"
        } else {
            "voter"
        };
        assert_eq!(field(member, "role"), Some(&bulk(role)));
    }
    let refused = c.cmd("SYNOD.MEMBER REMOVE 9");
    assert!(refused.error().contains("not a member"), "{refused:?}");
    let refused = c.cmd("SYNOD.MEMBER ADD 2 127.0.0.1:1 127.0.0.1:2");
    assert!(refused.error().contains("already a member"), "{refused:?}");
    let refused = c.cmd("SYNOD.MEMBER ADD 4 nowhere 127.0.0.1:2");
    assert!(refused.error().contains("ip:port"), "{refused:?}");
    let refused = c.cmd("SYNOD.MEMBER FROB 4");
    assert!(refused.error().contains("syntax"), "{refused:?}");
    assert_eq!(c.cmd("SYNOD.MEMBERS").items().len(), 3);
}

#[test]
fn synod_locks_fence_writes_and_free_on_disconnect() {
    let cluster = cluster();
    let mut a = cluster.client(1);
    let mut b = cluster.client(2);
    let token = a.cmd("SYNOD.LOCK lk:1 5000").int().expect("granted");
    assert_eq!(
        a.cmd("SYNOD.LOCK lk:1"),
        int(token),
        "re-locking is idempotent"
    );
    assert_eq!(b.cmd("SYNOD.LOCK lk:1"), nil());
    let info = b.cmd("SYNOD.LOCKINFO lk:1");
    assert_eq!(field(&info, "token"), Some(&int(token)));
    assert_eq!(
        a.call(&[
            "SYNOD.SETFENCED",
            "lk:1",
            &token.to_string(),
            "fenced:a",
            "1"
        ]),
        ok()
    );
    let stale = (token - 1).to_string();
    assert!(b
        .call(&["SYNOD.SETFENCED", "lk:1", &stale, "fenced:a", "2"])
        .error()
        .starts_with("FENCED"));
    assert_eq!(b.cmd("GET fenced:a"), bulk("1"));
    assert_eq!(b.cmd("SYNOD.UNLOCK lk:1"), int(0));
    drop(a);
    let mut next = None;
    for _ in 0..200 {
        next = b.cmd("SYNOD.LOCK lk:1").int();
        if next.is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let next = next.expect("the lock is free once its holder disconnected");
    assert!(next > token, "fencing tokens increase");
    assert_eq!(b.cmd("SYNOD.UNLOCK lk:1"), int(1));
    assert_eq!(b.cmd("SYNOD.UNLOCK lk:1"), int(0));
}

#[test]
fn synod_elections_campaign_proclaim_and_resign() {
    let cluster = cluster();
    let mut a = cluster.client(2);
    let mut b = cluster.client(3);
    let elected = a.cmd("SYNOD.CAMPAIGN el:1 alpha");
    assert_eq!(field(&elected, "status"), Some(&bulk("elected")));
    let queued = b.cmd("SYNOD.CAMPAIGN el:1 beta");
    assert_eq!(field(&queued, "status"), Some(&bulk("queued")));
    assert_eq!(field(&queued, "position"), Some(&int(1)));
    assert_eq!(
        field(&b.cmd("SYNOD.LEADER el:1"), "value"),
        Some(&bulk("alpha"))
    );
    assert!(a.cmd("SYNOD.PROCLAIM el:1 alpha2").int().is_some());
    assert_eq!(
        field(&b.cmd("SYNOD.LEADER el:1"), "value"),
        Some(&bulk("alpha2"))
    );
    assert!(b.cmd("SYNOD.PROCLAIM el:1 x").error().starts_with("ERR"));
    assert_eq!(a.cmd("SYNOD.RESIGN el:1"), int(1));
    assert_eq!(
        field(&a.cmd("SYNOD.LEADER el:1"), "value"),
        Some(&bulk("beta"))
    );
    assert_eq!(a.cmd("SYNOD.LEADER el:none"), Value::Array(None));
}

#[test]
fn writes_through_a_follower_survive_a_leader_change_once() {
    // The test clusters' 10 s deadline is long enough for the election,
    // so the write waits for the new leader (with the default 1.5 s it may
    // answer TRYAGAIN, or UNCERTAIN).
    let cluster = Cluster::start("failover", 3, None);
    let old_leader = cluster.leader();
    let survivor = (1..=3).find(|n| *n != old_leader).unwrap();
    let mut c = cluster.client(survivor);
    assert_eq!(c.cmd("INCR fo:n"), int(1));
    cluster.stop(old_leader);
    assert_eq!(c.cmd("INCR fo:n"), int(2));
    let other = (1..=3)
        .find(|n| *n != old_leader && *n != survivor)
        .unwrap();
    assert_eq!(cluster.client(other).cmd("GET fo:n"), bulk("2"));
}

/// `INFO clients`' `blocked_clients` on the node of `c`.
fn blocked_clients(c: &mut Client) -> i64 {
    let text = c.cmd("INFO clients").text();
    text.lines()
        .find_map(|line| line.strip_prefix("blocked_clients:"))
        .expect("INFO clients has blocked_clients")
        .trim()
        .parse()
        .expect("a count")
}

#[test]
fn info_counts_the_clients_waiting_in_a_blocking_pop() {
    let cluster = cluster();
    let node = cluster.follower();
    let mut c = cluster.client(node);
    let port = cluster.redis_ports[node - 1];
    assert_eq!(blocked_clients(&mut c), 0);
    let waiter = std::thread::spawn(move || Client::connect(port).cmd("BLPOP blocked:l 0"));
    let mut seen = false;
    for _ in 0..400 {
        if blocked_clients(&mut c) == 1 {
            seen = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    assert!(seen, "the waiting BLPOP is counted");
    assert_eq!(c.cmd("RPUSH blocked:l x"), int(1));
    assert_eq!(waiter.join().unwrap(), strings(&["blocked:l", "x"]));
    let mut released = false;
    for _ in 0..400 {
        if blocked_clients(&mut c) == 0 {
            released = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    assert!(released, "an answered BLPOP is no longer counted");
}

/// Commands that reach a follower together travel to the leader together, in batches
/// (`src/redis/forward.rs`): each connection still gets its own answers, in its order, and
/// every write applies once.
#[test]
fn commands_forwarded_at_once_travel_in_batches_and_keep_their_own_answers() {
    const CONNECTIONS: usize = 24;
    const ROUNDS: usize = 30;
    let cluster = cluster();
    let (leader, follower) = (cluster.leader(), cluster.follower());
    let batches_before = cluster.api_calls(leader, "kv_batch");
    let connections: Vec<_> = (0..CONNECTIONS)
        .map(|t| {
            let mut c = cluster.client(follower);
            std::thread::spawn(move || {
                let mut counted = Vec::new();
                for round in 0..ROUNDS {
                    let key = format!("fwdbatch:{t}");
                    counted.push(c.cmd("INCR fwdbatch:shared").int().expect("a count"));
                    assert_eq!(c.call(&["SET", &key, &round.to_string()]), ok());
                    assert_eq!(c.call(&["GET", &key]), bulk(&round.to_string()));
                }
                counted
            })
        })
        .collect();
    let mut counted: Vec<i64> = connections
        .into_iter()
        .flat_map(|c| c.join().expect("a connection's thread"))
        .collect();
    counted.sort_unstable();
    let calls = CONNECTIONS * ROUNDS;
    assert_eq!(
        counted,
        (1..=calls as i64).collect::<Vec<_>>(),
        "every INCR applied once and answered its own count"
    );
    let batches = cluster.api_calls(leader, "kv_batch") - batches_before;
    assert!(batches > 0.0, "forwarded calls travel in batches");
    assert!(
        batches < (3 * calls) as f64,
        "{batches} batches for {} calls: some carried several",
        3 * calls
    );
}

/// A batch whose answers would not fit in one response frame carries the first ones; the
/// follower sends the others alone (`KvBatchResult`), so large answers asked for at once all
/// arrive whole.
#[test]
fn a_batch_answers_what_fits_and_the_rest_goes_alone() {
    use prost::Message as _;
    use synod_wire::proto::api::{
        api_request::Call, api_response, ApiRequest, ApiResponse, KvBatchCall, KvCall,
    };
    let cluster = cluster();
    let (leader, follower) = (cluster.leader(), cluster.follower());
    let value = vec![b'v'; synod_wire::limits::MAX_VALUE_BYTES];
    let mut c = cluster.client(leader);
    assert_eq!(c.call_bytes(&[b"SET", b"fwdbig:a", &value]), ok());
    // At the leader's client service: five answers of 4 MiB do not fit in 15 MiB.
    let get = synod_kvstore::Request::anonymous(synod_kvstore::Op::Get(synod_kvstore::Get {
        key: b"fwdbig:a".to_vec(),
    }));
    let call = KvCall {
        request: get.encode_to_vec(),
        serializable: false,
    };
    let batch = ApiRequest {
        call: Some(Call::KvBatch(KvBatchCall {
            calls: vec![call; 5],
        })),
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let ask = |node: usize| {
        runtime.block_on(async {
            let conn = synod_net::ClientConnection::connect(
                synod::dev::dev_addrs(cluster.base_port, node as u32).client,
                &cluster.tls(),
            )
            .await
            .expect("a connection to the leader");
            let response = conn
                .request(batch.encode_to_vec())
                .await
                .expect("an answer");
            match ApiResponse::decode(response.payload().expect("served"))
                .expect("decodes")
                .result
            {
                Some(api_response::Result::KvBatch(batch)) => batch.answers,
                other => panic!("not a batch's answer: {other:?}"),
            }
        })
    };
    // Leadership can move between naming the leader and asking it (an
    // election on a loaded machine): then every answer is NOT_LEADER, and
    // the batch is asked again of the leader named next.
    let not_leader = |answer: &Vec<u8>| {
        use synod_wire::proto::client::{client_response::Outcome, ClientResponse, ErrorCode};
        matches!(
            ClientResponse::decode(answer.as_slice()).expect("an answer decodes").outcome,
            Some(Outcome::Error(e)) if e.code == ErrorCode::NotLeader as i32
        )
    };
    let mut answers = ask(leader);
    for _ in 0..100 {
        if !answers.iter().all(not_leader) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
        answers = ask(cluster.leader());
    }
    assert_eq!(answers.len(), 3, "the answers that fit, in order");
    // Through a follower, four connections asking at once all get the value whole.
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let mut c = cluster.client(follower);
            std::thread::spawn(move || c.call(&["STRLEN", "fwdbig:a"]) == int(4 << 20) && {
                matches!(c.call(&["GET", "fwdbig:a"]), Value::Bulk(Some(v)) if v.len() == 4 << 20)
            })
        })
        .collect();
    for reader in readers {
        assert!(reader.join().unwrap(), "a whole value");
    }
}
