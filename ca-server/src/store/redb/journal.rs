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
//! beginning. The file keeps its size while the store is open, so later runs
//! overwrite blocks it already has: an `fdatasync` then writes the data alone,
//! with no file size to update (about a third cheaper here). It is emptied at
//! open and close, so a stopped store holds no more than its file.
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
use std::fs::{File, OpenOptions};
use std::io;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use redb::backends::FileBackend;
use redb::{BackendError, StorageBackend};

#[cfg(any(test, feature = "forensics"))]
pub mod fault;
mod format;
mod lock;

use format::{changed_runs, checksum_holds, seal_in_place, u32_at, u64_at, Header, HEADER};
pub use lock::lock_journal;
use lock::try_flock;

/// A block to overwrite whole: a spare one, or a new one.
fn spare_block(spare: &mut Vec<Box<[u8]>>) -> Box<[u8]> {
    spare
        .pop()
        .unwrap_or_else(|| vec![0u8; BLOCK as usize].into_boxed_slice())
}

/// A copy of `block` in a spare block.
fn copied_block(spare: &mut Vec<Box<[u8]>>, block: &[u8]) -> Box<[u8]> {
    let mut copy = spare_block(spare);
    copy.copy_from_slice(block);
    copy
}

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
    _lock: File,
    writable: bool,
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
}

/// What the journal has done since the store was opened.
#[derive(Clone, Copy, Debug, Default)]
pub struct JournalStats {
    pub records: u64,
    pub record_bytes: u64,
    pub checkpoints: u64,
    pub checkpoint_bytes: u64,
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
    /// Open the store file at `db` for writing with its journal, replaying
    /// (and checkpointing) whatever a crash left in the journal.
    pub fn open(db: &Path) -> io::Result<JournalBackend> {
        let main = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(db)?;
        let main = Box::new(FileBackend::new(main).map_err(io::Error::other)?);
        let journal_file = journal_path(db);
        let lock = lock_journal(&journal_file, true)?;
        let journal: Box<dyn StorageBackend> =
            Box::new(FileBackend::new(lock.try_clone()?).map_err(io::Error::other)?);
        #[cfg(any(test, feature = "forensics"))]
        let journal = fault::wrap(db, journal);
        Self::open_on(main, journal, lock, true)
    }

