//! A group commit's batch: its jobs, the transaction they share, and how
//! it is committed (durably, or by a redo record with the transaction
//! carried on: see [`super::publish`]).

use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;

use redb::WriteTransaction;

use super::issue_tables::IssueTables;
use super::journal::{JournalBackend, UnsyncedRedo};
use super::redo::Holds;
use super::tables::META;
use super::writer::{Handle, Shared};
use crate::store::{Committed, StoreError};

/// What one job did inside the shared transaction.
pub struct JobOutput {
    /// The transaction is spoilt: abort the batch.
    pub fatal: bool,
    pub done: Completion,
    /// What the job changed, told to hooks once committed.
    pub events: Vec<Committed>,
    /// How its writes are made durable.
    pub redo: JobRedo,
}

/// How a job's writes are made durable.
pub enum JobRedo {
    /// It wrote nothing (refused before its first write).
    Nothing,
    /// By nothing of its own: what it wrote is made again if a crash takes
    /// it (events projected from the audit trail). Committed with its batch,
    /// durable with the next durable commit.
    Unsynced,
    /// By a redo record holding its job's [`Job::record`] ([`super::redo`]).
    Record,
    /// Only by a durable commit.
    Durable,
    /// Only by a durable commit, which records redb's allocator state (see
    /// `super::begin_write_quick_repair`).
    DurableQuickRepair,
}

/// Redo bytes since the last durable commit past which the next commit is
/// durable (and so holds their writes), so that what a crash leaves to redo
/// stays small, and so do redb's unsynced pages in memory.
const DURABLE_AFTER: u64 = 1 << 20;

pub type Completion = Box<dyn FnOnce(Result<(), StoreError>) + Send>;
pub type JobFn = Box<dyn FnOnce(&mut Batch<'_>) -> JobOutput + Send>;

/// The transaction a batch's jobs run in, and the issuance tables its redo
/// jobs share, opened once for them all (see [`IssueTables`]). They are
/// closed before any other job runs: redb opens a table once at a time.
pub struct Batch<'t> {
    txn: &'t WriteTransaction,
    issuing: Option<IssueTables<'t>>,
}

impl<'t> Batch<'t> {
    /// The transaction, for a job that opens its own tables.
    pub fn txn(&mut self) -> &'t WriteTransaction {
        self.issuing = None;
        self.txn
    }

    /// The issuance tables, shared with the batch's other issuances.
    pub fn issue_tables(&mut self) -> &mut IssueTables<'t> {
        let txn = self.txn;
        self.issuing.get_or_insert_with(|| IssueTables::new(txn))
    }
}

/// One queued write.
pub struct Job {
    /// Where its main row goes (a certificate's key). A batch runs its keyed
    /// jobs in key order, after the others: its writes then land at the
    /// end of each index in ascending order, which keeps redb's pages full
    /// (an insert just before the end of a full page splits it in half). The
    /// jobs of one batch are concurrent and none is answered before the
    /// commit, so any order among them is one they could have arrived in.
    pub order: Option<String>,
    /// An issuance's (or a lone audit entry's) encoded redo write (from
    /// `RedbStore::write_redo`), which makes it again after a crash: a batch
    /// of these alone is made durable by one redo record of them all, and
    /// carries its transaction on (see `publish_after`).
    pub record: Option<Vec<u8>>,
    /// A batch holding this job publishes its writes once it has answered
    /// them, not carrying them on for the next batch: a lone audit entry is
    /// mostly a read's, and the next read would otherwise publish them
    /// itself, first waiting for the writer (16 connections of audited reads
    /// were slower that way than with a durable commit each).
    pub publish_after: bool,
    pub run: JobFn,
}

