//! Publishing: a batch of issuances alone (each described by a redo
//! record, see [`super::redo`]) is durable once its record is synced, and
//! is answered then; its transaction is not committed but kept
//! ([`Shared::commit_lock`] holds it) for the next batch to go on with (a
//! batch that also holds an audit entry alone, a read's mostly, publishes
//! once it has answered: `Job::publish_after`). A
//! commit of redb's, even one it does not sync, updates every table root,
//! checksums every changed page and copies each page again at the next
//! change; carried on, one transaction takes the writes of many batches
//! and writes the pages at their ends once. Readers do not see
//! uncommitted writes, so every read first *publishes* ([`Shared::publish`]):
//! commits, unsynced, the kept transaction when it holds answered writes.
//! A read that starts after a write's answer thus sees it, as before. Any
//! other write, a durable commit that falls due, `write_now` and the close
//! commit the kept transaction with theirs (or first): a batch that holds
//! any write without a redo record publishes it before it runs. What a crash takes
//! from redb's memory, the journal's redo records give back at the next
//! open. When a batch of issuances fails inside a kept transaction, aborting
//! it also takes back earlier answered writes: the store then reopens,
//! which redoes them from the journal. Observers and jobs must not read the
//! store (a read may wait for a publish that only their commit could make).

use std::sync::atomic::Ordering;
use std::time::Duration;

use redb::WriteTransaction;

use super::writer::Shared;
use crate::store::StoreError;

impl Shared {
    /// Make every answered write visible to readers: commit, without a
    /// sync, the carried transaction if it holds any (their redo records are
    /// durable). Every read calls this first (see the module's doc). Not
    /// from a commit hook (a hook runs while a commit holds the lock this
    /// may take; none needs to: a batch whose writes tell hooks anything
    /// commits whole, carrying nothing). An error means publishing broke the
    /// store; its caller must wake the writer (see `try_commit_alone`).
    pub fn publish(&self) -> Result<(), StoreError> {
        if !self.unpublished.load(Ordering::Acquire) {
            return Ok(());
        }
        // Every write answered so far is in a redo record numbered up to this.
        let owed = self.redo_seq.load(Ordering::Acquire);
        loop {
            if self.published_seq.load(Ordering::SeqCst) >= owed
                || !self.unpublished.load(Ordering::Acquire)
            {
                return Ok(());
            }
            match self.commit_lock.try_lock() {
                Ok(mut held) => return self.publish_held(&mut held),
                Err(std::sync::TryLockError::Poisoned(p)) => {
                    return self.publish_held(&mut p.into_inner())
                }
                Err(std::sync::TryLockError::WouldBlock) => self.wait_for_publishing(owed),
            }
        }
    }

    /// Wait (briefly: then the lock is tried again) for the holder of
    /// `commit_lock` to publish redo record `owed`.
    fn wait_for_publishing(&self, owed: u64) {
        self.publish_waiters.fetch_add(1, Ordering::SeqCst);
        let (lock, told) = &self.published;
        let guard = lock.lock().unwrap_or_else(|p| p.into_inner());
        let _ = told.wait_timeout_while(guard, Duration::from_millis(2), |_| {
            self.published_seq.load(Ordering::SeqCst) < owed
                && self.unpublished.load(Ordering::Acquire)
        });
        self.publish_waiters.fetch_sub(1, Ordering::SeqCst);
    }

    /// [`publish`](Self::publish) for the holder of `commit_lock`.
    pub(super) fn publish_held(
        &self,
        held: &mut Option<WriteTransaction>,
    ) -> Result<(), StoreError> {
        self.commit_carried(held)
            .inspect_err(|e| self.break_store(held, e))
    }

    /// Commit the carried transaction, if any, without a sync. An error
    /// (`Unavailable`) calls for [`break_store`](Self::break_store).
    pub(super) fn commit_carried(
        &self,
        held: &mut Option<WriteTransaction>,
    ) -> Result<(), StoreError> {
        let Some(mut txn) = held.take() else {
            return Ok(());
        };
        txn.set_durability(redb::Durability::None)
            .map_err(|e| StoreError::Db(e.to_string()))
            .and_then(|()| txn.commit().map_err(StoreError::from))
            .map_err(|e| {
                StoreError::Unavailable(format!(
                    "publishing answered writes: {e}; the store reopens and redoes them from its journal"
                ))
            })?;
        self.all_published();
        Ok(())
    }

    /// Readers see every answered write now; called under `commit_lock`.
    pub(super) fn all_published(&self) {
        self.unpublished.store(false, Ordering::Release);
        self.published_seq
            .store(self.redo_seq.load(Ordering::Relaxed), Ordering::SeqCst);
        if self.publish_waiters.load(Ordering::SeqCst) > 0 {
            let (lock, told) = &self.published;
            let _guard = lock.lock().unwrap_or_else(|p| p.into_inner());
            told.notify_all();
        }
    }
}
