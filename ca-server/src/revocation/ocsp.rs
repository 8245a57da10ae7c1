//! The OCSP responder: a delegated (or CA) signer per CA, point reads of
//! status, and a cache of signed answers dropped on revocation.

use super::*;

impl RevocationService {
    async fn responder(&self, ca_id: &str) -> Result<Arc<OcspCa>, RevocationError> {
        let t = now();
        let fresh = |r: &Arc<OcspCa>| t < r.renew_at;
        if let Some(r) = read(&self.responders).get(ca_id).filter(|r| fresh(r)) {
            return Ok(r.clone());
        }
        // One creation at a time, so a burst of first requests makes one certificate.
        let _one = self.responder_lock.lock().await;
        if let Some(r) = read(&self.responders).get(ca_id).filter(|r| fresh(r)) {
            return Ok(r.clone());
        }
        if self
            .auth
            .store
            .get_ca(ca_id)?
            .is_some_and(|c| c.ocsp_disabled)
        {
            // Not a responder for this CA: RFC 6960's "unauthorized".
            return Err(RevocationError::NoCa(ca_id.to_string()));
        }
        let cert = self.ca_cert(ca_id)?;
        let links = self.links(ca_id)?;
        let ca_signer = self.auth.ca_signer(ca_id).map_err(RevocationError::CaKey)?;
        let hashes = IssuerHashes::new(&cert)?;
        let (identity, signer, renew_at) = match self.cfg.ocsp_signer {
            OcspSigner::Ca => (ResponderIdentity::ca(&cert)?, ca_signer, cert.not_after),
            OcspSigner::Delegated => {
                // The responder key lives in memory only: a restart makes a new
                // one with a new short-lived certificate, so it is never on disk.
                let key = SoftwareKey::generate(KeyAlgorithm::EcdsaP256)
                    .map_err(|e| RevocationError::ResponderKey(e.to_string()))?;
                let subject = Name::from_str(&format!("CN=OCSP Responder {ca_id}"))
                    .map_err(|e| RevocationError::CaCertificate(e.to_string()))?;
                let issued = create_ocsp_signing_certificate(
                    &cert,
                    ca_signer.as_ref(),
                    key.public_key_der(),
                    &subject,
                    self.cfg.ocsp_signer_days,
                    t,
                )?;
                let identity = ResponderIdentity::delegated(&issued.der, &cert)?;
                // Like every certificate the CA key signs, it is stored and
                // audited before it leaves the process in a response.
                self.record_responder_certificate(ca_id, &issued, &subject)
                    .await?;
                // Renewed when less than half its life remains.
                let renew_at = t + (identity.not_after() - t) / 2_i32;
                tracing::info!(ca = %ca_id, serial = %issued.serial, "delegated OCSP responder certificate made");
                let signer: Arc<dyn Signer> = Arc::new(key);
                (identity, signer, renew_at)
            }
        };
        let r = Arc::new(OcspCa {
            hashes,
            identity,
            signer,
            links,
            renew_at,
        });
        write(&self.responders).insert(ca_id.to_string(), r.clone());
        Ok(r)
    }

    /// Keep a delegated responder certificate in the certificate tables, with
    /// its audit entry, in one commit.
    async fn record_responder_certificate(
        &self,
        ca_id: &str,
        issued: &ca_core::cert::IssuedCertificate,
        subject: &Name,
    ) -> Result<(), RevocationError> {
        use der::{Decode, Encode};
        let parsed = x509_cert::Certificate::from_der(&issued.der)
            .and_then(|c| c.tbs_certificate.to_der())
            .map_err(|e| RevocationError::CaCertificate(e.to_string()))?;
        let tbs_sha256 = ca_core::audit_digest::sha256_hex(&parsed);
        let serial = issued.serial.to_hex();
        let record = crate::store::CertRecord {
            ca_id: ca_id.to_string(),
            serial: serial.clone(),
            status: crate::store::CertStatus::Issued,
            profile: "ocsp-signing".into(),
            subject: subject.to_string(),
            sans: Vec::new(),
            key_algorithm: ca_core::keys::KeyAlgorithm::EcdsaP256.name().into(),
            not_before: issued.not_before.unix_timestamp(),
            not_after: issued.not_after.unix_timestamp(),
            tbs_sha256: tbs_sha256.clone(),
            created_at: now().unix_timestamp(),
            requested_by: "ca-server (delegated OCSP responder)".into(),
            boot_id: self.auth.store.boot_id().to_string(),
            server_generated_key: true,
            renewed_from: None,
            revocation: None,
            requester_fingerprint: None,
        };
        let mut draft = crate::audit::commit_draft(
            "ca-server",
            "IssueOcspResponderCertificate",
            &format!("{ca_id}/{serial}"),
        );
        draft.certificate = Some(ca_core::audit_chain::AuditedCertificate {
            serial,
            sans: Vec::new(),
            not_after: ca_core::fmt_time(issued.not_after),
            tbs_sha256,
        });
        self.auth
            .store
            .import_certs(vec![(record, issued.der.clone())], draft)
            .await?;
        Ok(())
    }

