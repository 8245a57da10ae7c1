//! Listings and their cursors name no certificate the caller cannot read.

use super::csr_body;
use crate::harness;
use crate::harness::Server;
use serde_json::json;

/// Security review L4: listings filter by what the caller may read before
/// paging, so no page is short and no cursor names a certificate of a CA the
/// caller cannot read.
#[test]
fn list_cursors_never_name_certificates_the_caller_cannot_read() {
    let s = Server::start_new();
    let a = s.config.issuing_ca_id.clone();
    let root = s.config.root_ca_id.clone();
    let (st, v) = s.curl(
        "POST",
        "/v1/cas",
        Some(&json!({"type": "SUBORDINATE", "subject": "CN=Hidden CA", "parent_ca_id": root, "path_len": 0})),
    );
    assert_eq!(st, 201, "{v}");
    let hidden = v["id"].as_str().expect("id").to_string();
    for i in 0..3 {
        for ca in [&a, &hidden] {
            let name = format!("n{i}.example");
            let (st, v) = s.curl(
                "POST",
                "/v1/certificates",
                Some(&csr_body(ca, &[name.as_str()], "tls-server", None)),
            );
            assert_eq!(st, 201, "{v}");
        }
    }
    let (cert, key, _) = harness::client_identity(&s, "reader", "CN=reader-a,O=test");
    s.put_policy(
        "reader-a",
        json!({"effect": "allow", "principals": [{"subject": "CN=reader-a*"}],
               "actions": ["read"], "cas": [a]}),
    );
    let readable_count = {
        let (st, v) = s.curl(
            "GET",
            &format!("/v1/certificates?ca_id={a}&limit=1000"),
            None,
        );
        assert_eq!(st, 200, "{v}");
        v["certificates"].as_array().expect("list").len()
    };
    let mut seen = 0usize;
    let mut cursor: Option<String> = None;
    for _ in 0..100 {
        let path = match &cursor {
            Some(c) => format!("/v1/certificates?limit=1&cursor={c}"),
            None => "/v1/certificates?limit=1".to_string(),
        };
        let (st, v) = s.curl_as(&cert, &key, "GET", &path, None);
        assert_eq!(st, 200, "{v}");
        let page = v["certificates"].as_array().expect("list");
        for c in page {
            assert_eq!(c["ca_id"], a.as_str(), "{c}");
        }
        seen += page.len();
        match v["next_cursor"].as_str() {
            Some(c) => {
                let decoded = String::from_utf8(
                    (0..c.len())
                        .step_by(2)
                        .filter_map(|i| u8::from_str_radix(c.get(i..i + 2)?, 16).ok())
                        .collect(),
                )
                .unwrap_or_default();
                assert!(
                    !decoded.contains(&hidden),
                    "cursor {decoded:?} names the hidden CA"
                );
                // Sealed: it names no CA and no certificate at all, so even
                // a page cut short by the store's scan limit (which stops
                // wherever the scan is) reveals nothing.
                // (Undo every layer of hex, as a curious client would.)
                let mut layer = c.to_string();
                while let Some(next) = (layer.len() % 2 == 0)
                    .then(|| {
                        (0..layer.len())
                            .step_by(2)
                            .map(|i| u8::from_str_radix(layer.get(i..i + 2)?, 16).ok())
                            .collect::<Option<Vec<u8>>>()
                    })
                    .flatten()
                    .and_then(|b| String::from_utf8(b).ok())
                {
                    layer = next;
                }
                assert!(
                    !layer.contains(&a) && !layer.contains(&hidden) && !layer.contains('/'),
                    "cursor {layer:?} names a store key"
                );
                assert!(!page.is_empty(), "a short page before the end");
                // An altered cursor is refused, not followed.
                let flipped: String = c
                    .char_indices()
                    .map(|(i, ch)| match (i, ch) {
                        (20, '0') => '1',
                        (20, _) => '0',
                        _ => ch,
                    })
                    .collect();
                let (st, v) = s.curl_as(
                    &cert,
                    &key,
                    "GET",
                    &format!("/v1/certificates?limit=1&cursor={flipped}"),
                    None,
                );
                assert_eq!((st, harness::code(&v)), (400, "InvalidRequest"), "{v}");
                cursor = Some(c.to_string());
            }
            None => break,
        }
    }
    assert_eq!(seen, readable_count);
}
