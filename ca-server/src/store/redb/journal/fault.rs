//! Faults to inject under a store's journal, for the tests of what a commit
//! answered as failed may leave. The journal file's sync makes the commit's
//! record durable and reports failure all the same (as a late EIO does); the
//! journal then undoes the record (zeroes its header), so that the store,
//! reopened, does not replay it. With [`Fault::UndoFailsToo`] that write fails
//! as well: the store then holds a write its caller was told had failed, and
//! must answer, once reopened, what it holds.
//!
//! Compiled for tests and the `forensics` feature only. A store opened while
//! its file is registered here gets the faulty journal; a fault fires once
//! per [`Registered::arm`], at the journal's next sync of any kind (a
//! checkpoint's too): a test arms it when the write it means is the next
//! to sync. A commit that records redb's allocator state syncs twice (its
//! pages, then the header; see `begin_write_quick_repair`): the fault then
//! fires at the first, and the write, even with its undo failing, is not
//! there after the reopen.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use redb::StorageBackend;

/// Store files whose journals are to be opened faulty, with their triggers.
static REGISTERED: Mutex<Vec<(PathBuf, Arc<AtomicU8>)>> = Mutex::new(Vec::new());

fn registered() -> std::sync::MutexGuard<'static, Vec<(PathBuf, Arc<AtomicU8>)>> {
    REGISTERED.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What the journal's next sync does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Fault {
    /// It makes the record durable, then reports failure.
    SyncFails = 1,
    /// As `SyncFails`, and the journal's undo of the record fails too.
    UndoFailsToo = 2,
}

const NONE: u8 = 0;

/// A store file registered for faults; unregistered when dropped.
pub struct Registered {
    db: PathBuf,
    trigger: Arc<AtomicU8>,
}

/// Open the journal of the store file `db` faulty from now on (every open,
/// the reopen after the fault included), the fault not yet armed.
pub fn register(db: &Path) -> Registered {
    let trigger = Arc::new(AtomicU8::new(NONE));
    registered().push((db.to_path_buf(), trigger.clone()));
    Registered {
        db: db.to_path_buf(),
        trigger,
    }
}

impl Registered {
    /// Make the journal's next sync fail as `fault` says.
    pub fn arm(&self, fault: Fault) {
        self.trigger.store(fault as u8, Ordering::SeqCst);
    }

    /// Whether an armed fault has not fired yet.
    pub fn armed(&self) -> bool {
        self.trigger.load(Ordering::SeqCst) != NONE
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        registered().retain(|(db, t)| !(db == &self.db && Arc::ptr_eq(t, &self.trigger)));
    }
}

/// `journal`, faulty if the store file `db` is registered.
pub(super) fn wrap(db: &Path, journal: Box<dyn StorageBackend>) -> Box<dyn StorageBackend> {
    let trigger = registered()
        .iter()
        .find(|(registered, _)| registered == db)
        .map(|(_, t)| t.clone());
    match trigger {
        Some(trigger) => Box::new(FaultyJournal {
            inner: journal,
            trigger,
            fail_next_write: AtomicBool::new(false),
        }),
        None => journal,
    }
}

#[derive(Debug)]
struct FaultyJournal {
    inner: Box<dyn StorageBackend>,
    trigger: Arc<AtomicU8>,
    fail_next_write: AtomicBool,
}

impl StorageBackend for FaultyJournal {
    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        self.inner.read(offset, out)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.inner.set_len(len)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.inner.sync_data()?;
        let fired = self.trigger.swap(NONE, Ordering::SeqCst);
        if fired != NONE {
            self.fail_next_write
                .store(fired == Fault::UndoFailsToo as u8, Ordering::SeqCst);
            return Err(io::Error::other(
                "injected: the sync reported failure after the record was written",
            ));
        }
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        if self.fail_next_write.swap(false, Ordering::SeqCst) {
            return Err(io::Error::other("injected: the write after a failed sync"));
        }
        self.inner.write(offset, data)
    }

    // The journal file takes no range locks (the store file does); closing
    // is passed on like the rest.
    fn close(&self) -> io::Result<()> {
        self.inner.close()
    }
}
