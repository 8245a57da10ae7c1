//! A certificate decoded once for validation: the x509-cert structure, the raw
//! slices signatures need, decoded extensions, and the profile problems found in
//! it on its own (problems only matter if the certificate ends up in a path).

use const_oid::ObjectIdentifier;
use der::asn1::{BitStringRef, OctetStringRef};
use der::{Decode, Tagged};
use spki::SubjectPublicKeyInfoRef;
use x509_cert::certificate::Version;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{
    AuthorityInfoAccessSyntax, AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage,
    NameConstraints, SubjectAltName,
};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::Validity;

use super::explain::CheckKind;
use crate::der_util::{raw_cert, RawCert};
use crate::keys::{KeyError, PublicKeyKind};
use crate::oids;

const SCT_LIST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.11129.2.4.2");
const SUBJECT_INFO_ACCESS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.1.11");
const FRESHEST_CRL: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.46");
pub(crate) const AT_EMAIL_ADDRESS: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.1");

/// keyUsage bits, numbered as in RFC 5280 (bit 0 = digitalSignature).
pub(crate) const KU_KEY_CERT_SIGN: u16 = 1 << 5;
pub(crate) const KU_CRL_SIGN: u16 = 1 << 6;

/// x509-cert's `Certificate`, field for field with the same DER rules (the
/// same derive and attributes; the extensions are walked by hand under der's
/// rules, [`walk_extensions`]), but borrowing the key, the signature and the
/// extension values from the input instead of copying each into its own
/// allocation: a validation decodes every certificate it is given.
#[derive(Clone, Debug, der::Sequence)]
pub(crate) struct LeanCertificate<'a> {
    pub tbs_certificate: LeanTbsCertificate<'a>,
    pub signature_algorithm: spki::AlgorithmIdentifierOwned,
    pub signature: der::asn1::BitStringRef<'a>,
}

/// x509-cert's `TbsCertificate`, borrowing as [`LeanCertificate`] does.
#[derive(Clone, Debug, der::Sequence)]
pub(crate) struct LeanTbsCertificate<'a> {
    #[asn1(context_specific = "0", default = "Default::default")]
    pub version: Version,
    pub serial_number: SerialNumber,
    pub signature: spki::AlgorithmIdentifierOwned,
    pub issuer: LeanName<'a>,
    pub validity: Validity,
    pub subject: LeanName<'a>,
    pub subject_public_key_info: SubjectPublicKeyInfoRef<'a>,
    #[asn1(context_specific = "1", tag_mode = "IMPLICIT", optional = "true")]
    pub issuer_unique_id: Option<der::asn1::BitStringRef<'a>>,
    #[asn1(context_specific = "2", tag_mode = "IMPLICIT", optional = "true")]
    pub subject_unique_id: Option<der::asn1::BitStringRef<'a>>,
    #[asn1(context_specific = "3", tag_mode = "EXPLICIT", optional = "true")]
    pub extensions: Option<LeanExtensions<'a>>,
}

/// x509-cert's `Extension`, its value borrowed.
#[derive(Clone, Debug)]
pub(crate) struct LeanExtension<'a> {
    pub extn_id: ObjectIdentifier,
    pub critical: bool,
    pub extn_value: der::asn1::OctetStringRef<'a>,
}

/// The extensions' SEQUENCE OF, read by [`walk_extensions`] under the rules der
/// applies to x509-cert's `Vec<Extension>` (der's generic decoding of it was
/// a third of a validation's time beside the signatures).
#[derive(Clone, Debug)]
pub(crate) struct LeanExtensions<'a> {
    pub list: Vec<LeanExtension<'a>>,
    /// The SEQUENCE OF's contents, as given.
    raw: &'a [u8],
}

impl der::FixedTag for LeanExtensions<'_> {
    const TAG: der::Tag = der::Tag::Sequence;
}

impl<'a> der::DecodeValue<'a> for LeanExtensions<'a> {
    fn decode_value<R: der::Reader<'a>>(reader: &mut R, header: der::Header) -> der::Result<Self> {
        let raw = reader.read_slice(header.length)?;
        let list = walk_extensions(raw).map_err(|kind| reader.error(kind))?;
        Ok(LeanExtensions { list, raw })
    }
}

