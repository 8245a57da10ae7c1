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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_forms() {
        assert_eq!(encode(&[]), "");
        assert_eq!(encode(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
        assert_eq!(colon_separated(&[0x00, 0x0f, 0xa5, 0xff]), "00:0F:A5:FF");
        assert_eq!(colon_separated(&[0xab]), "AB");
    }
}
