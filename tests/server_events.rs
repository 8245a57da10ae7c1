//! Events and webhooks, end to end: a receiver the test runs (HTTPS, with a
//! certificate the server itself issued) gets CertificateIssued,
//! CertificateRevoked, CrlPublished, CertificateApproachingExpiration and
//! CaApproachingExpiration, each body signed with HMAC-SHA256 under the
//! webhook's secret, in order. Events made while the receiver is down, and
//! across a kill -9 of the server, arrive once it is back (at least once,
//! none lost). A renewed certificate stops being announced as expiring.

mod harness;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use harness::{code, free_port, Server};
use serde_json::{json, Value};

/// One POST the receiver got: its headers of interest and its body.
#[derive(Clone)]
struct Got {
    signature: String,
    event_id: String,
    event_type: String,
    body: Vec<u8>,
}

impl std::fmt::Debug for Got {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} [{}] {}",
            self.event_type,
            self.event_id,
            self.signature,
            String::from_utf8_lossy(&self.body)
        )
    }
}

impl Got {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("event JSON")
    }
}

/// An HTTPS receiver on a fixed port; dropping it closes the port and every
/// connection (the server then sees connection refused).
struct Receiver {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Receiver {
    fn start(port: u16, chain_pem: &str, key_pem: &str, got: Arc<Mutex<Vec<Got>>>) -> Receiver {
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::{CertificateDer, PrivateKeyDer};
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(chain_pem.as_bytes())
                .collect::<Result<_, _>>()
                .expect("chain");
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).expect("key");
        let tls = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("server config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
                let listener = tokio::net::TcpListener::bind(addr)
                    .await
                    .expect("bind receiver");
                ready_tx.send(()).expect("ready");
                loop {
                    let (tcp, _) = tokio::select! {
                        a = listener.accept() => match a { Ok(a) => a, Err(_) => continue },
                        _ = &mut stopped => return,
                    };
                    let (acceptor, got) = (acceptor.clone(), got.clone());
                    tokio::spawn(async move {
                        let Ok(stream) = acceptor.accept(tcp).await else {
                            return;
                        };
                        let service = hyper::service::service_fn(
                            move |req: hyper::Request<hyper::body::Incoming>| {
                                let got = got.clone();
                                async move {
                                    use http_body_util::BodyExt;
                                    let h = |n: &str| {
                                        req.headers()
                                            .get(n)
                                            .and_then(|v| v.to_str().ok())
                                            .unwrap_or_default()
                                            .to_string()
                                    };
                                    let (signature, event_id, event_type) =
                                        (h("CA-Signature"), h("CA-Event-Id"), h("CA-Event-Type"));
                                    let body = req.into_body().collect().await?.to_bytes().to_vec();
                                    got.lock().expect("lock").push(Got {
                                        signature,
                                        event_id,
                                        event_type,
                                        body,
                                    });
                                    Ok::<_, hyper::Error>(hyper::Response::new(
                                        http_body_util::Full::new(hyper::body::Bytes::from_static(
                                            b"ok",
                                        )),
                                    ))
                                }
                            },
                        );
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                            .await;
                    });
                }
            });
            // Dropping the runtime ends every connection task: the port and
            // its connections are gone.
        });
        ready_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("receiver started");
        Receiver {
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Check `CA-Signature: t=UNIX,v1=HEX` against the body, as a receiver would.
fn signature_ok(secret: &str, got: &Got) -> bool {
    let Some((t, v1)) = got
        .signature
        .strip_prefix("t=")
        .and_then(|r| r.split_once(",v1="))
    else {
        return false;
    };
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret.as_bytes());
    let mut msg = format!("{t}.").into_bytes();
    msg.extend_from_slice(&got.body);
    let Ok(tag) = ca_core::hex::decode(v1) else {
        return false;
    };
    aws_lc_rs::hmac::verify(&key, &msg, &tag).is_ok()
}

