//! Watching a key, a prefix, a lock or an election from a revision on.
//!
//! A [`Watcher`] reads one server stream (a `WatchCall` with `stream` set,
//! see `api.proto`) at a time: the node sends a frame per batch of events as
//! it applies them. When the stream breaks (the node stopped, the network
//! failed), the watcher opens another, at another node if need be, from the
//! cursor it keeps (`next_revision` and the events of that revision already
//! delivered), so no event is lost or repeated.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use prost::Message as _;
use synod_net::ResponseFrames;
use synod_wire::proto::api::api_request::Call;
use synod_wire::proto::api::api_response::Result as ApiResult;
use synod_wire::proto::api::{WatchCall, WatchResult, WatchSpace};
use synod_wire::{Event, EventFilter, EventSpace, Get, Op};
use tokio::time::Instant;

use crate::client::{classify, Attempt, Client};
use crate::connections::Target;
use crate::error::ClientError;

/// Events the node puts in one frame at most (whole revisions; it may put
/// fewer to keep the frame small).
const WATCH_BATCH_EVENTS: u32 = 1_000;

/// Pause before reopening a stream that broke before it brought anything,
/// so a node that refuses every stream at once is not asked in a loop.
const REOPEN_PAUSE: Duration = Duration::from_millis(50);

/// A stream of the events matching a filter, from a revision on, in
/// revision order, each exactly once.
///
/// The events come from one server stream: the node sends them as it
/// applies the slots that bring them, so an event reaches the watcher as
/// soon as the serving node applies it, and an idle watcher costs nothing
/// but its open stream. The stream goes to the leader when it is known,
/// else to any node (any node's history is the same log's; a follower
/// serves it from its applied state). When it breaks (the node stopped, the
/// network failed), the watcher opens another, at another node if need be,
/// from where it was: nothing is lost or repeated.
///
/// Read it with [`next`](Watcher::next), [`next_batch`](Watcher::next_batch),
/// or as a [`Stream`](futures_core::Stream) of `Result<Event, ClientError>`
/// (which never ends). Dropping a `next` or `next_batch` future, or
/// stopping polling the stream, loses nothing: the read in progress is kept
/// for the next call. While the watcher is not read, the node holds back
/// after a few frames (QUIC flow control), so a slow reader does not make
/// it buffer without bound. Dropping the watcher closes its stream.
///
/// History is bounded (the newest 10,000 events, at most 64 MiB): a watcher
/// that asks for events older than that gets
/// [`ClientError::Compacted`] (again on each read); it should re-read the
/// state it cares about and start a new watcher from that read's
/// revision + 1. [`ClientError::Timeout`] means no node took the stream
/// within the client's timeout; the watcher stays usable: read again.
///
/// ```no_run
/// # async fn demo(client: synod_client::Client) -> Result<(), synod_client::ClientError> {
/// use synod_client::EventFilter;
/// let from = client.current_revision().await? + 1;
/// let mut watcher = client.watch(EventFilter::prefix("config/"), from);
/// loop {
///     let event = watcher.next().await?;
///     println!("{:?} {:?} at {}", event.event_kind(), event.key, event.revision);
/// }
/// # }
/// ```
pub struct Watcher {
    filter: EventFilter,
    /// Every event before this revision was delivered or buffered (or did
    /// not match): the reader's cursor as of the last read that ended.
    next_revision: u64,
    /// Events read from the stream and not yet handed out.
    buffered: VecDeque<Event>,
    /// The reader, or the read in progress that owns it. In a `Mutex` only
    /// so that `Watcher` stays `Sync` (a boxed future is not): it is only
    /// reached through `&mut self` (`get_mut`), never locked.
    state: Mutex<State>,
}

/// Exactly one of the two is set.
struct State {
    /// The reader, while no read is in progress.
    idle: Option<Reader>,
    /// The read in progress; it hands the reader back when it ends.
    reading: Option<Read>,
}

type Read = Pin<Box<dyn Future<Output = (Reader, Result<Vec<Event>, ClientError>)> + Send>>;

