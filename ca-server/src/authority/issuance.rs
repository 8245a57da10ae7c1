//! Issuance: a certificate from a client's CSR, from a key the server makes,
//! or renewed from one already issued; and the policy-checked reads of
//! issued certificates. Every path goes through one `sign_reserved`: with an
//! idempotency token the intent is recorded durably before the signer signs;
//! without one, nothing is written before signing (and a CSR's proof of
//! possession may be checked on another core meanwhile: `PendingProof`,
//! awaited before anything else is decided). Either way the
//! certificate commits with its audit entry (and, without an intent, the
//! claim of its serial) before anyone sees it: one durable commit per
//! certificate on the common path.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use ca_core::cert::{prepare, CertificateRequest, Issuer};
use ca_core::csr::{parse_csr, parse_csr_deferring_proof, Csr};
use ca_core::keys::{Signer, SoftwareKey};
use ca_core::profile::{Profile, ValidityLimits};
use ca_core::serial::Serial;
use der::{Decode, Encode};
use x509_cert::Certificate;

use super::parse::{
    check_token, check_validity, generate_key, parse_key_alg, parse_names, sans_of, sha256_hex,
    spki_sha256,
};
use super::proof::{PendingProof, ProofHelper};
use super::{
    ca_hint, check_ca_id, effective_status, map_csr, map_issue, map_vault, parse_leaf_profile,
    parse_serial, Authority, CertView, Identity, IssueMeta, NewKeyRequest,
};
use crate::error::{ApiError, ErrorCode};
use crate::store::{CertFilter, CertRecord, CertStatus, IdemRecord, ReserveOutcome, StoreError};

/// What signing under a reservation gave.
pub(super) enum Signed {
    /// Signed now; not stored yet. The guard marks the idempotency token
    /// (if any) in flight: hold it until the certificate is stored, or a
    /// retry arriving meanwhile takes the reservation as abandoned and
    /// issues a second certificate.
    New {
        view: CertView,
        /// The SHA-256 of the certified key (hashed once per request: the
        /// store files blocked keys under it).
        key_sha256: String,
        in_flight: Option<crate::store::InFlightGuard>,
    },
    /// The idempotency token named a certificate already stored.
    Stored(CertView),
}

/// A CSR as issuance takes it.
enum CsrSource<'a> {
    /// As the request sent it (PEM or DER): parsed and checked here (by the
    /// helper, when one was woken for it).
    Text(&'a str, Option<ProofHelper>),
    /// Parsed by [`parse_csr`], its proof of possession checked.
    Proven(Csr),
}

/// A request that keeps a serial clash (random 128-bit serials: next to
/// impossible) from looping.
const SERIAL_ATTEMPTS: u32 = 3;

