//! Prometheus metrics (`GET /metrics`, OpenMetrics text), with the
//! `prometheus-client` crate.
//!
//! Two kinds of figures: events counted as they happen (requests, latency,
//! issuance, revocations, store commits), kept in [`Metrics`]; and state read
//! when scraped (CRLs, CA expiry, certificates about to expire, the audit
//! trail's length, OCSP cache counters), gathered by [`render`] into a
//! registry made for that scrape. Label values are bounded: API calls are
//! labelled by their audit action (a fixed set), not by path; CAs by id.

use std::sync::atomic::Ordering;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};

use crate::authority::Authority;
use crate::revocation::RevocationService;

/// `[metrics]` in config.toml.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Count and serve metrics at all.
    pub enabled: bool,
    /// Where `/metrics` is served: "public" (the public listener, beside
    /// CRLs and OCSP) or an address of its own, e.g. "127.0.0.1:9464", so
    /// that only a monitoring network reaches it.
    pub listen: String,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            enabled: true,
            listen: "public".into(),
        }
    }
}

impl MetricsConfig {
    /// The separate address, if one is configured.
    pub fn own_address(&self) -> Option<&str> {
        (self.enabled && self.listen != "public").then_some(self.listen.as_str())
    }

    /// Whether the public listener answers `/metrics`.
    pub fn on_public_listener(&self) -> bool {
        self.enabled && self.listen == "public"
    }
}

