//! ACME protocol conformance with the Rust client (`ca_server::acme::client`):
//! a whole order, and requests made wrong on purpose, each answered with the
//! right problem document (and a fresh nonce) and leaving nothing behind.

mod harness;

use ca_server::acme::client::{AcmeClient, Responder};
use ca_server::acme::jws::b64;
use harness::{free_port, Server};
use serde_json::{json, Value};

struct Acme {
    s: Server,
    directory: String,
    responder: Responder,
    rt: tokio::runtime::Runtime,
}

/// A server with ACME and a Rust http-01 responder on loopback.
fn setup() -> Acme {
    setup_with_dns(None)
}

/// The same, asking `dns_resolver` (IP:port) for dns-01.
fn setup_with_dns(dns_resolver: Option<&str>) -> Acme {
    let http01 = free_port();
    let (s, directory) = harness::acme::acme_server(&harness::acme::AcmePorts {
        http01,
        tls_alpn01: free_port(),
        dns_resolver: dns_resolver.map(str::to_string),
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let responder = Responder::default();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind(("127.0.0.1", http01)))
        .expect("responder port");
    rt.spawn(responder.clone().serve(listener));
    Acme {
        directory,
        s,
        responder,
        rt,
    }
}

impl Acme {
    fn client(&self) -> AcmeClient {
        let root = std::fs::read(self.s.root_pem()).expect("root");
        let tls = ca_server::api::client::client_config(&root, None, None).expect("tls");
        self.rt
            .block_on(AcmeClient::connect(&self.directory, tls))
            .expect("connect")
    }

    fn account(&self) -> AcmeClient {
        let mut c = self.client();
        self.rt.block_on(c.new_account()).expect("account");
        c
    }

    /// How many audit entries of `action` the trail holds.
    fn audited(&self, action: &str) -> usize {
        let (st, v) = self.s.curl(
            "GET",
            &format!("/v1/audit?action={action}&limit=1000"),
            None,
        );
        assert_eq!(st, 200, "{v}");
        v["entries"].as_array().map_or(0, Vec::len)
    }
}

/// The problem type of an answer (after `urn:ietf:params:acme:error:`).
fn problem(a: &(u16, hyper::HeaderMap, hyper::body::Bytes)) -> String {
    let v: Value = serde_json::from_slice(&a.2).unwrap_or(Value::Null);
    assert_eq!(
        a.1.get("content-type").and_then(|v| v.to_str().ok()),
        Some("application/problem+json"),
        "{v}"
    );
    assert!(
        a.1.get("replay-nonce").is_some(),
        "every answer carries a nonce"
    );
    v["type"]
        .as_str()
        .unwrap_or_default()
        .trim_start_matches("urn:ietf:params:acme:error:")
        .to_string()
}

#[test]
fn a_rust_client_completes_an_order_and_the_chain_verifies() {
    let a = setup();
    let mut c = a.account();
    let pem =
        a.rt.block_on(c.obtain(&["one.example.test", "two.example.test"], &a.responder))
            .expect("obtain");
    assert_eq!(
        pem.matches("BEGIN CERTIFICATE").count(),
        2,
        "leaf and issuing CA: {pem}"
    );
    // The account lists its order.
    let orders_url = format!("{}/orders", c.kid.clone().expect("kid"));
    let (st, _, body) = a.rt.block_on(c.post(&orders_url, None)).expect("orders");
    assert_eq!(st, 200);
    let listed: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(
        listed["orders"].as_array().map(Vec::len),
        Some(1),
        "{listed}"
    );
    let dir = a.s.tmp.path();
    std::fs::write(dir.join("acme-chain.pem"), &pem).expect("write");
    let out = harness::run(
        std::process::Command::new("openssl")
            .args(["verify", "-CAfile"])
            .arg(a.s.root_pem())
            .arg("-untrusted")
            .arg(dir.join("acme-chain.pem"))
            .arg(dir.join("acme-chain.pem")),
    );
    assert!(
        harness::text(&out).contains(": OK"),
        "{}",
        harness::text(&out)
    );

    // The same key finds its account again; onlyReturnExisting with a new
    // key finds none.
    let url = c.url("newAccount");
    let again =
        a.rt.block_on(async {
            let kid = c.kid.take();
            let r = c
                .post(&url, Some(&json!({"onlyReturnExisting": true})))
                .await;
            c.kid = kid;
            r
        })
        .expect("post");
    assert_eq!(again.0, 200);
    assert_eq!(
        again.1.get("location").and_then(|v| v.to_str().ok()),
        c.kid.as_deref()
    );
    let mut fresh = a.client();
    let url = fresh.url("newAccount");
    let none =
        a.rt.block_on(fresh.post(&url, Some(&json!({"onlyReturnExisting": true}))))
            .expect("post");
    assert_eq!(problem(&none), "accountDoesNotExist");
}

#[test]
fn requests_made_wrong_get_the_right_problem_and_change_nothing() {
    let a = setup();
    let mut c = a.account();
    let new_order = c.url("newOrder");
    let accounts_before = a.audited("AcmeNewAccount");
    let orders_before = a.audited("AcmeNewOrder");
    let order = json!({"identifiers": [{"type": "dns", "value": "x.example.test"}]});

    let r = a.rt.block_on(async {
        let mut out = Vec::new();
        // Not a JWS at all.
        out.push((
            "malformed",
            c.post_jws(&new_order, b"{not json".to_vec()).await,
        ));
        // A nonce the server never gave, then one used already.
        let h = c.header(&new_order, "bm90LWEtbm9uY2U");
        let j = c.jws(&h, Some(&order)).expect("jws");
        out.push(("badNonce", c.post_jws(&new_order, j).await));
        let n = c.nonce().await.expect("nonce");
        let j = c
            .jws(&c.header(&new_order, &n), Some(&json!({"identifiers": []})))
            .expect("jws");
        let _ = c.post_jws(&new_order, j.clone()).await;
        out.push(("badNonce", c.post_jws(&new_order, j).await));
        // Signed for another URL.
        let n = c.nonce().await.expect("nonce");
        let other = c.url("revokeCert");
        let j = c.jws(&c.header(&other, &n), Some(&order)).expect("jws");
        out.push(("unauthorized", c.post_jws(&new_order, j).await));
        // kid and jwk together; neither.
        let n = c.nonce().await.expect("nonce");
        let mut h = c.header(&new_order, &n);
        h["jwk"] = c.jwk.clone();
        let j = c.jws(&h, Some(&order)).expect("jws");
        out.push(("malformed", c.post_jws(&new_order, j).await));
        let n = c.nonce().await.expect("nonce");
        let j = c
            .jws(
                &json!({"alg": "ES256", "nonce": n, "url": new_order}),
                Some(&order),
            )
            .expect("jws");
        out.push(("malformed", c.post_jws(&new_order, j).await));
        // Signed by another key than the account's.
        let root = std::fs::read(a.s.root_pem()).expect("root");
        let tls = ca_server::api::client::client_config(&root, None, None).expect("tls");
        let stranger = AcmeClient::connect(&a.directory, tls)
            .await
            .expect("connect");
        let n = c.nonce().await.expect("nonce");
        let j = stranger
            .jws(&c.header(&new_order, &n), Some(&order))
            .expect("jws");
        out.push(("malformed", c.post_jws(&new_order, j).await));
        // An unknown algorithm.
        let n = c.nonce().await.expect("nonce");
        let mut h = c.header(&new_order, &n);
        h["alg"] = json!("HS256");
        let j = c.jws(&h, Some(&order)).expect("jws");
        out.push(("badSignatureAlgorithm", c.post_jws(&new_order, j).await));
        // A body over the limit.
        let n = c.nonce().await.expect("nonce");
        let big = json!({"identifiers": [{"type": "dns", "value": "a".repeat(70_000)}]});
        let j = c.jws(&c.header(&new_order, &n), Some(&big)).expect("jws");
        out.push(("malformed", c.post_jws(&new_order, j).await));
        // A name outside the policy; an IP identifier; a wildcard of a wildcard.
        for (want, v) in [
            (
                "rejectedIdentifier",
                json!([{"type": "dns", "value": "x.other.test"}]),
            ),
            (
                "unsupportedIdentifier",
                json!([{"type": "ip", "value": "127.0.0.1"}]),
            ),
            (
                "rejectedIdentifier",
                json!([{"type": "dns", "value": "*.*.example.test"}]),
            ),
        ] {
            out.push((
                want,
                c.post(&new_order, Some(&json!({"identifiers": v}))).await,
            ));
        }
        out
    });
    for (want, answer) in r {
        let answer = answer.expect("answer");
        assert_eq!(
            problem(&answer),
            want,
            "{}",
            String::from_utf8_lossy(&answer.2)
        );
    }
    assert_eq!(
        a.audited("AcmeNewAccount"),
        accounts_before,
        "no account was made"
    );
    // The refused name was audited; nothing else made an order.
    assert_eq!(a.audited("AcmeNewOrder"), orders_before + 1);

    // Finalize before the order is ready; a CSR whose names differ.
    let (order_url, order) = a.rt.block_on(async {
        let (st, h, body) = c.post(&new_order, Some(&order)).await.expect("order");
        assert_eq!(st, 201, "{}", String::from_utf8_lossy(&body));
        let url = h
            .get("location")
            .and_then(|v| v.to_str().ok())
            .expect("location")
            .to_string();
        (url, serde_json::from_slice::<Value>(&body).expect("order"))
    });
    let fin = order["finalize"].as_str().expect("finalize").to_string();
    let csr = ca_server::acme::client::csr_for(&["x.example.test"]).expect("csr");
    let early =
        a.rt.block_on(c.post(&fin, Some(&json!({"csr": b64(&csr)}))))
            .expect("finalize");
    assert_eq!(problem(&early), "orderNotReady");

    // Another account cannot read it.
    let mut other = a.account();
    let foreign = a.rt.block_on(other.post(&order_url, None)).expect("get");
    assert_eq!((foreign.0, problem(&foreign).as_str()), (404, "malformed"));

    // The responder answers the wrong key authorization: invalid, and said why.
    let authz_url = order["authorizations"][0]
        .as_str()
        .expect("authz")
        .to_string();
    let status = a.rt.block_on(async {
        let (_, _, body) = c.post(&authz_url, None).await.expect("authz");
        let authz: Value = serde_json::from_slice(&body).expect("authz");
        let ch = authz["challenges"]
            .as_array()
            .and_then(|cs| cs.iter().find(|x| x["type"] == "http-01"))
            .expect("http-01")
            .clone();
        let token = ch["token"].as_str().expect("token");
        a.responder.put(token, &format!("{token}.not-this-account"));
        c.post(ch["url"].as_str().expect("url"), Some(&json!({})))
            .await
            .expect("challenge");
        c.poll(&order_url, &["invalid", "ready"])
            .await
            .expect("poll")
    });
    assert_eq!(status["status"], "invalid", "{status}");
    assert!(
        status["error"]["type"]
            .as_str()
            .unwrap_or_default()
            .ends_with("incorrectResponse"),
        "{status}"
    );

    // A CSR whose names differ from a ready order's.
    let pem = a.rt.block_on(async {
        let ready_order = json!({"identifiers": [{"type": "dns", "value": "y.example.test"}]});
        let (_, h, body) = c.post(&new_order, Some(&ready_order)).await.expect("order");
        let url = h
            .get("location")
            .and_then(|v| v.to_str().ok())
            .expect("location")
            .to_string();
        let o: Value = serde_json::from_slice(&body).expect("order");
        let az = o["authorizations"][0].as_str().expect("authz").to_string();
        let (_, _, body) = c.post(&az, None).await.expect("authz");
        let authz: Value = serde_json::from_slice(&body).expect("authz");
        let ch = authz["challenges"]
            .as_array()
            .and_then(|cs| cs.iter().find(|x| x["type"] == "http-01"))
            .expect("http-01")
            .clone();
        let token = ch["token"].as_str().expect("token");
        a.responder
            .put(token, &format!("{token}.{}", c.thumbprint()));
        c.post(ch["url"].as_str().expect("url"), Some(&json!({})))
            .await
            .expect("challenge");
        let o = c.poll(&url, &["ready", "invalid"]).await.expect("poll");
        assert_eq!(o["status"], "ready", "{o}");
        let fin = o["finalize"].as_str().expect("finalize").to_string();
        let wrong =
            ca_server::acme::client::csr_for(&["y.example.test", "z.example.test"]).expect("csr");
        c.post(&fin, Some(&json!({"csr": b64(&wrong)})))
            .await
            .expect("finalize")
    });
    assert_eq!(problem(&pem), "badCSR");
    assert_eq!(a.audited("AcmeFinalize"), 0, "nothing was issued");
}

#[test]
fn an_account_moves_to_a_new_key_and_the_old_one_stops_working() {
    let a = setup();
    let mut c = a.account();
    let kid = c.kid.clone().expect("kid");
    let old_jwk = c.jwk.clone();
    // A request signed with the old key, sent after the change.
    let signed_before = a.rt.block_on(async {
        let n = c.nonce().await.expect("nonce");
        c.jws(&c.header(&kid, &n), None).expect("jws")
    });
    let answer = a.rt.block_on(c.change_key()).expect("keyChange");
    assert_eq!(answer.0, 200, "{}", String::from_utf8_lossy(&answer.2));
    assert_ne!(c.jwk, old_jwk);
    let late =
        a.rt.block_on(c.post_jws(&kid, signed_before))
            .expect("post");
    assert_eq!(
        problem(&late),
        "malformed",
        "the old key no longer signs for the account"
    );
    // The new key works: it finds its account and gets certificates.
    let pem =
        a.rt.block_on(c.obtain(&["moved.example.test"], &a.responder))
            .expect("obtain with the new key");
    assert!(pem.contains("BEGIN CERTIFICATE"));
    let url = c.url("newAccount");
    let found = a.rt.block_on(async {
        c.kid = None;
        let r = c
            .post(&url, Some(&json!({"onlyReturnExisting": true})))
            .await;
        c.kid = Some(kid.clone());
        r
    });
    let found = found.expect("post");
    assert_eq!(
        found.1.get("location").and_then(|v| v.to_str().ok()),
        Some(kid.as_str())
    );
    assert_eq!(a.audited("AcmeKeyChange"), 1);
    // A second account cannot take a key another account has.
    let mut other = a.account();
    let stolen = a.rt.block_on(async {
        let url = other.url("keyChange");
        let nonce = other.nonce().await.expect("nonce");
        // The inner JWS is signed by c's current key, claiming to move
        // `other` onto it.
        let inner: Value = serde_json::from_slice(
            &c.jws(
                &json!({"alg": "ES256", "jwk": c.jwk, "url": url}),
                Some(&json!({"account": other.kid, "oldKey": other.jwk})),
            )
            .expect("inner"),
        )
        .expect("json");
        let outer = other
            .jws(&other.header(&url, &nonce), Some(&inner))
            .expect("outer");
        other.post_jws(&url, outer).await.expect("post")
    });
    assert_eq!(stolen.0, 409, "{}", String::from_utf8_lossy(&stolen.2));
    assert_eq!(
        stolen.1.get("location").and_then(|v| v.to_str().ok()),
        Some(kid.as_str())
    );
}

/// pebble-challtestsrv (Debian's pebble package): a DNS server whose TXT
/// records the test sets over HTTP.
struct ChallTestSrv {
    _child: harness::KillOnDrop,
    dns: String,
    management: String,
}

impl ChallTestSrv {
    fn start() -> ChallTestSrv {
        let (dns, management) = (free_port(), free_port());
        let child = std::process::Command::new("pebble-challtestsrv")
            .args(["-dns01", &format!("127.0.0.1:{dns}")])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            .args(["-management", &format!("127.0.0.1:{management}")])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("pebble-challtestsrv (the test command installs Debian's pebble package)");
        let srv = ChallTestSrv {
            _child: harness::KillOnDrop(child),
            dns: format!("127.0.0.1:{dns}"),
            management: format!("http://127.0.0.1:{management}"),
        };
        harness::wait_for_port(management, "pebble-challtestsrv");
        srv
    }

    fn set_txt(&self, host: &str, value: &str) {
        let out = harness::run(std::process::Command::new("curl").args([
            "-sS",
            "-f",
            "-d",
            &json!({"host": format!("{host}."), "value": value}).to_string(),
            &format!("{}/set-txt", self.management),
        ]));
        assert!(out.status.success(), "set-txt: {}", harness::text(&out));
    }
}

#[test]
fn dns01_proves_a_wildcard_and_a_missing_record_fails_the_order() {
    let dns = ChallTestSrv::start();
    let a = setup_with_dns(Some(&dns.dns));
    // Wildcards are names of their own to the policy, and one statement
    // must allow every name of an order.
    let issuing = a.s.config.issuing_ca_id.clone();
    a.s.put_policy(
        "acme-wildcards",
        json!({
            "effect": "allow",
            "principals": [{"uri": "acme:default/*"}],
            "actions": ["issue"],
            "cas": [issuing],
            "conditions": {"name_patterns": ["*.example.test", "*.wild.example.test", "*.only.example.test"]},
        }),
    );
    let mut c = a.account();
    let solve = |identifier: &str, _token: &str, key_authorization: &str| {
        let digest =
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, key_authorization.as_bytes());
        dns.set_txt(
            &format!("_acme-challenge.{identifier}"),
            &b64(digest.as_ref()),
        );
    };
    let pem =
        a.rt.block_on(c.obtain_with(
            &["*.wild.example.test", "wild.example.test"],
            "dns-01",
            &solve,
        ))
        .expect("obtain with dns-01");
    let path = a.s.tmp.path().join("wild.pem");
    std::fs::write(&path, &pem).expect("write");
    let out = harness::run(
        std::process::Command::new("openssl")
            .args(["x509", "-noout", "-ext", "subjectAltName", "-in"])
            .arg(&path),
    );
    let sans = harness::text(&out);
    assert!(
        sans.contains("DNS:*.wild.example.test") && sans.contains("DNS:wild.example.test"),
        "{sans}"
    );

    // A wildcard is offered dns-01 only.
    let order = a.rt.block_on(async {
        let url = c.url("newOrder");
        let (st, _, body) = c
            .post(
                &url,
                Some(&json!({"identifiers": [{"type": "dns", "value": "*.only.example.test"}]})),
            )
            .await
            .expect("order");
        assert_eq!(st, 201);
        serde_json::from_slice::<Value>(&body).expect("order")
    });
    let authz_url = order["authorizations"][0]
        .as_str()
        .expect("authz")
        .to_string();
    let (_, _, body) = a.rt.block_on(c.post(&authz_url, None)).expect("authz");
    let authz: Value = serde_json::from_slice(&body).expect("authz");
    assert_eq!(authz["wildcard"], true, "{authz}");
    assert_eq!(authz["identifier"]["value"], "only.example.test", "{authz}");
    let kinds: Vec<&str> = authz["challenges"]
        .as_array()
        .expect("challenges")
        .iter()
        .filter_map(|c| c["type"].as_str())
        .collect();
    assert_eq!(kinds, ["dns-01"], "{authz}");

    // No TXT record: the order fails and says where it looked.
    let failed =
        a.rt.block_on(c.obtain_with(&["missing.example.test"], "dns-01", &|_, _, _| {}));
    let e = failed.expect_err("no record, no certificate");
    assert!(e.contains("_acme-challenge.missing.example.test"), "{e}");
}

