//! The PostgreSQL backend: several ca-server nodes on one database.
//!
//! - **One order of writes for all nodes.** Every write transaction first
//!   locks the audit head row, so writes are serialised across nodes as the
//!   redb writer serialises them in one process. Each check sees every earlier
//!   commit whichever node made it, and the audit trail stays one hash chain.
//!   Serial uniqueness is also a primary key.
//! - **Effects reach every node.** A write that changes what other nodes cache
//!   (a revocation, a CA, an alias, a policy) sends a `NOTIFY` in its own
//!   transaction; each node LISTENs and tells its commit hooks, as it does for
//!   its own commits.
//! - **Node liveness.** Each node holds a session advisory lock named by its
//!   boot id on its listening connection, so another node can tell an intent
//!   whose node is still running from one whose node died.
//! - **Blocking reads on their own threads.** The trait's reads are
//!   synchronous; they run on the store's own small runtime, which owns the
//!   connection pool, and the caller waits for the answer.
//!
//! - **Group commit.** One writer per node ([`writer`]) takes the writes
//!   queued meanwhile into one transaction, each in a savepoint.
//!
//! The schema is in [`schema`]; records keep the redb backend's JSON. The
//! listening connection is in [`listener`], TLS in [`tls`], the write and
//! read statements in `ops` and `reads`, `ca-server migrate` in `import`.

mod import;
mod listener;
mod ops;
mod reads;
pub mod schema;
#[cfg(any(test, feature = "forensics"))]
pub mod testdb;
mod tls;
mod writer;

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use ca_core::audit_digest::AuditDigest;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Transaction};
use tokio_postgres::NoTls;

pub use self::listener::LISTENER_NAME;
use self::listener::{listen, liveness_key};
use self::reads::{all, opt, text_rec, Cached as _, SCAN_BATCH};
pub use self::tls::PgTls;
use self::writer::{writer, Job, WriteJob};
use super::ca_cache::CaCache;
use super::{
    AcmeAccount, AcmeAuthz, AcmeEabKey, AcmeOrder, AuditDraft, AuditEntry, AuditFilter, BlockedKey,
    CaChange, CaRecord, CertFilter, CertRecord, CertStatus, CertWithDer, CommitHook,
    CommitObserver, Committed, CrlEntries, CrlMeta, EventRecord, IdemRecord, InFlightTokens,
    KeyMeta, MarkAdvance, NewCaRecord, PolicyRows, ReserveOutcome, Revocation, Rewrap,
    SerialStatus, Store, StoreError, StoreFuture, StoreStats, Verdict, WebhookRecord,
};

type R<T> = Result<T, StoreError>;
type BoxFuture<'a, T> = std::pin::Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The channel every node LISTENs on.
const CHANNEL: &str = "ca_store";
/// Advisory lock namespace for node liveness (the second key is the boot id's hash).
const LIVENESS_NS: i32 = 0x6361_6c76; // "calv"
/// The delivery role's advisory lock (held by the leading node's listener).
const LEADER_LOCK: (i32, i32) = (0x6361_6c64, 1); // "cald"
/// An intent of another live node younger than this is taken as still signing.
const FOREIGN_INTENT_GRACE_SECS: i64 = 120;
/// Most rows one certificate page scans before returning a cursor.
const MAX_SCAN: usize = 20_000;

thread_local! {
    /// Set on the store runtime's own threads.
    static ON_STORE_THREAD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// How to reach the database.
#[derive(Clone, Debug)]
pub struct PgOptions {
    /// `postgres://user:password@host:port/db` (or a key=value string).
    pub url: String,
    pub pool_size: usize,
    /// How long start-up keeps retrying an unreachable database.
    pub connect_wait: Duration,
    /// TLS to the database; without it, connections are plaintext.
    pub tls: Option<PgTls>,
}

pub fn json<T: serde::Serialize>(v: &T) -> R<Vec<u8>> {
    serde_json::to_vec(v).map_err(|e| StoreError::Corrupt(e.to_string()))
}

pub fn unjson<T: for<'de> serde::Deserialize<'de>>(b: &[u8]) -> R<T> {
    serde_json::from_slice(b).map_err(|e| StoreError::Corrupt(e.to_string()))
}

pub fn status_code(s: CertStatus) -> i16 {
    match s {
        CertStatus::Reserved => 0,
        CertStatus::Issued => 1,
        CertStatus::Revoked => 2,
    }
}

/// PostgreSQL's errors, sorted into what the caller can do about them: the
/// database unreachable, shutting down or out of resources is `Unavailable`
/// (503, retry); anything else is a fault.
pub fn pg_err(e: tokio_postgres::Error) -> StoreError {
    if let Some(db) = e.as_db_error() {
        let code = db.code().code();
        let transient = ["08", "53", "57", "58"].iter().any(|c| code.starts_with(c))
            || code == "40001"
            || code == "40P01";
        return if transient {
            StoreError::Unavailable(format!("the database: {}", db.message()))
        } else if code == "23505" {
            StoreError::Conflict(db.message().to_string())
        } else {
            StoreError::Db(format!("{code}: {}", db.message()))
        };
    }
    let io = std::error::Error::source(&e).is_some_and(|s| s.is::<std::io::Error>());
    if e.is_closed() || io {
        StoreError::Unavailable("the database connection was lost".into())
    } else {
        StoreError::Db(e.to_string())
    }
}

/// An error and its causes, so "TLS handshake failed" says why (an
/// unknown issuer, a name mismatch).
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let next = c.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        cause = c.source();
    }
    text
}

