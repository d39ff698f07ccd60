//! Log compaction, and snapshots shipped to lagging nodes.

use synod_kvstore::{SnapshotChunk, StateMachine};
use synod_paxos::Slot;

use super::coord_oracles::ReplicaView;
use super::{Event, Simulation, COMPACT_EVERY_SLOTS, COMPACT_KEEP_SLOTS};

/// A snapshot of `state_machine`, all its chunks.
pub(super) fn snapshot_chunks(state_machine: &StateMachine) -> Result<Vec<SnapshotChunk>, String> {
    let snapshot = state_machine.snapshot().map_err(|e| e.to_string())?;
    snapshot
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())
}

impl Simulation {
    /// Snapshots the state machine durably and compacts the log once enough
    /// slots were applied since the last time.
    pub(super) fn maybe_compact(&mut self, node: usize) -> Result<(), String> {
        let n = &mut self.nodes[node];
        let Some(replica) = n.replica.as_mut() else {
            return Ok(());
        };
        let applied = n.state_machine.applied_index();
        if applied < replica.compacted_through().0 + COMPACT_EVERY_SLOTS + COMPACT_KEEP_SLOTS {
            return Ok(());
        }
        n.state_machine.flush().map_err(|e| e.to_string())?;
        n.durable_snapshot = (Slot(applied), snapshot_chunks(&n.state_machine)?);
        replica.compact(Slot(applied - COMPACT_KEEP_SLOTS));
        self.drive(node, &[])
    }

    pub(super) fn send_snapshot(&mut self, from: usize, to: usize) {
        let n = &self.nodes[from];
        let slot = n.applied();
        let Ok(chunks) = snapshot_chunks(&n.state_machine) else {
            return;
        };
        self.note(|| {
            format!(
                "n{} sends a snapshot at slot {slot} to n{}",
                from + 1,
                to + 1
            )
        });
        if self.partitions.blocks(from, to) || self.copies() == 0 {
            return;
        }
        let delay = self.delay() * 4;
        self.schedule(delay, Event::Snapshot { to, slot, chunks });
    }

    pub(super) fn install_snapshot(
        &mut self,
        node: usize,
        slot: Slot,
        chunks: Vec<SnapshotChunk>,
    ) -> Result<(), String> {
        let now = self.local_now(node);
        let n = &mut self.nodes[node];
        let Some(replica) = n.replica.as_mut() else {
            return Ok(());
        };
        if slot <= replica.commit_index() {
            return Ok(());
        }
        let installed = n
            .state_machine
            .install_snapshot(chunks.clone())
            .map_err(|e| format!("n{} cannot install a snapshot: {e}", node + 1))?;
        assert_eq!(Slot(installed), slot, "snapshot slot");
        n.durable_snapshot = (slot, chunks);
        // The runtime rebuilds session deadlines from the installed state.
        let was_leading = n.timer.leading().is_some();
        n.timer.reset();
        n.view = ReplicaView::read(&n.state_machine)?;
        assert!(
            replica.install_snapshot(now, slot),
            "snapshot ahead of the commit index"
        );
        if was_leading {
            self.truth.term_ended(node, self.now_us);
        }
        self.snapshots_installed += 1;
        self.note(|| format!("n{} installed a snapshot at slot {slot}", node + 1));
        self.drive(node, &[])
    }
}
