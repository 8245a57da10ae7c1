//! Name syntax and matching: DNS names (with browser wildcard rules), IP addresses
//! and email addresses, as presented in certificates and as expected by the caller.

use std::net::IpAddr;

/// Multi-label public suffixes on which a wildcard certificate must not match.
///
/// Browsers use the whole Public Suffix List; embedding it is out of scope here, so
/// this is the subset with the most traffic (single-label TLDs are covered by the
/// "at least two labels after the wildcard" rule). A wildcard directly under one of
/// these never matches.
const MULTI_LABEL_PUBLIC_SUFFIXES: &[&str] = &[
    "ac.jp",
    "ac.uk",
    "ac.nz",
    "co.in",
    "co.jp",
    "co.kr",
    "co.nz",
    "co.uk",
    "co.za",
    "com.ar",
    "com.au",
    "com.br",
    "com.cn",
    "com.hk",
    "com.mx",
    "com.my",
    "com.sg",
    "com.tr",
    "com.tw",
    "com.ua",
    "edu.au",
    "gov.au",
    "gov.uk",
    "ltd.uk",
    "ne.jp",
    "net.au",
    "net.cn",
    "net.nz",
    "nhs.uk",
    "or.jp",
    "org.au",
    "org.cn",
    "org.nz",
    "org.uk",
    "plc.uk",
    "sch.uk",
    "appspot.com",
    "azurewebsites.net",
    "blogspot.com",
    "cloudapp.net",
    "cloudfront.net",
    "elasticbeanstalk.com",
    "firebaseapp.com",
    "github.io",
    "gitlab.io",
    "herokuapp.com",
    "netlify.app",
    "pages.dev",
    "s3.amazonaws.com",
    "vercel.app",
    "web.app",
    "workers.dev",
];

/// Is `name` a syntactically valid DNS name (LDH labels, no trailing dot)? With
/// `allow_wildcard`, the first label may be exactly `*`.
pub(crate) fn is_valid_dns_name(name: &str, allow_wildcard: bool) -> bool {
    if name.is_empty() || name.len() > 253 {
        return false;
    }
    for (i, label) in name.split('.').enumerate() {
        if i == 0 && allow_wildcard && label == "*" {
            continue;
        }
        if !is_valid_label(label) {
            return false;
        }
    }
    // A lone "*" or "*.tld" is not a usable identifier either.
    if allow_wildcard && name.starts_with("*.") && name.split('.').count() < 3 {
        return false;
    }
    name != "*"
}

fn is_valid_label(label: &str) -> bool {
    let bytes = label.as_bytes();
    if bytes.is_empty() || bytes.len() > 63 {
        return false;
    }
    if bytes.first() == Some(&b'-') || bytes.last() == Some(&b'-') {
        return false;
    }
    bytes
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
}

/// Does the presented SAN dNSName `presented` match the reference `reference`?
/// Case-insensitive; a wildcard replaces exactly one whole leftmost label, needs
/// two or more labels after it and must not sit directly on a public suffix.
pub(crate) fn dns_name_matches(presented: &str, reference: &str) -> bool {
    // Valid names are ASCII, so ASCII case folding is all the folding there is.
    let reference = reference.strip_suffix('.').unwrap_or(reference);
    if !is_valid_dns_name(reference, false) || !is_valid_dns_name(presented, true) {
        return false;
    }
    match presented.strip_prefix("*.") {
        None => presented.eq_ignore_ascii_case(reference),
        Some(base) => {
            if MULTI_LABEL_PUBLIC_SUFFIXES
                .iter()
                .any(|suffix| suffix.eq_ignore_ascii_case(base))
            {
                return false;
            }
            match reference.split_once('.') {
                Some((first, rest)) => !first.is_empty() && rest.eq_ignore_ascii_case(base),
                None => false,
            }
        }
    }
}

/// Parse an iPAddress SAN entry (4 or 16 bytes).
pub(crate) fn ip_from_bytes(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => {
            let mut a = [0u8; 4];
            a.copy_from_slice(bytes);
            Some(IpAddr::from(a))
        }
        16 => {
            let mut a = [0u8; 16];
            a.copy_from_slice(bytes);
            Some(IpAddr::from(a))
        }
        _ => None,
    }
}

/// Is `addr` a syntactically valid mailbox (`local@domain`, one `@`, LDH domain)?
pub(crate) fn is_valid_email(addr: &str) -> bool {
    match addr.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.contains('@')
                && local.bytes().all(|b| b.is_ascii_graphic())
                && is_valid_dns_name(domain, false)
        }
        None => false,
    }
}

