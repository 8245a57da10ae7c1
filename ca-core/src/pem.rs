//! PEM helpers: one place that knows labels and line lengths.

use der::pem::{self, LineEnding};

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

/// Encode DER as PEM with the given label (LF line endings, 64 columns).
pub fn encode(label: &str, der: &[u8]) -> String {
    // Encoding into a String cannot fail for valid labels; fall back to empty on the impossible.
    pem::encode_string(label, LineEnding::LF, der).unwrap_or_default()
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
