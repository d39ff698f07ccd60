//! Undoing a half-done wait when its future is dropped.

use std::sync::{Arc, Mutex};

use synod_kvstore::Op;

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
/// request has been applied, once, and the undo comes after it.
pub(crate) struct UndoOnDrop {
    client: Client,
    op: Option<Op>,
    in_flight: InFlight,
}

impl UndoOnDrop {
    pub(crate) fn new(client: &Client, op: Op) -> UndoOnDrop {
        UndoOnDrop {
            client: client.clone(),
            op: Some(op),
            in_flight: Arc::new(Mutex::new(None)),
        }
    }

    /// Where the wait's writes record what they are sending.
    pub(crate) fn in_flight(&self) -> &InFlight {
        &self.in_flight
    }

    /// The wait completed: nothing to undo.
    pub(crate) fn disarm(&mut self) {
        self.op = None;
    }
}

impl Drop for UndoOnDrop {
    fn drop(&mut self) {
        let Some(op) = self.op.take() else {
            return;
        };
        let pending = self.in_flight.lock().expect("in-flight lock").take();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let client = self.client.clone();
            runtime.spawn(async move {
                if let Some(request) = pending {
                    client.settle(&request).await;
                }
                if let Err(e) = client.write(op).await {
                    tracing::debug!(error = %e, "undoing an abandoned wait failed");
                }
            });
        }
    }
}
