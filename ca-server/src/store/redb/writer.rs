//! Group commit: the writer thread batches whatever is queued into one
//! durable commit; each caller is answered only after the commit that holds
//! its write, and commit hooks run before that.
//!
//! When writes come one at a time (nothing queued, no commit under way,
//! recent commits held one write each, and no write came during the last
//! such commit) the caller commits its write on its own thread instead
//! ([`Shared::try_commit_alone`]): handing one write to the
//! writer thread costs two wake-ups across cores (the writer's, then the
//! caller's), which on this kind of virtual machine was a measurable share of
//! a lone client's latency and CPU. Under load writes keep going to the
//! writer, which batches them, so no async worker waits for a sync while
//! requests queue behind it (measured: doing so cost 16 connections 8–10% of
//! their rate). Either way a commit holds [`Shared::commit_lock`], so commits,
//! their hooks and their answers keep one order. (Concurrent writes may be
//! committed in either order, as before: none is answered before its commit.)
//! A lone write's caller thus blocks for its sync, and for a journal
//! checkpoint when one falls due (a few milliseconds, during which reads
//! wait on the journal whichever thread runs it).
//!
//! A batch of issuances (and lone audit entries) alone is answered before
//! redb commits it, which readers then wait for: see [`super::publish`].
//!
//! Recovery: after an I/O error (a full disk, a failing device) redb refuses
//! every later write until the database is reopened. Whichever thread's
//! commit failed then drops the handle; writes are answered `Unavailable`,
//! and the writer thread tries to reopen every [`REOPEN_EVERY`] (woken for it
//! when the failed commit was not its own), so writes succeed again as soon
//! as space returns, without a restart.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::time::{Duration, Instant};

use redb::{Database, ReadOnlyDatabase, ReadTransaction, ReadableDatabase, WriteTransaction};
use std::sync::mpsc;

use super::batch::run_batch;
pub use super::batch::{Completion, Job, JobFn, JobOutput, JobRedo};
use super::journal::JournalBackend;
use super::record::LOOK_EVERY;
use crate::store::ca_cache::CaCache;
use crate::store::{CommitHook, CommitObserver, Committed, StoreError};

/// Most writes one group commit takes.
const MAX_BATCH: usize = 4096;
/// How often a broken store tries to reopen.
pub const REOPEN_EVERY: Duration = Duration::from_millis(250);
/// Writes per commit, as a moving average in 1/256ths ([`Shared::batch_avg`]),
/// below which a write may be committed on its caller's thread: one writer
/// at a time gives 256 ([`ONE_WRITE`]); 16 connections on this machine gave 2 to 4 writes
/// per commit.
const ALONE_BELOW: u32 = 320;
/// One write per commit in [`Shared::batch_avg`]'s units: where a fresh store
/// starts, so its first lone writes go on their callers' threads (which the
/// full-disk test's lone-write case relies on).
const ONE_WRITE: u32 = 256;
const _: () = assert!(ONE_WRITE < ALONE_BELOW);

/// The open database, read-write (with its journal) or read-only (offline tools).
pub enum Handle {
    Rw(Database, Arc<JournalBackend>),
    Ro(ReadOnlyDatabase),
    /// Read-only, over a store a crash left writes to redo: redone in
    /// memory (see [`super::open::open_read_only`]).
    Scratch(Database),
}

impl Handle {
    pub fn begin_read(&self) -> Result<ReadTransaction, StoreError> {
        Ok(match self {
            Handle::Rw(d, _) | Handle::Scratch(d) => d.begin_read()?,
            Handle::Ro(d) => d.begin_read()?,
        })
    }

    pub fn rw(&self) -> Result<&Database, StoreError> {
        match self {
            Handle::Rw(d, _) => Ok(d),
            Handle::Ro(_) | Handle::Scratch(_) => Err(StoreError::ReadOnly),
        }
    }
}

