//! Health, whoami, aliases, and name constraints.

use super::*;

/// `health` (exit 3 naming the failing check), `whoami`, `alias get` and name
/// constraints on `ca create`, checked against the server and openssl.
#[test]
fn health_whoami_alias_get_and_name_constraints() {
    let mut srv = Server::start_new();
    let h = json(&ok(srv.cli(&["health", "-o", "json"])));
    assert_eq!(h["status"], "ok", "{h}");
    for check in ["store_writable", "ca_keys", "crls_fresh", "ca_expiry"] {
        assert_eq!(h["checks"][check]["ok"], true, "{check}: {h}");
    }
    let t = out(&ok(srv.cli(&["health"])));
    assert!(t.contains("store_writable") && t.contains("ok"), "{t}");

    let t = out(&ok(srv.cli(&["whoami"])));
    assert!(
        t.contains("subject: CN=admin,O=ca-server administrators"),
        "{t}"
    );
    let t = out(&ok(srv.cli(&["alias", "get", "issuing"])));
    assert_eq!(t.trim(), format!("issuing -> {}", srv.config.issuing_ca_id));
    fails(&srv.cli(&["alias", "get", "nothing-here"]), 1, "404");

    let ca = json(&ok(srv.cli(&[
        "ca",
        "create",
        "--type",
        "root",
        "--subject",
        "CN=Constrained Root",
        "--permit-dns",
        "example.com",
        "--exclude-dns",
        "bad.example.com",
        "--permit-ip",
        "10.0.0.0/8",
        "--ocsp",
        "false",
        "-o",
        "json",
    ])));
    let id = ca["id"].as_str().expect("id");
    assert_eq!(ca["ocsp"], false, "{ca}");
    let pem = srv.tmp.path().join("constrained.pem");
    let out_pem = ok(srv.cli(&["ca", "describe", id, "-o", "json"]));
    assert_eq!(json(&out_pem)["id"], id);
    let got = harness::run(std::process::Command::new("curl").args([
        "-sS",
        "-o",
        &pem.display().to_string(),
        &format!("http://{}/ca/{id}.pem", srv.public),
    ]));
    assert!(got.status.success());
    let t = harness::text(&harness::run(std::process::Command::new("openssl").args([
        "x509",
        "-in",
        &pem.display().to_string(),
        "-noout",
        "-ext",
        "nameConstraints",
    ])));
    assert!(
        t.contains("Permitted:") && t.contains("DNS:example.com"),
        "{t}"
    );
    assert!(t.contains("IP:10.0.0.0/255.0.0.0"), "{t}");
    assert!(
        t.contains("Excluded:") && t.contains("DNS:bad.example.com"),
        "{t}"
    );

    // A root inside the expiry horizon (10 years, within 4000 days) fails
    // health: exit 3, naming the check.
    srv.stop();
    let conf = srv.dir.join("config.toml");
    let c = std::fs::read_to_string(&conf).expect("config");
    assert!(c.contains("ca_expiry_horizon_days = 30"), "{c}");
    std::fs::write(
        &conf,
        c.replace(
            "ca_expiry_horizon_days = 30",
            "ca_expiry_horizon_days = 4000",
        ),
    )
    .expect("config");
    srv.start();
    let o = srv.cli(&["health"]);
    assert_eq!(o.status.code(), Some(3), "{}{}", out(&o), err(&o));
    assert!(out(&o).contains("ca_expiry       FAIL"), "{}", out(&o));
    assert!(
        err(&o).contains("failing health checks: ca_expiry"),
        "{}",
        err(&o)
    );
}
