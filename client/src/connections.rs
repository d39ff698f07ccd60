//! The client's connections: at most one per node address, dialed on first
//! use, dropped when they fail, all closed by [`Client::close`](crate::Client::close).
//!
//! A call names whom it wants as a [`Target`]: a configured endpoint, or
//! the leader a redirect named. [`Connections::get`] hands back an open
//! connection to it, dialing if there is none:
//! - an endpoint is resolved at every dial (a DNS name through the system's
//!   resolver), every address it resolves to is dialed at once, and the
//!   first handshake to complete decides: a connection, or a TLS refusal.
//!   Any other failure of one address waits for the others;
//! - an endpoint is expected to carry the configuration's server name if it
//!   sets one, else its host (the DNS name, or the IP address in text);
//! - a redirected-to leader is expected to carry `node-<id>`, the name
//!   every node certificate carries, so a redirect works whatever names
//!   the endpoints were given.
//!
//! Dialing a target holds that target's gate: calls that find no connection
//! at once wait for one handshake instead of each making their own (256
//! concurrent mutual-TLS handshakes took a second), and a target that does
//! not answer holds up no call to the others.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use synod_net::tls::{TlsFailure, TlsIdentity, NODE_NAME_PREFIX};
use synod_net::{ClientConnection, NetError};
use tokio::task::JoinSet;

use crate::endpoint::Endpoint;
use crate::error::{ClientError, TlsError};

/// Whom a call wants to reach.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Target {
    /// The configured endpoint at this index.
    Endpoint(usize),
    /// The leader a redirect named: its client address and node id (0 if
    /// the redirect did not say).
    Leader {
        /// Its client address.
        addr: SocketAddr,
        /// Its node id.
        node: u32,
    },
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Endpoint(i) => write!(f, "endpoint #{i}"),
            Target::Leader { addr, node } => write!(f, "leader {node} at {addr}"),
        }
    }
}

/// Why a target could not be used.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Failure {
    /// The client is closed.
    Closed,
    /// One side refused the other's certificate: retrying will not help.
    Tls(TlsError),
    /// Not reachable now (no answer, lost connection, name not resolved).
    Unreachable(String),
}

impl From<Failure> for ClientError {
    fn from(failure: Failure) -> ClientError {
        match failure {
            Failure::Closed => ClientError::Closed,
            Failure::Tls(e) => ClientError::Tls(e),
            Failure::Unreachable(why) => ClientError::Unreachable(why),
        }
    }
}

/// An open connection and how it was dialed.
#[derive(Clone, Debug)]
pub(crate) struct Dialed {
    /// The address it reaches.
    pub addr: SocketAddr,
    /// The name the node's certificate was checked against.
    pub server_name: String,
    /// The connection.
    pub conn: Arc<ClientConnection>,
}

impl Dialed {
    /// What `err`, from a request on this connection, means for the call;
    /// `closed` whether the client is closed.
    pub fn failure(&self, err: &NetError, closed: bool) -> Failure {
        failure_of(self.addr, &self.server_name, err, closed)
    }
}

/// The open connections of one client, and how to dial more.
pub(crate) struct Connections {
    endpoints: Vec<Endpoint>,
    /// Overrides every endpoint's server name.
    server_name: Option<String>,
    tls: TlsIdentity,
    state: Mutex<State>,
    /// One gate per target, held while dialing it.
    dialing: Mutex<HashMap<Target, Arc<tokio::sync::Mutex<()>>>>,
    /// Turns true when the client is closed, for the tasks that wait on
    /// their own (sessions' keep-alives).
    closed_signal: tokio::sync::watch::Sender<bool>,
}

struct State {
    /// Open connections by the address they reach, with the name checked.
    /// Invariant: empty once `closed`.
    open: HashMap<SocketAddr, (String, Arc<ClientConnection>)>,
    /// Per configured endpoint, the address its connection reaches: `None`
    /// until dialed, and again once forgotten, so that the next dial
    /// resolves the endpoint again. Invariant: `reached.len()` is the
    /// number of endpoints.
    reached: Vec<Option<SocketAddr>>,
    /// Set by [`Connections::close`]; never unset.
    closed: bool,
}

