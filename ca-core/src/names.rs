//! Subject alternative names: parsing, validation and their X.509 form;
//! subjects (text, checks, RFC 4514 display) are in `subject.rs`.

use std::fmt;
use std::net::IpAddr;

use der::asn1::{Ia5String, OctetString};
use x509_cert::ext::pkix::name::GeneralName;

mod subject;
pub use subject::{
    check_subject, common_name_subject, parse_subject, rfc4514, MAX_COMMON_NAME_LEN,
    MAX_SUBJECT_DER_LEN,
};

/// Longest DNS name accepted (RFC 1035 presentation form without the root dot).
pub const MAX_DNS_NAME_LEN: usize = 253;
/// Longest email address accepted.
pub const MAX_EMAIL_LEN: usize = 254;

#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum NameError {
    #[error("empty name")]
    Empty,
    #[error("name {0:?} is longer than {MAX_DNS_NAME_LEN} characters")]
    TooLong(String),
    #[error("DNS name {name:?} is not valid: {why}")]
    BadDnsName { name: String, why: &'static str },
    #[error("email address {0:?} is not valid")]
    BadEmail(String),
    #[error("subject name does not parse: {0}")]
    BadSubject(String),
    #[error("IP address {0} is an IPv4-mapped IPv6 address: ask for the IPv4 address itself")]
    Ipv4MappedIpv6(String),
}

/// IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) are refused: they name an
/// IPv4 host while slipping past IPv4 ranges in policies and name constraints.
pub fn is_ipv4_mapped(ip: &IpAddr) -> bool {
    matches!(ip, IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some())
}

fn checked_ip(ip: IpAddr) -> Result<SanEntry, NameError> {
    if is_ipv4_mapped(&ip) {
        return Err(NameError::Ipv4MappedIpv6(ip.to_string()));
    }
    Ok(SanEntry::Ip(ip))
}

/// One subjectAltName entry of the kinds a TLS CA issues.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SanEntry {
    Dns(String),
    Ip(IpAddr),
    Email(String),
}

impl fmt::Display for SanEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SanEntry::Dns(d) => write!(f, "DNS:{d}"),
            SanEntry::Ip(ip) => write!(f, "IP:{ip}"),
            SanEntry::Email(e) => write!(f, "email:{e}"),
        }
    }
}

fn shorten(s: &str) -> String {
    s.chars().take(80).collect()
}

/// Check a DNS name as it may appear in a certificate: LDH labels of 1..=63
/// characters, no leading or trailing hyphen, at most 253 characters, and a
/// wildcard only as the whole leftmost label of a name with at least two more
/// labels (`*.example.internal`, not `*.internal` or `a*.example.com`).
/// Returns the name in lower case.
pub fn validate_dns_name(name: &str) -> Result<String, NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > MAX_DNS_NAME_LEN {
        return Err(NameError::TooLong(shorten(name)));
    }
    let bad = |why| NameError::BadDnsName {
        name: shorten(name),
        why,
    };
    let lower = name.to_ascii_lowercase();
    let labels: Vec<&str> = lower.split('.').collect();
    for (i, label) in labels.iter().enumerate() {
        if label.is_empty() {
            return Err(bad("empty label"));
        }
        if label.len() > 63 {
            return Err(bad("label longer than 63 characters"));
        }
        if *label == "*" {
            if i != 0 {
                return Err(bad("wildcard is allowed only as the leftmost label"));
            }
            if labels.len() < 3 {
                return Err(bad("wildcard needs at least two labels after it"));
            }
            continue;
        }
        if label.contains('*') {
            return Err(bad("wildcard must be a whole label"));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(bad("labels may contain only letters, digits and hyphens"));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(bad("labels may not start or end with a hyphen"));
        }
        // RFC 5891 4.2.3.1: `??--` is reserved; only `xn--` (an A-label) is used.
        if label.get(2..4) == Some("--") {
            if !label.starts_with("xn--") {
                return Err(bad(
                    "labels with -- in the third and fourth places are reserved",
                ));
            }
            check_a_label(label).map_err(bad)?;
        }
    }
    if labels
        .last()
        .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(bad("the last label may not be all digits"));
    }
    Ok(lower)
}

