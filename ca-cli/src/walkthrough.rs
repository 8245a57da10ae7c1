//! `ca-cli walkthrough`: the public-key story told one step at a time, each step
//! done for real and checked. Offline, the CA runs in-process through ca-core;
//! online (`--server`), the CA's part goes through a running ca-server's API.
//!
//! Every step records the facts it established; a fact that does not hold (a
//! decryption that differs, Mallory accepted, a revoked certificate still
//! valid) fails the run with exit code 1, so tests can rely on the exit code
//! and on the `--output json` facts.

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;

use anyhow::{anyhow, bail, Context, Result};
use ca_core::cert::{
    create_intermediate, create_root, issue, CaCertificate, CertificateRequest, IntermediateParams,
    Issuer, IssuerUrls, RootParams,
};
use ca_core::crl::{build_crl, CrlParams, RevocationReason, RevokedEntry};
use ca_core::keys::{KeyAlgorithm, Signer, SoftwareKey};
use ca_core::verify::{verify_chain, PeerName, Usage, VerifyOptions};
use ca_core::{Profile, SanEntry, Serial};
use ca_server::api::wire;
use der::{Decode, Encode};
use serde_json::{json, Map, Value};
use spki::SubjectPublicKeyInfoRef;
use time::OffsetDateTime;
use x509_cert::name::Name;
use x509_cert::Certificate;

use crate::output::{colon_hex, hex, sha256, Out};
use crate::verify::{explanation_json, explanation_text, Verdict};

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

/// One of Mallory's tries: an id, what it is, the leaf and the chain she sends.
type Attempt = (&'static str, &'static str, Vec<u8>, Vec<Vec<u8>>);

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

/// The CA's side of the story, in-process or through the server.
trait CaBackend {
    fn mode(&self) -> &'static str;
    /// Create root and issuing intermediate; return their DER certificates.
    fn create(&mut self, n: &Narrator) -> Result<(Vec<u8>, Vec<u8>)>;
    /// Check a CSR and issue a TLS server certificate: (leaf, chain issuer-first).
    fn issue(&mut self, csr_der: &[u8]) -> Result<(Vec<u8>, Vec<Vec<u8>>)>;
    /// Revoke a certificate by serial (lower-case hex), for key compromise.
    fn revoke(&mut self, serial_hex: &str) -> Result<()>;
    /// The current CRL of the CA that issued `leaf` (DER).
    fn crl(&mut self, leaf: &[u8]) -> Result<Vec<u8>>;
    /// What the CA's records say of a certificate (online only).
    fn status(&mut self, _serial_hex: &str) -> Result<Option<String>> {
        Ok(None)
    }
}

struct OfflineCa {
    root_key: Option<SoftwareKey>,
    issuer_key: Option<SoftwareKey>,
    issuer: Option<Issuer>,
    revoked: Vec<(Serial, OffsetDateTime)>,
    crl_number: u64,
}

impl OfflineCa {
    fn new() -> Self {
        OfflineCa {
            root_key: None,
            issuer_key: None,
            issuer: None,
            revoked: Vec::new(),
            crl_number: 0,
        }
    }

    fn parts(&self) -> Result<(&Issuer, &SoftwareKey)> {
        match (&self.issuer, &self.issuer_key) {
            (Some(i), Some(k)) => Ok((i, k)),
            _ => bail!("the CA has not been created yet"),
        }
    }
}

/// The CA's part done by a running ca-server through its API.
struct OnlineCa {
    api: crate::client::Api,
    issuing_ca: Option<String>,
}

impl OnlineCa {
    fn ca_pem(&self, id: &str) -> Result<Vec<u8>> {
        let v: wire::CaCertificate = self
            .api
            .get(&format!("/v1/cas/{id}/certificate"))
            .context("the server sent no certificate")?;
        ca_core::pem::decode("CERTIFICATE", &v.certificate).context("the server's CA certificate")
    }
}

