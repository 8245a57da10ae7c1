//! Runs the x509-limbo suite through the same decision function as the harness
//! (`examples/limbo.rs`) and fails on any false accept or on fewer matches than
//! the floor reached so far.

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
    for tc in &limbo.testcases {
        let outcome = limbo_support::decide(tc);
        let want = expected.get(&tc.id).map(String::as_str).unwrap_or("?");
        match (outcome.label(), want) {
            ("SKIPPED", _) => skipped += 1,
            (got, want) if got == want => matched += 1,
            ("SUCCESS", _) => false_accepts.push(tc.id.clone()),
            _ => false_rejects.push(format!("{}: {}", tc.id, outcome.context())),
        }
    }
    eprintln!(
        "limbo: {matched} matched, {} false accepts, {} false rejects, {skipped} skipped",
        false_accepts.len(),
        false_rejects.len()
    );
    for f in &false_rejects {
        eprintln!("  false reject {f}");
    }
    assert!(
        false_accepts.is_empty(),
        "false accepts (invalid chains accepted): {false_accepts:?}"
    );
    assert!(
        matched >= MATCHED_FLOOR,
        "matched {matched} < floor {MATCHED_FLOOR}"
    );
}
