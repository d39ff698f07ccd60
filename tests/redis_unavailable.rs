//! What a Redis client hears when the cluster cannot serve: `UNCERTAIN`
//! for a write that reached a leader and may have been applied (a client
//! must not blindly retry it), `TRYAGAIN` only for a command certainly not
//! applied (which Redis cluster clients retry on their own).

mod quic_cluster;

use quic_cluster::{ok, Cluster, Value};

fn error_code(reply: &Value) -> String {
    reply
        .error()
        .split(' ')
        .next()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn a_leader_cut_off_answers_uncertain_for_its_write_and_tryagain_after() {
    // A long election timeout keeps the leader leading (it steps down once
    // it has not heard a quorum for that long) while the followers stop.
    let cluster = Cluster::start_with("unavailable", 3, |config| {
        config.timing.redis_deadline_ms = 1_500;
        config.timing.election_timeout_ms = 8_000;
        config.timing.lease_ms = 2_000;
    });
    let leader = cluster.leader();
    let mut c = cluster.client(leader);
    assert_eq!(c.cmd("SET un:k 1"), ok());
    for node in 1..=3 {
        if node != leader {
            cluster.stop(node);
        }
    }
    // The leader proposes the write but hears no quorum.
    let write = c.cmd("INCR un:k");
    assert_eq!(error_code(&write), "UNCERTAIN", "{write:?}");
    // Once it steps down, reads and writes that find no leader were
    // certainly not applied.
    for _ in 0..200 {
        let status = c.cmd("SYNOD.STATUS");
        if quic_cluster::field(&status, "role") != Some(&quic_cluster::bulk("leader")) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let read = c.cmd("GET un:k");
    assert_eq!(error_code(&read), "TRYAGAIN", "{read:?}");
    let write = c.cmd("SET un:other 1");
    assert_eq!(error_code(&write), "TRYAGAIN", "{write:?}");
}
