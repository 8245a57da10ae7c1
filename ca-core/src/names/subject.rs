//! Subjects: written as text and parsed, checked, and shown as RFC 4514 text.

use super::NameError;

/// Attribute types accepted in subjects written as text (RFC 4519 short
/// names), and how each value is encoded: as x509-cert encodes them, so
/// subjects look as they always did.
const SUBJECT_ATTRIBUTES: &[(&str, const_oid::ObjectIdentifier, ValueKind)] = &[
    (
        "CN",
        const_oid::ObjectIdentifier::new_unwrap("2.5.4.3"),
        ValueKind::Utf8,
    ),
    (
        "O",
        const_oid::ObjectIdentifier::new_unwrap("2.5.4.10"),
        ValueKind::Utf8,
    ),
    (
        "OU",
        const_oid::ObjectIdentifier::new_unwrap("2.5.4.11"),
        ValueKind::Utf8,
    ),
    (
        "C",
        const_oid::ObjectIdentifier::new_unwrap("2.5.4.6"),
        ValueKind::Printable,
    ),
    (
        "ST",
        const_oid::ObjectIdentifier::new_unwrap("2.5.4.8"),
        ValueKind::Utf8,
    ),
    (
        "L",
        const_oid::ObjectIdentifier::new_unwrap("2.5.4.7"),
        ValueKind::Utf8,
    ),
    (
        "STREET",
        const_oid::ObjectIdentifier::new_unwrap("2.5.4.9"),
        ValueKind::Utf8,
    ),
    (
        "DC",
        const_oid::ObjectIdentifier::new_unwrap("0.9.2342.19200300.100.1.25"),
        ValueKind::Ia5,
    ),
    (
        "UID",
        const_oid::ObjectIdentifier::new_unwrap("0.9.2342.19200300.100.1.1"),
        ValueKind::Utf8,
    ),
    (
        "SERIALNUMBER",
        const_oid::ObjectIdentifier::new_unwrap("2.5.4.5"),
        ValueKind::Printable,
    ),
];

#[derive(Clone, Copy)]
enum ValueKind {
    Utf8,
    Printable,
    Ia5,
}

