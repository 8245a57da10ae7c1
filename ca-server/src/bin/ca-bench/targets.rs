//! The servers one run drives with the same load generator: ca-server (the
//! one measured, and its variants), and the peers it is compared with, CFSSL
//! (`cfssl serve`, signing a CSR, storing nothing) and step-ca (renewing a
//! certificate over mutual TLS, storing it in bbolt or badger).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use ca_server::api::client::{profile_config, ApiClient, ClientProfile};
use ca_server::api::wire;
use hyper::body::Bytes;

use crate::bench_support::Call;
use crate::temp_server::TempServer;

/// What one target answers to, and whose CPU time to read.
pub struct Target {
    pub name: String,
    pub addr: String,
    pub tls: Arc<rustls::ClientConfig>,
    pub call: Call,
    pub bodies: Arc<[Bytes]>,
    pub pid: Option<String>,
    /// The store (a file, or a directory of them), to measure the disk it
    /// takes per certificate.
    pub store: Option<PathBuf>,
}

/// The name of the ca-server every ratio is about.
pub const OURS: &str = "ca-server";
/// Reads of one certificate from ca-server (`--reads`).
pub const READS: &str = "ca-server GET";
/// ca-server with its syncs made no-ops (`--syncs-off-peer`).
pub const SYNCS_OFF: &str = "syncs-off";
pub const CFSSL: &str = "cfssl";
/// step-ca targets are named `step-ca/<store>`.
pub const STEP_CA: &str = "step-ca";

/// Issuance requests for CA `ca_id`, one per CSR.
pub fn issue_bodies(csr_pems: &[String], ca_id: &Option<String>) -> anyhow::Result<Arc<[Bytes]>> {
    csr_pems
        .iter()
        .map(|csr| {
            Ok(Bytes::from(serde_json::to_vec(&wire::IssueCertificate {
                ca_id: ca_id.clone(),
                csr: csr.clone(),
                profile: Some("tls-server".into()),
                validity_days: None,
                idempotency_token: None,
            })?))
        })
        .collect()
}

/// Bytes of disk a store takes: the blocks its file has allocated, or the
/// sum over a directory's files (badger keeps several). Not the file's
/// length: redb (and bbolt) double a file's length when they need room, and
/// the file system allocates the new half as it is written, so the length
/// runs up to twice ahead of what the disk holds.
pub fn disk_usage(path: &Path) -> Option<u64> {
    // The path given is followed if it is a link; links inside are not.
    usage_of(&std::fs::metadata(path).ok()?, path)
}

fn usage_of(meta: &std::fs::Metadata, path: &Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    if !meta.is_dir() {
        // st_blocks counts 512-byte units whatever the block size.
        return Some(meta.blocks() * 512);
    }
    let mut total = 0;
    for entry in std::fs::read_dir(path).ok()? {
        let entry = entry.ok()?.path();
        let usage = std::fs::symlink_metadata(&entry)
            .ok()
            .and_then(|meta| usage_of(&meta, &entry));
        match usage {
            Some(bytes) => total += bytes,
            // Gone since the listing (badger deletes tables it compacted).
            None if !entry.exists() => {}
            None => return None,
        }
    }
    Some(total)
}

/// Trust exactly the certificates in the PEM file `ca`.
fn roots_of(ca: &Path) -> anyhow::Result<rustls::RootCertStore> {
    let mut roots = rustls::RootCertStore::empty();
    let text = std::fs::read_to_string(ca).with_context(|| format!("reading {}", ca.display()))?;
    for der in ca_core::pem::decode_all("CERTIFICATE", &text)? {
        roots.add(rustls_pki_types::CertificateDer::from(der))?;
    }
    Ok(roots)
}

