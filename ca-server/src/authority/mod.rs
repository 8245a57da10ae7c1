//! The authority: decides whether (authorise, validate), then has the signer
//! holder sign and the store record. It sees private keys only as `Signer`s.
//!
//! This file holds the `Authority` itself (construction, its clock, the
//! issuer cache and CA lookups) and the small types its callers share; each
//! job lives in its own module: [`authz`] (every policy decision), [`cas`]
//! (CA lifecycle), [`aliases`], [`issuance`] (issue, renew, read
//! certificates), [`revoke`], [`admin`] (policies and the audit trail) and
//! [`parse`] (request values into domain values).

use std::collections::HashMap;

use anyhow::Context as _;
use std::sync::{Arc, RwLock};

use ca_core::cert::{CaCertificate, IssueError, Issuer, IssuerUrls};
use ca_core::csr::CsrError;
use ca_core::keys::{KeyError, Signer};
use time::OffsetDateTime;

use crate::clock::Clock;
use crate::config::Config;
use crate::error::{ApiError, ErrorCode};
use crate::ids;
use crate::policy::Policies;
use crate::store::{AuditDraft, CaRecord, CaStatus, CertRecord, CertStatus, Store};
use crate::vault::{Vault, VaultError};

mod acme_admin;
mod admin;
mod aliases;
mod authz;
pub mod backup;
mod cas;
mod digests;
pub use digests::AUDIT_DIGEST_KEY_FILE;
mod issuance;
mod parse;
mod proof;
mod revoke;
#[cfg(test)]
mod tests;
pub mod webhooks;

pub use crate::clock::{fmt_unix, now};
pub use cas::{KeyStorage, NameConstraintsInput, NewCa};
pub use parse::{ca_hint, check_ca_id, parse_leaf_profile, parse_serial};
pub use revoke::{reason_from_code, reason_from_name, RevocationReason};

/// Who is calling: taken from the verified client certificate.
#[derive(Clone, Debug, Default)]
pub struct Identity {
    pub subject: String,
    pub sans: Vec<String>,
    /// SHA-256 of the client certificate DER, lower-case hex.
    pub fingerprint: String,
    /// The server itself (init): never made from a TLS peer.
    pub internal: bool,
}

impl Identity {
    pub fn display(&self) -> String {
        if self.subject.is_empty() {
            self.sans.first().cloned().unwrap_or_default()
        } else {
            self.subject.clone()
        }
    }

    /// The server acting for itself (bootstrap), allowed without a policy.
    pub fn internal(name: &str) -> Identity {
        Identity {
            subject: name.to_string(),
            internal: true,
            ..Default::default()
        }
    }

    /// The fingerprint recorded with what this caller requests (revoke-own
    /// policies); none for the server itself.
    fn requester_fingerprint(&self) -> Option<String> {
        Some(self.fingerprint.clone()).filter(|f| !f.is_empty())
    }
}

/// What a certificate request carries besides the TBS.
#[derive(Clone, Debug, Default)]
pub struct IssueMeta {
    pub requested_by: String,
    pub server_generated_key: bool,
    pub renewed_from: Option<String>,
    /// (token, SHA-256 of the request)
    pub idempotency: Option<(String, String)>,
    /// The requester's certificate fingerprint (revoke-own policies).
    pub requester_fingerprint: Option<String>,
}

/// A certificate with what a client needs alongside it.
#[derive(Clone, Debug)]
pub struct CertView {
    pub record: CertRecord,
    pub der: Vec<u8>,
    /// Its issuer (shared: it keeps the chain's PEM, which goes out with
    /// every certificate).
    pub issuer: Arc<Issuer>,
}

impl CertView {
    /// Issuer first, up to the root.
    pub fn chain_der(&self) -> Vec<Vec<u8>> {
        self.issuer.chain_der()
    }

    /// [`CertView::chain_der`] as PEM blocks one after the other.
    pub fn chain_pem(&self) -> &str {
        self.issuer.chain_pem()
    }
}

/// RequestCertificate with a server-made key.
#[derive(Clone, Copy, Debug)]
pub struct NewKeyRequest<'a> {
    pub names: &'a [String],
    /// RFC 4514 subject; default CN = the first name.
    pub subject: Option<&'a str>,
    pub profile: &'a str,
    pub key_algorithm: &'a str,
    pub validity_days: Option<u32>,
}

