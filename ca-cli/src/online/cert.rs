//! `cert ...`: issuing from a CSR or with a server-made key, getting, listing,
//! renewing and revoking certificates, and writing what comes back safely.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use ca_server::api::wire;
use clap::{Args, Subcommand, ValueEnum};
use hyper::Method;

use super::urlencode;
use crate::client::{Api, ConnArgs};
use crate::files::{read_text, write_output};
use crate::output::Out;

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
