//! The running service: the mTLS management listener, the public listener, and
//! graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use serde_json::json;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::authority::Authority;
use crate::config::Config;
use crate::http::error_response;
use crate::ids;
use crate::policy::Policies;
use crate::store::Store;
use crate::vault::{MasterOptions, Vault};

pub const ADDRESSES_FILE: &str = "addresses.json";
/// Signed CRLs, one file per CA and CRL number.
pub const CRL_DIR: &str = "crls";

/// Open the store and build the authority for `data_dir`. The master key is
/// checked against the data directory before the store is opened for writing,
/// so a wrong key fails here and changes nothing.
pub fn open_authority(
    data_dir: &Path,
    config: Config,
    public_base: String,
    master: &MasterOptions,
) -> anyhow::Result<Arc<Authority>> {
    crate::vault::precheck(data_dir, master)?;
    let store = Arc::new(
        Store::open(data_dir, ids::boot_id())
            .with_context(|| format!("opening the store in {}", data_dir.display()))?,
    );
    let key = match crate::vault::unlock(&store, data_dir, master) {
        Ok(k) => k,
        Err(e) => {
            store.close();
            return Err(e.into());
        }
    };
    let migrated = crate::vault::migrate_plaintext_keys(&store, data_dir, &key);
    if let Err(e) = migrated {
        store.close();
        return Err(e.into());
    }
    let vault = Vault::new(store.clone(), key);
    crate::policy::bootstrap_if_absent(&store, data_dir)
        .context("creating the bootstrap administrator's policy")?;
    let policies = Policies::load(&store).context("loading the access policies")?;
    Ok(Arc::new(Authority::new(
        store,
        vault,
        policies,
        config,
        public_base,
    )))
}

/// Serve until `shutdown` resolves, then finish in-flight requests and close the store.
pub async fn serve(
    data_dir: PathBuf,
    config: Config,
    master: MasterOptions,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let api_addr: SocketAddr = config.api_addr.parse().context("api_addr")?;
    let public_addr: SocketAddr = config.public_addr.parse().context("public_addr")?;
    let api_listener = TcpListener::bind(api_addr)
        .await
        .with_context(|| format!("binding the API address {api_addr}"))?;
    let public_listener = TcpListener::bind(public_addr)
        .await
        .with_context(|| format!("binding the public address {public_addr}"))?;
    let api_bound = api_listener.local_addr()?;
    let public_bound = public_listener.local_addr()?;
    let public_base = config
        .public_base_url
        .clone()
        .unwrap_or_else(|| format!("http://{public_bound}"));

    let auth = open_authority(&data_dir, config.clone(), public_base.clone(), &master)?;
    let client_ca = auth
        .get_ca(&config.client_auth_ca_id)
        .map_err(|e| anyhow::anyhow!("client-auth CA {}: {e}", config.client_auth_ca_id))?;
    let client_ca_der = ca_core::pem::decode(
        "CERTIFICATE",
        client_ca.certificate_pem.as_deref().unwrap_or(""),
    )
    .context("client-auth CA certificate")?;
    let cert_pem = std::fs::read(data_dir.join(&config.tls_cert)).context("TLS certificate")?;
    let key_pem =
        zeroize::Zeroizing::new(std::fs::read(data_dir.join(&config.tls_key)).context("TLS key")?);
    let tls = crate::tls::server_config(&cert_pem, &key_pem, &client_ca_der)?;
    drop(key_pem);

    let revocation =
        crate::revocation::RevocationService::new(auth.clone(), data_dir.join(CRL_DIR));
    let builder = revocation.spawn_builder();

    write_addresses(&data_dir, api_bound, public_bound)?;
    tracing::info!(api = %api_bound, public = %public_bound, data_dir = %data_dir.display(), "ca-server listening");
    println!("ca-server: management API (mTLS) on https://{api_bound}");
    println!("ca-server: public listener on http://{public_bound}");

    let graceful = GracefulShutdown::new();
    let acceptor = TlsAcceptor::from(tls);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            r = api_listener.accept() => {
                let (tcp, peer) = match r {
                    Ok(x) => x,
                    Err(e) => { tracing::warn!(error = %e, "accept failed"); tokio::time::sleep(Duration::from_millis(50)).await; continue }
                };
                let _ = tcp.set_nodelay(true);
                let acceptor = acceptor.clone();
                let auth = auth.clone();
                let revocation = revocation.clone();
                let watcher = graceful.watcher();
                tokio::spawn(async move {
                    let tls = match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => { tracing::info!(%peer, error = %e, "TLS handshake refused"); return }
                        Err(_) => { tracing::info!(%peer, "TLS handshake timed out"); return }
                    };
                    let identity = Arc::new(crate::tls::identity_of(tls.get_ref().1.peer_certificates()));
                    tracing::debug!(%peer, caller = %identity.display(), "client connected");
                    let client_serial = Arc::new(crate::revocation::client_serial(tls.get_ref().1.peer_certificates()));
                    let svc = service_fn(move |req| {
                        let (auth, identity, revocation, serial) = (auth.clone(), identity.clone(), revocation.clone(), client_serial.clone());
                        async move {
                            // Checked on every request, not once per connection:
                            // a revoked client is locked out at once, keep-alive or not.
                            if let Some(e) = revocation.client_refusal(serial.as_deref()) {
                                return Ok(error_response(&e));
                            }
                            crate::http::handle(auth, identity, req).await
                        }
                    });
                    let conn = http1::Builder::new()
                        .timer(TokioTimer::new())
                        .header_read_timeout(Duration::from_secs(30))
                        .serve_connection(TokioIo::new(tls), svc);
                    if let Err(e) = watcher.watch(conn).await {
                        tracing::debug!(%peer, error = %e, "connection ended");
                    }
                });
            }
            r = public_listener.accept() => {
                let Ok((tcp, _)) = r else { continue };
                let auth = auth.clone();
                let revocation = revocation.clone();
                let watcher = graceful.watcher();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| crate::public::handle(auth.clone(), revocation.clone(), req));
                    let conn = http1::Builder::new()
                        .timer(TokioTimer::new())
                        .header_read_timeout(Duration::from_secs(30))
                        .serve_connection(TokioIo::new(tcp), svc);
                    let _ = watcher.watch(conn).await;
                });
            }
        }
    }
    tracing::info!("shutting down: finishing in-flight requests");
    builder.abort();
    drop(api_listener);
    drop(public_listener);
    if tokio::time::timeout(Duration::from_secs(15), graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("some connections did not finish in time");
    }
    auth.store.close();
    tracing::info!("store closed; bye");
    Ok(())
}

fn write_addresses(dir: &Path, api: SocketAddr, public: SocketAddr) -> anyhow::Result<()> {
    let body = json!({"api": api.to_string(), "public": public.to_string()}).to_string();
    let tmp = dir.join(format!("{ADDRESSES_FILE}.tmp"));
    std::fs::write(&tmp, body)?;
    std::fs::rename(&tmp, dir.join(ADDRESSES_FILE))?;
    Ok(())
}
