//! A CA created pending, signed outside (by openssl) and imported.

use super::*;

#[test]
fn an_externally_signed_ca_is_created_pending_signed_outside_and_imported() {
    let srv = Server::start_new();
    let t = tempfile::tempdir().expect("tempdir");
    let d = t.path();
    let key2 = p(d, "web2.key");
    let csr2 = p(d, "web2.csr");
    ok(srv.cli(&["key", "generate", "--algorithm", "ec-p256", "--out", &key2]));
    ok(srv.cli(&[
        "csr",
        "create",
        "--key",
        &key2,
        "--subject",
        "CN=web.example.internal",
        "--san",
        "DNS:web.example.internal",
        "--out",
        &csr2,
    ]));

    // --- an externally signed CA: create pending, get its CSR, sign it with an
    // outside root (openssl), import it, and issue from it.
    let ext = json(&ok(srv.cli(&[
        "ca",
        "create",
        "--type",
        "subordinate",
        "--subject",
        "CN=Ext Issuing,O=Test",
        "--external",
        "-o",
        "json",
    ])));
    let ext_id = ext["id"].as_str().expect("id").to_string();
    let ext_csr = p(d, "ext.csr");
    ok(srv.cli(&["ca", "csr", &ext_id, "--out", &ext_csr]));
    let (oroot_key, oroot) = (p(d, "outside-root.key"), p(d, "outside-root.pem"));
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        &oroot_key,
        "-out",
        &oroot,
        "-subj",
        "/CN=Outside Root",
        "-days",
        "365",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    let extfile = p(d, "ext.cnf");
    std::fs::write(&extfile, "basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign,digitalSignature\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n").expect("ext");
    let signed = p(d, "ext.pem");
    openssl(&[
        "x509",
        "-req",
        "-in",
        &ext_csr,
        "-CA",
        &oroot,
        "-CAkey",
        &oroot_key,
        "-CAcreateserial",
        "-out",
        &signed,
        "-days",
        "300",
        "-sha256",
        "-extfile",
        &extfile,
    ]);
    let imported = json(&ok(srv.cli(&[
        "ca",
        "import",
        &ext_id,
        "--certificate",
        &signed,
        "--chain",
        &oroot,
        "-o",
        "json",
    ])));
    assert_eq!(imported["status"], "ACTIVE");
    let from_ext = p(d, "from-ext.pem");
    ok(srv.cli(&[
        "cert", "issue", "--csr", &csr2, "--ca", &ext_id, "--out", &from_ext,
    ]));
    ok(srv.cli(&["verify", "--root", &oroot, &from_ext]));
}
