//! Path-level tests over chains generated with rcgen (the decodings' own tests
//! are in `decoding_tests.rs`).

use const_oid::ObjectIdentifier;
use der::Decode;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, GeneralSubtree, IsCa,
    Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, NameConstraints,
};
use time::{Duration, OffsetDateTime};

use super::*;
use crate::oids;

fn key() -> KeyPair {
    KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap()
}

pub(super) fn ca(cn: &str, path_len: Option<u8>) -> CertificateParams {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.is_ca = IsCa::Ca(match path_len {
        Some(n) => BasicConstraints::Constrained(n),
        None => BasicConstraints::Unconstrained,
    });
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p.use_authority_key_identifier_extension = true;
    p
}

pub(super) fn leaf(name: &str) -> CertificateParams {
    let mut p = CertificateParams::new(vec![name.to_string()]).unwrap();
    p.distinguished_name.push(DnType::CommonName, name);
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.use_authority_key_identifier_extension = true;
    p
}

pub(super) struct Pki {
    root: Vec<u8>,
    pub(super) root_issuer: Issuer<'static, KeyPair>,
}

pub(super) fn new_pki() -> Pki {
    let k = key();
    let p = ca("Test Root", None);
    let root = p.self_signed(&k).unwrap().der().to_vec();
    Pki {
        root,
        root_issuer: Issuer::new(p, k),
    }
}

pub(super) fn sign(p: &CertificateParams, issuer: &Issuer<'_, KeyPair>) -> (Vec<u8>, KeyPair) {
    let k = key();
    let der = p.signed_by(&k, issuer).unwrap().der().to_vec();
    (der, k)
}

fn opts(name: &str) -> VerifyOptions {
    let mut o = VerifyOptions::new(Usage::TlsServer, OffsetDateTime::now_utc());
    o.peer_name = Some(PeerName::Dns(name.into()));
    o
}

fn failed_kind(r: Result<VerifiedPath, VerifyError>) -> CheckKind {
    match r {
        Ok(_) => panic!("expected a failure"),
        Err(e) => match e.reason {
            Reason::Check { kind, .. } => kind,
            other => panic!("unexpected reason {other}"),
        },
    }
}

#[test]
fn valid_three_certificate_chain_is_explained() {
    let pki = new_pki();
    let ip = ca("Issuing CA", Some(0));
    let (int, ik) = sign(&ip, &pki.root_issuer);
    let int_issuer = Issuer::new(ip, ik);
    let (ee, _) = sign(&leaf("bob.example"), &int_issuer);
    let path = verify_chain(
        &ee,
        std::slice::from_ref(&int),
        std::slice::from_ref(&pki.root),
        &opts("bob.example"),
    )
    .unwrap();
    assert_eq!(path.chain, vec![ee, int, pki.root]);
    let text = path.explanation.to_string();
    assert!(text.contains("[leaf] CN=bob.example"), "{text}");
    assert!(
        text.contains("✓ signature: by CN=Issuing CA (ECDSA SHA-256)"),
        "{text}"
    );
    assert!(
        text.contains("✓ peer name: DNS:bob.example matches SAN bob.example"),
        "{text}"
    );
    assert!(!text.contains('✗'), "{text}");
}

#[test]
fn wrong_peer_name_and_missing_issuer() {
    let pki = new_pki();
    let (ee, _) = sign(&leaf("bob.example"), &pki.root_issuer);
    let r = verify_chain(
        &ee,
        &[] as &[Vec<u8>],
        std::slice::from_ref(&pki.root),
        &opts("eve.example"),
    );
    assert_eq!(failed_kind(r), CheckKind::PeerName);
    let other = new_pki();
    let r = verify_chain(&ee, &[] as &[Vec<u8>], &[other.root], &opts("bob.example"));
    assert!(matches!(
        r.map_err(|e| e.reason),
        Err(Reason::Check {
            kind: CheckKind::Signature,
            ..
        })
    ));
}

