//! Where the members are: the addresses the runtime routes peer messages,
//! snapshots and redirected clients to. They start from the configuration
//! file and then follow the membership chosen in the log, so members added
//! at runtime are reached and removed ones are let go.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use synod_paxos::{MembershipLog, NodeId};

/// Each member's client address, shared by the tasks that redirect or
/// forward to it. Cheap to clone; all clones see updates.
#[derive(Clone, Debug, Default)]
pub struct ClientAddrs(Arc<RwLock<HashMap<NodeId, SocketAddr>>>);

impl ClientAddrs {
    /// Starts with `addrs`.
    pub fn new(addrs: HashMap<NodeId, SocketAddr>) -> ClientAddrs {
        ClientAddrs(Arc::new(RwLock::new(addrs)))
    }

    /// The client address of `node`, if known.
    pub fn get(&self, node: NodeId) -> Option<SocketAddr> {
        self.0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&node)
            .copied()
    }

    /// Replaces every address.
    pub fn set(&self, addrs: HashMap<NodeId, SocketAddr>) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = addrs;
    }

    /// Every known address.
    pub fn all(&self) -> HashMap<NodeId, SocketAddr> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// The peer and client addresses of every member of `membership` (from
/// the commit index on, including changes not in force yet), where
/// `known` fills in members recorded without addresses (founding members
/// of clusters started before addresses were recorded) and nodes no
/// membership names are dropped. `None` while the membership is unknown (a
/// joining node keeps its configured routes).
pub fn routes(
    membership: &MembershipLog,
    known_peers: &HashMap<NodeId, SocketAddr>,
    known_clients: &HashMap<NodeId, SocketAddr>,
) -> Option<(HashMap<NodeId, SocketAddr>, HashMap<NodeId, SocketAddr>)> {
    if membership.is_unknown() {
        return None;
    }
    let (mut peers, mut clients) = (HashMap::new(), HashMap::new());
    for (_, m) in membership.entries() {
        for member in m.members() {
            let id = member.id;
            for (recorded, known, routes) in [
                (&member.peer_addr, known_peers, &mut peers),
                (&member.client_addr, known_clients, &mut clients),
            ] {
                let addr = recorded.parse().ok().or_else(|| known.get(&id).copied());
                if let Some(addr) = addr {
                    routes.insert(id, addr);
                }
            }
        }
    }
    Some((peers, clients))
}

/// A member's address as the log records it: `ip:port` (what the peer
/// transport dials), normalized; or why `addr` is not one.
pub fn check_addr(addr: &str) -> Result<String, String> {
    addr.parse::<SocketAddr>()
        .map(|a| a.to_string())
        .map_err(|_| format!("{addr:?} is not an address of the form ip:port"))
}