impl der::EncodeValue for LeanExtensions<'_> {
    fn value_len(&self) -> der::Result<der::Length> {
        der::Length::try_from(self.raw.len())
    }

    fn encode_value(&self, writer: &mut impl der::Writer) -> der::Result<()> {
        writer.write(self.raw)
    }
}

/// Each `Extension ::= SEQUENCE { extnID OID, critical BOOLEAN DEFAULT FALSE,
/// extnValue OCTET STRING }` of `contents`, or what der would refuse it for: a
/// tag other than these, a non-minimal or indefinite length, an invalid OID, a
/// BOOLEAN other than 00 or FF (an explicit FALSE is accepted, as der accepts
/// it), or anything after the value.
fn walk_extensions(mut contents: &[u8]) -> Result<Vec<LeanExtension<'_>>, der::ErrorKind> {
    use der::{ErrorKind, Tag};
    let (tlv, expect) = (der_tlv, expect_tag);
    let mut list = Vec::with_capacity(10);
    while !contents.is_empty() {
        let (extension, rest) = tlv(contents)?;
        contents = rest;
        expect(&extension, Tag::Sequence)?;
        let (oid, mut fields) = tlv(extension.content)?;
        expect(&oid, Tag::ObjectIdentifier)?;
        let extn_id =
            ObjectIdentifier::from_bytes(oid.content).map_err(|_| ErrorKind::OidMalformed)?;
        let mut critical = false;
        if fields.first() == Some(&u8::from(Tag::Boolean)) {
            let (flag, rest) = tlv(fields)?;
            fields = rest;
            critical = match flag.content {
                [0x00] => false,
                [0xff] => true,
                [_] => return Err(ErrorKind::Noncanonical { tag: Tag::Boolean }),
                _ => return Err(ErrorKind::Length { tag: Tag::Boolean }),
            };
        }
        let (value, rest) = tlv(fields)?;
        expect(&value, Tag::OctetString)?;
        if !rest.is_empty() {
            return Err(ErrorKind::TrailingData {
                decoded: der::Length::try_from(extension.content.len() - rest.len())
                    .unwrap_or_default(),
                remaining: der::Length::try_from(rest.len()).unwrap_or_default(),
            });
        }
        list.push(LeanExtension {
            extn_id,
            critical,
            extn_value: der::asn1::OctetStringRef::new(value.content).map_err(|e| e.kind())?,
        });
    }
    Ok(list)
}

/// x509-cert's `Name` (an RDNSequence), left where it lies: [`walk_name`]
/// checks it under the rules der applies when decoding a `Name`, and it is
/// decoded into one only when text or a full comparison needs it. Decoding
/// both names of every certificate (a `Vec` per name and per RDN, an owned
/// value per attribute) was a fifth of a validation's time beside the signatures.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LeanName<'a> {
    /// The SEQUENCE's contents, as given.
    contents: &'a [u8],
}

impl der::FixedTag for LeanName<'_> {
    const TAG: der::Tag = der::Tag::Sequence;
}

impl<'a> der::DecodeValue<'a> for LeanName<'a> {
    fn decode_value<R: der::Reader<'a>>(reader: &mut R, header: der::Header) -> der::Result<Self> {
        let contents = reader.read_slice(header.length)?;
        walk_name(contents).map_err(|kind| reader.error(kind))?;
        Ok(LeanName { contents })
    }
}

impl der::EncodeValue for LeanName<'_> {
    fn value_len(&self) -> der::Result<der::Length> {
        der::Length::try_from(self.contents.len())
    }

    fn encode_value(&self, writer: &mut impl der::Writer) -> der::Result<()> {
        writer.write(self.contents)
    }
}

impl<'a> LeanName<'a> {
    pub(crate) fn is_empty(&self) -> bool {
        self.contents.is_empty()
    }

    /// x509-cert's `Name` of it (as decoding the certificate with x509-cert gives).
    pub(crate) fn decoded(&self) -> Option<Name> {
        use der::{DecodeValue, Reader};
        let header = der::Header::new(der::Tag::Sequence, self.contents.len()).ok()?;
        let mut reader = der::SliceReader::new(self.contents).ok()?;
        let rdns =
            Vec::<x509_cert::name::RelativeDistinguishedName>::decode_value(&mut reader, header)
                .ok()?;
        reader.finish(x509_cert::name::RdnSequence(rdns)).ok()
    }

