//! The certificates one validation can use, leaf, anchors and intermediates,
//! under one numbering.

use super::cert::Cert;
use super::Anchor;
use crate::signature::ParsedKeys;

/// The certificates one validation can use, by index: 0 is the leaf, then the
/// trust anchors (1 ..= `anchor_count()`), then the intermediates.
pub(super) struct Pool<'p, 'c> {
    /// The leaf, then the intermediates.
    pub(super) certs: Vec<Cert<'c>>,
    /// The anchors in two runs, around one left out (the leaf itself).
    pub(super) anchors: [&'p [Anchor<'c>]; 2],
}

impl<'c> Pool<'_, 'c> {
    pub(super) fn anchor_count(&self) -> usize {
        self.anchors[0].len() + self.anchors[1].len()
    }

    pub(super) fn len(&self) -> usize {
        self.certs.len() + self.anchor_count()
    }

    fn anchor(&self, a: usize) -> Option<&Anchor<'c>> {
        let [first, second] = self.anchors;
        match a.checked_sub(first.len()) {
            None => first.get(a),
            Some(b) => second.get(b),
        }
    }

    pub(super) fn get(&self, i: usize) -> Option<&Cert<'c>> {
        let anchors = self.anchor_count();
        match i.checked_sub(1) {
            None => self.certs.first(),
            Some(a) if a < anchors => self.anchor(a).map(|a| &a.cert),
            Some(a) => self.certs.get(a - anchors + 1),
        }
    }

    /// The anchor's parsed keys, if `i` is an anchor.
    pub(super) fn parsed_keys(&self, i: usize) -> Option<&ParsedKeys> {
        self.anchor(i.checked_sub(1)?).map(|a| &a.keys)
    }

    /// Every certificate but the leaf, with its index.
    pub(super) fn issuers(&self) -> impl Iterator<Item = (usize, &Cert<'c>)> {
        (1..self.len()).filter_map(|i| self.get(i).map(|c| (i, c)))
    }
}
