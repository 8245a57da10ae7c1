//! Reading inputs and writing outputs safely: bounded reads, private keys
//! written 0600, and nothing overwritten without `--force`.

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

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
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| -> Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)
            .with_context(|| format!("cannot create {}", tmp.display()))?;
        // The mode above only applies to new files; make sure of it.
        f.set_permissions(std::fs::Permissions::from_mode(mode))?;
        f.write_all(data)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path).with_context(|| format!("cannot replace {}", path.display()))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Write to `path`, or to stdout when it is `None` or `-`.
pub fn write_or_stdout(path: Option<&Path>, data: &[u8], force: bool) -> Result<bool> {
    match path {
        Some(p) if p.as_os_str() != "-" => {
            write_output(p, data, false, force)?;
            Ok(true)
        }
        _ => {
            std::io::stdout()
                .write_all(data)
                .context("writing standard output")?;
            Ok(false)
        }
    }
}