impl Authority {
    /// The heart of issuance: prepare + lint, record the intent durably and
    /// sign; the caller stores the result (alone, or with the CA it makes).
    pub(super) async fn sign_reserved(
        &self,
        ca_id: &str,
        request: CertificateRequest,
        limits: ValidityLimits,
        meta: IssueMeta,
    ) -> Result<Signed, ApiError> {
        let (_, issuer) = self.active_issuer(ca_id)?;
        // A key revoked for keyCompromise is never certified again (CA/B BR
        // 6.1.1.3), whichever path brings it: a CSR, or a renewal. Checked
        // before anything is reserved, so a retry with an idempotency token is
        // refused too rather than handed the revoked certificate.
        // The same refusal (403 BlockedKey, naming the revoked certificate) as
        // the store gives when the key is blocked by the time it stores.
        let key_sha256 = spki_sha256(&request.spki_der);
        if let Some(blocked) = self.store.blocked_key(&key_sha256)? {
            return Err(StoreError::KeyBlocked(blocked).into());
        }
        if self.weak_keys.lists_spki(&request.spki_der) {
            return Err(ApiError::new(
                ErrorCode::BlockedKey,
                "this public key is on a list of known weak keys (such as Debian's, CVE-2008-0166): its private key is known; make a new key",
            ));
        }
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
        let in_flight = scoped_token
            .as_ref()
            .map(|(t, _)| self.idempotency_in_flight.enter(t));
        let mut attempt = 0;
        let (prepared, intent) = loop {
            attempt += 1;
            let now = self.now();
            let serial = Serial::time_ordered(now).map_err(|e| ApiError::internal("serial", e))?;
            let prepared = prepare(&issuer, &request, serial, now, limits).map_err(map_issue)?;
            let intent = CertRecord {
                ca_id: ca_id.to_string(),
                serial: prepared.serial.to_hex(),
                status: CertStatus::Reserved,
                profile: request.profile.name().to_string(),
                subject: ca_core::names::rfc4514(&request.subject),
                sans: request.sans.iter().map(|s| s.to_string()).collect(),
                key_algorithm: key_algorithm.clone(),
                not_before: prepared.not_before.unix_timestamp(),
                not_after: prepared.not_after.unix_timestamp(),
                tbs_sha256: ca_core::hex::encode(&prepared.digest()),
                created_at: now.unix_timestamp(),
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
            // Without an idempotency token the intent need not be durable
            // before signing: the certificate leaves this process only after
            // the one commit that stores it with its audit entry and claims
            // its serial (refused if taken). A crash before that commit loses
            // a signature nobody received. With a token, the intent binds the
            // token first, so a retry finds the certificate or its signing.
            if token.is_none() {
                break (prepared, intent);
            }
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
                Err(StoreError::SerialTaken) if attempt < SERIAL_ATTEMPTS => continue,
                Err(e) => return Err(e.into()),
            }
        };
        let signer = self.vault.signer(ca_id).map_err(map_vault)?;
        let issued = prepared.sign(signer.as_ref()).map_err(map_issue)?;
        let mut rec = intent;
        rec.status = CertStatus::Issued;
        Ok(Signed::New {
            view: CertView {
                record: rec,
                der: issued.der,
                issuer: issuer.clone(),
            },
            key_sha256,
            in_flight,
        })
    }

    /// Issue and store: the certificate and the call's audit entry in one
    /// commit, before anyone sees it.
    async fn issue(
        &self,
        ca_id: &str,
        request: CertificateRequest,
        limits: ValidityLimits,
        meta: IssueMeta,
        proof: Option<PendingProof>,
    ) -> Result<CertView, ApiError> {
        let caller = meta.requested_by.clone();
        let signed = self.sign_reserved(ca_id, request, limits, meta).await;
        // The proof's verdict before signing's: nothing signed for a CSR that
        // does not prove its key goes further, and a CSR refused for both
        // gets the same answer as when its proof is checked first.
        PendingProof::verdict(proof).await?;
        // `_in_flight` lives until this function returns: after the store.
        let (view, key_sha256, _in_flight) = match signed? {
            Signed::Stored(v) => return Ok(v),
            Signed::New {
                view,
                key_sha256,
                in_flight,
            } => (view, key_sha256, in_flight),
        };
        // Tests widen the window between signing and storing to show that a
        // retry with the same token waits for this request (test builds only).
        #[cfg(feature = "forensics")]
        if let Some(ms) = std::env::var("CA_TEST_STORE_DELAY_MS")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
        {
            tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
        }
        let rec = &view.record;
        let target = format!("{}/{}", rec.ca_id, rec.serial);
        let mut draft = self.draft(&caller, "IssueCertificate", &target);
        draft.certificate = Some(ca_core::audit_chain::AuditedCertificate {
            serial: rec.serial.clone(),
            sans: rec.sans.clone(),
            not_after: crate::clock::fmt_unix(rec.not_after),
            tbs_sha256: rec.tbs_sha256.clone(),
        });
        // The store refuses the certificate if its key is blocked by the time
        // it commits (the check in sign_reserved came earlier).
        self.store
            .issue(rec.clone(), view.der.clone(), key_sha256, draft)
            .await?;
        crate::audit::committed();
        // Debug, not info: the audit entry is the record of every issuance,
        // and a line per certificate cost ~4% of the CPU at 5,000/s (ca-bench
        // with CA_BENCH_SERVER_LOG=info against warn, one run).
        tracing::debug!(ca = %ca_id, serial = %rec.serial, profile = %rec.profile, by = %rec.requested_by, "issued");
        self.metrics
            .certificate_issued(ca_id, &rec.profile, &rec.key_algorithm);
        Ok(view)
    }