/// Parse a subject written as RFC 4514 text (`CN=www.example.internal,O=Example`),
/// with the well-known attribute names only, then check it with
/// [`check_subject`]. The text is tokenised here rather than by x509-cert,
/// whose parser reads escapes differently (`\\\,` ends a component there)
/// and accepts numeric types whose arcs overflow inside const-oid.
pub fn parse_subject(text: &str) -> Result<x509_cert::name::Name, NameError> {
    use der::asn1::{Ia5StringRef, PrintableStringRef, SetOfVec, Utf8StringRef};
    use x509_cert::attr::AttributeTypeAndValue;
    use x509_cert::name::{RdnSequence, RelativeDistinguishedName};
    let bad = |why: String| NameError::BadSubject(why);
    if text.len() > MAX_SUBJECT_DER_LEN {
        return Err(bad("longer than 1 KiB".into()));
    }
    let names = || {
        SUBJECT_ATTRIBUTES
            .iter()
            .map(|(n, _, _)| *n)
            .collect::<Vec<_>>()
            .join(", ")
    };
    // RDNs in text order: separated by unescaped ',', their attributes by '+'.
    let mut rdns: Vec<Vec<AttributeTypeAndValue>> = vec![Vec::new()];
    let mut chars = text.chars().peekable();
    loop {
        let mut attr_type = String::new();
        loop {
            match chars.next() {
                Some('=') => break,
                Some(c) if c == ',' || c == '+' || c == '\\' => {
                    return Err(bad(
                        "expected TYPE=value components, e.g. CN=www.example.internal,O=Example"
                            .into(),
                    ))
                }
                Some(c) => attr_type.push(c),
                None => {
                    return Err(bad(
                        "expected TYPE=value components, e.g. CN=www.example.internal,O=Example"
                            .into(),
                    ))
                }
            }
        }
        let wanted = attr_type.trim().to_ascii_uppercase();
        let Some((_, oid, kind)) = SUBJECT_ATTRIBUTES.iter().find(|(n, _, _)| *n == wanted) else {
            return Err(bad(format!(
                "attribute type {:?} is not one of {}",
                attr_type.trim().chars().take(20).collect::<String>(),
                names()
            )));
        };
        // The value, unescaped: `\` and a special character, or `\` and two
        // hex digits (one octet of the UTF-8 value).
        let mut value: Vec<u8> = Vec::new();
        let mut end = None;
        while let Some(c) = chars.next() {
            match c {
                ',' | '+' => {
                    end = Some(c);
                    break;
                }
                '\\' => match chars.next() {
                    Some(e @ (',' | '+' | '"' | '\\' | '<' | '>' | ';' | '=' | ' ' | '#')) => {
                        let mut buf = [0u8; 4];
                        value.extend_from_slice(e.encode_utf8(&mut buf).as_bytes());
                    }
                    Some(h) if h.is_ascii_hexdigit() => {
                        let l = chars
                            .next()
                            .filter(char::is_ascii_hexdigit)
                            .ok_or_else(|| bad("an escape \\ needs two hex digits".into()))?;
                        let digit = |d: char| d.to_digit(16).unwrap_or(0) as u8;
                        value.push(digit(h) << 4 | digit(l));
                    }
                    _ => return Err(bad("a \\ escapes nothing it may escape".into())),
                },
                '#' if value.is_empty() => {
                    return Err(bad("hex-encoded (#) values are not accepted".into()))
                }
                c => {
                    let mut buf = [0u8; 4];
                    value.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
            }
        }
        let value = String::from_utf8(value).map_err(|_| bad("a value is not UTF-8".into()))?;
        if value.is_empty() {
            return Err(bad(format!("{wanted} has an empty value")));
        }
        let der_err = |e: der::Error| bad(format!("{wanted}: {e}"));
        let any = match kind {
            ValueKind::Utf8 => der::Any::from(Utf8StringRef::new(&value).map_err(der_err)?),
            ValueKind::Printable => {
                der::Any::from(PrintableStringRef::new(&value).map_err(der_err)?)
            }
            ValueKind::Ia5 => der::Any::from(Ia5StringRef::new(&value).map_err(der_err)?),
        };
        if let Some(rdn) = rdns.last_mut() {
            rdn.push(AttributeTypeAndValue {
                oid: *oid,
                value: any,
            });
        }
        match end {
            Some(',') => rdns.push(Vec::new()),
            Some(_) => {}
            None => break,
        }
    }
    // The text names the most specific RDN first; the sequence holds it last.
    let mut sequence = Vec::with_capacity(rdns.len());
    for rdn in rdns.into_iter().rev() {
        let set = SetOfVec::try_from(rdn).map_err(|e| bad(format!("a multi-valued RDN: {e}")))?;
        sequence.push(RelativeDistinguishedName::from(set));
    }
    let name = RdnSequence::from(sequence);
    check_subject(&name)?;
    Ok(name)
}

/// Longest common name (X.520 ub-common-name).
pub const MAX_COMMON_NAME_LEN: usize = 64;
/// Longest encoded subject accepted.
pub const MAX_SUBJECT_DER_LEN: usize = 1024;

/// A subject holding one common name, built as a value (no RFC 4514 text to
/// escape), and checked like any subject.
pub fn common_name_subject(cn: &str) -> Result<x509_cert::name::Name, NameError> {
    use der::asn1::{SetOfVec, Utf8StringRef};
    use x509_cert::attr::AttributeTypeAndValue;
    use x509_cert::name::{RdnSequence, RelativeDistinguishedName};
    let bad = |e: der::Error| NameError::BadSubject(e.to_string());
    let value = der::Any::from(Utf8StringRef::new(cn).map_err(bad)?);
    let atv = AttributeTypeAndValue {
        oid: crate::oids::AT_COMMON_NAME,
        value,
    };
    let rdn = RelativeDistinguishedName::from(SetOfVec::try_from(vec![atv]).map_err(bad)?);
    let name = RdnSequence::from(vec![rdn]);
    check_subject(&name)?;
    Ok(name)
}

/// Check a subject distinguished name as a certificate may carry it: every
/// attribute value a UTF8String, PrintableString or IA5String without control
/// characters, common names at most 64 characters, the whole at most 1 KiB.
pub fn check_subject(name: &x509_cert::name::Name) -> Result<(), NameError> {
    use der::asn1::{Ia5StringRef, PrintableStringRef, Utf8StringRef};
    use der::Encode;
    let bad = |why: &str| NameError::BadSubject(why.to_string());
    let len = name.encoded_len().map_err(|_| bad("does not encode"))?;
    if u32::from(len) as usize > MAX_SUBJECT_DER_LEN {
        return Err(bad("longer than 1 KiB"));
    }
    for atv in name.0.iter().flat_map(|rdn| rdn.0.iter()) {
        let value = atv
            .value
            .decode_as::<Utf8StringRef<'_>>()
            .map(|s| s.as_str().to_owned())
            .or_else(|_| {
                atv.value
                    .decode_as::<PrintableStringRef<'_>>()
                    .map(|s| s.as_str().to_owned())
            })
            .or_else(|_| {
                atv.value
                    .decode_as::<Ia5StringRef<'_>>()
                    .map(|s| s.as_str().to_owned())
            })
            .map_err(|_| bad("an attribute value is not a UTF8, Printable or IA5 string"))?;
        if value.is_empty() || value.chars().any(char::is_control) {
            return Err(bad("an attribute value is empty or has control characters"));
        }
        if atv.oid == crate::oids::AT_COMMON_NAME && value.chars().count() > MAX_COMMON_NAME_LEN {
            return Err(bad("common name longer than 64 characters"));
        }
    }
    Ok(())
}

/// `name` as RFC 4514 text, the same text as x509-cert's `Display` gives,
/// without its cost: that looks each attribute's name up by scanning the
/// whole OID database (about a tenth of a chain validation's time, and a
/// few percent of an issuance's, which shows the subject twice). Names are
/// looked up once per thread and attribute type here.
pub fn rfc4514(name: &x509_cert::name::Name) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    // RFC 4514 2.1: the last RDN first.
    for (i, rdn) in name.0.iter().rev().enumerate() {
        if i > 0 {
            out.push(',');
        }
        for (j, atv) in rdn.0.iter().enumerate() {
            if j > 0 {
                out.push('+');
            }
            let mark = out.len();
            match string_value(&atv.value) {
                Some(value) if push_attribute_name(&atv.oid, &mut out) => {
                    out.push('=');
                    escape_value(value, &mut out);
                }
                _ => {
                    out.truncate(mark);
                    // Unknown type or a non-string value: the OID and the
                    // value's DER in hex (RFC 4514 2.4).
                    let _ = write!(out, "{}=#", atv.oid);
                    if let Ok(der) = der::Encode::to_der(&atv.value) {
                        out.push_str(&crate::hex::encode(&der));
                    }
                }
            }
        }
    }
    out
}

