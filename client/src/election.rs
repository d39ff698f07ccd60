//! Leader election with a value: campaign, proclaim, resign, leader,
//! observe (etcd's election API), on the state machine's FIFO queue.

use synod_wire::{
    Campaign, ElectionStatus, EventFilter, Leader, LeaderInfo, LeaderResponse, Op, Outcome,
    Proclaim, Resign,
};

use crate::client::Client;
use crate::error::ClientError;
use crate::options::WriteOptions;
use crate::session::Session;
use crate::undo::UndoOnDrop;
use crate::watch::Watcher;

/// One [`Session`]'s part in an election: at most one session leads it at
/// any revision; the others queue in FIFO order behind it.
///
/// Leadership passes to the next candidate when the leader
/// [resigns](Election::resign), closes its session or lets it expire (at
/// once: an election has no lock-delay; a leader that guards a resource
/// should also take a [`Mutex`](crate::Mutex) and fence its writes). Each
/// leadership has its own revision, increasing, usable as a term number.
///
/// ```no_run
/// # async fn demo(client: synod_client::Client) -> Result<(), synod_client::ClientError> {
/// use std::time::Duration;
/// use synod_client::{Election, Session};
/// let session = Session::open(&client, Duration::from_secs(10)).await?;
/// let election = Election::new(&session, "scheduler");
/// let term = election.campaign(b"worker-1").await?; // waits until elected
/// println!("leading since revision {}", term.revision);
/// election.proclaim(b"worker-1 (busy)").await?;
/// election.resign().await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Election {
    session: Session,
    name: Vec<u8>,
}

impl Election {
    /// Election `name` (1 to 256 bytes; its own namespace) for `session`.
    pub fn new(session: &Session, name: impl Into<Vec<u8>>) -> Election {
        Election {
            session: session.clone(),
            name: name.into(),
        }
    }

    /// The election's name.
    pub fn name(&self) -> &[u8] {
        &self.name
    }

    /// The session that campaigns.
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// Runs for leader with `value` (at most 1 KiB) and waits until
    /// elected; returns the leadership (this session, the value, and the
    /// revision it became leader at). Returns at once if it already leads.
    ///
    /// Candidates are elected in the order they campaigned; waiting watches
    /// the election's leader changes (no polling). Dropping the future
    /// before it returns leaves the queue (or resigns, had it just been
    /// elected), in the background.
    ///
    /// # Errors
    /// [`ClientError::SessionLost`] if the session is lost while waiting;
    /// call errors of the requests it makes.
    pub async fn campaign(&self, value: &[u8]) -> Result<LeaderInfo, ClientError> {
        if self.session.is_lost() {
            return Err(self.session.lost_error());
        }
        let mut undo = UndoOnDrop::new(self.client(), self.resign_op());
        loop {
            let op = Op::Campaign(Campaign {
                election: self.name.clone(),
                session: self.session.id(),
                value: value.to_vec(),
            });
            let response = self
                .client()
                .write_tracked(op, &WriteOptions::default(), Some(undo.in_flight()))
                .await?;
            let campaign = match response.outcome {
                Some(Outcome::Campaign(campaign)) => campaign,
                other => {
                    return Err(ClientError::Protocol(format!(
                        "campaign answered with {other:?}"
                    )))
                }
            };
            match (campaign.election_status(), campaign.leader) {
                (ElectionStatus::Elected, Some(leader)) => {
                    let _ = undo.disarm();
                    return Ok(leader);
                }
                (ElectionStatus::Queued, _) => {}
                (status, _) => {
                    return Err(ClientError::Protocol(format!(
                        "campaign answered {status:?}"
                    )))
                }
            }
            tokio::select! {
                elected = self.wait_until_elected(response.revision + 1) => match elected? {
                    Some(leader) => {
                        let _ = undo.disarm();
                        return Ok(leader);
                    }
                    // Out of the queue without being elected: run again.
                    None => continue,
                },
                _ = self.session.lost() => return Err(self.session.lost_error()),
            }
        }
    }

    /// Announces a new value as the leader (the leadership revision stays).
    ///
    /// # Errors
    /// [`ClientError::Command`] with
    /// [`NotElectionLeader`](synod_wire::ErrorCode::NotElectionLeader)
    /// if this session does not lead.
    pub async fn proclaim(&self, value: &[u8]) -> Result<(), ClientError> {
        let op = Op::Proclaim(Proclaim {
            election: self.name.clone(),
            session: self.session.id(),
            value: value.to_vec(),
        });
        self.client().write(op).await.map(|_| ())
    }

    /// Gives up leadership (the next candidate is elected at once), or
    /// leaves the queue.
    ///
    /// # Errors
    /// [`ClientError::Command`] with
    /// [`NotCandidate`](synod_wire::ErrorCode::NotCandidate) if this
    /// session neither leads nor waits.
    pub async fn resign(&self) -> Result<(), ClientError> {
        self.client().write(self.resign_op()).await.map(|_| ())
    }