pub struct Authority {
    pub store: Arc<dyn Store>,
    pub(crate) vault: Vault,
    pub policies: Policies,
    pub config: Config,
    public_base: String,
    issuers: RwLock<HashMap<String, Arc<Issuer>>>,
    /// Admission control for the management API.
    pub in_flight: Arc<tokio::sync::Semaphore>,
    /// Idempotency tokens of issuance requests running now.
    idempotency_in_flight: Arc<crate::store::InFlightTokens>,
    /// Where "now" comes from: the system clock, or a test's.
    clock: Clock,
    /// Known weak keys from the operator's lists (`weak_key_lists`).
    weak_keys: ca_core::weak_keys::WeakKeyList,
    /// The audit budget for refusals at the connection.
    pub refusals: crate::refusals::RefusalAudit,
    /// When this authority was made (health gives new servers a grace period).
    pub started: std::time::Instant,
    /// Counters and histograms for `/metrics`.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// The data directory (set by the server; backups are written there).
    pub data_dir: std::sync::OnceLock<std::path::PathBuf>,
    /// What the event producers and webhook deliveries share.
    pub events: Arc<crate::events::EventHub>,
}

/// ISSUED / REVOKED / EXPIRED / RESERVED, as a client sees it now.
pub fn effective_status(r: &CertRecord, now: i64) -> &'static str {
    match r.status {
        CertStatus::Reserved => "RESERVED",
        CertStatus::Revoked => "REVOKED",
        CertStatus::Issued if r.not_after <= now => "EXPIRED",
        CertStatus::Issued => "ISSUED",
    }
}

fn map_issue(e: IssueError) -> ApiError {
    match e {
        IssueError::InvalidValidity(_)
        | IssueError::MissingServerName(_)
        | IssueError::NoNames
        | IssueError::Name(_)
        | IssueError::Key(KeyError::Malformed(_))
        | IssueError::Key(KeyError::UnsupportedAlgorithm(_))
        | IssueError::Key(KeyError::UnsupportedCurve(_))
        | IssueError::Key(KeyError::WeakRsa(_))
        | IssueError::Key(KeyError::OversizedRsa(_))
        | IssueError::Key(KeyError::RocaFingerprint)
        | IssueError::Key(KeyError::CloseRsaPrimes) => ApiError::invalid(e.to_string()),
        // The CA's key could not sign: an HSM away is "try later", anything
        // else is our fault, never the caller's.
        IssueError::Key(KeyError::Unavailable(m)) => ApiError::new(
            ErrorCode::Unavailable,
            format!("the CA's signing key is unavailable: {m}"),
        ),
        IssueError::IssuerExpired(_) | IssueError::IssuerNotYetValid(_) => {
            ApiError::new(ErrorCode::InvalidState, e.to_string())
        }
        IssueError::Lint(_) => ApiError::new(ErrorCode::PolicyDenied, e.to_string()),
        other => ApiError::internal("issuance", other),
    }
}

fn map_csr(e: CsrError) -> ApiError {
    ApiError::new(ErrorCode::MalformedCsr, e.to_string())
}

fn map_vault(e: VaultError) -> ApiError {
    if e.is_unavailable() {
        return ApiError::new(ErrorCode::Unavailable, e.to_string());
    }
    ApiError::internal("CA key", e)
}

impl Authority {
    pub fn new(
        store: Arc<dyn Store>,
        vault: Vault,
        policies: Policies,
        config: Config,
        public_base: String,
    ) -> Self {
        Self::with_clock(
            store,
            vault,
            policies,
            config,
            public_base,
            crate::clock::system(),
        )
    }

    /// As [`Authority::new`], reading the time from `clock` (tests fix it).
    pub fn with_clock(
        store: Arc<dyn Store>,
        vault: Vault,
        policies: Policies,
        config: Config,
        public_base: String,
        clock: Clock,
    ) -> Self {
        let refusals = crate::refusals::RefusalAudit::new(
            std::time::Duration::from_secs(config.refusal_audit_window_secs.max(1)),
            config.refusal_audit_per_window,
        );
        let metrics = Arc::new(crate::metrics::Metrics::new(config.metrics.enabled));
        if config.metrics.enabled {
            let m = metrics.clone();
            store.observe_commits(Arc::new(move |took, writes| m.store_commit(took, writes)));
        }
        let events = Arc::new(crate::events::EventHub::default());
        {
            let hub = events.clone();
            store.observe_commits(Arc::new(move |_, _| hub.audit_grew.notify_one()));
        }
        Authority {
            events,
            data_dir: std::sync::OnceLock::new(),
            metrics,
            store,
            vault,
            policies,
            public_base: public_base.trim_end_matches('/').to_string(),
            issuers: RwLock::new(HashMap::new()),
            in_flight: Arc::new(tokio::sync::Semaphore::new(config.max_in_flight.max(1))),
            idempotency_in_flight: Arc::default(),
            config,
            clock,
            weak_keys: Default::default(),
            refusals,
            started: std::time::Instant::now(),
        }
    }

