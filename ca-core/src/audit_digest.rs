//! Signed digests of the audit trail, in the manner of CloudTrail's digest
//! files. The hash chain alone shows that entries were removed or altered,
//! but whoever can write the store can rewrite the whole chain consistently.
//! A digest is the chain's head (sequence number and hash) at a moment,
//! signed with a dedicated audit key whose public half operators pin outside
//! the store. A rewrite of any entry a digest covers then needs that key.
//! Digests chain too (each names the hash of the one before), so one cannot
//! be dropped from the middle unnoticed; the newest ones can, which is why
//! operators keep copies of them, or at least of the latest.

use aws_lc_rs::digest;
use base64ct::{Base64, Encoding};
use der::Decode;
use serde::{Deserialize, Serialize};
use spki::SubjectPublicKeyInfoRef;

use crate::audit_chain::GENESIS;
use crate::keys::Signer;
use crate::public_key::PublicKeyKind;
use crate::signature::{verify_with, SignatureAlgorithm};

/// Domain separation: a digest signature can never pass for another
/// signature this key might make, nor the reverse.
const CONTEXT: &[u8] = b"ca-server audit digest v1\n";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditDigest {
    /// 1, 2, 3, … in the order the digests were made.
    pub number: u64,
    /// RFC 3339 UTC, when it was signed.
    pub time: String,
    pub unix: i64,
    /// The audit entry it covers up to (0: an empty trail).
    pub head_seq: u64,
    /// That entry's hash (the genesis hash for an empty trail).
    pub head_hash: String,
    /// [`AuditDigest::record_hash`] of the digest before (genesis for the first).
    pub prev_digest: String,
    /// SHA-256 of the signing key's DER SubjectPublicKeyInfo, hex.
    pub key_sha256: String,
    /// The signing key's DER SubjectPublicKeyInfo, base64, so a verifier
    /// without the store's master key can check it, and can see when a
    /// digest was signed by a key other than the one it pinned.
    pub key_spki: String,
    /// Base64 signature over [`AuditDigest::signing_input`].
    pub signature: String,
}

/// What a new digest says; [`AuditDigest::sign`] completes it.
pub struct DigestDraft {
    pub number: u64,
    pub time: time::OffsetDateTime,
    pub head_seq: u64,
    pub head_hash: String,
    pub prev_digest: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DigestError {
    #[error("the audit digest key cannot sign: {0}")]
    Sign(String),
    #[error("the digest does not encode: {0}")]
    Encode(String),
}

impl AuditDigest {
    /// Sign `draft` with the audit key.
    pub fn sign(draft: DigestDraft, key: &dyn Signer) -> Result<AuditDigest, DigestError> {
        let spki = key.public_key_der();
        let time = draft
            .time
            .format(&time::format_description::well_known::Rfc3339)
            .map_err(|e| DigestError::Encode(e.to_string()))?;
        let mut d = AuditDigest {
            number: draft.number,
            time,
            unix: draft.time.unix_timestamp(),
            head_seq: draft.head_seq,
            head_hash: draft.head_hash,
            prev_digest: draft.prev_digest,
            key_sha256: sha256_hex(spki),
            key_spki: Base64::encode_string(spki),
            signature: String::new(),
        };
        let input = d.signing_input()?;
        let signature = key
            .sign(&input)
            .map_err(|e| DigestError::Sign(e.to_string()))?;
        d.signature = Base64::encode_string(&signature);
        Ok(d)
    }

    /// The bytes signed: a context string, then the digest's JSON (fields in
    /// declaration order) with an empty signature.
    pub fn signing_input(&self) -> Result<Vec<u8>, DigestError> {
        let mut unsigned = self.clone();
        unsigned.signature = String::new();
        let json = serde_json::to_vec(&unsigned).map_err(|e| DigestError::Encode(e.to_string()))?;
        Ok([CONTEXT, &json].concat())
    }

    /// The hash the next digest names: SHA-256 of this one's JSON, signature
    /// included.
    pub fn record_hash(&self) -> Result<String, DigestError> {
        let json = serde_json::to_vec(self).map_err(|e| DigestError::Encode(e.to_string()))?;
        Ok(sha256_hex(&json))
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    crate::hex::encode(digest::digest(&digest::SHA256, bytes).as_ref())
}

/// Why a digest did not check out.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("audit digest {number}: {why}")]
pub struct BadDigest {
    pub number: u64,
    /// The audit entry the digest covers up to.
    pub head_seq: u64,
    pub why: String,
}

/// Checks digests in order against the hashes of a verified chain.
#[derive(Clone, Debug)]
pub struct DigestVerifier {
    pinned_spki: Option<Vec<u8>>,
    expected_number: u64,
    prev: String,
    last_head: u64,
    count: u64,
}

impl DigestVerifier {
    /// `pinned_spki`: the audit key's public half as the operator kept it
    /// (DER). Without a pin, each digest is checked with the key it names,
    /// which proves only that the digests agree with each other.
    pub fn new(pinned_spki: Option<Vec<u8>>) -> Self {
        DigestVerifier {
            pinned_spki,
            expected_number: 1,
            prev: GENESIS.to_string(),
            last_head: 0,
            count: 0,
        }
    }

