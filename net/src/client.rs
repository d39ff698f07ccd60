//! The client side of the client service: [`ClientConnection`], one QUIC connection to a node,
//! and [`ResponseFrames`], the client's end of a server stream.
//!
//! One request per bidirectional stream: the client writes one [`ClientRequest`] frame (at most
//! [`MAX_CLIENT_REQUEST_BYTES`]) and finishes its side; the node answers with one
//! [`ClientResponse`] frame (at most [`MAX_CLIENT_RESPONSE_BYTES`]), or with a stream of frames
//! of which every one but the last has `more = true`. This half needs no consensus types, so
//! the client library builds it without the `node` feature.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};

use prost::Message as _;
use synod_wire::proto::client::{ClientRequest, ClientResponse};

use crate::error::{FrameError, NetError, WireError};
use crate::frame::{read_frame, write_frame, MAX_CLIENT_REQUEST_BYTES, MAX_CLIENT_RESPONSE_BYTES};
use crate::options::NetOptions;
use crate::tls::{Alpn, TlsIdentity};

/// A client's connection to one node. Requests may be issued concurrently
/// from clones of a shared reference; each uses its own stream.
#[derive(Debug)]
pub struct ClientConnection {
    endpoint: quinn::Endpoint,
    conn: quinn::Connection,
    next_request_id: AtomicU64,
}

impl ClientConnection {
    /// Connects to the node at `addr`, expecting its certificate to name
    /// `addr`'s IP address (node certificates name `127.0.0.1`; add others
    /// at issue time). Must be called inside a tokio runtime.
    ///
    /// Under TLS 1.3 a server that refuses our certificate does so after
    /// this returns: the refusal shows on the first request.
    pub async fn connect(
        addr: SocketAddr,
        tls: &TlsIdentity,
    ) -> Result<ClientConnection, NetError> {
        Self::connect_with_name(addr, &addr.ip().to_string(), tls).await
    }

    /// Connects to the node at `addr`, expecting its certificate to name
    /// `server_name` (e.g. `node-3` or a host name).
    ///
    /// A handshake refused by either side, here or on the first request
    /// (see [`connect`](ClientConnection::connect)), is told apart from a
    /// lost or unreachable node by [`TlsFailure::of`](crate::tls::TlsFailure::of).
    pub async fn connect_with_name(
        addr: SocketAddr,
        server_name: &str,
        tls: &TlsIdentity,
    ) -> Result<ClientConnection, NetError> {
        let options = NetOptions::default();
        let config = tls.quic_client_config(Alpn::Client, options.transport(false))?;
        let local: SocketAddr = if addr.is_ipv4() {
            (Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let endpoint = quinn::Endpoint::client(local).map_err(|source| NetError::Bind {
            addr: local,
            source,
        })?;
        let conn = endpoint.connect_with(config, addr, server_name)?.await?;
        Ok(ClientConnection {
            endpoint,
            conn,
            next_request_id: AtomicU64::new(1),
        })
    }

    /// Sends `payload` as one request and waits for its response. A
    /// response with an error outcome is `Ok`; `Err` means the exchange
    /// itself failed (the request's effect is then unknown).
    pub async fn request(&self, payload: Vec<u8>) -> Result<ClientResponse, NetError> {
        let request_id = self.next_request_id.fetch_add(1, Ordering::Relaxed);
        let request = ClientRequest {
            request_id,
            payload,
        };
        let result = self.exchange(&request).await;
        // A refused or lost connection explains more than the stream error.
        match (result, self.conn.close_reason()) {
            (Err(_), Some(reason)) => Err(NetError::Connection(reason)),
            (result, _) => result,
        }
    }

    /// Sends `payload` as one request whose answer is a stream of frames
    /// (the node's `Responder::respond_stream`); read them with
    /// [`ResponseFrames::next`]. A server that answers with one frame gives
    /// a stream of that one frame.
    pub async fn request_stream(&self, payload: Vec<u8>) -> Result<ResponseFrames, NetError> {
        let request_id = self.next_request_id.fetch_add(1, Ordering::Relaxed);
        let request = ClientRequest {
            request_id,
            payload,
        };
        let recv = match self.send_request(&request).await {
            Ok(recv) => recv,
            Err(e) => {
                return Err(match self.conn.close_reason() {
                    Some(reason) => NetError::Connection(reason),
                    None => e,
                })
            }
        };
        Ok(ResponseFrames::new(request_id, recv))
    }

    /// Opens a stream, writes `request` on it and finishes our side.
    async fn send_request(&self, request: &ClientRequest) -> Result<quinn::RecvStream, NetError> {
        let (mut send, recv) = self.conn.open_bi().await?;
        write_frame(
            &mut send,
            &request.encode_to_vec(),
            MAX_CLIENT_REQUEST_BYTES,
        )
        .await?;
        send.finish().map_err(|err| FrameError::Io(err.into()))?;
        Ok(recv)
    }

    async fn exchange(&self, request: &ClientRequest) -> Result<ClientResponse, NetError> {
        let mut recv = self.send_request(request).await?;
        let frame = read_frame(&mut recv, MAX_CLIENT_RESPONSE_BYTES)
            .await?
            .ok_or(NetError::NoResponse)?;
        let response = ClientResponse::decode(&frame[..]).map_err(WireError::from)?;
        // Id 0 answers a request the server could not read at all.
        if response.request_id != request.request_id && response.request_id != 0 {
            return Err(NetError::MismatchedResponse {
                expected: request.request_id,
                got: response.request_id,
            });
        }
        Ok(response)
    }

    /// The underlying QUIC connection, for raw stream access.
    pub fn connection(&self) -> &quinn::Connection {
        &self.conn
    }

    /// Closes the connection and waits until the other side was told.
    /// Requests still in flight on it fail; later ones fail at once.
    pub async fn close(&self) {
        self.conn.close(0u32.into(), b"client closed");
        self.endpoint.wait_idle().await;
    }
}

/// The client's end of a server stream (see `response_stream` on the node's side).
#[derive(Debug)]
pub struct ResponseFrames {
    request_id: u64,
    recv: quinn::RecvStream,
    ended: bool,
}

impl ResponseFrames {
    fn new(request_id: u64, recv: quinn::RecvStream) -> ResponseFrames {
        ResponseFrames {
            request_id,
            recv,
            ended: false,
        }
    }

    /// The next frame, or `None` after the last one (`more = false`) was returned. An error
    /// frame is the last one.
    ///
    /// # Errors
    /// The stream failed, ended before its last frame ([`NetError::NoResponse`]), or carried a
    /// frame that does not decode or answers another request.
    pub async fn next(&mut self) -> Result<Option<ClientResponse>, NetError> {
        if self.ended {
            return Ok(None);
        }
        let frame = read_frame(&mut self.recv, MAX_CLIENT_RESPONSE_BYTES)
            .await?
            .ok_or(NetError::NoResponse)?;
        let response = ClientResponse::decode(&frame[..]).map_err(WireError::from)?;
        // Id 0 answers a request the server could not read at all.
        if response.request_id != self.request_id && response.request_id != 0 {
            return Err(NetError::MismatchedResponse {
                expected: self.request_id,
                got: response.request_id,
            });
        }
        self.ended = !response.more || response.error_code().is_some();
        Ok(Some(response))
    }
}
