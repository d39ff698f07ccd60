//! The files under a [`WalLog`](crate::WalLog): the [`WalDisk`] trait, the real directory
//! ([`FsDisk`]) and a simulated one whose crashes and faults a test controls ([`SimDisk`]).
//!
//! The write-ahead log needs little from a file system: list a directory, read a file whole,
//! create a file atomically, reserve room at its end, write after what was synced, sync, cut a
//! file short, remove one. Behind this trait the simulator runs the real log code on a disk
//! that loses unsynced writes, tears the last one, flips bits, fails fsyncs and fills up.
//!
//! # Why reserve room
//! `fdatasync` after an append must also make the file's new length durable, a journal commit
//! on ext4; after a write inside space the file already has (allocated ahead by `reserve`), it
//! flushes the data alone. On this project's test machine that makes a 200-byte write and
//! its sync about a third faster (p50 125 → 84 µs alone, 190 → 133 µs with three processes
//! syncing at once), and that sync is on the critical path of every write on every node. The
//! log reserves room a step at a time rather than a whole segment at once, because it reads its
//! segments whole when it opens, and reading reserved room costs as much as reading data.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// Suffix of the temporary file [`FsDisk::create`](WalDisk::create) writes before renaming it.
const TEMP_SUFFIX: &str = ".tmp";

/// A disk writes whole sectors of this many bytes or none: a crash tears a write only at a
/// sector boundary (where it overwrites room a file had, so the file's length is not torn).
pub(crate) const SECTOR_BYTES: usize = 512;

/// The directory a write-ahead log keeps its files in, by file name (no subdirectories).
///
/// # Contract
/// - Written bytes become durable only with a [`sync`](Self::sync) of their file that returns
///   `Ok`; a crash before it may keep any of their sectors and lose the others (a later write
///   may survive an earlier one), or keep a prefix of them (a torn write), all or none. A crash
///   never shortens a file below the length it was created, cut or synced at; room it loses
///   writes in reads as zeros.
/// - A failed `sync` (or `write_at`) leaves the file's unsynced bytes unknown: the caller must
///   not trust them, nor write to the disk again until restarted.
/// - [`create`](Self::create), [`truncate`](Self::truncate) and [`remove`](Self::remove) are
///   durable when they return `Ok`, and atomic: a crash during one leaves the file as it was
///   before, or as it is after.
pub trait WalDisk: std::fmt::Debug {
    /// The names of the files in the directory, in no particular order.
    fn list(&self) -> io::Result<Vec<String>>;

    /// The whole content of file `name` as it reads now, synced or not.
    fn read(&self, name: &str) -> io::Result<Vec<u8>>;

    /// Creates file `name`, which must not exist, holding `contents`: atomically and durably.
    fn create(&mut self, name: &str, contents: &[u8]) -> io::Result<()>;

    /// Grows file `name` to `len` bytes if it is shorter, the new bytes zeros, allocated where
    /// the file system can (so that writes there do not grow the file); durable with the next
    /// [`sync`](Self::sync). A best effort: on error some or none of it is reserved, and writes
    /// work as before.
    fn reserve(&mut self, name: &str, len: u64) -> io::Result<()>;

    /// Writes `bytes` at byte `offset` of file `name` (not durable until [`sync`](Self::sync)).
    /// `offset` must not be before the end of the file's last synced write (synced bytes are
    /// never overwritten) nor after the file's end. On error, a prefix of `bytes` may have been
    /// written.
    fn write_at(&mut self, name: &str, offset: u64, bytes: &[u8]) -> io::Result<()>;

    /// Makes every byte written to file `name` durable (`fdatasync`).
    fn sync(&mut self, name: &str) -> io::Result<()>;

    /// Cuts file `name` to `len` bytes, durably.
    fn truncate(&mut self, name: &str, len: u64) -> io::Result<()>;

    /// Removes file `name`, durably.
    fn remove(&mut self, name: &str) -> io::Result<()>;

    /// Where file `name` is, for error messages.
    fn path_of(&self, name: &str) -> PathBuf;
}

/// A real directory: [`WalDisk`] on `std::fs`.
///
/// `sync` is `fdatasync` of the file; `create` writes `<name>.tmp`, syncs it, renames it to
/// `name` and syncs the directory; `reserve` is `fallocate` (Linux; elsewhere it reserves
/// nothing); `write_at` is `pwrite`; `truncate` is `set_len` and `fsync`; `remove` syncs the
/// directory after unlinking. [`open`](Self::open) removes temporaries a crash left behind. The
/// file being written stays open between calls.
#[derive(Debug)]
pub struct FsDisk {
    dir: PathBuf,
    /// The file last written, kept open.
    writing: Option<(String, File)>,
}

