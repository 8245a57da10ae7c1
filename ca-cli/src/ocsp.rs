//! `ca-cli ocsp query`: ask a CA's OCSP responder about a certificate, the way
//! a relying party does (RFC 6960 GET to the URL in the certificate's
//! authorityInfoAccess), and check the signed answer before believing it.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use ca_core::cert::CaCertificate;
use ca_core::ocsp::{CertIdInfo, HashAlg, ResponderIdentity};
use ca_core::serial::Serial;
use clap::{Args, Subcommand};
use const_oid::db::rfc6960::{ID_PKIX_OCSP_BASIC, ID_PKIX_OCSP_NONCE};
use der::{Decode, Encode};
use serde_json::{json, Value};
use spki::SubjectPublicKeyInfoRef;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::AuthorityInfoAccessSyntax;
use x509_ocsp::{BasicOcspResponse, CertStatus, OcspGeneralizedTime, OcspResponse};

use crate::output::Out;

#[derive(Args, Debug)]
pub struct OcspArgs {
    #[command(subcommand)]
    pub command: OcspCommand,
}

#[derive(Subcommand, Debug)]
pub enum OcspCommand {
    /// Query the responder named in a certificate (or --url) and verify the answer.
    Query {
        /// The certificate to ask about (PEM or DER).
        #[arg(long)]
        cert: PathBuf,
        /// Its issuing CA's certificate; default: fetched from the
        /// certificate's caIssuers URL.
        #[arg(long)]
        issuer: Option<PathBuf>,
        /// The responder URL; default: the certificate's OCSP URL.
        #[arg(long)]
        url: Option<String>,
        /// Send no nonce (the responder may then answer from its cache).
        #[arg(long)]
        no_nonce: bool,
    },
}

/// The first http:// URL of an authorityInfoAccess method in a certificate.
fn aia_url(cert: &x509_cert::Certificate, method: const_oid::ObjectIdentifier) -> Option<String> {
    let (_, aia) = cert
        .tbs_certificate
        .get::<AuthorityInfoAccessSyntax>()
        .ok()??;
    aia.0.iter().find_map(|ad| match &ad.access_location {
        GeneralName::UniformResourceIdentifier(u)
            if ad.access_method == method && u.as_str().starts_with("http://") =>
        {
            Some(u.to_string())
        }
        _ => None,
    })
}

/// Base64 (standard alphabet) with the URL-special characters escaped (RFC 6960 A.1).
fn url_base64(data: &[u8]) -> String {
    use base64ct::{Base64, Encoding};
    Base64::encode_string(data)
        .replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D")
}

fn time_of(t: &OcspGeneralizedTime) -> String {
    time::OffsetDateTime::from_unix_timestamp(t.0.to_unix_duration().as_secs() as i64)
        .map(ca_core::fmt_time)
        .unwrap_or_default()
}

