//! PEM helpers: one place that knows labels and line lengths.

use base64ct::{Base64, Encoding};
use der::pem;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PemError {
    #[error("PEM does not parse")]
    Malformed,
    #[error("expected PEM label {expected}, found {found}")]
    WrongLabel {
        expected: &'static str,
        found: String,
    },
}

/// Encode DER as PEM with the given label (LF line endings, 64 columns, RFC 7468).
/// Written out here rather than through `der::pem` so that no error path exists
/// that would need a fallback: base64 of any length always encodes.
pub fn encode(label: &str, der: &[u8]) -> String {
    let body = Base64::encode_string(der);
    let mut out = String::with_capacity(body.len() + body.len() / 64 + 2 * label.len() + 32);
    out.push_str("-----BEGIN ");
    out.push_str(label);
    out.push_str("-----\n");
    let mut rest = body.as_str();
    while !rest.is_empty() {
        // Base64 is ASCII, so every index is a character boundary.
        let (line, tail) = rest.split_at(rest.len().min(64));
        out.push_str(line);
        out.push('\n');
        rest = tail;
    }
    out.push_str("-----END ");
    out.push_str(label);
    out.push_str("-----\n");
    out
}

/// Decode one PEM block, checking its label.
pub fn decode(expected: &'static str, text: &str) -> Result<Vec<u8>, PemError> {
    let (label, der) = pem::decode_vec(text.trim().as_bytes()).map_err(|_| PemError::Malformed)?;
    if label != expected {
        return Err(PemError::WrongLabel {
            expected,
            found: label.chars().take(40).collect(),
        });
    }
    Ok(der)
}

/// All blocks with `label` in `text`, in order (for bundles of certificates).
pub fn decode_all(expected: &'static str, text: &str) -> Result<Vec<Vec<u8>>, PemError> {
    let begin = format!("-----BEGIN {expected}-----");
    let end = format!("-----END {expected}-----");
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(&begin) {
        let after = &rest[start..];
        let stop = after.find(&end).ok_or(PemError::Malformed)? + end.len();
        out.push(decode(expected, &after[..stop])?);
        rest = &after[stop..];
    }
    Ok(out)
}

/// Accept DER as is, or PEM with the given label.
pub fn der_or_pem(expected: &'static str, input: &[u8]) -> Result<Vec<u8>, PemError> {
    let trimmed = input.trim_ascii_start();
    if trimmed.starts_with(b"-----BEGIN") {
        let text = std::str::from_utf8(trimmed).map_err(|_| PemError::Malformed)?;
        decode(expected, text)
    } else {
        Ok(input.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_matches_der_pem_and_round_trips() {
        // (Empty input differs: `der` writes a blank line, RFC 7468 writes none.)
        for len in [1usize, 2, 47, 48, 49, 500] {
            let der: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
            let ours = encode("TEST DATA", &der);
            let theirs = pem::encode_string("TEST DATA", der::pem::LineEnding::LF, &der).unwrap();
            assert_eq!(ours, theirs, "length {len}");
            assert_eq!(decode("TEST DATA", &ours).unwrap(), der);
        }
    }
}
