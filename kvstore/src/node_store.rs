//! [`NodeStore`]: what a node keeps on disk, its acceptor log and its state machine.

use std::path::Path;
use std::sync::Arc;

use std::io::Read;

use redb::{Database, StorageBackend};
use synod_paxos::{DurableState, Slot, Storage};

use crate::error::StorageError;
use crate::log::{sync_dir, FsDisk, WalDisk, WalLog, WalOptions};
use crate::state_machine::{Options, StateMachine};

/// The acceptor log's directory (a [`WalLog`]) in a node's directory.
pub const LOG_DIR: &str = "log";
/// The state machine's file in a node's directory.
pub const STATE_FILE: &str = "state.redb";
/// The one file of the layout before the split, refused with a clear error.
const OLD_SINGLE_FILE: &str = "synod.redb";
/// What redb writes first in a database file, last when creating one.
const REDB_MAGIC: [u8; 9] = [b'r', b'e', b'd', b'b', 0x1A, 0x0A, 0xA9, 0x0D, 0x0A];

/// Everything durable about one node, in one directory: the acceptor's promise and log
/// ([`WalLog`], directory [`LOG_DIR`]) and the replicated state machine ([`StateMachine`], redb
/// file [`STATE_FILE`]).
///
/// Why apart: the log is written on the critical path of every write, so it is an append-only
/// file (one small append and one `fdatasync` per group commit), while the state machine, read
/// by key, is a redb database whose applies commit without fsync and reach the disk when it is
/// [`flush`](StateMachine::flush)ed. (They once shared one redb file; redb writes the pages of
/// unsynced commits at the next synced one, so every acceptor fsync also wrote the state
/// machine's pages.)
///
/// # Restart
/// On start, the driver builds the core from both halves:
///
/// ```no_run
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use synod_kvstore::NodeStore;
/// use synod_paxos::{Config, Instant, NodeId, Replica};
///
/// let mut store = NodeStore::open("/var/lib/synod")?;
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
/// machine holds exactly the slots through its (possibly older) applied index, and every chosen
/// slot after it is in this log or, if this node applied it before its own records were durable,
/// at a majority of the others, from whom the node fetches it again (provided the driver kept the
/// compaction rule).
///
/// # Compaction rule
/// Before [`Replica::compact(through)`](synod_paxos::Replica::compact), the driver must
/// [`flush`](StateMachine::flush) the state machine, and `through` must be at most
/// [`applied_index()`](StateMachine::applied_index): the log may only forget slots that a
/// durable state-machine commit holds. Otherwise a crash could restart the state machine below
/// the compaction point with the slots in between gone; [`recovery_state`](Self::recovery_state)
/// reports that as [`StorageError::Corrupt`].
pub struct NodeStore<D: WalDisk = FsDisk> {
    /// The acceptor's durable state; pass it to the driver as its `synod_paxos::Storage`.
    pub log: WalLog<D>,
    /// The replicated state machine.
    pub state_machine: StateMachine,
}

impl<D: WalDisk> std::fmt::Debug for NodeStore<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeStore")
            .field("log", &self.log)
            .field("state_machine", &self.state_machine)
            .finish()
    }
}

impl NodeStore {
    /// Open (or create) the node's databases in directory `dir` (created if missing), with
    /// default state-machine [`Options`]. Creating tables commits with fsync.
    ///
    /// # Creating the files
    /// Each file is created atomically: written under a temporary name, synced, renamed, and the
    /// directory synced, so a node killed at any moment of its first start starts again. A
    /// temporary file left by such a kill is removed. A state file that redb began but never
    /// finished creating (a version before this one did not create it atomically) is recognised
    /// (empty, shorter than redb's magic number, or starting with zeros where the magic number
    /// goes: redb writes it last) and created again; it cannot hold a committed transaction, and
    /// it is kept as `state.redb.never-initialised`.
    ///
    /// # Errors
    /// Storage failures, and [`StorageError::Layout`] if `dir` holds the single-file layout of
    /// an older Synod (`synod.redb`), which this version does not read.
    pub fn open(dir: impl AsRef<Path>) -> Result<NodeStore, StorageError> {
        NodeStore::open_with(dir, Options::default())
    }