/// The shortest name the OID database gives `oid`, upper-cased, pushed onto
/// `out`; false when it has none. Memoised per thread, for the OIDs the
/// database names only, so the memo stays as small as the database however
/// many unknown OIDs certificates bring.
fn push_attribute_name(oid: &const_oid::ObjectIdentifier, out: &mut String) -> bool {
    type Names = std::collections::HashMap<const_oid::ObjectIdentifier, String>;
    thread_local! {
        static NAMES: std::cell::RefCell<Names> = Default::default();
    }
    NAMES.with(|names| {
        let mut names = names.borrow_mut();
        if let Some(n) = names.get(oid) {
            out.push_str(n);
            return true;
        }
        let mut best: Option<&str> = None;
        for n in const_oid::db::DB.find_names_for_oid(*oid) {
            if best.is_none_or(|b| n.len() < b.len()) {
                best = Some(n);
            }
        }
        let Some(best) = best else {
            return false;
        };
        let name = best.to_ascii_uppercase();
        out.push_str(&name);
        names.insert(*oid, name);
        true
    })
}

/// The text of a directory string value, for the types x509-cert shows as text.
fn string_value(value: &der::asn1::Any) -> Option<&str> {
    use der::asn1::{Ia5StringRef, PrintableStringRef, TeletexStringRef, Utf8StringRef};
    match der::Tagged::tag(value) {
        der::Tag::PrintableString => PrintableStringRef::try_from(value).ok().map(|s| s.as_str()),
        der::Tag::Utf8String => Utf8StringRef::try_from(value).ok().map(|s| s.as_str()),
        der::Tag::Ia5String => Ia5StringRef::try_from(value).ok().map(|s| s.as_str()),
        der::Tag::TeletexString => TeletexStringRef::try_from(value).ok().map(|s| s.as_str()),
        _ => None,
    }
}

/// RFC 4514 2.4 escaping, as x509-cert does it.
fn escape_value(value: &str, out: &mut String) {
    use std::fmt::Write;
    let mut chars = value.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '#' if i == 0 => out.push_str("\\#"),
            ' ' if i == 0 || chars.peek().is_none() => out.push_str("\\ "),
            '"' | '+' | ',' | ';' | '<' | '>' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '\x00'..='\x1f' | '\x7f' => {
                let _ = write!(out, "\\{:02x}", c as u8);
            }
            _ => out.push(c),
        }
    }
}
