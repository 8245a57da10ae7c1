//! A real `ca-server` process on 127.0.0.1 with a temporary data directory,
//! driven by curl, openssl, the Rust client and the real `ca-cli`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ca_server::api::client::{ApiClient, ClientProfile};
use ca_server::config::Config;
use serde_json::Value;

use super::{binary, free_port, run};

/// The `ca-server` binary.
pub fn server_bin() -> PathBuf {
    binary("ca-server")
}

pub struct Server {
    pub tmp: tempfile::TempDir,
    /// The data directory.
    pub dir: PathBuf,
    /// An empty HOME for `ca-cli`, so no default profile is found by accident.
    pub home: PathBuf,
    child: Option<Child>,
    pub api: String,
    pub public: String,
    pub profile: ClientProfile,
    pub config: Config,
    /// Extra `serve` flags.
    pub extra_args: Vec<String>,
    /// Extra environment for the server process (overrides RUST_LOG=info).
    pub env: Vec<(String, String)>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        // A failing test shows what the server said (cargo prints the
        // captured output of failed tests only).
        if std::thread::panicking() {
            eprintln!("---- ca-server log ----\n{}", self.log());
        }
    }
}

impl Server {
    /// `ca-server init` in a fresh temporary directory, then start it.
    pub fn start_new() -> Server {
        Self::start_new_with(&[])
    }

    /// Like [`Server::start_new`], with extra environment for init and serve;
    /// init's output goes to the server log too.
    pub fn start_new_with(env: &[(&str, &str)]) -> Server {
        let mut s = Self::init_with(&[], env);
        s.start();
        s
    }

