//! The master key in the token (KMS style): an AES-256 secret key object,
//! sensitive and never extractable, that encrypts and decrypts the data keys
//! inside the token with AES-GCM. The data key comes back to the server to
//! open its CA key (as with KMS `Decrypt`); the master key never leaves.
//!
//! The store records which token key it is as the master-key check value
//! `pkcs11:LABEL:ID:CHECK`, so the server finds the key by CKA_ID and refuses
//! a different key under the same label. Rotation makes a new AES key under
//! the same label with a new CKA_ID, re-wraps every data key from the old key
//! to the new one, commits, then destroys the old key object.

use std::sync::Arc;

use ca_core::envelope::{EnvelopeError, KeyEncryptionKey};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass};
use zeroize::Zeroizing;

use super::{ck, HsmError, Token};

const CHECK_PREFIX: &str = "pkcs11:";
const NONCE_LEN: usize = 12;

/// An AES-256 key in the token that wraps the data keys.
pub struct TokenMaster {
    token: Arc<Token>,
    label: String,
    id: Vec<u8>,
}

impl std::fmt::Debug for TokenMaster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenMaster")
            .field("label", &self.label)
            .finish_non_exhaustive()
    }
}

/// Whether a stored check value names a token master key.
pub fn is_token_check_value(cv: &str) -> bool {
    cv.starts_with(CHECK_PREFIX)
}

/// The label and CKA_ID a stored check value names, and its check part.
pub fn parse_check_value(cv: &str) -> Option<(String, Vec<u8>, String)> {
    let rest = cv.strip_prefix(CHECK_PREFIX)?;
    // The label may hold ':'; the id and check value do not.
    let (rest, check) = rest.rsplit_once(':')?;
    let (label, id) = rest.rsplit_once(':')?;
    let id = ca_core::hex::decode(id).ok()?;
    Some((label.to_string(), id, check.to_string()))
}

fn secret_key_template(label: &str, id: &[u8]) -> Vec<Attribute> {
    vec![
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::AES),
        Attribute::Label(label.as_bytes().to_vec()),
        Attribute::Id(id.to_vec()),
    ]
}

impl TokenMaster {
    /// The master key with CKA_ID `id` (as a stored check value names it).
    pub fn find(token: &Arc<Token>, label: &str, id: &[u8]) -> Result<Self, HsmError> {
        token.run(|_, s| {
            let found = s
                .find_objects(&secret_key_template(label, id))
                .map_err(|e| ck("finding the master key", e))?;
            match found.len() {
                1 => Ok(()),
                n => Err(HsmError::NoSuchKey(format!(
                    "labelled {label:?} with CKA_ID {} (the AES master key; {n} found)",
                    ca_core::hex::encode(id)
                ))),
            }
        })?;
        Ok(TokenMaster {
            token: token.clone(),
            label: label.to_string(),
            id: id.to_vec(),
        })
    }

