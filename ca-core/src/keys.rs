//! Key pairs and public keys: generation, PKCS#8 and SPKI encodings, and the
//! [`Signer`] seam through which every CA signature is made.

use std::fmt;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self as sig, KeyPair as _};
use der::{Decode, Encode};
use pkcs8::PrivateKeyInfo;
use spki::SubjectPublicKeyInfoRef;
use zeroize::Zeroizing;

use crate::oids;
pub use crate::public_key::{KeyError, PublicKeyKind, MAX_RSA_BITS, MIN_RSA_BITS};
use crate::signature::SignatureAlgorithm;

/// The key types this CA generates and accepts for issued certificates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyAlgorithm {
    EcdsaP256,
    EcdsaP384,
    Rsa2048,
    Rsa3072,
    Rsa4096,
    Ed25519,
}

impl KeyAlgorithm {
    pub const ALL: [KeyAlgorithm; 6] = [
        KeyAlgorithm::EcdsaP256,
        KeyAlgorithm::EcdsaP384,
        KeyAlgorithm::Rsa2048,
        KeyAlgorithm::Rsa3072,
        KeyAlgorithm::Rsa4096,
        KeyAlgorithm::Ed25519,
    ];

    /// Stable lower-case name used in the API, CLI and config.
    pub fn name(self) -> &'static str {
        match self {
            KeyAlgorithm::EcdsaP256 => "ec-p256",
            KeyAlgorithm::EcdsaP384 => "ec-p384",
            KeyAlgorithm::Rsa2048 => "rsa-2048",
            KeyAlgorithm::Rsa3072 => "rsa-3072",
            KeyAlgorithm::Rsa4096 => "rsa-4096",
            KeyAlgorithm::Ed25519 => "ed25519",
        }
    }
}

impl fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for KeyAlgorithm {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Self, KeyError> {
        let lower = s.to_ascii_lowercase();
        KeyAlgorithm::ALL
            .into_iter()
            .find(|a| a.name() == lower)
            .ok_or_else(|| KeyError::UnsupportedAlgorithm(s.chars().take(32).collect()))
    }
}

/// Anything that can sign as a CA: a software key today, an HSM or KMS key later.
///
/// The private half never crosses this seam: callers get the public key, the
/// algorithm and signatures.
pub trait Signer: Send + Sync {
    /// DER SubjectPublicKeyInfo of the signing key.
    fn public_key_der(&self) -> &[u8];
    /// The algorithm `sign` produces.
    fn signature_algorithm(&self) -> SignatureAlgorithm;
    /// Sign `message`, returning the signature as it goes into a BIT STRING.
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError>;
}

enum Inner {
    Ecdsa(sig::EcdsaKeyPair),
    Rsa(sig::RsaKeyPair),
    Ed25519(sig::Ed25519KeyPair),
}

/// A private key held in memory (aws-lc-rs), with its PKCS#8 form kept in a
/// buffer that is zeroised on drop.
pub struct SoftwareKey {
    inner: Inner,
    kind: PublicKeyKind,
    algorithm: SignatureAlgorithm,
    spki_der: Vec<u8>,
    pkcs8_der: Zeroizing<Vec<u8>>,
}

impl fmt::Debug for SoftwareKey {
    // Never print key material, even in debug output.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SoftwareKey")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl SoftwareKey {
    /// Generate a fresh key pair from the system CSPRNG.
    pub fn generate(algorithm: KeyAlgorithm) -> Result<Self, KeyError> {
        let pkcs8: Zeroizing<Vec<u8>> = match algorithm {
            KeyAlgorithm::EcdsaP256 | KeyAlgorithm::EcdsaP384 => {
                let alg = if algorithm == KeyAlgorithm::EcdsaP256 {
                    &sig::ECDSA_P256_SHA256_ASN1_SIGNING
                } else {
                    &sig::ECDSA_P384_SHA384_ASN1_SIGNING
                };
                let doc = sig::EcdsaKeyPair::generate_pkcs8(alg, &SystemRandom::new())
                    .map_err(|_| KeyError::Generation)?;
                Zeroizing::new(doc.as_ref().to_vec())
            }
            KeyAlgorithm::Rsa2048 | KeyAlgorithm::Rsa3072 | KeyAlgorithm::Rsa4096 => {
                let size = match algorithm {
                    KeyAlgorithm::Rsa2048 => aws_lc_rs::rsa::KeySize::Rsa2048,
                    KeyAlgorithm::Rsa3072 => aws_lc_rs::rsa::KeySize::Rsa3072,
                    _ => aws_lc_rs::rsa::KeySize::Rsa4096,
                };
                let pair = sig::RsaKeyPair::generate(size).map_err(|_| KeyError::Generation)?;
                let der = pair.as_der().map_err(|_| KeyError::Generation)?;
                Zeroizing::new(der.as_ref().to_vec())
            }
            KeyAlgorithm::Ed25519 => {
                let pair = sig::Ed25519KeyPair::generate().map_err(|_| KeyError::Generation)?;
                let doc = pair.to_pkcs8v1().map_err(|_| KeyError::Generation)?;
                Zeroizing::new(doc.as_ref().to_vec())
            }
        };
        Self::from_pkcs8_der(&pkcs8)
    }

