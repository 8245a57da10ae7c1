//! The CA lifecycle: create (root, subordinate signed here, or subordinate
//! waiting for an external signature), import an external signature, enable
//! or disable; and the policy-checked reads of a CA (describe, its CSR, its
//! certificate, the list a caller may see).

use ca_core::cert::{create_root, import_signed_ca, CaCertificate, CertificateRequest, RootParams};
use ca_core::csr::create_csr;
use std::sync::Arc;

use ca_core::keys::{KeyAlgorithm, PublicKeyKind, Signer};
use ca_core::profile::Profile;

use super::issuance::Signed;
use super::parse::{
    check_validity, generate_key, parse_key_alg, parse_name_constraints, parse_subject,
};
use super::{check_ca_id, map_issue, map_vault, Authority, Identity, IssueMeta};
use crate::error::{ApiError, ErrorCode};
use crate::ids;
use crate::store::{CaRecord, CaStatus, CaType, NewCaRecord, StoreError};

pub struct NewCa {
    pub ca_type: CaType,
    pub subject: String,
    pub key_algorithm: String,
    pub parent_ca_id: Option<String>,
    pub external: bool,
    pub validity_days: Option<u32>,
    pub path_len: Option<u8>,
    pub name_constraints: Option<NameConstraintsInput>,
    pub key_storage: KeyStorage,
    /// Run no OCSP responder for this CA (its certificates carry no OCSP URL).
    pub ocsp_disabled: bool,
}

/// Where a new CA's key is made.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum KeyStorage {
    /// In memory, sealed into the store under the master key.
    #[default]
    Software,
    /// Generated inside the configured PKCS#11 token, never extractable.
    Pkcs11,
    /// An existing key in the token, by label.
    Pkcs11Existing(String),
}

/// A new CA's key: its signer, and what the store keeps (the sealed key or
/// the token reference).
pub(super) struct MadeKey {
    pub signer: Arc<dyn Signer>,
    stored: Vec<u8>,
}

/// The API name of a key (`ec-p256`, `rsa-3072`, ...).
fn key_algorithm_name(kind: PublicKeyKind) -> String {
    match kind {
        PublicKeyKind::EcP256 => KeyAlgorithm::EcdsaP256.name().into(),
        PublicKeyKind::EcP384 => KeyAlgorithm::EcdsaP384.name().into(),
        PublicKeyKind::Ed25519 => KeyAlgorithm::Ed25519.name().into(),
        PublicKeyKind::Rsa { bits } => format!("rsa-{bits}"),
    }
}

