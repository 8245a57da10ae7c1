//! x509-limbo glue shared by `examples/limbo.rs` (the harness) and `tests/limbo.rs`
//! (the regression test): load the suite and decide one testcase with
//! `ca_core::verify`, from the certificates and the case's parameters only.

use std::io::Read;
use std::net::IpAddr;

use ca_core::verify::{verify_chain, KeyUsageBits, PeerName, Usage, VerifyOptions};
use serde::Deserialize;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// The parts of a testcase a harness may look at. `expected_result`,
/// `description` and `features` are deliberately not deserialized.
#[derive(Deserialize)]
pub struct Testcase {
    pub id: String,
    pub validation_kind: String,
    pub trusted_certs: Vec<String>,
    pub untrusted_intermediates: Vec<String>,
    pub peer_certificate: String,
    pub validation_time: Option<String>,
    #[serde(default)]
    pub signature_algorithms: Option<Vec<String>>,
    #[serde(default)]
    pub key_usage: Option<Vec<String>>,
    #[serde(default)]
    pub extended_key_usage: Option<Vec<String>>,
    pub expected_peer_name: Option<LimboPeerName>,
    #[serde(default)]
    pub expected_peer_names: Option<Vec<LimboPeerName>>,
    pub max_chain_depth: Option<usize>,
    #[serde(default)]
    pub crls: Option<Vec<String>>,
}

#[derive(Deserialize, Clone)]
pub struct LimboPeerName {
    pub kind: String,
    pub value: String,
}

#[derive(Deserialize)]
pub struct Limbo {
    pub testcases: Vec<Testcase>,
}

pub enum Outcome {
    Success(String),
    Failure(String),
    Skipped(String),
}

impl Outcome {
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Success(_) => "SUCCESS",
            Outcome::Failure(_) => "FAILURE",
            Outcome::Skipped(_) => "SKIPPED",
        }
    }

    pub fn context(&self) -> &str {
        match self {
            Outcome::Success(c) | Outcome::Failure(c) | Outcome::Skipped(c) => c,
        }
    }
}

/// Read a (possibly gzipped) limbo.json into a string.
pub fn read_text(path: &str) -> Result<String, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    if path.ends_with(".gz") {
        let mut text = String::new();
        flate2::read::GzDecoder::new(bytes.as_slice())
            .read_to_string(&mut text)
            .map_err(|e| format!("cannot gunzip {path}: {e}"))?;
        Ok(text)
    } else {
        String::from_utf8(bytes).map_err(|e| format!("{path} is not UTF-8: {e}"))
    }
}

pub fn parse(text: &str) -> Result<Limbo, String> {
    serde_json::from_str(text).map_err(|e| format!("limbo.json does not parse: {e}"))
}

fn pem_to_der(pem: &str) -> Result<Vec<u8>, String> {
    ca_core::pem::decode("CERTIFICATE", pem).map_err(|e| format!("bad PEM certificate: {e}"))
}

fn crl_to_der(pem: &str) -> Result<Vec<u8>, String> {
    ca_core::pem::decode("X509 CRL", pem).map_err(|e| format!("bad PEM CRL: {e}"))
}

fn peer_name(p: &LimboPeerName) -> Result<PeerName, String> {
    match p.kind.as_str() {
        "DNS" => Ok(PeerName::Dns(p.value.clone())),
        "IP" => p
            .value
            .parse::<IpAddr>()
            .map(PeerName::Ip)
            .map_err(|e| format!("bad IP peer name {}: {e}", p.value)),
        "RFC822" => Ok(PeerName::Email(p.value.clone())),
        other => Err(format!("peer name kind {other}")),
    }
}

/// Decide one testcase.
pub fn decide(tc: &Testcase) -> Outcome {
    match decide_inner(tc, false, true) {
        Ok(o) => o,
        Err(e) => Outcome::Skipped(e),
    }
}

/// Decide one testcase with [`VerifyOptions::explain`] off (the verdict only).
#[allow(dead_code)] // used by the test only
pub fn decide_verdict_only(tc: &Testcase) -> Outcome {
    match decide_inner(tc, false, false) {
        Ok(o) => o,
        Err(e) => Outcome::Skipped(e),
    }
}

