//! A certificate decoded once for validation: the x509-cert structure, the raw
//! slices signatures need, decoded extensions, and the profile problems found in
//! it on its own (problems only matter if the certificate ends up in a path).

use const_oid::ObjectIdentifier;
use der::asn1::{BitStringRef, OctetStringRef};
use der::Decode;
use spki::SubjectPublicKeyInfoRef;
use x509_cert::certificate::Version;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{
    AuthorityInfoAccessSyntax, AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage,
    NameConstraints, SubjectAltName,
};
use x509_cert::name::Name;

use super::dn::{lean_names_compare, lean_names_equivalent, normalized_rdns};
use super::explain::CheckKind;
use super::ext_shape;
use super::lean::{AttributeRef, LeanCertificate};
use crate::der_util::RawCert;
use crate::keys::{KeyError, PublicKeyKind};
use crate::oids;

const SUBJECT_INFO_ACCESS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.1.11");
const FRESHEST_CRL: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.46");
pub(crate) const AT_EMAIL_ADDRESS: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.1");

/// keyUsage bits, numbered as in RFC 5280 (bit 0 = digitalSignature).
pub(crate) const KU_KEY_CERT_SIGN: u16 = 1 << 5;
pub(crate) const KU_CRL_SIGN: u16 = 1 << 6;

/// An extension value with its criticality.
#[derive(Clone, Debug)]
pub(crate) struct Ext<T> {
    pub value: T,
    pub critical: bool,
}

#[derive(Clone, Debug, Default)]
pub(crate) struct Extensions<'a> {
    pub basic_constraints: Option<Ext<BasicConstraints>>,
    pub key_usage: Option<Ext<u16>>,
    pub ext_key_usage: Option<Ext<Vec<ObjectIdentifier>>>,
    pub subject_alt_name: Option<Ext<Vec<GeneralName>>>,
    pub name_constraints: Option<Ext<NameConstraints>>,
    pub subject_key_id: Option<Ext<&'a [u8]>>,
    pub authority_key_id: Option<Ext<AuthorityKeyIdentifier>>,
}

pub(crate) struct Cert<'a> {
    pub der: &'a [u8],
    pub raw: RawCert<'a>,
    pub cert: LeanCertificate<'a>,
    /// The subject as RFC 4514 text, made when first asked for.
    subject_display: std::sync::OnceLock<String>,
    /// The names decoded, when first asked for (`None`: they do not decode,
    /// which `lean::walk_name`'s checks rule out).
    subject_name: std::sync::OnceLock<Option<Name>>,
    issuer_name: std::sync::OnceLock<Option<Name>>,
    pub key: Result<PublicKeyKind, KeyError>,
    pub not_before: i64,
    pub not_after: i64,
    pub self_issued: bool,
    pub ext: Extensions<'a>,
    /// Problems with the certificate on its own, found while decoding.
    pub problems: Vec<(CheckKind, String)>,
    /// A serial number outside RFC 5280 4.1.2.2 (not held against trust anchors).
    pub serial_problem: Option<String>,
}