    /// The one AES key labelled `label`, if the operator made it; None if
    /// there is none.
    pub fn find_by_label(token: &Arc<Token>, label: &str) -> Result<Option<Self>, HsmError> {
        let ids = token.run(|_, s| {
            let found = s
                .find_objects(&[
                    Attribute::Class(ObjectClass::SECRET_KEY),
                    Attribute::KeyType(KeyType::AES),
                    Attribute::Label(label.as_bytes().to_vec()),
                ])
                .map_err(|e| ck("finding the master key", e))?;
            let mut ids = Vec::new();
            for h in found {
                let attrs = s
                    .get_attributes(
                        h,
                        &[
                            AttributeType::Id,
                            AttributeType::Sensitive,
                            AttributeType::Extractable,
                            AttributeType::ValueLen,
                        ],
                    )
                    .map_err(|e| ck("reading the master key's attributes", e))?;
                let (mut id, mut sensitive, mut extractable, mut len) =
                    (Vec::new(), false, true, 0u64);
                for a in attrs {
                    match a {
                        Attribute::Id(v) => id = v,
                        Attribute::Sensitive(v) => sensitive = v,
                        Attribute::Extractable(v) => extractable = v,
                        Attribute::ValueLen(v) => len = v.into(),
                        _ => {}
                    }
                }
                // The master key opens every CA key: one that could leave the
                // token, or is not AES-256, is not adopted.
                if !sensitive || extractable {
                    return Err(HsmError::Extractable(label.into()));
                }
                if len != 32 {
                    return Err(HsmError::Key {
                        label: label.into(),
                        reason: format!("the AES key is {len} bytes long; the master key must be AES-256 (32 bytes)"),
                    });
                }
                ids.push(id);
            }
            Ok(ids)
        })?;
        match ids.as_slice() {
            [] => Ok(None),
            [id] if !id.is_empty() => Ok(Some(TokenMaster {
                token: token.clone(),
                label: label.to_string(),
                id: id.clone(),
            })),
            [_] => Err(HsmError::Key {
                label: label.into(),
                reason: "the AES key has no CKA_ID, by which the server finds it".into(),
            }),
            many => Err(HsmError::AmbiguousKey {
                count: many.len(),
                label: label.into(),
            }),
        }
    }

    /// Make a new AES-256 master key in the token: sensitive, never
    /// extractable, for encryption, decryption and CMAC only.
    pub fn generate(token: &Arc<Token>, label: &str) -> Result<Self, HsmError> {
        let mut id = [0u8; 16];
        getrandom::getrandom(&mut id).map_err(|e| HsmError::Operation(format!("CKA_ID: {e}")))?;
        // Never retried: a session lost after C_GenerateKey succeeded would
        // otherwise leave two keys under one label and id.
        token.run_once(|_, s| {
            let mut template = secret_key_template(label, &id);
            template.extend([
                Attribute::Token(true),
                Attribute::Private(true),
                Attribute::Sensitive(true),
                Attribute::Extractable(false),
                Attribute::ValueLen(32.into()),
                Attribute::Encrypt(true),
                Attribute::Decrypt(true),
                Attribute::Sign(true),
                Attribute::Verify(true),
                Attribute::Wrap(false),
                Attribute::Unwrap(false),
                Attribute::Derive(false),
            ]);
            s.generate_key(&Mechanism::AesKeyGen, &template)
                .map_err(|e| ck("generating the AES master key", e))?;
            Ok(())
        })?;
        tracing::info!(label, "made the master key in the PKCS#11 token");
        Ok(TokenMaster {
            token: token.clone(),
            label: label.to_string(),
            id: id.to_vec(),
        })
    }

    /// Remove the key object from the token (after a rotation committed).
    pub fn destroy(&self) -> Result<(), HsmError> {
        self.token.run(|_, s| {
            let found = s
                .find_objects(&secret_key_template(&self.label, &self.id))
                .map_err(|e| ck("finding the master key", e))?;
            for h in found {
                s.destroy_object(h)
                    .map_err(|e| ck("destroying the old master key", e))?;
            }
            Ok(())
        })
    }

    pub fn label(&self) -> &str {
        &self.label
    }

    /// What the store records as the master key's check value.
    pub fn stored_check_value(&self) -> Result<String, EnvelopeError> {
        Ok(format!(
            "{CHECK_PREFIX}{}:{}:{}",
            self.label,
            ca_core::hex::encode(&self.id),
            self.cmac_check()?
        ))
    }

    fn cmac_check(&self) -> Result<String, EnvelopeError> {
        let mac = self.cmac(b"private-ca master key check v1\0")?;
        match mac.get(..8) {
            Some(head) => Ok(ca_core::hex::encode(head)),
            None => Err(EnvelopeError::Unavailable(format!(
                "AES-CMAC gave {} bytes",
                mac.len()
            ))),
        }
    }

