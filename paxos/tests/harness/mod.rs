//! A hand-driven network of replicas for the focused tests.
#![allow(dead_code)]

use synod_paxos::{
    Config, DurableState, Envelope, Instant, NodeId, ReadId, Ready, Replica, Slot, Value,
};

/// Node ids 1 to `n`.
pub fn members(n: u32) -> Vec<NodeId> {
    (1..=n).map(NodeId).collect()
}

/// `ms` milliseconds after the origin.
pub fn at_ms(ms: u64) -> Instant {
    Instant::from_micros(ms * 1000)
}

/// Node `id` of `n` with the default configuration and nothing durable.
pub fn replica(id: u32, n: u32) -> Replica {
    with_config(Config::new(NodeId(id), members(n)))
}

/// A fresh replica with `config`.
pub fn with_config(config: Config) -> Replica {
    Replica::new(config, DurableState::default(), Slot(0), at_ms(0)).unwrap()
}

/// Everything the nodes sent while messages were delivered.
#[derive(Default)]
pub struct Delivered {
    /// What each node applied, by index.
    pub applied: Vec<Vec<(Slot, Value)>>,
    /// Every envelope delivered (or dropped by the filter), in order.
    pub sent: Vec<Envelope>,
    /// The reads each node released, with its commit index then (what it
    /// applied before serving them).
    pub reads: Vec<Vec<(ReadId, Slot)>>,
    /// The reads each node failed.
    pub failed_reads: Vec<Vec<ReadId>>,
}

/// Delivers messages among `nodes` at `now` until none is left, dropping
/// those `keep` refuses.
pub fn deliver_where(
    nodes: &mut [Replica],
    now: Instant,
    keep: impl Fn(&Envelope) -> bool,
) -> Delivered {
    let mut out = Delivered {
        applied: vec![Vec::new(); nodes.len()],
        sent: Vec::new(),
        reads: vec![Vec::new(); nodes.len()],
        failed_reads: vec![Vec::new(); nodes.len()],
    };
    loop {
        let mut in_flight = Vec::new();
        let mut quiet = true;
        for (i, node) in nodes.iter_mut().enumerate() {
            let ready = durable_ready(node, now);
            quiet &= ready.is_empty();
            let commit = node.commit_index();
            out.reads[i].extend(ready.reads.iter().map(|id| (*id, commit)));
            out.failed_reads[i].extend(ready.failed_reads);
            out.applied[i].extend(ready.committed);
            in_flight.extend(ready.messages);
        }
        if quiet {
            return out;
        }
        for envelope in in_flight {
            out.sent.push(envelope.clone());
            if keep(&envelope) {
                nodes[envelope.to.0 as usize - 1].step(now, envelope);
            }
        }
    }
}

/// Takes `node`'s output and reports its records durable at once (a disk
/// that syncs instantly), so its own acceptor's replies reach its proposer.
pub fn durable_ready(node: &mut Replica, now: Instant) -> Ready {
    let ready = node.ready();
    node.persisted(now, ready.seq);
    ready
}

/// Delivers every message among `nodes` at `now` until none is left.
pub fn deliver_all(nodes: &mut [Replica], now: Instant) -> Delivered {
    deliver_where(nodes, now, |_| true)
}

/// A cluster of `n` fresh nodes in which node 1 was elected at 1 ms.
pub fn cluster_led_by_node_1(n: u32) -> Vec<Replica> {
    let mut nodes: Vec<Replica> = (1..=n).map(|id| replica(id, n)).collect();
    nodes[0].campaign(at_ms(1));
    deliver_all(&mut nodes, at_ms(1));
    assert!(nodes[0].is_leader());
    nodes
}

/// An envelope from `from` to `to`.
pub fn envelope(from: u32, to: u32, message: synod_paxos::Message) -> Envelope {
    Envelope {
        from: NodeId(from),
        to: NodeId(to),
        message,
    }
}
