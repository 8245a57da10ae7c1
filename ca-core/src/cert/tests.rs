//! The certificate assembly and the issuer chain, against der and x509-cert.

use std::str::FromStr;

use der::{Decode, Encode};
use time::OffsetDateTime;
use x509_cert::certificate::Certificate;
use x509_cert::name::Name;

use super::issuance::certificate_der;
use super::*;
use crate::keys::{KeyAlgorithm, Signer, SoftwareKey};
use crate::names::SanEntry;
use crate::serial::Serial;

/// An intermediate's chain as PEM is its certificate then the root's, as
/// its DER chain says, and stays so once made.
#[test]
fn chain_pem_is_the_der_chain_as_pem() {
    let now = OffsetDateTime::now_utc();
    let root_key = SoftwareKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let root = create_root(
        &root_key,
        &RootParams::new(Name::from_str("CN=Chain Root").unwrap()),
        now,
    )
    .unwrap();
    let root_issuer = Issuer::new(root.clone(), vec![], IssuerUrls::default());
    let sub_key = SoftwareKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let sub = create_intermediate(
        &root_issuer,
        &root_key,
        sub_key.public_key_der(),
        &IntermediateParams {
            subject: Name::from_str("CN=Chain Sub").unwrap(),
            validity_days: None,
            path_len: Some(0),
            name_constraints: None,
        },
        now,
    )
    .unwrap();
    let issuer = Issuer::new(sub.clone(), vec![root.clone()], IssuerUrls::default());
    let expected = format!("{}{}", sub.to_pem(), root.to_pem());
    for _ in 0..2 {
        assert_eq!(issuer.chain_pem(), expected);
        assert_eq!(
            pem::decode_all("CERTIFICATE", issuer.chain_pem()).unwrap(),
            issuer.chain_der()
        );
    }
    assert_eq!(root_issuer.chain_pem(), root.to_pem());
    // A clone changed before use speaks for its own certificates.
    let mut alone = issuer.clone();
    alone.parents.clear();
    assert_eq!(alone.chain_pem(), sub.to_pem());
}

/// The certificate put together around the signed TBS bytes is, byte for
/// byte, what x509-cert encodes for the same certificate, for every
/// issuer key kind and for signatures of every length-encoding size
/// (short form, one and two length octets).
#[test]
fn certificate_der_is_what_x509_cert_encodes() {
    let now = OffsetDateTime::now_utc();
    for alg in [
        KeyAlgorithm::EcdsaP256,
        KeyAlgorithm::EcdsaP384,
        KeyAlgorithm::Rsa2048,
        KeyAlgorithm::Ed25519,
    ] {
        let key = SoftwareKey::generate(alg).unwrap();
        let root = create_root(
            &key,
            &RootParams::new(Name::from_str("CN=Splice Root").unwrap()),
            now,
        )
        .unwrap();
        let issuer = Issuer::new(root, vec![], IssuerUrls::default());
        let leaf = SoftwareKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
        let req = CertificateRequest {
            subject: Name::from_str("CN=www.example.internal").unwrap(),
            spki_der: leaf.public_key_der().to_vec(),
            sans: vec![SanEntry::Dns("www.example.internal".into())],
            profile: Profile::TlsServer,
            validity_days: Some(30),
            name_constraints: None,
        };
        let prepared = prepare(
            &issuer,
            &req,
            Serial::random().unwrap(),
            now,
            Profile::TlsServer.default_limits(),
        )
        .unwrap();
        let alg_der = prepared.tbs.signature.to_der().unwrap();
        for len in [0, 1, 63, 64, 71, 72, 126, 127, 128, 255, 256, 512, 70_000] {
            let sig: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
            let theirs = Certificate {
                signature_algorithm: prepared.tbs.signature.clone(),
                tbs_certificate: prepared.tbs.clone(),
                signature: der::asn1::BitString::from_bytes(&sig).unwrap(),
            }
            .to_der()
            .unwrap();
            let ours = certificate_der(&prepared.tbs_der, &alg_der, &sig);
            assert_eq!(ours, theirs, "{alg:?}, {len}-octet signature");
        }
        // And signed for real: the certificate parses, and its signature
        // is the issuer's over its TBS.
        let issued = prepared.sign(&key).unwrap();
        let cert = Certificate::from_der(&issued.der).unwrap();
        assert!(cert_signed_by(
            &cert,
            &issuer
                .certificate
                .cert
                .tbs_certificate
                .subject_public_key_info
        ));
    }
}
