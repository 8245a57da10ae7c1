//! Webhook delivery: each webhook has a task that POSTs the outbox's events
//! after its `delivered_seq`, in order, one at a time, over a kept-alive
//! connection, and records its progress in the store. A failure (no
//! connection, TLS refused, a non-2xx answer, a timeout) is retried with
//! exponential backoff (with jitter), holding back the events behind it,
//! until it succeeds or the event is older than `give_up_after_hours`.
//!
//! Each body is signed: `CA-Signature: t=UNIX,v1=HEX` where HEX is
//! HMAC-SHA256, keyed with the webhook's secret (its UTF-8 bytes), over
//! `UNIX.` followed by the body, so a receiver can check both who sent it and
//! that it is fresh (the Stripe scheme).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request, Uri};
use hyper_util::rt::TokioIo;
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio::task::{AbortHandle, JoinSet};

use crate::authority::Authority;
use crate::store::{CaType, EventRecord, StoreError, WebhookRecord};

/// Events read from the outbox at a time (and most sent between progress records).
const BATCH: usize = 100;
/// The largest answer body read (and thrown away) from a receiver.
const MAX_ANSWER: usize = 64 * 1024;
/// Longest accepted webhook URL.
pub const MAX_URL: usize = 2048;
/// Where Debian and most Linux systems keep the system's trust anchors.
const SYSTEM_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// A webhook's address, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub https: bool,
    /// Without brackets (IPv6).
    pub host: String,
    pub port: u16,
    /// `Host` header value.
    pub authority: String,
    pub path: String,
}

/// Check a webhook URL: `https://` (or `http://` when allowed), a host, no
/// user information.
pub fn parse_url(url: &str, allow_http: bool) -> Result<Target, String> {
    if url.len() > MAX_URL {
        return Err(format!("the URL is longer than {MAX_URL} characters"));
    }
    let uri: Uri = url.parse().map_err(|e| format!("not a URL: {e}"))?;
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") if allow_http => false,
        Some("http") => {
            return Err(
                "http:// webhooks are refused (events.allow_http is off); use https://".into(),
            )
        }
        _ => return Err("the URL must start with https://".into()),
    };
    let auth = uri.authority().ok_or("the URL has no host")?;
    if auth.as_str().contains('@') {
        return Err("the URL must not carry a user name or password".into());
    }
    let host = auth
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    if host.is_empty() {
        return Err("the URL has no host".into());
    }
    let port = auth.port_u16().unwrap_or(if https { 443 } else { 80 });
    let path = uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "/".into());
    Ok(Target {
        https,
        host,
        port,
        authority: auth.as_str().to_string(),
        path,
    })
}

/// `t=UNIX,v1=HEX`: HMAC-SHA256 with `secret` over `UNIX.` and `body`.
pub fn signature(secret: &str, unix: i64, body: &[u8]) -> String {
    use aws_lc_rs::hmac;
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(format!("{unix}.").as_bytes());
    ctx.update(body);
    let tag = ctx.sign();
    format!("t={unix},v1={}", ca_core::hex::encode(tag.as_ref()))
}

/// The anchors webhook HTTPS is checked against: the system's, this
/// server's own roots (receivers often hold certificates it issued), and
/// `events.webhook_ca_file`.
fn trust(auth: &Authority) -> Option<Arc<ClientConfig>> {
    let mut roots = RootCertStore::empty();
    let mut add_pem = |pem: &[u8]| {
        for c in CertificateDer::pem_slice_iter(pem).flatten() {
            let _ = roots.add(c);
        }
    };
    if let Ok(b) = std::fs::read(SYSTEM_BUNDLE) {
        add_pem(&b);
    }
    if let Ok(cas) = auth.store.list_cas() {
        for ca in cas.iter().filter(|c| c.ca_type == CaType::Root) {
            if let Some(p) = &ca.certificate_pem {
                add_pem(p.as_bytes());
            }
        }
    }
    if let Some(f) = &auth.config.events.webhook_ca_file {
        let path = match auth.data_dir.get() {
            Some(d) => d.join(f),
            None => f.clone(),
        };
        match std::fs::read(&path) {
            Ok(b) => add_pem(&b),
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "events.webhook_ca_file unreadable")
            }
        }
    }
    let cfg = ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map(|b| b.with_root_certificates(roots).with_no_client_auth());
    match cfg {
        Ok(c) => Some(Arc::new(c)),
        Err(e) => {
            tracing::error!(error = %e, "webhook TLS settings refused");
            None
        }
    }
}

