//! How a write reaches a commit: queued for the writer thread's next group
//! commit, or committed on the caller's thread when it comes alone (see
//! [`super::writer`]); and the synchronous writes of start-up and offline
//! tools.

use std::sync::atomic::Ordering;

use redb::WriteTransaction;
use tokio::sync::oneshot;

use super::redo::Redo;
use super::tables::append_audit;
use super::writer::{self, Job, JobOutput, JobRedo};
use super::RedbStore;
use crate::store::{AuditDraft, Committed, StoreError};
use ca_core::audit_chain::AuditEntry;

impl RedbStore {
    /// Run `f` inside the next group commit, then append `audit` (when given)
    /// in the same transaction; resolve once that commit is durable. When
    /// the write comes alone it is committed here, before the future is first
    /// polled (this call then blocks for the sync). `f` must
    /// do every check before its first write: a refusal it returns must leave
    /// the transaction untouched. `events` says what a success changed.
    pub(super) fn write<T, F>(
        &self,
        audit: Option<AuditDraft>,
        f: F,
    ) -> impl std::future::Future<Output = Result<T, StoreError>> + Send + 'static
    where
        T: Send + 'static,
        F: FnOnce(&WriteTransaction) -> Result<(T, Vec<Committed>), StoreError> + Send + 'static,
    {
        self.write_keyed(None, audit, f)
    }

    /// [`write`](Self::write) whose durable commit records redb's allocator
    /// state: for the background writers, whose commits follow the requests'
    /// own durable writes (see
    /// [`begin_write_quick_repair`](super::begin_write_quick_repair)).
    pub(super) fn write_quick_repair<T, F>(
        &self,
        f: F,
    ) -> impl std::future::Future<Output = Result<T, StoreError>> + Send + 'static
    where
        T: Send + 'static,
        F: FnOnce(&WriteTransaction) -> Result<(T, Vec<Committed>), StoreError> + Send + 'static,
    {
        self.write_job(None, None, JobRedo::DurableQuickRepair, f)
    }

    /// [`write`](Self::write) for writes that need no sync of their own (see
    /// `JobRedo::Unsynced`): answered once committed, durable with the next
    /// durable commit.
    pub(super) fn write_unsynced<T, F>(
        &self,
        f: F,
    ) -> impl std::future::Future<Output = Result<T, StoreError>> + Send + 'static
    where
        T: Send + 'static,
        F: FnOnce(&WriteTransaction) -> Result<(T, Vec<Committed>), StoreError> + Send + 'static,
    {
        self.write_job(None, None, JobRedo::Unsynced, f)
    }

    /// [`write`](Self::write) for a job whose main row is `order` (see
    /// [`writer::Job::order`]).
    pub(super) fn write_keyed<T, F>(
        &self,
        order: Option<String>,
        audit: Option<AuditDraft>,
        f: F,
    ) -> impl std::future::Future<Output = Result<T, StoreError>> + Send + 'static
    where
        T: Send + 'static,
        F: FnOnce(&WriteTransaction) -> Result<(T, Vec<Committed>), StoreError> + Send + 'static,
    {
        self.write_job(order, audit, JobRedo::Durable, f)
    }