    /// The RDNs, in order.
    fn rdns(&self) -> impl Iterator<Item = LeanRdn<'a>> {
        Elements(self.contents).map(|set| LeanRdn(set.content))
    }

    /// The attributes of type `oid`, in the order a decoded `Name` holds them;
    /// `None` when an RDN holds several attributes, whose order that decoding sets.
    fn attributes_of_type(&self, oid: ObjectIdentifier) -> Option<Vec<AttributeRef<'a>>> {
        let mut out = Vec::new();
        for rdn in self.rdns() {
            let a = rdn.single()?;
            if a.oid == oid.as_bytes() {
                out.push(a);
            }
        }
        Some(out)
    }
}

/// One RDN of a [`LeanName`]: the SET's contents.
#[derive(Clone, Copy, Debug)]
struct LeanRdn<'a>(&'a [u8]);

impl<'a> LeanRdn<'a> {
    /// Its only attribute, when it holds exactly one.
    fn single(&self) -> Option<AttributeRef<'a>> {
        let mut attributes = Elements(self.0);
        let first = attributes.next()?;
        match attributes.next() {
            None => AttributeRef::read(first.content),
            Some(_) => None,
        }
    }
}

/// The elements of contents already checked by a walk (so none fails to read).
struct Elements<'a>(&'a [u8]);

impl<'a> Iterator for Elements<'a> {
    type Item = crate::der_util::Tlv<'a>;

    fn next(&mut self) -> Option<Self::Item> {
        let (element, rest) = crate::der_util::read_tlv(self.0).ok()?;
        self.0 = rest;
        Some(element)
    }
}

/// One AttributeTypeAndValue, borrowed: its type's OID contents and its
/// value's tag and contents.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct AttributeRef<'a> {
    pub oid: &'a [u8],
    pub tag: u8,
    pub value: &'a [u8],
}

impl<'a> From<&'a x509_cert::attr::AttributeTypeAndValue> for AttributeRef<'a> {
    fn from(atv: &'a x509_cert::attr::AttributeTypeAndValue) -> Self {
        AttributeRef {
            oid: atv.oid.as_bytes(),
            tag: u8::from(atv.value.tag()),
            value: atv.value.value(),
        }
    }
}

impl<'a> AttributeRef<'a> {
    /// From the contents of a checked AttributeTypeAndValue SEQUENCE.
    fn read(contents: &'a [u8]) -> Option<Self> {
        let mut fields = Elements(contents);
        let (oid, value) = (fields.next()?, fields.next()?);
        Some(AttributeRef {
            oid: oid.content,
            tag: value.tag,
            value: value.content,
        })
    }

    /// The value's text, when it is one of the string types names use.
    pub(crate) fn text(&self) -> Option<&'a str> {
        text_of(self.tag, self.value)
    }
}

/// Check `RDNSequence ::= SEQUENCE OF SET OF SEQUENCE { type OID, value ANY }`
/// (the SEQUENCE's `contents`) under der's rules, or say what der would refuse
/// it for: a tag other than these, a non-minimal or indefinite length, an
/// invalid OID, a value tag der does not know, anything after the value, or
/// the same attribute twice in one RDN (der sorts an RDN's attributes when
/// decoding, so their order is free).
fn walk_name(mut contents: &[u8]) -> Result<(), der::ErrorKind> {
    use der::{ErrorKind, Tag};
    while !contents.is_empty() {
        let (rdn, rest) = der_tlv(contents)?;
        contents = rest;
        expect_tag(&rdn, Tag::Set)?;
        let mut attributes = rdn.content;
        while !attributes.is_empty() {
            let (attribute, rest) = der_tlv(attributes)?;
            expect_tag(&attribute, Tag::Sequence)?;
            let (oid, after_oid) = der_tlv(attribute.content)?;
            expect_tag(&oid, Tag::ObjectIdentifier)?;
            ObjectIdentifier::from_bytes(oid.content).map_err(|_| ErrorKind::OidMalformed)?;
            // der reads the value's tag (an ANY: any tag it knows) before its length.
            if let Some(tag) = after_oid.first() {
                Tag::try_from(*tag).map_err(|e| e.kind())?;
            }
            let (_value, trailing) = der_tlv(after_oid)?;
            if !trailing.is_empty() {
                return Err(ErrorKind::TrailingData {
                    decoded: der::Length::try_from(attribute.content.len() - trailing.len())
                        .unwrap_or_default(),
                    remaining: der::Length::try_from(trailing.len()).unwrap_or_default(),
                });
            }
            attributes = rest;
        }
        // A duplicate is two attributes of this RDN with the same encoding.
        // Sorted, not compared pairwise: a hostile RDN may hold many thousands.
        if Elements(rdn.content).nth(1).is_some() {
            let mut encodings: Vec<&[u8]> = Elements(rdn.content).map(|e| e.whole).collect();
            encodings.sort_unstable();
            if encodings.windows(2).any(|pair| pair[0] == pair[1]) {
                return Err(ErrorKind::SetDuplicate);
            }
        }
    }
    Ok(())
}

