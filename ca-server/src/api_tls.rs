//! The management API's own TLS certificate: loaded at start-up, renewed by the
//! server itself from the issuing CA before it expires, and swapped in for new
//! handshakes without a restart (clients trust the root, so nothing changes for
//! them).
//!
//! The certificate and key live in two files. A renewal writes both as `.new`
//! files (synced), then renames the certificate, then the key; a crash between
//! the renames is repaired at the next start-up, which finishes the renames when
//! the `.new` pair is complete and matches, and drops it otherwise.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context;
use der::Decode;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use time::OffsetDateTime;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::Certificate;
use zeroize::Zeroizing;

use crate::authority::{Authority, Identity, NewKeyRequest};
use crate::config::Config;

/// The certificate new handshakes get; replaced in place on renewal.
#[derive(Debug)]
pub struct ApiCertSlot {
    current: RwLock<Arc<CertifiedKey>>,
}

impl ApiCertSlot {
    pub fn new(key: CertifiedKey) -> Arc<ApiCertSlot> {
        Arc::new(ApiCertSlot {
            current: RwLock::new(Arc::new(key)),
        })
    }

    fn get(&self) -> Arc<CertifiedKey> {
        // A poisoned lock still holds a whole Arc: serve it.
        match self.current.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    fn set(&self, key: CertifiedKey) {
        let mut g = match self.current.write() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        *g = Arc::new(key);
    }

    /// The leaf certificate now served (DER).
    pub fn leaf_der(&self) -> Vec<u8> {
        self.get()
            .cert
            .first()
            .map(|c| c.as_ref().to_vec())
            .unwrap_or_default()
    }
}

impl ResolvesServerCert for ApiCertSlot {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.get())
    }
}

fn paths(data_dir: &Path, config: &Config) -> (PathBuf, PathBuf) {
    (
        data_dir.join(&config.tls_cert),
        data_dir.join(&config.tls_key),
    )
}

fn pending(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".new");
    PathBuf::from(s)
}

/// A chain and key that parse and belong together.
fn certified_key(cert_pem: &[u8], key_pem: &[u8]) -> anyhow::Result<CertifiedKey> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<_, _>>()
        .context("server certificate chain")?;
    if chain.is_empty() {
        anyhow::bail!("the server certificate file holds no certificate");
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).context("server private key")?;
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    let ck = CertifiedKey::from_der(chain, key, &provider).context("server certificate and key")?;
    ck.keys_match()
        .context("the server certificate does not match its key")?;
    Ok(ck)
}

fn read_pair(cert: &Path, key: &Path) -> anyhow::Result<CertifiedKey> {
    let cert_pem = std::fs::read(cert).with_context(|| format!("reading {}", cert.display()))?;
    let key_pem =
        Zeroizing::new(std::fs::read(key).with_context(|| format!("reading {}", key.display()))?);
    certified_key(&cert_pem, &key_pem)
}

/// Finish or drop a renewal that a crash interrupted (see the module comment).
fn recover(cert: &Path, key: &Path) -> anyhow::Result<()> {
    let (cert_new, key_new) = (pending(cert), pending(key));
    if !cert_new.exists() && !key_new.exists() {
        return Ok(());
    }
    let cert_src = if cert_new.exists() { &cert_new } else { cert };
    let key_src = if key_new.exists() { &key_new } else { key };
    if read_pair(cert_src, key_src).is_ok() {
        tracing::warn!("finishing an interrupted renewal of the API TLS certificate");
        for (from, to) in [(&cert_new, cert), (&key_new, key)] {
            if from.exists() {
                std::fs::rename(from, to)
                    .with_context(|| format!("renaming {}", from.display()))?;
            }
        }
    } else {
        // The renamed certificate needs its pending key: dropping that would
        // leave a pair that can never match, so stop and say what to do.
        if let Err(e) = read_pair(cert, key) {
            anyhow::bail!(
                "an interrupted renewal left {} and {} unusable ({e:#}); restore a matching certificate and key",
                cert.display(),
                key.display()
            );
        }
        tracing::warn!("dropping an incomplete renewal of the API TLS certificate");
        for p in [&cert_new, &key_new] {
            if p.exists() {
                std::fs::remove_file(p).with_context(|| format!("removing {}", p.display()))?;
            }
        }
    }
    sync_parent(cert)?;
    sync_parent(key)
}

fn sync_parent(path: &Path) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .with_context(|| format!("syncing {}", dir.display()))?;
    }
    Ok(())
}

/// The API's certificate and key from the data directory.
pub fn load(data_dir: &Path, config: &Config) -> anyhow::Result<CertifiedKey> {
    let (cert, key) = paths(data_dir, config);
    recover(&cert, &key)?;
    read_pair(&cert, &key)
}

