//! Local tools that need no server: `key generate` and `csr create`.

use anyhow::{Context, Result};
use ca_core::keys::{KeyAlgorithm, Signer, SoftwareKey};
use serde_json::json;

use std::path::PathBuf;

use clap::Subcommand;

use crate::args::{parse_san, parse_subject, KeyAlg};
use crate::files::{read_text, write_or_stdout, write_output};
use crate::output::{colon_hex, sha256, Out};

pub fn key_generate(a: &KeyGenerateArgs, out: &Out) -> Result<()> {
    let alg: KeyAlgorithm = a.algorithm.into();
    // Refuse before the (possibly slow) generation rather than after it.
    for p in std::iter::once(&a.out).chain(a.public_out.as_ref()) {
        if !a.force && p.exists() {
            anyhow::bail!(
                "{} already exists (use --force to overwrite it)",
                p.display()
            );
        }
    }
    if matches!(alg, KeyAlgorithm::Rsa3072 | KeyAlgorithm::Rsa4096) {
        out.progress(&format!(
            "generating a {alg} key (this takes a few seconds)"
        ));
    }
    let key = SoftwareKey::generate(alg).with_context(|| format!("generating a {alg} key"))?;
    let pem = key.to_pkcs8_pem();
    write_output(&a.out, pem.as_bytes(), true, a.force)?;
    if let Some(p) = &a.public_out {
        write_output(p, key.public_key_pem().as_bytes(), false, a.force)?;
    }
    let fp = sha256(key.public_key_der());
    let v = json!({
        "algorithm": alg.name(),
        "key": key.kind().to_string(),
        "private_key_file": a.out.display().to_string(),
        "public_key_file": a.public_out.as_ref().map(|p| p.display().to_string()),
        "public_key_sha256": crate::output::hex(&fp),
        "public_key_pem": key.public_key_pem(),
    });
    out.emit(&v, || {
        let mut s = format!(
            "Generated an {} key pair.\n  private key: {} (mode 0600: keep it to yourself)\n",
            key.kind(),
            a.out.display()
        );
        if let Some(p) = &a.public_out {
            s.push_str(&format!("  public key:  {}\n", p.display()));
        }
        s.push_str(&format!("  public key SHA-256: {}\n", colon_hex(&fp)));
        s
    });
    Ok(())
}

/// Load a PKCS#8 private key, with a hint when the file is something else.
pub fn load_key(path: &std::path::Path) -> Result<SoftwareKey> {
    let text = read_text(path)?;
    let key = SoftwareKey::from_pkcs8_pem(&text).map_err(|e| {
        let hint =
            if text.contains("BEGIN EC PRIVATE KEY") || text.contains("BEGIN RSA PRIVATE KEY") {
                " (this is a traditional key; convert it with `openssl pkcs8 -topk8 -nocrypt`)"
            } else if text.contains("ENCRYPTED PRIVATE KEY") {
                " (encrypted keys are not supported; decrypt it with `openssl pkcs8`)"
            } else {
                ""
            };
        anyhow::anyhow!(
            "{} is not a usable PKCS#8 private key: {e}{hint}",
            path.display()
        )
    })?;
    Ok(key)
}

pub fn csr_create(a: &CsrCreateArgs, out: &Out) -> Result<()> {
    let key = load_key(&a.key)?;
    let der = ca_core::create_csr(&key, &a.subject, &a.sans).context("building the CSR")?;
    // Check our own output the way the CA will: it must parse and its signature
    // (the proof of possession) must verify.
    let parsed =
        ca_core::parse_csr(&der).context("the CSR just built does not pass the CA's checks")?;
    let pem = ca_core::pem::encode("CERTIFICATE REQUEST", &der);
    let to_file = a.out.as_ref().filter(|p| p.as_os_str() != "-");
    if out.is_json() {
        if let Some(p) = to_file {
            write_or_stdout(Some(p), pem.as_bytes(), a.force)?;
        }
        let v = json!({
            "subject": a.subject.to_string(),
            "sans": a.sans.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "key": parsed.key_kind.to_string(),
            "file": to_file.map(|p| p.display().to_string()),
            "csr_pem": pem,
        });
        out.json(&v);
    } else {
        write_or_stdout(to_file.map(|p| p.as_path()), pem.as_bytes(), a.force)?;
        if let Some(p) = to_file {
            crate::output::print(&format!(
                "Wrote a CSR for {} ({} key, {} SAN{}) to {}\n",
                a.subject,
                parsed.key_kind,
                a.sans.len(),
                if a.sans.len() == 1 { "" } else { "s" },
                p.display()
            ));
        }
    }
    Ok(())
}

#[derive(Subcommand, Debug)]
pub enum KeyCommand {
    /// Generate a key pair and write the private key (PKCS#8 PEM, mode 0600).
    Generate(KeyGenerateArgs),
}

#[derive(clap::Args, Debug)]
pub struct KeyGenerateArgs {
    /// Key algorithm.
    #[arg(long, short = 'a', value_enum, default_value_t = KeyAlg::EcP256)]
    pub algorithm: KeyAlg,
    /// Where to write the private key (created with mode 0600).
    #[arg(long)]
    pub out: PathBuf,
    /// Also write the public key (SubjectPublicKeyInfo PEM) here.
    #[arg(long)]
    pub public_out: Option<PathBuf>,
    /// Replace existing files.
    #[arg(long)]
    pub force: bool,
}

#[derive(Subcommand, Debug)]
pub enum CsrCommand {
    /// Create a CSR signed with your private key (proof of possession).
    Create(CsrCreateArgs),
}

#[derive(clap::Args, Debug)]
pub struct CsrCreateArgs {
    /// Your private key (PKCS#8 PEM, as `key generate` writes it).
    #[arg(long)]
    pub key: PathBuf,
    /// Subject distinguished name, RFC 4514 form, e.g. "CN=www.example.internal,O=Example".
    #[arg(long, value_parser = parse_subject)]
    pub subject: x509_cert::name::Name,
    /// Subject alternative name: DNS:name, IP:address or email:address (repeatable).
    #[arg(long = "san", value_parser = parse_san)]
    pub sans: Vec<ca_core::SanEntry>,
    /// Where to write the CSR (PEM); standard output if omitted.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Replace an existing output file.
    #[arg(long)]
    pub force: bool,
}