impl CaBackend for OnlineCa {
    fn mode(&self) -> &'static str {
        "online"
    }

    fn create(&mut self, n: &Narrator) -> Result<(Vec<u8>, Vec<u8>)> {
        // A fresh pair of CAs per run, with a distinct name, so runs do not collide.
        let tag = hex(&sha256(
            &OffsetDateTime::now_utc()
                .unix_timestamp_nanos()
                .to_be_bytes(),
        )[..3]);
        n.say(&format!(
            "Asking the CA service at {} to create a root CA (P-384) ...",
            self.api.conn.server
        ));
        let root: wire::CaDescription = self.api.call(
            hyper::Method::POST,
            "/v1/cas",
            Some(&wire::CreateCa {
                ca_type: "ROOT".into(),
                subject: format!("CN=Walkthrough Root CA {tag},O=Example Trust"),
                key_algorithm: "ec-p384".into(),
                parent_ca_id: None,
                external: false,
                validity_days: Some(3650),
                path_len: Some(1),
                name_constraints: None,
                key_storage: None,
                key_label: None,
                ocsp: None,
            }),
        )?;
        let root_id = root.id;
        n.say("... and an issuing intermediate (P-256) signed by that root. Their private keys stay inside the service.");
        let sub: wire::CaDescription = self.api.call(
            hyper::Method::POST,
            "/v1/cas",
            Some(&wire::CreateCa {
                ca_type: "SUBORDINATE".into(),
                subject: format!("CN=Walkthrough Issuing CA {tag},O=Example Trust"),
                key_algorithm: "ec-p256".into(),
                parent_ca_id: Some(root_id.clone()),
                external: false,
                validity_days: Some(1825),
                path_len: Some(0),
                name_constraints: None,
                key_storage: None,
                key_label: None,
                ocsp: None,
            }),
        )?;
        let sub_id = sub.id;
        n.show("root CA id", &root_id);
        n.show("issuing CA id", &sub_id);
        let out = (self.ca_pem(&root_id)?, self.ca_pem(&sub_id)?);
        self.issuing_ca = Some(sub_id);
        Ok(out)
    }

    fn issue(&mut self, csr_der: &[u8]) -> Result<(Vec<u8>, Vec<Vec<u8>>)> {
        let v: wire::Certificate = self.api.call(
            hyper::Method::POST,
            "/v1/certificates",
            Some(&wire::IssueCertificate {
                ca_id: self.issuing_ca.clone(),
                csr: ca_core::pem::encode("CERTIFICATE REQUEST", csr_der),
                profile: Some("tls-server".into()),
                validity_days: None,
                idempotency_token: None,
            }),
        )?;
        let leaf = ca_core::pem::decode("CERTIFICATE", &v.certificate)
            .context("no certificate in the answer")?;
        let chain = ca_core::pem::decode_all("CERTIFICATE", &v.certificate_chain)?;
        Ok((leaf, chain))
    }

    fn revoke(&mut self, serial_hex: &str) -> Result<()> {
        let _revoked: wire::CertificateSummary = self.api.call(
            hyper::Method::POST,
            &format!("/v1/certificates/{serial_hex}/revoke"),
            Some(&wire::RevokeCertificate {
                ca_id: self.issuing_ca.clone(),
                // 1 = keyCompromise (RFC 5280 CRLReason).
                reason: wire::RevocationReason::Code(1.into()),
            }),
        )?;
        Ok(())
    }

    fn crl(&mut self, leaf: &[u8]) -> Result<Vec<u8>> {
        // What a relying party does: follow the URL in the certificate.
        let url = crate::online::crl_url_of(leaf)?;
        let body = crate::client::http_get(&url)?;
        ca_core::pem::der_or_pem("X509 CRL", &body)
            .with_context(|| format!("{url} did not answer with a CRL"))
    }

    fn status(&mut self, serial_hex: &str) -> Result<Option<String>> {
        let q = self
            .issuing_ca
            .as_ref()
            .map(|c| format!("?ca_id={c}"))
            .unwrap_or_default();
        let v: wire::Certificate = self.api.get(&format!("/v1/certificates/{serial_hex}{q}"))?;
        Ok(Some(v.summary.status))
    }
}

fn name(s: &str) -> Result<Name> {
    // ca-core's parser, not `Name::from_str`, which panics on numeric attribute types.
    ca_core::names::parse_subject(s).map_err(|e| anyhow!("name {s}: {e}"))
}