    fn write_job<T, F>(
        &self,
        order: Option<String>,
        audit: Option<AuditDraft>,
        redo: JobRedo,
        f: F,
    ) -> impl std::future::Future<Output = Result<T, StoreError>> + Send + 'static
    where
        T: Send + 'static,
        F: FnOnce(&WriteTransaction) -> Result<(T, Vec<Committed>), StoreError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel::<Result<T, StoreError>>();
        let run: writer::JobFn = Box::new(move |batch| {
            let txn = batch.txn();
            // A panicking write must not take the writer thread (and every
            // later write) with it: it fails its batch, and its caller hears so.
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let (v, events) = f(txn)?;
                if let Some(d) = &audit {
                    append_audit(txn, d)?;
                }
                Ok((v, events))
            }))
            .unwrap_or(Err(StoreError::Panicked));
            let fatal = matches!(&r, Err(e) if e.is_fatal());
            let (r, events) = match r {
                Ok((v, ev)) => (Ok(v), ev),
                Err(e) => (Err(e), Vec::new()),
            };
            JobOutput {
                fatal,
                done: answer(tx, r, fatal),
                events,
                // (Even a refusal: a job's refusals are not checked to have
                // written nothing.)
                redo,
            }
        });
        self.queue(
            Job {
                order,
                record: None,
                publish_after: false,
                run,
            },
            rx,
        )
    }

    /// A write described by `redo` (see [`super::redo`]), its main row
    /// `order`: made durable by a redo record when its whole batch can be.
    /// Encoded here, on the caller's thread, so the writer does not.
    /// Resolves to the audit entry it appended.
    pub(super) fn write_redo(
        &self,
        order: Option<String>,
        redo: Redo,
    ) -> impl std::future::Future<Output = Result<AuditEntry, StoreError>> + Send + 'static {
        let (tx, rx) = oneshot::channel::<Result<AuditEntry, StoreError>>();
        let publish_after = matches!(redo, Redo::Audit(_));
        let (record, encoding_failed) = match redo.encode() {
            Ok(record) => (Some(record), None),
            Err(e) => (None, Some(e)),
        };
        let run: writer::JobFn = Box::new(move |batch| {
            let (r, fatal) = match encoding_failed {
                // Before any write: this write fails, the batch goes on.
                Some(e) => (Err(e), false),
                None => {
                    let tables = batch.issue_tables();
                    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        redo.apply(tables)
                    }))
                    .unwrap_or(Err(StoreError::Panicked));
                    let fatal = matches!(&r, Err(e) if e.is_fatal());
                    (r, fatal)
                }
            };
            // Not fatal: refused before its first write.
            let redo = if r.is_ok() {
                JobRedo::Record
            } else {
                JobRedo::Nothing
            };
            JobOutput {
                fatal,
                done: answer(tx, r, fatal),
                events: Vec::new(),
                redo,
            }
        });
        self.queue(
            Job {
                order,
                record,
                publish_after,
                run,
            },
            rx,
        )
    }

    /// Submit `job`; the future resolves with what it answers on `rx`.
    fn queue<T: Send + 'static>(
        &self,
        job: Job,
        rx: oneshot::Receiver<Result<T, StoreError>>,
    ) -> impl std::future::Future<Output = Result<T, StoreError>> + Send + 'static {
        let sent = self.submit(job);
        let shared = self.shared.clone();
        async move {
            sent?;
            match rx.await {
                Ok(r) => r,
                // The job was dropped unrun: the store is broken.
                Err(_) if !shared.writable.load(Ordering::Acquire) => Err(StoreError::Unavailable(
                    "the store cannot write now; retrying".into(),
                )),
                Err(_) => Err(StoreError::Closed),
            }
        }
    }

    /// Commit `job` here if the store is idle, else queue it for the writer.
    fn submit(&self, job: Job) -> Result<(), StoreError> {
        let sender = self
            .sender
            .lock()
            .map_err(|_| StoreError::Closed)?
            .clone()
            .ok_or(StoreError::ReadOnly)?;
        let send = |job: Job| {
            self.shared.queued.fetch_add(1, Ordering::AcqRel);
            sender.send(job).map_err(|_| {
                self.shared.queued.fetch_sub(1, Ordering::AcqRel);
                StoreError::Closed
            })
        };
        self.shared.submitted.fetch_add(1, Ordering::AcqRel);
        match self.shared.try_commit_alone(job) {
            Ok(false) => Ok(()),
            Ok(true) => {
                self.wake_writer();
                Ok(())
            }
            Err(job) => send(job),
        }
    }

    /// After a commit (or a publish) on a caller's thread broke the store:
    /// wake the writer, which alone retries to reopen it (it drops this
    /// empty job unrun meanwhile).
    pub(super) fn wake_writer(&self) {
        let Ok(sender) = self.sender.lock() else {
            return;
        };
        let Some(sender) = sender.clone() else {
            return;
        };
        self.shared.queued.fetch_add(1, Ordering::AcqRel);
        let empty = Job {
            order: None,
            record: None,
            publish_after: false,
            run: Box::new(|_| JobOutput {
                fatal: false,
                done: Box::new(|_| {}),
                events: Vec::new(),
                redo: JobRedo::Nothing,
            }),
        };
        if sender.send(empty).is_err() {
            self.shared.queued.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// A synchronous write on the caller's thread (start-up and offline
    /// operations, and the rare key import of a running server), between
    /// two of the writer's commits. Not from a commit hook (which runs
    /// while a commit holds the lock this takes).
    pub(super) fn write_now<T>(
        &self,
        f: impl FnOnce(&WriteTransaction) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut held = self.shared.exclusive()?;
        // Published first: were `f` to fail, its abort must not take
        // answered writes with it.
        if let Err(e) = self.shared.publish_held(&mut held) {
            drop(held);
            self.wake_writer();
            return Err(e);
        }
        let handle = self.shared.handle()?;
        let mut txn = handle.rw()?.begin_write()?;
        // It settles a durable commit falling due (as `batch::commit`
        // would), so it records what that one would have.
        let records = self.shared.durable_next.load(Ordering::Relaxed);
        txn.set_quick_repair(records);
        match f(&txn) {
            Ok(v) => {
                txn.commit()?;
                if let writer::Handle::Rw(_, journal) = handle.as_ref() {
                    // Durable: so is every redo record before it.
                    self.shared.committed_durably(journal, records);
                }
                self.shared.count_commit(1);
                Ok(v)
            }
            Err(e) => {
                let _ = txn.abort();
                Err(e)
            }
        }
    }
}

/// A job's answer once its batch's commit is known: its own result, or the
/// commit's failure (its own error first when that spoilt the batch).
fn answer<T: Send + 'static>(
    tx: oneshot::Sender<Result<T, StoreError>>,
    r: Result<T, StoreError>,
    fatal: bool,
) -> writer::Completion {
    Box::new(move |commit: Result<(), StoreError>| {
        let out = match commit {
            Ok(()) => r,
            Err(e) => Err(match r {
                Err(inner) if fatal => inner,
                _ => e,
            }),
        };
        let _ = tx.send(out);
    })
}
