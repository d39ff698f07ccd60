//! Redis transactions (`MULTI`, `EXEC`, `DISCARD`, `WATCH`, `UNWATCH`) on
//! a real 3-node cluster, through followers (which forward the block to
//! the leader) and the leader: a block runs as one atomic state-machine
//! command, a changed watched key makes `EXEC` answer nil, and a command
//! refused while queuing aborts the block.

mod quic_cluster;

use std::sync::OnceLock;

use quic_cluster::{bulk, int, nil, ok, Client, Cluster, Value};

fn cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(|| Cluster::start("multi", 3, None))
}

fn follower() -> Client {
    let cluster = cluster();
    cluster.client(cluster.follower())
}

fn queued() -> Value {
    Value::Simple("QUEUED".into())
}

#[test]
fn exec_runs_the_queued_commands_and_answers_their_replies() {
    let mut c = follower();
    assert_eq!(c.cmd("MULTI"), ok());
    assert_eq!(c.cmd("SET multi:a 1"), queued());
    assert_eq!(c.cmd("INCR multi:a"), queued());
    assert_eq!(c.cmd("SADD multi:s x y"), queued());
    assert_eq!(c.cmd("EXPIRE multi:a 100"), queued());
    assert_eq!(c.cmd("GET multi:a"), queued());
    assert_eq!(c.cmd("SETEX multi:b 100 v"), queued());
    assert_eq!(c.cmd("PING"), queued());
    assert_eq!(
        c.cmd("EXEC"),
        Value::Array(Some(vec![
            ok(),
            int(2),
            int(2),
            int(1),
            bulk("2"),
            ok(),
            Value::Simple("PONG".into())
        ]))
    );
    let ttl = c.cmd("TTL multi:a").int().unwrap();
    assert!((1..=100).contains(&ttl), "TTL {ttl}");
    assert_eq!(c.cmd("SCARD multi:s"), int(2));
    assert_eq!(c.cmd("GET multi:b"), bulk("v"));
    // Nothing is left queued.
    assert_eq!(c.cmd("GET multi:a"), bulk("2"));
}

#[test]
fn a_failing_command_inside_exec_does_not_stop_the_others() {
    let mut c = follower();
    assert_eq!(c.cmd("SET multi:r text"), ok());
    assert_eq!(c.cmd("MULTI"), ok());
    assert_eq!(c.cmd("INCR multi:r"), queued());
    assert_eq!(c.cmd("SET multi:r2 b"), queued());
    assert_eq!(c.cmd("LPUSH multi:r c"), queued());
    let replies = c.cmd("EXEC");
    let items = replies.items();
    assert_eq!(items.len(), 3, "{replies:?}");
    assert!(items[0].error().contains("not an integer"), "{replies:?}");
    assert_eq!(items[1], ok());
    assert!(items[2].error().starts_with("WRONGTYPE"), "{replies:?}");
    assert_eq!(c.cmd("GET multi:r2"), bulk("b"));
}

#[test]
fn a_command_refused_while_queuing_aborts_the_whole_block() {
    let mut c = follower();
    for refused in ["NOSUCHCOMMAND x", "GET", "KEYS *", "SET multi:e 1 EX 0"] {
        assert_eq!(c.cmd("MULTI"), ok());
        assert_eq!(c.cmd("SET multi:e 1"), queued());
        let error = c.cmd(refused);
        assert!(matches!(error, Value::Error(_)), "{refused}: {error:?}");
        assert_eq!(c.cmd("SET multi:e2 1"), queued());
        let exec = c.cmd("EXEC");
        assert!(exec.error().starts_with("EXECABORT"), "{refused}: {exec:?}");
        assert_eq!(c.cmd("GET multi:e"), nil(), "{refused}");
        assert_eq!(c.cmd("GET multi:e2"), nil(), "{refused}");
    }
}

