//! Validation: dns-01 against pebble-challtestsrv, many names whose
//! validations interleave, http-01 redirects.

use super::*;

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