/// Run every job of a batch in one transaction and commit it.
#[allow(clippy::type_complexity)]
pub(super) fn run_batch(
    shared: &Shared,
    held: &mut Option<WriteTransaction>,
    jobs: &mut Vec<Job>,
) -> Result<(Vec<JobOutput>, Result<(), StoreError>), StoreError> {
    let handle = shared.handle()?;
    let Handle::Rw(db, journal) = handle.as_ref() else {
        return Err(StoreError::ReadOnly);
    };
    if held.is_some()
        && (shared.publish_waiters.load(Ordering::SeqCst) > 0
            || jobs.iter().any(|j| j.record.is_none()))
    {
        // Published first, not carried on: a read waits for it, or a job
        // without a redo record may fail, and its abort must not take
        // answered writes with it (which would cost a reopen).
        shared.commit_carried(held)?;
    }
    let carried = held.take();
    let carries = carried.is_some();
    let txn = match carried {
        Some(txn) => txn,
        None => db.begin_write()?,
    };
    let records: Vec<Option<Vec<u8>>> = jobs.iter_mut().map(|j| j.record.take()).collect();
    // A batch of redo jobs alone has its redo record written before its
    // jobs run, its write to the disk under way while they do; each job
    // does what the record says (or refuses, as it will again if the record
    // is redone: see `redo::redo_batch`).
    let written = match prewrite(shared, journal, &records) {
        Ok(w) => w,
        Err(e) => {
            let _ = txn.abort();
            // The jobs, not run, are told when the store is marked broken.
            return Ok((Vec::new(), Err(e)));
        }
    };
    let mut outputs = Vec::with_capacity(jobs.len());
    let mut fatal: Option<StoreError> = None;
    let mut batch = Batch {
        txn: &txn,
        issuing: None,
    };
    for job in jobs.drain(..) {
        // Jobs catch their own panics; this keeps the writer alive whatever a
        // job does (its caller then sees the store closed).
        match std::panic::catch_unwind(AssertUnwindSafe(|| (job.run)(&mut batch))) {
            Ok(o) => {
                if o.fatal && fatal.is_none() {
                    fatal = Some(StoreError::Db(
                        "a write in this batch failed; nothing was committed".into(),
                    ));
                }
                outputs.push(o);
            }
            Err(_) => {
                tracing::error!("store: a write job panicked");
                fatal = Some(StoreError::Panicked);
            }
        }
    }
    // Its tables closed before the commit.
    drop(batch);
    let result = match fatal {
        Some(e) => {
            let _ = txn.abort();
            let poisoned = written.is_some_and(|(_, w)| journal.withdraw_redo(w));
            if carries {
                // Earlier batches' answered writes go with it: reopening the
                // store (which this error does) redoes them from the journal.
                Err(StoreError::Unavailable(format!(
                    "{e}; the store reopens to redo the writes answered before it"
                )))
            } else if poisoned {
                Err(StoreError::Unavailable(format!(
                    "{e}; the store reopens from its journal"
                )))
            } else {
                Err(e)
            }
        }
        None => commit(shared, journal, txn, &outputs, &records, written, held).map_err(|e| {
            match e {
                // Failed with earlier batches' writes: reopen (see above).
                StoreError::Unavailable(_) => e,
                e if carries => StoreError::Unavailable(format!(
                    "{e}; the store reopens to redo the writes answered before it"
                )),
                e => e,
            }
        }),
    };
    drop(handle);
    Ok((outputs, result))
}

/// The redo record of a batch of redo jobs alone (issuances, lone audit
/// entries), written (not synced) before its jobs run, and its number; `None` for any other batch, and for
/// one whose commit is to be durable anyway. The disk writes the record
/// while the jobs insert into the tables, so the sync after them waits for
/// less: `ca-bench` with the binary before this and this one alternating
/// (2026-12-07), 16 connections at a median 1.10× the rate (5 of 6 pairs
/// ahead), p99 6.0 against 7.0 ms, 7% less CPU per certificate; one
/// connection 1.05× the rate, 0.94× the p50 (7 of 8 pairs ahead each).
fn prewrite(
    shared: &Shared,
    journal: &JournalBackend,
    records: &[Option<Vec<u8>>],
) -> Result<Option<(u64, UnsyncedRedo)>, StoreError> {
    #[cfg(feature = "forensics")]
    if std::env::var_os(super::power_loss::UNSYNCED_ENV).is_some() {
        return Ok(None);
    }
    if records.is_empty()
        || records.iter().any(Option::is_none)
        || shared.durable_next.load(Ordering::Relaxed)
    {
        return Ok(None);
    }
    let seq = shared.redo_seq.load(Ordering::Relaxed) + 1;
    // (A write too large to describe is left to the commit, which refuses it.)
    let writes = records.iter().flatten().map(Vec::as_slice);
    let Ok(payload) = super::redo::record(seq, Holds::Tried, writes) else {
        return Ok(None);
    };
    let written = journal.write_redo(&payload).map_err(journal_failed)?;
    Ok(Some((seq, written)))
}

