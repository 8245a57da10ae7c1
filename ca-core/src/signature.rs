//! Signature algorithms as they appear in X.509 (`AlgorithmIdentifier`), and
//! verification of a signature against a `SubjectPublicKeyInfo`.
//!
//! Verification uses aws-lc-rs, the same backend that signs: one audited,
//! constant-time implementation for the whole workspace.

use aws_lc_rs::signature::{self as sig, VerificationAlgorithm};
use const_oid::ObjectIdentifier;
use der::asn1::AnyRef;
use der::{Decode, Encode, Tagged};
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoRef};

use crate::oids;
use crate::public_key::{KeyError, PublicKeyKind};

/// A signature algorithm this crate can verify (and, for the non-PSS ones, make).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SignatureAlgorithm {
    EcdsaSha256,
    EcdsaSha384,
    EcdsaSha512,
    RsaPkcs1Sha256,
    RsaPkcs1Sha384,
    RsaPkcs1Sha512,
    RsaPssSha256,
    RsaPssSha384,
    RsaPssSha512,
    /// Last: `ParsedKeys` has a slot for each variant up to this one.
    Ed25519,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    #[error("unsupported signature algorithm {0}")]
    UnsupportedAlgorithm(String),
    #[error("malformed signature algorithm parameters: {0}")]
    BadParameters(&'static str),
    #[error("signature algorithm {algorithm:?} does not fit a {key} key")]
    AlgorithmKeyMismatch {
        algorithm: SignatureAlgorithm,
        key: String,
    },
    #[error("public key: {0}")]
    Key(#[from] KeyError),
    #[error("signature does not verify")]
    Invalid,
}

/// RSASSA-PSS-params (RFC 4055 section 3.1). Defaults (SHA-1) are not accepted.
#[derive(Clone, Debug, der::Sequence)]
struct PssParams {
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    hash: Option<AlgorithmIdentifierOwned>,
    #[asn1(context_specific = "1", tag_mode = "EXPLICIT", optional = "true")]
    mask_gen: Option<AlgorithmIdentifierOwned>,
    #[asn1(context_specific = "2", tag_mode = "EXPLICIT", optional = "true")]
    salt_length: Option<u32>,
    #[asn1(context_specific = "3", tag_mode = "EXPLICIT", optional = "true")]
    trailer_field: Option<u32>,
}

fn params_absent(alg: &AlgorithmIdentifierOwned) -> bool {
    alg.parameters.is_none()
}

fn params_null_or_absent(alg: &AlgorithmIdentifierOwned) -> bool {
    match &alg.parameters {
        None => true,
        Some(p) => p.tag() == der::Tag::Null && p.value().is_empty(),
    }
}

fn hash_oid_of(alg: &AlgorithmIdentifierOwned) -> Result<ObjectIdentifier, SignatureError> {
    if !params_null_or_absent(alg) {
        return Err(SignatureError::BadParameters(
            "hash parameters must be NULL or absent",
        ));
    }
    Ok(alg.oid)
}

impl SignatureAlgorithm {
    /// The algorithm a CA with this key signs with (hash sized to the key).
    pub fn default_for(key: PublicKeyKind) -> Self {
        match key {
            PublicKeyKind::Rsa { .. } => SignatureAlgorithm::RsaPkcs1Sha256,
            PublicKeyKind::EcP256 => SignatureAlgorithm::EcdsaSha256,
            PublicKeyKind::EcP384 => SignatureAlgorithm::EcdsaSha384,
            PublicKeyKind::Ed25519 => SignatureAlgorithm::Ed25519,
        }
    }

    /// Identify the algorithm, checking its parameters are encoded as the RFCs say.
    pub fn from_identifier(alg: &AlgorithmIdentifierOwned) -> Result<Self, SignatureError> {
        use SignatureAlgorithm::*;
        let ecdsa = |a| {
            if params_absent(alg) {
                Ok(a)
            } else {
                Err(SignatureError::BadParameters(
                    "ECDSA parameters must be absent",
                ))
            }
        };
        let pkcs1 = |a| {
            if params_null_or_absent(alg) {
                Ok(a)
            } else {
                Err(SignatureError::BadParameters(
                    "RSA PKCS#1 parameters must be NULL",
                ))
            }
        };
        match alg.oid {
            oids::ECDSA_WITH_SHA256 => ecdsa(EcdsaSha256),
            oids::ECDSA_WITH_SHA384 => ecdsa(EcdsaSha384),
            oids::ECDSA_WITH_SHA512 => ecdsa(EcdsaSha512),
            oids::SHA256_WITH_RSA => pkcs1(RsaPkcs1Sha256),
            oids::SHA384_WITH_RSA => pkcs1(RsaPkcs1Sha384),
            oids::SHA512_WITH_RSA => pkcs1(RsaPkcs1Sha512),
            oids::ED25519 => {
                if params_absent(alg) {
                    Ok(Ed25519)
                } else {
                    Err(SignatureError::BadParameters(
                        "Ed25519 parameters must be absent",
                    ))
                }
            }
            oids::RSASSA_PSS => Self::from_pss_params(alg),
            other => Err(SignatureError::UnsupportedAlgorithm(other.to_string())),
        }
    }

    fn from_pss_params(alg: &AlgorithmIdentifierOwned) -> Result<Self, SignatureError> {
        let any = alg
            .parameters
            .as_ref()
            .ok_or(SignatureError::BadParameters("RSASSA-PSS needs parameters"))?;
        let der = any
            .to_der()
            .map_err(|_| SignatureError::BadParameters("RSASSA-PSS parameters"))?;
        let params = PssParams::from_der(&der)
            .map_err(|_| SignatureError::BadParameters("RSASSA-PSS parameters do not parse"))?;
        let hash = params.hash.as_ref().ok_or(SignatureError::BadParameters(
            "RSASSA-PSS with default SHA-1 hash",
        ))?;
        let (algorithm, digest_len) = match hash_oid_of(hash)? {
            oids::SHA256 => (SignatureAlgorithm::RsaPssSha256, 32),
            oids::SHA384 => (SignatureAlgorithm::RsaPssSha384, 48),
            oids::SHA512 => (SignatureAlgorithm::RsaPssSha512, 64),
            other => {
                return Err(SignatureError::UnsupportedAlgorithm(format!(
                    "RSASSA-PSS with hash {other}"
                )))
            }
        };
        let mgf = params
            .mask_gen
            .as_ref()
            .ok_or(SignatureError::BadParameters("RSASSA-PSS with default MGF"))?;
        if mgf.oid != oids::MGF1 {
            return Err(SignatureError::BadParameters(
                "RSASSA-PSS mask generation is not MGF1",
            ));
        }
        let mgf_hash = mgf
            .parameters
            .as_ref()
            .and_then(|p| p.to_der().ok())
            .and_then(|d| AlgorithmIdentifierOwned::from_der(&d).ok())
            .ok_or(SignatureError::BadParameters("MGF1 hash missing"))?;
        if hash_oid_of(&mgf_hash)? != hash.oid {
            return Err(SignatureError::BadParameters(
                "MGF1 hash differs from the message hash",
            ));
        }
        if params.salt_length != Some(digest_len) {
            return Err(SignatureError::BadParameters(
                "RSASSA-PSS salt length must equal the hash length",
            ));
        }
        if params.trailer_field.unwrap_or(1) != 1 {
            return Err(SignatureError::BadParameters(
                "RSASSA-PSS trailer field must be 1",
            ));
        }
        Ok(algorithm)
    }

    /// The `AlgorithmIdentifier` to place in certificates, CSRs and CRLs signed with it.
    pub fn identifier(self) -> AlgorithmIdentifierOwned {
        use SignatureAlgorithm::*;
        let null = || Some(der::Any::from(AnyRef::NULL));
        let (oid, parameters) = match self {
            EcdsaSha256 => (oids::ECDSA_WITH_SHA256, None),
            EcdsaSha384 => (oids::ECDSA_WITH_SHA384, None),
            EcdsaSha512 => (oids::ECDSA_WITH_SHA512, None),
            RsaPkcs1Sha256 => (oids::SHA256_WITH_RSA, null()),
            RsaPkcs1Sha384 => (oids::SHA384_WITH_RSA, null()),
            RsaPkcs1Sha512 => (oids::SHA512_WITH_RSA, null()),
            Ed25519 => (oids::ED25519, None),
            RsaPssSha256 | RsaPssSha384 | RsaPssSha512 => {
                let (hash, salt) = match self {
                    RsaPssSha256 => (oids::SHA256, 32),
                    RsaPssSha384 => (oids::SHA384, 48),
                    _ => (oids::SHA512, 64),
                };
                let hash_alg = AlgorithmIdentifierOwned {
                    oid: hash,
                    parameters: None,
                };
                let mgf_params = hash_alg
                    .to_der()
                    .ok()
                    .and_then(|d| der::Any::from_der(&d).ok());
                let params = PssParams {
                    hash: Some(hash_alg),
                    mask_gen: Some(AlgorithmIdentifierOwned {
                        oid: oids::MGF1,
                        parameters: mgf_params,
                    }),
                    salt_length: Some(salt),
                    trailer_field: None,
                };
                let any = params
                    .to_der()
                    .ok()
                    .and_then(|d| der::Any::from_der(&d).ok());
                (oids::RSASSA_PSS, any)
            }
        };
        AlgorithmIdentifierOwned { oid, parameters }
    }

    fn is_rsa(self) -> bool {
        use SignatureAlgorithm::*;
        matches!(
            self,
            RsaPkcs1Sha256
                | RsaPkcs1Sha384
                | RsaPkcs1Sha512
                | RsaPssSha256
                | RsaPssSha384
                | RsaPssSha512
        )
    }

    fn verification_algorithm(
        self,
        key: PublicKeyKind,
    ) -> Result<&'static dyn VerificationAlgorithm, SignatureError> {
        use SignatureAlgorithm::*;
        let mismatch = || SignatureError::AlgorithmKeyMismatch {
            algorithm: self,
            key: key.to_string(),
        };
        Ok(match (key, self) {
            (PublicKeyKind::EcP256, EcdsaSha256) => &sig::ECDSA_P256_SHA256_ASN1,
            (PublicKeyKind::EcP256, EcdsaSha384) => &sig::ECDSA_P256_SHA384_ASN1,
            (PublicKeyKind::EcP256, EcdsaSha512) => &sig::ECDSA_P256_SHA512_ASN1,
            (PublicKeyKind::EcP384, EcdsaSha256) => &sig::ECDSA_P384_SHA256_ASN1,
            (PublicKeyKind::EcP384, EcdsaSha384) => &sig::ECDSA_P384_SHA384_ASN1,
            (PublicKeyKind::EcP384, EcdsaSha512) => &sig::ECDSA_P384_SHA512_ASN1,
            (PublicKeyKind::Ed25519, Ed25519) => &sig::ED25519,
            (PublicKeyKind::Rsa { .. }, a) if a.is_rsa() => match a {
                RsaPkcs1Sha256 => &sig::RSA_PKCS1_2048_8192_SHA256,
                RsaPkcs1Sha384 => &sig::RSA_PKCS1_2048_8192_SHA384,
                RsaPkcs1Sha512 => &sig::RSA_PKCS1_2048_8192_SHA512,
                RsaPssSha256 => &sig::RSA_PSS_2048_8192_SHA256,
                RsaPssSha384 => &sig::RSA_PSS_2048_8192_SHA384,
                _ => &sig::RSA_PSS_2048_8192_SHA512,
            },
            _ => return Err(mismatch()),
        })
    }
}