/// What the writer and the readers share.
pub struct Shared {
    /// Held while a group commit runs, answers included (writer or caller),
    /// and while publishing. Holds the transaction carried on from the last
    /// batch, if any (see [`super::publish`]). Declared before `slot`, so that
    /// a store dropped unclosed drops its transaction before its database.
    pub(super) commit_lock: Mutex<Option<WriteTransaction>>,
    /// The transaction in `commit_lock` holds answered writes; set and
    /// cleared under `commit_lock`.
    pub(super) unpublished: AtomicBool,
    /// The number of the last redo record whose writes readers see.
    pub(super) published_seq: AtomicU64,
    /// Readers waiting for the holder of `commit_lock` to publish: the
    /// writer does so before its next batch, so a read waits for at most
    /// the batch under way, however busy the writer stays.
    pub(super) publish_waiters: AtomicUsize,
    /// Told whenever `published_seq` moves while readers wait.
    pub(super) published: (Mutex<()>, Condvar),
    pub path: PathBuf,
    /// None while closed or while reopening after an I/O error.
    slot: RwLock<Option<Arc<Handle>>>,
    closed: AtomicBool,
    pub commits: AtomicU64,
    pub writes: AtomicU64,
    pub writable: AtomicBool,
    /// Jobs sent to the writer and not yet taken from its queue.
    pub(super) queued: AtomicUsize,
    /// Writes submitted, lone ones included: a lone commit during which
    /// this moved had company (see [`Shared::try_commit_alone`]).
    pub(super) submitted: AtomicU64,
    /// Writes per commit, averaged over the last eight or so commits, in
    /// 1/256ths; written under `commit_lock`.
    batch_avg: AtomicU32,
    /// The next commit is to be durable (`batch::DURABLE_AFTER`); written under `commit_lock`.
    pub(super) durable_next: AtomicBool,
    /// When the last durable commit was made, if it did not record redb's
    /// allocator state (see [`super::record`]); written under `commit_lock`.
    pub(super) unrecorded: Mutex<Option<Instant>>,
    /// The last commit that was to record that state failed.
    pub(super) recording_failed: AtomicBool,
    /// The number of the last redo record appended (see [`super::redo`]);
    /// written under `commit_lock`.
    pub(super) redo_seq: AtomicU64,
    /// When the store broke or last tried to reopen.
    last_reopen: Mutex<Instant>,
    /// Why the store stopped being writable, for the errors reads give meanwhile.
    failure: RwLock<Option<String>>,
    hooks: RwLock<Vec<CommitHook>>,
    observers: RwLock<Vec<CommitObserver>>,
    /// CAs, aliases and whether any key is blocked, kept until a commit
    /// changes them (or the store is reopened).
    pub cache: CaCache,
}

impl Shared {
    pub fn new(path: PathBuf, handle: Handle) -> Shared {
        Shared {
            commit_lock: Mutex::new(None),
            unpublished: AtomicBool::new(false),
            published_seq: AtomicU64::new(0),
            publish_waiters: AtomicUsize::new(0),
            published: (Mutex::new(()), Condvar::new()),
            path,
            slot: RwLock::new(Some(Arc::new(handle))),
            closed: AtomicBool::new(false),
            commits: AtomicU64::new(0),
            writes: AtomicU64::new(0),
            writable: AtomicBool::new(true),
            queued: AtomicUsize::new(0),
            submitted: AtomicU64::new(0),
            last_reopen: Mutex::new(Instant::now()),
            batch_avg: AtomicU32::new(ONE_WRITE),
            durable_next: AtomicBool::new(false),
            unrecorded: Mutex::new(None),
            recording_failed: AtomicBool::new(false),
            redo_seq: AtomicU64::new(0),
            failure: RwLock::new(None),
            hooks: RwLock::new(Vec::new()),
            observers: RwLock::new(Vec::new()),
            cache: CaCache::default(),
        }
    }