    /// Check the next digest. `entry_hash` is the verified chain's hash of
    /// entry `d.head_seq` (None if the chain has no such entry).
    pub fn push(&mut self, d: &AuditDigest, entry_hash: Option<&str>) -> Result<(), BadDigest> {
        let bad = |why: String| {
            Err(BadDigest {
                number: d.number,
                head_seq: d.head_seq,
                why,
            })
        };
        if d.number != self.expected_number {
            return bad(format!(
                "digest {} is missing (the next present is {})",
                self.expected_number, d.number
            ));
        }
        if d.prev_digest != self.prev {
            return bad("it does not name the digest before it (removed or reordered)".into());
        }
        if d.head_seq < self.last_head {
            return bad("it covers less of the trail than the digest before it".into());
        }
        let Ok(spki) = Base64::decode_vec(&d.key_spki) else {
            return bad("its key does not decode".into());
        };
        if let Some(pinned) = &self.pinned_spki {
            if *pinned != spki {
                return bad(format!(
                    "it was signed by key {} (SHA-256 of the SPKI), not by the pinned audit key {}",
                    sha256_hex(&spki),
                    sha256_hex(pinned)
                ));
            }
        }
        if let Err(why) = check_signature(d, &spki) {
            return bad(why);
        }
        let expected = if d.head_seq == 0 {
            Some(GENESIS)
        } else {
            entry_hash
        };
        match expected {
            None => {
                return bad(format!(
                    "it covers entry {} but the trail has no such entry (entries removed from the end)",
                    d.head_seq
                ))
            }
            Some(h) if h != d.head_hash => {
                return bad(format!(
                    "it signed hash {} for entry {}, but that entry's hash is now {h} (the trail was rewritten)",
                    d.head_hash, d.head_seq
                ))
            }
            Some(_) => {}
        }
        self.prev = d.record_hash().map_err(|e| BadDigest {
            number: d.number,
            head_seq: d.head_seq,
            why: e.to_string(),
        })?;
        self.expected_number = d.number.saturating_add(1);
        self.last_head = d.head_seq;
        self.count += 1;
        Ok(())
    }

    /// Digests checked so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The last entry a checked digest covers (0 before any).
    pub fn covered(&self) -> u64 {
        self.last_head
    }
}

fn check_signature(d: &AuditDigest, spki_der: &[u8]) -> Result<(), String> {
    let spki = SubjectPublicKeyInfoRef::from_der(spki_der)
        .map_err(|_| "its key does not parse".to_string())?;
    let kind = PublicKeyKind::from_spki(&spki).map_err(|e| format!("its key: {e}"))?;
    let signature = Base64::decode_vec(&d.signature)
        .map_err(|_| "its signature does not decode".to_string())?;
    let input = d.signing_input().map_err(|e| e.to_string())?;
    verify_with(
        &spki,
        SignatureAlgorithm::default_for(kind),
        &input,
        &signature,
    )
    .map_err(|_| "its signature does not verify (forged or altered)".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{KeyAlgorithm, SoftwareKey};

    fn digests(key: &SoftwareKey, heads: &[(u64, &str)]) -> Vec<AuditDigest> {
        let mut prev = GENESIS.to_string();
        heads
            .iter()
            .enumerate()
            .map(|(i, (seq, hash))| {
                let d = AuditDigest::sign(
                    DigestDraft {
                        number: i as u64 + 1,
                        time: time::OffsetDateTime::UNIX_EPOCH,
                        head_seq: *seq,
                        head_hash: hash.to_string(),
                        prev_digest: prev.clone(),
                    },
                    key,
                )
                .unwrap();
                prev = d.record_hash().unwrap();
                d
            })
            .collect()
    }

    fn check(
        pin: Option<&SoftwareKey>,
        ds: &[AuditDigest],
        hash_of: &dyn Fn(u64) -> Option<String>,
    ) -> Result<u64, BadDigest> {
        let mut v = DigestVerifier::new(pin.map(|k| k.public_key_der().to_vec()));
        for d in ds {
            v.push(d, hash_of(d.head_seq).as_deref())?;
        }
        Ok(v.count())
    }

    #[test]
    fn digests_bind_the_chain_head_to_the_pinned_key() {
        let key = SoftwareKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
        let chain = |seq: u64| (seq <= 9).then(|| format!("{seq:064x}"));
        let h3 = format!("{:064x}", 3);
        let h9 = format!("{:064x}", 9);
        let ds = digests(&key, &[(0, GENESIS), (3, &h3), (9, &h9)]);
        assert_eq!(check(Some(&key), &ds, &chain), Ok(3));
        // The trail rewritten under digest 2.
        let rewritten = |seq: u64| Some(format!("{:064x}", seq + 100));
        let err = check(Some(&key), &ds, &rewritten).unwrap_err();
        assert_eq!((err.number, err.head_seq), (2, 3), "{err}");
        // Entries removed from the end.
        let short = |seq: u64| (seq <= 5).then(|| format!("{seq:064x}"));
        assert_eq!(check(Some(&key), &ds, &short).unwrap_err().number, 3);
        // A digest altered after signing, or dropped from the middle.
        let mut altered = ds.clone();
        altered[1].head_seq = 4;
        assert!(check(None, &altered, &chain)
            .unwrap_err()
            .why
            .contains("signature"));
        let dropped = vec![ds[0].clone(), ds[2].clone()];
        assert_eq!(check(None, &dropped, &chain).unwrap_err().number, 3);
        // Consistent digests signed by another key: fine unpinned, refused pinned.
        let other = SoftwareKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
        let forged = digests(&other, &[(0, GENESIS), (3, &h3)]);
        assert_eq!(check(None, &forged, &chain), Ok(2));
        let err = check(Some(&key), &forged, &chain).unwrap_err();
        assert!(err.why.contains("pinned"), "{err}");
    }
}
