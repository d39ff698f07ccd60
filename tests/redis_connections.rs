//! Connections the Redis endpoint must not keep forever: a silent
//! connection's session (and its locks) ends after its TTL, an idle
//! connection is closed after `[redis] timeout_s`, and `[redis]
//! max_clients` caps how many are open, as Redis's `timeout` and
//! `maxclients` do.

mod quic_cluster;

use std::time::Duration;

use quic_cluster::{bulk, nil, ok, Client, Cluster, Value};

#[test]
fn the_locks_of_a_connection_silent_past_its_session_ttl_are_released() {
    let cluster = Cluster::start_with("silentlock", 3, |config| {
        config.sessions.lock_delay_ms = 0;
    });
    let node = cluster.follower();
    let mut holder = cluster.client(node);
    let token = holder
        .cmd("SYNOD.LOCK cl:lock 1000")
        .int()
        .expect("granted");
    assert!(token > 0);
    // The holder's host is gone, its connection still open: it says
    // nothing more. Another client gets the lock once the holder's session
    // has expired.
    let mut other = cluster.client(node);
    let mut granted = None;
    for _ in 0..600 {
        match other.cmd("SYNOD.LOCK cl:lock 5000") {
            Value::Int(t) => {
                granted = Some(t);
                break;
            }
            reply => assert_eq!(reply, nil(), "refused while held"),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let granted = granted.expect("the silent connection's lock is released");
    assert!(granted > token, "a newer fencing token");
    // The silent client, back, hears that its session ended.
    let reply = holder.cmd("SYNOD.LOCK cl:lock");
    assert!(
        reply.error().contains("session") && reply.error().contains("expired"),
        "{reply:?}"
    );
}

#[test]
fn a_connection_that_keeps_talking_keeps_its_lock() {
    let cluster = Cluster::start_with("talkinglock", 1, |config| {
        config.sessions.lock_delay_ms = 0;
    });
    let mut holder = cluster.client(1);
    let token = holder
        .cmd("SYNOD.LOCK cl:lock 1000")
        .int()
        .expect("granted");
    let mut other = cluster.client(1);
    // Three TTLs of PINGs every 200 ms: the session stays alive.
    for _ in 0..15 {
        assert_eq!(holder.cmd("PING"), Value::Simple("PONG".into()));
        assert_eq!(other.cmd("SYNOD.LOCK cl:lock 1000"), nil());
        std::thread::sleep(Duration::from_millis(200));
    }
    let status = holder.cmd("SYNOD.LOCKINFO cl:lock");
    assert!(
        format!("{status:?}").contains(&token.to_string()),
        "{status:?}"
    );
}

#[test]
fn an_idle_connection_is_closed_after_the_timeout() {
    let cluster = Cluster::start_with("idle", 1, |config| {
        config.redis.timeout_s = 1;
    });
    let mut client = cluster.client(1);
    assert_eq!(
        client.cmd("CONFIG GET timeout"),
        Value::Array(Some(vec![bulk("timeout"), bulk("1")]))
    );
    // Talking every 300 ms for 2 s keeps it open...
    for _ in 0..7 {
        assert_eq!(client.cmd("SET idle:k v"), ok());
        std::thread::sleep(Duration::from_millis(300));
    }
    // ...silence closes it.
    assert!(client.closed(), "closed after a second of silence");
}

#[test]
fn max_clients_refuses_one_connection_more() {
    let cluster = Cluster::start_with("maxclients", 1, |config| {
        config.redis.max_clients = 2;
    });
    // The cluster's start-up connection may not be counted out yet.
    let connect = || -> Client {
        for _ in 0..600 {
            let mut client = cluster.client(1);
            if client.cmd("PING") == Value::Simple("PONG".into()) {
                return client;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("no connection accepted");
    };
    let mut first = connect();
    let _second = connect();
    let mut third = cluster.client(1);
    assert_eq!(
        third.read(),
        Value::Error("ERR max number of clients reached".into())
    );
    assert_eq!(
        first.cmd("CONFIG GET maxclients"),
        Value::Array(Some(vec![bulk("maxclients"), bulk("2")]))
    );
    assert!(first
        .cmd("CONFIG SET maxclients 5")
        .error()
        .contains("node's configuration"));
}

#[test]
fn before_auth_only_small_requests_are_read() {
    let cluster = Cluster::start("preauth", 1, Some("sesame"));
    let mut stranger = cluster.client(1);
    let eleven: Vec<&str> = std::iter::once("MSET")
        .chain(std::iter::repeat_n("k", 10))
        .collect();
    let reply = stranger.call(&eleven);
    assert!(
        reply
            .error()
            .starts_with("ERR Protocol error: unauthenticated"),
        "{reply:?}"
    );
    assert!(stranger.closed(), "the connection is closed after it");
    let mut member = cluster.client(1);
    assert_eq!(member.cmd("AUTH sesame"), ok());
    let pairs: Vec<&str> = std::iter::once("MSET")
        .chain(std::iter::repeat_n("k", 20))
        .collect();
    assert_eq!(member.call(&pairs), ok());
}

#[test]
fn a_pattern_crafted_to_backtrack_gets_an_error_not_a_cpu() {
    let cluster = Cluster::start("glob", 1, None);
    let mut client = cluster.client(1);
    let long = "a".repeat(4090);
    for i in 0..20 {
        assert_eq!(client.cmd(&format!("SET {long}{i:02} v")), ok());
    }
    let pattern = format!("*{}b", "a".repeat(2048));
    for command in [
        vec!["KEYS", pattern.as_str()],
        vec!["SCAN", "0", "MATCH", pattern.as_str(), "COUNT", "100"],
    ] {
        let reply = client.call(&command);
        assert!(
            reply.error().contains("use a simpler pattern"),
            "{}: {reply:?}",
            command[0]
        );
    }
    // Ordinary patterns are answered.
    let keys = client.call(&["KEYS", &format!("{long}0*")]);
    assert_eq!(keys.items().len(), 10);
}
