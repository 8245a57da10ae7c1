use super::*;
use crate::cert::{
    create_root, prepare, CertificateRequest, Issuer, IssuerUrls, NameConstraintsSpec, RootParams,
};
use crate::keys::{KeyAlgorithm, SoftwareKey};
use crate::serial::Serial;
use der::asn1::{Ia5String, OctetString};
use std::str::FromStr;
use x509_cert::ext::Extension;
use x509_cert::name::Name;

struct Fixture {
    issuer: Issuer,
    tbs: TbsCertificate,
    constraints: NameConstraints,
}

fn fixture() -> Fixture {
    let now = OffsetDateTime::now_utc();
    let root_key = SoftwareKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let mut params = RootParams::new(Name::from_str("CN=Lint Root").unwrap());
    params.name_constraints = Some(NameConstraintsSpec {
        permitted_dns: vec!["example.internal".into()],
        ..Default::default()
    });
    let root = create_root(&root_key, &params, now).unwrap();
    let constraints = root.name_constraints.clone().unwrap();
    let issuer = Issuer::new(root, vec![], IssuerUrls::default());
    let leaf_key = SoftwareKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let req = CertificateRequest {
        subject: Name::from_str("CN=www.example.internal").unwrap(),
        spki_der: leaf_key.public_key_der().to_vec(),
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
    Fixture {
        issuer,
        tbs: prepared.tbs,
        constraints,
    }
}

use crate::keys::Signer;
use crate::profile::Profile;

fn ctx<'a>(f: &'a Fixture) -> LintContext<'a> {
    let ca = &f.issuer.certificate;
    LintContext {
        kind: CertKind::Issued(Profile::TlsServer),
        limits: Profile::TlsServer.default_limits(),
        issuer_ski: Some(&ca.ski),
        issuer_key: ca.key_kind,
        issuer_not_before: ca.not_before,
        issuer_not_after: ca.not_after,
        ancestor_path_lens: vec![Some(1)],
        name_constraints: vec![&f.constraints],
    }
}

fn set_ext<T: AssociatedOid + Encode>(tbs: &mut TbsCertificate, value: &T, critical: bool) {
    let exts = tbs.extensions.get_or_insert_with(Vec::new);
    exts.retain(|e| e.extn_id != T::OID);
    exts.push(Extension {
        extn_id: T::OID,
        critical,
        extn_value: OctetString::new(value.to_der().unwrap()).unwrap(),
    });
}

fn remove_ext(tbs: &mut TbsCertificate, oid: const_oid::ObjectIdentifier) {
    if let Some(exts) = tbs.extensions.as_mut() {
        exts.retain(|e| e.extn_id != oid);
    }
}

fn set_san(tbs: &mut TbsCertificate, names: Vec<GeneralName>) {
    set_ext(tbs, &SubjectAltName(names), false);
}

fn dns(s: &str) -> GeneralName {
    GeneralName::DnsName(Ia5String::new(s).unwrap())
}