async fn connect(t: &Target, tls: &Arc<ClientConfig>) -> Result<SendRequest<Full<Bytes>>, String> {
    let tcp = TcpStream::connect((t.host.as_str(), t.port))
        .await
        .map_err(|e| format!("connecting to {}: {e}", t.authority))?;
    let _ = tcp.set_nodelay(true);
    let sender = if t.https {
        let name = ServerName::try_from(t.host.clone())
            .map_err(|_| format!("{:?} is not a valid server name", t.host))?;
        let stream = tokio_rustls::TlsConnector::from(tls.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS with {}: {e}", t.authority))?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("HTTP with {}: {e}", t.authority))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        sender
    } else {
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .map_err(|e| format!("HTTP with {}: {e}", t.authority))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        sender
    };
    Ok(sender)
}

/// One POST of one event; Ok once the receiver answered 2xx.
async fn post(
    conn: &mut Option<SendRequest<Full<Bytes>>>,
    t: &Target,
    tls: &Arc<ClientConfig>,
    hook: &WebhookRecord,
    ev: &EventRecord,
    now: i64,
) -> Result<(), String> {
    let body = serde_json::to_vec(ev).map_err(|e| format!("encoding the event: {e}"))?;
    let sig = signature(&hook.secret, now, &body);
    let reusable = conn.as_mut().is_some_and(|s| !s.is_closed());
    if !reusable {
        *conn = Some(connect(t, tls).await?);
    }
    let Some(sender) = conn.as_mut() else {
        return Err("no connection".into());
    };
    sender
        .ready()
        .await
        .map_err(|e| format!("connection to {}: {e}", t.authority))?;
    let req = Request::builder()
        .method(Method::POST)
        .uri(t.path.as_str())
        .header(hyper::header::HOST, t.authority.as_str())
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header(
            hyper::header::USER_AGENT,
            concat!("ca-server/", env!("CARGO_PKG_VERSION")),
        )
        .header("CA-Event-Id", ev.id.as_str())
        .header("CA-Event-Type", ev.event_type.as_str())
        .header("CA-Signature", sig)
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| format!("building the request: {e}"))?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| format!("POST to {}: {e}", t.authority))?;
    let status = resp.status();
    // Read the answer so the connection can be used again.
    let _ = Limited::new(resp.into_body(), MAX_ANSWER).collect().await;
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("the receiver answered {status}"))
    }
}

fn current(auth: &Authority, id: &str) -> Result<Option<WebhookRecord>, StoreError> {
    Ok(auth.store.list_webhooks()?.into_iter().find(|h| h.id == id))
}

/// A wait of `base` with up to a quarter more, at random (so webhooks that
/// failed together do not retry together).
fn jittered(base: Duration) -> Duration {
    let mut b = [0u8; 2];
    let _ = getrandom::getrandom(&mut b);
    let frac = f64::from(u16::from_le_bytes(b)) / f64::from(u16::MAX) / 4.0;
    base.mul_f64(1.0 + frac)
}