    /// The database handle for one read (or a synchronous write).
    pub fn handle(&self) -> Result<Arc<Handle>, StoreError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(StoreError::Closed);
        }
        let slot = self.slot.read().unwrap_or_else(|p| p.into_inner());
        slot.clone().ok_or_else(|| {
            let failure = self.failure.read().unwrap_or_else(|p| p.into_inner());
            StoreError::Unavailable(match failure.as_deref() {
                Some(cause) => {
                    format!("the store is reopening after a write failure ({cause}); retrying")
                }
                None => "the store is reopening after a write failure; retrying".into(),
            })
        })
    }

    pub fn subscribe(&self, hook: CommitHook) {
        self.hooks
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(hook);
    }

    pub fn observe_commits(&self, hook: CommitObserver) {
        self.observers
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(hook);
    }

    fn observe(&self, took: Duration, writes: usize) {
        for o in self
            .observers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            o(took, writes);
        }
    }

    fn tell(&self, events: &[Committed]) {
        if events.is_empty() {
            return;
        }
        self.cache.invalidate(events);
        let hooks = self.hooks.read().unwrap_or_else(|p| p.into_inner()).clone();
        for e in events {
            for h in &hooks {
                h(e);
            }
        }
    }

    /// Release the database, waiting briefly for readers still holding it,
    /// so it is closed cleanly here: a process that exits while a reader
    /// (a background task's) still holds it leaves a file that must be
    /// repaired at the next open (and a read-only open refuses it).
    pub fn close(&self) {
        // Wait for a commit under way on a caller's thread; none starts after.
        let mut held = self.lock_commits();
        self.closed.store(true, Ordering::Release);
        self.make_redo_durable(&mut held);
        self.drop_handle();
    }

    /// The commit lock, and with it the transaction carried on, if any.
    pub(super) fn lock_commits(&self) -> std::sync::MutexGuard<'_, Option<WriteTransaction>> {
        // A hook that panicked poisoned it; what it guards is whole between
        // commits (a hook runs after its commit).
        self.commit_lock.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// One durable commit (of the carried transaction, if any), so that the
    /// journal may let go of its redo records at the close (it keeps them
    /// otherwise, for the next open). It records redb's allocator state
    /// (redb's own close does too; this one covers a process that dies while
    /// the close waits for readers).
    fn make_redo_durable(&self, held: &mut Option<WriteTransaction>) {
        let carried = held.take();
        // (Closed: no read waits for it.)
        self.unpublished.store(false, Ordering::Release);
        let slot = self.slot.read().unwrap_or_else(|p| p.into_inner()).clone();
        let Some(handle) = slot else { return };
        let Handle::Rw(db, journal) = handle.as_ref() else {
            return;
        };
        let committed = match carried {
            Some(mut txn) => {
                txn.set_quick_repair(true);
                Ok(txn)
            }
            None => super::begin_write_quick_repair(db).map_err(StoreError::from),
        }
        .and_then(|txn| txn.commit().map_err(StoreError::from));
        match committed {
            Ok(()) => self.committed_durably(journal, true),
            Err(e) => {
                tracing::warn!(error = %e, "store: the closing commit failed; the next open redoes what the journal holds")
            }
        }
    }

    /// A durable commit has just been made (under the commit lock): it holds
    /// every redo record's writes, so the journal may let go of them and no
    /// durable commit is due any more. `recorded`: it recorded redb's
    /// allocator state (see [`super::record`]).
    pub(super) fn committed_durably(&self, journal: &JournalBackend, recorded: bool) {
        self.durable_next.store(false, Ordering::Relaxed);
        self.note_durable_commit(recorded);
        if let Err(e) = journal.redo_durable() {
            // The journal is poisoned: the next write reopens the store.
            tracing::error!(error = %e, "store journal: after a durable commit");
        }
    }

    /// A group commit of `writes` calls succeeded (counted as the
    /// PostgreSQL store counts its transactions: the successful ones).
    pub(super) fn count_commit(&self, writes: u64) {
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.writes.fetch_add(writes, Ordering::Relaxed);
    }

    /// Stop writing after a failed commit: answer `Unavailable` until the
    /// writer thread reopens the store (which redoes what the journal holds).
    pub(super) fn break_store(&self, held: &mut Option<WriteTransaction>, e: &StoreError) {
        tracing::error!(error = %e, "store: write failed; writes answer Unavailable until the store reopens");
        // Aborted before its database goes.
        *held = None;
        self.writable.store(false, Ordering::Release);
        let cause = match e {
            StoreError::Unavailable(m) => m.clone(),
            other => other.to_string(),
        };
        *self.failure.write().unwrap_or_else(|p| p.into_inner()) = Some(cause);
        *self.last_reopen.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
        self.drop_handle();
        // Only now: a read let through before the handle went would read
        // the store without the answered writes just aborted.
        self.unpublished.store(false, Ordering::Release);
    }

    /// Drop the handle, waiting briefly for readers to let go of it.
    fn drop_handle(&self) {
        let taken = self.slot.write().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(arc) = taken {
            let deadline = Instant::now() + Duration::from_secs(2);
            while Arc::strong_count(&arc) > 1 && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(1));
            }
            drop(arc);
        }
    }

    /// Try to open the database again; true once it is back.
    fn reopen(&self) -> bool {
        if self.closed.load(Ordering::Acquire) {
            return false;
        }
        self.drop_handle();
        match super::open::open_database(&self.path) {
            Ok((db, journal, redo_seq)) => {
                self.redo_seq.store(redo_seq, Ordering::Relaxed);
                // A new journal counts its redo records from zero: what
                // made a durable commit due is behind it (redone by the
                // open in a durable commit, if any was left to redo).
                self.durable_next.store(false, Ordering::Relaxed);
                self.record_after_reopen();
                // The failed commit may have reached the disk all the same
                // (its last sync failing after its record was written): what
                // the reopened store says may differ from what was kept.
                self.cache.invalidate(&[Committed::Resync]);
                *self.slot.write().unwrap_or_else(|p| p.into_inner()) =
                    Some(Arc::new(Handle::Rw(db, journal)));
                // And so may what the hooks keep (the revocation service's
                // answers, the policies): told once the store reads again,
                // and before it takes writes, so that no write's own update
                // of what they keep can land before a re-read and be undone
                // by it (every write meanwhile waits: jobs for this thread,
                // `write_now` for `writable`).
                self.tell(&[Committed::Resync]);
                self.writable.store(true, Ordering::Release);
                *self.failure.write().unwrap_or_else(|p| p.into_inner()) = None;
                tracing::warn!("store: reopened after a write failure; writes succeed again");
                true
            }
            Err(e) => {
                tracing::debug!(error = %e, "store: still cannot reopen");
                false
            }
        }
    }
}