/// One TLV of `input`, its errors named as der names them.
fn der_tlv(input: &[u8]) -> Result<(crate::der_util::Tlv<'_>, &[u8]), der::ErrorKind> {
    use crate::der_util::{read_tlv, TlvError};
    use der::{ErrorKind, Tag};
    read_tlv(input).map_err(|e| match e {
        // The element whose length runs past its container, as der names it.
        TlvError::Truncated => ErrorKind::Length {
            tag: input
                .first()
                .and_then(|b| Tag::try_from(*b).ok())
                .unwrap_or(Tag::Sequence),
        },
        TlvError::MultiOctetTag => ErrorKind::TagNumberInvalid,
        TlvError::BadLength | TlvError::NonMinimalLength => ErrorKind::Overlength,
    })
}

/// `Ok` when `t` has `tag`, else der's error for the tag found.
fn expect_tag(t: &crate::der_util::Tlv<'_>, tag: der::Tag) -> Result<(), der::ErrorKind> {
    use der::{ErrorKind, Tag};
    if t.tag == u8::from(tag) {
        Ok(())
    } else {
        Err(match Tag::try_from(t.tag) {
            Ok(actual) => ErrorKind::TagUnexpected {
                expected: Some(tag),
                actual,
            },
            Err(_) => ErrorKind::TagUnknown { byte: t.tag },
        })
    }
}

/// An extension value with its criticality.
#[derive(Clone, Debug)]
pub(crate) struct Ext<T> {
    pub value: T,
    pub critical: bool,
}

#[derive(Clone, Debug, Default)]
pub(crate) struct Extensions {
    pub basic_constraints: Option<Ext<BasicConstraints>>,
    pub key_usage: Option<Ext<u16>>,
    pub ext_key_usage: Option<Ext<Vec<ObjectIdentifier>>>,
    pub subject_alt_name: Option<Ext<Vec<GeneralName>>>,
    pub name_constraints: Option<Ext<NameConstraints>>,
    pub subject_key_id: Option<Ext<Vec<u8>>>,
    pub authority_key_id: Option<Ext<AuthorityKeyIdentifier>>,
}

pub(crate) struct Cert<'a> {
    pub der: &'a [u8],
    pub raw: RawCert<'a>,
    pub cert: LeanCertificate<'a>,
    /// The subject as RFC 4514 text, made when first asked for.
    subject_display: std::cell::OnceCell<String>,
    /// The names decoded, when first asked for (`None`: they do not decode,
    /// which [`walk_name`]'s checks rule out).
    subject_name: std::cell::OnceCell<Option<Name>>,
    issuer_name: std::cell::OnceCell<Option<Name>>,
    pub key: Result<PublicKeyKind, KeyError>,
    pub not_before: i64,
    pub not_after: i64,
    pub self_issued: bool,
    pub ext: Extensions,
    /// Problems with the certificate on its own, found while decoding.
    pub problems: Vec<(CheckKind, String)>,
    /// A serial number outside RFC 5280 4.1.2.2 (not held against trust anchors).
    pub serial_problem: Option<String>,
}

