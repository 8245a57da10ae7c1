//! Making and adopting CA keys in the token: a key pair generated inside it
//! (the private half sensitive and never extractable) or an existing pair
//! taken up by label, and its public key read back as DER
//! SubjectPublicKeyInfo.

use ca_core::keys::{KeyAlgorithm, PublicKeyKind};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;

use super::{ck, encoding, spki_from_ec, spki_from_rsa, HsmError, Token, TokenKeyRef};

impl Token {
    /// Generate a CA key pair inside the token: private half sensitive and
    /// never extractable, both halves token objects under a fresh CKA_ID.
    pub fn generate(&self, alg: KeyAlgorithm, label: &str) -> Result<TokenKeyRef, HsmError> {
        let mut id = [0u8; 16];
        getrandom::getrandom(&mut id).map_err(|e| HsmError::Operation(format!("CKA_ID: {e}")))?;
        let spki = self.run_once(|_, s| {
            let (mechanism, public) = match alg {
                KeyAlgorithm::EcdsaP256 => (
                    Mechanism::EccKeyPairGen,
                    vec![Attribute::EcParams(encoding::P256_OID_DER.to_vec())],
                ),
                KeyAlgorithm::EcdsaP384 => (
                    Mechanism::EccKeyPairGen,
                    vec![Attribute::EcParams(encoding::P384_OID_DER.to_vec())],
                ),
                KeyAlgorithm::Ed25519 => (
                    Mechanism::EccEdwardsKeyPairGen,
                    vec![Attribute::EcParams(encoding::ED25519_OID_DER.to_vec())],
                ),
                KeyAlgorithm::Rsa2048 | KeyAlgorithm::Rsa3072 | KeyAlgorithm::Rsa4096 => {
                    let bits: u64 = match alg {
                        KeyAlgorithm::Rsa2048 => 2048,
                        KeyAlgorithm::Rsa3072 => 3072,
                        _ => 4096,
                    };
                    (
                        Mechanism::RsaPkcsKeyPairGen,
                        vec![
                            Attribute::ModulusBits(bits.into()),
                            Attribute::PublicExponent(vec![1, 0, 1]),
                        ],
                    )
                }
            };
            let common = [
                Attribute::Token(true),
                Attribute::Id(id.to_vec()),
                Attribute::Label(label.as_bytes().to_vec()),
            ];
            let mut public = public;
            public.extend(common.iter().cloned());
            // Signing only: no encryption, wrapping or derivation with a CA key.
            public.extend([
                Attribute::Verify(true),
                Attribute::Encrypt(false),
                Attribute::Wrap(false),
            ]);
            let mut private = common.to_vec();
            private.extend([
                Attribute::Private(true),
                Attribute::Sensitive(true),
                Attribute::Extractable(false),
                Attribute::Sign(true),
                Attribute::Decrypt(false),
                Attribute::Unwrap(false),
                Attribute::Derive(false),
            ]);
            let (pub_handle, _) =
                s.generate_key_pair(&mechanism, &public, &private)
                    .map_err(|e| match e {
                        CkError::Pkcs11(RvError::MechanismInvalid, _)
                        | CkError::Pkcs11(RvError::AttributeValueInvalid, _)
                        | CkError::Pkcs11(RvError::DomainParamsInvalid, _)
                        | CkError::Pkcs11(RvError::CurveNotSupported, _) => HsmError::Key {
                            label: label.into(),
                            reason: format!("the token cannot make {alg} keys ({e})"),
                        },
                        e => ck("generating a key pair", e),
                    })?;
            read_spki(s, pub_handle, label)
        })?;
        Ok(TokenKeyRef {
            label: label.to_string(),
            id: ca_core::hex::encode(&id),
            spki: ca_core::hex::encode(&spki),
        })
    }

    /// Adopt an existing private key by label. It must be the only private
    /// key with that label, sensitive and not extractable, with a CKA_ID, and
    /// its public key object (same CKA_ID) must be in the token.
    pub fn adopt(&self, label: &str) -> Result<TokenKeyRef, HsmError> {
        match self.adopt_once(label) {
            // Some modules (SoftHSM2) show a session only the objects that
            // existed when the module was loaded: an operator's key made
            // since then appears after a reconnection. Adoption is a rare,
            // administrator-only call, so it may always look again.
            Err(HsmError::NoSuchKey(_)) => {
                let seen = self
                    .state
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .generation;
                self.reconnect(seen)?;
                self.adopt_once(label)
            }
            other => other,
        }
    }

