//! A storage backend that loses what was not synced when the process dies,
//! as a power cut loses what the operating system had not yet written:
//! writes stay in this process's memory until `sync_data`, which applies them
//! to the file and syncs it. A kill -9 then shows what a power loss would
//! (with the ordinary backend the page cache would keep them). Tests only:
//! compiled with the `forensics` feature and chosen by [`ENV`].

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Mutex;

/// Set (to anything) to open the store on this backend.
pub const ENV: &str = "CA_SERVER_TEST_POWER_LOSS";
/// Set as well to commit without syncing (the positive control: answered
/// writes must then be lost).
pub const UNSYNCED_ENV: &str = "CA_SERVER_TEST_UNSYNCED_COMMITS";

#[derive(Debug)]
pub struct PowerLossBackend {
    file: File,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Writes since the last sync, in order.
    pending: Vec<(u64, Vec<u8>)>,
    len: u64,
}

impl PowerLossBackend {
    pub fn open(path: &Path) -> std::io::Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        let len = file.metadata()?.len();
        Ok(PowerLossBackend {
            file,
            state: Mutex::new(State {
                pending: Vec::new(),
                len,
            }),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl redb::StorageBackend for PowerLossBackend {
    fn len(&self) -> std::io::Result<u64> {
        Ok(self.state().len)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> std::io::Result<()> {
        let state = self.state();
        let end = offset + out.len() as u64;
        if end > state.len {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "read past the end",
            ));
        }
        // What the file holds (a write past its end may be pending only),
        // zeros beyond.
        let on_disk = self.file.metadata()?.len();
        let from_file = on_disk.saturating_sub(offset).min(out.len() as u64) as usize;
        self.file.read_exact_at(&mut out[..from_file], offset)?;
        out[from_file..].fill(0);
        // What was written since the last sync, over what the file holds.
        for (at, data) in &state.pending {
            let (from, to) = ((*at).max(offset), (*at + data.len() as u64).min(end));
            if from < to {
                let src = &data[(from - at) as usize..(to - at) as usize];
                out[(from - offset) as usize..(to - offset) as usize].copy_from_slice(src);
            }
        }
        Ok(())
    }

    fn set_len(&self, len: u64) -> std::io::Result<()> {
        let mut state = self.state();
        self.file.set_len(len)?;
        state.pending.retain_mut(|(at, data)| {
            if *at >= len {
                return false;
            }
            data.truncate((len - *at).min(data.len() as u64) as usize);
            true
        });
        state.len = len;
        Ok(())
    }

    fn sync_data(&self) -> std::io::Result<()> {
        let mut state = self.state();
        for (at, data) in state.pending.drain(..) {
            self.file.write_all_at(&data, at)?;
        }
        self.file.sync_data()
    }

    fn write(&self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        let mut state = self.state();
        state.len = state.len.max(offset + data.len() as u64);
        state.pending.push((offset, data.to_vec()));
        Ok(())
    }
}