#[test]
fn external_account_binding_is_checked_by_the_server() {
    let a = setup();
    let eab_dir = a.directory.replace("/acme/default/", "/acme/eab/");
    let out = a.s.cli(&[
        "-o",
        "json",
        "acme",
        "eab",
        "create",
        "--provisioner",
        "eab",
    ]);
    assert!(out.status.success(), "{}", harness::text(&out));
    let made: Value = serde_json::from_slice(&out.stdout).expect("json");
    let kid = made["key"]["key_id"].as_str().expect("kid").to_string();
    let hmac = made["hmac_key"].as_str().expect("hmac").to_string();
    let root = std::fs::read(a.s.root_pem()).expect("root");
    let tls = ca_server::api::client::client_config(&root, None, None).expect("tls");
    let connect = || {
        a.rt.block_on(AcmeClient::connect(&eab_dir, tls.clone()))
            .expect("connect")
    };
    let mut c = connect();
    assert_eq!(c.directory["meta"]["externalAccountRequired"], true);
    // None, a wrong MAC key, an unknown key id: refused, nothing made.
    let url = c.url("newAccount");
    let none =
        a.rt.block_on(c.post(&url, Some(&json!({"termsOfServiceAgreed": true}))))
            .expect("post");
    assert_eq!(problem(&none), "externalAccountRequired");
    let wrong =
        a.rt.block_on(c.new_account_with_eab(&kid, &b64(&[7u8; 32])))
            .expect("post");
    assert_eq!(problem(&wrong), "unauthorized");
    let unknown =
        a.rt.block_on(c.new_account_with_eab("eab-0000000000000000", &hmac))
            .expect("post");
    assert_eq!(problem(&unknown), "unauthorized");
    // The right one binds; the same key cannot bind a second account.
    let ok =
        a.rt.block_on(c.new_account_with_eab(&kid, &hmac))
            .expect("post");
    assert_eq!(ok.0, 201, "{}", String::from_utf8_lossy(&ok.2));
    let mut second = connect();
    let again =
        a.rt.block_on(second.new_account_with_eab(&kid, &hmac))
            .expect("post");
    assert_eq!(problem(&again), "unauthorized");
    assert_eq!(a.audited("AcmeNewAccount"), 1);
}