/// Where a watcher is, and the stream it reads.
struct Reader {
    client: Client,
    filter: EventFilter,
    /// Every event before this revision was delivered (or did not match).
    next_revision: u64,
    /// Events of `next_revision` already delivered (a revision too large
    /// for one frame comes in several).
    next_skip: u32,
    /// The stream being read, if one is open.
    stream: Option<OpenStream>,
    /// Since when streams have broken or failed to open without bringing
    /// anything; reset by every frame read.
    failing_since: Option<Instant>,
}

/// One server stream of watch frames.
struct OpenStream {
    /// The node that serves it.
    node: Target,
    frames: ResponseFrames,
    /// Whether it brought a frame yet.
    brought_some: bool,
}

impl Watcher {
    /// A watcher of the events matching `filter` from `from_revision` on
    /// (0 or 1: from the very first; that fails with
    /// [`ClientError::Compacted`] once the history dropped any event). Asks
    /// nothing yet: the stream opens on the first read.
    pub fn new(client: Client, filter: EventFilter, from_revision: u64) -> Watcher {
        let reader = Reader {
            client,
            filter: filter.clone(),
            next_revision: from_revision,
            next_skip: 0,
            stream: None,
            failing_since: None,
        };
        Watcher {
            filter,
            next_revision: from_revision,
            buffered: VecDeque::new(),
            state: Mutex::new(State {
                idle: Some(reader),
                reading: None,
            }),
        }
    }

    /// The next event, waiting as long as it takes.
    pub async fn next(&mut self) -> Result<Event, ClientError> {
        loop {
            if let Some(event) = self.buffered.pop_front() {
                return Ok(event);
            }
            let batch = self.next_batch().await?;
            self.buffered.extend(batch);
        }
    }

    /// The next events: those already buffered, else the next frame's
    /// worth, waiting for it; possibly none (a frame that only says how far
    /// the node looked).
    pub async fn next_batch(&mut self) -> Result<Vec<Event>, ClientError> {
        if !self.buffered.is_empty() {
            return Ok(self.buffered.drain(..).collect());
        }
        std::future::poll_fn(|cx| self.poll_batch(cx)).await
    }

    /// Every event before this revision was delivered (or did not match).
    pub fn next_revision(&self) -> u64 {
        self.next_revision
    }

    /// What this watcher watches.
    pub fn filter(&self) -> &EventFilter {
        &self.filter
    }

    /// Polls the read in progress, starting one if none is.
    fn poll_batch(&mut self, cx: &mut Context<'_>) -> Poll<Result<Vec<Event>, ClientError>> {
        let state = self.state.get_mut().unwrap_or_else(|e| e.into_inner());
        let read = state.reading.get_or_insert_with(|| {
            let mut reader = state
                .idle
                .take()
                .expect("a watcher holds its reader while no read is in progress");
            Box::pin(async move {
                let result = reader.read_batch().await;
                (reader, result)
            })
        });
        let (reader, result) = ready!(read.as_mut().poll(cx));
        state.reading = None;
        self.next_revision = reader.next_revision;
        state.idle = Some(reader);
        Poll::Ready(result)
    }
}

impl futures_core::Stream for Watcher {
    type Item = Result<Event, ClientError>;

    /// The next event, or the error that kept it from coming; never ends.
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if let Some(event) = this.buffered.pop_front() {
                return Poll::Ready(Some(Ok(event)));
            }
            match ready!(this.poll_batch(cx)) {
                Ok(events) => this.buffered.extend(events),
                Err(e) => return Poll::Ready(Some(Err(e))),
            }
        }
    }
}

impl std::fmt::Debug for Watcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watcher")
            .field("filter", &self.filter)
            .field("next_revision", &self.next_revision)
            .field("buffered", &self.buffered.len())
            .finish_non_exhaustive()
    }
}

