//! A load generator over keep-alive mTLS connections: the engine of
//! `ca-bench`, also driven by the crash test (`tests/server_crash.rs`, through
//! `#[path]`). It is measuring equipment, so it lives beside the bench binaries
//! rather than in the `ca-server` library that production links.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::body::Bytes;
use hyper::Method;
use rustls::ClientConfig;

use ca_server::api::client::ApiClient;
use ca_server::api::wire;

#[derive(Debug, Default)]
pub struct LoadReport {
    pub ok: u64,
    pub errors: u64,
    /// Latency of each successful request, microseconds.
    pub latencies_us: Vec<u64>,
    /// (serial, certificate PEM) of every certificate received, when asked
    /// to keep them; an answer without them counts as kept but unreadable.
    pub certificates: Vec<(String, String)>,
    /// 2xx answers that did not hold a certificate (kept mode only).
    pub unreadable: u64,
    pub elapsed: Duration,
}

impl LoadReport {
    pub fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// (p50, p99, max) in milliseconds.
    pub fn percentiles_ms(&mut self) -> (f64, f64, f64) {
        if self.latencies_us.is_empty() {
            return (0.0, 0.0, 0.0);
        }
        self.latencies_us.sort_unstable();
        let n = self.latencies_us.len();
        let at = |q: f64| self.latencies_us[((n as f64 * q) as usize).min(n - 1)] as f64 / 1000.0;
        (at(0.50), at(0.99), self.latencies_us[n - 1] as f64 / 1000.0)
    }
}

/// What the load generator sends: `method` to `path`.
#[derive(Clone, Debug)]
pub struct Call {
    pub method: Method,
    pub path: &'static str,
}

impl Call {
    pub fn post(path: &'static str) -> Call {
        Call {
            method: Method::POST,
            path,
        }
    }
}

/// Send `call` with each of `bodies` in turn (an empty one for a GET) from
/// `concurrency` connections for `duration`.
/// Failed requests and dropped connections are counted and retried (with a
/// new connection) until the time is up.
pub async fn run_load(
    addr: String,
    tls: Arc<ClientConfig>,
    call: Call,
    // Sent in turn (each connection starting at its own), so requests can
    // differ as real ones do; one is enough.
    bodies: Arc<[Bytes]>,
    concurrency: usize,
    duration: Duration,
    keep_certificates: bool,
) -> LoadReport {
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = Vec::new();
    for task in 0..concurrency {
        let (addr, tls, bodies, call) = (addr.clone(), tls.clone(), bodies.clone(), call.clone());
        tasks.push(tokio::spawn(async move {
            let mut r = LoadReport::default();
            let mut next = task;
            let mut client: Option<ApiClient> = None;
            while Instant::now() < deadline {
                if client.is_none() {
                    match ApiClient::connect(&addr, tls.clone()).await {
                        Ok(c) => client = Some(c),
                        Err(_) => {
                            r.errors += 1;
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            continue;
                        }
                    }
                }
                let Some(c) = client.as_mut() else { continue };
                let t = Instant::now();
                let left = deadline.saturating_duration_since(t) + Duration::from_secs(5);
                let Some(body) = bodies.get(next % bodies.len().max(1)) else {
                    break;
                };
                next = next.wrapping_add(1);
                match tokio::time::timeout(
                    left,
                    c.send(
                        call.method.clone(),
                        call.path,
                        body.clone(),
                        call.method == Method::POST,
                    ),
                )
                .await
                {
                    Ok(Ok((status, answer))) if (200..300).contains(&status) => {
                        r.ok += 1;
                        r.latencies_us.push(t.elapsed().as_micros() as u64);
                        if keep_certificates {
                            match serde_json::from_slice::<wire::Certificate>(&answer) {
                                Ok(cert) => {
                                    r.certificates.push((cert.summary.serial, cert.certificate))
                                }
                                Err(_) => r.unreadable += 1,
                            }
                        }
                    }
                    Ok(Ok(_)) => r.errors += 1,
                    _ => {
                        r.errors += 1;
                        client = None;
                    }
                }
            }
            r
        }));
    }
    let mut total = LoadReport::default();
    for t in tasks {
        if let Ok(r) = t.await {
            total.ok += r.ok;
            total.errors += r.errors;
            total.latencies_us.extend(r.latencies_us);
            total.certificates.extend(r.certificates);
            total.unreadable += r.unreadable;
        }
    }
    total.elapsed = start.elapsed();
    total
}