#[test]
fn expired_leaf_is_rejected() {
    let pki = new_pki();
    let mut p = leaf("bob.example");
    p.not_before = OffsetDateTime::now_utc() - Duration::days(10);
    p.not_after = OffsetDateTime::now_utc() - Duration::days(1);
    let (ee, _) = sign(&p, &pki.root_issuer);
    let r = verify_chain(&ee, &[] as &[Vec<u8>], &[pki.root], &opts("bob.example"));
    assert_eq!(failed_kind(r), CheckKind::Validity);
}

#[test]
fn path_length_constraint_is_enforced() {
    let pki = new_pki();
    let p1 = ca("CA one", Some(0));
    let (i1, k1) = sign(&p1, &pki.root_issuer);
    let is1 = Issuer::new(p1, k1);
    let p2 = ca("CA two", None);
    let (i2, k2) = sign(&p2, &is1);
    let is2 = Issuer::new(p2, k2);
    let (ee, _) = sign(&leaf("bob.example"), &is2);
    let r = verify_chain(&ee, &[i1, i2], &[pki.root], &opts("bob.example"));
    assert_eq!(failed_kind(r), CheckKind::PathLength);
}

#[test]
fn leaf_eku_must_allow_the_usage() {
    let pki = new_pki();
    let mut p = leaf("bob.example");
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let (ee, _) = sign(&p, &pki.root_issuer);
    let r = verify_chain(
        &ee,
        &[] as &[Vec<u8>],
        std::slice::from_ref(&pki.root),
        &opts("bob.example"),
    );
    assert_eq!(failed_kind(r), CheckKind::ExtendedKeyUsage);
    let mut client = VerifyOptions::new(Usage::TlsClient, OffsetDateTime::now_utc());
    client.peer_name = None;
    assert!(verify_chain(&ee, &[] as &[Vec<u8>], &[pki.root], &client).is_ok());
}

#[test]
fn intermediate_eku_must_allow_the_usage() {
    let pki = new_pki();
    let mut ip = ca("Client-only CA", None);
    ip.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let (int, ik) = sign(&ip, &pki.root_issuer);
    let (ee, _) = sign(&leaf("bob.example"), &Issuer::new(ip, ik));
    let r = verify_chain(&ee, &[int], &[pki.root], &opts("bob.example"));
    assert_eq!(failed_kind(r), CheckKind::ExtendedKeyUsage);
}

#[test]
fn name_constraints_apply_to_leaf_sans() {
    let pki = new_pki();
    let mut ip = ca("Constrained CA", None);
    ip.name_constraints = Some(NameConstraints {
        permitted_subtrees: vec![GeneralSubtree::DnsName("example.com".into())],
        excluded_subtrees: vec![GeneralSubtree::DnsName("bad.example.com".into())],
    });
    let (int, ik) = sign(&ip, &pki.root_issuer);
    let issuer = Issuer::new(ip, ik);
    let (good, _) = sign(&leaf("www.example.com"), &issuer);
    let (outside, _) = sign(&leaf("www.example.org"), &issuer);
    let (excluded, _) = sign(&leaf("x.bad.example.com"), &issuer);
    let anchors = [pki.root];
    let ints = [int];
    assert!(verify_chain(&good, &ints, &anchors, &opts("www.example.com")).is_ok());
    let r = verify_chain(&outside, &ints, &anchors, &opts("www.example.org"));
    assert_eq!(failed_kind(r), CheckKind::NameConstraints);
    let r = verify_chain(&excluded, &ints, &anchors, &opts("x.bad.example.com"));
    assert_eq!(failed_kind(r), CheckKind::NameConstraints);
}

