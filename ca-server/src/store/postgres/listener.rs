//! The listening connection: what other nodes committed reaches this node's
//! hooks; it also holds this node's liveness lock and, on one node, the
//! delivery role.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio_postgres::NoTls;

use super::{Inner, CHANNEL, LEADER_LOCK, LIVENESS_NS};
use crate::store::Committed;

/// Take the delivery role if no live node holds it: a session advisory lock
/// on the listening connection, so it goes with the node (or its session).
pub(super) async fn try_to_lead(inner: &Inner, client: &tokio_postgres::Client) {
    if inner.leads.load(Ordering::Acquire) {
        return;
    }
    let sql = format!(
        "SELECT pg_try_advisory_lock({}, {})",
        LEADER_LOCK.0, LEADER_LOCK.1
    );
    let took = match client.simple_query(&sql).await {
        Ok(msgs) => msgs.iter().any(
            |m| matches!(m, tokio_postgres::SimpleQueryMessage::Row(r) if r.get(0) == Some("t")),
        ),
        Err(_) => false,
    };
    if took {
        tracing::info!("this node now delivers webhooks for all nodes");
        inner.leads.store(true, Ordering::Release);
    }
}

/// Run a listening connection; its notifications' payloads come out of the
/// receiver, which closes when the connection ends.
pub(super) fn drive<S, T>(
    mut connection: tokio_postgres::Connection<S, T>,
) -> (
    tokio::task::JoinHandle<()>,
    tokio::sync::mpsc::UnboundedReceiver<String>,
)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (ntx, nrx) = tokio::sync::mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        loop {
            let msg = std::future::poll_fn(|cx| connection.poll_message(cx)).await;
            match msg {
                Some(Ok(tokio_postgres::AsyncMessage::Notification(n))) => {
                    if ntx.send(n.payload().to_string()).is_err() {
                        return;
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return,
            }
        }
    });
    (driver, nrx)
}

/// The listening connection's application_name.
pub const LISTENER_NAME: &str = "ca-server listener";
/// How often the listening connection is checked to be alive.
pub(super) const LISTENER_PROBE: Duration = Duration::from_secs(5);

/// `boot \t kind \t a [\t b]`: what a commit changed, for the other nodes.
pub(super) fn encode_event(boot: &str, e: &Committed) -> String {
    match e {
        Committed::Revoked { ca_id, serial } => format!("{boot}\tR\t{ca_id}\t{serial}"),
        Committed::CaChanged { ca_id } => format!("{boot}\tC\t{ca_id}"),
        Committed::AliasChanged { alias } => format!("{boot}\tA\t{alias}"),
        Committed::PolicyChanged { id } => format!("{boot}\tP\t{id}"),
        Committed::CrlPublished { ca_id, number } => format!("{boot}\tL\t{ca_id}\t{number}"),
        Committed::Resync => format!("{boot}\tS\t-"),
    }
}

pub(super) fn decode_event(payload: &str) -> Option<(&str, Committed)> {
    let mut parts = payload.split('\t');
    let boot = parts.next()?;
    let kind = parts.next()?;
    let a = parts.next()?.to_string();
    let e = match kind {
        "R" => Committed::Revoked {
            ca_id: a,
            serial: parts.next()?.to_string(),
        },
        "C" => Committed::CaChanged { ca_id: a },
        "A" => Committed::AliasChanged { alias: a },
        "P" => Committed::PolicyChanged { id: a },
        "L" => Committed::CrlPublished {
            ca_id: a,
            number: parts.next()?.parse().ok()?,
        },
        "S" => Committed::Resync,
        _ => return None,
    };
    Some((boot, e))
}

/// The liveness lock's second key for a boot id.
pub(super) fn liveness_key(boot: &str) -> i32 {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, boot.as_bytes());
    let b = d.as_ref();
    i32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// The listening connection: holds this node's liveness lock and tells the
/// hooks what other nodes committed. Reconnects until the store closes.
pub(super) async fn listen(
    inner: Arc<Inner>,
    config: tokio_postgres::Config,
    tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
    ready: std::sync::mpsc::Sender<()>,
) {
    let key = liveness_key(&inner.boot_id);
    let mut config = config;
    // Named, so an operator (or a test) can tell it from the pool.
    config.application_name(LISTENER_NAME);
    let mut listened_before = false;
    loop {
        if inner.closed.load(Ordering::Acquire) {
            return;
        }
        let connected = match &tls {
            Some(t) => config
                .connect(t.clone())
                .await
                .map(|(c, conn)| (c, drive(conn))),
            None => config
                .connect(NoTls)
                .await
                .map(|(c, conn)| (c, drive(conn))),
        };
        match connected {
            Ok((client, (driver, mut nrx))) => {
                let setup = client
                    .batch_execute(&format!(
                        "LISTEN {CHANNEL}; SELECT pg_advisory_lock({LIVENESS_NS}, {key})"
                    ))
                    .await;
                match setup {
                    Ok(()) => {
                        let _ = ready.send(());
                        if listened_before {
                            // What other nodes committed while this node was
                            // not listening was never heard: forget it all.
                            tracing::info!("listening again; dropping what was cached");
                            inner.tell(&[Committed::Resync]);
                        }
                        listened_before = true;
                        try_to_lead(&inner, &client).await;
                        let mut probe = tokio::time::interval(LISTENER_PROBE);
                        probe.tick().await;
                        loop {
                            tokio::select! {
                                payload = nrx.recv() => match payload {
                                    Some(payload) => match decode_event(&payload) {
                                        Some((boot, _)) if boot == inner.boot_id => {}
                                        Some((_, e)) => inner.tell(&[e]),
                                        None => tracing::debug!(%payload, "unknown store notification"),
                                    },
                                    None => break,
                                },
                                _ = probe.tick() => {
                                    // A connection that died without a word
                                    // (a partition) delivers nothing: ask.
                                    let alive = tokio::time::timeout(
                                        LISTENER_PROBE,
                                        client.simple_query("SELECT 1"),
                                    )
                                    .await;
                                    if !matches!(alive, Ok(Ok(_))) {
                                        break;
                                    }
                                    try_to_lead(&inner, &client).await;
                                }
                            }
                        }
                        // The session, and any role it held, is gone.
                        inner.leads.store(false, Ordering::Release);
                        if !inner.closed.load(Ordering::Acquire) {
                            tracing::warn!("lost the database's notifications; reconnecting");
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot listen for other nodes' changes"),
                }
                driver.abort();
            }
            Err(e) => tracing::debug!(error = %e, "listening connection failed"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
