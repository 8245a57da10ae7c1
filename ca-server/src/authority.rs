//! The authority: decides whether (authorise, validate), then has the signer
//! holder sign and the store record. It sees private keys only as `Signer`s.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use ca_core::cert::{
    create_root, import_signed_ca, prepare, CaCertificate, CertificateRequest, IssueError, Issuer,
    IssuerUrls, NameConstraintsSpec, RootParams,
};
use ca_core::csr::{create_csr, parse_csr, CsrError};
use ca_core::keys::{KeyAlgorithm, Signer, SoftwareKey};
use ca_core::names::{IpNet, SanEntry};
use ca_core::profile::{Profile, ValidityLimits};
use ca_core::serial::Serial;
use der::{Decode, Encode};
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::name::Name;
use x509_cert::Certificate;

use crate::audit::commit_draft;
use crate::config::Config;
use crate::error::{ApiError, ErrorCode};
use crate::ids;
use crate::policy::Policies;
use crate::store::{
    CaRecord, CaStatus, CaType, CertFilter, CertRecord, CertStatus, IdemRecord, NewCaRecord,
    ReserveOutcome, Revocation, Store, StoreError,
};
use crate::vault::{Vault, VaultError};
use ca_core::policy::{Action as PolicyAction, Caller, Request as PolicyRequest, RequestedSubject};

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
    /// Issuer first, up to the root.
    pub chain_der: Vec<Vec<u8>>,
}

/// What signing under a reservation gave.
enum Signed {
    /// Signed now; not stored yet.
    New(CertView),
    /// The idempotency token named a certificate already stored.
    Stored(CertView),
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

pub struct NewCa {
    pub ca_type: CaType,
    pub subject: String,
    pub key_algorithm: String,
    pub parent_ca_id: Option<String>,
    pub external: bool,
    pub validity_days: Option<u32>,
    pub path_len: Option<u8>,
    pub name_constraints: Option<NameConstraintsInput>,
}

#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NameConstraintsInput {
    #[serde(default)]
    pub permitted_dns: Vec<String>,
    #[serde(default)]
    pub excluded_dns: Vec<String>,
    #[serde(default)]
    pub permitted_ip: Vec<String>,
    #[serde(default)]
    pub excluded_ip: Vec<String>,
}

pub struct Authority {
    pub store: Arc<dyn Store>,
    vault: Vault,
    pub policies: Policies,
    pub config: Config,
    public_base: String,
    issuers: RwLock<HashMap<String, Arc<Issuer>>>,
    /// Admission control for the management API.
    pub in_flight: Arc<tokio::sync::Semaphore>,
    /// Idempotency tokens of issuance requests running now.
    idempotency_in_flight: Arc<crate::store::InFlightTokens>,
}

pub use crate::clock::{fmt_unix, now};

fn sha256_hex(parts: &[&[u8]]) -> String {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    for p in parts {
        ctx.update(&(p.len() as u64).to_be_bytes());
        ctx.update(p);
    }
    ids::hex(ctx.finish().as_ref())
}

pub fn check_ca_id(id: &str) -> Result<(), ApiError> {
    if ids::is_ca_id(id) {
        Ok(())
    } else {
        Err(ApiError::not_found(
            "no such CA (CA ids look like ca-0123456789abcdef)",
        ))
    }
}

/// The CA named alongside a serial: an alias names a lineage of CAs (the
/// certificate may come from one it retired), and serials are unique across
/// the store, so an alias means "find it by serial".
pub fn ca_hint(ca_id: Option<&str>) -> Option<&str> {
    ca_id.filter(|c| !crate::alias::is_alias(c))
}

/// Normalise a serial from input to the stored lower-case hex form.
pub fn parse_serial(s: &str) -> Result<String, ApiError> {
    Serial::from_hex(s)
        .map(|s| s.to_hex())
        .map_err(|_| ApiError::invalid("the serial must be 1 to 20 octets of hex"))
}

