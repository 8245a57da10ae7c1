//! `inspect`: a readable dump of certificates, CSRs and CRLs — names, validity
//! with time left, key, decoded extensions and fingerprints — as text or JSON.

mod extensions;
mod text;

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use const_oid::ObjectIdentifier;
use der::{Decode, Encode};
use serde_json::{json, Map, Value};
use x509_cert::crl::CertificateList;
use x509_cert::request::CertReq;
use x509_cert::Certificate;

use ca_core::oids;

use crate::files::read_input;
use crate::output::{colon_hex, hex, sha1, sha256, Out};
use extensions::extension_json;

pub use text::render;

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