#[test]
fn search_continues_past_a_failing_candidate() {
    let pki = new_pki();
    let k = key();
    let ski = vec![7u8; 20];
    // Two certificates for the same CA key; the first one has expired.
    let mut expired = ca("Issuing CA", None);
    expired.key_identifier_method = KeyIdMethod::PreSpecified(ski.clone());
    expired.not_before = OffsetDateTime::now_utc() - Duration::days(10);
    expired.not_after = OffsetDateTime::now_utc() - Duration::days(1);
    let expired_der = expired
        .signed_by(&k, &pki.root_issuer)
        .unwrap()
        .der()
        .to_vec();
    let mut current = ca("Issuing CA", None);
    current.key_identifier_method = KeyIdMethod::PreSpecified(ski);
    let current_der = current
        .signed_by(&k, &pki.root_issuer)
        .unwrap()
        .der()
        .to_vec();
    let (ee, _) = sign(&leaf("bob.example"), &Issuer::new(current, k));
    let path = verify_chain(
        &ee,
        &[expired_der.clone(), current_der.clone()],
        std::slice::from_ref(&pki.root),
        &opts("bob.example"),
    )
    .unwrap();
    assert_eq!(path.chain.get(1), Some(&current_der));
    // With only the expired one, the reason is its validity.
    let r = verify_chain(&ee, &[expired_der], &[pki.root], &opts("bob.example"));
    assert_eq!(failed_kind(r), CheckKind::Validity);
}

#[test]
fn cycles_without_an_anchor_terminate() {
    // A and B sign each other; neither chains to the anchor.
    let ka = key();
    let kb = key();
    let pa = ca("CA A", None);
    let pb = ca("CA B", None);
    let ia = Issuer::from_params(&pa, &ka);
    let ib = Issuer::from_params(&pb, &kb);
    let a_by_b = pa.signed_by(&ka, &ib).unwrap().der().to_vec();
    let b_by_a = pb.signed_by(&kb, &ia).unwrap().der().to_vec();
    let (ee, _) = sign(&leaf("bob.example"), &Issuer::new(pa.clone(), ka));
    let unrelated = new_pki();
    let r = verify_chain(
        &ee,
        &[a_by_b, b_by_a],
        &[unrelated.root],
        &opts("bob.example"),
    );
    assert!(matches!(
        r.map_err(|e| e.reason),
        Err(Reason::UnknownIssuer(_))
    ));
}

#[test]
fn max_depth_counts_intermediates() {
    let pki = new_pki();
    let ip = ca("Issuing CA", None);
    let (int, ik) = sign(&ip, &pki.root_issuer);
    let (ee, _) = sign(&leaf("bob.example"), &Issuer::new(ip, ik));
    let mut o = opts("bob.example");
    o.max_depth = Some(0);
    let r = verify_chain(
        &ee,
        std::slice::from_ref(&int),
        std::slice::from_ref(&pki.root),
        &o,
    );
    assert_eq!(failed_kind(r), CheckKind::Depth);
    o.max_depth = Some(1);
    assert!(verify_chain(&ee, &[int], &[pki.root], &o).is_ok());
}

#[test]
fn garbage_inputs_do_not_panic() {
    let pki = new_pki();
    let junk: Vec<Vec<u8>> = vec![vec![], vec![0x30], vec![0x30, 0x84, 0xff, 0xff, 0xff, 0xff]];
    for j in &junk {
        assert!(verify_chain(
            j,
            &junk,
            std::slice::from_ref(&pki.root),
            &opts("x.example")
        )
        .is_err());
    }
}

