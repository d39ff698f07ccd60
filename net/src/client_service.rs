//! Client requests over QUIC: the server side a node runs, and the client
//! side ([`ClientConnection`]).
//!
//! One request per bidirectional stream: the client writes one
//! [`ClientRequest`] frame (at most [`MAX_CLIENT_REQUEST_BYTES`]) and
//! finishes its side; the server answers with one [`ClientResponse`] frame
//! (at most [`MAX_CLIENT_RESPONSE_BYTES`]) and finishes. Requests on one
//! connection are independent and may complete in any order; up to
//! [`NetOptions::max_client_streams`](crate::NetOptions) run at once.
//!
//! A runtime may instead answer with a stream of frames on the same stream
//! ([`Responder::respond_stream`], read with
//! [`ClientConnection::request_stream`]): every frame but the last has
//! `more = true`; see [`crate::response_stream`].
//!
//! The server hands each request to the runtime as an [`IncomingRequest`]
//! through a bounded channel and never waits for room: a full channel
//! answers `OVERLOADED` at once. An oversized or malformed request frame is
//! answered with an error response (request id 0), its stream is stopped,
//! and the connection keeps serving other streams.

use std::sync::Arc;

use prost::Message as _;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tracing::{debug, info_span, warn, Instrument};

use crate::endpoint::{AcceptContext, STREAM_FRAME_TOO_LARGE, STREAM_MALFORMED};
use crate::error::FrameError;
use crate::frame::{read_frame, write_frame, MAX_CLIENT_REQUEST_BYTES, MAX_CLIENT_RESPONSE_BYTES};
use crate::response_stream::{write_stream, Reply, ResponseStream, STREAM_QUEUE};
use crate::stats::add;
use crate::tls::peer_certificates;
use synod_wire::proto::client::{ClientRequest, ClientResponse, ErrorCode};

/// A client request waiting for the runtime, with the way to answer it.
#[derive(Debug)]
pub struct IncomingRequest {
    /// The request as the client sent it.
    pub request: ClientRequest,
    /// The first DNS name on the client's verified certificate (e.g.
    /// `client-alice` or `node-2`), if any.
    pub client_name: Option<Arc<str>>,
    /// Answers the request.
    pub responder: Responder,
}

/// Answers one client request. Answering never blocks: the response is
/// written by the stream's own task. Dropping a responder unanswered makes
/// the client see `UNAVAILABLE`.
#[derive(Debug)]
pub struct Responder {
    request_id: u64,
    tx: oneshot::Sender<Reply>,
}

impl Responder {
    /// The id of the request this answers.
    pub fn request_id(&self) -> u64 {
        self.request_id
    }

    /// Sends `response`, with its `request_id` set to the request's. Returns
    /// false if the client is gone (nothing to do about it).
    pub fn respond(self, mut response: ClientResponse) -> bool {
        response.request_id = self.request_id;
        self.tx.send(Reply::One(response)).is_ok()
    }

    /// Answers with a stream of frames instead of one: the returned
    /// [`ResponseStream`] sends them, each as the client reads it (at most
    /// a few frames wait in memory; QUIC flow control paces the sender).
    /// `None` if the client is gone.
    pub fn respond_stream(self) -> Option<ResponseStream> {
        let (tx, rx) = mpsc::channel(STREAM_QUEUE);
        self.tx
            .send(Reply::Stream {
                request_id: self.request_id,
                frames: rx,
            })
            .ok()?;
        Some(ResponseStream::new(self.request_id, tx))
    }

    /// Sends a successful response with `payload`; see [`Responder::respond`].
    pub fn respond_ok(self, payload: Vec<u8>) -> bool {
        let id = self.request_id;
        self.respond(ClientResponse::ok(id, payload))
    }

    /// Sends an error response; see [`Responder::respond`].
    pub fn respond_error(self, code: ErrorCode, message: impl Into<String>) -> bool {
        let id = self.request_id;
        self.respond(ClientResponse::error(id, code, message))
    }
}

