//! `ca ...`: creating, listing, describing and managing CAs, their external
//! signing (CSR out, certificate in) and their certificates.

use std::path::PathBuf;

use anyhow::Result;
use ca_server::api::wire;
use clap::{Args, Subcommand, ValueEnum};
use hyper::Method;
use serde_json::Value;

use super::urlencode;
use crate::client::{Api, ConnArgs};
use crate::files::{read_text, write_or_stdout, write_output};
use crate::output::Out;

#[derive(Args, Debug)]
pub struct CaArgs {
    #[command(flatten)]
    pub conn: ConnArgs,
    #[command(subcommand)]
    pub command: CaCommand,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum CaType {
    Root,
    Subordinate,
}

#[derive(Subcommand, Debug)]
pub enum CaCommand {
    /// Create a CA: a root, or a subordinate signed by one of ours (or, with
    /// --external, waiting for an outside signature: see `ca csr` and `ca import`).
    Create {
        #[arg(long = "type", value_enum)]
        ca_type: CaType,
        /// Subject, e.g. "CN=Example Issuing CA,O=Example".
        #[arg(long, value_parser = crate::args::parse_subject)]
        subject: x509_cert::name::Name,
        /// Key algorithm of the CA's key (generated inside the server).
        #[arg(long, value_enum, default_value_t = crate::args::KeyAlg::EcP256)]
        key_algorithm: crate::args::KeyAlg,
        /// The CA that signs this subordinate.
        #[arg(long)]
        parent: Option<String>,
        /// Leave the CA pending an external signature (subordinate only).
        #[arg(long)]
        external: bool,
        #[arg(long)]
        validity_days: Option<u32>,
        #[arg(long)]
        path_len: Option<u8>,
        /// Where the server keeps the CA's key: `software` (sealed into its
        /// store) or `pkcs11` (made inside its HSM token, never extractable).
        #[arg(long, value_parser = ["software", "pkcs11"], default_value = "software")]
        key_storage: String,
        /// Adopt the existing token key with this label (needs
        /// --key-storage pkcs11; --key-algorithm must match the key).
        #[arg(long)]
        key_label: Option<String>,
        /// Name constraints (RFC 5280 §4.2.1.10), repeatable: DNS subtrees
        /// the CA may certify (`example.com` covers its subdomains)...
        #[arg(long = "permit-dns", value_name = "DOMAIN")]
        permit_dns: Vec<String>,
        /// ...DNS subtrees it may not...
        #[arg(long = "exclude-dns", value_name = "DOMAIN")]
        exclude_dns: Vec<String>,
        /// ...IP ranges it may certify (CIDR, e.g. 10.0.0.0/8)...
        #[arg(long = "permit-ip", value_name = "CIDR")]
        permit_ip: Vec<String>,
        /// ...and IP ranges it may not.
        #[arg(long = "exclude-ip", value_name = "CIDR")]
        exclude_ip: Vec<String>,
        /// Run no OCSP responder for this CA: what it issues names only its
        /// CRL (`--ocsp false`).
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
        ocsp: bool,
    },
    /// List CAs.
    List,
    /// Show one CA.
    Describe { id: String },
    /// Get the CSR of a CA created with --external, to have it signed elsewhere.
    Csr {
        id: String,
        #[arg(long)]
        out: Option<PathBuf>,
        #[arg(long)]
        force: bool,
    },
    /// Import the externally signed certificate of a pending CA.
    Import {
        id: String,
        /// The CA's signed certificate (PEM).
        #[arg(long)]
        certificate: PathBuf,
        /// Its issuer chain up to the root (PEM bundle, issuer first).
        #[arg(long)]
        chain: PathBuf,
    },
    /// Let a CA issue again.
    Enable { id: String },
    /// Stop a CA from issuing (it still answers for what it issued).
    Disable { id: String },
    /// Rotate the CA behind an alias (e.g. `issuing`): a new intermediate takes
    /// over issuing, the old one is retired but keeps its CRL and OCSP.
    Rotate { alias: String },
    /// Get a CA's certificate and chain.
    Certificate {
        id: String,
        #[arg(long)]
        out: Option<PathBuf>,
        #[arg(long)]
        force: bool,
    },
}

/// An optional field as text: `-` when absent.
fn or_dash(v: Option<&str>) -> &str {
    v.unwrap_or("-")
}

fn ca_text(c: &wire::CaDescription) -> String {
    format!(
        "{}  {:<11} {:<19} {}  ({}{}, {} .. {})\n",
        c.id,
        c.ca_type,
        c.status,
        c.subject,
        c.key_algorithm,
        match &c.key_label {
            Some(l) => format!(" in PKCS#11 token as {l:?}"),
            None => String::new(),
        },
        or_dash(c.not_before.as_deref()),
        or_dash(c.not_after.as_deref())
    )
}

pub fn run_ca(a: &CaArgs, out: &Out) -> Result<()> {
    let api = Api::new(a.conn.resolve()?)?;
    match &a.command {
        CaCommand::Create {
            ca_type,
            subject,
            key_algorithm,
            parent,
            external,
            validity_days,
            path_len,
            key_storage,
            key_label,
            permit_dns,
            exclude_dns,
            permit_ip,
            exclude_ip,
            ocsp,
        } => {
            let constrained = !(permit_dns.is_empty()
                && exclude_dns.is_empty()
                && permit_ip.is_empty()
                && exclude_ip.is_empty());
            let alg: ca_core::KeyAlgorithm = (*key_algorithm).into();
            let body = wire::CreateCa {
                ca_type: match ca_type {
                    CaType::Root => "ROOT",
                    CaType::Subordinate => "SUBORDINATE",
                }
                .into(),
                subject: subject.to_string(),
                key_algorithm: alg.name().into(),
                parent_ca_id: parent.clone(),
                external: *external,
                validity_days: *validity_days,
                path_len: *path_len,
                name_constraints: constrained.then(|| wire::NameConstraints {
                    permitted_dns: permit_dns.clone(),
                    excluded_dns: exclude_dns.clone(),
                    permitted_ip: permit_ip.clone(),
                    excluded_ip: exclude_ip.clone(),
                }),
                key_storage: Some(key_storage.clone()),
                key_label: key_label.clone(),
                ocsp: (!*ocsp).then_some(false),
            };
            out.progress(if key_label.is_some() {
                "creating the CA (with the token key named)"
            } else if key_storage == "pkcs11" {
                "creating the CA (the server's HSM generates its key)"
            } else {
                "creating the CA (the server generates its key)"
            });
            let v: wire::CaDescription = api.call(Method::POST, "/v1/cas", Some(&body))?;
            out.emit(&v, || format!("created CA\n{}", ca_text(&v)));
        }
        CaCommand::Rotate { alias } => crate::admin::rotate_alias(&api, alias, out)?,
        CaCommand::List => {
            let v: wire::CaList = api.get("/v1/cas")?;
            out.emit(&v, || {
                if v.certificate_authorities.is_empty() {
                    "no CAs\n".into()
                } else {
                    v.certificate_authorities.iter().map(ca_text).collect()
                }
            });
        }
        CaCommand::Describe { id } => {
            let v: wire::CaDescription = api.get(&format!("/v1/cas/{}", urlencode(id)))?;
            out.emit(&v, || {
                // Every field, by its API name, in the order the JSON has them.
                let mut t = String::new();
                if let Ok(Value::Object(m)) = serde_json::to_value(&v) {
                    for (k, field) in &m {
                        let shown = match field {
                            Value::String(s) => s.clone(),
                            Value::Null => "-".into(),
                            other => other.to_string(),
                        };
                        t.push_str(&format!("{k:>14}: {shown}\n"));
                    }
                }
                t
            });
        }
        CaCommand::Csr {
            id,
            out: path,
            force,
        } => {
            let v: wire::CaCsr = api.get(&format!("/v1/cas/{}/csr", urlencode(id)))?;
            let csr = &v.csr;
            if out.is_json() {
                if let Some(p) = path {
                    write_output(p, csr.as_bytes(), false, *force)?;
                }
                out.json(&v);
            } else {
                write_or_stdout(path.as_deref(), csr.as_bytes(), *force)?;
            }
        }
        CaCommand::Import {
            id,
            certificate,
            chain,
        } => {
            let body = wire::ImportCaCertificate {
                certificate: read_text(certificate)?,
                certificate_chain: read_text(chain)?,
            };
            let v: wire::CaDescription = api.call(
                Method::POST,
                &format!("/v1/cas/{}/certificate", urlencode(id)),
                Some(&body),
            )?;
            out.emit(&v, || format!("imported\n{}", ca_text(&v)));
        }
        CaCommand::Enable { id } | CaCommand::Disable { id } => {
            let status = if matches!(a.command, CaCommand::Enable { .. }) {
                "ACTIVE"
            } else {
                "DISABLED"
            };
            let v: wire::CaDescription = api.call(
                Method::PATCH,
                &format!("/v1/cas/{}", urlencode(id)),
                Some(&wire::UpdateCaStatus {
                    status: status.into(),
                }),
            )?;
            out.emit(&v, || ca_text(&v));
        }
        CaCommand::Certificate {
            id,
            out: path,
            force,
        } => {
            let v: wire::CaCertificate =
                api.get(&format!("/v1/cas/{}/certificate", urlencode(id)))?;
            let pem = format!("{}{}", v.certificate, v.certificate_chain);
            if out.is_json() {
                if let Some(p) = path {
                    write_output(p, pem.as_bytes(), false, *force)?;
                }
                out.json(&v);
            } else {
                write_or_stdout(path.as_deref(), pem.as_bytes(), *force)?;
            }
        }
    }
    Ok(())
}