/// CPU seconds (user + system) a process has used, from /proc (`self` for
/// this one).
#[allow(dead_code)] // the crash test shares this file and reads no CPU time
pub fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // Linux reports USER_HZ = 100 ticks per second to user space.
    Some(ticks / 100.0)
}

/// What a target's disk writes are counted by: the store's block device,
/// or, where that cannot be read (a store on an overlay or RAM file system),
/// the server process's own charge.
#[allow(dead_code)] // used by ca-bench, not by every bench sharing this file
pub enum DiskCounter {
    Device(std::path::PathBuf),
    Process(String),
}

#[allow(dead_code)] // as above
impl DiskCounter {
    pub fn of(store: Option<&std::path::Path>, pid: Option<&str>) -> Option<DiskCounter> {
        match (store, pid) {
            (Some(s), _) if device_write_bytes(s).is_some() => {
                Some(DiskCounter::Device(s.to_path_buf()))
            }
            (_, Some(p)) => Some(DiskCounter::Process(p.to_string())),
            _ => None,
        }
    }

    pub fn read(&self) -> Option<u64> {
        match self {
            DiskCounter::Device(store) => device_write_bytes(store),
            DiskCounter::Process(pid) => process_write_bytes(pid),
        }
    }

    /// What the count is, for the bench's output.
    pub fn what(&self) -> &'static str {
        match self {
            DiskCounter::Device(_) => "written to the store's device by any process",
            DiskCounter::Process(_) => {
                "the server's write_bytes in /proc, which counts page-cache folios as they \
                 turn dirty, not what the disk received: the store's device could not be read"
            }
        }
    }
}

/// Bytes the process `pid` was charged for writing, from /proc/PID/io (see
/// [`device_write_bytes`] for why that is not what the disk received).
#[allow(dead_code)] // as above
pub fn process_write_bytes(pid: &str) -> Option<u64> {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).ok()?;
    io.lines()
        .find_map(|l| l.strip_prefix("write_bytes:"))
        .and_then(|v| v.trim().parse().ok())
}

/// Bytes written to the block device that holds `path` (its sectors
/// written, from sysfs): what reached the disk, whichever process wrote it;
/// `None` off a block device (a RAM file system). Not a process's
/// `write_bytes` (/proc/PID/io): the kernel charges that as page-cache
/// folios turn dirty, and with large folios (ext4 on Linux 6.16 and later)
/// a 1.3 KB append after a sync was charged a whole folio, ~150 KiB, when
/// the disk received about 9 KiB.
#[allow(dead_code)] // used by ca-bench, not by every bench sharing this file
pub fn device_write_bytes(path: &std::path::Path) -> Option<u64> {
    // The seventh field counts 512-byte sectors, whatever the device's block size.
    Some(device_stat_field(path, 6)? * 512)
}

/// Field `index` (from 0) of sysfs's `stat` of the block device holding `path`.
#[allow(dead_code)] // as device_write_bytes
fn device_stat_field(path: &std::path::Path, index: usize) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    let dev = std::fs::metadata(path).ok()?.dev();
    // glibc's major()/minor() split of a dev_t.
    let major = ((dev >> 32) & 0xffff_f000) | ((dev >> 8) & 0x0fff);
    let minor = ((dev >> 12) & 0xffff_ff00) | (dev & 0xff);
    let stat = std::fs::read_to_string(format!("/sys/dev/block/{major}:{minor}/stat")).ok()?;
    stat.split_whitespace().nth(index)?.parse().ok()
}

/// Cache flushes the block device that holds `path` completed (sysfs's
/// seventeenth field, Linux 5.5 and later), whichever process asked: an
/// `fdatasync` ends with one; `None` off a block device or on an older
/// kernel.
#[allow(dead_code)] // used by ca-bench, not by every bench sharing this file
pub fn device_flushes(path: &std::path::Path) -> Option<u64> {
    device_stat_field(path, 15)
}

/// The `ca-server` binary built beside this bench.
#[allow(dead_code)] // the crash test shares this file and starts its server through the harness
pub fn server_exe() -> anyhow::Result<std::path::PathBuf> {
    let exe = std::env::current_exe()?.with_file_name("ca-server");
    if !exe.exists() {
        anyhow::bail!(
            "{} not found: build it first (cargo build --release -p ca-server)",
            exe.display()
        );
    }
    Ok(exe)
}
