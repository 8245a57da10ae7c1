//! ACME with real clients (Debian's certbot and lego, installed by the test
//! command), all on loopback: the server's ACME listener, `http-01`
//! validation against the client's own responder on a free port (the server
//! resolves every name to 127.0.0.1, `acme.resolve_to`). What the clients
//! get is checked with openssl against our root, and through the API.

mod harness;

use std::path::Path;
use std::process::{Command, Output};

use harness::{free_port, run, text, Server};
use serde_json::{json, Value};

/// A server with ACME on a free port, `http-01` validation to `http01_port`,
/// `tls-alpn-01` to `alpn_port`, and a policy letting ACME accounts of the
/// default directory get names under example.test.
fn acme_server(http01_port: u16, alpn_port: u16) -> (Server, String) {
    harness::acme::acme_server(&harness::acme::AcmePorts {
        http01: http01_port,
        tls_alpn01: alpn_port,
        dns_resolver: None,
    })
}

fn certbot(s: &Server, work: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new("certbot");
    cmd.args(args)
        .arg("--config-dir")
        .arg(work.join("config"))
        .arg("--work-dir")
        .arg(work.join("work"))
        .arg("--logs-dir")
        .arg(work.join("logs"))
        .args(["--non-interactive", "--no-random-sleep-on-renew"])
        .env("REQUESTS_CA_BUNDLE", s.root_pem());
    run(&mut cmd)
}

fn openssl_verify(s: &Server, cert: &Path, chain: &Path) -> String {
    let out = run(Command::new("openssl")
        .args(["verify", "-CAfile"])
        .arg(s.root_pem())
        .arg("-untrusted")
        .arg(chain)
        .arg(cert));
    text(&out)
}

fn serial_of(cert: &Path) -> String {
    let out = run(Command::new("openssl")
        .args(["x509", "-noout", "-serial", "-in"])
        .arg(cert));
    let t = text(&out);
    let hex = t
        .trim()
        .strip_prefix("serial=")
        .unwrap_or_else(|| panic!("serial: {t}"));
    hex.to_ascii_lowercase()
}

fn status_of(s: &Server, serial: &str) -> Value {
    let (st, v) = s.curl("GET", &format!("/v1/certificates/{serial}"), None);
    assert_eq!(st, 200, "{v}");
    v
}

