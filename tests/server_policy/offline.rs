//! The way back in for an operator the API shuts out: `ca-server policy
//! list` and `policy remove` on the stopped server's store.

use crate::harness;
use crate::harness::Server;
use serde_json::json;

fn server_cmd(s: &Server, args: &[&str]) -> std::process::Output {
    harness::run(
        std::process::Command::new(harness::server::server_bin())
            .args(args)
            .arg("--data-dir")
            .arg(&s.dir)
            .env_remove("CA_SERVER_DATA_DIR"),
    )
}

fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A deny on every action for anyone locks the administrator out of the
/// API, policy changes included; the offline removal lets them back in, and
/// the audit trail records it (and still verifies).
#[test]
fn a_lockout_statement_is_removed_offline_and_the_removal_is_audited() {
    let mut s = Server::start_new();
    s.put_policy(
        "lockout",
        json!({"effect": "deny", "principals": ["anyone"],
               "actions": ["administer", "audit", "read"], "cas": ["*"]}),
    );
    let (st, v) = s.curl("GET", "/v1/policies", None);
    assert_eq!((st, harness::code(&v)), (403, "PolicyDenied"), "{v}");
    let (st, v) = s.curl("DELETE", "/v1/policies/lockout", None);
    assert_eq!((st, harness::code(&v)), (403, "PolicyDenied"), "{v}");

    // While the server holds its store, the offline commands are refused
    // and change nothing.
    let o = server_cmd(&s, &["policy", "remove", "lockout"]);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("is locked: the store is open in another process"),
        "{}",
        text(&o)
    );

    s.stop();
    let o = server_cmd(&s, &["policy", "list"]);
    assert!(o.status.success(), "{}", text(&o));
    let listed = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(listed.contains("lockout\t{"), "{listed}");
    assert!(listed.contains("bootstrap-admin\t{"), "{listed}");

    // A mistyped id removes nothing and says what is stored.
    let o = server_cmd(&s, &["policy", "remove", "lockuot"]);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("bootstrap-admin, lockout"),
        "{}",
        text(&o)
    );

    let o = server_cmd(&s, &["policy", "remove", "lockout"]);
    assert!(o.status.success(), "{}", text(&o));
    let o = server_cmd(&s, &["policy", "list"]);
    let listed = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(!listed.contains("lockout"), "{listed}");
    assert!(listed.contains("bootstrap-admin\t{"), "{listed}");

    let log_before = s.log().len();
    s.start();
    // The commands closed the store cleanly: this start repairs nothing.
    assert!(
        !s.log()[log_before..].contains("redb is checking and repairing"),
        "{}",
        s.log()
    );
    let (st, v) = s.curl("GET", "/v1/policies", None);
    assert_eq!(st, 200, "{v}");
    let ids: Vec<&str> = v["statements"]
        .as_array()
        .expect("statements")
        .iter()
        .filter_map(|p| p["id"].as_str())
        .collect();
    assert_eq!(ids, ["bootstrap-admin"], "{v}");
    // One removal (the refused API call is a denied `DeletePolicy`, the
    // mistyped id recorded nothing), naming the command.
    let (st, v) = s.curl(
        "GET",
        "/v1/audit?action=InternalDeletePolicy&limit=1000",
        None,
    );
    assert_eq!(st, 200, "{v}");
    let entries: Vec<_> = v["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter(|e| e["target"] == "lockout" && e["outcome"]["decision"] == "allowed")
        .collect();
    assert_eq!(entries.len(), 1, "{v}");
    let who = entries[0]["identity"]["subject"].as_str().unwrap_or("");
    assert!(who.starts_with("ca-server policy remove (offline"), "{v}");
    s.stop();
    let o = server_cmd(&s, &["audit", "verify"]);
    assert!(o.status.success(), "{}", text(&o));
}

/// A directory with no store is refused, not given an empty one.
#[test]
fn policy_remove_refuses_a_directory_with_no_store() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let o = harness::run(
        std::process::Command::new(harness::server::server_bin())
            .args(["policy", "remove", "x", "--data-dir"])
            .arg(tmp.path()),
    );
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("holds no store"), "{}", text(&o));
    assert_eq!(
        std::fs::read_dir(tmp.path()).expect("dir").count(),
        0,
        "files were made"
    );
}

/// A stored statement this version cannot read keeps the server from
/// starting, and its error names the way out; the offline removal is that
/// way. Two kinds: a deny with an action a newer version knows, and a
/// statement with a field a newer version added.
#[test]
fn an_unreadable_statement_stops_the_start_and_its_offline_removal_lets_the_server_start() {
    use ca_server::store::redb::forensics;
    let mut s = Server::start_new();
    s.stop();
    let unreadable: [(&str, &[u8]); 2] = [
        (
            "newer-action",
            br#"{"effect":"deny","principals":["anyone"],"actions":["teleport"],"cas":["*"]}"#,
        ),
        (
            "newer-field",
            br#"{"effect":"allow","principals":["anyone"],"actions":["read"],"cas":["*"],"since":"2027"}"#,
        ),
    ];
    for (id, statement) in unreadable {
        forensics::set_policy(&s.dir, id, statement).expect("store the statement");
        let mut serve = std::process::Command::new(harness::server::server_bin())
            .args(["serve", "--data-dir"])
            .arg(&s.dir)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn ca-server");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while serve.try_wait().expect("wait").is_none() {
            if std::time::Instant::now() > deadline {
                let _ = serve.kill();
                panic!("the server started with statement {id}");
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let out = serve.wait_with_output().expect("output");
        assert!(!out.status.success(), "{}", text(&out));
        assert!(
            text(&out).contains(&format!("`ca-server policy remove {id}`")),
            "{}",
            text(&out)
        );
        let o = server_cmd(&s, &["policy", "remove", id]);
        assert!(o.status.success(), "{}", text(&o));
    }
    s.start();
    for (id, _) in unreadable {
        let (st, v) = s.curl("GET", &format!("/v1/policies/{id}"), None);
        assert_eq!((st, harness::code(&v)), (404, "NotFound"), "{v}");
    }
}
