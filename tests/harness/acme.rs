//! A server with ACME switched on, for the ACME tests: the default directory
//! (any account may get names under example.test, by a policy statement) and
//! a second one, `eab`, that requires external account binding. Every
//! validation connects to 127.0.0.1.

use serde_json::json;

use super::server::Server;
use super::{free_port, wait_for_port};

/// Where validations go.
pub struct AcmePorts {
    pub http01: u16,
    pub tls_alpn01: u16,
    /// dns-01's resolver (IP:port), if any.
    pub dns_resolver: Option<String>,
}

/// `ca-server init`, ACME switched on as above, started. Returns the server
/// and the default directory's URL.
pub fn acme_server(ports: &AcmePorts) -> (Server, String) {
    let mut s = Server::init_with(&[], &[]);
    let acme_port = free_port();
    let config = s.dir.join("config.toml");
    let original = std::fs::read_to_string(&config).expect("config");
    let resolver = ports
        .dns_resolver
        .as_ref()
        .map(|d| format!("dns_resolver = \"{d}\"\n"))
        .unwrap_or_default();
    let tuned = original
        .replace(
            "[acme]\nenabled = false\n",
            &format!("[acme]\nenabled = true\nresolve_to = \"127.0.0.1\"\n{resolver}"),
        )
        .replace(
            "listen = \"127.0.0.1:9443\"",
            &format!("listen = \"127.0.0.1:{acme_port}\""),
        )
        .replace(
            "http01_port = 80",
            &format!("http01_port = {}", ports.http01),
        )
        .replace(
            "tls_alpn01_port = 443",
            &format!("tls_alpn01_port = {}", ports.tls_alpn01),
        );
    assert_ne!(tuned, original, "config.toml carries [acme]");
    let tuned = format!(
        "{tuned}\n[[acme.provisioners]]\nname = \"eab\"\nprofile = \"tls-server\"\neab = \"required\"\n"
    );
    std::fs::write(&config, tuned).expect("config");
    s.start();
    wait_for_port(acme_port, "ACME listener");
    let issuing = s.config.issuing_ca_id.clone();
    s.put_policy(
        "acme-example-test",
        json!({
            "effect": "allow",
            "principals": [{"uri": "acme:default/*"}],
            "actions": ["issue"],
            "cas": [issuing],
            "conditions": {"name_patterns": ["*.example.test"]},
        }),
    );
    (
        s,
        format!("https://127.0.0.1:{acme_port}/acme/default/directory"),
    )
}