#[test]
fn certbot_obtains_renews_and_revokes_with_http01() {
    let http01 = free_port();
    let (s, directory) = acme_server(http01, free_port());
    let work = s.tmp.path().join("certbot");
    let port = http01.to_string();
    let common = [
        "--server",
        directory.as_str(),
        "--standalone",
        "--http-01-port",
        port.as_str(),
        "--http-01-address",
        "127.0.0.1",
    ];

    let started = std::time::Instant::now();
    let mut args = vec![
        "certonly",
        "--agree-tos",
        "-m",
        "ops@example.test",
        "-d",
        "web.example.test",
        "-d",
        "www.example.test",
    ];
    args.extend_from_slice(&common);
    let out = certbot(&s, &work, &args);
    assert!(out.status.success(), "certbot certonly: {}", text(&out));
    println!("certbot obtained a certificate in {:?}", started.elapsed());

    let live = work.join("config/live/web.example.test");
    let verdict = openssl_verify(&s, &live.join("cert.pem"), &live.join("chain.pem"));
    assert!(verdict.contains(": OK"), "openssl verify: {verdict}");
    let first = serial_of(&live.join("cert.pem"));
    let v = status_of(&s, &first);
    assert_eq!(v["status"], "ISSUED", "{v}");
    let sans = v["sans"].to_string();
    assert!(
        sans.contains("web.example.test") && sans.contains("www.example.test"),
        "{v}"
    );

    // Renewal: a new certificate for the same names.
    let mut args = vec!["renew", "--force-renewal"];
    args.extend_from_slice(&common);
    let out = certbot(&s, &work, &args);
    assert!(out.status.success(), "certbot renew: {}", text(&out));
    let second = serial_of(&live.join("cert.pem"));
    assert_ne!(first, second, "renewal made a new certificate");
    let verdict = openssl_verify(&s, &live.join("cert.pem"), &live.join("chain.pem"));
    assert!(
        verdict.contains(": OK"),
        "openssl verify after renewal: {verdict}"
    );

    // Revocation, signed by the account.
    let cert_path = live.join("cert.pem");
    let out = certbot(
        &s,
        &work,
        &[
            "revoke",
            "--server",
            &directory,
            "--cert-path",
            cert_path.to_str().expect("path"),
            "--reason",
            "superseded",
            "--no-delete-after-revoke",
        ],
    );
    assert!(out.status.success(), "certbot revoke: {}", text(&out));
    let v = status_of(&s, &second);
    assert_eq!(v["status"], "REVOKED", "{v}");

    // A name outside the policy is refused before any challenge.
    let mut args = vec!["certonly", "-d", "web.other.test"];
    args.extend_from_slice(&common);
    let out = certbot(&s, &work, &args);
    assert!(
        !out.status.success(),
        "a name outside the policy was issued"
    );
    // Debian's certbot 2.1 on Python 3.11 hides every ACME error behind an
    // AttributeError of its own (josepy); its log keeps the server's problem.
    let log = std::fs::read_to_string(work.join("logs/letsencrypt.log")).unwrap_or_default();
    assert!(
        log.contains("urn:ietf:params:acme:error:rejectedIdentifier"),
        "{}\n{log}",
        text(&out)
    );

    // The trail has the account, the orders, the validations, the issuance
    // and the revocation, and still verifies.
    let (st, v) = s.curl("GET", "/v1/audit?limit=1000", None);
    assert_eq!(st, 200);
    let actions: Vec<&str> = v["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    for a in [
        "AcmeNewAccount",
        "AcmeNewOrder",
        "AcmeValidateChallenge",
        "AcmeFinalize",
        "AcmeRevokeCertificate",
    ] {
        assert!(actions.contains(&a), "no {a} in the trail: {actions:?}");
    }
    let refused = v["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter(|e| e["action"] == "AcmeNewOrder" && e["result"]["code"] == "rejectedIdentifier")
        .count();
    assert_eq!(refused, 1, "the refused order is audited: {v}");
    let out = s.cli(&["audit", "verify"]);
    assert!(out.status.success(), "{}", text(&out));
}

fn lego(s: &Server, path: &Path, directory: &str, domain: &str, challenge: &[&str]) -> Output {
    let mut cmd = Command::new("lego");
    cmd.args([
        "--server",
        directory,
        "--email",
        "ops@example.test",
        "--accept-tos",
    ])
    .args(["--domains", domain])
    .arg("--path")
    .arg(path)
    .args(challenge)
    .arg("run")
    .env("LEGO_CA_CERTIFICATES", s.root_pem());
    run(&mut cmd)
}

#[test]
fn lego_obtains_with_http01_and_with_tls_alpn01() {
    let (http01, alpn) = (free_port(), free_port());
    let (s, directory) = acme_server(http01, alpn);
    for (domain, challenge) in [
        (
            "http.example.test",
            vec![
                "--http".to_string(),
                "--http.port".into(),
                format!("127.0.0.1:{http01}"),
            ],
        ),
        (
            "alpn.example.test",
            vec![
                "--tls".to_string(),
                "--tls.port".into(),
                format!("127.0.0.1:{alpn}"),
            ],
        ),
    ] {
        let path = s.tmp.path().join(format!("lego-{domain}"));
        let args: Vec<&str> = challenge.iter().map(String::as_str).collect();
        let out = lego(&s, &path, &directory, domain, &args);
        assert!(out.status.success(), "lego {domain}: {}", text(&out));
        let cert = path.join(format!("certificates/{domain}.crt"));
        // lego writes the leaf and the chain into one file.
        let verdict = openssl_verify(&s, &cert, &cert);
        assert!(
            verdict.contains(": OK"),
            "openssl verify {domain}: {verdict}"
        );
        let v = status_of(&s, &serial_of(&cert));
        assert_eq!(v["status"], "ISSUED", "{v}");
    }
    // The trail says which challenge proved each name.
    let (st, v) = s.curl("GET", "/v1/audit?action=AcmeValidateChallenge", None);
    assert_eq!(st, 200);
    let reasons = v["entries"].to_string();
    assert!(
        reasons.contains("http-01 answered") && reasons.contains("tls-alpn-01 answered"),
        "{v}"
    );
}

#[test]
fn caddy_gets_its_certificate_on_its_own_and_serves_https() {
    let (http_port, https_port) = (free_port(), free_port());
    let (s, directory) = acme_server(http_port, https_port);
    let dir = s.tmp.path().join("caddy");
    std::fs::create_dir_all(&dir).expect("dir");
    let caddyfile = dir.join("Caddyfile");
    std::fs::write(
        &caddyfile,
        format!(
            "{{\n  acme_ca {directory}\n  acme_ca_root {root}\n  email ops@example.test\n  \
             http_port {http_port}\n  https_port {https_port}\n  admin off\n  \
             storage file_system {storage}\n  ocsp_stapling off\n}}\n\n\
             caddy.example.test {{\n  respond \"hello from caddy\"\n}}\n",
            root = s.root_pem().display(),
            storage = dir.join("storage").display(),
        ),
    )
    .expect("Caddyfile");
    let log = std::fs::File::create(dir.join("caddy.log")).expect("log");
    let child = Command::new("caddy")
        .args(["run", "--adapter", "caddyfile", "--config"])
        .arg(&caddyfile)
        .env("HOME", &dir)
        .env("XDG_DATA_HOME", dir.join("data"))
        .env("XDG_CONFIG_HOME", dir.join("config"))
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("caddy (the test command installs Debian's caddy package)");
    let _caddy = harness::KillOnDrop(child);
    // Caddy obtains the certificate in the background once it has started.
    let start = std::time::Instant::now();
    let body = loop {
        let out = run(Command::new("curl")
            .args(["-sS", "--max-time", "5", "--cacert"])
            .arg(s.root_pem())
            .args([
                "--resolve",
                &format!("caddy.example.test:{https_port}:127.0.0.1"),
                &format!("https://caddy.example.test:{https_port}/"),
            ]));
        if out.status.success() {
            break text(&out);
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(60),
            "caddy never served a certificate curl trusts: {}\n{}",
            text(&out),
            std::fs::read_to_string(dir.join("caddy.log")).unwrap_or_default()
        );
        std::thread::sleep(std::time::Duration::from_millis(500));
    };
    assert!(body.contains("hello from caddy"), "{body}");
    println!(
        "caddy served HTTPS with our certificate after {:?}",
        start.elapsed()
    );
    // The certificate curl accepted is one the server issued to an ACME account.
    let (st, v) = s.curl("GET", "/v1/certificates?limit=100", None);
    assert_eq!(st, 200, "{v}");
    assert!(
        v.to_string().contains("caddy.example.test"),
        "the server has no certificate for caddy.example.test: {v}"
    );
}

#[test]
fn lego_needs_an_eab_key_where_required_and_a_revoked_key_shuts_its_account_out() {
    let http01 = free_port();
    let (s, directory) = acme_server(http01, free_port());
    let eab_directory = directory.replace("/acme/default/", "/acme/eab/");
    let out = s.cli(&[
        "-o",
        "json",
        "acme",
        "eab",
        "create",
        "--provisioner",
        "eab",
        "--name-pattern",
        "*.eab.example.test",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let made: Value = serde_json::from_slice(&out.stdout).expect("json");
    let kid = made["key"]["key_id"].as_str().expect("kid").to_string();
    let hmac = made["hmac_key"].as_str().expect("hmac").to_string();
    assert_eq!(made["directory"], eab_directory.as_str());
    let http = [
        "--http".to_string(),
        "--http.port".into(),
        format!("127.0.0.1:{http01}"),
    ];
    let http: Vec<&str> = http.iter().map(String::as_str).collect();

    // Without a binding: refused.
    let path = s.tmp.path().join("lego-no-eab");
    let out = lego(&s, &path, &eab_directory, "a.eab.example.test", &http);
    assert!(!out.status.success(), "an account without EAB was made");
    // lego reads externalAccountRequired from the directory and stops.
    assert!(
        text(&out).contains("requires External Account Binding"),
        "{}",
        text(&out)
    );

    // With it: the account is made and gets the names its key allows.
    let path = s.tmp.path().join("lego-eab");
    let mut with_eab = vec!["--eab", "--kid", kid.as_str(), "--hmac", hmac.as_str()];
    with_eab.extend_from_slice(&http);
    let out = lego(&s, &path, &eab_directory, "a.eab.example.test", &with_eab);
    assert!(out.status.success(), "lego --eab: {}", text(&out));
    let cert = path.join("certificates/a.eab.example.test.crt");
    let verdict = openssl_verify(&s, &cert, &cert);
    assert!(verdict.contains(": OK"), "{verdict}");

    // The operator sees the account and its order.
    let out = s.cli(&["-o", "json", "acme", "accounts"]);
    assert!(out.status.success(), "{}", text(&out));
    let accounts: Value = serde_json::from_slice(&out.stdout).expect("json");
    let account = accounts["accounts"]
        .as_array()
        .expect("accounts")
        .iter()
        .find(|a| a["eab_key_id"] == kid.as_str())
        .expect("the account made with the key")
        .clone();
    let id = account["id"].as_str().expect("id");
    let out = s.cli(&["-o", "json", "acme", "orders", id]);
    assert!(out.status.success(), "{}", text(&out));
    let orders: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(orders["orders"][0]["status"], "valid", "{orders}");
    assert_eq!(
        orders["orders"][0]["serial"].as_str(),
        Some(serial_of(&cert).as_str())
    );

    // The key binds one account only.
    let path2 = s.tmp.path().join("lego-eab-again");
    let out = lego(&s, &path2, &eab_directory, "b.eab.example.test", &with_eab);
    assert!(
        !out.status.success(),
        "a second account was made with the same EAB key"
    );

    // A name its key does not allow.
    let out = lego(&s, &path, &eab_directory, "a.other.example.test", &with_eab);
    assert!(
        !out.status.success(),
        "a name outside the EAB key's patterns was issued"
    );
    assert!(text(&out).contains("rejectedIdentifier"), "{}", text(&out));

    // Revoked: the account can no longer order.
    let out = s.cli(&["acme", "eab", "revoke", &kid]);
    assert!(out.status.success(), "{}", text(&out));
    let out = lego(&s, &path, &eab_directory, "c.eab.example.test", &with_eab);
    assert!(
        !out.status.success(),
        "an account whose EAB key is revoked still ordered"
    );
    assert!(text(&out).contains("revoked"), "{}", text(&out));
}

/// Debian's pebble (Let's Encrypt's ACME test server) on loopback, with a
/// TLS certificate from our server (so clients trust it through our root),
/// resolving every name to 127.0.0.1 through pebble-challtestsrv, validating
/// http-01 at `http01` and tls-alpn-01 at `alpn`. Returns its directory.
fn start_pebble(s: &Server, http01: u16, alpn: u16) -> (Vec<harness::KillOnDrop>, String) {
    let dir = s.tmp.path().join("pebble");
    std::fs::create_dir_all(&dir).expect("dir");
    let key =
        ca_core::keys::SoftwareKey::generate(ca_core::keys::KeyAlgorithm::EcdsaP256).expect("key");
    let csr = ca_core::csr::create_csr(
        &key,
        &x509_cert::name::Name::default(),
        &[ca_core::names::SanEntry::parse("IP:127.0.0.1").expect("san")],
    )
    .expect("csr");
    let (st, v) = s.curl(
        "POST",
        "/v1/certificates",
        Some(&json!({"csr": ca_core::pem::encode("CERTIFICATE REQUEST", &csr), "ca_id": s.config.issuing_ca_id})),
    );
    assert_eq!(st, 201, "{v}");
    let chain = format!(
        "{}{}",
        v["certificate"].as_str().expect("cert"),
        v["certificate_chain"].as_str().unwrap_or_default()
    );
    std::fs::write(dir.join("cert.pem"), chain).expect("cert");
    std::fs::write(dir.join("key.pem"), key.to_pkcs8_pem().as_bytes()).expect("key");
    let (dns, mgmt, port, pmgmt) = (free_port(), free_port(), free_port(), free_port());
    let chall = Command::new("pebble-challtestsrv")
        .args(["-dns01", &format!("127.0.0.1:{dns}")])
        .args([
            "-http01",
            "",
            "-https01",
            "",
            "-tlsalpn01",
            "",
            "-defaultIPv6",
            "",
        ])
        .args(["-management", &format!("127.0.0.1:{mgmt}")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("pebble-challtestsrv (the test command installs Debian's pebble package)");
    std::fs::write(
        dir.join("pebble.json"),
        json!({"pebble": {
            "listenAddress": format!("127.0.0.1:{port}"),
            "managementListenAddress": format!("127.0.0.1:{pmgmt}"),
            "certificate": dir.join("cert.pem"), "privateKey": dir.join("key.pem"),
            "httpPort": http01, "tlsPort": alpn,
            "ocspResponderURL": "", "externalAccountBindingRequired": false,
        }})
        .to_string(),
    )
    .expect("config");
    let pebble = Command::new("pebble")
        .arg("-config")
        .arg(dir.join("pebble.json"))
        .args(["-dnsserver", &format!("127.0.0.1:{dns}")])
        .env("PEBBLE_VA_NOSLEEP", "1")
        .env("PEBBLE_WFE_NONCEREJECT", "0")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("pebble");
    harness::wait_for_port(port, "pebble");
    (
        vec![harness::KillOnDrop(chall), harness::KillOnDrop(pebble)],
        format!("https://127.0.0.1:{port}/dir"),
    )
}

/// The reference: the same certbot and lego runs pass against pebble, so a
/// difference between it and our server is ours to explain.
#[test]
fn the_same_client_runs_pass_against_pebble() {
    let (http01, alpn) = (free_port(), free_port());
    let (s, _) = acme_server(http01, alpn);
    let (_pebble, directory) = start_pebble(&s, http01, alpn);
    let work = s.tmp.path().join("certbot-pebble");
    let port = http01.to_string();
    let common = [
        "--server",
        directory.as_str(),
        "--standalone",
        "--http-01-port",
        port.as_str(),
        "--http-01-address",
        "127.0.0.1",
    ];
    let mut args = vec![
        "certonly",
        "--agree-tos",
        "-m",
        "ops@example.test",
        "-d",
        "web.example.test",
    ];
    args.extend_from_slice(&common);
    let out = certbot(&s, &work, &args);
    assert!(
        out.status.success(),
        "certbot against pebble: {}",
        text(&out)
    );
    let mut args = vec!["renew", "--force-renewal"];
    args.extend_from_slice(&common);
    let out = certbot(&s, &work, &args);
    assert!(
        out.status.success(),
        "certbot renew against pebble: {}",
        text(&out)
    );
    let cert = work.join("config/live/web.example.test/cert.pem");
    let out = certbot(
        &s,
        &work,
        &[
            "revoke",
            "--server",
            &directory,
            "--cert-path",
            cert.to_str().expect("path"),
            "--no-delete-after-revoke",
        ],
    );
    assert!(
        out.status.success(),
        "certbot revoke against pebble: {}",
        text(&out)
    );
    for (domain, challenge) in [
        (
            "http.example.test",
            vec![
                "--http".to_string(),
                "--http.port".into(),
                format!("127.0.0.1:{http01}"),
            ],
        ),
        (
            "alpn.example.test",
            vec![
                "--tls".to_string(),
                "--tls.port".into(),
                format!("127.0.0.1:{alpn}"),
            ],
        ),
    ] {
        let path = s.tmp.path().join(format!("lego-pebble-{domain}"));
        let args: Vec<&str> = challenge.iter().map(String::as_str).collect();
        let out = lego(&s, &path, &directory, domain, &args);
        assert!(
            out.status.success(),
            "lego {domain} against pebble: {}",
            text(&out)
        );
    }
}
