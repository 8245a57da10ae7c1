//! Opening a store through its journal, replaying what a crash left in it.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;
use std::sync::RwLock;

use redb::backends::FileBackend;
use redb::StorageBackend;

#[cfg(any(test, feature = "forensics"))]
use super::fault;
use super::format::is_redo;
use super::lock::try_flock;
use super::{
    checksum_holds, journal_path, lock_journal, new_generation, read_only, u32_at, u64_at, Header,
    JournalBackend, State, CAPACITY, HEADER,
};

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

    pub(super) fn open_with_capacity(
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
            file: lock,
            writable,
            scratch: false,
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
            for record in records.iter().filter(|r| !is_redo(r)) {
                replay(&backend, &mut st, record)?;
            }
            // Which of them the store already holds, it alone can tell (see `redo`).
            st.pending_redo = records
                .iter()
                .filter(|r| is_redo(r))
                .map(|r| r[HEADER + 8..].to_vec())
                .collect();
            if writable && !st.pending_redo.is_empty() {
                // Go on with this run, after its last record: a checkpoint
                // now would end the run, and the redo records with it, before
                // the store has made what they hold durable.
                let first = records.first().map(|r| u64_at(r, 8));
                st.generation = first.unwrap_or(st.generation);
                st.seq = records.len() as u64;
                st.pos = records.iter().map(|r| r.len() as u64).sum();
                st.redo_outstanding = true;
                // Cut what follows the run's last valid record: a record of
                // this run past one that was taken back (or torn) must not
                // come to chain after the records appended from here on.
                backend.journal.set_len(st.pos)?;
                backend.journal.sync_data()?;
                st.journal_len = st.pos;
            } else if writable {
                if !records.is_empty() {
                    backend.checkpoint(&mut st)?;
                }
                // Every later record is of this new run; the old one's
                // leftovers cannot chain after them.
                backend.prepare_journal(&mut st)?;
            }
            st.before.clear();
            st.period_min_len = st.len;
            st.synced_len = st.len;
        }
        Ok(backend)
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
    pub(super) fn prepare_journal(&self, st: &mut State) -> io::Result<()> {
        self.journal.set_len(0)?;
        st.journal_len = 0;
        self.journal.sync_data()
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