impl FsDisk {
    /// The directory `dir`, created (durably) if missing; removes the temporary files of
    /// creations a crash interrupted.
    pub fn open(dir: impl AsRef<Path>) -> io::Result<FsDisk> {
        let dir = dir.as_ref().to_path_buf();
        if !dir.is_dir() {
            fs::create_dir_all(&dir)?;
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                sync_dir(parent)?;
            }
        }
        let mut removed = false;
        for entry in fs::read_dir(&dir)? {
            let entry = entry?;
            if entry.file_name().to_string_lossy().ends_with(TEMP_SUFFIX) {
                tracing::warn!(file = %entry.path().display(), "removing a half-created file");
                fs::remove_file(entry.path())?;
                removed = true;
            }
        }
        if removed {
            sync_dir(&dir)?;
        }
        Ok(FsDisk { dir, writing: None })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The open file `name`, to write.
    fn writing(&mut self, name: &str) -> io::Result<&mut File> {
        if self.writing.as_ref().is_none_or(|(open, _)| open != name) {
            let file = OpenOptions::new().write(true).open(self.dir.join(name))?;
            self.writing = Some((name.to_string(), file));
        }
        Ok(&mut self.writing.as_mut().expect("opened above").1)
    }

    /// Closes the kept file if it is `name`.
    fn forget(&mut self, name: &str) {
        if self.writing.as_ref().is_some_and(|(open, _)| open == name) {
            self.writing = None;
        }
    }
}

impl WalDisk for FsDisk {
    fn list(&self) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(&self.dir)? {
            if let Ok(name) = entry?.file_name().into_string() {
                names.push(name);
            }
        }
        Ok(names)
    }

    fn read(&self, name: &str) -> io::Result<Vec<u8>> {
        fs::read(self.dir.join(name))
    }

    fn create(&mut self, name: &str, contents: &[u8]) -> io::Result<()> {
        let path = self.dir.join(name);
        if path.exists() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists", path.display()),
            ));
        }
        let temp = self.dir.join(format!("{name}{TEMP_SUFFIX}"));
        let mut file = File::create(&temp)?;
        file.write_all(contents)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&temp, &path)?;
        sync_dir(&self.dir)
    }

    fn reserve(&mut self, name: &str, len: u64) -> io::Result<()> {
        fallocate(self.writing(name)?, len)
    }

    fn write_at(&mut self, name: &str, offset: u64, bytes: &[u8]) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        self.writing(name)?.write_all_at(bytes, offset)
    }

    fn sync(&mut self, name: &str) -> io::Result<()> {
        self.writing(name)?.sync_data()
    }

    fn truncate(&mut self, name: &str, len: u64) -> io::Result<()> {
        self.forget(name);
        let file = OpenOptions::new().write(true).open(self.dir.join(name))?;
        file.set_len(len)?;
        file.sync_all()
    }

    fn remove(&mut self, name: &str) -> io::Result<()> {
        self.forget(name);
        fs::remove_file(self.dir.join(name))?;
        sync_dir(&self.dir)
    }

    fn path_of(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// Allocates `file`'s first `len` bytes (zeros where nothing was written), growing it to `len`.
#[cfg(target_os = "linux")]
fn fallocate(file: &File, len: u64) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let len = libc::off_t::try_from(len).map_err(|_| io::ErrorKind::InvalidInput)?;
    // SAFETY: fallocate reads no memory of ours; the descriptor is open for writing.
    if unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, len) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Without `fallocate`, nothing is reserved.
#[cfg(not(target_os = "linux"))]
fn fallocate(_file: &File, _len: u64) -> io::Result<()> {
    Err(io::ErrorKind::Unsupported.into())
}

/// Makes `dir`'s entries (created, renamed or removed files) durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// One simulated file.
#[derive(Debug, Default, Clone)]
struct SimFile {
    /// The bytes as read now.
    bytes: Vec<u8>,
    /// The first `synced` bytes survive a crash as they read now.
    synced: usize,
    /// Bytes `synced..written` were written since the last sync: a crash keeps some of them.
    written: usize,
    /// A crash leaves the file at least this long (zeros after what survives of the writes).
    durable_len: usize,
}

impl SimFile {
    /// A file of `bytes`, all durable.
    fn durable(bytes: Vec<u8>) -> SimFile {
        let len = bytes.len();
        SimFile {
            bytes,
            synced: len,
            written: len,
            durable_len: len,
        }
    }