/// Our RFC 4514 text for a name is x509-cert's, byte for byte: explanations
/// and `ca-cli verify` print it.
#[test]
fn names_display_as_x509_cert_displays_them() {
    use std::str::FromStr;
    use x509_cert::attr::AttributeTypeAndValue;
    use x509_cert::name::{Name, RelativeDistinguishedName};

    let mut names: Vec<Name> = [
        "CN=example.com",
        "CN=Bench Issuing CA,O=Example\\, Inc.,C=US",
        "CN=a+OU=b,O=c",
        "CN=\\#hash,O=\\ lead and trail\\ ,OU=a\\+b\\;c\\<d\\>e\\\"f\\\\g",
        "UID=jsmith,DC=example,DC=net",
        "1.2.3.4=#0c0161,CN=unknown type",
        "STREET=1 Main St,L=Town,ST=State,SERIALNUMBER=42,EMAILADDRESS=a@example.com",
    ]
    .iter()
    .map(|s| Name::from_str(s).unwrap_or_else(|e| panic!("{s}: {e}")))
    .collect();
    // Values the text syntax cannot make: a control character, and a type
    // shown as hex because its value is not a string (an INTEGER).
    let atv = |oid: &str, der: &[u8]| AttributeTypeAndValue {
        oid: ObjectIdentifier::new_unwrap(oid),
        value: der::asn1::Any::from_der(der).unwrap(),
    };
    names.push(Name::default());
    for value in [
        atv("2.5.4.3", &[0x0c, 0x03, b'a', 0x01, 0x7f]),
        atv("2.5.4.3", &[0x02, 0x01, 0x05]),
        atv("2.5.4.3", &[0x13, 0x02, b'a', b' ']),
        atv("2.5.4.10", &[0x16, 0x01, b'#']),
        atv("2.5.4.10", &[0x14, 0x01, b'x']),
        atv("2.5.4.10", &[0x1e, 0x02, 0x00, b'x']),
    ] {
        let rdn = RelativeDistinguishedName::try_from(vec![value]).unwrap();
        names.push(x509_cert::name::RdnSequence(vec![rdn]));
    }
    for name in &names {
        assert_eq!(crate::names::rfc4514(name), name.to_string(), "{name:?}");
    }
}

/// A name from RDNs of (attribute OID, value tag, value bytes).
fn raw_name(rdns: &[&[(const_oid::ObjectIdentifier, der::Tag, &[u8])]]) -> x509_cert::name::Name {
    use x509_cert::attr::AttributeTypeAndValue;
    use x509_cert::name::{RdnSequence, RelativeDistinguishedName};
    let rdns = rdns
        .iter()
        .map(|atvs| {
            let atvs: Vec<AttributeTypeAndValue> = atvs
                .iter()
                .map(|(oid, tag, bytes)| AttributeTypeAndValue {
                    oid: *oid,
                    value: der::Any::new(*tag, *bytes).unwrap(),
                })
                .collect();
            RelativeDistinguishedName(der::asn1::SetOfVec::try_from(atvs).unwrap())
        })
        .collect();
    RdnSequence(rdns)
}

