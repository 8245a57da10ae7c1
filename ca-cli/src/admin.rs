//! Operator commands for access policies, the audit trail and CA aliases
//! (thin wrappers over `/v1/policies`, `/v1/audit` and `/v1/aliases`).

use std::path::PathBuf;

use anyhow::{Context, Result};
use ca_server::api::wire;
use clap::{Args, Subcommand};
use hyper::Method;
use serde_json::{json, Value};

use crate::client::{Api, ConnArgs};
use crate::files::read_text;
use crate::output::Out;

#[derive(Args, Debug)]
pub struct PolicyArgs {
    #[command(flatten)]
    pub conn: ConnArgs,
    #[command(subcommand)]
    pub command: PolicyCommand,
}

#[derive(Subcommand, Debug)]
pub enum PolicyCommand {
    /// List the policy statements.
    List,
    /// Show one statement.
    Get { id: String },
    /// Create or replace a statement from a JSON file (see ca-server/SECURITY.md).
    Put {
        id: String,
        #[arg(long)]
        file: PathBuf,
    },
    /// Delete a statement.
    Delete { id: String },
}

#[derive(Args, Debug)]
pub struct AuditArgs {
    #[command(flatten)]
    pub conn: ConnArgs,
    #[command(subcommand)]
    pub command: AuditCommand,
}

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// List audit entries, oldest first.
    List {
        /// RFC 3339 time.
        #[arg(long)]
        since: Option<String>,
        /// RFC 3339 time.
        #[arg(long)]
        until: Option<String>,
        /// Subject or certificate fingerprint.
        #[arg(long)]
        identity: Option<String>,
        /// API action, e.g. IssueCertificate.
        #[arg(long)]
        action: Option<String>,
        #[arg(long)]
        limit: Option<u32>,
        #[arg(long)]
        cursor: Option<String>,
    },
    /// Fetch the whole trail and check its hash chain (every entry's hash, and
    /// that each links to the one before) and its signed digests (exit 3 at
    /// the first broken link or bad digest).
    Verify {
        /// The audit digest key's public half (PEM, `audit-digest-key.pem`
        /// as you kept it): every digest must be signed by it.
        #[arg(long)]
        digest_key: Option<std::path::PathBuf>,
    },
}

#[derive(Args, Debug)]
pub struct AliasArgs {
    #[command(flatten)]
    pub conn: ConnArgs,
    #[command(subcommand)]
    pub command: AliasCommand,
}

#[derive(Subcommand, Debug)]
pub enum AliasCommand {
    /// List aliases and the CAs they name.
    List,
    /// Point an alias at a CA.
    Set {
        alias: String,
        #[arg(long)]
        ca: String,
    },
    /// Rotate the CA behind an alias: a new intermediate, the old one retired.
    Rotate { alias: String },
    /// The CA an alias names.
    Get { alias: String },
}

/// Percent-encode a path segment or query value (unreserved characters kept).
pub(crate) fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A list as the API writes it, for one line of text.
fn json_list(items: &[String]) -> String {
    serde_json::to_string(items).unwrap_or_default()
}

pub fn run_policy(a: &PolicyArgs, out: &Out) -> Result<()> {
    let api = Api::new(a.conn.resolve()?)?;
    match &a.command {
        PolicyCommand::List => {
            let v: wire::PolicyList = api.get("/v1/policies")?;
            out.emit(&v, || {
                v.statements
                    .iter()
                    .map(|s| {
                        format!(
                            "{}  {}  actions={}  cas={}\n",
                            s.id.as_deref().unwrap_or("-"),
                            s.effect,
                            json_list(&s.actions),
                            json_list(&s.cas),
                        )
                    })
                    .collect()
            });
        }
        PolicyCommand::Get { id } => {
            let v: wire::PolicyStatement = api.get(&format!("/v1/policies/{}", enc(id)))?;
            out.emit(&v, || {
                let sorted = serde_json::to_value(&v).unwrap_or_default();
                format!(
                    "{}\n",
                    serde_json::to_string_pretty(&sorted).unwrap_or_default()
                )
            });
        }
        PolicyCommand::Put { id, file } => {
            // The file goes as written: the server judges it and names what is wrong.
            let body: Value = serde_json::from_str(&read_text(file)?)
                .with_context(|| format!("{} is not JSON", file.display()))?;
            let v: Option<wire::PolicyStatement> = api.call(
                Method::PUT,
                &format!("/v1/policies/{}", enc(id)),
                Some(&body),
            )?;
            out.emit(&v, || format!("stored policy statement {id}\n"));
        }
        PolicyCommand::Delete { id } => {
            let v: wire::PolicyDeleted =
                api.call::<(), _>(Method::DELETE, &format!("/v1/policies/{}", enc(id)), None)?;
            out.emit(&v, || format!("deleted policy statement {id}\n"));
        }
    }
    Ok(())
}

