//! Signed digests of the audit trail (review M4): the audit key that signs
//! them, made once and sealed like a CA key, and the digests themselves.

use std::sync::Arc;

use ca_core::audit_chain::GENESIS;
use ca_core::audit_digest::{AuditDigest, DigestDraft};
use ca_core::keys::{KeyAlgorithm, Signer, SoftwareKey};

use super::{map_vault, Authority};
use crate::error::ApiError;
use crate::vault::AUDIT_DIGEST_KEY_ID;

/// The audit key's public half, written to the data directory for operators
/// to copy somewhere the store's writers cannot reach, and pin.
pub const AUDIT_DIGEST_KEY_FILE: &str = "audit-digest-key.pem";

impl Authority {
    /// The audit digest key: opened from the store, or made (P-256, sealed
    /// by the master key, its creation audited) the first time.
    pub fn audit_digest_key(&self) -> Result<Arc<dyn Signer>, ApiError> {
        if self.store.sealed_key(AUDIT_DIGEST_KEY_ID)?.is_some() {
            return self.vault.signer(AUDIT_DIGEST_KEY_ID).map_err(map_vault);
        }
        let key = SoftwareKey::generate(KeyAlgorithm::EcdsaP256)
            .map_err(|e| ApiError::internal("audit digest key", e))?;
        let sealed = self
            .vault
            .seal(AUDIT_DIGEST_KEY_ID, &key)
            .map_err(map_vault)?;
        let audit = self.draft(
            "ca-server",
            "InternalCreateAuditDigestKey",
            &format!(
                "audit-digest-key/{}",
                ca_core::audit_digest::sha256_hex(key.public_key_der())
            ),
        );
        self.store
            .import_sealed_keys(&[(AUDIT_DIGEST_KEY_ID.to_string(), sealed)], audit)?;
        // Another process may have made one first: use whichever is stored.
        self.vault.signer(AUDIT_DIGEST_KEY_ID).map_err(map_vault)
    }

    /// Sign a digest of the trail as it stands, unless the newest digest
    /// already covers its head. Returns the digest made, if any.
    pub async fn sign_audit_digest(&self) -> Result<Option<AuditDigest>, ApiError> {
        let key = self.audit_digest_key()?;
        let last = self.store.last_audit_digest()?;
        let (head_seq, head_hash) = self.store.audit_head()?;
        if last.as_ref().is_some_and(|d| d.head_seq == head_seq) {
            return Ok(None);
        }
        let prev_digest = match &last {
            Some(d) => d
                .record_hash()
                .map_err(|e| ApiError::internal("audit digest", e))?,
            None => GENESIS.to_string(),
        };
        let digest = AuditDigest::sign(
            DigestDraft {
                number: last.map_or(1, |d| d.number + 1),
                time: self.now(),
                head_seq,
                head_hash,
                prev_digest,
            },
            key.as_ref(),
        )
        .map_err(|e| ApiError::internal("audit digest", e))?;
        self.store.append_audit_digest(digest.clone()).await?;
        Ok(Some(digest))
    }
}
