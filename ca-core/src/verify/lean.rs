//! The certificate as validation reads it: x509-cert's structure with the
//! names and extensions left where they lie in the input, each walked by hand
//! under der's rules so that exactly what der accepts is accepted.

use const_oid::ObjectIdentifier;
use der::Tagged;
use spki::SubjectPublicKeyInfoRef;
use x509_cert::certificate::Version;
use x509_cert::name::Name;
use x509_cert::time::{Time, Validity};

use crate::der_util::{raw_cert, RawCert};

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

impl<'a> LeanCertificate<'a> {
    /// `der` decoded as der's `Decode` decodes it, with the raw slices
    /// signatures and name comparisons use: by hand when it has the common
    /// shape ([`super::lean_shape`]), else by der, which then decides.
    pub(crate) fn decode_with_raw(der: &'a [u8]) -> Result<(Self, RawCert<'a>), String> {
        if let Some(read) = super::lean_shape::certificate_and_raw(der) {
            return Ok(read);
        }
        let raw = raw_cert(der).ok_or("not a DER certificate")?;
        let certificate =
            <Self as der::Decode>::from_der(der).map_err(|e| format!("does not decode: {e}"))?;
        Ok((certificate, raw))
    }

    /// [`Self::decode_with_raw`] without the slices, and with der's error.
    #[cfg(any(test, feature = "fuzzing"))]
    pub(crate) fn decode(der: &'a [u8]) -> der::Result<Self> {
        match super::lean_shape::certificate(der) {
            Some(certificate) => Ok(certificate),
            None => <Self as der::Decode>::from_der(der),
        }
    }
}

/// x509-cert's `TbsCertificate`, borrowing as [`LeanCertificate`] does.
#[derive(Clone, Debug, der::Sequence)]
pub(crate) struct LeanTbsCertificate<'a> {
    #[asn1(context_specific = "0", default = "Default::default")]
    pub version: Version,
    pub serial_number: LeanSerial<'a>,
    pub signature: spki::AlgorithmIdentifierOwned,
    pub issuer: LeanName<'a>,
    pub validity: LeanValidity,
    pub subject: LeanName<'a>,
    pub subject_public_key_info: SubjectPublicKeyInfoRef<'a>,
    #[asn1(context_specific = "1", tag_mode = "IMPLICIT", optional = "true")]
    pub issuer_unique_id: Option<der::asn1::BitStringRef<'a>>,
    #[asn1(context_specific = "2", tag_mode = "IMPLICIT", optional = "true")]
    pub subject_unique_id: Option<der::asn1::BitStringRef<'a>>,
    #[asn1(context_specific = "3", tag_mode = "EXPLICIT", optional = "true")]
    pub extensions: Option<LeanExtensions<'a>>,
}

/// x509-cert's `SerialNumber` (its RFC 5280 profile), borrowed: a canonical
/// INTEGER of at most 21 octets (x509-cert allows the 21st for a sign octet).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LeanSerial<'a>(der::asn1::IntRef<'a>);

impl<'a> LeanSerial<'a> {
    /// x509-cert's `SerialNumber::MAX_DECODE_LEN`.
    const MAX_LEN: usize = 21;

    /// An INTEGER's contents, under the rules der and x509-cert read one by.
    pub(super) fn new(contents: &'a [u8]) -> der::Result<Self> {
        if contents.len() > Self::MAX_LEN {
            return Err(der::Tag::Integer.value_error());
        }
        // IntRef checks what der's `Int` checks: not empty, no needless
        // leading 00 or FF.
        let int = <der::asn1::IntRef<'a> as der::DecodeValue>::decode_value(
            &mut der::SliceReader::new(contents)?,
            der::Header::new(der::Tag::Integer, contents.len())?,
        )?;
        Ok(LeanSerial(int))
    }

    pub(crate) fn as_bytes(&self) -> &'a [u8] {
        self.0.as_bytes()
    }
}

impl der::FixedTag for LeanSerial<'_> {
    const TAG: der::Tag = der::Tag::Integer;
}

impl<'a> der::DecodeValue<'a> for LeanSerial<'a> {
    fn decode_value<R: der::Reader<'a>>(reader: &mut R, header: der::Header) -> der::Result<Self> {
        LeanSerial::new(reader.read_slice(header.length)?)
    }
}