    /// Open (or create) the node's databases in directory `dir`.
    pub fn open_with(dir: impl AsRef<Path>, options: Options) -> Result<NodeStore, StorageError> {
        let dir = dir.as_ref();
        let old_layout = dir.join(OLD_SINGLE_FILE);
        if old_layout.exists() {
            return Err(StorageError::Layout(format!(
                "{} is the single-file layout of an older Synod; this version keeps {LOG_DIR}/ \
                 and {STATE_FILE} instead: start from an empty data directory",
                old_layout.display()
            )));
        }
        if !dir.is_dir() {
            std::fs::create_dir_all(dir)?;
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                sync_dir(parent)?;
            }
        }
        let log = WalLog::open(dir.join(LOG_DIR))?;
        let state = open_state_file(dir)?;
        Ok(NodeStore {
            log,
            state_machine: StateMachine::from_database(Arc::new(state), options)?,
        })
    }
}

impl<D: WalDisk> NodeStore<D> {
    /// A node's store on a log disk and a state-machine backend of the caller's choosing, such
    /// as the simulator's [`SimDisk`](crate::SimDisk) and
    /// [`SimRedbBackend`](crate::SimRedbBackend): [`WalLog::open_on`] and
    /// [`StateMachine::open_on_backend`].
    pub fn open_on(
        log_disk: D,
        log_options: WalOptions,
        state_backend: impl StorageBackend,
        options: Options,
    ) -> Result<NodeStore<D>, StorageError> {
        Ok(NodeStore {
            log: WalLog::open_on(log_disk, log_options)?,
            state_machine: StateMachine::open_on_backend(state_backend, options)?,
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

/// Opens `dir`'s state file, creating it atomically if missing (or never initialised): a
/// database made under a temporary name with one synced commit, renamed into place, the
/// directory synced.
fn open_state_file(dir: &Path) -> Result<Database, StorageError> {
    let path = dir.join(STATE_FILE);
    let temp = dir.join(format!("{STATE_FILE}.tmp"));
    if temp.exists() {
        tracing::warn!(file = %temp.display(), "removing a half-created state file");
        std::fs::remove_file(&temp)?;
    }
    if path.exists() && never_initialised(&path)? {
        // Moved aside, not deleted: it holds nothing redb could have committed, but whatever
        // it holds stays for whoever wants to look.
        let aside = dir.join(format!("{STATE_FILE}.never-initialised"));
        tracing::warn!(
            file = %path.display(),
            moved_to = %aside.display(),
            "the state file was never fully created (its creator was killed); creating it again"
        );
        std::fs::rename(&path, &aside)?;
        sync_dir(dir)?;
    }
    if !path.exists() {
        {
            let db = Database::create(&temp)?;
            // One synced commit: the header and an empty tree are on disk before the rename.
            db.begin_write()?.commit()?;
        }
        std::fs::File::open(&temp)?.sync_all()?;
        std::fs::rename(&temp, &path)?;
        sync_dir(dir)?;
    }
    Ok(Database::create(path)?)
}

/// True if the file at `path` cannot be a database redb finished creating: empty, shorter than
/// redb's magic number, or zeros where the magic number goes (redb writes it last).
fn never_initialised(path: &Path) -> Result<bool, StorageError> {
    let mut start = Vec::with_capacity(REDB_MAGIC.len());
    std::fs::File::open(path)?
        .take(REDB_MAGIC.len() as u64)
        .read_to_end(&mut start)?;
    Ok(start.len() < REDB_MAGIC.len() || start.iter().all(|b| *b == 0))
}
