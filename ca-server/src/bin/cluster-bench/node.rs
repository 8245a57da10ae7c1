//! The processes of a cluster run: ca-server nodes, PostgreSQL's CPU, the
//! machine's, and the set-up of their data directories and databases.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::bench_support;

/// One ca-server process on a data directory.
pub(crate) struct Node {
    pub(crate) dir: PathBuf,
    pub(crate) child: Option<Child>,
    pub(crate) api: String,
    pub(crate) public: String,
}

impl Node {
    pub(crate) fn start(dir: &Path) -> anyhow::Result<Node> {
        let mut n = Node {
            dir: dir.to_path_buf(),
            child: None,
            api: String::new(),
            public: String::new(),
        };
        n.restart()?;
        Ok(n)
    }

    pub(crate) fn restart(&mut self) -> anyhow::Result<()> {
        let addresses = self.dir.join(ca_server::server::ADDRESSES_FILE);
        let _ = std::fs::remove_file(&addresses);
        let child = Command::new(bench_support::server_exe()?)
            .args(["serve", "--data-dir"])
            .arg(&self.dir)
            .args(["--api-addr", "127.0.0.1:0", "--public-addr", "127.0.0.1:0"])
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .spawn()?;
        self.child = Some(child);
        let t = Instant::now();
        loop {
            if t.elapsed() > Duration::from_secs(60) {
                bail!("the server in {} did not start", self.dir.display());
            }
            if let Ok(b) = std::fs::read(&addresses) {
                if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&b) {
                    self.api = v["api"].as_str().unwrap_or_default().to_string();
                    self.public = v["public"].as_str().unwrap_or_default().to_string();
                    if !self.api.is_empty() {
                        return Ok(());
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    pub(crate) fn pid(&self) -> Option<String> {
        self.child.as_ref().map(|c| c.id().to_string())
    }

    pub(crate) fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let _ = c.wait();
        }
    }
}

/// CPU seconds of every process named `postgres` (the server and its
/// backends; backends come and go, so this undercounts ended ones).
pub(crate) fn postgres_cpu() -> f64 {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    entries
        .filter_map(|e| e.ok())
        .filter(|e| {
            std::fs::read_to_string(e.path().join("comm")).is_ok_and(|c| c.trim() == "postgres")
        })
        .filter_map(|e| bench_support::cpu_seconds(&e.file_name().to_string_lossy()))
        .sum()
}

/// (busy, total) jiffies of the whole machine.
pub(crate) fn machine_jiffies() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let cpu: Vec<f64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    let total: f64 = cpu.iter().sum();
    let idle = cpu.get(3).copied().unwrap_or(0.0) + cpu.get(4).copied().unwrap_or(0.0);
    (total - idle, total)
}

/// Run SQL on the server's `postgres` database.
pub(crate) async fn admin_sql(base: &str, sql: &str) -> anyhow::Result<()> {
    let (client, conn) =
        tokio_postgres::connect(&format!("{base}/postgres"), tokio_postgres::NoTls)
            .await
            .context("connecting to PostgreSQL")?;
    let driver = tokio::spawn(conn);
    client.batch_execute(sql).await?;
    drop(client);
    let _ = driver.await;
    Ok(())
}

/// `ca-server init` into `dir` (on redb, or on the database `url`).
pub(crate) fn init(dir: &Path, url: Option<&str>) -> anyhow::Result<()> {
    let mut cmd = Command::new(bench_support::server_exe()?);
    cmd.args(["init", "--data-dir"]).arg(dir);
    if let Some(u) = url {
        cmd.args(["--postgres", u]);
    }
    let st = cmd
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .status()?;
    if !st.success() {
        bail!("ca-server init failed");
    }
    Ok(())
}

pub(crate) fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let target = to.join(e.file_name());
        if e.file_type()?.is_dir() {
            copy_dir(&e.path(), &target)?;
        } else {
            std::fs::copy(e.path(), &target)?;
        }
    }
    Ok(())
}