    fn view(&self, record: CertRecord, issuer: &Arc<Issuer>) -> Result<CertView, ApiError> {
        let (_, der) = self
            .store
            .get_cert(&record.ca_id, &record.serial)?
            .ok_or_else(|| ApiError::internal("idempotent replay", "record vanished"))?;
        let der = der.ok_or_else(|| ApiError::internal("idempotent replay", "no DER"))?;
        Ok(CertView {
            record,
            der,
            issuer: issuer.clone(),
        })
    }

    /// Another request with the same idempotency token is signing: wait for it.
    async fn wait_issued(
        &self,
        rec: CertRecord,
        issuer: &Arc<Issuer>,
    ) -> Result<CertView, ApiError> {
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

    /// IssueCertificate: from a client's CSR; `helper`, a thread woken for
    /// its proof of possession before the request was read
    /// ([`Self::proof_helper`]), if any.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn issue_from_csr(
        &self,
        who: &Identity,
        ca_id: &str,
        csr: &str,
        profile: &str,
        validity_days: Option<u32>,
        token: Option<&str>,
        helper: Option<ProofHelper>,
    ) -> Result<CertView, ApiError> {
        let csr = CsrSource::Text(csr, helper);
        self.issue_csr(who, ca_id, csr, profile, validity_days, token)
            .await
    }

    /// A helper thread woken now for the proof of possession of a CSR about
    /// to be read, when this call is the only one in flight (see
    /// `issue_csr`): its wake-up, tens of microseconds on a virtual
    /// machine, then overlaps reading and parsing the request. Traced at one
    /// connection (2026-12-07), the journal write came ~25 µs sooner after
    /// the request arrived; `ca-bench --concurrency 1`, twelve alternating
    /// pairs: p50 lower in 10 (median 0.52 against 0.55 ms).
    pub(crate) fn proof_helper(&self) -> Option<ProofHelper> {
        self.alone_in_flight().then(ProofHelper::wake)
    }

    /// IssueCertificate from a CSR its caller parsed with [`parse_csr`], its
    /// proof of possession checked (ACME's finalize, which compares the
    /// CSR's names with its order's first): not checked a second time.
    pub async fn issue_from_proven_csr(
        &self,
        who: &Identity,
        ca_id: &str,
        csr: Csr,
        profile: &str,
        validity_days: Option<u32>,
        token: Option<&str>,
    ) -> Result<CertView, ApiError> {
        let csr = CsrSource::Proven(csr);
        self.issue_csr(who, ca_id, csr, profile, validity_days, token)
            .await
    }

    async fn issue_csr(
        &self,
        who: &Identity,
        ca_id: &str,
        csr: CsrSource<'_>,
        profile: &str,
        validity_days: Option<u32>,
        token: Option<&str>,
    ) -> Result<CertView, ApiError> {
        let ca_id = self.resolve_ca(ca_id)?;
        let ca_id = ca_id.as_str();
        let profile = parse_leaf_profile(profile)?;
        let limits = self.config.limits(profile);
        check_validity(validity_days, limits, profile.name())?;
        check_token(token)?;
        let (text, helper) = match csr {
            CsrSource::Text(text, helper) => (text, helper),
            CsrSource::Proven(csr) => {
                return self
                    .issue_parsed(who, ca_id, csr, profile, validity_days, token, None)
                    .await
            }
        };
        // Alone, the CSR's signature is checked on the idle core while this
        // one prepares and signs. What it gains depends on how fast an idle
        // core wakes: on one machine p50 0.34 against 0.41 ms checked first;
        // on another (ca-bench at one connection, ten rounds) 0.440 against
        // 0.445 ms, 2,170 against 2,130 req/s, for ~55 µs more CPU per
        // certificate (where a hand-off that always waited for the other
        // core gave 0.484 ms: see `proof`). Under load it buys nothing.
        // With a token the intent is recorded before signing: only for a
        // proven CSR.
        let (csr, proof) = if token.is_none() && self.alone_in_flight() {
            let (csr, possession) = parse_csr_deferring_proof(text.as_bytes()).map_err(map_csr)?;
            let proof = match helper {
                Some(helper) => helper.start(possession),
                None => PendingProof::start(possession),
            };
            (csr, Some(proof))
        } else {
            // (A helper woken ahead stops.)
            drop(helper);
            // Under load, the CPU-heavy part (the CSR's check, building,
            // signing) waits until this worker has served its other ready
            // tasks and polled for more (tokio defers a yielded task's wake
            // to then), and comes back at the back of the queue, stealable,
            // with the other worker told. Requests then reach the store
            // together: at 64 connections 4.6 writes per commit against
            // 3.4–3.7. Twelve alternating pairs of `ca-bench --concurrency 16,64`
            // (2026-12-07): median 1.04× the rate at 16 connections (10 of
            // 12 pairs ahead), 1.08× at 64 (9 of 12), with 4–8% less CPU per
            // certificate. Alone it would only add a wake-up.
            tokio::task::yield_now().await;
            (parse_csr(text.as_bytes()).map_err(map_csr)?, None)
        };
        self.issue_parsed(who, ca_id, csr, profile, validity_days, token, proof)
            .await
    }