/// A key and a certificate for 127.0.0.1 from the server's issuing CA:
/// (chain PEM, key PEM).
fn receiver_identity(s: &Server) -> (String, String) {
    let key =
        ca_core::keys::SoftwareKey::generate(ca_core::keys::KeyAlgorithm::EcdsaP256).expect("key");
    let der = ca_core::csr::create_csr(
        &key,
        &ca_core::names::parse_subject("CN=127.0.0.1").expect("name"),
        &[ca_core::names::SanEntry::parse("IP:127.0.0.1").expect("san")],
    )
    .expect("csr");
    let csr = ca_core::pem::encode("CERTIFICATE REQUEST", &der);
    let (st, v) = s.curl(
        "POST",
        "/v1/certificates",
        Some(&json!({"csr": csr, "ca_id": s.config.issuing_ca_id})),
    );
    assert_eq!(st, 201, "{v}");
    let mut chain = v["certificate"].as_str().expect("certificate").to_string();
    match &v["certificate_chain"] {
        Value::String(c) => chain.push_str(c),
        Value::Array(all) => all
            .iter()
            .for_each(|c| chain.push_str(c.as_str().unwrap_or_default())),
        other => panic!("certificate_chain: {other}"),
    }
    (chain, key.to_pkcs8_pem().to_string())
}