/// A copy of an error for every caller of a failed batch.
fn copy(e: &StoreError) -> StoreError {
    match e {
        StoreError::Unavailable(m) => StoreError::Unavailable(m.clone()),
        StoreError::Closed => StoreError::Closed,
        other => StoreError::Db(other.to_string()),
    }
}

/// The next job. While the store is healthy, waiting for one, and every
/// [`LOOK_EVERY`] (or sooner, when one falls due) making the commit that
/// records redb's allocator state if one is due (see [`super::record`]);
/// while it is broken, polling, so it also retries to reopen when no write
/// comes. (A caller whose own commit broke the store sends an empty job to
/// end the wait.)
fn next_job(shared: &Shared, rx: &mpsc::Receiver<Job>) -> Option<Job> {
    loop {
        if shared.writable.load(Ordering::Acquire) {
            let now = Instant::now();
            let wait = shared
                .record_due()
                .map_or(LOOK_EVERY, |due| due.saturating_duration_since(now))
                .min(LOOK_EVERY);
            match rx.recv_timeout(wait) {
                Ok(job) => return Some(job),
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if shared.record_is_due() {
                        shared.record_if_due(&mut shared.lock_commits());
                    }
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => return None,
            }
        }
        let due = {
            let mut last_try = shared.last_reopen.lock().unwrap_or_else(|p| p.into_inner());
            let due = last_try.elapsed() >= REOPEN_EVERY;
            if due {
                *last_try = Instant::now();
            }
            due
        };
        if due && shared.reopen() {
            continue;
        }
        match rx.try_recv() {
            Ok(job) => return Some(job),
            Err(mpsc::TryRecvError::Empty) => std::thread::sleep(Duration::from_millis(20)),
            Err(mpsc::TryRecvError::Disconnected) => return None,
        }
    }
}

pub fn writer_loop(shared: Arc<Shared>, rx: mpsc::Receiver<Job>) {
    while let Some(first) = next_job(&shared, &rx) {
        let mut jobs = vec![first];
        while jobs.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        shared.queued.fetch_sub(jobs.len(), Ordering::AcqRel);
        let mut held = shared.lock_commits();
        shared.record_with_batch_if_due();
        shared.commit_group(&mut held, jobs);
    }
    tracing::debug!("store writer stopped");
}