pub fn run_audit(a: &AuditArgs, out: &Out) -> Result<()> {
    let api = Api::new(a.conn.resolve()?)?;
    let (since, until, identity, action, limit, cursor) = match &a.command {
        AuditCommand::Verify { digest_key } => {
            return verify_audit(&api, digest_key.as_deref(), out)
        }
        AuditCommand::List {
            since,
            until,
            identity,
            action,
            limit,
            cursor,
        } => (since, until, identity, action, limit, cursor),
    };
    let limit = limit.map(|l| l.to_string());
    let params: Vec<String> = [
        ("since", since.as_ref()),
        ("until", until.as_ref()),
        ("identity", identity.as_ref()),
        ("action", action.as_ref()),
        ("limit", limit.as_ref()),
        ("cursor", cursor.as_ref()),
    ]
    .iter()
    .filter_map(|(k, v)| v.map(|v| format!("{k}={}", enc(v))))
    .collect();
    let path = if params.is_empty() {
        "/v1/audit".to_string()
    } else {
        format!("/v1/audit?{}", params.join("&"))
    };
    let v: wire::AuditPage = api.get(&path)?;
    out.emit(&v, || {
        let mut t: String = v
            .entries
            .iter()
            .map(|e| {
                format!(
                    "{:>6}  {}  {}  {} {}  {} ({})  {}\n",
                    e.seq,
                    e.time,
                    e.identity.subject,
                    e.action,
                    e.target,
                    e.outcome.decision,
                    e.outcome.reason,
                    e.result.code,
                )
            })
            .collect();
        if let Some(c) = &v.next_cursor {
            t.push_str(&format!("more: --cursor {c}\n"));
        }
        t
    });
    Ok(())
}

/// Page through `/v1/audit` from the first entry and check the chain with the
/// same code the server's offline `audit verify` uses. It checks what the API
/// serves; removal of the newest entries is caught only offline, where the
/// recorded head is visible.
fn verify_audit(api: &Api, digest_key: Option<&std::path::Path>, out: &Out) -> Result<()> {
    use ca_core::audit_chain::ChainVerifier;
    use ca_core::audit_digest::DigestVerifier;
    let pinned = match digest_key {
        Some(path) => {
            let pem = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            Some(
                ca_core::pem::decode("PUBLIC KEY", &pem)
                    .with_context(|| format!("{} is not a PEM public key", path.display()))?,
            )
        }
        None => None,
    };
    // The digests first, so paging through the entries can keep the hashes
    // of just the entries they cover.
    let mut digests = Vec::new();
    loop {
        let page: wire::AuditDigestPage = api
            .get(&format!(
                "/v1/audit/digests?limit=1000&after={}",
                digests
                    .last()
                    .map_or(0, |d: &ca_core::audit_digest::AuditDigest| d.number)
            ))
            .context("the server's audit digests are not in the expected form")?;
        if page.digests.is_empty() {
            break;
        }
        digests.extend(page.digests);
    }
    let wanted: std::collections::HashSet<u64> = digests.iter().map(|d| d.head_seq).collect();
    let mut hashes = std::collections::HashMap::new();
    let broken = |seq: u64, why: String, checked: u64| -> Result<()> {
        let report = json!({ "ok": false, "checked": checked, "broken_at": seq, "why": why });
        out.emit(&report, || format!("BROKEN at entry {seq}: {why}\n"));
        Err(
            crate::exit::VerificationFailed(format!("the audit trail is broken at entry {seq}"))
                .into(),
        )
    };
    let mut chain = ChainVerifier::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            None => "/v1/audit?limit=1000".to_string(),
            Some(c) => format!("/v1/audit?limit=1000&cursor={}", enc(c)),
        };
        let page: wire::AuditPage = api
            .get(&path)
            .context("the server's audit entries are not in the expected form")?;
        let entries = page.entries;
        for e in &entries {
            if let Err(b) = chain.push(e.seq, e) {
                return broken(b.seq, b.why, chain.count());
            }
            if wanted.contains(&e.seq) {
                hashes.insert(e.seq, e.hash.clone());
            }
        }
        cursor = page.next_cursor;
        if cursor.is_none() || entries.is_empty() {
            break;
        }
    }
    let mut digest_check = DigestVerifier::new(pinned.clone());
    for d in &digests {
        if let Err(bad) = digest_check.push(d, hashes.get(&d.head_seq).map(String::as_str)) {
            return broken(bad.head_seq, bad.to_string(), chain.count());
        }
    }
    let report = json!({
        "ok": true,
        "checked": chain.count(),
        "last_hash": chain.last_hash(),
        "digests": digest_check.count(),
        "covered": digest_check.covered(),
        "digest_key_pinned": pinned.is_some(),
    });
    out.emit(&report, || {
        format!(
            "OK: {} audit entries, each hash-chained to the one before (last {})\n\
             OK: {} signed digest(s) {}; they cover entries 1 to {}\n",
            chain.count(),
            chain.last_hash(),
            digest_check.count(),
            if pinned.is_some() {
                "by the pinned audit key"
            } else {
                "by the key each names (not pinned: pass --digest-key)"
            },
            digest_check.covered()
        )
    });
    Ok(())
}

