//! A sync (what changed since the last one, as one journal record) and the checkpoint.

use std::io;

use super::{
    changed_runs, new_generation, seal_in_place, JournalBackend, Poison, State, BLOCK, GROW_AHEAD,
    HEADER, MAX_OVERLAY_BLOCKS, RECORD_KEEP, SPARE_BLOCKS,
};

impl JournalBackend {
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
    pub(super) fn sync(&self, st: &mut State) -> io::Result<()> {
        if self.record(st)? {
            let record = std::mem::take(&mut st.record);
            let appended = self
                .write_record(st, &record)
                .and_then(|()| self.journal.sync_data());
            st.record = record;
            if let Err(e) = appended {
                // The commit is answered as failed.
                self.take_back(st);
                return Err(e);
            }
            let len = st.record.len() as u64;
            st.pos += len;
            st.seq += 1;
            st.stats.records += 1;
            st.stats.record_bytes += len;
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
        // Not while redo records hold writes no durable commit does yet: redb
        // also syncs mid-transaction (growing its file), so a sync is not one.
        let due = st.pos > self.capacity || st.overlay.len() > MAX_OVERLAY_BLOCKS;
        if due && !st.redo_outstanding && st.seq >= st.retry_checkpoint_at {
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

    /// Take back the record just written at `st.pos`, answered as failed
    /// though it may be on the disk (a sync can fail after writing): its
    /// header zeroed, and synced, so that neither a reopen in this process
    /// (which reads the page cache) nor an open after a power cut replays
    /// or redoes it. If this fails too, the caller's failure stands and the
    /// store, reopened, answers what it holds (the journal is poisoned
    /// either way).
    pub(super) fn take_back(&self, st: &State) {
        let _ = self
            .journal
            .write(st.pos, &[0u8; HEADER])
            .and_then(|()| self.journal.sync_data());
    }

    /// Write `record` at the journal's end (`st.pos`), over blocks the file
    /// has: when it would reach past the file's end, the file is first grown
    /// by zeros to the next [`GROW_AHEAD`] step (synced with the record).
    /// Zeros past the last record read as the journal's end, as the file's
    /// end did.
    pub(super) fn write_record(&self, st: &mut State, record: &[u8]) -> io::Result<()> {
        let end = st.pos + record.len() as u64;
        if end > st.journal_len {
            let grown = (end / GROW_AHEAD + 1) * GROW_AHEAD;
            let zeros = vec![0u8; (grown - end) as usize];
            self.journal.write(end, &zeros)?;
            st.journal_len = grown;
        }
        self.journal.write(st.pos, record)
    }

    /// Write the overlay, all of it already in the journal, to the store file
    /// and sync it; the journal starts a new run (its old records, replayed
    /// again, would change nothing).
    pub(super) fn checkpoint(&self, st: &mut State) -> io::Result<()> {
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
        st.redo_bytes = 0;
        Ok(())
    }
}
