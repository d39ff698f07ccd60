//! The replicated state machine: applies chosen log slots to redb tables.

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use redb::backends::InMemoryBackend;
use redb::{Database, Durability, ReadableDatabase, ReadableTable, Table, WriteTransaction};
use synod_paxos::MembershipLog;

use crate::bugs::Active;
use crate::coord::tables::{create_tables, CoordTables, KEY_EXPIRY, MEMBERSHIP};
use crate::coord::{lock, session};
use crate::dedup::{self, Admission, AppliedAt, DedupAges};
use crate::effects::SlotEffects;
use crate::error::{ExecError, StorageError};
use crate::exec;
use crate::fnv::Fnv;
use crate::key_expiry::{self, KeyExpiry};
use crate::kv;
use crate::membership::{self, decode_membership_command};
use crate::snapshot::{
    read_entries, reset_staging, Snapshot, SnapshotChunk, SnapshotError, SnapshotInstaller,
};
use crate::tables::{get_meta, APPLIED_INDEX, DEDUP, KV, META, OLD_DEDUP_AGE, REVISION};
use crate::watch::{History, Undo, WatchBatch, WatchError};
use crate::EventFilter;
use crate::{DelayedLock, SessionInfo};
use synod_wire::command::{Op, Request};
use synod_wire::limits::MAX_DEDUP_CLIENTS;
use synod_wire::response::{Outcome, Response};
use synod_wire::RequestError;

/// Settings of a [`StateMachine`]. Part of the replicated state machine's definition: every node
/// of a cluster must use the same values, or they would apply the same log differently.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// Most clients the exactly-once table remembers (at least 1). Default
    /// [`MAX_DEDUP_CLIENTS`].
    pub max_dedup_clients: u64,
    /// Deliberately broken rules (tests only).
    #[cfg(feature = "bug-injection")]
    pub bugs: crate::Bugs,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            max_dedup_clients: MAX_DEDUP_CLIENTS,
            #[cfg(feature = "bug-injection")]
            bugs: crate::Bugs::default(),
        }
    }
}

impl Options {
    /// The broken rules to apply with (none without the `bug-injection` feature).
    fn active_bugs(&self) -> Active {
        #[cfg(feature = "bug-injection")]
        return self.bugs;
        #[cfg(not(feature = "bug-injection"))]
        Active
    }
}

