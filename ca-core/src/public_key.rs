//! Public keys as issuance and validation see them: their kind and size, and the
//! errors a key can raise. Shared by [`crate::keys`] (the private side) and
//! [`crate::signature`] (verification), so neither needs the other's internals.

use std::fmt;

use der::asn1::UintRef;
use der::{Decode, Tagged};
use spki::SubjectPublicKeyInfoRef;

use crate::oids;

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
    #[error("RSA key has the ROCA fingerprint (CVE-2017-15361, Infineon RSALib): its private key can be computed; make a new key elsewhere")]
    RocaFingerprint,
    #[error("RSA key's primes are so close that Fermat's method factors the modulus at once: its private key can be computed; make a new key with a sound generator")]
    CloseRsaPrimes,
    #[error("key generation failed")]
    Generation,
    #[error("signing failed")]
    Signing,
    /// The key lives elsewhere (an HSM) and cannot be reached just now; the
    /// message says why. Callers answer "try again later", not "bad request".
    #[error("the signing key is unavailable: {0}")]
    Unavailable(String),
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
}

#[derive(der::Sequence)]
pub(crate) struct RsaPublicKeyRef<'a> {
    pub(crate) modulus: UintRef<'a>,
    pub(crate) public_exponent: UintRef<'a>,
}

fn rsa_modulus_bits(pkcs1: &[u8]) -> Result<usize, KeyError> {
    match common_rsa_modulus_bits(pkcs1) {
        Some(bits) => Ok(bits),
        None => rsa_modulus_bits_through_der(pkcs1),
    }
}

fn rsa_modulus_bits_through_der(pkcs1: &[u8]) -> Result<usize, KeyError> {
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

/// Panics when the hand-read path sizes `pkcs1` other than der's reading
/// does; true when the hand-read path took it (for the tests and fuzzing).
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn rsa_modulus_bits_agree(pkcs1: &[u8]) -> bool {
    let Some(bits) = common_rsa_modulus_bits(pkcs1) else {
        return false;
    };
    assert_eq!(
        rsa_modulus_bits_through_der(pkcs1).ok(),
        Some(bits),
        "{}",
        crate::hex::encode(pkcs1)
    );
    true
}

/// The modulus's size for the key nearly every RSA certificate holds, read
/// by hand: `SEQUENCE { INTEGER 00 <modulus, top bit set>, INTEGER 65537 }`
/// in minimal lengths, nothing after it. `None` for any other encoding, which
/// der then reads; this one is valid under every rule `rsa_modulus_bits` applies.
fn common_rsa_modulus_bits(pkcs1: &[u8]) -> Option<usize> {
    use crate::der_util::read_tlv;
    const EXPONENT_65537: [u8; 5] = [0x02, 0x03, 0x01, 0x00, 0x01];
    let (key, trailing) = read_tlv(pkcs1).ok()?;
    let (modulus, rest) = read_tlv(key.content).ok()?;
    if key.tag != 0x30 || modulus.tag != 0x02 || !trailing.is_empty() || rest != EXPONENT_65537 {
        return None;
    }
    match modulus.content {
        [0x00, top, ..] if *top >= 0x80 => Some((modulus.content.len() - 1) * 8),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whatever the hand-read path sizes, der's reading sizes the same: every
    /// byte of real RSA keys (2048 to 4096 bits) flipped three ways and dropped.
    #[test]
    fn common_rsa_keys_are_sized_as_der_sizes_them() {
        use aws_lc_rs::rsa::{KeyPair, KeySize};
        use aws_lc_rs::signature::KeyPair as _;
        let (mut compared, mut by_hand) = (0, 0);
        for (size, bits) in [
            (KeySize::Rsa2048, 2048),
            (KeySize::Rsa3072, 3072),
            (KeySize::Rsa4096, 4096),
        ] {
            let key = KeyPair::generate(size).unwrap();
            // PKCS #1 RSAPublicKey, DER.
            let der = key.public_key().as_ref().to_vec();
            assert_eq!(common_rsa_modulus_bits(&der), Some(bits), "{bits}");
            let mut check = |der: &[u8]| {
                compared += 1;
                if rsa_modulus_bits_agree(der) {
                    by_hand += 1;
                }
            };
            crate::der_util::corrupt(&der, 0..der.len(), &[0x01, 0x80, 0xff], &mut check);
        }
        assert!(by_hand > compared / 2, "{by_hand} of {compared} by hand");
    }
}