    fn cmac(&self, data: &[u8]) -> Result<Vec<u8>, EnvelopeError> {
        self.token
            .run(|conn, s| {
                let key = conn.secret_key(s, &self.id)?;
                s.sign(&Mechanism::AesCMac, key, data)
                    .map_err(|e| ck("AES-CMAC", e))
            })
            .map_err(unavailable)
    }
}

fn unavailable(e: HsmError) -> EnvelopeError {
    EnvelopeError::Unavailable(e.to_string())
}

impl KeyEncryptionKey for TokenMaster {
    fn wrap(&self, aad: &[u8], data_key: &[u8]) -> Result<Vec<u8>, EnvelopeError> {
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce).map_err(|_| EnvelopeError::Rng)?;
        let (iv, sealed) = self
            .token
            .run(|conn, s| {
                let key = conn.secret_key(s, &self.id)?;
                let mut iv = nonce;
                let params = GcmParams::new(&mut iv, aad, 128.into())
                    .map_err(|e| HsmError::Operation(format!("GCM parameters: {e}")))?;
                let sealed = s
                    .encrypt(&Mechanism::AesGcm(params), key, data_key)
                    .map_err(|e| ck("AES-GCM encryption", e))?;
                // Some HSMs (CloudHSM, some Luna modes) make the IV themselves
                // and write it back into the parameters: keep the IV the
                // token used, not the one offered.
                Ok((iv, sealed))
            })
            .map_err(unavailable)?;
        Ok([iv.as_slice(), &sealed].concat())
    }

    fn unwrap(&self, aad: &[u8], wrapped: &[u8]) -> Result<Zeroizing<Vec<u8>>, EnvelopeError> {
        if wrapped.len() < NONCE_LEN + 16 {
            return Err(EnvelopeError::Malformed);
        }
        let (nonce, sealed) = wrapped.split_at(NONCE_LEN);
        let opened = self.token.run(|conn, s| {
            let key = conn.secret_key(s, &self.id)?;
            let mut iv = [0u8; NONCE_LEN];
            iv.copy_from_slice(nonce);
            let params = GcmParams::new(&mut iv, aad, 128.into())
                .map_err(|e| HsmError::Operation(format!("GCM parameters: {e}")))?;
            s.decrypt(&Mechanism::AesGcm(params), key, sealed)
                .map_err(|e| match e {
                    // A tag that does not verify: SoftHSM says
                    // CKR_GENERAL_ERROR, the standard says one of these.
                    CkError::Pkcs11(
                        RvError::EncryptedDataInvalid
                        | RvError::EncryptedDataLenRange
                        | RvError::GeneralError,
                        _,
                    ) => HsmError::Refused,
                    e => ck("AES-GCM decryption", e),
                })
        });
        match opened {
            Ok(p) => Ok(Zeroizing::new(p)),
            Err(HsmError::Refused) => Err(EnvelopeError::WrongKeyOrTampered),
            Err(e) => Err(unavailable(e)),
        }
    }

    /// AES-CMAC(label ‖ 1) ‖ AES-CMAC(label ‖ 2): a 256-bit PRF output in
    /// the style of NIST SP 800-108's counter mode.
    fn derive(&self, label: &[u8]) -> Result<Zeroizing<[u8; 32]>, EnvelopeError> {
        let mut out = Zeroizing::new([0u8; 32]);
        for (i, chunk) in out.chunks_mut(16).enumerate() {
            let counter = u8::try_from(i + 1).unwrap_or(u8::MAX);
            let mac = Zeroizing::new(self.cmac(&[label, &[counter]].concat())?);
            if mac.len() != 16 {
                return Err(EnvelopeError::Unavailable(format!(
                    "AES-CMAC gave {} bytes",
                    mac.len()
                )));
            }
            chunk.copy_from_slice(&mac);
        }
        Ok(out)
    }

    fn check_value(&self) -> Result<String, EnvelopeError> {
        self.stored_check_value()
    }
}
