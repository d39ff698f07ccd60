//! The connections a node's Redis endpoint forwards over: one QUIC client
//! connection per other node, opened on first use and kept.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use synod_net::tls::{node_name, TlsIdentity};
use synod_net::ClientConnection;
use synod_paxos::NodeId;
use tokio::time::Instant;

use crate::members::ClientAddrs;

/// The cached connections to the other nodes. The table is locked only to
/// look a connection up, insert or drop one, never across a dial or any
/// other wait: a slow dial to one node (a dead leader's address, say) holds
/// up no call to another, and every wait is bounded by its caller's
/// deadline.
pub struct NodeLinks {
    client_addrs: ClientAddrs,
    tls: TlsIdentity,
    links: Mutex<HashMap<NodeId, Arc<ClientConnection>>>,
}

impl NodeLinks {
    /// Links to the nodes at `client_addrs`, dialed with `tls`.
    pub fn new(client_addrs: ClientAddrs, tls: TlsIdentity) -> NodeLinks {
        NodeLinks {
            client_addrs,
            tls,
            links: Mutex::new(HashMap::new()),
        }
    }

    /// The open connection to `to`, dialed first if there is none (or it
    /// closed), by `until` at the latest. Two calls that find no connection
    /// at once may each dial; the later one's connection is kept.
    pub async fn get(&self, to: NodeId, until: Instant) -> Result<Arc<ClientConnection>, String> {
        let cached = self.table().get(&to).cloned();
        if let Some(link) = cached {
            if link.connection().close_reason().is_none() {
                return Ok(link);
            }
        }
        let addr = self
            .client_addrs
            .get(to)
            .ok_or_else(|| format!("node {}'s client address is not configured", to.0))?;
        let name = node_name(to);
        let connect = ClientConnection::connect_with_name(addr, &name, &self.tls);
        let link = match tokio::time::timeout_at(until, connect).await {
            Err(_) => return Err(format!("connecting to node {} timed out", to.0)),
            Ok(Err(e)) => return Err(format!("cannot connect to node {}: {e}", to.0)),
            Ok(Ok(link)) => Arc::new(link),
        };
        self.table().insert(to, link.clone());
        Ok(link)
    }

    /// Drops the connection to `to` (it failed); the next call dials anew.
    pub fn forget(&self, to: NodeId) {
        self.table().remove(&to);
    }

    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<NodeId, Arc<ClientConnection>>> {
        self.links.lock().expect("links lock")
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use synod_net::certs::CertAuthority;
    use synod_net::{NetOptions, NodeEndpoint};

    use super::*;

    /// A dial that hangs (node 2's address answers nothing) does not hold
    /// up a call to another node: node 3's connection is made while node
    /// 2's dial still waits. With the table locked across the dial, node
    /// 3's call waited for node 2's dial to give up first.
    #[tokio::test]
    async fn a_hanging_dial_holds_up_no_call_to_another_node() {
        let ca = CertAuthority::generate("links-test").unwrap();
        let identity = |id: u32| {
            ca.issue_node(NodeId(id), &[])
                .unwrap()
                .identity(&ca)
                .unwrap()
        };
        // Node 3 serves client connections; node 2 is a UDP socket that
        // never answers.
        let loopback = "127.0.0.1:0".parse().unwrap();
        let node3 = NodeEndpoint::bind(NodeId(3), loopback, &identity(3), NetOptions::default())
            .unwrap()
            .start(HashMap::new());
        let silent = std::net::UdpSocket::bind(loopback).unwrap();
        let addrs = HashMap::from([
            (NodeId(2), silent.local_addr().unwrap()),
            (NodeId(3), node3.handle.local_addr().unwrap()),
        ]);
        let links = Arc::new(NodeLinks::new(ClientAddrs::new(addrs), identity(1)));

        let far = Instant::now() + Duration::from_secs(3600);
        let hanging = tokio::spawn({
            let links = links.clone();
            async move { links.get(NodeId(2), far).await.map(|_| ()) }
        });
        // Let the hanging dial start (the test runtime has one thread: the
        // task runs until its dial waits for an answer).
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        let link = links.get(NodeId(3), far).await.unwrap();
        assert!(link.connection().close_reason().is_none());
        assert!(
            !hanging.is_finished(),
            "node 2's dial ended first: node 3's call waited for it"
        );
        hanging.abort();
        node3.handle.shutdown().await;
    }
}
