//! Server configuration: `DIR/config.toml`, written by `init`, overridden by flags.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use ca_core::profile::{Profile, ValidityLimits};
use serde::{Deserialize, Serialize};

pub const CONFIG_FILE: &str = "config.toml";
pub const DEFAULT_API_ADDR: &str = "127.0.0.1:8443";
pub const DEFAULT_PUBLIC_ADDR: &str = "127.0.0.1:8080";
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024;
pub const DEFAULT_MAX_IN_FLIGHT: usize = 1024;
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
pub const DEFAULT_PUBLIC_MAX_CONNECTIONS: usize = 4096;
pub const DEFAULT_MAX_CONNECTIONS_PER_IP: usize = 256;
/// No profile's validity may be configured beyond a century.
pub const MAX_VALIDITY_DAYS: u32 = 36_500;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!("log format {other:?} is not text or json")),
        }
    }
}

/// Validity in days for one profile.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidityConfig {
    pub default_days: u32,
    pub max_days: u32,
}

impl From<ValidityLimits> for ValidityConfig {
    fn from(l: ValidityLimits) -> Self {
        ValidityConfig {
            default_days: l.default_days,
            max_days: l.max_days,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Management API (mutual TLS).
    pub api_addr: String,
    /// Public listener: CA certificates, CRLs, OCSP, health (plain HTTP).
    pub public_addr: String,
    /// Base URL put in issued certificates for CRL DP / OCSP / caIssuers.
    /// Defaults to `http://` + the bound public address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_base_url: Option<String>,
    #[serde(default = "default_body")]
    pub max_body_bytes: usize,
    /// Most management requests handled at once; more get 429 Throttled.
    #[serde(default = "default_in_flight")]
    pub max_in_flight: usize,
    /// Most open connections on the management API; beyond it the server
    /// stops accepting until one closes (bounds sockets, tasks and memory).
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Most open connections on the public listener, likewise.
    #[serde(default = "default_public_max_connections")]
    pub public_max_connections: usize,
    /// Most open connections from one client address, on each listener, so
    /// one client cannot take every slot. Unset: 256, and at most a quarter
    /// of the listener's cap. Raise it for many clients behind one NAT.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections_per_ip: Option<usize>,
    #[serde(default)]
    pub log_format: LogFormat,
    /// The CA whose certificates may call the management API.
    pub client_auth_ca_id: String,
    /// The default issuing CA (made by init).
    pub issuing_ca_id: String,
    pub root_ca_id: String,
    /// The API's own TLS certificate chain and key, relative to the data dir.
    pub tls_cert: PathBuf,
    pub tls_key: PathBuf,
    /// Validity per profile name (tls-server, tls-client, tls-server-client, subordinate-ca).
    #[serde(default)]
    pub validity: BTreeMap<String, ValidityConfig>,
    /// CRL and OCSP publication.
    #[serde(default)]
    pub revocation: RevocationConfig,
    /// Renewal of the API's own TLS certificate.
    #[serde(default)]
    pub api_tls: ApiTlsConfig,
    /// Files listing known weak RSA keys, in Debian's openssl-blacklist
    /// format (`blacklist.RSA-2048` and the like, CVE-2008-0166), relative to
    /// the data directory. Keys they list are refused on issue and renew.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub weak_key_lists: Vec<PathBuf>,
    /// Seconds between signed digests of the audit trail (one is also signed
    /// at start and at shutdown; none when nothing was added since the last).
    #[serde(default = "default_audit_digest_interval")]
    pub audit_digest_interval_secs: u64,
    /// Refusals at the connection (failed handshakes, refused client
    /// certificates) get an audit entry each, up to `refusal_audit_per_window`
    /// per `refusal_audit_window_secs`; the rest are counted and summarised in
    /// one entry per window, so a flood cannot grow the trail without bound.
    #[serde(default = "default_refusal_window")]
    pub refusal_audit_window_secs: u64,
    #[serde(default = "default_refusals_per_window")]
    pub refusal_audit_per_window: u32,
    /// What `/health` checks against.
    #[serde(default)]
    pub health: HealthConfig,
    /// A PKCS#11 token (HSM) for CA keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pkcs11: Option<crate::hsm::Pkcs11Config>,
    /// Prometheus metrics: on or off, and where they are served.
    #[serde(default)]
    pub metrics: crate::metrics::MetricsConfig,
    /// Events (issued, revoked, approaching expiration, CRL published) and
    /// their delivery to webhooks.
    #[serde(default)]
    pub events: crate::events::EventsConfig,
    /// The ACME front door (RFC 8555).
    #[serde(default)]
    pub acme: crate::acme::AcmeConfig,
    /// Where the records live: the embedded redb file (default) or a
    /// PostgreSQL database shared by several nodes.
    #[serde(default)]
    pub store: StoreConfig,
}

/// Which storage backend, and how to reach it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    #[serde(default)]
    pub backend: StoreBackend,
    /// PostgreSQL: `postgres://user:password@host:port/database`. The
    /// environment variable `CA_SERVER_STORE_URL` overrides it (so a password
    /// need not be in the file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// PostgreSQL: connections this node keeps open at most.
    #[serde(default = "default_pool_size")]
    pub pool_size: usize,
    /// PostgreSQL: how long start-up waits for an unreachable database.
    #[serde(default = "default_connect_wait")]
    pub connect_wait_secs: u64,
    /// PostgreSQL over TLS: the CA certificate(s), PEM, that the database
    /// server's certificate must chain to (its name, the URL's host, is
    /// checked). Set, TLS is required; unset, connections are plaintext
    /// (keep them on a trusted network). Relative to the data directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_ca_file: Option<PathBuf>,
    /// PostgreSQL over TLS: a client certificate and key (PEM) for
    /// PostgreSQL's `cert` authentication (both or neither).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_client_cert: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_client_key: Option<PathBuf>,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            backend: StoreBackend::Redb,
            url: None,
            pool_size: default_pool_size(),
            connect_wait_secs: default_connect_wait(),
            tls_ca_file: None,
            tls_client_cert: None,
            tls_client_key: None,
        }
    }
}