/// The replicated key-value state machine of one node, over a redb database.
///
/// # Applying
/// [`apply_slots`](StateMachine::apply_slots) applies chosen log slots (each a batch of encoded
/// [`Request`]s) in one redb write transaction that also records the last slot as the applied
/// index and the new revision, so the tables and the applied index always change together. Apply
/// is a pure function of the state and the slots' bytes: no clock, no randomness, no iteration
/// over hash maps. Every node applying the same log holds the same state.
///
/// # Durability
/// Apply commits use [`Durability::None`]: no fsync. The log is durable, and replay from
/// [`applied_index`](StateMachine::applied_index) is exact, so a crash only costs replaying the
/// slots since the last durable commit. The pitfall: a `None` commit becomes durable only with a
/// later `Immediate` commit (this crate's [`flush`](StateMachine::flush), or any `Immediate`
/// commit on the same database). Until then redb also keeps the written and freed
/// pages of those commits in memory. So call `flush` now and then (e.g. every few thousand slots,
/// or once a second), and always before truncating the log below `applied_index()`: after a
/// crash the state machine may restart at the last flushed index, and the log must still hold
/// every slot after it.
///
/// # Revisions
/// The store revision counts commands that changed the kv table: it starts at 0 and goes up by
/// exactly one per such command (a put; a delete, delete-range, compare-and-swap or incr that
/// changed something; a transaction with at least one effective write, counted once however many
/// keys it writes). Refused commands, reads and no-op writes leave it alone. Each key keeps
/// `create_revision` (the revision that created it), `mod_revision` (the revision that last wrote
/// it) and `version` (writes since creation: 1 after the create). Deleting a key forgets it: a
/// re-created key starts again at version 1 with a new create revision.
///
/// Coordination commands count the same way: opening, closing or expiring a session, granting,
/// queueing for or releasing a lock, ending a lock-delay, and any change of an election each
/// consume one revision (a session's id and a lock's fencing token are the revision that
/// created them). Keep-alives and checkpoints only touch TTL bookkeeping and consume none.
/// Setting, changing or removing a key's expiry ([`Op::Expire`], [`Op::Persist`]) consumes
/// one (the new expiry's name, see [`synod_wire::expiry_command`]) without changing the key's
/// `mod_revision` or `version`.
///
/// # Coordination and watches
/// Sessions, locks, elections and fenced writes: see [`synod_wire::coord_command`]; their tables are
/// `sm_*` like the rest, so snapshots and [`state_hash`](StateMachine::state_hash) cover them.
/// Applying a slot also collects its watch events and session events, returned with its
/// responses in its [`AppliedSlot`]; the events also go to a bounded history
/// ([`events_since`](StateMachine::events_since), see [`crate::watch`]).
///
/// # Exactly-once
/// Per client id (not 0), the table `sm_dedup` keeps the client's last sequence number and the
/// response it got. A request with that same sequence number (a retry) gets the recorded
/// response without being applied again; a lower one is refused with
/// [`RequestError::StaleSequence`]; a higher one is applied. Clients number requests from 1 and
/// keep at most one outstanding. At most [`Options::max_dedup_clients`] clients are remembered:
/// to record a new client in a full table, the client whose last request was applied longest ago
/// (smallest slot, then position in the batch) is forgotten. A forgotten client's next request
/// (sequence above 1) is refused with [`RequestError::UnknownClient`] rather than risk applying
/// a retry twice; the client must start over with a new id. Requests with client id 0 bypass the
/// table entirely: reads lose nothing by it, writes become at-least-once if retried.
///
/// Every request with a valid header (it decodes, and a non-zero client id comes with a sequence
/// number of at least 1) consumes its sequence number, including one refused for its op (empty
/// key, value too large, ...): the refusal is recorded and a retry gets it again. Bytes that do
/// not decode, or a sequence number 0, are answered with an error and not recorded: there is no
/// trustworthy client and sequence to record them under.
pub struct StateMachine {
    db: Arc<Database>,
    options: Options,
    applied_index: u64,
    revision: u64,
    /// The watch history, in memory and stored at durable commits (see [`crate::watch`]). Behind
    /// a lock because storing it is a write that `&self` reads of the whole state
    /// ([`snapshot`](StateMachine::snapshot), [`state_hash`](StateMachine::state_hash)) do first.
    history: Mutex<History>,
    /// The exactly-once table's eviction order, derived from `sm_dedup` at the first apply
    /// after the table changed other than by an apply (open, snapshot install) or an apply
    /// failed (its changes to the order went with its transaction); `None` until then.
    dedup_ages: Option<DedupAges>,
    /// The reader of the state as last committed, until the state changes (see
    /// [`reader`](StateMachine::reader)).
    kept_reader: Mutex<Option<Arc<Reader>>>,
}