impl Connections {
    /// No connection yet to `endpoints`, to be dialed with `tls` and
    /// `server_name` (if set) as every endpoint's name.
    pub fn new(
        endpoints: Vec<Endpoint>,
        server_name: Option<String>,
        tls: TlsIdentity,
    ) -> Connections {
        let reached = vec![None; endpoints.len()];
        Connections {
            endpoints,
            server_name,
            tls,
            state: Mutex::new(State {
                open: HashMap::new(),
                reached,
                closed: false,
            }),
            dialing: Mutex::new(HashMap::new()),
            closed_signal: tokio::sync::watch::Sender::new(false),
        }
    }

    /// Resolves once [`close`](Connections::close) was called.
    pub async fn closed(&self) {
        let mut closed = self.closed_signal.subscribe();
        // The sender lives as long as `self`, so waiting cannot fail.
        let _ = closed.wait_for(|closed| *closed).await;
    }

    /// Whether [`close`](Connections::close) was called.
    pub fn is_closed(&self) -> bool {
        self.state().closed
    }

    /// An open connection to `target`, dialed now if there is none.
    pub async fn get(&self, target: Target) -> Result<Dialed, Failure> {
        if let Some(open) = self.existing(target)? {
            return Ok(open);
        }
        let gate = self
            .dialing
            .lock()
            .expect("dialing lock")
            .entry(target)
            .or_default()
            .clone();
        let _dialing = gate.lock().await;
        if let Some(dialed_meanwhile) = self.existing(target)? {
            return Ok(dialed_meanwhile);
        }
        let (addrs, server_name) = match target {
            Target::Endpoint(i) => {
                let endpoint = &self.endpoints[i];
                let addrs = endpoint
                    .resolve()
                    .await
                    .map_err(|e| Failure::Unreachable(format!("{endpoint}: {e}")))?;
                let name = self
                    .server_name
                    .clone()
                    .unwrap_or_else(|| endpoint.server_name());
                (addrs, name)
            }
            Target::Leader { addr, node } => (vec![addr], self.leader_server_name(addr, node)),
        };
        // A redirect may have dialed one of these addresses already.
        if let Some(reused) = self.reuse(target, &addrs)? {
            return Ok(reused);
        }
        let (addr, conn) = dial_first(&addrs, &server_name, &self.tls).await?;
        let conn = Arc::new(conn);
        let kept = {
            let mut state = self.state();
            if state.closed {
                None
            } else {
                if let Target::Endpoint(i) = target {
                    state.reached[i] = Some(addr);
                }
                let (name, conn) = state
                    .open
                    .entry(addr)
                    .or_insert((server_name, conn.clone()));
                Some(Dialed {
                    addr,
                    server_name: name.clone(),
                    conn: conn.clone(),
                })
            }
        };
        match kept {
            Some(dialed) => Ok(dialed),
            None => {
                conn.close().await;
                Err(Failure::Closed)
            }
        }
    }

    /// Drops the connection `target` was reached through, so that the next
    /// call dials again (resolving its endpoint again).
    pub fn forget(&self, target: Target) {
        let mut state = self.state();
        let addr = match target {
            Target::Endpoint(i) => state.reached[i],
            Target::Leader { addr, .. } => Some(addr),
        };
        if let Some(addr) = addr {
            state.open.remove(&addr);
            for reached in &mut state.reached {
                if *reached == Some(addr) {
                    *reached = None;
                }
            }
        }
    }

    /// Closes every connection and waits until each node was told (QUIC
    /// `CONNECTION_CLOSE`, then the endpoint idle); no connection is made
    /// afterwards. Requests in flight fail.
    pub async fn close(&self) {
        let open: Vec<Arc<ClientConnection>> = {
            let mut state = self.state();
            state.closed = true;
            state.reached.fill(None);
            state.open.drain().map(|(_, (_, conn))| conn).collect()
        };
        self.closed_signal.send_replace(true);
        let mut closing = JoinSet::new();
        for conn in open {
            closing.spawn(async move { conn.close().await });
        }
        while closing.join_next().await.is_some() {}
    }

