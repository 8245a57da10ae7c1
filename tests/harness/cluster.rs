//! Helpers for the tests of ca-server on PostgreSQL (`server_cluster.rs`,
//! `server_postgres.rs`): more nodes on one database, issuing through the API
//! client, reading a node's CRL and audit trail, openssl-made TLS identities
//! for the database, and a slow webhook receiver.

use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ca_server::api::client::ApiClient;
use hyper::body::Bytes;
use hyper::Method;
use serde_json::{json, Value};

use super::{core_csr, free_port, run, Server};

/// A second node: a copy of the first node's data directory (its config with
/// the database URL, its master key, its API TLS key and certificate) on
/// ports of its own. Nothing of the store is in the directory.
pub fn another_node(first: &Server) -> Server {
    let mut node = Server::init_with(&[], &[]);
    std::fs::remove_dir_all(&node.dir).expect("clear");
    copy_dir(&first.dir, &node.dir);
    let _ = std::fs::remove_dir_all(node.dir.join("crls"));
    node.profile = first.profile.clone();
    node.config = first.config.clone();
    node.extra_args = vec![
        "--api-addr".into(),
        format!("127.0.0.1:{}", free_port()),
        "--public-addr".into(),
        format!("127.0.0.1:{}", free_port()),
    ];
    node
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir") {
        let e = e.expect("entry");
        let target = to.join(e.file_name());
        if e.file_type().expect("type").is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).expect("copy");
        }
    }
}

pub async fn issue_on(client: &mut ApiClient, name: &str) -> Result<(String, String), String> {
    let body = serde_json::to_vec(&json!({"csr": core_csr(name)})).expect("json");
    let (st, b) = client
        .send(Method::POST, "/v1/certificates", Bytes::from(body), true)
        .await
        .map_err(|e| e.to_string())?;
    let v: Value = serde_json::from_slice(&b).unwrap_or(Value::Null);
    if st != 201 {
        return Err(format!("{st}: {v}"));
    }
    let serial = v["serial"].as_str().ok_or("no serial")?.to_string();
    let pem = v["certificate"]
        .as_str()
        .ok_or("no certificate")?
        .to_string();
    Ok((serial, pem))
}

pub fn openssl(args: &[&str]) -> String {
    let out = run(Command::new("openssl").args(args));
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// (CRL number, SHA-256 of the DER) served by a node now.
pub fn crl_of(node: &Server, ca: &str, tmp: &Path) -> (u64, String) {
    let file = tmp.join(format!("crl-{}.der", free_port()));
    let out = run(Command::new("curl")
        .args(["-sSf", "-o"])
        .arg(&file)
        .arg(format!("http://{}/crl/{ca}.crl", node.public)));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let der = std::fs::read(&file).expect("crl");
    let t = openssl(&[
        "crl",
        "-inform",
        "DER",
        "-noout",
        "-crlnumber",
        "-in",
        file.to_str().unwrap(),
    ]);
    let hex = t
        .trim()
        .strip_prefix("crlNumber=0x")
        .unwrap_or_else(|| panic!("{t}"));
    let number = u64::from_str_radix(hex, 16).expect("crl number");
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &der);
    (number, ca_core::hex::encode(digest.as_ref()))
}

pub fn relying_issue(s: &Server, ca_id: &str, dns: &str) -> Value {
    let (st, v) = s.curl(
        "POST",
        "/v1/certificates",
        Some(&json!({"csr": core_csr(dns), "ca_id": ca_id})),
    );
    assert_eq!(st, 201, "{v}");
    v
}

/// Entries in the audit trail, counted through the API.
pub fn audit_count(s: &Server) -> u64 {
    let out = s.cli(&["audit", "verify", "--server", &format!("https://{}", s.api)]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}");
    first_number(&text)
}

pub fn first_number(text: &str) -> u64 {
    text.split(|c: char| !c.is_ascii_digit())
        .find_map(|w| w.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no count in {text}"))
}

/// Poll `check` until it holds; how long it took, failing past `limit`.
pub fn within(limit: Duration, what: &str, mut check: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
    start.elapsed()
}

/// A CA and a server certificate for 127.0.0.1 made with openssl: the
/// database's TLS identity. Returns (CA PEM path, certificate, key).
pub fn openssl_server_identity(dir: &Path, name: &str) -> (std::path::PathBuf, Vec<u8>, Vec<u8>) {
    let p = |f: &str| dir.join(format!("{name}-{f}"));
    let ok = |out: std::process::Output| {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    ok(run(Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args([
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN={name} test CA"),
        ])
        .args(["-addext", "basicConstraints=critical,CA:TRUE"])
        .arg("-keyout")
        .arg(p("ca.key"))
        .arg("-out")
        .arg(p("ca.pem"))));
    ok(run(Command::new("openssl")
        .args([
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-subj", "/CN=127.0.0.1"])
        .arg("-keyout")
        .arg(p("server.key"))
        .arg("-out")
        .arg(p("server.csr"))));
    std::fs::write(
        p("ext"),
        "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n",
    )
    .expect("ext");
    ok(run(Command::new("openssl")
        .args(["x509", "-req", "-days", "2"])
        .arg("-in")
        .arg(p("server.csr"))
        .arg("-CA")
        .arg(p("ca.pem"))
        .arg("-CAkey")
        .arg(p("ca.key"))
        .arg("-CAcreateserial")
        .arg("-extfile")
        .arg(p("ext"))
        .arg("-out")
        .arg(p("server.pem"))));
    (
        p("ca.pem"),
        std::fs::read(p("server.pem")).expect("cert"),
        std::fs::read(p("server.key")).expect("key"),
    )
}

/// A plain-HTTP webhook receiver on `port`: (event id, event type, body) of
/// every POST, answered 200 after 300 ms.
pub fn http_receiver(port: u16, got: Arc<Mutex<Vec<(String, String, String)>>>) {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
                .await
                .expect("bind receiver");
            ready_tx.send(()).expect("ready");
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let got = got.clone();
                tokio::spawn(async move {
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
                                let (id, kind) = (h("CA-Event-Id"), h("CA-Event-Type"));
                                let body = req.into_body().collect().await?.to_bytes();
                                // A slow receiver: two nodes delivering
                                // would both be sending the same event.
                                tokio::time::sleep(Duration::from_millis(300)).await;
                                got.lock().unwrap().push((
                                    id,
                                    kind,
                                    String::from_utf8_lossy(&body).into_owned(),
                                ));
                                Ok::<_, hyper::Error>(hyper::Response::new(
                                    http_body_util::Full::new(Bytes::from_static(b"ok")),
                                ))
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tcp), service)
                        .await;
                });
            }
        });
    });
    ready_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("receiver started");
}
