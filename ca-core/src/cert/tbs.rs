//! Building the to-be-signed certificate: the fields and extensions a root,
//! an intermediate or a leaf carries, from what varies between them.

use std::time::Duration;

use const_oid::AssociatedOid;
use der::asn1::{GeneralizedTime, Ia5String, OctetString, UtcTime};
use der::Encode;
use spki::SubjectPublicKeyInfoOwned;
use time::OffsetDateTime;
use x509_cert::certificate::{TbsCertificate, Version};
use x509_cert::ext::pkix::crl::dp::DistributionPoint;
use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName};
use x509_cert::ext::pkix::{
    AccessDescription, AuthorityInfoAccessSyntax, AuthorityKeyIdentifier, BasicConstraints,
    CrlDistributionPoints, ExtendedKeyUsage, KeyUsage, SubjectAltName, SubjectKeyIdentifier,
};
use x509_cert::ext::Extension;
use x509_cert::name::Name;
use x509_cert::time::{Time, Validity};

use super::{key_identifier, IssueError, IssuerUrls, NameConstraintsSpec};
use crate::keys::PublicKeyKind;
use crate::lint::CertKind;
use crate::names::SanEntry;
use crate::oids;
use crate::profile::Profile;
use crate::serial::Serial;
use crate::signature;

fn extension<T: AssociatedOid + Encode>(
    value: &T,
    critical: bool,
) -> Result<Extension, der::Error> {
    Ok(Extension {
        extn_id: T::OID,
        critical,
        extn_value: OctetString::new(value.to_der()?)?,
    })
}

/// keyUsage as DER, the named bit list cut after its last set bit (X.690
/// 11.2.2), as der writes it but without its bit-by-bit loops over 128 bits
/// (~0.5 µs of an issuance).
fn key_usage_der(ku: KeyUsage) -> Vec<u8> {
    let flags: u16 = ku.0.bits();
    let bit_len = (u16::BITS - flags.leading_zeros()) as usize;
    let octets = bit_len.div_ceil(8);
    let mut der = Vec::with_capacity(3 + octets);
    // octets <= 2: the length always fits one byte, as the unused count does.
    der.extend_from_slice(&[0x03, (1 + octets) as u8, (octets * 8 - bit_len) as u8]);
    // Flag i is bit i of the string: the first octet's high bit is flag 0.
    der.extend((0..octets).map(|o| ((flags >> (8 * o)) as u8).reverse_bits()));
    der
}

fn uri(s: &str) -> Result<GeneralName, der::Error> {
    Ok(GeneralName::UniformResourceIdentifier(Ia5String::new(s)?))
}

pub(crate) fn to_x509_time(t: OffsetDateTime) -> Result<Time, IssueError> {
    let secs = u64::try_from(t.unix_timestamp()).map_err(|_| IssueError::TimeRange)?;
    let dt = der::DateTime::from_unix_duration(Duration::from_secs(secs))
        .map_err(|_| IssueError::TimeRange)?;
    // RFC 5280 4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050.
    Ok(if dt.year() < 2050 {
        Time::UtcTime(UtcTime::from_date_time(dt)?)
    } else {
        Time::GeneralTime(GeneralizedTime::from_date_time(dt))
    })
}

/// Everything that varies between a root, an intermediate and a leaf.
pub(super) struct TbsSpec<'a> {
    pub(super) serial: &'a Serial,
    pub(super) issuer_name: &'a Name,
    pub(super) issuer_key: PublicKeyKind,
    pub(super) issuer_ski: Option<&'a [u8]>,
    pub(super) not_before: OffsetDateTime,
    pub(super) not_after: OffsetDateTime,
    pub(super) subject: &'a Name,
    pub(super) spki: SubjectPublicKeyInfoOwned,
    pub(super) subject_key: PublicKeyKind,
    pub(super) kind: CertKind,
    pub(super) sans: &'a [SanEntry],
    pub(super) name_constraints: Option<&'a NameConstraintsSpec>,
    pub(super) urls: Option<&'a IssuerUrls>,
}

