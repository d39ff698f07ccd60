//! A redb storage backend whose crashes the simulator controls: [`SimRedbBackend`].
//!
//! Writes land in a volatile image; `sync_data` makes the volatile image durable. A simulated
//! [`crash`](SimRedbBackend::crash) kills the handle the crashed database holds (its last writes
//! on the way down, such as redb's clean close when it is dropped, fail) and returns a new handle
//! whose image is only what was synced, so a database reopened on it sees exactly that, which is one of the states a real disk may show
//! after a power failure (a real disk may also keep some unsynced writes; redb's commit protocol
//! copes with that, and the file backend's tests cover it). Sync failures can be injected: a
//! failed sync makes nothing durable and returns an error, as `fdatasync`'s `EIO` does.

use std::sync::{Arc, Mutex, MutexGuard};

use redb::StorageBackend;

/// The bytes of one simulated database file; see the module docs.
#[derive(Debug, Default)]
struct Images {
    /// What survives a crash.
    durable: Vec<u8>,
    /// What redb reads and writes.
    volatile: Vec<u8>,
    /// How many of the next `sync_data` calls fail.
    failing_syncs: u32,
    /// How many `sync_data` calls succeeded.
    syncs: u64,
    /// The machine crashed: every later call fails.
    dead: bool,
}

/// A cloneable handle to one simulated database file: give one clone to redb (through
/// [`StateMachine::open_on_backend`](crate::StateMachine::open_on_backend)) and keep another to
/// crash it or to count its syncs.
#[derive(Debug, Clone, Default)]
pub struct SimRedbBackend {
    images: Arc<Mutex<Images>>,
}

impl SimRedbBackend {
    /// An empty file, as on a new node.
    pub fn new() -> SimRedbBackend {
        SimRedbBackend::default()
    }

    fn images(&self) -> MutexGuard<'_, Images> {
        // A panic while holding the lock leaves plain bytes behind; keep going.
        self.images.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The images, unless the machine crashed.
    fn live_images(&self) -> Result<MutexGuard<'_, Images>, std::io::Error> {
        let images = self.images();
        if images.dead {
            return Err(std::io::Error::other("the simulated machine crashed"));
        }
        Ok(images)
    }

    /// A power failure: this handle dies (every later call on it fails, so the database holding
    /// it cannot write anything more when it is dropped), and the returned handle is the disk as
    /// the restarted machine finds it: what was synced, nothing after.
    pub fn crash(&self) -> SimRedbBackend {
        let mut images = self.images();
        images.dead = true;
        let survivor = Images {
            durable: images.durable.clone(),
            volatile: images.durable.clone(),
            failing_syncs: 0,
            syncs: images.syncs,
            dead: false,
        };
        SimRedbBackend {
            images: Arc::new(Mutex::new(survivor)),
        }
    }

    /// Makes the next `count` syncs fail (and make nothing durable).
    pub fn fail_next_syncs(&self, count: u32) {
        self.images().failing_syncs = count;
    }

    /// How many syncs succeeded so far.
    pub fn syncs(&self) -> u64 {
        self.images().syncs
    }
}

fn out_of_range(offset: u64, len: usize, file_len: usize) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::UnexpectedEof,
        format!("read of {len} bytes at {offset} past the end ({file_len} bytes)"),
    )
}

impl StorageBackend for SimRedbBackend {
    fn len(&self) -> Result<u64, std::io::Error> {
        Ok(self.live_images()?.volatile.len() as u64)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), std::io::Error> {
        let images = self.live_images()?;
        let start = usize::try_from(offset).map_err(std::io::Error::other)?;
        let end = start
            .checked_add(out.len())
            .filter(|end| *end <= images.volatile.len())
            .ok_or_else(|| out_of_range(offset, out.len(), images.volatile.len()))?;
        out.copy_from_slice(&images.volatile[start..end]);
        Ok(())
    }

    fn set_len(&self, len: u64) -> Result<(), std::io::Error> {
        let len = usize::try_from(len).map_err(std::io::Error::other)?;
        self.live_images()?.volatile.resize(len, 0);
        Ok(())
    }

    fn sync_data(&self) -> Result<(), std::io::Error> {
        let mut images = self.live_images()?;
        if images.failing_syncs > 0 {
            images.failing_syncs -= 1;
            return Err(std::io::Error::other("simulated fsync failure"));
        }
        images.durable = images.volatile.clone();
        images.syncs += 1;
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), std::io::Error> {
        let mut images = self.live_images()?;
        let start = usize::try_from(offset).map_err(std::io::Error::other)?;
        let end = start.checked_add(data.len()).ok_or_else(|| {
            std::io::Error::other(format!("write of {} bytes at {offset}", data.len()))
        })?;
        if images.volatile.len() < end {
            images.volatile.resize(end, 0);
        }
        images.volatile[start..end].copy_from_slice(data);
        Ok(())
    }
}