impl<'a> Cert<'a> {
    /// Decode `der`; `Err` only when it is not a certificate at all.
    pub(crate) fn parse(der: &'a [u8]) -> Result<Self, String> {
        let (cert, raw) = LeanCertificate::decode_with_raw(der)?;
        let tbs = &cert.tbs_certificate;
        let mut problems = Vec::new();

        if tbs.version != Version::V3 {
            problems.push((
                CheckKind::Encoding,
                format!("version {:?}, not v3", tbs.version),
            ));
        }
        let serial_problem = check_serial(tbs.serial_number.as_bytes());
        if raw.tbs_signature != raw.signature_algorithm {
            problems.push((
                CheckKind::Encoding,
                "signatureAlgorithm differs from the TBS signature field".into(),
            ));
        }
        if tbs.issuer.is_empty() {
            problems.push((CheckKind::Encoding, "empty issuer name".into()));
        }
        let key = PublicKeyKind::from_spki(&tbs.subject_public_key_info);
        match &key {
            Ok(PublicKeyKind::Rsa { bits }) if bits % 8 != 0 => problems.push((
                CheckKind::PublicKey,
                format!("RSA modulus of {bits} bits is not a whole number of bytes"),
            )),
            Ok(_) => {}
            Err(e) => problems.push((CheckKind::PublicKey, e.to_string())),
        }

        let ext = decode_extensions(&cert, &mut problems);
        let self_issued =
            raw.subject == raw.issuer || lean_names_equivalent(&tbs.subject, &tbs.issuer);
        let not_before = i64::try_from(tbs.validity.not_before.unix).unwrap_or(i64::MAX);
        let not_after = i64::try_from(tbs.validity.not_after.unix).unwrap_or(i64::MAX);

        // Subject / SAN consistency (RFC 5280 4.1.2.6, 4.2.1.6).
        let is_ca = ext.basic_constraints.as_ref().is_some_and(|bc| bc.value.ca);
        if tbs.subject.is_empty() {
            if is_ca {
                problems.push((
                    CheckKind::Encoding,
                    "CA certificate with empty subject".into(),
                ));
            }
            match &ext.subject_alt_name {
                None => problems.push((
                    CheckKind::SubjectAltName,
                    "empty subject and no subjectAltName".into(),
                )),
                Some(san) if !san.critical => problems.push((
                    CheckKind::SubjectAltName,
                    "subject is empty but subjectAltName is not critical".into(),
                )),
                _ => {}
            }
        }

        Ok(Cert {
            der,
            subject_display: std::sync::OnceLock::new(),
            subject_name: std::sync::OnceLock::new(),
            issuer_name: std::sync::OnceLock::new(),
            raw,
            key,
            not_before,
            not_after,
            self_issued,
            ext,
            problems,
            serial_problem,
            cert,
        })
    }

    pub(crate) fn is_ca(&self) -> bool {
        self.ext
            .basic_constraints
            .as_ref()
            .is_some_and(|bc| bc.value.ca)
    }

    /// Whether `self` may have issued `subject`: its subject is `subject`'s
    /// issuer, byte for byte or under [`lean_names_equivalent`].
    pub(crate) fn named_issuer_of(&self, subject: &Cert<'_>) -> bool {
        if self.raw.subject == subject.raw.issuer {
            return true;
        }
        match lean_names_compare(
            &self.cert.tbs_certificate.subject,
            &subject.cert.tbs_certificate.issuer,
        ) {
            Some(verdict) => verdict,
            // Through the decodings each certificate keeps: chain building asks
            // this for every candidate, and decoding a hostile name can be slow.
            None => match (self.subject_name(), subject.issuer_name()) {
                (Some(a), Some(b)) => normalized_rdns(a) == normalized_rdns(b),
                _ => false,
            },
        }
    }

    /// The subject, decoded.
    pub(crate) fn subject_name(&self) -> Option<&Name> {
        self.subject_name
            .get_or_init(|| self.cert.tbs_certificate.subject.decoded())
            .as_ref()
    }

    /// The issuer, decoded.
    pub(crate) fn issuer_name(&self) -> Option<&Name> {
        self.issuer_name
            .get_or_init(|| self.cert.tbs_certificate.issuer.decoded())
            .as_ref()
    }