/// Commit a batch: durably, or, when every write in it is described by a
/// redo record, by that record alone, its transaction kept in `held` for
/// the next batch or a reader to commit, or for the batch itself once
/// answered (`Job::publish_after`; see [`super::publish`] and
/// [`super::redo`]). The record goes first: the writes become visible to
/// readers only once they are durable. `written`: the batch's record,
/// written before its jobs ran ([`prewrite`]), to be synced.
fn commit(
    shared: &Shared,
    journal: &JournalBackend,
    mut txn: WriteTransaction,
    outputs: &[JobOutput],
    job_records: &[Option<Vec<u8>>],
    written: Option<(u64, UnsyncedRedo)>,
    held: &mut Option<WriteTransaction>,
) -> Result<(), StoreError> {
    if let Some((seq, written)) = written {
        return match number_redo(&txn, seq) {
            Ok(()) => sync_carried(shared, journal, txn, seq, written, held),
            Err(e) => {
                let _ = txn.abort();
                if journal.withdraw_redo(written) {
                    return Err(StoreError::Unavailable(format!(
                        "{e}; the store reopens from its journal"
                    )));
                }
                Err(e)
            }
        };
    }
    let mut records = Vec::new();
    let due = shared.durable_next.load(Ordering::Relaxed);
    let (mut durable, mut quick_repair) = (due, due);
    for (o, record) in outputs.iter().zip(job_records) {
        match (&o.redo, record) {
            (JobRedo::Record, Some(r)) => records.push(r.as_slice()),
            // (Only a redo job answers Record, and it has one.)
            (JobRedo::Record, None) => durable = true,
            (JobRedo::Nothing | JobRedo::Unsynced, _) => {}
            (JobRedo::Durable, _) => durable = true,
            (JobRedo::DurableQuickRepair, _) => (durable, quick_repair) = (true, true),
        }
    }
    #[cfg(feature = "forensics")]
    if std::env::var_os(super::power_loss::UNSYNCED_ENV).is_some() {
        // The positive control of the power-loss test: commits not synced.
        txn.set_durability(redb::Durability::None)
            .map_err(|e| StoreError::Db(e.to_string()))?;
        txn.commit().map_err(StoreError::from)?;
        shared.all_published();
        return Ok(());
    }
    if durable || records.is_empty() {
        // (A batch that wrote nothing commits nothing to sync; one carried
        // on is published.)
        txn.set_durability(if durable {
            redb::Durability::Immediate
        } else {
            redb::Durability::None
        })
        .map_err(|e| StoreError::Db(e.to_string()))?;
        // The commit due after a MiB of redo records, and the background
        // writers', record the allocator state (see
        // `super::begin_write_quick_repair`).
        txn.set_quick_repair(quick_repair);
        txn.commit().map_err(StoreError::from)?;
        shared.all_published();
        if durable {
            shared.committed_durably(journal, quick_repair);
        }
        return Ok(());
    }
    let seq = shared.redo_seq.load(Ordering::Relaxed) + 1;
    let written = number_redo(&txn, seq)
        .and_then(|()| super::redo::record(seq, Holds::Made, records))
        .and_then(|payload| journal.write_redo(&payload).map_err(journal_failed));
    match written {
        Ok(written) => sync_carried(shared, journal, txn, seq, written, held),
        Err(e) => {
            let _ = txn.abort();
            Err(e)
        }
    }
}

/// Record in the transaction the number of the redo record that describes
/// its writes.
fn number_redo(txn: &WriteTransaction, seq: u64) -> Result<(), StoreError> {
    let mut meta = txn.open_table(META).map_err(StoreError::from)?;
    meta.insert(super::redo::REDO_SEQ, seq)?;
    Ok(())
}

/// Sync the batch's redo record, number `seq`: then its writes are durable,
/// answered once this returns, and published by the next commit or read
/// (or right after the answers: `Job::publish_after`).
fn sync_carried(
    shared: &Shared,
    journal: &JournalBackend,
    txn: WriteTransaction,
    seq: u64,
    written: UnsyncedRedo,
    held: &mut Option<WriteTransaction>,
) -> Result<(), StoreError> {
    let since_durable = match journal.sync_redo(written) {
        Ok(n) => n,
        Err(e) => {
            let _ = txn.abort();
            return Err(journal_failed(e));
        }
    };
    *held = Some(txn);
    shared.unpublished.store(true, Ordering::Release);
    shared.redo_seq.store(seq, Ordering::Release);
    if since_durable >= DURABLE_AFTER {
        shared.durable_next.store(true, Ordering::Relaxed);
    }
    Ok(())
}

/// A journal write or sync that failed: the store reopens from the journal.
fn journal_failed(e: std::io::Error) -> StoreError {
    StoreError::Unavailable(format!("writing the store's journal: {e}"))
}
