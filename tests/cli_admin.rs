//! ca-cli's policy, audit and alias commands against the real ca-server.

use std::process::Output;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

mod harness;
use harness::Server;

fn ok(o: Output) -> String {
    assert!(
        o.status.success(),
        "ca-cli failed: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn policy_audit_and_alias_commands() {
    let s = Server::start_new();
    let list = ok(s.cli(&["policy", "list"]));
    assert!(list.contains("bootstrap-admin"), "{list}");
    let file = s.home.join("readers.json");
    std::fs::write(
        &file,
        r#"{"effect": "allow", "principals": [{"subject": "CN=reader*"}], "actions": ["read"], "cas": ["*"]}"#,
    )
    .expect("write");
    ok(s.cli(&[
        "policy",
        "put",
        "readers",
        "--file",
        file.to_str().unwrap_or_default(),
    ]));
    let v: Value = serde_json::from_str(&ok(s.cli(&["-o", "json", "policy", "get", "readers"])))
        .expect("json");
    assert_eq!(v["effect"], "allow");
    ok(s.cli(&["policy", "delete", "readers"]));
    // The tool's own failure (1), with the server's stable code in the JSON
    // error envelope; a usage error is 2.
    let gone = s.cli(&["-o", "json", "policy", "get", "readers"]);
    assert_eq!(gone.status.code(), Some(1));
    let envelope: Value =
        serde_json::from_slice(&gone.stderr).expect("JSON error envelope on stderr");
    assert_eq!(
        (
            &envelope["code"],
            &envelope["status"],
            &envelope["exit_code"]
        ),
        (&json!("NotFound"), &json!(404), &json!(1)),
        "{envelope}"
    );
    let usage = s.cli(&["policy", "get"]);
    assert_eq!(usage.status.code(), Some(2));

    let aliases = ok(s.cli(&["alias", "list"]));
    assert!(aliases.starts_with("issuing -> ca-"), "{aliases}");
    let rotated = ok(s.cli(&["alias", "rotate", "issuing"]));
    assert!(rotated.contains("retired ca-"), "{rotated}");
    // `ca rotate` is the same operation where an operator looks for it first.
    let again = ok(s.cli(&["ca", "rotate", "issuing"]));
    assert!(again.contains("retired ca-"), "{again}");
    let new_ca = |t: &str| t.split_whitespace().nth(2).map(str::to_string);
    assert_ne!(
        new_ca(&rotated),
        new_ca(&again),
        "each rotation makes a new CA"
    );

    let audit = ok(s.cli(&["audit", "list", "--action", "PutPolicy"]));
    assert_eq!(audit.lines().count(), 1, "{audit}");
    assert!(
        audit.contains("allowed") && audit.contains("success"),
        "{audit}"
    );
    let v: Value =
        serde_json::from_str(&ok(s.cli(&["-o", "json", "audit", "list", "--limit", "2"])))
            .expect("json");
    assert_eq!(v["entries"].as_array().map(Vec::len), Some(2));
    assert_eq!(v["next_cursor"], "3");
    let bad = s.cli(&["-o", "json", "audit", "list", "--since", "not a time"]);
    assert_eq!(bad.status.code(), Some(1));
    let envelope: Value = serde_json::from_slice(&bad.stderr).expect("JSON error envelope");
    assert_eq!(envelope["code"], "InvalidRequest", "{envelope}");
    drop(s);
}

#[test]
fn audit_verify_checks_the_chain_over_the_api_and_locates_tampering() {
    let mut s = Server::start_new();
    ok(s.cli(&["ca", "list"]));
    ok(s.cli(&["cert", "list"]));
    let text = ok(s.cli(&["audit", "verify"]));
    assert!(text.starts_with("OK: "), "{text}");
    let report: Value =
        serde_json::from_str(&ok(s.cli(&["-o", "json", "audit", "verify"]))).expect("json");
    assert_eq!(report["ok"], Value::Bool(true));
    assert!(report["checked"].as_u64().unwrap_or(0) >= 3, "{report}");

    // Alter entry 2 in the stopped server's store, then ask the running server again.
    s.kill9();
    {
        use ca_server::store::redb::forensics;
        let raw = forensics::audit_entry(&s.dir, 2)
            .expect("read")
            .expect("entry 2");
        let mut entry: Value = serde_json::from_slice(&raw).expect("entry json");
        entry["action"] = Value::String("NothingToSeeHere".into());
        let altered = serde_json::to_vec(&entry).expect("encode");
        forensics::set_audit_entry(&s.dir, 2, Some(&altered)).expect("write");
    }
    s.start();
    let deadline = Instant::now() + Duration::from_secs(30);
    let broken = loop {
        let o = s.cli(&["audit", "verify"]);
        if o.status.code() == Some(3) || Instant::now() > deadline {
            break o;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(broken.status.code(), Some(3), "{broken:?}");
    let text = String::from_utf8_lossy(&broken.stdout);
    assert!(text.contains("BROKEN at entry 2"), "{text}");
}
