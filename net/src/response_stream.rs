//! Server streams: one request answered by several [`ClientResponse`] frames on its QUIC stream.
//!
//! The rule (`client.proto`): every frame but the last has `more = true`; the last has
//! `more = false`, and an error frame is always the last. The runtime sends frames through a
//! [`ResponseStream`] (from [`Responder::respond_stream`](crate::Responder::respond_stream));
//! the stream's task writes each as QUIC flow control lets it, so at most [`STREAM_QUEUE`] frames
//! wait besides what the connection's flow-control window holds in flight, whatever the
//! client's speed. The client reads them with [`ResponseFrames`](crate::ResponseFrames)
//! (from [`ClientConnection::request_stream`](crate::ClientConnection::request_stream)).
//!
//! A client that stops reading (drops its [`ResponseFrames`](crate::ResponseFrames)) stops the stream: the sender's next
//! [`send`](ResponseStream::send_payload) fails, and whatever produced the frames can stop. A
//! runtime that drops its `ResponseStream` before the last frame makes the client see an
//! `UNAVAILABLE` error frame, never a stream that merely ends.

use prost::Message as _;
use tokio::sync::mpsc;
use tracing::{debug, warn};

use crate::frame::{write_frame, MAX_CLIENT_RESPONSE_BYTES};
use synod_wire::proto::client::{ClientResponse, ErrorCode};

/// Frames a [`ResponseStream`] may have queued before its sender waits for the client.
pub const STREAM_QUEUE: usize = 2;

/// How the runtime answers a request: one frame or a stream of them.
#[derive(Debug)]
pub(crate) enum Reply {
    /// One frame.
    One(ClientResponse),
    /// Frames, in order, until one with `more = false`.
    Stream {
        /// The request they answer.
        request_id: u64,
        /// The frames.
        frames: mpsc::Receiver<ClientResponse>,
    },
}

/// The runtime's end of a server stream; see the [module docs](self).
#[derive(Debug)]
pub struct ResponseStream {
    request_id: u64,
    tx: mpsc::Sender<ClientResponse>,
}

/// The client went away: the stream is over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the client stopped reading the response stream")]
pub struct ClientGone;

impl ResponseStream {
    pub(crate) fn new(request_id: u64, tx: mpsc::Sender<ClientResponse>) -> ResponseStream {
        ResponseStream { request_id, tx }
    }

    /// Sends one successful frame; `more` says whether frames follow (false ends the stream).
    /// Waits while [`STREAM_QUEUE`] frames wait for the client.
    pub async fn send_payload(&self, payload: Vec<u8>, more: bool) -> Result<(), ClientGone> {
        self.tx
            .send(self.frame(payload, more))
            .await
            .map_err(|_| ClientGone)
    }

    /// [`send_payload`](Self::send_payload) from a thread that may block (not a tokio worker):
    /// for producers that read storage, such as a snapshot.
    pub fn blocking_send_payload(&self, payload: Vec<u8>, more: bool) -> Result<(), ClientGone> {
        self.tx
            .blocking_send(self.frame(payload, more))
            .map_err(|_| ClientGone)
    }

    /// Resolves once the client is gone (it stopped reading, or its connection ended): for a
    /// producer that waits for something to send, so it stops without waiting for it first.
    pub async fn closed(&self) {
        self.tx.closed().await
    }

    /// Ends the stream with an error frame (from a thread that may block).
    pub fn blocking_send_error(self, code: ErrorCode, message: impl Into<String>) {
        let _ = self
            .tx
            .blocking_send(ClientResponse::error(self.request_id, code, message));
    }

    fn frame(&self, payload: Vec<u8>, more: bool) -> ClientResponse {
        let mut frame = ClientResponse::ok(self.request_id, payload);
        frame.more = more;
        frame
    }
}

/// Writes the frames of `frames` to `send` until the last one (or an error frame); if the
/// runtime ends the stream early, writes an `UNAVAILABLE` error frame. Returns when the stream
/// is finished or the client is gone.
pub(crate) async fn write_stream(
    send: &mut quinn::SendStream,
    request_id: u64,
    mut frames: mpsc::Receiver<ClientResponse>,
) {
    loop {
        let frame = tokio::select! {
            frame = frames.recv() => frame,
            _ = send.stopped() => return,
        };
        let mut frame = frame.unwrap_or_else(|| {
            ClientResponse::error(
                request_id,
                ErrorCode::Unavailable,
                "the node ended the response stream early",
            )
        });
        if frame.error_code().is_some() {
            frame.more = false;
        }
        let mut bytes = frame.encode_to_vec();
        if bytes.len() > MAX_CLIENT_RESPONSE_BYTES as usize {
            warn!(
                size_bytes = bytes.len(),
                "stream frame over the frame limit"
            );
            frame = ClientResponse::error(
                frame.request_id,
                ErrorCode::TooLarge,
                "response frame exceeds the frame limit",
            );
            bytes = frame.encode_to_vec();
        }
        if let Err(err) = write_frame(send, &bytes, MAX_CLIENT_RESPONSE_BYTES).await {
            debug!(%err, "stream frame not written");
            return;
        }
        if !frame.more {
            let _ = send.finish();
            return;
        }
    }
}
