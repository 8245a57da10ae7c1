//! CRL building and serving: sign a CA's pre-encoded entries in the
//! background, keep the file durably, commit its record, swap the served copy.

use super::*;

/// Seconds before the previous CRL's thisUpdate that an expired entry must
/// have been revoked by to leave the CRL (a revocation committed while that
/// CRL was being built is kept one more round).
const EXPIRED_ENTRY_MARGIN_SECS: i64 = 300;

impl RevocationService {
    /// Build, sign, commit and start serving a new CRL for `ca_id`.
    pub async fn build(&self, ca_id: &str) -> Result<Arc<ServedCrl>, RevocationError> {
        let _one_at_a_time = self.build_lock.lock().await;
        // Cleared before the scan: a revocation committed from here on marks
        // the CA again, so it is never left out of every CRL.
        lock(&self.dirty).remove(ca_id);
        let cert = self.ca_cert(ca_id)?;
        let signer = self.auth.ca_signer(ca_id).map_err(RevocationError::CaKey)?;
        let store = self.auth.store.clone();
        let id = ca_id.to_string();
        let validity = time::Duration::hours(i64::from(self.cfg.crl_validity_hours));
        let dir = self.crl_dir.clone();
        let drop_expired = self.cfg.drop_expired_crl_entries;
        let (meta, der, expired) = tokio::task::spawn_blocking(move || {
            let prev = store.crl_meta(&id)?;
            // RFC 5280 §3.3: an entry may leave once it has appeared on one
            // CRL published after its certificate expired. The previous CRL
            // was published at its thisUpdate; an entry whose certificate had
            // expired, and which was revoked, before then (less a margin for
            // a revocation committed just after that CRL's scan) was on it.
            let cutoff = prev
                .as_ref()
                .filter(|_| drop_expired)
                .map(|p| p.this_update - EXPIRED_ENTRY_MARGIN_SECS);
            let crate::store::CrlEntries {
                der: entries,
                count,
                expired,
            } = store.crl_entries(&id, cutoff)?;
            let this_update = now();
            let params = CrlParams {
                crl_number: prev.as_ref().map_or(1, |p| p.crl_number.saturating_add(1)),
                this_update,
                next_update: this_update + validity,
            };
            let der = build_crl_from_encoded(&cert, signer.as_ref(), &params, &[entries])?;
            write_crl_file(&dir, &id, params.crl_number, &der)?;
            let meta = CrlMeta {
                crl_number: params.crl_number,
                this_update: this_update.unix_timestamp(),
                next_update: params.next_update.unix_timestamp(),
                entries: count,
            };
            Ok::<_, RevocationError>((meta, der, expired))
        })
        .await
        .map_err(|e| RevocationError::Task(e.to_string()))??;
        let served = Arc::new(ServedCrl::new(meta, der));
        let (w_id, w_meta) = (ca_id.to_string(), served.meta.clone());
        // Signing a CRL is the CA key at work: audited with its record.
        let draft = crate::audit::commit_draft(
            "ca-server",
            "SignCrl",
            &format!("{w_id}/crl/{}", w_meta.crl_number),
        );
        let dropped = expired.len();
        let published = self
            .auth
            .store
            .put_crl_meta(&w_id, w_meta, served.der.to_vec(), expired, draft)
            .await;
        if let Err(crate::store::StoreError::Conflict(why)) = &published {
            // Another node sharing the store published this number (or a
            // newer one) first: ours never leaves this process; serve theirs.
            tracing::debug!(ca = %ca_id, %why, "another node published this CRL first");
            return self.load_published(ca_id).await;
        }
        published?;
        if dropped > 0 {
            tracing::info!(ca = %w_id, entries = dropped, "expired certificates' entries left the CRL");
        }
        write(&self.served).insert(ca_id.to_string(), served.clone());
        self.stats.crls_built.fetch_add(1, Ordering::Relaxed);
        remove_older_crls(&self.crl_dir, ca_id, served.meta.crl_number);
        Ok(served)
    }