/// An A-label (`xn--` + Punycode) must decode to a valid U-label: real
/// Punycode in its one canonical spelling, not pure ASCII, valid under UTS 46
/// (the `idna` crate: no control characters, bidi and joiner rules hold), and
/// free of the symbols, pictographs and private-use characters IDNA2008 leaves
/// DISALLOWED, which UTS 46 alone would let through (emoji domains).
fn check_a_label(label: &str) -> Result<(), &'static str> {
    let encoded = &label[4..];
    let Some(decoded) = idna::punycode::decode_to_string(encoded) else {
        return Err("the xn-- label is not valid Punycode");
    };
    if decoded.is_ascii() {
        return Err("the xn-- label encodes only ASCII");
    }
    if idna::punycode::encode_str(&decoded).as_deref() != Some(encoded) {
        return Err("the xn-- label is not the canonical encoding of its characters");
    }
    if decoded.chars().any(idna2008_disallowed_symbol) {
        return Err("the xn-- label holds a symbol, pictograph or private-use character");
    }
    let (_, valid) = idna::domain_to_unicode(label);
    if valid.is_err() {
        return Err("the xn-- label does not decode to a valid U-label");
    }
    Ok(())
}

/// Code points in blocks of symbols, pictographs, variation selectors and
/// private use: none is a letter, mark or digit, so IDNA2008 disallows them.
fn idna2008_disallowed_symbol(c: char) -> bool {
    if c.is_alphanumeric() {
        return false;
    }
    matches!(u32::from(c),
        0x2000..=0x2BFF      // punctuation, symbols, arrows, math, dingbats
        | 0x3000..=0x303F    // CJK symbols and punctuation
        | 0xE000..=0xF8FF    // private use
        | 0xFE00..=0xFE0F    // variation selectors
        | 0xFE30..=0xFE4F    // CJK compatibility forms
        | 0xFF00..=0xFF0F    // fullwidth punctuation
        | 0x1F000..=0x1FAFF  // emoji and pictographs
        | 0xE0000..=0xE007F  // tags
        | 0xF0000..=0x10FFFF // supplementary private use
    ) || c.is_control()
}

/// Check an email address for an rfc822Name SAN (a pragmatic subset: ASCII
/// local part without spaces, a valid DNS domain).
pub fn validate_email(addr: &str) -> Result<String, NameError> {
    let bad = || NameError::BadEmail(shorten(addr));
    if addr.len() > MAX_EMAIL_LEN {
        return Err(bad());
    }
    let (local, domain) = addr.rsplit_once('@').ok_or_else(bad)?;
    if local.is_empty()
        || local.len() > 64
        || !local.bytes().all(|b| b.is_ascii_graphic() && b != b'@')
    {
        return Err(bad());
    }
    let domain = validate_dns_name(domain).map_err(|_| bad())?;
    if domain.starts_with('*') {
        return Err(bad());
    }
    Ok(format!("{local}@{domain}"))
}

impl SanEntry {
    /// Parse a user-supplied name: `DNS:x`, `IP:x`, `email:x`, or a bare value
    /// (an IP address if it parses as one, an email if it has an `@`, else DNS).
    /// The bare value, without the `DNS:` / `IP:` / `email:` prefix.
    pub fn value(&self) -> String {
        match self {
            SanEntry::Dns(d) | SanEntry::Email(d) => d.clone(),
            SanEntry::Ip(ip) => ip.to_string(),
        }
    }

    pub fn parse(input: &str) -> Result<SanEntry, NameError> {
        let input = input.trim();
        let lower = input.to_ascii_lowercase();
        if let Some(rest) = lower.strip_prefix("dns:") {
            return Ok(SanEntry::Dns(validate_dns_name(rest)?));
        }
        if lower.starts_with("ip:") {
            let rest = &input[3..];
            let ip = rest.parse::<IpAddr>().map_err(|_| NameError::BadDnsName {
                name: shorten(rest),
                why: "not an IP address",
            })?;
            return checked_ip(ip);
        }
        if lower.starts_with("email:") {
            return Ok(SanEntry::Email(validate_email(&input[6..])?));
        }
        if let Ok(ip) = input.parse::<IpAddr>() {
            return checked_ip(ip);
        }
        if input.contains('@') {
            return Ok(SanEntry::Email(validate_email(input)?));
        }
        Ok(SanEntry::Dns(validate_dns_name(input)?))
    }