fn pool_err(e: deadpool_postgres::PoolError) -> StoreError {
    match e {
        deadpool_postgres::PoolError::Backend(e) => pg_err(e),
        deadpool_postgres::PoolError::Closed => StoreError::Closed,
        other => StoreError::Unavailable(format!("no database connection: {other}")),
    }
}

struct Inner {
    pool: Pool,
    boot_id: String,
    commits: AtomicU64,
    writes: AtomicU64,
    writable: AtomicBool,
    closed: AtomicBool,
    hooks: RwLock<Vec<CommitHook>>,
    observers: RwLock<Vec<CommitObserver>>,
    /// CAs and aliases, kept until a commit (this node's, or another's by
    /// notification) changes them, so a node is as fresh as its notifications.
    cache: CaCache,
    /// Whether this node's listening session holds the delivery role.
    leads: AtomicBool,
}

impl Inner {
    fn invalidate(&self, events: &[Committed]) {
        self.cache.invalidate(events);
    }

    fn tell(&self, events: &[Committed]) {
        if events.is_empty() {
            return;
        }
        self.invalidate(events);
        let hooks = self.hooks.read().unwrap_or_else(|p| p.into_inner()).clone();
        for e in events {
            for h in &hooks {
                h(e);
            }
        }
    }

    fn note(&self, r: &Result<(), &StoreError>) {
        match r {
            Ok(()) => self.writable.store(true, Ordering::Release),
            Err(StoreError::Unavailable(_)) => self.writable.store(false, Ordering::Release),
            Err(_) => {}
        }
    }
}

pub struct PgStore {
    inner: Arc<Inner>,
    runtime: Mutex<Option<tokio::runtime::Runtime>>,
    handle: tokio::runtime::Handle,
    /// The queue of the node's writer (group commit).
    jobs: tokio::sync::mpsc::UnboundedSender<Box<dyn WriteJob>>,
}

impl PgStore {
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
    fn block<T: Send + 'static>(&self, fut: impl Future<Output = R<T>> + Send + 'static) -> R<T> {
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

    /// Every CA, from the cache or read.
    fn cas(&self) -> R<Arc<Vec<CaRecord>>> {
        self.inner
            .cache
            .cas(|| self.read(|c| Box::pin(all(c, "SELECT rec FROM cas ORDER BY id"))))
    }

    /// Every alias, from the cache or read.
    fn aliases(&self) -> R<Arc<Vec<(String, String)>>> {
        self.inner.cache.aliases(|| {
            self.read(|c| {
                Box::pin(async move {
                    let rows = c
                        .q_all("SELECT alias, ca_id FROM aliases ORDER BY alias", &[])
                        .await
                        .map_err(pg_err)?;
                    Ok(rows
                        .iter()
                        .map(|r| (r.get::<_, String>(0), r.get::<_, String>(1)))
                        .collect::<Vec<_>>())
                })
            })
        })
    }

    /// A read with a pooled connection, waited for on this thread.
    fn read<T, F>(&self, f: F) -> R<T>
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
    fn write<T, F>(&self, audit: Option<AuditDraft>, op: F) -> StoreFuture<'static, T>
    where
        T: Send + 'static,
        F: for<'a> FnOnce(&'a Transaction<'a>) -> BoxFuture<'a, R<(T, Vec<Committed>)>>
            + Send
            + 'static,
    {
        let (reply, rx) = tokio::sync::oneshot::channel();
        let job: Box<dyn WriteJob> = Box::new(Job { op, audit, reply });
        if let Err(refused) = self.jobs.send(job) {
            refused.0.fail(StoreError::Closed);
        }
        Box::pin(async move { rx.await.map_err(|_| StoreError::Closed)? })
    }

    fn write_now<T, F>(&self, audit: Option<AuditDraft>, op: F) -> R<T>
    where
        T: Send + 'static,
        F: for<'a> FnOnce(&'a Transaction<'a>) -> BoxFuture<'a, R<(T, Vec<Committed>)>>
            + Send
            + 'static,
    {
        let fut = self.write(audit, op);
        self.block(fut)
    }

    /// Certificates in key order from `after`, a batch at a time, filtered
    /// on the caller's thread.
    fn cert_batch(&self, ca: Option<String>, after: String) -> R<Vec<(String, CertRecord)>> {
        self.read(move |c| {
            Box::pin(async move {
                let rows = c
                    .q_all(
                        "SELECT key, rec FROM certs WHERE ($1::text IS NULL OR ca_id = $1) \
                         AND key > $2 ORDER BY key LIMIT $3",
                        &[&ca, &after, &SCAN_BATCH],
                    )
                    .await
                    .map_err(pg_err)?;
                rows.iter()
                    .map(|r| {
                        Ok((
                            r.get::<_, String>(0),
                            unjson(r.get::<_, &str>(1).as_bytes())?,
                        ))
                    })
                    .collect()
            })
        })
    }

    /// Issued (and, with `revoked`, revoked) certificates by (notAfter, key)
    /// after `from`, before `before`, a batch at a time.
    fn expiry_batch(
        &self,
        ca: Option<String>,
        from: (i64, String),
        before: i64,
        revoked: bool,
        limit: i64,
    ) -> R<Vec<(i64, String, CertRecord)>> {
        self.read(move |c| {
            Box::pin(async move {
                let sql = if revoked {
                    "SELECT not_after, key, rec FROM certs WHERE status <> 0 \
                     AND (not_after, key) > ($1, $2) AND not_after < $3 \
                     AND ($4::text IS NULL OR ca_id = $4) ORDER BY not_after, key LIMIT $5"
                } else {
                    "SELECT not_after, key, rec FROM certs WHERE status = 1 \
                     AND (not_after, key) > ($1, $2) AND not_after < $3 \
                     AND ($4::text IS NULL OR ca_id = $4) ORDER BY not_after, key LIMIT $5"
                };
                let rows = c
                    .q_all(sql, &[&from.0, &from.1, &before, &ca, &limit])
                    .await
                    .map_err(pg_err)?;
                rows.iter()
                    .map(|r| {
                        Ok((
                            r.get::<_, i64>(0),
                            r.get::<_, String>(1),
                            unjson(r.get::<_, &str>(2).as_bytes())?,
                        ))
                    })
                    .collect()
            })
        })
    }

    /// Whether the node that made `boot` still holds its liveness lock.
    async fn node_alive(tx: &Transaction<'_>, boot: &str) -> R<bool> {
        let row = tx
            .query_opt(
                "SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND classid = $1::int4::oid \
                 AND objid = $2::int4::oid AND objsubid = 2 AND granted",
                &[&LIVENESS_NS, &liveness_key(boot)],
            )
            .await
            .map_err(pg_err)?;
        Ok(row.is_some())
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        self.close();
    }
}

