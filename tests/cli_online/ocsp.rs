//! `ca-cli ocsp` refuses a replayed or forged response.

use super::*;

/// A responder that answers every request with the bytes of `file`.
fn fake_responder(file: &Path) -> (harness::KillOnDrop, String) {
    let port = harness::free_port();
    let script = r#"
import http.server, sys
body = open(sys.argv[2], "rb").read()
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.answer()
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.answer()
    def answer(self):
        self.send_response(200)
        self.send_header("Content-Type", "application/ocsp-response")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"#;
    let child = Command::new("python3")
        .args(["-c", script, &port.to_string()])
        .arg(file)
        .spawn()
        .expect("python3");
    let guard = harness::KillOnDrop(child);
    harness::wait_for_port(port, "fake OCSP responder");
    (guard, format!("http://127.0.0.1:{port}/"))
}

/// `ca-cli ocsp query` believes only a response signed for this request: a
/// replayed answer (another nonce) and a forged one (altered after signing)
/// are refused with exit 3, naming why; the genuine answer, served the same
/// way, is accepted (the positive control).
#[test]
fn ocsp_query_refuses_a_replayed_or_forged_response() {
    let srv = Server::start_new();
    let t = tempfile::tempdir().expect("tempdir");
    let d = t.path();
    let (st, v) = srv.curl(
        "POST",
        "/v1/certificates/request",
        Some(&serde_json::json!({"names": ["relying.example"], "passphrase": "long enough passphrase"})),
    );
    assert_eq!(st, 201, "{v}");
    let cert = p(d, "leaf.pem");
    std::fs::write(&cert, v["certificate"].as_str().expect("pem")).expect("write");
    let issuer = p(d, "issuer.pem");
    let chain = v["certificate_chain"].as_str().expect("chain");
    let first = &chain[..chain.find("-----END CERTIFICATE-----").expect("end") + 26];
    std::fs::write(&issuer, first).expect("write");
    let url = format!("http://{}/ocsp/{}", srv.public, srv.config.issuing_ca_id);
    // Two genuine answers from the real responder: with a nonce, and without.
    let with_nonce = p(d, "nonce.der");
    let without = p(d, "plain.der");
    for (file, flag) in [(&with_nonce, "-nonce"), (&without, "-no_nonce")] {
        openssl(&[
            "ocsp",
            "-issuer",
            &issuer,
            "-cert",
            &cert,
            "-url",
            &url,
            flag,
            "-respout",
            file,
            "-noverify",
        ]);
    }
    let query = |responder: &str, nonce: bool| {
        let mut args = vec![
            "ocsp", "query", "--cert", &cert, "--issuer", &issuer, "--url", responder,
        ];
        if !nonce {
            args.push("--no-nonce");
        }
        srv.cli(&args)
    };
    // Positive control: the genuine no-nonce answer, served by the fake.
    let (_control, fake) = fake_responder(Path::new(&without));
    let o = ok(query(&fake, false));
    assert!(out(&o).contains(": good"), "{}", out(&o));
    // Replayed: an answer to another request's nonce.
    let (_replay, fake) = fake_responder(Path::new(&with_nonce));
    fails(&query(&fake, true), 3, "does not echo our nonce");
    // Forged: producedAt changed by a second after signing.
    let mut forged = std::fs::read(&without).expect("read");
    let at = forged
        .windows(2)
        .position(|w| w == [0x18, 0x0f])
        .expect("a GeneralizedTime");
    let second = at + 2 + 13; // YYYYMMDDHHMMS[S]Z: the last digit of the seconds
    forged[second] = if forged[second] == b'0' { b'1' } else { b'0' };
    let forged_file = d.join("forged.der");
    std::fs::write(&forged_file, &forged).expect("write");
    let (_forged, fake) = fake_responder(&forged_file);
    fails(&query(&fake, false), 3, "signature does not verify");
}
