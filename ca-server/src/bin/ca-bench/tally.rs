//! One target's turns at a level: what each turn measured, and their sum.

use std::time::Duration;

use crate::bench_support;
use crate::targets::Target;

pub(crate) struct Measured {
    pub(crate) rate: f64,
    pub(crate) p50: f64,
    pub(crate) p99: f64,
    pub(crate) errors: u64,
    pub(crate) server_us: Option<f64>,
    pub(crate) client_us: Option<f64>,
    /// Disk the store took over the level, per certificate (may be
    /// negative: a store can give space back).
    pub(crate) store_bytes: Option<f64>,
    /// Bytes written to the disk holding the store during the target's
    /// turns, by any process (the load generator writes nothing), or the
    /// server's own charge where the device cannot be read: `disk_counted` says.
    pub(crate) disk_bytes: Option<u64>,
    pub(crate) disk_counted: Option<&'static str>,
    /// Cache flushes the store's device completed during the turns, per
    /// certificate (any process's).
    pub(crate) flushes_per_cert: Option<f64>,
}

/// One turn of load on one target: what the load generator saw, and what
/// the server (CPU, disk writes) and the load generator (CPU) spent.
pub(crate) struct Turn {
    pub(crate) report: bench_support::LoadReport,
    pub(crate) server_cpu: Option<f64>,
    pub(crate) client_cpu: Option<f64>,
    pub(crate) disk: Option<u64>,
    /// What `disk` counts ([`bench_support::DiskCounter::what`]).
    pub(crate) disk_counted: Option<&'static str>,
    pub(crate) flushes: Option<u64>,
}

pub(crate) fn run_turn(
    rt: &tokio::runtime::Runtime,
    t: &Target,
    connections: usize,
    seconds: f64,
) -> Turn {
    let counter = bench_support::DiskCounter::of(t.store.as_deref(), t.pid.as_deref());
    let disk = || counter.as_ref().and_then(|c| c.read());
    let flushes = || t.store.as_deref().and_then(bench_support::device_flushes);
    let flushes0 = flushes();
    let (server0, client0, disk0) = (
        t.pid.as_deref().and_then(bench_support::cpu_seconds),
        bench_support::cpu_seconds("self"),
        disk(),
    );
    let report = rt.block_on(bench_support::run_load(
        t.addr.clone(),
        t.tls.clone(),
        t.call.clone(),
        t.bodies.clone(),
        connections,
        Duration::from_secs_f64(seconds),
        false,
    ));
    let (server1, client1, disk1) = (
        t.pid.as_deref().and_then(bench_support::cpu_seconds),
        bench_support::cpu_seconds("self"),
        disk(),
    );
    let flushes1 = flushes();
    let spent = |a: Option<f64>, b: Option<f64>| Some(b? - a?);
    let grew = |a: Option<u64>, b: Option<u64>| Some(b?.saturating_sub(a?));
    Turn {
        report,
        server_cpu: spent(server0, server1),
        client_cpu: spent(client0, client1),
        disk: grew(disk0, disk1),
        disk_counted: counter.map(|c| c.what()),
        flushes: grew(flushes0, flushes1),
    }
}

/// One target's turns at a level, summed: rates over the total time,
/// percentiles over every request, CPU and bytes over every certificate.
#[derive(Default)]
pub(crate) struct Tally {
    turns: usize,
    ok: u64,
    errors: u64,
    elapsed: Duration,
    latencies_us: Vec<u64>,
    server_cpu: Option<f64>,
    client_cpu: Option<f64>,
    disk: Option<u64>,
    disk_counted: Option<&'static str>,
    flushes: Option<u64>,
}

