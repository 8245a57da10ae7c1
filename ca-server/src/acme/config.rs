//! `[acme]` in config.toml: the listener, validation settings, limits and
//! the provisioners (one directory each).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

/// `[acme]` in config.toml.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AcmeConfig {
    pub enabled: bool,
    /// The ACME listener (HTTPS with the API's certificate).
    pub listen: String,
    /// The URL clients reach the listener at (default `https://` + `listen`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// The port `http-01` validation connects to (80; tests use another).
    pub http01_port: u16,
    /// The port `tls-alpn-01` validation connects to (443).
    pub tls_alpn01_port: u16,
    /// The DNS resolver `dns-01` asks (IP:port); default: the first
    /// nameserver of /etc/resolv.conf.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dns_resolver: Option<String>,
    /// Connect every validation to this address instead of resolving the
    /// name (tests, or a split-horizon network).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolve_to: Option<String>,
    /// One validation attempt takes at most this long.
    pub validation_timeout_secs: u64,
    /// Orders and authorizations expire this long after they are made.
    pub order_lifetime_hours: u32,
    /// New accounts per client address per hour (0: no limit).
    pub accounts_per_ip_per_hour: u32,
    /// New orders per account per hour (0: no limit).
    pub orders_per_account_per_hour: u32,
    pub provisioners: Vec<Provisioner>,
}

/// One ACME directory, bound to a CA, a profile and a validity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Provisioner {
    pub name: String,
    /// The CA (id or alias); default: the issuing CA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<String>,
    #[serde(default = "default_profile")]
    pub profile: String,
    /// Lifetime of issued certificates (default: the profile's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validity_days: Option<u32>,
    /// External account binding: `off`, `optional` or `required`.
    #[serde(default)]
    pub eab: EabMode,
    /// New orders per hour through this directory, all accounts together
    /// (absent or 0: no limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orders_per_hour: Option<u32>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EabMode {
    #[default]
    Off,
    Optional,
    Required,
}

fn default_profile() -> String {
    "tls-server".into()
}

impl Default for AcmeConfig {
    fn default() -> Self {
        AcmeConfig {
            enabled: false,
            listen: "127.0.0.1:9443".into(),
            base_url: None,
            http01_port: 80,
            tls_alpn01_port: 443,
            dns_resolver: None,
            resolve_to: None,
            validation_timeout_secs: 10,
            order_lifetime_hours: 7 * 24,
            accounts_per_ip_per_hour: 100,
            orders_per_account_per_hour: 1000,
            provisioners: vec![Provisioner {
                name: "default".into(),
                ca: None,
                profile: default_profile(),
                validity_days: None,
                eab: EabMode::Off,
                orders_per_hour: None,
            }],
        }
    }
}

impl AcmeConfig {
    pub fn check(&self) -> Result<(), String> {
        if !self.enabled {
            return Ok(());
        }
        self.listen
            .parse::<std::net::SocketAddr>()
            .map_err(|_| format!("acme.listen {:?} is not IP:port", self.listen))?;
        if let Some(r) = &self.dns_resolver {
            r.parse::<std::net::SocketAddr>()
                .map_err(|_| format!("acme.dns_resolver {r:?} is not IP:port"))?;
        }
        if let Some(r) = &self.resolve_to {
            r.parse::<std::net::IpAddr>()
                .map_err(|_| format!("acme.resolve_to {r:?} is not an IP address"))?;
        }
        if !(1..=300).contains(&self.validation_timeout_secs) {
            return Err("acme.validation_timeout_secs must be 1 to 300".into());
        }
        if !(1..=24 * 90).contains(&self.order_lifetime_hours) {
            return Err("acme.order_lifetime_hours must be 1 to 2160".into());
        }
        let mut seen = BTreeSet::new();
        for p in &self.provisioners {
            let ok = !p.name.is_empty()
                && p.name.len() <= 64
                && p.name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !ok {
                return Err(format!(
                    "acme provisioner name {:?}: 1 to 64 of [A-Za-z0-9_-]",
                    p.name
                ));
            }
            if !seen.insert(p.name.clone()) {
                return Err(format!("acme provisioner {:?} is listed twice", p.name));
            }
        }
        if self.provisioners.is_empty() {
            return Err("acme is enabled but has no provisioners".into());
        }
        Ok(())
    }

    pub fn base(&self) -> String {
        self.base_url
            .clone()
            .unwrap_or_else(|| format!("https://{}", self.listen))
            .trim_end_matches('/')
            .to_string()
    }
}