    /// The subject's attributes of type `oid`, in the decoded name's order;
    /// `None` if the subject does not decode (which `lean::walk_name` rules out;
    /// callers fail closed).
    pub(crate) fn subject_attributes(
        &self,
        oid: ObjectIdentifier,
    ) -> Option<Vec<AttributeRef<'_>>> {
        match self.cert.tbs_certificate.subject.attributes_of_type(oid) {
            Some(found) => Some(found),
            None => self.subject_name().map(|n| {
                n.0.iter()
                    .flat_map(|rdn| rdn.0.iter())
                    .filter(|atv| atv.oid == oid)
                    .map(AttributeRef::from)
                    .collect()
            }),
        }
    }

    /// The subject public key, as decoded with the certificate.
    pub(crate) fn spki(&self) -> &SubjectPublicKeyInfoRef<'a> {
        &self.cert.tbs_certificate.subject_public_key_info
    }

    pub(crate) fn serial(&self) -> &[u8] {
        self.cert.tbs_certificate.serial_number.as_bytes()
    }

    /// The issuer's display name (made when asked: only failures name it).
    pub(crate) fn issuer_display(&self) -> String {
        self.issuer_name()
            .map(crate::names::rfc4514)
            .unwrap_or_else(|| undecodable(self.raw.issuer))
    }

    /// The subject's display name, or a placeholder when empty.
    pub(crate) fn label(&self) -> String {
        let subject = self.subject_display.get_or_init(|| {
            self.subject_name()
                .map(crate::names::rfc4514)
                .unwrap_or_else(|| undecodable(self.raw.subject))
        });
        if subject.is_empty() {
            "(empty subject)".to_string()
        } else {
            subject.clone()
        }
    }
}

/// A name that does not decode, as RFC 4514 shows values it cannot: in hex.
fn undecodable(name_der: &[u8]) -> String {
    format!("#{}", crate::hex::encode(name_der))
}

fn check_serial(serial: &[u8]) -> Option<String> {
    let first = serial.first().copied().unwrap_or(0);
    if first & 0x80 != 0 {
        return Some("negative serial number".into());
    }
    if serial.iter().all(|b| *b == 0) {
        return Some("serial number is zero".into());
    }
    // 20 octets of value; a leading 0x00 sign octet is not part of the value.
    let value_len = if first == 0 {
        serial.len().saturating_sub(1)
    } else {
        serial.len()
    };
    (value_len > 20).then(|| format!("serial number of {value_len} octets (maximum 20)"))
}

fn bad(problems: &mut Vec<(CheckKind, String)>, what: &str) {
    problems.push((CheckKind::Encoding, format!("malformed {what} extension")));
}