/// The environment variable that overrides `[store] url`.
pub const STORE_URL_ENV: &str = "CA_SERVER_STORE_URL";

impl StoreConfig {
    pub fn is_postgres(&self) -> bool {
        self.backend == StoreBackend::Postgres
    }

    /// The PostgreSQL options, the URL from the environment first; TLS
    /// file paths relative to `dir`.
    pub fn postgres_in(&self, dir: &Path) -> anyhow::Result<crate::store::postgres::PgOptions> {
        let mut opts = self.postgres()?;
        if let Some(tls) = &mut opts.tls {
            tls.ca_file = dir.join(&tls.ca_file);
            if let Some((cert, key)) = &mut tls.client {
                *cert = dir.join(&*cert);
                *key = dir.join(&*key);
            }
        }
        Ok(opts)
    }

    /// The PostgreSQL options, the URL from the environment first.
    pub fn postgres(&self) -> anyhow::Result<crate::store::postgres::PgOptions> {
        let url = std::env::var(STORE_URL_ENV)
            .ok()
            .filter(|u| !u.is_empty())
            .or_else(|| self.url.clone())
            .ok_or_else(|| {
                anyhow::anyhow!("[store] backend = \"postgres\" needs a url (or {STORE_URL_ENV})")
            })?;
        Ok(crate::store::postgres::PgOptions {
            url,
            pool_size: self.pool_size,
            connect_wait: std::time::Duration::from_secs(self.connect_wait_secs),
            tls: match (&self.tls_ca_file, &self.tls_client_cert, &self.tls_client_key) {
                (None, None, None) => None,
                (Some(ca), None, None) => Some(crate::store::postgres::PgTls {
                    ca_file: ca.clone(),
                    client: None,
                }),
                (Some(ca), Some(cert), Some(key)) => Some(crate::store::postgres::PgTls {
                    ca_file: ca.clone(),
                    client: Some((cert.clone(), key.clone())),
                }),
                (None, _, _) => anyhow::bail!(
                    "[store] tls_client_cert and tls_client_key need tls_ca_file (TLS to the database)"
                ),
                _ => anyhow::bail!("[store] tls_client_cert and tls_client_key go together"),
            },
        })
    }

    fn check(&self) -> anyhow::Result<()> {
        if self.pool_size == 0 || self.pool_size > 1000 {
            anyhow::bail!("[store] pool_size must be between 1 and 1000");
        }
        if self.is_postgres() {
            self.postgres()?;
        }
        Ok(())
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreBackend {
    #[default]
    Redb,
    Postgres,
}

fn default_pool_size() -> usize {
    16
}

fn default_connect_wait() -> u64 {
    60
}

fn default_audit_digest_interval() -> u64 {
    600
}

fn default_refusal_window() -> u64 {
    60
}

fn default_refusals_per_window() -> u32 {
    60
}

/// What `/health` checks against.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthConfig {
    /// An active CA expiring within this many days fails the `ca_expiry` check.
    pub ca_expiry_horizon_days: u32,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            ca_expiry_horizon_days: 30,
        }
    }
}