#[test]
fn in_place_name_comparison_agrees_with_the_normalised_form() {
    use der::Tag::{OctetString, PrintableString, Utf8String};
    let cn = oids::AT_COMMON_NAME;
    let o = const_oid::ObjectIdentifier::new_unwrap("2.5.4.10");
    // 2.5.4.3 with its last arc in two octets: another encoding, the same text.
    let cn_long = const_oid::ObjectIdentifier::from_bytes(&[0x55, 0x04, 0x80, 0x03]).unwrap();
    let names = [
        raw_name(&[&[(cn_long, Utf8String, b"issuing ca")]]),
        raw_name(&[&[(cn_long, Utf8String, b"Other")]]),
        raw_name(&[&[(cn, Utf8String, "\u{212a}ey".as_bytes())]]),
        raw_name(&[&[(cn, Utf8String, b"key")]]),
        raw_name(&[&[(cn, Utf8String, "Issuing\u{a0}CA".as_bytes())]]),
        raw_name(&[&[(cn, Utf8String, b"Issuing\x1cCA")]]),
        raw_name(&[&[(cn, Utf8String, b"Issuing CA")]]),
        raw_name(&[&[(cn, PrintableString, b"  issuing   ca ")]]),
        raw_name(&[&[(cn, Utf8String, b"Issuing\tCA")]]),
        raw_name(&[&[(cn, Utf8String, b"Issuing CA2")]]),
        raw_name(&[&[(cn, Utf8String, b"IssuingCA")]]),
        raw_name(&[&[(o, Utf8String, b"Issuing CA")]]),
        raw_name(&[&[(cn, OctetString, b"Issuing CA")]]),
        raw_name(&[&[(cn, OctetString, b"issuing ca")]]),
        raw_name(&[&[(cn, Utf8String, b"\xff\xfe")]]),
        raw_name(&[&[(cn, PrintableString, b"\xff\xfe")]]),
        raw_name(&[&[(cn, Utf8String, "ΣΊΣΥΦΟΣ".as_bytes())]]),
        raw_name(&[&[(cn, Utf8String, "σίσυφος".as_bytes())]]),
        raw_name(&[&[(cn, Utf8String, "Σίσυφος".as_bytes())]]),
        raw_name(&[
            &[(o, Utf8String, b"Org")],
            &[(cn, Utf8String, b"Issuing CA")],
        ]),
        raw_name(&[
            &[(o, Utf8String, b"ORG")],
            &[(cn, Utf8String, b"issuing ca")],
        ]),
        raw_name(&[
            &[(o, Utf8String, b"Other")],
            &[(cn, Utf8String, "ΣΊΣΥΦΟΣ".as_bytes())],
        ]),
        raw_name(&[&[(o, Utf8String, b"Org"), (cn, Utf8String, b"Issuing CA")]]),
        raw_name(&[&[(cn, Utf8String, b"issuing ca"), (o, Utf8String, b"org")]]),
        raw_name(&[]),
    ];
    use der::{Decode, Encode};
    let encoded: Vec<Vec<u8>> = names.iter().map(|n| n.to_der().unwrap()).collect();
    let lean: Vec<lean::LeanName<'_>> = encoded
        .iter()
        .map(|d| lean::LeanName::from_der(d).unwrap())
        .collect();
    let mut equal_pairs = 0;
    for (a, lean_a) in names.iter().zip(&lean) {
        for (b, lean_b) in names.iter().zip(&lean) {
            let normalised = dn::normalized_rdns(a) == dn::normalized_rdns(b);
            assert_eq!(dn::names_equivalent(a, b), normalised, "{a} against {b}");
            assert_eq!(
                dn::lean_names_equivalent(lean_a, lean_b),
                normalised,
                "{a} against {b}, where they lie"
            );
            equal_pairs += usize::from(normalised);
        }
    }
    // Distinct entries that are equivalent (spellings of "Issuing CA", the
    // two-RDN and the multi-valued pairs) make both verdicts occur.
    assert!(
        equal_pairs > names.len(),
        "the cases include equivalent pairs"
    );
}

/// An attribute's value cannot pose as a second attribute of its RDN: the
/// single commonName `a+2.5.4.7=s:b` is not the two-attribute RDN CN=a + L=b,
/// neither for chain building nor under directoryName constraints.
#[test]
fn an_attribute_value_cannot_pose_as_a_second_attribute() {
    use der::Encode;
    use der::Tag::Utf8String;
    let cn = oids::AT_COMMON_NAME;
    let l = const_oid::ObjectIdentifier::new_unwrap("2.5.4.7");
    let posing = raw_name(&[&[(cn, Utf8String, b"a+2.5.4.7=s:b")]]);
    let two = raw_name(&[&[(cn, Utf8String, b"a"), (l, Utf8String, b"b")]]);
    let (posing_der, two_der) = (posing.to_der().unwrap(), two.to_der().unwrap());
    let lean_posing = lean::LeanName::from_der(&posing_der).unwrap();
    let lean_two = lean::LeanName::from_der(&two_der).unwrap();
    assert!(!dn::names_equivalent(&posing, &two));
    assert!(!dn::lean_names_equivalent(&lean_posing, &lean_two));
    // The directoryName subtree test compares these forms RDN by RDN.
    assert_ne!(dn::normalized_rdns(&posing), dn::normalized_rdns(&two));
    // Still a set: the same two attributes in either order are one RDN.
    let swapped = raw_name(&[&[(l, Utf8String, b"B"), (cn, Utf8String, b"A")]]);
    assert!(dn::names_equivalent(&two, &swapped));
}