    /// Re-validate an entry (for entries that did not come through `parse`).
    pub fn validated(self) -> Result<SanEntry, NameError> {
        match self {
            SanEntry::Dns(d) => Ok(SanEntry::Dns(validate_dns_name(&d)?)),
            SanEntry::Email(e) => Ok(SanEntry::Email(validate_email(&e)?)),
            SanEntry::Ip(ip) => checked_ip(ip),
        }
    }

    pub fn to_general_name(&self) -> Result<GeneralName, der::Error> {
        Ok(match self {
            SanEntry::Dns(d) => GeneralName::DnsName(Ia5String::new(d)?),
            SanEntry::Email(e) => GeneralName::Rfc822Name(Ia5String::new(e)?),
            SanEntry::Ip(IpAddr::V4(v4)) => {
                GeneralName::IpAddress(OctetString::new(v4.octets().to_vec())?)
            }
            SanEntry::Ip(IpAddr::V6(v6)) => {
                GeneralName::IpAddress(OctetString::new(v6.octets().to_vec())?)
            }
        })
    }

    /// The entry a GeneralName holds, if it is one of the kinds we issue.
    /// DNS names and emails are returned as found (not re-validated).
    pub fn from_general_name(name: &GeneralName) -> Option<SanEntry> {
        match name {
            GeneralName::DnsName(d) => Some(SanEntry::Dns(d.to_string())),
            GeneralName::Rfc822Name(e) => Some(SanEntry::Email(e.to_string())),
            GeneralName::IpAddress(o) => ip_from_bytes(o.as_bytes()).map(SanEntry::Ip),
            _ => None,
        }
    }
}

pub(crate) fn ip_from_bytes(b: &[u8]) -> Option<IpAddr> {
    match b.len() {
        4 => <[u8; 4]>::try_from(b).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(b).ok().map(IpAddr::from),
        _ => None,
    }
}

/// An IP subnet for name constraints, e.g. `10.0.0.0/8` or `fd00::/8`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpNet {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl IpNet {
    /// Address and mask bytes as name constraints encode them (RFC 5280 4.2.1.10).
    pub fn to_constraint_bytes(&self) -> Vec<u8> {
        let addr: Vec<u8> = match self.addr {
            IpAddr::V4(a) => a.octets().to_vec(),
            IpAddr::V6(a) => a.octets().to_vec(),
        };
        let mut mask = vec![0u8; addr.len()];
        for (i, m) in mask.iter_mut().enumerate() {
            let bits = (self.prefix as usize).saturating_sub(i * 8).min(8);
            *m = if bits == 0 { 0 } else { 0xffu8 << (8 - bits) };
        }
        let masked: Vec<u8> = addr.iter().zip(&mask).map(|(a, m)| a & m).collect();
        [masked, mask].concat()
    }

    pub fn contains(&self, ip: &IpAddr) -> bool {
        let c = self.to_constraint_bytes();
        ip_in_constraint(ip, &c)
    }
}

/// Whether `ip` lies in an encoded address+mask constraint.
pub(crate) fn ip_in_constraint(ip: &IpAddr, constraint: &[u8]) -> bool {
    let bytes: Vec<u8> = match ip {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    };
    if constraint.len() != bytes.len() * 2 {
        return false;
    }
    let (net, mask) = constraint.split_at(bytes.len());
    bytes
        .iter()
        .zip(net)
        .zip(mask)
        .all(|((b, n), m)| b & m == n & m)
}