    /// Load an unencrypted PKCS#8 DER private key (RSA, P-256, P-384 or Ed25519).
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, KeyError> {
        let info = PrivateKeyInfo::from_der(der)
            .map_err(|_| KeyError::Malformed("PKCS#8 does not parse"))?;
        let inner = match info.algorithm.oid {
            oids::RSA_ENCRYPTION => Inner::Rsa(
                sig::RsaKeyPair::from_pkcs8(der)
                    .map_err(|_| KeyError::Malformed("RSA PKCS#8 key rejected"))?,
            ),
            oids::EC_PUBLIC_KEY => {
                let curve = info
                    .algorithm
                    .parameters_oid()
                    .map_err(|_| KeyError::Malformed("EC key without a named curve"))?;
                let alg = match curve {
                    oids::SECP256R1 => &sig::ECDSA_P256_SHA256_ASN1_SIGNING,
                    oids::SECP384R1 => &sig::ECDSA_P384_SHA384_ASN1_SIGNING,
                    other => return Err(KeyError::UnsupportedCurve(other.to_string())),
                };
                Inner::Ecdsa(
                    sig::EcdsaKeyPair::from_pkcs8(alg, der)
                        .map_err(|_| KeyError::Malformed("EC PKCS#8 key rejected"))?,
                )
            }
            oids::ED25519 => Inner::Ed25519(
                sig::Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
                    .map_err(|_| KeyError::Malformed("Ed25519 PKCS#8 key rejected"))?,
            ),
            other => return Err(KeyError::UnsupportedAlgorithm(other.to_string())),
        };
        let spki_der = match &inner {
            Inner::Ecdsa(k) => k.public_key().as_der().map(|d| d.as_ref().to_vec()),
            Inner::Rsa(k) => k.public_key().as_der().map(|d| d.as_ref().to_vec()),
            Inner::Ed25519(k) => k.public_key().as_der().map(|d| d.as_ref().to_vec()),
        }
        .map_err(|_| KeyError::Malformed("public key does not encode"))?;
        let kind = PublicKeyKind::from_spki_der(&spki_der)?;
        // Keep a canonical PKCS#8 v1 copy (no embedded public key) for export.
        let pkcs8_der = match &inner {
            Inner::Rsa(k) => Zeroizing::new(
                k.as_der()
                    .map_err(|_| KeyError::Malformed("key does not encode"))?
                    .as_ref()
                    .to_vec(),
            ),
            Inner::Ecdsa(k) => Zeroizing::new(
                k.to_pkcs8v1()
                    .map_err(|_| KeyError::Malformed("key does not encode"))?
                    .as_ref()
                    .to_vec(),
            ),
            Inner::Ed25519(k) => Zeroizing::new(
                k.to_pkcs8v1()
                    .map_err(|_| KeyError::Malformed("key does not encode"))?
                    .as_ref()
                    .to_vec(),
            ),
        };
        Ok(SoftwareKey {
            inner,
            kind,
            algorithm: SignatureAlgorithm::default_for(kind),
            spki_der,
            pkcs8_der,
        })
    }

    /// Load a PEM `PRIVATE KEY` (PKCS#8).
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self, KeyError> {
        let (label, doc) = pkcs8::SecretDocument::from_pem(pem)
            .map_err(|_| KeyError::Malformed("PEM does not parse"))?;
        if label != "PRIVATE KEY" {
            return Err(KeyError::Malformed(
                "expected a PEM block labelled PRIVATE KEY",
            ));
        }
        Self::from_pkcs8_der(doc.as_bytes())
    }

    pub fn kind(&self) -> PublicKeyKind {
        self.kind
    }

    /// PKCS#8 DER of the private key, in a buffer that zeroises on drop.
    pub fn to_pkcs8_der(&self) -> Zeroizing<Vec<u8>> {
        self.pkcs8_der.clone()
    }

    /// PKCS#8 PEM of the private key, zeroised on drop.
    pub fn to_pkcs8_pem(&self) -> Zeroizing<String> {
        Zeroizing::new(crate::pem::encode("PRIVATE KEY", &self.pkcs8_der))
    }

    /// PEM `PUBLIC KEY` (SubjectPublicKeyInfo).
    pub fn public_key_pem(&self) -> String {
        crate::pem::encode("PUBLIC KEY", &self.spki_der)
    }
}

impl Signer for SoftwareKey {
    fn public_key_der(&self) -> &[u8] {
        &self.spki_der
    }

    fn signature_algorithm(&self) -> SignatureAlgorithm {
        self.algorithm
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        let rng = SystemRandom::new();
        match &self.inner {
            Inner::Ecdsa(k) => k
                .sign(&rng, message)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| KeyError::Signing),
            Inner::Ed25519(k) => Ok(k.sign(message).as_ref().to_vec()),
            Inner::Rsa(k) => {
                let mut out = vec![0u8; k.public_modulus_len()];
                k.sign(&sig::RSA_PKCS1_SHA256, &rng, message, &mut out)
                    .map_err(|_| KeyError::Signing)?;
                Ok(out)
            }
        }
    }
}

/// Parse a DER SubjectPublicKeyInfo and re-encode it, as a canonical check.
pub fn canonical_spki_der(der: &[u8]) -> Result<Vec<u8>, KeyError> {
    let spki = SubjectPublicKeyInfoRef::from_der(der)
        .map_err(|_| KeyError::Malformed("SubjectPublicKeyInfo does not parse"))?;
    spki.to_der()
        .map_err(|_| KeyError::Malformed("SubjectPublicKeyInfo does not encode"))
}