impl std::fmt::Debug for StateMachine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateMachine")
            .field("applied_index", &self.applied_index)
            .field("revision", &self.revision)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl StateMachine {
    /// Open (or create) the database file at `path` with default [`Options`].
    ///
    /// Creating the tables commits with fsync once.
    pub fn open(path: impl AsRef<Path>) -> Result<StateMachine, StorageError> {
        StateMachine::open_with(path, Options::default())
    }

    /// Open (or create) the database file at `path`.
    pub fn open_with(
        path: impl AsRef<Path>,
        options: Options,
    ) -> Result<StateMachine, StorageError> {
        let db = Database::create(path)?;
        StateMachine::from_database(Arc::new(db), options)
    }

    /// A state machine on a fresh in-memory database (redb's [`InMemoryBackend`]) with default
    /// [`Options`]; for tests and simulation. Nothing survives dropping it.
    pub fn in_memory() -> Result<StateMachine, StorageError> {
        StateMachine::in_memory_with(Options::default())
    }

    /// A state machine on a fresh in-memory database.
    pub fn in_memory_with(options: Options) -> Result<StateMachine, StorageError> {
        let db = Database::builder().create_with_backend(InMemoryBackend::new())?;
        StateMachine::from_database(Arc::new(db), options)
    }

    /// A state machine on a database kept by `backend` (the simulator's
    /// [`SimRedbBackend`](crate::SimRedbBackend), whose crashes it controls): creates the
    /// database if the backend is empty, else opens what it holds.
    pub fn open_on_backend(
        backend: impl redb::StorageBackend,
        options: Options,
    ) -> Result<StateMachine, StorageError> {
        let db = Database::builder().create_with_backend(backend)?;
        StateMachine::from_database(Arc::new(db), options)
    }

    /// A state machine on an open database, which it may share with other users (such as the
    /// acceptor's storage); its tables are named `sm_*`. Creates missing tables with one `Immediate`
    /// commit and loads the applied index and revision. Drops any half-received snapshot left by
    /// a crash (see [`SnapshotInstaller`]).
    pub fn from_database(
        db: Arc<Database>,
        options: Options,
    ) -> Result<StateMachine, StorageError> {
        assert!(
            options.max_dedup_clients >= 1,
            "max_dedup_clients must be at least 1"
        );
        let txn = db.begin_write()?;
        let (applied_index, revision) = {
            txn.open_table(KV)?;
            txn.open_table(DEDUP)?;
            // Its rows are derived from sm_dedup now (see `DedupAges`).
            txn.delete_table(OLD_DEDUP_AGE)?;
            create_tables(&txn)?;
            reset_staging(&txn)?;
            let meta = txn.open_table(META)?;
            (get_meta(&meta, APPLIED_INDEX)?, get_meta(&meta, REVISION)?)
        };
        txn.commit()?;
        let history = Mutex::new(History::load(&db, revision)?);
        tracing::debug!(applied_index, revision, "state machine opened");
        Ok(StateMachine {
            db,
            options,
            applied_index,
            revision,
            history,
            dedup_ages: None,
            kept_reader: Mutex::new(None),
        })
    }

    /// The watch history, locked. Lock order: a redb write transaction is begun before the
    /// lock is taken, never while it is held.
    ///
    /// # Errors
    /// [`StorageError::Interrupted`] if a panic interrupted an apply: the history in memory may
    /// then hold events of slots that never committed, and must not be served or stored.
    fn history(&self) -> Result<MutexGuard<'_, History>, StorageError> {
        self.history.lock().map_err(|_| StorageError::Interrupted)
    }

    /// Commit `txn` with [`Durability::Immediate`], with the watch history stored in it: every
    /// durable commit of the state holds the whole history (see [`crate::watch`]).
    fn commit_durably(&self, mut txn: WriteTransaction) -> Result<(), StorageError> {
        txn.set_durability(Durability::Immediate)?;
        self.commit_with_history(txn)
    }

    /// Store the watch history in `txn`, then commit it.
    fn commit_with_history(&self, txn: WriteTransaction) -> Result<(), StorageError> {
        let mut history = self.history()?;
        let stored = history.store(&txn)?;
        txn.commit()?;
        history.stored(stored);
        Ok(())
    }

    /// Bring the stored watch history up to date in a commit of its own, without fsync (nothing
    /// to do if it is): before the state is read whole or the database closed.
    fn store_history(&self) -> Result<(), StorageError> {
        if self.history()?.is_stored() {
            return Ok(());
        }
        let mut txn = self.db.begin_write()?;
        txn.set_durability(Durability::None)?;
        self.commit_with_history(txn)
    }

    /// How many keys, sessions and locks the applied state holds. Cheap:
    /// redb keeps each table's length, so this reads three numbers.
    pub fn counts(&self) -> Result<StateCounts, StorageError> {
        use redb::ReadableTableMetadata;
        let txn = self.db.begin_read()?;
        let len = |table: Result<redb::ReadOnlyTable<&[u8], &[u8]>, redb::TableError>| match table {
            Ok(table) => Ok(table.len()?),
            Err(redb::TableError::TableDoesNotExist(_)) => Ok(0),
            Err(e) => Err(StorageError::from(e)),
        };
        Ok(StateCounts {
            keys: len(txn.open_table(KV))?,
            sessions: len(txn.open_table(crate::coord::tables::SESSIONS))?,
            locks: len(txn.open_table(crate::coord::tables::LOCKS))?,
        })
    }

    /// The last applied slot (0 before the first).
    pub fn applied_index(&self) -> u64 {
        self.applied_index
    }

    /// The store revision after the last applied slot.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// The settings this state machine applies with.
    pub fn options(&self) -> &Options {
        &self.options
    }

    /// The watch events matching `filter` with revision `from_revision` or later, oldest first,
    /// from the bounded history (see [`crate::watch`]). Stops at the first revision boundary at
    /// or after `limit` matching events (0 = the history's size), so a batch always holds whole
    /// revisions and [`WatchBatch::next_revision`] says where to continue.
    ///
    /// # Errors
    /// [`WatchError::Compacted`] if events at or after `from_revision` were dropped from the
    /// history; [`StorageError::Interrupted`] after a panic in an apply. Reads memory only (the
    /// history is kept there), at most the whole history.
    pub fn events_since(
        &self,
        from_revision: u64,
        filter: &EventFilter,
        limit: usize,
    ) -> Result<WatchBatch, WatchError> {
        self.history()?
            .events_since(from_revision, filter, limit, self.revision)
    }

    /// Every open session with its TTL bookkeeping, by id: what a new leader's
    /// [`SessionClock::become_leader`](crate::SessionClock::become_leader) starts from. Reads
    /// every session.
    pub fn sessions(&self) -> Result<Vec<SessionInfo>, StorageError> {
        session::list(&self.db)
    }

    /// Every key with an expiry, in key order, with its expiry revision and recorded remaining
    /// TTL: what a new leader's
    /// [`KeyExpiryClock::become_leader`](crate::KeyExpiryClock::become_leader) starts from.
    /// Reads every key expiry (not the keys without one).
    pub fn key_expiries(&self) -> Result<Vec<KeyExpiry>, StorageError> {
        key_expiry::list(&self.db)
    }

    /// The memberships as of the applied slot (unknown until
    /// [`set_founding_membership`](StateMachine::set_founding_membership) or a snapshot
    /// install sets one): what the consensus core starts from.
    pub fn membership(&self) -> Result<MembershipLog, StorageError> {
        let txn = self.db.begin_read()?;
        let table = match txn.open_table(MEMBERSHIP) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(MembershipLog::default()),
            Err(e) => return Err(e.into()),
        };
        membership::load(&table)
    }

    /// Stores a new cluster's founding membership, durably, if no membership is known yet
    /// (a node's first start; every founding node stores the same one, from its configuration).
    /// Returns the membership now stored.
    pub fn set_founding_membership(
        &mut self,
        founding: MembershipLog,
    ) -> Result<MembershipLog, StorageError> {
        let known = self.membership()?;
        if !known.is_unknown() {
            return Ok(known);
        }
        self.drop_kept_reader();
        let txn = self.db.begin_write()?;
        {
            let mut table = txn.open_table(MEMBERSHIP)?;
            membership::store(&mut table, &founding)?;
        }
        self.commit_durably(txn)?;
        Ok(founding)
    }

    /// Forgets the membership, durably: a state restored from another
    /// cluster's backup must not bring that cluster's members along (the
    /// new cluster's founding membership is stored at its first start).
    pub fn forget_membership(&mut self) -> Result<(), StorageError> {
        self.drop_kept_reader();
        let txn = self.db.begin_write()?;
        {
            let mut table = txn.open_table(MEMBERSHIP)?;
            table.retain(|_, _| false)?;
        }
        self.commit_durably(txn)
    }

    /// Every lock in lock-delay, by name: the other input of
    /// [`SessionClock::become_leader`](crate::SessionClock::become_leader). Reads every lock.
    pub fn delayed_locks(&self) -> Result<Vec<DelayedLock>, StorageError> {
        lock::delayed(&self.db)
    }

    /// Apply consecutive chosen log slots, each a `(slot, commands)` pair whose commands are the
    /// slot's batch (empty for a no-op slot), in ONE redb transaction, and return for each slot,
    /// in order, an [`AppliedSlot`]: one response per command, in order, what else the slot did
    /// (its watch events for live watchers, its session and key expiry events for the leader's
    /// [`SessionClock`](crate::SessionClock) and [`KeyExpiryClock`](crate::KeyExpiryClock)), and
    /// the revision after it. Apply one slot with `apply_slots([(slot, commands)])`; a loaded
    /// leader passes every slot of a round, since a commit (opening every table, writing their
    /// roots) costs more than applying a small command.
    ///
    /// The slots commit together with `applied_index` = the last slot and the new revision, with
    /// [`Durability::None`] (no fsync; see the type docs). A command that does not decode or
    /// validate gets an error response and the rest of the batch still applies: every node does
    /// exactly the same.
    ///
    /// # Panics
    /// If the slots do not follow `applied_index()` one by one: slots apply strictly in order,
    /// once each.
    ///
    /// # Errors
    /// Only storage failures; then none of the slots is applied (nothing changed) and
    /// `applied_index` stays where it was.
    pub fn apply_slots<'a>(
        &mut self,
        slots: impl IntoIterator<Item = (u64, &'a [Vec<u8>])>,
    ) -> Result<Vec<AppliedSlot>, StorageError> {
        self.drop_kept_reader();
        // Taken out while the transaction runs: put back only if it commits.
        let mut ages = self.dedup_ages.take();
        let (applied, applied_index, revision) = {
            let mut txn = self.db.begin_write()?;
            txn.set_durability(Durability::None)?;
            let mut history = self.history()?;
            let mut undo = history.begin();
            let result = self.apply_in_transaction(txn, slots, &mut history, &mut undo, &mut ages);
            if result.is_err() {
                history.roll_back(undo);
            }
            result?
        };
        self.dedup_ages = ages;
        assert!(revision >= self.revision, "the revision never goes down");
        self.applied_index = applied_index;
        self.revision = revision;
        Ok(applied)
    }

    /// [`apply_slots`](StateMachine::apply_slots)'s transaction `txn`: returns what it applied
    /// and the applied index and revision after it. Records the slots' watch events in
    /// `history` (to undo with `undo` if this fails) and keeps `ages` in step with `sm_dedup`
    /// (deriving it first if `None`; to drop if this fails).
    fn apply_in_transaction<'a>(
        &self,
        txn: WriteTransaction,
        slots: impl IntoIterator<Item = (u64, &'a [Vec<u8>])>,
        history: &mut History,
        undo: &mut Undo,
        ages: &mut Option<DedupAges>,
    ) -> Result<(Vec<AppliedSlot>, u64, u64), StorageError> {
        let mut revision = self.revision;
        let mut applied_index = self.applied_index;
        let mut applied = Vec::new();
        let mut history_changed = false;
        {
            let mut kv = txn.open_table(KV)?;
            let mut dedup = txn.open_table(DEDUP)?;
            if ages.is_none() {
                *ages = Some(DedupAges::load(&dedup)?);
            }
            let ages = ages.as_mut().expect("derived above");
            let mut coord = CoordTables::open(&txn)?;
            let mut meta = txn.open_table(META)?;
            for (slot, commands) in slots {
                assert_eq!(
                    slot,
                    applied_index + 1,
                    "slots must be applied strictly in order"
                );
                let _span =
                    tracing::trace_span!("apply", slot, commands = commands.len()).entered();
                let mut effects = SlotEffects {
                    slot,
                    ..SlotEffects::default()
                };
                let mut tables = WriteTables {
                    kv: &mut kv,
                    dedup: &mut dedup,
                    ages,
                    coord: &mut coord,
                    effects: &mut effects,
                    max_clients: self.options.max_dedup_clients,
                    bugs: self.options.active_bugs(),
                };
                let mut responses = Vec::with_capacity(commands.len());
                for (position, bytes) in commands.iter().enumerate() {
                    if let Some(Ok(change)) = decode_membership_command(bytes) {
                        membership::record(tables.coord.membership()?, slot, &change)?;
                        responses.push(Response {
                            revision,
                            outcome: None,
                        });
                        continue;
                    }
                    let at = AppliedAt {
                        slot,
                        position: position as u64,
                    };
                    responses.push(tables.apply_one(at, bytes, &mut revision)?);
                }
                history_changed |= history.record(&effects.events, undo);
                applied_index = slot;
                applied.push(AppliedSlot {
                    responses,
                    effects,
                    revision,
                });
            }
            if history_changed {
                history.write_meta(&mut meta)?;
            }
            meta.insert(APPLIED_INDEX, applied_index)?;
            meta.insert(REVISION, revision)?;
        }
        txn.commit()?;
        Ok((applied, applied_index, revision))
    }

    /// Make every applied slot durable: one `Immediate` commit (one fsync for a file database)
    /// that also brings the stored watch history up to date. Blocks while another write
    /// transaction on the database is open.
    pub fn flush(&mut self) -> Result<(), StorageError> {
        let txn = self.db.begin_write()?;
        self.commit_durably(txn)
    }

    /// Serve a read-only op ([`Op::Get`], [`Op::Scan`], [`Op::LockHolder`], [`Op::Leader`] or
    /// [`Op::Ttl`]) from the committed state, outside the log. The response's revision is that of the state
    /// read.
    ///
    /// This reads whatever was applied last; it is linearizable only if the caller has made sure
    /// (leader lease or read index) that everything committed before the read arrived has been
    /// applied. Other ops and invalid ones get an error response. Does not write or block on
    /// writers (redb readers see the last commit).
    pub fn read(&self, op: &Op) -> Result<Response, StorageError> {
        self.reader()?.read(op)
    }

    /// The committed state as it is now, for serving several reads (each as
    /// [`read`](StateMachine::read) would) from one redb read transaction:
    /// a leader answers all the reads one round released with one reader.
    ///
    /// The reader is kept and handed out again until the state changes (an apply, a snapshot
    /// install, a membership write drops it), so a node serving only reads opens one read
    /// transaction per write, not one per round. Drop the reader before the state changes: it
    /// pins the pages it reads.
    pub fn reader(&self) -> Result<Arc<Reader>, StorageError> {
        let mut kept = self
            .kept_reader
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(reader) = &*kept {
            return Ok(reader.clone());
        }
        let txn = self.db.begin_read()?;
        let revision = get_meta(&txn.open_table(META)?, REVISION)?;
        let kv = txn.open_table(KV)?;
        let key_expiry = txn.open_table(KEY_EXPIRY)?;
        let reader = Arc::new(Reader {
            txn,
            revision,
            kv,
            key_expiry,
        });
        *kept = Some(reader.clone());
        Ok(reader)
    }

    /// Forget the kept reader: the state is about to change.
    fn drop_kept_reader(&mut self) {
        *self
            .kept_reader
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner) = None;
    }

    /// A 64-bit FNV-1a hash of every state machine table (kv, meta, dedup and its eviction
    /// index) in key order. Equal states hash equal on every node and platform; different states
    /// almost surely differ. For checking replicas against each other; not cryptographic.
    /// Reads the whole state: O(size of the state); first stores the watch history in its
    /// table if it is behind (a write transaction without fsync). A [`Snapshot`]'s last chunk carries the same
    /// hash of the state it holds.
    pub fn state_hash(&self) -> Result<u64, StorageError> {
        self.store_history()?;
        let (entries, _, _) = read_entries(&self.db)?;
        let mut hash = Fnv::default();
        for entry in entries {
            entry?.hash_into(&mut hash);
        }
        Ok(hash.0)
    }

    /// A consistent snapshot of every `sm_*` table as of the last applied slot (one redb read
    /// transaction), streamed as bounded chunks; see [`Snapshot`] for the format and costs.
    /// Applying continues while the snapshot is read. First stores the watch history in its table
    /// if it is behind (a write transaction without fsync; see [`crate::watch`]).
    ///
    /// For a durable snapshot point (before [`Replica::compact`](synod_paxos::Replica::compact)),
    /// [`flush`](StateMachine::flush) first: the snapshot itself makes nothing durable.
    pub fn snapshot(&self) -> Result<Snapshot, StorageError> {
        self.store_history()?;
        Snapshot::new(&self.db)
    }

    /// The broken rules this state machine was opened with (bug injection only).
    pub(crate) fn bugs(&self) -> Active {
        self.options.active_bugs()
    }

    /// Start receiving a snapshot: an installer that validates and stages chunks one at a time
    /// (see [`SnapshotInstaller`]), to finish with
    /// [`complete_install`](StateMachine::complete_install). Discards any snapshot staged
    /// before (one write transaction, no fsync); an older installer of this database then fails
    /// with [`SnapshotError::Superseded`].
    pub fn snapshot_installer(&self) -> Result<SnapshotInstaller, StorageError> {
        SnapshotInstaller::new(self.db.clone(), self.options.max_dedup_clients)
    }

    /// Replace the whole state by the snapshot `installer` received: one write transaction that
    /// swaps every `sm_*` table for its staged copy, committed with [`Durability::Immediate`]
    /// (one fsync). Returns the new applied index: the driver then calls
    /// [`Replica::install_snapshot`](synod_paxos::Replica::install_snapshot) with it.
    ///
    /// # Errors
    /// [`SnapshotError::Incomplete`] before the last chunk, [`SnapshotError::Aborted`] if a push
    /// failed, [`SnapshotError::Stale`] if the state machine applied the snapshot's slot
    /// meanwhile, [`SnapshotError::Superseded`] if a newer installer started, or a storage
    /// failure. On any error nothing changed.
    pub fn complete_install(&mut self, installer: SnapshotInstaller) -> Result<u64, SnapshotError> {
        self.drop_kept_reader();
        let (applied_index, revision) = installer.commit(&self.db, self.applied_index)?;
        tracing::info!(applied_index, revision, "snapshot installed");
        self.applied_index = applied_index;
        self.revision = revision;
        self.dedup_ages = None;
        let history = History::load(&self.db, revision).unwrap_or_else(|e| {
            tracing::error!(error = %e, "cannot read the installed watch history");
            History::compacted_through(revision)
        });
        *self
            .history
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner) = history;
        Ok(applied_index)
    }

    /// Install a whole snapshot from its chunks, in order: [`snapshot_installer`], a
    /// [`push`](SnapshotInstaller::push) per chunk, then [`complete_install`]. Fails with
    /// [`SnapshotError::Incomplete`] if the chunks end before the last one, and leaves the state
    /// as it was on every error.
    ///
    /// [`snapshot_installer`]: StateMachine::snapshot_installer
    /// [`complete_install`]: StateMachine::complete_install
    pub fn install_snapshot(
        &mut self,
        chunks: impl IntoIterator<Item = SnapshotChunk>,
    ) -> Result<u64, SnapshotError> {
        let mut installer = self.snapshot_installer()?;
        for chunk in chunks {
            if installer.push(&chunk)? {
                return self.complete_install(installer);
            }
        }
        Err(SnapshotError::Incomplete)
    }
}

