//! The checks on one certificate at its place in a path that do not need the
//! path around it: key identifiers, the signature, the end-entity's usage and
//! name, and how their outcomes are named.

use const_oid::ObjectIdentifier;
use time::OffsetDateTime;
use x509_cert::ext::pkix::name::GeneralName;

use super::cert::{Cert, KU_KEY_CERT_SIGN};
use super::names;
use super::{CertReport, CheckKind, PeerName, Usage, VerifyOptions};
use crate::oids;
use crate::signature::{verify_with, verify_with_parsed, ParsedKeys, SignatureAlgorithm};

/// Authority key identifier rules: required on certificates that are not
/// self-issued (RFC 5280 4.2.1.1); on a self-issued trust anchor used for TLS, when
/// present it must be just the keyIdentifier, equal to the SKI (CA/B BR 7.1.2.1.3).
pub(super) fn check_aki(c: &Cert<'_>, tls_anchor: bool, r: &mut CertReport) {
    let aki = c.ext.authority_key_id.as_ref().map(|a| &a.value);
    if !c.self_issued {
        match aki.and_then(|a| a.key_identifier.as_ref()) {
            Some(_) => r.pass(CheckKind::KeyIdentifiers, "authorityKeyIdentifier present"),
            None => r.fail(
                CheckKind::KeyIdentifiers,
                "no authorityKeyIdentifier keyIdentifier on a certificate that is not self-issued",
            ),
        }
    } else if tls_anchor {
        if let Some(a) = aki {
            let ski = c.ext.subject_key_id.as_ref().map(|s| s.value);
            let kid = a.key_identifier.as_ref().map(|k| k.as_bytes());
            if a.authority_cert_issuer.is_some() || a.authority_cert_serial_number.is_some() {
                r.fail(
                    CheckKind::KeyIdentifiers,
                    "root authorityKeyIdentifier has issuer/serial fields",
                );
            } else if kid.is_none() || kid != ski {
                r.fail(
                    CheckKind::KeyIdentifiers,
                    "root authorityKeyIdentifier keyIdentifier missing or not its SKI",
                );
            }
        }
    }
}

pub(super) fn check_signature(
    issuer: &Cert<'_>,
    issuer_keys: Option<&ParsedKeys>,
    subject: &Cert<'_>,
) -> Result<SignatureAlgorithm, String> {
    let alg = SignatureAlgorithm::from_identifier(&subject.cert.signature_algorithm)
        .map_err(|e| e.to_string())?;
    let sig = subject
        .cert
        .signature
        .as_bytes()
        .ok_or_else(|| "signature bit string has unused bits".to_string())?;
    match (issuer_keys, &issuer.key) {
        (Some(keys), Ok(kind)) => {
            verify_with_parsed(issuer.spki(), *kind, alg, subject.raw.tbs, sig, keys)
        }
        // A key that did not decode is refused as `verify_with` refuses it.
        _ => verify_with(issuer.spki(), alg, subject.raw.tbs, sig),
    }
    .map_err(|e| e.to_string())?;
    Ok(alg)
}