type Mutation = fn(&mut TbsCertificate, &mut LintContext<'_>);

/// For each rule, a change to a good certificate (or its context) that the rule must catch.
const NEGATIVE: &[(&str, Mutation)] = &[
    ("version_v3", |t, _| t.version = Version::V1),
    ("serial_positive_20_octets", |t, _| {
        // Decoding accepts what a careless CA might build: a negative serial.
        t.serial_number =
            x509_cert::serial_number::SerialNumber::from_der(&[0x02, 0x01, 0xff]).unwrap();
    }),
    ("signature_algorithm_matches_issuer", |t, _| {
        t.signature = crate::signature::SignatureAlgorithm::RsaPkcs1Sha256.identifier()
    }),
    ("key_allowed", |t, _| {
        t.subject_public_key_info.algorithm.oid = const_oid::ObjectIdentifier::new_unwrap("1.2.3.4")
    }),
    ("validity_within_profile", |_, c| c.limits.max_days = 10),
    ("server_lifetime_within_ceiling", |t, c| {
        c.limits.max_days = 1000;
        let nb = from_x509_time(&t.validity.not_before);
        let na = nb + time::Duration::days(400);
        t.validity.not_after = crate::cert::to_x509_time(na).unwrap();
    }),
    ("validity_within_issuer", |_, c| {
        c.issuer_not_after = c.issuer_not_before + time::Duration::days(1)
    }),
    ("no_duplicate_extensions", |t, _| {
        let exts = t.extensions.get_or_insert_with(Vec::new);
        let first = exts[0].clone();
        exts.push(first);
    }),
    ("basic_constraints_match_profile", |t, _| {
        set_ext(
            t,
            &BasicConstraints {
                ca: true,
                path_len_constraint: None,
            },
            true,
        )
    }),
    ("path_len_within_issuer", |t, c| {
        c.kind = CertKind::Issued(Profile::SubordinateCa { path_len: Some(0) });
        c.ancestor_path_lens = vec![Some(0)];
        set_ext(
            t,
            &BasicConstraints {
                ca: true,
                path_len_constraint: Some(0),
            },
            true,
        )
    }),
    ("key_usage_matches_profile", |t, _| {
        set_ext(
            t,
            &KeyUsage(x509_cert::ext::pkix::KeyUsages::KeyCertSign.into()),
            true,
        )
    }),
    ("ext_key_usage_matches_profile", |t, _| {
        set_ext(
            t,
            &ExtendedKeyUsage(vec![crate::oids::KP_CODE_SIGNING]),
            false,
        )
    }),
    ("subject_key_identifier_present", |t, _| {
        remove_ext(t, crate::oids::SUBJECT_KEY_IDENTIFIER)
    }),
    ("aki_matches_issuer_ski", |t, _| {
        let aki = AuthorityKeyIdentifier {
            key_identifier: Some(OctetString::new(vec![1, 2, 3]).unwrap()),
            ..Default::default()
        };
        set_ext(t, &aki, false)
    }),
    ("subject_well_formed", |t, _| {
        t.subject = Name::from_str(&format!("CN={}", "x".repeat(65))).unwrap()
    }),
    ("subject_or_san_present", |t, _| {
        t.subject = Name::default();
        remove_ext(t, crate::oids::SUBJECT_ALT_NAME);
    }),
    ("san_present_for_server", |t, _| {
        set_san(
            t,
            vec![GeneralName::Rfc822Name(
                Ia5String::new("a@example.internal").unwrap(),
            )],
        )
    }),
    ("dns_names_valid", |t, _| {
        set_san(t, vec![dns("bad_name.example.internal")])
    }),
    ("names_within_name_constraints", |t, _| {
        set_san(t, vec![dns("www.elsewhere.test")])
    }),
    ("common_name_in_sans", |t, _| {
        set_san(t, vec![dns("other.example.internal")])
    }),
    ("single_common_name", |t, _| {
        let first = crate::csr::common_name(&t.subject).unwrap();
        t.subject = Name::from_str(&format!("CN={first},CN=evil.example")).unwrap()
    }),
    ("no_ipv4_mapped_ip", |t, _| {
        let mut names = Linted::new(t).sans().unwrap().to_vec();
        let mut mapped = vec![0u8; 10];
        mapped.extend_from_slice(&[0xff, 0xff, 192, 168, 1, 1]);
        names.push(GeneralName::IpAddress(OctetString::new(mapped).unwrap()));
        set_san(t, names)
    }),
];

#[test]
fn every_rule_has_a_negative_case() {
    let ids: Vec<&str> = RULES.iter().map(|(id, _)| *id).collect();
    let covered: Vec<&str> = NEGATIVE.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids, covered);
}

