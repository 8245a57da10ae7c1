//! A write-ahead journal under redb, so that a commit costs one sequential
//! write and one `fdatasync` instead of redb's ~18 scattered pages.
//!
//! redb writes pages through a [`StorageBackend`] and calls `sync_data` once
//! per durable commit. This backend keeps written blocks in memory (the
//! overlay) and, at each sync, appends to the journal file what changed since
//! the last one (byte runs against each block's content at that sync) as one
//! checksummed record, then syncs the journal alone. Now and then (the journal
//! past [`CAPACITY`], the overlay large, at close) a checkpoint writes the
//! overlay to the store file, syncs it, and starts the journal over from its
//! beginning. Records overwrite blocks the file already has: it keeps its
//! size while the store is open, so later runs write over earlier ones, and
//! a run that reaches past its end grows it ahead of its records,
//! zero-filled ([`GROW_AHEAD`]). An `fdatasync` then writes the data alone,
//! with no file size to update (about a third cheaper here). It is emptied
//! at close and at an open that finds nothing to redo (one that does goes on
//! with the run, cut after its last valid record), so a stopped store holds
//! no more than its file.
//!
//! Recovery replays the journal's records from its start, in order, onto the
//! store file, stopping at the first record that is torn, fails its checksum
//! or belongs to an earlier run of the journal (each run has a random
//! generation, each record a sequence number). Replaying a whole run again
//! onto a store file it already reached, fully or in part (a checkpoint cut
//! short), gives the same file: every record sets the bytes it names to fixed
//! values, and sets the length (first down to the least length of its
//! period, then to its final one) as the original writes did.
//!
//! Every open goes through here, read-only ones too (they replay into memory
//! and change nothing), so a store left by a crash reads the same to the
//! server and to offline tools. A clean close checkpoints and empties the
//! journal, so the store file alone is then complete.

use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::io;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use redb::{BackendError, StorageBackend};

#[cfg(any(test, feature = "forensics"))]
pub mod fault;
mod format;
mod lock;
mod open;
mod overlay;
mod redo;
mod sync;

use format::{changed_runs, checksum_holds, seal_in_place, u32_at, u64_at, Header, HEADER};
pub use lock::lock_journal;
pub use redo::UnsyncedRedo;

/// Beside the store file: `ca.redb` → `ca.redb.journal`.
pub const JOURNAL_SUFFIX: &str = ".journal";
/// The overlay's unit (redb's page size).
const BLOCK: u64 = 4096;
/// Past this many journal bytes, a sync checkpoints.
pub const CAPACITY: u64 = 32 << 20;
/// A checkpoint is due when the overlay holds this many blocks (64 MiB).
const MAX_OVERLAY_BLOCKS: usize = 16_384;
/// Before-images kept for reuse after a sync (1 MiB): a commit's blocks are
/// copied into them instead of freshly allocated ones.
const SPARE_BLOCKS: usize = 256;
/// A record buffer grown past this (a bulk import's commit) is let go.
const RECORD_KEEP: usize = 1 << 20;
/// The journal file grows ahead of its records by zeros, in steps of this:
/// a record's sync is then an overwrite's. Appending at the file's end made
/// each `fdatasync` update its size too: 105 against 67 µs (p50) for a
/// 3,000-byte record, measured with a loop of `pwrite` + `fdatasync` on this
/// machine's ext4; a sync per batch of issuances waits that long. A step's
/// zeros are written with the record that needs them and ride on its sync.
const GROW_AHEAD: u64 = 256 << 10;

/// The journal of the store file at `db`.
pub fn journal_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(JOURNAL_SUFFIX);
    PathBuf::from(name)
}

pub struct JournalBackend {
    main: Box<dyn StorageBackend>,
    journal: Box<dyn StorageBackend>,
    /// The journal file, locked (exclusively when writable) while this lives:
    /// a second process must not replay or append under a running server.
    /// Also how a redo record's write-back is started before its sync
    /// ([`JournalBackend::write_redo`]).
    file: File,
    writable: bool,
    /// A read-only open's writes held in memory and never synced: how such
    /// an open redoes what a crash left to redo ([`Self::into_scratch`]).
    scratch: bool,
    /// Past this many journal bytes, a sync checkpoints ([`CAPACITY`]).
    capacity: u64,
    state: RwLock<State>,
}

