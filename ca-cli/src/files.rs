//! Reading inputs and writing outputs safely: bounded reads, private keys
//! written 0600, and nothing overwritten without `--force`.

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// Largest file the CLI reads: certificates, CSRs and CRLs are far smaller, and
/// a bound keeps a wrong path (a disk image, /dev/zero) from eating memory.
pub const MAX_INPUT: u64 = 16 * 1024 * 1024;

/// Read a file, or stdin for `-`.
pub fn read_input(path: &Path) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    if path.as_os_str() == "-" {
        std::io::stdin()
            .take(MAX_INPUT + 1)
            .read_to_end(&mut buf)
            .context("reading standard input")?;
    } else {
        let f =
            std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        f.take(MAX_INPUT + 1)
            .read_to_end(&mut buf)
            .with_context(|| format!("cannot read {}", path.display()))?;
    }
    if buf.len() as u64 > MAX_INPUT {
        bail!("{} is larger than {} MiB", path.display(), MAX_INPUT >> 20);
    }
    if buf.is_empty() {
        bail!("{} is empty", path.display());
    }
    Ok(buf)
}

/// Read a file that must be text (PEM).
pub fn read_text(path: &Path) -> Result<String> {
    let bytes = read_input(path)?;
    String::from_utf8(bytes)
        .with_context(|| format!("{} is not text (PEM expected)", path.display()))
}

/// Write `data` to `path`. Secrets are created with mode 0600 from the start (not
/// chmod-ed after, which would leave a window where others could read them).
/// Without `force` an existing file is an error; with it the file is replaced
/// atomically through a temporary file beside it.
pub fn write_output(path: &Path, data: &[u8], secret: bool, force: bool) -> Result<()> {
    let mode = if secret { 0o600 } else { 0o644 };
    if !force {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(path)
            .map_err(|e| {
                if e.kind() == std::io::ErrorKind::AlreadyExists {
                    anyhow::anyhow!(
                        "{} already exists (use --force to overwrite it)",
                        path.display()
                    )
                } else {
                    anyhow::Error::new(e).context(format!("cannot create {}", path.display()))
                }
            })?;
        f.write_all(data)
            .and_then(|()| f.sync_all())
            .with_context(|| format!("cannot write {}", path.display()))?;
        return Ok(());
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .with_context(|| format!("{} is not a file path", path.display()))?;
    let (mut f, tmp) = create_temp(dir, &name.to_string_lossy(), mode)?;
    let result = (|| -> Result<()> {
        f.write_all(data)
            .and_then(|()| f.sync_all())
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        // rename replaces the directory entry itself: a symlink at `path` is
        // replaced, not followed.
        std::fs::rename(&tmp, path).with_context(|| format!("cannot replace {}", path.display()))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Create a fresh temporary file beside the target. The name carries a random
/// suffix and the file is opened with `create_new` (O_EXCL, which also refuses a
/// symlink in its place), so nobody can plant a file or a symlink at the name
/// in advance and have the secret written there or with their permissions.
fn create_temp(dir: &Path, name: &str, mode: u32) -> Result<(std::fs::File, PathBuf)> {
    create_temp_with(dir, name, mode, &mut || {
        let mut suffix = [0u8; 8];
        aws_lc_rs::rand::fill(&mut suffix)
            .map_err(|_| anyhow::anyhow!("no randomness for a temporary file name"))?;
        Ok(suffix)
    })
}

/// [`create_temp`] with the suffixes from `next_suffix` (tests choose them,
/// to plant a file at the very name the next attempt will use).
fn create_temp_with(
    dir: &Path,
    name: &str,
    mode: u32,
    next_suffix: &mut dyn FnMut() -> Result<[u8; 8]>,
) -> Result<(std::fs::File, PathBuf)> {
    const ATTEMPTS: usize = 8;
    let mut last = None;
    for _ in 0..ATTEMPTS {
        let suffix = next_suffix()?;
        let tmp = dir.join(format!(".{name}.{}.tmp", crate::output::hex(&suffix)));
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)
        {
            Ok(f) => return Ok((f, tmp)),
            // A clash with 64 random bits is someone else's file: try another name.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => {
                return Err(
                    anyhow::Error::new(e).context(format!("cannot create {}", tmp.display()))
                )
            }
        }
    }
    let e = last.unwrap_or_else(|| std::io::Error::other("no attempt made"));
    Err(anyhow::Error::new(e).context(format!(
        "cannot create a temporary file in {}",
        dir.display()
    )))
}

/// Write to `path`, or to stdout when it is `None` or `-`.
pub fn write_or_stdout(path: Option<&Path>, data: &[u8], force: bool) -> Result<bool> {
    match path {
        Some(p) if p.as_os_str() != "-" => {
            write_output(p, data, false, force)?;
            Ok(true)
        }
        _ => {
            crate::output::write_stdout(data).context("writing standard output")?;
            Ok(false)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn force_write_does_not_follow_a_planted_symlink() {
        let t = tempfile::tempdir().unwrap();
        let target = t.path().join("k.pem");
        std::fs::write(&target, b"old").unwrap();
        let victim = t.path().join("victim");
        std::fs::write(&victim, b"victim").unwrap();
        // A symlink planted at the exact temporary name the first attempt
        // uses (the suffix is chosen here; in use it is random).
        let planted = t
            .path()
            .join(format!(".k.pem.{}.tmp", crate::output::hex(&[0u8; 8])));
        std::os::unix::fs::symlink(&victim, &planted).unwrap();
        let mut suffixes = [[0u8; 8], [1u8; 8]].into_iter();
        let (mut f, tmp) = create_temp_with(t.path(), "k.pem", 0o600, &mut || {
            Ok(suffixes.next().unwrap_or([2u8; 8]))
        })
        .unwrap();
        assert_ne!(tmp, planted, "the planted name was used");
        f.write_all(b"secret").unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"victim");
        assert!(std::fs::symlink_metadata(&planted)
            .unwrap()
            .file_type()
            .is_symlink());

        // And end to end through write_output, with a random name.
        write_output(&target, b"secret", true, true).unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"victim");
        assert_eq!(std::fs::read(&target).unwrap(), b"secret");
        let mode = std::fs::metadata(&target).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn force_write_replaces_a_symlinked_target_instead_of_following_it() {
        let t = tempfile::tempdir().unwrap();
        let victim = t.path().join("victim");
        std::fs::write(&victim, b"victim").unwrap();
        let target = t.path().join("k.pem");
        std::os::unix::fs::symlink(&victim, &target).unwrap();

        write_output(&target, b"secret", true, true).unwrap();

        assert_eq!(std::fs::read(&victim).unwrap(), b"victim");
        let meta = std::fs::symlink_metadata(&target).unwrap();
        assert!(meta.file_type().is_file());
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    }

    #[test]
    fn temporary_names_are_not_predictable() {
        let t = tempfile::tempdir().unwrap();
        let (_a, pa) = create_temp(t.path(), "k.pem", 0o600).unwrap();
        let (_b, pb) = create_temp(t.path(), "k.pem", 0o600).unwrap();
        assert_ne!(pa, pb);
    }
}
