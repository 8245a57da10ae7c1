//! The one harness every end-to-end test in this folder shares: where the
//! binaries and fixtures are, running external programs, free ports, a real
//! `ca-server` process ([`server`]) and an in-process CA hierarchy ([`pki`]) for
//! the tests that check ca-core's output against other implementations.
//!
//! Each test binary compiles this module whole, so items one binary does not
//! use are not dead code.
#![allow(dead_code)]

pub mod acme;
pub mod cluster;
pub mod pki;
pub mod relying;
pub mod server;

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

#[allow(unused_imports)]
pub use server::{client_identity, code, core_csr, openssl_csr, Server};

/// Damage that keeps a file's length: the case of the first letter of every
/// occurrence of `name` in `bytes` flipped. Returns how many there were.
pub fn flip_case_of(bytes: &mut [u8], name: &[u8]) -> usize {
    let mut flipped = 0;
    if name.is_empty() || name.len() > bytes.len() {
        return 0;
    }
    for at in 0..=bytes.len() - name.len() {
        if &bytes[at..at + name.len()] == name {
            bytes[at] ^= 0x20;
            flipped += 1;
        }
    }
    flipped
}

/// The workspace root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A committed fixture from `fixtures/csr` (made by `fixtures/csr/generate.sh`).
pub fn fixture(name: &str) -> Vec<u8> {
    let path = repo_root().join("fixtures/csr").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()))
}

/// The path of one of the workspace's binaries (`ca-server`, `ca-cli`,
/// `ca-bench`). Cargo names the package's own binaries at compile time; another
/// package's binary is its sibling in the target directory, built when absent
/// (`cargo test --workspace` builds them all before any test runs).
pub fn binary(name: &str) -> PathBuf {
    let known = match name {
        "ca-server" => option_env!("CARGO_BIN_EXE_ca-server"),
        "ca-bench" => option_env!("CARGO_BIN_EXE_ca-bench"),
        "ca-cli" => option_env!("CARGO_BIN_EXE_ca-cli"),
        _ => None,
    };
    if let Some(path) = known {
        return PathBuf::from(path);
    }
    // target/<profile>/deps/<this test> -> target/<profile>/<name>
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target directory")
        .to_path_buf();
    let bin = dir.join(name);
    if bin.exists() {
        // Cargo holds the build lock while tests run, so a stale binary cannot
        // be rebuilt from here: refuse it rather than test old code.
        let package = if name == "ca-cli" {
            "ca-cli"
        } else {
            "ca-server"
        };
        if let Some(newer) = newer_source(&bin, &[package, "ca-core"]) {
            panic!(
                "{} is older than {}: run `cargo build -p {package}` (or `cargo test --workspace`)",
                bin.display(),
                newer.display()
            );
        }
    } else {
        let package = if name == "ca-cli" {
            "ca-cli"
        } else {
            "ca-server"
        };
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "-p", package, "--bin", name]);
        if dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        let st = cmd.status().expect("cargo build");
        assert!(st.success(), "building {name} failed");
    }
    bin
}

/// A source file of these packages modified after `bin` was built, if any.
fn newer_source(bin: &Path, packages: &[&str]) -> Option<PathBuf> {
    let built = std::fs::metadata(bin).and_then(|m| m.modified()).ok()?;
    let mut stack: Vec<PathBuf> = packages
        .iter()
        .map(|p| repo_root().join(p).join("src"))
        .collect();
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).ok()?.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if entry
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t > built)
            {
                return Some(path);
            }
        }
    }
    None
}

/// Run a command to completion; a program that cannot start fails the test
/// with the command that installs the test tools.
pub fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| {
        panic!(
            "cannot run {cmd:?}: {e}. Install the test tools with: bash tests/install-test-tools.sh"
        )
    })
}

/// `ca-server ARGS --data-dir DIR` (an offline tool): whether it
/// succeeded, and what it said (stdout, then stderr).
pub fn offline(args: &[&str], dir: &Path) -> (bool, String) {
    let out = run(Command::new(server::server_bin())
        .args(args)
        .arg("--data-dir")
        .arg(dir));
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// [`run`] for a program and its arguments.
pub fn run_program(program: &str, args: &[&str]) -> Output {
    run(Command::new(program).args(args))
}

/// A command's stdout and stderr together, for assertion messages.
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
/// A port nothing listens on, for a server that must know its address before
/// it starts (init writes it into the config and the client profile).
///
/// Not the kernel's pick (`bind(0)`): that comes from the ephemeral range
/// (32768–60999 on Linux), where every outgoing connection and every server
/// started with port 0 also takes ports, so another test could take it before
/// our server binds it. Ports here come from below that range, each handed
/// out once per test process (test binaries run one at a time), starting at
/// a point that differs between processes.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 20_000;
    const SPAN: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let _ = NEXT.compare_exchange(
        u32::MAX,
        (std::process::id().wrapping_mul(7_919)) % SPAN,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    for _ in 0..SPAN {
        let port = FIRST + NEXT.fetch_add(1, Ordering::SeqCst) % SPAN;
        let port = u16::try_from(port).expect("port fits");
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in {FIRST}..{}", FIRST + SPAN)
}

/// Wait until something listens on 127.0.0.1:`port`.
pub fn wait_for_port(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{what} did not listen on port {port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A child process killed (and reaped) when the test lets go of it.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