/// What is wrong with a leaf's subject commonName, judged against its SANs.
///
/// The CA/B Forum wants the CN to be one of the SANs verbatim. Many deployed
/// certificates carry an unrelated CN, which is harmless to a client that (like
/// this one) matches SANs only, so that alone is accepted. What is refused is a CN
/// built to be misread by clients that still look at it: an IP address written
/// non-canonically (hex, leading zeros, uppercase or uncompressed IPv6), a non-ASCII
/// (U-label) host name, a SAN differing only in case, a punycode name that is
/// not among the SANs, or a host name that is a sibling of a SAN.
///
/// The sibling rule is the narrow form of CA/B BR 7.1.4.3 that this validator
/// enforces: a CN naming another host of the same zone as a SAN
/// (`notinsan.example.com` beside `valid.example.com`), not covered by any SAN,
/// names a host the certificate was never issued for, under the same owner, which
/// is what a client that displays, logs or falls back to the CN would get wrong.
/// Applying BR 7.1.4.3 verbatim would also refuse the widespread unrelated-CN
/// certificates (`EE`, or a CN from another domain entirely) that SAN-only
/// matching makes harmless, and those stay accepted.
pub(crate) fn cn_problem(cn: &str, dns: &[&str], ips: &[IpAddr]) -> Option<String> {
    if dns.contains(&cn) {
        return None;
    }
    if let Some(ip) = lenient_ip(cn) {
        if ip.to_string() != cn {
            return Some(format!(
                "commonName {cn:?} is IP address {ip} written non-canonically"
            ));
        }
        return None;
    }
    if !cn.is_ascii() && cn.contains('.') {
        return Some(format!(
            "commonName {cn:?} is not an ASCII (A-label) host name"
        ));
    }
    if dns.iter().any(|d| d.eq_ignore_ascii_case(cn)) {
        return Some(format!("commonName {cn:?} differs from its SAN in case"));
    }
    if cn
        .split('.')
        .any(|l| l.len() > 4 && l.as_bytes()[..4].eq_ignore_ascii_case(b"xn--"))
    {
        return Some(format!("commonName {cn:?} is an IDN not among the SANs"));
    }
    if let Some(san) = sibling_san(cn, dns) {
        return Some(format!(
            "commonName {cn:?} is not among the SANs but is a sibling of SAN {san:?}"
        ));
    }
    let _ = ips;
    None
}

/// The SAN of which `cn` is a sibling host (same parent zone, below a registrable
/// domain), when no SAN covers `cn` itself. A wildcard CN (`*.example.com`)
/// names every host of its base zone, so it is a sibling of each of them.
fn sibling_san<'a>(cn: &str, dns: &[&'a str]) -> Option<&'a str> {
    let cn = cn.strip_suffix('.').unwrap_or(cn).to_ascii_lowercase();
    let labels: Vec<&str> = cn.split('.').collect();
    // Host-name shaped (underscores too, as some hosts use them); `*` leftmost only.
    let host_shaped = labels.iter().enumerate().all(|(i, l)| {
        (i == 0 && *l == "*")
            || (!l.is_empty()
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
    });
    if !host_shaped || dns.iter().any(|d| dns_name_matches(d, &cn)) {
        return None;
    }
    // A TLD or a public suffix is not one owner's zone: `a.com` and `b.com`
    // are unrelated.
    let owned_zone = |zone: String| {
        (zone.contains('.') && !MULTI_LABEL_PUBLIC_SUFFIXES.contains(&zone.as_str()))
            .then_some(zone)
    };
    let parent = |name: &str| name.split_once('.').map(|(_, p)| p.to_ascii_lowercase());
    let cn_zone = match cn.strip_prefix("*.") {
        Some(base) => owned_zone(base.to_string())?,
        None => owned_zone(parent(&cn)?)?,
    };
    dns.iter()
        .find(|d| {
            let d = d.strip_suffix('.').unwrap_or(d);
            !d.starts_with("*.") && parent(d).as_deref() == Some(cn_zone.as_str())
        })
        .copied()
}