impl Shared {
    /// Commit `job` on the caller's thread if writes come one at a time:
    /// nothing queued for the writer, no commit under way, and recent
    /// commits of one write each. Gives the job back otherwise. The caller
    /// blocks for the commit (a sync) only when the writer thread would have
    /// done the same for its write alone. Returns true when this commit broke the
    /// store; the caller must then wake the writer (which alone retries to
    /// reopen) by sending it a job.
    pub(super) fn try_commit_alone(&self, job: Job) -> Result<bool, Job> {
        if self.queued.load(Ordering::Acquire) != 0
            || !self.writable.load(Ordering::Acquire)
            || self.batch_avg.load(Ordering::Relaxed) >= ALONE_BELOW
        {
            return Err(job);
        }
        let mut held = match self.commit_lock.try_lock() {
            Ok(guard) => guard,
            // A hook panicked in an earlier commit; the lock guards no data.
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return Err(job),
        };
        // `close` takes the lock before closing: a commit that got it after
        // that is refused before it runs.
        if self.closed.load(Ordering::Acquire) {
            return Err(job);
        }
        let before = self.submitted.load(Ordering::Acquire);
        let broke = self.commit_group(&mut held, vec![job]);
        if self.submitted.load(Ordering::Acquire) != before {
            // Another write came while this one synced: writes are not coming
            // one at a time, and a lone commit's sync holds up an async
            // worker (with 16 connections, ~18% of commits were lone ones
            // this way). Leave the next writes to the writer, which batches
            // them, until its commits shrink to one write again.
            self.batch_avg.store(2 * ALONE_BELOW, Ordering::Relaxed);
        }
        Ok(broke)
    }

    /// Hold off every other commit for a write made outside the writer's
    /// jobs (`RedbStore::write_now`): refused while the store is closed, or
    /// broken and not yet reopened with its hooks told. The carried
    /// transaction is the caller's to publish first.
    pub(super) fn exclusive(
        &self,
    ) -> Result<std::sync::MutexGuard<'_, Option<WriteTransaction>>, StoreError> {
        let guard = self.lock_commits();
        if self.closed.load(Ordering::Acquire) {
            return Err(StoreError::Closed);
        }
        if !self.writable.load(Ordering::Acquire) {
            return Err(StoreError::Unavailable(
                "the store cannot write now; retrying".into(),
            ));
        }
        Ok(guard)
    }

    /// Run `jobs` as one commit and answer each; the caller holds
    /// `commit_lock`, whose transaction is `held`. Returns true if the store
    /// broke at this commit.
    fn commit_group(&self, held: &mut Option<WriteTransaction>, mut jobs: Vec<Job>) -> bool {
        let n = jobs.len() as u64;
        let publish_after = jobs.iter().any(|j| j.publish_after);
        // Stable: unkeyed jobs first, in arrival order.
        jobs.sort_by(|a, b| a.order.cmp(&b.order));
        let was_broken = !self.writable.load(Ordering::Acquire);
        let result = if was_broken {
            Err(StoreError::Unavailable(
                "an earlier write failed (is the disk full?); retrying".into(),
            ))
        } else {
            let started = Instant::now();
            // Jobs it does not run stay in `jobs`, dropped (their callers
            // told) only once the store is marked broken below.
            let r = run_batch(self, held, &mut jobs);
            self.observe(started.elapsed(), n as usize);
            r
        };
        let (outputs, result) = match result {
            Ok((outputs, r)) => (outputs, r),
            Err(e) => (Vec::new(), Err(e)),
        };
        let mut broke = false;
        if let Err(e) = &result {
            if matches!(e, StoreError::Unavailable(_)) && !was_broken {
                self.break_store(held, e);
                broke = true;
            } else if !matches!(e, StoreError::Unavailable(_)) {
                tracing::error!(error = %e, "store: group commit failed");
            }
        }
        if result.is_ok() {
            self.count_commit(n);
        }
        let avg = self.batch_avg.load(Ordering::Relaxed);
        let this = u32::try_from(n)
            .unwrap_or(u32::MAX / 2)
            .saturating_mul(ONE_WRITE);
        self.batch_avg
            .store(avg - avg / 8 + this / 8, Ordering::Relaxed);
        if result.is_ok() {
            for o in &outputs {
                self.tell(&o.events);
            }
        }
        for o in outputs {
            (o.done)(match &result {
                Ok(()) => Ok(()),
                Err(e) => Err(copy(e)),
            });
        }
        if publish_after && result.is_ok() && self.publish_held(held).is_err() {
            // (As a reader's publish: the store is broken, its answered
            // writes redone from the journal when it reopens.)
            broke = true;
        }
        // Jobs never run (the store was broken) are dropped here: their
        // callers see their reply channel close while the store is not
        // writable, which `RedbStore::write` reports as Unavailable.
        drop(jobs);
        broke
    }
}
