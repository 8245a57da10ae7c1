//! The text form of what `inspect` found: one block per object, rendered from
//! the same JSON facts `--output json` prints.

use serde_json::Value;

use crate::output::{relative, Out};

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("")
}

fn render_exts(v: Option<&Value>, out: &Out, buf: &mut String) {
    let exts = v.and_then(Value::as_array).cloned().unwrap_or_default();
    if exts.is_empty() {
        return;
    }
    buf.push_str("  Extensions:\n");
    for e in exts {
        let crit = if e.get("critical").and_then(Value::as_bool) == Some(true) {
            " (critical)"
        } else {
            ""
        };
        let vals: Vec<&str> = e
            .get("value")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        buf.push_str(&format!(
            "    {}{crit}: {}\n",
            out.cyan(s(&e, "name")),
            vals.join(", ")
        ));
    }
}

/// Text form of a [`describe`](super::describe) result.
pub fn render(v: &Value, out: &Out) -> String {
    let mut b = String::new();
    let key = v.get("public_key").cloned().unwrap_or(Value::Null);
    let fps = v.get("fingerprints").cloned().unwrap_or(Value::Null);
    match s(v, "type") {
        "certificate" => {
            b.push_str(&format!("{}\n", out.bold("Certificate")));
            b.push_str(&format!("  Subject:    {}\n", s(v, "subject")));
            let issuer = if v.get("self_issued").and_then(Value::as_bool) == Some(true) {
                format!("{} (self-issued)", s(v, "issuer"))
            } else {
                s(v, "issuer").to_string()
            };
            b.push_str(&format!("  Issuer:     {issuer}\n"));
            b.push_str(&format!("  Serial:     {}\n", s(v, "serial")));
            let val = v.get("validity").cloned().unwrap_or(Value::Null);
            let left = val.get("seconds_left").and_then(Value::as_i64).unwrap_or(0);
            let status = match s(&val, "status") {
                "valid" => out.green(&format!("valid, expires {}", relative(left))),
                "expired" => out.red(&format!("EXPIRED {}", relative(left))),
                _ => out.yellow(&format!(
                    "NOT YET VALID, starts {}",
                    relative(
                        val.get("seconds_until_valid")
                            .and_then(Value::as_i64)
                            .unwrap_or(0)
                    )
                )),
            };
            b.push_str(&format!(
                "  Validity:   {} → {} ({status})\n",
                s(&val, "not_before"),
                s(&val, "not_after")
            ));
            b.push_str(&format!(
                "  Public key: {} (SPKI SHA-256 {})\n",
                s(&key, "type"),
                s(&key, "spki_sha256")
            ));
            b.push_str(&format!("  Signature:  {}\n", s(v, "signature_algorithm")));
            render_exts(v.get("extensions"), out, &mut b);
            b.push_str("  Fingerprints:\n");
            b.push_str(&format!("    SHA-256: {}\n", s(&fps, "sha256")));
            b.push_str(&format!("    SHA-1:   {}\n", s(&fps, "sha1")));
        }
        "csr" => {
            b.push_str(&format!("{}\n", out.bold("Certificate signing request")));
            b.push_str(&format!("  Subject:    {}\n", s(v, "subject")));
            b.push_str(&format!(
                "  Public key: {} (SPKI SHA-256 {})\n",
                s(&key, "type"),
                s(&key, "spki_sha256")
            ));
            b.push_str(&format!("  Signature:  {}\n", s(v, "signature_algorithm")));
            render_exts(v.get("requested_extensions"), out, &mut b);
            let verdict = s(v, "ca_checks");
            let painted = if v.get("ca_checks_pass").and_then(Value::as_bool) == Some(true) {
                out.green(verdict)
            } else {
                out.red(verdict)
            };
            b.push_str(&format!("  CA checks:  {painted}\n"));
            b.push_str(&format!("  SHA-256:    {}\n", s(&fps, "sha256")));
        }
        "crl" => {
            b.push_str(&format!("{}\n", out.bold("Certificate revocation list")));
            b.push_str(&format!("  Issuer:      {}\n", s(v, "issuer")));
            b.push_str(&format!("  This update: {}\n", s(v, "this_update")));
            match v.get("next_update").and_then(Value::as_str) {
                Some(n) => {
                    let secs = v
                        .get("seconds_until_next_update")
                        .and_then(Value::as_i64)
                        .unwrap_or(0);
                    let note = if secs < 0 {
                        out.red(&format!("STALE, due {}", relative(secs)))
                    } else {
                        format!("due {}", relative(secs))
                    };
                    b.push_str(&format!("  Next update: {n} ({note})\n"));
                }
                None => b.push_str("  Next update: (none)\n"),
            }
            b.push_str(&format!("  Signature:   {}\n", s(v, "signature_algorithm")));
            render_exts(v.get("extensions"), out, &mut b);
            let revoked = v
                .get("revoked")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            b.push_str(&format!("  Revoked certificates: {}\n", revoked.len()));
            for r in &revoked {
                let reason = r
                    .get("reason")
                    .and_then(Value::as_str)
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default();
                b.push_str(&format!(
                    "    {} revoked {}{reason}\n",
                    s(r, "serial"),
                    s(r, "revoked_at")
                ));
            }
            b.push_str(&format!("  SHA-256:     {}\n", s(&fps, "sha256")));
        }
        _ => {}
    }
    b
}