    /// Forgets the writes since the last sync but the first `kept` bytes of them, as a crash
    /// or a failed sync may, and room reserved since. Inside room that was synced, whole
    /// sectors only are kept.
    fn drop_unsynced(&mut self, kept: usize) {
        let mut end = self.synced + kept;
        if end < self.durable_len {
            end = (end / SECTOR_BYTES * SECTOR_BYTES).max(self.synced);
        }
        self.bytes.truncate(end);
        self.bytes.resize(self.durable_len.max(end), 0);
        self.synced = end;
        self.written = end;
        self.durable_len = self.bytes.len();
    }

    /// Forgets each sector-sized piece of the writes since the last sync unless `keep()` says
    /// so (asked piece by piece, in offset order), as a crash may when the disk wrote back some
    /// of its cache and not the rest: lost pieces read as zeros, and the file ends at the last
    /// kept piece or its durable length, whichever is further.
    fn scatter_unsynced(&mut self, keep: &mut dyn FnMut() -> bool) {
        let mut end = self.synced;
        let mut at = self.synced;
        while at < self.written {
            let piece_end = (at / SECTOR_BYTES + 1) * SECTOR_BYTES;
            let piece_end = piece_end.min(self.written);
            if keep() {
                end = piece_end;
            } else {
                self.bytes[at..piece_end].fill(0);
            }
            at = piece_end;
        }
        self.bytes.truncate(end.max(self.durable_len));
        self.bytes.resize(end.max(self.durable_len), 0);
        self.synced = end;
        self.written = end;
        self.durable_len = self.bytes.len();
    }
}

/// Everything a [`SimDisk`] holds; see there.
#[derive(Debug, Default)]
struct SimDiskState {
    files: BTreeMap<String, SimFile>,
    /// How many of the next syncs fail.
    failing_syncs: u32,
    /// Most bytes all files may hold together; `None` for no bound.
    capacity_bytes: Option<u64>,
    /// How many syncs succeeded.
    syncs: u64,
    /// The machine crashed: every later call through this handle fails.
    dead: bool,
    /// The file system cannot reserve room: `reserve` does nothing.
    no_room: bool,
}

impl SimDiskState {
    fn used_bytes(&self) -> u64 {
        self.files.values().map(|f| f.bytes.len() as u64).sum()
    }

    /// Bytes that may still be written.
    ///
    /// (Room reserved for a file counts as used.)
    fn free_bytes(&self) -> u64 {
        self.capacity_bytes.map_or(u64::MAX, |capacity| {
            capacity.saturating_sub(self.used_bytes())
        })
    }

    fn file(&mut self, name: &str) -> io::Result<&mut SimFile> {
        self.files
            .get_mut(name)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("no file {name}")))
    }

    /// The disk after a power failure that left each file as `lose_unsynced` makes it (file by
    /// file, in name order).
    fn survivor(&self, lose_unsynced: &mut dyn FnMut(&mut SimFile)) -> SimDiskState {
        let files = self
            .files
            .iter()
            .map(|(name, file)| {
                let mut survivor = file.clone();
                lose_unsynced(&mut survivor);
                (name.clone(), survivor)
            })
            .collect();
        SimDiskState {
            files,
            failing_syncs: 0,
            capacity_bytes: self.capacity_bytes,
            syncs: self.syncs,
            dead: false,
            no_room: self.no_room,
        }
    }
}

/// A simulated directory for a [`WalLog`](crate::WalLog), in memory, whose faults a test or
/// the simulator injects. A cloneable handle: give one clone to the log
/// ([`WalLog::open_on`](crate::WalLog::open_on)) and keep another to inject faults.
///
/// Each file keeps its bytes and how many of them are synced. The faults:
/// - [`crash`](Self::crash) / [`crash_torn`](Self::crash_torn): a power failure. The handle
///   dies (every later call through it or its clones fails, so the crashed log writes nothing
///   more), and the returned handle is the disk as the restarted machine finds it: the synced
///   bytes, plus (`crash_torn`) some prefix of the bytes written since, such as a torn write
///   (inside a file's reserved room, at a sector boundary), and zeros in the rest of the room;
///   or ([`crash_scattered`](Self::crash_scattered)) any subset of their sectors.
/// - [`flip_bit`](Self::flip_bit): a bit of synced data rots.
/// - [`fail_next_syncs`](Self::fail_next_syncs): syncs fail with an I/O error, and a failed sync
///   drops the file's unsynced bytes (as Linux may drop dirty pages after a writeback error):
///   only what was synced before is left.
/// - [`set_capacity_bytes`](Self::set_capacity_bytes): a full disk. A write that grows a file
///   past what fits writes what fits and fails with [`io::ErrorKind::StorageFull`] (a short
///   write, then `ENOSPC`); a `create` or a `reserve` that does not fit fails and changes
///   nothing.
///
/// `create`, `truncate` and `remove` are durable at once, as the [`WalDisk`] contract says.
#[derive(Debug, Clone, Default)]
pub struct SimDisk {
    state: Arc<Mutex<SimDiskState>>,
}