impl Target {
    /// `GET /v1/certificates/{serial}` of a certificate `ours` issues now:
    /// a read, which the server audits durably before it answers.
    pub fn reads_of(rt: &tokio::runtime::Runtime, ours: &Target) -> anyhow::Result<Target> {
        let serial = rt.block_on(async {
            let mut c = ApiClient::connect(&ours.addr, ours.tls.clone()).await?;
            let body = ours
                .bodies
                .first()
                .cloned()
                .context("no issuance request")?;
            let (status, answer) = c
                .send(ours.call.method.clone(), ours.call.path, body, true)
                .await?;
            anyhow::ensure!(
                (200..300).contains(&status),
                "issuing the certificate to read: HTTP {status}"
            );
            let cert: wire::Certificate =
                serde_json::from_slice(&answer).context("the issued certificate's answer")?;
            Ok(cert.summary.serial)
        })?;
        // Built once for the run (the load generator takes a static path).
        let path: &'static str = Box::leak(format!("/v1/certificates/{serial}").into_boxed_str());
        Ok(Target {
            name: READS.into(),
            addr: ours.addr.clone(),
            tls: ours.tls.clone(),
            call: Call {
                method: hyper::Method::GET,
                path,
            },
            bodies: Arc::from(vec![Bytes::new()]),
            pid: ours.pid.clone(),
            store: ours.store.clone(),
        })
    }

    /// A server `start_temp_server` started, issuing through its own API.
    pub fn temp_server(
        name: &str,
        csr_pems: &[String],
        server: &TempServer,
        profile: &ClientProfile,
        addr: &str,
    ) -> anyhow::Result<Target> {
        Ok(Target {
            name: name.to_string(),
            addr: addr.to_string(),
            tls: profile_config(profile)?,
            call: Call::post("/v1/certificates"),
            bodies: issue_bodies(csr_pems, &profile.default_ca_id)?,
            pid: Some(server.child.id().to_string()),
            store: Some(server.dir.join(ca_server::store::STORE_FILE)),
        })
    }

    /// A running `cfssl serve` at `addr` whose TLS certificate chains to
    /// `ca`, signing the same CSRs (`/api/v1/cfssl/sign`).
    pub fn cfssl(
        addr: &str,
        ca: &Path,
        pid: Option<u32>,
        csr_pems: &[String],
    ) -> anyhow::Result<Target> {
        let tls = rustls::ClientConfig::builder()
            .with_root_certificates(roots_of(ca)?)
            .with_no_client_auth();
        Ok(Target {
            name: CFSSL.into(),
            addr: addr.to_string(),
            tls: Arc::new(tls),
            call: Call::post("/api/v1/cfssl/sign"),
            bodies: csr_pems
                .iter()
                .map(|csr| {
                    Ok(Bytes::from(serde_json::to_vec(
                        &serde_json::json!({ "certificate_request": csr }),
                    )?))
                })
                .collect::<anyhow::Result<_>>()?,
            pid: pid.map(|p| p.to_string()),
            store: None,
        })
    }