/// The management API's TLS certificate is renewed by the server itself, from
/// the issuing CA, with the same names, before it expires.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiTlsConfig {
    /// Renew automatically (off: a due certificate is only warned about).
    pub auto_renew: bool,
    /// Seconds between checks while running.
    pub check_interval_secs: u64,
    /// Lifetime of a renewed certificate (default: the tls-server maximum).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub validity_days: Option<u32>,
    /// Renew once fewer days than this are left (default: a third of the lifetime).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub renew_before_days: Option<u32>,
}

impl Default for ApiTlsConfig {
    fn default() -> Self {
        ApiTlsConfig {
            auto_renew: true,
            check_interval_secs: 3600,
            validity_days: None,
            renew_before_days: None,
        }
    }
}

/// Who signs OCSP responses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OcspSigner {
    /// A short-lived delegated OCSP-signing certificate per CA (id-kp-OCSPSigning,
    /// id-pkix-ocsp-nocheck), so the CA key signs only once per renewal.
    #[default]
    Delegated,
    /// The CA key signs every response.
    Ca,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RevocationConfig {
    /// nextUpdate - thisUpdate of each CRL.
    pub crl_validity_hours: u32,
    /// How often the builder checks for CRLs past half their validity.
    pub crl_refresh_secs: u64,
    /// Wait after a revocation before rebuilding, so a burst makes one CRL.
    pub crl_debounce_ms: u64,
    /// nextUpdate - thisUpdate of each OCSP response.
    pub ocsp_validity_minutes: u32,
    pub ocsp_signer: OcspSigner,
    /// Lifetime of a delegated OCSP-signing certificate (renewed at half).
    pub ocsp_signer_days: u32,
    /// `Cache-Control: max-age` of OCSP responses to GET (RFC 5019 §6.2):
    /// how long an HTTP cache may keep answering with one. Short, because a
    /// cache may say "good" this long after a revocation; never beyond the
    /// time a served response has left (half its validity).
    pub ocsp_max_age_secs: u32,
    /// Drop an expired certificate's entry from CRLs once it has been on one
    /// CRL published after the expiry (RFC 5280 §3.3). Off: CRLs keep every
    /// revocation for ever.
    pub drop_expired_crl_entries: bool,
}

impl Default for RevocationConfig {
    fn default() -> Self {
        RevocationConfig {
            crl_validity_hours: 24,
            crl_refresh_secs: 60,
            crl_debounce_ms: 200,
            ocsp_validity_minutes: 60,
            ocsp_signer: OcspSigner::Delegated,
            ocsp_signer_days: 30,
            ocsp_max_age_secs: 300,
            drop_expired_crl_entries: true,
        }
    }
}

fn default_in_flight() -> usize {
    DEFAULT_MAX_IN_FLIGHT
}

fn default_max_connections() -> usize {
    DEFAULT_MAX_CONNECTIONS
}

fn default_public_max_connections() -> usize {
    DEFAULT_PUBLIC_MAX_CONNECTIONS
}

fn default_body() -> usize {
    DEFAULT_MAX_BODY_BYTES
}

impl Config {
    pub fn default_validity() -> BTreeMap<String, ValidityConfig> {
        let mut m = BTreeMap::new();
        for p in Profile::LEAF_PROFILES {
            m.insert(p.name().to_string(), p.default_limits().into());
        }
        let ca = Profile::SubordinateCa { path_len: None };
        m.insert(ca.name().to_string(), ca.default_limits().into());
        m
    }

    pub fn load(dir: &Path) -> anyhow::Result<Config> {
        use anyhow::Context;
        let path = dir.join(CONFIG_FILE);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let cfg: Config =
            toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        cfg.check()?;
        Ok(cfg)
    }

