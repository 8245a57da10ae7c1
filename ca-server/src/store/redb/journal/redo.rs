//! Redo records: a commit made durable by its writes' own description
//! instead of the pages they changed.
//!
//! redb's commit rewrites every page on the path to each changed entry
//! (copy-on-write), so a page record for one certificate was ~23 KiB,
//! though the certificate, its record and its audit entry are ~1.5 KiB. A
//! commit whose writes the store can describe and redo (see
//! `super::super::redo`) is instead made durable by one redo record holding
//! that description, appended and synced here, while redb keeps its pages
//! in memory (not committed at all until a read or another write needs it,
//! then without a sync: see the writer's doc on publishing). A later
//! durable commit holds those writes too (redb's durable commit includes
//! every earlier commit). Which records it covers only the store can tell
//! (a page record is not a durable commit: redb also syncs mid-transaction,
//! to grow its file), so each record carries a number the store keeps, in
//! the same transaction, with the writes it describes; opening the store
//! hands over every redo record of the run
//! ([`JournalBackend::take_pending_redo`]) and the store redoes, in one
//! durable commit, those numbered past what it holds.
//!
//! No checkpoint ends a run while it holds redo records whose writes no
//! durable commit holds yet (the store says when one does:
//! [`JournalBackend::redo_durable`]), and an open that finds redo records
//! keeps their run going.

use std::io;

use super::format::REDO_MARK;
use super::{seal_in_place, JournalBackend, State, HEADER};

/// A redo record written to the journal, its write to the disk started,
/// and not yet synced: [`JournalBackend::sync_redo`] makes it durable, or
/// [`JournalBackend::withdraw_redo`] takes it back.
#[must_use = "a written redo record must be synced or withdrawn"]
pub struct UnsyncedRedo {
    /// Where it starts in the journal.
    at: u64,
    /// Its length.
    len: u64,
    /// Its number in the journal's run.
    seq: u64,
    /// The journal run it was written in.
    generation: u64,
}

impl JournalBackend {
    /// Append `payload` as one redo record and sync it (the tests'
    /// shorthand; the store writes, works, then syncs). Returns the redo
    /// bytes appended since the store last told of a durable commit.
    #[cfg(test)]
    pub fn append_redo(&self, payload: &[u8]) -> io::Result<u64> {
        let written = self.write_redo(payload)?;
        self.sync_redo(written)
    }

    /// Write `payload` as one redo record after the last, and start its
    /// write to the disk, without waiting for it: the caller does its own
    /// work (the batch's table inserts) while the disk writes, then
    /// [`sync_redo`](Self::sync_redo) waits only for what is left of the
    /// write and for the flush. A 1,309-byte record, 25 µs of work, then
    /// `fdatasync`: p50 145–173 µs against 180–212 µs with the write
    /// started by the sync (this machine, 2026-12-07). Later records go
    /// after it, so it must be synced or withdrawn before the next.
    pub fn write_redo(&self, payload: &[u8]) -> io::Result<UnsyncedRedo> {
        if !self.writable {
            return Err(super::read_only());
        }
        let mut st = self.state_mut();
        self.guarded(&mut st, |b, st| b.write_redo_in(st, payload))
    }

    fn write_redo_in(&self, st: &mut State, payload: &[u8]) -> io::Result<UnsyncedRedo> {
        // The buffer is kept between appends (its allocation serves them all).
        let mut record = std::mem::take(&mut st.redo);
        record.clear();
        record.resize(HEADER, 0);
        record.extend_from_slice(&REDO_MARK.to_le_bytes());
        record.extend_from_slice(payload);
        seal_in_place(&mut record, st.generation, st.seq)?;
        let written = self.write_record(st, &record);
        let len = record.len() as u64;
        st.redo = if record.capacity() > super::RECORD_KEEP {
            Vec::new()
        } else {
            record
        };
        let pending = UnsyncedRedo {
            at: st.pos,
            len,
            seq: st.seq,
            generation: st.generation,
        };
        if let Err(e) = written {
            // Nothing was answered: a sync that follows must not carry it.
            self.take_back(st);
            return Err(e);
        }
        self.start_write_back(pending.at, pending.at + len);
        // Past it from now on: a sync redb makes before this record's own
        // (its file growing mid-transaction) appends after it, never over it.
        st.redo_outstanding = true;
        st.pos += len;
        st.seq += 1;
        Ok(pending)
    }

