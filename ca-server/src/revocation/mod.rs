//! Revocation publication: per-CA CRLs built in the background from
//! pre-encoded entries, an OCSP responder with a response cache, and the
//! revoked-client check of the management API.
//!
//! Why this shape (Vault rebuilds its CRL inside every revoke, hashicorp/vault#9176):
//!
//! - A revocation writes its DER CRL entry in its own transaction
//!   (`store::revoke`) and then only marks the CA dirty, so revoke latency does
//!   not depend on the CRL's size.
//! - One builder task per server debounces those marks, reads the CA's entries
//!   with one range scan (never the certificate table), signs with
//!   [`build_crl_from_encoded`], writes the CRL to `crls/{ca}.{number}.crl`
//!   (fsync + rename), commits only its small record (number, times) through
//!   the store, and then swaps the served copy: the previous CRL is served
//!   until its successor is signed, and the last one survives restarts. A
//!   crash before the commit leaves a file nobody names; the next build of
//!   that number overwrites it.
//! - Start-up reads nothing big: the builder's first pass looks at each CA's
//!   small CRL record; a CRL's DER is loaded on its first request.
//! - OCSP status is a point read; signed answers to nonce-less single-CertID
//!   requests are cached until half their validity, and dropped on revocation.

mod client;
mod crl;
mod ocsp;

pub use client::{client_certificate, ClientCert};

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock, Weak};
use std::time::Duration;

use ca_core::cert::CaCertificate;
use ca_core::crl::{build_crl_from_encoded, CrlError, CrlParams, RevocationReason};
use ca_core::keys::{KeyAlgorithm, KeyError, Signer, SoftwareKey};
use ca_core::ocsp::{
    create_ocsp_signing_certificate, parse_request, respond_to, try_later_response,
    unauthorized_response, CertStatusInput, IssuerHashes, OcspError, Responder, ResponderIdentity,
};
use hyper::body::Bytes;
use time::OffsetDateTime;
use tokio::sync::Notify;
use x509_cert::name::Name;

use crate::authority::Authority;
use crate::config::{OcspSigner, RevocationConfig};
use crate::error::{ApiError, ErrorCode};
use crate::store::{CrlMeta, SerialStatus, StoreError};