impl CaBackend for OfflineCa {
    fn mode(&self) -> &'static str {
        "offline"
    }

    fn create(&mut self, n: &Narrator) -> Result<(Vec<u8>, Vec<u8>)> {
        let now = OffsetDateTime::now_utc();
        n.say("The CA makes a P-384 key pair for its root and signs its own root certificate.");
        let root_key = SoftwareKey::generate(KeyAlgorithm::EcdsaP384)?;
        let mut params = RootParams::new(name("CN=Walkthrough Root CA,O=Example Trust")?);
        params.validity_days = 3650;
        let root = create_root(&root_key, &params, now).context("creating the root")?;
        n.say(
            "Then it makes a P-256 key for an issuing intermediate and signs that with the root.",
        );
        let issuer_key = SoftwareKey::generate(KeyAlgorithm::EcdsaP256)?;
        let root_issuer = Issuer::new(root.clone(), vec![], IssuerUrls::default());
        let inter = create_intermediate(
            &root_issuer,
            &root_key,
            issuer_key.public_key_der(),
            &IntermediateParams {
                subject: name("CN=Walkthrough Issuing CA,O=Example Trust")?,
                validity_days: Some(1825),
                path_len: Some(0),
                name_constraints: None,
            },
            now,
        )
        .context("creating the intermediate")?;
        let out = (root.der.clone(), inter.der.clone());
        self.issuer = Some(Issuer::new(inter, vec![root], IssuerUrls::default()));
        self.root_key = Some(root_key);
        self.issuer_key = Some(issuer_key);
        Ok(out)
    }

    fn issue(&mut self, csr_der: &[u8]) -> Result<(Vec<u8>, Vec<Vec<u8>>)> {
        let (issuer, key) = self.parts()?;
        // parse_csr refuses a CSR whose self-signature does not verify: the
        // proof that the requester holds the private key.
        let csr = ca_core::parse_csr(csr_der).context("the CA refused the CSR")?;
        let req = CertificateRequest::from_csr(&csr, Profile::TlsServer);
        let issued = issue(issuer, key, &req, OffsetDateTime::now_utc()).context("issuing")?;
        Ok((issued.der, issuer.chain_der()))
    }

    fn revoke(&mut self, serial_hex: &str) -> Result<()> {
        let serial = Serial::from_hex(serial_hex).map_err(|e| anyhow!("serial: {e}"))?;
        self.revoked.push((serial, OffsetDateTime::now_utc()));
        Ok(())
    }

    fn crl(&mut self, _leaf: &[u8]) -> Result<Vec<u8>> {
        self.crl_number += 1;
        let (issuer, key) = self.parts()?;
        let now = OffsetDateTime::now_utc();
        let params = CrlParams {
            crl_number: self.crl_number,
            this_update: now - time::Duration::minutes(1),
            next_update: now + time::Duration::days(7),
        };
        let entries: Vec<RevokedEntry> = self
            .revoked
            .iter()
            .map(|(serial, at)| RevokedEntry {
                serial: serial.clone(),
                revoked_at: *at,
                reason: RevocationReason::KeyCompromise,
            })
            .collect();
        build_crl(&issuer.certificate, key, &params, &entries).context("building the CRL")
    }
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