impl fmt::Debug for JournalBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JournalBackend")
            .field("writable", &self.writable)
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct State {
    /// Blocks newer than the store file, by index.
    overlay: HashMap<u64, Box<[u8]>>,
    /// Blocks written since the last sync, as they were at that sync (with
    /// bytes at or past the period's least length zeroed, as replay leaves them).
    before: HashMap<u64, Box<[u8]>>,
    len: u64,
    /// The length at the last sync.
    synced_len: u64,
    /// The least length since the last sync.
    period_min_len: u64,
    /// Bytes of the store file that still hold the store: below the least
    /// length since the last checkpoint (beyond it reads as zeros).
    clean_len: u64,
    generation: u64,
    seq: u64,
    /// Where the next record goes in the journal.
    pos: u64,
    /// The journal file's length: records below it overwrite (see [`GROW_AHEAD`]).
    journal_len: u64,
    /// An I/O error happened: the in-memory state can no longer be trusted to
    /// match the files, so everything fails until the store is reopened.
    poisoned: Option<Poison>,
    /// The store file's length (asked once, then kept: it changes only here).
    main_len: u64,
    /// After a checkpoint failed, the record sequence number from which to try again.
    retry_checkpoint_at: u64,
    stats: JournalStats,
    /// Blocks to reuse ([`SPARE_BLOCKS`]), contents stale.
    spare: Vec<Box<[u8]>>,
    /// The record being built, kept so its allocation serves every sync.
    record: Vec<u8>,
    /// A checkpoint's run of consecutive blocks, kept between checkpoints:
    /// a fresh megabyte each time cost page faults and the kernel's zeroing.
    run: Vec<u8>,
    /// The redo record being built, kept like `record`.
    redo: Vec<u8>,
    /// Redo bytes appended since the store last told of a durable commit.
    redo_bytes: u64,
    /// Redo records appended whose writes the store has not yet told
    /// ([`JournalBackend::redo_durable`]) a durable commit holds: no
    /// checkpoint may end the run they are in.
    redo_outstanding: bool,
    /// The redo records of the run found at open, not yet taken.
    pending_redo: Vec<Vec<u8>>,
}

/// What the journal has done since the store was opened.
#[derive(Clone, Copy, Debug, Default)]
pub struct JournalStats {
    pub records: u64,
    pub record_bytes: u64,
    pub checkpoints: u64,
    pub checkpoint_bytes: u64,
    pub redo_records: u64,
    pub redo_bytes: u64,
}

/// The error that poisoned the store, kept so that every later call fails
/// with the same cause (a full disk stays a full disk to whoever asks).
#[derive(Clone, Debug)]
struct Poison {
    kind: io::ErrorKind,
    os_code: Option<i32>,
    text: String,
}

impl Poison {
    fn of(e: &io::Error) -> Poison {
        Poison {
            kind: e.kind(),
            os_code: e.raw_os_error(),
            text: e.to_string(),
        }
    }

    fn error(&self) -> io::Error {
        match self.os_code {
            Some(code) => io::Error::from_raw_os_error(code),
            None => io::Error::new(
                self.kind,
                format!(
                    "an earlier write to the store failed ({}); reopen it",
                    self.text
                ),
            ),
        }
    }
}

fn read_only() -> io::Error {
    io::Error::new(
        io::ErrorKind::PermissionDenied,
        "the store is open read-only",
    )
}

impl JournalBackend {
    pub fn stats(&self) -> JournalStats {
        self.state().stats
    }

    /// A read-only open that takes writes into memory only, never to a
    /// file: for redoing, in this process alone, what a crash left to redo.
    pub fn into_scratch(mut self) -> JournalBackend {
        self.scratch = true;
        self
    }

