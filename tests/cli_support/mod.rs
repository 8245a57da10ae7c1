//! The harness the ca-cli end-to-end tests share: the real ca-server binary,
//! initialised in a temp directory and serving on free ports, and the real
//! ca-cli run against it with only the profile `init` wrote.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_ca-cli");

pub fn ca_server_bin() -> PathBuf {
    let dir = Path::new(BIN).parent().expect("target dir").to_path_buf();
    let bin = dir.join("ca-server");
    if !bin.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "-p", "ca-server", "--bin", "ca-server"]);
        if dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        let st = cmd.status().expect("cargo build -p ca-server");
        assert!(st.success(), "building ca-server failed");
    }
    bin
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// The running server; killed when dropped.
pub struct Server {
    pub child: Child,
    pub data: PathBuf,
    pub home: PathBuf,
    _tmp: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    pub fn start() -> Server {
        let tmp = tempfile::tempdir().expect("tempdir");
        let data = tmp.path().join("data");
        let home = tmp.path().join("home");
        std::fs::create_dir(&home).expect("home");
        let bin = ca_server_bin();
        let (api, public) = (free_port(), free_port());
        let init = Command::new(&bin)
            .args(["init", "--data-dir", data.to_str().unwrap_or_default()])
            .args(["--api-addr", &format!("127.0.0.1:{api}")])
            .args(["--public-addr", &format!("127.0.0.1:{public}")])
            .output()
            .expect("ca-server init");
        assert!(
            init.status.success(),
            "init: {}",
            String::from_utf8_lossy(&init.stderr)
        );
        let child = Command::new(&bin)
            .args(["serve", "--data-dir", data.to_str().unwrap_or_default()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("ca-server serve");
        let server = Server {
            child,
            data,
            home,
            _tmp: tmp,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", api)).is_err() {
            assert!(
                Instant::now() < deadline,
                "ca-server did not start listening"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    pub fn profile(&self) -> String {
        self.data.join("admin/profile.toml").display().to_string()
    }

    /// Run ca-cli with the profile from `ca-server init` (and nothing else from
    /// the environment), as an operator right after init would.
    pub fn cli(&self, args: &[&str]) -> Output {
        self.cli_env(args, &[("CA_PROFILE", &self.profile())])
    }

    pub fn cli_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new(BIN);
        cmd.args(args);
        for k in [
            "CA_SERVER",
            "CA_CLIENT_CERT",
            "CA_CLIENT_KEY",
            "CA_ROOT",
            "CA_PROFILE",
            "CA_SERVER_DATA_DIR",
            "XDG_DATA_HOME",
        ] {
            cmd.env_remove(k);
        }
        // An empty HOME: no default profile is found by accident.
        cmd.env("HOME", &self.home);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().expect("run ca-cli")
    }
}
