//! What the core sends to its peers: envelopes through the QUIC peer
//! transport, and state-machine snapshots streamed to a peer that is too far
//! behind to catch up from the log (one stream per peer at a time).

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use prost::Message as _;
use synod_kvstore::Snapshot;
use synod_net::tls::TlsIdentity;
use synod_net::{ClientConnection, PeerSender};
use synod_paxos::{Envelope, MembershipLog, NodeId};
use synod_wire::proto::api::{api_request::Call, ApiRequest};

use crate::members::{routes, ClientAddrs};
use crate::node::PeerOutbox;

/// Sends the core's messages through the QUIC peer transport.
pub(super) struct NetOutbox {
    /// The peer addresses of the configuration file, for members the log
    /// records without one.
    configured_peers: HashMap<NodeId, SocketAddr>,
    peers: PeerSender,
    client_addrs: ClientAddrs,
    tls: TlsIdentity,
    snapshot_streams: SnapshotStreams,
}

impl NetOutbox {
    /// Sends through `peers` to the members the log records, at the
    /// addresses it records or else those of the configuration file
    /// (`configured_peers`); snapshots go to peers' `client_addrs`, dialed
    /// with `tls`.
    pub(super) fn new(
        configured_peers: HashMap<NodeId, SocketAddr>,
        peers: PeerSender,
        client_addrs: ClientAddrs,
        tls: TlsIdentity,
    ) -> NetOutbox {
        NetOutbox {
            configured_peers,
            peers,
            client_addrs,
            tls,
            snapshot_streams: SnapshotStreams::default(),
        }
    }
}

/// The peers a snapshot is being streamed to: at most one stream per peer.
/// The core offers a lagging peer a fresh snapshot every election timeout;
/// a transfer that takes longer must not be joined by a second one (each
/// holds a read transaction, and the peer installs one stream at a time).
#[derive(Clone, Default)]
struct SnapshotStreams(Arc<Mutex<HashSet<NodeId>>>);

/// One stream in flight; dropping it ends it.
struct SnapshotStream {
    streams: SnapshotStreams,
    to: NodeId,
}

impl SnapshotStreams {
    /// Starts a stream to `to`, unless one is in flight.
    fn start(&self, to: NodeId) -> Option<SnapshotStream> {
        let mut streaming = self.0.lock().unwrap_or_else(|e| e.into_inner());
        streaming.insert(to).then(|| SnapshotStream {
            streams: self.clone(),
            to,
        })
    }
}

impl Drop for SnapshotStream {
    fn drop(&mut self) {
        let mut streaming = self.streams.0.lock().unwrap_or_else(|e| e.into_inner());
        streaming.remove(&self.to);
    }
}

impl PeerOutbox for NetOutbox {
    fn members_changed(&mut self, membership: &MembershipLog) {
        let known_clients = self.client_addrs.all();
        if let Some((peers, clients)) = routes(membership, &self.configured_peers, &known_clients) {
            tracing::info!(peers = ?peers.keys().map(|p| p.0).collect::<Vec<_>>(), "routes follow the membership");
            self.peers.set_peers(&peers);
            self.client_addrs.set(clients);
        }
    }

    fn send(&mut self, envelope: Envelope) {
        // A full queue drops the message; Paxos retransmits what matters.
        let _ = self.peers.send(envelope);
    }

    fn send_snapshot(&mut self, to: NodeId, snapshot: Snapshot) {
        let Some(addr) = self.client_addrs.get(to) else {
            tracing::warn!(%to, "cannot send a snapshot: the peer's client address is not configured");
            return;
        };
        let Some(stream) = self.snapshot_streams.start(to) else {
            tracing::debug!(%to, "a snapshot is already on its way to this peer");
            return;
        };
        let tls = self.tls.clone();
        tokio::spawn(async move {
            let _stream = stream;
            let started = std::time::Instant::now();
            match stream_snapshot(addr, &tls, snapshot).await {
                Ok(sent) => tracing::info!(
                    %to,
                    applied_index = sent.applied_index,
                    chunks = sent.chunks,
                    bytes = sent.bytes,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "snapshot sent"
                ),
                Err(e) => {
                    tracing::warn!(%to, error = %e, "snapshot transfer failed; the peer will ask again")
                }
            }
        });
    }
}

/// What a snapshot stream that ran to its end carried.
#[derive(Debug, Default)]
struct SentSnapshot {
    /// The slot the snapshot was taken at.
    applied_index: u64,
    /// Chunks sent.
    chunks: u64,
    /// Encoded chunk bytes sent.
    bytes: u64,
}

/// Streams `snapshot` to the node at `addr`, one request per chunk (so QUIC
/// flow control paces it).
async fn stream_snapshot(
    addr: SocketAddr,
    tls: &TlsIdentity,
    snapshot: Snapshot,
) -> anyhow::Result<SentSnapshot> {
    let conn = ClientConnection::connect(addr, tls).await?;
    let mut sent = SentSnapshot::default();
    for chunk in snapshot {
        let chunk = chunk?;
        sent.applied_index = chunk.applied_index;
        let call = Call::SnapshotChunk(synod_wire::proto::api::SnapshotChunkCall {
            chunk: chunk.encode_to_vec(),
        });
        let request = ApiRequest { call: Some(call) }.encode_to_vec();
        sent.bytes += request.len() as u64;
        let response = conn.request(request).await?;
        if let Some(code) = response.error_code() {
            anyhow::bail!("peer refused a snapshot chunk: {code:?}");
        }
        sent.chunks += 1;
    }
    conn.close().await;
    Ok(sent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_snapshot_stream_per_peer_until_it_ends() {
        let streams = SnapshotStreams::default();
        let first = streams.start(NodeId(2)).expect("nothing in flight");
        assert!(streams.start(NodeId(2)).is_none(), "a second stream waits");
        let other = streams.start(NodeId(3)).expect("another peer has its own");
        drop(first);
        assert!(
            streams.start(NodeId(2)).is_some(),
            "a new stream once it ended"
        );
        drop(other);
    }
}
