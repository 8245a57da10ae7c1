//! The CA hierarchy: root, subordinate and externally signed CAs.

use std::process::Command;

use super::{openssl_verify, write};
use crate::harness::{code, core_csr, run, Server};
use hyper::Method;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ca_hierarchy_root_subordinate_and_external_signature() {
    let s = Server::start_new();
    let tmp = s.tmp.path().to_path_buf();
    let mut c = s.client().await;

    // A new root and a subordinate signed by it, then a leaf from the subordinate.
    let (st, root) = c
        .call(Method::POST, "/v1/cas", Some(&json!({"type": "ROOT", "subject": "CN=Team Root,O=Example", "key_algorithm": "ec-p384", "validity_days": 365})))
        .await
        .unwrap();
    assert_eq!(st, 201, "{root}");
    let root_id = root["id"].as_str().unwrap().to_string();
    assert!(ca_server::ids::is_ca_id(&root_id));
    let (st, sub) = c
        .call(Method::POST, "/v1/cas", Some(&json!({"type": "SUBORDINATE", "subject": "CN=Team Issuing,O=Example", "parent_ca_id": root_id, "path_len": 0, "validity_days": 200, "name_constraints": {"permitted_dns": ["example.internal"]}})))
        .await
        .unwrap();
    assert_eq!(st, 201, "{sub}");
    assert_eq!(sub["status"], "ACTIVE");
    let sub_id = sub["id"].as_str().unwrap().to_string();
    let (st, leaf) = c
        .call(Method::POST, "/v1/certificates", Some(&json!({"ca_id": sub_id, "csr": core_csr("svc.example.internal"), "validity_days": 7})))
        .await
        .unwrap();
    assert_eq!(st, 201, "{leaf}");
    let (_, rootcert) = c
        .call(Method::GET, &format!("/v1/cas/{root_id}/certificate"), None)
        .await
        .unwrap();
    write(
        &tmp.join("team-root.pem"),
        rootcert["certificate"].as_str().unwrap(),
    );
    openssl_verify(&tmp, &tmp.join("team-root.pem"), &leaf);
    // Name constraints hold: a name outside them is refused by policy.
    let (st, v) = c
        .call(
            Method::POST,
            "/v1/certificates",
            Some(&json!({"ca_id": sub_id, "csr": core_csr("evil.example.com")})),
        )
        .await
        .unwrap();
    assert_eq!((st, code(&v)), (403, "PolicyDenied"), "{v}");

    // A subordinate pending an external signature: CSR out, signed certificate in.
    let (st, ext) = c
        .call(Method::POST, "/v1/cas", Some(&json!({"type": "SUBORDINATE", "subject": "CN=Externally Signed CA,O=Example", "external": true})))
        .await
        .unwrap();
    assert_eq!(st, 201, "{ext}");
    assert_eq!(ext["status"], "PENDING_CERTIFICATE");
    let ext_id = ext["id"].as_str().unwrap().to_string();
    let (st, v) = c
        .call(
            Method::POST,
            "/v1/certificates",
            Some(&json!({"ca_id": ext_id, "csr": core_csr("a.example.internal")})),
        )
        .await
        .unwrap();
    assert_eq!((st, code(&v)), (409, "InvalidState"), "{v}");
    let (st, csr) = c
        .call(Method::GET, &format!("/v1/cas/{ext_id}/csr"), None)
        .await
        .unwrap();
    assert_eq!(st, 200, "{csr}");
    write(&tmp.join("ext-sub.csr"), csr["csr"].as_str().unwrap());
    let out = run(Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "60",
            "-subj",
            "/CN=External Root",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-keyout",
        ])
        .arg(tmp.join("ext-root.key"))
        .arg("-out")
        .arg(tmp.join("ext-root.pem")));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    write(
        &tmp.join("ext.cnf"),
        "basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n",
    );
    let out = run(Command::new("openssl")
        .args(["x509", "-req", "-days", "90", "-in"])
        .arg(tmp.join("ext-sub.csr"))
        .arg("-CA")
        .arg(tmp.join("ext-root.pem"))
        .arg("-CAkey")
        .arg(tmp.join("ext-root.key"))
        .arg("-CAcreateserial")
        .arg("-extfile")
        .arg(tmp.join("ext.cnf"))
        .arg("-out")
        .arg(tmp.join("ext-sub.pem")));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let signed = std::fs::read_to_string(tmp.join("ext-sub.pem")).unwrap();
    let ext_root = std::fs::read_to_string(tmp.join("ext-root.pem")).unwrap();
    // The wrong chain is refused.
    let (st, v) = c
        .call(
            Method::POST,
            &format!("/v1/cas/{ext_id}/certificate"),
            Some(&json!({"certificate": signed, "certificate_chain": rootcert["certificate"]})),
        )
        .await
        .unwrap();
    assert_eq!((st, code(&v)), (400, "MalformedCertificate"), "{v}");
    let (st, v) = c
        .call(
            Method::POST,
            &format!("/v1/cas/{ext_id}/certificate"),
            Some(&json!({"certificate": signed, "certificate_chain": ext_root})),
        )
        .await
        .unwrap();
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["status"], "ACTIVE");
    let (st, leaf) = c
        .call(Method::POST, "/v1/certificates", Some(&json!({"ca_id": ext_id, "csr": core_csr("b.example.internal"), "validity_days": 10})))
        .await
        .unwrap();
    assert_eq!(st, 201, "{leaf}");
    openssl_verify(&tmp, &tmp.join("ext-root.pem"), &leaf);
    // Importing twice is refused.
    let (st, v) = c
        .call(
            Method::POST,
            &format!("/v1/cas/{ext_id}/certificate"),
            Some(&json!({"certificate": signed, "certificate_chain": ext_root})),
        )
        .await
        .unwrap();
    assert_eq!((st, code(&v)), (409, "InvalidState"), "{v}");

    // Describe and list.
    let (st, d) = c
        .call(Method::GET, &format!("/v1/cas/{sub_id}"), None)
        .await
        .unwrap();
    assert_eq!(st, 200);
    assert_eq!(d["parent_ca_id"].as_str(), Some(root_id.as_str()));
    assert_eq!(d["type"], "SUBORDINATE");
    let (_, list) = c.call(Method::GET, "/v1/cas", None).await.unwrap();
    assert_eq!(list["certificate_authorities"].as_array().unwrap().len(), 6);

    // The public listener serves CA certificates without a client certificate.
    let out = run(Command::new("curl").args([
        "-sS",
        "-f",
        &format!("http://{}/ca/{root_id}.pem", s.public),
    ]));
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        rootcert["certificate"].as_str().unwrap()
    );
    let out = run(Command::new("curl").args([
        "-sS",
        "-w",
        "\n%{http_code}",
        &format!("http://{}/health", s.public),
    ]));
    let health = String::from_utf8_lossy(&out.stdout);
    assert!(health.ends_with("\n200"), "{health}");
    let out = run(Command::new("curl").args([
        "-sS",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &format!("http://{}/ca/..%2f..%2fconfig.toml.pem", s.public),
    ]));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "404");
}
