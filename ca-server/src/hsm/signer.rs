//! A CA key in the token behind `ca_core::Signer`: found by its stored
//! reference, it signs a digest made here, and every signature the token
//! returns is checked against the CA's public key before it is used.

use std::sync::Arc;

use ca_core::keys::{KeyError, PublicKeyKind, Signer};
use ca_core::signature::SignatureAlgorithm;
use cryptoki::mechanism::eddsa::{EddsaParams, EddsaSignatureScheme};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, ObjectClass};

use super::keys::read_spki;
use super::{ck, ecdsa_raw_to_der, HsmError, Token, TokenKeyRef};

impl Token {
    /// A signer for a stored key reference: the token's public key must be
    /// the stored one.
    pub fn signer(self: &Arc<Self>, key: &TokenKeyRef) -> Result<TokenSigner, HsmError> {
        let id = key.id_bytes()?;
        let spki = key.spki_der()?;
        let kind = PublicKeyKind::from_spki_der(&spki).map_err(|e| HsmError::Key {
            label: key.label.clone(),
            reason: e.to_string(),
        })?;
        let found = self.run(|conn, s| {
            conn.private_key(s, &id)?;
            let publics = s
                .find_objects(&[
                    Attribute::Class(ObjectClass::PUBLIC_KEY),
                    Attribute::Id(id.clone()),
                ])
                .map_err(|e| ck("finding the public key", e))?;
            match publics.first() {
                Some(h) => read_spki(s, *h, &key.label).map(Some),
                None => Ok(None),
            }
        })?;
        // A token that keeps no public key object still signs; the check
        // after every signature then catches a changed key.
        if let Some(found) = found {
            if found != spki {
                return Err(HsmError::KeyChanged(key.label.clone()));
            }
        }
        Ok(TokenSigner {
            token: self.clone(),
            label: key.label.clone(),
            id,
            algorithm: SignatureAlgorithm::default_for(kind),
            spki,
        })
    }
}

/// A CA key in the token, behind `ca_core::Signer`.
pub struct TokenSigner {
    token: Arc<Token>,
    label: String,
    id: Vec<u8>,
    algorithm: SignatureAlgorithm,
    spki: Vec<u8>,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSigner")
            .field("label", &self.label)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

/// DigestInfo prefix for SHA-256 (RFC 8017 §9.2, note 1).
const SHA256_DIGEST_INFO: [u8; 19] = [
    0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05,
    0x00, 0x04, 0x20,
];

impl Signer for TokenSigner {
    fn public_key_der(&self) -> &[u8] {
        &self.spki
    }

    fn signature_algorithm(&self) -> SignatureAlgorithm {
        self.algorithm
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        use aws_lc_rs::digest;
        // Hash here and send the digest: the same for every token, and a
        // network HSM receives 32 bytes instead of the whole TBS.
        let (input, ecdsa) = match self.algorithm {
            SignatureAlgorithm::EcdsaSha256 => (
                digest::digest(&digest::SHA256, message).as_ref().to_vec(),
                true,
            ),
            SignatureAlgorithm::EcdsaSha384 => (
                digest::digest(&digest::SHA384, message).as_ref().to_vec(),
                true,
            ),
            SignatureAlgorithm::RsaPkcs1Sha256 => (
                [
                    SHA256_DIGEST_INFO.as_slice(),
                    digest::digest(&digest::SHA256, message).as_ref(),
                ]
                .concat(),
                false,
            ),
            SignatureAlgorithm::Ed25519 => (message.to_vec(), false),
            other => {
                return Err(KeyError::UnsupportedAlgorithm(format!(
                    "{other:?} with a token key"
                )))
            }
        };
        let algorithm = self.algorithm;
        let raw = self
            .token
            .run(|conn, s| {
                let key = conn.private_key(s, &self.id)?;
                let mechanism = match algorithm {
                    SignatureAlgorithm::Ed25519 => {
                        Mechanism::Eddsa(EddsaParams::new(EddsaSignatureScheme::Pure))
                    }
                    SignatureAlgorithm::RsaPkcs1Sha256 => Mechanism::RsaPkcs,
                    _ => Mechanism::Ecdsa,
                };
                s.sign(&mechanism, key, &input)
                    .map_err(|e| ck("signing", e))
            })
            .map_err(|e| {
                if e.is_unavailable() {
                    KeyError::Unavailable(e.to_string())
                } else {
                    tracing::error!(key = %self.label, error = %e, "the token did not sign");
                    KeyError::Signing
                }
            })?;
        let signature = if ecdsa {
            ecdsa_raw_to_der(&raw).map_err(|_| KeyError::Signing)?
        } else {
            raw
        };
        // Check every signature the token returns against the key the CA
        // was made with: a faulty or swapped token key never reaches a
        // certificate, a CRL or an OCSP response.
        let spki = <x509_cert::spki::SubjectPublicKeyInfoRef as der::Decode>::from_der(&self.spki)
            .map_err(|_| KeyError::Malformed("stored public key"))?;
        if ca_core::signature::verify_with(&spki, self.algorithm, message, &signature).is_err() {
            tracing::error!(key = %self.label, "the token's signature does not verify with the CA's public key");
            return Err(KeyError::Signing);
        }
        Ok(signature)
    }
}
