//! Where settings come from, and the walk-through run online.

use super::*;

#[test]
fn settings_come_from_flags_environment_or_the_profile() {
    let srv = Server::start_new();
    let root = srv.dir.join("admin/root.pem").display().to_string();

    // --- settings: flags and environment instead of the profile.
    let admin = srv.dir.join("admin");
    let server_url = std::fs::read_to_string(srv.profile_path()).expect("profile");
    let url = server_url
        .lines()
        .find_map(|l| l.strip_prefix("server_url = "))
        .unwrap_or_default()
        .trim_matches('"')
        .to_string();
    ok(srv.cli_env(
        &[
            "ca",
            "list",
            "--server",
            &url,
            "--client-cert",
            &p(&admin, "admin.pem"),
            "--client-key",
            &p(&admin, "admin.key"),
            "--root",
            &root,
        ],
        &[],
    ));
    ok(srv.cli_env(
        &["cert", "list"],
        &[
            ("CA_SERVER", &url),
            ("CA_CLIENT_CERT", &p(&admin, "admin.pem")),
            ("CA_CLIENT_KEY", &p(&admin, "admin.key")),
            ("CA_ROOT", &root),
        ],
    ));
    ok(srv.cli_env(
        &["ca", "list"],
        &[("CA_SERVER_DATA_DIR", srv.dir.to_str().unwrap_or_default())],
    ));
}

#[test]
fn the_walkthrough_runs_online_against_the_real_api() {
    let srv = Server::start_new();
    let root = srv.dir.join("admin/root.pem").display().to_string();
    let admin = srv.dir.join("admin");
    let profile = std::fs::read_to_string(srv.profile_path()).expect("profile");
    let url = profile
        .lines()
        .find_map(|l| l.strip_prefix("server_url = "))
        .unwrap_or_default()
        .trim_matches('"')
        .to_string();

    // --- the walk-through, online: the CA's part through the real API.
    let w = srv.cli(&["walkthrough", "--yes", "--online", "-o", "json"]);
    let v = json(&w);
    assert_eq!(w.status.code(), Some(0), "{v}\n{}", err(&w));
    assert_eq!(v["mode"], "online");
    assert_eq!(v["ok"], true, "{v}");
    let steps = v["steps"].as_array().expect("steps");
    assert_eq!(steps.len(), 8);
    assert_eq!(steps[0]["intermediate_signed_by_root"], true);
    for c in steps[2]["certificates"].as_array().expect("certs") {
        assert_eq!(c["tampered_csr_rejected"], true);
        assert!(
            c["tampered_csr_reason"]
                .as_str()
                .unwrap_or_default()
                .contains("refused"),
            "the server refused it: {c}"
        );
    }
    assert_eq!(steps[3]["rsa"]["chain_valid"], true);
    assert_eq!(steps[3]["p256"]["chain_valid"], true);
    assert_eq!(steps[4]["decrypted_matches"], true);
    assert_eq!(steps[5]["signature_valid"], true);
    for id in ["self_signed", "own_ca", "forged_issuer"] {
        assert_eq!(steps[6][id]["rejected"], true);
    }
    assert_eq!(steps[7]["refused_after_revocation"], true);
    let text = ok(srv.cli(&[
        "walkthrough",
        "--yes",
        "--server",
        &url,
        "--client-cert",
        &p(&admin, "admin.pem"),
        "--client-key",
        &p(&admin, "admin.key"),
        "--root",
        &root,
    ]));
    assert!(out(&text).contains("(online mode)") && out(&text).contains("Every step held"));
}