impl Drop for StateMachine {
    /// Stores the watch history: redb makes the last apply commit durable when it closes the
    /// database, and the durable state must hold the whole history (see [`crate::watch`]).
    /// Drops the kept reader first, before the database it reads.
    fn drop(&mut self) {
        self.drop_kept_reader();
        if let Err(e) = self.store_history() {
            tracing::warn!(error = %e, "could not store the watch history on close");
        }
    }
}

/// What applying one slot produced (see [`StateMachine::apply_slots`]).
#[derive(Clone, Debug, PartialEq)]
pub struct AppliedSlot {
    /// One response per command, in order.
    pub responses: Vec<Response>,
    /// Its watch and session events.
    pub effects: SlotEffects,
    /// The revision after it.
    pub revision: u64,
}

/// The tables one slot's commands write, open in its write transaction.
struct WriteTables<'t, 'txn> {
    kv: &'t mut Table<'txn, &'static [u8], &'static [u8]>,
    dedup: &'t mut Table<'txn, u64, &'static [u8]>,
    ages: &'t mut DedupAges,
    coord: &'t mut CoordTables<'txn>,
    effects: &'t mut SlotEffects,
    max_clients: u64,
    bugs: Active,
}

impl WriteTables<'_, '_> {
    /// Apply one command of a batch; only storage failures are errors.
    fn apply_one(
        &mut self,
        at: AppliedAt,
        bytes: &[u8],
        revision: &mut u64,
    ) -> Result<Response, StorageError> {
        let request = match Request::decode_bounded(bytes).and_then(|r| {
            r.validate_header()?;
            Ok(r)
        }) {
            Ok(request) => request,
            Err(e) => {
                tracing::debug!(position = at.position, error = %e, "refused command");
                return Ok(Response::error(*revision, &e));
            }
        };
        let mut fresh = None;
        if request.client_id != 0 {
            match dedup::admit(self.dedup, request.client_id, request.seq)? {
                Admission::Fresh(admitted) => fresh = Some(admitted),
                Admission::Replay(response) => return Ok(response),
                Admission::Refused(e) => return Ok(Response::error(*revision, &e)),
            }
        }
        let executed = match (&request.op, request.validate()) {
            (Some(op), Ok(())) => exec::execute(
                self.kv,
                self.coord,
                self.effects,
                &request,
                op,
                revision,
                self.bugs,
            ),
            (_, Err(e)) => Err(ExecError::Request(e)),
            (None, Ok(())) => Err(ExecError::Request(RequestError::MissingOp("request"))),
        };
        let response = match executed {
            Ok(outcome) => Response {
                revision: *revision,
                outcome: Some(outcome),
            },
            Err(ExecError::Request(e)) => Response::error(*revision, &e),
            Err(ExecError::Storage(e)) => return Err(e),
        };
        if let Some(fresh) = fresh {
            dedup::remember(
                self.dedup,
                self.ages,
                self.max_clients,
                fresh,
                at,
                &response,
            )?;
        }
        Ok(response)
    }
}

