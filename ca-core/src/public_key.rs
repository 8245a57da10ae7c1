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

/// Small primes whose residues expose ROCA keys (CVE-2017-15361). Infineon's
/// RSALib built each prime as k·M + (65537^a mod M), with M the product of
/// these primes, so a modulus it made is, modulo every one of them, a power
/// of 65537. A modulus from any other generator is almost never so.
const ROCA_PRIMES: [u64; 38] = [
    3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89, 97,
    101, 103, 107, 109, 113, 127, 131, 137, 139, 149, 151, 157, 163, 167,
];

/// Whether an RSA modulus (big-endian octets) has the ROCA fingerprint.
pub fn rsa_modulus_has_roca_fingerprint(modulus: &[u8]) -> bool {
    ROCA_PRIMES.iter().all(|&p| {
        let residue = modulus
            .iter()
            .fold(0u64, |acc, b| (acc * 256 + u64::from(*b)) % p);
        // Walk the subgroup 65537 generates modulo p (at most p - 1 steps).
        let g = 65537 % p;
        let mut x = 1u64;
        loop {
            if x == residue {
                return true;
            }
            x = x * g % p;
            if x == 1 {
                return false;
            }
        }
    })
}

/// Refuse public keys known to be broken whatever their size: for now, RSA
/// moduli with the ROCA fingerprint. Checked where keys are certified (CSRs,
/// the pre-issuance lint), not where chains made elsewhere are validated.
pub fn refuse_known_weak_key(spki: &SubjectPublicKeyInfoRef<'_>) -> Result<(), KeyError> {
    if spki.algorithm.oid != oids::RSA_ENCRYPTION {
        return Ok(());
    }
    let bits = spki
        .subject_public_key
        .as_bytes()
        .ok_or(KeyError::Malformed("public key bit string has unused bits"))?;
    let key = RsaPublicKeyRef::from_der(bits)
        .map_err(|_| KeyError::Malformed("RSA public key does not parse"))?;
    if rsa_modulus_has_roca_fingerprint(key.modulus.as_bytes()) {
        return Err(KeyError::RocaFingerprint);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `a · m` on big-endian octets (test-only arithmetic).
    fn mul_small(a: &[u8], m: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity(a.len() + 8);
        let mut carry = 0u64;
        for b in a.iter().rev() {
            let v = u64::from(*b) * m + carry;
            out.push((v & 0xff) as u8);
            carry = v >> 8;
        }
        while carry > 0 {
            out.push((carry & 0xff) as u8);
            carry >>= 8;
        }
        out.reverse();
        out
    }

    /// `a + b` on big-endian octets.
    fn add(a: &[u8], b: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let (mut i, mut j, mut carry) = (a.len(), b.len(), 0u16);
        while i > 0 || j > 0 || carry > 0 {
            let x = if i > 0 {
                i -= 1;
                u16::from(a[i])
            } else {
                0
            };
            let y = if j > 0 {
                j -= 1;
                u16::from(b[j])
            } else {
                0
            };
            let v = x + y + carry;
            out.push((v & 0xff) as u8);
            carry = v >> 8;
        }
        out.reverse();
        out
    }

    #[test]
    fn roca_moduli_are_recognised_and_ordinary_ones_are_not() {
        // M, the product of the primes; N = 2^1800 · M + 65537^2 is, modulo
        // each prime, 65537^2: the shape RSALib's moduli have.
        let m = ROCA_PRIMES
            .iter()
            .fold(vec![1u8], |acc, p| mul_small(&acc, *p));
        let mut shifted = m.clone();
        shifted.extend(std::iter::repeat_n(0u8, 1800 / 8));
        let vulnerable = add(&shifted, &(65537u64 * 65537).to_be_bytes());
        assert!(vulnerable.len() * 8 > 2000);
        assert!(rsa_modulus_has_roca_fingerprint(&vulnerable));
        // One more and the residues stop being powers of 65537.
        assert!(!rsa_modulus_has_roca_fingerprint(&add(&vulnerable, &[1])));
        // Moduli aws-lc makes are not fingerprinted.
        use crate::keys::Signer;
        for _ in 0..3 {
            let key = crate::keys::SoftwareKey::generate(crate::keys::KeyAlgorithm::Rsa2048)
                .expect("key");
            let spki = SubjectPublicKeyInfoRef::from_der(key.public_key_der()).expect("spki");
            assert_eq!(refuse_known_weak_key(&spki), Ok(()));
        }
    }
}