/// RFC 9773's certID of a PEM certificate: base64url(AKI).base64url(serial).
fn cert_id(pem: &str) -> String {
    use der::{Decode, Encode};
    let der = ca_core::pem::decode_all("CERTIFICATE", pem)
        .expect("pem")
        .remove(0);
    let cert = x509_cert::Certificate::from_der(&der).expect("cert");
    let (_, aki) = cert
        .tbs_certificate
        .get::<x509_cert::ext::pkix::AuthorityKeyIdentifier>()
        .expect("aki")
        .expect("aki");
    let serial = cert.tbs_certificate.serial_number.to_der().expect("serial");
    // The INTEGER's content octets (after tag and length).
    let content = &serial[2..];
    format!(
        "{}.{}",
        b64(aki.key_identifier.expect("key id").as_bytes()),
        b64(content)
    )
}

#[test]
fn renewal_information_suggests_a_window_and_now_once_revoked() {
    let a = setup();
    let mut c = a.account();
    let pem =
        a.rt.block_on(c.obtain(&["ari.example.test"], &a.responder))
            .expect("obtain");
    let id = cert_id(&pem);
    let url = format!("{}/{id}", c.url("renewalInfo"));
    let ask = |c: &mut AcmeClient| {
        a.rt.block_on(c.send(hyper::Method::GET, &url, None))
            .expect("renewalInfo")
    };
    let (st, h, body) = ask(&mut c);
    assert_eq!(st, 200, "{}", String::from_utf8_lossy(&body));
    assert!(
        h.get("retry-after").is_some(),
        "Retry-After tells when to ask again"
    );
    let v: Value = serde_json::from_slice(&body).expect("json");
    let t = |s: &Value| {
        time::OffsetDateTime::parse(
            s.as_str().expect("time"),
            &time::format_description::well_known::Rfc3339,
        )
        .expect("RFC 3339")
    };
    let (start, end) = (
        t(&v["suggestedWindow"]["start"]),
        t(&v["suggestedWindow"]["end"]),
    );
    let now = time::OffsetDateTime::now_utc();
    assert!(now < start && start < end, "a window ahead: {v}");

    // An order may say which certificate it replaces; another account's is refused.
    let order =
        json!({"identifiers": [{"type": "dns", "value": "ari.example.test"}], "replaces": id});
    let new_order = c.url("newOrder");
    let (st, _, body) =
        a.rt.block_on(c.post(&new_order, Some(&order)))
            .expect("order");
    assert_eq!(st, 201, "{}", String::from_utf8_lossy(&body));
    let mut other = a.account();
    let refused =
        a.rt.block_on(other.post(&new_order, Some(&order)))
            .expect("order");
    assert_eq!(problem(&refused), "unauthorized");

    // Revoked: renew now.
    let serial = {
        use der::Decode;
        let der = ca_core::pem::decode_all("CERTIFICATE", &pem)
            .expect("pem")
            .remove(0);
        let cert = x509_cert::Certificate::from_der(&der).expect("cert");
        ca_core::hex::encode(cert.tbs_certificate.serial_number.as_bytes())
    };
    let (st, v) = harness::relying::revoke(&a.s, serial.trim_start_matches("00"), "SUPERSEDED");
    assert_eq!(st, 200, "{v}");
    let (_, _, body) = ask(&mut c);
    let v: Value = serde_json::from_slice(&body).expect("json");
    assert!(
        t(&v["suggestedWindow"]["start"]) <= time::OffsetDateTime::now_utc(),
        "{v}"
    );

    // Not ours: 404.
    let bogus = format!(
        "{}/{}.{}",
        c.url("renewalInfo"),
        b64(b"nope"),
        b64(&[1, 2, 3])
    );
    let (st, _, _) =
        a.rt.block_on(c.send(hyper::Method::GET, &bogus, None))
            .expect("renewalInfo");
    assert_eq!(st, 404);
}

