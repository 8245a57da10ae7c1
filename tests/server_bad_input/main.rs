//! Malformed requests of many kinds: each gets the right JSON error and
//! status, nothing half-written is left behind, and the server keeps serving.

#[path = "../harness/mod.rs"]
mod harness;

mod cases;

use cases::Case;
use harness::{core_csr, Server};
use hyper::body::Bytes;
use hyper::Method;
use serde_json::{json, Value};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_json_errors_and_the_server_keeps_serving() {
    let s = Server::start_new();
    let ca = s.config.issuing_ca_id.clone();
    let good_csr = core_csr("ok.example.internal");
    let mut cases = cases::malformed(&ca, &good_csr);
    // Give each case a fresh connection: some errors (413) close it.
    let tls = s.tls();
    let mut mismatches = Vec::new();
    for c in cases.drain(..) {
        let mut client = ca_server::api::client::ApiClient::connect(&s.api, tls.clone())
            .await
            .expect("connect");
        let has_body = c.body.is_some();
        let body = Bytes::from(c.body.clone().unwrap_or_default());
        // call_raw sets application/json when asked; other types go by hand below.
        let (status, v) = if c.content_type == Some("application/json") || !has_body {
            client
                .call_raw(c.method.clone(), &c.path, body, has_body)
                .await
                .unwrap_or_else(|e| panic!("{}: {e}", c.what))
        } else {
            curl_raw(&s, &c)
        };
        let got_code = v["error"]["code"].as_str().unwrap_or("<none>");
        let has_message = v["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty());
        if status != c.status || got_code != c.code || !has_message {
            mismatches.push(format!(
                "{}: expected {} {}, got {} {}",
                c.what, c.status, c.code, status, v
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "mismatches:\n{}",
        mismatches.join("\n")
    );

    // Still serving, nothing half-written, and no internals leaked in the log as panics.
    let mut client = s.client().await;
    let (st, v) = client.call(Method::GET, "/health", None).await.unwrap();
    assert_eq!((st, v["status"].as_str()), (200, Some("ok")));
    let (st, v) = client
        .call(Method::GET, "/v1/certificates?status=RESERVED", None)
        .await
        .unwrap();
    assert_eq!(st, 200);
    assert_eq!(
        v["certificates"].as_array().unwrap().len(),
        0,
        "a refused request left an intent: {v}"
    );
    let (st, v) = client.call(Method::GET, "/v1/cas", None).await.unwrap();
    assert_eq!(st, 200);
    assert_eq!(
        v["certificate_authorities"].as_array().unwrap().len(),
        3,
        "a refused request created a CA"
    );
    let (st, v) = client
        .call(
            Method::POST,
            "/v1/certificates",
            Some(&json!({"csr": good_csr})),
        )
        .await
        .unwrap();
    assert_eq!(st, 201, "{v}");
    assert!(!s.log().contains("panicked"), "{}", s.log());
}

fn curl_raw(s: &Server, c: &Case) -> (u16, Value) {
    let admin = s.admin_dir();
    let body_path = s.tmp.path().join("raw-body");
    std::fs::write(&body_path, c.body.as_deref().unwrap_or_default()).unwrap();
    let out = harness::run(
        std::process::Command::new("curl")
            .args(["-sS", "-w", "\n%{http_code}", "--cert"])
            .arg(admin.join("admin.pem"))
            .arg("--key")
            .arg(admin.join("admin.key"))
            .arg("--cacert")
            .arg(s.root_pem())
            .args(["-X", c.method.as_str(), "-H"])
            .arg(format!("content-type: {}", c.content_type.unwrap_or("")))
            .arg("--data-binary")
            .arg(format!("@{}", body_path.display()))
            .arg(format!("https://{}{}", s.api, c.path)),
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (
        code.trim().parse().unwrap_or(0),
        serde_json::from_str(body).unwrap_or(Value::Null),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_gets_429_throttled_and_a_small_body_limit_holds() {
    let mut s = Server::start_new();
    s.stop();
    s.extra_args = vec![
        "--max-in-flight".into(),
        "1".into(),
        "--max-body-bytes".into(),
        "2048".into(),
    ];
    s.start();
    // Many connections at once against one slot: some are turned away with 429.
    let body = serde_json::to_vec(&json!({"csr": core_csr("many.example.internal")})).unwrap();
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (api, tls, body) = (s.api.clone(), s.tls(), body.clone());
        tasks.push(tokio::spawn(async move {
            let mut c = ca_server::api::client::ApiClient::connect(&api, tls)
                .await
                .unwrap();
            let mut seen = Vec::new();
            for _ in 0..20 {
                let (st, v) = c
                    .call_raw(
                        Method::POST,
                        "/v1/certificates",
                        Bytes::from(body.clone()),
                        true,
                    )
                    .await
                    .unwrap();
                seen.push((st, v["error"]["code"].as_str().unwrap_or("").to_string()));
            }
            seen
        }));
    }
    let mut ok = 0;
    let mut throttled = 0;
    for t in tasks {
        for (st, code) in t.await.unwrap() {
            match st {
                201 => ok += 1,
                429 => {
                    assert_eq!(code, "Throttled");
                    throttled += 1
                }
                other => panic!("unexpected status {other} {code}"),
            }
        }
    }
    assert!(ok > 0 && throttled > 0, "ok {ok}, throttled {throttled}");
    // The configured body limit.
    let mut c = s.client().await;
    let big = format!("{{\"csr\": \"{}\"}}", "B".repeat(3000));
    let (st, v) = c
        .call_raw(Method::POST, "/v1/certificates", Bytes::from(big), true)
        .await
        .unwrap();
    assert_eq!((st, harness::code(&v)), (413, "TooLarge"), "{v}");
}

/// A connection to the public listener with a whole GET /health sent.
async fn send_health(addr: &str) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let mut probe = tokio::net::TcpStream::connect(addr).await.unwrap();
    probe
        .write_all(b"GET /health HTTP/1.1\r\nHost: ca\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    probe
}

/// The whole answer (the server closes after it), unless `wait` runs out;
/// the connection stays usable for another read after a timeout.
async fn read_answer(probe: &mut tokio::net::TcpStream, wait: Duration) -> Option<String> {
    use tokio::io::AsyncReadExt;
    let mut out = Vec::new();
    match tokio::time::timeout(wait, probe.read_to_end(&mut out)).await {
        Ok(Ok(_)) if !out.is_empty() => Some(String::from_utf8_lossy(&out).into_owned()),
        _ => None,
    }
}

/// How long a connection beyond the cap must go unanswered; the positive
/// controls show that the same window is ample when the cap is not reached.
const WINDOW: Duration = Duration::from_millis(700);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_caps_hold_new_connections_until_others_close() {
    let mut s = Server::start_new();
    s.stop();
    s.extra_args = vec![
        "--max-connections".into(),
        "4".into(),
        "--public-max-connections".into(),
        "4".into(),
        // Every connection here comes from 127.0.0.1: only the totals apply.
        "--max-connections-per-ip".into(),
        "100".into(),
    ];
    s.start();

    // Positive control: below the cap, a probe is answered within WINDOW.
    let mut control = send_health(&s.public).await;
    let answer = read_answer(&mut control, WINDOW).await.unwrap_or_default();
    assert!(answer.starts_with("HTTP/1.1 200"), "control: {answer:?}");

    // Public listener: four idle connections fill it; a fifth is not served
    // while they stay open, and the same connection is served (it was held,
    // not dropped) once they close.
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(tokio::net::TcpStream::connect(&s.public).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut probe = send_health(&s.public).await;
    assert_eq!(
        read_answer(&mut probe, WINDOW).await,
        None,
        "answered beyond the cap"
    );
    drop(held);
    let answer = read_answer(&mut probe, Duration::from_secs(10))
        .await
        .unwrap_or_default();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");

    // Management API: the same with connections that never start TLS.
    let control = tokio::time::timeout(
        WINDOW,
        ca_server::api::client::ApiClient::connect(&s.api, s.tls()),
    )
    .await;
    assert!(
        matches!(control, Ok(Ok(_))),
        "control: no handshake below the cap"
    );
    drop(control);
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(tokio::net::TcpStream::connect(&s.api).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (api, tls) = (s.api.clone(), s.tls());
    let pending = tokio::spawn(async move {
        tokio::time::timeout(
            Duration::from_secs(10),
            ca_server::api::client::ApiClient::connect(&api, tls),
        )
        .await
    });
    tokio::time::sleep(WINDOW).await;
    assert!(
        !pending.is_finished(),
        "a TLS handshake completed beyond the cap"
    );
    drop(held);
    let queued = pending.await.expect("task");
    assert!(
        matches!(queued, Ok(Ok(_))),
        "the held connection was not served after all"
    );
    let mut c = tokio::time::timeout(Duration::from_secs(10), s.client())
        .await
        .unwrap();
    let (st, v) = c.call(Method::GET, "/v1/cas", None).await.unwrap();
    assert_eq!(st, 200, "{v}");
    // More connections than the cap, one after another, are all served.
    for _ in 0..10 {
        let mut c = s.client().await;
        let (st, _) = c.call(Method::GET, "/v1/cas", None).await.unwrap();
        assert_eq!(st, 200);
    }
}
