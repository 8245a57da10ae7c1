//! Extensions decoded for people: each known extension's name and its value as
//! a list of strings (names, key usages, URLs), unknown ones by OID and size.

use const_oid::ObjectIdentifier;
use der::Decode;
use serde_json::{json, Value};
use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName};
use x509_cert::ext::pkix::{
    AuthorityInfoAccessSyntax, AuthorityKeyIdentifier, BasicConstraints, CertificatePolicies,
    CrlDistributionPoints, ExtendedKeyUsage, KeyUsage, KeyUsages, NameConstraints, SubjectAltName,
    SubjectKeyIdentifier,
};
use x509_cert::ext::Extension;

use ca_core::oids;

use super::oid_name;
use crate::output::{colon_hex, hex};

pub fn general_name(n: &GeneralName) -> String {
    match n {
        GeneralName::DnsName(d) => format!("DNS:{d}"),
        GeneralName::Rfc822Name(e) => format!("email:{e}"),
        GeneralName::UniformResourceIdentifier(u) => format!("URI:{u}"),
        GeneralName::IpAddress(o) => ip_text(o.as_bytes()),
        GeneralName::DirectoryName(name) => format!("DirName:{name}"),
        GeneralName::RegisteredId(oid) => format!("RID:{oid}"),
        GeneralName::OtherName(o) => format!("othername:{}", oid_name(&o.type_id)),
        GeneralName::EdiPartyName(_) => "EdiPartyName".into(),
    }
}

/// An IP SAN (4 or 16 bytes), or a name-constraint subnet (8 or 32 bytes: address and mask).
fn ip_text(b: &[u8]) -> String {
    let ip = |b: &[u8]| -> Option<std::net::IpAddr> {
        match b.len() {
            4 => <[u8; 4]>::try_from(b).ok().map(std::net::IpAddr::from),
            16 => <[u8; 16]>::try_from(b).ok().map(std::net::IpAddr::from),
            _ => None,
        }
    };
    match b.len() {
        4 | 16 => ip(b).map(|a| format!("IP:{a}")).unwrap_or_default(),
        8 | 32 => {
            let (addr, mask) = b.split_at(b.len() / 2);
            let prefix: u32 = mask.iter().map(|m| m.count_ones()).sum();
            ip(addr)
                .map(|a| format!("IP:{a}/{prefix}"))
                .unwrap_or_default()
        }
        _ => format!("IP:(malformed, {} bytes)", b.len()),
    }
}

const KEY_USAGE_NAMES: [(KeyUsages, &str); 9] = [
    (KeyUsages::DigitalSignature, "digitalSignature"),
    (KeyUsages::NonRepudiation, "nonRepudiation"),
    (KeyUsages::KeyEncipherment, "keyEncipherment"),
    (KeyUsages::DataEncipherment, "dataEncipherment"),
    (KeyUsages::KeyAgreement, "keyAgreement"),
    (KeyUsages::KeyCertSign, "keyCertSign"),
    (KeyUsages::CRLSign, "cRLSign"),
    (KeyUsages::EncipherOnly, "encipherOnly"),
    (KeyUsages::DecipherOnly, "decipherOnly"),
];

fn eku_name(oid: &ObjectIdentifier) -> String {
    match *oid {
        oids::KP_SERVER_AUTH => "serverAuth".into(),
        oids::KP_CLIENT_AUTH => "clientAuth".into(),
        oids::KP_CODE_SIGNING => "codeSigning".into(),
        oids::KP_EMAIL_PROTECTION => "emailProtection".into(),
        oids::KP_TIME_STAMPING => "timeStamping".into(),
        oids::KP_OCSP_SIGNING => "OCSPSigning".into(),
        oids::ANY_EXTENDED_KEY_USAGE => "anyExtendedKeyUsage".into(),
        _ => oid_name(oid),
    }
}

