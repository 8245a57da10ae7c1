//! Operator commands over the management API: `ca ...`, `cert ...`, `crl ...`.
//! Each prints the server's JSON with `--output json`, or a readable summary.

mod ca;
mod cert;
mod crl;

pub use ca::{run_ca, CaArgs};
pub use cert::{run_cert, CertArgs};
pub use crl::{crl_url_of, run_crl, CrlArgs};

/// Percent-encode a path or query component (serials and ids are simple, but
/// user input must never change the request's shape).
fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