impl Reader {
    /// The next frame's events, opening a stream first if none is open,
    /// and another whenever the open one breaks.
    async fn read_batch(&mut self) -> Result<Vec<Event>, ClientError> {
        loop {
            let stream = match &mut self.stream {
                Some(stream) => stream,
                None => {
                    let stream = self.open().await?;
                    self.stream.insert(stream)
                }
            };
            let failure = match stream.frames.next().await {
                Ok(Some(frame)) => match classify(frame) {
                    Attempt::Served(ApiResult::Watch(result)) => {
                        stream.brought_some = true;
                        self.failing_since = None;
                        return self.take(result);
                    }
                    Attempt::Served(other) => {
                        self.stream = None;
                        return Err(ClientError::Protocol(format!(
                            "a watch stream carried {other:?}"
                        )));
                    }
                    Attempt::Refused(message) => {
                        self.stream = None;
                        return Err(ClientError::BadRequest(message));
                    }
                    // Shutting down, overloaded: another node serves it.
                    Attempt::Unavailable(why) => why,
                    Attempt::Redirect(_) => "the node redirected the stream".to_string(),
                },
                Ok(None) => "the stream ended without its last frame".to_string(),
                Err(e) => e.to_string(),
            };
            let broken = self.stream.take().expect("the stream just read");
            tracing::debug!(node = ?broken.node, error = %failure, next_revision = self.next_revision, "watch stream broke; reopening");
            self.client.pass_over(broken.node);
            if !broken.brought_some {
                let since = *self.failing_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= self.client.timeout() {
                    // Nodes take the stream and end it at once: say so.
                    self.failing_since = None;
                    return Err(ClientError::Timeout);
                }
                tokio::time::sleep(REOPEN_PAUSE).await;
            }
        }
    }

    /// Opens a stream from the cursor, within the client's timeout of the
    /// first failure.
    async fn open(&mut self) -> Result<OpenStream, ClientError> {
        let call = Call::Watch(WatchCall {
            from_revision: self.next_revision,
            space: match self.filter.space {
                EventSpace::Keys => WatchSpace::Keys,
                EventSpace::Locks => WatchSpace::Locks,
                EventSpace::Elections => WatchSpace::Elections,
            } as i32,
            key: self.filter.key.clone(),
            prefix: self.filter.prefix,
            wait_ms: 0,
            limit: WATCH_BATCH_EVENTS,
            skip: self.next_skip,
            stream: true,
        });
        let deadline = *self.failing_since.get_or_insert_with(Instant::now) + self.client.timeout();
        match self.client.open_stream(call, deadline).await {
            Ok((node, frames)) => Ok(OpenStream {
                node,
                frames,
                brought_some: false,
            }),
            Err(e) => {
                // The next read gets a whole timeout of its own.
                self.failing_since = None;
                Err(e)
            }
        }
    }

    /// Takes one frame: its events past the cursor, and the cursor moved.
    fn take(&mut self, result: WatchResult) -> Result<Vec<Event>, ClientError> {
        if let Some(compacted) = result.compacted {
            // The node ended the stream with this frame.
            self.stream = None;
            return Err(ClientError::Compacted {
                from_revision: self.next_revision,
                compacted_through: compacted.compacted_through,
                revision: compacted.revision,
            });
        }
        let mut events = Vec::with_capacity(result.events.len());
        for bytes in &result.events {
            let event = Event::decode(bytes.as_slice())
                .map_err(|e| ClientError::Protocol(format!("undecodable watch event: {e}")))?;
            // Kept as a guard: a stream starts at the cursor, so nothing
            // before it should come.
            if event.revision >= self.next_revision && self.filter.matches(&event) {
                events.push(event);
            }
        }
        if result.next_revision >= self.next_revision {
            self.next_skip = if result.next_revision == self.next_revision {
                self.next_skip.max(result.next_skip)
            } else {
                result.next_skip
            };
            self.next_revision = result.next_revision;
        }
        Ok(events)
    }
}

impl Client {
    /// Watches the events matching `filter` (a key, a prefix, a lock's
    /// holder or an election's leader) from `from_revision` on; see
    /// [`Watcher`]. For "from now", start from
    /// [`current_revision`](Client::current_revision)` + 1`.
    pub fn watch(&self, filter: EventFilter, from_revision: u64) -> Watcher {
        Watcher::new(self.clone(), filter, from_revision)
    }

    /// The store revision now, linearizably (one read of the leader).
    pub async fn current_revision(&self) -> Result<u64, ClientError> {
        let op = Op::Get(Get { key: vec![0] });
        Ok(self.read(op, false).await?.revision)
    }
}
