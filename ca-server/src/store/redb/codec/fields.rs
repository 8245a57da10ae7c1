//! The fields records are built of: [`Enc`] writes them, [`Dec`] reads them back.

use super::{corrupt, StoreError, V1, WORDS};
use crate::store::redb::varint;

/// `t` as the store writes times (RFC 3339 UTC, whole seconds).
fn rfc3339(t: i64) -> String {
    crate::clock::fmt_unix(t)
}

/// The Unix seconds `s` stands for, if [`rfc3339`] gives back exactly `s`.
fn unix_of(s: &str) -> Option<i64> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .ok()?
        .unix_timestamp();
    (rfc3339(t) == s).then_some(t)
}

fn is_lower_hex(s: &str) -> bool {
    s.len() % 2 == 0
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

pub(super) struct Enc(pub(super) Vec<u8>);

impl Enc {
    /// An optional value: a presence byte, then the value as `put` writes it.
    pub(super) fn opt<T>(&mut self, v: Option<T>, put: impl FnOnce(&mut Self, T)) {
        match v {
            None => self.u8(0),
            Some(v) => {
                self.u8(1);
                put(self, v);
            }
        }
    }

    pub(super) fn new(capacity: usize) -> Enc {
        let mut v = Vec::with_capacity(capacity);
        v.push(V1);
        Enc(v)
    }

    pub(super) fn u8(&mut self, v: u8) {
        self.0.push(v);
    }

    pub(super) fn uv(&mut self, v: u64) {
        varint::put(&mut self.0, v);
    }

    pub(super) fn iv(&mut self, v: i64) {
        self.uv(varint::zigzag(v));
    }

    pub(super) fn bytes(&mut self, b: &[u8]) {
        self.uv(b.len() as u64);
        self.0.extend_from_slice(b);
    }

    pub(super) fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }

    /// Lower-case hex as its bytes (half the size); anything else as text.
    pub(super) fn hex(&mut self, s: &str) {
        let mark = self.0.len();
        self.u8(0);
        if !self.raw_hex(s) {
            self.0.truncate(mark);
            self.u8(1);
            self.str(s);
        }
    }

    /// Lower-case hex `s` as its length and bytes, decoded in place (this
    /// runs several times per certificate stored); false, and nothing
    /// written, for anything else.
    fn raw_hex(&mut self, s: &str) -> bool {
        if !is_lower_hex(s) {
            return false;
        }
        let mark = self.0.len();
        self.uv((s.len() / 2) as u64);
        if ca_core::hex::decode_into(s, &mut self.0).is_err() {
            self.0.truncate(mark);
            return false;
        }
        true
    }

    pub(super) fn strs(&mut self, v: &[String]) {
        self.uv(v.len() as u64);
        for s in v {
            self.str(s);
        }
    }

    /// A [`WORDS`] entry as its position + 1; anything else as 0 and text.
    pub(super) fn word(&mut self, s: &str) {
        match WORDS.iter().position(|w| *w == s) {
            Some(i) => self.uv(i as u64 + 1),
            None => {
                self.uv(0);
                self.str(s);
            }
        }
    }

    /// A time: its seconds when it is exactly their RFC 3339 form.
    pub(super) fn time(&mut self, s: &str) {
        match unix_of(s) {
            Some(t) => {
                self.u8(0);
                self.iv(t);
            }
            None => {
                self.u8(1);
                self.str(s);
            }
        }
    }

    /// A time that is usually `rfc3339(unix)`, a field written beside it.
    pub(super) fn time_of(&mut self, s: &str, unix: i64) {
        if s == rfc3339(unix) {
            self.u8(0);
        } else {
            self.u8(1);
            self.str(s);
        }
    }

    /// Text that is usually `prefix` then lower-case hex (`evt-…`, `CA/serial`).
    fn prefixed_hex(&mut self, s: &str, prefix_end: Option<usize>) {
        let mark = self.0.len();
        if let Some((head, tail)) = prefix_end
            .and_then(|i| s.split_at_checked(i))
            .filter(|(_, tail)| !tail.is_empty())
        {
            self.u8(0);
            self.str(head);
            if self.raw_hex(tail) {
                return;
            }
            self.0.truncate(mark);
        }
        self.u8(1);
        self.str(s);
    }

    /// A target such as `CA/serial`: the part after the last `/` as hex.
    pub(super) fn target(&mut self, s: &str) {
        self.prefixed_hex(s, s.rfind('/').map(|i| i + 1));
    }

    /// An event id, `evt-` and hex.
    pub(super) fn event_id(&mut self, s: &str) {
        self.prefixed_hex(s, s.starts_with("evt-").then_some(4));
    }
}

