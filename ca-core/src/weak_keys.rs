//! Public keys known to be broken whatever their size, refused wherever a key
//! is certified (CSRs, the pre-issuance lint, the server's issuance path) as
//! CA/B BR 6.1.1.3 asks: RSA moduli with the ROCA fingerprint, moduli whose
//! primes are close enough for Fermat's method, and keys on a list of known
//! weak keys (Debian's openssl-blacklist format, CVE-2008-0166). Chains made
//! elsewhere are not judged by these rules.

use std::collections::HashSet;

use aws_lc_rs::digest;
use der::Decode;
use num_bigint::BigUint;
use spki::SubjectPublicKeyInfoRef;

use crate::oids;
use crate::public_key::{KeyError, RsaPublicKeyRef};

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

/// Fermat rounds tried per modulus: the count Boulder and badkeys use. A
/// modulus falls in round k when (p - q)² ≈ 8k·√n, so 100 rounds catch
/// primes that share about their top half of bits; sound generators make
/// primes that differ near the top, which no number of rounds would reach.
pub const FERMAT_ROUNDS: u32 = 100;

/// Whether Fermat's method factors `modulus` (big-endian octets) within
/// `rounds`: n = a² - b² = (a - b)(a + b) with a starting at ⌈√n⌉.
pub fn rsa_modulus_factors_by_fermat(modulus: &[u8], rounds: u32) -> bool {
    let n = BigUint::from_bytes_be(modulus);
    if n < BigUint::from(4u8) {
        return false;
    }
    let mut a = n.sqrt();
    if &a * &a < n {
        a += 1u8;
    }
    // b² = a² - n, then stepped: (a+1)² - n = b² + 2a + 1.
    let mut b_squared = &a * &a - &n;
    for _ in 0..rounds {
        if is_square(&b_squared) {
            let b = b_squared.sqrt();
            // a - b = 1 is the trivial n = 1 · n.
            return &a - &b > BigUint::from(1u8);
        }
        b_squared += &a * 2u8 + 1u8;
        a += 1u8;
    }
    false
}

/// Whether `x` is a perfect square; residues modulo 64, 63 and 65 rule out
/// almost every non-square before the costly root.
fn is_square(x: &BigUint) -> bool {
    fn is_residue(x: &BigUint, m: u32) -> bool {
        let r = (x % m).to_u32_digits().first().copied().unwrap_or(0);
        (0..m).any(|i| i * i % m == r)
    }
    if !(is_residue(x, 64) && is_residue(x, 63) && is_residue(x, 65)) {
        return false;
    }
    let root = x.sqrt();
    &root * &root == *x
}

/// A list of known weak RSA keys in the format of Debian's openssl-blacklist
/// (and openssl-vulnkey, Boulder's Debian list, badkeys' exports): one line
/// per key, the last 20 hex digits (80 bits) of the SHA-1 of the text
/// `Modulus=<modulus in upper-case hex>\n` that `openssl rsa -noout -modulus`
/// prints; `#` starts a comment. One set holds every key size: the 80-bit
/// fingerprints of different sizes do not collide in practice.
#[derive(Debug, Default, Clone)]
pub struct WeakKeyList {
    fingerprints: HashSet<[u8; 10]>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("line {line}: {reason}")]
pub struct WeakKeyListError {
    pub line: usize,
    pub reason: &'static str,
}

impl WeakKeyList {
    /// Add the fingerprints of one list's text; nothing is added if a line is
    /// malformed, so a truncated or wrong file is refused, not half-loaded.
    pub fn extend_from_text(&mut self, text: &str) -> Result<usize, WeakKeyListError> {
        let mut parsed = Vec::new();
        for (index, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let error = |reason| WeakKeyListError {
                line: index + 1,
                reason,
            };
            let bytes = crate::hex::decode(line)
                .map_err(|_| error("not hexadecimal (expected 20 hex digits)"))?;
            let fingerprint: [u8; 10] = bytes
                .try_into()
                .map_err(|_| error("not 20 hex digits (the last 80 bits of a SHA-1)"))?;
            parsed.push(fingerprint);
        }
        let count = parsed.len();
        self.fingerprints.extend(parsed);
        Ok(count)
    }

    pub fn len(&self) -> usize {
        self.fingerprints.len()
    }

    pub fn is_empty(&self) -> bool {
        self.fingerprints.is_empty()
    }

    /// Whether the RSA key in this DER SubjectPublicKeyInfo is on the list.
    /// Keys of other types, and keys that do not parse, are not.
    pub fn lists_spki(&self, spki_der: &[u8]) -> bool {
        if self.fingerprints.is_empty() {
            return false;
        }
        rsa_modulus_of(spki_der)
            .is_some_and(|m| self.fingerprints.contains(&modulus_fingerprint(&m)))
    }
}

/// The list fingerprint of a modulus (big-endian octets).
pub fn modulus_fingerprint(modulus: &[u8]) -> [u8; 10] {
    // openssl prints the modulus with BN_print: upper case, no leading zeros.
    let hex = crate::hex::encode(modulus).to_ascii_uppercase();
    let line = format!("Modulus={}\n", hex.trim_start_matches('0'));
    let sha1 = digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, line.as_bytes());
    let mut out = [0u8; 10];
    out.copy_from_slice(&sha1.as_ref()[10..20]);
    out
}

fn rsa_modulus_of(spki_der: &[u8]) -> Option<Vec<u8>> {
    let spki = SubjectPublicKeyInfoRef::from_der(spki_der).ok()?;
    if spki.algorithm.oid != oids::RSA_ENCRYPTION {
        return None;
    }
    let key = RsaPublicKeyRef::from_der(spki.subject_public_key.as_bytes()?).ok()?;
    Some(key.modulus.as_bytes().to_vec())
}

/// Refuse public keys known to be broken whatever their size: RSA moduli with
/// the ROCA fingerprint or with primes Fermat's method finds. (Listed Debian
/// keys need the operator's list: [`WeakKeyList`].)
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
    let modulus = key.modulus.as_bytes();
    if rsa_modulus_has_roca_fingerprint(modulus) {
        return Err(KeyError::RocaFingerprint);
    }
    if rsa_modulus_factors_by_fermat(modulus, FERMAT_ROUNDS) {
        return Err(KeyError::CloseRsaPrimes);
    }
    Ok(())
}

#[cfg(test)]
mod tests;