#[test]
fn good_certificate_passes_every_rule() {
    let f = fixture();
    let c = ctx(&f);
    for (id, rule) in RULES {
        assert_eq!(
            rule(&Linted::new(&f.tbs), &c),
            Ok(()),
            "rule {id} rejected a good certificate"
        );
    }
    assert!(lint(&f.tbs, &c).is_empty());
}

#[test]
fn each_rule_catches_its_violation() {
    let f = fixture();
    for (id, mutate) in NEGATIVE {
        let mut tbs = f.tbs.clone();
        let mut c = ctx(&f);
        mutate(&mut tbs, &mut c);
        let rule = RULES
            .iter()
            .find(|(r, _)| r == id)
            .map(|(_, r)| *r)
            .unwrap();
        assert!(
            rule(&Linted::new(&tbs), &c).is_err(),
            "rule {id} missed its violation"
        );
        assert!(
            lint(&tbs, &c).iter().any(|finding| finding.rule == *id),
            "lint did not report {id}"
        );
    }
}

/// A subjectAltName given twice (x509-cert refuses to read it) is reported by
/// every rule that reads the names, with or without name constraints, and
/// by the duplicate rule: the shared decoding fails each of them alike.
#[test]
fn a_repeated_subject_alt_name_is_reported_by_every_rule_reading_it() {
    let f = fixture();
    let mut tbs = f.tbs.clone();
    let exts = tbs.extensions.as_mut().unwrap();
    let san = exts
        .iter()
        .find(|e| e.extn_id == SubjectAltName::OID)
        .unwrap()
        .clone();
    exts.push(san);
    let readers = [
        "subject_or_san_present",
        "san_present_for_server",
        "dns_names_valid",
        "names_within_name_constraints",
        "common_name_in_sans",
        "no_ipv4_mapped_ip",
    ];
    for constrained in [true, false] {
        let mut c = ctx(&f);
        if !constrained {
            c.name_constraints.clear();
        }
        let findings = lint(&tbs, &c);
        for rule in readers {
            let finding = findings.iter().find(|x| x.rule == rule);
            assert!(
                finding.is_some_and(|x| x.message.contains("is malformed or repeated")),
                "{rule} (constraints: {constrained}): {findings:?}"
            );
        }
        assert!(findings.iter().any(|x| x.rule == "no_duplicate_extensions"));
    }
}

#[test]
fn issuance_outside_name_constraints_is_refused_with_rule_id() {
    let f = fixture();
    let key = SoftwareKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let req = CertificateRequest {
        subject: Name::from_str("CN=evil.test").unwrap(),
        spki_der: key.public_key_der().to_vec(),
        sans: vec![SanEntry::Dns("evil.test".into())],
        profile: Profile::TlsServer,
        validity_days: None,
        name_constraints: None,
    };
    let err = prepare(
        &f.issuer,
        &req,
        Serial::random().unwrap(),
        OffsetDateTime::now_utc(),
        Profile::TlsServer.default_limits(),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("names_within_name_constraints"),
        "{err}"
    );
}

/// A DER SubjectPublicKeyInfo for an RSA modulus with exponent 65537.
fn rsa_spki(modulus: &[u8]) -> spki::SubjectPublicKeyInfoOwned {
    let key = crate::public_key::RsaPublicKeyRef {
        modulus: der::asn1::UintRef::new(modulus).unwrap(),
        public_exponent: der::asn1::UintRef::new(&[1, 0, 1]).unwrap(),
    };
    spki::SubjectPublicKeyInfoOwned {
        algorithm: spki::AlgorithmIdentifierOwned {
            oid: crate::oids::RSA_ENCRYPTION,
            parameters: Some(der::asn1::Null.into()),
        },
        subject_public_key: der::asn1::BitString::from_bytes(&key.to_der().unwrap()).unwrap(),
    }
}