/// Decide one testcase, with the full explanation as context.
#[allow(dead_code)] // used by the example only
pub fn decide_explained(tc: &Testcase) -> Outcome {
    match decide_inner(tc, true, true) {
        Ok(o) => o,
        Err(e) => Outcome::Skipped(e),
    }
}

/// `explain`: the context is the whole explanation; `record_passes`: the
/// validation's own [`VerifyOptions::explain`].
fn decide_inner(tc: &Testcase, explain: bool, record_passes: bool) -> Result<Outcome, String> {
    if tc
        .signature_algorithms
        .as_ref()
        .is_some_and(|s| !s.is_empty())
    {
        return Err("restricting signature algorithms is not supported".into());
    }
    let usage = match tc.validation_kind.as_str() {
        "SERVER" => Usage::TlsServer,
        "CLIENT" => Usage::TlsClient,
        other => return Err(format!("validation kind {other}")),
    };
    let time = match &tc.validation_time {
        None => OffsetDateTime::now_utc(),
        Some(t) => OffsetDateTime::parse(t, &Rfc3339).map_err(|e| format!("bad time {t}: {e}"))?,
    };
    let mut opts = VerifyOptions::new(usage, time);
    opts.explain = record_passes;
    opts.max_depth = tc.max_chain_depth;
    for ku in tc.key_usage.iter().flatten() {
        let bit = KeyUsageBits::from_name(ku).ok_or_else(|| format!("key usage {ku}"))?;
        opts.required_key_usage = opts.required_key_usage.union(bit);
    }
    for eku in tc.extended_key_usage.iter().flatten() {
        let oid = match eku.as_str() {
            "serverAuth" => ca_core::oids::KP_SERVER_AUTH,
            "clientAuth" => ca_core::oids::KP_CLIENT_AUTH,
            "codeSigning" => ca_core::oids::KP_CODE_SIGNING,
            "emailProtection" => ca_core::oids::KP_EMAIL_PROTECTION,
            "timeStamping" => ca_core::oids::KP_TIME_STAMPING,
            "OCSPSigning" => ca_core::oids::KP_OCSP_SIGNING,
            "anyExtendedKeyUsage" => ca_core::oids::ANY_EXTENDED_KEY_USAGE,
            other => return Err(format!("extended key usage {other}")),
        };
        opts.required_ekus.push(oid);
    }
    for crl in tc.crls.iter().flatten() {
        opts.crls.push(crl_to_der(crl)?);
    }
    let leaf = match pem_to_der(&tc.peer_certificate) {
        Ok(d) => d,
        Err(e) => return Ok(Outcome::Failure(e)),
    };
    // Undecodable PEM in the pools just means that certificate is unusable.
    let anchors: Vec<Vec<u8>> = tc
        .trusted_certs
        .iter()
        .filter_map(|p| pem_to_der(p).ok())
        .collect();
    let intermediates: Vec<Vec<u8>> = tc
        .untrusted_intermediates
        .iter()
        .filter_map(|p| pem_to_der(p).ok())
        .collect();

    let mut names: Vec<Option<PeerName>> = Vec::new();
    if let Some(p) = &tc.expected_peer_name {
        names.push(Some(peer_name(p)?));
    }
    for p in tc.expected_peer_names.iter().flatten() {
        names.push(Some(peer_name(p)?));
    }
    if names.is_empty() {
        names.push(None);
    }
    // Every expected name must be served by a valid path.
    let mut context = String::new();
    for name in names {
        opts.peer_name = name;
        match verify_chain(&leaf, &intermediates, &anchors, &opts) {
            Ok(path) => {
                context = if explain {
                    path.explanation.to_string()
                } else {
                    format!("valid path of {} certificates", path.chain.len())
                }
            }
            Err(e) if explain => return Ok(Outcome::Failure(format!("{e}\n{}", e.explanation))),
            Err(e) => return Ok(Outcome::Failure(e.to_string())),
        }
    }
    Ok(Outcome::Success(context))
}