    /// A running step-ca, from `STORE,ADDR,PID[,PATH]` (`PATH`: its
    /// database, to measure): each request renews the client certificate
    /// (`POST /1.0/renew` over mutual TLS, no body), which signs and stores a
    /// certificate without a CSR to check. `root` is step-ca's root;
    /// `client_chain` (the client certificate, then its issuer) and
    /// `client_key` (PEM, SEC 1 or PKCS #8) a certificate it issued.
    pub fn step_ca(
        spec: &str,
        root: &Path,
        client_chain: &Path,
        client_key: &Path,
    ) -> anyhow::Result<Target> {
        // The database path, last, may hold commas.
        let mut parts = spec.splitn(4, ',');
        let (Some(store), Some(addr), Some(pid)) = (parts.next(), parts.next(), parts.next())
        else {
            anyhow::bail!("--step-ca {spec:?}: expected STORE,ADDR,PID[,DATABASE]");
        };
        if store.is_empty() || addr.is_empty() {
            anyhow::bail!("--step-ca {spec:?}: expected STORE,ADDR,PID[,DATABASE]");
        }
        let database = parts.next().map(PathBuf::from);
        let pid: u32 = pid
            .parse()
            .with_context(|| format!("--step-ca {spec:?}: PID {pid:?} is not a number"))?;
        let chain_text = std::fs::read_to_string(client_chain)
            .with_context(|| format!("reading {}", client_chain.display()))?;
        let chain = ca_core::pem::decode_all("CERTIFICATE", &chain_text)?
            .into_iter()
            .map(rustls_pki_types::CertificateDer::from)
            .collect();
        let key_text = zeroize::Zeroizing::new(
            std::fs::read_to_string(client_key)
                .with_context(|| format!("reading {}", client_key.display()))?,
        );
        let key = match ca_core::pem::decode("EC PRIVATE KEY", &key_text) {
            Ok(sec1) => rustls_pki_types::PrivateKeyDer::Sec1(sec1.into()),
            Err(_) => rustls_pki_types::PrivateKeyDer::Pkcs8(
                ca_core::pem::decode("PRIVATE KEY", &key_text)
                    .context("the step-ca client key: neither SEC 1 nor PKCS #8 PEM")?
                    .into(),
            ),
        };
        let tls = rustls::ClientConfig::builder()
            .with_root_certificates(roots_of(root)?)
            .with_client_auth_cert(chain, key)
            .context("the step-ca client certificate and key")?;
        Ok(Target {
            name: format!("{STEP_CA}/{store}"),
            addr: addr.to_string(),
            tls: Arc::new(tls),
            call: Call::post("/1.0/renew"),
            bodies: Arc::from(vec![Bytes::new()]),
            pid: Some(pid.to_string()),
            store: database,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_ca_spec_needs_its_store_address_and_a_numeric_pid() {
        let none = Path::new("/nonexistent");
        for short in ["bbolt,127.0.0.1:1", ",127.0.0.1:1,1", "bbolt,,1"] {
            let refused = Target::step_ca(short, none, none, none)
                .err()
                .expect("refused");
            assert!(
                refused.to_string().contains("expected STORE,ADDR,PID"),
                "{short}: {refused}"
            );
        }
        let short = Target::step_ca("bbolt,127.0.0.1:1", none, none, none)
            .err()
            .expect("refused");
        assert!(
            short.to_string().contains("expected STORE,ADDR,PID"),
            "{short}"
        );
        let pid = Target::step_ca("bbolt,127.0.0.1:1,abc", none, none, none)
            .err()
            .expect("refused");
        assert!(pid.to_string().contains("PID \"abc\""), "{pid}");
    }

    #[test]
    fn a_store_counts_the_disk_it_takes_not_its_length() {
        use std::io::Write;
        let dir = tempfile::tempdir().expect("tempdir");
        let block = |n: usize| vec![1u8; n * 4096];
        std::fs::write(dir.path().join("a"), block(3)).expect("a");
        std::fs::create_dir(dir.path().join("sub")).expect("sub");
        // 1 MiB long, one block written: the rest is a hole.
        let mut sparse = std::fs::File::create(dir.path().join("sub/b")).expect("b");
        sparse.write_all(&block(1)).expect("write");
        sparse.set_len(1 << 20).expect("set_len");
        sparse.sync_all().expect("sync");
        let a = disk_usage(&dir.path().join("a")).expect("a");
        let b = disk_usage(&dir.path().join("sub/b")).expect("b");
        // What `n` bytes may take: whole allocation units of this file
        // system (its fragment size; its preferred I/O size if larger), and
        // one more for its own bookkeeping.
        let block_size = {
            use std::os::unix::fs::MetadataExt;
            let fs = rustix::fs::statvfs(dir.path()).expect("statvfs");
            let io = std::fs::metadata(dir.path().join("a"))
                .expect("a")
                .blksize();
            fs.f_frsize.max(io).max(512)
        };
        let most = |n: u64| n.div_ceil(block_size) * block_size + block_size;
        // (A compressing file system may take less than was written.)
        assert!(a > 0 && a <= most(3 * 4096), "{a}");
        assert!(b <= most(4096) && b < 1 << 20, "a hole counted: {b}");
        assert_eq!(disk_usage(dir.path()), Some(a + b));
        // A store given as a link is measured where it points.
        std::os::unix::fs::symlink(dir.path().join("a"), dir.path().join("link")).expect("link");
        assert_eq!(disk_usage(&dir.path().join("link")), Some(a));
        assert_eq!(disk_usage(&dir.path().join("missing")), None);
    }
}
