//! `ca-cli trust install` / `trust uninstall`: put a root certificate where
//! relying parties read trust anchors, or take it out again (as
//! `mkcert -install` and `step certificate install` do):
//!
//! - the system store: `/usr/local/share/ca-certificates/` and
//!   `update-ca-certificates` (Debian and Ubuntu; as root);
//! - NSS databases (`certutil`): the user's `~/.pki/nssdb`, which Chromium
//!   reads on Linux (made if missing), and every Firefox profile that exists;
//! - a Java keystore given by path (`keytool`).
//!
//! Entries are named after the root's SHA-256 fingerprint, so uninstall
//! removes exactly what install added and nothing an operator put there.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use serde::Serialize;

use crate::output::Out;

#[derive(Args, Debug)]
pub struct TrustArgs {
    #[command(subcommand)]
    pub command: TrustCommand,
}

#[derive(Subcommand, Debug)]
pub enum TrustCommand {
    /// Trust the root: system store, NSS databases (Chromium, Firefox), a Java keystore.
    Install(TrustTargets),
    /// Remove what `trust install` added.
    Uninstall(TrustTargets),
}

#[derive(Args, Debug)]
pub struct TrustTargets {
    /// The root certificate (PEM). Default: the root of your client profile.
    #[arg(long)]
    pub cert: Option<PathBuf>,
    /// Leave the system store alone.
    #[arg(long)]
    pub no_system: bool,
    /// Leave NSS databases alone.
    #[arg(long)]
    pub no_nss: bool,
    /// An NSS database directory to use instead of ~/.pki/nssdb and the
    /// Firefox profiles (repeatable).
    #[arg(long = "nss-db")]
    pub nss_dbs: Vec<PathBuf>,
    /// A Java keystore (JKS or PKCS#12) to add the root to.
    #[arg(long)]
    pub java_keystore: Option<PathBuf>,
    /// The Java keystore's password.
    #[arg(long, default_value = "changeit")]
    pub java_storepass: String,
    /// The system store's directory (for tests and other layouts).
    #[arg(long, default_value = "/usr/local/share/ca-certificates", hide = true)]
    pub system_dir: PathBuf,
    /// Profile and connection settings, for the default certificate.
    #[command(flatten)]
    pub conn: crate::client::ConnArgs,
}

#[derive(Serialize)]
struct TargetResult {
    target: String,
    done: bool,
    detail: String,
}

#[derive(Serialize)]
struct TrustReport {
    action: &'static str,
    name: String,
    sha256: String,
    targets: Vec<TargetResult>,
}

fn tool(program: &str, args: &[&str], package: &str) -> Result<std::process::Output> {
    Command::new(program)
        .args(args)
        .output()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                anyhow::anyhow!("{program} not found: install {package}")
            }
            _ => anyhow::anyhow!("running {program}: {e}"),
        })
}

fn said(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
    .trim()
    .to_string()
}

/// ~/.pki/nssdb (made if missing: Chromium reads it) and every Firefox
/// profile with a cert9.db.
fn default_nss_dbs() -> Result<Vec<PathBuf>> {
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .context("HOME is not set: give --nss-db")?;
    let mut dbs = vec![home.join(".pki/nssdb")];
    for base in [".mozilla/firefox", "snap/firefox/common/.mozilla/firefox"] {
        if let Ok(entries) = std::fs::read_dir(home.join(base)) {
            for e in entries.flatten() {
                if e.path().join("cert9.db").exists() {
                    dbs.push(e.path());
                }
            }
        }
    }
    Ok(dbs)
}

fn nss(db: &Path, install: bool, name: &str, pem: &Path) -> Result<String> {
    let arg = format!("sql:{}", db.display());
    if install && !db.join("cert9.db").exists() {
        std::fs::create_dir_all(db).with_context(|| format!("making {}", db.display()))?;
        let out = tool(
            "certutil",
            &["-N", "-d", &arg, "--empty-password"],
            "libnss3-tools",
        )?;
        if !out.status.success() {
            bail!("certutil -N: {}", said(&out));
        }
    }
    if install {
        let pem = pem.to_string_lossy();
        let out = tool(
            "certutil",
            &["-A", "-d", &arg, "-n", name, "-t", "C,,", "-i", &pem],
            "libnss3-tools",
        )?;
        if !out.status.success() {
            bail!("certutil -A: {}", said(&out));
        }
        Ok(format!("trusted in {}", db.display()))
    } else {
        if !db.join("cert9.db").exists() {
            return Ok(format!("no NSS database in {}", db.display()));
        }
        let out = tool("certutil", &["-D", "-d", &arg, "-n", name], "libnss3-tools")?;
        if out.status.success() {
            Ok(format!("removed from {}", db.display()))
        } else if said(&out).contains("could not find certificate") {
            Ok(format!("was not in {}", db.display()))
        } else {
            bail!("certutil -D: {}", said(&out))
        }
    }
}