/// Rotate the CA behind an alias: the server makes a new intermediate under the
/// same parent, points the alias at it and retires the old CA (which keeps
/// answering CRL and OCSP for what it issued). `ca rotate` and `alias rotate`.
pub fn rotate_alias(api: &Api, alias: &str, out: &Out) -> Result<()> {
    out.progress("creating the new CA (the server generates its key)");
    let v: wire::AliasRotation = api.call::<(), _>(
        Method::POST,
        &format!("/v1/aliases/{}/rotate", enc(alias)),
        None,
    )?;
    out.emit(&v, || {
        format!("{alias} -> {} (retired {})\n", v.ca_id, v.retired.id)
    });
    Ok(())
}

pub fn run_alias(a: &AliasArgs, out: &Out) -> Result<()> {
    let api = Api::new(a.conn.resolve()?)?;
    match &a.command {
        AliasCommand::List => {
            let v: wire::AliasList = api.get("/v1/aliases")?;
            out.emit(&v, || {
                v.aliases
                    .iter()
                    .map(|x| format!("{} -> {}\n", x.alias, x.ca_id))
                    .collect()
            });
        }
        AliasCommand::Set { alias, ca } => {
            let v: wire::AliasBinding = api.call(
                Method::PUT,
                &format!("/v1/aliases/{}", enc(alias)),
                Some(&wire::SetAlias { ca_id: ca.clone() }),
            )?;
            out.emit(&v, || format!("{alias} -> {ca}\n"));
        }
        AliasCommand::Rotate { alias } => rotate_alias(&api, alias, out)?,
        AliasCommand::Get { alias } => {
            let v: wire::AliasBinding = api.get(&format!("/v1/aliases/{}", enc(alias)))?;
            out.emit(&v, || format!("{} -> {}\n", v.alias, v.ca_id));
        }
    }
    Ok(())
}

#[derive(Args, Debug)]
pub struct ConnOnlyArgs {
    #[command(flatten)]
    pub conn: ConnArgs,
}

/// `ca-cli whoami`: the identity the server sees in our client certificate.
pub fn run_whoami(a: &ConnOnlyArgs, out: &Out) -> Result<()> {
    let api = Api::new(a.conn.resolve()?)?;
    let v: wire::WhoAmI = api.get("/v1/whoami")?;
    out.emit(&v, || {
        let mut t = format!("subject: {}\n", v.subject);
        if !v.sans.is_empty() {
            t.push_str(&format!("SANs:    {}\n", v.sans.join(", ")));
        }
        t
    });
    Ok(())
}

/// `ca-cli health`: every health check of the server; a failing one makes
/// the exit code 3, so scripts and monitors can act on it.
pub fn run_health(a: &ConnOnlyArgs, out: &Out) -> Result<()> {
    let api = Api::new(a.conn.resolve()?)?;
    let (status, v) = api.call_value(Method::GET, "/health")?;
    let h: wire::Health = serde_json::from_value(v).map_err(|e| {
        anyhow::anyhow!("GET /health answered {status} with an unexpected body: {e}")
    })?;
    let failing: Vec<&String> = h
        .checks
        .iter()
        .filter(|(_, c)| !c.ok)
        .map(|(n, _)| n)
        .collect();
    out.emit(&h, || {
        let mut t = format!("{} (ca-server {})\n", h.status, h.version);
        for (name, c) in &h.checks {
            t.push_str(&format!(
                "  {:<15} {}  {}\n",
                name,
                if c.ok { "ok  " } else { "FAIL" },
                c.detail
            ));
        }
        if let Some(p) = &h.pkcs11 {
            t.push_str(&format!(
                "  PKCS#11 token   {}, {} of {} sessions open\n",
                if p.connected {
                    "connected"
                } else {
                    "NOT CONNECTED"
                },
                p.sessions_open,
                p.sessions_max
            ));
        }
        t
    });
    if !failing.is_empty() {
        let names: Vec<&str> = failing.iter().map(|s| s.as_str()).collect();
        return Err(crate::exit::VerificationFailed(format!(
            "failing health checks: {}",
            names.join(", ")
        ))
        .into());
    }
    Ok(())
}
