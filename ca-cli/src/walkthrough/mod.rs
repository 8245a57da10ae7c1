//! `ca-cli walkthrough`: the public-key story told one step at a time, each step
//! done for real and checked. Offline, the CA runs in-process through ca-core;
//! online (`--server`), the CA's part goes through a running ca-server's API.
//!
//! Every step records the facts it established; a fact that does not hold (a
//! decryption that differs, Mallory accepted, a revoked certificate still
//! valid) fails the run with exit code 1, so tests can rely on the exit code
//! and on the `--output json` facts.

mod backend;
mod story;

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;

use anyhow::{anyhow, bail, Context, Result};
use ca_core::keys::SoftwareKey;
use ca_core::verify::{verify_chain, PeerName, Usage, VerifyOptions};
use der::{Decode, Encode};
use serde_json::{json, Map, Value};
use time::OffsetDateTime;
use x509_cert::name::Name;
use x509_cert::Certificate;

use crate::output::{hex, Out};
use crate::verify::Verdict;

use backend::{CaBackend, OfflineCa, OnlineCa};
use story::story;

#[derive(clap::Args, Debug)]
pub struct WalkthroughArgs {
    /// Run straight through without pausing between steps.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Online mode: do the CA's part through a running ca-server, with the
    /// connection settings of `ca`/`cert` (implied by --server or CA_SERVER).
    /// Without it, everything runs in-process through ca-core (offline mode).
    #[arg(long)]
    pub online: bool,
    #[command(flatten)]
    pub conn: crate::client::ConnArgs,
    /// The message Alice sends Bob (any size: it is envelope-encrypted).
    #[arg(
        long,
        default_value = "Hello Bob, this is Alice. Meet me at noon by the old oak."
    )]
    pub message: String,
    /// Keep what the walk-through made (certificates, CSRs, CRLs, Bob's keys
    /// with mode 0600) in this new directory, to explore with `inspect` and `verify`.
    #[arg(long)]
    pub keep: Option<PathBuf>,
}

/// Bob's name, as his certificate carries it and Alice expects it.
const BOB: &str = "bob.example";

/// Column at which the narration wraps (comfortable in an 100-column terminal).
const WIDTH: usize = 96;

/// One step's record.
struct Step {
    number: u32,
    title: &'static str,
    facts: Map<String, Value>,
    failures: Vec<String>,
}

impl Step {
    fn fact(&mut self, key: &str, v: impl Into<Value>) {
        self.facts.insert(key.to_string(), v.into());
    }
    /// Record an expected fact; a false one fails the step (and the run).
    fn expect(&mut self, ok: bool, what: impl Into<String>) {
        if !ok {
            self.failures.push(what.into());
        }
    }
}

/// Tells the story in text (or stays quiet in JSON mode) and collects the steps.
struct Narrator<'a> {
    out: &'a Out,
    interactive: bool,
    steps: Vec<Value>,
    failures: Vec<String>,
    quit: bool,
}

impl<'a> Narrator<'a> {
    fn begin(&self, number: u32, title: &'static str) -> Step {
        self.out.line("");
        self.out
            .line(self.out.bold(&format!("Step {number}. {title}")));
        Step {
            number,
            title,
            facts: Map::new(),
            failures: Vec::new(),
        }
    }

    /// What is happening, in plain words.
    fn say(&self, text: &str) {
        self.out
            .line(format!("  {}", crate::output::wrap(text, WIDTH - 2, "  ")));
    }

    /// A fact, shown as `name: value`.
    fn show(&self, label: &str, value: impl std::fmt::Display) {
        self.out.line(format!(
            "    {} {value}",
            self.out.dim(&format!("{label}:"))
        ));
    }

    fn ok(&self, text: &str) {
        self.out.line(format!("  {} {text}", self.out.green("✓")));
    }

    fn bad(&self, text: &str) {
        self.out.line(format!("  {} {text}", self.out.red("✗")));
    }

    /// Why the step matters.
    fn why(&self, text: &str) {
        // Wrap before painting, so escape codes do not count as columns.
        let wrapped = crate::output::wrap(&format!("Why it matters: {text}"), WIDTH - 2, "  ");
        let rest = wrapped.strip_prefix("Why it matters:").unwrap_or(&wrapped);
        self.out
            .line(format!("  {}{rest}", self.out.cyan("Why it matters:")));
    }

    fn end(&mut self, step: Step) {
        let ok = step.failures.is_empty();
        for f in &step.failures {
            self.bad(&format!("expected fact failed: {f}"));
            self.failures.push(format!("step {}: {f}", step.number));
        }
        let mut v = Map::new();
        v.insert("step".into(), step.number.into());
        v.insert("title".into(), step.title.into());
        v.insert("ok".into(), ok.into());
        v.insert("failures".into(), step.failures.clone().into());
        v.extend(step.facts);
        self.steps.push(Value::Object(v));
        if self.interactive && !self.quit {
            crate::output::print(&self.out.dim("  [Enter] next step, [q] quit > "));
            let mut line = String::new();
            if std::io::stdin().lock().read_line(&mut line).unwrap_or(0) == 0 || line.trim() == "q"
            {
                self.quit = true;
            }
        }
    }
}

