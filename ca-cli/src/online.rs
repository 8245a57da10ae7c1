//! Operator commands over the management API: `ca ...`, `cert ...`, `crl ...`.
//! Each prints the server's JSON with `--output json`, or a readable summary.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use ca_server::api::wire;
use clap::{Args, Subcommand, ValueEnum};
use hyper::Method;
use serde_json::Value;

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

#[derive(Args, Debug)]
pub struct CertArgs {
    #[command(flatten)]
    pub conn: ConnArgs,
    #[command(subcommand)]
    pub command: CertCommand,
}

// Variant names follow the profile names (tls-server, ...), hence the shared prefix.
#[allow(clippy::enum_variant_names)]
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProfileArg {
    #[value(name = "tls-server")]
    TlsServer,
    #[value(name = "tls-client")]
    TlsClient,
    #[value(name = "tls-server-client")]
    TlsServerClient,
}

impl ProfileArg {
    fn name(self) -> &'static str {
        match self {
            ProfileArg::TlsServer => "tls-server",
            ProfileArg::TlsClient => "tls-client",
            ProfileArg::TlsServerClient => "tls-server-client",
        }
    }
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusArg {
    Issued,
    Revoked,
    Expired,
}

#[derive(Subcommand, Debug)]
pub enum CertCommand {
    /// Issue a certificate from your CSR (your key stays with you).
    Issue {
        /// The CSR (PEM or DER).
        #[arg(long)]
        csr: PathBuf,
        /// Issuing CA (default: the server's issuing CA).
        #[arg(long)]
        ca: Option<String>,
        /// Certificate profile (named --cert-profile because --profile is the connection profile).
        #[arg(long = "cert-profile", value_enum, default_value_t = ProfileArg::TlsServer)]
        cert_profile: ProfileArg,
        #[arg(long)]
        validity_days: Option<u32>,
        /// Makes a retried request return the first result instead of issuing twice.
        #[arg(long)]
        idempotency_token: Option<String>,
        /// Write the certificate and chain (PEM, leaf first) here.
        #[arg(long)]
        out: Option<PathBuf>,
        #[arg(long)]
        force: bool,
    },
    /// Have the server make the key too; it comes back encrypted under your passphrase.
    Request {
        /// Names for the certificate: DNS:x, IP:y (repeatable).
        #[arg(long = "name", required = true)]
        names: Vec<String>,
        #[arg(long)]
        subject: Option<String>,
        #[arg(long)]
        ca: Option<String>,
        /// Certificate profile (named --cert-profile because --profile is the connection profile).
        #[arg(long = "cert-profile", value_enum, default_value_t = ProfileArg::TlsServer)]
        cert_profile: ProfileArg,
        #[arg(long, value_enum, default_value_t = crate::args::KeyAlg::EcP256)]
        key_algorithm: crate::args::KeyAlg,
        #[arg(long)]
        validity_days: Option<u32>,
        /// File holding the passphrase that encrypts the returned key (at least 8 characters).
        #[arg(long, env = "CA_KEY_PASSPHRASE_FILE")]
        passphrase_file: PathBuf,
        /// Where to write the encrypted private key (mode 0600).
        #[arg(long)]
        key_out: PathBuf,
        /// Where to write the certificate and chain (PEM).
        #[arg(long)]
        out: PathBuf,
        #[arg(long)]
        force: bool,
    },
    /// Get a certificate with its chain.
    Get {
        serial: String,
        #[arg(long)]
        ca: Option<String>,
        #[arg(long)]
        out: Option<PathBuf>,
        #[arg(long)]
        force: bool,
    },
    /// List certificates (all pages unless --limit).
    List {
        #[arg(long)]
        ca: Option<String>,
        #[arg(long, value_enum)]
        status: Option<StatusArg>,
        /// Only those expiring before this RFC 3339 time.
        #[arg(long, value_parser = crate::args::parse_time)]
        expiring_before: Option<time::OffsetDateTime>,
        /// At most this many (one page).
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Renew: a new certificate for the same names (and, without --csr, the same key).
    Renew {
        serial: String,
        #[arg(long)]
        ca: Option<String>,
        /// A CSR for a new key.
        #[arg(long)]
        csr: Option<PathBuf>,
        #[arg(long)]
        validity_days: Option<u32>,
        #[arg(long)]
        idempotency_token: Option<String>,
        #[arg(long)]
        out: Option<PathBuf>,
        #[arg(long)]
        force: bool,
    },
    /// Revoke a certificate.
    Revoke {
        serial: String,
        /// Reason: unspecified, keyCompromise, cACompromise, affiliationChanged,
        /// superseded, cessationOfOperation, certificateHold, privilegeWithdrawn...
        #[arg(long, default_value = "unspecified")]
        reason: String,
        #[arg(long)]
        ca: Option<String>,
    },
}

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

fn cert_text(c: &wire::CertificateSummary) -> String {
    let mut t = format!(
        "{}  {:<8} {}  [{}]  {} .. {}  (CA {})\n",
        c.serial,
        c.status,
        c.subject,
        c.sans.join(", "),
        c.not_before,
        c.not_after,
        c.ca_id
    );
    if let Some(r) = &c.revocation {
        t.push_str(&format!("    revoked {} ({})\n", r.revoked_at, r.reason));
    }
    t
}

/// Write a returned certificate + chain, if asked; say where.
fn save_bundle(
    c: &wire::Certificate,
    out_path: Option<&PathBuf>,
    force: bool,
    out: &Out,
) -> Result<()> {
    let pem = format!("{}{}", c.certificate, c.certificate_chain);
    if let Some(p) = out_path {
        write_output(p, pem.as_bytes(), false, force)?;
        out.line(format!("certificate and chain written to {}", p.display()));
    }
    Ok(())
}

fn ca_query(ca: &Option<String>) -> String {
    match ca {
        Some(c) => format!("?ca_id={}", urlencode(c)),
        None => String::new(),
    }
}

/// Percent-encode a path or query component (serials and ids are simple, but
/// user input must never change the request's shape).
fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
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

pub fn run_cert(a: &CertArgs, out: &Out) -> Result<()> {
    // Checked before connecting: with one path for both, writing the certificate
    // would replace the only copy of the server-made key.
    if let CertCommand::Request {
        key_out, out: path, ..
    } = &a.command
    {
        if same_path(key_out, path) {
            return Err(crate::exit::UsageError(format!(
                "--key-out and --out are the same file ({}): the certificate would replace the key",
                path.display()
            ))
            .into());
        }
    }
    let api = Api::new(a.conn.resolve()?)?;
    match &a.command {
        CertCommand::Issue {
            csr,
            ca,
            cert_profile,
            validity_days,
            idempotency_token,
            out: path,
            force,
        } => {
            let csr_pem = csr_as_pem(csr)?;
            refuse_existing(path.as_ref(), *force)?;
            // No --ca: the profile's default CA (the one `ca-server init` made for issuing).
            let ca = ca.clone().or_else(|| api.conn.default_ca_id.clone());
            let body = wire::IssueCertificate {
                ca_id: ca,
                csr: csr_pem,
                profile: Some(cert_profile.name().into()),
                validity_days: *validity_days,
                idempotency_token: idempotency_token.clone(),
            };
            let v: wire::Certificate = api.call(Method::POST, "/v1/certificates", Some(&body))?;
            save_bundle(&v, path.as_ref(), *force, out)?;
            out.emit(&v, || format!("issued\n{}", cert_text(&v.summary)));
        }
        CertCommand::Request {
            names,
            subject,
            ca,
            cert_profile,
            key_algorithm,
            validity_days,
            passphrase_file,
            key_out,
            out: path,
            force,
        } => {
            let passphrase = zeroize::Zeroizing::new(
                read_text(passphrase_file)?
                    .trim_end_matches(['\r', '\n'])
                    .to_string(),
            );
            if passphrase.chars().count() < 8 {
                bail!(
                    "the passphrase in {} is shorter than 8 characters",
                    passphrase_file.display()
                );
            }
            refuse_existing(Some(key_out), *force)?;
            refuse_existing(Some(path), *force)?;
            let alg: ca_core::KeyAlgorithm = (*key_algorithm).into();
            let ca = ca.clone().or_else(|| api.conn.default_ca_id.clone());
            // The body wipes the passphrase when dropped.
            let body = wire::RequestCertificate {
                ca_id: ca,
                names: names.clone(),
                subject: subject.clone(),
                profile: Some(cert_profile.name().into()),
                key_algorithm: alg.name().into(),
                validity_days: *validity_days,
                passphrase: passphrase.to_string(),
            };
            out.progress("the server is generating the key and the certificate");
            let mut v: wire::CertificateWithKey =
                api.call(Method::POST, "/v1/certificates/request", Some(&body))?;
            let key = zeroize::Zeroizing::new(std::mem::take(&mut v.private_key));
            if !key.contains("ENCRYPTED PRIVATE KEY") {
                bail!("the server did not return an encrypted private key");
            }
            if let Err(e) = write_output(key_out, key.as_bytes(), true, *force) {
                return Err(rescue_key(
                    &e,
                    key_out,
                    key.as_str(),
                    &v.certificate,
                    path,
                    *force,
                    out,
                ));
            }
            // The encrypted key is in the file; keep it out of the printed output.
            v.private_key = format!("written to {}", key_out.display());
            save_bundle(&v.certificate, Some(path), *force, out)?;
            out.emit(&v, || {
                format!(
                    "issued with a server-made key (encrypted key in {}, mode 0600)\n{}",
                    key_out.display(),
                    cert_text(&v.certificate.summary)
                )
            });
        }
        CertCommand::Get {
            serial,
            ca,
            out: path,
            force,
        } => {
            let v: wire::Certificate = api.get(&format!(
                "/v1/certificates/{}{}",
                urlencode(serial),
                ca_query(ca)
            ))?;
            save_bundle(&v, path.as_ref(), *force, out)?;
            out.emit(&v, || cert_text(&v.summary));
        }
        CertCommand::List {
            ca,
            status,
            expiring_before,
            limit,
        } => {
            let mut all = Vec::new();
            let mut cursor: Option<String> = None;
            loop {
                let mut q = Vec::new();
                if let Some(c) = ca {
                    q.push(format!("ca_id={}", urlencode(c)));
                }
                if let Some(st) = status {
                    q.push(format!(
                        "status={}",
                        match st {
                            StatusArg::Issued => "ISSUED",
                            StatusArg::Revoked => "REVOKED",
                            StatusArg::Expired => "EXPIRED",
                        }
                    ));
                }
                if let Some(t) = expiring_before {
                    q.push(format!(
                        "expiring_before={}",
                        urlencode(&ca_core::fmt_time(*t))
                    ));
                }
                if let Some(l) = limit {
                    q.push(format!("limit={l}"));
                }
                if let Some(c) = &cursor {
                    q.push(format!("cursor={}", urlencode(c)));
                }
                let path = if q.is_empty() {
                    "/v1/certificates".to_string()
                } else {
                    format!("/v1/certificates?{}", q.join("&"))
                };
                let page: wire::CertificateList = api.get(&path)?;
                all.extend(page.certificates);
                cursor = page.next_cursor;
                // --limit asks for one page; otherwise follow the cursor to the end.
                if cursor.is_none() || limit.is_some() {
                    break;
                }
                if all.len() > 1_000_000 {
                    bail!("more than a million certificates: narrow the listing with --ca, --status or --limit");
                }
                out.progress(&format!("{} certificates so far, fetching more", all.len()));
            }
            let v = wire::CertificateList {
                certificates: all,
                next_cursor: cursor,
            };
            out.emit(&v, || {
                if v.certificates.is_empty() {
                    "no certificates\n".into()
                } else {
                    v.certificates.iter().map(cert_text).collect()
                }
            });
        }
        CertCommand::Renew {
            serial,
            ca,
            csr,
            validity_days,
            idempotency_token,
            out: path,
            force,
        } => {
            refuse_existing(path.as_ref(), *force)?;
            let csr_pem = match csr {
                Some(p) => Some(csr_as_pem(p)?),
                None => None,
            };
            // No --ca: the profile's default CA (the one `ca-server init` made for issuing).
            let ca = ca.clone().or_else(|| api.conn.default_ca_id.clone());
            let body = wire::RenewCertificate {
                ca_id: ca,
                csr: csr_pem,
                validity_days: *validity_days,
                idempotency_token: idempotency_token.clone(),
            };
            let v: wire::Certificate = api.call(
                Method::POST,
                &format!("/v1/certificates/{}/renew", urlencode(serial)),
                Some(&body),
            )?;
            save_bundle(&v, path.as_ref(), *force, out)?;
            out.emit(&v, || format!("renewed\n{}", cert_text(&v.summary)));
        }
        CertCommand::Revoke { serial, reason, ca } => {
            // RFC 5280 names (keyCompromise) and codes go as the numeric code; anything
            // else (ACM's KEY_COMPROMISE style) goes as given for the server to judge.
            let reason = match reason.parse::<u8>() {
                Ok(code) => wire::RevocationReason::Code(code.into()),
                Err(_) => match reason.parse::<ca_core::crl::RevocationReason>() {
                    Ok(r) => wire::RevocationReason::Code(r.code().into()),
                    Err(_) => wire::RevocationReason::Name(reason.clone()),
                },
            };
            let body = wire::RevokeCertificate {
                ca_id: ca.clone(),
                reason,
            };
            let v: wire::CertificateSummary = api.call(
                Method::POST,
                &format!("/v1/certificates/{}/revoke", urlencode(serial)),
                Some(&body),
            )?;
            out.emit(&v, || format!("revoked\n{}", cert_text(&v)));
        }
    }
    Ok(())
}

/// Whether two output paths name the same file: the same file name in the same
/// (canonical) directory, or, when both exist, the same inode (a hard link).
fn same_path(a: &std::path::Path, b: &std::path::Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let parts = |p: &std::path::Path| {
        let dir = match p.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        // A directory that does not exist yet cannot be canonicalised; the
        // written form is the best there is (the write will fail anyway).
        let dir = std::fs::canonicalize(&dir).unwrap_or(dir);
        (dir, p.file_name().map(ToOwned::to_owned))
    };
    if parts(a) == parts(b) {
        return true;
    }
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

/// The key file could not be written after the server issued: the encrypted key
/// exists nowhere else, so print it on stdout rather than drop it, still save
/// the certificate if possible, and fail (exit 1).
fn rescue_key(
    e: &anyhow::Error,
    key_out: &std::path::Path,
    key_pem: &str,
    v: &wire::Certificate,
    cert_path: &PathBuf,
    force: bool,
    out: &Out,
) -> anyhow::Error {
    use std::io::Write;
    eprintln!(
        "warning: cannot write the key to {}: {e:#}. The encrypted private key follows on \
         standard output; save it now, it cannot be fetched again.",
        key_out.display()
    );
    let mut stdout = std::io::stdout().lock();
    let printed = stdout
        .write_all(key_pem.as_bytes())
        .and_then(|()| stdout.flush());
    drop(stdout);
    let cert = save_bundle(v, Some(cert_path), force, out);
    let mut err = anyhow::anyhow!(
        "the certificate was issued but its key could not be written to {}: {e:#}",
        key_out.display()
    );
    if let Err(pe) = printed {
        err = err.context(format!(
            "printing the key on standard output failed too: {pe}"
        ));
    }
    if let Err(ce) = cert {
        err = err.context(format!("the certificate was not saved either: {ce:#}"));
    }
    err
}

fn refuse_existing(path: Option<&PathBuf>, force: bool) -> Result<()> {
    if let Some(p) = path {
        if !force && p.exists() {
            bail!(
                "{} already exists (use --force to overwrite it)",
                p.display()
            );
        }
    }
    Ok(())
}

/// A CSR file as PEM (the API's format), checked locally first so a wrong file
/// gets a clear local message rather than a server refusal.
fn csr_as_pem(path: &std::path::Path) -> Result<String> {
    let data = crate::files::read_input(path)?;
    let der = ca_core::pem::der_or_pem("CERTIFICATE REQUEST", &data)
        .with_context(|| format!("{} is not a PEM CERTIFICATE REQUEST", path.display()))?;
    x509_cert::request::CertReq::try_from(der.as_slice())
        .map_err(|e| anyhow::anyhow!("{} is not a CSR: {e}", path.display()))?;
    Ok(ca_core::pem::encode("CERTIFICATE REQUEST", &der))
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