/// Verify `signature` over `message`, made with `algorithm`, by the key in `spki`.
pub fn verify_signature(
    spki: &SubjectPublicKeyInfoRef<'_>,
    algorithm: &AlgorithmIdentifierOwned,
    message: &[u8],
    signature: &[u8],
) -> Result<(), SignatureError> {
    let alg = SignatureAlgorithm::from_identifier(algorithm)?;
    verify_with(spki, alg, message, signature)
}

/// Like [`verify_signature`] with an already identified algorithm.
pub fn verify_with(
    spki: &SubjectPublicKeyInfoRef<'_>,
    alg: SignatureAlgorithm,
    message: &[u8],
    signature: &[u8],
) -> Result<(), SignatureError> {
    let (verifier, key_bytes) = verifier_and_key(spki, alg)?;
    sig::UnparsedPublicKey::new(verifier, key_bytes)
        .verify(message, signature)
        .map_err(|_| SignatureError::Invalid)
}

/// Like [`verify_with`] for a key that verifies many signatures (a trust
/// anchor's, or an intermediate's kept between validations): the key is
/// parsed for `alg` once and kept in `parsed`. The same
/// checks, in the same order, give the same verdicts.
/// `kind` is what [`PublicKeyKind::from_spki`] made of `spki` (the caller has
/// it already: asking again costs an OID decode, for RSA a modulus walk).
pub(crate) fn verify_with_parsed(
    spki: &SubjectPublicKeyInfoRef<'_>,
    kind: PublicKeyKind,
    alg: SignatureAlgorithm,
    message: &[u8],
    signature: &[u8],
    parsed: &ParsedKeys,
) -> Result<(), SignatureError> {
    let (verifier, key_bytes) = verifier_and_key_of(kind, spki, alg)?;
    let Some(slot) = parsed.0.get(alg as usize) else {
        return verify_with(spki, alg, message, signature);
    };
    // The kept key is used only for the very key bytes it was parsed from, so
    // a `ParsedKeys` handed another key by mistake costs a parse, not a wrong
    // verdict. A key aws-lc refused is left to `verify_with`, which refuses it.
    match slot.get_or_init(|| sig::ParsedPublicKey::new(verifier, key_bytes).ok()) {
        Some(key) if key.as_ref() == key_bytes => key
            .verify_sig(message, signature)
            .map_err(|_| SignatureError::Invalid),
        _ => verify_with(spki, alg, message, signature),
    }
}

