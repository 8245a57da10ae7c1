//! Maintenance of a stopped server's data directory: the master key
//! rotated (every sealed key re-wrapped), the audit trail verified.

use std::path::PathBuf;

use anyhow::Context;
use ca_server::config::LogFormat;
use ca_server::store::Verdict;
use ca_server::vault::rotate_master_key;

use crate::{default_data_dir, init_logging, RotateArgs};

/// `ca-server rotate-master-key`.
pub(crate) fn run_rotate_master_key(a: RotateArgs) -> anyhow::Result<()> {
    init_logging(LogFormat::Text);
    let dir = a.data_dir.unwrap_or_else(default_data_dir);
    // A token in the config may hold the master key (or be where a
    // rotation moves it).
    let config = ca_server::config::Config::load(&dir)
        .with_context(|| format!("reading {}", dir.display()))?;
    let (_token, master) =
        ca_server::vault::with_configured_token(&dir, &config, &a.master.options())?;
    let n = rotate_master_key(
        &dir,
        &master,
        a.new_passphrase_file.as_deref(),
        a.crash_after,
    )
    .with_context(|| {
        format!(
            "rotating the master key of {} (the server must be stopped)",
            dir.display()
        )
    })?;
    println!("ca-server: master key rotated; {n} sealed key(s) re-wrapped (CA keys and the audit digest key)");
    Ok(())
}

/// `ca-server audit verify`.
pub(crate) fn run_audit_verify(
    data_dir: Option<PathBuf>,
    digest_key: Option<PathBuf>,
) -> anyhow::Result<()> {
    init_logging(LogFormat::Text);
    let dir = data_dir.unwrap_or_else(default_data_dir);
    let pinned = match &digest_key {
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
    match ca_server::store::open_offline(&dir, false)
        .and_then(|s| s.verify_audit(pinned.as_deref()))
        .with_context(|| {
            format!(
                "reading the audit trail in {} (the server must be stopped)",
                dir.display()
            )
        })? {
        Verdict::Ok {
            count,
            digests,
            covered,
        } => {
            println!("OK: {count} audit entries, hash chain intact");
            let key = if pinned.is_some() {
                "each signed by the pinned audit key"
            } else {
                "each signed by the key it names (not pinned: pass --digest-key)"
            };
            println!(
                "OK: {digests} signed digest(s), {key}; they cover entries 1 to {covered}, {} newer",
                count.saturating_sub(covered)
            );
            Ok(())
        }
        Verdict::Broken { seq, why } => {
            println!("BROKEN at entry {seq}: {why}");
            std::process::exit(1);
        }
    }
}