    /// `ca-server init` with extra arguments in a fresh temporary directory,
    /// not started. The API and public addresses are fixed free ports, so the
    /// profile init writes for the CLI names the address the server will serve.
    pub fn init_with(args: &[&str], env: &[(&str, &str)]) -> Server {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("data");
        let home = tmp.path().join("home");
        std::fs::create_dir(&home).expect("home");
        let mut cmd = Command::new(server_bin());
        cmd.args(["init", "--data-dir"])
            .arg(&dir)
            .args(["--api-addr", &format!("127.0.0.1:{}", free_port())])
            .args(["--public-addr", &format!("127.0.0.1:{}", free_port())])
            .args(args)
            .env("RUST_LOG", "warn");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = run(&mut cmd);
        assert!(
            out.status.success(),
            "init failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut init_log = out.stdout.clone();
        init_log.extend_from_slice(&out.stderr);
        std::fs::write(tmp.path().join("server.log"), init_log).expect("log");
        let profile = ClientProfile::load(&dir.join("admin/profile.toml")).expect("profile");
        let config = Config::load(&dir).expect("config");
        Server {
            tmp,
            dir,
            home,
            child: None,
            api: String::new(),
            public: String::new(),
            profile,
            config,
            extra_args: vec![],
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    /// Start (or restart) the server process; wait until it has bound its ports.
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "already running");
        let addresses = self.dir.join(ca_server::server::ADDRESSES_FILE);
        let _ = std::fs::remove_file(&addresses);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.tmp.path().join("server.log"))
            .expect("log file");
        let out_log = log.try_clone().expect("log file");
        let mut cmd = Command::new(server_bin());
        cmd.args(["serve", "--data-dir"])
            .arg(&self.dir)
            .args(&self.extra_args)
            .env("RUST_LOG", "info");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let child = cmd
            .stdout(out_log)
            .stderr(log)
            .spawn()
            .expect("spawn ca-server");
        self.child = Some(child);
        let start = Instant::now();
        loop {
            if let Ok(b) = std::fs::read(&addresses) {
                if let Ok(v) = serde_json::from_slice::<Value>(&b) {
                    self.api = v["api"].as_str().unwrap_or_default().to_string();
                    self.public = v["public"].as_str().unwrap_or_default().to_string();
                    return;
                }
            }
            if let Some(Ok(Some(st))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!("ca-server exited at start: {st}\n{}", self.log());
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "server did not start\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.tmp.path().join("server.log")).unwrap_or_default()
    }

    /// The running server's process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// kill -9.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().expect("SIGKILL");
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("running");
        let st = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status()
            .expect("kill -TERM");
        assert!(st.success());
        let start = Instant::now();
        loop {
            if let Ok(Some(st)) = c.try_wait() {
                return st;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "server did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn admin_dir(&self) -> PathBuf {
        self.dir.join("admin")
    }

    pub fn root_pem(&self) -> PathBuf {
        self.admin_dir().join("root.pem")
    }

    /// Put access-policy statement `id` as the administrator; it must be accepted.
    pub fn put_policy(&self, id: &str, statement: Value) {
        let (st, v) = self.curl("PUT", &format!("/v1/policies/{id}"), Some(&statement));
        assert_eq!(st, 200, "policy {id}: {v}");
    }

    /// The CLI profile `ca-server init` wrote.
    pub fn profile_path(&self) -> PathBuf {
        self.admin_dir().join("profile.toml")
    }

    /// Run ca-cli with the profile from `ca-server init` (and nothing else from
    /// the environment), as an operator right after init would.
    pub fn cli(&self, args: &[&str]) -> Output {
        let profile = self.profile_path();
        self.cli_env(args, &[("CA_PROFILE", profile.to_str().expect("path"))])
    }

    /// Run ca-cli with only `env` from the environment's CA settings.
    pub fn cli_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new(binary("ca-cli"));
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
        cmd.env("HOME", &self.home);
        for (k, v) in env {
            cmd.env(k, v);
        }
        run(&mut cmd)
    }

    /// curl with the admin's client certificate; returns (HTTP status, JSON body).
    pub fn curl(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let admin = self.admin_dir();
        self.curl_as(
            &admin.join("admin.pem"),
            &admin.join("admin.key"),
            method,
            path,
            body,
        )
    }

    /// curl with another client certificate and key.
    pub fn curl_as(
        &self,
        cert: &Path,
        key: &Path,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let mut args: Vec<String> = vec![
            "-sS".into(),
            "--max-time".into(),
            "120".into(),
            "--cert".into(),
            cert.display().to_string(),
            "--key".into(),
            key.display().to_string(),
            "--cacert".into(),
            self.root_pem().display().to_string(),
            "-X".into(),
            method.into(),
            "-w".into(),
            "\n%{http_code}".into(),
        ];
        let body_file;
        if let Some(b) = body {
            // A file per call: named by the clock, two threads' calls in
            // the same instant once wrote one file, and one thread sent the
            // other's request.
            static BODIES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
            let n = BODIES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            body_file = self.tmp.path().join(format!("body-{n}.json"));
            std::fs::write(&body_file, serde_json::to_vec(b).expect("json")).expect("write");
            args.push("-H".into());
            args.push("content-type: application/json".into());
            args.push("--data-binary".into());
            args.push(format!("@{}", body_file.display()));
        }
        args.push(format!("https://{}{}", self.api, path));
        let out = run(Command::new("curl").args(&args));
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "curl {path} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
        let v = if body.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(body).unwrap_or(Value::String(body.to_string()))
        };
        (code.trim().parse().unwrap_or(0), v)
    }

    pub fn tls(&self) -> Arc<rustls::ClientConfig> {
        ca_server::api::client::profile_config(&self.profile).expect("client config")
    }

    pub async fn client(&self) -> ApiClient {
        ApiClient::connect(&self.api, self.tls())
            .await
            .expect("connect")
    }

    /// A CA's private key, opened from its sealed record with the master key.
    /// The store must not be open (stop the server first).
    pub fn ca_key(&self, ca_id: &str) -> ca_core::keys::SoftwareKey {
        let der = ca_server::vault::open_sealed_offline(
            &self.dir,
            &ca_server::vault::MasterOptions::default(),
            ca_id,
        )
        .expect("open sealed CA key");
        ca_core::keys::SoftwareKey::from_pkcs8_der(&der).expect("CA key")
    }
}

/// `ca-server check --data-dir DIR` on a stopped server's data directory:
/// whether it passed, and what it printed.
pub fn store_check(dir: &Path) -> (bool, String) {
    let out = super::run(
        Command::new(server_bin())
            .arg("check")
            .arg("--data-dir")
            .arg(dir),
    );
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// The files of data directory `from` copied into `to`, to tamper with.
pub fn copy_data_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir") {
        let e = e.expect("entry");
        let p = e.path();
        if p.is_file() {
            std::fs::copy(&p, to.join(e.file_name())).expect("copy");
        }
    }
}