fn map_issue(e: IssueError) -> ApiError {
    match e {
        IssueError::InvalidValidity(_)
        | IssueError::MissingServerName(_)
        | IssueError::NoNames
        | IssueError::Name(_)
        | IssueError::Key(_) => ApiError::invalid(e.to_string()),
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
    ApiError::internal("CA key", e)
}

fn parse_key_alg(s: &str) -> Result<KeyAlgorithm, ApiError> {
    KeyAlgorithm::from_str(s).map_err(|_| {
        ApiError::invalid(
            "key_algorithm must be one of ec-p256, ec-p384, rsa-2048, rsa-3072, rsa-4096, ed25519",
        )
    })
}

pub fn parse_leaf_profile(s: &str) -> Result<Profile, ApiError> {
    match Profile::from_str(s) {
        Ok(p) if !p.is_ca() => Ok(p),
        Ok(_) => Err(ApiError::invalid(
            "subordinate CAs are created with POST /v1/cas, not issued as certificates",
        )),
        Err(e) => Err(ApiError::invalid(e.to_string())),
    }
}

fn parse_subject(s: &str) -> Result<Name, ApiError> {
    if s.trim().is_empty() {
        return Err(ApiError::invalid("subject must not be empty"));
    }
    // Only known attribute names: the underlying RFC 4514 parser overflows on
    // numeric OID arcs such as `2.4294967296=x`, which request text can carry.
    ca_core::names::parse_subject(s).map_err(|e| {
        ApiError::invalid(format!(
            "subject is not an RFC 4514 name such as CN=Example CA,O=Example: {e}"
        ))
    })
}

fn check_validity(days: Option<u32>, limits: ValidityLimits, what: &str) -> Result<(), ApiError> {
    match days {
        Some(0) => Err(ApiError::invalid("validity_days must be at least 1")),
        Some(d) if d > limits.max_days => Err(ApiError::invalid(format!(
            "validity_days {d} exceeds the maximum of {} for {what}",
            limits.max_days
        ))),
        _ => Ok(()),
    }
}

/// Generating keys (RSA especially) takes time: off the async threads.
async fn generate_key(alg: KeyAlgorithm) -> Result<SoftwareKey, ApiError> {
    tokio::task::spawn_blocking(move || SoftwareKey::generate(alg))
        .await
        .map_err(|e| ApiError::internal("key generation task", e))?
        .map_err(|e| ApiError::internal("key generation", e))
}

fn sans_of(cert: &Certificate) -> Vec<SanEntry> {
    match cert.tbs_certificate.get::<SubjectAltName>() {
        Ok(Some((_, san))) => san
            .0
            .iter()
            .filter_map(SanEntry::from_general_name)
            .collect(),
        _ => vec![],
    }
}

impl Authority {
    pub fn new(
        store: Arc<dyn Store>,
        vault: Vault,
        policies: Policies,
        config: Config,
        public_base: String,
    ) -> Self {
        Authority {
            store,
            vault,
            policies,
            public_base: public_base.trim_end_matches('/').to_string(),
            issuers: RwLock::new(HashMap::new()),
            in_flight: Arc::new(tokio::sync::Semaphore::new(config.max_in_flight.max(1))),
            idempotency_in_flight: Arc::default(),
            config,
        }
    }

    /// The signer of a CA, for CRLs and OCSP (the key itself stays in the vault).
    pub fn ca_signer(&self, ca_id: &str) -> Result<Arc<dyn Signer>, ApiError> {
        self.vault.signer(ca_id).map_err(map_vault)
    }

    /// The policy check of every API call: evaluate the statements for this
    /// caller and request, record the decision for the audit trail, and refuse
    /// with `PolicyDenied` naming the deciding statement (or deny by default).
    pub fn authorize(
        &self,
        who: &Identity,
        action: PolicyAction,
        req: &PolicyRequest<'_>,
    ) -> Result<(), ApiError> {
        if who.internal {
            crate::audit::record(true, None, "internal call".into(), req.ca);
            return Ok(());
        }
        let caller = Caller {
            subject: who.subject.clone(),
            sans: who.sans.clone(),
            fingerprint: who.fingerprint.clone(),
        };
        let d = ca_core::policy::evaluate(&self.policies.statements(), &caller, action, req);
        tracing::debug!(caller = %who.display(), %action, ca = req.ca, allowed = d.allowed, statement = d.statement.as_deref().unwrap_or("-"), "policy decision");
        crate::audit::record(d.allowed, d.statement.clone(), d.reason.clone(), req.ca);
        if d.allowed {
            return Ok(());
        }
        let why = match &d.statement {
            Some(s) => format!("statement {s}"),
            None => format!("deny by default: {}", d.reason),
        };
        Err(ApiError::new(
            ErrorCode::PolicyDenied,
            format!(
                "{action} on {} is not allowed for this identity ({why})",
                req.ca
            ),
        ))
    }

    /// `issue` on a CA (and the alias it was named by) for a certificate as it
    /// will be issued: its names and subject, its profile and its validity in
    /// days (the profile's default when the request names none).
    fn authorize_issue(
        &self,
        who: &Identity,
        (ca, ca_alias): (&str, Option<&str>),
        names: &[SanEntry],
        subject: &Name,
        profile: Profile,
        validity_days: u32,
    ) -> Result<(), ApiError> {
        self.authorize(
            who,
            PolicyAction::Issue,
            &PolicyRequest {
                ca,
                ca_alias,
                names,
                subject: Some(&RequestedSubject::from_name(subject)),
                profile: Some(profile.name()),
                validity_days: Some(validity_days),
                ..Default::default()
            },
        )
    }

    /// Whether `who` may read CA `ca_id` (list filtering: not recorded).
    pub fn may_read(&self, who: &Identity, ca_id: &str) -> bool {
        if who.internal {
            return true;
        }
        let caller = Caller {
            subject: who.subject.clone(),
            sans: who.sans.clone(),
            fingerprint: who.fingerprint.clone(),
        };
        let req = PolicyRequest {
            ca: ca_id,
            ..Default::default()
        };
        ca_core::policy::evaluate(
            &self.policies.statements(),
            &caller,
            PolicyAction::Read,
            &req,
        )
        .allowed
    }

    /// `read` on one CA, recorded and refused like any decision.
    pub fn authorize_read(&self, who: &Identity, ca_id: &str) -> Result<(), ApiError> {
        self.authorize(
            who,
            PolicyAction::Read,
            &PolicyRequest {
                ca: ca_id,
                ..Default::default()
            },
        )
    }

    /// A CA id, or an alias resolved to its CA id (with the alias kept for
    /// policies that name it).
    pub fn resolve_ca(&self, id_or_alias: &str) -> Result<(String, Option<String>), ApiError> {
        if ids::is_ca_id(id_or_alias) {
            return Ok((id_or_alias.to_string(), None));
        }
        if crate::alias::is_alias(id_or_alias) {
            if let Some(id) = self.store.get_alias(id_or_alias)? {
                return Ok((id, Some(id_or_alias.to_string())));
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

    /// Create or repoint an alias (administer on the target CA).
    pub async fn set_alias(
        &self,
        who: &Identity,
        alias: &str,
        ca_id: &str,
    ) -> Result<(), ApiError> {
        if !crate::alias::is_alias(alias) {
            return Err(ApiError::invalid(
                "an alias is 1-64 of a-z 0-9 - _, starts with a letter, and is not shaped like a CA id",
            ));
        }
        check_ca_id(ca_id)?;
        self.authorize(
            who,
            PolicyAction::Administer,
            &PolicyRequest {
                ca: ca_id,
                ca_alias: Some(alias),
                ..Default::default()
            },
        )?;
        self.active_issuer(ca_id)?;
        let draft = commit_draft(&who.display(), "PutAlias", alias);
        self.store.put_alias(alias, ca_id, draft).await?;
        crate::audit::committed();
        tracing::info!(%alias, ca = %ca_id, by = %who.display(), "alias set");
        Ok(())
    }

    /// Rotate the CA behind `alias`: a new intermediate under the same parent
    /// (same subject, profile and key algorithm, a new key), the alias
    /// repointed and the old CA retired in one commit.
    pub async fn rotate_alias(
        &self,
        who: &Identity,
        alias: &str,
    ) -> Result<(CaRecord, CaRecord), ApiError> {
        let (old_id, _) = self.resolve_ca(alias)?;
        if ids::is_ca_id(alias) {
            return Err(ApiError::invalid("rotate an alias, not a CA id"));
        }
        self.authorize(
            who,
            PolicyAction::Administer,
            &PolicyRequest {
                ca: &old_id,
                ca_alias: Some(alias),
                ..Default::default()
            },
        )?;
        let old = self.get_ca(&old_id)?;
        let parent =
            match (&old.parent_ca_id, old.ca_type, old.external) {
                (Some(p), CaType::Subordinate, false) => p.clone(),
                _ => return Err(ApiError::new(
                    ErrorCode::InvalidState,
                    "only a subordinate CA signed by this service can be rotated behind an alias",
                )),
            };
        if old.status != CaStatus::Active {
            return Err(ApiError::new(
                ErrorCode::InvalidState,
                format!("CA {old_id} is not ACTIVE"),
            ));
        }
        let (new, key) = self
            .prepare_ca(
                who,
                NewCa {
                    ca_type: CaType::Subordinate,
                    subject: old.subject.clone(),
                    key_algorithm: old.key_algorithm.clone(),
                    parent_ca_id: Some(parent),
                    external: false,
                    validity_days: None,
                    path_len: old.path_len,
                    name_constraints: None,
                },
            )
            .await?;
        let new_id = new.ca.id.clone();
        let draft = commit_draft(&who.display(), "RotateAlias", alias);
        let retired = self
            .store
            .rotate_alias(alias, &old_id, new.clone(), draft)
            .await?;
        crate::audit::committed();
        self.vault.cache(&new_id, key);
        let new = new.ca;
        tracing::info!(%alias, old = %old_id, new = %new.id, by = %who.display(), "CA rotated behind its alias");
        Ok((retired, new))
    }

    pub fn urls(&self, ca_id: &str) -> IssuerUrls {
        IssuerUrls {
            crl: Some(format!("{}/crl/{ca_id}.crl", self.public_base)),
            ocsp: Some(format!("{}/ocsp/{ca_id}", self.public_base)),
            ca_issuers: Some(format!("{}/ca/{ca_id}.der", self.public_base)),
        }
    }

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
        let issuer = Arc::new(Issuer::new(cert, parents, self.urls(&rec.id)));
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

    /// The heart of issuance: prepare + lint, record the intent durably and
    /// sign; the caller stores the result (alone, or with the CA it makes).
    async fn sign_reserved(
        &self,
        ca_id: &str,
        request: CertificateRequest,
        limits: ValidityLimits,
        meta: IssueMeta,
    ) -> Result<Signed, ApiError> {
        let (_, issuer) = self.active_issuer(ca_id)?;
        let key_algorithm = ca_core::keys::PublicKeyKind::from_spki_der(&request.spki_der)
            .map(|k| k.to_string())
            .unwrap_or_default();
        // Tokens are per caller, so two clients choosing the same one do not
        // collide (fingerprints are hex and tokens have no '/').
        let scoped_token = meta.idempotency.as_ref().map(|(t, h)| {
            let who = meta.requester_fingerprint.as_deref().unwrap_or("-");
            (format!("{who}/{t}"), h.clone())
        });
        // Held until this request ends (after the final store, or on failure or
        // cancellation): while held, a retry waits instead of issuing again.
        let _in_flight = scoped_token
            .as_ref()
            .map(|(t, _)| self.idempotency_in_flight.enter(t));
        let mut attempt = 0;
        let (prepared, intent) = loop {
            attempt += 1;
            let serial = Serial::random().map_err(|e| ApiError::internal("serial", e))?;
            let prepared = prepare(&issuer, &request, serial, now(), limits).map_err(map_issue)?;
            let intent = CertRecord {
                ca_id: ca_id.to_string(),
                serial: prepared.serial.to_hex(),
                status: CertStatus::Reserved,
                profile: request.profile.name().to_string(),
                subject: request.subject.to_string(),
                sans: request.sans.iter().map(|s| s.to_string()).collect(),
                key_algorithm: key_algorithm.clone(),
                not_before: prepared.not_before.unix_timestamp(),
                not_after: prepared.not_after.unix_timestamp(),
                tbs_sha256: ids::hex(&prepared.digest()),
                created_at: now().unix_timestamp(),
                requested_by: meta.requested_by.clone(),
                boot_id: self.store.boot_id().to_string(),
                server_generated_key: meta.server_generated_key,
                renewed_from: meta.renewed_from.clone(),
                revocation: None,
                requester_fingerprint: meta.requester_fingerprint.clone(),
            };
            let token = scoped_token.as_ref().map(|(t, h)| {
                (
                    t.clone(),
                    IdemRecord {
                        request_sha256: h.clone(),
                        ca_id: ca_id.to_string(),
                        serial: intent.serial.clone(),
                    },
                )
            });
            let outcome = self
                .store
                .reserve(intent.clone(), token, self.idempotency_in_flight.clone())
                .await;
            match outcome {
                Ok(ReserveOutcome::Reserved) => break (prepared, intent),
                Ok(ReserveOutcome::Existing(rec)) => {
                    return self.view(rec, &issuer).map(Signed::Stored)
                }
                Ok(ReserveOutcome::InProgress(rec)) => {
                    return self.wait_issued(rec, &issuer).await.map(Signed::Stored)
                }
                Err(StoreError::SerialTaken) if attempt < 3 => continue,
                Err(e) => return Err(e.into()),
            }
        };
        let signer = self.vault.signer(ca_id).map_err(map_vault)?;
        let issued = prepared.sign(signer.as_ref()).map_err(map_issue)?;
        let mut rec = intent;
        rec.status = CertStatus::Issued;
        Ok(Signed::New(CertView {
            record: rec,
            der: issued.der,
            chain_der: issuer.chain_der(),
        }))
    }

    /// Issue and store: the certificate and the call's audit entry in one
    /// commit, before anyone sees it.
    async fn issue(
        &self,
        ca_id: &str,
        request: CertificateRequest,
        limits: ValidityLimits,
        meta: IssueMeta,
    ) -> Result<CertView, ApiError> {
        let caller = meta.requested_by.clone();
        let view = match self.sign_reserved(ca_id, request, limits, meta).await? {
            Signed::Stored(v) => return Ok(v),
            Signed::New(v) => v,
        };
        let rec = &view.record;
        let target = format!("{}/{}", rec.ca_id, rec.serial);
        let draft = commit_draft(&caller, "IssueCertificate", &target);
        self.store
            .issue(rec.clone(), view.der.clone(), draft)
            .await?;
        crate::audit::committed();
        tracing::info!(ca = %ca_id, serial = %rec.serial, profile = %rec.profile, by = %rec.requested_by, "issued");
        Ok(view)
    }

    fn view(&self, record: CertRecord, issuer: &Issuer) -> Result<CertView, ApiError> {
        let (_, der) = self
            .store
            .get_cert(&record.ca_id, &record.serial)?
            .ok_or_else(|| ApiError::internal("idempotent replay", "record vanished"))?;
        let der = der.ok_or_else(|| ApiError::internal("idempotent replay", "no DER"))?;
        Ok(CertView {
            record,
            der,
            chain_der: issuer.chain_der(),
        })
    }

    /// Another request with the same idempotency token is signing: wait for it.
    async fn wait_issued(&self, rec: CertRecord, issuer: &Issuer) -> Result<CertView, ApiError> {
        for _ in 0..500 {
            tokio::time::sleep(Duration::from_millis(10)).await;
            if let Some((r, Some(_))) = self.store.get_cert(&rec.ca_id, &rec.serial)? {
                if r.status != CertStatus::Reserved {
                    return self.view(r, issuer);
                }
            }
        }
        Err(ApiError::conflict(
            "a request with this idempotency token is still in progress; retry later",
        ))
    }

    /// IssueCertificate: from a client's CSR.
    pub async fn issue_from_csr(
        &self,
        who: &Identity,
        ca_id: &str,
        csr: &str,
        profile: &str,
        validity_days: Option<u32>,
        token: Option<&str>,
    ) -> Result<CertView, ApiError> {
        let (ca_id, alias) = self.resolve_ca(ca_id)?;
        let ca_id = ca_id.as_str();
        let profile = parse_leaf_profile(profile)?;
        let limits = self.config.limits(profile);
        check_validity(validity_days, limits, profile.name())?;
        if let Some(t) = token {
            if !ids::is_token(t) {
                return Err(ApiError::invalid(
                    "idempotency_token must be 1 to 64 characters of A-Z a-z 0-9 . _ -",
                ));
            }
        }
        let csr = parse_csr(csr.as_bytes()).map_err(map_csr)?;
        let mut request = CertificateRequest::from_csr(&csr, profile);
        request.validity_days = validity_days;
        self.authorize_issue(
            who,
            (ca_id, alias.as_deref()),
            &request.sans,
            &request.subject,
            profile,
            validity_days.unwrap_or(limits.default_days),
        )?;
        let idempotency = token.map(|t| {
            let days = validity_days.unwrap_or(0).to_be_bytes();
            (
                t.to_string(),
                sha256_hex(&[ca_id.as_bytes(), &csr.der, profile.name().as_bytes(), &days]),
            )
        });
        let meta = IssueMeta {
            requested_by: who.display(),
            requester_fingerprint: Some(who.fingerprint.clone()).filter(|f| !f.is_empty()),
            idempotency,
            ..Default::default()
        };
        self.issue(ca_id, request, limits, meta).await
    }

    /// RequestCertificate with a server-made key: returns the certificate and
    /// the key; the key is not kept.
    pub async fn issue_with_new_key(
        &self,
        who: &Identity,
        ca_id: &str,
        r: &NewKeyRequest<'_>,
    ) -> Result<(CertView, SoftwareKey), ApiError> {
        let NewKeyRequest {
            names,
            subject,
            profile,
            key_algorithm,
            validity_days,
        } = *r;
        let (ca_id, alias) = self.resolve_ca(ca_id)?;
        let ca_id = ca_id.as_str();
        let profile = parse_leaf_profile(profile)?;
        let limits = self.config.limits(profile);
        check_validity(validity_days, limits, profile.name())?;
        let alg = parse_key_alg(key_algorithm)?;
        if names.is_empty() && subject.is_none() {
            return Err(ApiError::invalid(
                "names must list at least one DNS name, IP or email",
            ));
        }
        if names.len() > ca_core::csr::MAX_SANS {
            return Err(ApiError::invalid("too many names"));
        }
        let sans = names
            .iter()
            .map(|n| SanEntry::parse(n).map_err(|e| ApiError::invalid(e.to_string())))
            .collect::<Result<Vec<_>, _>>()?;
        let subject = match subject {
            Some(s) => parse_subject(s)?,
            None => {
                // The first name's value (`DNS:web.example` gives `web.example`).
                let cn = sans.first().map(SanEntry::value).unwrap_or_default();
                if cn.chars().count() <= 64 && !cn.is_empty() {
                    let escaped = cn
                        .replace('\\', "\\\\")
                        .replace(',', "\\,")
                        .replace('+', "\\+");
                    ca_core::names::parse_subject(&format!("CN={escaped}")).unwrap_or_default()
                } else {
                    Name::default()
                }
            }
        };
        self.authorize_issue(
            who,
            (ca_id, alias.as_deref()),
            &sans,
            &subject,
            profile,
            validity_days.unwrap_or(limits.default_days),
        )?;
        // Refuse early (before the costly key generation) if the CA cannot issue.
        self.active_issuer(ca_id)?;
        let key = generate_key(alg).await?;
        let request = CertificateRequest {
            subject,
            spki_der: key.public_key_der().to_vec(),
            sans,
            profile,
            validity_days,
            name_constraints: None,
        };
        let meta = IssueMeta {
            requested_by: who.display(),
            requester_fingerprint: Some(who.fingerprint.clone()).filter(|f| !f.is_empty()),
            server_generated_key: true,
            ..Default::default()
        };
        let view = self.issue(ca_id, request, limits, meta).await?;
        Ok((view, key))
    }

    /// Find a certificate by serial (and CA, when given).
    pub fn get_certificate(&self, ca_id: Option<&str>, serial: &str) -> Result<CertView, ApiError> {
        let serial = parse_serial(serial)?;
        let ca_id = match ca_hint(ca_id) {
            Some(c) => {
                check_ca_id(c)?;
                c.to_string()
            }
            None => self
                .store
                .ca_of_serial(&serial)?
                .ok_or_else(|| ApiError::not_found(format!("no certificate {serial}")))?,
        };
        let (rec, der) = self
            .store
            .get_cert(&ca_id, &serial)?
            .ok_or_else(|| ApiError::not_found(format!("no certificate {serial}")))?;
        let der = match (rec.status, der) {
            (CertStatus::Reserved, _) | (_, None) => {
                return Err(ApiError::not_found(format!("no certificate {serial}")))
            }
            (_, Some(d)) => d,
        };
        let ca = self.get_ca(&ca_id)?;
        let issuer = self.issuer(&ca)?;
        Ok(CertView {
            record: rec,
            der,
            chain_der: issuer.chain_der(),
        })
    }

    pub fn list_certificates(
        &self,
        filter: CertFilter,
        status: Option<&str>,
    ) -> Result<(Vec<CertRecord>, Option<String>), ApiError> {
        if let Some(c) = &filter.ca_id {
            check_ca_id(c)?;
        }
        let now = now().unix_timestamp();
        let status = status.map(str::to_string);
        let (items, next) = self
            .store
            .list_certs(&filter, &|r: &CertRecord| match status.as_deref() {
                None => r.status != CertStatus::Reserved,
                Some(s) => effective_status(r, now) == s,
            })?;
        Ok((items, next))
    }

    /// RenewCertificate: same names and profile, new validity, optionally a new key.
    pub async fn renew(
        &self,
        who: &Identity,
        ca_id: Option<&str>,
        serial: &str,
        csr: Option<&str>,
        validity_days: Option<u32>,
        token: Option<&str>,
    ) -> Result<CertView, ApiError> {
        let old = self.get_certificate(ca_id, serial)?;
        // Renewing through an alias issues from the CA it names now, so a
        // certificate of a retired CA renews from its successor.
        let (ca_id, alias) = match ca_id.filter(|c| crate::alias::is_alias(c)) {
            Some(a) => self.resolve_ca(a)?,
            None => (old.record.ca_id.clone(), None),
        };
        let profile = parse_leaf_profile(&old.record.profile)?;
        let limits = self.config.limits(profile);
        check_validity(validity_days, limits, profile.name())?;
        if let Some(t) = token {
            if !ids::is_token(t) {
                return Err(ApiError::invalid(
                    "idempotency_token must be 1 to 64 characters of A-Z a-z 0-9 . _ -",
                ));
            }
        }
        let cert = Certificate::from_der(&old.der)
            .map_err(|e| ApiError::internal("stored certificate", e))?;
        let spki_der = match csr {
            Some(c) => parse_csr(c.as_bytes()).map_err(map_csr)?.spki_der,
            None => {
                if old.record.server_generated_key {
                    return Err(ApiError::invalid(
                        "this certificate's key was made by the server and not kept: renew with a csr, or request a new certificate",
                    ));
                }
                cert.tbs_certificate
                    .subject_public_key_info
                    .to_der()
                    .map_err(|e| ApiError::internal("stored certificate", e))?
            }
        };
        let request = CertificateRequest {
            subject: cert.tbs_certificate.subject.clone(),
            spki_der: spki_der.clone(),
            sans: sans_of(&cert),
            profile,
            validity_days,
            name_constraints: None,
        };
        self.authorize_issue(
            who,
            (&ca_id, alias.as_deref()),
            &request.sans,
            &request.subject,
            profile,
            validity_days.unwrap_or(limits.default_days),
        )?;
        // A revoked certificate's key may be compromised: renewal (which by
        // default keeps the key) would certify it again. Checked after the
        // policy so callers without issue rights learn nothing more.
        if old.record.status == CertStatus::Revoked {
            return Err(ApiError::new(
                ErrorCode::InvalidState,
                "revoked certificates cannot be renewed; request a new certificate with a new key",
            ));
        }
        let idempotency = token.map(|t| {
            let days = validity_days.unwrap_or(0).to_be_bytes();
            (
                t.to_string(),
                sha256_hex(&[b"renew", old.record.serial.as_bytes(), &spki_der, &days]),
            )
        });
        let meta = IssueMeta {
            requested_by: who.display(),
            requester_fingerprint: Some(who.fingerprint.clone()).filter(|f| !f.is_empty()),
            renewed_from: Some(old.record.serial.clone()),
            idempotency,
            ..Default::default()
        };
        self.issue(&ca_id, request, limits, meta).await
    }

    pub async fn revoke(
        &self,
        who: &Identity,
        ca_id: Option<&str>,
        serial: &str,
        reason: &RevocationReason,
    ) -> Result<CertRecord, ApiError> {
        let serial = parse_serial(serial)?;
        let ca_id = match ca_hint(ca_id) {
            Some(c) => {
                check_ca_id(c)?;
                c.to_string()
            }
            None => match self.store.ca_of_serial(&serial)? {
                Some(c) => c,
                None => {
                    // An unknown serial is judged as a revoke on `*`, so a
                    // caller without the grant cannot probe which serials exist.
                    self.authorize(
                        who,
                        PolicyAction::Revoke,
                        &PolicyRequest {
                            ca: "*",
                            ..Default::default()
                        },
                    )?;
                    return Err(ApiError::not_found(format!("no certificate {serial}")));
                }
            },
        };
        // The owner is looked up first so a revoke-own grant can be judged; a
        // caller without any revoke grant is refused before learning more.
        let owner = self
            .store
            .get_cert(&ca_id, &serial)?
            .and_then(|(r, _)| r.requester_fingerprint);
        self.authorize(
            who,
            PolicyAction::Revoke,
            &PolicyRequest {
                ca: &ca_id,
                owner_fingerprint: owner.as_deref(),
                ..Default::default()
            },
        )?;
        let rev = Revocation {
            reason_code: reason.code,
            reason: reason.name.to_string(),
            revoked_at: now().unix_timestamp(),
            revoked_by: who.display(),
        };
        let draft = commit_draft(
            &who.display(),
            "RevokeCertificate",
            &format!("{ca_id}/{serial}"),
        );
        let rec = self.store.revoke(&ca_id, &serial, rev, draft).await?;
        crate::audit::committed();
        tracing::info!(ca = %ca_id, serial = %serial, reason = reason.name, by = %who.display(), "revoked");
        Ok(rec)
    }

    /// CreateCertificateAuthority: the key, the certificate, the record and
    /// the audit entry in one commit.
    pub async fn create_ca(&self, who: &Identity, new: NewCa) -> Result<CaRecord, ApiError> {
        let (new, key) = self.prepare_ca(who, new).await?;
        let id = new.ca.id.clone();
        let draft = commit_draft(&who.display(), "CreateCertificateAuthority", &id);
        let rec = self.store.create_ca(new, draft).await?;
        crate::audit::committed();
        self.vault.cache(&id, key);
        tracing::info!(ca = %rec.id, subject = %rec.subject, status = ?rec.status, by = %who.display(), "CA created");
        Ok(rec)
    }

    /// Everything a new CA needs before its one commit: authorised, its key
    /// made and sealed, its certificate signed (under a reservation).
    async fn prepare_ca(
        &self,
        who: &Identity,
        new: NewCa,
    ) -> Result<(NewCaRecord, SoftwareKey), ApiError> {
        // A root has no parent to scope the grant to: it needs administer on `*`.
        self.authorize(
            who,
            PolicyAction::Administer,
            &PolicyRequest {
                ca: new.parent_ca_id.as_deref().unwrap_or("*"),
                ..Default::default()
            },
        )?;
        let alg = parse_key_alg(&new.key_algorithm)?;
        let subject = parse_subject(&new.subject)?;
        let name_constraints = new
            .name_constraints
            .as_ref()
            .map(parse_name_constraints)
            .transpose()?;
        let id = ids::new_ca_id().map_err(|e| ApiError::internal("CA id", e))?;
        let t = now();
        let mut rec = CaRecord {
            id: id.clone(),
            ca_type: new.ca_type,
            status: CaStatus::Active,
            subject: subject.to_string(),
            key_algorithm: alg.name().to_string(),
            certificate_pem: None,
            chain_pem: vec![],
            parent_ca_id: None,
            external: false,
            csr_pem: None,
            serial: None,
            not_before: None,
            not_after: None,
            path_len: new.path_len,
            created_at: t.unix_timestamp(),
            updated_at: t.unix_timestamp(),
        };
        match (new.ca_type, &new.parent_ca_id, new.external) {
            (CaType::Root, None, false) => {
                let days = new.validity_days.unwrap_or(ca_core::cert::DEFAULT_ROOT_DAYS);
                if days == 0 || days > 36500 {
                    return Err(ApiError::invalid("validity_days for a root must be 1 to 36500"));
                }
                let key = generate_key(alg).await?;
                let mut params = RootParams::new(subject);
                params.validity_days = days;
                params.path_len = new.path_len;
                params.name_constraints = name_constraints;
                let cert = create_root(&key, &params, t).map_err(map_issue)?;
                fill_cert(&mut rec, &cert, vec![]);
                let sealed = self.vault.seal(&id, &key).map_err(map_vault)?;
                Ok((
                    NewCaRecord {
                        ca: rec,
                        sealed_key: sealed,
                        certificate: None,
                    },
                    key,
                ))
            }
            (CaType::Root, _, _) => {
                Err(ApiError::invalid(
                    "a ROOT CA has no parent_ca_id and is not external",
                ))
            }
            (CaType::Subordinate, Some(parent), false) => {
                check_ca_id(parent)?;
                let profile = Profile::SubordinateCa {
                    path_len: new.path_len,
                };
                let limits = self.config.limits(profile);
                check_validity(new.validity_days, limits, "subordinate CAs")?;
                let (prec, pissuer) = self.active_issuer(parent)?;
                let key = generate_key(alg).await?;
                let spki = key.public_key_der().to_vec();
                let sealed = self.vault.seal(&id, &key).map_err(map_vault)?;
                let request = CertificateRequest {
                    subject,
                    spki_der: spki,
                    sans: vec![],
                    profile,
                    validity_days: new.validity_days,
                    name_constraints,
                };
                let meta = IssueMeta {
                    requested_by: who.display(),
            requester_fingerprint: Some(who.fingerprint.clone()).filter(|f| !f.is_empty()),
                    ..Default::default()
                };
                let view = match self.sign_reserved(&prec.id, request, limits, meta).await? {
                    Signed::New(v) => v,
                    Signed::Stored(_) => {
                        return Err(ApiError::internal("new CA certificate", "replayed"))
                    }
                };
                let cert = CaCertificate::parse(&view.der)
                    .map_err(|e| ApiError::internal("new CA certificate", e))?;
                fill_cert(&mut rec, &cert, pissuer.chain_der());
                rec.parent_ca_id = Some(prec.id.clone());
                Ok((
                    NewCaRecord {
                        ca: rec,
                        sealed_key: sealed,
                        certificate: Some((view.record, view.der)),
                    },
                    key,
                ))
            }
            (CaType::Subordinate, None, true) => {
                let key = generate_key(alg).await?;
                let csr = create_csr(&key, &subject, &[])
                    .map_err(|e| ApiError::internal("CA CSR", e))?;
                let sealed = self.vault.seal(&id, &key).map_err(map_vault)?;
                rec.status = CaStatus::PendingCertificate;
                rec.external = true;
                rec.csr_pem = Some(ca_core::pem::encode("CERTIFICATE REQUEST", &csr));
                Ok((
                    NewCaRecord {
                        ca: rec,
                        sealed_key: sealed,
                        certificate: None,
                    },
                    key,
                ))
            }
            (CaType::Subordinate, _, _) => {
                Err(ApiError::invalid(
                    "a SUBORDINATE CA needs either parent_ca_id (signed here) or external: true (signed elsewhere), not both",
                ))
            }
        }
    }

    /// ImportCertificateAuthorityCertificate: the externally signed certificate
    /// of a pending CA, with its chain (issuer first, up to the root).
    pub async fn import_ca_certificate(
        &self,
        who: &Identity,
        ca_id: &str,
        certificate: &str,
        chain: &str,
    ) -> Result<CaRecord, ApiError> {
        let rec = self.get_ca(ca_id)?;
        self.authorize(
            who,
            PolicyAction::Administer,
            &PolicyRequest {
                ca: ca_id,
                ..Default::default()
            },
        )?;
        if rec.status != CaStatus::PendingCertificate {
            return Err(ApiError::new(
                ErrorCode::InvalidState,
                format!("CA {ca_id} is not waiting for a certificate"),
            ));
        }
        let bad = |m: String| ApiError::new(ErrorCode::MalformedCertificate, m);
        let parents = ca_core::pem::decode_all("CERTIFICATE", chain)
            .map_err(|e| bad(format!("certificate_chain: {e}")))?
            .iter()
            .map(|d| CaCertificate::parse(d).map_err(|e| bad(format!("certificate_chain: {e}"))))
            .collect::<Result<Vec<_>, _>>()?;
        if parents.is_empty() {
            return Err(bad(
                "certificate_chain must hold the issuer up to the root".into()
            ));
        }
        let signer = self.vault.signer(ca_id).map_err(map_vault)?;
        let cert = import_signed_ca(
            certificate.as_bytes(),
            signer.public_key_der(),
            &parents,
            now(),
        )
        .map_err(|e| bad(e.to_string()))?;
        let chain_der: Vec<Vec<u8>> = parents.iter().map(|p| p.der.clone()).collect();
        let draft = commit_draft(
            &who.display(),
            "ImportCertificateAuthorityCertificate",
            ca_id,
        );
        let updated = self
            .store
            .update_ca(
                ca_id,
                Box::new(move |r| {
                    if r.status != CaStatus::PendingCertificate {
                        return Err(StoreError::Conflict(
                            "CA is not waiting for a certificate".into(),
                        ));
                    }
                    fill_cert(r, &cert, chain_der);
                    r.status = CaStatus::Active;
                    r.updated_at = now().unix_timestamp();
                    Ok(())
                }),
                draft,
            )
            .await?;
        crate::audit::committed();
        tracing::info!(ca = %ca_id, by = %who.display(), "CA certificate imported");
        Ok(updated)
    }

    /// UpdateCertificateAuthority (status ACTIVE / DISABLED).
    pub async fn update_ca_status(
        &self,
        who: &Identity,
        ca_id: &str,
        status: &str,
    ) -> Result<CaRecord, ApiError> {
        check_ca_id(ca_id)?;
        self.authorize(
            who,
            PolicyAction::Administer,
            &PolicyRequest {
                ca: ca_id,
                ..Default::default()
            },
        )?;
        let target = match status {
            "ACTIVE" => CaStatus::Active,
            "DISABLED" => CaStatus::Disabled,
            _ => return Err(ApiError::invalid("status must be ACTIVE or DISABLED")),
        };
        let draft = commit_draft(&who.display(), "UpdateCertificateAuthority", ca_id);
        let rec = self
            .store
            .update_ca(
                ca_id,
                Box::new(move |r| {
                    if r.status == CaStatus::PendingCertificate {
                        return Err(StoreError::Conflict(
                            "the CA is waiting for its certificate; import it first".into(),
                        ));
                    }
                    if r.status == CaStatus::Retired {
                        return Err(StoreError::Conflict(
                            "the CA is retired; it stays retired".into(),
                        ));
                    }
                    r.status = target;
                    r.updated_at = now().unix_timestamp();
                    Ok(())
                }),
                draft,
            )
            .await?;
        crate::audit::committed();
        tracing::info!(ca = %ca_id, status = ?target, by = %who.display(), "CA status changed");
        Ok(rec)
    }
}

fn fill_cert(rec: &mut CaRecord, cert: &CaCertificate, chain_der: Vec<Vec<u8>>) {
    rec.certificate_pem = Some(cert.to_pem());
    rec.chain_pem = chain_der
        .iter()
        .map(|d| ca_core::pem::encode("CERTIFICATE", d))
        .collect();
    rec.serial = Some(cert.serial().to_hex());
    rec.not_before = Some(cert.not_before.unix_timestamp());
    rec.not_after = Some(cert.not_after.unix_timestamp());
    rec.path_len = cert.path_len;
}

fn parse_name_constraints(nc: &NameConstraintsInput) -> Result<NameConstraintsSpec, ApiError> {
    let ip = |v: &[String]| {
        v.iter()
            .map(|s| {
                IpNet::from_str(s).map_err(|e| ApiError::invalid(format!("name_constraints: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()
    };
    for d in nc.permitted_dns.iter().chain(&nc.excluded_dns) {
        ca_core::names::validate_dns_name(d.strip_prefix('.').unwrap_or(d))
            .map_err(|e| ApiError::invalid(format!("name_constraints: {e}")))?;
    }
    Ok(NameConstraintsSpec {
        permitted_dns: nc.permitted_dns.clone(),
        excluded_dns: nc.excluded_dns.clone(),
        permitted_ip: ip(&nc.permitted_ip)?,
        excluded_ip: ip(&nc.excluded_ip)?,
    })
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

/// RFC 5280 CRLReason, by code or by ACM PCA's name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevocationReason {
    pub code: u8,
    pub name: &'static str,
}

const REASONS: &[(u8, &str)] = &[
    (0, "UNSPECIFIED"),
    (1, "KEY_COMPROMISE"),
    (2, "CERTIFICATE_AUTHORITY_COMPROMISE"),
    (3, "AFFILIATION_CHANGED"),
    (4, "SUPERSEDED"),
    (5, "CESSATION_OF_OPERATION"),
    (6, "CERTIFICATE_HOLD"),
    (9, "PRIVILEGE_WITHDRAWN"),
    (10, "A_A_COMPROMISE"),
];

impl RevocationReason {
    pub fn from_code(code: i64) -> Result<Self, ApiError> {
        REASONS
            .iter()
            .find(|(c, _)| i64::from(*c) == code)
            .map(|(c, n)| RevocationReason { code: *c, name: n })
            .ok_or_else(|| {
                ApiError::invalid(
                    "reason must be an RFC 5280 CRLReason code (0-6, 9, 10) or its name",
                )
            })
    }

    pub fn from_name(name: &str) -> Result<Self, ApiError> {
        REASONS
            .iter()
            .find(|(_, n)| n.eq_ignore_ascii_case(name))
            .map(|(c, n)| RevocationReason { code: *c, name: n })
            .ok_or_else(|| {
                ApiError::invalid(
                    "reason must be an RFC 5280 CRLReason code (0-6, 9, 10) or its name",
                )
            })
    }
}