/// Parse an IP address the way permissive resolvers do (inet_aton forms: hex or
/// zero-padded IPv4 parts; any-case, uncompressed IPv6).
fn lenient_ip(s: &str) -> Option<IpAddr> {
    if s.contains(':') {
        return s.parse::<std::net::Ipv6Addr>().ok().map(IpAddr::V6);
    }
    let parts: Vec<&str> = s.split('.').collect();
    if parts.is_empty() || parts.len() > 4 {
        return None;
    }
    let mut values = Vec::with_capacity(4);
    let mut hex_seen = false;
    for p in &parts {
        let v = if let Some(h) = p.strip_prefix("0x").or_else(|| p.strip_prefix("0X")) {
            hex_seen = true;
            u32::from_str_radix(h, 16).ok()?
        } else if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) {
            p.parse::<u32>().ok()?
        } else {
            return None;
        };
        values.push(v);
    }
    // A bare decimal number is a plausible name, not an address.
    if parts.len() != 4 && !hex_seen {
        return None;
    }
    let (last, init) = values.split_last()?;
    let mut addr: u32 = 0;
    for v in init {
        if *v > 255 {
            return None;
        }
        addr = (addr << 8) | v;
    }
    let remaining_bits = 8 * (4 - init.len() as u32);
    if remaining_bits < 32 && *last >= (1u32 << remaining_bits) {
        return None;
    }
    addr = if init.is_empty() {
        *last
    } else {
        (addr << remaining_bits) | last
    };
    Some(IpAddr::V4(std::net::Ipv4Addr::from(addr)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_syntax() {
        assert!(is_valid_dns_name("example.com", false));
        assert!(is_valid_dns_name("*.example.com", true));
        assert!(!is_valid_dns_name("*.example.com", false));
        assert!(!is_valid_dns_name("foo_bar.example.com", false));
        assert!(!is_valid_dns_name(".example.com", false));
        assert!(!is_valid_dns_name("ba*.example.com", true));
        assert!(!is_valid_dns_name("foo.*.example.com", true));
        assert!(!is_valid_dns_name("*", true));
        assert!(!is_valid_dns_name("*.com", true));
        assert!(!is_valid_dns_name("-a.example.com", false));
    }

    #[test]
    fn wildcard_matching() {
        assert!(dns_name_matches("*.example.com", "foo.example.com"));
        assert!(dns_name_matches("*.EXAMPLE.com", "Foo.example.com"));
        assert!(!dns_name_matches("*.example.com", "foo.bar.example.com"));
        assert!(!dns_name_matches("*.example.com", "example.com"));
        assert!(!dns_name_matches("ba*.example.com", "baz.example.com"));
        assert!(!dns_name_matches(
            "xn--*-1b3c148a.example.com",
            "xn--bliss-1b3c148a.example.com"
        ));
        assert!(!dns_name_matches("*.co.uk", "example.co.uk"));
        assert!(
            !dns_name_matches("*.CO.uk", "example.co.UK"),
            "suffixes in any case"
        );
        assert!(dns_name_matches("WWW.Example.com", "www.example.COM."));
        assert!(!dns_name_matches(
            "*.s3.amazonaws.com",
            "bucket.s3.amazonaws.com"
        ));
        assert!(!dns_name_matches("*.com", "example.com"));
        assert!(dns_name_matches("example.com", "example.com."));
        assert!(!dns_name_matches("example.com", "example2.com"));
        assert!(!dns_name_matches("abc.example.com", "example.com"));
    }

    #[test]
    fn email_syntax() {
        assert!(is_valid_email("foo@example.com"));
        assert!(!is_valid_email("invalid@address@example.com"));
        assert!(!is_valid_email("@example.com"));
        assert!(!is_valid_email("foo"));
    }

    #[test]
    fn cn_rules() {
        assert!(cn_problem("example.com", &["example.com"], &[]).is_none());
        assert!(cn_problem("other.example", &["example.com"], &[]).is_none());
        assert!(cn_problem("127.0.0.1", &["example.com"], &[]).is_none());
        assert!(cn_problem("EXAMPLE.com", &["example.com"], &[]).is_some());
        assert!(cn_problem("0:0:0:0:0:0:0:1", &[], &[]).is_some());
        assert!(cn_problem("2001:DB8::1", &[], &[]).is_some());
        assert!(cn_problem("0x7f000001", &[], &[]).is_some());
        assert!(cn_problem("127.000.000.001", &[], &[]).is_some());
        assert!(cn_problem("xn--nxasmq6b.com", &["xn--n3h.com"], &[]).is_some());
        assert!(cn_problem("test-測試.com", &["xn--test--wg5h0h.com"], &[]).is_some());
        assert!(cn_problem("EE", &["localhost"], &[]).is_none());
        // Sibling hosts of one zone are refused; parents, other zones, hosts
        // covered by a wildcard and siblings under a TLD or public suffix are not.
        let sans = ["valid.example.com", "another.example.com"];
        assert!(cn_problem("notinsan.example.com", &sans, &[]).is_some());
        assert!(cn_problem("example.com", &["foo.bar.example.com"], &[]).is_none());
        assert!(cn_problem("example.com", &["*.example.com"], &[]).is_none());
        assert!(cn_problem("foo.example.com", &["*.example.com"], &[]).is_none());
        assert!(cn_problem("bad.example.com", &["test.localhost"], &[]).is_none());
        assert!(cn_problem("a.com", &["b.com"], &[]).is_none());
        assert!(cn_problem("a.co.uk", &["b.co.uk"], &[]).is_none());
        // Spelling does not dodge it: case, a trailing dot, underscores, wildcards.
        assert!(cn_problem("NotInSan.Example.com", &sans, &[]).is_some());
        assert!(cn_problem("notinsan.example.com.", &sans, &[]).is_some());
        assert!(cn_problem("not_in_san.example.com", &sans, &[]).is_some());
        assert!(cn_problem("*.example.com", &sans, &[]).is_some());
        assert!(cn_problem("valid.example.com.", &sans, &[]).is_none());
        assert!(cn_problem("*.example.com", &["*.example.com"], &[]).is_none());
        assert!(cn_problem("x.example.com", &["VALID.example.com"], &[]).is_some());
    }
}
