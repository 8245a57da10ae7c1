//! Key pairs and public keys: generation, PKCS#8 and SPKI encodings, and the
//! [`Signer`] seam through which every CA signature is made.

use std::fmt;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self as sig, KeyPair as _};
use der::asn1::UintRef;
use der::{Decode, Encode, Tagged};
use pkcs8::PrivateKeyInfo;
use spki::SubjectPublicKeyInfoRef;
use zeroize::Zeroizing;

use crate::oids;
use crate::signature::SignatureAlgorithm;

/// Smallest RSA modulus accepted anywhere (CSRs, CA keys, chains).
pub const MIN_RSA_BITS: usize = 2048;
/// Largest RSA modulus accepted: bigger keys only cost verifiers time.
pub const MAX_RSA_BITS: usize = 8192;

#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum KeyError {
    #[error("malformed key: {0}")]
    Malformed(&'static str),
    #[error("unsupported key algorithm {0}")]
    UnsupportedAlgorithm(String),
    #[error("unsupported elliptic curve {0}")]
    UnsupportedCurve(String),
    #[error("RSA key of {0} bits is too weak (minimum {MIN_RSA_BITS})")]
    WeakRsa(usize),
    #[error("RSA key of {0} bits is too large (maximum {MAX_RSA_BITS})")]
    OversizedRsa(usize),
    #[error("key generation failed")]
    Generation,
    #[error("signing failed")]
    Signing,
}

/// What a public key is, as far as issuance and validation care.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PublicKeyKind {
    Rsa { bits: usize },
    EcP256,
    EcP384,
    Ed25519,
}

impl fmt::Display for PublicKeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PublicKeyKind::Rsa { bits } => write!(f, "RSA-{bits}"),
            PublicKeyKind::EcP256 => f.write_str("ECDSA P-256"),
            PublicKeyKind::EcP384 => f.write_str("ECDSA P-384"),
            PublicKeyKind::Ed25519 => f.write_str("Ed25519"),
        }
    }
}

impl PublicKeyKind {
    /// Classify a SubjectPublicKeyInfo, refusing unknown curves and algorithms,
    /// malformed encodings, and RSA keys outside 2048..=8192 bits.
    pub fn from_spki(spki: &SubjectPublicKeyInfoRef<'_>) -> Result<Self, KeyError> {
        let key_bytes = spki
            .subject_public_key
            .as_bytes()
            .ok_or(KeyError::Malformed("public key bit string has unused bits"))?;
        match spki.algorithm.oid {
            oids::RSA_ENCRYPTION => {
                let params_ok = match &spki.algorithm.parameters {
                    None => true,
                    Some(p) => p.tag() == der::Tag::Null && p.value().is_empty(),
                };
                if !params_ok {
                    return Err(KeyError::Malformed("rsaEncryption parameters must be NULL"));
                }
                let bits = rsa_modulus_bits(key_bytes)?;
                if bits < MIN_RSA_BITS {
                    return Err(KeyError::WeakRsa(bits));
                }
                if bits > MAX_RSA_BITS {
                    return Err(KeyError::OversizedRsa(bits));
                }
                Ok(PublicKeyKind::Rsa { bits })
            }
            oids::EC_PUBLIC_KEY => {
                let curve = spki
                    .algorithm
                    .parameters
                    .as_ref()
                    .ok_or(KeyError::Malformed("EC key without a named curve"))?
                    .decode_as::<const_oid::ObjectIdentifier>()
                    .map_err(|_| KeyError::Malformed("EC key parameters are not a named curve"))?;
                let (kind, len) = match curve {
                    oids::SECP256R1 => (PublicKeyKind::EcP256, 65),
                    oids::SECP384R1 => (PublicKeyKind::EcP384, 97),
                    other => return Err(KeyError::UnsupportedCurve(other.to_string())),
                };
                // Uncompressed points only: what every TLS stack sends and accepts.
                if key_bytes.len() != len || key_bytes.first() != Some(&4) {
                    return Err(KeyError::Malformed(
                        "EC point is not an uncompressed point of its curve",
                    ));
                }
                Ok(kind)
            }
            oids::ED25519 => {
                if spki.algorithm.parameters.is_some() {
                    return Err(KeyError::Malformed("Ed25519 key parameters must be absent"));
                }
                if key_bytes.len() != 32 {
                    return Err(KeyError::Malformed("Ed25519 key is not 32 bytes"));
                }
                Ok(PublicKeyKind::Ed25519)
            }
            other => Err(KeyError::UnsupportedAlgorithm(other.to_string())),
        }
    }

    /// Classify a DER SubjectPublicKeyInfo.
    pub fn from_spki_der(der: &[u8]) -> Result<Self, KeyError> {
        let spki = SubjectPublicKeyInfoRef::from_der(der)
            .map_err(|_| KeyError::Malformed("SubjectPublicKeyInfo does not parse"))?;
        Self::from_spki(&spki)
    }

    /// The signature algorithm a CA with this key signs with (hash sized to the key).
    pub fn default_signature_algorithm(self) -> SignatureAlgorithm {
        match self {
            PublicKeyKind::Rsa { .. } => SignatureAlgorithm::RsaPkcs1Sha256,
            PublicKeyKind::EcP256 => SignatureAlgorithm::EcdsaSha256,
            PublicKeyKind::EcP384 => SignatureAlgorithm::EcdsaSha384,
            PublicKeyKind::Ed25519 => SignatureAlgorithm::Ed25519,
        }
    }
}

#[derive(der::Sequence)]
struct RsaPublicKeyRef<'a> {
    modulus: UintRef<'a>,
    public_exponent: UintRef<'a>,
}

fn rsa_modulus_bits(pkcs1: &[u8]) -> Result<usize, KeyError> {
    let key = RsaPublicKeyRef::from_der(pkcs1)
        .map_err(|_| KeyError::Malformed("RSA public key does not parse"))?;
    let exponent = key.public_exponent.as_bytes();
    if exponent.is_empty() || exponent.len() > 8 || exponent.last().is_some_and(|b| b & 1 == 0) {
        return Err(KeyError::Malformed(
            "RSA public exponent must be odd and small",
        ));
    }
    let modulus = key.modulus.as_bytes();
    let first = *modulus
        .first()
        .ok_or(KeyError::Malformed("RSA modulus is zero"))?;
    Ok(modulus.len() * 8 - first.leading_zeros() as usize)
}

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
            algorithm: kind.default_signature_algorithm(),
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
