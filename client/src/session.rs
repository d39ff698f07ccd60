//! Sessions: a TTL the client keeps alive in the background; locks,
//! elections and ephemeral keys belong to one and end with it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use synod_wire::{CloseSession, ErrorCode, KeepAlive, Op, OpenSession, Outcome, Put};
use tokio::sync::{watch, OwnedMutexGuard};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::client::Client;
use crate::error::ClientError;
use crate::options::WriteOptions;

/// Pause before retrying a keep-alive that failed for a reason other than
/// the session being gone.
const KEEP_ALIVE_RETRY: Duration = Duration::from_millis(100);

/// A session: opened with a TTL, kept alive by a background task while any
/// clone of it exists, closed by [`close`](Session::close) or (best effort)
/// when the last clone is dropped.
///
/// The cluster's leader expires a session whose TTL passes without a
/// keep-alive (on its own clock, never earlier): its ephemeral keys are
/// deleted, its locks released (into lock-delay) and its elections passed
/// on. The keep-alive task sends one keep-alive every third of the TTL. If
/// the cluster says the session is gone, or no keep-alive was confirmed
/// for a whole TTL (so it may have expired), the session is *lost*:
/// [`is_lost`](Session::is_lost) turns true, [`lost`](Session::lost)
/// resolves, waiting [`Mutex::lock`](crate::Mutex::lock) and
/// [`Election::campaign`](crate::Election::campaign) calls fail with
/// [`ClientError::SessionLost`], and the task stops (after asking the
/// cluster to close the session, in case it still lives). A lost session
/// does not come back: open a new one.
///
/// Cheap to clone; clones share the session.
///
/// ```no_run
/// # async fn demo(client: synod_client::Client) -> Result<(), synod_client::ClientError> {
/// use std::time::Duration;
/// use synod_client::Session;
/// let session = Session::open(&client, Duration::from_secs(10)).await?;
/// // An ephemeral key: deleted when the session ends.
/// session.put(b"workers/alice", b"ready").await?;
/// println!("session {}", session.id());
/// session.close().await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Session {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    id: u64,
    ttl: Duration,
    /// True once the session is lost or closed.
    lost: Arc<watch::Sender<bool>>,
    /// Set by `close`, so drop does not close again.
    closed: AtomicBool,
    keep_alive: JoinHandle<()>,
    /// One gate per lock name: the cluster grants a lock to a session, so
    /// the tasks sharing this session take it one at a time (see
    /// [`Mutex`](crate::Mutex)).
    lock_gates: std::sync::Mutex<HashMap<Vec<u8>, Arc<tokio::sync::Mutex<()>>>>,
    /// The gates of the locks a task of this session holds.
    held: std::sync::Mutex<HashMap<Vec<u8>, OwnedMutexGuard<()>>>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.inner.id)
            .field("ttl", &self.inner.ttl)
            .field("lost", &self.is_lost())
            .finish()
    }
}

impl Session {
    /// Opens a session that lives `ttl` after its last keep-alive (1 s to
    /// 1 h, whole milliseconds) and starts keeping it alive. One write
    /// through the log.
    pub async fn open(client: &Client, ttl: Duration) -> Result<Session, ClientError> {
        let ttl_ms = ttl.as_millis() as u64;
        let sent_at = Instant::now();
        let response = client
            .write(Op::OpenSession(OpenSession { ttl_ms }))
            .await?;
        let id = match response.outcome {
            Some(Outcome::OpenSession(open)) => open.session,
            other => {
                return Err(ClientError::Protocol(format!(
                    "open session answered with {other:?}"
                )))
            }
        };
        tracing::debug!(session = id, ttl_ms, "session opened");
        Ok(Session::keep(
            client,
            id,
            Duration::from_millis(ttl_ms),
            sent_at,
        ))
    }

