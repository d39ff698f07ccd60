//! Locks with fencing tokens: a FIFO queue in the state machine, waited on
//! through the watch of the lock's holder changes.

use synod_wire::{
    EventFilter, LockHolder, LockHolderResponse, LockResponse, LockStatus, Op, Outcome, Unlock,
};

use crate::client::Client;
use crate::error::ClientError;
use crate::options::WriteOptions;
use crate::session::Session;
use crate::undo::UndoOnDrop;
use crate::watch::Watcher;

/// Proof of holding a lock: the lock's name and the revision at which it
/// was granted. Tokens of one lock strictly increase with every grant.
///
/// Pass it with a write ([`Client::fenced`](crate::Client::fenced),
/// [`WriteOptions::fenced`](crate::WriteOptions::fenced)) and the cluster
/// applies the write only while this grant is still the lock's current one:
/// a holder whose session expired, or who unlocked, cannot write with it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FencingToken {
    /// The lock's name.
    pub lock: Vec<u8>,
    /// The revision of the grant.
    pub token: u64,
}

/// A lock held by at most one [`Session`] at a time, granted in FIFO order.
///
/// [`lock`](Mutex::lock) queues the session and waits for its grant without
/// polling: it watches the lock's holder changes (a watch stream on which
/// the node sends each change as it applies it). The grant comes with a
/// [`FencingToken`]. The lock is released by [`unlock`](Mutex::unlock),
/// by closing the session (to the next waiter at once), or by the session's
/// expiry (to the next waiter after the cluster's lock-delay, so a holder
/// that does not know yet that it lost the lock has time to notice).
///
/// ```no_run
/// # async fn demo(client: synod_client::Client) -> Result<(), synod_client::ClientError> {
/// use std::time::Duration;
/// use synod_client::{Mutex, Session};
/// let session = Session::open(&client, Duration::from_secs(10)).await?;
/// let mutex = Mutex::new(&session, "jobs/report");
/// let token = mutex.lock().await?;
/// // Refused by the cluster if we lost the lock meanwhile.
/// client.fenced(&token).put(b"report/status", b"running").await?;
/// mutex.unlock().await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Mutex {
    session: Session,
    name: Vec<u8>,
}

impl Mutex {
    /// The lock `name` (1 to 256 bytes; its own namespace, apart from keys)
    /// for `session`.
    pub fn new(session: &Session, name: impl Into<Vec<u8>>) -> Mutex {
        Mutex {
            session: session.clone(),
            name: name.into(),
        }
    }

    /// The lock's name.
    pub fn name(&self) -> &[u8] {
        &self.name
    }

    /// The session that locks.
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// Waits until the session holds the lock; returns its fencing token.
    ///
    /// Waiters are granted the lock in the order they asked. The cluster
    /// grants a lock to a session, so tasks sharing one session take it one
    /// at a time: a second `lock` through the same session waits for the
    /// first holder's [`unlock`](Mutex::unlock) (it is not re-entrant; a
    /// task that locks twice waits for itself). Dropping the future before
    /// it returns gives up the place in the queue (and the lock, had it
    /// just been granted), in the background.
    ///
    /// # Errors
    /// [`ClientError::SessionLost`] if the session is lost while waiting;
    /// call errors of the requests it makes.
    pub async fn lock(&self) -> Result<FencingToken, ClientError> {
        if self.session.is_lost() {
            return Err(self.session.lost_error());
        }
        let gate = tokio::select! {
            gate = self.session.lock_gate(&self.name).lock_owned() => gate,
            _ = self.session.lost() => return Err(self.session.lost_error()),
        };
        let mut undo = UndoOnDrop::new(self.client(), self.unlock_op()).with_gate(gate);
        loop {
            let (lock, revision) = self.request(true, &undo).await?;
            match lock.lock_status() {
                LockStatus::Granted => {
                    self.hold(undo.disarm());
                    return Ok(self.token(lock.token));
                }
                LockStatus::Queued => {}
                other => {
                    return Err(ClientError::Protocol(format!(
                        "a waiting lock request answered {other:?}"
                    )))
                }
            }
            tokio::select! {
                granted = self.wait_for_grant(revision + 1) => match granted? {
                    Some(token) => {
                        self.hold(undo.disarm());
                        return Ok(token);
                    }
                    // Out of the queue without a grant: ask again.
                    None => continue,
                },
                _ = self.session.lost() => return Err(self.session.lost_error()),
            }
        }
    }

