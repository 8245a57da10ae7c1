//! Revocation stays answered under slow clients and trickled bodies.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::harness::relying::*;
use crate::harness::{KillOnDrop, Server};

/// Holds `count` connections to `addr` from 127.0.0.2, each an OCSP POST that
/// announces 500 bytes and sends 10: a slowloris from one address. Prints
/// `ready N` once they are open and holds them until its stdin closes.
const SLOW_CLIENTS: &str = r#"
import resource, socket, sys
host, port, count, path = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, count + 64)), hard))
held = []
head = ("POST " + path + " HTTP/1.1\r\nHost: x\r\nContent-Type: application/ocsp-request\r\n"
        "Content-Length: 500\r\n\r\n0123456789").encode()
for _ in range(count):
    s = socket.socket()
    try:
        s.bind(("127.0.0.2", 0))
        s.settimeout(5)
        s.connect((host, port))
        s.sendall(head)
        held.append(s)
    except OSError:
        s.close()
print("ready", len(held), flush=True)
sys.stdin.read()
"#;

/// Security review M3: one unauthenticated client holding 5,000 slow OCSP
/// connections cannot take the revocation service offline (per-address
/// connection limit, body and header timeouts), and asking again about an
/// unknown serial costs no new signature (the answer is cached).
#[test]
fn revocation_stays_answered_while_one_client_holds_5000_slow_connections() {
    use std::io::{BufRead, BufReader};
    let s = Server::start_new();
    let ca = s.config.issuing_ca_id.clone();
    let v = issue(&s, &ca, "probe.example");
    let f = Files::new(&s, &ca, &v);

    // An OCSP GET for a serial the store does not know, asked twice: the same
    // signed bytes come back (ECDSA signatures differ each time they are made).
    let req = f.dir.join("unknown.req");
    let out = openssl(&[
        "ocsp",
        "-issuer",
        p(&f.issuer),
        "-serial",
        "0x0badc0ffee0badc0ffee",
        "-no_nonce",
        "-reqout",
        p(&req),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let req_der = std::fs::read(&req).expect("request");
    let get_url = format!(
        "http://{}/ocsp/{ca}/{}",
        s.public,
        url_escape(&b64(&req_der))
    );
    let (st, _, first) = public(&get_url, &[]);
    let (_, _, second) = public(&get_url, &[]);
    assert_eq!(st, 200);
    assert!(first.len() > 5, "a signed answer");
    assert_eq!(first, second, "the unknown-serial answer was signed afresh");

    let host_port = s.public.rsplit_once(':').expect("host:port");
    let mut slow = KillOnDrop(
        Command::new("python3")
            .args(["-c", SLOW_CLIENTS, host_port.0, host_port.1, "5000"])
            .arg(format!("/ocsp/{ca}"))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python3"),
    );
    let mut line = String::new();
    BufReader::new(slow.0.stdout.as_mut().expect("stdout"))
        .read_line(&mut line)
        .expect("ready");
    assert!(line.starts_with("ready"), "{line}");

    // Meanwhile, from another address: CRL and OCSP answer, quickly.
    let crl = crl_url(&s, &ca);
    let mut times = Vec::new();
    for _ in 0..10 {
        for url in [&crl, &get_url] {
            let start = Instant::now();
            let (st, _, body) = public(url, &["--max-time", "5"]);
            times.push(start.elapsed());
            assert_eq!(st, 200, "{url} while {line}");
            assert!(!body.is_empty());
        }
    }
    times.sort();
    let median = times[times.len() / 2];
    assert!(
        median < Duration::from_millis(100),
        "median {median:?} (all: {times:?}) while {line}"
    );
    let log = s.log();
    assert!(
        log.contains("per-address connection limit reached"),
        "{log}"
    );
}

/// Security review M3: an OCSP POST whose body never arrives in full is cut
/// off (hyper's header timeout does not cover bodies; before the fix such a
/// connection was still open after 180 s).
#[test]
fn a_trickled_ocsp_body_is_cut_off() {
    use std::io::{Read, Write};
    let s = Server::start_new();
    let ca = s.config.issuing_ca_id.clone();
    let mut conn = std::net::TcpStream::connect(&s.public).expect("connect");
    write!(
        conn,
        "POST /ocsp/{ca} HTTP/1.1\r\nHost: x\r\nContent-Type: application/ocsp-request\r\nContent-Length: 500\r\n\r\n0123456789"
    )
    .expect("send");
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let start = Instant::now();
    let mut answer = Vec::new();
    let _ = conn.read_to_end(&mut answer);
    let waited = start.elapsed();
    assert!(
        waited < Duration::from_secs(20),
        "still open after {waited:?}"
    );
    // Answered with a malformedRequest OCSP response, or simply closed.
    let text = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || text.starts_with("HTTP/1.1 200"),
        "{text}"
    );
}