    /// The rest of [`Self::issue_csr`], once the CSR is parsed: its proof
    /// checked, or under way in `proof`.
    #[allow(clippy::too_many_arguments)]
    async fn issue_parsed(
        &self,
        who: &Identity,
        ca_id: &str,
        csr: Csr,
        profile: Profile,
        validity_days: Option<u32>,
        token: Option<&str>,
        proof: Option<PendingProof>,
    ) -> Result<CertView, ApiError> {
        let limits = self.config.limits(profile);
        let mut request = CertificateRequest::from_csr(&csr, profile);
        request.validity_days = validity_days;
        let authorized = self.authorize_issue(
            who,
            ca_id,
            &request.sans,
            &request.subject,
            profile,
            validity_days.unwrap_or(limits.default_days),
        );
        if let Err(denied) = authorized {
            // (The audit entry then tells of the policy's decision too.)
            return Err(PendingProof::verdict(proof).await.err().unwrap_or(denied));
        }
        let idempotency = token.map(|t| {
            let days = validity_days.unwrap_or(0).to_be_bytes();
            (
                t.to_string(),
                sha256_hex(&[ca_id.as_bytes(), &csr.der, profile.name().as_bytes(), &days]),
            )
        });
        let meta = IssueMeta {
            requested_by: who.display(),
            requester_fingerprint: who.requester_fingerprint(),
            idempotency,
            ..Default::default()
        };
        self.issue(ca_id, request, limits, meta, proof).await
    }

    /// Whether this is the only API call in flight: then a core is idle.
    fn alone_in_flight(&self) -> bool {
        let max = self.config.max_in_flight.max(1);
        max.saturating_sub(self.in_flight.available_permits()) <= 1
    }

    /// RequestCertificate with a server-made key: returns the certificate and
    /// the key; the key is not kept.
    pub async fn issue_with_new_key(
        &self,
        who: &Identity,
        ca_id: &str,
        r: &NewKeyRequest<'_>,
    ) -> Result<(CertView, SoftwareKey), ApiError> {
        let ca_id = self.resolve_ca(ca_id)?;
        let ca_id = ca_id.as_str();
        let profile = parse_leaf_profile(r.profile)?;
        let limits = self.config.limits(profile);
        check_validity(r.validity_days, limits, profile.name())?;
        let alg = parse_key_alg(r.key_algorithm)?;
        let (sans, subject) = parse_names(r.names, r.subject)?;
        self.authorize_issue(
            who,
            ca_id,
            &sans,
            &subject,
            profile,
            r.validity_days.unwrap_or(limits.default_days),
        )?;
        // Refuse early (before the costly key generation) if the CA cannot issue.
        self.active_issuer(ca_id)?;
        let key = generate_key(alg).await?;
        let request = CertificateRequest {
            subject,
            spki_der: key.public_key_der().to_vec(),
            sans,
            profile,
            validity_days: r.validity_days,
            name_constraints: None,
        };
        let meta = IssueMeta {
            requested_by: who.display(),
            requester_fingerprint: who.requester_fingerprint(),
            server_generated_key: true,
            ..Default::default()
        };
        let view = self.issue(ca_id, request, limits, meta, None).await?;
        Ok((view, key))
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
        let old = match self.find_certificate(ca_id, serial) {
            Ok(old) => old,
            Err(e) if e.code == ErrorCode::NotFound => {
                self.authorize_issue_anywhere(who)?;
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        // Renewing through an alias issues from the CA it names now, so a
        // certificate of a retired CA renews from its successor.
        let ca_id = match ca_id.filter(|c| crate::alias::is_alias(c)) {
            Some(a) => self.resolve_ca(a)?,
            None => old.record.ca_id.clone(),
        };
        let profile = parse_leaf_profile(&old.record.profile)?;
        let limits = self.config.limits(profile);
        check_validity(validity_days, limits, profile.name())?;
        check_token(token)?;
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
            &ca_id,
            &request.sans,
            &request.subject,
            profile,
            validity_days.unwrap_or(limits.default_days),
        )?;
        // The renewed certificate belongs to whoever renews it (a revoke-own
        // grant then covers it), so renewing someone else's takes administer
        // on its CA, not just the right to issue those names.
        if !who.internal
            && old.record.requester_fingerprint.as_deref() != Some(who.fingerprint.as_str())
        {
            self.authorize_administer(who, &old.record.ca_id)?;
        }
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
            requester_fingerprint: who.requester_fingerprint(),
            renewed_from: Some(old.record.serial.clone()),
            idempotency,
            ..Default::default()
        };
        self.issue(&ca_id, request, limits, meta, None).await
    }