    /// Takes the lock if it is free (and not in lock-delay); returns its
    /// token, or `None` if someone else holds it or it is delayed.
    pub async fn try_lock(&self) -> Result<Option<FencingToken>, ClientError> {
        // Another task of this session holds it (or is taking it).
        let Ok(gate) = self.session.lock_gate(&self.name).try_lock_owned() else {
            return Ok(None);
        };
        // Dropped before the answer, the grant it may have taken would be
        // held by the session for nobody: give it back.
        let mut undo = UndoOnDrop::new(self.client(), self.unlock_op()).with_gate(gate);
        let (lock, _) = self.request(false, &undo).await?;
        let gate = undo.disarm();
        Ok(match lock.lock_status() {
            LockStatus::Granted => {
                self.hold(gate);
                Some(self.token(lock.token))
            }
            _ => None,
        })
    }

    /// Releases the lock (the next waiter is granted it), or leaves its
    /// queue.
    ///
    /// # Errors
    /// [`ClientError::Command`] with
    /// [`NotLockHolder`](synod_wire::ErrorCode::NotLockHolder) if the
    /// session neither holds nor waits for it (it was lost with the
    /// session, say).
    pub async fn unlock(&self) -> Result<(), ClientError> {
        let result = self.client().write(self.unlock_op()).await.map(|_| ());
        self.session.release(&self.name);
        result
    }

    /// Who holds the lock now, with which token, and who waits
    /// (linearizable).
    pub async fn holder(&self) -> Result<LockHolderResponse, ClientError> {
        Ok(self.client().lock_holder(&self.name).await?.0)
    }

    fn client(&self) -> &Client {
        self.session.client()
    }

    /// Keeps the session's gate of this lock closed while it is held.
    fn hold(&self, gate: Option<tokio::sync::OwnedMutexGuard<()>>) {
        if let Some(gate) = gate {
            self.session.hold(&self.name, gate);
        }
    }

    fn token(&self, token: u64) -> FencingToken {
        FencingToken {
            lock: self.name.clone(),
            token,
        }
    }

    fn unlock_op(&self) -> Op {
        Op::Unlock(Unlock {
            name: self.name.clone(),
            session: self.session.id(),
        })
    }

    /// Asks for the lock, recording the request in `undo`; returns the
    /// answer and its revision.
    async fn request(
        &self,
        wait: bool,
        undo: &UndoOnDrop,
    ) -> Result<(LockResponse, u64), ClientError> {
        let op = Op::Lock(synod_wire::Lock {
            name: self.name.clone(),
            session: self.session.id(),
            wait,
        });
        let response = self
            .client()
            .write_tracked(op, &WriteOptions::default(), Some(undo.in_flight()))
            .await?;
        match response.outcome {
            Some(Outcome::Lock(lock)) => Ok((lock, response.revision)),
            other => Err(ClientError::Protocol(format!(
                "lock answered with {other:?}"
            ))),
        }
    }

    /// Watches the lock's holder changes from `from_revision` until this
    /// session is granted it. `None` if the session turns out to be out of
    /// the queue without a grant.
    async fn wait_for_grant(
        &self,
        from_revision: u64,
    ) -> Result<Option<FencingToken>, ClientError> {
        let me = self.session.id();
        let mut watcher = self
            .client()
            .watch(EventFilter::lock(self.name.clone()), from_revision);
        loop {
            match watcher.next().await {
                Ok(event) if event.session == me => return Ok(Some(self.token(event.revision))),
                Ok(_) | Err(ClientError::Timeout) => {}
                Err(ClientError::Compacted { .. }) => {
                    // Too far behind the history: ask the lock itself.
                    let (holder, revision) = self.client().lock_holder(&self.name).await?;
                    if holder.holder == me {
                        return Ok(Some(self.token(holder.token)));
                    }
                    if !holder.waiters.contains(&me) {
                        return Ok(None);
                    }
                    watcher = Watcher::new(
                        self.client().clone(),
                        EventFilter::lock(self.name.clone()),
                        revision + 1,
                    );
                }
                Err(e) => return Err(e),
            }
        }
    }
}

impl Client {
    /// Who holds lock `name` now, with which token, and who waits
    /// (linearizable); with the revision of the state read.
    pub async fn lock_holder(&self, name: &[u8]) -> Result<(LockHolderResponse, u64), ClientError> {
        let op = Op::LockHolder(LockHolder {
            name: name.to_vec(),
        });
        let response = self.read(op, false).await?;
        match response.outcome {
            Some(Outcome::LockHolder(holder)) => Ok((holder, response.revision)),
            other => Err(ClientError::Protocol(format!(
                "lock holder answered with {other:?}"
            ))),
        }
    }
}