#[test]
fn exec_answers_nil_and_runs_nothing_when_a_watched_key_changed() {
    let cluster = cluster();
    let mut c = follower();
    let mut other = cluster.client(cluster.leader());
    assert_eq!(c.cmd("SET multi:w 1"), ok());
    assert_eq!(c.cmd("WATCH multi:w multi:absent"), ok());
    assert_eq!(other.cmd("SET multi:w 2"), ok());
    assert_eq!(c.cmd("MULTI"), ok());
    assert_eq!(c.cmd("SET multi:w 3"), queued());
    assert_eq!(c.cmd("EXEC"), Value::Array(None));
    assert_eq!(c.cmd("GET multi:w"), bulk("2"));
    // EXEC forgot the watched keys: the next block runs.
    assert_eq!(c.cmd("MULTI"), ok());
    assert_eq!(c.cmd("SET multi:w 3"), queued());
    assert_eq!(c.cmd("EXEC"), Value::Array(Some(vec![ok()])));
    // A key that did not exist and was created counts as changed too.
    assert_eq!(c.cmd("WATCH multi:absent"), ok());
    assert_eq!(other.cmd("SET multi:absent x"), ok());
    assert_eq!(c.cmd("MULTI"), ok());
    assert_eq!(c.cmd("DEL multi:absent"), queued());
    assert_eq!(c.cmd("EXEC"), Value::Array(None));
    assert_eq!(c.cmd("GET multi:absent"), bulk("x"));
    // So does a new expiry.
    assert_eq!(c.cmd("WATCH multi:w"), ok());
    assert_eq!(other.cmd("EXPIRE multi:w 100"), int(1));
    assert_eq!(c.cmd("MULTI"), ok());
    assert_eq!(c.cmd("INCR multi:w"), queued());
    assert_eq!(c.cmd("EXEC"), Value::Array(None));
}

#[test]
fn unwatched_and_unchanged_keys_let_exec_run() {
    let mut c = follower();
    assert_eq!(c.cmd("SET multi:u 1"), ok());
    assert_eq!(c.cmd("WATCH multi:u"), ok());
    assert_eq!(c.cmd("MULTI"), ok());
    assert_eq!(c.cmd("INCR multi:u"), queued());
    assert_eq!(c.cmd("EXEC"), Value::Array(Some(vec![int(2)])));
    assert_eq!(c.cmd("WATCH multi:u"), ok());
    assert_eq!(c.cmd("UNWATCH"), ok());
    assert_eq!(follower().cmd("SET multi:u 5"), ok());
    assert_eq!(c.cmd("MULTI"), ok());
    assert_eq!(c.cmd("INCR multi:u"), queued());
    assert_eq!(c.cmd("EXEC"), Value::Array(Some(vec![int(6)])));
}

#[test]
fn transaction_commands_out_of_place_are_refused_like_redis() {
    let mut c = follower();
    assert_eq!(c.cmd("EXEC").error(), "ERR EXEC without MULTI");
    assert_eq!(c.cmd("DISCARD").error(), "ERR DISCARD without MULTI");
    assert_eq!(c.cmd("MULTI"), ok());
    assert_eq!(c.cmd("MULTI").error(), "ERR MULTI calls can not be nested");
    assert_eq!(
        c.cmd("WATCH multi:x").error(),
        "ERR WATCH inside MULTI is not allowed"
    );
    assert_eq!(c.cmd("SET multi:d 1"), queued());
    assert_eq!(c.cmd("DISCARD"), ok());
    assert_eq!(c.cmd("GET multi:d"), nil());
    // Those errors leave the block as it was, as in Redis.
    assert_eq!(c.cmd("MULTI"), ok());
    assert!(c
        .cmd("WATCH multi:x")
        .error()
        .contains("WATCH inside MULTI"));
    assert!(c.cmd("MULTI").error().contains("nested"));
    assert_eq!(c.cmd("SET multi:d 2"), queued());
    assert_eq!(c.cmd("EXEC"), Value::Array(Some(vec![ok()])));
}

#[test]
fn blocks_run_whole_while_other_clients_run_blocks_on_the_same_key() {
    const BLOCKS: usize = 30;
    let run = || {
        std::thread::spawn(|| {
            let mut c = follower();
            let mut seen = Vec::new();
            for _ in 0..BLOCKS {
                assert_eq!(c.cmd("MULTI"), ok());
                assert_eq!(c.cmd("INCR multi:counter"), queued());
                assert_eq!(c.cmd("INCR multi:counter"), queued());
                let replies = c.cmd("EXEC");
                let values: Vec<i64> = replies.items().iter().map(|v| v.int().unwrap()).collect();
                seen.push(values);
            }
            seen
        })
    };
    let (a, b) = (run(), run());
    let mut all: Vec<Vec<i64>> = a.join().unwrap();
    all.extend(b.join().unwrap());
    for values in &all {
        // No other block's INCR came between this block's two.
        assert_eq!(values.len(), 2);
        assert_eq!(values[1], values[0] + 1, "{values:?}");
    }
    let mut firsts: Vec<i64> = all.iter().map(|v| v[0]).collect();
    firsts.sort();
    firsts.dedup();
    assert_eq!(firsts.len(), 2 * BLOCKS, "every block applied once");
}