/// A multi-valued RDN whose attributes are not in DER order (der sorts them
/// when decoding) compares as the sorted one does, and its attributes are
/// listed in the decoded name's order, not in the order of the bytes.
#[test]
fn multi_valued_rdns_out_of_der_order_compare_and_list_as_decoded() {
    use der::Tag::Utf8String;
    use der::{Decode, Encode};
    let cn = oids::AT_COMMON_NAME;
    let o = const_oid::ObjectIdentifier::new_unwrap("2.5.4.10");
    let subject = raw_name(&[
        &[(cn, Utf8String, b"b"), (cn, Utf8String, b"a")],
        &[(o, Utf8String, b"Org"), (cn, Utf8String, b"c")],
    ]);
    let atv = |value: &[u8]| {
        x509_cert::attr::AttributeTypeAndValue {
            oid: cn,
            value: der::Any::new(Utf8String, value).unwrap(),
        }
        .to_der()
        .unwrap()
    };
    // Put the first RDN's two commonNames in the other order, in place.
    let swap = |der: &[u8]| crate::der_util::swap_adjacent(der, &atv(b"a"), &atv(b"b"));

    let in_order = subject.to_der().unwrap();
    let out_of_order = swap(&in_order);
    assert_ne!(in_order, out_of_order);
    let lean_in = lean::LeanName::from_der(&in_order).unwrap();
    let lean_out = lean::LeanName::from_der(&out_of_order).unwrap();
    assert!(dn::lean_names_equivalent(&lean_out, &lean_in));
    let other = raw_name(&[
        &[(cn, Utf8String, b"b"), (cn, Utf8String, b"x")],
        &[(o, Utf8String, b"Org"), (cn, Utf8String, b"c")],
    ])
    .to_der()
    .unwrap();
    let lean_other = lean::LeanName::from_der(&other).unwrap();
    assert!(!dn::lean_names_equivalent(&lean_out, &lean_other));

    // The same subject in a certificate: its commonNames in decoded order.
    let pki = new_pki();
    let (leaf_der, _) = sign(&leaf("multi.example"), &pki.root_issuer);
    let mut tbs_cert = x509_cert::Certificate::from_der(&leaf_der).unwrap();
    tbs_cert.tbs_certificate.subject = subject;
    let swapped_cert = swap(&tbs_cert.to_der().unwrap());
    let parsed = cert::Cert::parse(&swapped_cert).unwrap();
    let common_names: Vec<&str> = parsed
        .subject_attributes(cn)
        .expect("the subject decodes")
        .iter()
        .filter_map(|a| a.text())
        .collect();
    assert_eq!(common_names, ["a", "b", "c"]);
}

/// One `TrustAnchors` validates many chains, from two threads at once, keeping
/// the anchor's key parsed once per signature algorithm: an RSA root signing
/// with SHA-256 and with SHA-384 verifies both (a key parsed for one algorithm
/// and used for the other refuses the second), and an intermediate under the
/// root's name but signed by another key is still refused once the root's key
/// is kept.
#[test]
fn trust_anchors_validate_many_chains_with_a_parsed_key_per_algorithm() {
    let rsa_key = KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
    let same_key_sha384 =
        KeyPair::from_pem_and_sign_algo(&rsa_key.serialize_pem(), &rcgen::PKCS_RSA_SHA384).unwrap();
    let root_params = ca("RSA Root", None);
    let root = root_params.self_signed(&rsa_key).unwrap().der().to_vec();
    let by_sha256 = Issuer::new(root_params.clone(), rsa_key);
    let by_sha384 = Issuer::new(root_params.clone(), same_key_sha384);
    // Same name as the root, another RSA key: what it signs must not verify.
    let impostor_key = KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
    let impostor = Issuer::new(root_params, impostor_key);

    let chain_under = |root_issuer: &Issuer<'_, KeyPair>, cn: &str, name: &str| {
        let ip = ca(cn, Some(0));
        let (int, ik) = sign(&ip, root_issuer);
        let (leaf_der, _) = sign(&leaf(name), &Issuer::new(ip, ik));
        (leaf_der, int)
    };
    let sha256 = chain_under(&by_sha256, "CA under SHA-256", "a.example");
    let sha384 = chain_under(&by_sha384, "CA under SHA-384", "b.example");
    let forged = chain_under(&impostor, "CA under an impostor", "c.example");

    let anchors = TrustAnchors::new(std::slice::from_ref(&root));
    assert_eq!(anchors.len(), 1);
    let check = |(leaf_der, int): &(Vec<u8>, Vec<u8>), name: &str| {
        anchors.verify(leaf_der, std::slice::from_ref(int), &opts(name))
    };
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                for _ in 0..3 {
                    let ok = check(&sha256, "a.example").expect("SHA-256 chain");
                    assert_eq!(ok.chain.last(), Some(&root));
                    check(&sha384, "b.example").expect("SHA-384 chain, same key");
                    assert_eq!(
                        failed_kind(check(&forged, "c.example")),
                        CheckKind::Signature
                    );
                }
            });
        }
    });
    // verify_chain, parsing everything afresh, agrees.
    assert!(verify_chain(&sha384.0, &[&sha384.1], &[&root], &opts("b.example")).is_ok());
    assert!(verify_chain(&forged.0, &[&forged.1], &[&root], &opts("c.example")).is_err());
}

