//! The extension values nearly every certificate carries, read by hand in
//! the exact encodings x509-cert's decoders accept and give these values for.
//! Anything else is `None`, and the caller decodes it with x509-cert, which
//! decides; `common_extension_values_decode_as_x509_cert_does` compares both.

use const_oid::ObjectIdentifier;
use der::asn1::{Ia5String, OctetString};
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{AuthorityKeyIdentifier, BasicConstraints};

use crate::der_util::read_tlv;

/// `SEQUENCE {}`, `SEQUENCE { TRUE }` or `SEQUENCE { TRUE, INTEGER 0..=127 }`.
pub(super) fn basic_constraints(value: &[u8]) -> Option<BasicConstraints> {
    let (ca, path_len_constraint) = match value {
        [0x30, 0x00] => (false, None),
        [0x30, 0x03, 0x01, 0x01, 0xff] => (true, None),
        [0x30, 0x06, 0x01, 0x01, 0xff, 0x02, 0x01, n] if *n < 0x80 => (true, Some(*n)),
        _ => return None,
    };
    Some(BasicConstraints {
        ca,
        path_len_constraint,
    })
}

/// `SEQUENCE { [0] keyIdentifier }` alone, in short-form lengths.
pub(super) fn authority_key_identifier(value: &[u8]) -> Option<AuthorityKeyIdentifier> {
    let [0x30, outer, 0x80, inner, key_id @ ..] = value else {
        return None;
    };
    let short = *outer < 0x80 && usize::from(*inner) == key_id.len();
    if !short || usize::from(*outer) != key_id.len() + 2 {
        return None;
    }
    Some(AuthorityKeyIdentifier {
        key_identifier: Some(OctetString::new(key_id).ok()?),
        authority_cert_issuer: None,
        authority_cert_serial_number: None,
    })
}

/// `SEQUENCE OF OBJECT IDENTIFIER`, as der reads one.
pub(super) fn ext_key_usage(value: &[u8]) -> Option<Vec<ObjectIdentifier>> {
    let (list, trailing) = read_tlv(value).ok()?;
    if list.tag != 0x30 || !trailing.is_empty() {
        return None;
    }
    let mut purposes = Vec::with_capacity(4);
    let mut rest = list.content;
    while !rest.is_empty() {
        let (oid, next) = read_tlv(rest).ok()?;
        if oid.tag != 0x06 {
            return None;
        }
        purposes.push(super::lean_shape::object_identifier(oid.content)?);
        rest = next;
    }
    Some(purposes)
}

/// `SEQUENCE OF GeneralName` whose names are all rfc822Name, dNSName, URI
/// or iPAddress (primitive, as DER has them), as der reads one.
pub(super) fn subject_alt_name(value: &[u8]) -> Option<Vec<GeneralName>> {
    let (list, trailing) = read_tlv(value).ok()?;
    if list.tag != 0x30 || !trailing.is_empty() {
        return None;
    }
    let mut names = Vec::with_capacity(2);
    let mut rest = list.content;
    while !rest.is_empty() {
        let (name, next) = read_tlv(rest).ok()?;
        let text = || Ia5String::new(name.content).ok();
        names.push(match name.tag {
            0x81 => GeneralName::Rfc822Name(text()?),
            0x82 => GeneralName::DnsName(text()?),
            0x86 => GeneralName::UniformResourceIdentifier(text()?),
            0x87 => GeneralName::IpAddress(OctetString::new(name.content).ok()?),
            _ => return None,
        });
        rest = next;
    }
    Some(names)
}