pub(super) fn build_tbs(spec: &TbsSpec<'_>) -> Result<TbsCertificate, IssueError> {
    let (is_ca, path_len) = match spec.kind {
        CertKind::Root { path_len } => (true, path_len),
        CertKind::Issued(Profile::SubordinateCa { path_len }) => (true, path_len),
        CertKind::Issued(_) => (false, None),
    };
    let profile = spec.kind.profile();
    let ski = key_identifier(&spec.spki);
    let mut exts = vec![
        extension(
            &BasicConstraints {
                ca: is_ca,
                path_len_constraint: path_len,
            },
            true,
        )?,
        Extension {
            extn_id: KeyUsage::OID,
            critical: true,
            extn_value: OctetString::new(key_usage_der(profile.key_usage(spec.subject_key)))?,
        },
    ];
    let ekus = profile.extended_key_usages();
    if !ekus.is_empty() {
        exts.push(extension(&ExtendedKeyUsage(ekus), false)?);
    }
    exts.push(extension(
        &SubjectKeyIdentifier(OctetString::new(ski)?),
        false,
    )?);
    if let Some(aki) = spec.issuer_ski {
        let aki = AuthorityKeyIdentifier {
            key_identifier: Some(OctetString::new(aki)?),
            ..Default::default()
        };
        exts.push(extension(&aki, false)?);
    }
    if !spec.sans.is_empty() {
        let names = spec
            .sans
            .iter()
            .map(SanEntry::to_general_name)
            .collect::<Result<Vec<_>, _>>()?;
        // RFC 5280 4.2.1.6: critical when the subject is empty.
        exts.push(extension(
            &SubjectAltName(names),
            spec.subject.0.is_empty(),
        )?);
    }
    if let Some(nc) = spec.name_constraints.filter(|nc| !nc.is_empty()) {
        exts.push(extension(&nc.to_extension_value()?, true)?);
    }
    if let Some(urls) = spec.urls {
        if let Some(crl) = &urls.crl {
            let dp = DistributionPoint {
                distribution_point: Some(DistributionPointName::FullName(vec![uri(crl)?])),
                reasons: None,
                crl_issuer: None,
            };
            exts.push(extension(&CrlDistributionPoints(vec![dp]), false)?);
        }
        let mut aia = Vec::new();
        if let Some(ocsp) = &urls.ocsp {
            aia.push(AccessDescription {
                access_method: oids::AD_OCSP,
                access_location: uri(ocsp)?,
            });
        }
        if let Some(ca) = &urls.ca_issuers {
            aia.push(AccessDescription {
                access_method: oids::AD_CA_ISSUERS,
                access_location: uri(ca)?,
            });
        }
        if !aia.is_empty() {
            exts.push(extension(&AuthorityInfoAccessSyntax(aia), false)?);
        }
    }
    Ok(TbsCertificate {
        version: Version::V3,
        serial_number: spec.serial.to_x509()?,
        signature: signature::SignatureAlgorithm::default_for(spec.issuer_key).identifier(),
        issuer: spec.issuer_name.clone(),
        validity: Validity {
            not_before: to_x509_time(spec.not_before)?,
            not_after: to_x509_time(spec.not_after)?,
        },
        subject: spec.subject.clone(),
        subject_public_key_info: spec.spki.clone(),
        issuer_unique_id: None,
        subject_unique_id: None,
        extensions: Some(exts),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use x509_cert::ext::pkix::KeyUsages;

    /// Every combination of the nine keyUsage bits encodes as der encodes it,
    /// and a few by bytes written out from X.690 11.2.2 (trailing zero bits
    /// dropped, their count in the first content octet).
    #[test]
    fn key_usage_der_is_what_der_writes() {
        let ku = |f: der::flagset::FlagSet<KeyUsages>| key_usage_der(KeyUsage(f));
        assert_eq!(ku(KeyUsages::DigitalSignature.into()), [3, 2, 7, 0x80]);
        assert_eq!(
            ku(KeyUsages::KeyCertSign | KeyUsages::CRLSign),
            [3, 2, 1, 0x06]
        );
        assert_eq!(ku(KeyUsages::EncipherOnly.into()), [3, 2, 0, 0x01]);
        assert_eq!(ku(KeyUsages::DecipherOnly.into()), [3, 3, 7, 0, 0x80]);
        assert_eq!(ku(der::flagset::FlagSet::default()), [3, 1, 0]);
        for bits in 0u16..(1 << 9) {
            let ku = KeyUsage(der::flagset::FlagSet::<KeyUsages>::new_truncated(bits));
            assert_eq!(key_usage_der(ku), ku.to_der().unwrap(), "bits {bits:#b}");
        }
    }
}
