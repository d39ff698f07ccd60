//! Key expiry through the Redis-protocol endpoint of real in-process
//! clusters: `SET .. EX/PX/EXAT/PXAT/KEEPTTL`, `EXPIRE` and its siblings
//! with `NX/XX/GT/LT`, `TTL`, `PTTL`, `EXPIRETIME`, `PERSIST`, which writes
//! keep a TTL, keys that really disappear, and TTLs across a leader change.
//! No test asserts how fast anything happens: waits poll up to a generous
//! deadline.

mod quic_cluster;

use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use quic_cluster::{bulk, int, nil, ok, Client, Cluster, Value};

fn cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(|| Cluster::start("expiry", 3, None))
}

fn follower() -> Client {
    let cluster = cluster();
    cluster.client(cluster.follower())
}

/// How long a key with a short TTL may take to disappear before a test
/// fails: far above any expected delay, so only a lost expiry fails it.
const PATIENCE: Duration = Duration::from_secs(10);

/// Polls `GET key` through `c` until it is nil; false if it never was.
fn disappears(c: &mut Client, key: &str, patience: Duration) -> bool {
    let deadline = Instant::now() + patience;
    while Instant::now() < deadline {
        if c.call(&["GET", key]) == nil() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

fn ttl(c: &mut Client, key: &str) -> i64 {
    c.call(&["TTL", key]).int().expect("TTL answers an integer")
}

fn pttl(c: &mut Client, key: &str) -> i64 {
    c.call(&["PTTL", key])
        .int()
        .expect("PTTL answers an integer")
}

fn unix_now_s() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[test]
fn set_with_ex_or_px_gives_a_ttl_and_keepttl_keeps_it() {
    let mut c = follower();
    assert_eq!(c.cmd("SET sx:a 1 EX 100"), ok());
    assert!((1..=100).contains(&ttl(&mut c, "sx:a")));
    assert!((1..=100_000).contains(&pttl(&mut c, "sx:a")));
    assert_eq!(c.cmd("SET sx:a 2 KEEPTTL"), ok());
    assert_eq!(c.cmd("GET sx:a"), bulk("2"));
    assert!((1..=100).contains(&ttl(&mut c, "sx:a")), "KEEPTTL keeps it");
    assert_eq!(c.cmd("SET sx:a 3"), ok());
    assert_eq!(ttl(&mut c, "sx:a"), -1, "a plain SET removes it");
    assert_eq!(c.cmd("SET sx:b 1 PX 50000 GET"), nil());
    assert!((1..=50_000).contains(&pttl(&mut c, "sx:b")));
    assert_eq!(c.cmd("SET sx:b 2 XX PX 70000 GET"), bulk("1"));
    assert!((50_001..=70_000).contains(&pttl(&mut c, "sx:b")));
    assert_eq!(c.cmd("SET sx:b 3 NX EX 5"), nil(), "NX on an existing key");
    assert!(pttl(&mut c, "sx:b") > 50_000, "and its TTL is untouched");
    assert_eq!(c.cmd("SET sx:c 1 NX PX 60000"), ok());
    assert!((1..=60_000).contains(&pttl(&mut c, "sx:c")));
    let at = unix_now_s() + 1_000;
    assert_eq!(c.call(&["SET", "sx:d", "1", "EXAT", &at.to_string()]), ok());
    assert!((900..=1_000).contains(&ttl(&mut c, "sx:d")));
    let expiretime = c.cmd("EXPIRETIME sx:d").int().unwrap();
    assert!(
        (at - 2..=at + 2).contains(&expiretime),
        "{expiretime} vs {at}"
    );
    let at_ms = (at * 1000).to_string();
    assert_eq!(c.call(&["SET", "sx:e", "1", "PXAT", &at_ms]), ok());
    assert!((900..=1_000).contains(&ttl(&mut c, "sx:e")));
}

#[test]
fn set_with_an_expiry_time_in_the_past_deletes_the_key() {
    let mut c = follower();
    assert_eq!(c.cmd("SET sp:a 1"), ok());
    assert_eq!(c.cmd("SET sp:a 2 EXAT 1 GET"), bulk("1"));
    assert_eq!(c.cmd("GET sp:a"), nil());
    assert_eq!(c.cmd("SET sp:a 3 PXAT 1000"), ok());
    assert_eq!(c.cmd("EXISTS sp:a"), int(0));
    assert_eq!(
        c.cmd("SET sp:a 4 XX PXAT 1000"),
        nil(),
        "XX on a missing key"
    );
    assert_eq!(c.cmd("SET sp:b 1"), ok());
    assert_eq!(c.cmd("SET sp:b 2 XX EXAT 1"), ok());
    assert_eq!(c.cmd("EXISTS sp:b"), int(0));
}

#[test]
fn set_refuses_bad_expiry_options_like_redis() {
    let mut c = follower();
    let invalid = "ERR invalid expire time in 'set' command";
    assert_eq!(c.cmd("SET sb:a 1 EX 0").error(), invalid);
    assert_eq!(c.cmd("SET sb:a 1 PX -5").error(), invalid);
    assert_eq!(c.cmd("SET sb:a 1 EX 9223372036854775807").error(), invalid);
    assert_eq!(
        c.cmd("SET sb:a 1 EX soon").error(),
        "ERR value is not an integer or out of range"
    );
    assert_eq!(c.cmd("SET sb:a 1 EX").error(), "ERR syntax error");
    assert_eq!(c.cmd("SET sb:a 1 EX 10 PX 10").error(), "ERR syntax error");
    assert_eq!(
        c.cmd("SET sb:a 1 EX 10 KEEPTTL").error(),
        "ERR syntax error"
    );
    assert_eq!(
        c.cmd("SET sb:a 1 KEEPTTL PXAT 10").error(),
        "ERR syntax error"
    );
    assert_eq!(c.cmd("GET sb:a"), nil(), "nothing was written");
}

#[test]
fn expire_ttl_and_persist_follow_redis() {
    let mut c = follower();
    assert_eq!(c.cmd("EXPIRE ex:none 100"), int(0));
    assert_eq!(c.cmd("TTL ex:none"), int(-2));
    assert_eq!(c.cmd("PTTL ex:none"), int(-2));
    assert_eq!(c.cmd("EXPIRETIME ex:none"), int(-2));
    assert_eq!(c.cmd("PERSIST ex:none"), int(0));
    assert_eq!(c.cmd("SET ex:a v"), ok());
    assert_eq!(c.cmd("TTL ex:a"), int(-1));
    assert_eq!(c.cmd("PEXPIRETIME ex:a"), int(-1));
    assert_eq!(c.cmd("PERSIST ex:a"), int(0));
    assert_eq!(c.cmd("EXPIRE ex:a 100"), int(1));
    assert!((1..=100).contains(&ttl(&mut c, "ex:a")));
    assert_eq!(c.cmd("GET ex:a"), bulk("v"), "EXPIRE leaves the value");
    assert_eq!(c.cmd("PEXPIRE ex:a 200000"), int(1));
    assert!((100_001..=200_000).contains(&pttl(&mut c, "ex:a")));
    assert_eq!(c.cmd("PERSIST ex:a"), int(1));
    assert_eq!(c.cmd("PERSIST ex:a"), int(0));
    assert_eq!(c.cmd("TTL ex:a"), int(-1));
    let at = unix_now_s() + 500;
    assert_eq!(c.call(&["EXPIREAT", "ex:a", &at.to_string()]), int(1));
    assert!((400..=500).contains(&ttl(&mut c, "ex:a")));
    let at_ms = ((at + 100) * 1000).to_string();
    assert_eq!(c.call(&["PEXPIREAT", "ex:a", &at_ms]), int(1));
    assert!((500..=600).contains(&ttl(&mut c, "ex:a")));
    assert_eq!(c.cmd("EXPIRE ex:a 0"), int(1), "a TTL of 0 deletes");
    assert_eq!(c.cmd("GET ex:a"), nil());
    assert_eq!(c.cmd("SET ex:b v"), ok());
    assert_eq!(c.cmd("PEXPIRE ex:b -1"), int(1));
    assert_eq!(c.cmd("EXISTS ex:b"), int(0));
    assert_eq!(c.cmd("SET ex:c v"), ok());
    assert_eq!(c.cmd("EXPIREAT ex:c 1"), int(1), "a past time deletes");
    assert_eq!(c.cmd("EXISTS ex:c"), int(0));
}

#[test]
fn expire_conditions_nx_xx_gt_lt() {
    let mut c = follower();
    assert_eq!(c.cmd("SET ec:a v"), ok());
    assert_eq!(c.cmd("EXPIRE ec:a 100 XX"), int(0), "XX: no TTL yet");
    assert_eq!(c.cmd("EXPIRE ec:a 100 GT"), int(0), "GT: none is infinite");
    assert_eq!(c.cmd("EXPIRE ec:a 100 NX"), int(1));
    assert_eq!(c.cmd("EXPIRE ec:a 200 NX"), int(0));
    assert_eq!(c.cmd("EXPIRE ec:a 50 GT"), int(0));
    assert!((51..=100).contains(&ttl(&mut c, "ec:a")));
    assert_eq!(c.cmd("EXPIRE ec:a 300 gt"), int(1));
    assert!((201..=300).contains(&ttl(&mut c, "ec:a")));
    assert_eq!(c.cmd("EXPIRE ec:a 400 LT"), int(0));
    assert_eq!(c.cmd("EXPIRE ec:a 150 LT XX"), int(1));
    assert!((51..=150).contains(&ttl(&mut c, "ec:a")));
    assert_eq!(c.cmd("EXPIRE ec:a 1000 XX"), int(1));
    assert_eq!(c.cmd("SET ec:b v"), ok());
    assert_eq!(c.cmd("EXPIRE ec:b 100 LT"), int(1), "LT: none is infinite");
    assert_eq!(c.cmd("EXPIRE ec:none 100 LT"), int(0));
    assert_eq!(
        c.cmd("EXPIRE ec:b -1 NX"),
        int(0),
        "a failed NX deletes nothing"
    );
    assert_eq!(c.cmd("EXISTS ec:b"), int(1));
    assert_eq!(
        c.cmd("EXPIRE ec:b 10 NX XX").error(),
        "ERR NX and XX, GT or LT options at the same time are not compatible"
    );
    assert_eq!(
        c.cmd("EXPIRE ec:b 10 GT LT").error(),
        "ERR GT and LT options at the same time are not compatible"
    );
    assert_eq!(
        c.cmd("EXPIRE ec:b 10 SOON").error(),
        "ERR Unsupported option SOON"
    );
    assert_eq!(
        c.cmd("EXPIRE ec:b ten").error(),
        "ERR value is not an integer or out of range"
    );
    assert_eq!(
        c.cmd("EXPIRE ec:b 9223372036854775807").error(),
        "ERR invalid expire time in 'expire' command"
    );
    assert_eq!(
        c.cmd("EXPIRE ec:b").error(),
        "ERR wrong number of arguments for 'expire' command"
    );
    assert!(c.call(&["EXPIRE", "", "10"]).error().contains("empty keys"));
    assert!((1..=100).contains(&ttl(&mut c, "ec:b")));
}

#[test]
fn incr_and_append_keep_the_ttl_while_getset_and_mset_clear_it() {
    let mut c = follower();
    assert_eq!(c.cmd("SET kt:n 1 EX 100"), ok());
    assert_eq!(c.cmd("INCR kt:n"), int(2));
    assert_eq!(c.cmd("DECRBY kt:n 5"), int(-3));
    assert!((1..=100).contains(&ttl(&mut c, "kt:n")));
    assert_eq!(c.cmd("APPEND kt:n 0"), int(3));
    assert!((1..=100).contains(&ttl(&mut c, "kt:n")));
    assert_eq!(c.cmd("GETSET kt:n 1"), bulk("-30"));
    assert_eq!(ttl(&mut c, "kt:n"), -1);
    assert_eq!(c.cmd("SET kt:m 1 EX 100"), ok());
    assert_eq!(c.cmd("MSET kt:m 2 kt:o 3"), ok());
    assert_eq!(ttl(&mut c, "kt:m"), -1);
    assert_eq!(c.cmd("SET kt:d 1 EX 100"), ok());
    assert_eq!(c.cmd("DEL kt:d"), int(1));
    assert_eq!(c.cmd("SET kt:d 2"), ok());
    assert_eq!(
        ttl(&mut c, "kt:d"),
        -1,
        "a recreated key starts without one"
    );
}

#[test]
fn a_key_whose_ttl_runs_out_disappears_from_every_node() {
    let cluster = cluster();
    let mut c = follower();
    assert_eq!(c.cmd("SET gone:a 1 PX 200"), ok());
    assert_eq!(c.cmd("SET gone:b 1"), ok());
    assert_eq!(c.cmd("PEXPIRE gone:b 300"), int(1));
    assert_eq!(c.cmd("SET gone:stay 1 EX 1000"), ok());
    assert!(
        disappears(&mut c, "gone:a", PATIENCE),
        "gone:a never expired"
    );
    assert!(
        disappears(&mut c, "gone:b", PATIENCE),
        "gone:b never expired"
    );
    for node in 1..=3 {
        let mut reader = cluster.client(node);
        assert_eq!(reader.cmd("GET gone:a"), nil(), "node {node}");
        assert_eq!(reader.cmd("EXISTS gone:a gone:b"), int(0), "node {node}");
        assert_eq!(reader.cmd("TTL gone:b"), int(-2), "node {node}");
        let keys = reader.cmd("KEYS gone:*");
        assert_eq!(keys.items(), [bulk("gone:stay")], "node {node}");
    }
    // The key is free again: SET NX succeeds, without the old TTL.
    assert_eq!(c.cmd("SET gone:a 2 NX"), ok());
    assert_eq!(c.cmd("TTL gone:a"), int(-1));
}

#[test]
fn ttls_survive_a_leader_change_and_keys_still_expire() {
    let cluster = Cluster::start("expiry-failover", 3, None);
    let old_leader = cluster.leader();
    let survivor = (1..=3).find(|n| *n != old_leader).unwrap();
    let mut c = cluster.client(survivor);
    assert_eq!(c.cmd("SET lc:short 1 PX 3000"), ok());
    assert_eq!(c.cmd("SET lc:long 1 EX 1000"), ok());
    assert_eq!(c.cmd("SET lc:plain 1"), ok());
    cluster.stop(old_leader);
    // The new leader restarts each deadline from the remaining TTL it
    // finds recorded, so the short key still goes, and the long one keeps
    // a TTL no longer than it was given.
    assert!(
        disappears(&mut c, "lc:short", PATIENCE * 3),
        "lc:short survived the leader change"
    );
    assert!((1..=1000).contains(&ttl(&mut c, "lc:long")));
    assert_eq!(ttl(&mut c, "lc:plain"), -1);
    assert_eq!(c.cmd("GET lc:long"), bulk("1"));
}

#[test]
fn expiry_commands_are_listed_for_tools() {
    let mut c = follower();
    for name in ["expire", "pexpireat", "pttl", "expiretime", "persist"] {
        let info = c.call(&["COMMAND", "INFO", name]);
        assert_eq!(info.items()[0].items()[0], bulk(name));
    }
    assert_eq!(c.cmd("TYPE ex:nothing"), Value::Simple("none".into()));
}

#[test]
fn times_out_of_range_follow_redis_and_a_far_future_gets_the_longest_ttl() {
    let mut c = follower();
    let invalid = |command: &str| format!("ERR invalid expire time in '{command}' command");
    assert_eq!(c.cmd("SET far:k v"), ok());
    // Relative times that overflow when added to now, and seconds that
    // overflow in ms, are refused as Redis refuses them.
    assert_eq!(
        c.cmd("PEXPIRE far:k 9223372036854770000").error(),
        invalid("pexpire")
    );
    assert_eq!(
        c.cmd("EXPIRE far:k 9223370399119966").error(),
        invalid("expire")
    );
    assert_eq!(
        c.cmd("EXPIRE far:k -9223372036854776").error(),
        invalid("expire")
    );
    assert_eq!(
        c.cmd("SET far:k v EX 9223370399119966").error(),
        invalid("set")
    );
    assert_eq!(ttl(&mut c, "far:k"), -1);
    // An absolute time is never out of range: far ahead, the key keeps
    // Synod's longest TTL (2^62 ms); far behind, it is deleted.
    assert_eq!(c.cmd("PEXPIREAT far:k 9223372036854770000"), int(1));
    let longest = synod_wire::limits::MAX_KEY_TTL_MS as i64;
    let left = pttl(&mut c, "far:k");
    assert!(left > longest - 600_000 && left <= longest, "{left}");
    assert_eq!(c.cmd("PEXPIRE far:k 9000000000000000000"), int(1));
    assert!(pttl(&mut c, "far:k") <= longest);
    assert_eq!(c.cmd("PEXPIREAT far:k -9223372036854770000"), int(1));
    assert_eq!(ttl(&mut c, "far:k"), -2);
    assert_eq!(c.cmd("SET far:k v PXAT 9223372036854770000"), ok());
    assert!(pttl(&mut c, "far:k") > longest - 600_000);
}