/// Checks on the end-entity certificate.
pub(super) fn leaf_checks(c: &Cert<'_>, opts: &VerifyOptions, r: &mut CertReport) {
    let usage = opts.usage;
    let ku = c.ext.key_usage.as_ref().map(|k| k.value);
    let is_ca = c.is_ca();
    match ku {
        Some(bits) if bits & KU_KEY_CERT_SIGN != 0 && !is_ca => r.fail(
            CheckKind::KeyUsage,
            "keyCertSign without basicConstraints cA",
        ),
        Some(bits) if bits & KU_KEY_CERT_SIGN == 0 && is_ca => r.fail(
            CheckKind::KeyUsage,
            "basicConstraints cA without keyCertSign",
        ),
        Some(bits) if bits & opts.required_key_usage.0 != opts.required_key_usage.0 => {
            r.fail(CheckKind::KeyUsage, "keyUsage lacks a required bit")
        }
        Some(_) => r.pass(CheckKind::KeyUsage, "consistent with the request"),
        None => {}
    }
    if c.ext.name_constraints.is_some() && !is_ca {
        r.fail(
            CheckKind::NameConstraints,
            "nameConstraints on a non-CA certificate",
        );
    }
    let mut wanted: Vec<ObjectIdentifier> = opts.required_ekus.clone();
    if let Some(e) = usage.eku() {
        if !wanted.contains(&e) {
            wanted.push(e);
        }
    }
    if c.ext.ext_key_usage.is_none() && usage.is_tls() {
        // CA/B BR 7.1.2.7.6: subscriber certificates must state their purpose.
        r.fail(
            CheckKind::ExtendedKeyUsage,
            "no extKeyUsage on a TLS certificate",
        );
    }
    if let Some(eku) = &c.ext.ext_key_usage {
        if usage.is_tls() && eku.critical {
            r.fail(CheckKind::TlsProfile, "extKeyUsage is critical");
        }
        if usage.is_tls() && eku.value.contains(&oids::ANY_EXTENDED_KEY_USAGE) {
            r.fail(
                CheckKind::TlsProfile,
                "anyExtendedKeyUsage on a TLS certificate",
            );
        }
        match wanted.iter().find(|w| !eku.value.contains(w)) {
            Some(missing) => r.fail(
                CheckKind::ExtendedKeyUsage,
                format!("extKeyUsage lacks {}", eku_name(*missing)),
            ),
            None if !wanted.is_empty() => r.pass_with(CheckKind::ExtendedKeyUsage, || {
                wanted
                    .iter()
                    .map(|o| eku_name(*o))
                    .collect::<Vec<_>>()
                    .join(", ")
            }),
            None => {}
        }
    }
    check_aki(c, false, r);

    // subjectAltName syntax: a malformed name is an unusable certificate.
    let mut dns = Vec::new();
    let mut ips = Vec::new();
    let mut emails = Vec::new();
    if let Some(san) = &c.ext.subject_alt_name {
        let mut bad = None;
        for gn in &san.value {
            match gn {
                GeneralName::DnsName(d) => {
                    if names::is_valid_dns_name(d.as_str(), true) {
                        dns.push(d.as_str());
                    } else {
                        bad = Some(format!("malformed dNSName {:?}", d.as_str()));
                    }
                }
                GeneralName::IpAddress(ip) => match names::ip_from_bytes(ip.as_bytes()) {
                    Some(a) => ips.push(a),
                    None => bad = Some(format!("iPAddress of {} octets", ip.as_bytes().len())),
                },
                GeneralName::Rfc822Name(e) => {
                    if names::is_valid_email(e.as_str()) {
                        emails.push(e.as_str());
                    } else {
                        bad = Some(format!("malformed rfc822Name {:?}", e.as_str()));
                    }
                }
                _ => {}
            }
        }
        match bad {
            Some(b) => r.fail(CheckKind::SubjectAltName, b),
            None => r.pass_with(CheckKind::SubjectAltName, || {
                format!("{} name(s)", san.value.len())
            }),
        }
        if usage.is_tls() && san.critical && !c.cert.tbs_certificate.subject.is_empty() {
            r.fail(
                CheckKind::TlsProfile,
                "subjectAltName is critical although the subject is not empty",
            );
        }
    }
    if usage == Usage::TlsServer {
        let Some(common_names) = c.subject_attributes(oids::AT_COMMON_NAME) else {
            r.fail(CheckKind::TlsProfile, "subject does not decode");
            return;
        };
        for cn in common_names {
            match cn.text().map(|s| names::cn_problem(s, &dns, &ips)) {
                Some(None) => {}
                Some(Some(p)) => r.fail(CheckKind::TlsProfile, p),
                None => r.fail(CheckKind::TlsProfile, "commonName is not a string"),
            }
        }
    }
    if let Some(peer) = &opts.peer_name {
        // Shown only when the check is recorded: no text is made otherwise.
        let found: Option<&dyn std::fmt::Display> = match peer {
            PeerName::Dns(name) => dns
                .iter()
                .find(|d| names::dns_name_matches(d, name))
                .map(|d| d as &dyn std::fmt::Display),
            PeerName::Ip(ip) => ips
                .iter()
                .find(|a| *a == ip)
                .map(|a| a as &dyn std::fmt::Display),
            PeerName::Email(e) => emails
                .iter()
                .find(|x| match (x.rsplit_once('@'), e.rsplit_once('@')) {
                    (Some((l1, d1)), Some((l2, d2))) => l1 == l2 && d1.eq_ignore_ascii_case(d2),
                    _ => false,
                })
                .map(|x| x as &dyn std::fmt::Display),
        };
        match found {
            Some(san) => r.pass_with(CheckKind::PeerName, || format!("{peer} matches SAN {san}")),
            None if c.ext.subject_alt_name.is_none() => {
                r.fail(CheckKind::PeerName, format!("{peer}: no subjectAltName"))
            }
            None => r.fail(
                CheckKind::PeerName,
                format!("{peer} matches no subjectAltName"),
            ),
        }
    }
}

pub(super) fn alg_name(alg: SignatureAlgorithm) -> &'static str {
    use SignatureAlgorithm::*;
    match alg {
        EcdsaSha256 => "ECDSA SHA-256",
        EcdsaSha384 => "ECDSA SHA-384",
        EcdsaSha512 => "ECDSA SHA-512",
        RsaPkcs1Sha256 => "RSA PKCS#1 SHA-256",
        RsaPkcs1Sha384 => "RSA PKCS#1 SHA-384",
        RsaPkcs1Sha512 => "RSA PKCS#1 SHA-512",
        RsaPssSha256 => "RSA-PSS SHA-256",
        RsaPssSha384 => "RSA-PSS SHA-384",
        RsaPssSha512 => "RSA-PSS SHA-512",
        Ed25519 => "Ed25519",
    }
}

pub(super) fn eku_name(oid: ObjectIdentifier) -> String {
    match oid {
        oids::KP_SERVER_AUTH => "serverAuth".into(),
        oids::KP_CLIENT_AUTH => "clientAuth".into(),
        oids::KP_CODE_SIGNING => "codeSigning".into(),
        oids::KP_EMAIL_PROTECTION => "emailProtection".into(),
        oids::ANY_EXTENDED_KEY_USAGE => "anyExtendedKeyUsage".into(),
        other => other.to_string(),
    }
}

/// A Unix time shown as its UTC date.
pub(super) struct Date(pub(super) i64);

impl std::fmt::Display for Date {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match OffsetDateTime::from_unix_timestamp(self.0) {
            Ok(t) => write!(
                f,
                "{:04}-{:02}-{:02}",
                t.year(),
                u8::from(t.month()),
                t.day()
            ),
            Err(_) => write!(f, "{}", self.0),
        }
    }
}