/// Decode one extension into a name and a readable value (a list of strings).
pub(super) fn extension_json(ext: &Extension) -> Value {
    let bytes = ext.extn_value.as_bytes();
    let (name, value): (&str, Result<Vec<String>, der::Error>) = match ext.extn_id {
        oids::BASIC_CONSTRAINTS => (
            "basicConstraints",
            BasicConstraints::from_der(bytes).map(|b| {
                let mut v = vec![format!("CA:{}", if b.ca { "TRUE" } else { "FALSE" })];
                if let Some(p) = b.path_len_constraint {
                    v.push(format!("pathlen:{p}"));
                }
                v
            }),
        ),
        oids::KEY_USAGE => (
            "keyUsage",
            KeyUsage::from_der(bytes).map(|k| {
                KEY_USAGE_NAMES
                    .iter()
                    .filter(|(f, _)| k.0.contains(*f))
                    .map(|(_, n)| n.to_string())
                    .collect()
            }),
        ),
        oids::EXT_KEY_USAGE => (
            "extendedKeyUsage",
            ExtendedKeyUsage::from_der(bytes).map(|e| e.0.iter().map(eku_name).collect()),
        ),
        oids::SUBJECT_ALT_NAME => (
            "subjectAltName",
            SubjectAltName::from_der(bytes).map(|s| s.0.iter().map(general_name).collect()),
        ),
        oids::SUBJECT_KEY_IDENTIFIER => (
            "subjectKeyIdentifier",
            SubjectKeyIdentifier::from_der(bytes).map(|s| vec![colon_hex(s.0.as_bytes())]),
        ),
        oids::AUTHORITY_KEY_IDENTIFIER => (
            "authorityKeyIdentifier",
            AuthorityKeyIdentifier::from_der(bytes).map(|a| {
                let mut v = Vec::new();
                if let Some(k) = &a.key_identifier {
                    v.push(format!("keyid:{}", colon_hex(k.as_bytes())));
                }
                if let Some(names) = &a.authority_cert_issuer {
                    v.extend(names.iter().map(general_name));
                }
                if let Some(s) = &a.authority_cert_serial_number {
                    v.push(format!("serial:{}", hex(s.as_bytes())));
                }
                v
            }),
        ),
        oids::CRL_DISTRIBUTION_POINTS => (
            "cRLDistributionPoints",
            CrlDistributionPoints::from_der(bytes).map(|d| {
                d.0.iter()
                    .flat_map(|dp| match &dp.distribution_point {
                        Some(DistributionPointName::FullName(names)) => {
                            names.iter().map(general_name).collect()
                        }
                        Some(DistributionPointName::NameRelativeToCRLIssuer(_)) => {
                            vec!["(relative name)".to_string()]
                        }
                        None => vec!["(CRL issuer only)".to_string()],
                    })
                    .collect()
            }),
        ),
        oids::AUTHORITY_INFO_ACCESS => (
            "authorityInfoAccess",
            AuthorityInfoAccessSyntax::from_der(bytes).map(|a| {
                a.0.iter()
                    .map(|d| {
                        let method = match d.access_method {
                            oids::AD_OCSP => "OCSP".to_string(),
                            oids::AD_CA_ISSUERS => "caIssuers".to_string(),
                            other => oid_name(&other),
                        };
                        format!("{method} - {}", general_name(&d.access_location))
                    })
                    .collect()
            }),
        ),
        oids::NAME_CONSTRAINTS => (
            "nameConstraints",
            NameConstraints::from_der(bytes).map(|n| {
                let mut v = Vec::new();
                for (kind, trees) in [
                    ("permitted", &n.permitted_subtrees),
                    ("excluded", &n.excluded_subtrees),
                ] {
                    for t in trees.iter().flatten() {
                        v.push(format!("{kind}: {}", general_name(&t.base)));
                    }
                }
                v
            }),
        ),
        oids::CERTIFICATE_POLICIES => (
            "certificatePolicies",
            CertificatePolicies::from_der(bytes)
                .map(|p| p.0.iter().map(|i| oid_name(&i.policy_identifier)).collect()),
        ),
        oids::CRL_NUMBER => (
            "cRLNumber",
            x509_cert::ext::pkix::CrlNumber::from_der(bytes).map(|n| vec![hex(n.0.as_bytes())]),
        ),
        oids::CRL_REASON => (
            "reasonCode",
            x509_cert::ext::pkix::CrlReason::from_der(bytes).map(|r| vec![format!("{r:?}")]),
        ),
        _ => ("", Ok(vec![format!("{} bytes", bytes.len())])),
    };
    let name = if name.is_empty() {
        oid_name(&ext.extn_id)
    } else {
        name.to_string()
    };
    let value = value.unwrap_or_else(|e| vec![format!("(does not decode: {e})")]);
    json!({
        "name": name,
        "oid": ext.extn_id.to_string(),
        "critical": ext.critical,
        "value": value,
    })
}