impl Store for PgStore {
    fn boot_id(&self) -> &str {
        &self.inner.boot_id
    }

    fn stats(&self) -> StoreStats {
        StoreStats {
            commits: self.inner.commits.load(Ordering::Relaxed),
            writes: self.inner.writes.load(Ordering::Relaxed),
            writable: self.inner.writable.load(Ordering::Acquire)
                && !self.inner.closed.load(Ordering::Acquire),
        }
    }

    fn close(&self) {
        self.inner.closed.store(true, Ordering::Release);
        self.inner.pool.close();
        let rt = self.runtime.lock().ok().and_then(|mut r| r.take());
        if let Some(rt) = rt {
            rt.shutdown_background();
        }
    }

    fn subscribe(&self, hook: CommitHook) {
        self.inner
            .hooks
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(hook);
    }

    fn observe_commits(&self, hook: CommitObserver) {
        self.inner
            .observers
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(hook);
    }

    fn get_ca(&self, id: &str) -> R<Option<CaRecord>> {
        Ok(self.cas()?.iter().find(|c| c.id == id).cloned())
    }

    fn list_cas(&self) -> R<Vec<CaRecord>> {
        Ok(self.cas()?.as_ref().clone())
    }

    fn create_ca(&self, new: NewCaRecord, audit: AuditDraft) -> StoreFuture<'_, CaRecord> {
        self.write(Some(audit), move |tx| {
            Box::pin(async move {
                ops::create_ca(tx, &new).await?;
                let ev = vec![Committed::CaChanged {
                    ca_id: new.ca.id.clone(),
                }];
                Ok((new.ca, ev))
            })
        })
    }

    fn update_ca(
        &self,
        id: &str,
        change: CaChange,
        audit: AuditDraft,
    ) -> StoreFuture<'_, CaRecord> {
        let id = id.to_string();
        self.write(Some(audit), move |tx| {
            Box::pin(async move {
                let rec = ops::update_ca(tx, &id, change).await?;
                Ok((rec, vec![Committed::CaChanged { ca_id: id }]))
            })
        })
    }

    fn get_alias(&self, alias: &str) -> R<Option<String>> {
        Ok(self
            .aliases()?
            .iter()
            .find(|(a, _)| a == alias)
            .map(|(_, id)| id.clone()))
    }

    fn list_aliases(&self) -> R<Vec<(String, String)>> {
        Ok(self.aliases()?.as_ref().clone())
    }

    fn put_alias(&self, alias: &str, ca_id: &str, audit: AuditDraft) -> StoreFuture<'_, ()> {
        let (a, c) = (alias.to_string(), ca_id.to_string());
        self.write(Some(audit), move |tx| {
            Box::pin(async move {
                ops::put_alias(tx, &a, &c).await?;
                Ok(((), vec![Committed::AliasChanged { alias: a }]))
            })
        })
    }

    fn rotate_alias(
        &self,
        alias: &str,
        old_id: &str,
        new: NewCaRecord,
        audit: AuditDraft,
    ) -> StoreFuture<'_, CaRecord> {
        let (a, o) = (alias.to_string(), old_id.to_string());
        self.write(Some(audit), move |tx| {
            Box::pin(async move {
                if ops::get_alias(tx, &a).await?.as_deref() != Some(o.as_str()) {
                    return Err(StoreError::Conflict(format!(
                        "alias {a} moved while rotating"
                    )));
                }
                let old = ops::get_ca(tx, &o)
                    .await?
                    .ok_or_else(|| StoreError::NotFound(format!("no CA {o}")))?;
                if old.status != super::CaStatus::Active {
                    return Err(StoreError::Conflict(format!("CA {o} is not ACTIVE")));
                }
                ops::create_ca(tx, &new).await?;
                let now = crate::clock::now().unix_timestamp();
                let retired = ops::update_ca(
                    tx,
                    &o,
                    Box::new(move |r| {
                        r.status = super::CaStatus::Retired;
                        r.updated_at = now;
                        Ok(())
                    }),
                )
                .await?;
                ops::put_alias(tx, &a, &new.ca.id).await?;
                let ev = vec![
                    Committed::CaChanged { ca_id: o },
                    Committed::CaChanged {
                        ca_id: new.ca.id.clone(),
                    },
                    Committed::AliasChanged { alias: a },
                ];
                Ok((retired, ev))
            })
        })
    }

    fn reserve(
        &self,
        intent: CertRecord,
        token: Option<(String, IdemRecord)>,
        in_flight: Arc<InFlightTokens>,
    ) -> StoreFuture<'_, ReserveOutcome> {
        let boot = self.inner.boot_id.clone();
        self.write(None, move |tx| {
            Box::pin(async move {
                let busy = token.as_ref().is_some_and(|(t, _)| in_flight.others(t));
                // A token's intent made by another node: still signing if
                // that node is alive and the intent is recent.
                let mut boot_for_check = boot.clone();
                let mut foreign_busy = false;
                if let Some((t, _)) = &token {
                    let prev: Option<IdemRecord> =
                        opt_tx(tx, "SELECT rec FROM idempotency WHERE token = $1", t).await?;
                    if let Some(prev) = prev {
                        let key = super::cert_key(&prev.ca_id, &prev.serial);
                        let rec: Option<CertRecord> =
                            opt_tx(tx, "SELECT rec FROM certs WHERE key = $1", &key).await?;
                        if let Some(rec) =
                            rec.filter(|r| r.status == CertStatus::Reserved && r.boot_id != boot)
                        {
                            let age = crate::clock::now().unix_timestamp() - rec.created_at;
                            if age < FOREIGN_INTENT_GRACE_SECS
                                && PgStore::node_alive(tx, &rec.boot_id).await?
                            {
                                foreign_busy = true;
                                boot_for_check = rec.boot_id.clone();
                            }
                        }
                    }
                }
                let out = ops::reserve(
                    tx,
                    &intent,
                    token.as_ref().map(|(t, i)| (t.as_str(), i)),
                    &boot_for_check,
                    busy || foreign_busy,
                )
                .await?;
                Ok((out, Vec::new()))
            })
        })
    }

    fn issue(
        &self,
        rec: CertRecord,
        der: Vec<u8>,
        key_sha256: String,
        audit: AuditDraft,
    ) -> StoreFuture<'_, ()> {
        self.write(Some(audit), move |tx| {
            Box::pin(async move {
                ops::issue(tx, &rec, &der, &key_sha256).await?;
                Ok(((), Vec::new()))
            })
        })
    }

    fn revoke(
        &self,
        ca_id: &str,
        serial: &str,
        revocation: Revocation,
        audit: AuditDraft,
    ) -> StoreFuture<'_, CertRecord> {
        let (c, s) = (ca_id.to_string(), serial.to_string());
        self.write(Some(audit), move |tx| {
            Box::pin(async move {
                let rec = ops::revoke(tx, &c, &s, revocation).await?;
                Ok((
                    rec,
                    vec![Committed::Revoked {
                        ca_id: c,
                        serial: s,
                    }],
                ))
            })
        })
    }

    fn import_certs(
        &self,
        certs: Vec<(CertRecord, Vec<u8>)>,
        audit: AuditDraft,
    ) -> StoreFuture<'_, u64> {
        self.write(Some(audit), move |tx| {
            Box::pin(async move { Ok((ops::import_certs(tx, &certs).await?, Vec::new())) })
        })
    }

    fn get_cert(&self, ca_id: &str, serial: &str) -> R<Option<CertWithDer>> {
        let (c, s) = (ca_id.to_string(), serial.to_string());
        self.read(move |cl| Box::pin(async move { reads::get_cert(cl, &c, &s).await }))
    }

    fn ca_of_serial(&self, serial: &str) -> R<Option<String>> {
        let s = serial.to_string();
        self.read(move |c| {
            Box::pin(async move {
                let row = c
                    .q_opt("SELECT ca_id FROM serials WHERE serial = $1", &[&s])
                    .await
                    .map_err(pg_err)?;
                Ok(row.map(|r| r.get(0)))
            })
        })
    }

    fn blocked_key(&self, key_sha256: &str) -> R<Option<BlockedKey>> {
        let k = key_sha256.to_string();
        self.read(move |c| {
            Box::pin(async move {
                opt(c, "SELECT rec FROM blocked_keys WHERE key_sha256 = $1", &k).await
            })
        })
    }

    fn serial_status(&self, ca_id: &str, serial: &str) -> R<SerialStatus> {
        let (c, s) = (ca_id.to_string(), serial.to_string());
        self.read(move |cl| Box::pin(async move { reads::serial_status(cl, &c, &s).await }))
    }

    fn count_certs(&self) -> R<u64> {
        self.read(|c| {
            Box::pin(async move {
                let n: i64 = c
                    .q_one("SELECT count(*) FROM certs", &[])
                    .await
                    .map_err(pg_err)?
                    .get(0);
                Ok(n as u64)
            })
        })
    }

    fn snapshot(
        &self,
        _out: &std::path::Path,
        _files: &[(String, Vec<u8>)],
    ) -> R<super::SnapshotCounts> {
        Err(StoreError::Conflict(
            "a PostgreSQL store is backed up by PostgreSQL (pg_dump, or base backups with WAL archiving); see OPERATIONS.md".into(),
        ))
    }

    fn count_expiring(&self, from: i64, before: i64) -> R<u64> {
        self.read(move |c| {
            Box::pin(async move {
                let n: i64 = c
                    .q_one(
                        "SELECT count(*) FROM certs WHERE status = 1 AND not_after >= $1 AND not_after < $2",
                        &[&from, &before],
                    )
                    .await
                    .map_err(pg_err)?
                    .get(0);
                Ok(n as u64)
            })
        })
    }

    fn list_certs(
        &self,
        f: &CertFilter,
        wanted: &dyn Fn(&CertRecord) -> bool,
    ) -> R<(Vec<CertRecord>, Option<String>)> {
        use crate::store::redb::{decode_expiry_cursor, decode_key_cursor, encode_cursor};
        let limit = f.limit.max(1);
        let mut out = Vec::new();
        let mut scanned = 0usize;
        if let Some(before) = f.expiring_before {
            let mut from = match &f.cursor {
                Some(c) => {
                    let (t, k) = decode_expiry_cursor(c)?;
                    (i64::try_from(t).unwrap_or(i64::MAX), k)
                }
                None => (i64::MIN, String::new()),
            };
            loop {
                let batch =
                    self.expiry_batch(f.ca_id.clone(), from.clone(), before, true, SCAN_BATCH)?;
                if batch.is_empty() {
                    return Ok((out, None));
                }
                for (t, key, rec) in batch {
                    from = (t, key.clone());
                    scanned += 1;
                    if scanned > MAX_SCAN {
                        return Ok((out, Some(encode_cursor(&format!("e{t}|{key}")))));
                    }
                    if !wanted(&rec) {
                        continue;
                    }
                    out.push(rec);
                    if out.len() == limit {
                        return Ok((out, Some(encode_cursor(&format!("e{t}|{key}")))));
                    }
                }
            }
        }
        let mut after = match &f.cursor {
            Some(c) => decode_key_cursor(c)?,
            None => String::new(),
        };
        loop {
            let batch = self.cert_batch(f.ca_id.clone(), after.clone())?;
            if batch.is_empty() {
                return Ok((out, None));
            }
            for (key, rec) in batch {
                after = key.clone();
                scanned += 1;
                if scanned > MAX_SCAN {
                    return Ok((out, Some(encode_cursor(&format!("k{key}")))));
                }
                if !wanted(&rec) {
                    continue;
                }
                out.push(rec);
                if out.len() == limit {
                    return Ok((out, Some(encode_cursor(&format!("k{key}")))));
                }
            }
        }
    }

    fn crl_entries(&self, ca_id: &str, expired_before: Option<i64>) -> R<CrlEntries> {
        let c = ca_id.to_string();
        self.read(move |cl| {
            Box::pin(async move { reads::crl_entries(cl, &c, expired_before).await })
        })
    }

    fn crl_meta(&self, ca_id: &str) -> R<Option<CrlMeta>> {
        let c = ca_id.to_string();
        self.read(move |cl| {
            Box::pin(async move { opt(cl, "SELECT rec FROM crl_meta WHERE ca_id = $1", &c).await })
        })
    }

    fn put_crl_meta(
        &self,
        ca_id: &str,
        meta: CrlMeta,
        der: Vec<u8>,
        prune: Vec<String>,
        audit: AuditDraft,
    ) -> StoreFuture<'_, ()> {
        let id = ca_id.to_string();
        self.write(Some(audit), move |tx| {
            Box::pin(async move {
                let number = meta.crl_number;
                ops::put_crl_meta(tx, &id, &meta, &der, &prune).await?;
                Ok(((), vec![Committed::CrlPublished { ca_id: id, number }]))
            })
        })
    }

    fn crl_der(&self, ca_id: &str, number: u64) -> R<Option<Vec<u8>>> {
        let c = ca_id.to_string();
        let n = i64::try_from(number).unwrap_or(i64::MAX);
        self.read(move |cl| {
            Box::pin(async move {
                let row = cl
                    .query_opt(
                        "SELECT der FROM crls WHERE ca_id = $1 AND number = $2",
                        &[&c, &n],
                    )
                    .await
                    .map_err(pg_err)?;
                Ok(row.map(|r| r.get(0)))
            })
        })
    }

    fn complete_crl_entries(&self) -> StoreFuture<'_, u64> {
        // Every revocation in a PostgreSQL store wrote its entry in its own
        // transaction (and `migrate` copies a completed redb store).
        Box::pin(async { Ok(0) })
    }

    fn list_policies(&self) -> R<Option<PolicyRows>> {
        self.read(|c| Box::pin(reads::list_policies(c)))
    }

    fn put_policy(&self, id: &str, json: Vec<u8>, audit: AuditDraft) -> StoreFuture<'_, ()> {
        let id = id.to_string();
        self.write(Some(audit), move |tx| {
            Box::pin(async move {
                ops::put_policy(tx, &id, &json).await?;
                Ok(((), vec![Committed::PolicyChanged { id }]))
            })
        })
    }

    fn delete_policy(&self, id: &str, audit: AuditDraft) -> StoreFuture<'_, bool> {
        let id = id.to_string();
        self.write(Some(audit), move |tx| {
            Box::pin(async move {
                ops::policies_touched(tx).await?;
                let n = tx
                    .execute("DELETE FROM policies WHERE id = $1", &[&id])
                    .await
                    .map_err(pg_err)?;
                Ok((n > 0, vec![Committed::PolicyChanged { id }]))
            })
        })
    }

    fn key_meta(&self) -> R<KeyMeta> {
        self.read(|c| Box::pin(reads::key_meta(c)))
    }

    fn set_key_meta(&self, meta: &KeyMeta, audit: AuditDraft) -> R<()> {
        let meta = meta.clone();
        self.write_now(Some(audit), move |tx| {
            Box::pin(async move {
                ops::write_key_meta(tx, &meta).await?;
                Ok(((), Vec::new()))
            })
        })
    }

    fn sealed_key(&self, ca_id: &str) -> R<Option<Vec<u8>>> {
        let c = ca_id.to_string();
        self.read(move |cl| {
            Box::pin(async move {
                let row = cl
                    .query_opt("SELECT sealed FROM ca_keys WHERE ca_id = $1", &[&c])
                    .await
                    .map_err(pg_err)?;
                Ok(row.map(|r| r.get(0)))
            })
        })
    }

    fn sealed_key_ids(&self) -> R<Vec<String>> {
        self.read(|c| {
            Box::pin(async move {
                let rows = c
                    .q_all("SELECT ca_id FROM ca_keys ORDER BY ca_id", &[])
                    .await
                    .map_err(pg_err)?;
                Ok(rows.iter().map(|r| r.get(0)).collect())
            })
        })
    }

    fn import_sealed_keys(&self, keys: &[(String, Vec<u8>)], audit: AuditDraft) -> R<usize> {
        let keys = keys.to_vec();
        self.write_now(Some(audit), move |tx| {
            Box::pin(async move {
                let mut n = 0;
                for (id, sealed) in &keys {
                    n += tx
                        .execute(
                            "INSERT INTO ca_keys (ca_id, sealed) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                            &[id, sealed],
                        )
                        .await
                        .map_err(pg_err)?;
                }
                Ok((n as usize, Vec::new()))
            })
        })
    }

    fn rewrap_keys(&self, rewrap: Rewrap<'_>, meta: &KeyMeta, audit: AuditDraft) -> R<usize> {
        // The transaction stays open on the store's runtime while this thread
        // re-seals each key (the closure cannot leave this thread).
        type Keys = Vec<(String, Vec<u8>)>;
        let (keys_tx, keys_rx) = std::sync::mpsc::channel::<R<Keys>>();
        let (back_tx, back_rx) = tokio::sync::oneshot::channel::<R<Keys>>();
        let meta = meta.clone();
        let done = self.write(Some(audit), move |tx| {
            Box::pin(async move {
                let rows = tx
                    .query(
                        "SELECT ca_id, sealed FROM ca_keys ORDER BY ca_id FOR UPDATE",
                        &[],
                    )
                    .await
                    .map_err(pg_err);
                let keys: R<Keys> =
                    rows.map(|rows| rows.iter().map(|r| (r.get(0), r.get(1))).collect());
                let failed = keys.is_err();
                let _ = keys_tx.send(keys);
                if failed {
                    return Err(StoreError::Unavailable(
                        "reading the sealed keys failed".into(),
                    ));
                }
                let rewrapped = back_rx.await.map_err(|_| StoreError::Closed)??;
                for (id, sealed) in &rewrapped {
                    tx.execute(
                        "UPDATE ca_keys SET sealed = $2 WHERE ca_id = $1",
                        &[id, sealed],
                    )
                    .await
                    .map_err(pg_err)?;
                }
                ops::write_key_meta(tx, &meta).await?;
                Ok((rewrapped.len(), Vec::new()))
            })
        });
        let (done_tx, done_rx) = std::sync::mpsc::sync_channel(1);
        self.handle.spawn(async move {
            let _ = done_tx.send(done.await);
        });
        let keys = keys_rx.recv().map_err(|_| StoreError::Closed)?;
        let answer = keys.and_then(|keys| {
            keys.into_iter()
                .map(|(id, sealed)| {
                    let re = rewrap(&id, &sealed)
                        .map_err(|e| StoreError::Conflict(format!("key of CA {id}: {e}")))?;
                    Ok((id, re))
                })
                .collect::<R<Keys>>()
        });
        let refused = match &answer {
            Err(e) => Some(StoreError::Conflict(e.to_string())),
            Ok(_) => None,
        };
        let _ = back_tx.send(answer);
        let r = done_rx.recv().map_err(|_| StoreError::Closed)?;
        match refused {
            Some(e) => Err(e),
            None => r,
        }
    }

    fn append_events(
        &self,
        events: Vec<EventRecord>,
        mark: MarkAdvance,
        prune_before: Option<i64>,
    ) -> StoreFuture<'_, u64> {
        self.write(None, move |tx| {
            Box::pin(async move {
                Ok((
                    ops::append_events(tx, events, &mark, prune_before).await?,
                    Vec::new(),
                ))
            })
        })
    }

    fn event_mark(&self, name: &str) -> R<Option<u64>> {
        let n = name.to_string();
        self.read(move |c| {
            Box::pin(async move {
                let row = c
                    .q_opt("SELECT value FROM event_marks WHERE name = $1", &[&n])
                    .await
                    .map_err(pg_err)?;
                Ok(row.map(|r| r.get::<_, i64>(0) as u64))
            })
        })
    }

    fn events_after(&self, after: u64, limit: usize) -> R<Vec<EventRecord>> {
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(move |c| {
            Box::pin(async move {
                let rows = c
                    .q_all(
                        "SELECT rec FROM events WHERE seq > $1 ORDER BY seq LIMIT $2",
                        &[&after, &limit],
                    )
                    .await
                    .map_err(pg_err)?;
                rows.iter().map(text_rec).collect()
            })
        })
    }

    fn expiring_certs(&self, from: i64, before: i64, limit: usize) -> R<Vec<CertRecord>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let batch =
            self.expiry_batch(None, (from - 1, "\u{10FFFF}".into()), before, false, limit)?;
        Ok(batch.into_iter().map(|(_, _, r)| r).collect())
    }

    fn visit_live_certs(&self, from: i64, visit: &mut dyn FnMut(&CertRecord)) -> R<()> {
        let mut at = (from - 1, "\u{10FFFF}".to_string());
        loop {
            let batch = self.expiry_batch(None, at.clone(), i64::MAX, false, SCAN_BATCH)?;
            if batch.is_empty() {
                return Ok(());
            }
            for (t, key, rec) in batch {
                at = (t, key);
                visit(&rec);
            }
        }
    }

    fn list_webhooks(&self) -> R<Vec<WebhookRecord>> {
        self.read(|c| Box::pin(all(c, "SELECT rec FROM webhooks ORDER BY id")))
    }

    fn create_webhook(
        &self,
        hook: WebhookRecord,
        audit: AuditDraft,
    ) -> StoreFuture<'_, WebhookRecord> {
        self.write(Some(audit), move |tx| {
            Box::pin(async move { Ok((ops::create_webhook(tx, hook).await?, Vec::new())) })
        })
    }

    fn delete_webhook(&self, id: &str, audit: AuditDraft) -> StoreFuture<'_, bool> {
        let id = id.to_string();
        self.write(Some(audit), move |tx| {
            Box::pin(async move {
                let n = tx
                    .execute("DELETE FROM webhooks WHERE id = $1", &[&id])
                    .await
                    .map_err(pg_err)?;
                Ok((n > 0, Vec::new()))
            })
        })
    }

    fn webhook_delivered(&self, id: &str, seq: u64) -> StoreFuture<'_, ()> {
        let id = id.to_string();
        self.write(None, move |tx| {
            Box::pin(async move {
                ops::webhook_delivered(tx, &id, seq).await?;
                Ok(((), Vec::new()))
            })
        })
    }

    fn acme_account(&self, id: &str) -> R<Option<AcmeAccount>> {
        let id = id.to_string();
        self.read(move |c| {
            Box::pin(
                async move { opt(c, "SELECT rec FROM acme_accounts WHERE id = $1", &id).await },
            )
        })
    }

    fn acme_account_by_key(&self, thumbprint: &str) -> R<Option<AcmeAccount>> {
        let t = thumbprint.to_string();
        self.read(move |c| {
            Box::pin(async move {
                opt(
                    c,
                    "SELECT a.rec FROM acme_account_keys k JOIN acme_accounts a ON a.id = k.account \
                     WHERE k.thumbprint = $1",
                    &t,
                )
                .await
            })
        })
    }

    fn acme_create_account(&self, account: AcmeAccount, audit: AuditDraft) -> StoreFuture<'_, ()> {
        self.write(Some(audit), move |tx| {
            Box::pin(async move {
                ops::acme_create_account(tx, &account).await?;
                Ok(((), Vec::new()))
            })
        })
    }

    fn acme_accounts(&self) -> R<Vec<AcmeAccount>> {
        self.read(|c| {
            Box::pin(all(
                c,
                "SELECT rec FROM acme_accounts ORDER BY created_at, id",
            ))
        })
    }

    fn acme_orders_of(&self, account: &str) -> R<Vec<AcmeOrder>> {
        let a = account.to_string();
        self.read(move |c| {
            Box::pin(async move {
                let rows = c
                    .q_all(
                        "SELECT rec FROM acme_orders WHERE account = $1 ORDER BY created_at, id",
                        &[&a],
                    )
                    .await
                    .map_err(pg_err)?;
                rows.iter().map(text_rec).collect()
            })
        })
    }

    fn acme_eab_key(&self, kid: &str) -> R<Option<AcmeEabKey>> {
        let k = kid.to_string();
        self.read(move |c| {
            Box::pin(
                async move { opt(c, "SELECT rec FROM acme_eab_keys WHERE kid = $1", &k).await },
            )
        })
    }

    fn acme_eab_keys(&self) -> R<Vec<AcmeEabKey>> {
        self.read(|c| {
            Box::pin(all(
                c,
                "SELECT rec FROM acme_eab_keys ORDER BY created_at, kid",
            ))
        })
    }

    fn acme_put_eab_key(
        &self,
        key: AcmeEabKey,
        new: bool,
        audit: AuditDraft,
    ) -> StoreFuture<'_, ()> {
        self.write(Some(audit), move |tx| {
            Box::pin(async move {
                ops::acme_put_eab_key(tx, &key, new).await?;
                Ok(((), Vec::new()))
            })
        })
    }

    fn acme_update_account(
        &self,
        account: AcmeAccount,
        expected_thumbprint: String,
        audit: AuditDraft,
    ) -> StoreFuture<'_, ()> {
        self.write(Some(audit), move |tx| {
            Box::pin(async move {
                ops::acme_update_account(tx, &account, &expected_thumbprint).await?;
                Ok(((), Vec::new()))
            })
        })
    }

    fn acme_order(&self, id: &str) -> R<Option<AcmeOrder>> {
        let id = id.to_string();
        self.read(move |c| {
            Box::pin(async move { opt(c, "SELECT rec FROM acme_orders WHERE id = $1", &id).await })
        })
    }

    fn acme_authz(&self, id: &str) -> R<Option<AcmeAuthz>> {
        let id = id.to_string();
        self.read(move |c| {
            Box::pin(async move { opt(c, "SELECT rec FROM acme_authzs WHERE id = $1", &id).await })
        })
    }

    fn acme_put(
        &self,
        order: Option<AcmeOrder>,
        authzs: Vec<AcmeAuthz>,
        audit: Option<AuditDraft>,
    ) -> StoreFuture<'_, ()> {
        self.write(audit, move |tx| {
            Box::pin(async move {
                ops::acme_put(tx, order.as_ref(), &authzs).await?;
                Ok(((), Vec::new()))
            })
        })
    }

    fn append_audit(&self, audit: AuditDraft) -> StoreFuture<'_, AuditEntry> {
        // The entry is appended by the write itself; read it back by its head.
        let inner = self.inner.clone();
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.handle.spawn(async move {
            let r = async {
                let mut conn = inner.pool.get().await.map_err(pool_err)?;
                let t = ops::begin_write(&mut conn).await?;
                let mut head = ops::lock_head(&t).await?;
                let e = ops::append_audit(&t, &mut head, &audit).await?;
                ops::store_head(&t, &head).await?;
                t.commit().await.map_err(pg_err)?;
                Ok(e)
            }
            .await;
            inner.note(&r.as_ref().map(|_| ()));
            if r.is_ok() {
                inner.commits.fetch_add(1, Ordering::Relaxed);
                inner.writes.fetch_add(1, Ordering::Relaxed);
            }
            let _ = tx.send(r);
        });
        Box::pin(async move { rx.await.map_err(|_| StoreError::Closed)? })
    }

    fn audit_page(&self, filter: &AuditFilter) -> R<(Vec<AuditEntry>, Option<u64>)> {
        let f = filter.clone();
        self.read(move |c| Box::pin(async move { reads::audit_page(c, &f).await }))
    }

    fn verify_audit(&self, pinned_digest_key: Option<&[u8]>) -> R<Verdict> {
        let pinned = pinned_digest_key.map(<[u8]>::to_vec);
        let inner = self.inner.clone();
        self.block(async move {
            let mut conn = inner.pool.get().await.map_err(pool_err)?;
            reads::verify_audit(&mut conn, pinned.as_deref()).await
        })
    }

    fn audit_head(&self) -> R<(u64, String)> {
        self.read(|c| Box::pin(reads::audit_head(c)))
    }

    fn append_audit_digest(&self, digest: AuditDigest) -> StoreFuture<'_, ()> {
        self.write(None, move |tx| {
            Box::pin(async move {
                ops::append_audit_digest(tx, &digest).await?;
                Ok(((), Vec::new()))
            })
        })
    }

    fn audit_digests(&self, after: u64, limit: usize) -> R<Vec<AuditDigest>> {
        self.read(move |c| Box::pin(reads::audit_digests(c, after, limit)))
    }

    fn is_leader(&self) -> bool {
        self.inner.leads.load(Ordering::Acquire)
    }

    fn last_audit_digest(&self) -> R<Option<AuditDigest>> {
        self.read(|c| {
            Box::pin(async move {
                let row = c
                    .q_opt(
                        "SELECT rec FROM audit_digests ORDER BY number DESC LIMIT 1",
                        &[],
                    )
                    .await
                    .map_err(pg_err)?;
                row.as_ref().map(text_rec).transpose()
            })
        })
    }
}

async fn opt_tx<T: for<'de> serde::Deserialize<'de>>(
    tx: &Transaction<'_>,
    sql: &str,
    id: &str,
) -> R<Option<T>> {
    let row = tx.query_opt(sql, &[&id]).await.map_err(pg_err)?;
    row.as_ref().map(text_rec).transpose()
}