    /// The leader now, if any (linearizable).
    pub async fn leader(&self) -> Result<Option<LeaderInfo>, ClientError> {
        self.client().election_leader(&self.name).await
    }

    /// The leaders from now on, as they change; see [`Observer`].
    pub fn observe(&self) -> Observer {
        self.client().observe_election(&self.name)
    }

    fn client(&self) -> &Client {
        self.session.client()
    }

    fn resign_op(&self) -> Op {
        Op::Resign(Resign {
            election: self.name.clone(),
            session: self.session.id(),
        })
    }

    /// Watches the election from `from_revision` until this session leads.
    /// `None` if it turns out to be out of the queue without leading.
    async fn wait_until_elected(
        &self,
        from_revision: u64,
    ) -> Result<Option<LeaderInfo>, ClientError> {
        let me = self.session.id();
        let filter = EventFilter::election(self.name.clone());
        let mut watcher = self.client().watch(filter.clone(), from_revision);
        loop {
            match watcher.next().await {
                // While we queue, the first event naming us is our election.
                Ok(event) if event.session == me => {
                    return Ok(Some(LeaderInfo {
                        session: me,
                        value: event.value.unwrap_or_default(),
                        revision: event.revision,
                    }))
                }
                Ok(_) | Err(ClientError::Timeout) => {}
                Err(ClientError::Compacted { .. }) => {
                    let (state, revision) = self.client().election_state(&self.name).await?;
                    if let Some(leader) = state.leader.filter(|l| l.session == me) {
                        return Ok(Some(leader));
                    }
                    if !state.waiters.contains(&me) {
                        return Ok(None);
                    }
                    watcher = Watcher::new(self.client().clone(), filter.clone(), revision + 1);
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// The leaders of an election as they change: first the leader at the time
/// of the first [`next`](Observer::next), then one item per change (a new
/// leader, a new value, or `None` when no candidate is left), in order,
/// none skipped.
///
/// ```no_run
/// # async fn demo(client: synod_client::Client) -> Result<(), synod_client::ClientError> {
/// let mut observer = client.observe_election(b"scheduler");
/// while let Some(leader) = observer.next().await? {
///     println!("{:?} leads since {}", leader.value, leader.revision);
/// }
/// println!("no leader");
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Observer {
    client: Client,
    name: Vec<u8>,
    /// The leader last reported, once the first read was made.
    current: Option<Option<LeaderInfo>>,
    watcher: Option<Watcher>,
}

impl Observer {
    /// The next leader: the current one on the first call, then each
    /// change. Waits as long as it takes. If the watch falls behind the
    /// bounded history, it re-reads the leader and goes on from there (a
    /// change may then be reported once, or not at all if it was undone).
    pub async fn next(&mut self) -> Result<Option<LeaderInfo>, ClientError> {
        let (Some(current), Some(watcher)) = (self.current.clone(), self.watcher.as_mut()) else {
            return self.restart().await;
        };
        let event = match watcher.next().await {
            Ok(event) => event,
            Err(ClientError::Compacted { .. }) => return self.restart().await,
            Err(e) => return Err(e),
        };
        let leader = match (event.session, event.value) {
            (0, _) | (_, None) => None,
            (session, Some(value)) => Some(LeaderInfo {
                session,
                value,
                // A proclaim (same leader before and after) keeps the
                // leadership's revision.
                revision: match current {
                    Some(known) if known.session == session && event.prev_session == session => {
                        known.revision
                    }
                    _ => event.revision,
                },
            }),
        };
        self.current = Some(leader.clone());
        Ok(leader)
    }

    /// Reads the leader now and watches from there.
    async fn restart(&mut self) -> Result<Option<LeaderInfo>, ClientError> {
        let (state, revision) = self.client.election_state(&self.name).await?;
        self.watcher = Some(
            self.client
                .watch(EventFilter::election(self.name.clone()), revision + 1),
        );
        self.current = Some(state.leader.clone());
        Ok(state.leader)
    }
}

impl Client {
    /// The leader of election `name` now, if any (linearizable).
    pub async fn election_leader(&self, name: &[u8]) -> Result<Option<LeaderInfo>, ClientError> {
        Ok(self.election_state(name).await?.0.leader)
    }

    /// The leaders of election `name` from now on; see [`Observer`]. Needs
    /// no session.
    pub fn observe_election(&self, name: &[u8]) -> Observer {
        Observer {
            client: self.clone(),
            name: name.to_vec(),
            current: None,
            watcher: None,
        }
    }

    /// Election `name`'s leader and queued candidates now (linearizable),
    /// with the revision of the state read.
    pub async fn election_state(&self, name: &[u8]) -> Result<(LeaderResponse, u64), ClientError> {
        let op = Op::Leader(Leader {
            election: name.to_vec(),
        });
        let response = self.read(op, false).await?;
        match response.outcome {
            Some(Outcome::Leader(leader)) => Ok((leader, response.revision)),
            other => Err(ClientError::Protocol(format!(
                "leader answered with {other:?}"
            ))),
        }
    }
}