fn decode_extensions<'a>(
    cert: &LeanCertificate<'a>,
    problems: &mut Vec<(CheckKind, String)>,
) -> Extensions<'a> {
    let mut out = Extensions::default();
    let Some(exts) = cert.tbs_certificate.extensions.as_ref().map(|e| &e.list) else {
        return out;
    };
    for (i, e) in exts.iter().enumerate() {
        // A handful of extensions: comparing with those before is cheaper
        // than keeping a set.
        if exts
            .get(..i)
            .is_some_and(|before| before.iter().any(|b| b.extn_id == e.extn_id))
        {
            problems.push((
                CheckKind::Encoding,
                format!("duplicate extension {}", e.extn_id),
            ));
            continue;
        }
        let value = e.extn_value.as_bytes();
        let critical = e.critical;
        match e.extn_id {
            oids::BASIC_CONSTRAINTS => match ext_shape::basic_constraints(value)
                .map_or_else(|| BasicConstraints::from_der(value), Ok)
            {
                Ok(v) => out.basic_constraints = Some(Ext { value: v, critical }),
                Err(_) => bad(problems, "basicConstraints"),
            },
            oids::KEY_USAGE => match BitStringRef::from_der(value) {
                Ok(bits) => {
                    let mut mask = 0u16;
                    for (i, byte) in bits.raw_bytes().iter().enumerate().take(2) {
                        for bit in 0..8 {
                            if byte & (0x80 >> bit) != 0 {
                                mask |= 1 << (i * 8 + bit);
                            }
                        }
                    }
                    if mask == 0 {
                        problems.push((CheckKind::KeyUsage, "keyUsage with no bit set".into()));
                    }
                    out.key_usage = Some(Ext {
                        value: mask,
                        critical,
                    });
                }
                Err(_) => bad(problems, "keyUsage"),
            },
            oids::EXT_KEY_USAGE => match ext_shape::ext_key_usage(value)
                .map_or_else(|| ExtendedKeyUsage::from_der(value).map(|v| v.0), Ok)
            {
                Ok(purposes) => {
                    if purposes.is_empty() {
                        problems.push((
                            CheckKind::ExtendedKeyUsage,
                            "extKeyUsage lists no purpose".into(),
                        ));
                    }
                    out.ext_key_usage = Some(Ext {
                        value: purposes,
                        critical,
                    });
                }
                Err(_) => bad(problems, "extKeyUsage"),
            },
            oids::SUBJECT_ALT_NAME => match ext_shape::subject_alt_name(value)
                .map_or_else(|| SubjectAltName::from_der(value).map(|v| v.0), Ok)
            {
                Ok(names) => {
                    if names.is_empty() {
                        problems.push((
                            CheckKind::SubjectAltName,
                            "subjectAltName lists no name".into(),
                        ));
                    }
                    out.subject_alt_name = Some(Ext {
                        value: names,
                        critical,
                    });
                }
                Err(_) => bad(problems, "subjectAltName"),
            },
            oids::NAME_CONSTRAINTS => match NameConstraints::from_der(value) {
                Ok(v) => out.name_constraints = Some(Ext { value: v, critical }),
                Err(_) => bad(problems, "nameConstraints"),
            },
            oids::SUBJECT_KEY_IDENTIFIER => {
                if critical {
                    problems.push((
                        CheckKind::KeyIdentifiers,
                        "subjectKeyIdentifier is critical".into(),
                    ));
                }
                // x509-cert's SubjectKeyIdentifier is this OCTET STRING.
                match OctetStringRef::from_der(value) {
                    Ok(v) => {
                        out.subject_key_id = Some(Ext {
                            value: v.as_bytes(),
                            critical,
                        })
                    }
                    Err(_) => bad(problems, "subjectKeyIdentifier"),
                }
            }
            oids::AUTHORITY_KEY_IDENTIFIER => {
                if critical {
                    problems.push((
                        CheckKind::KeyIdentifiers,
                        "authorityKeyIdentifier is critical".into(),
                    ));
                }
                match ext_shape::authority_key_identifier(value)
                    .map_or_else(|| AuthorityKeyIdentifier::from_der(value), Ok)
                {
                    Ok(v) => out.authority_key_id = Some(Ext { value: v, critical }),
                    Err(_) => bad(problems, "authorityKeyIdentifier"),
                }
            }
            oids::AUTHORITY_INFO_ACCESS => {
                if critical {
                    problems.push((
                        CheckKind::Encoding,
                        "authorityInfoAccess is critical".into(),
                    ));
                }
                match AuthorityInfoAccessSyntax::from_der(value) {
                    Ok(v) if !v.0.is_empty() => {}
                    _ => bad(problems, "authorityInfoAccess"),
                }
            }
            oids::POLICY_CONSTRAINTS => {
                // RFC 5280 4.2.1.11: MUST be critical; and when critical, this
                // validator (which builds no policy tree) cannot honour it.
                problems.push(if critical {
                    (
                        CheckKind::CriticalExtensions,
                        "policyConstraints is not processed by this validator".into(),
                    )
                } else {
                    (
                        CheckKind::Encoding,
                        "policyConstraints is not critical".into(),
                    )
                });
            }
            // Policies are not restricted by this validator (any policy is
            // acceptable), so their presence, even critical, changes nothing;
            // policy constraints, mappings and inhibitAnyPolicy could, and are
            // refused when critical below.
            oids::CERTIFICATE_POLICIES
            | oids::CRL_DISTRIBUTION_POINTS
            | oids::ISSUER_ALT_NAME
            | oids::SCT_LIST
            | SUBJECT_INFO_ACCESS
            | FRESHEST_CRL => {}
            other => {
                if critical {
                    problems.push((
                        CheckKind::CriticalExtensions,
                        format!("unsupported critical extension {other}"),
                    ));
                }
            }
        }
    }
    out
}
