//! Moving a data directory's records: `ca-server backup` (a snapshot taken
//! through a running server's API), `restore` (a new data directory from
//! one, checked) and `migrate` (from redb into PostgreSQL).

use std::path::{Path, PathBuf};

use anyhow::Context;
use ca_server::config::Config;
use ca_server::store::Verdict;

/// `ca-server backup`: ask the running server for a snapshot, then move it
/// to `out`.
pub(crate) fn backup(
    rt: &tokio::runtime::Runtime,
    dir: &std::path::Path,
    profile: Option<PathBuf>,
    out: &std::path::Path,
) -> anyhow::Result<()> {
    use ca_server::api::client::{profile_config, ApiClient, ClientProfile};
    if out.exists() {
        anyhow::bail!("{} exists: give a new file", out.display());
    }
    let profile_path = profile.unwrap_or_else(|| dir.join("admin/profile.toml"));
    let profile = ClientProfile::load(&profile_path)
        .with_context(|| format!("loading the client profile {}", profile_path.display()))?;
    let tls = profile_config(&profile).context("the client profile's TLS settings")?;
    eprintln!(
        "ca-server backup: asking {} for a snapshot",
        profile.authority()
    );
    let (status, answer) = rt.block_on(async {
        let mut c = ApiClient::connect(profile.authority(), tls).await?;
        c.call(hyper::Method::POST, "/v1/backups", None).await
    })?;
    if status != 201 {
        anyhow::bail!("the server refused the backup ({status}): {answer}");
    }
    let made: ca_server::authority::backup::BackupMade =
        serde_json::from_value(answer).context("the server's answer")?;
    // The server wrote it into its data directory; take it from there.
    if std::fs::rename(&made.path, out).is_err() {
        std::fs::copy(&made.path, out)
            .with_context(|| format!("copying {} to {}", made.path.display(), out.display()))?;
        std::fs::File::open(out)?.sync_all()?;
        std::fs::remove_file(&made.path)?;
    }
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        if let Ok(d) = std::fs::File::open(parent) {
            let _ = d.sync_all();
        }
    }
    println!(
        "backup: {} ({} bytes, sha256 {})\n  as of {}: {} CAs, {} certificates, {} audit entries\n  CA keys are sealed in it; the master key is not: keep it apart",
        out.display(),
        made.size_bytes,
        made.sha256,
        made.created_at,
        made.certificate_authorities,
        made.certificates,
        made.audit_entries
    );
    Ok(())
}

