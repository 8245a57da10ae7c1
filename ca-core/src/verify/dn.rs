//! Distinguished-name comparison (RFC 5280 7.1, simplified): in place on the
//! borrowed names where it can decide, on their normalised forms otherwise.

use const_oid::ObjectIdentifier;
use der::Tagged;
use x509_cert::name::Name;

use super::lean::{text_of, AttributeRef, LeanName};

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
pub(super) fn lean_names_compare(a: &LeanName<'_>, b: &LeanName<'_>) -> Option<bool> {
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

/// Attribute values of type `oid` in `name`.
pub(crate) fn attrs(name: &Name, oid: ObjectIdentifier) -> Vec<&der::Any> {
    name.0
        .iter()
        .flat_map(|rdn| rdn.0.iter())
        .filter(|atv| atv.oid == oid)
        .map(|atv| &atv.value)
        .collect()
}