type Labels = Vec<(&'static str, String)>;

fn latency_histogram() -> Histogram {
    // 100 µs to ~6.5 s.
    Histogram::new(exponential_buckets(0.0001, 2.0, 17))
}

/// The event metrics of one server.
pub struct Metrics {
    enabled: bool,
    api_requests: Family<Labels, Counter>,
    api_latency: Family<Labels, Histogram, fn() -> Histogram>,
    public_requests: Family<Labels, Counter>,
    public_latency: Family<Labels, Histogram, fn() -> Histogram>,
    issued: Family<Labels, Counter>,
    revoked: Family<Labels, Counter>,
    commit_latency: Histogram,
    commit_batch: Histogram,
    events: Counter,
    webhook_deliveries: Family<Labels, Counter>,
    /// Certificates expiring within 7 and 30 days, and when they were counted.
    expiring: Mutex<Option<(Instant, u64, u64)>>,
}

/// How long a count of expiring certificates is reused (it scans an index).
const EXPIRING_TTL: Duration = Duration::from_secs(60);

impl Metrics {
    pub fn new(enabled: bool) -> Self {
        Metrics {
            enabled,
            api_requests: Family::default(),
            api_latency: Family::new_with_constructor(latency_histogram),
            public_requests: Family::default(),
            public_latency: Family::new_with_constructor(latency_histogram),
            issued: Family::default(),
            revoked: Family::default(),
            commit_latency: latency_histogram(),
            commit_batch: Histogram::new(exponential_buckets(1.0, 2.0, 10)),
            events: Counter::default(),
            webhook_deliveries: Family::default(),
            expiring: Mutex::new(None),
        }
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// One management API call: its audit action and outcome ("success" or
    /// the error code).
    pub fn api_request(&self, action: &str, outcome: &str, took: Duration) {
        if !self.enabled {
            return;
        }
        self.api_requests
            .get_or_create(&vec![
                ("action", action.to_string()),
                ("outcome", outcome.to_string()),
            ])
            .inc();
        self.api_latency
            .get_or_create(&vec![("action", action.to_string())])
            .observe(took.as_secs_f64());
    }

    /// One request on the public listener: its route (ocsp, crl, ca,
    /// health, livez, metrics, other) and HTTP status.
    pub fn public_request(&self, route: &'static str, status: u16, took: Duration) {
        if !self.enabled {
            return;
        }
        self.public_requests
            .get_or_create(&vec![
                ("route", route.to_string()),
                ("status", status.to_string()),
            ])
            .inc();
        self.public_latency
            .get_or_create(&vec![("route", route.to_string())])
            .observe(took.as_secs_f64());
    }

    pub fn certificate_issued(&self, ca: &str, profile: &str, key_type: &str) {
        if !self.enabled {
            return;
        }
        self.issued
            .get_or_create(&vec![
                ("ca", ca.to_string()),
                ("profile", profile.to_string()),
                ("key_type", key_type.to_string()),
            ])
            .inc();
    }

    pub fn certificate_revoked(&self, ca: &str, reason: &str) {
        if !self.enabled {
            return;
        }
        self.revoked
            .get_or_create(&vec![
                ("ca", ca.to_string()),
                ("reason", reason.to_string()),
            ])
            .inc();
    }

    /// One store commit: how long it took and how many writes it carried.
    pub fn store_commit(&self, took: Duration, writes: usize) {
        if !self.enabled {
            return;
        }
        self.commit_latency.observe(took.as_secs_f64());
        self.commit_batch.observe(writes as f64);
    }

    /// Events appended to the outbox.
    pub fn events_appended(&self, n: u64) {
        if self.enabled {
            self.events.inc_by(n);
        }
    }

    /// A webhook delivery attempt: `delivered`, `failed` or `skipped`.
    pub fn webhook_delivery(&self, outcome: &'static str) {
        if self.enabled {
            self.webhook_deliveries
                .get_or_create(&vec![("outcome", outcome.to_string())])
                .inc();
        }
    }
}

fn gauge(value: i64) -> Gauge {
    let g = Gauge::default();
    g.set(value);
    g
}

fn counter(value: u64) -> Counter {
    let c = Counter::default();
    c.inc_by(value);
    c
}

/// The OpenMetrics text of every metric, state read now.
pub fn render(auth: &Authority, rev: &RevocationService) -> Result<String, String> {
    let m = &auth.metrics;
    let mut r = Registry::with_prefix("ca");
    r.register(
        "api_requests",
        "Management API calls by audit action and outcome (success or error code)",
        m.api_requests.clone(),
    );
    r.register(
        "api_request_duration_seconds",
        "Management API call latency by audit action",
        m.api_latency.clone(),
    );
    r.register(
        "public_requests",
        "Public listener requests by route and HTTP status",
        m.public_requests.clone(),
    );
    r.register(
        "public_request_duration_seconds",
        "Public listener request latency by route",
        m.public_latency.clone(),
    );
    r.register(
        "certificates_issued",
        "Certificates issued by CA, profile and key type",
        m.issued.clone(),
    );
    r.register(
        "revocations",
        "Revocations by CA and reason",
        m.revoked.clone(),
    );
    r.register(
        "store_commit_duration_seconds",
        "Durable store commits: time from start of the transaction to the synced commit",
        m.commit_latency.clone(),
    );
    r.register(
        "events",
        "Events appended to the outbox (issued, revoked, approaching expiration, CRL published)",
        m.events.clone(),
    );
    r.register(
        "webhook_deliveries",
        "Webhook delivery attempts by outcome (delivered, failed, skipped after give_up_after_hours)",
        m.webhook_deliveries.clone(),
    );
    r.register(
        "store_commit_batch_size",
        "Writes carried by one durable store commit (group commit)",
        m.commit_batch.clone(),
    );

    let now = auth.now().unix_timestamp();
    let cas = auth.store.list_cas().map_err(|e| e.to_string())?;
    let not_after: Family<Labels, Gauge> = Family::default();
    let crl_age: Family<Labels, Gauge> = Family::default();
    let crl_until_next: Family<Labels, Gauge> = Family::default();
    let crl_entries: Family<Labels, Gauge> = Family::default();
    let crl_bytes: Family<Labels, Gauge> = Family::default();
    let crl_number: Family<Labels, Gauge> = Family::default();
    let served: std::collections::HashMap<String, u64> = rev
        .served_crls()
        .into_iter()
        .map(|(id, c)| (id, c.der.len() as u64))
        .collect();
    for ca in &cas {
        let l = vec![("ca", ca.id.clone())];
        if let Some(t) = ca.not_after {
            not_after.get_or_create(&l).set(t);
        }
        if let Ok(Some(meta)) = auth.store.crl_meta(&ca.id) {
            crl_age.get_or_create(&l).set(now - meta.this_update);
            crl_until_next.get_or_create(&l).set(meta.next_update - now);
            crl_entries
                .get_or_create(&l)
                .set(i64::try_from(meta.entries).unwrap_or(i64::MAX));
            crl_number
                .get_or_create(&l)
                .set(i64::try_from(meta.crl_number).unwrap_or(i64::MAX));
        }
        if let Some(len) = served.get(&ca.id) {
            crl_bytes
                .get_or_create(&l)
                .set(i64::try_from(*len).unwrap_or(i64::MAX));
        }
    }
    r.register(
        "authority_not_after_timestamp_seconds",
        "When each CA's certificate expires (unix time)",
        not_after,
    );
    r.register(
        "crl_age_seconds",
        "Seconds since each CA's current CRL was signed (thisUpdate)",
        crl_age,
    );
    r.register(
        "crl_next_update_in_seconds",
        "Seconds until each CA's current CRL's nextUpdate (negative: stale)",
        crl_until_next,
    );
    r.register(
        "crl_entries",
        "Entries on each CA's current CRL",
        crl_entries,
    );
    r.register(
        "crl_size_bytes",
        "DER size of each CA's CRL served now",
        crl_bytes,
    );
    r.register("crl_number", "Each CA's current CRL number", crl_number);

    let (within_7, within_30) = expiring_counts(auth, now)?;
    let expiring: Family<Labels, Gauge> = Family::default();
    expiring
        .get_or_create(&vec![("within", "7d".to_string())])
        .set(i64::try_from(within_7).unwrap_or(i64::MAX));
    expiring
        .get_or_create(&vec![("within", "30d".to_string())])
        .set(i64::try_from(within_30).unwrap_or(i64::MAX));
    r.register(
        "certificates_expiring",
        "Issued, unrevoked certificates whose notAfter is within 7 or 30 days (counted at most once a minute)",
        expiring,
    );

    let (head, _) = auth.store.audit_head().map_err(|e| e.to_string())?;
    r.register(
        "audit_entries",
        "Entries in the audit trail (the head's sequence number)",
        gauge(i64::try_from(head).unwrap_or(i64::MAX)),
    );
    let stats = auth.store.stats();
    r.register(
        "store_writable",
        "1 while the store takes writes, 0 while it refuses them (a full disk?)",
        gauge(i64::from(stats.writable)),
    );
    r.register(
        "ocsp_cache_hits",
        "OCSP requests answered from the response cache",
        counter(rev.stats.ocsp_cache_hits.load(Ordering::Relaxed)),
    );
    r.register(
        "ocsp_responses_signed",
        "OCSP responses signed (cache misses)",
        counter(rev.stats.ocsp_signed.load(Ordering::Relaxed)),
    );
    r.register(
        "crls_built",
        "CRLs signed since the server started",
        counter(rev.stats.crls_built.load(Ordering::Relaxed)),
    );
    let mut out = String::new();
    encode(&mut out, &r).map_err(|e| e.to_string())?;
    Ok(out)
}

/// OpenMetrics text as Prometheus' classic text format (0.0.4), which
/// `promtool check metrics` and older scrapers read: a counter's HELP and
/// TYPE name its `_total` samples, and there is no `# EOF` or `# UNIT`.
pub fn to_prometheus_text(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len() + 64);
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|tag| {
            let rest = line.strip_prefix(tag)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(name)
                .then(|| format!("{tag}{name}_total {tail}"))
        });
        match renamed {
            Some(l) => out.push_str(&l),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

/// Certificates expiring within 7 and 30 days, counted at most once per
/// [`EXPIRING_TTL`].
fn expiring_counts(auth: &Authority, now: i64) -> Result<(u64, u64), String> {
    let mut cached = auth
        .metrics
        .expiring
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some((at, a, b)) = *cached {
        if at.elapsed() < EXPIRING_TTL {
            return Ok((a, b));
        }
    }
    let within_7 = auth
        .store
        .count_expiring(now, now + 7 * 86_400)
        .map_err(|e| e.to_string())?;
    let within_30 = auth
        .store
        .count_expiring(now, now + 30 * 86_400)
        .map_err(|e| e.to_string())?;
    *cached = Some((Instant::now(), within_7, within_30));
    Ok((within_7, within_30))
}