pub(super) struct Dec<'a> {
    pub(super) b: &'a [u8],
}

impl<'a> Dec<'a> {
    /// An optional value written by `Enc::opt`, read back by `get`.
    pub(super) fn opt<T>(
        &mut self,
        get: impl FnOnce(&mut Self) -> Result<T, StoreError>,
    ) -> Result<Option<T>, StoreError> {
        Ok(if self.flag()? { Some(get(self)?) } else { None })
    }

    pub(super) fn u8(&mut self) -> Result<u8, StoreError> {
        let (&first, rest) = self.b.split_first().ok_or_else(|| corrupt("truncated"))?;
        self.b = rest;
        Ok(first)
    }

    pub(super) fn uv(&mut self) -> Result<u64, StoreError> {
        varint::take(&mut self.b).map_err(corrupt)
    }

    pub(super) fn iv(&mut self) -> Result<i64, StoreError> {
        self.uv().map(varint::unzigzag)
    }

    pub(super) fn bytes(&mut self) -> Result<&'a [u8], StoreError> {
        let len = usize::try_from(self.uv()?).map_err(|_| corrupt("length"))?;
        if len > self.b.len() {
            return Err(corrupt("length past the end"));
        }
        let (head, rest) = self.b.split_at(len);
        self.b = rest;
        Ok(head)
    }

    pub(super) fn str(&mut self) -> Result<String, StoreError> {
        let b = self.bytes()?;
        std::str::from_utf8(b)
            .map(str::to_string)
            .map_err(|_| corrupt("text is not UTF-8"))
    }

    pub(super) fn flag(&mut self) -> Result<bool, StoreError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(corrupt("flag")),
        }
    }

    pub(super) fn hex(&mut self) -> Result<String, StoreError> {
        match self.u8()? {
            0 => Ok(ca_core::hex::encode(self.bytes()?)),
            1 => self.str(),
            _ => Err(corrupt("hex tag")),
        }
    }

    pub(super) fn word(&mut self) -> Result<String, StoreError> {
        match usize::try_from(self.uv()?).map_err(|_| corrupt("word"))? {
            0 => self.str(),
            i => WORDS
                .get(i - 1)
                .map(|w| w.to_string())
                .ok_or_else(|| corrupt("unknown word")),
        }
    }

    pub(super) fn time(&mut self) -> Result<String, StoreError> {
        match self.u8()? {
            0 => Ok(rfc3339(self.iv()?)),
            1 => self.str(),
            _ => Err(corrupt("time tag")),
        }
    }

    pub(super) fn time_of(&mut self, unix: i64) -> Result<String, StoreError> {
        match self.u8()? {
            0 => Ok(rfc3339(unix)),
            1 => self.str(),
            _ => Err(corrupt("time tag")),
        }
    }

    pub(super) fn prefixed_hex(&mut self) -> Result<String, StoreError> {
        match self.u8()? {
            0 => {
                let mut s = self.str()?;
                ca_core::hex::encode_into(self.bytes()?, &mut s);
                Ok(s)
            }
            1 => self.str(),
            _ => Err(corrupt("hex tag")),
        }
    }

    pub(super) fn strs(&mut self) -> Result<Vec<String>, StoreError> {
        let n = self.uv()?;
        // Each string takes at least its length byte: a count past the
        // remaining bytes is corrupt, not an allocation to attempt.
        if n > self.b.len() as u64 {
            return Err(corrupt("list length"));
        }
        (0..n).map(|_| self.str()).collect()
    }

    pub(super) fn end(&self) -> Result<(), StoreError> {
        if self.b.is_empty() {
            Ok(())
        } else {
            Err(corrupt("bytes after the record"))
        }
    }
}