/// Every issuing profile, issued for real through `prepare` (which lints and
/// refuses on any finding), passes every rule when linted as that profile.
#[test]
fn each_profile_passes_every_rule() {
    let f = fixture();
    let now = OffsetDateTime::now_utc();
    for profile in [
        Profile::TlsServer,
        Profile::TlsClient,
        Profile::TlsServerClient,
        Profile::SubordinateCa { path_len: Some(0) },
    ] {
        let key = SoftwareKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
        let req = CertificateRequest {
            subject: Name::from_str("CN=www.example.internal").unwrap(),
            spki_der: key.public_key_der().to_vec(),
            sans: vec![SanEntry::Dns("www.example.internal".into())],
            profile,
            validity_days: Some(30),
            name_constraints: None,
        };
        let prepared = prepare(
            &f.issuer,
            &req,
            Serial::random().unwrap(),
            now,
            profile.default_limits(),
        );
        let prepared = match prepared {
            Ok(p) => p,
            Err(e) => panic!("{profile:?}: {e}"),
        };
        let mut c = ctx(&f);
        c.kind = CertKind::Issued(profile);
        c.limits = profile.default_limits();
        assert_eq!(lint(&prepared.tbs, &c), vec![], "{profile:?}");
    }
}

/// Negative cases the per-rule table does not reach: the same certificate
/// linted as another profile, serials of zero and of 21 octets, and RSA keys
/// too small or with close primes.
#[test]
fn profile_serial_and_key_violations_are_caught() {
    let f = fixture();
    let rules_of = |tbs: &TbsCertificate, c: &LintContext<'_>| -> Vec<&'static str> {
        lint(tbs, c)
            .into_iter()
            .map(|finding| finding.rule)
            .collect()
    };
    // A server certificate is not a client certificate, nor a sub-CA's.
    let mut c = ctx(&f);
    c.kind = CertKind::Issued(Profile::TlsClient);
    assert!(rules_of(&f.tbs, &c).contains(&"ext_key_usage_matches_profile"));
    let mut c = ctx(&f);
    c.kind = CertKind::Issued(Profile::SubordinateCa { path_len: Some(0) });
    let found = rules_of(&f.tbs, &c);
    assert!(
        found.contains(&"basic_constraints_match_profile"),
        "{found:?}"
    );
    assert!(found.contains(&"key_usage_matches_profile"), "{found:?}");
    // Serials: zero, and one octet too many (21).
    for (der, why) in [
        (vec![0x02, 0x01, 0x00], "zero"),
        ([vec![0x02, 21], vec![0x11; 21]].concat(), "21 octets"),
    ] {
        let mut tbs = f.tbs.clone();
        tbs.serial_number = x509_cert::serial_number::SerialNumber::from_der(&der).unwrap();
        assert!(
            rules_of(&tbs, &ctx(&f)).contains(&"serial_positive_20_octets"),
            "{why}"
        );
    }
    // 20 octets is still fine.
    let mut tbs = f.tbs.clone();
    tbs.serial_number = x509_cert::serial_number::SerialNumber::from_der(
        &[vec![0x02, 20], vec![0x11; 20]].concat(),
    )
    .unwrap();
    assert!(!rules_of(&tbs, &ctx(&f)).contains(&"serial_positive_20_octets"));
    // RSA: 1024 bits is too weak; 2048 bits with primes Fermat finds at once.
    use num_bigint::BigUint;
    let small: Vec<u8> = ((BigUint::from(1u8) << 1023u32) + 1u8).to_bytes_be();
    let p: BigUint = (BigUint::from(1u8) << 1023u32) + 0x0fu8;
    let q: BigUint = &p + (BigUint::from(1u8) << 300u32);
    let close: Vec<u8> = (&p * &q).to_bytes_be();
    for (modulus, why) in [(small, "1024 bits"), (close, "close primes")] {
        let mut tbs = f.tbs.clone();
        tbs.subject_public_key_info = rsa_spki(&modulus);
        assert!(rules_of(&tbs, &ctx(&f)).contains(&"key_allowed"), "{why}");
    }
}