#[test]
fn orders_past_the_hourly_limit_are_refused_with_retry_after() {
    let mut a = setup();
    a.s.stop();
    let config = a.s.dir.join("config.toml");
    let text = std::fs::read_to_string(&config).expect("config");
    let tuned = text.replace(
        "orders_per_account_per_hour = 1000",
        "orders_per_account_per_hour = 2",
    );
    assert_ne!(tuned, text);
    std::fs::write(&config, tuned).expect("config");
    a.s.start();
    let port: u16 = a
        .directory
        .split(':')
        .nth(2)
        .and_then(|p| p.split('/').next())
        .and_then(|p| p.parse().ok())
        .expect("port");
    harness::wait_for_port(port, "ACME listener");
    let mut c = a.account();
    let url = c.url("newOrder");
    let order = json!({"identifiers": [{"type": "dns", "value": "busy.example.test"}]});
    for _ in 0..2 {
        let (st, _, body) = a.rt.block_on(c.post(&url, Some(&order))).expect("order");
        assert_eq!(st, 201, "{}", String::from_utf8_lossy(&body));
    }
    let third = a.rt.block_on(c.post(&url, Some(&order))).expect("order");
    assert_eq!(third.0, 429);
    assert_eq!(problem(&third), "rateLimited");
    assert!(third.1.get("retry-after").is_some());
    // Another account has its own allowance.
    let mut other = a.account();
    let (st, _, _) =
        a.rt.block_on(other.post(&url, Some(&order)))
            .expect("order");
    assert_eq!(st, 201);

    // A directory-wide limit holds across accounts.
    a.s.stop();
    let text = std::fs::read_to_string(&config).expect("config");
    let tuned = text.replace(
        "name = \"default\"\n",
        "name = \"default\"\norders_per_hour = 3\n",
    );
    assert_ne!(tuned, text);
    std::fs::write(&config, tuned).expect("config");
    a.s.start();
    harness::wait_for_port(port, "ACME listener");
    let mut answers = Vec::new();
    for _ in 0..4 {
        let mut c = a.account();
        answers.push(a.rt.block_on(c.post(&url, Some(&order))).expect("order").0);
    }
    assert_eq!(
        answers,
        [201, 201, 201, 429],
        "three orders an hour through the directory"
    );
}

