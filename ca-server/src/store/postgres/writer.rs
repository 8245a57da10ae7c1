//! The node's writer: group commit of every write queued meanwhile, in one
//! transaction under one lock of the audit head.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use deadpool_postgres::Transaction;

use super::listener::encode_event;
use super::{ops, pg_err, pool_err, BoxFuture, Inner, CHANNEL, R};
use crate::store::{AuditDraft, Committed, StoreError};

impl Inner {
    /// Commit a batch of writes in one transaction: lock the head once, run
    /// each write inside a savepoint (a refused one is rolled back alone) with
    /// its audit entry, notify the other nodes, commit once; then tell the
    /// hooks and answer each caller. Group commit: one lock and one WAL flush
    /// for every write that arrived while the previous batch committed.
    async fn run_batch(&self, batch: Vec<Box<dyn WriteJob>>) {
        let started = Instant::now();
        let n = batch.len();
        if self.closed.load(Ordering::Acquire) {
            for job in batch {
                job.fail(StoreError::Closed);
            }
            return;
        }
        // A batch of lazy writes alone need not wait for the WAL's flush:
        // the next commit that does wait flushes it too (see `lazy`).
        let lazy = batch.iter().all(|job| job.lazy());
        let mut pending = batch.into_iter();
        let mut done: Vec<JobDone> = Vec::with_capacity(n);
        let result: R<()> = async {
            let mut conn = self.pool.get().await.map_err(pool_err)?;
            let tx = ops::begin_write(&mut conn).await?;
            if lazy {
                tx.batch_execute("SET LOCAL synchronous_commit TO OFF")
                    .await
                    .map_err(pg_err)?;
            }
            #[cfg(test)]
            {
                let row = tx
                    .query_one("SELECT current_setting('synchronous_commit')", &[])
                    .await
                    .map_err(pg_err)?;
                *self
                    .last_synchronous_commit
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()) = Some(row.get(0));
            }
            let mut head = ops::lock_head(&tx).await?;
            let locked_at = head.0;
            let savepoints = n > 1;
            for job in pending.by_ref() {
                let d = if savepoints {
                    // Pipelined: the first poll queues SAVEPOINT on the
                    // connection ahead of the job's statements, so it costs
                    // no round trip of its own.
                    let mut savepoint = Box::pin(tx.batch_execute("SAVEPOINT w"));
                    let queued = std::future::poll_fn(|cx| {
                        std::task::Poll::Ready(savepoint.as_mut().poll(cx))
                    })
                    .await;
                    let d = job.run(&tx, &mut head).await;
                    let set = match queued {
                        std::task::Poll::Ready(r) => r,
                        std::task::Poll::Pending => savepoint.await,
                    };
                    if let Err(e) = set {
                        done.push(d);
                        return Err(pg_err(e));
                    }
                    d
                } else {
                    job.run(&tx, &mut head).await
                };
                if d.refused.is_some() && savepoints {
                    tx.batch_execute("ROLLBACK TO SAVEPOINT w")
                        .await
                        .map_err(pg_err)?;
                } else if let Some(e) = d.refused.clone() {
                    // Alone in its transaction: nothing to commit (the
                    // transaction rolls back as it is dropped); a fault is
                    // reported as the batch's outcome too.
                    done.push(d);
                    return if e.is_fatal() { Err(e) } else { Ok(()) };
                }
                done.push(d);
            }
            if head.0 != locked_at {
                ops::store_head(&tx, &head).await?;
            }
            let notify = tx
                .prepare_cached("SELECT pg_notify($1, $2)")
                .await
                .map_err(pg_err)?;
            let payloads: Vec<String> = done
                .iter()
                .filter(|d| d.refused.is_none())
                .flat_map(|d| d.events.iter())
                .map(|e| encode_event(&self.boot_id, e))
                .collect();
            for payload in &payloads {
                tx.execute(&notify, &[&CHANNEL, payload])
                    .await
                    .map_err(pg_err)?;
            }
            tx.commit().await.map_err(pg_err)?;
            Ok(())
        }
        .await;
        self.note(&result.as_ref().map(|_| ()));
        let observers = self
            .observers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for o in &observers {
            o(started.elapsed(), n);
        }
        match result {
            Ok(()) => {
                self.commits.fetch_add(1, Ordering::Relaxed);
                for d in done {
                    if d.refused.is_none() {
                        self.writes.fetch_add(1, Ordering::Relaxed);
                        self.tell(&d.events);
                    }
                    (d.finish)(Ok(()));
                }
            }
            Err(e) => {
                for d in done {
                    (d.finish)(Err(e.clone()));
                }
                for job in pending {
                    job.fail(e.clone());
                }
            }
        }
    }
}