/// Deliver to one webhook until it is deleted (or the task is aborted).
async fn run_webhook(auth: Arc<Authority>, id: String, tls: Arc<ClientConfig>) {
    let hub = auth.events.clone();
    let cfg = auth.config.events.clone();
    let initial = Duration::from_millis(cfg.retry_initial_ms);
    let max = Duration::from_secs(cfg.retry_max_secs).max(initial);
    let timeout = Duration::from_secs(cfg.webhook_timeout_secs);
    let give_up = i64::from(cfg.give_up_after_hours) * 3600;
    let mut conn = None;
    let mut backoff = initial;
    loop {
        if !auth.store.is_leader() {
            return;
        }
        let appended = hub.appended.notified();
        tokio::pin!(appended);
        appended.as_mut().enable();
        let hook = match current(&auth, &id) {
            Ok(Some(h)) => h,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(webhook = %id, error = %e, "webhook: reading the store failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let target = match parse_url(&hook.url, cfg.allow_http) {
            Ok(t) => t,
            Err(why) => {
                hub.update(&id, |s| s.last_error = Some(why));
                tokio::time::sleep(Duration::from_secs(60)).await;
                continue;
            }
        };
        let batch = match auth.store.events_after(hook.delivered_seq, BATCH) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(webhook = %id, error = %e, "webhook: reading the outbox failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if batch.is_empty() {
            tokio::select! {
                _ = &mut appended => {}
                _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            }
            continue;
        }
        let mut done = hook.delivered_seq;
        'events: for ev in &batch {
            if !hook.event_types.is_empty() && !hook.event_types.contains(&ev.event_type) {
                done = ev.seq;
                continue;
            }
            loop {
                let now = auth.now().unix_timestamp();
                let sent =
                    tokio::time::timeout(timeout, post(&mut conn, &target, &tls, &hook, ev, now))
                        .await
                        .unwrap_or_else(|_| Err(format!("no answer within {timeout:?}")));
                match sent {
                    Ok(()) => {
                        backoff = initial;
                        auth.metrics.webhook_delivery("delivered");
                        hub.update(&id, |s| {
                            s.delivered += 1;
                            s.last_success = Some(now);
                            s.last_error = None;
                            s.next_retry = None;
                        });
                        break;
                    }
                    Err(why) => {
                        conn = None;
                        auth.metrics.webhook_delivery("failed");
                        if now.saturating_sub(ev.unix) > give_up {
                            auth.metrics.webhook_delivery("skipped");
                            tracing::warn!(webhook = %id, event = %ev.id, error = %why, "webhook: event skipped after retrying for give_up_after_hours");
                            hub.update(&id, |s| {
                                s.failed_attempts += 1;
                                s.skipped += 1;
                                s.last_error = Some(why);
                            });
                            break;
                        }
                        tracing::info!(webhook = %id, event = %ev.id, error = %why, retry_in = ?backoff, "webhook delivery failed");
                        let wait = jittered(backoff);
                        hub.update(&id, |s| {
                            s.failed_attempts += 1;
                            s.last_error = Some(why);
                            s.next_retry = Some(
                                now.saturating_add(i64::try_from(wait.as_secs()).unwrap_or(0)),
                            );
                        });
                        // Keep what was delivered before a long wait.
                        if done > hook.delivered_seq
                            && matches!(
                                auth.store.webhook_delivered(&id, done).await,
                                Err(StoreError::NotFound(_))
                            )
                        {
                            return;
                        }
                        tokio::time::sleep(wait).await;
                        backoff = (backoff * 2).min(max);
                        match current(&auth, &id) {
                            Ok(None) => return,
                            Ok(Some(h)) if h.url != hook.url => break 'events,
                            _ => {}
                        }
                    }
                }
            }
            done = ev.seq;
        }
        if done > hook.delivered_seq {
            match auth.store.webhook_delivered(&id, done).await {
                Ok(()) => {}
                Err(StoreError::NotFound(_)) => return,
                Err(e) => {
                    tracing::warn!(webhook = %id, error = %e, "webhook: recording delivery failed");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }
}

/// Run until aborted: one delivery task per webhook, started and stopped as
/// webhooks are created and deleted.
pub async fn run(auth: Arc<Authority>) {
    let hub = auth.events.clone();
    let mut tasks = JoinSet::new();
    let mut running: HashMap<String, AbortHandle> = HashMap::new();
    loop {
        let changed = hub.webhooks_changed.notified();
        tokio::pin!(changed);
        changed.as_mut().enable();
        while tasks.try_join_next().is_some() {}
        if !auth.store.is_leader() {
            // Another node delivers (a shared store): stand by.
            for (id, h) in running.drain() {
                h.abort();
                hub.forget(&id);
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        match auth.store.list_webhooks() {
            Ok(hooks) => {
                let ids: HashSet<String> = hooks.into_iter().map(|h| h.id).collect();
                running.retain(|id, h| {
                    let keep = ids.contains(id) && !h.is_finished();
                    if !keep {
                        h.abort();
                        hub.forget(id);
                    }
                    keep
                });
                let mut tls = None;
                for id in ids {
                    if running.contains_key(&id) {
                        continue;
                    }
                    let Some(tls) = tls.get_or_insert_with(|| trust(&auth)).clone() else {
                        continue;
                    };
                    let h = tasks.spawn(run_webhook(auth.clone(), id.clone(), tls));
                    running.insert(id, h);
                }
            }
            Err(e) => tracing::warn!(error = %e, "webhooks: reading the store failed"),
        }
        tokio::select! {
            _ = &mut changed => {}
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
        }
    }
}
