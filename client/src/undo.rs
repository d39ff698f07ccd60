//! Undoing a half-done wait when its future is dropped.

use std::sync::{Arc, Mutex};

use synod_wire::Op;
use tokio::sync::OwnedMutexGuard;

use crate::client::{Client, InFlight};

/// Sends `op` in the background when dropped while armed: how a dropped
/// [`Mutex::lock`](crate::Mutex::lock) or
/// [`Mutex::try_lock`](crate::Mutex::try_lock) leaves the lock (or its
/// queue) and a dropped [`Election::campaign`](crate::Election::campaign)
/// leaves the election's.
///
/// The wait's own request may still be on its way when the future is
/// dropped (sent, not answered; or about to be retried). Sent after it,
/// the undo could be applied first and the request then take the lock for
/// nobody. So the undo first sends that request again under its own
/// exactly-once id and seq ([`Client::settle`]): once that is answered the
/// request has been applied, once, and the undo comes after it. A lock's
/// session gate (see [`Session`](crate::Session)) stays closed until the
/// undo is done, so a later call of the same session is not undone by it.
pub(crate) struct UndoOnDrop {
    client: Client,
    op: Option<Op>,
    in_flight: InFlight,
    gate: Option<OwnedMutexGuard<()>>,
}

impl UndoOnDrop {
    pub(crate) fn new(client: &Client, op: Op) -> UndoOnDrop {
        UndoOnDrop {
            client: client.clone(),
            op: Some(op),
            in_flight: Arc::new(Mutex::new(None)),
            gate: None,
        }
    }

    /// Keeps `gate` closed until the wait completes or its undo is done.
    pub(crate) fn with_gate(mut self, gate: OwnedMutexGuard<()>) -> UndoOnDrop {
        self.gate = Some(gate);
        self
    }

    /// Where the wait's writes record what they are sending.
    pub(crate) fn in_flight(&self) -> &InFlight {
        &self.in_flight
    }

    /// The wait completed: nothing to undo. Returns the gate.
    pub(crate) fn disarm(&mut self) -> Option<OwnedMutexGuard<()>> {
        self.op = None;
        self.gate.take()
    }
}

impl Drop for UndoOnDrop {
    fn drop(&mut self) {
        let Some(op) = self.op.take() else {
            return;
        };
        let pending = self.in_flight.lock().expect("in-flight lock").take();
        let gate = self.gate.take();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let client = self.client.clone();
            runtime.spawn(async move {
                if let Some(request) = pending {
                    client.settle(&request).await;
                }
                if let Err(e) = client.write(op).await {
                    tracing::debug!(error = %e, "undoing an abandoned wait failed");
                }
                drop(gate);
            });
        }
    }
}
