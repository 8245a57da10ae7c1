//! Malformed requests of many kinds: each gets the right JSON error and
//! status, nothing half-written is left behind, and the server keeps serving.

mod harness;

use harness::{core_csr, fixture, Server};
use hyper::body::Bytes;
use hyper::Method;
use serde_json::{json, Value};
use std::time::Duration;

struct Case {
    what: &'static str,
    method: Method,
    path: String,
    body: Option<Vec<u8>>,
    content_type: Option<&'static str>,
    status: u16,
    code: &'static str,
}

fn case(
    what: &'static str,
    method: Method,
    path: &str,
    body: Option<Value>,
    status: u16,
    code: &'static str,
) -> Case {
    Case {
        what,
        method,
        path: path.to_string(),
        body: body.map(|b| serde_json::to_vec(&b).unwrap()),
        content_type: Some("application/json"),
        status,
        code,
    }
}

fn raw(
    what: &'static str,
    method: Method,
    path: &str,
    body: &[u8],
    status: u16,
    code: &'static str,
) -> Case {
    Case {
        what,
        method,
        path: path.to_string(),
        body: Some(body.to_vec()),
        content_type: Some("application/json"),
        status,
        code,
    }
}

fn pem(label: &str, der: &[u8]) -> String {
    ca_core::pem::encode(label, der)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_json_errors_and_the_server_keeps_serving() {
    let s = Server::start_new();
    let ca = s.config.issuing_ca_id.clone();
    let good_csr = core_csr("ok.example.internal");
    let bad_sig = pem("CERTIFICATE REQUEST", &fixture("bad-signature.der"));
    let truncated = pem("CERTIFICATE REQUEST", &fixture("truncated.der"));
    let garbage_der = pem("CERTIFICATE REQUEST", &fixture("garbage.der"));
    let rsa1024 = String::from_utf8(fixture("rsa1024.csr")).unwrap();
    let p521 = String::from_utf8(fixture("p521.csr")).unwrap();
    let huge = format!("{{\"csr\": \"{}\"}}", "A".repeat(200 * 1024));
    let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));

    let mut cases = vec![
        raw(
            "bad JSON",
            Method::POST,
            "/v1/certificates",
            b"{\"csr\": ",
            400,
            "InvalidRequest",
        ),
        raw(
            "not UTF-8",
            Method::POST,
            "/v1/certificates",
            b"{\"csr\": \"\xff\xfe\"}",
            400,
            "InvalidRequest",
        ),
        raw(
            "JSON array, not an object",
            Method::POST,
            "/v1/certificates",
            b"[]",
            400,
            "InvalidRequest",
        ),
        raw(
            "deeply nested JSON",
            Method::POST,
            "/v1/certificates",
            deep.as_bytes(),
            400,
            "InvalidRequest",
        ),
        raw(
            "empty body",
            Method::POST,
            "/v1/certificates",
            b"",
            400,
            "InvalidRequest",
        ),
        raw(
            "huge body",
            Method::POST,
            "/v1/certificates",
            huge.as_bytes(),
            413,
            "TooLarge",
        ),
        case(
            "wrong type for validity_days",
            Method::POST,
            "/v1/certificates",
            Some(json!({"csr": good_csr, "validity_days": "ten"})),
            400,
            "InvalidRequest",
        ),
        case(
            "negative validity",
            Method::POST,
            "/v1/certificates",
            Some(json!({"csr": good_csr, "validity_days": -5})),
            400,
            "InvalidRequest",
        ),
        case(
            "validity overflowing u32",
            Method::POST,
            "/v1/certificates",
            Some(json!({"csr": good_csr, "validity_days": 99999999999u64})),
            400,
            "InvalidRequest",
        ),
        case(
            "zero validity",
            Method::POST,
            "/v1/certificates",
            Some(json!({"csr": good_csr, "validity_days": 0})),
            400,
            "InvalidRequest",
        ),
        case(
            "validity beyond the profile maximum",
            Method::POST,
            "/v1/certificates",
            Some(json!({"csr": good_csr, "validity_days": 5000})),
            400,
            "InvalidRequest",
        ),
        case(
            "unknown field",
            Method::POST,
            "/v1/certificates",
            Some(json!({"csr": good_csr, "colour": "blue"})),
            400,
            "InvalidRequest",
        ),
        case(
            "missing csr",
            Method::POST,
            "/v1/certificates",
            Some(json!({"ca_id": ca})),
            400,
            "InvalidRequest",
        ),
        case(
            "csr of the wrong type",
            Method::POST,
            "/v1/certificates",
            Some(json!({"csr": 12})),
            400,
            "InvalidRequest",
        ),
        case(
            "garbage CSR text",
            Method::POST,
            "/v1/certificates",
            Some(json!({"csr": "hello, I am a CSR"})),
            400,
            "MalformedCsr",
        ),
        case(
            "garbage CSR DER",
            Method::POST,
            "/v1/certificates",
            Some(json!({"csr": garbage_der})),
            400,
            "MalformedCsr",
        ),
        case(
            "truncated CSR",
            Method::POST,
            "/v1/certificates",
            Some(json!({"csr": truncated})),
            400,
            "MalformedCsr",
        ),
        case(
            "CSR with a bad signature",
            Method::POST,
            "/v1/certificates",
            Some(json!({"csr": bad_sig})),
            400,
            "MalformedCsr",
        ),
        case(
            "CSR with an RSA-1024 key",
            Method::POST,
            "/v1/certificates",
            Some(json!({"csr": rsa1024})),
            400,
            "MalformedCsr",
        ),
        case(
            "CSR with a P-521 key",
            Method::POST,
            "/v1/certificates",
            Some(json!({"csr": p521})),
            400,
            "MalformedCsr",
        ),
        case(
            "empty CSR",
            Method::POST,
            "/v1/certificates",
            Some(json!({"csr": ""})),
            400,
            "MalformedCsr",
        ),
        case(
            "unknown CA",
            Method::POST,
            "/v1/certificates",
            Some(json!({"ca_id": "ca-0123456789abcdef", "csr": good_csr})),
            404,
            "NotFound",
        ),
        case(
            "path traversal as a CA id",
            Method::POST,
            "/v1/certificates",
            Some(json!({"ca_id": "../../keys/ca", "csr": good_csr})),
            404,
            "NotFound",
        ),
        case(
            "CA id with odd characters",
            Method::POST,
            "/v1/certificates",
            Some(json!({"ca_id": "ca-\u{0000}\u{202e}abc", "csr": good_csr})),
            404,
            "NotFound",
        ),
        case(
            "unknown profile",
            Method::POST,
            "/v1/certificates",
            Some(json!({"csr": good_csr, "profile": "code-signing"})),
            400,
            "InvalidRequest",
        ),
        case(
            "CA profile on the leaf endpoint",
            Method::POST,
            "/v1/certificates",
            Some(json!({"csr": good_csr, "profile": "subordinate-ca"})),
            400,
            "InvalidRequest",
        ),
        case(
            "idempotency token with odd characters",
            Method::POST,
            "/v1/certificates",
            Some(json!({"csr": good_csr, "idempotency_token": "a b/../\u{00e9}"})),
            400,
            "InvalidRequest",
        ),
        Case {
            what: "wrong content type",
            method: Method::POST,
            path: "/v1/certificates".into(),
            body: Some(b"csr=abc".to_vec()),
            content_type: Some("application/x-www-form-urlencoded"),
            status: 415,
            code: "UnsupportedMediaType",
        },
        case(
            "path traversal in the URL",
            Method::GET,
            "/v1/cas/..%2F..%2Fconfig.toml",
            None,
            404,
            "NotFound",
        ),
        case(
            "dot segments in the URL",
            Method::GET,
            "/v1/cas/../../etc/passwd",
            None,
            404,
            "NotFound",
        ),
        case(
            "malformed CA id in the URL",
            Method::GET,
            "/v1/cas/ca-XYZ",
            None,
            404,
            "NotFound",
        ),
        case(
            "unknown well-formed CA id",
            Method::GET,
            &format!("/v1/cas/ca-{}", "f".repeat(16)),
            None,
            404,
            "NotFound",
        ),
        case(
            "serial that is not hex",
            Method::GET,
            "/v1/certificates/zz-top",
            None,
            400,
            "InvalidRequest",
        ),
        case(
            "serial too long",
            Method::GET,
            &format!("/v1/certificates/{}", "ab".repeat(30)),
            None,
            400,
            "InvalidRequest",
        ),
        case(
            "unknown serial",
            Method::GET,
            "/v1/certificates/0abc",
            None,
            404,
            "NotFound",
        ),
        case(
            "unknown route",
            Method::GET,
            "/v2/everything",
            None,
            404,
            "NotFound",
        ),
        case(
            "wrong method",
            Method::DELETE,
            "/v1/cas",
            None,
            405,
            "MethodNotAllowed",
        ),
        case(
            "bad CA status",
            Method::PATCH,
            &format!("/v1/cas/{ca}"),
            Some(json!({"status": "DELETED"})),
            400,
            "InvalidRequest",
        ),
        case(
            "bad CA type",
            Method::POST,
            "/v1/cas",
            Some(json!({"type": "INTERMEDIATE", "subject": "CN=x"})),
            400,
            "InvalidRequest",
        ),
        case(
            "bad CA subject",
            Method::POST,
            "/v1/cas",
            Some(json!({"type": "ROOT", "subject": "no equals sign"})),
            400,
            "InvalidRequest",
        ),
        case(
            "numeric attribute type overflowing an OID arc in a CA subject",
            Method::POST,
            "/v1/cas",
            Some(json!({"type": "ROOT", "subject": "2.4294967296=x"})),
            400,
            "InvalidRequest",
        ),
        case(
            "numeric attribute type after a known one in a CA subject",
            Method::POST,
            "/v1/cas",
            Some(json!({"type": "ROOT", "subject": "CN=x,2.4294967296=x"})),
            400,
            "InvalidRequest",
        ),
        case(
            "control characters in a CA subject",
            Method::POST,
            "/v1/cas",
            Some(json!({"type": "ROOT", "subject": "CN=bad\u{0007}bell"})),
            400,
            "InvalidRequest",
        ),
        case(
            "bad CA key algorithm",
            Method::POST,
            "/v1/cas",
            Some(json!({"type": "ROOT", "subject": "CN=x", "key_algorithm": "dsa-1024"})),
            400,
            "InvalidRequest",
        ),
        case(
            "root with a parent",
            Method::POST,
            "/v1/cas",
            Some(json!({"type": "ROOT", "subject": "CN=x", "parent_ca_id": ca})),
            400,
            "InvalidRequest",
        ),
        case(
            "subordinate with an unknown parent",
            Method::POST,
            "/v1/cas",
            Some(
                json!({"type": "SUBORDINATE", "subject": "CN=x", "parent_ca_id": "ca-0000000000000000"}),
            ),
            404,
            "NotFound",
        ),
        case(
            "bad name constraint",
            Method::POST,
            "/v1/cas",
            Some(
                json!({"type": "SUBORDINATE", "subject": "CN=x", "parent_ca_id": ca, "name_constraints": {"permitted_ip": ["10.0.0.0/99"]}}),
            ),
            400,
            "InvalidRequest",
        ),
        case(
            "CSR of a CA that has none",
            Method::GET,
            &format!("/v1/cas/{ca}/csr"),
            None,
            409,
            "InvalidState",
        ),
        case(
            "import into an active CA",
            Method::POST,
            &format!("/v1/cas/{ca}/certificate"),
            Some(json!({"certificate": "x", "certificate_chain": "y"})),
            409,
            "InvalidState",
        ),
        case(
            "short passphrase",
            Method::POST,
            "/v1/certificates/request",
            Some(json!({"names": ["a.example.internal"], "passphrase": "short"})),
            400,
            "InvalidRequest",
        ),
        case(
            "odd characters in a name",
            Method::POST,
            "/v1/certificates/request",
            Some(json!({"names": ["bad name!.example"], "passphrase": "long enough"})),
            400,
            "InvalidRequest",
        ),
        case(
            "NUL in a name",
            Method::POST,
            "/v1/certificates/request",
            Some(json!({"names": ["a\u{0000}.example.internal"], "passphrase": "long enough"})),
            400,
            "InvalidRequest",
        ),
        case(
            "numeric attribute type overflowing an OID arc in a subject",
            Method::POST,
            "/v1/certificates/request",
            Some(
                json!({"names": ["a.example.internal"], "subject": "2.4294967296=x", "passphrase": "long enough"}),
            ),
            400,
            "InvalidRequest",
        ),
        case(
            "numeric attribute type in a multi-valued RDN of a subject",
            Method::POST,
            "/v1/certificates/request",
            Some(
                json!({"names": ["a.example.internal"], "subject": "CN=a+1.2.99999999999=x", "passphrase": "long enough"}),
            ),
            400,
            "InvalidRequest",
        ),
        case(
            "no names",
            Method::POST,
            "/v1/certificates/request",
            Some(json!({"names": [], "passphrase": "long enough"})),
            400,
            "InvalidRequest",
        ),
        case(
            "unknown key type",
            Method::POST,
            "/v1/certificates/request",
            Some(
                json!({"names": ["a.example.internal"], "passphrase": "long enough", "key_algorithm": "rsa-512"}),
            ),
            400,
            "InvalidRequest",
        ),
        case(
            "revocation reason 7",
            Method::POST,
            "/v1/certificates/0abc/revoke",
            Some(json!({"reason": 7})),
            400,
            "InvalidRequest",
        ),
        case(
            "revocation reason of the wrong type",
            Method::POST,
            "/v1/certificates/0abc/revoke",
            Some(json!({"reason": [1]})),
            400,
            "InvalidRequest",
        ),
        case(
            "revoke an unknown serial",
            Method::POST,
            "/v1/certificates/0abc/revoke",
            Some(json!({"reason": 1})),
            404,
            "NotFound",
        ),
        case(
            "renew an unknown serial",
            Method::POST,
            "/v1/certificates/0abc/renew",
            Some(json!({})),
            404,
            "NotFound",
        ),
        case(
            "list: limit 0",
            Method::GET,
            "/v1/certificates?limit=0",
            None,
            400,
            "InvalidRequest",
        ),
        case(
            "list: bad status",
            Method::GET,
            "/v1/certificates?status=SHINY",
            None,
            400,
            "InvalidRequest",
        ),
        case(
            "list: bad time",
            Method::GET,
            "/v1/certificates?expiring_before=tomorrow",
            None,
            400,
            "InvalidRequest",
        ),
        case(
            "list: bad cursor",
            Method::GET,
            "/v1/certificates?cursor=%2e%2e%2f",
            None,
            400,
            "InvalidRequest",
        ),
        case(
            "list: forged cursor",
            Method::GET,
            "/v1/certificates?cursor=41424344",
            None,
            400,
            "InvalidRequest",
        ),
        case(
            "list: unknown parameter",
            Method::GET,
            "/v1/certificates?drop=table",
            None,
            400,
            "InvalidRequest",
        ),
        case(
            "list: bad percent-encoding",
            Method::GET,
            "/v1/certificates?ca_id=%zz",
            None,
            400,
            "InvalidRequest",
        ),
    ];
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