    /// Start writing the journal's bytes `[from, to)` to the disk, without
    /// waiting. `posix_fadvise(DONTNEED)` on one byte starts the write-back
    /// of the page that holds it (what PostgreSQL's `pg_flush_data` does
    /// where `sync_file_range` is missing; rustix has none, and libc's
    /// needs `unsafe`) and drops no page: the kernel keeps a range's partial pages
    /// cached (mm/fadvise.c), and a one-byte range has no whole page, so the
    /// next record, written into the same page, finds it cached. Only a
    /// hint: a failure changes nothing but the timing.
    fn start_write_back(&self, from: u64, to: u64) {
        const PAGE: u64 = 4096;
        let one = std::num::NonZeroU64::MIN;
        let mut at = from;
        while at < to {
            let _ = rustix::fs::fadvise(&self.file, at, Some(one), rustix::fs::Advice::DontNeed);
            at = (at / PAGE + 1) * PAGE;
        }
    }

    /// Make a record [`write_redo`](Self::write_redo) wrote durable.
    /// Returns the redo bytes appended since the store last told of a
    /// durable commit (its cue for the next one). On failure, or when the
    /// journal was poisoned since the record was written (a sync redb made
    /// meanwhile failed), the record is taken back (its writes are answered
    /// as failed) and the journal stays poisoned.
    pub fn sync_redo(&self, written: UnsyncedRedo) -> io::Result<u64> {
        let mut st = self.state_mut();
        if let Some(p) = &st.poisoned {
            let e = p.error();
            self.zero_header(&st, &written);
            return Err(e);
        }
        self.guarded(&mut st, |b, st| {
            if let Err(e) = b.journal.sync_data() {
                b.zero_header(st, &written);
                return Err(e);
            }
            st.redo_bytes += written.len;
            st.stats.redo_records += 1;
            st.stats.redo_bytes += written.len;
            Ok(st.redo_bytes)
        })
    }

    /// Take back a record [`write_redo`](Self::write_redo) wrote, whose
    /// writes were not made after all (the batch failed before its
    /// commit): its header is zeroed and synced (its write to the disk was
    /// started), so that neither a reopen nor an open after a power cut
    /// redoes it, whatever else failed, and the next record takes its
    /// place. Returns whether the journal is poisoned, so that the store
    /// must reopen from what the journal holds: it was already (the batch
    /// failed on the journal's error), something was appended after the
    /// record meanwhile (a sync redb made mid-transaction), or the zeroing
    /// failed. (If that fails, an open after a power cut may redo writes
    /// answered as failed; as for [`take_back`](Self::take_back).)
    pub fn withdraw_redo(&self, written: UnsyncedRedo) -> bool {
        let mut st = self.state_mut();
        let last = st.generation == written.generation
            && st.seq == written.seq + 1
            && st.pos == written.at + written.len;
        let zeroed = self.zero_header(&st, &written);
        if st.poisoned.is_none() {
            if zeroed && last {
                st.pos = written.at;
                st.seq = written.seq;
            } else {
                st.poisoned = Some(super::Poison::of(&io::Error::other(
                    "a journal redo record was taken back behind later records, or could not be: the store reopens",
                )));
            }
        }
        st.poisoned.is_some()
    }

    /// Zero (and sync) the header of `written`, if the journal is still in
    /// the run it was written in; whether it was.
    fn zero_header(&self, st: &State, written: &UnsyncedRedo) -> bool {
        st.generation == written.generation
            && self
                .journal
                .write(written.at, &[0u8; HEADER])
                .and_then(|()| self.journal.sync_data())
                .is_ok()
    }

    /// A durable commit has just made every redo record's writes durable:
    /// a checkpoint may end the run again (one due is made now).
    pub fn redo_durable(&self) -> io::Result<()> {
        let mut st = self.state_mut();
        st.redo_bytes = 0;
        if !std::mem::replace(&mut st.redo_outstanding, false) || !self.writable {
            return Ok(());
        }
        self.guarded(&mut st, |b, st| b.sync(st))
    }

    /// The redo records of the journal's run at open, in order (their
    /// payloads); empty after the first call.
    pub fn take_pending_redo(&self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.state_mut().pending_redo)
    }
}