    fn cache_get(&self, key: &str, cert_id: &[u8], now: i64) -> Option<Bytes> {
        let find = |c: &HashMap<String, Vec<Cached>>| {
            c.get(key)?
                .iter()
                .find(|e| e.cert_id == cert_id && e.expires > now)
                .map(|e| e.response.clone())
        };
        find(&read(&self.cache)).or_else(|| find(&read(&self.unknown_cache)))
    }

    fn cache_put(
        &self,
        unknown: bool,
        key: String,
        cert_id: Vec<u8>,
        response: Bytes,
        expires: i64,
        epoch: u64,
    ) {
        let (map, max) = if unknown {
            (&self.unknown_cache, MAX_CACHED_UNKNOWN)
        } else {
            (&self.cache, MAX_CACHED)
        };
        let mut c = write(map);
        if self.epoch.load(Ordering::SeqCst) != epoch {
            return;
        }
        if c.len() >= max {
            c.clear();
        }
        let list = c.entry(key).or_default();
        list.retain(|e| e.cert_id != cert_id);
        list.push(Cached {
            cert_id,
            response,
            expires,
        });
    }

    /// Answer one DER OCSP request for `ca_id`. Never fails: every problem is
    /// the fitting status-only response (malformedRequest, unauthorized, tryLater).
    pub async fn ocsp(&self, ca_id: &str, request_der: &[u8]) -> Bytes {
        let req = match parse_request(request_der) {
            Ok(r) => r,
            Err(e) => return Bytes::from(e.to_response()),
        };
        let t = now();
        let cache = match (req.cache_key(), req.cert_ids.first()) {
            (Some(k), Some(id)) => Some((format!("{ca_id}/{}", id.serial.to_hex()), k)),
            _ => None,
        };
        if let Some((key, cert_id)) = &cache {
            if let Some(hit) = self.cache_get(key, cert_id, t.unix_timestamp()) {
                self.stats.ocsp_cache_hits.fetch_add(1, Ordering::Relaxed);
                return hit;
            }
        }
        let responder = match self.responder(ca_id).await {
            Ok(r) => r,
            Err(RevocationError::NoCa(_) | RevocationError::NoCertificate(_)) => {
                return Bytes::from(unauthorized_response())
            }
            Err(e) => {
                tracing::warn!(ca = %ca_id, error = %e, "OCSP responder unavailable");
                return Bytes::from(try_later_response());
            }
        };
        let epoch = self.epoch.load(Ordering::SeqCst);
        let above = match self.chain_revoked(&responder.links) {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "OCSP status read failed");
                return Bytes::from(try_later_response());
            }
        };
        let validity = time::Duration::minutes(i64::from(self.cfg.ocsp_validity_minutes));
        let mut store_failed = false;
        let mut unknown = false;
        let r = Responder {
            identity: &responder.identity,
            signer: responder.signer.as_ref(),
            issuer: &responder.hashes,
            validity,
        };
        let store = &self.auth.store;
        let response = respond_to(
            &req,
            &r,
            |serial| {
                let status = store.serial_status(ca_id, &serial.to_hex());
                match (above, status) {
                    (_, Err(e)) => {
                        tracing::warn!(error = %e, "OCSP status read failed");
                        store_failed = true;
                        CertStatusInput::Unknown
                    }
                    // Not ours: a revoked issuer does not make it ours.
                    (_, Ok(SerialStatus::Unknown)) => {
                        unknown = true;
                        CertStatusInput::Unknown
                    }
                    (Some(at), Ok(_)) => CertStatusInput::Revoked {
                        time: OffsetDateTime::from_unix_timestamp(at)
                            .unwrap_or(OffsetDateTime::UNIX_EPOCH),
                        reason: RevocationReason::CaCompromise,
                    },
                    (None, Ok(SerialStatus::Issued)) => CertStatusInput::Good,
                    (None, Ok(SerialStatus::Revoked(rv))) => CertStatusInput::Revoked {
                        time: OffsetDateTime::from_unix_timestamp(rv.revoked_at)
                            .unwrap_or(OffsetDateTime::UNIX_EPOCH),
                        reason: RevocationReason::from_code(rv.reason_code)
                            .unwrap_or(RevocationReason::Unspecified),
                    },
                }
            },
            t,
        );
        if store_failed {
            return Bytes::from(try_later_response());
        }
        self.stats.ocsp_signed.fetch_add(1, Ordering::Relaxed);
        let response = Bytes::from(response);
        // Status-only responses are 5 octets; only signed answers are kept.
        if let (Some((key, cert_id)), true) = (cache, response.len() > 5) {
            let expires = (t + validity / 2_i32).unix_timestamp();
            self.cache_put(unknown, key, cert_id, response.clone(), expires, epoch);
        }
        response
    }
}
