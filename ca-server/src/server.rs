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

use crate::accept::{accept_loop, ConnectionLimits};
use crate::authority::Authority;
use crate::config::Config;
use crate::http::error_response;
use crate::vault::MasterOptions;

/// How long a connection may stay open, keep-alive or not: slots are shared,
/// and a client that never lets go of one must not keep it.
const MAX_CONNECTION_LIFETIME: Duration = Duration::from_secs(600);
/// How long a public client may take to send its request headers.
const PUBLIC_HEADER_TIMEOUT: Duration = Duration::from_secs(10);

pub const ADDRESSES_FILE: &str = "addresses.json";
/// Signed CRLs, one file per CA and CRL number.
pub const CRL_DIR: &str = "crls";

/// Where the authority of a data directory is opened (kept under its old name).
pub use crate::authority::open as open_authority;

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
    let metrics_listener = match config.metrics.own_address() {
        Some(a) => {
            let addr: SocketAddr = a.parse().context("metrics.listen")?;
            Some(
                TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("binding the metrics address {addr}"))?,
            )
        }
        None => None,
    };
    let acme_listener = if config.acme.enabled {
        let addr: SocketAddr = config.acme.listen.parse().context("acme.listen")?;
        Some(
            TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding the ACME address {addr}"))?,
        )
    } else {
        None
    };
    let api_bound = api_listener.local_addr()?;
    let public_bound = public_listener.local_addr()?;
    let public_base = config
        .public_base_url
        .clone()
        .unwrap_or_else(|| format!("http://{public_bound}"));

    let auth = open_authority(&data_dir, config.clone(), public_base.clone(), &master).await?;
    let _ = auth.data_dir.set(data_dir.clone());
    let client_ca = auth
        .get_ca(&config.client_auth_ca_id)
        .map_err(|e| anyhow::anyhow!("client-auth CA {}: {e}", config.client_auth_ca_id))?;
    let client_ca_der = ca_core::pem::decode(
        "CERTIFICATE",
        client_ca.certificate_pem.as_deref().unwrap_or(""),
    )
    .context("client-auth CA certificate")?;
    let api_cert = crate::api_tls::ApiCertSlot::new(
        crate::api_tls::load(&data_dir, &config).context("the API TLS certificate")?,
    );
    crate::api_tls::renew_or_log(&auth, &data_dir, &api_cert).await;
    let renewer = crate::api_tls::spawn_renewer(auth.clone(), data_dir.clone(), api_cert.clone());
    let acme_tls = crate::tls::acme_server_config(api_cert.clone())?;
    let tls = crate::tls::server_config(api_cert, &client_ca_der)?;

    let revocation =
        crate::revocation::RevocationService::new(auth.clone(), data_dir.join(CRL_DIR));
    let builder = revocation.spawn_builder();
    let shared_sync = crate::policy_follow::follow_stored_policies(&auth);
    let digester = spawn_audit_digests(auth.clone());
    let refusal_summaries = spawn_refusal_summaries(auth.clone());
    let event_tasks = if config.events.enabled {
        vec![
            tokio::spawn(crate::events::project::run(auth.clone())),
            tokio::spawn(crate::events::scan::run(auth.clone())),
            tokio::spawn(crate::events::deliver::run(auth.clone())),
        ]
    } else {
        Vec::new()
    };

    write_addresses(&data_dir, api_bound, public_bound)?;
    tracing::info!(api = %api_bound, public = %public_bound, data_dir = %data_dir.display(), "ca-server listening");
    println!("ca-server: management API (mTLS) on https://{api_bound}");
    println!("ca-server: public listener on http://{public_bound}");
    let acme_task = acme_listener.map(|listener| {
        let acme = Arc::new(crate::acme::Acme::new(auth.clone()));
        for p in &config.acme.provisioners {
            println!(
                "ca-server: ACME directory {}/acme/{}/directory",
                config.acme.base(),
                p.name
            );
        }
        tokio::spawn(serve_acme(listener, acme, acme_tls))
    });
    let metrics_task = metrics_listener.map(|listener| {
        if let Ok(a) = listener.local_addr() {
            println!("ca-server: metrics on http://{a}/metrics");
        }
        tokio::spawn(serve_metrics(listener, auth.clone(), revocation.clone()))
    });

    let graceful = GracefulShutdown::new();
    let acceptor = TlsAcceptor::from(tls);
    tokio::pin!(shutdown);
    {
        let api_limit = ConnectionLimits::new(
            config.max_connections,
            config.per_ip_limit(config.max_connections),
        );
        let public_limit = ConnectionLimits::new(
            config.public_max_connections,
            config.per_ip_limit(config.public_max_connections),
        );
        let api_loop = accept_loop(&api_listener, api_limit, "api", |tcp, peer, slot| {
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            let auth = auth.clone();
            let revocation = revocation.clone();
            let watcher = graceful.watcher();
            tokio::spawn(async move {
                // Held until the connection ends: the slot frees only then.
                let _slot = slot;
                let tls = match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp))
                    .await
                {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        tracing::info!(%peer, error = %e, "TLS handshake refused");
                        crate::refusals::audit_handshake_failure(
                            &auth,
                            peer.ip(),
                            format!("TLS handshake refused: {e}"),
                        )
                        .await;
                        return;
                    }
                    Err(_) => {
                        tracing::info!(%peer, "TLS handshake timed out");
                        crate::refusals::audit_handshake_failure(
                            &auth,
                            peer.ip(),
                            "TLS handshake timed out (10 s)".into(),
                        )
                        .await;
                        return;
                    }
                };
                // An unusable client certificate gets a JSON 401 on every request.
                let identity = match crate::tls::identity_of(tls.get_ref().1.peer_certificates()) {
                    Ok(i) => {
                        tracing::debug!(%peer, caller = %i.display(), "client connected");
                        Ok(Arc::new(i))
                    }
                    Err(e) => {
                        tracing::warn!(%peer, error = %e, "client certificate refused");
                        Err(e)
                    }
                };
                let client_cert = Arc::new(crate::revocation::client_certificate(
                    tls.get_ref().1.peer_certificates(),
                ));
                let svc = service_fn(move |req| {
                    let (auth, identity, revocation, client_cert) = (
                        auth.clone(),
                        identity.clone(),
                        revocation.clone(),
                        client_cert.clone(),
                    );
                    async move {
                        // Refusals here are audited like any refused call.
                        let (method, path) = (req.method().clone(), req.uri().path().to_string());
                        let identity = match identity {
                            Ok(i) => i,
                            Err(e) => {
                                crate::http::audit_refused_client(
                                    &auth,
                                    peer.ip(),
                                    None,
                                    &method,
                                    &path,
                                    &e,
                                )
                                .await;
                                return Ok(error_response(&e));
                            }
                        };
                        // Checked on every request, not once per connection:
                        // a revoked or expired client is locked out at once,
                        // keep-alive or not.
                        let now = auth.now().unix_timestamp();
                        if let Some(e) =
                            revocation.client_refusal(client_cert.as_ref().as_ref(), now)
                        {
                            crate::http::audit_refused_client(
                                &auth,
                                peer.ip(),
                                Some(&identity),
                                &method,
                                &path,
                                &e,
                            )
                            .await;
                            return Ok(error_response(&e));
                        }
                        // Its own task: a client that hangs up drops this
                        // future, never the request half-way through.
                        match tokio::spawn(crate::http::handle(auth, identity, req)).await {
                            Ok(r) => r,
                            Err(e) => {
                                tracing::error!(error = %e, "request task failed");
                                Ok(error_response(&crate::error::ApiError::new(
                                    crate::error::ErrorCode::Internal,
                                    "internal error; the server log has details",
                                )))
                            }
                        }
                    }
                });
                let conn = http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(Duration::from_secs(30))
                    .serve_connection(TokioIo::new(tls), svc);
                match tokio::time::timeout(MAX_CONNECTION_LIFETIME, watcher.watch(conn)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => tracing::debug!(%peer, error = %e, "connection ended"),
                    Err(_) => tracing::debug!(%peer, "connection closed at its maximum lifetime"),
                }
            });
        });
        let public_loop = accept_loop(
            &public_listener,
            public_limit,
            "public",
            |tcp, _peer, slot| {
                let auth = auth.clone();
                let revocation = revocation.clone();
                let watcher = graceful.watcher();
                tokio::spawn(async move {
                    let _slot = slot;
                    let svc = service_fn(move |req| {
                        crate::public::handle(auth.clone(), revocation.clone(), req)
                    });
                    // Anyone may connect here: a client that trickles its
                    // headers or holds a connection open is cut off.
                    let conn = http1::Builder::new()
                        .timer(TokioTimer::new())
                        .header_read_timeout(PUBLIC_HEADER_TIMEOUT)
                        .serve_connection(TokioIo::new(tcp), svc);
                    let _ =
                        tokio::time::timeout(MAX_CONNECTION_LIFETIME, watcher.watch(conn)).await;
                });
            },
        );
        // The loops borrow `graceful`; this block ends them before it shuts down.
        tokio::select! {
            _ = &mut shutdown => {}
            _ = api_loop => {}
            _ = public_loop => {}
        }
    }
    tracing::info!("shutting down: finishing in-flight requests");
    if let Some(m) = metrics_task {
        m.abort();
    }
    if let Some(a) = acme_task {
        a.abort();
    }
    builder.abort();
    if let Some(t) = shared_sync {
        t.abort();
    }
    renewer.abort();
    digester.abort();
    refusal_summaries.abort();
    for t in &event_tasks {
        t.abort();
    }
    drop(api_listener);
    drop(public_listener);
    if tokio::time::timeout(Duration::from_secs(15), graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("some connections did not finish in time");
    }
    // Requests whose clients hung up still run to the end: wait for them.
    let all = u32::try_from(config.max_in_flight.max(1)).unwrap_or(u32::MAX);
    if tokio::time::timeout(Duration::from_secs(15), auth.in_flight.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!("some requests did not finish in time");
    }
    crate::refusals::write_summary(&auth).await;
    // The last digest covers everything this run wrote.
    sign_audit_digest(&auth).await;
    auth.store.close();
    tracing::info!("store closed; bye");
    Ok(())
}