    /// The authority's "now" (every date it decides or records).
    pub fn now(&self) -> OffsetDateTime {
        (self.clock)()
    }

    /// The audit entry of a state change, dated by the authority's clock so
    /// the entry and the change it records agree on the time.
    fn draft(&self, caller: &str, op: &str, target: &str) -> AuditDraft {
        let mut d = crate::audit::commit_draft(caller, op, target);
        d.unix = self.now().unix_timestamp();
        d
    }

    /// The signer of a CA, for CRLs and OCSP (the key itself stays in the vault).
    pub fn ca_signer(&self, ca_id: &str) -> Result<Arc<dyn Signer>, ApiError> {
        self.vault.signer(ca_id).map_err(map_vault)
    }

    /// A CA id, or an alias resolved to its CA id (with the alias kept for
    /// policies that name it).
    pub fn resolve_ca(&self, id_or_alias: &str) -> Result<String, ApiError> {
        if ids::is_ca_id(id_or_alias) {
            return Ok(id_or_alias.to_string());
        }
        if crate::alias::is_alias(id_or_alias) {
            if let Some(id) = self.store.get_alias(id_or_alias)? {
                return Ok(id);
            }
        }
        Err(ApiError::not_found(
            "no such CA or alias (CA ids look like ca-0123456789abcdef)",
        ))
    }

    /// Where issuance goes when the request names no CA: the `issuing` alias,
    /// else the configured issuing CA.
    pub fn default_ca(&self) -> String {
        match self.store.get_alias(crate::alias::DEFAULT_ALIAS) {
            Ok(Some(_)) => crate::alias::DEFAULT_ALIAS.to_string(),
            _ => self.config.issuing_ca_id.clone(),
        }
    }

    pub fn urls(&self, ca_id: &str) -> IssuerUrls {
        IssuerUrls {
            crl: Some(format!("{}/crl/{ca_id}.crl", self.public_base)),
            ocsp: Some(format!("{}/ocsp/{ca_id}", self.public_base)),
            ca_issuers: Some(format!("{}/ca/{ca_id}.der", self.public_base)),
        }
    }

    /// The URLs a CA writes into what it issues: no OCSP URL when its OCSP
    /// is off.
    fn urls_for(&self, rec: &CaRecord) -> IssuerUrls {
        let mut urls = self.urls(&rec.id);
        if rec.ocsp_disabled {
            urls.ocsp = None;
        }
        urls
    }

    /// A CA record, without a policy check: for the server's own use (CRL,
    /// OCSP, TLS); API reads go through [`Authority::describe_ca`].
    pub fn get_ca(&self, id: &str) -> Result<CaRecord, ApiError> {
        check_ca_id(id)?;
        self.store
            .get_ca(id)?
            .ok_or_else(|| ApiError::not_found(format!("no CA {id}")))
    }

    pub fn list_cas(&self) -> Result<Vec<CaRecord>, ApiError> {
        Ok(self.store.list_cas()?)
    }

    /// The issuer of a CA that has its certificate (parsed once, then cached).
    fn issuer(&self, rec: &CaRecord) -> Result<Arc<Issuer>, ApiError> {
        if let Some(i) = self
            .issuers
            .read()
            .ok()
            .and_then(|m| m.get(&rec.id).cloned())
        {
            return Ok(i);
        }
        let pem = rec.certificate_pem.as_deref().ok_or_else(|| {
            ApiError::new(
                ErrorCode::InvalidState,
                format!("CA {} has no certificate yet (PENDING_CERTIFICATE)", rec.id),
            )
        })?;
        let parse = |p: &str| {
            CaCertificate::parse(p.as_bytes())
                .map_err(|e| ApiError::internal("stored CA certificate", e))
        };
        let cert = parse(pem)?;
        let parents = rec
            .chain_pem
            .iter()
            .map(|p| parse(p))
            .collect::<Result<Vec<_>, _>>()?;
        let issuer = Arc::new(Issuer::new(cert, parents, self.urls_for(rec)));
        if let Ok(mut m) = self.issuers.write() {
            m.insert(rec.id.clone(), issuer.clone());
        }
        Ok(issuer)
    }