    /// The name a redirect to `node` at `addr` is dialed with: `node-<id>`,
    /// which every node certificate carries; without an id, whatever an
    /// endpoint that reached `addr` used, else the configured override,
    /// else the IP address.
    fn leader_server_name(&self, addr: SocketAddr, node: u32) -> String {
        if node != 0 {
            return format!("{NODE_NAME_PREFIX}{node}");
        }
        let state = self.state();
        let endpoint = state
            .reached
            .iter()
            .position(|reached| *reached == Some(addr));
        match (&self.server_name, endpoint) {
            (Some(name), _) => name.clone(),
            (None, Some(i)) => self.endpoints[i].server_name(),
            (None, None) => addr.ip().to_string(),
        }
    }

    fn existing(&self, target: Target) -> Result<Option<Dialed>, Failure> {
        let state = self.state();
        if state.closed {
            return Err(Failure::Closed);
        }
        let addr = match target {
            Target::Endpoint(i) => state.reached[i],
            Target::Leader { addr, .. } => Some(addr),
        };
        Ok(addr.and_then(|addr| {
            state.open.get(&addr).map(|(name, conn)| Dialed {
                addr,
                server_name: name.clone(),
                conn: conn.clone(),
            })
        }))
    }

    fn reuse(&self, target: Target, addrs: &[SocketAddr]) -> Result<Option<Dialed>, Failure> {
        let mut state = self.state();
        if state.closed {
            return Err(Failure::Closed);
        }
        let Some((addr, name, conn)) = addrs.iter().find_map(|addr| {
            let (name, conn) = state.open.get(addr)?;
            Some((*addr, name.clone(), conn.clone()))
        }) else {
            return Ok(None);
        };
        if let Target::Endpoint(i) = target {
            state.reached[i] = Some(addr);
        }
        Ok(Some(Dialed {
            addr,
            server_name: name,
            conn,
        }))
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("connections lock")
    }
}

/// Dials every one of `addrs` at once expecting `server_name`; the first
/// connection made wins (the others are dropped), and so does the first
/// TLS refusal: that handshake reached a node, which refused. Other
/// failures wait for the remaining addresses; if all fail, the last one is
/// returned.
async fn dial_first(
    addrs: &[SocketAddr],
    server_name: &str,
    tls: &TlsIdentity,
) -> Result<(SocketAddr, ClientConnection), Failure> {
    if let [addr] = addrs {
        return ClientConnection::connect_with_name(*addr, server_name, tls)
            .await
            .map(|conn| (*addr, conn))
            .map_err(|e| failure_of(*addr, server_name, &e, false));
    }
    let mut dials = JoinSet::new();
    for addr in addrs.iter().copied() {
        let (name, tls) = (server_name.to_owned(), tls.clone());
        dials.spawn(async move {
            let dialed = ClientConnection::connect_with_name(addr, &name, &tls).await;
            (addr, dialed)
        });
    }
    let mut last = Failure::Unreachable("no address to dial".into());
    while let Some(done) = dials.join_next().await {
        let Ok((addr, dialed)) = done else { continue };
        match dialed {
            Ok(conn) => return Ok((addr, conn)),
            Err(e) => match failure_of(addr, server_name, &e, false) {
                tls @ Failure::Tls(_) => return Err(tls),
                other => last = other,
            },
        }
    }
    Err(last)
}

/// What `err`, met dialing or using a connection to `addr` as
/// `server_name`, means for a call; `closed` whether the client is closed.
fn failure_of(addr: SocketAddr, server_name: &str, err: &NetError, closed: bool) -> Failure {
    if closed {
        return Failure::Closed;
    }
    match TlsFailure::of(err) {
        Some(failure) => Failure::Tls(TlsError {
            addr,
            server_name: server_name.to_owned(),
            failure,
        }),
        None => Failure::Unreachable(format!("{addr}: {err}")),
    }
}
