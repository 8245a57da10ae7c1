//! Runs the x509-limbo suite through the same decision function as the harness
//! (`examples/limbo.rs`) and fails on any false accept or on fewer matches than
//! the floor reached so far; every case is decided twice, the second time with
//! `VerifyOptions::explain` off, and must get the same verdict for the same reason.

mod limbo_support;

use std::collections::HashMap;

use serde::Deserialize;

/// Matched testcases reached when this test was last tightened; raise it as the
/// validator improves, never lower it.
const MATCHED_FLOOR: usize = 9775;

const LIMBO: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/limbo/limbo.json.gz"
);

/// The cases we reject although limbo expects success, each a deliberate
/// strictness (a missing AKI, a missing EKU on a TLS certificate, non-critical
/// nameConstraints). Pinned exactly, so a change in which cases fail is noticed.
const EXPECTED_FALSE_REJECTS: [&str; 5] = [
    "cve::cve-2024-0567",
    "pathlen::validation-ignores-pathlen-in-leaf",
    "rfc5280::eku::ee-without-eku",
    "rfc5280::ca-as-leaf",
    "webpki::nc::permitted-dns-match-noncritical",
];

/// Only the test reads the expected results.
#[derive(Deserialize)]
struct Expected {
    testcases: Vec<ExpectedCase>,
}

#[derive(Deserialize)]
struct ExpectedCase {
    id: String,
    expected_result: String,
}

#[test]
fn limbo_suite() {
    let text = match limbo_support::read_text(LIMBO) {
        Ok(t) => t,
        Err(e) => panic!("the x509-limbo suite is needed at {LIMBO}: {e}"),
    };
    let limbo = limbo_support::parse(&text).expect("limbo.json parses");
    let expected: Expected = serde_json::from_str(&text).expect("limbo.json parses");
    let expected: HashMap<String, String> = expected
        .testcases
        .into_iter()
        .map(|c| (c.id, c.expected_result))
        .collect();

    let (mut matched, mut skipped) = (0usize, 0usize);
    let mut false_accepts = Vec::new();
    let mut false_rejects = Vec::new();
    let mut modes_differ = Vec::new();
    for tc in &limbo.testcases {
        let outcome = limbo_support::decide(tc);
        // The verdict-only mode must reach the same verdict for the same reason.
        let verdict_only = limbo_support::decide_verdict_only(tc);
        if (outcome.label(), outcome.context()) != (verdict_only.label(), verdict_only.context()) {
            modes_differ.push(format!(
                "{}: explained {} ({}), verdict only {} ({})",
                tc.id,
                outcome.label(),
                outcome.context(),
                verdict_only.label(),
                verdict_only.context()
            ));
        }
        let want = expected.get(&tc.id).map(String::as_str).unwrap_or("?");
        match (outcome.label(), want) {
            ("SKIPPED", _) => skipped += 1,
            (got, want) if got == want => matched += 1,
            ("SUCCESS", _) => false_accepts.push(tc.id.clone()),
            _ => false_rejects.push((tc.id.clone(), outcome.context().to_string())),
        }
    }
    eprintln!(
        "limbo: {matched} matched, {} false accepts, {} false rejects, {skipped} skipped",
        false_accepts.len(),
        false_rejects.len()
    );
    for (id, why) in &false_rejects {
        eprintln!("  false reject {id}: {why}");
    }
    assert!(
        modes_differ.is_empty(),
        "explain off changed {} verdicts or reasons: {:#?}",
        modes_differ.len(),
        modes_differ.iter().take(5).collect::<Vec<_>>()
    );
    assert!(
        false_accepts.is_empty(),
        "false accepts (invalid chains accepted): {false_accepts:?}"
    );
    let mut rejected: Vec<&str> = false_rejects.iter().map(|(id, _)| id.as_str()).collect();
    rejected.sort_unstable();
    let mut pinned = EXPECTED_FALSE_REJECTS.to_vec();
    pinned.sort_unstable();
    assert_eq!(
        rejected, pinned,
        "the set of false rejects changed (left: now, right: pinned)"
    );
    assert!(
        matched >= MATCHED_FLOOR,
        "matched {matched} < floor {MATCHED_FLOOR}"
    );
}