/// Sign a digest of the audit trail now, then every
/// `audit_digest_interval_secs`.
fn spawn_audit_digests(auth: Arc<Authority>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let every = Duration::from_secs(auth.config.audit_digest_interval_secs.max(1));
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            sign_audit_digest(&auth).await;
        }
    })
}

/// Write the summary of refusals over the audit budget once per window.
fn spawn_refusal_summaries(auth: Arc<Authority>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(auth.refusals.window());
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            crate::refusals::write_summary(&auth).await;
        }
    })
}

async fn sign_audit_digest(auth: &Authority) {
    match auth.sign_audit_digest().await {
        Ok(Some(d)) => tracing::info!(
            digest = d.number,
            covers = d.head_seq,
            "audit digest signed"
        ),
        Ok(None) => {}
        // Another node sharing the database signed this digest first.
        Err(e) if e.to_string().contains("does not follow digest") => {
            tracing::debug!(error = %e, "another node signed this audit digest")
        }
        Err(e) => tracing::error!(error = %e, "could not sign an audit digest"),
    }
}

fn write_addresses(dir: &Path, api: SocketAddr, public: SocketAddr) -> anyhow::Result<()> {
    let body = json!({"api": api.to_string(), "public": public.to_string()}).to_string();
    let tmp = dir.join(format!("{ADDRESSES_FILE}.tmp"));
    std::fs::write(&tmp, body)?;
    std::fs::rename(&tmp, dir.join(ADDRESSES_FILE))?;
    Ok(())
}

