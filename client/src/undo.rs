//! Undoing a half-done wait when its future is dropped.

use synod_kvstore::Op;

use crate::client::Client;

/// Sends `op` in the background when dropped while armed: how a dropped
/// [`Mutex::lock`](crate::Mutex::lock) leaves the lock's queue and a
/// dropped [`Election::campaign`](crate::Election::campaign) leaves the
/// election's.
pub(crate) struct UndoOnDrop {
    client: Client,
    op: Option<Op>,
}

impl UndoOnDrop {
    pub(crate) fn new(client: &Client, op: Op) -> UndoOnDrop {
        UndoOnDrop {
            client: client.clone(),
            op: Some(op),
        }
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
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let client = self.client.clone();
            runtime.spawn(async move {
                if let Err(e) = client.write(op).await {
                    tracing::debug!(error = %e, "undoing an abandoned wait failed");
                }
            });
        }
    }
}
