//! The command tree (clap derive) and dispatch.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{CommandFactory, Parser, Subcommand, ValueEnum};

use crate::output::{Out, OutputFormat};

#[derive(Parser, Debug)]
#[command(
    name = "ca-cli",
    version,
    about = "Operator tool and API client of the private CA, with a narrated walk-through",
    long_about = "Operator tool and API client of the private CA.\n\n\
        Local tools (no server): key generate, csr create, inspect, verify, walkthrough.\n\
        Online (management API over mutual TLS): ca, cert, crl. Connection settings come from\n\
        --server/--client-cert/--client-key/--root, from CA_SERVER/CA_CLIENT_CERT/CA_CLIENT_KEY/CA_ROOT,\n\
        or from the profile.toml that `ca-server init` writes (--profile, CA_PROFILE).\n\n\
        Exit codes: 0 ok, 1 error, 2 usage error, 3 verification failed."
)]
pub struct Cli {
    /// Output format: readable text, or one JSON document for scripts.
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,

    /// Never colour the output (colour is only used on a terminal anyway; NO_COLOR works too).
    #[arg(long, global = true)]
    pub no_color: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Private keys: generate a key pair locally.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Certificate signing requests: create one locally from your key.
    #[command(subcommand)]
    Csr(CsrCommand),
    /// Show a certificate, CSR or CRL (PEM or DER) in readable form.
    Inspect(InspectArgs),
    /// Validate a certificate chain with ca-core's validator and explain the verdict.
    Verify(VerifyArgs),
    /// The public-key story, step by step: Bob, Alice, the CA and Mallory.
    Walkthrough(crate::walkthrough::WalkthroughArgs),
    /// Certificate authorities on the server (create, list, describe, csr, import, enable, disable).
    Ca(crate::online::CaArgs),
    /// Certificates on the server (issue, request, get, list, renew, revoke).
    Cert(crate::online::CertArgs),
    /// Certificate revocation lists (fetch from the public listener, inspect).
    Crl(crate::online::CrlArgs),
    /// Access policies on the server (list, get, put, delete).
    Policy(crate::admin::PolicyArgs),
    /// The server's audit trail (list with filters).
    Audit(crate::admin::AuditArgs),
    /// CA aliases (list, set, rotate the CA behind one).
    Alias(crate::admin::AliasArgs),
    /// OCSP: ask a CA's responder about a certificate and verify the signed answer.
    Ocsp(crate::ocsp::OcspArgs),
    /// Print a shell completion script.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Subcommand, Debug)]
pub enum KeyCommand {
    /// Generate a key pair and write the private key (PKCS#8 PEM, mode 0600).
    Generate(KeyGenerateArgs),
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyAlg {
    #[value(name = "ec-p256")]
    EcP256,
    #[value(name = "ec-p384")]
    EcP384,
    #[value(name = "rsa-2048")]
    Rsa2048,
    #[value(name = "rsa-3072")]
    Rsa3072,
    #[value(name = "rsa-4096")]
    Rsa4096,
    #[value(name = "ed25519")]
    Ed25519,
}

impl From<KeyAlg> for ca_core::KeyAlgorithm {
    fn from(a: KeyAlg) -> Self {
        use ca_core::KeyAlgorithm as K;
        match a {
            KeyAlg::EcP256 => K::EcdsaP256,
            KeyAlg::EcP384 => K::EcdsaP384,
            KeyAlg::Rsa2048 => K::Rsa2048,
            KeyAlg::Rsa3072 => K::Rsa3072,
            KeyAlg::Rsa4096 => K::Rsa4096,
            KeyAlg::Ed25519 => K::Ed25519,
        }
    }
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

#[derive(clap::Args, Debug)]
pub struct InspectArgs {
    /// Files to show (certificate, bundle, CSR or CRL; PEM or DER; `-` for stdin).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
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

/// Clap's parser for `--subject`: a failure here is a usage error (exit 2).
pub fn parse_subject(s: &str) -> Result<x509_cert::name::Name, String> {
    if s.trim().is_empty() {
        return Err(
            "the subject is empty (expected e.g. CN=www.example.internal,O=Example)".into(),
        );
    }
    // Not `Name::from_str` directly: numeric attribute types such as
    // `2.4294967296=x` overflow (panic) inside const-oid. ca-core's parser
    // allows only known short names and runs check_subject.
    ca_core::names::parse_subject(s)
        .map_err(|e| format!("not an RFC 4514 name like CN=host,O=Org: {e}"))
}

pub fn parse_san(s: &str) -> Result<ca_core::SanEntry, String> {
    ca_core::SanEntry::parse(s).map_err(|e| e.to_string())
}

pub fn parse_time(s: &str) -> Result<time::OffsetDateTime, String> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map_err(|e| format!("not an RFC 3339 time like 2026-01-31T12:00:00Z: {e}"))
}

pub fn run(cli: Cli, out: &Out) -> Result<()> {
    match cli.command {
        Command::Key(KeyCommand::Generate(a)) => crate::local::key_generate(&a, out),
        Command::Csr(CsrCommand::Create(a)) => crate::local::csr_create(&a, out),
        Command::Inspect(a) => crate::inspect::run(&a, out),
        Command::Verify(a) => crate::verify::run(&a, out),
        Command::Walkthrough(a) => crate::walkthrough::run(&a, out),
        Command::Ca(a) => crate::online::run_ca(&a, out),
        Command::Cert(a) => crate::online::run_cert(&a, out),
        Command::Crl(a) => crate::online::run_crl(&a, out),
        Command::Policy(a) => crate::admin::run_policy(&a, out),
        Command::Audit(a) => crate::admin::run_audit(&a, out),
        Command::Alias(a) => crate::admin::run_alias(&a, out),
        Command::Ocsp(a) => crate::ocsp::run(&a, out),
        Command::Completions { shell } => {
            let mut cmd = Cli::command();
            // Generated into memory: clap_complete panics on a failed write, and
            // stdout may be a closed pipe.
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut cmd, "ca-cli", &mut script);
            crate::output::write_stdout(&script).context("writing standard output")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_tree_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn online_flags_do_not_clash() {
        for args in [
            &[
                "ca-cli",
                "cert",
                "issue",
                "--csr",
                "r.csr",
                "--cert-profile",
                "tls-client",
                "--profile",
                "p.toml",
            ][..],
            &[
                "ca-cli",
                "cert",
                "--server",
                "https://h:1",
                "request",
                "--name",
                "a.example",
                "--passphrase-file",
                "p",
                "--key-out",
                "k",
                "--out",
                "c",
            ],
            &[
                "ca-cli",
                "ca",
                "create",
                "--type",
                "root",
                "--subject",
                "CN=R",
                "--root",
                "root.pem",
            ],
            &["ca-cli", "crl", "fetch", "--url", "http://h/crl"],
            &[
                "ca-cli",
                "walkthrough",
                "--yes",
                "--server",
                "https://h:1",
                "--profile",
                "p.toml",
            ],
        ] {
            if let Err(e) = Cli::try_parse_from(args) {
                panic!("{args:?}: {e}");
            }
        }
    }

    #[test]
    fn subjects_and_sans_parse() {
        assert!(parse_subject("CN=bob.example,O=Example").is_ok());
        assert!(parse_subject("").is_err());
        assert!(parse_subject("garbage").is_err());
        // Numeric attribute types used to overflow (panic) in const-oid.
        assert!(parse_subject("2.4294967296=x").is_err());
        assert!(parse_subject("CN=a,2.5.4.3=b").is_err());
        assert!(parse_san("DNS:bob.example").is_ok());
        assert!(parse_san("IP:not-an-ip").is_err());
    }
}
