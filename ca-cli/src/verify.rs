//! `verify`: ca-core's chain validator with its explained verdict.

use std::net::IpAddr;
use std::path::Path;

use anyhow::{bail, Context, Result};
use ca_core::verify::{verify_chain, Explanation, PeerName, Usage, VerifyError, VerifyOptions};
use serde_json::{json, Value};

use std::path::PathBuf;

use clap::ValueEnum;

use crate::args::parse_time;
use crate::exit::{UsageError, VerificationFailed};
use crate::files::read_input;
use crate::inspect::{objects, Object};
use crate::output::Out;

/// Certificates in a file: every certificate of a PEM bundle, or one DER.
pub fn load_certs(path: &Path) -> Result<Vec<Vec<u8>>> {
    let data = read_input(path)?;
    let what = path.display().to_string();
    let mut certs = Vec::new();
    for obj in objects(&data, &what)? {
        match obj {
            Object::Certificate(der) => certs.push(der),
            _ => bail!("{what} holds something other than certificates"),
        }
    }
    Ok(certs)
}

/// CRLs in a file (PEM blocks or one DER).
pub fn load_crls(path: &Path) -> Result<Vec<Vec<u8>>> {
    let data = read_input(path)?;
    let what = path.display().to_string();
    let mut crls = Vec::new();
    for obj in objects(&data, &what)? {
        match obj {
            Object::Crl(der) => crls.push(der),
            _ => bail!("{what} holds something other than CRLs"),
        }
    }
    Ok(crls)
}

pub fn peer_name(s: &str) -> Result<PeerName> {
    let s = s.trim();
    if s.is_empty() {
        // The command line is wrong, not a file or the chain: exit 2.
        return Err(UsageError("--name is empty".into()).into());
    }
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(PeerName::Ip(ip));
    }
    if s.contains('@') {
        return Ok(PeerName::Email(s.to_string()));
    }
    Ok(PeerName::Dns(s.to_ascii_lowercase()))
}

pub fn usage(u: UsageArg) -> Usage {
    match u {
        UsageArg::Server => Usage::TlsServer,
        UsageArg::Client => Usage::TlsClient,
        UsageArg::Any => Usage::Any,
    }
}

/// The explanation as JSON: per certificate, every check and its outcome.
pub fn explanation_json(e: &Explanation) -> Value {
    json!({
        "certificates": e.certs.iter().map(|c| json!({
            "role": c.role.to_string(),
            "subject": c.subject,
            "passed": c.passed(),
            "checks": c.checks.iter().map(|k| json!({
                "check": k.kind.name(),
                "passed": k.passed,
                "detail": k.detail,
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "notes": e.notes,
    })
}

/// The explanation as text, with ✓ in green and ✗ in red on a terminal.
pub fn explanation_text(e: &Explanation, out: &Out) -> String {
    let mut s = String::new();
    for c in &e.certs {
        let subject = if c.subject.is_empty() {
            "(empty subject)"
        } else {
            &c.subject
        };
        s.push_str(&format!("  [{}] {}\n", c.role, out.bold(subject)));
        for k in &c.checks {
            let line = k.to_string();
            s.push_str(&format!(
                "      {}\n",
                if k.passed {
                    out.green(&line)
                } else {
                    out.red(&line)
                }
            ));
        }
    }
    for n in &e.notes {
        s.push_str(&format!("  {}\n", out.dim(&format!("note: {n}"))));
    }
    s
}

/// The outcome of a validation, for the walk-through and `verify`.
pub struct Verdict {
    pub result: std::result::Result<ca_core::verify::VerifiedPath, VerifyError>,
}

impl Verdict {
    pub fn valid(&self) -> bool {
        self.result.is_ok()
    }
    pub fn explanation(&self) -> &Explanation {
        match &self.result {
            Ok(p) => &p.explanation,
            Err(e) => &e.explanation,
        }
    }
    pub fn reason(&self) -> Option<String> {
        self.result.as_ref().err().map(|e| e.reason.to_string())
    }
}

pub fn run(a: &VerifyArgs, out: &Out) -> Result<()> {
    // The command line first, so a usage error is reported as one (exit 2)
    // whatever the state of the files.
    let name = a.name.as_deref().map(peer_name).transpose()?;
    let anchors = load_certs(&a.root).context("reading the trust anchors (--root)")?;
    let mut leaf_file = load_certs(&a.leaf).context("reading the certificate to verify")?;
    if leaf_file.is_empty() {
        bail!("{} holds no certificate", a.leaf.display());
    }
    let leaf = leaf_file.remove(0);
    // Further certificates of the leaf's bundle are its chain.
    let mut intermediates = leaf_file;
    for p in &a.intermediates {
        intermediates.extend(load_certs(p).context("reading the intermediates")?);
    }
    let mut crls = Vec::new();
    for p in &a.crls {
        crls.extend(load_crls(p).context("reading the CRLs")?);
    }
    let mut opts = VerifyOptions::new(
        usage(a.usage),
        a.at.unwrap_or_else(time::OffsetDateTime::now_utc),
    );
    opts.peer_name = name;
    opts.crls = crls;
    let verdict = Verdict {
        result: verify_chain(&leaf, &intermediates, &anchors, &opts),
    };
    let v = json!({
        "valid": verdict.valid(),
        "reason": verdict.reason(),
        "name": opts.peer_name.as_ref().map(ToString::to_string),
        "usage": format!("{:?}", opts.usage),
        "time": ca_core::fmt_time(opts.time),
        "crls_checked": opts.crls.len(),
        "explanation": explanation_json(verdict.explanation()),
    });
    out.emit(&v, || {
        let mut s = explanation_text(verdict.explanation(), out);
        match verdict.reason() {
            None => s.push_str(&format!(
                "{}\n",
                out.green(
                    &out.bold("VALID: the chain leads to a trusted root and every check passed")
                )
            )),
            Some(r) => s.push_str(&format!("{} {r}\n", out.red(&out.bold("NOT VALID:")))),
        }
        s
    });
    match verdict.reason() {
        None => Ok(()),
        Some(r) => Err(VerificationFailed(r).into()),
    }
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum UsageArg {
    /// TLS server (serverAuth, CA/Browser Forum rules).
    Server,
    /// TLS client (clientAuth).
    Client,
    /// Any purpose (RFC 5280 rules only).
    Any,
}

#[derive(clap::Args, Debug)]
pub struct VerifyArgs {
    /// Trust anchors (PEM bundle or DER): the roots you trust.
    #[arg(long)]
    pub root: PathBuf,
    /// Intermediate certificates (PEM bundle or DER), in any order (repeatable).
    #[arg(long = "intermediates", alias = "chain")]
    pub intermediates: Vec<PathBuf>,
    /// The name the certificate must be valid for (DNS name, IP address or email).
    #[arg(long)]
    pub name: Option<String>,
    /// What the certificate is for.
    #[arg(long, value_enum, default_value_t = UsageArg::Server)]
    pub usage: UsageArg,
    /// CRLs to check revocation against (PEM or DER, repeatable).
    #[arg(long = "crl")]
    pub crls: Vec<PathBuf>,
    /// Validate at this time (RFC 3339) instead of now.
    #[arg(long, value_parser = parse_time)]
    pub at: Option<time::OffsetDateTime>,
    /// The certificate to verify (PEM or DER; further certificates in a PEM
    /// bundle are used as intermediates).
    pub leaf: PathBuf,
}