impl std::str::FromStr for IpNet {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, NameError> {
        let bad = || NameError::BadDnsName {
            name: shorten(s),
            why: "not an IP subnet like 10.0.0.0/8",
        };
        let (addr, prefix) = s.split_once('/').ok_or_else(bad)?;
        let addr: IpAddr = addr.parse().map_err(|_| bad())?;
        let prefix: u8 = prefix.parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if prefix > max {
            return Err(bad());
        }
        Ok(IpNet { addr, prefix })
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the 10-minute fuzz campaign (target `names`): x509-cert's
    /// parser ends a component at `\\\\\\,` (an escaped backslash, then an
    /// escaped comma, per RFC 4514), so text the textual scan had read as one
    /// CN value reached it as a second attribute with a numeric type whose arc
    /// overflows inside const-oid (a panic). Subjects are now tokenised here,
    /// per RFC 4514: that input is one CN value, and numeric types are refused.
    #[test]
    fn the_fuzzed_subject_is_one_common_name_and_numeric_types_are_refused() {
        let crash = std::str::from_utf8(&[
            0x43, 0x4e, 0x3d, 0x7d, 0x70, 0x34, 0x3d, 0x5c, 0x5c, 0x5c, 0x2c, 0x30, 0x2e, 0x36,
            0x2e, 0x36, 0x30, 0x36, 0x36, 0x30, 0x31, 0x31, 0x31, 0x31, 0x31, 0x31, 0x31, 0x31,
            0x31, 0x31, 0x31, 0x31, 0x31, 0x31, 0x31, 0x31, 0x31, 0x31, 0x31, 0x31, 0x31, 0x31,
            0x31, 0x31, 0x31, 0x31, 0x3d, 0x3d, 0x27, 0x5c, 0x5c, 0x5c, 0x2c, 0x30, 0x2e, 0x2e,
            0x36, 0x30, 0x36, 0x36, 0x30, 0x3d, 0x3d,
        ])
        .unwrap();
        let name = parse_subject(crash).unwrap();
        let atvs: Vec<_> = name.0.iter().flat_map(|rdn| rdn.0.iter()).collect();
        assert_eq!(atvs.len(), 1);
        assert_eq!(atvs[0].oid, crate::oids::AT_COMMON_NAME);
        // What the fuzz target did next no longer panics.
        let _ = crate::policy::RequestedSubject::from_name(&name);
        let _ = name.to_string();
        // An escaped backslash then a real comma: a second component, whose
        // numeric type is refused.
        assert!(parse_subject("CN=a\\\\,2.5.4.99=x").is_err());
        assert!(parse_subject("CN=a\\\\,0.6.6066011111111111111111111=x").is_err());
        // Ordinary subjects, escapes included, still parse.
        let ok = parse_subject("CN=a\\,b,O=Example\\, Inc.,OU=x+UID=7").unwrap();
        assert_eq!(ok.0.len(), 3);
    }

