//! x509-limbo harness: `cargo run --release -p ca-core --example limbo -- limbo.json.gz`
//! writes limbo's result document on stdout; `-- limbo.json.gz --explain ID` prints
//! the explanation of one testcase instead.

#[path = "../tests/limbo_support/mod.rs"]
mod limbo_support;

use std::io::Write;

fn main() {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: limbo LIMBO_JSON[.gz] > results.json");
        std::process::exit(2);
    };
    let limbo = match limbo_support::read_text(&path).and_then(|t| limbo_support::parse(&t)) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("limbo: {e}");
            std::process::exit(2);
        }
    };
    if std::env::args().nth(2).as_deref() == Some("--explain") {
        let id = std::env::args().nth(3).unwrap_or_default();
        for tc in limbo.testcases.iter().filter(|tc| tc.id == id) {
            let outcome = limbo_support::decide_explained(tc);
            println!("{}: {}\n{}", tc.id, outcome.label(), outcome.context());
        }
        return;
    }
    let results: Vec<serde_json::Value> = limbo
        .testcases
        .iter()
        .map(|tc| {
            let outcome = limbo_support::decide(tc);
            serde_json::json!({
                "id": tc.id,
                "actual_result": outcome.label(),
                "context": outcome.context(),
            })
        })
        .collect();
    let doc = serde_json::json!({
        "version": 1,
        "harness": "ca-core",
        "results": results,
    });
    let mut out = std::io::stdout().lock();
    if serde_json::to_writer(&mut out, &doc).is_err() || writeln!(out).is_err() {
        std::process::exit(1);
    }
}