/// Most cached OCSP responses (about 0.5 KiB each); past it the cache restarts.
const MAX_CACHED: usize = 500_000;
/// Most cached answers for serials the store does not know, kept apart so
/// that a stream of made-up serials cannot flush the answers that matter.
const MAX_CACHED_UNKNOWN: usize = 50_000;
/// Longest chain of CAs walked for "is an issuer above revoked".
const MAX_CHAIN: usize = 8;
/// How often a node that does not publish CRLs (another node does, on a
/// shared store) checks whether it should.
const STANDBY_RECHECK: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum RevocationError {
    #[error("no CA {0}")]
    NoCa(String),
    #[error("CA {0} has no certificate yet")]
    NoCertificate(String),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("stored CA certificate: {0}")]
    CaCertificate(String),
    /// The delegated OCSP responder's own key could not be made.
    #[error("OCSP responder key: {0}")]
    ResponderKey(String),
    /// The CA's signer could not be had; its cause was logged where it
    /// was fetched, and the error says what the caller may do.
    #[error("CA key: {}", .0.message)]
    CaKey(ApiError),
    #[error("CRL: {0}")]
    Crl(#[from] CrlError),
    #[error("OCSP responder: {0}")]
    Ocsp(#[from] OcspError),
    #[error("background task: {0}")]
    Task(String),
    #[error("CRL file {0}: {1}")]
    Io(String, std::io::Error),
}

impl From<RevocationError> for ApiError {
    fn from(e: RevocationError) -> Self {
        match e {
            RevocationError::NoCa(_) | RevocationError::NoCertificate(_) => {
                ApiError::not_found(e.to_string())
            }
            RevocationError::Store(s) => s.into(),
            // The CA's key could not sign (an HSM token away): "try later",
            // as issuance says, not our fault.
            RevocationError::Crl(CrlError::Key(KeyError::Unavailable(m)))
            | RevocationError::Ocsp(OcspError::Key(KeyError::Unavailable(m))) => ApiError::new(
                ErrorCode::Unavailable,
                format!("the CA's signing key is unavailable: {m}"),
            ),
            RevocationError::CaKey(e) => e,
            other => ApiError::internal("revocation", other),
        }
    }
}

/// The CRL currently served for one CA.
pub struct ServedCrl {
    pub meta: CrlMeta,
    pub der: Bytes,
    pem: OnceLock<Bytes>,
}

impl ServedCrl {
    fn new(meta: CrlMeta, der: Vec<u8>) -> Self {
        ServedCrl {
            meta,
            der: Bytes::from(der),
            pem: OnceLock::new(),
        }
    }

    /// PEM, made on first request only (most relying parties want DER).
    pub fn pem(&self) -> Bytes {
        self.pem
            .get_or_init(|| Bytes::from(ca_core::crl::to_pem(&self.der)))
            .clone()
    }
}

/// (parent CA id, serial of the CA's certificate under it), from a CA up to the root.
type Links = Arc<Vec<(String, String)>>;

/// Everything needed to answer OCSP for one CA, set up once (and again when a
/// delegated responder certificate passes half its life).
struct OcspCa {
    hashes: IssuerHashes,
    identity: ResponderIdentity,
    signer: Arc<dyn Signer>,
    links: Links,
    renew_at: OffsetDateTime,
}

struct Cached {
    cert_id: Vec<u8>,
    response: Bytes,
    expires: i64,
}

/// Counters for the bench and the health endpoint.
#[derive(Default)]
pub struct RevocationStats {
    pub crls_built: AtomicU64,
    pub ocsp_cache_hits: AtomicU64,
    pub ocsp_signed: AtomicU64,
}

impl RevocationService {
    /// The CRLs served now, by CA id (for metrics).
    pub fn served_crls(&self) -> Vec<(String, Arc<ServedCrl>)> {
        self.served
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

pub struct RevocationService {
    auth: Arc<Authority>,
    cfg: RevocationConfig,
    crl_dir: PathBuf,
    served: RwLock<HashMap<String, Arc<ServedCrl>>>,
    dirty: Mutex<HashSet<String>>,
    /// Every CA's CRL is due (what the store holds may differ from what
    /// this process was told: see `Committed::Resync`).
    rebuild_all: AtomicBool,
    wake: Notify,
    build_lock: tokio::sync::Mutex<()>,
    responders: RwLock<HashMap<String, Arc<OcspCa>>>,
    /// Held across the store commit of a new responder certificate.
    responder_lock: tokio::sync::Mutex<()>,
    links: RwLock<HashMap<String, Links>>,
    /// `ca-id/serial` → signed responses (one per CertID form asked).
    cache: RwLock<HashMap<String, Vec<Cached>>>,
    /// Signed "unknown" answers, so asking again about a serial the store
    /// does not hold costs no signature (serials are random 128-bit values
    /// handed out only once issued, so "unknown" does not turn stale).
    unknown_cache: RwLock<HashMap<String, Vec<Cached>>>,
    /// Client certificates (`ca/serial`) found issued and unrevoked, with
    /// every CA above them: the management API checks each request's client
    /// certificate, and a revocation drops the entry (as for OCSP answers).
    good_clients: RwLock<HashSet<String>>,
    /// Bumped by every invalidation: a response signed from a status read
    /// before a revocation is never cached after it.
    epoch: AtomicU64,
    pub stats: RevocationStats,
}

fn now() -> OffsetDateTime {
    let t = OffsetDateTime::now_utc();
    t.replace_nanosecond(0).unwrap_or(t)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic elsewhere must not stop revocation publication: the data under
    // these locks (sets, maps of caches) stays consistent at every step.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn read<T>(m: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(m: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    m.write().unwrap_or_else(|p| p.into_inner())
}

impl RevocationService {
    /// Make the service and hook it to the authority's revoke path. Signed
    /// CRLs are kept in `crl_dir` (made on first build).
    pub fn new(auth: Arc<Authority>, crl_dir: PathBuf) -> Arc<Self> {
        let svc = Arc::new(RevocationService {
            crl_dir,
            cfg: auth.config.revocation.clone(),
            auth: auth.clone(),
            served: RwLock::new(HashMap::new()),
            dirty: Mutex::new(HashSet::new()),
            rebuild_all: AtomicBool::new(false),
            wake: Notify::new(),
            build_lock: tokio::sync::Mutex::new(()),
            responders: RwLock::new(HashMap::new()),
            responder_lock: tokio::sync::Mutex::new(()),
            links: RwLock::new(HashMap::new()),
            cache: RwLock::new(HashMap::new()),
            unknown_cache: RwLock::new(HashMap::new()),
            good_clients: RwLock::new(HashSet::new()),
            epoch: AtomicU64::new(0),
            stats: RevocationStats::default(),
        });
        // Weak: the authority outlives no one, but a cycle would keep both alive.
        let weak: Weak<RevocationService> = Arc::downgrade(&svc);
        // Driven by the committed write (on the thread that committed it,
        // before the revoker is answered), never by the request, which may
        // be gone.
        auth.store.subscribe(Arc::new(move |event| {
            let Some(s) = weak.upgrade() else { return };
            match event {
                crate::store::Committed::Revoked { ca_id, serial } => s.on_revoked(ca_id, serial),
                // Another node's revocations or CRLs may have been missed.
                // A reopened embedded store may hold a revocation its caller
                // was told had failed: every CA's CRL is built again.
                crate::store::Committed::Resync => {
                    s.invalidate(None);
                    write(&s.served).clear();
                    s.rebuild_all.store(true, Ordering::SeqCst);
                    s.wake.notify_one();
                }
                // A newer CRL (another node's, with a shared store): stop
                // serving ours, so the next fetch loads the newest.
                crate::store::Committed::CrlPublished { ca_id, number } => {
                    let mut served = write(&s.served);
                    if served
                        .get(ca_id)
                        .is_some_and(|c| c.meta.crl_number < *number)
                    {
                        served.remove(ca_id);
                    }
                }
                _ => {}
            }
        }));
        svc
    }

    /// Start the CRL builder: a first pass at once (CAs without a CRL or past
    /// half its validity), then on revocations and every `crl_refresh_secs`.
    pub fn spawn_builder(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move { me.builder_loop().await })
    }

    async fn builder_loop(self: Arc<Self>) {
        let refresh = Duration::from_secs(self.cfg.crl_refresh_secs);
        let debounce = Duration::from_millis(self.cfg.crl_debounce_ms);
        // Stores older than `crl_entries` get their entries once, before the
        // first CRL, in the background (start-up does not wait for it).
        match self.auth.store.complete_crl_entries().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(entries = n, "CRL entries completed for earlier revocations"),
            Err(e) => tracing::warn!(error = %e, "completing CRL entries failed"),
        }
        let mut first = true;
        let mut led = false;
        loop {
            if !first {
                // A node that does not publish looks again soon, so it takes
                // over promptly when the publishing node goes.
                let wait = if led {
                    refresh
                } else {
                    refresh.min(STANDBY_RECHECK)
                };
                tokio::select! {
                    _ = self.wake.notified() => tokio::time::sleep(debounce).await,
                    _ = tokio::time::sleep(wait) => {}
                }
            }
            first = false;
            // With a shared store one node publishes. The others keep what
            // they were told was revoked (dirty), so that whichever takes
            // over publishes it; until then they only step in for a CRL
            // that is overdue (below).
            led = self.auth.store.is_leader();
            let mut todo: Vec<String> = if led {
                lock(&self.dirty).iter().cloned().collect()
            } else {
                Vec::new()
            };
            if led && self.rebuild_all.swap(false, Ordering::SeqCst) {
                match self.auth.store.list_cas() {
                    Ok(cas) => {
                        for c in cas {
                            if c.certificate_pem.is_some() && !todo.contains(&c.id) {
                                todo.push(c.id);
                            }
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "listing the CAs to rebuild their CRLs failed");
                        self.rebuild_all.store(true, Ordering::SeqCst);
                    }
                }
            }
            match self.stale_cas(!led) {
                Ok(stale) => {
                    for c in stale {
                        if !todo.contains(&c) {
                            todo.push(c);
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "CRL schedule check failed"),
            }
            let started = std::time::Instant::now();
            for ca in todo {
                match self.build(&ca).await {
                    Ok(c) => {
                        tracing::debug!(ca = %ca, number = c.meta.crl_number, entries = c.meta.entries, "CRL published")
                    }
                    Err(RevocationError::NoCertificate(_)) => {}
                    Err(e) => {
                        // Retried at the next refresh, not in a hot loop.
                        tracing::warn!(ca = %ca, error = %e, "CRL build failed");
                        lock(&self.dirty).insert(ca);
                    }
                }
            }
            // Building costs CPU and disk that revokes and OCSP share: after a
            // pass that took d, rest 3d (at most 10 s) so a stream of
            // revocations against a huge CRL spends at most a quarter of the
            // time rebuilding. Small CRLs take milliseconds, so they stay prompt.
            let pause = (started.elapsed() * 3).min(Duration::from_secs(10));
            if pause > Duration::from_millis(5) {
                tokio::time::sleep(pause).await;
            }
        }
    }

    /// CAs whose CRL is missing or past half its validity (small reads
    /// only). A `standby` node (another publishes) names only CRLs past
    /// three quarters of their validity: the publisher is late or gone.
    fn stale_cas(&self, standby: bool) -> Result<Vec<String>, StoreError> {
        let store = &self.auth.store;
        let now = now().unix_timestamp();
        let mut out = Vec::new();
        for ca in store.list_cas()? {
            if ca.certificate_pem.is_none() {
                continue;
            }
            let stale = match store.crl_meta(&ca.id)? {
                None => !standby,
                Some(m) if standby => {
                    now >= m.this_update + (m.next_update - m.this_update) * 3 / 4
                }
                Some(m) => now >= m.this_update + (m.next_update - m.this_update) / 2,
            };
            if stale {
                out.push(ca.id);
            }
        }
        Ok(out)
    }

    /// Called after a revocation commits, before the caller is answered.
    pub fn on_revoked(&self, ca_id: &str, serial: &str) {
        self.invalidate(Some(&format!("{ca_id}/{serial}")));
        // A CA's own certificate: every answer for it and below may change.
        if let Ok(cas) = self.auth.store.list_cas() {
            if cas.iter().any(|c| {
                c.parent_ca_id.as_deref() == Some(ca_id) && c.serial.as_deref() == Some(serial)
            }) {
                self.invalidate(None);
            }
        }
        lock(&self.dirty).insert(ca_id.to_string());
        self.wake.notify_one();
    }

    /// Drop one `ca/serial` from the OCSP cache, or everything.
    fn invalidate(&self, key: Option<&str>) {
        let mut c = write(&self.cache);
        let mut u = write(&self.unknown_cache);
        let mut g = write(&self.good_clients);
        self.epoch.fetch_add(1, Ordering::SeqCst);
        match key {
            Some(k) => {
                c.remove(k);
                u.remove(k);
                g.remove(k);
            }
            None => {
                c.clear();
                u.clear();
                g.clear();
            }
        }
    }

    // ---- CA facts ------------------------------------------------------------

    fn ca_cert(&self, ca_id: &str) -> Result<CaCertificate, RevocationError> {
        let rec = self
            .auth
            .store
            .get_ca(ca_id)?
            .ok_or_else(|| RevocationError::NoCa(ca_id.to_string()))?;
        let pem = rec
            .certificate_pem
            .as_deref()
            .ok_or_else(|| RevocationError::NoCertificate(ca_id.to_string()))?;
        CaCertificate::parse(pem.as_bytes())
            .map_err(|e| RevocationError::CaCertificate(e.to_string()))
    }

    /// The chain of (parent, serial) links above a CA; fixed once the CA has
    /// its certificate, so cached.
    fn links(&self, ca_id: &str) -> Result<Links, RevocationError> {
        if let Some(l) = read(&self.links).get(ca_id) {
            return Ok(l.clone());
        }
        let store = &self.auth.store;
        let mut cur = store
            .get_ca(ca_id)?
            .ok_or_else(|| RevocationError::NoCa(ca_id.to_string()))?;
        if cur.certificate_pem.is_none() {
            return Err(RevocationError::NoCertificate(ca_id.to_string()));
        }
        let mut links = Vec::new();
        for _ in 0..MAX_CHAIN {
            let (Some(parent), Some(serial)) = (cur.parent_ca_id.clone(), cur.serial.clone())
            else {
                break;
            };
            links.push((parent.clone(), serial));
            match store.get_ca(&parent)? {
                Some(p) => cur = p,
                None => break,
            }
        }
        let links = Arc::new(links);
        write(&self.links).insert(ca_id.to_string(), links.clone());
        Ok(links)
    }

    /// When a CA above (its own certificate or an ancestor's) was revoked.
    fn chain_revoked(&self, links: &[(String, String)]) -> Result<Option<i64>, StoreError> {
        for (parent, serial) in links {
            if let SerialStatus::Revoked(rv) = self.auth.store.serial_status(parent, serial)? {
                return Ok(Some(rv.revoked_at));
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_key_that_cannot_sign_is_try_later_not_an_internal_error() {
        let away = || KeyError::Unavailable("the token is not connected".into());
        for e in [
            RevocationError::Crl(CrlError::Key(away())),
            RevocationError::Ocsp(OcspError::Key(away())),
            RevocationError::CaKey(ApiError::new(ErrorCode::Unavailable, "token away")),
        ] {
            let api = ApiError::from(e);
            assert_eq!(api.code, ErrorCode::Unavailable, "{}", api.message);
        }
        let broken = ApiError::from(RevocationError::Crl(CrlError::BadUpdateTimes));
        assert_eq!(broken.code, ErrorCode::Internal);
    }
}
