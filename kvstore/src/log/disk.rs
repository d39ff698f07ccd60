//! The files under a [`WalLog`](crate::WalLog): the [`WalDisk`] trait, the real directory
//! ([`FsDisk`]) and a simulated one whose crashes and faults a test controls ([`SimDisk`]).
//!
//! The write-ahead log needs little from a file system: list a directory, read a file whole,
//! create a file atomically, append, sync, cut a file short, remove one. Behind this trait the
//! simulator runs the real log code on a disk that loses unsynced writes, tears the last one,
//! flips bits, fails fsyncs and fills up.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// Suffix of the temporary file [`FsDisk::create`](WalDisk::create) writes before renaming it.
const TEMP_SUFFIX: &str = ".tmp";

/// The directory a write-ahead log keeps its files in, by file name (no subdirectories).
///
/// # Contract
/// - Appended bytes become durable only with a [`sync`](Self::sync) of their file that returns
///   `Ok`; a crash before it may keep any prefix of them (a torn write), or none.
/// - A failed `sync` (or `append`) leaves the file's unsynced bytes unknown: the caller must
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

    /// Appends `bytes` to the end of file `name` (not durable until [`sync`](Self::sync)). On
    /// error, a prefix of `bytes` may have been written.
    fn append(&mut self, name: &str, bytes: &[u8]) -> io::Result<()>;

    /// Makes every byte appended to file `name` durable (`fdatasync`).
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
/// `name` and syncs the directory; `truncate` is `set_len` and `fsync`; `remove` syncs the
/// directory after unlinking. [`open`](Self::open) removes temporaries a crash left behind. The
/// file being appended to stays open between calls.
#[derive(Debug)]
pub struct FsDisk {
    dir: PathBuf,
    /// The file last appended to, kept open.
    appending: Option<(String, File)>,
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
        Ok(FsDisk {
            dir,
            appending: None,
        })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The open file to append to `name`.
    fn appending(&mut self, name: &str) -> io::Result<&mut File> {
        if self.appending.as_ref().is_none_or(|(open, _)| open != name) {
            let file = OpenOptions::new().append(true).open(self.dir.join(name))?;
            self.appending = Some((name.to_string(), file));
        }
        Ok(&mut self.appending.as_mut().expect("opened above").1)
    }

    /// Closes the kept file if it is `name`.
    fn forget(&mut self, name: &str) {
        if self
            .appending
            .as_ref()
            .is_some_and(|(open, _)| open == name)
        {
            self.appending = None;
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

    fn append(&mut self, name: &str, bytes: &[u8]) -> io::Result<()> {
        self.appending(name)?.write_all(bytes)
    }

    fn sync(&mut self, name: &str) -> io::Result<()> {
        self.appending(name)?.sync_data()
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

/// Makes `dir`'s entries (created, renamed or removed files) durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// One simulated file: its bytes as read now, of which the first `synced` survive a crash.
#[derive(Debug, Default, Clone)]
struct SimFile {
    bytes: Vec<u8>,
    synced: usize,
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
}

impl SimDiskState {
    fn used_bytes(&self) -> u64 {
        self.files.values().map(|f| f.bytes.len() as u64).sum()
    }

    /// Bytes that may still be written.
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

    /// The disk after a power failure that kept `keep(unsynced)` bytes of each file's unsynced
    /// tail (file by file, in name order).
    fn survivor(&self, keep: &mut dyn FnMut(u64) -> u64) -> SimDiskState {
        let files = self
            .files
            .iter()
            .map(|(name, file)| {
                let unsynced = (file.bytes.len() - file.synced) as u64;
                let kept = if unsynced == 0 {
                    0
                } else {
                    keep(unsynced).min(unsynced) as usize
                };
                let len = file.synced + kept;
                let survivor = SimFile {
                    bytes: file.bytes[..len].to_vec(),
                    synced: len,
                };
                (name.clone(), survivor)
            })
            .collect();
        SimDiskState {
            files,
            failing_syncs: 0,
            capacity_bytes: self.capacity_bytes,
            syncs: self.syncs,
            dead: false,
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
///   bytes, plus (`crash_torn`) some prefix of the bytes appended since, such as a torn write.
/// - [`flip_bit`](Self::flip_bit): a bit of synced data rots.
/// - [`fail_next_syncs`](Self::fail_next_syncs): syncs fail with an I/O error, and a failed sync
///   drops the file's unsynced bytes (as Linux may drop dirty pages after a writeback error):
///   only what was synced before is left.
/// - [`set_capacity_bytes`](Self::set_capacity_bytes): a full disk. An append that does not fit
///   writes what fits and fails with [`io::ErrorKind::StorageFull`] (a short write, then
///   `ENOSPC`); a `create` that does not fit fails and creates nothing.
///
/// `create`, `truncate` and `remove` are durable at once, as the [`WalDisk`] contract says.
#[derive(Debug, Clone, Default)]
pub struct SimDisk {
    state: Arc<Mutex<SimDiskState>>,
}

impl SimDisk {
    /// An empty disk with no capacity bound, as on a new node.
    pub fn new() -> SimDisk {
        SimDisk::default()
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
        let mut state = self.state();
        state.dead = true;
        let survivor = state.survivor(keep);
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
        let file = SimFile {
            bytes: contents.to_vec(),
            synced: contents.len(),
        };
        state.files.insert(name.to_string(), file);
        Ok(())
    }

    fn append(&mut self, name: &str, bytes: &[u8]) -> io::Result<()> {
        let mut state = self.live_state()?;
        let free = state.free_bytes();
        let file = state.file(name)?;
        let fits = usize::try_from(free).unwrap_or(usize::MAX).min(bytes.len());
        file.bytes.extend_from_slice(&bytes[..fits]);
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
            file.bytes.truncate(file.synced);
            return Err(io::Error::other(format!(
                "simulated fsync failure on {name}"
            )));
        }
        file.synced = file.bytes.len();
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
        file.synced = len;
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