/// How many writes one transaction carries at most.
pub(super) const MAX_BATCH: usize = 64;

/// The node's one writer: takes the writes queued meanwhile as one batch.
pub(super) async fn writer(
    inner: Arc<Inner>,
    mut jobs: tokio::sync::mpsc::UnboundedReceiver<Box<dyn WriteJob>>,
) {
    while let Some(first) = jobs.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(j) => batch.push(j),
                Err(_) => break,
            }
        }
        // Its own task: a write that panicked fails its batch (the callers
        // see the store closed), not every write after it.
        let runner = inner.clone();
        if let Err(e) = tokio::spawn(async move { runner.run_batch(batch).await }).await {
            tracing::error!(error = %e, "a batch of writes panicked; its callers were told the store is closed");
        }
    }
}

/// What one write left for the commit: its events, whether it was refused,
/// and how to answer its caller once the commit is known.
pub(super) struct JobDone {
    events: Vec<Committed>,
    refused: Option<StoreError>,
    finish: Box<dyn FnOnce(R<()>) + Send>,
}

/// One queued write, its result type erased.
pub(super) trait WriteJob: Send {
    fn run<'a>(
        self: Box<Self>,
        tx: &'a Transaction<'a>,
        head: &'a mut (u64, String),
    ) -> BoxFuture<'a, JobDone>;
    fn fail(self: Box<Self>, e: StoreError);
    /// Whether its commit may answer before the WAL is flushed: what it
    /// writes is made again if a crash takes it (events projected from the
    /// audit trail, with the mark that says how far they go).
    fn lazy(&self) -> bool;
}

pub(super) struct Job<T, F> {
    pub(super) op: F,
    pub(super) audit: Option<AuditDraft>,
    pub(super) reply: tokio::sync::oneshot::Sender<R<T>>,
    pub(super) lazy: bool,
}

impl<T, F> WriteJob for Job<T, F>
where
    T: Send + 'static,
    F: for<'a> FnOnce(&'a Transaction<'a>) -> BoxFuture<'a, R<(T, Vec<Committed>)>>
        + Send
        + 'static,
{
    fn run<'a>(
        self: Box<Self>,
        tx: &'a Transaction<'a>,
        head: &'a mut (u64, String),
    ) -> BoxFuture<'a, JobDone> {
        let Job {
            op, audit, reply, ..
        } = *self;
        Box::pin(async move {
            let refuse = |e: StoreError, reply: tokio::sync::oneshot::Sender<R<T>>| JobDone {
                events: Vec::new(),
                refused: Some(e.clone()),
                finish: Box::new(move |_| {
                    let _ = reply.send(Err(e));
                }),
            };
            let (v, events) = match op(tx).await {
                Ok(x) => x,
                Err(e) => return refuse(e, reply),
            };
            if let Some(d) = &audit {
                if let Err(e) = ops::append_audit(tx, head, d).await {
                    return refuse(e, reply);
                }
            }
            JobDone {
                events,
                refused: None,
                finish: Box::new(move |r| {
                    let _ = reply.send(r.map(|()| v));
                }),
            }
        })
    }

    fn fail(self: Box<Self>, e: StoreError) {
        let _ = self.reply.send(Err(e));
    }

    fn lazy(&self) -> bool {
        self.lazy
    }
}
