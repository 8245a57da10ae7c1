//! A throwaway PostgreSQL cluster for tests: `initdb` into a fresh temporary
//! directory, started with `pg_ctl` on a free loopback port, as the
//! `postgres` user when run as root (PostgreSQL refuses to run as root), and
//! stopped and removed on drop. Compiled for tests only.

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct TestCluster {
    pub port: u16,
    dir: PathBuf,
    bin: PathBuf,
    run_as: Option<String>,
}

/// Where the server programs are: on PATH, or Debian's versioned directory.
fn server_bin() -> Result<PathBuf, String> {
    if let Ok(path) = std::env::var("PATH") {
        for d in std::env::split_paths(&path) {
            // A symlink on PATH leads to the directory with the other programs.
            if let Ok(real) = d.join("initdb").canonicalize() {
                if let Some(dir) = real.parent().filter(|p| p.join("pg_ctl").is_file()) {
                    return Ok(dir.to_path_buf());
                }
            }
        }
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map_err(|_| "PostgreSQL is not installed (no initdb; run tests/install-test-tools.sh)")?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|b| b.join("initdb").is_file())
        .collect();
    found.sort();
    found
        .pop()
        .ok_or_else(|| "PostgreSQL is not installed (no initdb)".to_string())
}

fn free_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

fn uid_of(user: &str) -> Option<(u32, u32)> {
    let out = Command::new("id").arg("-u").arg(user).output().ok()?;
    let grp = Command::new("id").arg("-g").arg(user).output().ok()?;
    let uid = String::from_utf8_lossy(&out.stdout).trim().parse().ok()?;
    let gid = String::from_utf8_lossy(&grp.stdout).trim().parse().ok()?;
    Some((uid, gid))
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

impl TestCluster {
    pub fn start() -> Result<TestCluster, String> {
        let bin = server_bin()?;
        let nonce: u64 = {
            let mut b = [0u8; 8];
            getrandom::getrandom(&mut b).map_err(|e| e.to_string())?;
            u64::from_le_bytes(b)
        };
        let dir = std::env::temp_dir().join(format!("ca-pg-{}-{nonce:016x}", std::process::id()));
        std::fs::create_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let run_as = if is_root() {
            let user = ["postgres", "nobody"]
                .into_iter()
                .find(|u| uid_of(u).is_some())
                .ok_or("running as root and no postgres or nobody user to run PostgreSQL as")?;
            let (uid, gid) = uid_of(user).ok_or("no uid")?;
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).map_err(|e| e.to_string())?;
            Some(user.to_string())
        } else {
            None
        };
        let mut cluster = TestCluster {
            port: free_port()?,
            dir,
            bin,
            run_as,
        };
        let data = cluster.dir.join("data");
        cluster.run(
            "initdb",
            &[
                "-D",
                path_str(&data)?,
                "-A",
                "trust",
                "-U",
                "ca",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
        )?;
        let started = cluster.restart();
        if let Err(e) = started {
            let log = std::fs::read_to_string(cluster.dir.join("log")).unwrap_or_default();
            cluster.port = 0;
            return Err(format!("{e}\n{log}"));
        }
        Ok(cluster)
    }

    fn run(&self, program: &str, args: &[&str]) -> Result<(), String> {
        let exe = self.bin.join(program);
        let mut cmd = match &self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(&exe);
                c
            }
            None => Command::new(&exe),
        };
        let out = cmd
            .args(args)
            .current_dir(&self.dir)
            .output()
            .map_err(|e| format!("{program}: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "{program} failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(())
    }

    pub fn url(&self, db: &str) -> String {
        format!("postgres://ca@127.0.0.1:{}/{db}", self.port)
    }

    /// A new, empty database.
    pub fn create_db(&self, name: &str) -> Result<String, String> {
        let out = Command::new(self.bin.join("psql"))
            .args(["-X", "-q", "-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-U", "ca", "-d", "postgres", "-c"])
            .arg(format!("CREATE DATABASE \"{name}\""))
            .output()
            .map_err(|e| format!("psql: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        Ok(self.url(name))
    }

    /// Run one SQL statement in `db` with psql; its rows, unaligned.
    pub fn psql(&self, db: &str, sql: &str) -> Result<String, String> {
        let out = Command::new(self.bin.join("psql"))
            .args([
                "-X",
                "-q",
                "-A",
                "-t",
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
            ])
            .args(["-U", "ca", "-d", db, "-c", sql])
            .output()
            .map_err(|e| format!("psql: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// Serve TLS with this certificate and key (PEM), and accept TCP
    /// connections over TLS only; restarts the server.
    pub fn require_tls(&self, cert_pem: &[u8], key_pem: &[u8]) -> Result<(), String> {
        use std::os::unix::fs::PermissionsExt;
        let data = self.dir.join("data");
        let owner = self.run_as.as_deref().and_then(uid_of);
        for (name, bytes) in [("server.crt", cert_pem), ("server.key", key_pem)] {
            let path = data.join(name);
            std::fs::write(&path, bytes).map_err(|e| format!("{name}: {e}"))?;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                .map_err(|e| e.to_string())?;
            if let Some((uid, gid)) = owner {
                std::os::unix::fs::chown(&path, Some(uid), Some(gid)).map_err(|e| e.to_string())?;
            }
        }
        let conf = data.join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf).map_err(|e| e.to_string())?;
        text.push_str("\nssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n");
        std::fs::write(&conf, text).map_err(|e| e.to_string())?;
        let hba = data.join("pg_hba.conf");
        let rules = std::fs::read_to_string(&hba).map_err(|e| e.to_string())?;
        let only_tls: String = rules
            .lines()
            .map(|l| match l.strip_prefix("host ") {
                Some(rest) => format!("hostssl {rest}\n"),
                None => format!("{l}\n"),
            })
            .collect();
        std::fs::write(&hba, only_tls).map_err(|e| e.to_string())?;
        self.stop(false)?;
        self.restart()
    }

    /// Stop the server at once (as a crash would) or cleanly.
    pub fn stop(&self, immediate: bool) -> Result<(), String> {
        let data = self.dir.join("data");
        let mode = if immediate { "immediate" } else { "fast" };
        self.run(
            "pg_ctl",
            &["stop", "-w", "-m", mode, "-D", path_str(&data)?],
        )
    }

    /// Start the server (again, after [`TestCluster::stop`]) on its port.
    /// Tests lose nothing to an OS crash: fsync is off for speed.
    pub fn restart(&self) -> Result<(), String> {
        let data = self.dir.join("data");
        let log = self.dir.join("log");
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300",
            self.port,
            path_str(&self.dir)?
        );
        self.run(
            "pg_ctl",
            &[
                "start",
                "-w",
                "-t",
                "60",
                "-D",
                path_str(&data)?,
                "-l",
                path_str(&log)?,
                "-o",
                &opts,
            ],
        )
    }
}

fn path_str(p: &Path) -> Result<&str, String> {
    p.to_str()
        .ok_or_else(|| format!("{} is not UTF-8", p.display()))
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        if self.port != 0 {
            let _ = self.stop(true);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