pub fn run(a: &OcspArgs, out: &Out) -> Result<()> {
    let OcspCommand::Query {
        cert,
        issuer,
        url,
        no_nonce,
    } = &a.command;
    let certs = crate::verify::load_certs(cert)?;
    let leaf_der = certs
        .first()
        .with_context(|| format!("{} holds no certificate", cert.display()))?;
    let leaf = x509_cert::Certificate::from_der(leaf_der).context("certificate does not decode")?;
    let issuer_der = match issuer {
        Some(p) => crate::verify::load_certs(p)?
            .into_iter()
            .next()
            .with_context(|| format!("{} holds no certificate", p.display()))?,
        None => {
            let u = aia_url(&leaf, ca_core::oids::AD_CA_ISSUERS)
                .context("the certificate names no caIssuers URL: give --issuer")?;
            out.progress(&format!("fetching the issuer from {u}"));
            let body = crate::client::http_get(&u)?;
            ca_core::pem::der_or_pem("CERTIFICATE", &body)
                .context("the issuer is not a certificate")?
        }
    };
    let ca = CaCertificate::parse(&issuer_der).context("the issuer is not a CA certificate")?;
    let url = match url {
        Some(u) => u.trim_end_matches('/').to_string(),
        None => aia_url(&leaf, ca_core::oids::AD_OCSP)
            .context("the certificate names no OCSP URL: give --url")?,
    };
    let serial = Serial::from_bytes(leaf.tbs_certificate.serial_number.as_bytes());
    let cert_id_info = CertIdInfo::for_serial(&ca, &serial, HashAlg::Sha1)?;
    let cert_id = cert_id_info.to_der()?;
    let nonce = if *no_nonce {
        None
    } else {
        let mut n = [0u8; 16];
        aws_lc_rs::rand::fill(&mut n).map_err(|_| anyhow::anyhow!("random nonce"))?;
        Some(n)
    };
    let req = ca_core::ocsp::encode_request(
        std::slice::from_ref(&cert_id_info),
        nonce.as_ref().map(|n| &n[..]),
    )?;
    // The nonce extension's value, as the responder echoes it.
    let nonce_ext_value = match &nonce {
        Some(n) => Some(der::asn1::OctetString::new(&n[..])?.to_der()?),
        None => None,
    };
    let get = format!("{url}/{}", url_base64(&req));
    out.progress(&format!("asking {url}"));
    let body = crate::client::http_get(&get)?;

    // Believe nothing before the signature checks out.
    let resp = OcspResponse::from_der(&body).context("the answer is not an OCSP response")?;
    let status = format!("{:?}", resp.response_status);
    let Some(bytes) = resp.response_bytes else {
        bail!("the responder refused: {status}");
    };
    if bytes.response_type != ID_PKIX_OCSP_BASIC {
        bail!("the responder answered a non-basic response type");
    }
    let basic = BasicOcspResponse::from_der(bytes.response.as_bytes())
        .context("the basic OCSP response does not decode")?;
    let tbs = basic.tbs_response_data.to_der()?;
    let sig = basic.signature.raw_bytes();
    let verifies = |spki: &[u8]| -> bool {
        SubjectPublicKeyInfoRef::from_der(spki).is_ok_and(|k| {
            ca_core::signature::verify_signature(&k, &basic.signature_algorithm, &tbs, sig).is_ok()
        })
    };
    let mut responder = None;
    for c in basic.certs.iter().flatten() {
        let der = c.to_der()?;
        // Only a certificate this CA issued for OCSP signing may speak for it.
        if ResponderIdentity::delegated(&der, &ca).is_ok() {
            let spki = c.tbs_certificate.subject_public_key_info.to_der()?;
            if verifies(&spki) {
                responder = Some(format!("delegated: {}", c.tbs_certificate.subject));
            }
        }
    }
    if responder.is_none() && verifies(&ca.spki_der()) {
        responder = Some(format!("the CA: {}", ca.subject()));
    }
    // A response that does not check out is a verification that said no
    // (exit 3), not a failure of the tool.
    let Some(responder) = responder else {
        return Err(crate::exit::VerificationFailed(
            "the OCSP response's signature does not verify under the CA or a responder it delegated to".into(),
        )
        .into());
    };
    let data = &basic.tbs_response_data;
    let single = data
        .responses
        .iter()
        .find(|r| r.cert_id.to_der().is_ok_and(|d| d == cert_id))
        .context("the response does not answer for this certificate")?;
    let nonce_echoed = nonce_ext_value.as_ref().map(|n| {
        data.response_extensions
            .iter()
            .flatten()
            .any(|e| e.extn_id == ID_PKIX_OCSP_NONCE && e.extn_value.as_bytes() == n.as_slice())
    });
    if nonce_echoed == Some(false) {
        return Err(crate::exit::VerificationFailed(
            "the response does not echo our nonce (a replay?)".into(),
        )
        .into());
    }
    let mut v = json!({
        "url": url,
        "serial": serial.to_hex(),
        "responder": responder,
        "signature_verified": true,
        "produced_at": time_of(&data.produced_at),
        "this_update": time_of(&single.this_update),
        "next_update": single.next_update.as_ref().map(time_of),
        "nonce_echoed": nonce_echoed,
    });
    match &single.cert_status {
        CertStatus::Good(_) => v["status"] = "good".into(),
        CertStatus::Unknown(_) => v["status"] = "unknown".into(),
        CertStatus::Revoked(info) => {
            v["status"] = "revoked".into();
            v["revoked_at"] = time_of(&info.revocation_time).into();
            v["reason"] = match info.revocation_reason {
                Some(r) => ca_core::crl::RevocationReason::from_code(r as u8)
                    .map_or_else(|| format!("{r:?}"), |r| r.name().to_string())
                    .into(),
                None => "unspecified".into(),
            };
        }
    }
    if out.is_json() {
        out.json(&v);
    } else {
        crate::output::print(&render(&v));
    }
    Ok(())
}

fn render(v: &Value) -> String {
    let s = |k: &str| match v.get(k) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => "-".into(),
        Some(o) => o.to_string(),
    };
    let mut b = format!("{}: {}\n", s("serial"), s("status"));
    if s("status") == "revoked" {
        b.push_str(&format!(
            "  revoked at {} (reason: {})\n",
            s("revoked_at"),
            s("reason")
        ));
    }
    b.push_str(&format!(
        "  this update {}, next update {}\n  signed by {} (verified)\n  nonce echoed: {}\n",
        s("this_update"),
        s("next_update"),
        s("responder"),
        s("nonce_echoed")
    ));
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_encoding_round_trips_through_the_server_decoder() {
        for data in [
            &b""[..],
            b"\xfb\xff",
            b"\x30\x03\x0a\x01\x01",
            &[0xffu8; 100],
        ] {
            let enc = url_base64(data);
            assert!(!enc.contains('+') && !enc.contains('/') && !enc.contains('='));
            let dec = ca_core::ocsp::decode_get_request(&enc).expect("decodes");
            assert_eq!(dec, data);
        }
    }
}