/// The anchors' notes and the dedup rules of `verify_chain` hold for a prepared
/// `TrustAnchors`: an undecodable anchor is noted in every explanation; an
/// intermediate equal to an anchor (decodable or not) adds nothing; an
/// undecodable intermediate given twice is noted once.
#[test]
fn trust_anchors_note_what_they_ignored() {
    let pki = new_pki();
    let ip = ca("Issuing CA", Some(0));
    let (int, ik) = sign(&ip, &pki.root_issuer);
    let (leaf_der, _) = sign(&leaf("x.example"), &Issuer::new(ip, ik));
    let given = vec![
        pki.root.clone(),
        b"not a certificate".to_vec(),
        pki.root.clone(),
    ];
    let anchors = TrustAnchors::new(&given);
    assert_eq!(anchors.len(), 1);
    let intermediates = [
        b"junk".to_vec(),
        int.clone(),
        pki.root.clone(),
        b"not a certificate".to_vec(),
        b"junk".to_vec(),
    ];
    for _ in 0..2 {
        let ok = anchors
            .verify(&leaf_der, &intermediates, &opts("x.example"))
            .expect("valid chain");
        assert_eq!(
            ok.chain,
            vec![leaf_der.clone(), int.clone(), pki.root.clone()]
        );
        let notes = &ok.explanation.notes;
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert!(notes[0].starts_with("ignored a trust anchor"), "{notes:?}");
        assert!(notes[1].starts_with("ignored an intermediate"), "{notes:?}");
    }
}

/// Each anchor keeps its parsed key per signature algorithm once it has been
/// used, and two anchors using the same algorithm keep their own: a leaf
/// under each root verifies, in either order, again and again.
#[test]
fn trust_anchors_keep_a_parsed_key_per_anchor() {
    let first = new_pki();
    let second = new_pki();
    let (under_first, _) = sign(&leaf("one.example"), &first.root_issuer);
    let (under_second, _) = sign(&leaf("two.example"), &second.root_issuer);
    let given = [first.root.clone(), second.root.clone()];
    let anchors = TrustAnchors::new(&given);
    let alg = crate::signature::SignatureAlgorithm::EcdsaSha256;
    assert!(anchors
        .anchors
        .iter()
        .all(|a| a.keys.kept_key(alg).is_none()));
    for _ in 0..3 {
        for (leaf_der, name, root) in [
            (&under_second, "two.example", &second.root),
            (&under_first, "one.example", &first.root),
        ] {
            let ok = anchors
                .verify(leaf_der, &[] as &[&[u8]], &opts(name))
                .expect("valid chain");
            assert_eq!(ok.chain.last(), Some(root));
        }
    }
    // Each anchor keeps its own key, not another's (which the fallback for
    // a kept key of other bytes would hide from the verdicts).
    for a in &anchors.anchors {
        let own = a.cert.spki().subject_public_key.as_bytes();
        assert!(own.is_some());
        assert_eq!(a.keys.kept_key(alg), own);
    }
    // A leaf signed by neither root's key, under their (shared) name.
    let impostor = Issuer::new(ca("Test Root", None), key());
    let (forged, _) = sign(&leaf("one.example"), &impostor);
    assert_eq!(
        failed_kind(anchors.verify(&forged, &[] as &[&[u8]], &opts("one.example"))),
        CheckKind::Signature
    );
}

