//! Maintenance of a stopped server's data directory: the master key
//! rotated (every sealed key re-wrapped), the audit trail verified, the
//! store checked.

use std::path::PathBuf;

use anyhow::Context;
use ca_server::config::LogFormat;
use ca_server::store::check::IndexCheck;
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

/// `ca-server check`.
pub(crate) fn run_check(data_dir: Option<PathBuf>) -> anyhow::Result<()> {
    init_logging(LogFormat::Text);
    let dir = data_dir.unwrap_or_else(default_data_dir);
    let progress = |done, total| eprintln!("checked {done} of {total} certificate records");
    let checked_postgres = ca_server::store::check_postgres(&dir, Box::new(progress))
        .with_context(|| format!("checking the PostgreSQL store of {}", dir.display()))?;
    if let Some(report) = checked_postgres {
        println!(
            "store: PostgreSQL (per {}), read in one snapshot; its table pages are \
             PostgreSQL's to check (pg_checksums)",
            dir.join(ca_server::config::CONFIG_FILE).display()
        );
        match &report.indexes {
            IndexCheck::Checked {
                indexes,
                damaged: 0,
            } => println!(
                "OK: amcheck: the store's {indexes} B-tree indexes, their pages and every row of \
                 their tables found in them"
            ),
            IndexCheck::Checked { .. } | IndexCheck::NotApplicable => {}
            IndexCheck::Skipped(why) => println!("indexes not checked: {why}"),
        }
        return print_check(
            &report,
            "each agreeing with its row's columns, with its serial claimed and its DER (the \
             certificate the record names); no claimed serial without its record; revocations, \
             CRL entries, idempotency tokens and ACME records agree",
        );
    }
    let file = dir.join(ca_server::store::STORE_FILE);
    let size = std::fs::metadata(&file)
        .with_context(|| format!("{} (is this a data directory?)", file.display()))?
        .len();
    let report = check_store(&dir).with_context(|| {
        format!(
            "checking the store in {} (the server must be stopped)",
            dir.display()
        )
    })?;
    println!(
        "store: {} ({size} bytes), {}",
        file.display(),
        if report.recovered {
            "not closed cleanly: recovered in this process's memory first (the journal's writes \
             redone, or redb's repair run), its files left as they are"
        } else {
            "nothing to recover"
        }
    );
    if report.pages_ok {
        println!(
            "OK: redb's integrity check: every page matches its checksum, the allocator state matches the pages in use"
        );
    }
    print_check(
        &report,
        "each with its serial, its DER (the certificate the record names) and its expiry \
         entry; no index entry without its record",
    )
}

/// What a check found, after the store's own lines; exits 1 on a problem.
fn print_check(
    report: &ca_server::store::check::CheckReport,
    records_ok: &str,
) -> anyhow::Result<()> {
    for p in &report.problems {
        println!("PROBLEM: {p}");
    }
    if report.problems.is_empty() {
        println!(
            "OK: {} certificate records ({} issued, {} reserved): {records_ok}",
            report.certificates, report.issued, report.reserved
        );
    }
    match &report.audit {
        Some(Verdict::Ok {
            count, digests: 0, ..
        }) => {
            println!("OK: {count} audit entries, hash chain intact; no signed digest yet")
        }
        Some(Verdict::Ok {
            count,
            digests,
            covered,
        }) => println!(
            "OK: {count} audit entries, hash chain intact; {digests} signed digest(s), each signed by the key it names, covering entries 1 to {covered}"
        ),
        Some(Verdict::Broken { seq, why }) => println!("BROKEN audit trail at entry {seq}: {why}"),
        None => {}
    }
    if !report.ok() {
        println!("FAILED: the store has problems (see above)");
        std::process::exit(1);
    }
    Ok(())
}

/// The redb store in `dir` checked end to end (`ca-server check`, and
/// `restore` on what it restored), its progress on stderr.
pub(crate) fn check_store(
    dir: &std::path::Path,
) -> Result<ca_server::store::redb::check::CheckReport, ca_server::store::StoreError> {
    ca_server::store::redb::check::check(dir, &mut |done, total| {
        eprintln!("checked {done} of {total} certificate records");
    })
}