    fn adopt_once(&self, label: &str) -> Result<TokenKeyRef, HsmError> {
        self.run(|_, s| {
            let found = s
                .find_objects(&[
                    Attribute::Class(ObjectClass::PRIVATE_KEY),
                    Attribute::Label(label.as_bytes().to_vec()),
                ])
                .map_err(|e| ck("finding a key", e))?;
            let private = match found.as_slice() {
                [] => return Err(HsmError::NoSuchKey(format!("pair labelled {label:?}"))),
                [h] => *h,
                many => {
                    return Err(HsmError::AmbiguousKey {
                        count: many.len(),
                        label: label.into(),
                    })
                }
            };
            let attrs = s
                .get_attributes(
                    private,
                    &[
                        AttributeType::Id,
                        AttributeType::Sensitive,
                        AttributeType::Extractable,
                        AttributeType::Sign,
                    ],
                )
                .map_err(|e| ck("reading the key's attributes", e))?;
            let mut id = Vec::new();
            let (mut sensitive, mut extractable, mut sign) = (false, true, false);
            for a in attrs {
                match a {
                    Attribute::Id(v) => id = v,
                    Attribute::Sensitive(v) => sensitive = v,
                    Attribute::Extractable(v) => extractable = v,
                    Attribute::Sign(v) => sign = v,
                    _ => {}
                }
            }
            if !sensitive || extractable {
                return Err(HsmError::Extractable(label.into()));
            }
            if !sign {
                return Err(HsmError::Key {
                    label: label.into(),
                    reason: "it may not sign (CKA_SIGN false)".into(),
                });
            }
            if id.is_empty() {
                return Err(HsmError::Key {
                    label: label.into(),
                    reason: "it has no CKA_ID, by which the server finds it".into(),
                });
            }
            let publics = s
                .find_objects(&[
                    Attribute::Class(ObjectClass::PUBLIC_KEY),
                    Attribute::Id(id.clone()),
                ])
                .map_err(|e| ck("finding the public key", e))?;
            let [public] = publics.as_slice() else {
                return Err(HsmError::Key {
                    label: label.into(),
                    reason: format!(
                        "{} public key objects share its CKA_ID; the server needs exactly one",
                        publics.len()
                    ),
                });
            };
            let spki = read_spki(s, *public, label)?;
            Ok(TokenKeyRef {
                label: label.to_string(),
                id: ca_core::hex::encode(&id),
                spki: ca_core::hex::encode(&spki),
            })
        })
    }
}

/// The public key of a token public-key object, as DER SubjectPublicKeyInfo.
pub(super) fn read_spki(
    s: &Session,
    public: ObjectHandle,
    label: &str,
) -> Result<Vec<u8>, HsmError> {
    let attrs = s
        .get_attributes(
            public,
            &[
                AttributeType::EcParams,
                AttributeType::EcPoint,
                AttributeType::Modulus,
                AttributeType::PublicExponent,
            ],
        )
        .map_err(|e| ck("reading the public key", e))?;
    let (mut params, mut point, mut modulus, mut exponent) = (None, None, None, None);
    for a in attrs {
        match a {
            Attribute::EcParams(v) => params = Some(v),
            Attribute::EcPoint(v) => point = Some(v),
            Attribute::Modulus(v) => modulus = Some(v),
            Attribute::PublicExponent(v) => exponent = Some(v),
            _ => {}
        }
    }
    let bad = |reason: String| HsmError::Key {
        label: label.into(),
        reason,
    };
    let spki = match (params, point, modulus, exponent) {
        (Some(params), Some(point), _, _) => spki_from_ec(&params, &point),
        (_, _, Some(n), Some(e)) => spki_from_rsa(&n, &e),
        _ => Err("its public key is neither EC nor RSA".to_string()),
    }
    .map_err(bad)?;
    PublicKeyKind::from_spki_der(&spki).map_err(|e| HsmError::Key {
        label: label.into(),
        reason: e.to_string(),
    })?;
    Ok(spki)
}