/// A leaf that is also among the anchors is not its own issuer, and the
/// anchors after it are still found: with anchors [other root, the leaf, its
/// root] the path is the leaf then its root; a self-signed leaf that is the
/// only anchor has no issuer.
#[test]
fn an_anchor_equal_to_the_leaf_is_left_out_and_the_rest_are_found() {
    let pki = new_pki();
    let other = new_pki();
    let (leaf_der, _) = sign(&leaf("l.example"), &pki.root_issuer);
    let given = [other.root.clone(), leaf_der.clone(), pki.root.clone()];
    let anchors = TrustAnchors::new(&given);
    assert_eq!(anchors.len(), 3);
    let ok = anchors
        .verify(&leaf_der, &[] as &[&[u8]], &opts("l.example"))
        .expect("the leaf's root is the third anchor");
    assert_eq!(ok.chain, vec![leaf_der.clone(), pki.root.clone()]);
    let self_signed = leaf("s.example")
        .self_signed(&key())
        .unwrap()
        .der()
        .to_vec();
    let alone = verify_chain(
        &self_signed,
        &[] as &[&[u8]],
        &[&self_signed],
        &opts("s.example"),
    );
    // Nor when it is also among the intermediates, call after call on one
    // prepared set of anchors.
    let prepared = TrustAnchors::new(std::slice::from_ref(&self_signed));
    let again = |_| prepared.verify(&self_signed, &[&self_signed], &opts("s.example"));
    for outcome in [alone, again(1), again(2)] {
        assert!(
            matches!(
                outcome,
                Err(VerifyError {
                    reason: Reason::UnknownIssuer(_),
                    ..
                })
            ),
            "{outcome:?}"
        );
    }
}

/// Intermediates' keys are kept parsed from one validation to the next, each
/// under its own bytes: two intermediates of one name and two keys each
/// vouch for their own leaves only, in any order, again and again, and each
/// kept key is the one it is filed under.
#[test]
fn intermediates_keep_their_own_parsed_keys_between_validations() {
    let pki = new_pki();
    let under_own_intermediate = |name: &str| {
        let ip = ca("Issuing CA", Some(0));
        let (int, ik) = sign(&ip, &pki.root_issuer);
        let (leaf_der, _) = sign(&leaf(name), &Issuer::new(ip, ik));
        (leaf_der, int)
    };
    let (a_leaf, a_int) = under_own_intermediate("a.example");
    let (b_leaf, b_int) = under_own_intermediate("b.example");
    let anchors = TrustAnchors::new(std::slice::from_ref(&pki.root));
    let alg = crate::signature::SignatureAlgorithm::EcdsaSha256;
    for _ in 0..3 {
        for (leaf_der, name, own, other) in [
            (&a_leaf, "a.example", &a_int, &b_int),
            (&b_leaf, "b.example", &b_int, &a_int),
        ] {
            let ok = anchors
                .verify(leaf_der, std::slice::from_ref(own), &opts(name))
                .expect("leaf under its own intermediate");
            assert_eq!(ok.chain.get(1), Some(own));
            assert_eq!(
                failed_kind(anchors.verify(leaf_der, std::slice::from_ref(other), &opts(name))),
                CheckKind::Signature
            );
        }
    }
    let key_of = |der: &[u8]| {
        let c = cert::Cert::parse(der).unwrap();
        c.spki().subject_public_key.as_bytes().unwrap().to_vec()
    };
    let kept = anchors
        .issuer_keys
        .as_ref()
        .expect("prepared anchors keep keys")
        .kept(alg);
    assert_eq!(kept.len(), 2, "one entry per intermediate key");
    for own in [key_of(&a_int), key_of(&b_int)] {
        let entry = kept.iter().find(|(k, _)| *k == own).expect("key kept");
        assert_eq!(
            entry.1.as_deref(),
            Some(own.as_slice()),
            "parsed from itself"
        );
    }
}
