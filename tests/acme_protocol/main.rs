//! ACME protocol conformance with the Rust client (`ca_server::acme::client`):
//! a whole order, and requests made wrong on purpose, each answered with the
//! right problem document (and a fresh nonce) and leaving nothing behind.

#[path = "../harness/mod.rs"]
mod harness;

mod accounts;
mod renewal;
mod validation;

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
    let mut a = setup();
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

    // `ca-server check` passes the store with its valid order, and names an
    // order that points at a certificate the store does not hold.
    a.s.stop();
    let (ok, out) = harness::server::store_check(&a.s.dir);
    assert!(ok, "{out}");
    let copy = tempfile::tempdir().expect("tempdir");
    harness::server::copy_data_dir(&a.s.dir, copy.path());
    let ca = a.s.config.issuing_ca_id.clone();
    let orders =
        ca_server::store::redb::forensics::repoint_acme_orders(copy.path(), &ca, "0badbeef")
            .expect("repoint");
    assert_eq!(orders, 1);
    let (ok, out) = harness::server::store_check(copy.path());
    let said = format!("names certificate {ca}/0badbeef, which has no record");
    assert!(!ok && out.contains(&said), "{out}");
    // And names the order's authorization and the account's key once they
    // are gone from their tables.
    let copy = tempfile::tempdir().expect("tempdir");
    harness::server::copy_data_dir(&a.s.dir, copy.path());
    let (authzs, keys) =
        ca_server::store::redb::forensics::drop_acme_links(copy.path()).expect("drop");
    assert!(
        authzs >= 1 && keys >= 1,
        "{authzs} authorizations, {keys} account keys"
    );
    let (ok, out) = harness::server::store_check(copy.path());
    let kid = c
        .kid
        .as_deref()
        .and_then(|k| k.rsplit('/').next())
        .unwrap_or("?");
    for said in [
        "names authorization ".to_string(),
        format!("ACME account {kid}: its key"),
    ] {
        assert!(!ok && out.contains(&said), "{said}: {out}");
    }
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
    let (pem, url, fin) = a.rt.block_on(async {
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
        let pem = c
            .post(&fin, Some(&json!({"csr": b64(&wrong)})))
            .await
            .expect("finalize");
        (pem, url, fin)
    });
    assert_eq!(problem(&pem), "badCSR");
    assert_eq!(a.audited("AcmeFinalize"), 0, "nothing was issued");

    // A CSR with the order's names whose signature does not verify (its
    // last byte, in the signature's s, altered): it does not prove its key,
    // so it is refused (finalize checks the proof once, before the order
    // moves on) and the order stays ready for a CSR that does.
    let (forged, after, done) = a.rt.block_on(async {
        let mut der = ca_server::acme::client::csr_for(&["y.example.test"]).expect("csr");
        if let Some(last) = der.last_mut() {
            *last ^= 0x01;
        }
        let forged = c
            .post(&fin, Some(&json!({"csr": b64(&der)})))
            .await
            .expect("finalize");
        let (_, _, body) = c.post(&url, None).await.expect("order");
        let after: Value = serde_json::from_slice(&body).expect("order");
        let good = ca_server::acme::client::csr_for(&["y.example.test"]).expect("csr");
        c.post(&fin, Some(&json!({"csr": b64(&good)})))
            .await
            .expect("finalize");
        let done = c.poll(&url, &["valid", "invalid"]).await.expect("poll");
        (forged, after, done)
    });
    assert_eq!(problem(&forged), "badCSR");
    assert_eq!(after["status"], "ready", "{after}");
    assert_eq!(done["status"], "valid", "{done}");
    assert_eq!(
        a.audited("AcmeFinalize"),
        1,
        "the good CSR's certificate alone"
    );
}
