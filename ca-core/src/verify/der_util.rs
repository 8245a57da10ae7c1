//! A minimal DER TLV walker, used only to slice out the exact bytes of the
//! to-be-signed part, names and the SPKI: signatures cover the bytes as sent, so
//! re-encoding a decoded structure could verify something other than what was signed.

/// One TLV: its tag byte, the whole encoding, and the contents.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Tlv<'a> {
    pub tag: u8,
    pub whole: &'a [u8],
    pub content: &'a [u8],
}

/// Read one TLV (single-byte tags, definite lengths of at most 4 bytes) from the
/// start of `input`, returning it and the rest.
pub(crate) fn read_tlv(input: &[u8]) -> Option<(Tlv<'_>, &[u8])> {
    let tag = *input.first()?;
    // Multi-byte tags never occur in the parts of a certificate we slice.
    if tag & 0x1f == 0x1f {
        return None;
    }
    let first = *input.get(1)?;
    let (len, header) = if first < 0x80 {
        (first as usize, 2usize)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 {
            return None;
        }
        let bytes = input.get(2..2 + n)?;
        let mut len = 0usize;
        for b in bytes {
            len = (len << 8) | *b as usize;
        }
        (len, 2 + n)
    };
    let end = header.checked_add(len)?;
    let whole = input.get(..end)?;
    let content = input.get(header..end)?;
    let rest = input.get(end..)?;
    Some((
        Tlv {
            tag,
            whole,
            content,
        },
        rest,
    ))
}

/// The raw pieces of a certificate that signatures and name comparison need.
pub(crate) struct RawCert<'a> {
    pub tbs: &'a [u8],
    pub issuer: &'a [u8],
    pub subject: &'a [u8],
    pub spki: &'a [u8],
}

/// Slice a DER certificate into its raw TBS, issuer, subject and SPKI encodings.
pub(crate) fn raw_cert(der: &[u8]) -> Option<RawCert<'_>> {
    let (outer, trailing) = read_tlv(der)?;
    if outer.tag != 0x30 || !trailing.is_empty() {
        return None;
    }
    let (tbs, _) = read_tlv(outer.content)?;
    if tbs.tag != 0x30 {
        return None;
    }
    let mut rest = tbs.content;
    let (mut item, mut next) = read_tlv(rest)?;
    if item.tag == 0xa0 {
        rest = next;
        (item, next) = read_tlv(rest)?;
    }
    // serial
    let _ = item;
    let (_sigalg, next2) = read_tlv(next)?;
    let (issuer, next3) = read_tlv(next2)?;
    let (_validity, next4) = read_tlv(next3)?;
    let (subject, next5) = read_tlv(next4)?;
    let (spki, _) = read_tlv(next5)?;
    Some(RawCert {
        tbs: tbs.whole,
        issuer: issuer.whole,
        subject: subject.whole,
        spki: spki.whole,
    })
}

/// The raw TBS of a CRL (same outer shape as a certificate).
pub(crate) fn raw_tbs(der: &[u8]) -> Option<&[u8]> {
    let (outer, trailing) = read_tlv(der)?;
    if outer.tag != 0x30 || !trailing.is_empty() {
        return None;
    }
    let (tbs, _) = read_tlv(outer.content)?;
    Some(tbs.whole)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_short_and_long_lengths() {
        let (t, rest) = read_tlv(&[0x04, 0x01, 0xaa, 0xff]).unwrap();
        assert_eq!(t.content, &[0xaa]);
        assert_eq!(rest, &[0xff]);
        let mut long = vec![0x04, 0x81, 0x80];
        long.extend(std::iter::repeat_n(0u8, 0x80));
        let (t, rest) = read_tlv(&long).unwrap();
        assert_eq!(t.content.len(), 0x80);
        assert!(rest.is_empty());
    }

    #[test]
    fn rejects_truncated() {
        assert!(read_tlv(&[0x30, 0x05, 0x00]).is_none());
        assert!(read_tlv(&[0x30]).is_none());
        assert!(read_tlv(&[0x30, 0x85, 0, 0, 0, 0, 1]).is_none());
    }
}
