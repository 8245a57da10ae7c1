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

impl JournalBackend {
    /// Append `payload` as one redo record and sync it. Returns the redo
    /// bytes appended since the store last told of a durable commit (its
    /// cue for the next one).
    pub fn append_redo(&self, payload: &[u8]) -> io::Result<u64> {
        if !self.writable {
            return Err(super::read_only());
        }
        let mut st = self.state_mut();
        self.guarded(&mut st, |b, st| b.append_redo_in(st, payload))
    }

    fn append_redo_in(&self, st: &mut State, payload: &[u8]) -> io::Result<u64> {
        // The buffer is kept between appends (its allocation serves them all).
        let mut record = std::mem::take(&mut st.redo);
        record.clear();
        record.resize(HEADER, 0);
        record.extend_from_slice(&REDO_MARK.to_le_bytes());
        record.extend_from_slice(payload);
        seal_in_place(&mut record, st.generation, st.seq)?;
        let appended = self
            .write_record(st, &record)
            .and_then(|()| self.journal.sync_data());
        let len = record.len() as u64;
        st.redo = if record.capacity() > super::RECORD_KEEP {
            Vec::new()
        } else {
            record
        };
        if let Err(e) = appended {
            // Answered as failed.
            self.take_back(st);
            return Err(e);
        }
        st.redo_outstanding = true;
        st.pos += len;
        st.seq += 1;
        st.redo_bytes += len;
        st.stats.redo_records += 1;
        st.stats.redo_bytes += len;
        Ok(st.redo_bytes)
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