impl Tally {
    pub(crate) fn add(&mut self, t: Turn) {
        // A figure one turn could not read is not summed from the others.
        fn sum<T: std::ops::Add<Output = T>>(
            first: bool,
            acc: Option<T>,
            x: Option<T>,
        ) -> Option<T> {
            if first {
                x
            } else {
                Some(acc? + x?)
            }
        }
        let first = self.turns == 0;
        self.turns += 1;
        self.ok += t.report.ok;
        self.errors += t.report.errors;
        self.elapsed += t.report.elapsed;
        self.latencies_us.extend_from_slice(&t.report.latencies_us);
        self.server_cpu = sum(first, self.server_cpu, t.server_cpu);
        self.client_cpu = sum(first, self.client_cpu, t.client_cpu);
        self.disk = sum(first, self.disk, t.disk);
        self.flushes = sum(first, self.flushes, t.flushes);
        // A count from another source than the first turn's is not summed.
        if !first && self.disk_counted != t.disk_counted {
            self.disk = None;
        }
        self.disk_counted = t.disk_counted;
    }

    /// The level's figures; `store_growth`: the disk the store took from
    /// before the level's first turn to after its last.
    pub(crate) fn measured(self, store_growth: Option<i64>) -> Measured {
        let ok = self.ok;
        let mut all = bench_support::LoadReport {
            ok,
            errors: self.errors,
            latencies_us: self.latencies_us,
            elapsed: self.elapsed,
            ..Default::default()
        };
        let (p50, p99, _) = all.percentiles_ms();
        let per_cert = |v: Option<f64>| v.filter(|_| ok > 0).map(|v| v / ok as f64);
        Measured {
            rate: all.rate(),
            p50,
            p99,
            errors: all.errors,
            server_us: per_cert(self.server_cpu.map(|s| s * 1e6)),
            client_us: per_cert(self.client_cpu.map(|s| s * 1e6)),
            store_bytes: per_cert(store_growth.map(|b| b as f64)),
            disk_bytes: self.disk,
            disk_counted: self.disk_counted,
            flushes_per_cert: per_cert(self.flushes.map(|n| n as f64)),
        }
    }
}

/// Our rate and CPU against the same server with `what` switched off.
pub(crate) fn switched_off_ratios(
    ratios: &mut Vec<String>,
    what: &str,
    ours: &Measured,
    peer: &Measured,
) {
    ratios.push(format!(
        "{what} on: throughput {:.3}× {what} off's",
        ours.rate / peer.rate.max(1e-9)
    ));
    if let (Some(a), Some(b)) = (ours.server_us, peer.server_us) {
        ratios.push(format!("server CPU/cert {:.3}× {what} off's", a / b));
    }
}

/// What durability costs: ca-server against itself with its syncs made
/// no-ops, and that server's p50 against CFSSL's (which stores nothing), when
/// CFSSL ran too.
pub(crate) fn syncs_off_ratios(
    ratios: &mut Vec<String>,
    ours: &Measured,
    peer: &Measured,
    cfssl: Option<&Measured>,
) {
    ratios.push(format!(
        "syncs on: throughput {:.3}×, p50 {:.3}× syncs off's",
        ours.rate / peer.rate.max(1e-9),
        ours.p50 / peer.p50.max(1e-9)
    ));
    if let (Some(a), Some(b)) = (ours.server_us, peer.server_us) {
        ratios.push(format!("server CPU/cert {:.3}× syncs off's", a / b));
    }
    // What the device did during each one's turns: the sign that the
    // preload took (each `fdatasync` ends with a cache flush).
    if let (Some(a), Some(b)) = (ours.flushes_per_cert, peer.flushes_per_cert) {
        ratios.push(format!(
            "device cache flushes per certificate {a:.2}, syncs off {b:.2} (any process's)"
        ));
    }
    if let Some(c) = cfssl {
        ratios.push(format!(
            "syncs off: throughput {:.2}× CFSSL's, p50 {:.2}× CFSSL's",
            peer.rate / c.rate.max(1e-9),
            peer.p50 / c.p50.max(1e-9)
        ));
    }
}

/// The middle value (the mean of the two middle ones for an even count).
pub(crate) fn median(values: &mut [f64]) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(values[n / 2]),
        _ => Some((values[n / 2 - 1] + values[n / 2]) / 2.0),
    }
}

#[cfg(test)]
mod tests {
    use super::median;

    #[test]
    fn median_is_the_middle_value_or_the_mean_of_the_two() {
        assert_eq!(median(&mut []), None);
        assert_eq!(median(&mut [5.0]), Some(5.0));
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&mut [70.0, 60.0, 90.0, 61.0, 66.0]), Some(66.0));
    }
}