    fn state(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn state_mut(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }

    fn guarded<T>(
        &self,
        st: &mut State,
        f: impl FnOnce(&Self, &mut State) -> io::Result<T>,
    ) -> io::Result<T> {
        if let Some(p) = &st.poisoned {
            return Err(p.error());
        }
        let result = f(self, st);
        if let Err(e) = &result {
            st.poisoned = Some(Poison::of(e));
        }
        result
    }
}

fn new_generation() -> io::Result<u64> {
    let mut g = [0u8; 8];
    getrandom::getrandom(&mut g).map_err(io::Error::other)?;
    Ok(u64::from_le_bytes(g))
}

impl StorageBackend for JournalBackend {
    fn len(&self) -> io::Result<u64> {
        let st = self.state();
        if let Some(p) = &st.poisoned {
            return Err(p.error());
        }
        Ok(st.len)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        let st = self.state();
        if let Some(p) = &st.poisoned {
            return Err(p.error());
        }
        let end = offset
            .checked_add(out.len() as u64)
            .filter(|end| *end <= st.len)
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "read past the end"))?;
        let on_file = st.clean_len.min(st.main_len);
        let mut at = offset;
        while at < end {
            let index = at / BLOCK;
            let within = (at % BLOCK) as usize;
            let n = ((BLOCK as usize) - within).min((end - at) as usize);
            let dst = &mut out[(at - offset) as usize..(at - offset) as usize + n];
            match st.overlay.get(&index) {
                Some(block) => dst.copy_from_slice(&block[within..within + n]),
                None => {
                    let from_file = on_file.saturating_sub(at).min(n as u64) as usize;
                    if from_file > 0 {
                        self.main.read(at, &mut dst[..from_file])?;
                    }
                    dst[from_file..].fill(0);
                }
            }
            at += n as u64;
        }
        Ok(())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        if !self.writable && !self.scratch {
            return Err(read_only());
        }
        let mut st = self.state_mut();
        self.guarded(&mut st, |b, st| b.apply_set_len(st, len))
    }

    fn sync_data(&self) -> io::Result<()> {
        if !self.writable {
            return Ok(());
        }
        let mut st = self.state_mut();
        self.guarded(&mut st, |b, st| b.sync(st))
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        if !self.writable && !self.scratch {
            return Err(read_only());
        }
        let mut st = self.state_mut();
        self.guarded(&mut st, |b, st| b.apply_write(st, offset, data))
    }

    fn close(&self) -> io::Result<()> {
        let mut flushed = Ok(());
        if self.writable {
            let mut st = self.state_mut();
            if st.poisoned.is_none() {
                flushed = self.guarded(&mut st, |b, st| {
                    b.sync(st)?;
                    if st.redo_outstanding {
                        // Not told that a durable commit holds them: the
                        // next open finds them (and skips those it holds).
                        return Ok(());
                    }
                    b.checkpoint(st)?;
                    b.prepare_journal(st)
                });
            }
        }
        // Closed whatever happened above: redb's locks are released here.
        let journal_closed = self.journal.close();
        let main_closed = self.main.close();
        flushed.and(journal_closed).and(main_closed)
    }

    // A scratch open takes no lock of redb's (it writes nothing to the file);
    // the journal's shared lock keeps a writer out meanwhile.
    fn try_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        if self.scratch {
            return Err(BackendError::Unsupported);
        }
        self.main.try_lock_range(start, end)
    }

    fn try_lock_shared_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> Result<bool, BackendError> {
        if self.scratch {
            return Err(BackendError::Unsupported);
        }
        self.main.try_lock_shared_range(start, end)
    }

    fn lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        if self.scratch {
            return Err(BackendError::Unsupported);
        }
        self.main.lock_range(start, end)
    }

    fn lock_shared_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        if self.scratch {
            return Err(BackendError::Unsupported);
        }
        self.main.lock_shared_range(start, end)
    }

    fn unlock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        if self.scratch {
            return Err(BackendError::Unsupported);
        }
        self.main.unlock_range(start, end)
    }

    fn query_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        if self.scratch {
            return Err(BackendError::Unsupported);
        }
        self.main.query_lock_range(start, end)
    }
}

/// A journal redb writes through while the store keeps a handle of its own
/// (for redo records: [`JournalBackend::write_redo`]).
#[derive(Debug, Clone)]
pub struct SharedJournal(pub std::sync::Arc<JournalBackend>);

impl StorageBackend for SharedJournal {
    fn len(&self) -> io::Result<u64> {
        self.0.len()
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        self.0.read(offset, out)
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }
    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.0.write(offset, data)
    }
    fn close(&self) -> io::Result<()> {
        self.0.close()
    }
    fn try_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.0.try_lock_range(start, end)
    }
    fn try_lock_shared_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> Result<bool, BackendError> {
        self.0.try_lock_shared_range(start, end)
    }
    fn lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.0.lock_range(start, end)
    }
    fn lock_shared_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.0.lock_shared_range(start, end)
    }
    fn unlock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.0.unlock_range(start, end)
    }
    fn query_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.0.query_lock_range(start, end)
    }
}

#[cfg(test)]
mod tests;