fn verifier_and_key<'k>(
    spki: &SubjectPublicKeyInfoRef<'k>,
    alg: SignatureAlgorithm,
) -> Result<(&'static dyn VerificationAlgorithm, &'k [u8]), SignatureError> {
    verifier_and_key_of(PublicKeyKind::from_spki(spki)?, spki, alg)
}

fn verifier_and_key_of<'k>(
    kind: PublicKeyKind,
    spki: &SubjectPublicKeyInfoRef<'k>,
    alg: SignatureAlgorithm,
) -> Result<(&'static dyn VerificationAlgorithm, &'k [u8]), SignatureError> {
    let verifier = alg.verification_algorithm(kind)?;
    let key_bytes = spki
        .subject_public_key
        .as_bytes()
        .ok_or(SignatureError::Key(KeyError::Malformed(
            "public key bit string has unused bits",
        )))?;
    Ok((verifier, key_bytes))
}

/// One public key as aws-lc parsed it, per signature algorithm it was used with
/// (aws-lc ties a parsed key to one algorithm), each made on first use. For
/// RSA-2048 this saves ~2.4 of a verification's ~18 µs: the modulus read into
/// big numbers and its Montgomery constants, which aws-lc keeps with the key.
#[derive(Default)]
pub(crate) struct ParsedKeys([std::sync::OnceLock<Option<sig::ParsedPublicKey>>; ALGORITHMS]);