/// Wait until `done` holds for what the receiver got (or fail, showing it).
fn wait_for(got: &Arc<Mutex<Vec<Got>>>, what: &str, done: impl Fn(&[Got]) -> bool) {
    let start = Instant::now();
    loop {
        {
            let g = got.lock().expect("lock");
            if done(&g) {
                return;
            }
            if start.elapsed() > Duration::from_secs(60) {
                let seen: Vec<String> = g
                    .iter()
                    .map(|x| format!("{} {}", x.event_type, String::from_utf8_lossy(&x.body)))
                    .collect();
                panic!(
                    "timed out waiting for {what}; received:\n{}",
                    seen.join("\n")
                );
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn has(g: &[Got], event_type: &str, serial: &str) -> bool {
    g.iter().any(|x| {
        let v = x.json();
        v["type"] == event_type && v["detail"]["serial"] == serial
    })
}

fn issue(s: &Server, dns: &str, days: u32) -> String {
    let (st, v) = s.curl(
        "POST",
        "/v1/certificates",
        Some(&json!({"csr": harness::core_csr(dns), "ca_id": s.config.issuing_ca_id, "validity_days": days})),
    );
    assert_eq!(st, 201, "{v}");
    v["serial"].as_str().expect("serial").to_string()
}

/// Every event in the server's outbox after `after`, oldest first.
fn outbox(s: &Server, after: u64) -> Vec<Value> {
    let (st, v) = s.curl("GET", &format!("/v1/events?after={after}&limit=1000"), None);
    assert_eq!(st, 200, "{v}");
    v["events"].as_array().expect("events").clone()
}

#[test]
fn events_reach_a_signed_webhook_in_order_through_an_outage_and_a_kill() {
    let mut s = Server::init_with(&[], &[]);
    let config = s.dir.join("config.toml");
    let text = std::fs::read_to_string(&config).expect("config");
    let tuned = text
        .replace(
            "expiry_scan_interval_secs = 86400",
            "expiry_scan_interval_secs = 2",
        )
        .replace("retry_initial_ms = 1000", "retry_initial_ms = 200")
        .replace("retry_max_secs = 300", "retry_max_secs = 1")
        // The issuing CA (years from its end) is announced too.
        .replace("ca_expiry_days = 90", "ca_expiry_days = 3660");
    assert_ne!(tuned, text, "config.toml carries the [events] defaults");
    std::fs::write(&config, tuned).expect("config");
    s.start();

    let port = free_port();
    let (chain, key) = receiver_identity(&s);
    let got: Arc<Mutex<Vec<Got>>> = Arc::default();
    let receiver = Receiver::start(port, &chain, &key, got.clone());

    let out = s.cli(&[
        "-o",
        "json",
        "webhook",
        "create",
        "--url",
        &format!("https://127.0.0.1:{port}/hooks/ca"),
    ]);
    assert!(out.status.success(), "{}", harness::text(&out));
    let made: Value = serde_json::from_slice(&out.stdout).expect("json");
    let secret = made["secret"].as_str().expect("secret").to_string();
    let webhook_id = made["webhook"]["id"].as_str().expect("id").to_string();
    let start_seq = made["webhook"]["delivered_seq"].as_u64().expect("seq");

    // Issued (one expiring within 45 days), revoked, a CRL, expiry notices.
    let soon = issue(&s, "soon.example.com", 10);
    let later = issue(&s, "later.example.com", 90);
    let (st, v) = harness::relying::revoke(&s, &later, "SUPERSEDED");
    assert_eq!(st, 200, "{v}");
    wait_for(&got, "issued, revoked, CRL and expiry events", |g| {
        has(g, "CertificateIssued", &soon)
            && has(g, "CertificateIssued", &later)
            && has(g, "CertificateRevoked", &later)
            && has(g, "CertificateApproachingExpiration", &soon)
            && g.iter().any(|x| x.event_type == "CrlPublished")
            && g.iter().any(|x| x.event_type == "CaApproachingExpiration")
    });
    {
        let g = got.lock().expect("lock");
        for x in g.iter() {
            assert!(signature_ok(&secret, x), "bad signature on {x:?}");
            assert!(!signature_ok("another secret, 32 characters....", x));
            let v = x.json();
            assert_eq!(v["id"], x.event_id.as_str());
            assert_eq!(v["type"], x.event_type.as_str());
        }
        let seqs: Vec<u64> = g
            .iter()
            .map(|x| x.json()["seq"].as_u64().expect("seq"))
            .collect();
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "in order, once: {seqs:?}"
        );
        assert!(
            seqs[0] > start_seq,
            "only events after the webhook was made"
        );
        let revoked = g
            .iter()
            .map(Got::json)
            .find(|v| v["type"] == "CertificateRevoked")
            .expect("revoked");
        assert_eq!(revoked["detail"]["reason"], "SUPERSEDED");
        assert_eq!(revoked["ca_id"], s.config.issuing_ca_id.as_str());
        let notice = g
            .iter()
            .map(Got::json)
            .find(|v| v["type"] == "CertificateApproachingExpiration")
            .expect("notice");
        assert!(
            matches!(notice["detail"]["days_to_expiry"].as_i64(), Some(9 | 10)),
            "{notice}"
        );
    }

    // The receiver goes down; events made meanwhile wait, retried.
    drop(receiver);
    let during = [
        issue(&s, "down1.example.com", 90),
        issue(&s, "down2.example.com", 90),
    ];
    let start = Instant::now();
    loop {
        let out = s.cli(&["-o", "json", "webhook", "list"]);
        assert!(out.status.success(), "{}", harness::text(&out));
        let v: Value = serde_json::from_slice(&out.stdout).expect("json");
        let w = &v["webhooks"][0];
        if w["delivery"]["failed_attempts"].as_u64().unwrap_or(0) >= 2 {
            assert!(w["pending"].as_u64().unwrap_or(0) >= 2, "{w}");
            assert!(w["delivery"]["last_error"].is_string(), "{w}");
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "no retries: {v}");
        std::thread::sleep(Duration::from_millis(200));
    }
    // The server dies too, with those events undelivered, and comes back.
    s.kill9();
    s.start();
    let _receiver = Receiver::start(port, &chain, &key, got.clone());
    wait_for(&got, "the events made while the receiver was down", |g| {
        during
            .iter()
            .all(|serial| has(g, "CertificateIssued", serial))
    });

    // Nothing lost: every event in the outbox after the webhook was made has
    // reached the receiver (maybe twice: at least once).
    let received: HashSet<String> = got
        .lock()
        .expect("lock")
        .iter()
        .map(|x| x.event_id.clone())
        .collect();
    let newest_delivered = got
        .lock()
        .expect("lock")
        .iter()
        .map(|x| x.json()["seq"].as_u64().expect("seq"))
        .max()
        .expect("some");
    for e in outbox(&s, start_seq) {
        if e["seq"].as_u64().expect("seq") <= newest_delivered {
            assert!(
                received.contains(e["id"].as_str().expect("id")),
                "event never delivered: {e}"
            );
        }
    }
    assert!(
        got.lock()
            .expect("lock")
            .iter()
            .all(|x| signature_ok(&secret, x)),
        "every body signed"
    );

    // Renewed: no more expiry notices for `soon` once the renewal exists.
    let (st, v) = s.curl(
        "POST",
        &format!("/v1/certificates/{soon}/renew"),
        Some(&json!({"validity_days": 90})),
    );
    assert_eq!(st, 201, "{v}");
    let renewed_at = newest_seq(&s);
    // Wait for two more scans (CA notices mark them).
    wait_for(&got, "two expiry scans after the renewal", |g| {
        g.iter()
            .filter(|x| {
                x.event_type == "CaApproachingExpiration"
                    && x.json()["seq"].as_u64().unwrap_or(0) > renewed_at
            })
            .count()
            >= 2
    });
    let late_notices: Vec<Value> = outbox(&s, renewed_at)
        .into_iter()
        .filter(|e| {
            e["type"] == "CertificateApproachingExpiration"
                && e["detail"]["serial"] == soon.as_str()
        })
        .collect();
    assert!(
        late_notices.is_empty(),
        "renewed, still announced: {late_notices:?}"
    );

    // The CLI lists events and filters by type.
    let out = s.cli(&["events", "list", "--type", "CertificateRevoked"]);
    assert!(out.status.success(), "{}", harness::text(&out));
    let t = harness::text(&out);
    assert!(
        t.contains("CertificateRevoked") && t.contains(&later),
        "{t}"
    );
    assert!(!t.contains("CertificateIssued"), "{t}");

    // Deleted: no more deliveries.
    let out = s.cli(&["webhook", "delete", &webhook_id]);
    assert!(out.status.success(), "{}", harness::text(&out));
    let before = got.lock().expect("lock").len();
    issue(&s, "after-delete.example.com", 90);
    std::thread::sleep(Duration::from_secs(3));
    let after: Vec<String> = got.lock().expect("lock")[before..]
        .iter()
        .map(|x| String::from_utf8_lossy(&x.body).into_owned())
        .collect();
    assert!(
        !after.iter().any(|b| b.contains("after-delete.example.com")),
        "delivered after delete: {after:?}"
    );
}

/// The newest event's sequence number.
fn newest_seq(s: &Server) -> u64 {
    let mut after = 0;
    loop {
        let page = outbox(s, after);
        match page.last() {
            Some(e) => after = e["seq"].as_u64().expect("seq"),
            None => return after,
        }
    }
}

#[test]
fn webhooks_refuse_what_they_cannot_deliver_safely() {
    let s = Server::start_new();
    let post = |body: Value| s.curl("POST", "/v1/webhooks", Some(&body));
    let (st, v) = post(json!({"url": "http://127.0.0.1:9/hook"}));
    assert_eq!((st, code(&v)), (400, "InvalidRequest"), "plain HTTP: {v}");
    let (st, v) = post(json!({"url": "https://user:pw@example.com/hook"}));
    assert_eq!(
        (st, code(&v)),
        (400, "InvalidRequest"),
        "credentials in URL: {v}"
    );
    let (st, v) = post(json!({"url": "ftp://example.com/"}));
    assert_eq!((st, code(&v)), (400, "InvalidRequest"), "{v}");
    let (st, v) =
        post(json!({"url": "https://example.com/", "event_types": ["CertificateExploded"]}));
    assert_eq!((st, code(&v)), (400, "InvalidRequest"), "{v}");
    let (st, v) = post(json!({"url": "https://example.com/", "secret": "short"}));
    assert_eq!((st, code(&v)), (400, "InvalidRequest"), "{v}");
    let (st, v) = post(json!({"url": "https://example.com/", "colour": "red"}));
    assert_eq!(
        (st, code(&v)),
        (400, "InvalidRequest"),
        "unknown field: {v}"
    );
    let (st, v) = s.curl("DELETE", "/v1/webhooks/wh-0123456789abcdef", None);
    assert_eq!((st, code(&v)), (404, "NotFound"), "{v}");
    let (st, v) = s.curl("GET", "/v1/events?type=Nope", None);
    assert_eq!((st, code(&v)), (400, "InvalidRequest"), "{v}");
    let (st, v) = s.curl("GET", "/v1/events?after=-1", None);
    assert_eq!((st, code(&v)), (400, "InvalidRequest"), "{v}");
    // Nothing was stored by the refusals; each was audited.
    let (st, v) = s.curl("GET", "/v1/webhooks", None);
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["webhooks"], json!([]));
    let (st, v) = s.curl("GET", "/v1/audit?action=CreateWebhook", None);
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["entries"].as_array().map(Vec::len), Some(6), "{v}");

    // A caller who is not a global administrator may not add one.
    let (cert, key, _) = harness::client_identity(&s, "dev", "CN=dev");
    let (st, v) = s.curl_as(
        &cert,
        &key,
        "POST",
        "/v1/webhooks",
        Some(&json!({"url": "https://example.com/hook"})),
    );
    assert_eq!((st, code(&v)), (403, "PolicyDenied"), "{v}");
}