/// Replace the certificate and key files (crash-safe, see the module comment).
pub fn store(
    data_dir: &Path,
    config: &Config,
    chain_pem: &str,
    key_pem: &Zeroizing<String>,
) -> anyhow::Result<()> {
    let (cert, key) = paths(data_dir, config);
    for p in [pending(&cert), pending(&key)] {
        // A stale file would keep its old mode: start from a new one (0600).
        match std::fs::remove_file(&p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).with_context(|| format!("removing {}", p.display()));
            }
            _ => {}
        }
    }
    crate::files::write_private(&pending(&cert), chain_pem.as_bytes())?;
    crate::files::write_private(&pending(&key), key_pem.as_bytes())?;
    std::fs::rename(pending(&cert), &cert)
        .with_context(|| format!("replacing {}", cert.display()))?;
    std::fs::rename(pending(&key), &key).with_context(|| format!("replacing {}", key.display()))?;
    sync_parent(&cert)?;
    sync_parent(&key)
}

/// notAfter and the names (DNS and IP SANs) of a certificate.
fn expiry_and_names(der: &[u8]) -> anyhow::Result<(OffsetDateTime, Vec<String>)> {
    let cert = Certificate::from_der(der).context("parsing the API TLS certificate")?;
    let tbs = &cert.tbs_certificate;
    let not_after = OffsetDateTime::from(tbs.validity.not_after.to_system_time());
    let mut names = Vec::new();
    if let Some((_, san)) = tbs
        .get::<SubjectAltName>()
        .context("subjectAltName of the API TLS certificate")?
    {
        for n in san.0 {
            match n {
                GeneralName::DnsName(d) => names.push(d.to_string()),
                GeneralName::IpAddress(ip) => {
                    let b = ip.as_bytes();
                    if let Ok(a) = <[u8; 4]>::try_from(b) {
                        names.push(IpAddr::from(a).to_string());
                    } else if let Ok(a) = <[u8; 16]>::try_from(b) {
                        names.push(IpAddr::from(a).to_string());
                    }
                }
                _ => {}
            }
        }
    }
    Ok((not_after, names))
}

/// Whether a certificate expiring at `not_after` is due for renewal at `now`.
pub fn renewal_due(not_after: OffsetDateTime, now: OffsetDateTime, config: &Config) -> bool {
    now.checked_add(config.api_tls_renew_before())
        .is_none_or(|t| t >= not_after)
}

/// Renew the served certificate if it is due: issue a new one with the same
/// names from the default issuing CA, store it, and serve it. Returns whether
/// it renewed. It does not renew (and says why in the log) when renewal is
/// switched off, when the issuing CA does not chain to this server's root
/// (clients would not trust the new certificate), or when the issuing CA
/// expires too soon for a renewal to help (it would renew on every check).
pub async fn renew_if_due(
    auth: &Authority,
    data_dir: &Path,
    slot: &ApiCertSlot,
) -> anyhow::Result<bool> {
    let config = &auth.config;
    let (not_after, names) = expiry_and_names(&slot.leaf_der())?;
    let now = OffsetDateTime::now_utc();
    if !renewal_due(not_after, now, config) {
        return Ok(false);
    }
    if !config.api_tls.auto_renew {
        tracing::warn!(%not_after, "the API TLS certificate is due for renewal, and api_tls.auto_renew is off");
        return Ok(false);
    }
    if names.is_empty() {
        anyhow::bail!("the API TLS certificate has no DNS or IP names to renew with");
    }
    let ca_id = auth
        .resolve_ca(&auth.default_ca())
        .map_err(|e| anyhow::anyhow!("the issuing CA: {e}"))?;
    let ca = auth
        .get_ca(&ca_id)
        .map_err(|e| anyhow::anyhow!("the issuing CA: {e}"))?;
    if !chains_to_root(auth, &ca)? {
        anyhow::bail!(
            "the issuing CA {ca_id} does not chain to this server's root {}: clients would not trust a certificate from it",
            config.root_ca_id
        );
    }
    let ca_not_after = ca
        .not_after
        .and_then(|t| OffsetDateTime::from_unix_timestamp(t).ok())
        .unwrap_or(now);
    // Issuance never runs past the issuer, so a renewal must gain at least a
    // day on the current certificate to be worth one.
    if not_after
        .checked_add(time::Duration::days(1))
        .is_none_or(|t| ca_not_after <= t)
    {
        anyhow::bail!(
            "the issuing CA {ca_id} expires {ca_not_after}, no later than the API certificate ({not_after}): rotate the issuing CA"
        );
    }
    let (view, key) = auth
        .issue_with_new_key(
            &Identity::internal("ca-server API TLS renewal"),
            &ca_id,
            &NewKeyRequest {
                names: &names,
                subject: None,
                profile: "tls-server",
                key_algorithm: "ec-p256",
                validity_days: Some(config.api_tls_validity_days()),
            },
        )
        .await
        .map_err(|e| anyhow::anyhow!("issuing the API TLS certificate: {e}"))?;
    let chain_pem = chain_pem(&view.der, &view.chain_der());
    let key_pem = key.to_pkcs8_pem();
    drop(key);
    let renewed = certified_key(chain_pem.as_bytes(), key_pem.as_bytes())?;
    store(data_dir, config, &chain_pem, &key_pem)?;
    slot.set(renewed);
    let (new_not_after, _) = expiry_and_names(&view.der)?;
    tracing::info!(
        serial = %view.record.serial,
        old_not_after = %not_after,
        new_not_after = %new_not_after,
        "renewed the API TLS certificate"
    );
    if renewal_due(new_not_after, OffsetDateTime::now_utc(), config) {
        tracing::warn!(
            not_after = %new_not_after,
            "the renewed API TLS certificate is already in its renewal window: the issuing CA expires soon; rotate it"
        );
    }
    Ok(true)
}