    /// GetCertificate: read on its CA, judged before looking (see
    /// `authorize_cert_read`), then the certificate with its chain.
    pub fn get_certificate(
        &self,
        who: &Identity,
        ca_id: Option<&str>,
        serial: &str,
    ) -> Result<CertView, ApiError> {
        let hint = ca_hint(ca_id);
        self.authorize_cert_read(who, hint, serial)?;
        self.find_certificate(hint, serial)
    }

    /// Find a certificate by serial (and CA, when given), without a policy check.
    fn find_certificate(&self, ca_id: Option<&str>, serial: &str) -> Result<CertView, ApiError> {
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
            issuer,
        })
    }

    /// ListCertificates: of one CA (read on it), or of every CA this caller
    /// may read; `status` as a client sees it now (see [`effective_status`]).
    pub fn list_certificates(
        &self,
        who: &Identity,
        filter: CertFilter,
        status: Option<&str>,
    ) -> Result<(Vec<CertRecord>, Option<String>), ApiError> {
        if let Some(c) = &filter.ca_id {
            check_ca_id(c)?;
            self.authorize_read(who, c)?;
        }
        // Cursors are sealed: a client never sees the store key a page
        // stopped at (it may be a certificate of a CA it cannot read, when a
        // page ends at the scan limit), and cannot forge one.
        let mut filter = filter;
        if let Some(c) = &filter.cursor {
            let opened = (c.len() <= 1024)
                .then(|| self.vault.open_cursor(c))
                .flatten()
                .ok_or_else(|| ApiError::invalid("cursor is not one this server made"))?;
            filter.cursor = Some(opened);
        }
        let now = self.now().unix_timestamp();
        let status = status.map(str::to_string);
        // Only certificates of CAs this caller may read count, and they are
        // filtered before paging, so a page and its cursor never stop on (or
        // name) a certificate the caller may not see.
        let readable: std::cell::RefCell<HashMap<String, bool>> = Default::default();
        let wanted = |r: &CertRecord| {
            let status_ok = match status.as_deref() {
                None => r.status != CertStatus::Reserved,
                Some(s) => effective_status(r, now) == s,
            };
            status_ok
                && *readable
                    .borrow_mut()
                    .entry(r.ca_id.clone())
                    .or_insert_with(|| self.may_read(who, &r.ca_id))
        };
        let (items, next) = self
            .store
            .list_certs(&filter, &wanted)
            .map_err(ApiError::from)
            .map_err(|e| {
                // A cursor past what the store knows is the client's input.
                if e.code == ErrorCode::NotFound && e.message.contains("cursor") {
                    ApiError::invalid(e.message)
                } else {
                    e
                }
            })?;
        if filter.ca_id.is_none() {
            crate::audit::record(
                true,
                None,
                "listed certificates of the CAs this identity may read".into(),
                "",
            );
        }
        let next = next
            .map(|c| self.vault.seal_cursor(&c))
            .transpose()
            .map_err(map_vault)?;
        Ok((items, next))
    }
}
