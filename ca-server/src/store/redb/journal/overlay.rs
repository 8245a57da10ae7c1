//! The overlay: blocks newer than the store file, and their images at the last sync.

use std::io;

use super::{JournalBackend, State, BLOCK};

/// A block to overwrite whole: a spare one, or a new one.
fn spare_block(spare: &mut Vec<Box<[u8]>>) -> Box<[u8]> {
    spare
        .pop()
        .unwrap_or_else(|| vec![0u8; BLOCK as usize].into_boxed_slice())
}

/// A copy of `block` in a spare block.
fn copied_block(spare: &mut Vec<Box<[u8]>>, block: &[u8]) -> Box<[u8]> {
    let mut copy = spare_block(spare);
    copy.copy_from_slice(block);
    copy
}

impl JournalBackend {
    /// Block `index` as the store holds it now, outside the overlay.
    fn base_block(&self, st: &mut State, index: u64) -> io::Result<Box<[u8]>> {
        let mut block = spare_block(&mut st.spare);
        let start = index * BLOCK;
        let on_file = st.clean_len.min(st.main_len);
        let n = if start < on_file {
            let n = (on_file - start).min(BLOCK) as usize;
            self.main.read(start, &mut block[..n])?;
            n
        } else {
            0
        };
        block[n..].fill(0);
        Ok(block)
    }

    /// Block `index` as the store holds it now.
    fn current_block(&self, st: &mut State, index: u64) -> io::Result<Box<[u8]>> {
        match st.overlay.get(&index) {
            Some(b) => Ok(copied_block(&mut st.spare, b)),
            None => self.base_block(st, index),
        }
    }

    /// Remember block `index` as of the last sync, before it first changes.
    fn note_before(&self, st: &mut State, index: u64) -> io::Result<()> {
        if !st.before.contains_key(&index) {
            let mut block = self.current_block(st, index)?;
            zero_from(&mut block, index, st.period_min_len);
            st.before.insert(index, block);
        }
        Ok(())
    }

    pub(super) fn apply_write(&self, st: &mut State, offset: u64, data: &[u8]) -> io::Result<()> {
        let end = offset
            .checked_add(data.len() as u64)
            .ok_or_else(|| io::Error::other("write past the largest offset"))?;
        let mut at = offset;
        while at < end {
            let index = at / BLOCK;
            let within = (at % BLOCK) as usize;
            let n = ((BLOCK as usize) - within).min((end - at) as usize);
            if st.overlay.contains_key(&index) {
                self.note_before(st, index)?;
            } else {
                // One read serves both the before-image and the overlay.
                let block = self.base_block(st, index)?;
                if !st.before.contains_key(&index) {
                    let mut before = copied_block(&mut st.spare, &block);
                    zero_from(&mut before, index, st.period_min_len);
                    st.before.insert(index, before);
                }
                st.overlay.insert(index, block);
            }
            let src = &data[(at - offset) as usize..(at - offset) as usize + n];
            if let Some(block) = st.overlay.get_mut(&index) {
                block[within..within + n].copy_from_slice(src);
            }
            at += n as u64;
        }
        st.len = st.len.max(end);
        Ok(())
    }

    pub(super) fn apply_set_len(&self, st: &mut State, len: u64) -> io::Result<()> {
        if len < st.len {
            let first_gone = len.div_ceil(BLOCK);
            if len % BLOCK != 0 {
                // The block the new end falls in keeps its head only.
                let index = len / BLOCK;
                self.note_before(st, index)?;
                let mut block = self.current_block(st, index)?;
                zero_from(&mut block, index, len);
                st.overlay.insert(index, block);
            }
            st.overlay.retain(|index, _| *index < first_gone);
            st.period_min_len = st.period_min_len.min(len);
            st.clean_len = st.clean_len.min(len);
            // Replay zeroes from the least length: so does the comparison.
            let min_len = st.period_min_len;
            for (index, block) in st.before.iter_mut() {
                zero_from(block, *index, min_len);
            }
        }
        st.len = len;
        Ok(())
    }
}

/// Zero the bytes of block `index` at or past `len`.
fn zero_from(block: &mut [u8], index: u64, len: u64) {
    let start = index * BLOCK;
    if len <= start {
        block.fill(0);
    } else if len - start < BLOCK {
        block[(len - start) as usize..].fill(0);
    }
}