    pub fn check(&self) -> anyhow::Result<()> {
        if let Some(p) = &self.pkcs11 {
            p.check().map_err(|e| anyhow::anyhow!(e))?;
        }
        self.events.check().map_err(|e| anyhow::anyhow!(e))?;
        self.acme.check().map_err(|e| anyhow::anyhow!(e))?;
        self.store.check()?;
        self.api_addr
            .parse::<SocketAddr>()
            .map_err(|_| anyhow::anyhow!("api_addr {:?} is not IP:port", self.api_addr))?;
        self.public_addr
            .parse::<SocketAddr>()
            .map_err(|_| anyhow::anyhow!("public_addr {:?} is not IP:port", self.public_addr))?;
        if self.max_in_flight == 0 {
            anyhow::bail!("max_in_flight must be at least 1");
        }
        if self.max_connections == 0
            || self.public_max_connections == 0
            || self.max_connections_per_ip == Some(0)
        {
            anyhow::bail!(
                "max_connections, public_max_connections and max_connections_per_ip must be at least 1"
            );
        }
        if self.max_body_bytes < 1024 {
            anyhow::bail!("max_body_bytes must be at least 1024");
        }
        let r = &self.revocation;
        if r.crl_validity_hours == 0 || r.ocsp_validity_minutes == 0 || r.crl_refresh_secs == 0 {
            anyhow::bail!("revocation: validity and refresh periods must be positive");
        }
        // Upper bounds keep every date and timer computed from them in range.
        let bounded = [
            (
                "revocation.crl_validity_hours",
                u64::from(r.crl_validity_hours),
                10 * 366 * 24,
            ),
            (
                "revocation.ocsp_validity_minutes",
                u64::from(r.ocsp_validity_minutes),
                366 * 24 * 60,
            ),
            (
                "revocation.crl_refresh_secs",
                r.crl_refresh_secs,
                7 * 24 * 3600,
            ),
            ("revocation.crl_debounce_ms", r.crl_debounce_ms, 3_600_000),
            (
                "api_tls.check_interval_secs",
                self.api_tls.check_interval_secs,
                30 * 24 * 3600,
            ),
        ];
        for (name, value, max) in bounded {
            if value > max {
                anyhow::bail!("{name} must be at most {max}");
            }
        }
        if r.ocsp_signer_days == 0 || r.ocsp_signer_days > ca_core::ocsp::MAX_OCSP_SIGNER_DAYS {
            anyhow::bail!(
                "revocation.ocsp_signer_days must be 1 to {}",
                ca_core::ocsp::MAX_OCSP_SIGNER_DAYS
            );
        }
        for (name, v) in &self.validity {
            let profile = name
                .parse::<Profile>()
                .map_err(|e| anyhow::anyhow!("validity: {e}"))?;
            if let Some(ceiling) = profile.ceiling_days().filter(|c| v.max_days > *c) {
                anyhow::bail!(
                    "validity.{name}: max_days {} is over {ceiling}, the most a server certificate may live (CA/B BR 6.3.2)",
                    v.max_days
                );
            }
            if v.default_days == 0 || v.default_days > v.max_days || v.max_days > MAX_VALIDITY_DAYS
            {
                anyhow::bail!(
                    "validity.{name}: need 1 <= default_days <= max_days <= {MAX_VALIDITY_DAYS}"
                );
            }
        }
        if self.tls_cert == self.tls_key {
            anyhow::bail!("tls_cert and tls_key must be two files (renewal replaces each)");
        }
        if self.api_tls.check_interval_secs == 0 {
            anyhow::bail!("api_tls.check_interval_secs must be at least 1");
        }
        let max = self.limits(Profile::TlsServer).max_days;
        if let Some(d) = self.api_tls.validity_days {
            if d == 0 || d > max {
                anyhow::bail!("api_tls.validity_days must be 1 to {max} (the tls-server maximum)");
            }
        }
        if let Some(before) = self.api_tls.renew_before_days {
            // A renewal that is due again at once would renew on every check.
            let life = self.api_tls_validity_days();
            if before == 0 || before >= life {
                anyhow::bail!(
                    "api_tls.renew_before_days must be 1 to {} (below the certificate lifetime of {life} days)",
                    life.saturating_sub(1)
                );
            }
        }
        Ok(())
    }

    /// Lifetime of a (re)issued API TLS certificate, in days.
    pub fn api_tls_validity_days(&self) -> u32 {
        self.api_tls
            .validity_days
            .unwrap_or(self.limits(Profile::TlsServer).max_days)
    }

    /// How long before its notAfter the API TLS certificate is renewed.
    pub fn api_tls_renew_before(&self) -> time::Duration {
        match self.api_tls.renew_before_days {
            Some(d) => time::Duration::days(i64::from(d)),
            None => time::Duration::days(i64::from(self.api_tls_validity_days())) / 3,
        }
    }

    /// Limits for a profile: the configured ones, else ca-core's defaults.
    /// The per-address connection limit of a listener capped at `total`.
    pub fn per_ip_limit(&self, total: usize) -> usize {
        self.max_connections_per_ip
            .unwrap_or_else(|| DEFAULT_MAX_CONNECTIONS_PER_IP.min(total / 4))
            .max(1)
    }

    pub fn limits(&self, profile: Profile) -> ValidityLimits {
        match self.validity.get(profile.name()) {
            Some(v) => ValidityLimits {
                default_days: v.default_days,
                max_days: v.max_days,
            },
            None => profile.default_limits(),
        }
    }
}