/// A P-256 key and CSR made by `openssl req`.
pub fn openssl_csr(dir: &Path, name: &str, sans: &str) -> (PathBuf, String) {
    let key = dir.join(format!("{name}.key"));
    let csr = dir.join(format!("{name}.csr"));
    let out = run(Command::new("openssl")
        .args([
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
        ])
        .arg(&key)
        .args(["-subj", &format!("/CN={name}"), "-addext"])
        .arg(format!("subjectAltName={sans}"))
        .arg("-out")
        .arg(&csr));
    assert!(
        out.status.success(),
        "openssl req: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (key, std::fs::read_to_string(&csr).expect("csr"))
}

/// A CSR made in-process with ca-core.
pub fn core_csr(dns: &str) -> String {
    use std::str::FromStr;
    let key =
        ca_core::keys::SoftwareKey::generate(ca_core::keys::KeyAlgorithm::EcdsaP256).expect("key");
    let der = ca_core::csr::create_csr(
        &key,
        &x509_cert::name::Name::from_str(&format!("CN={dns}")).expect("name"),
        &[ca_core::names::SanEntry::parse(dns).expect("san")],
    )
    .expect("csr");
    ca_core::pem::encode("CERTIFICATE REQUEST", &der)
}

/// A client certificate for `subject` issued by the admin from the client-auth
/// CA; returns (cert path, key path, SHA-256 fingerprint hex).
pub fn client_identity(s: &Server, name: &str, subject: &str) -> (PathBuf, PathBuf, String) {
    client_identity_with_names(s, name, subject, &[])
}

/// [`client_identity`] with SANs (`names` as the request endpoint takes them).
pub fn client_identity_with_names(
    s: &Server,
    name: &str,
    subject: &str,
    names: &[&str],
) -> (PathBuf, PathBuf, String) {
    client_identity_from(
        s,
        name,
        serde_json::json!({
            "ca_id": s.config.client_auth_ca_id,
            "names": names,
            "subject": subject,
            "profile": "tls-client",
            "passphrase": "test-passphrase",
        }),
    )
}

/// [`client_identity`] valid for `days` days.
pub fn client_identity_valid_for(
    s: &Server,
    name: &str,
    subject: &str,
    days: u32,
) -> (PathBuf, PathBuf, String) {
    client_identity_from(
        s,
        name,
        serde_json::json!({
            "ca_id": s.config.client_auth_ca_id,
            "names": [],
            "subject": subject,
            "profile": "tls-client",
            "validity_days": days,
            "passphrase": "test-passphrase",
        }),
    )
}

fn client_identity_from(
    s: &Server,
    name: &str,
    body: serde_json::Value,
) -> (PathBuf, PathBuf, String) {
    let subject = body["subject"].as_str().unwrap_or_default().to_string();
    let (st, v) = s.curl("POST", "/v1/certificates/request", Some(&body));
    assert_eq!(st, 201, "client certificate for {subject}: {v}");
    let cert_pem = v["certificate"].as_str().expect("certificate").to_string();
    let der = ca_core::pem::decode("CERTIFICATE", &cert_pem).expect("cert der");
    let fp = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &der);
    let fp = ca_core::hex::encode(fp.as_ref());
    let enc = ca_core::pem::decode(
        "ENCRYPTED PRIVATE KEY",
        v["private_key"].as_str().expect("key"),
    )
    .expect("key der");
    let info = pkcs8::EncryptedPrivateKeyInfo::try_from(enc.as_slice()).expect("encrypted key");
    let doc = info.decrypt("test-passphrase").expect("decrypt");
    let key_pem = doc
        .to_pem("PRIVATE KEY", der::pem::LineEnding::LF)
        .expect("pem");
    let cert = s.tmp.path().join(format!("{name}.pem"));
    let key = s.tmp.path().join(format!("{name}.key"));
    std::fs::write(&cert, cert_pem).expect("write cert");
    std::fs::write(&key, key_pem.as_bytes()).expect("write key");
    (cert, key, fp)
}

pub fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}