impl SimDisk {
    /// An empty disk with no capacity bound, as on a new node; `reserve` reserves room, as
    /// [`FsDisk`] does on Linux.
    pub fn new() -> SimDisk {
        SimDisk::default()
    }

    /// An empty disk whose file system cannot reserve room (`reserve` does nothing, so every
    /// write grows a file, and a crash may tear it at any byte).
    pub fn without_room() -> SimDisk {
        let disk = SimDisk::default();
        disk.state().no_room = true;
        disk
    }

    fn state(&self) -> MutexGuard<'_, SimDiskState> {
        // A panic while holding the lock leaves plain bytes behind; keep going.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The state, unless the machine crashed.
    fn live_state(&self) -> io::Result<MutexGuard<'_, SimDiskState>> {
        let state = self.state();
        if state.dead {
            return Err(io::Error::other("the simulated machine crashed"));
        }
        Ok(state)
    }

    /// A power failure that loses every unsynced byte; returns the disk the restarted machine
    /// finds, and kills this handle (and its clones).
    pub fn crash(&self) -> SimDisk {
        self.crash_torn(&mut |_| 0)
    }

    /// A power failure in which each file keeps `keep(n)` of its `n` unsynced bytes (a prefix,
    /// capped at `n`): whole writes and possibly a torn one. `keep` is called once per file with
    /// unsynced bytes, in file-name order; pass the simulator's seeded RNG, e.g.
    /// `&mut |n| rng.below(n + 1)`. Returns the disk the restarted machine finds, and kills this
    /// handle (and its clones).
    pub fn crash_torn(&self, keep: &mut impl FnMut(u64) -> u64) -> SimDisk {
        self.crash_with(&mut |file| {
            let unsynced = (file.written - file.synced) as u64;
            let kept = if unsynced == 0 {
                0
            } else {
                keep(unsynced).min(unsynced) as usize
            };
            file.drop_unsynced(kept);
        })
    }

    /// A power failure after which the disk holds any subset of the sectors written since the
    /// last sync, as a disk with a volatile cache may hold: each sector-sized piece of each
    /// file's unsynced bytes survives if `keep_sector()` says so (asked in file-name order, then
    /// offset order; pass the simulator's seeded RNG), and lost ones read as zeros. So a later
    /// write may survive an earlier one. Returns the disk the restarted machine finds, and
    /// kills this handle (and its clones).
    pub fn crash_scattered(&self, keep_sector: &mut impl FnMut() -> bool) -> SimDisk {
        self.crash_with(&mut |file| file.scatter_unsynced(keep_sector))
    }

    fn crash_with(&self, lose_unsynced: &mut dyn FnMut(&mut SimFile)) -> SimDisk {
        let mut state = self.state();
        state.dead = true;
        let survivor = state.survivor(lose_unsynced);
        SimDisk {
            state: Arc::new(Mutex::new(survivor)),
        }
    }

    /// Flips bit `bit` (0–7) of byte `offset` of file `name`, which must be synced there.
    ///
    /// # Errors
    /// [`io::ErrorKind::NotFound`] without such a file; [`io::ErrorKind::InvalidInput`] if the
    /// byte is not synced data or `bit` is above 7.
    pub fn flip_bit(&self, name: &str, offset: u64, bit: u8) -> io::Result<()> {
        let mut state = self.state();
        let file = state.file(name)?;
        let at = usize::try_from(offset)
            .ok()
            .filter(|at| *at < file.synced && bit < 8)
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "bit {bit} of byte {offset} of {name}: {} bytes synced",
                        file.synced
                    ),
                )
            })?;
        file.bytes[at] ^= 1 << bit;
        Ok(())
    }

    /// Makes the next `count` syncs fail (each dropping its file's unsynced bytes).
    pub fn fail_next_syncs(&self, count: u32) {
        self.state().failing_syncs = count;
    }

    /// Bounds the bytes all files may hold together (`None`: no bound). Lowering it below what
    /// the files hold removes nothing; only later writes fail.
    pub fn set_capacity_bytes(&self, capacity_bytes: Option<u64>) {
        self.state().capacity_bytes = capacity_bytes;
    }

    /// How many syncs succeeded so far.
    pub fn syncs(&self) -> u64 {
        self.state().syncs
    }

    /// The names of the files, sorted.
    pub fn file_names(&self) -> Vec<String> {
        self.state().files.keys().cloned().collect()
    }

    /// File `name`'s bytes as read now (synced or not), if it exists.
    pub fn file_bytes(&self, name: &str) -> Option<Vec<u8>> {
        self.state().files.get(name).map(|f| f.bytes.clone())
    }

    /// How many of file `name`'s bytes are synced, if it exists.
    pub fn synced_bytes(&self, name: &str) -> Option<u64> {
        self.state().files.get(name).map(|f| f.synced as u64)
    }

    /// How far file `name` has been written, synced or not (its room, zeros, follows), if it
    /// exists.
    pub fn written_bytes(&self, name: &str) -> Option<u64> {
        self.state().files.get(name).map(|f| f.written as u64)
    }
}