    /// An ACTIVE CA ready to issue.
    fn active_issuer(&self, ca_id: &str) -> Result<(CaRecord, Arc<Issuer>), ApiError> {
        let rec = self.get_ca(ca_id)?;
        match rec.status {
            CaStatus::Active => {}
            CaStatus::Disabled => {
                return Err(ApiError::new(
                    ErrorCode::CaDisabled,
                    format!("CA {ca_id} is disabled and issues nothing"),
                ))
            }
            CaStatus::PendingCertificate => {
                return Err(ApiError::new(
                    ErrorCode::InvalidState,
                    format!("CA {ca_id} is waiting for its signed certificate"),
                ))
            }
            CaStatus::Retired => {
                return Err(ApiError::new(
                    ErrorCode::InvalidState,
                    format!("CA {ca_id} is retired (rotated behind its alias): it serves its CRL and OCSP but issues nothing"),
                ))
            }
        }
        let issuer = self.issuer(&rec)?;
        Ok((rec, issuer))
    }
}

/// Open the store and build the authority for `data_dir`. The master key is
/// checked against the data directory before the store is opened for writing,
/// so a wrong key fails here and changes nothing (a store a crash left is
/// recovered first: that only finishes what was committed).
pub async fn open(
    data_dir: &std::path::Path,
    config: crate::config::Config,
    public_base: String,
    master: &crate::vault::MasterOptions,
) -> anyhow::Result<Arc<Authority>> {
    // The token first: it may hold the master key.
    let (token, master) = crate::vault::with_configured_token(data_dir, &config, master)?;
    let master = &master;
    crate::vault::precheck(data_dir, master)?;
    let store = crate::store::open_configured(data_dir, &config.store, crate::ids::boot_id())?;
    let key = match crate::vault::unlock(store.as_ref(), data_dir, master) {
        Ok(k) => k,
        Err(e) => {
            store.close();
            return Err(e.into());
        }
    };
    let migrated = crate::vault::migrate_plaintext_keys(store.as_ref(), data_dir, key.as_ref());
    if let Err(e) = migrated {
        store.close();
        return Err(e.into());
    }
    let mut vault = match crate::vault::Vault::new(store.clone(), key) {
        Ok(v) => v,
        Err(e) => {
            store.close();
            return Err(e.into());
        }
    };
    if let Some(t) = token {
        vault = vault.with_token(t);
    }
    crate::policy::bootstrap_if_absent(store.as_ref(), data_dir)
        .await
        .context("creating the bootstrap administrator's policy")?;
    let policies =
        crate::policy::Policies::load(store.as_ref()).context("loading the access policies")?;
    let weak_keys = load_weak_key_lists(data_dir, &config.weak_key_lists)?;
    // Say at start which token keys cannot be found: their CAs answer 503
    // until they can, while the others serve.
    for ca in store.list_cas().context("listing CAs")? {
        if let Some(label) = &ca.token_key_label {
            if let Err(e) = vault.signer(&ca.id) {
                tracing::error!(ca = %ca.id, key = %label, error = %e, "a CA's token key is not usable");
            }
        }
    }
    let mut authority = Authority::new(store, vault, policies, config, public_base);
    authority.weak_keys = weak_keys;
    // The audit key exists from the start, and its public half is where an
    // operator looks for it.
    let digest_key = authority
        .audit_digest_key()
        .map_err(|e| anyhow::anyhow!("the audit digest key: {e}"))?;
    let pem = ca_core::pem::encode("PUBLIC KEY", digest_key.public_key_der());
    let path = data_dir.join(AUDIT_DIGEST_KEY_FILE);
    if std::fs::read_to_string(&path).ok().as_deref() != Some(pem.as_str()) {
        std::fs::write(&path, pem).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(Arc::new(authority))
}

/// Read the operator's weak-key lists; a missing or malformed one stops the
/// server rather than leaving it to issue for keys it was told to refuse.
fn load_weak_key_lists(
    data_dir: &std::path::Path,
    lists: &[std::path::PathBuf],
) -> anyhow::Result<ca_core::weak_keys::WeakKeyList> {
    let mut weak_keys = ca_core::weak_keys::WeakKeyList::default();
    for list in lists {
        let path = data_dir.join(list);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading the weak-key list {}", path.display()))?;
        let added = weak_keys
            .extend_from_text(&text)
            .with_context(|| format!("weak-key list {}", path.display()))?;
        tracing::info!(list = %path.display(), keys = added, "weak-key list loaded");
    }
    Ok(weak_keys)
}