    /// Takes over the session `id` that is still alive (opened by this
    /// program before a restart, or by another process, and
    /// [`detach`](Session::detach)ed or simply not closed), and starts
    /// keeping it alive; its ephemeral keys, locks and elections are this
    /// session's again. One keep-alive through the log.
    ///
    /// # Errors
    /// [`ClientError::SessionLost`] if the session is gone (expired or
    /// closed).
    pub async fn resume(client: &Client, id: u64) -> Result<Session, ClientError> {
        let sent_at = Instant::now();
        let response = match client.write(Op::KeepAlive(KeepAlive { session: id })).await {
            Err(e) if e.command_code() == Some(ErrorCode::SessionNotFound) => {
                return Err(ClientError::SessionLost { session: id })
            }
            result => result?,
        };
        let ttl_ms = match response.outcome {
            Some(Outcome::KeepAlive(kept)) => kept.ttl_ms,
            other => {
                return Err(ClientError::Protocol(format!(
                    "keep-alive answered with {other:?}"
                )))
            }
        };
        tracing::debug!(session = id, ttl_ms, "session resumed");
        Ok(Session::keep(
            client,
            id,
            Duration::from_millis(ttl_ms),
            sent_at,
        ))
    }

    /// Session `id`, confirmed alive at `confirmed_at`, kept alive from
    /// now on.
    fn keep(client: &Client, id: u64, ttl: Duration, confirmed_at: Instant) -> Session {
        let lost = Arc::new(watch::Sender::new(false));
        let keep_alive = tokio::spawn(keep_alive(
            client.clone(),
            id,
            ttl,
            confirmed_at,
            lost.clone(),
        ));
        Session {
            inner: Arc::new(Inner {
                client: client.clone(),
                id,
                ttl,
                lost,
                closed: AtomicBool::new(false),
                keep_alive,
                lock_gates: std::sync::Mutex::new(HashMap::new()),
                held: std::sync::Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Stops keeping the session alive without closing it, for this handle
    /// and every clone (which then count it lost), and returns its id: it
    /// lives on until its TTL passes, and [`resume`](Session::resume) takes
    /// it over again, from this process or another. Use it to hand a
    /// session across a restart, as etcd applications keep a lease id.
    pub fn detach(self) -> u64 {
        self.inner.closed.store(true, Ordering::SeqCst);
        self.inner.keep_alive.abort();
        self.inner.lost.send_replace(true);
        self.inner.id
    }

    /// The session's id (the store revision that opened it).
    pub fn id(&self) -> u64 {
        self.inner.id
    }

    /// Its TTL.
    pub fn ttl(&self) -> Duration {
        self.inner.ttl
    }

    /// The client it was opened with.
    pub fn client(&self) -> &Client {
        &self.inner.client
    }

    /// Whether the session is lost or closed (see the type docs).
    pub fn is_lost(&self) -> bool {
        *self.inner.lost.borrow()
    }

    /// Resolves when the session is lost or closed.
    pub async fn lost(&self) {
        let mut lost = self.inner.lost.subscribe();
        // Only fails if the sender is gone, which `self` prevents.
        let _ = lost.wait_for(|lost| *lost).await;
    }

    /// Writes `key` owned by this session (deleted when it ends); returns
    /// the write's revision.
    pub async fn put(&self, key: &[u8], value: &[u8]) -> Result<u64, ClientError> {
        let op = Op::Put(Put {
            key: key.to_vec(),
            value: value.to_vec(),
            prev_kv: false,
        });
        let options = WriteOptions::new().in_session(self);
        Ok(self.inner.client.write_with(op, &options).await?.revision)
    }

    /// Closes the session now: its ephemeral keys are deleted, its locks
    /// released to their next waiters (no lock-delay), its elections passed
    /// on. Stops the keep-alives. Closing a session that is already gone
    /// succeeds.
    pub async fn close(&self) -> Result<(), ClientError> {
        self.inner.closed.store(true, Ordering::SeqCst);
        self.inner.keep_alive.abort();
        self.inner.lost.send_replace(true);
        self.inner
            .client
            .close_session(self.inner.id)
            .await
            .map(|_was_open| ())
    }

    /// The gate of lock `name` among this session's tasks.
    pub(crate) fn lock_gate(&self, name: &[u8]) -> Arc<tokio::sync::Mutex<()>> {
        let mut gates = self.inner.lock_gates.lock().expect("gates lock");
        gates.entry(name.to_vec()).or_default().clone()
    }

    /// Keeps lock `name`'s gate closed while a task of this session holds
    /// the lock.
    pub(crate) fn hold(&self, name: &[u8], gate: OwnedMutexGuard<()>) {
        let mut held = self.inner.held.lock().expect("held lock");
        held.insert(name.to_vec(), gate);
    }

    /// Opens lock `name`'s gate to the session's next task, and forgets
    /// the gate if no task holds or waits for it (so a session that uses
    /// many lock names keeps no gate per name).
    pub(crate) fn release(&self, name: &[u8]) {
        let gate = self.inner.held.lock().expect("held lock").remove(name);
        drop(gate);
        let mut gates = self.inner.lock_gates.lock().expect("gates lock");
        if gates
            .get(name)
            .is_some_and(|gate| Arc::strong_count(gate) == 1)
        {
            gates.remove(name);
        }
    }

    pub(crate) fn lost_error(&self) -> ClientError {
        ClientError::SessionLost {
            session: self.inner.id,
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.keep_alive.abort();
        if self.closed.load(Ordering::SeqCst) || *self.lost.borrow() {
            return;
        }
        // Best effort: without a runtime the session expires after its TTL.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let client = self.client.clone();
            let session = self.id;
            runtime.spawn(async move {
                let _ = client.close_session(session).await;
            });
        }
    }
}

/// Keeps session `id` alive until it is lost: a keep-alive every third of
/// the TTL, retried quickly while it fails, each bounded by the time left
/// before the last confirmed one runs out.
async fn keep_alive(
    client: Client,
    id: u64,
    ttl: Duration,
    opened_at: Instant,
    lost: Arc<watch::Sender<bool>>,
) {
    let period = ttl / 3;
    // The session lives at least a TTL after the send of the last
    // keep-alive (or open) the cluster confirmed.
    let mut confirmed_at = opened_at;
    let mut next_at = opened_at + period;
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(next_at) => {}
            _ = client.closed() => {
                // Nothing can keep the session alive any more; it expires
                // after its TTL on the cluster.
                tracing::debug!(session = id, "client closed: session lost");
                lost.send_replace(true);
                return;
            }
        }
        let sent_at = Instant::now();
        let left = (confirmed_at + ttl).saturating_duration_since(sent_at);
        if left.is_zero() {
            tracing::warn!(
                session = id,
                "no keep-alive confirmed within the TTL: session lost"
            );
            lost.send_replace(true);
            // It may still live: end it rather than leave its locks held.
            let _ = client.close_session(id).await;
            return;
        }
        let options = WriteOptions::new().timeout(left.min(period.max(KEEP_ALIVE_RETRY)));
        match client
            .write_with(Op::KeepAlive(KeepAlive { session: id }), &options)
            .await
        {
            Ok(_) => {
                confirmed_at = sent_at;
                next_at = sent_at + period;
            }
            Err(e) if e.command_code() == Some(ErrorCode::SessionNotFound) => {
                tracing::warn!(session = id, "the cluster ended the session: session lost");
                lost.send_replace(true);
                return;
            }
            Err(e) => {
                tracing::debug!(session = id, error = %e, "keep-alive failed; retrying");
                next_at = Instant::now() + KEEP_ALIVE_RETRY;
            }
        }
    }
}

impl Client {
    /// Closes session `id`, whoever holds it (etcd's lease revoke): its
    /// ephemeral keys are deleted, its locks released to their next waiters,
    /// its elections passed on. Returns whether it was open. A [`Session`]
    /// that was keeping it alive finds it lost.
    pub async fn close_session(&self, id: u64) -> Result<bool, ClientError> {
        match self
            .write(Op::CloseSession(CloseSession { session: id }))
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.command_code() == Some(ErrorCode::SessionNotFound) => Ok(false),
            Err(e) => Err(e),
        }
    }
}