impl WalDisk for SimDisk {
    fn list(&self) -> io::Result<Vec<String>> {
        Ok(self.live_state()?.files.keys().cloned().collect())
    }

    fn read(&self, name: &str) -> io::Result<Vec<u8>> {
        Ok(self.live_state()?.file(name)?.bytes.clone())
    }

    fn create(&mut self, name: &str, contents: &[u8]) -> io::Result<()> {
        let mut state = self.live_state()?;
        if state.files.contains_key(name) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{name} exists"),
            ));
        }
        if (contents.len() as u64) > state.free_bytes() {
            return Err(disk_full(name));
        }
        state
            .files
            .insert(name.to_string(), SimFile::durable(contents.to_vec()));
        Ok(())
    }

    fn reserve(&mut self, name: &str, len: u64) -> io::Result<()> {
        let mut state = self.live_state()?;
        let free = state.free_bytes();
        let no_room = state.no_room;
        let file = state.file(name)?;
        let grow = len.saturating_sub(file.bytes.len() as u64);
        if no_room || grow == 0 {
            return Ok(());
        }
        if grow > free {
            return Err(disk_full(name));
        }
        file.bytes.resize(len as usize, 0);
        Ok(())
    }

    fn write_at(&mut self, name: &str, offset: u64, bytes: &[u8]) -> io::Result<()> {
        let mut state = self.live_state()?;
        let free = usize::try_from(state.free_bytes()).unwrap_or(usize::MAX);
        let file = state.file(name)?;
        let at = usize::try_from(offset).unwrap_or(usize::MAX);
        if at < file.synced || at > file.bytes.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "write at byte {offset} of {name}: {} bytes synced, {} long",
                    file.synced,
                    file.bytes.len()
                ),
            ));
        }
        let room = file.bytes.len() - at;
        let fits = bytes.len().min(room.saturating_add(free));
        let end = at + fits;
        if end > file.bytes.len() {
            file.bytes.resize(end, 0);
        }
        file.bytes[at..end].copy_from_slice(&bytes[..fits]);
        file.written = file.written.max(end);
        if fits < bytes.len() {
            return Err(disk_full(name));
        }
        Ok(())
    }

    fn sync(&mut self, name: &str) -> io::Result<()> {
        let mut state = self.live_state()?;
        let failing = state.failing_syncs > 0;
        if failing {
            state.failing_syncs -= 1;
        }
        let file = state.file(name)?;
        if failing {
            file.drop_unsynced(0);
            return Err(io::Error::other(format!(
                "simulated fsync failure on {name}"
            )));
        }
        file.synced = file.written;
        file.durable_len = file.bytes.len();
        state.syncs += 1;
        Ok(())
    }

    fn truncate(&mut self, name: &str, len: u64) -> io::Result<()> {
        let mut state = self.live_state()?;
        let file = state.file(name)?;
        let len = usize::try_from(len)
            .unwrap_or(usize::MAX)
            .min(file.bytes.len());
        file.bytes.truncate(len);
        *file = SimFile::durable(std::mem::take(&mut file.bytes));
        Ok(())
    }

    fn remove(&mut self, name: &str) -> io::Result<()> {
        let mut state = self.live_state()?;
        state
            .files
            .remove(name)
            .map(drop)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("no file {name}")))
    }

    fn path_of(&self, name: &str) -> PathBuf {
        Path::new("<simulated disk>").join(name)
    }
}

fn disk_full(name: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::StorageFull,
        format!("simulated disk full writing {name}"),
    )
}
