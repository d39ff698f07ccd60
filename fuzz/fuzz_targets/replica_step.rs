//! A `synod_paxos::Replica` (node 1 of members 1, 2, 3) driven by the fuzzer as its peers and
//! its driver: peer messages (generated envelopes of every kind, or peer frames decoded with
//! `synod_net::decode_peer`), ticks, proposals, reads, campaigns, compactions, snapshot
//! installs and crash-restarts from its `MemStorage`. Each `Ready` is handled as the driver
//! must: its records persisted, its committed slots applied (here: counted), its messages
//! dropped (the fuzzer plays the peers).
//!
//! The peers may lie, so no safety property is checked here; the replica must never panic,
//! hang or run out of memory on what they send, and must deliver committed slots in order
//! without gaps (the driver's state machine asserts that).
#![no_main]

use arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use synod_fuzz::{count, generate};
use synod_paxos::{Config, Envelope, Instant, MemStorage, NodeId, Replica, Slot, Storage};

const ME: NodeId = NodeId(1);

/// Most actions one input drives.
const MAX_ACTIONS: usize = 64;

/// The replica, its storage and what its state machine would have applied.
struct Node {
    config: Config,
    storage: MemStorage,
    replica: Replica,
    applied: Slot,
    now_us: u64,
}

impl Node {
    fn new() -> Node {
        let config = Config::new(ME, vec![NodeId(1), NodeId(2), NodeId(3)]);
        let storage = MemStorage::new();
        let replica = Replica::new(
            config.clone(),
            storage.load().expect("load"),
            Slot(0),
            Instant::from_micros(0),
        )
        .expect("a valid configuration");
        Node {
            config,
            storage,
            replica,
            applied: Slot(0),
            now_us: 0,
        }
    }

    fn now(&self) -> Instant {
        Instant::from_micros(self.now_us)
    }

    /// Carries out the replica's `Ready`: persist, then apply in order.
    fn handle_ready(&mut self) {
        let ready = self.replica.ready();
        self.storage.persist(&ready.persist).expect("persist");
        self.replica.persisted(self.now(), ready.seq);
        for (slot, _) in &ready.committed {
            assert_eq!(
                *slot,
                self.applied.next(),
                "committed slots out of order (applied through {})",
                self.applied
            );
            self.applied = *slot;
        }
    }

    /// A crash and restart: unsynced records are lost; the state machine keeps what it applied.
    fn restart(&mut self) {
        self.storage.crash();
        let durable = self.storage.load().expect("load");
        self.replica = Replica::new(self.config.clone(), durable, self.applied, self.now())
            .expect("a node that ran restarts");
    }
}

/// One peer message: generated, or a peer frame's body decoded.
fn peer_message(u: &mut Unstructured<'_>) -> Result<Option<Envelope>> {
    if u.ratio(1, 8)? {
        let bytes = generate::bytes(u, 96)?;
        return Ok(synod_net::decode_peer(&bytes).ok().map(|mut envelope| {
            // The transport delivers a frame to the node it came in for.
            envelope.to = ME;
            envelope
        }));
    }
    generate::envelope(u, ME).map(Some)
}

fn run(u: &mut Unstructured<'_>) -> Result<()> {
    let mut node = Node::new();
    let mut read_id = 0;
    for _ in 0..MAX_ACTIONS {
        if u.is_empty() {
            break;
        }
        let now = node.now();
        match u.int_in_range(0..=15u8)? {
            0..=6 => {
                let Some(envelope) = peer_message(u)? else {
                    continue;
                };
                node.replica.step(now, envelope);
            }
            7..=9 => {
                node.now_us += u.int_in_range(0..=1_000_000)?;
                let now = node.now();
                node.replica.tick(now);
            }
            10 => {
                let _ = node.replica.propose(now, generate::bytes(u, 16)?);
            }
            11 => {
                read_id += 1;
                let _ = node.replica.read(now, read_id);
            }
            12 => node.replica.campaign(now),
            13 => {
                let through = Slot(node.applied.0.saturating_sub(count(u, 4) as u64));
                node.replica.compact(through);
            }
            14 => {
                let through = Slot(node.replica.commit_index().0 + 1 + count(u, 8) as u64);
                // A snapshot of this cluster carries its memberships.
                let membership = node.replica.membership().clone();
                if node.replica.install_snapshot(now, through, membership) {
                    node.applied = through;
                }
            }
            _ => {
                node.handle_ready();
                node.restart();
            }
        }
        node.handle_ready();
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = run(&mut Unstructured::new(data));
});