#[test]
fn revocation_by_the_certificate_key_or_the_account_and_deactivation() {
    let a = setup();
    let mut c = a.account();
    let (pem, key, jwk) =
        a.rt.block_on(c.obtain_keeping_key(&["rk.example.test"], &a.responder))
            .expect("obtain");
    let der = ca_core::pem::decode_all("CERTIFICATE", &pem)
        .expect("pem")
        .remove(0);
    // Another account may not revoke it; an unknown reason is refused.
    let mut stranger = a.account();
    let r =
        a.rt.block_on(stranger.revoke(&der, 0, None))
            .expect("revoke");
    assert_eq!(problem(&r), "unauthorized");
    let r = a.rt.block_on(c.revoke(&der, 7, None)).expect("revoke");
    assert_eq!(problem(&r), "badRevocationReason");
    // Signed by the key of another certificate: refused.
    let (_, other_key, other_jwk) =
        a.rt.block_on(stranger.obtain_keeping_key(&["other.example.test"], &a.responder))
            .expect("obtain");
    let r =
        a.rt.block_on(stranger.revoke(&der, 1, Some((&other_key, &other_jwk))))
            .expect("revoke");
    assert_eq!(problem(&r), "unauthorized");
    // Signed by the certificate's own key (no account): revoked.
    let r =
        a.rt.block_on(stranger.revoke(&der, 1, Some((&key, &jwk))))
            .expect("revoke");
    assert_eq!(r.0, 200, "{}", String::from_utf8_lossy(&r.2));
    let serial = {
        use der::Decode;
        let cert = x509_cert::Certificate::from_der(&der).expect("cert");
        ca_core::hex::encode(cert.tbs_certificate.serial_number.as_bytes())
    };
    let (st, v) = a.s.curl(
        "GET",
        &format!("/v1/certificates/{}", serial.trim_start_matches("00")),
        None,
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["status"], "REVOKED", "{v}");
    let again = a.rt.block_on(c.revoke(&der, 0, None)).expect("revoke");
    assert_eq!(problem(&again), "alreadyRevoked");

    // A deactivated account can do nothing more.
    let kid = c.kid.clone().expect("kid");
    let r =
        a.rt.block_on(c.post(&kid, Some(&json!({"status": "deactivated"}))))
            .expect("deactivate");
    assert_eq!(r.0, 200);
    let url = c.url("newOrder");
    let r =
        a.rt.block_on(c.post(
            &url,
            Some(&json!({"identifiers": [{"type": "dns", "value": "late.example.test"}]})),
        ))
        .expect("order");
    assert_eq!(problem(&r), "unauthorized");
    assert_eq!(a.audited("AcmeDeactivateAccount"), 1);
}

