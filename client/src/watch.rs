//! Watching a key, a prefix, a lock or an election from a revision on.

use std::collections::VecDeque;
use std::time::Duration;

use prost::Message as _;
use synod_wire::proto::api::api_request::Call;
use synod_wire::proto::api::api_response::Result as ApiResult;
use synod_wire::proto::api::{WatchCall, WatchSpace};
use synod_wire::{Event, EventFilter, EventSpace, Get, Op};

use crate::client::Client;
use crate::error::ClientError;

/// How long the node may hold one watch call before answering with no
/// events (the watcher then asks again at once).
const WATCH_WAIT: Duration = Duration::from_secs(10);

/// Events asked for per call.
const WATCH_BATCH_EVENTS: u32 = 1_000;

/// A stream of the events matching a filter, from a revision on, in
/// revision order, each exactly once.
///
/// Each [`next_batch`](Watcher::next_batch) is one long-poll call: the node
/// answers at once with the events it already has, or as soon as a slot
/// bringing a matching event is applied, or after 10 s with none. So an idle
/// watcher costs one call per 10 s and an event reaches it as soon as the
/// node that serves the call applies it. Calls go to the leader when it is
/// known, else to any node (any node's history is the same log's).
///
/// History is bounded (the newest 10,000 events, at most 64 MiB): a watcher
/// that asks for events older than that gets
/// [`ClientError::Compacted`]; it should re-read the state it cares about
/// and start a new watcher from that read's revision + 1. Other errors
/// (such as [`ClientError::Timeout`] while no node answers) leave the
/// watcher usable: call again.
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
#[derive(Debug)]
pub struct Watcher {
    client: Client,
    filter: EventFilter,
    next_revision: u64,
    /// Events of `next_revision` already delivered (a revision too large
    /// for one answer comes in several).
    next_skip: u32,
    buffered: VecDeque<Event>,
}

impl Watcher {
    /// A watcher of the events matching `filter` from `from_revision` on
    /// (0 or 1: from the very first; that fails with
    /// [`ClientError::Compacted`] once the history dropped any event). Asks
    /// nothing yet.
    pub fn new(client: Client, filter: EventFilter, from_revision: u64) -> Watcher {
        Watcher {
            client,
            filter,
            next_revision: from_revision,
            next_skip: 0,
            buffered: VecDeque::new(),
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

    /// The next events (those already buffered, else one long-poll call's
    /// worth), possibly none if the call's wait ran out.
    pub async fn next_batch(&mut self) -> Result<Vec<Event>, ClientError> {
        if !self.buffered.is_empty() {
            return Ok(self.buffered.drain(..).collect());
        }
        let call = Call::Watch(WatchCall {
            from_revision: self.next_revision,
            space: match self.filter.space {
                EventSpace::Keys => WatchSpace::Keys,
                EventSpace::Locks => WatchSpace::Locks,
                EventSpace::Elections => WatchSpace::Elections,
            } as i32,
            key: self.filter.key.clone(),
            prefix: self.filter.prefix,
            wait_ms: WATCH_WAIT.as_millis() as u32,
            limit: WATCH_BATCH_EVENTS,
            skip: self.next_skip,
        });
        let result = match self
            .client
            .call_api(call, self.client.timeout(), WATCH_WAIT)
            .await?
        {
            ApiResult::Watch(result) => result,
            other => {
                return Err(ClientError::Protocol(format!(
                    "a watch call was answered with {other:?}"
                )))
            }
        };
        if let Some(compacted) = result.compacted {
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
            // A node behind the one that served the last call may repeat
            // events: keep each once.
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

    /// Every event before this revision was delivered (or did not match).
    pub fn next_revision(&self) -> u64 {
        self.next_revision
    }

    /// What this watcher watches.
    pub fn filter(&self) -> &EventFilter {
        &self.filter
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