    /// Serve the CRL the store says was published last (another node's).
    async fn load_published(&self, ca_id: &str) -> Result<Arc<ServedCrl>, RevocationError> {
        write(&self.served).remove(ca_id);
        let store = self.auth.store.clone();
        let (id, dir) = (ca_id.to_string(), self.crl_dir.clone());
        let stored = tokio::task::spawn_blocking(move || {
            let Some(meta) = store.crl_meta(&id)? else {
                return Ok(None);
            };
            let Some(der) = store.crl_der(&id, meta.crl_number)? else {
                return Ok(None);
            };
            write_crl_file(&dir, &id, meta.crl_number, &der)?;
            Ok::<_, RevocationError>(Some((meta, der)))
        })
        .await
        .map_err(|e| RevocationError::Task(e.to_string()))??;
        let Some((meta, der)) = stored else {
            return Err(RevocationError::Task(format!(
                "the CRL of {ca_id} published elsewhere is not in the store"
            )));
        };
        let served = Arc::new(ServedCrl::new(meta, der));
        write(&self.served).insert(ca_id.to_string(), served.clone());
        remove_older_crls(&self.crl_dir, ca_id, served.meta.crl_number);
        Ok(served)
    }

    /// The CRL to serve now: in memory, else the last one stored, else built.
    pub async fn current_crl(&self, ca_id: &str) -> Result<Arc<ServedCrl>, RevocationError> {
        if let Some(c) = read(&self.served).get(ca_id) {
            return Ok(c.clone());
        }
        let store = self.auth.store.clone();
        let id = ca_id.to_string();
        let dir = self.crl_dir.clone();
        let stored = tokio::task::spawn_blocking(move || {
            let Some(meta) = store.crl_meta(&id)? else {
                return Ok(None);
            };
            // A store shared by several nodes keeps the DER; keep a copy in
            // this node's directory too, as the node that signed it does.
            if let Some(der) = store.crl_der(&id, meta.crl_number)? {
                write_crl_file(&dir, &id, meta.crl_number, &der)?;
                return Ok(Some((meta, der)));
            }
            match std::fs::read(crl_path(&dir, &id, meta.crl_number)) {
                Ok(der) => Ok(Some((meta, der))),
                // Lost (e.g. a restored backup without the files): build anew.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(RevocationError::Io(id.clone(), e)),
            }
        })
        .await
        .map_err(|e| RevocationError::Task(e.to_string()))??;
        match stored {
            Some((meta, der)) => {
                let mut served = write(&self.served);
                // The builder may have swapped in a newer one meanwhile.
                let entry = served
                    .entry(ca_id.to_string())
                    .or_insert_with(|| Arc::new(ServedCrl::new(meta, der)));
                Ok(entry.clone())
            }
            None => self.build(ca_id).await,
        }
    }
}

fn crl_path(dir: &Path, ca_id: &str, number: u64) -> PathBuf {
    dir.join(format!("{ca_id}.{number}.crl"))
}

/// Write a signed CRL durably: temporary file, fsync, rename, fsync the directory.
fn write_crl_file(dir: &Path, ca_id: &str, number: u64, der: &[u8]) -> Result<(), RevocationError> {
    let io = |e| RevocationError::Io(ca_id.to_string(), e);
    std::fs::create_dir_all(dir).map_err(io)?;
    let path = crl_path(dir, ca_id, number);
    let tmp = path.with_extension("crl.tmp");
    {
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        f.write_all(der).map_err(io)?;
        f.sync_all().map_err(io)?;
    }
    std::fs::rename(&tmp, &path).map_err(io)?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io)
}

/// Delete a CA's CRL files older than `keep` (best effort: leftovers are harmless).
fn remove_older_crls(dir: &Path, ca_id: &str, keep: u64) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let prefix = format!("{ca_id}.");
    for e in rd.flatten() {
        let name = e.file_name();
        let Some(n) = name
            .to_str()
            .and_then(|n| n.strip_prefix(&prefix))
            .and_then(|n| n.strip_suffix(".crl"))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        if n < keep {
            let _ = std::fs::remove_file(e.path());
        }
    }
}