    /// Where x509-cert's parser reads a subject correctly, ours builds the
    /// very same DER: the value types per attribute, the RDN order, escapes.
    #[test]
    fn subjects_parse_as_x509_cert_parses_them() {
        use der::Encode;
        use std::str::FromStr;
        for text in [
            "CN=www.example.internal",
            "CN=bob.example,O=Bob's Bakery",
            "C=US,ST=California,L=San Francisco,O=Example\\, Inc.,OU=Web,CN=w.example",
            "CN=a\\+b,O=x+OU=y",
            "DC=example,DC=internal,UID=jdoe,SERIALNUMBER=1234",
            "CN=caf\\C3\\A9",
            "CN=\\#not hex,O=a\\;b\\<c\\>\\=d\\\"e\\\\f",
            "cn=lower.case,o=Org",
        ] {
            let ours = parse_subject(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            let theirs = x509_cert::name::Name::from_str(text).unwrap();
            assert_eq!(ours.to_der().unwrap(), theirs.to_der().unwrap(), "{text}");
        }
        for bad in [
            "CN=",
            "CN",
            "=x",
            "XX=y",
            "CN=#0403",
            "CN=a\\q",
            "CN=a\\4",
            "2.5.4.3=x",
        ] {
            assert!(parse_subject(bad).is_err(), "{bad} was accepted");
        }
    }

    /// Security review L7: A-labels that do not decode to a valid U-label.
    #[test]
    fn a_labels_must_decode_to_valid_u_labels() {
        for bad in [
            "xn--0.example.com",    // decodes to a control character
            "xn--a.example.com",    // likewise
            "xn--ls8h.example.com", // an emoji
            "xn--zz.example.com",   // not Punycode at all... or not canonical
            "xn--abc-.example.com", // trailing hyphen
            "ab--c.example.com",    // reserved -- without xn
        ] {
            assert!(validate_dns_name(bad).is_err(), "{bad} was accepted");
        }
        for good in [
            "xn--bcher-kva.example",     // bücher
            "xn--mnchen-3ya.de",         // münchen
            "xn--fiqs8s.example",        // 中国
            "xn--e1afmkfd.example",      // пример
            "xn--11b5bs3a9aj6g.example", // हिन्दी-ish: Devanagari with virama
        ] {
            assert!(validate_dns_name(good).is_ok(), "{good} was refused");
        }
    }

    #[test]
    fn ipv4_mapped_ipv6_addresses_are_refused() {
        for text in [
            "::ffff:192.168.1.1",
            "IP:::ffff:10.0.0.1",
            "::FFFF:c0a8:0101",
        ] {
            assert!(
                matches!(SanEntry::parse(text), Err(NameError::Ipv4MappedIpv6(_))),
                "{text}"
            );
        }
        let mapped = SanEntry::Ip("::ffff:192.168.1.1".parse().unwrap());
        assert!(mapped.validated().is_err());
        // Plain IPv6 and IPv4 addresses, and the IPv4-compatible form, stay valid.
        for text in ["::1", "2001:db8::1", "192.168.1.1"] {
            assert!(SanEntry::parse(text).is_ok(), "{text}");
        }
    }

    #[test]
    fn a_common_name_subject_keeps_the_name_as_given() {
        for cn in ["a.example", "weird,name+x\\y", "ünï.example"] {
            let name = common_name_subject(cn).expect("subject");
            assert_eq!(crate::csr::common_name(&name).as_deref(), Some(cn));
            assert_eq!(name.0.len(), 1, "one RDN");
        }
        assert!(common_name_subject(&"a".repeat(65)).is_err(), "CN over 64");
        assert!(
            common_name_subject("bad\u{1}").is_err(),
            "control character"
        );
    }

    #[test]
    fn dns_names() {
        assert_eq!(
            validate_dns_name("Foo.Example.com").as_deref(),
            Ok("foo.example.com")
        );
        assert!(validate_dns_name("*.svc.internal").is_ok());
        assert!(validate_dns_name("localhost").is_ok());
        for bad in [
            "", "a..b", "-a.com", "a-.com", "a_b.com", "*.com", "a.*.com", "f*.a.com", "a.123",
            "a b.com",
        ] {
            assert!(validate_dns_name(bad).is_err(), "{bad} accepted");
        }
        assert!(validate_dns_name(&"a".repeat(64)).is_err());
        assert!(validate_dns_name(&format!("{}.com", "a.".repeat(130))).is_err());
    }

    #[test]
    fn san_parse() {
        assert_eq!(
            SanEntry::parse("127.0.0.1"),
            Ok(SanEntry::Ip("127.0.0.1".parse().unwrap()))
        );
        assert_eq!(
            SanEntry::parse("::1"),
            Ok(SanEntry::Ip("::1".parse().unwrap()))
        );
        assert_eq!(
            SanEntry::parse("DNS:Bob.example"),
            Ok(SanEntry::Dns("bob.example".into()))
        );
        assert_eq!(
            SanEntry::parse("bob@example.com"),
            Ok(SanEntry::Email("bob@example.com".into()))
        );
        assert!(SanEntry::parse("ip:nope").is_err());
        assert!(SanEntry::parse("../etc/passwd").is_err());
    }

    #[test]
    fn subject_text() {
        assert!(parse_subject("CN=bob.example,O=Example").is_ok());
        assert!(parse_subject("cn=bob,ou=a+ou=b,dc=example").is_ok());
        assert!(parse_subject("CN=a\\,b,O=x").is_ok());
        for bad in [
            "2.4294967296=x",
            "2.99999999999999999999999=x",
            "CN",
            "",
            "CN=a,",
            "X=1",
            "CN=a,2.5.4.3=b",
        ] {
            assert!(parse_subject(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn subjects() {
        use std::str::FromStr;
        let ok = x509_cert::name::Name::from_str("CN=bob.example,O=Example").unwrap();
        assert!(check_subject(&ok).is_ok());
        let long = x509_cert::name::Name::from_str(&format!("CN={}", "a".repeat(65))).unwrap();
        assert!(check_subject(&long).is_err());
        let ctl = x509_cert::name::Name::from_str("CN=a\u{7}b").unwrap();
        assert!(check_subject(&ctl).is_err());
    }

    #[test]
    fn constraints() {
        let net: IpNet = "10.0.0.0/8".parse().unwrap();
        assert!(net.contains(&"10.1.2.3".parse().unwrap()));
        assert!(!net.contains(&"11.1.2.3".parse().unwrap()));
        assert!(!net.contains(&"::1".parse().unwrap()));
    }
}