fn story(
    a: &WalkthroughArgs,
    ca: &mut dyn CaBackend,
    n: &mut Narrator,
    keep: &Keeper,
) -> Result<()> {
    // Step 1: the CA.
    let mut s = n.begin(
        1,
        "A certificate authority is created; Alice trusts only its root",
    );
    let (root, inter) = ca.create(n)?;
    let root_cert = CaCertificate::parse(&root).context("the root does not parse")?;
    let inter_cert = CaCertificate::parse(&inter).context("the intermediate does not parse")?;
    let signed = inter_cert.is_signed_by(&root_cert);
    n.show(
        "root",
        format!("{} ({})", root_cert.subject(), root_cert.key_kind),
    );
    n.show("root SHA-256", colon_hex(&sha256(&root)));
    n.show(
        "intermediate",
        format!("{} ({})", inter_cert.subject(), inter_cert.key_kind),
    );
    n.show("intermediate signed by the root", signed);
    s.fact("root_subject", root_cert.subject().to_string());
    s.fact("root_key", root_cert.key_kind.to_string());
    s.fact("root_sha256", hex(&sha256(&root)));
    s.fact("intermediate_subject", inter_cert.subject().to_string());
    s.fact("intermediate_key", inter_cert.key_kind.to_string());
    s.fact("intermediate_signed_by_root", signed);
    s.fact("alice_trusts", vec![root_cert.subject().to_string()]);
    s.expect(signed, "the intermediate is signed by the root");
    keep.pem("root.pem", "CERTIFICATE", &[&root])?;
    keep.pem("intermediate.pem", "CERTIFICATE", &[&inter])?;
    n.say("Alice installs the root certificate, and only it, as her trust anchor.");
    n.why("the root's public key is the one thing Alice must get by a trusted route (an OS trust store, \
           an admin). Everything else she will check with it. The root's private key stays offline; \
           the intermediate does the daily signing, so a compromise there can be revoked without \
           replacing every trust store.");
    n.end(s);
    if n.quit {
        return Ok(());
    }

    // Step 2: Bob's keys.
    let mut s = n.begin(
        2,
        "Bob generates his key pairs; the private keys never leave him",
    );
    n.say("Bob makes two key pairs, to show both families: RSA-2048 and ECDSA P-256.");
    let mut variants = Vec::new();
    let mut keys_json = Vec::new();
    for (id, alg) in [
        ("rsa", KeyAlgorithm::Rsa2048),
        ("p256", KeyAlgorithm::EcdsaP256),
    ] {
        let key = SoftwareKey::generate(alg)?;
        let fp = sha256(key.public_key_der());
        n.show(
            &format!("{id} public key"),
            format!("{} (SHA-256 {})", key.kind(), colon_hex(&fp[..8])),
        );
        keys_json.push(json!({
            "variant": id,
            "key": key.kind().to_string(),
            "bits": match key.kind() { ca_core::PublicKeyKind::Rsa { bits } => bits, _ => 256 },
            "spki_sha256": hex(&fp),
        }));
        keep.write(
            &format!("bob-{id}.key"),
            key.to_pkcs8_pem().as_bytes(),
            true,
        )?;
        variants.push(Variant {
            id,
            key,
            csr: Vec::new(),
            leaf: Vec::new(),
            chain: Vec::new(),
        });
    }
    s.fact("bob_keys", keys_json);
    n.why("a key pair is two halves: the public key can be told to anyone; whatever it encrypts only \
           the private key opens, and whatever the private key signs the public key verifies. \
           But a bare public key says nothing about whose it is: that is the CA's job.");
    n.end(s);
    if n.quit {
        return Ok(());
    }

    // Step 3: CSR and issuance.
    let mut s = n.begin(
        3,
        "Bob asks the CA to certify his public key (a CSR); the CA checks and signs",
    );
    n.say(&format!(
        "Bob writes a certificate signing request for {BOB} and signs it with his private key."
    ));
    let subject = name(&format!("CN={BOB},O=Bob's Bakery"))?;
    let mut issued = Vec::new();
    for v in &mut variants {
        v.csr = ca_core::create_csr(&v.key, &subject, &[SanEntry::Dns(BOB.into())])?;
        keep.pem(
            &format!("bob-{}.csr", v.id),
            "CERTIFICATE REQUEST",
            &[&v.csr],
        )?;
        // Show what the CA's check catches: the same CSR with Mallory's public
        // key put in place of Bob's no longer matches its own signature.
        let mallory = SoftwareKey::generate(match v.key.kind() {
            ca_core::PublicKeyKind::Rsa { .. } => KeyAlgorithm::Rsa2048,
            _ => KeyAlgorithm::EcdsaP256,
        })?;
        let tampered = swap_csr_key(&v.csr, mallory.public_key_der())
            .context("building the CSR with a swapped key")?;
        let tampered_refusal = match ca.issue(&tampered) {
            Ok(_) => None,
            Err(e) => Some(format!("{e:#}")),
        };
        let pop = ca_core::parse_csr(&v.csr).is_ok();
        let (leaf, chain) = ca
            .issue(&v.csr)
            .with_context(|| format!("issuing Bob's {} certificate", v.id))?;
        let serial = serial_of_cert(&leaf)?;
        let facts = crate::inspect::cert_facts(&leaf);
        n.show(
            &format!("{} certificate", v.id),
            format!(
                "serial {serial}, issued by {}",
                facts.get("issuer").and_then(Value::as_str).unwrap_or("")
            ),
        );
        if let Some(r) = &tampered_refusal {
            n.ok(&format!("a copy with a swapped public key is refused: {r}"));
        }
        issued.push(json!({
            "variant": v.id,
            "csr_sha256": hex(&sha256(&v.csr)),
            "proof_of_possession_verified": pop,
            "tampered_csr_rejected": tampered_refusal.is_some(),
            "tampered_csr_reason": tampered_refusal,
            "serial": serial,
            "subject": facts.get("subject").cloned().unwrap_or(Value::Null),
            "issuer": facts.get("issuer").cloned().unwrap_or(Value::Null),
            "not_after": facts.get("validity").and_then(|v| v.get("not_after")).cloned().unwrap_or(Value::Null),
            "sans": [format!("DNS:{BOB}")],
        }));
        s.expect(
            pop,
            format!("Bob's {} CSR proves possession of the key", v.id),
        );
        s.expect(
            tampered_refusal.is_some(),
            format!("a CSR with a swapped {} key is refused", v.id),
        );
        let mut all: Vec<&[u8]> = vec![&leaf];
        all.extend(chain.iter().map(Vec::as_slice));
        keep.pem(&format!("bob-{}.pem", v.id), "CERTIFICATE", &all)?;
        v.leaf = leaf;
        v.chain = chain;
    }
    s.fact("certificates", issued);
    n.ok("the CA verified each CSR's signature with the public key inside it (proof of possession) and issued a certificate");
    n.why(
        "the certificate is the CA's signature over \"this public key belongs to bob.example\". \
           The CSR's own signature shows the requester holds the matching private key, so nobody \
           can get a certificate for a key they do not control.",
    );
    n.end(s);
    if n.quit {
        return Ok(());
    }

    // Step 4: Alice verifies.
    let mut s = n.begin(
        4,
        "Bob sends his certificate and chain; Alice verifies them with the CA's public key",
    );
    for v in &variants {
        let verdict = alice_verifies(&v.leaf, &v.chain, &root, vec![]);
        n.say(&format!("Alice checks Bob's {} certificate:", v.id));
        if !n.out.is_json() {
            crate::output::print(&explanation_text(verdict.explanation(), n.out));
        }
        let path: Vec<String> = verdict
            .explanation()
            .certs
            .iter()
            .map(|c| c.subject.clone())
            .collect();
        let checks: usize = verdict
            .explanation()
            .certs
            .iter()
            .map(|c| c.checks.len())
            .sum();
        s.fact(
            v.id,
            json!({
                "chain_valid": verdict.valid(),
                "reason": verdict.reason(),
                "path": path,
                "checks": checks,
                "name": BOB,
                "explanation": explanation_json(verdict.explanation()),
            }),
        );
        s.expect(
            verdict.valid(),
            format!("Alice accepts Bob's {} certificate", v.id),
        );
        if verdict.valid() {
            n.ok(&format!("valid for {BOB}: signatures, chain to her root, validity dates and the name all check out"));
        }
    }
    n.why("Alice never met Bob, yet she now knows this public key is his: the intermediate's signature \
           on his certificate verifies with the intermediate's key, whose certificate verifies with the \
           root key she trusts; each certificate is within its dates; and the name is the one she meant to reach.");
    n.end(s);
    if n.quit {
        return Ok(());
    }

    // Step 5: encryption.
    let mut s = n.begin(
        5,
        "Alice encrypts a message to Bob with the key from his certificate; Bob decrypts it",
    );
    let plaintext = a.message.as_bytes();
    let mut all_match = true;
    for v in &variants {
        // Alice uses only what she verified: the public key in Bob's certificate.
        let spki = spki_of_cert(&v.leaf)?;
        let sealed = crate::crypto::seal(&spki, plaintext)?;
        let opened = crate::crypto::open(&v.key.to_pkcs8_der(), &sealed)?;
        let matches = opened == plaintext;
        all_match &= matches;
        // Someone with another key (Mallory) gets nothing out of the ciphertext.
        let other = SoftwareKey::generate(if v.id == "rsa" {
            KeyAlgorithm::Rsa2048
        } else {
            KeyAlgorithm::EcdsaP256
        })?;
        let others_fail = crate::crypto::open(&other.to_pkcs8_der(), &sealed).is_err();
        n.show(&format!("{} scheme", v.id), sealed.scheme);
        n.show(
            &format!("{} ciphertext", v.id),
            format!(
                "{} bytes + {} bytes of key envelope",
                sealed.ciphertext.len(),
                sealed.key_envelope.len()
            ),
        );
        if matches {
            n.ok(&format!(
                "Bob decrypted: \"{}\"",
                String::from_utf8_lossy(&opened)
            ));
        }
        s.fact(
            v.id,
            json!({
                "scheme": sealed.scheme,
                "plaintext_bytes": plaintext.len(),
                "ciphertext_bytes": sealed.ciphertext.len(),
                "key_envelope_bytes": sealed.key_envelope.len(),
                "decrypted_matches": matches,
                "other_key_cannot_decrypt": others_fail,
            }),
        );
        s.expect(
            matches,
            format!("Bob's {} decryption equals Alice's plaintext", v.id),
        );
        s.expect(others_fail, format!("another {} key cannot decrypt", v.id));
    }
    s.fact("decrypted_matches", all_match);
    n.why("public-key operations only handle a few dozen bytes, so Alice encrypts the message with a \
           fresh AES-256-GCM key and sends that key sealed to Bob: with RSA-OAEP for the RSA key, or \
           with an ephemeral ECDH agreement plus HKDF for the P-256 key (strictly, a P-256 key used this \
           way should carry keyUsage keyAgreement; the demo reuses Bob's TLS key to keep one certificate). \
           Only Bob's private key recovers the AES key, and GCM detects any tampering.");
    n.end(s);
    if n.quit {
        return Ok(());
    }

    // Step 6: signatures.
    let mut s = n.begin(
        6,
        "Bob signs a reply; Alice verifies it against his certificate",
    );
    let reply = b"Noon works. -- Bob".as_slice();
    let mut all_valid = true;
    for v in &variants {
        let sig = v.key.sign(reply)?;
        let alg = v.key.signature_algorithm();
        let spki_der = spki_of_cert(&v.leaf)?;
        let spki = SubjectPublicKeyInfoRef::from_der(&spki_der).context("certificate key")?;
        let valid = ca_core::signature::verify_with(&spki, alg, reply, &sig).is_ok();
        let forged =
            ca_core::signature::verify_with(&spki, alg, b"Midnight works. -- Bob", &sig).is_err();
        all_valid &= valid;
        n.show(
            &format!("{} signature", v.id),
            format!("{alg:?}, {} bytes", sig.len()),
        );
        if valid && forged {
            n.ok("valid for the reply; the same signature on an altered reply fails");
        }
        s.fact(
            v.id,
            json!({
                "algorithm": format!("{alg:?}"),
                "signature_bytes": sig.len(),
                "signature_valid": valid,
                "altered_reply_rejected": forged,
            }),
        );
        s.expect(valid, format!("Bob's {} signature verifies", v.id));
        s.expect(
            forged,
            format!("an altered reply fails Bob's {} signature", v.id),
        );
    }
    s.fact("signature_valid", all_valid);
    n.why("only Bob's private key could have made a signature that his certificate's public key \
           verifies, and it covers exactly these bytes: Alice knows the reply is Bob's and unaltered.");
    n.end(s);
    if n.quit {
        return Ok(());
    }

    // Step 7: Mallory.
    let mut s = n.begin(7, "Mallory, in the middle, substitutes her own key");
    n.say("Mallory intercepts Bob's certificate and sends Alice one with her own key instead.");
    let mallory_key = SoftwareKey::generate(KeyAlgorithm::EcdsaP256)?;
    let now = OffsetDateTime::now_utc();
    let bob_name = name(&format!("CN={BOB},O=Bob's Bakery"))?;
    let mallory_request = CertificateRequest {
        subject: bob_name.clone(),
        spki_der: mallory_key.public_key_der().to_vec(),
        sans: vec![SanEntry::Dns(BOB.into())],
        profile: Profile::TlsServer,
        validity_days: Some(30),
        name_constraints: None,
    };
    // (a) a certificate she signed herself, claiming Bob's name.
    let self_signed = create_root(&mallory_key, &RootParams::new(bob_name.clone()), now)?;
    // (b) a certificate from a CA of her own, which Alice does not trust.
    let m_root_key = SoftwareKey::generate(KeyAlgorithm::EcdsaP256)?;
    let m_root = create_root(
        &m_root_key,
        &RootParams::new(name("CN=Totally Legit Root CA,O=Mallory")?),
        now,
    )?;
    let m_issuer = Issuer::new(m_root.clone(), vec![], IssuerUrls::default());
    let m_leaf = issue(&m_issuer, &m_root_key, &mallory_request, now)?;
    // (c) a CA of her own that copies the real intermediate's name exactly.
    let fake_key = SoftwareKey::generate(KeyAlgorithm::EcdsaP256)?;
    let fake = create_root(
        &fake_key,
        &RootParams::new(inter_cert.subject().clone()),
        now,
    )?;
    let fake_issuer = Issuer::new(fake.clone(), vec![], IssuerUrls::default());
    let forged_leaf = issue(&fake_issuer, &fake_key, &mallory_request, now)?;
    let real_chain = variants
        .first()
        .map(|v| v.chain.clone())
        .unwrap_or_default();
    let attempts: [Attempt; 3] = [
        (
            "self_signed",
            "a self-signed certificate claiming bob.example",
            self_signed.der.clone(),
            vec![],
        ),
        (
            "own_ca",
            "a certificate from Mallory's own CA (chain included)",
            m_leaf.der.clone(),
            vec![m_root.der.clone()],
        ),
        (
            "forged_issuer",
            "a certificate whose issuer name copies the real intermediate",
            forged_leaf.der.clone(),
            real_chain,
        ),
    ];
    for (id, what, leaf, chain) in attempts {
        let verdict = alice_verifies(&leaf, &chain, &root, vec![]);
        let reason = verdict.reason().unwrap_or_default();
        if verdict.valid() {
            n.bad(&format!("{what}: ACCEPTED"));
        } else {
            n.ok(&format!("{what}: refused — {reason}"));
        }
        s.fact(
            id,
            json!({
                "subject": subject_of_cert(&leaf),
                "rejected": !verdict.valid(),
                "reason": reason,
            }),
        );
        s.expect(!verdict.valid(), format!("Mallory's {what} is refused"));
        let file = format!("mallory-{}.pem", id.replace('_', "-"));
        let mut all: Vec<&[u8]> = vec![&leaf];
        all.extend(chain.iter().map(Vec::as_slice));
        keep.pem(&file, "CERTIFICATE", &all)?;
    }
    n.why("Mallory can write any name into a certificate, but she cannot make Alice's root (or the \
           intermediate it vouches for) sign her key. Had Alice taken a bare public key on trust, she \
           would have encrypted to Mallory; the chain check is what stops the man in the middle.");
    n.end(s);
    if n.quit {
        return Ok(());
    }

    // Step 8: revocation.
    let mut s = n.begin(
        8,
        "The CA revokes Bob's certificate; Alice's check now refuses it",
    );
    let target = variants.last().context("no certificate to revoke")?;
    let serial = serial_of_cert(&target.leaf)?;
    s.fact("revoked_serial", serial.clone());
    match ca.crl(&target.leaf) {
        Ok(crl_before) => {
            let before = alice_verifies(&target.leaf, &target.chain, &root, vec![crl_before]);
            n.say(&format!(
                "With the CA's current CRL, Bob's {} certificate is still fine: {}.",
                target.id,
                if before.valid() { "valid" } else { "NOT valid" }
            ));
            n.say(&format!(
                "Bob reports his {} key stolen; the CA revokes serial {serial} (reason: key compromise).",
                target.id
            ));
            ca.revoke(&serial)?;
            // An online CA signs its next CRL shortly after the revocation and
            // serves the previous one until then: wait for it (up to 10 s).
            let wanted = Serial::from_hex(&serial)?;
            let mut crl_after = ca.crl(&target.leaf)?;
            for _ in 0..100 {
                if ca_core::crl::parse_crl(&crl_after).is_ok_and(|c| c.is_revoked(&wanted)) {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
                crl_after = ca.crl(&target.leaf)?;
            }
            keep.pem("crl.pem", "X509 CRL", &[&crl_after])?;
            let crl_view =
                crate::inspect::describe(&crate::inspect::Object::Crl(crl_after.clone()))?;
            let listed = crl_view
                .get("revoked")
                .and_then(Value::as_array)
                .is_some_and(|r| {
                    r.iter()
                        .any(|e| e.get("serial").and_then(Value::as_str) == Some(serial.as_str()))
                });
            n.show("new CRL lists the serial", listed);
            let after = alice_verifies(&target.leaf, &target.chain, &root, vec![crl_after]);
            let reason = after.reason().unwrap_or_default();
            if after.valid() {
                n.bad("Alice still accepts the revoked certificate");
            } else {
                n.ok(&format!("Alice refuses it: {reason}"));
            }
            s.fact("valid_before_revocation", before.valid());
            s.fact("crl_lists_serial", listed);
            s.fact("refused_after_revocation", !after.valid());
            s.fact("reason", reason.clone());
            s.fact("revocation_source", "CRL");
            s.expect(
                before.valid(),
                "Bob's certificate is valid before revocation",
            );
            s.expect(listed, "the CRL lists the revoked serial");
            s.expect(
                !after.valid() && reason.contains("revo"),
                "Alice refuses the revoked certificate because it is revoked",
            );
        }
        Err(e) => {
            // Only online, against a server that does not publish CRLs (yet):
            // say so, and fall back on the CA's own record of the revocation.
            let why = format!("{e:#}");
            n.say(&format!("The CA's CRL could not be fetched ({why})."));
            n.say(&format!(
                "Bob reports his {} key stolen; the CA revokes serial {serial}.",
                target.id
            ));
            ca.revoke(&serial)?;
            let status = ca.status(&serial)?.unwrap_or_default();
            let refused = status == "REVOKED";
            if refused {
                n.ok(&format!("the CA now reports {serial} as {status}; a relying party asking it refuses the certificate"));
            } else {
                n.bad(&format!("the CA reports {serial} as {status}"));
            }
            s.fact("revocation_source", "CA status (no CRL available)");
            s.fact("crl_unavailable", why);
            s.fact("status_after_revocation", status.clone());
            s.fact("refused_after_revocation", refused);
            s.fact(
                "reason",
                format!("the CA reports the certificate as {status}"),
            );
            s.expect(refused, "the CA reports the certificate as REVOKED");
        }
    }
    n.why("a certificate is a promise made for its whole lifetime; when the key behind it is lost, \
           the CA publishes a signed list of broken promises (a CRL, or an OCSP answer), and relying \
           parties who check it stop trusting the key before the certificate expires.");
    n.end(s);
    Ok(())
}

/// Bob's CSR with one bit of its public key flipped (signature unchanged),
/// to show the proof-of-possession check at work. `None` if it cannot be built.
/// The CSR with another (valid) public key in place of its own, its
/// signature unchanged: what an attacker who swaps keys in transit sends.
fn swap_csr_key(csr_der: &[u8], spki_der: &[u8]) -> Result<Vec<u8>> {
    let mut req = x509_cert::request::CertReq::from_der(csr_der)?;
    req.info.public_key = x509_cert::spki::SubjectPublicKeyInfoOwned::from_der(spki_der)?;
    Ok(req.to_der()?)
}