impl<'a> Cert<'a> {
    /// Decode `der`; `Err` only when it is not a certificate at all.
    pub(crate) fn parse(der: &'a [u8]) -> Result<Self, String> {
        let raw = raw_cert(der).ok_or("not a DER certificate")?;
        let cert = LeanCertificate::from_der(der).map_err(|e| format!("does not decode: {e}"))?;
        let tbs = &cert.tbs_certificate;
        let mut problems = Vec::new();

        if tbs.version != Version::V3 {
            problems.push((
                CheckKind::Encoding,
                format!("version {:?}, not v3", tbs.version),
            ));
        }
        let serial_problem = check_serial(tbs.serial_number.as_bytes());
        if tbs.signature != cert.signature_algorithm {
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
        let not_before = unix(&tbs.validity.not_before);
        let not_after = unix(&tbs.validity.not_after);

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
            subject_display: std::cell::OnceCell::new(),
            subject_name: std::cell::OnceCell::new(),
            issuer_name: std::cell::OnceCell::new(),
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
    /// `None` if the subject does not decode (which [`walk_name`] rules out;
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

pub(crate) fn unix(t: &x509_cert::time::Time) -> i64 {
    i64::try_from(t.to_unix_duration().as_secs()).unwrap_or(i64::MAX)
}

/// A name in the form [`normalized_rdns`] compares: per RDN, its attributes'
/// normalised texts, sorted.
pub(crate) type NormalizedName = Vec<Vec<String>>;

/// RFC 5280 7.1 comparison, simplified: string attribute values are compared
/// case-insensitively with surrounding and repeated internal spaces folded; other
/// values byte for byte. Multi-valued RDNs compare as sets. An RDN stays a list
/// of attributes, never one joined string, so that no value can pose as a
/// second attribute (a commonName `a+2.5.4.7=s:b` against CN=a + L=b).
pub(crate) fn normalized_rdns(name: &Name) -> NormalizedName {
    name.0
        .iter()
        .map(|rdn| {
            let mut parts: Vec<String> = rdn
                .0
                .iter()
                .map(|atv| {
                    let v = &atv.value;
                    let tag = v.tag();
                    let text = match tag {
                        der::Tag::Utf8String
                        | der::Tag::PrintableString
                        | der::Tag::Ia5String
                        | der::Tag::TeletexString => std::str::from_utf8(v.value())
                            .ok()
                            .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
                            .map(|s| s.to_lowercase()),
                        _ => None,
                    };
                    match text {
                        Some(t) => format!("{}=s:{}", atv.oid, t),
                        None => {
                            format!("{}=x:{:?}:{}", atv.oid, tag, crate::hex::encode(v.value()))
                        }
                    }
                })
                .collect();
            parts.sort();
            parts
        })
        .collect()
}

/// Whether `a` and `b` are equal under [`normalized_rdns`], without building it:
/// chain building compares names for every issuer candidate, and nearly every
/// RDN holds one ASCII string, which is compared here in place. Anything else
/// (multi-valued RDNs, non-ASCII text, whose lower-casing is context-dependent)
/// is left to [`normalized_rdns`] itself.
pub(crate) fn names_equivalent(a: &Name, b: &Name) -> bool {
    if a.0.len() != b.0.len() {
        return false;
    }
    let mut undecided = false;
    for (ra, rb) in a.0.iter().zip(b.0.iter()) {
        match (ra.0.as_slice(), rb.0.as_slice()) {
            ([x], [y]) => match single_attributes_equivalent(x.into(), y.into()) {
                Some(true) => {}
                // The normalised forms differ at this RDN, whatever the others hold.
                Some(false) => return false,
                None => undecided = true,
            },
            _ => undecided = true,
        }
    }
    !undecided || normalized_rdns(a) == normalized_rdns(b)
}

/// [`names_equivalent`] on names where they lie, decoding them only when the
/// in-place comparison cannot decide.
pub(crate) fn lean_names_equivalent(a: &LeanName<'_>, b: &LeanName<'_>) -> bool {
    lean_names_compare(a, b).unwrap_or_else(|| match (a.decoded(), b.decoded()) {
        (Some(a), Some(b)) => normalized_rdns(&a) == normalized_rdns(&b),
        _ => false,
    })
}

/// The in-place part of [`lean_names_equivalent`]: `None` when it cannot decide.
fn lean_names_compare(a: &LeanName<'_>, b: &LeanName<'_>) -> Option<bool> {
    let (mut rdns_a, mut rdns_b) = (a.rdns(), b.rdns());
    let mut undecided = false;
    loop {
        match (rdns_a.next(), rdns_b.next()) {
            (None, None) => break,
            (Some(ra), Some(rb)) => match (ra.single(), rb.single()) {
                (Some(x), Some(y)) => match single_attributes_equivalent(x, y) {
                    Some(true) => {}
                    Some(false) => return Some(false),
                    None => undecided = true,
                },
                _ => undecided = true,
            },
            // Not as many RDNs.
            _ => return Some(false),
        }
    }
    (!undecided).then_some(true)
}

/// [`normalized_rdns`]'s verdict on two single-attribute RDNs, or `None` when
/// the text is not ASCII.
fn single_attributes_equivalent(x: AttributeRef<'_>, y: AttributeRef<'_>) -> Option<bool> {
    if x.oid != y.oid {
        // The normalised form shows OIDs as dotted text, and const-oid accepts
        // non-minimal arc encodings: other bytes can be the same text.
        return match (
            ObjectIdentifier::from_bytes(x.oid),
            ObjectIdentifier::from_bytes(y.oid),
        ) {
            (Ok(a), Ok(b)) if a.arcs().eq(b.arcs()) => None,
            _ => Some(false),
        };
    }
    match (x.text(), y.text()) {
        (Some(s), Some(t)) if s.is_ascii() && t.is_ascii() => {
            // Word sequences equal ignoring ASCII case is what joining the
            // words with one space and lower-casing compares.
            let (mut i, mut j) = (s.split_whitespace(), t.split_whitespace());
            loop {
                match (i.next(), j.next()) {
                    (None, None) => return Some(true),
                    (Some(a), Some(b)) if a.eq_ignore_ascii_case(b) => {}
                    _ => return Some(false),
                }
            }
        }
        (Some(_), Some(_)) => None,
        (None, None) => Some(x.tag == y.tag && x.value == y.value),
        _ => Some(false),
    }
}

/// The string value of a directory attribute, when it is a string type.
pub(crate) fn attr_string(value: &der::Any) -> Option<&str> {
    text_of(u8::from(value.tag()), value.value())
}

/// The text of a value of `tag`, when that is a string type names use.
fn text_of(tag: u8, value: &[u8]) -> Option<&str> {
    const STRING_TAGS: [der::Tag; 4] = [
        der::Tag::Utf8String,
        der::Tag::PrintableString,
        der::Tag::Ia5String,
        der::Tag::TeletexString,
    ];
    if STRING_TAGS.iter().any(|t| u8::from(*t) == tag) {
        std::str::from_utf8(value).ok()
    } else {
        None
    }
}

/// Attribute values of type `oid` in `name`.
pub(crate) fn attrs(name: &Name, oid: ObjectIdentifier) -> Vec<&der::Any> {
    name.0
        .iter()
        .flat_map(|rdn| rdn.0.iter())
        .filter(|atv| atv.oid == oid)
        .map(|atv| &atv.value)
        .collect()
}

fn bad(problems: &mut Vec<(CheckKind, String)>, what: &str) {
    problems.push((CheckKind::Encoding, format!("malformed {what} extension")));
}

fn decode_extensions(
    cert: &LeanCertificate<'_>,
    problems: &mut Vec<(CheckKind, String)>,
) -> Extensions {
    let mut out = Extensions::default();
    let Some(exts) = cert.tbs_certificate.extensions.as_ref().map(|e| &e.list) else {
        return out;
    };
    let mut seen: Vec<ObjectIdentifier> = Vec::with_capacity(exts.len());
    for e in exts {
        if seen.contains(&e.extn_id) {
            problems.push((
                CheckKind::Encoding,
                format!("duplicate extension {}", e.extn_id),
            ));
            continue;
        }
        seen.push(e.extn_id);
        let value = e.extn_value.as_bytes();
        let critical = e.critical;
        match e.extn_id {
            oids::BASIC_CONSTRAINTS => match BasicConstraints::from_der(value) {
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
            oids::EXT_KEY_USAGE => match ExtendedKeyUsage::from_der(value) {
                Ok(v) => {
                    if v.0.is_empty() {
                        problems.push((
                            CheckKind::ExtendedKeyUsage,
                            "extKeyUsage lists no purpose".into(),
                        ));
                    }
                    out.ext_key_usage = Some(Ext {
                        value: v.0,
                        critical,
                    });
                }
                Err(_) => bad(problems, "extKeyUsage"),
            },
            oids::SUBJECT_ALT_NAME => match SubjectAltName::from_der(value) {
                Ok(v) => {
                    if v.0.is_empty() {
                        problems.push((
                            CheckKind::SubjectAltName,
                            "subjectAltName lists no name".into(),
                        ));
                    }
                    out.subject_alt_name = Some(Ext {
                        value: v.0,
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
                            value: v.as_bytes().to_vec(),
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
                match AuthorityKeyIdentifier::from_der(value) {
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
            | SCT_LIST
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