fn map_hsm(e: crate::hsm::HsmError) -> ApiError {
    use crate::hsm::HsmError as H;
    match e {
        H::NoSuchKey(_) | H::AmbiguousKey { .. } | H::Extractable(_) | H::Key { .. } => {
            ApiError::invalid(e.to_string())
        }
        H::Unavailable(_) | H::Lost(_) | H::WrongPin | H::PinLocked => {
            ApiError::new(ErrorCode::Unavailable, e.to_string())
        }
        other => ApiError::internal("PKCS#11 token", other),
    }
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

/// The longest root lifetime accepted (100 years).
const MAX_ROOT_DAYS: u32 = 36500;

pub(super) fn fill_cert(rec: &mut CaRecord, cert: &CaCertificate, chain_der: Vec<Vec<u8>>) {
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

impl Authority {
    /// DescribeCertificateAuthority.
    pub fn describe_ca(&self, who: &Identity, id: &str) -> Result<CaRecord, ApiError> {
        self.authorize_read(who, id)?;
        self.get_ca(id)
    }

    /// GetCertificateAuthorityCsr: the CA and its CSR (only a CA made for an
    /// external signature has one). Needs `administer` on the CA: the CSR is
    /// a step of the CA's setup (taken to an external signer, whose answer
    /// only an administrator may import), not something readers need.
    pub fn ca_csr(&self, who: &Identity, id: &str) -> Result<(CaRecord, String), ApiError> {
        self.authorize_administer(who, id)?;
        let rec = self.get_ca(id)?;
        match rec.csr_pem.clone() {
            Some(csr) => Ok((rec, csr)),
            None => Err(ApiError::new(
                ErrorCode::InvalidState,
                "this CA was not created for an external signature, so it has no CSR",
            )),
        }
    }

    /// GetCertificateAuthorityCertificate: the CA and its certificate PEM.
    pub fn ca_certificate(&self, who: &Identity, id: &str) -> Result<(CaRecord, String), ApiError> {
        let rec = self.describe_ca(who, id)?;
        let cert = rec.certificate_pem.clone().ok_or_else(|| {
            ApiError::new(
                ErrorCode::InvalidState,
                "the CA has no certificate yet (PENDING_CERTIFICATE)",
            )
        })?;
        Ok((rec, cert))
    }

    /// ListCertificateAuthorities: only the CAs this caller may read.
    pub fn list_readable_cas(&self, who: &Identity) -> Result<Vec<CaRecord>, ApiError> {
        let mut cas = self.list_cas()?;
        cas.retain(|c| self.may_read(who, &c.id));
        crate::audit::record(
            true,
            None,
            format!("listed the {} CA(s) this identity may read", cas.len()),
            "",
        );
        Ok(cas)
    }

    /// CreateCertificateAuthority: the key, the certificate, the record and
    /// the audit entry in one commit.
    pub async fn create_ca(&self, who: &Identity, new: NewCa) -> Result<CaRecord, ApiError> {
        let (new, key) = self.prepare_ca(who, new).await?;
        let id = new.ca.id.clone();
        let draft = self.draft(&who.display(), "CreateCertificateAuthority", &id);
        let rec = self.store.create_ca(new, draft).await?;
        crate::audit::committed();
        self.vault.cache(&id, key.signer);
        tracing::info!(ca = %rec.id, subject = %rec.subject, status = ?rec.status, by = %who.display(), "CA created");
        Ok(rec)
    }

    /// Make (or adopt) a new CA's key where `storage` says, and note in the
    /// record where it lives. Software keys are sealed under the master key;
    /// token keys are made inside the token (off the async threads: RSA
    /// generation takes seconds) and only their reference is stored.
    pub(super) async fn make_key(
        &self,
        id: &str,
        alg: KeyAlgorithm,
        storage: &KeyStorage,
        rec: &mut CaRecord,
    ) -> Result<MadeKey, ApiError> {
        let token = match storage {
            KeyStorage::Software => {
                let key = generate_key(alg).await?;
                let stored = self.vault.seal(id, &key).map_err(map_vault)?;
                return Ok(MadeKey {
                    signer: Arc::new(key),
                    stored,
                });
            }
            KeyStorage::Pkcs11 | KeyStorage::Pkcs11Existing(_) => {
                self.vault.token().cloned().ok_or_else(|| {
                    ApiError::new(
                        ErrorCode::InvalidState,
                        "key_storage pkcs11 needs a [pkcs11] token in the server's config.toml",
                    )
                })?
            }
        };
        if let KeyStorage::Pkcs11Existing(l) = storage {
            // One token key, one CA: two CAs on one key would share every
            // signature, and revoking one would not stop the other.
            let cas = self.store.list_cas()?;
            if let Some(other) = cas
                .iter()
                .find(|c| c.token_key_label.as_deref() == Some(l.as_str()))
            {
                return Err(ApiError::new(
                    ErrorCode::Conflict,
                    format!(
                        "the token key labelled {l:?} is already the key of CA {}",
                        other.id
                    ),
                ));
            }
        }
        let storage = storage.clone();
        let label = id.to_string();
        let (reference, signer) = tokio::task::spawn_blocking(move || {
            let reference = match &storage {
                KeyStorage::Pkcs11Existing(l) => token.adopt(l)?,
                _ => token.generate(alg, &label)?,
            };
            let signer = token.signer(&reference)?;
            Ok::<_, crate::hsm::HsmError>((reference, signer))
        })
        .await
        .map_err(|e| ApiError::internal("token key task", e))?
        .map_err(map_hsm)?;
        let kind = PublicKeyKind::from_spki_der(signer.public_key_der())
            .map_err(|e| ApiError::internal("token key", e))?;
        let found = key_algorithm_name(kind);
        if found != alg.name() {
            return Err(ApiError::invalid(format!(
                "the token key labelled {:?} is {found}, not {alg}: give key_algorithm {found}",
                reference.label
            )));
        }
        rec.token_key_label = Some(reference.label.clone());
        Ok(MadeKey {
            signer: Arc::new(signer),
            stored: reference.to_bytes(),
        })
    }

    /// Everything a new CA needs before its one commit: authorised, its key
    /// made and sealed, its certificate signed (under a reservation).
    pub(super) async fn prepare_ca(
        &self,
        who: &Identity,
        new: NewCa,
    ) -> Result<(NewCaRecord, MadeKey), ApiError> {
        self.authorize_administer(who, new.parent_ca_id.as_deref().unwrap_or("*"))?;
        let alg = parse_key_alg(&new.key_algorithm)?;
        let subject = parse_subject(&new.subject)?;
        let name_constraints = new
            .name_constraints
            .as_ref()
            .map(parse_name_constraints)
            .transpose()?;
        let id = ids::new_ca_id().map_err(|e| ApiError::internal("CA id", e))?;
        let t = self.now();
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
            token_key_label: None,
            ocsp_disabled: new.ocsp_disabled,
        };
        match (new.ca_type, &new.parent_ca_id, new.external) {
            (CaType::Root, None, false) => {
                let days = new.validity_days.unwrap_or(ca_core::cert::DEFAULT_ROOT_DAYS);
                if days == 0 || days > MAX_ROOT_DAYS {
                    return Err(ApiError::invalid("validity_days for a root must be 1 to 36500"));
                }
                let key = self.make_key(&id, alg, &new.key_storage, &mut rec).await?;
                let mut params = RootParams::new(subject);
                params.validity_days = days;
                params.path_len = new.path_len;
                params.name_constraints = name_constraints;
                let cert = create_root(key.signer.as_ref(), &params, t).map_err(map_issue)?;
                fill_cert(&mut rec, &cert, vec![]);
                let new = NewCaRecord {
                    ca: rec,
                    sealed_key: key.stored.clone(),
                    certificate: None,
                };
                Ok((new, key))
            }
            (CaType::Root, _, _) => Err(ApiError::invalid(
                "a ROOT CA has no parent_ca_id and is not external",
            )),
            (CaType::Subordinate, Some(parent), false) => {
                check_ca_id(parent)?;
                let profile = Profile::SubordinateCa {
                    path_len: new.path_len,
                };
                let limits = self.config.limits(profile);
                check_validity(new.validity_days, limits, "subordinate CAs")?;
                let (prec, pissuer) = self.active_issuer(parent)?;
                let key = self.make_key(&id, alg, &new.key_storage, &mut rec).await?;
                let spki = key.signer.public_key_der().to_vec();
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
                    requester_fingerprint: who.requester_fingerprint(),
                    ..Default::default()
                };
                let view = match self.sign_reserved(&prec.id, request, limits, meta).await? {
                    // No idempotency token here: no guard to hold.
                    Signed::New { view, .. } => view,
                    Signed::Stored(_) => {
                        return Err(ApiError::internal("new CA certificate", "replayed"))
                    }
                };
                let cert = CaCertificate::parse(&view.der)
                    .map_err(|e| ApiError::internal("new CA certificate", e))?;
                fill_cert(&mut rec, &cert, pissuer.chain_der());
                rec.parent_ca_id = Some(prec.id.clone());
                let new = NewCaRecord {
                    ca: rec,
                    sealed_key: key.stored.clone(),
                    certificate: Some((view.record, view.der)),
                };
                Ok((new, key))
            }
            (CaType::Subordinate, None, true) => {
                let key = self.make_key(&id, alg, &new.key_storage, &mut rec).await?;
                let csr = create_csr(key.signer.as_ref(), &subject, &[])
                    .map_err(|e| ApiError::internal("CA CSR", e))?;
                rec.status = CaStatus::PendingCertificate;
                rec.external = true;
                rec.csr_pem = Some(ca_core::pem::encode("CERTIFICATE REQUEST", &csr));
                let new = NewCaRecord {
                    ca: rec,
                    sealed_key: key.stored.clone(),
                    certificate: None,
                };
                Ok((new, key))
            }
            (CaType::Subordinate, _, _) => Err(ApiError::invalid(
                "a SUBORDINATE CA needs either parent_ca_id (signed here) or external: true (signed elsewhere), not both",
            )),
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
        self.authorize_administer(who, ca_id)?;
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
        let now = self.now();
        let cert = import_signed_ca(
            certificate.as_bytes(),
            signer.public_key_der(),
            &parents,
            now,
        )
        .map_err(|e| bad(e.to_string()))?;
        let chain_der: Vec<Vec<u8>> = parents.iter().map(|p| p.der.clone()).collect();
        let draft = self.draft(
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
                    r.updated_at = now.unix_timestamp();
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
        self.authorize_administer(who, ca_id)?;
        let target = match status {
            "ACTIVE" => CaStatus::Active,
            "DISABLED" => CaStatus::Disabled,
            _ => return Err(ApiError::invalid("status must be ACTIVE or DISABLED")),
        };
        let draft = self.draft(&who.display(), "UpdateCertificateAuthority", ca_id);
        let updated_at = self.now().unix_timestamp();
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
                    r.updated_at = updated_at;
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
