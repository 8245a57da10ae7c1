//! The stored access policy statements, read and removed without the API:
//! the way back for an operator the API no longer lets in (a deny statement
//! that shuts out every administrator, or a deny statement this version
//! cannot read, which keeps the server from starting).
//!
//! Whoever can open the data directory's store can change it anyway, so
//! these commands ask no policy; the removal is recorded in the audit trail,
//! in the same transaction, naming the command and the operating-system
//! user who ran it.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use ca_core::audit_chain::{AuditIdentity, AuditOutcome, AuditResult};
use ca_server::config::LogFormat;
use ca_server::store::{AuditDraft, Store};

use crate::{default_data_dir, init_logging};

/// The store of `dir`, refusing a directory that holds none (opening one
/// for writing would make an empty store there).
fn open_store(dir: &Path, writable: bool) -> anyhow::Result<std::sync::Arc<dyn Store>> {
    if !ca_server::store::is_postgres(dir) && !ca_server::store::exists(dir) {
        bail!(
            "{} holds no store: give the data directory with --data-dir",
            dir.display()
        );
    }
    ca_server::store::open_offline(dir, writable).with_context(|| {
        format!(
            "opening the store of {} (a redb store opens only while the server is stopped)",
            dir.display()
        )
    })
}

/// `ca-server policy list`: every stored statement, one line each (its id,
/// a tab, its JSON as stored), read even where this version cannot parse it.
pub(crate) fn run_policy_list(data_dir: Option<PathBuf>) -> anyhow::Result<()> {
    init_logging(LogFormat::Text);
    let dir = data_dir.unwrap_or_else(default_data_dir);
    let store = open_store(&dir, false)?;
    let rows = store
        .list_policies()
        .context("reading the policy statements")?
        .unwrap_or_default();
    if rows.is_empty() {
        eprintln!("ca-server: no policy statements stored");
    }
    for (id, json) in rows {
        println!("{id}\t{}", String::from_utf8_lossy(&json));
    }
    Ok(())
}

/// `ca-server policy remove ID`.
pub(crate) fn run_policy_remove(
    rt: &tokio::runtime::Runtime,
    data_dir: Option<PathBuf>,
    id: &str,
) -> anyhow::Result<()> {
    init_logging(LogFormat::Text);
    let dir = data_dir.unwrap_or_else(default_data_dir);
    let store = open_store(&dir, true)?;
    let rows = store
        .list_policies()
        .context("reading the policy statements")?
        .unwrap_or_default();
    // Checked first, so an id mistyped records nothing.
    let Some((_, json)) = rows.iter().find(|(stored, _)| stored == id) else {
        let ids: Vec<&str> = rows.iter().map(|(i, _)| i.as_str()).collect();
        bail!(
            "no policy statement {id:?} in {}; stored: {}",
            dir.display(),
            if ids.is_empty() {
                "none".to_string()
            } else {
                ids.join(", ")
            }
        );
    };
    let removed = String::from_utf8_lossy(json).into_owned();
    let existed = rt
        .block_on(store.delete_policy(id, offline_draft(id)))
        .with_context(|| format!("removing policy statement {id}"))?;
    if !existed {
        bail!("policy statement {id} was removed by someone else meanwhile");
    }
    println!("ca-server: removed policy statement {id} (recorded in the audit trail): {removed}");
    Ok(())
}

/// The audit entry of an offline removal: no API caller, so the identity
/// names the command and the user who ran it.
fn offline_draft(id: &str) -> AuditDraft {
    let uid = rustix::process::getuid().as_raw();
    let user = match std::env::var("USER") {
        Ok(u) if !u.is_empty() => format!(", USER {u:?}"),
        _ => String::new(),
    };
    AuditDraft {
        unix: ca_server::clock::now().unix_timestamp(),
        identity: AuditIdentity {
            subject: format!("ca-server policy remove (offline; uid {uid}{user})"),
            fingerprint: String::new(),
        },
        action: "DeletePolicy".into(),
        target: id.to_string(),
        outcome: AuditOutcome {
            decision: "allowed".into(),
            statement: None,
            reason: "offline command on the data directory's store; no policy applies".into(),
        },
        result: AuditResult {
            status: 0,
            code: "success".into(),
        },
        certificate: None,
    }
}
