//! How the synchronous trait reaches the database: opening the store starts
//! its own runtime, connection pool and writer; reads wait on the caller's
//! thread for a pooled connection's answer, writes go through the node's
//! writer ([`super::writer`]).

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Transaction};
use tokio_postgres::NoTls;

use super::errors::{pool_err, with_causes};
use super::listener::listen;
use super::writer::{writer, Job, WriteJob};
use super::{schema, BoxFuture, Inner, PgOptions, PgStore, PgTls, R};
use crate::store::ca_cache::CaCache;
use crate::store::{AuditDraft, Committed, Store, StoreError, StoreFuture};

thread_local! {
    /// Set on the store runtime's own threads.
    static ON_STORE_THREAD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

impl PgStore {
    /// `synchronous_commit` as the last batch's transaction had it, read
    /// from PostgreSQL inside that transaction.
    #[cfg(test)]
    pub(crate) fn last_synchronous_commit(&self) -> Option<String> {
        self.inner
            .last_synchronous_commit
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Connect (retrying an unreachable database for `connect_wait`), apply
    /// the schema's migrations and start listening for the other nodes.
    pub fn open(opts: &PgOptions, boot_id: String) -> R<PgStore> {
        let mut config: tokio_postgres::Config = opts
            .url
            .parse()
            .map_err(|e| StoreError::Db(format!("the PostgreSQL URL: {e}")))?;
        let tls = opts.tls.as_ref().map(PgTls::connector).transpose()?;
        if tls.is_some() {
            // Verified TLS or nothing: no fallback a network could force.
            config.ssl_mode(tokio_postgres::config::SslMode::Require);
        } else if config.get_ssl_mode() == tokio_postgres::config::SslMode::Require {
            return Err(StoreError::Db(
                "sslmode=require needs [store] tls_ca_file (the CA the database's certificate chains to)".into(),
            ));
        } else {
            config.ssl_mode(tokio_postgres::config::SslMode::Disable);
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("pg-store")
            .on_thread_start(|| ON_STORE_THREAD.with(|f| f.set(true)))
            .enable_all()
            .build()
            .map_err(|e| StoreError::Db(e.to_string()))?;
        let handle = runtime.handle().clone();
        let manager_config = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = match &tls {
            Some(t) => Manager::from_config(config.clone(), t.clone(), manager_config),
            None => Manager::from_config(config.clone(), NoTls, manager_config),
        };
        let pool = Pool::builder(manager)
            .max_size(opts.pool_size.max(2))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(5)))
            .create_timeout(Some(Duration::from_secs(5)))
            .recycle_timeout(Some(Duration::from_secs(5)))
            .build()
            .map_err(|e| StoreError::Db(e.to_string()))?;
        let inner = Arc::new(Inner {
            pool,
            boot_id,
            commits: AtomicU64::new(0),
            writes: AtomicU64::new(0),
            writable: AtomicBool::new(true),
            closed: AtomicBool::new(false),
            hooks: RwLock::new(Vec::new()),
            observers: RwLock::new(Vec::new()),
            cache: CaCache::default(),
            leads: AtomicBool::new(false),
            #[cfg(test)]
            last_synchronous_commit: std::sync::Mutex::new(None),
        });
        let (jobs, queue) = tokio::sync::mpsc::unbounded_channel();
        handle.spawn(writer(inner.clone(), queue));
        let store = PgStore {
            inner: inner.clone(),
            runtime: Mutex::new(Some(runtime)),
            handle,
            jobs,
        };
        let wait = opts.connect_wait;
        let started = store.block(async move {
            let deadline = Instant::now() + wait;
            let mut client = loop {
                match inner.pool.get().await {
                    Ok(c) => break c,
                    Err(e) if Instant::now() < deadline => {
                        let error = with_causes(&e);
                        tracing::warn!(%error, "the database is not reachable yet; retrying in 2 s");
                        tokio::time::sleep(Duration::from_secs(2)).await;
                    }
                    Err(e) => {
                        return Err(StoreError::Unavailable(format!(
                            "the database was not reachable within {} s: {}",
                            wait.as_secs(),
                            with_causes(&e)
                        )))
                    }
                }
            };
            schema::migrate(&mut client).await?;
            Ok(())
        });
        if let Err(e) = started {
            store.close();
            return Err(e);
        }
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        store
            .handle
            .spawn(listen(store.inner.clone(), config, tls, ready_tx));
        // Wait for the first LISTEN (and the liveness lock), so no
        // notification sent after open returns is missed.
        let _ = ready_rx.recv_timeout(Duration::from_secs(10));
        Ok(store)
    }

    /// Run `fut` on the store's runtime and wait for it on this thread.
    pub(super) fn block<T: Send + 'static>(
        &self,
        fut: impl Future<Output = R<T>> + Send + 'static,
    ) -> R<T> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.handle.spawn(async move {
            let _ = tx.send(fut.await);
        });
        if ON_STORE_THREAD.with(|f| f.get()) {
            // A commit hook reading the store runs on one of the store's own
            // workers: hand its queue (where the read was just spawned) to
            // another thread while this one waits, or the read never runs.
            tokio::task::block_in_place(|| rx.recv()).map_err(|_| StoreError::Closed)?
        } else {
            rx.recv().map_err(|_| StoreError::Closed)?
        }
    }

    /// A read with a pooled connection, waited for on this thread.
    pub(super) fn read<T, F>(&self, f: F) -> R<T>
    where
        T: Send + 'static,
        F: for<'a> FnOnce(&'a deadpool_postgres::ClientWrapper) -> BoxFuture<'a, R<T>>
            + Send
            + 'static,
    {
        let inner = self.inner.clone();
        self.block(async move {
            if inner.closed.load(Ordering::Acquire) {
                return Err(StoreError::Closed);
            }
            let conn = inner.pool.get().await.map_err(pool_err)?;
            f(&conn).await
        })
    }

    /// A write on the store's runtime: it completes (and tells the hooks)
    /// even if the caller stops waiting.
    pub(super) fn write<T, F>(&self, audit: Option<AuditDraft>, op: F) -> StoreFuture<'static, T>
    where
        T: Send + 'static,
        F: for<'a> FnOnce(&'a Transaction<'a>) -> BoxFuture<'a, R<(T, Vec<Committed>)>>
            + Send
            + 'static,
    {
        self.queue(op, audit, false)
    }

    /// [`write`](Self::write) for a write that a crash may take after it
    /// is answered, because it is made again (see `WriteJob::lazy`): a batch
    /// of such writes alone commits without waiting for the WAL's flush.
    pub(super) fn write_lazily<T, F>(&self, op: F) -> StoreFuture<'static, T>
    where
        T: Send + 'static,
        F: for<'a> FnOnce(&'a Transaction<'a>) -> BoxFuture<'a, R<(T, Vec<Committed>)>>
            + Send
            + 'static,
    {
        self.queue(op, None, true)
    }

    fn queue<T, F>(&self, op: F, audit: Option<AuditDraft>, lazy: bool) -> StoreFuture<'static, T>
    where
        T: Send + 'static,
        F: for<'a> FnOnce(&'a Transaction<'a>) -> BoxFuture<'a, R<(T, Vec<Committed>)>>
            + Send
            + 'static,
    {
        let (reply, rx) = tokio::sync::oneshot::channel();
        let job: Box<dyn WriteJob> = Box::new(Job {
            op,
            audit,
            reply,
            lazy,
        });
        if let Err(refused) = self.jobs.send(job) {
            refused.0.fail(StoreError::Closed);
        }
        Box::pin(async move { rx.await.map_err(|_| StoreError::Closed)? })
    }

    pub(super) fn write_now<T, F>(&self, audit: Option<AuditDraft>, op: F) -> R<T>
    where
        T: Send + 'static,
        F: for<'a> FnOnce(&'a Transaction<'a>) -> BoxFuture<'a, R<(T, Vec<Committed>)>>
            + Send
            + 'static,
    {
        let fut = self.write(audit, op);
        self.block(fut)
    }
}