#[cfg(test)]
impl ParsedKeys {
    /// The bytes of the key kept parsed for `alg`, if one is.
    pub(crate) fn kept_key(&self, alg: SignatureAlgorithm) -> Option<&[u8]> {
        self.0
            .get(alg as usize)?
            .get()?
            .as_ref()
            .map(|k| k.as_ref())
    }
}

/// How many [`SignatureAlgorithm`] variants there are (`ParsedKeys`' slots).
const ALGORITHMS: usize = SignatureAlgorithm::Ed25519 as usize + 1;

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};
    use der::Decode;

    fn key_and_spki() -> (EcdsaKeyPair, Vec<u8>) {
        let key = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING).unwrap();
        let spki = key.public_key().as_der().unwrap().as_ref().to_vec();
        (key, spki)
    }

    /// A `ParsedKeys` filled from one key and then handed another (a caller's
    /// mistake) gives the other key's verdicts, not the kept key's.
    #[test]
    fn parsed_keys_answer_only_for_the_key_they_were_made_from() {
        let rng = SystemRandom::new();
        let (a, a_spki) = key_and_spki();
        let (b, b_spki) = key_and_spki();
        let a_spki = SubjectPublicKeyInfoRef::from_der(&a_spki).unwrap();
        let b_spki = SubjectPublicKeyInfoRef::from_der(&b_spki).unwrap();
        let alg = SignatureAlgorithm::EcdsaSha256;
        let kind = PublicKeyKind::from_spki(&a_spki).unwrap();
        assert_eq!(PublicKeyKind::from_spki(&b_spki).unwrap(), kind);
        let msg = b"to be signed";
        let by_a = a.sign(&rng, msg).unwrap();
        let by_b = b.sign(&rng, msg).unwrap();

        let kept = ParsedKeys::default();
        verify_with_parsed(&a_spki, kind, alg, msg, by_a.as_ref(), &kept)
            .expect("a's own signature");
        assert_eq!(kept.kept_key(alg), a_spki.subject_public_key.as_bytes());
        verify_with_parsed(&b_spki, kind, alg, msg, by_b.as_ref(), &kept)
            .expect("b's signature, b's key");
        assert!(matches!(
            verify_with_parsed(&b_spki, kind, alg, msg, by_a.as_ref(), &kept),
            Err(SignatureError::Invalid)
        ));
        assert!(matches!(
            verify_with_parsed(&a_spki, kind, alg, b"another message", by_a.as_ref(), &kept),
            Err(SignatureError::Invalid)
        ));
    }
}
