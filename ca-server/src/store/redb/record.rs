//! Keeping a crash's restart from walking the store: after a durable commit
//! that did not record redb's allocator state (a request's own durable
//! write: a revocation, a policy, an idempotent issuance's reservation, an
//! ACME update; see `super::begin_write_quick_repair`), the writer makes one
//! that does once such writes pause for [`RECORD_WHEN_IDLE`]: on its own
//! when all writes pause, or with the next batch of issuances or lone audit
//! entries (which make no durable commit of their own, see `super::redo`). A crash then walks
//! only if it comes during a steady flow of such writes, or within that
//! pause: redb loads the state only if the last durable commit recorded it,
//! so recording now and then under a steady flow of them would not help.
//!
//! Recording with every such write would cost each about twice its time
//! (measured: a revocation's p50 1.1 ms against 0.6 ms); this costs one
//! recording commit per pause.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use redb::WriteTransaction;

use super::writer::{Handle, Shared};
use crate::store::StoreError;

/// A pause in writes this long after a durable commit that recorded nothing
/// brings a commit that records.
pub const RECORD_WHEN_IDLE: Duration = Duration::from_millis(100);
/// How long the writer waits for a job before it looks again (whether a
/// commit on a caller's thread has left something to record).
pub const LOOK_EVERY: Duration = RECORD_WHEN_IDLE;

impl Shared {
    /// A durable commit has just been made (under `commit_lock`); `recorded`
    /// says whether it recorded the allocator state.
    pub(super) fn note_durable_commit(&self, recorded: bool) {
        *self.unrecorded.lock().unwrap_or_else(|p| p.into_inner()) = (!recorded).then(Instant::now);
    }

    fn forget_unrecorded(&self) {
        *self.unrecorded.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// After a reopen: what the last durable commit recorded is unknown
    /// (the failed commit may have reached the disk), so the writer records
    /// once writes pause, unless it was that recording which failed.
    pub(super) fn record_after_reopen(&self) {
        if !self.recording_failed.swap(false, Ordering::Relaxed) {
            self.note_durable_commit(false);
        }
    }

    /// When a commit that records falls due, if one will.
    pub(super) fn record_due(&self) -> Option<Instant> {
        self.unrecorded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .map(|last| last + RECORD_WHEN_IDLE)
    }

    /// A commit that records is due now.
    pub(super) fn record_is_due(&self) -> bool {
        self.record_due().is_some_and(|due| due <= Instant::now())
    }

    /// Before a batch (under `commit_lock`): if a recording commit is due,
    /// the batch's commit is made durable, and so records (see
    /// `batch::commit`).
    pub(super) fn record_with_batch_if_due(&self) {
        if self.record_is_due() {
            self.durable_next.store(true, Ordering::Relaxed);
        }
    }

    /// While writes pause (under `commit_lock`): if a recording commit is
    /// due, make it (of the carried transaction, if any, which it publishes).
    pub(super) fn record_if_due(&self, held: &mut Option<WriteTransaction>) {
        if !self.record_is_due() || !self.writable.load(Ordering::Acquire) {
            return;
        }
        // Closed: nothing to record.
        let Ok(handle) = self.handle() else {
            return self.forget_unrecorded();
        };
        let Handle::Rw(db, journal) = handle.as_ref() else {
            return self.forget_unrecorded();
        };
        let committed = match held.take() {
            Some(mut txn) => txn
                .set_durability(redb::Durability::Immediate)
                .map_err(|e| StoreError::Db(e.to_string()))
                .map(|()| {
                    txn.set_quick_repair(true);
                    txn
                }),
            None => super::begin_write_quick_repair(db).map_err(StoreError::from),
        }
        .and_then(|txn| txn.commit().map_err(StoreError::from));
        match committed {
            Ok(()) => {
                self.all_published();
                self.committed_durably(journal, true);
            }
            Err(e) => {
                // Not tried again before the next durable commit, nor after
                // the reopen this failure brings: on a full disk it would
                // fail again at every pause, each failure costing a reopen.
                self.forget_unrecorded();
                self.recording_failed.store(true, Ordering::Relaxed);
                let e = StoreError::Unavailable(format!(
                    "recording the store's allocator state: {e}; the store reopens and redoes what its journal holds"
                ));
                drop(handle);
                self.break_store(held, &e);
            }
        }
    }
}
