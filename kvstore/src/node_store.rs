//! [`NodeStore`]: the one redb database of a node, holding its acceptor log and state machine.

use std::path::Path;
use std::sync::Arc;

use redb::backends::InMemoryBackend;
use redb::Database;
use synod_paxos::{DurableState, Slot, Storage};

use crate::error::StorageError;
use crate::log_store::RedbLog;
use crate::state_machine::{Options, StateMachine};

/// Everything durable about one node, in ONE redb database: the acceptor's promise and log
/// ([`RedbLog`], tables `log_*`) and the replicated state machine ([`StateMachine`], tables
/// `sm_*`).
///
/// Sharing the database costs nothing in fsyncs and buys one: the acceptor's `Immediate` commit
/// also makes every state-machine apply before it durable. The two share redb's single writer,
/// so a persist waits for an apply in progress and the other way round.
///
/// # Restart
/// On start, the driver builds the core from both halves:
///
/// ```no_run
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use synod_kvstore::NodeStore;
/// use synod_paxos::{Config, Instant, NodeId, Replica};
///
/// let mut store = NodeStore::open("/var/lib/synod/node.redb")?;
/// let (durable, applied) = store.recovery_state()?;
/// let config = Config::new(NodeId(1), vec![NodeId(1), NodeId(2), NodeId(3)]);
/// let mut replica = Replica::new(config, durable, applied, Instant::from_micros(0))?;
/// // The core re-delivers every chosen slot above `applied` in its first `Ready`
/// // (`committed`): apply them as usual, and the state machine catches up with the log.
/// let ready = replica.ready();
/// # Ok(()) }
/// ```
///
/// That is `Replica::new(config, log.load()?, Slot(state_machine.applied_index()), now)`. It is
/// exact because applies commit atomically with the applied index: after a crash the state
/// machine holds exactly the slots through its (possibly older) applied index, and the log still
/// holds every chosen slot after it, provided the driver kept the compaction rule.
///
/// # Compaction rule
/// Before [`Replica::compact(through)`](synod_paxos::Replica::compact), the driver must
/// [`flush`](StateMachine::flush) the state machine, and `through` must be at most
/// [`applied_index()`](StateMachine::applied_index): the log may only forget slots that a
/// durable state-machine commit holds. Otherwise a crash could restart the state machine below
/// the compaction point with the slots in between gone; [`recovery_state`](Self::recovery_state)
/// reports that as [`StorageError::Corrupt`].
pub struct NodeStore {
    /// The acceptor's durable state; pass it to the driver as its `synod_paxos::Storage`.
    pub log: RedbLog,
    /// The replicated state machine.
    pub state_machine: StateMachine,
}

impl std::fmt::Debug for NodeStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeStore")
            .field("log", &self.log)
            .field("state_machine", &self.state_machine)
            .finish()
    }
}

impl NodeStore {
    /// Open (or create) the node's database file at `path`, with default state-machine
    /// [`Options`]. Creating tables commits with fsync.
    pub fn open(path: impl AsRef<Path>) -> Result<NodeStore, StorageError> {
        NodeStore::open_with(path, Options::default())
    }

    /// Open (or create) the node's database file at `path`.
    pub fn open_with(path: impl AsRef<Path>, options: Options) -> Result<NodeStore, StorageError> {
        NodeStore::from_database(Arc::new(Database::create(path)?), options)
    }

    /// A node store on a fresh in-memory database (redb's [`InMemoryBackend`]), with default
    /// [`Options`]; for tests and simulation. Nothing survives dropping it.
    pub fn in_memory() -> Result<NodeStore, StorageError> {
        NodeStore::in_memory_with(Options::default())
    }

    /// A node store on a fresh in-memory database.
    pub fn in_memory_with(options: Options) -> Result<NodeStore, StorageError> {
        let db = Database::builder().create_with_backend(InMemoryBackend::new())?;
        NodeStore::from_database(Arc::new(db), options)
    }

    /// Log and state machine on an open database.
    pub fn from_database(db: Arc<Database>, options: Options) -> Result<NodeStore, StorageError> {
        Ok(NodeStore {
            log: RedbLog::from_database(db.clone())?,
            state_machine: StateMachine::from_database(db, options)?,
        })
    }

    /// What [`Replica::new`](synod_paxos::Replica::new) needs: the log's durable state and the
    /// state machine's applied index as a slot. Reads the whole log (O(slots held)).
    ///
    /// # Errors
    /// Storage failures, and [`StorageError::Corrupt`] if the state machine is behind the log's
    /// compaction point (the compaction rule was broken: slots were lost).
    pub fn recovery_state(&self) -> Result<(DurableState, Slot), StorageError> {
        let durable = self.log.load()?;
        let applied = Slot(self.state_machine.applied_index());
        if applied < durable.compacted_through {
            return Err(StorageError::Corrupt {
                table: "sm_meta",
                reason: format!(
                    "state machine applied through slot {applied}, but the log was compacted \
                     through {}: slots in between are lost",
                    durable.compacted_through
                ),
            });
        }
        Ok((durable, applied))
    }
}
