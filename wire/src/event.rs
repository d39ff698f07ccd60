//! Watch events: what a watcher receives for every applied change ([`Event`]), and which events
//! it asks for ([`EventFilter`]). How the state machine makes and keeps them is in
//! `synod_kvstore::watch`.
//!
//! Event schema (prost):
//!
//! ```text
//! message Event { uint64 revision = 1; EventKind kind = 2; bytes key = 3;
//!                 optional bytes prev_value = 4; optional bytes value = 5;
//!                 uint64 session = 6; uint64 prev_session = 7; }
//! enum EventKind { PUT = 0; DELETE = 1; LOCK_HOLDER = 2; ELECTION_LEADER = 3; }
//! ```

/// One applied change.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct Event {
    /// The revision of the command that made the change.
    #[prost(uint64, tag = "1")]
    pub revision: u64,
    /// An [`EventKind`].
    #[prost(enumeration = "EventKind", tag = "2")]
    pub kind: i32,
    /// The key, lock name or election name.
    #[prost(bytes = "vec", tag = "3")]
    pub key: Vec<u8>,
    /// Put and delete: the key's value before, if it existed. Election: the previous leader's
    /// value, if there was a leader. Lock: `None`.
    #[prost(bytes = "vec", optional, tag = "4")]
    pub prev_value: Option<Vec<u8>>,
    /// Put: the new value. Election: the leader's value, `None` if no leader is left. Delete and
    /// lock: `None`.
    #[prost(bytes = "vec", optional, tag = "5")]
    pub value: Option<Vec<u8>>,
    /// Put: the session owning the key (0 = persistent). Delete: 0. Lock: the new holder (0 =
    /// released). Election: the leader (0 = none).
    #[prost(uint64, tag = "6")]
    pub session: u64,
    /// The owner, holder or leader before the change (0 = none).
    #[prost(uint64, tag = "7")]
    pub prev_session: u64,
}

/// What an [`Event`] reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum EventKind {
    /// A key was written.
    Put = 0,
    /// A key was deleted.
    Delete = 1,
    /// A lock's holder changed.
    LockHolder = 2,
    /// An election's leader or its value changed.
    ElectionLeader = 3,
}

impl Event {
    /// The kind as an [`EventKind`] (`None` if unknown to this version).
    pub fn event_kind(&self) -> Option<EventKind> {
        EventKind::try_from(self.kind).ok()
    }

    /// The keyspace of this event (`None` if its kind is unknown).
    pub fn space(&self) -> Option<EventSpace> {
        Some(match self.event_kind()? {
            EventKind::Put | EventKind::Delete => EventSpace::Keys,
            EventKind::LockHolder => EventSpace::Locks,
            EventKind::ElectionLeader => EventSpace::Elections,
        })
    }
}

/// The keyspace an event belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventSpace {
    /// User keys: puts and deletes.
    Keys,
    /// Lock holders, by lock name.
    Locks,
    /// Election leaders, by election name.
    Elections,
}

/// Which events a subscriber wants: one keyspace, and one key of it or every key under a prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventFilter {
    /// The keyspace.
    pub space: EventSpace,
    /// The key (or lock or election name), or the prefix if `prefix`.
    pub key: Vec<u8>,
    /// Match every key starting with `key` (an empty prefix matches the whole keyspace).
    pub prefix: bool,
}

impl EventFilter {
    /// Changes of one user key.
    pub fn key(key: impl Into<Vec<u8>>) -> EventFilter {
        EventFilter {
            space: EventSpace::Keys,
            key: key.into(),
            prefix: false,
        }
    }

    /// Changes of every user key starting with `prefix`.
    pub fn prefix(prefix: impl Into<Vec<u8>>) -> EventFilter {
        EventFilter {
            space: EventSpace::Keys,
            key: prefix.into(),
            prefix: true,
        }
    }

    /// Holder changes of one lock.
    pub fn lock(name: impl Into<Vec<u8>>) -> EventFilter {
        EventFilter {
            space: EventSpace::Locks,
            key: name.into(),
            prefix: false,
        }
    }

    /// Leader changes of one election (the "observe" of etcd's election API).
    pub fn election(name: impl Into<Vec<u8>>) -> EventFilter {
        EventFilter {
            space: EventSpace::Elections,
            key: name.into(),
            prefix: false,
        }
    }

    /// Whether `event` is one this filter wants.
    pub fn matches(&self, event: &Event) -> bool {
        event.space() == Some(self.space)
            && if self.prefix {
                event.key.starts_with(&self.key)
            } else {
                event.key == self.key
            }
    }
}