/// Serves one accepted client connection until it closes.
pub(crate) async fn serve_connection(conn: quinn::Connection, context: &AcceptContext) {
    // Clients only use bidirectional streams.
    conn.set_max_concurrent_uni_streams(0u32.into());
    let client_name: Option<Arc<str>> = peer_certificates(&conn)
        .and_then(|chain| chain.into_iter().next())
        .and_then(|leaf| {
            let parsed = webpki::EndEntityCert::try_from(&leaf).ok()?;
            let name = parsed.valid_dns_names().next()?;
            Some(Arc::from(name))
        });
    let span = info_span!("client", remote = %conn.remote_address(), name = client_name.as_deref());
    async {
        // Stream tasks live in this set: when the connection ends, they stop.
        let mut streams = JoinSet::new();
        loop {
            tokio::select! {
                accepted = conn.accept_bi() => match accepted {
                    Ok((send, recv)) => {
                        let stream = StreamContext {
                            requests: context.requests.clone(),
                            counters: context.counters.clone(),
                            client_name: client_name.clone(),
                        };
                        streams.spawn(stream.serve(send, recv).in_current_span());
                    }
                    Err(err) => {
                        debug!(%err, "client connection ended");
                        break;
                    }
                },
                Some(_) = streams.join_next(), if !streams.is_empty() => {}
            }
        }
    }
    .instrument(span)
    .await
}

struct StreamContext {
    requests: mpsc::Sender<IncomingRequest>,
    counters: Arc<crate::stats::ServerCounters>,
    client_name: Option<Arc<str>>,
}

impl StreamContext {
    async fn serve(self, mut send: quinn::SendStream, mut recv: quinn::RecvStream) {
        let response = match read_frame(&mut recv, MAX_CLIENT_REQUEST_BYTES).await {
            Ok(Some(frame)) => match ClientRequest::decode(&frame[..]) {
                Ok(request) => match self.hand_over(request, &send).await {
                    Some(Reply::One(response)) => response,
                    Some(Reply::Stream { request_id, frames }) => {
                        write_stream(&mut send, request_id, frames).await;
                        return;
                    }
                    None => return,
                },
                Err(err) => {
                    self.bad_stream(&mut recv, STREAM_MALFORMED, &err);
                    ClientResponse::error(
                        0,
                        ErrorCode::BadRequest,
                        format!("malformed request: {err}"),
                    )
                }
            },
            Ok(None) => ClientResponse::error(0, ErrorCode::BadRequest, "empty request stream"),
            Err(err @ FrameError::TooLarge { .. }) => {
                self.bad_stream(&mut recv, STREAM_FRAME_TOO_LARGE, &err);
                ClientResponse::error(0, ErrorCode::TooLarge, err.to_string())
            }
            Err(err @ FrameError::Truncated) => {
                self.bad_stream(&mut recv, STREAM_MALFORMED, &err);
                ClientResponse::error(0, ErrorCode::BadRequest, err.to_string())
            }
            Err(FrameError::Io(err)) => {
                debug!(%err, "request stream failed");
                return;
            }
        };
        let mut bytes = response.encode_to_vec();
        if bytes.len() > MAX_CLIENT_RESPONSE_BYTES as usize {
            warn!(size_bytes = bytes.len(), "response over the frame limit");
            bytes = ClientResponse::error(
                response.request_id,
                ErrorCode::TooLarge,
                "response exceeds the frame limit",
            )
            .encode_to_vec();
        }
        if let Err(err) = write_frame(&mut send, &bytes, MAX_CLIENT_RESPONSE_BYTES).await {
            debug!(%err, "response not written");
            return;
        }
        let _ = send.finish();
    }

    fn bad_stream(
        &self,
        recv: &mut quinn::RecvStream,
        code: quinn::VarInt,
        err: &dyn std::fmt::Display,
    ) {
        add(&self.counters.bad_streams, 1);
        warn!(%err, "bad client stream");
        let _ = recv.stop(code);
    }

    /// Gives the request to the runtime and waits for its answer, or for
    /// the client to give up (then `None`).
    async fn hand_over(&self, request: ClientRequest, send: &quinn::SendStream) -> Option<Reply> {
        let request_id = request.request_id;
        let (tx, rx) = oneshot::channel();
        let incoming = IncomingRequest {
            request,
            client_name: self.client_name.clone(),
            responder: Responder { request_id, tx },
        };
        match self.requests.try_send(incoming) {
            Ok(()) => add(&self.counters.requests_delivered, 1),
            Err(mpsc::error::TrySendError::Full(_)) => {
                add(&self.counters.requests_overloaded, 1);
                return Some(Reply::One(ClientResponse::error(
                    request_id,
                    ErrorCode::Overloaded,
                    "request queue full; retry later",
                )));
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                return Some(Reply::One(ClientResponse::error(
                    request_id,
                    ErrorCode::Unavailable,
                    "node is shutting down",
                )));
            }
        }
        tokio::select! {
            answer = rx => Some(answer.unwrap_or_else(|_| {
                Reply::One(ClientResponse::error(
                    request_id,
                    ErrorCode::Unavailable,
                    "the node dropped the request unanswered; its effect is unknown",
                ))
            })),
            _ = send.stopped() => None,
        }
    }
}
