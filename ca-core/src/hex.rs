//! Hexadecimal forms of bytes: the one implementation for serials, key
//! identifiers and fingerprints across the workspace.

const LOWER: &[u8; 16] = b"0123456789abcdef";
const UPPER: &[u8; 16] = b"0123456789ABCDEF";

/// Lower-case hex, no separators: the API's form of serials and fingerprints.
pub fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(LOWER[usize::from(b >> 4)]));
        out.push(char::from(LOWER[usize::from(b & 0x0f)]));
    }
    out
}

/// Upper-case hex separated by colons, the way openssl and browsers show
/// fingerprints, so a person can compare them by eye.
pub fn colon_separated(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 3);
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            out.push(':');
        }
        out.push(char::from(UPPER[usize::from(b >> 4)]));
        out.push(char::from(UPPER[usize::from(b & 0x0f)]));
    }
    out
}

/// Hex of either case, no separators, an even number of digits.
pub fn decode(text: &str) -> Result<Vec<u8>, InvalidHex> {
    fn nibble(c: u8) -> Result<u8, InvalidHex> {
        match c {
            b'0'..=b'9' => Ok(c - b'0'),
            b'a'..=b'f' => Ok(c - b'a' + 10),
            b'A'..=b'F' => Ok(c - b'A' + 10),
            _ => Err(InvalidHex),
        }
    }
    let digits = text.as_bytes();
    if !digits.len().is_multiple_of(2) {
        return Err(InvalidHex);
    }
    digits
        .chunks_exact(2)
        .map(|pair| Ok(nibble(pair[0])? << 4 | nibble(pair[1])?))
        .collect()
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("not hexadecimal")]
pub struct InvalidHex;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_forms() {
        assert_eq!(encode(&[]), "");
        assert_eq!(encode(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
        assert_eq!(colon_separated(&[0x00, 0x0f, 0xa5, 0xff]), "00:0F:A5:FF");
        assert_eq!(colon_separated(&[0xab]), "AB");
        assert_eq!(decode("000fA5ff"), Ok(vec![0x00, 0x0f, 0xa5, 0xff]));
        assert_eq!(decode("abc"), Err(InvalidHex));
        assert_eq!(decode("zz"), Err(InvalidHex));
    }
}
