//! Backups of a running server: a consistent snapshot of the store, with the
//! data directory's configuration and API TLS files, written into
//! `DIR/backups/` for `ca-server backup` to collect. CA keys stay sealed
//! under the master key (or in the token); the master key is never in it.

use std::path::{Path, PathBuf};

use super::*;

/// The data directory files a backup carries (relative paths), when present.
/// Not the master key, not the first administrator's private key.
pub const CARRIED_FILES: &[&str] = &[
    "config.toml",
    "tls/server.pem",
    "tls/server.key",
    "audit-digest-key.pem",
    "admin/root.pem",
];

/// Where backups are written before `ca-server backup` takes them.
pub const BACKUP_DIR: &str = "backups";

/// What a backup holds.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct BackupMade {
    pub path: PathBuf,
    pub size_bytes: u64,
    pub sha256: String,
    pub certificate_authorities: u64,
    pub certificates: u64,
    pub audit_entries: u64,
    pub created_at: String,
}

fn io(what: &str, e: std::io::Error) -> ApiError {
    ApiError::new(ErrorCode::Unavailable, format!("{what}: {e}"))
}

fn write_backup(
    store: &dyn Store,
    dir: &Path,
    name: &str,
) -> Result<(PathBuf, crate::store::SnapshotCounts), ApiError> {
    let backups = dir.join(BACKUP_DIR);
    std::fs::create_dir_all(&backups).map_err(|e| io("making the backups directory", e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&backups, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| io("securing the backups directory", e))?;
    }
    let mut files = Vec::new();
    for rel in CARRIED_FILES {
        match std::fs::read(dir.join(rel)) {
            Ok(b) => files.push((rel.to_string(), b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(&format!("reading {rel}"), e)),
        }
    }
    let partial = backups.join(format!("{name}.partial"));
    let done = backups.join(format!("{name}.cabackup"));
    let _ = std::fs::remove_file(&partial);
    let counts = store
        .snapshot(&partial, &files)
        .map_err(|e| ApiError::new(ErrorCode::Unavailable, format!("snapshot: {e}")))?;
    // Owner-only (it holds the API's TLS key), durable, then in place.
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&partial)
        .map_err(|e| io("opening the snapshot", e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(|e| io("securing the snapshot", e))?;
    }
    f.sync_all().map_err(|e| io("syncing the snapshot", e))?;
    drop(f);
    std::fs::rename(&partial, &done).map_err(|e| io("naming the snapshot", e))?;
    if let Ok(d) = std::fs::File::open(&backups) {
        let _ = d.sync_all();
    }
    Ok((done, counts))
}

fn sha256_file(path: &Path) -> Result<(String, u64), ApiError> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(|e| io("reading the snapshot", e))?;
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    let mut buf = vec![0u8; 1 << 16];
    let mut len = 0u64;
    loop {
        let n = f
            .read(&mut buf)
            .map_err(|e| io("reading the snapshot", e))?;
        if n == 0 {
            break;
        }
        len += n as u64;
        ctx.update(&buf[..n]);
    }
    Ok((ca_core::hex::encode(ctx.finish().as_ref()), len))
}

impl Authority {
    /// Take a backup (global administrators only). The snapshot runs off the
    /// async threads; issuance and everything else go on meanwhile.
    pub async fn create_backup(&self, who: &Identity) -> Result<BackupMade, ApiError> {
        self.authorize_administer(who, "*")?;
        let dir = self.data_dir.get().cloned().ok_or_else(|| {
            ApiError::new(
                ErrorCode::InvalidState,
                "this server has no data directory to back up",
            )
        })?;
        let now = self.now();
        let name = format!(
            "backup-{}-{}",
            now.unix_timestamp(),
            crate::ids::new_ca_id()
                .map_err(|e| ApiError::internal("backup name", e))?
                .trim_start_matches("ca-")
        );
        let store = self.store.clone();
        let (path, counts, sha256, size) = tokio::task::spawn_blocking(move || {
            let (path, counts) = write_backup(store.as_ref(), &dir, &name)?;
            let (sha256, size) = sha256_file(&path)?;
            Ok::<_, ApiError>((path, counts, sha256, size))
        })
        .await
        .map_err(|e| ApiError::internal("backup task", e))??;
        tracing::info!(path = %path.display(), size, certificates = counts.certificates, by = %who.display(), "backup written");
        Ok(BackupMade {
            path,
            size_bytes: size,
            sha256,
            certificate_authorities: counts.cas,
            certificates: counts.certificates,
            audit_entries: counts.audit_entries,
            created_at: crate::clock::fmt_unix(now.unix_timestamp()),
        })
    }
}