    /// Open the store file at `db` without changing it or its journal: the
    /// journal's records are replayed in memory only.
    pub fn open_read_only(db: &Path) -> io::Result<JournalBackend> {
        let main = OpenOptions::new().read(true).open(db)?;
        let main = Box::new(FileBackend::new(main).map_err(io::Error::other)?);
        let journal_file = journal_path(db);
        let lock = match OpenOptions::new().read(true).open(&journal_file) {
            Ok(f) => f,
            // No journal (a store last written before there was one, or a
            // snapshot): nothing to replay, nothing to lock.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let f = OpenOptions::new().read(true).open(db)?;
                let empty = Box::new(EmptyJournal);
                return Self::open_on(main, empty, f, false);
            }
            Err(e) => return Err(e),
        };
        try_flock(&lock, &journal_file, false)?;
        let journal = Box::new(FileBackend::new(lock.try_clone()?).map_err(io::Error::other)?);
        Self::open_on(main, journal, lock, false)
    }

    /// Open over given storage (the tests' and the power-loss mode's).
    pub fn open_on(
        main: Box<dyn StorageBackend>,
        journal: Box<dyn StorageBackend>,
        lock: File,
        writable: bool,
    ) -> io::Result<JournalBackend> {
        Self::open_with_capacity(main, journal, lock, writable, CAPACITY)
    }

    fn open_with_capacity(
        main: Box<dyn StorageBackend>,
        journal: Box<dyn StorageBackend>,
        lock: File,
        writable: bool,
        capacity: u64,
    ) -> io::Result<JournalBackend> {
        let len = main.len()?;
        let backend = JournalBackend {
            main,
            journal,
            _lock: lock,
            writable,
            capacity,
            state: RwLock::new(State {
                len,
                main_len: len,
                synced_len: len,
                period_min_len: len,
                clean_len: len,
                generation: new_generation()?,
                ..State::default()
            }),
        };
        let records = backend.read_journal()?;
        {
            let mut st = backend.state_mut();
            for record in &records {
                replay(&backend, &mut st, record)?;
            }
            if writable {
                if !records.is_empty() {
                    backend.checkpoint(&mut st)?;
                }
                // Every later record is of this new run; the old one's
                // leftovers cannot chain after them.
                backend.prepare_journal()?;
            }
            st.before.clear();
            st.period_min_len = st.len;
            st.synced_len = st.len;
        }
        Ok(backend)
    }

    pub fn stats(&self) -> JournalStats {
        self.state().stats
    }

    fn state(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn state_mut(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The records of the journal's current run, in order.
    fn read_journal(&self) -> io::Result<Vec<Vec<u8>>> {
        let len = self.journal.len()?;
        let mut records = Vec::new();
        let (mut pos, mut run) = (0u64, None::<u64>);
        while pos + HEADER as u64 <= len {
            let mut header = [0u8; HEADER];
            self.journal.read(pos, &mut header)?;
            let Some(h) = Header::read(&header) else {
                break;
            };
            if run.is_some_and(|g| g != h.generation) || h.seq != records.len() as u64 {
                break;
            }
            if pos + HEADER as u64 + h.payload_len > len {
                break;
            }
            let mut record = vec![0u8; HEADER + h.payload_len as usize];
            self.journal.read(pos, &mut record)?;
            if !checksum_holds(&record) {
                break;
            }
            run = Some(h.generation);
            pos += record.len() as u64;
            records.push(record);
        }
        Ok(records)
    }

    /// Empty the journal (its records are all in the store file), synced.
    fn prepare_journal(&self) -> io::Result<()> {
        self.journal.set_len(0)?;
        self.journal.sync_data()
    }

    /// Block `index` as the store holds it now, outside the overlay.
    fn base_block(&self, st: &mut State, index: u64) -> io::Result<Box<[u8]>> {
        let mut block = spare_block(&mut st.spare);
        let start = index * BLOCK;
        let on_file = st.clean_len.min(st.main_len);
        let n = if start < on_file {
            let n = (on_file - start).min(BLOCK) as usize;
            self.main.read(start, &mut block[..n])?;
            n
        } else {
            0
        };
        block[n..].fill(0);
        Ok(block)
    }

    /// Block `index` as the store holds it now.
    fn current_block(&self, st: &mut State, index: u64) -> io::Result<Box<[u8]>> {
        match st.overlay.get(&index) {
            Some(b) => Ok(copied_block(&mut st.spare, b)),
            None => self.base_block(st, index),
        }
    }

    /// Remember block `index` as of the last sync, before it first changes.
    fn note_before(&self, st: &mut State, index: u64) -> io::Result<()> {
        if !st.before.contains_key(&index) {
            let mut block = self.current_block(st, index)?;
            zero_from(&mut block, index, st.period_min_len);
            st.before.insert(index, block);
        }
        Ok(())
    }

    fn apply_write(&self, st: &mut State, offset: u64, data: &[u8]) -> io::Result<()> {
        let end = offset
            .checked_add(data.len() as u64)
            .ok_or_else(|| io::Error::other("write past the largest offset"))?;
        let mut at = offset;
        while at < end {
            let index = at / BLOCK;
            let within = (at % BLOCK) as usize;
            let n = ((BLOCK as usize) - within).min((end - at) as usize);
            if st.overlay.contains_key(&index) {
                self.note_before(st, index)?;
            } else {
                // One read serves both the before-image and the overlay.
                let block = self.base_block(st, index)?;
                if !st.before.contains_key(&index) {
                    let mut before = copied_block(&mut st.spare, &block);
                    zero_from(&mut before, index, st.period_min_len);
                    st.before.insert(index, before);
                }
                st.overlay.insert(index, block);
            }
            let src = &data[(at - offset) as usize..(at - offset) as usize + n];
            if let Some(block) = st.overlay.get_mut(&index) {
                block[within..within + n].copy_from_slice(src);
            }
            at += n as u64;
        }
        st.len = st.len.max(end);
        Ok(())
    }

    fn apply_set_len(&self, st: &mut State, len: u64) -> io::Result<()> {
        if len < st.len {
            let first_gone = len.div_ceil(BLOCK);
            if len % BLOCK != 0 {
                // The block the new end falls in keeps its head only.
                let index = len / BLOCK;
                self.note_before(st, index)?;
                let mut block = self.current_block(st, index)?;
                zero_from(&mut block, index, len);
                st.overlay.insert(index, block);
            }
            st.overlay.retain(|index, _| *index < first_gone);
            st.period_min_len = st.period_min_len.min(len);
            st.clean_len = st.clean_len.min(len);
            // Replay zeroes from the least length: so does the comparison.
            let min_len = st.period_min_len;
            for (index, block) in st.before.iter_mut() {
                zero_from(block, *index, min_len);
            }
        }
        st.len = len;
        Ok(())
    }

    /// Build in `st.record` the record of what changed since the last sync;
    /// false if nothing did.
    fn record(&self, st: &mut State) -> io::Result<bool> {
        let State {
            record,
            before: befores,
            overlay,
            ..
        } = st;
        // The header's place (seal_in_place writes it); the allocation stays.
        record.resize(HEADER, 0);
        record.extend_from_slice(&st.period_min_len.to_le_bytes());
        record.extend_from_slice(&st.len.to_le_bytes());
        let mut indexes: Vec<u64> = befores.keys().copied().collect();
        indexes.sort_unstable();
        let zeros = [0u8; BLOCK as usize];
        for index in indexes {
            let start = index * BLOCK;
            if start >= st.len {
                continue;
            }
            let valid = (st.len - start).min(BLOCK) as usize;
            let before = match befores.get(&index) {
                Some(b) => &b[..valid],
                None => continue,
            };
            let now = match overlay.get(&index) {
                Some(b) => &b[..valid],
                None => &zeros[..valid],
            };
            for (from, to) in changed_runs(before, now) {
                record.extend_from_slice(&(start + from as u64).to_le_bytes());
                record.extend_from_slice(&((to - from) as u32).to_le_bytes());
                record.extend_from_slice(&now[from..to]);
            }
        }
        if record.len() == HEADER + 16 && st.period_min_len == st.len && st.len == st.synced_len {
            return Ok(false);
        }
        seal_in_place(record, st.generation, st.seq)?;
        Ok(true)
    }

    /// Make everything written so far durable: one record appended to the
    /// journal, then, when due, a checkpoint. The record comes first so that
    /// a checkpoint only ever writes what the journal already holds: one cut
    /// short is then completed by replay, never left half-applied.
    fn sync(&self, st: &mut State) -> io::Result<()> {
        if self.record(st)? {
            let record = &st.record;
            let appended = self
                .journal
                .write(st.pos, record)
                .and_then(|()| self.journal.sync_data());
            if let Err(e) = appended {
                // The commit is answered as failed: keep a reopen in this
                // process (which reads the page cache) from replaying it.
                let _ = self.journal.write(st.pos, &[0u8; HEADER]);
                return Err(e);
            }
            st.pos += record.len() as u64;
            st.seq += 1;
            st.stats.records += 1;
            st.stats.record_bytes += record.len() as u64;
        }
        if st.record.capacity() > RECORD_KEEP {
            st.record = Vec::new();
        }
        let room = SPARE_BLOCKS.saturating_sub(st.spare.len());
        let State { before, spare, .. } = st;
        // A drain dropped early still empties the map.
        spare.extend(before.drain().map(|(_, block)| block).take(room));
        st.period_min_len = st.len;
        st.synced_len = st.len;
        let due = st.pos > self.capacity || st.overlay.len() > MAX_OVERLAY_BLOCKS;
        if due && st.seq >= st.retry_checkpoint_at {
            if let Err(e) = self.checkpoint(st) {
                // The commit is durable in the journal and stands. Nothing in
                // memory is wrong (replay completes a checkpoint cut short),
                // so go on appending, and try again some records later.
                tracing::warn!(error = %e, "store journal: checkpoint failed; retrying later");
                st.retry_checkpoint_at = st.seq + 64;
                match self.main.len() {
                    Ok(len) => st.main_len = len,
                    // Reads can no longer be served right: later calls fail
                    // and the store reopens; this commit stands.
                    Err(e) => st.poisoned = Some(Poison::of(&e)),
                }
            }
        }
        Ok(())
    }

    /// Write the overlay, all of it already in the journal, to the store file
    /// and sync it; the journal starts a new run (its old records, replayed
    /// again, would change nothing).
    fn checkpoint(&self, st: &mut State) -> io::Result<()> {
        if st.clean_len < self.main.len()? {
            self.main.set_len(st.clean_len)?;
        }
        if self.main.len()? != st.len {
            self.main.set_len(st.len)?;
        }
        st.main_len = st.len;
        let mut indexes: Vec<u64> = st.overlay.keys().copied().collect();
        indexes.sort_unstable();
        // Consecutive blocks in one write.
        let mut run = std::mem::take(&mut st.run);
        run.clear();
        let mut run_start = 0u64;
        for index in indexes {
            let start = index * BLOCK;
            let valid = (st.len.saturating_sub(start)).min(BLOCK) as usize;
            if run_start + run.len() as u64 != start || run.len() >= 1 << 20 {
                if !run.is_empty() {
                    self.main.write(run_start, &run)?;
                }
                run.clear();
                run_start = start;
            }
            if let Some(block) = st.overlay.get(&index) {
                run.extend_from_slice(&block[..valid]);
            }
        }
        if !run.is_empty() {
            self.main.write(run_start, &run)?;
        }
        st.run = run;
        self.main.sync_data()?;
        // The store file now holds everything. Before the new run writes its
        // first record over the old run's, the old run's head must be durably
        // gone: a first record torn so that its first sector is lost would
        // otherwise leave a prefix of the old run to replay, rolling back
        // what later records of that run changed.
        let head_cleared = self
            .journal
            .write(0, &[0u8; HEADER])
            .and_then(|()| self.journal.sync_data());
        if let Err(e) = head_cleared {
            // The commit stands (the store file has it); nothing more may be
            // appended until a reopen finds where the journal stands.
            tracing::error!(error = %e, "store journal: cannot clear the journal after a checkpoint");
            st.poisoned = Some(Poison::of(&e));
        }
        st.stats.checkpoints += 1;
        st.stats.checkpoint_bytes += st.overlay.len() as u64 * BLOCK;
        tracing::debug!(
            blocks = st.overlay.len(),
            journal_bytes = st.pos,
            records = st.seq,
            "store journal: checkpoint"
        );
        st.overlay.clear();
        st.before.clear();
        st.clean_len = st.len;
        st.period_min_len = st.len;
        st.synced_len = st.len;
        st.generation = new_generation()?;
        st.seq = 0;
        st.pos = 0;
        st.retry_checkpoint_at = 0;
        Ok(())
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

/// Apply one journal record (already checked) to the state.
fn replay(backend: &JournalBackend, st: &mut State, record: &[u8]) -> io::Result<()> {
    let payload = &record[HEADER..];
    let corrupt = || io::Error::other("a journal record with a valid checksum does not parse");
    if payload.len() < 16 {
        return Err(corrupt());
    }
    backend.apply_set_len(st, u64_at(payload, 0))?;
    backend.apply_set_len(st, u64_at(payload, 8))?;
    let mut rest = &payload[16..];
    while !rest.is_empty() {
        if rest.len() < 12 {
            return Err(corrupt());
        }
        let offset = u64_at(rest, 0);
        let n = u32_at(rest, 8) as usize;
        let data = rest.get(12..12 + n).ok_or_else(corrupt)?;
        backend.apply_write(st, offset, data)?;
        rest = &rest[12 + n..];
    }
    // Before-images serve the next record's diff, which replay does not make.
    st.before.clear();
    st.period_min_len = st.len;
    Ok(())
}

/// Zero the bytes of block `index` at or past `len`.
fn zero_from(block: &mut [u8], index: u64, len: u64) {
    let start = index * BLOCK;
    if len <= start {
        block.fill(0);
    } else if len - start < BLOCK {
        block[(len - start) as usize..].fill(0);
    }
}

fn new_generation() -> io::Result<u64> {
    let mut g = [0u8; 8];
    getrandom::getrandom(&mut g).map_err(io::Error::other)?;
    Ok(u64::from_le_bytes(g))
}

/// The journal of a store that has none (read-only opens).
#[derive(Debug)]
struct EmptyJournal;

impl StorageBackend for EmptyJournal {
    fn len(&self) -> io::Result<u64> {
        Ok(0)
    }
    fn read(&self, _offset: u64, _out: &mut [u8]) -> io::Result<()> {
        Err(io::Error::from(io::ErrorKind::UnexpectedEof))
    }
    fn set_len(&self, _len: u64) -> io::Result<()> {
        Err(read_only())
    }
    fn sync_data(&self) -> io::Result<()> {
        Ok(())
    }
    fn write(&self, _offset: u64, _data: &[u8]) -> io::Result<()> {
        Err(read_only())
    }
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
        if !self.writable {
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
        if !self.writable {
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
                    b.checkpoint(st)?;
                    b.prepare_journal()
                });
            }
        }
        // Closed whatever happened above: redb's locks are released here.
        let journal_closed = self.journal.close();
        let main_closed = self.main.close();
        flushed.and(journal_closed).and(main_closed)
    }

    fn try_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.main.try_lock_range(start, end)
    }

    fn try_lock_shared_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> Result<bool, BackendError> {
        self.main.try_lock_shared_range(start, end)
    }

    fn lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.main.lock_range(start, end)
    }

    fn lock_shared_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.main.lock_shared_range(start, end)
    }

    fn unlock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.main.unlock_range(start, end)
    }

    fn query_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.main.query_lock_range(start, end)
    }
}

#[cfg(test)]
mod tests;
