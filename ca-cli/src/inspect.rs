//! `inspect`: a readable dump of certificates, CSRs and CRLs — names, validity
//! with time left, key, decoded extensions and fingerprints — as text or JSON.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use const_oid::ObjectIdentifier;
use der::{Decode, Encode};
use serde_json::{json, Map, Value};
use x509_cert::crl::CertificateList;
use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName};
use x509_cert::ext::pkix::{
    AuthorityInfoAccessSyntax, AuthorityKeyIdentifier, BasicConstraints, CertificatePolicies,
    CrlDistributionPoints, ExtendedKeyUsage, KeyUsage, KeyUsages, NameConstraints, SubjectAltName,
    SubjectKeyIdentifier,
};
use x509_cert::ext::Extension;
use x509_cert::request::CertReq;
use x509_cert::Certificate;

use ca_core::oids;

use crate::files::read_input;
use crate::output::{colon_hex, hex, relative, sha1, sha256, Out};

/// One thing found in an input file.
pub enum Object {
    Certificate(Vec<u8>),
    Csr(Vec<u8>),
    Crl(Vec<u8>),
}

/// Split an input into the objects it holds: PEM blocks by label, or one DER
/// object recognised by trying each structure in turn.
pub fn objects(input: &[u8], what: &str) -> Result<Vec<Object>> {
    let trimmed = input.trim_ascii_start();
    if trimmed.starts_with(b"-----BEGIN") {
        let text =
            std::str::from_utf8(trimmed).with_context(|| format!("{what}: PEM is not text"))?;
        let mut found = Vec::new();
        for (label, der) in
            pem_blocks(text).with_context(|| format!("{what}: PEM does not parse"))?
        {
            found.push(match label.as_str() {
                "CERTIFICATE" | "TRUSTED CERTIFICATE" | "X509 CERTIFICATE" => Object::Certificate(der),
                "CERTIFICATE REQUEST" | "NEW CERTIFICATE REQUEST" => Object::Csr(der),
                "X509 CRL" => Object::Crl(der),
                l if l.contains("PRIVATE KEY") => {
                    // Never echo key material; say what to do instead.
                    bail!("{what} holds a private key; inspect shows certificates, CSRs and CRLs (refusing to print keys)")
                }
                other => bail!("{what}: PEM block {other:?} is not a certificate, CSR or CRL"),
            });
        }
        if found.is_empty() {
            bail!("{what}: no PEM block found");
        }
        return Ok(found);
    }
    if Certificate::from_der(input).is_ok() {
        Ok(vec![Object::Certificate(input.to_vec())])
    } else if CertReq::from_der(input).is_ok() {
        Ok(vec![Object::Csr(input.to_vec())])
    } else if CertificateList::from_der(input).is_ok() {
        Ok(vec![Object::Crl(input.to_vec())])
    } else {
        bail!("{what} is not a certificate, CSR or CRL (neither PEM nor DER of one)")
    }
}

/// Every `-----BEGIN X-----` ... `-----END X-----` block, decoded.
pub fn pem_blocks(text: &str) -> Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN ") {
        let after = &rest[start..];
        let label_end = after[11..]
            .find("-----")
            .context("unterminated BEGIN line")?
            + 11;
        let label = after[11..label_end].to_string();
        let end_marker = format!("-----END {label}-----");
        let stop = after
            .find(&end_marker)
            .with_context(|| format!("no END line for {label}"))?
            + end_marker.len();
        let (_, der) = der::pem::decode_vec(&after.as_bytes()[..stop])
            .map_err(|e| anyhow::anyhow!("{label} block: {e}"))?;
        out.push((label, der));
        rest = &after[stop..];
    }
    Ok(out)
}

pub fn run(a: &InspectArgs, out: &Out) -> Result<()> {
    let mut values = Vec::new();
    let mut texts = Vec::new();
    for path in &a.files {
        let data = read_input(path)?;
        let what = path.display().to_string();
        for obj in objects(&data, &what)? {
            let v = describe(&obj).with_context(|| what.clone())?;
            texts.push(render(&v, out));
            values.push(v);
        }
    }
    if out.is_json() {
        if values.len() == 1 {
            out.json(&values[0]);
        } else {
            out.json(&Value::Array(values));
        }
    } else {
        crate::output::print(&texts.join("\n"));
    }
    Ok(())
}

