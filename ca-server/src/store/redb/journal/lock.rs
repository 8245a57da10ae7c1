//! The journal's lock: an `flock` on its file, exclusive while a server
//! writes the store, shared while a tool reads it.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;

/// Open (creating) the journal at `path` and lock it for this process.
pub fn lock_journal(path: &Path, exclusive: bool) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let created = !path.exists();
    // Owner-only, as the store file: it holds the same records.
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)?;
    try_flock(&file, path, exclusive)?;
    if created {
        // The journal's directory entry must survive a power cut too.
        if let Some(dir) = path.parent() {
            File::open(dir)?.sync_all()?;
        }
    }
    Ok(file)
}

/// How long an open waits for the journal's lock before saying the store is
/// in use. Not zero: a lock lives as long as any descriptor of its open file,
/// and a child this process forks holds copies of all of them until it execs,
/// so a store just closed here can read as locked for a moment.
const LOCK_PATIENCE: std::time::Duration = std::time::Duration::from_secs(2);

/// Lock `file` (the journal at `path`), waiting at most [`LOCK_PATIENCE`].
pub(super) fn try_flock(file: &File, path: &Path, exclusive: bool) -> io::Result<()> {
    use rustix::fs::{flock, FlockOperation};
    let operation = if exclusive {
        FlockOperation::NonBlockingLockExclusive
    } else {
        FlockOperation::NonBlockingLockShared
    };
    let started = std::time::Instant::now();
    loop {
        match flock(file, operation) {
            Ok(()) => return Ok(()),
            Err(e) if e == rustix::io::Errno::WOULDBLOCK => {
                if started.elapsed() >= LOCK_PATIENCE {
                    return Err(in_use(path));
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

fn in_use(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::WouldBlock,
        format!(
            "{} is locked: the store is open in another process (a running server?)",
            path.display()
        ),
    )
}