/// The metrics listener of its own (`[metrics] listen = "ADDR"`): plain
/// HTTP, `GET /metrics` only, for a monitoring network.
async fn serve_metrics(
    listener: TcpListener,
    auth: Arc<Authority>,
    revocation: Arc<crate::revocation::RevocationService>,
) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let (auth, revocation) = (auth.clone(), revocation.clone());
        tokio::spawn(async move {
            let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let (auth, revocation) = (auth.clone(), revocation.clone());
                async move {
                    let out =
                        if req.uri().path() == "/metrics" && req.method() == hyper::Method::GET {
                            let accept = req
                                .headers()
                                .get(hyper::header::ACCEPT)
                                .and_then(|a| a.to_str().ok());
                            crate::public::metrics_response(&auth, &revocation, accept).await
                        } else {
                            crate::http::error_response(&crate::error::ApiError::not_found(
                                "this listener serves GET /metrics only",
                            ))
                        };
                    Ok::<_, std::convert::Infallible>(out)
                }
            });
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(PUBLIC_HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(tcp), svc);
            let _ = tokio::time::timeout(MAX_CONNECTION_LIFETIME, conn).await;
        });
    }
}

/// The ACME listener: HTTPS, no client certificate, one task per connection.
async fn serve_acme(
    listener: TcpListener,
    acme: Arc<crate::acme::Acme>,
    tls: Arc<rustls::ServerConfig>,
) {
    let acceptor = TlsAcceptor::from(tls);
    loop {
        let Ok((tcp, peer)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let (acceptor, acme) = (acceptor.clone(), acme.clone());
        tokio::spawn(async move {
            let Ok(Ok(stream)) =
                tokio::time::timeout(PUBLIC_HEADER_TIMEOUT, acceptor.accept(tcp)).await
            else {
                tracing::debug!(%peer, "acme: TLS handshake failed");
                return;
            };
            let svc = service_fn(move |req| {
                let acme = acme.clone();
                async move { Ok::<_, std::convert::Infallible>(acme.handle(peer.ip(), req).await) }
            });
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(PUBLIC_HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), svc);
            let _ = tokio::time::timeout(MAX_CONNECTION_LIFETIME, conn).await;
        });
    }
}