fn system(dir: &Path, install: bool, file_name: &str, pem: &[u8]) -> Result<String> {
    let path = dir.join(file_name);
    if install {
        std::fs::create_dir_all(dir).with_context(|| format!("making {}", dir.display()))?;
        std::fs::write(&path, pem)
            .with_context(|| format!("writing {} (run as root)", path.display()))?;
    } else {
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(format!("{} was not there", path.display()))
            }
            Err(e) => {
                return Err(e).with_context(|| format!("removing {} (run as root)", path.display()))
            }
        }
    }
    let out = tool("update-ca-certificates", &["--fresh"], "ca-certificates")?;
    if !out.status.success() {
        bail!("update-ca-certificates: {}", said(&out));
    }
    Ok(format!(
        "{} {} and ran update-ca-certificates",
        if install { "wrote" } else { "removed" },
        path.display()
    ))
}

fn java(keystore: &Path, pass: &str, install: bool, name: &str, pem: &Path) -> Result<String> {
    let ks = keystore.to_string_lossy();
    let out = if install {
        let file = pem.to_string_lossy();
        tool(
            "keytool",
            &[
                "-importcert",
                "-noprompt",
                "-alias",
                name,
                "-file",
                &file,
                "-keystore",
                &ks,
                "-storepass",
                pass,
            ],
            "a Java runtime (default-jre-headless)",
        )?
    } else {
        tool(
            "keytool",
            &[
                "-delete",
                "-alias",
                name,
                "-keystore",
                &ks,
                "-storepass",
                pass,
            ],
            "a Java runtime (default-jre-headless)",
        )?
    };
    if !out.status.success() {
        bail!("keytool: {}", said(&out));
    }
    Ok(format!(
        "{} {}",
        if install { "added to" } else { "removed from" },
        keystore.display()
    ))
}

pub fn run(a: &TrustArgs, out: &Out) -> Result<()> {
    let (install, t) = match &a.command {
        TrustCommand::Install(t) => (true, t),
        TrustCommand::Uninstall(t) => (false, t),
    };
    let cert_path = match &t.cert {
        Some(p) => p.clone(),
        None => t.conn.resolve()?.root,
    };
    let pem = crate::files::read_text(&cert_path)?;
    let der = ca_core::pem::decode("CERTIFICATE", &pem)
        .with_context(|| format!("{} is not a PEM certificate", cert_path.display()))?;
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &der);
    let sha256 = ca_core::hex::encode(digest.as_ref());
    let short = sha256.get(..16).unwrap_or(&sha256);
    let name = format!("ca-server root {short}");
    let file_name = format!("ca-server-root-{short}.crt");
    // Tools read a file: a normalised copy, whatever the input looked like.
    // In a directory of our own, made exclusively with a random name and
    // owner-only: nobody else can plant or swap the file certutil and
    // keytool read (this often runs as root).
    let private_dir = private_temp_dir().context("making a private temporary directory")?;
    let tmp = private_dir.join(&file_name);
    let normal = ca_core::pem::encode("CERTIFICATE", &der);
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .context("writing a temporary copy of the certificate")?;
        f.write_all(normal.as_bytes())
            .context("writing a temporary copy of the certificate")?;
    }
    let mut targets = Vec::new();
    let mut record = |target: String, r: Result<String>| {
        targets.push(match r {
            Ok(detail) => TargetResult {
                target,
                done: true,
                detail,
            },
            Err(e) => TargetResult {
                target,
                done: false,
                detail: format!("{e:#}"),
            },
        })
    };
    if !t.no_system {
        record(
            "system".into(),
            system(&t.system_dir, install, &file_name, normal.as_bytes()),
        );
    }
    if !t.no_nss {
        let dbs = if t.nss_dbs.is_empty() {
            default_nss_dbs()
        } else {
            Ok(t.nss_dbs.clone())
        };
        match dbs {
            Ok(dbs) => {
                for db in dbs {
                    record(
                        format!("nss {}", db.display()),
                        nss(&db, install, &name, &tmp),
                    );
                }
            }
            Err(e) => record("nss".into(), Err(e)),
        }
    }
    if let Some(ks) = &t.java_keystore {
        record(
            format!("java {}", ks.display()),
            java(ks, &t.java_storepass, install, &name, &tmp),
        );
    }
    let _ = std::fs::remove_file(&tmp);
    let _ = std::fs::remove_dir(&private_dir);
    let failed = targets.iter().filter(|t| !t.done).count();
    let report = TrustReport {
        action: if install { "install" } else { "uninstall" },
        name,
        sha256,
        targets,
    };
    out.emit(&report, || {
        let mut s = format!(
            "{} {} (SHA-256 {})\n",
            if install {
                "trusting"
            } else {
                "no longer trusting"
            },
            cert_path.display(),
            report.sha256
        );
        for t in &report.targets {
            s.push_str(&format!(
                "  {} {}: {}\n",
                if t.done { "ok  " } else { "FAIL" },
                t.target,
                t.detail
            ));
        }
        s
    });
    if failed > 0 {
        bail!("{failed} target(s) failed (see above)");
    }
    Ok(())
}

/// A new directory under the temporary directory, 0700, with a random name
/// (created exclusively: an existing path, or a symlink, is an error).
fn private_temp_dir() -> std::io::Result<std::path::PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let mut b = [0u8; 12];
    aws_lc_rs::rand::fill(&mut b).map_err(|_| std::io::Error::other("no randomness"))?;
    let dir = std::env::temp_dir().join(format!("ca-cli-trust-{}", ca_core::hex::encode(&b)));
    std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
    Ok(dir)
}