fn name(s: &str) -> Result<Name> {
    // ca-core's parser, not `Name::from_str`, which panics on numeric attribute types.
    ca_core::names::parse_subject(s).map_err(|e| anyhow!("name {s}: {e}"))
}

/// One of Bob's two key pairs and what becomes of it.
struct Variant {
    id: &'static str,
    key: SoftwareKey,
    csr: Vec<u8>,
    leaf: Vec<u8>,
    chain: Vec<Vec<u8>>,
}

fn spki_of_cert(der: &[u8]) -> Result<Vec<u8>> {
    let cert = Certificate::from_der(der).context("certificate does not decode")?;
    Ok(cert.tbs_certificate.subject_public_key_info.to_der()?)
}

fn serial_of_cert(der: &[u8]) -> Result<String> {
    let cert = Certificate::from_der(der).context("certificate does not decode")?;
    Ok(hex(cert.tbs_certificate.serial_number.as_bytes()))
}

fn subject_of_cert(der: &[u8]) -> String {
    Certificate::from_der(der)
        .map(|c| c.tbs_certificate.subject.to_string())
        .unwrap_or_default()
}

/// Alice's check: the chain up to her one trusted root, for Bob's name, now.
fn alice_verifies(leaf: &[u8], chain: &[Vec<u8>], root: &[u8], crls: Vec<Vec<u8>>) -> Verdict {
    let mut opts = VerifyOptions::new(Usage::TlsServer, OffsetDateTime::now_utc());
    opts.peer_name = Some(PeerName::Dns(BOB.into()));
    opts.crls = crls;
    Verdict {
        result: verify_chain(leaf, chain, &[root], &opts),
    }
}

struct Keeper(Option<PathBuf>);

impl Keeper {
    fn pem(&self, file: &str, label: &str, ders: &[&[u8]]) -> Result<()> {
        let text: String = ders
            .iter()
            .map(|d| ca_core::pem::encode(label, d))
            .collect();
        self.write(file, text.as_bytes(), false)
    }
    fn write(&self, file: &str, data: &[u8], secret: bool) -> Result<()> {
        match &self.0 {
            Some(dir) => crate::files::write_output(&dir.join(file), data, secret, false),
            None => Ok(()),
        }
    }
}

pub fn run(a: &WalkthroughArgs, out: &Out) -> Result<()> {
    if a.message.is_empty() {
        return Err(crate::exit::UsageError("--message must not be empty".into()).into());
    }
    let mut backend: Box<dyn CaBackend> = if a.online || a.conn.server.is_some() {
        let api = crate::client::Api::new(a.conn.resolve()?)?;
        Box::new(OnlineCa {
            api,
            issuing_ca: None,
        })
    } else {
        Box::new(OfflineCa::new())
    };
    if let Some(dir) = &a.keep {
        std::fs::create_dir(dir)
            .with_context(|| format!("cannot create {} (it must not exist yet)", dir.display()))?;
    }
    let keep = Keeper(a.keep.clone());
    let interactive = !a.yes
        && !out.is_json()
        && std::io::stdin().is_terminal()
        && std::io::stdout().is_terminal();
    let mut n = Narrator {
        out,
        interactive,
        steps: Vec::new(),
        failures: Vec::new(),
        quit: false,
    };
    out.line(out.bold(&format!(
        "The public-key story: Bob, Alice, a certificate authority and Mallory ({} mode{})",
        backend.mode(),
        if interactive { "; Enter moves on" } else { "" }
    )));
    let result = story(a, backend.as_mut(), &mut n, &keep);
    let ok = result.is_ok() && n.failures.is_empty();
    if out.is_json() {
        let mut v = json!({
            "mode": backend.mode(),
            "ok": ok,
            "steps": n.steps,
            "failures": n.failures,
        });
        if let Err(e) = &result {
            v["error"] = format!("{e:#}").into();
        }
        out.json(&v);
    }
    result?;
    if !n.failures.is_empty() {
        bail!(
            "the walk-through found facts that do not hold: {}",
            n.failures.join("; ")
        );
    }
    if n.quit {
        out.line("\nStopped early at your request.");
    } else {
        out.line("");
        out.line(out.green(
            &out.bold(
                "Every step held: the certificate let Alice trust Bob's key, and only Bob's.",
            ),
        ));
        if let Some(dir) = &a.keep {
            out.line(format!(
                "The files are in {d}; try: ca-cli verify --root {d}/root.pem --name {BOB} {d}/bob-p256.pem",
                d = dir.display()
            ));
        }
    }
    Ok(())
}
