//! The command tree (clap derive) and dispatch.

use anyhow::{Context, Result};
use clap::{CommandFactory, Parser, Subcommand};

use crate::inspect::InspectArgs;
use crate::local::{CsrCommand, KeyCommand};
use crate::output::{Out, OutputFormat};
use crate::verify::VerifyArgs;

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
    /// ACME: external account binding keys, accounts, orders.
    Acme(crate::acme::AcmeArgs),
    /// Webhooks the server POSTs its events to (create, list, delete).
    Webhook(crate::events::WebhookArgs),
    /// Events: certificates issued, revoked or approaching expiration, CAs
    /// approaching expiration, CRLs published (list).
    Events(crate::events::EventsArgs),
    /// OCSP: ask a CA's responder about a certificate and verify the signed answer.
    Ocsp(crate::ocsp::OcspArgs),
    /// The server's health checks (exit 3 when one fails).
    Health(crate::admin::ConnOnlyArgs),
    /// The identity the server sees in your client certificate.
    Whoami(crate::admin::ConnOnlyArgs),
    /// Trust the root where relying parties look (system store, NSS for
    /// Chromium and Firefox, a Java keystore), or stop trusting it.
    Trust(crate::trust::TrustArgs),
    /// Print a shell completion script.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
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
        Command::Health(a) => crate::admin::run_health(&a, out),
        Command::Whoami(a) => crate::admin::run_whoami(&a, out),
        Command::Trust(a) => crate::trust::run(&a, out),
        Command::Policy(a) => crate::admin::run_policy(&a, out),
        Command::Audit(a) => crate::admin::run_audit(&a, out),
        Command::Alias(a) => crate::admin::run_alias(&a, out),
        Command::Ocsp(a) => crate::ocsp::run(&a, out),
        Command::Acme(a) => crate::acme::run(&a, out),
        Command::Webhook(a) => crate::events::run_webhook(&a, out),
        Command::Events(a) => crate::events::run_events(&a, out),
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
    use crate::args::{parse_san, parse_subject};

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
