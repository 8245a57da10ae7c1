//! `crl ...`: fetching a CRL as a relying party does (from a URL or a
//! certificate's distribution point) and showing one.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};

use crate::files::{write_or_stdout, write_output};
use crate::output::Out;

#[derive(Args, Debug)]
pub struct CrlArgs {
    #[command(subcommand)]
    pub command: CrlCommand,
}

#[derive(Subcommand, Debug)]
pub enum CrlCommand {
    /// Download a CRL from the public listener: from --url, or from the CRL
    /// distribution point of a certificate (what a relying party does).
    Fetch {
        #[arg(long, conflicts_with = "cert", required_unless_present = "cert")]
        url: Option<String>,
        /// A certificate whose cRLDistributionPoints URL to follow.
        #[arg(long)]
        cert: Option<PathBuf>,
        /// Where to write the CRL (PEM); standard output if omitted.
        #[arg(long)]
        out: Option<PathBuf>,
        #[arg(long)]
        force: bool,
    },
    /// Show a CRL (same as `inspect`).
    Inspect { file: PathBuf },
}

/// The first http:// CRL distribution point of a certificate.
pub fn crl_url_of(cert_der: &[u8]) -> Result<String> {
    use der::Decode;
    use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName};
    let cert = x509_cert::Certificate::from_der(cert_der).context("certificate does not decode")?;
    for ext in cert.tbs_certificate.extensions.iter().flatten() {
        if ext.extn_id == ca_core::oids::CRL_DISTRIBUTION_POINTS {
            let dps =
                x509_cert::ext::pkix::CrlDistributionPoints::from_der(ext.extn_value.as_bytes())
                    .context("cRLDistributionPoints does not decode")?;
            for dp in dps.0 {
                if let Some(DistributionPointName::FullName(names)) = dp.distribution_point {
                    for n in names {
                        if let GeneralName::UniformResourceIdentifier(u) = n {
                            if u.as_str().starts_with("http://") {
                                return Ok(u.to_string());
                            }
                        }
                    }
                }
            }
        }
    }
    bail!("the certificate names no http:// CRL distribution point")
}

pub fn run_crl(a: &CrlArgs, out: &Out) -> Result<()> {
    match &a.command {
        CrlCommand::Fetch {
            url,
            cert,
            out: path,
            force,
        } => {
            let url = match (url, cert) {
                (Some(u), _) => u.clone(),
                (None, Some(c)) => {
                    let certs = crate::verify::load_certs(c)?;
                    let first = certs
                        .first()
                        .with_context(|| format!("{} holds no certificate", c.display()))?;
                    crl_url_of(first)?
                }
                // clap requires one of them; kept as a usage error should that change.
                (None, None) => {
                    return Err(crate::exit::UsageError("give --url or --cert".into()).into())
                }
            };
            out.progress(&format!("fetching {url}"));
            let body = crate::client::http_get(&url)?;
            let der =
                ca_core::pem::der_or_pem("X509 CRL", &body).context("the answer is not a CRL")?;
            let v = crate::inspect::describe(&crate::inspect::Object::Crl(der.clone()))
                .context("the answer is not a CRL")?;
            let pem = ca_core::pem::encode("X509 CRL", &der);
            if out.is_json() {
                if let Some(p) = path {
                    write_output(p, pem.as_bytes(), false, *force)?;
                }
                let mut v = v;
                v["url"] = url.into();
                out.json(&v);
            } else {
                let wrote = write_or_stdout(path.as_deref(), pem.as_bytes(), *force)?;
                if wrote {
                    crate::output::print(&crate::inspect::render(&v, out));
                }
            }
            Ok(())
        }
        CrlCommand::Inspect { file } => crate::inspect::run(
            &crate::inspect::InspectArgs {
                files: vec![file.clone()],
            },
            out,
        ),
    }
}