/// Sizes of the applied state, from [`StateMachine::counts`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StateCounts {
    /// Keys of every keyspace (strings and the Redis types' keys).
    pub keys: u64,
    /// Open sessions.
    pub sessions: u64,
    /// Locks held or in lock-delay.
    pub locks: u64,
}

/// One moment of the committed state, from which any number of reads are
/// served (see [`StateMachine::reader`]). Holding it keeps redb from reusing
/// the pages it reads, so it is dropped once its reads are answered.
pub struct Reader {
    txn: redb::ReadTransaction,
    revision: u64,
    kv: redb::ReadOnlyTable<&'static [u8], &'static [u8]>,
    key_expiry: redb::ReadOnlyTable<&'static [u8], &'static [u8]>,
}

impl Reader {
    /// True if `key` has an expiry (a TTL) at this reader's moment. When it
    /// runs out only the leader's clock says, so a follower leaves a read
    /// that shows such a key to the leader.
    pub fn has_expiry(&self, key: &[u8]) -> Result<bool, StorageError> {
        Ok(self.key_expiry.get(key)?.is_some())
    }

    /// True if any key has an expiry at this reader's moment.
    pub fn has_any_expiry(&self) -> Result<bool, StorageError> {
        Ok(self.key_expiry.first()?.is_some())
    }

    /// Serves a read-only op as [`StateMachine::read`] does, from this
    /// reader's moment.
    pub fn read(&self, op: &Op) -> Result<Response, StorageError> {
        let revision = self.revision;
        if !op.is_read_only() {
            return Ok(Response::error(revision, &RequestError::NotReadOnly));
        }
        if let Err(e) = op.validate() {
            return Ok(Response::error(revision, &e));
        }
        let outcome = match op {
            Op::Get(get) => Outcome::Get(kv::get(&self.kv, &get.key)?),
            Op::Scan(scan) => Outcome::Scan(kv::scan(&self.kv, scan)?),
            _ => match exec::read_coord(&self.txn, op)? {
                Some(outcome) => outcome,
                None => return Ok(Response::error(revision, &RequestError::NotReadOnly)),
            },
        };
        Ok(Response {
            revision,
            outcome: Some(outcome),
        })
    }
}