impl der::EncodeValue for LeanSerial<'_> {
    fn value_len(&self) -> der::Result<der::Length> {
        self.0.value_len()
    }

    fn encode_value(&self, writer: &mut impl der::Writer) -> der::Result<()> {
        self.0.encode_value(writer)
    }
}

/// x509-cert's `Validity`, each time kept as seconds since the epoch: what
/// validation compares (der's `Time` makes its calendar fields from the
/// seconds it has just computed from them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LeanValidity {
    pub not_before: LeanTime,
    pub not_after: LeanTime,
}

/// A `Time`: seconds since the epoch, and whether it was a GeneralizedTime.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LeanTime {
    pub unix: u64,
    pub generalized: bool,
}

impl From<&Time> for LeanTime {
    fn from(t: &Time) -> Self {
        LeanTime {
            unix: t.to_unix_duration().as_secs(),
            generalized: matches!(t, Time::GeneralTime(_)),
        }
    }
}

impl LeanTime {
    fn to_time(self) -> der::Result<Time> {
        let d = std::time::Duration::from_secs(self.unix);
        Ok(if self.generalized {
            Time::GeneralTime(der::asn1::GeneralizedTime::from_unix_duration(d)?)
        } else {
            Time::UtcTime(der::asn1::UtcTime::from_unix_duration(d)?)
        })
    }
}

impl der::FixedTag for LeanValidity {
    const TAG: der::Tag = der::Tag::Sequence;
}

impl<'a> der::DecodeValue<'a> for LeanValidity {
    fn decode_value<R: der::Reader<'a>>(reader: &mut R, header: der::Header) -> der::Result<Self> {
        let v = Validity::decode_value(reader, header)?;
        Ok(LeanValidity {
            not_before: (&v.not_before).into(),
            not_after: (&v.not_after).into(),
        })
    }
}

impl LeanValidity {
    fn to_validity(self) -> der::Result<Validity> {
        Ok(Validity {
            not_before: self.not_before.to_time()?,
            not_after: self.not_after.to_time()?,
        })
    }
}

impl der::EncodeValue for LeanValidity {
    fn value_len(&self) -> der::Result<der::Length> {
        self.to_validity()?.value_len()
    }

    fn encode_value(&self, writer: &mut impl der::Writer) -> der::Result<()> {
        self.to_validity()?.encode_value(writer)
    }
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
        LeanExtensions::walked(raw).map_err(|kind| reader.error(kind))
    }
}

impl<'a> LeanExtensions<'a> {
    /// The SEQUENCE OF's contents `raw`, read by [`walk_extensions`].
    pub(super) fn walked(raw: &'a [u8]) -> Result<Self, der::ErrorKind> {
        Ok(LeanExtensions {
            list: walk_extensions(raw)?,
            raw,
        })
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
            crate::oids::from_contents(oid.content).map_err(|_| ErrorKind::OidMalformed)?;
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
        LeanName::walked(contents).map_err(|kind| reader.error(kind))
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
    /// The SEQUENCE's `contents`, checked by [`walk_name`].
    pub(super) fn walked(contents: &'a [u8]) -> Result<Self, der::ErrorKind> {
        walk_name(contents)?;
        Ok(LeanName { contents })
    }

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
    pub(super) fn rdns(&self) -> impl Iterator<Item = LeanRdn<'a>> {
        Elements(self.contents).map(|set| LeanRdn(set.content))
    }

    /// The attributes of type `oid`, in the order a decoded `Name` holds them;
    /// `None` when an RDN holds several attributes, whose order that decoding sets.
    pub(super) fn attributes_of_type(
        &self,
        oid: ObjectIdentifier,
    ) -> Option<Vec<AttributeRef<'a>>> {
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
pub(super) struct LeanRdn<'a>(&'a [u8]);

impl<'a> LeanRdn<'a> {
    /// Its only attribute, when it holds exactly one.
    pub(super) fn single(&self) -> Option<AttributeRef<'a>> {
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
            crate::oids::from_contents(oid.content).map_err(|_| ErrorKind::OidMalformed)?;
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

/// The text of a value of `tag`, when that is a string type names use.
pub(super) fn text_of(tag: u8, value: &[u8]) -> Option<&str> {
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
