//! DER glue between PKCS#11 attributes and X.509: public keys from
//! CKA_EC_PARAMS/CKA_EC_POINT or CKA_MODULUS/CKA_PUBLIC_EXPONENT, and ECDSA
//! signatures from the token's raw r‖s to the DER SEQUENCE X.509 carries.

use der::asn1::{BitString, ObjectIdentifier, OctetStringRef, UintRef};
use der::{Decode, Encode};
use x509_cert::spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};

/// DER OBJECT IDENTIFIERs as CKA_EC_PARAMS carries them.
pub const P256_OID_DER: [u8; 10] = [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
pub const P384_OID_DER: [u8; 7] = [0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];
pub const ED25519_OID_DER: [u8; 5] = [0x06, 0x03, 0x2b, 0x65, 0x70];

const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");

#[derive(der::Sequence)]
struct RsaPublicKey<'a> {
    modulus: UintRef<'a>,
    public_exponent: UintRef<'a>,
}

#[derive(der::Sequence)]
struct EcdsaSignature<'a> {
    r: UintRef<'a>,
    s: UintRef<'a>,
}

fn spki(algorithm: AlgorithmIdentifierOwned, key: &[u8]) -> Result<Vec<u8>, String> {
    SubjectPublicKeyInfoOwned {
        algorithm,
        subject_public_key: BitString::from_bytes(key).map_err(|e| e.to_string())?,
    }
    .to_der()
    .map_err(|e| e.to_string())
}

/// CKA_EC_POINT is a DER OCTET STRING holding the point (PKCS#11 2.40); some
/// tokens give the bare point. Tell them apart by length.
fn unwrap_point(point: &[u8], bare_len: usize) -> Result<&[u8], String> {
    if point.len() == bare_len {
        return Ok(point);
    }
    let inner = OctetStringRef::from_der(point)
        .map_err(|_| format!("CKA_EC_POINT of {} bytes does not parse", point.len()))?;
    if inner.as_bytes().len() != bare_len {
        return Err(format!(
            "CKA_EC_POINT holds {} bytes, expected {bare_len}",
            inner.as_bytes().len()
        ));
    }
    Ok(inner.as_bytes())
}

/// SubjectPublicKeyInfo of a P-256, P-384 or Ed25519 token key.
pub fn spki_from_ec(params: &[u8], point: &[u8]) -> Result<Vec<u8>, String> {
    // SoftHSM and others also name Ed25519 by the printable string.
    if params == b"\x13\x0cedwards25519" {
        return spki(
            AlgorithmIdentifierOwned {
                oid: ED25519,
                parameters: None,
            },
            unwrap_point(point, 32)?,
        );
    }
    let curve =
        ObjectIdentifier::from_der(params).map_err(|_| "CKA_EC_PARAMS is not a named curve")?;
    let (bare_len, with_params) = match curve {
        P256 => (65, true),
        P384 => (97, true),
        ED25519 => (32, false),
        other => return Err(format!("unsupported curve {other}")),
    };
    let point = unwrap_point(point, bare_len)?;
    if with_params && point.first() != Some(&0x04) {
        return Err("the EC point is not uncompressed".into());
    }
    let algorithm = if with_params {
        AlgorithmIdentifierOwned {
            oid: EC_PUBLIC_KEY,
            parameters: Some(der::Any::from(&curve)),
        }
    } else {
        AlgorithmIdentifierOwned {
            oid: ED25519,
            parameters: None,
        }
    };
    spki(algorithm, point)
}

/// SubjectPublicKeyInfo of an RSA token key.
pub fn spki_from_rsa(modulus: &[u8], exponent: &[u8]) -> Result<Vec<u8>, String> {
    let key = RsaPublicKey {
        modulus: UintRef::new(modulus).map_err(|e| e.to_string())?,
        public_exponent: UintRef::new(exponent).map_err(|e| e.to_string())?,
    }
    .to_der()
    .map_err(|e| e.to_string())?;
    spki(
        AlgorithmIdentifierOwned {
            oid: RSA_ENCRYPTION,
            parameters: Some(der::Any::null()),
        },
        &key,
    )
}

/// PKCS#11 ECDSA signatures are r‖s, each half the length; X.509 wants
/// `SEQUENCE { r INTEGER, s INTEGER }`.
pub fn ecdsa_raw_to_der(raw: &[u8]) -> Result<Vec<u8>, String> {
    if raw.is_empty() || raw.len() % 2 != 0 {
        return Err(format!("an ECDSA signature of {} bytes", raw.len()));
    }
    let (r, s) = raw.split_at(raw.len() / 2);
    EcdsaSignature {
        r: UintRef::new(r).map_err(|e| e.to_string())?,
        s: UintRef::new(s).map_err(|e| e.to_string())?,
    }
    .to_der()
    .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ca_core::keys::{KeyAlgorithm, Signer, SoftwareKey};

    #[test]
    fn ec_and_rsa_public_keys_encode_as_the_software_keys_do() {
        for alg in [KeyAlgorithm::EcdsaP256, KeyAlgorithm::EcdsaP384] {
            let key = SoftwareKey::generate(alg).expect("key");
            let spki = x509_cert::spki::SubjectPublicKeyInfoRef::from_der(key.public_key_der())
                .expect("spki");
            let point = spki.subject_public_key.raw_bytes();
            let params = if alg == KeyAlgorithm::EcdsaP256 {
                P256_OID_DER.to_vec()
            } else {
                P384_OID_DER.to_vec()
            };
            let wrapped = OctetStringRef::new(point)
                .expect("os")
                .to_der()
                .expect("der");
            assert_eq!(
                spki_from_ec(&params, &wrapped).expect("wrapped"),
                key.public_key_der()
            );
            assert_eq!(
                spki_from_ec(&params, point).expect("bare"),
                key.public_key_der()
            );
        }
        let ed = SoftwareKey::generate(KeyAlgorithm::Ed25519).expect("key");
        let spki =
            x509_cert::spki::SubjectPublicKeyInfoRef::from_der(ed.public_key_der()).expect("spki");
        let point = spki.subject_public_key.raw_bytes();
        assert_eq!(
            spki_from_ec(&ED25519_OID_DER, point).expect("ed"),
            ed.public_key_der()
        );
        assert_eq!(
            spki_from_ec(b"\x13\x0cedwards25519", point).expect("ed"),
            ed.public_key_der()
        );
        assert!(spki_from_ec(&P256_OID_DER, &point[..31]).is_err());
    }

    #[test]
    fn raw_ecdsa_signatures_become_der_that_verifies() {
        use aws_lc_rs::rand::SystemRandom;
        use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
        let rng = SystemRandom::new();
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).expect("pkcs8");
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())
            .expect("key");
        let spki_der = spki_from_ec(&P256_OID_DER, key.public_key().as_ref()).expect("spki");
        let spki = x509_cert::spki::SubjectPublicKeyInfoRef::from_der(&spki_der).expect("spki");
        for _ in 0..64 {
            // Many signatures, so some have a high bit set or a leading zero.
            let raw = key.sign(&rng, b"tbs").expect("sign");
            let der = ecdsa_raw_to_der(raw.as_ref()).expect("der");
            ca_core::signature::verify_with(
                &spki,
                ca_core::signature::SignatureAlgorithm::EcdsaSha256,
                b"tbs",
                &der,
            )
            .expect("verifies");
        }
        assert!(ecdsa_raw_to_der(&[1, 2, 3]).is_err());
    }
}