/// `ca-server restore`: a new data directory from a backup, checked.
pub(crate) fn restore(
    from: &std::path::Path,
    dir: &std::path::Path,
    api_addr: Option<String>,
    public_addr: Option<String>,
) -> anyhow::Result<()> {
    if dir.exists()
        && std::fs::read_dir(dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .next()
            .is_some()
    {
        anyhow::bail!(
            "{} is not empty: restore into a new directory",
            dir.display()
        );
    }
    std::fs::create_dir_all(dir).with_context(|| format!("making {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    let files = ca_server::store::restore_snapshot(from, dir)
        .with_context(|| format!("restoring {}", from.display()))?;
    for (rel, bytes) in &files {
        let rel_path = std::path::Path::new(rel);
        // Only the names a backup carries: never a path out of the directory.
        if !ca_server::authority::backup::CARRIED_FILES.contains(&rel.as_str()) {
            anyhow::bail!("the backup carries an unexpected file {rel:?}; refusing it");
        }
        let path = dir.join(rel_path);
        if let Some(p) = path.parent() {
            std::fs::create_dir_all(p)?;
        }
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(if rel.ends_with(".key") { 0o600 } else { 0o644 });
        }
        use std::io::Write;
        let mut f = opts
            .open(&path)
            .with_context(|| format!("writing {}", path.display()))?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    if api_addr.is_some() || public_addr.is_some() {
        let mut config = Config::load(dir).context("the restored config.toml")?;
        if let Some(a) = api_addr {
            config.api_addr = a;
        }
        if let Some(a) = public_addr {
            config.public_addr = a;
        }
        let text = toml::to_string(&config).context("encoding config.toml")?;
        std::fs::write(dir.join("config.toml"), text).context("writing config.toml")?;
    }
    let (certs, cas) = {
        let store = ca_server::store::open_read_only(dir).context("opening the restored store")?;
        let counts = (store.count_certs()?, store.list_cas()?.len());
        store.close();
        counts
    };
    // The whole store checked as `ca-server check` does: every page, every
    // certificate's indexes, the audit trail.
    let report = super::maintenance::check_store(dir).context("checking the restored store")?;
    match (&report.audit, report.problems.is_empty()) {
        (Some(Verdict::Ok { count, .. }), true) => println!(
            "restored into {}: {cas} CAs, {certs} certificates, {count} audit entries (hash chain intact; every page and index checked)",
            dir.display()
        ),
        (Some(Verdict::Broken { seq, why }), _) => {
            anyhow::bail!("the restored audit trail is broken at entry {seq}: {why}")
        }
        _ => anyhow::bail!(
            "the restored store has problems:\n{}",
            report.problems.join("\n")
        ),
    }
    println!(
        "next: put the master key in place ({}/master.key, --master-key-file, or the passphrase), then `ca-server serve --data-dir {}`",
        dir.display(),
        dir.display()
    );
    Ok(())
}

pub(crate) fn migrate(dir: &Path, to: Option<String>) -> anyhow::Result<()> {
    use ca_server::config::{StoreBackend, STORE_URL_ENV};
    let mut config = Config::load(dir)
        .with_context(|| format!("{} is not a ca-server data directory", dir.display()))?;
    if config.store.is_postgres() {
        anyhow::bail!("{} already keeps its records in PostgreSQL", dir.display());
    }
    if !ca_server::store::exists(dir) {
        anyhow::bail!("{} has no store to migrate", dir.display());
    }
    let from_env = std::env::var(STORE_URL_ENV).ok().filter(|u| !u.is_empty());
    let url = match (&to, &from_env) {
        (Some(u), _) | (None, Some(u)) => u.clone(),
        (None, None) => {
            anyhow::bail!("name the target database: --to postgres://… or {STORE_URL_ENV}")
        }
    };
    config.store.backend = StoreBackend::Postgres;
    // A URL given on the command line is kept; one from the environment
    // stays there (it may carry a password).
    config.store.url = to;
    let opts = config.store.postgres_in(dir)?;
    let opts = ca_server::store::postgres::PgOptions { url, ..opts };
    eprintln!("copying the store of {} into the database…", dir.display());
    let report = ca_server::store::migrate::redb_to_postgres(
        dir,
        &opts,
        Box::new(|n| eprintln!("  {n} certificates copied")),
    )?;
    let text = toml::to_string(&config).context("encoding config.toml")?;
    // Replaced whole or not at all: a crash leaves the old or the new file.
    let tmp = dir.join("config.toml.migrate");
    ca_server::files::write_private(&tmp, text.as_bytes()).context("writing config.toml")?;
    std::fs::rename(&tmp, dir.join("config.toml")).context("replacing config.toml")?;
    ca_server::files::sync_dir(dir).context("syncing the data directory")?;
    let rows: u64 = report.rows.values().sum();
    println!(
        "migrated {} in {:.1} s: {} rows; {} CAs, {} certificates, {} audit entries and {} signed digests, compared and verified (hash chain intact)",
        dir.display(),
        report.elapsed.as_secs_f64(),
        rows,
        report.cas,
        report.certificates,
        report.audit_entries,
        report.audit_digests,
    );
    println!(
        "{}/config.toml now says [store] backend = \"postgres\"; start the server as before. The redb file is left in place, unused.",
        dir.display()
    );
    Ok(())
}