/// The facts of one object as JSON; the text form is rendered from these.
pub fn describe(obj: &Object) -> Result<Value> {
    match obj {
        Object::Certificate(der) => describe_cert(der),
        Object::Csr(der) => describe_csr(der),
        Object::Crl(der) => describe_crl(der),
    }
}

fn oid_name(oid: &ObjectIdentifier) -> String {
    const_oid::db::DB
        .by_oid(oid)
        .map(str::to_string)
        .unwrap_or_else(|| oid.to_string())
}

fn time_of(t: &x509_cert::time::Time) -> time::OffsetDateTime {
    let secs = i64::try_from(t.to_unix_duration().as_secs()).unwrap_or(i64::MAX);
    time::OffsetDateTime::from_unix_timestamp(secs).unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

fn signature_name(alg: &spki::AlgorithmIdentifierOwned) -> String {
    use ca_core::signature::SignatureAlgorithm as S;
    match S::from_identifier(alg) {
        Ok(S::EcdsaSha256) => "ECDSA with SHA-256".into(),
        Ok(S::EcdsaSha384) => "ECDSA with SHA-384".into(),
        Ok(S::EcdsaSha512) => "ECDSA with SHA-512".into(),
        Ok(S::RsaPkcs1Sha256) => "RSA PKCS#1 v1.5 with SHA-256".into(),
        Ok(S::RsaPkcs1Sha384) => "RSA PKCS#1 v1.5 with SHA-384".into(),
        Ok(S::RsaPkcs1Sha512) => "RSA PKCS#1 v1.5 with SHA-512".into(),
        Ok(S::RsaPssSha256) => "RSA-PSS with SHA-256".into(),
        Ok(S::RsaPssSha384) => "RSA-PSS with SHA-384".into(),
        Ok(S::RsaPssSha512) => "RSA-PSS with SHA-512".into(),
        Ok(S::Ed25519) => "Ed25519".into(),
        Err(_) => format!("{} (not supported)", oid_name(&alg.oid)),
    }
}

fn key_json(spki_der: &[u8]) -> Value {
    let kind = match ca_core::PublicKeyKind::from_spki_der(spki_der) {
        Ok(k) => k.to_string(),
        Err(e) => format!("unsupported ({e})"),
    };
    json!({ "type": kind, "spki_sha256": hex(&sha256(spki_der)) })
}

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
fn extension_json(ext: &Extension) -> Value {
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

fn validity_json(nb: time::OffsetDateTime, na: time::OffsetDateTime) -> Value {
    let now = time::OffsetDateTime::now_utc();
    let status = if now < nb {
        "not yet valid"
    } else if now > na {
        "expired"
    } else {
        "valid"
    };
    json!({
        "not_before": ca_core::fmt_time(nb),
        "not_after": ca_core::fmt_time(na),
        "status": status,
        "seconds_left": (na - now).whole_seconds(),
        "seconds_until_valid": (nb - now).whole_seconds().max(0),
    })
}

fn describe_cert(der: &[u8]) -> Result<Value> {
    let cert = Certificate::from_der(der).context("certificate does not decode")?;
    let tbs = &cert.tbs_certificate;
    let spki_der = tbs.subject_public_key_info.to_der()?;
    let nb = time_of(&tbs.validity.not_before);
    let na = time_of(&tbs.validity.not_after);
    let exts: Vec<Value> = tbs
        .extensions
        .iter()
        .flatten()
        .map(extension_json)
        .collect();
    let self_issued = tbs.subject == tbs.issuer;
    Ok(json!({
        "type": "certificate",
        "subject": tbs.subject.to_string(),
        "issuer": tbs.issuer.to_string(),
        "serial": hex(tbs.serial_number.as_bytes()),
        "version": format!("{:?}", tbs.version),
        "self_issued": self_issued,
        "validity": validity_json(nb, na),
        "public_key": key_json(&spki_der),
        "signature_algorithm": signature_name(&cert.signature_algorithm),
        "extensions": exts,
        "fingerprints": { "sha256": colon_hex(&sha256(der)), "sha1": colon_hex(&sha1(der)) },
        "pem": ca_core::pem::encode("CERTIFICATE", der),
    }))
}

fn describe_csr(der: &[u8]) -> Result<Value> {
    let req = CertReq::from_der(der).context("CSR does not decode")?;
    let spki_der = req.info.public_key.to_der()?;
    let mut exts = Vec::new();
    for attr in req.info.attributes.iter() {
        if attr.oid == oids::EXTENSION_REQUEST {
            for v in attr.values.iter() {
                if let Ok(er) = v.decode_as::<x509_cert::request::ExtensionReq>() {
                    exts.extend(er.0.iter().map(extension_json));
                }
            }
        }
    }
    // The CA's own checks give the authoritative verdict, proof of possession included.
    let (accepted, verdict) = match ca_core::parse_csr(der) {
        Ok(_) => (
            true,
            "accepted: the signature verifies with the enclosed key (proof of possession)"
                .to_string(),
        ),
        Err(e) => (false, format!("refused: {e}")),
    };
    Ok(json!({
        "type": "csr",
        "subject": req.info.subject.to_string(),
        "public_key": key_json(&spki_der),
        "signature_algorithm": signature_name(&req.algorithm),
        "requested_extensions": exts,
        "ca_checks_pass": accepted,
        "ca_checks": verdict,
        "fingerprints": { "sha256": colon_hex(&sha256(der)) },
    }))
}

fn describe_crl(der: &[u8]) -> Result<Value> {
    let crl = CertificateList::from_der(der).context("CRL does not decode")?;
    let tbs = &crl.tbs_cert_list;
    let this_update = time_of(&tbs.this_update);
    let now = time::OffsetDateTime::now_utc();
    let next = tbs.next_update.as_ref().map(time_of);
    let revoked: Vec<Value> = tbs
        .revoked_certificates
        .iter()
        .flatten()
        .map(|r| {
            let reason = r
                .crl_entry_extensions
                .iter()
                .flatten()
                .find(|e| e.extn_id == oids::CRL_REASON)
                .and_then(|e| {
                    x509_cert::ext::pkix::CrlReason::from_der(e.extn_value.as_bytes()).ok()
                })
                .map(|r| format!("{r:?}"));
            json!({
                "serial": hex(r.serial_number.as_bytes()),
                "revoked_at": ca_core::fmt_time(time_of(&r.revocation_date)),
                "reason": reason,
            })
        })
        .collect();
    let exts: Vec<Value> = tbs
        .crl_extensions
        .iter()
        .flatten()
        .map(extension_json)
        .collect();
    Ok(json!({
        "type": "crl",
        "issuer": tbs.issuer.to_string(),
        "this_update": ca_core::fmt_time(this_update),
        "next_update": next.map(ca_core::fmt_time),
        "stale": next.is_some_and(|n| n < now),
        "seconds_until_next_update": next.map(|n| (n - now).whole_seconds()),
        "signature_algorithm": signature_name(&crl.signature_algorithm),
        "revoked": revoked,
        "extensions": exts,
        "fingerprints": { "sha256": colon_hex(&sha256(der)) },
    }))
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("")
}

fn render_exts(v: Option<&Value>, out: &Out, buf: &mut String) {
    let exts = v.and_then(Value::as_array).cloned().unwrap_or_default();
    if exts.is_empty() {
        return;
    }
    buf.push_str("  Extensions:\n");
    for e in exts {
        let crit = if e.get("critical").and_then(Value::as_bool) == Some(true) {
            " (critical)"
        } else {
            ""
        };
        let vals: Vec<&str> = e
            .get("value")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        buf.push_str(&format!(
            "    {}{crit}: {}\n",
            out.cyan(s(&e, "name")),
            vals.join(", ")
        ));
    }
}

/// Text form of a [`describe`] result.
pub fn render(v: &Value, out: &Out) -> String {
    let mut b = String::new();
    let key = v.get("public_key").cloned().unwrap_or(Value::Null);
    let fps = v.get("fingerprints").cloned().unwrap_or(Value::Null);
    match s(v, "type") {
        "certificate" => {
            b.push_str(&format!("{}\n", out.bold("Certificate")));
            b.push_str(&format!("  Subject:    {}\n", s(v, "subject")));
            let issuer = if v.get("self_issued").and_then(Value::as_bool) == Some(true) {
                format!("{} (self-issued)", s(v, "issuer"))
            } else {
                s(v, "issuer").to_string()
            };
            b.push_str(&format!("  Issuer:     {issuer}\n"));
            b.push_str(&format!("  Serial:     {}\n", s(v, "serial")));
            let val = v.get("validity").cloned().unwrap_or(Value::Null);
            let left = val.get("seconds_left").and_then(Value::as_i64).unwrap_or(0);
            let status = match s(&val, "status") {
                "valid" => out.green(&format!("valid, expires {}", relative(left))),
                "expired" => out.red(&format!("EXPIRED {}", relative(left))),
                _ => out.yellow(&format!(
                    "NOT YET VALID, starts {}",
                    relative(
                        val.get("seconds_until_valid")
                            .and_then(Value::as_i64)
                            .unwrap_or(0)
                    )
                )),
            };
            b.push_str(&format!(
                "  Validity:   {} → {} ({status})\n",
                s(&val, "not_before"),
                s(&val, "not_after")
            ));
            b.push_str(&format!(
                "  Public key: {} (SPKI SHA-256 {})\n",
                s(&key, "type"),
                s(&key, "spki_sha256")
            ));
            b.push_str(&format!("  Signature:  {}\n", s(v, "signature_algorithm")));
            render_exts(v.get("extensions"), out, &mut b);
            b.push_str("  Fingerprints:\n");
            b.push_str(&format!("    SHA-256: {}\n", s(&fps, "sha256")));
            b.push_str(&format!("    SHA-1:   {}\n", s(&fps, "sha1")));
        }
        "csr" => {
            b.push_str(&format!("{}\n", out.bold("Certificate signing request")));
            b.push_str(&format!("  Subject:    {}\n", s(v, "subject")));
            b.push_str(&format!(
                "  Public key: {} (SPKI SHA-256 {})\n",
                s(&key, "type"),
                s(&key, "spki_sha256")
            ));
            b.push_str(&format!("  Signature:  {}\n", s(v, "signature_algorithm")));
            render_exts(v.get("requested_extensions"), out, &mut b);
            let verdict = s(v, "ca_checks");
            let painted = if v.get("ca_checks_pass").and_then(Value::as_bool) == Some(true) {
                out.green(verdict)
            } else {
                out.red(verdict)
            };
            b.push_str(&format!("  CA checks:  {painted}\n"));
            b.push_str(&format!("  SHA-256:    {}\n", s(&fps, "sha256")));
        }
        "crl" => {
            b.push_str(&format!("{}\n", out.bold("Certificate revocation list")));
            b.push_str(&format!("  Issuer:      {}\n", s(v, "issuer")));
            b.push_str(&format!("  This update: {}\n", s(v, "this_update")));
            match v.get("next_update").and_then(Value::as_str) {
                Some(n) => {
                    let secs = v
                        .get("seconds_until_next_update")
                        .and_then(Value::as_i64)
                        .unwrap_or(0);
                    let note = if secs < 0 {
                        out.red(&format!("STALE, due {}", relative(secs)))
                    } else {
                        format!("due {}", relative(secs))
                    };
                    b.push_str(&format!("  Next update: {n} ({note})\n"));
                }
                None => b.push_str("  Next update: (none)\n"),
            }
            b.push_str(&format!("  Signature:   {}\n", s(v, "signature_algorithm")));
            render_exts(v.get("extensions"), out, &mut b);
            let revoked = v
                .get("revoked")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            b.push_str(&format!("  Revoked certificates: {}\n", revoked.len()));
            for r in &revoked {
                let reason = r
                    .get("reason")
                    .and_then(Value::as_str)
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default();
                b.push_str(&format!(
                    "    {} revoked {}{reason}\n",
                    s(r, "serial"),
                    s(r, "revoked_at")
                ));
            }
            b.push_str(&format!("  SHA-256:     {}\n", s(&fps, "sha256")));
        }
        _ => {}
    }
    b
}

/// Used by other commands: a certificate's one-line summary facts.
pub fn cert_facts(der: &[u8]) -> Map<String, Value> {
    describe_cert(der)
        .ok()
        .and_then(|v| v.as_object().cloned())
        .unwrap_or_default()
}

#[derive(clap::Args, Debug)]
pub struct InspectArgs {
    /// Files to show (certificate, bundle, CSR or CRL; PEM or DER; `-` for stdin).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}
