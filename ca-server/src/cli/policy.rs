//! The stored access policy statements, read and removed without the API:
//! the way back for an operator the API no longer lets in (a deny statement
//! that shuts out every administrator, or a deny statement this version
//! cannot read, which keeps the server from starting).
//!
//! Whoever can open the data directory's store can change it anyway, so
//! these commands ask no policy; the removal is recorded in the audit trail,
//! in the same transaction (action `InternalDeletePolicy`, as the server's
//! own changes outside an API call), naming the command and the
//! operating-system user who ran it.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use ca_server::config::LogFormat;
use ca_server::store::Store;

use crate::{default_data_dir, init_logging};

/// The store of `dir`, refusing a directory that holds none (opening one
/// for writing would make an empty store there).
fn open_store(dir: &Path, writable: bool) -> anyhow::Result<std::sync::Arc<dyn Store>> {
    let has_store = ca_server::store::has_store(dir)
        .with_context(|| format!("reading {}", dir.join("config.toml").display()))?;
    if !has_store {
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
    let rows = store.list_policies();
    store.close();
    let rows = rows
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
    // Closed on every way out: a store not closed needs redb's repair at the
    // next open (a second per million certificates).
    let removed = remove_from(rt, store.as_ref(), &dir, id);
    store.close();
    println!(
        "ca-server: removed policy statement {id} (recorded in the audit trail): {removed}",
        removed = removed?
    );
    Ok(())
}

/// Remove statement `id` from `store`; the statement's JSON as it was stored.
fn remove_from(
    rt: &tokio::runtime::Runtime,
    store: &dyn Store,
    dir: &Path,
    id: &str,
) -> anyhow::Result<String> {
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
    // Outside an API call: the server's own kind of entry (an `Internal…`
    // action), naming the command and the user who ran it.
    let uid = rustix::process::getuid().as_raw();
    let user = match std::env::var("USER") {
        Ok(u) if !u.is_empty() => format!(", USER {u:?}"),
        _ => String::new(),
    };
    let caller = format!("ca-server policy remove (offline; uid {uid}{user})");
    let draft = ca_server::audit::commit_draft(&caller, "DeletePolicy", id);
    let existed = rt
        .block_on(store.delete_policy(id, draft))
        .with_context(|| format!("removing policy statement {id}"))?;
    if !existed {
        bail!("policy statement {id} was removed by someone else meanwhile");
    }
    Ok(removed)
}