/// Many names in one order are validated at once: the order still becomes
/// ready (a race once left it pending when two validations finished together).
#[test]
fn orders_of_many_names_become_ready_however_their_validations_interleave() {
    let a = setup();
    // Every validation of an order is answered at the same moment.
    a.responder.gather(8);
    let mut c = a.account();
    for round in 0..5 {
        let names: Vec<String> = (0..8)
            .map(|i| format!("n{i}-{round}.example.test"))
            .collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let pem =
            a.rt.block_on(c.obtain(&names, &a.responder))
                .unwrap_or_else(|e| panic!("round {round}: {e}"));
        assert!(pem.contains("BEGIN CERTIFICATE"));
    }
}

#[test]
fn http01_follows_redirects_within_the_validation_ports_only() {
    let a = setup();
    let mut c = a.account();
    // A relative redirect on the same origin is followed.
    a.responder.redirect(Some("/moved/"));
    a.rt.block_on(c.obtain(&["redir.example.test"], &a.responder))
        .expect("a redirected challenge validates");
    // Nor to another host (SSRF), even on the validation port.
    a.responder.redirect(Some("http://169.254.169.254/moved/"));
    let e =
        a.rt.block_on(c.obtain(&["redir3.example.test"], &a.responder))
            .expect_err("redirect to another host");
    assert!(e.contains("another host"), "{e}");
    // A redirect to another port is not.
    let other = free_port();
    a.responder
        .redirect(Some(&format!("http://redir2.example.test:{other}/moved/")));
    let e =
        a.rt.block_on(c.obtain(&["redir2.example.test"], &a.responder))
            .expect_err("redirect to another port");
    assert!(e.contains("validation ports"), "{e}");
    // A loop is cut off.
    a.responder.redirect(Some("/.well-known/acme-challenge/"));
    let e =
        a.rt.block_on(c.obtain(&["loop.example.test"], &a.responder))
            .expect_err("redirect loop");
    assert!(e.contains("redirects"), "{e}");
}