/// Whether `ca` is this server's root or chains to it (the chain ends at the root).
fn chains_to_root(auth: &Authority, ca: &crate::store::CaRecord) -> anyhow::Result<bool> {
    let root_id = &auth.config.root_ca_id;
    if &ca.id == root_id {
        return Ok(true);
    }
    let root = auth
        .get_ca(root_id)
        .map_err(|e| anyhow::anyhow!("this server's root CA: {e}"))?;
    let root_pem = root.certificate_pem.unwrap_or_default();
    let top = ca.chain_pem.last().map(String::as_str).unwrap_or_default();
    let der = |pem: &str| ca_core::pem::decode("CERTIFICATE", pem).ok();
    Ok(der(top).is_some() && der(top) == der(&root_pem))
}

/// Leaf and intermediates as PEM (the root is what clients already trust).
pub fn chain_pem(leaf_der: &[u8], chain_der: &[Vec<u8>]) -> String {
    let mut pem = ca_core::pem::encode("CERTIFICATE", leaf_der);
    for d in chain_der.iter().take(chain_der.len().saturating_sub(1)) {
        pem.push_str(&ca_core::pem::encode("CERTIFICATE", d));
    }
    pem
}

/// Renew if due; a failure is logged, never fatal: the current certificate
/// stays served (it may have months left) and the next check retries, so an
/// operator can still reach the API to fix the cause (e.g. re-enable the CA).
pub async fn renew_or_log(auth: &Authority, data_dir: &Path, slot: &ApiCertSlot) {
    if let Err(e) = renew_if_due(auth, data_dir, slot).await {
        tracing::error!(error = %format!("{e:#}"), "renewing the API TLS certificate failed; serving the current one");
    }
}

/// Check every `api_tls.check_interval_secs` while the server runs; a failed
/// renewal is logged and retried at the next check (the current certificate
/// stays served).
pub fn spawn_renewer(
    auth: Arc<Authority>,
    data_dir: PathBuf,
    slot: Arc<ApiCertSlot>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let every = Duration::from_secs(auth.config.api_tls.check_interval_secs.max(1));
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await; // the first tick is immediate; start-up already checked
        loop {
            tick.tick().await;
            renew_or_log(&auth, &data_dir, &slot).await;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(validity: Option<u32>, before: Option<u32>) -> Config {
        let mut c: Config = toml::from_str(
            r#"api_addr = "127.0.0.1:0"
public_addr = "127.0.0.1:0"
client_auth_ca_id = "x"
issuing_ca_id = "x"
root_ca_id = "x"
tls_cert = "tls/server.pem"
tls_key = "tls/server.key"
"#,
        )
        .expect("minimal config");
        c.api_tls.validity_days = validity;
        c.api_tls.renew_before_days = before;
        c
    }

    #[test]
    fn due_in_the_last_third_by_default_or_as_configured() {
        let now = OffsetDateTime::now_utc();
        let c = config(Some(90), None);
        assert!(!renewal_due(now + time::Duration::days(31), now, &c));
        assert!(renewal_due(now + time::Duration::days(29), now, &c));
        assert!(renewal_due(now - time::Duration::days(1), now, &c));
        let c = config(Some(90), Some(7));
        assert!(!renewal_due(now + time::Duration::days(8), now, &c));
        assert!(renewal_due(now + time::Duration::days(6), now, &c));
    }

    #[test]
    fn periods_that_would_overflow_dates_or_timers_are_refused() {
        let mut c = config(None, None);
        c.validity.insert(
            "tls-server".into(),
            crate::config::ValidityConfig {
                default_days: 90,
                max_days: 9_000_000,
            },
        );
        assert!(c.check().is_err());
        let mut c = config(None, None);
        c.api_tls.check_interval_secs = u64::MAX;
        assert!(c.check().is_err());
        let mut c = config(None, None);
        c.revocation.crl_validity_hours = u32::MAX;
        assert!(c.check().is_err());
        assert!(config(None, None).check().is_ok());
    }

    #[test]
    fn a_threshold_at_or_past_the_lifetime_is_refused() {
        assert!(config(Some(30), Some(30)).check().is_err());
        assert!(config(Some(30), Some(29)).check().is_ok());
        assert!(config(Some(0), None).check().is_err());
        assert!(config(Some(10_000), None).check().is_err());
    }
}
