//! ACME (RFC 8555): the second front door. Services get certificates with
//! certbot, lego, Caddy and the like, proving control of their names with
//! `http-01`, `tls-alpn-01` or `dns-01` challenges (wildcards: dns-01 only),
//! on a listener of its own (HTTPS, the API's certificate, no client
//! certificate).
//!
//! Each provisioner has a directory (`/acme/{name}/directory`), is bound to a
//! CA, a profile and a validity, and issues through the same pipeline as the
//! API (ca-core's checks and pre-issuance lint, the store, the audit trail).
//! An ACME account is one more kind of principal for the policy engine: its
//! identity is the URI `acme:{provisioner}/{account id}`, so a statement such
//! as `{"principals": [{"uri": "acme:default/*"}], "actions": ["issue"],
//! "conditions": {"name_patterns": ["*.svc.example"]}}` says which names
//! ACME accounts may get. Without one, every order is refused (deny by
//! default).
//!
//! State (accounts, orders, authorizations) is kept in the store; account
//! creation, orders, validation attempts, issuance and revocation are
//! audited with their effect. Nonces are kept in memory (one node).

pub mod client;
mod dns;
pub mod jws;
mod limits;
mod nonce;
mod validate;

use std::collections::BTreeSet;
use std::sync::Arc;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::audit::{AuditIdentity, Decisions};
use crate::authority::{Authority, Identity};
use crate::error::{ApiError, ErrorCode};
use crate::store::{AcmeAccount, AcmeAuthz, AcmeChallenge, AcmeOrder, StoreError};
use jws::Jws;

/// Largest request body accepted.
const MAX_BODY: usize = 64 * 1024;
/// Most identifiers in one order.
const MAX_IDENTIFIERS: usize = 100;

// ------------------------------------------------------------------ config

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

// ---------------------------------------------------------------- problems

/// An ACME problem document (RFC 8555 §6.7, RFC 7807).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The part after `urn:ietf:params:acme:error:`.
    pub kind: &'static str,
    pub detail: String,
    pub status: u16,
}

macro_rules! problems {
    ($($fn:ident => $kind:literal, $status:literal;)*) => {
        impl Problem {
            $(pub fn $fn(detail: impl Into<String>) -> Problem {
                Problem { kind: $kind, detail: detail.into(), status: $status }
            })*
        }
    };
}

problems! {
    malformed => "malformed", 400;
    not_found => "malformed", 404;
    bad_nonce => "badNonce", 400;
    bad_signature_algorithm => "badSignatureAlgorithm", 400;
    bad_public_key => "badPublicKey", 400;
    unauthorized => "unauthorized", 403;
    account_does_not_exist => "accountDoesNotExist", 400;
    order_not_ready => "orderNotReady", 403;
    bad_csr => "badCSR", 400;
    rejected_identifier => "rejectedIdentifier", 400;
    unsupported_identifier => "unsupportedIdentifier", 400;
    already_revoked => "alreadyRevoked", 400;
    bad_revocation_reason => "badRevocationReason", 400;
    incorrect_response => "incorrectResponse", 403;
    connection => "connection", 400;
    dns => "dns", 400;
    rate_limited => "rateLimited", 429;
    server => "serverInternal", 500;
    unavailable => "serverInternal", 503;
}

impl Problem {
    pub fn to_json(&self) -> Value {
        json!({
            "type": format!("urn:ietf:params:acme:error:{}", self.kind),
            "detail": self.detail,
            "status": self.status,
        })
    }

    fn from_api(e: ApiError) -> Problem {
        let detail = e.message.clone();
        match e.code {
            ErrorCode::PolicyDenied => Problem::rejected_identifier(detail),
            ErrorCode::MalformedCsr | ErrorCode::BlockedKey => Problem::bad_csr(detail),
            ErrorCode::InvalidRequest => Problem::malformed(detail),
            ErrorCode::NotFound => Problem::not_found(detail),
            ErrorCode::Unavailable | ErrorCode::Throttled => Problem::unavailable(detail),
            ErrorCode::CaDisabled | ErrorCode::InvalidState | ErrorCode::Conflict => {
                Problem::unauthorized(detail)
            }
            _ => Problem::server(detail),
        }
    }
}

impl From<StoreError> for Problem {
    fn from(e: StoreError) -> Problem {
        match e {
            StoreError::Unavailable(m) => Problem::unavailable(m),
            StoreError::NotFound(m) => Problem::not_found(m),
            other => {
                tracing::error!(error = %other, "acme: store");
                Problem::server("internal error; the server log has details")
            }
        }
    }
}

// ------------------------------------------------------------------ service

/// The ACME service: configuration, the authority, nonces.
pub struct Acme {
    pub auth: Arc<Authority>,
    pub cfg: AcmeConfig,
    base: String,
    nonces: nonce::Nonces,
    limits: limits::Limiter,
}

type Answer = Response<Full<Bytes>>;

/// What a handler answers: status, JSON body (or PEM), and headers.
struct Reply {
    status: StatusCode,
    body: Bytes,
    content_type: &'static str,
    location: Option<String>,
    links: Vec<String>,
    /// Seconds, for `Retry-After`.
    retry_after: Option<u64>,
}

impl Reply {
    fn json(status: StatusCode, v: &Value) -> Reply {
        Reply {
            status,
            body: Bytes::from(v.to_string()),
            content_type: "application/json",
            location: None,
            links: Vec::new(),
            retry_after: None,
        }
    }
    fn at(mut self, location: String) -> Reply {
        self.location = Some(location);
        self
    }
    fn link(mut self, l: String) -> Reply {
        self.links.push(l);
        self
    }
}

fn random_id(prefix: &str, bytes: usize) -> Result<String, Problem> {
    let mut b = vec![0u8; bytes];
    getrandom::getrandom(&mut b).map_err(|e| Problem::server(format!("randomness: {e}")))?;
    Ok(format!("{prefix}{}", ca_core::hex::encode(&b)))
}

fn token() -> Result<String, Problem> {
    let mut b = [0u8; 32];
    getrandom::getrandom(&mut b).map_err(|e| Problem::server(format!("randomness: {e}")))?;
    Ok(jws::b64(&b))
}

/// The authenticated sender of a request: an account, or (revocation) the
/// key of the certificate itself.
enum Sender {
    Account(AcmeAccount),
    Key(Value),
}

impl Acme {
    pub fn new(auth: Arc<Authority>) -> Acme {
        let cfg = auth.config.acme.clone();
        Acme {
            base: cfg.base(),
            cfg,
            auth,
            nonces: nonce::Nonces::default(),
            limits: limits::Limiter::default(),
        }
    }

    fn provisioner(&self, name: &str) -> Option<&Provisioner> {
        self.cfg.provisioners.iter().find(|p| p.name == name)
    }

    fn url(&self, prov: &str, rest: &str) -> String {
        format!("{}/acme/{prov}/{rest}", self.base)
    }

    fn now(&self) -> i64 {
        self.auth.now().unix_timestamp()
    }

    /// The policy identity of an account: `URI:acme:PROVISIONER/ACCOUNT`,
    /// and `URI:acme-eab:PROVISIONER/KID` when it was made with an EAB key
    /// (statements can name either).
    fn identity(prov: &str, account: &AcmeAccount) -> Identity {
        let mut sans = vec![format!("URI:acme:{prov}/{}", account.id)];
        if let Some(kid) = &account.eab_kid {
            sans.push(format!("URI:acme-eab:{prov}/{kid}"));
        }
        Identity {
            subject: String::new(),
            sans,
            fingerprint: String::new(),
            internal: false,
        }
    }

    /// Run `f` as an audited call of `account` (or of the server).
    async fn audited<T, F: std::future::Future<Output = T>>(
        &self,
        action: &str,
        target: &str,
        who: &str,
        key: &str,
        f: F,
    ) -> T {
        let d = Decisions {
            identity: Some(AuditIdentity {
                subject: who.to_string(),
                fingerprint: key.to_string(),
            }),
            action: action.to_string(),
            target: target.to_string(),
            success_status: 200,
            ..Default::default()
        };
        crate::audit::with_call(d, f).await.0
    }

    pub async fn handle(self: Arc<Self>, peer: std::net::IpAddr, req: Request<Incoming>) -> Answer {
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        let segs: Vec<String> = path
            .trim_start_matches('/')
            .split('/')
            .map(str::to_string)
            .collect();
        let result = match segs.first().map(String::as_str) {
            Some("acme") if segs.len() >= 3 => {
                let prov = segs[1].clone();
                if self.provisioner(&prov).is_none() {
                    Err(Problem::not_found("no such ACME directory"))
                } else {
                    self.route(&method, &prov, &segs[2..], &path, peer, req)
                        .await
                }
            }
            _ => Err(Problem::not_found(
                "no such resource (directories are at /acme/NAME/directory)",
            )),
        };
        let prov = segs.get(1).cloned().unwrap_or_default();
        let reply = match result {
            Ok(r) => r,
            Err(p) => {
                if p.status >= 500 {
                    tracing::warn!(path = %path, detail = %p.detail, "acme: {}", p.kind);
                }
                Reply {
                    status: StatusCode::from_u16(p.status).unwrap_or(StatusCode::BAD_REQUEST),
                    body: Bytes::from(p.to_json().to_string()),
                    content_type: "application/problem+json",
                    location: None,
                    links: Vec::new(),
                    retry_after: (p.kind == "rateLimited").then_some(60),
                }
            }
        };
        self.answer(&prov, reply, method == Method::HEAD)
    }

    fn answer(&self, prov: &str, r: Reply, head: bool) -> Answer {
        let mut b = Response::builder()
            .status(r.status)
            .header("Content-Type", r.content_type)
            .header("Cache-Control", "no-store")
            .header("Replay-Nonce", self.nonces.issue());
        if self.provisioner(prov).is_some() {
            b = b.header(
                "Link",
                format!("<{}>;rel=\"index\"", self.url(prov, "directory")),
            );
        }
        for l in &r.links {
            b = b.header("Link", l.as_str());
        }
        if let Some(l) = &r.location {
            b = b.header("Location", l.as_str());
        }
        if let Some(s) = r.retry_after {
            b = b.header("Retry-After", s.to_string());
        }
        let body = if head { Bytes::new() } else { r.body };
        b.body(Full::new(body)).unwrap_or_else(|_| {
            let mut resp = Response::new(Full::new(Bytes::new()));
            *resp.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            resp
        })
    }

    async fn route(
        &self,
        method: &Method,
        prov: &str,
        rest: &[String],
        path: &str,
        peer: std::net::IpAddr,
        req: Request<Incoming>,
    ) -> Result<Reply, Problem> {
        let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
        match (method, rest.as_slice()) {
            (&Method::GET, ["directory"]) => Ok(Reply::json(StatusCode::OK, &self.directory(prov))),
            (&Method::HEAD, ["new-nonce"]) => Ok(Reply::json(StatusCode::OK, &Value::Null)),
            (&Method::GET, ["renewal-info", cert_id]) => self.renewal_info(cert_id),
            (&Method::GET, ["new-nonce"]) => {
                let mut r = Reply::json(StatusCode::NO_CONTENT, &Value::Null);
                r.body = Bytes::new();
                Ok(r)
            }
            (&Method::POST, _) => {
                let body = read_body(req).await?;
                let jws = Jws::parse(&body)?;
                let url = format!("{}{path}", self.base);
                self.check_request(&jws, &url)?;
                match rest.as_slice() {
                    ["new-account"] => self.new_account(prov, &jws, peer).await,
                    ["revoke-cert"] => {
                        let sender = self.sender(prov, &jws, true)?;
                        self.revoke(prov, sender, &jws).await
                    }
                    _ => {
                        let Sender::Account(account) = self.sender(prov, &jws, false)? else {
                            return Err(Problem::malformed(
                                "this request must be signed by an account (kid)",
                            ));
                        };
                        self.account_call(prov, account, &rest, &jws).await
                    }
                }
            }
            (_, ["directory"]) => Err(Problem::malformed("use GET")),
            _ => Err(Problem::not_found("no such resource")),
        }
    }

    async fn account_call(
        &self,
        prov: &str,
        account: AcmeAccount,
        rest: &[&str],
        jws: &Jws,
    ) -> Result<Reply, Problem> {
        match rest {
            ["account", id] => self.update_account(prov, account, id, jws).await,
            ["key-change"] => self.key_change(prov, account, jws).await,
            ["account", id, "orders"] => {
                if *id != account.id {
                    return Err(Problem::unauthorized(
                        "an account lists only its own orders",
                    ));
                }
                let urls: Vec<String> = self
                    .auth
                    .store
                    .acme_orders_of(&account.id)?
                    .iter()
                    .filter(|o| {
                        matches!(
                            self.order_status(o).as_str(),
                            "pending" | "ready" | "processing" | "valid"
                        )
                    })
                    .map(|o| self.url(prov, &format!("order/{}", o.id)))
                    .collect();
                Ok(Reply::json(StatusCode::OK, &json!({ "orders": urls })))
            }
            ["new-order"] => self.new_order(prov, &account, jws).await,
            ["order", id] => self.get_order(prov, &account, id),
            ["order", id, "finalize"] => self.finalize(prov, &account, id, jws).await,
            ["authz", id] => self.get_authz(prov, &account, id),
            ["chall", authz, chall] => self.challenge(prov, &account, authz, chall, jws).await,
            ["cert", id] => self.certificate(&account, id),
            _ => Err(Problem::not_found("no such resource")),
        }
    }

    fn directory(&self, prov: &str) -> Value {
        json!({
            "newNonce": self.url(prov, "new-nonce"),
            "newAccount": self.url(prov, "new-account"),
            "newOrder": self.url(prov, "new-order"),
            "revokeCert": self.url(prov, "revoke-cert"),
            "keyChange": self.url(prov, "key-change"),
            "renewalInfo": self.url(prov, "renewal-info"),
            "meta": {
                "externalAccountRequired": self.provisioner(prov).is_some_and(|p| p.eab == EabMode::Required),
            },
        })
    }

    /// The nonce and the URL of a signed request (RFC 8555 §6.4, §6.5).
    fn check_request(&self, jws: &Jws, url: &str) -> Result<(), Problem> {
        let Some(n) = jws.protected.nonce.as_deref() else {
            return Err(Problem::bad_nonce("the protected header has no nonce"));
        };
        if !self.nonces.consume(n) {
            return Err(Problem::bad_nonce(
                "unknown, used or expired nonce; use the one in this answer's Replay-Nonce",
            ));
        }
        match jws.protected.url.as_deref() {
            Some(u) if u == url => Ok(()),
            Some(u) => Err(Problem::unauthorized(format!(
                "the protected header's url {u:?} is not this request's URL {url:?}"
            ))),
            None => Err(Problem::malformed("the protected header has no url")),
        }
    }

    /// Who signed: the account named by `kid` (verified with its key), or,
    /// where `jwk_allowed`, the key in `jwk` (verified).
    fn sender(&self, prov: &str, jws: &Jws, jwk_allowed: bool) -> Result<Sender, Problem> {
        match (&jws.protected.kid, &jws.protected.jwk) {
            (Some(_), Some(_)) => Err(Problem::malformed(
                "the protected header has both kid and jwk",
            )),
            (None, None) => Err(Problem::malformed(
                "the protected header has neither kid nor jwk",
            )),
            (None, Some(jwk)) if jwk_allowed => {
                jws.verify(jwk)?;
                Ok(Sender::Key(jwk.clone()))
            }
            (None, Some(_)) => Err(Problem::malformed(
                "this request must name its account (kid), not carry a jwk",
            )),
            (Some(kid), None) => {
                let prefix = self.url(prov, "account/");
                let id = kid.strip_prefix(&prefix).ok_or_else(|| {
                    Problem::account_does_not_exist("kid is not an account URL of this directory")
                })?;
                let account = self
                    .auth
                    .store
                    .acme_account(id)?
                    .filter(|a| a.provisioner == prov)
                    .ok_or_else(|| Problem::account_does_not_exist("no such account"))?;
                let jwk: Value = serde_json::from_str(&account.jwk)
                    .map_err(|e| Problem::server(format!("stored JWK: {e}")))?;
                jws.verify(&jwk)?;
                if account.status != "valid" {
                    return Err(Problem::unauthorized(format!(
                        "the account is {}",
                        account.status
                    )));
                }
                // Revoking its EAB key shuts the account out.
                if let Some(kid) = &account.eab_kid {
                    if self.auth.store.acme_eab_key(kid)?.is_none_or(|k| k.revoked) {
                        return Err(Problem::unauthorized(format!(
                            "the account's EAB key {kid} is revoked"
                        )));
                    }
                }
                Ok(Sender::Account(account))
            }
        }
    }

    fn account_json(&self, prov: &str, a: &AcmeAccount) -> Value {
        json!({
            "status": a.status,
            "contact": a.contact,
            "orders": self.url(prov, &format!("account/{}/orders", a.id)),
        })
    }

    async fn new_account(
        &self,
        prov: &str,
        jws: &Jws,
        peer: std::net::IpAddr,
    ) -> Result<Reply, Problem> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct NewAccount {
            #[serde(default)]
            contact: Vec<String>,
            #[serde(default)]
            only_return_existing: bool,
            #[serde(default)]
            #[allow(dead_code)]
            terms_of_service_agreed: Option<bool>,
            #[serde(default)]
            external_account_binding: Option<Value>,
        }
        let jwk = match (&jws.protected.jwk, &jws.protected.kid) {
            (Some(j), None) => j.clone(),
            _ => {
                return Err(Problem::malformed(
                    "newAccount is signed with a jwk and no kid",
                ))
            }
        };
        jws.verify(&jwk)?;
        let body: NewAccount = jws.payload_json()?;
        let thumbprint = jws::thumbprint(&jwk)?;
        if let Some(a) = self.auth.store.acme_account_by_key(&thumbprint)? {
            let url = self.url(prov, &format!("account/{}", a.id));
            return Ok(Reply::json(StatusCode::OK, &self.account_json(prov, &a)).at(url));
        }
        if body.only_return_existing {
            return Err(Problem::account_does_not_exist("no account has this key"));
        }
        check_contacts(&body.contact)?;
        self.limits
            .take(
                &format!("accounts/{peer}"),
                self.cfg.accounts_per_ip_per_hour,
            )
            .map_err(|wait| {
                Problem::rate_limited(format!(
                    "too many new accounts from {peer}; retry in {wait} s"
                ))
            })?;
        let mode = self.provisioner(prov).map_or(EabMode::Off, |p| p.eab);
        let eab_kid = match (&body.external_account_binding, mode) {
            (None, EabMode::Required) => {
                return Err(Problem {
                    kind: "externalAccountRequired",
                    detail: "this directory needs an external account binding (ask an operator for an EAB key)".into(),
                    status: 400,
                })
            }
            (None, _) | (Some(_), EabMode::Off) => None,
            (Some(b), _) => {
                let url = self.url(prov, "new-account");
                Some(self.check_eab(prov, b, &thumbprint, &url)?)
            }
        };
        let canonical = jws::canonical(&jwk)?;
        let account = AcmeAccount {
            id: random_id("acct-", 8)?,
            provisioner: prov.to_string(),
            status: "valid".into(),
            thumbprint: thumbprint.clone(),
            jwk: canonical.to_string(),
            contact: body.contact,
            created_at: self.now(),
            eab_kid,
        };
        let who = format!("URI:acme:{prov}/{}", account.id);
        let url = self.url(prov, &format!("account/{}", account.id));
        let stored = self
            .audited("AcmeNewAccount", &account.id, &who, &thumbprint, async {
                let draft = crate::audit::commit_draft(&who, "AcmeNewAccount", &account.id);
                let r = self
                    .auth
                    .store
                    .acme_create_account(account.clone(), draft)
                    .await;
                crate::audit::committed();
                r
            })
            .await;
        match stored {
            Ok(()) => {
                tracing::info!(account = %account.id, provisioner = prov, "acme account created");
                let mut r =
                    Reply::json(StatusCode::CREATED, &self.account_json(prov, &account)).at(url);
                r.status = StatusCode::CREATED;
                Ok(r)
            }
            Err(StoreError::Conflict(why)) if why.starts_with("eab:") => Err(
                Problem::unauthorized(why.trim_start_matches("eab:").to_string()),
            ),
            // Made meanwhile with the same key: answer with it.
            Err(StoreError::Conflict(id)) => {
                let a = self
                    .auth
                    .store
                    .acme_account(&id)?
                    .ok_or_else(|| Problem::server("account vanished"))?;
                let url = self.url(prov, &format!("account/{}", a.id));
                Ok(Reply::json(StatusCode::OK, &self.account_json(prov, &a)).at(url))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Check an external account binding (RFC 8555 §7.3.4): a JWS MACed
    /// with an operator's EAB key over the account key, for newAccount.
    fn check_eab(
        &self,
        prov: &str,
        binding: &Value,
        account_thumbprint: &str,
        new_account_url: &str,
    ) -> Result<String, Problem> {
        let eab = Jws::parse(binding.to_string().as_bytes())?;
        let kid = eab
            .protected
            .kid
            .clone()
            .ok_or_else(|| Problem::malformed("the external account binding has no kid"))?;
        if eab.protected.nonce.is_some() || eab.protected.jwk.is_some() {
            return Err(Problem::malformed(
                "the external account binding has no nonce and no jwk",
            ));
        }
        if eab.protected.url.as_deref() != Some(new_account_url) {
            return Err(Problem::unauthorized(
                "the external account binding is for another URL",
            ));
        }
        let key = self
            .auth
            .store
            .acme_eab_key(&kid)?
            .filter(|k| k.provisioner == prov)
            .ok_or_else(|| {
                Problem::unauthorized(format!("no EAB key {kid:?} for this directory"))
            })?;
        if key.revoked {
            return Err(Problem::unauthorized(format!("EAB key {kid} is revoked")));
        }
        if key.account.is_some() {
            return Err(Problem::unauthorized(format!(
                "EAB key {kid} is bound to an account already"
            )));
        }
        eab.verify_hmac(&jws::unb64(&key.hmac_key, "the stored EAB key")?)?;
        let bound: Value = eab.payload_json()?;
        if jws::thumbprint(&bound)? != account_thumbprint {
            return Err(Problem::unauthorized(
                "the external account binding names another account key",
            ));
        }
        Ok(kid)
    }

    async fn update_account(
        &self,
        prov: &str,
        mut account: AcmeAccount,
        id: &str,
        jws: &Jws,
    ) -> Result<Reply, Problem> {
        if id != account.id {
            return Err(Problem::unauthorized("an account can only change itself"));
        }
        #[derive(Deserialize)]
        struct Update {
            #[serde(default)]
            contact: Option<Vec<String>>,
            #[serde(default)]
            status: Option<String>,
        }
        let url = self.url(prov, &format!("account/{}", account.id));
        if jws.payload.is_empty() {
            return Ok(Reply::json(StatusCode::OK, &self.account_json(prov, &account)).at(url));
        }
        let u: Update = jws.payload_json()?;
        let mut changed = false;
        if let Some(c) = u.contact {
            check_contacts(&c)?;
            account.contact = c;
            changed = true;
        }
        match u.status.as_deref() {
            None => {}
            Some("deactivated") => {
                account.status = "deactivated".into();
                changed = true;
            }
            Some(other) => {
                return Err(Problem::malformed(format!(
                    "an account cannot set its status to {other:?}"
                )))
            }
        }
        if changed {
            let who = format!("URI:acme:{prov}/{}", account.id);
            let action = if account.status == "deactivated" {
                "AcmeDeactivateAccount"
            } else {
                "AcmeUpdateAccount"
            };
            let a = account.clone();
            self.audited(action, &account.id, &who, &account.thumbprint, async {
                let draft = crate::audit::commit_draft(&who, action, &a.id);
                let r = self
                    .auth
                    .store
                    .acme_update_account(a.clone(), a.thumbprint.clone(), draft)
                    .await;
                crate::audit::committed();
                r
            })
            .await
            .map_err(stale_or)?;
        }
        Ok(Reply::json(StatusCode::OK, &self.account_json(prov, &account)).at(url))
    }

    /// keyChange (RFC 8555 §7.3.5): the outer JWS by the old key, the inner
    /// by the new one, naming the account and the old key.
    async fn key_change(
        &self,
        prov: &str,
        mut account: AcmeAccount,
        outer: &Jws,
    ) -> Result<Reply, Problem> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct KeyChange {
            account: String,
            old_key: Value,
        }
        let inner = Jws::parse(&outer.payload)?;
        let Some(new_jwk) = inner.protected.jwk.clone() else {
            return Err(Problem::malformed(
                "the inner JWS must carry the new key as jwk",
            ));
        };
        if inner.protected.kid.is_some() || inner.protected.nonce.is_some() {
            return Err(Problem::malformed("the inner JWS has no kid and no nonce"));
        }
        if inner.protected.url != outer.protected.url {
            return Err(Problem::malformed(
                "the inner JWS's url differs from the outer one's",
            ));
        }
        inner.verify(&new_jwk)?;
        let body: KeyChange = inner.payload_json()?;
        let kid = self.url(prov, &format!("account/{}", account.id));
        if body.account != kid {
            return Err(Problem::unauthorized(
                "the inner payload names another account",
            ));
        }
        if jws::thumbprint(&body.old_key)? != account.thumbprint {
            return Err(Problem::unauthorized("oldKey is not the account's key"));
        }
        let new_thumbprint = jws::thumbprint(&new_jwk)?;
        if new_thumbprint == account.thumbprint {
            return Err(Problem::malformed("the new key is the old key"));
        }
        let old_thumbprint = account.thumbprint.clone();
        account.thumbprint = new_thumbprint;
        account.jwk = jws::canonical(&new_jwk)?.to_string();
        let who = format!("URI:acme:{prov}/{}", account.id);
        let a = account.clone();
        let r = self
            .audited("AcmeKeyChange", &account.id, &who, &old_thumbprint, async {
                let draft = crate::audit::commit_draft(&who, "AcmeKeyChange", &a.id);
                let r = self
                    .auth
                    .store
                    .acme_update_account(a.clone(), old_thumbprint.clone(), draft)
                    .await;
                crate::audit::committed();
                r
            })
            .await;
        match r {
            Ok(()) => Ok(Reply::json(StatusCode::OK, &self.account_json(prov, &account)).at(kid)),
            Err(StoreError::Conflict(why)) if why.starts_with("stale:") => {
                Err(stale_or(StoreError::Conflict(why)))
            }
            Err(StoreError::Conflict(other)) => {
                let mut reply = Reply::json(
                    StatusCode::CONFLICT,
                    &Problem {
                        kind: "malformed",
                        detail: "another account has that key".into(),
                        status: 409,
                    }
                    .to_json(),
                )
                .at(self.url(prov, &format!("account/{other}")));
                reply.content_type = "application/problem+json";
                Ok(reply)
            }
            Err(e) => Err(e.into()),
        }
    }

    fn order_json(&self, prov: &str, o: &AcmeOrder) -> Value {
        let mut v = json!({
            "status": self.order_status(o),
            "expires": crate::clock::fmt_unix(o.expires),
            "identifiers": o.identifiers.iter().map(|n| json!({"type": "dns", "value": n})).collect::<Vec<_>>(),
            "authorizations": o.authorizations.iter().map(|a| self.url(prov, &format!("authz/{a}"))).collect::<Vec<_>>(),
            "finalize": self.url(prov, &format!("order/{}/finalize", o.id)),
        });
        if o.certificate.is_some() {
            v["certificate"] = json!(self.url(prov, &format!("cert/{}", o.id)));
        }
        if let Some(e) = &o.error {
            v["error"] = serde_json::from_str(e).unwrap_or(Value::Null);
        }
        v
    }

    /// An order past its expiry that never became valid is invalid.
    fn order_status(&self, o: &AcmeOrder) -> String {
        order_status_at(o, self.now())
    }

    async fn new_order(
        &self,
        prov: &str,
        account: &AcmeAccount,
        jws: &Jws,
    ) -> Result<Reply, Problem> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Ident {
            #[serde(rename = "type")]
            kind: String,
            value: String,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct NewOrder {
            identifiers: Vec<Ident>,
            #[serde(default)]
            not_before: Option<String>,
            #[serde(default)]
            not_after: Option<String>,
            /// RFC 9773: the certID of the certificate this order renews.
            #[serde(default)]
            replaces: Option<String>,
        }
        let body: NewOrder = jws.payload_json()?;
        self.limits
            .take(
                &format!("orders/{}", account.id),
                self.cfg.orders_per_account_per_hour,
            )
            .map_err(|wait| {
                Problem::rate_limited(format!(
                    "too many new orders for this account; retry in {wait} s"
                ))
            })?;
        let per_directory = self
            .provisioner(prov)
            .and_then(|p| p.orders_per_hour)
            .unwrap_or(0);
        self.limits
            .take(&format!("directory-orders/{prov}"), per_directory)
            .map_err(|wait| {
                Problem::rate_limited(format!(
                    "too many new orders through this directory; retry in {wait} s"
                ))
            })?;
        if let Some(cert_id) = &body.replaces {
            let (rec, _) = cert_of_cert_id(&self.auth, cert_id)?;
            if rec.requested_by != format!("URI:acme:{prov}/{}", account.id) {
                return Err(Problem::unauthorized(
                    "replaces names a certificate this account did not order",
                ));
            }
        }
        if body.not_before.is_some() || body.not_after.is_some() {
            return Err(Problem::malformed(
                "notBefore and notAfter are not supported; the provisioner sets the validity",
            ));
        }
        if body.identifiers.is_empty() || body.identifiers.len() > MAX_IDENTIFIERS {
            return Err(Problem::malformed(format!(
                "an order names 1 to {MAX_IDENTIFIERS} identifiers"
            )));
        }
        let mut names = BTreeSet::new();
        for i in &body.identifiers {
            if i.kind != "dns" {
                return Err(Problem::unsupported_identifier(format!(
                    "identifier type {:?} is not supported (dns is)",
                    i.kind
                )));
            }
            let v = i.value.to_ascii_lowercase();
            // A wildcard covers one label: its base must be a name itself.
            let base = v.strip_prefix("*.").unwrap_or(&v);
            match ca_core::names::SanEntry::parse(&format!("DNS:{base}")) {
                Ok(ca_core::names::SanEntry::Dns(d)) if !d.contains('*') => {
                    names.insert(if base.len() == v.len() {
                        d
                    } else {
                        format!("*.{d}")
                    });
                }
                Ok(_) | Err(_) => {
                    return Err(Problem::rejected_identifier(format!(
                        "{v:?} is not a valid DNS name"
                    )))
                }
            }
        }
        let p = self
            .provisioner(prov)
            .ok_or_else(|| Problem::not_found("no such directory"))?;
        let who = Self::identity(prov, account);
        let ca = self.ca_of(p)?;
        let now = self.now();
        let expires = now + i64::from(self.cfg.order_lifetime_hours) * 3600;
        let order_id = random_id("ord-", 8)?;
        let mut authzs = Vec::new();
        for n in &names {
            let (identifier, wildcard) = match n.strip_prefix("*.") {
                Some(base) => (base.to_string(), true),
                None => (n.clone(), false),
            };
            // A wildcard is proved in DNS only.
            let mut kinds = vec!["dns-01"];
            if !wildcard {
                kinds.extend(["http-01", "tls-alpn-01"]);
            }
            let mut challenges = Vec::new();
            for kind in kinds {
                challenges.push(AcmeChallenge {
                    id: random_id("ch-", 6)?,
                    kind: kind.into(),
                    status: "pending".into(),
                    token: token()?,
                    validated: None,
                    error: None,
                });
            }
            authzs.push(AcmeAuthz {
                id: random_id("az-", 8)?,
                account: account.id.clone(),
                order: order_id.clone(),
                identifier,
                wildcard,
                status: "pending".into(),
                expires,
                challenges,
            });
        }
        let order = AcmeOrder {
            id: order_id.clone(),
            account: account.id.clone(),
            provisioner: prov.to_string(),
            status: "pending".into(),
            identifiers: names.iter().cloned().collect(),
            authorizations: authzs.iter().map(|a| a.id.clone()).collect(),
            expires,
            certificate: None,
            error: None,
            created_at: now,
            csr: None,
        };
        let sans: Vec<ca_core::names::SanEntry> = names
            .iter()
            .map(|n| ca_core::names::SanEntry::Dns(n.clone()))
            .collect();
        let display = who.display();
        let stored = self
            .audited(
                "AcmeNewOrder",
                &order_id,
                &display,
                &account.thumbprint,
                async {
                    // The policy decides now which names this account may get;
                    // a refusal is audited too.
                    if let Err(e) =
                        self.auth
                            .acme_may_issue(&who, &ca, &sans, &p.profile, p.validity_days)
                    {
                        let problem = Problem::from_api(e);
                        let mut draft =
                            crate::audit::commit_draft(&display, "AcmeNewOrder", &order_id);
                        draft.result = crate::audit::AuditResult {
                            status: problem.status,
                            code: problem.kind.to_string(),
                        };
                        self.auth.store.append_audit(draft).await?;
                        return Err(problem);
                    }
                    let draft = crate::audit::commit_draft(&display, "AcmeNewOrder", &order_id);
                    let r = self
                        .auth
                        .store
                        .acme_put(Some(order.clone()), authzs, Some(draft))
                        .await;
                    crate::audit::committed();
                    r.map_err(Problem::from)
                },
            )
            .await;
        stored?;
        let url = self.url(prov, &format!("order/{order_id}"));
        Ok(Reply::json(StatusCode::CREATED, &self.order_json(prov, &order)).at(url))
    }

    /// renewalInfo (RFC 9773): when to renew. The window is the last third
    /// of the lifetime but its final sixth; for a revoked certificate, now.
    fn renewal_info(&self, cert_id: &str) -> Result<Reply, Problem> {
        let (rec, _) = cert_of_cert_id(&self.auth, cert_id)?;
        let now = self.now();
        let (start, end) = if rec.revocation.is_some() {
            (now - 3600, now)
        } else {
            let life = (rec.not_after - rec.not_before).max(3);
            (rec.not_after - life / 3, rec.not_after - life / 6)
        };
        let mut r = Reply::json(
            StatusCode::OK,
            &json!({"suggestedWindow": {
                "start": crate::clock::fmt_unix(start),
                "end": crate::clock::fmt_unix(end),
            }}),
        );
        r.retry_after = Some(6 * 3600);
        Ok(r)
    }

    fn ca_of(&self, p: &Provisioner) -> Result<String, Problem> {
        let ca = p.ca.clone().unwrap_or_else(|| self.auth.default_ca());
        self.auth.resolve_ca(&ca).map_err(Problem::from_api)
    }

    fn own_order(&self, account: &AcmeAccount, id: &str) -> Result<AcmeOrder, Problem> {
        let mut o = self
            .auth
            .store
            .acme_order(id)?
            .filter(|o| o.account == account.id)
            .ok_or_else(|| Problem::not_found("no such order"))?;
        // A pending order whose authorizations are all valid is ready, even
        // if the validation that finished last has not said so yet (another
        // node recorded one of them, say).
        if o.status == "pending" {
            let mut all_valid = true;
            for a in &o.authorizations {
                all_valid &= self
                    .auth
                    .store
                    .acme_authz(a)?
                    .is_some_and(|z| z.status == "valid");
            }
            if all_valid {
                o.status = "ready".into();
            }
        }
        Ok(o)
    }

    fn get_order(&self, prov: &str, account: &AcmeAccount, id: &str) -> Result<Reply, Problem> {
        let o = self.own_order(account, id)?;
        let url = self.url(prov, &format!("order/{id}"));
        let mut r = Reply::json(StatusCode::OK, &self.order_json(prov, &o)).at(url);
        if o.status == "processing" {
            r.retry_after = Some(1);
        }
        Ok(r)
    }

    fn authz_json(&self, prov: &str, a: &AcmeAuthz) -> Value {
        let status = authz_status_at(a, self.now());
        let mut v = json!({
            "status": status,
            "expires": crate::clock::fmt_unix(a.expires),
            "identifier": {"type": "dns", "value": a.identifier},
            "challenges": a.challenges.iter().map(|c| self.challenge_json(prov, a, c)).collect::<Vec<_>>(),
        });
        if a.wildcard {
            v["wildcard"] = json!(true);
        }
        v
    }

    fn challenge_json(&self, prov: &str, a: &AcmeAuthz, c: &AcmeChallenge) -> Value {
        let mut v = json!({
            "type": c.kind,
            "url": self.url(prov, &format!("chall/{}/{}", a.id, c.id)),
            "status": c.status,
            "token": c.token,
        });
        if let Some(t) = c.validated {
            v["validated"] = json!(crate::clock::fmt_unix(t));
        }
        if let Some(e) = &c.error {
            v["error"] = serde_json::from_str(e).unwrap_or(Value::Null);
        }
        v
    }

    fn own_authz(&self, account: &AcmeAccount, id: &str) -> Result<AcmeAuthz, Problem> {
        self.auth
            .store
            .acme_authz(id)?
            .filter(|a| a.account == account.id)
            .ok_or_else(|| Problem::not_found("no such authorization"))
    }

    fn get_authz(&self, prov: &str, account: &AcmeAccount, id: &str) -> Result<Reply, Problem> {
        let a = self.own_authz(account, id)?;
        Ok(Reply::json(StatusCode::OK, &self.authz_json(prov, &a)))
    }

    async fn challenge(
        &self,
        prov: &str,
        account: &AcmeAccount,
        authz_id: &str,
        chall_id: &str,
        jws: &Jws,
    ) -> Result<Reply, Problem> {
        let mut authz = self.own_authz(account, authz_id)?;
        let idx = authz
            .challenges
            .iter()
            .position(|c| c.id == chall_id)
            .ok_or_else(|| Problem::not_found("no such challenge"))?;
        let up = format!(
            "<{}>;rel=\"up\"",
            self.url(prov, &format!("authz/{}", authz.id))
        );
        // POST-as-GET reads; `{}` asks for validation.
        let start = !jws.payload.is_empty();
        if start {
            let _: serde_json::Map<String, Value> = jws.payload_json()?;
        }
        let pending = authz.challenges[idx].status == "pending"
            && authz.status == "pending"
            && authz.expires > self.now();
        if start && pending {
            authz.challenges[idx].status = "processing".into();
            self.auth
                .store
                .acme_put(None, vec![authz.clone()], None)
                .await?;
            let key_authorization =
                format!("{}.{}", authz.challenges[idx].token, account.thumbprint);
            validate::spawn(
                self.auth.clone(),
                self.cfg.clone(),
                prov.to_string(),
                account.clone(),
                authz.clone(),
                idx,
                key_authorization,
            );
        }
        let c = &authz.challenges[idx];
        let mut r = Reply::json(StatusCode::OK, &self.challenge_json(prov, &authz, c)).link(up);
        if c.status == "processing" {
            r.retry_after = Some(1);
        }
        Ok(r)
    }

    async fn finalize(
        &self,
        prov: &str,
        account: &AcmeAccount,
        id: &str,
        jws: &Jws,
    ) -> Result<Reply, Problem> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Finalize {
            csr: String,
        }
        let mut order = self.own_order(account, id)?;
        let url = self.url(prov, &format!("order/{id}"));
        let p = self
            .provisioner(prov)
            .ok_or_else(|| Problem::not_found("no such directory"))?;
        let pem = match (self.order_status(&order).as_str(), order.csr.clone()) {
            // Left processing (a crash, or a client that hung up mid-way):
            // issuing again with the order's token finishes it, with the
            // certificate already made if there is one.
            ("processing", Some(pem)) => pem,
            ("processing" | "valid", _) => {
                return Ok(Reply::json(StatusCode::OK, &self.order_json(prov, &order)).at(url))
            }
            ("ready", _) => {
                let f: Finalize = jws.payload_json()?;
                let der = jws::unb64(&f.csr, "csr")?;
                self.check_csr(p, &order, &der)?;
                let pem = ca_core::pem::encode("CERTIFICATE REQUEST", &der);
                order.status = "processing".into();
                order.csr = Some(pem.clone());
                self.auth
                    .store
                    .acme_put(Some(order.clone()), Vec::new(), None)
                    .await?;
                pem
            }
            (s, _) => {
                return Err(Problem::order_not_ready(format!(
                    "the order is {s}, not ready"
                )))
            }
        };
        let ca = self.ca_of(p)?;
        let who = Self::identity(prov, account);
        // Issued in a task of its own: a client that hangs up cannot leave
        // the order half-way.
        let task = tokio::spawn(complete(
            self.auth.clone(),
            order,
            who,
            account.thumbprint.clone(),
            ca,
            pem,
            p.profile.clone(),
            p.validity_days,
        ));
        let order = task
            .await
            .map_err(|e| Problem::server(format!("issuance task: {e}")))??;
        Ok(Reply::json(StatusCode::OK, &self.order_json(prov, &order)).at(url))
    }

    /// The CSR of a finalize names exactly the order's names.
    fn check_csr(&self, p: &Provisioner, order: &AcmeOrder, der: &[u8]) -> Result<(), Problem> {
        let csr = ca_core::csr::parse_csr(der).map_err(|e| Problem::bad_csr(e.to_string()))?;
        let profile =
            crate::authority::parse_leaf_profile(&p.profile).map_err(Problem::from_api)?;
        let request = ca_core::cert::CertificateRequest::from_csr(&csr, profile);
        let mut asked = BTreeSet::new();
        for s in &request.sans {
            match s {
                ca_core::names::SanEntry::Dns(d) => {
                    asked.insert(d.to_ascii_lowercase());
                }
                other => return Err(Problem::bad_csr(format!("{other} is not in the order"))),
            }
        }
        let ordered: BTreeSet<String> = order.identifiers.iter().cloned().collect();
        if asked != ordered {
            return Err(Problem::bad_csr(format!(
                "the CSR names {:?}; the order names {:?}",
                asked, ordered
            )));
        }
        Ok(())
    }

    fn certificate(&self, account: &AcmeAccount, id: &str) -> Result<Reply, Problem> {
        let o = self.own_order(account, id)?;
        let Some((ca, serial)) = &o.certificate else {
            return Err(Problem::not_found("the order has no certificate yet"));
        };
        let view = self
            .auth
            .get_certificate(&Identity::internal("acme"), Some(ca), serial)
            .map_err(Problem::from_api)?;
        let mut pem = ca_core::pem::encode("CERTIFICATE", &view.der);
        // The chain up to, not including, the root (which clients hold).
        let n = view.chain_der.len().saturating_sub(1);
        for d in view
            .chain_der
            .iter()
            .take(n.max(1).min(view.chain_der.len()))
        {
            pem.push_str(&ca_core::pem::encode("CERTIFICATE", d));
        }
        Ok(Reply {
            status: StatusCode::OK,
            body: Bytes::from(pem),
            content_type: "application/pem-certificate-chain",
            location: None,
            links: Vec::new(),
            retry_after: None,
        })
    }

    async fn revoke(&self, prov: &str, sender: Sender, jws: &Jws) -> Result<Reply, Problem> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Revoke {
            certificate: String,
            #[serde(default)]
            reason: Option<i64>,
        }
        let r: Revoke = jws.payload_json()?;
        let der = jws::unb64(&r.certificate, "certificate")?;
        let (serial, spki) = {
            use der::{Decode, Encode};
            let cert = x509_cert::Certificate::from_der(&der)
                .map_err(|e| Problem::malformed(format!("certificate: {e}")))?;
            let spki = cert
                .tbs_certificate
                .subject_public_key_info
                .to_der()
                .map_err(|e| Problem::malformed(format!("certificate key: {e}")))?;
            let mut bytes = cert.tbs_certificate.serial_number.as_bytes();
            while bytes.len() > 1 && bytes[0] == 0 {
                bytes = &bytes[1..];
            }
            let serial = crate::authority::parse_serial(&ca_core::hex::encode(bytes))
                .map_err(|e| Problem::malformed(e.message))?;
            (serial, spki)
        };
        let Some(ca) = self.auth.store.ca_of_serial(&serial)? else {
            return Err(Problem::not_found(
                "this server did not issue that certificate",
            ));
        };
        let Some((rec, stored)) = self.auth.store.get_cert(&ca, &serial)? else {
            return Err(Problem::not_found(
                "this server did not issue that certificate",
            ));
        };
        if stored.as_deref() != Some(der.as_slice()) {
            return Err(Problem::unauthorized(
                "that is not the certificate this server issued under that serial",
            ));
        }
        let (who, key) = match &sender {
            Sender::Account(a) => {
                let who = format!("URI:acme:{prov}/{}", a.id);
                if rec.requested_by != who {
                    return Err(Problem::unauthorized(
                        "this account did not order that certificate",
                    ));
                }
                (who, a.thumbprint.clone())
            }
            Sender::Key(jwk) => {
                if !jws::jwk_matches_spki(jwk, &spki)? {
                    return Err(Problem::unauthorized("the request is signed neither by the ordering account nor by the certificate's key"));
                }
                ("acme: certificate key".to_string(), jws::thumbprint(jwk)?)
            }
        };
        if rec.revocation.is_some() {
            return Err(Problem::already_revoked(
                "the certificate is already revoked",
            ));
        }
        let reason = crate::authority::reason_from_code(r.reason.unwrap_or(0))
            .map_err(|e| Problem::bad_revocation_reason(e.message))?;
        // ACME's rules decided above; the authority records who asked.
        let internal = Identity::internal(&who);
        self.audited(
            "AcmeRevokeCertificate",
            &format!("{ca}/{serial}"),
            &who,
            &key,
            async {
                self.auth
                    .revoke(&internal, Some(&ca), &serial, reason)
                    .await
            },
        )
        .await
        .map_err(Problem::from_api)?;
        Ok(Reply::json(StatusCode::OK, &Value::Null))
    }
}

/// A store refusal because the account changed under the request, as the
/// client sees it; other store errors as usual.
fn stale_or(e: StoreError) -> Problem {
    match e {
        StoreError::Conflict(why) if why.starts_with("stale:") => Problem {
            kind: "unauthorized",
            detail: why.trim_start_matches("stale:").to_string(),
            status: 409,
        },
        other => other.into(),
    }
}

fn check_contacts(contacts: &[String]) -> Result<(), Problem> {
    for c in contacts {
        let ok = c.len() <= 256
            && c.strip_prefix("mailto:")
                .is_some_and(|m| ca_core::names::SanEntry::parse(&format!("email:{m}")).is_ok());
        if !ok {
            return Err(Problem {
                kind: "invalidContact",
                detail: format!("{c:?} is not a mailto: address"),
                status: 400,
            });
        }
    }
    Ok(())
}

async fn read_body(req: Request<Incoming>) -> Result<Vec<u8>, Problem> {
    let ct = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    if !ct.starts_with("application/jose+json") {
        return Err(Problem::malformed(
            "Content-Type must be application/jose+json",
        ));
    }
    match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => Ok(b.to_bytes().to_vec()),
        Err(_) => Err(Problem {
            kind: "malformed",
            detail: format!("the body is over {MAX_BODY} bytes or was cut off"),
            status: 413,
        }),
    }
}

/// ACME Renewal Information (RFC 9773): the certificate a certID names
/// (`base64url(AKI keyIdentifier).base64url(serial)`), if this server
/// issued it: its CA and serial.
fn cert_of_cert_id(
    auth: &Authority,
    cert_id: &str,
) -> Result<(crate::store::CertRecord, Vec<u8>), Problem> {
    use der::Decode;
    let (aki, serial) = cert_id
        .split_once('.')
        .ok_or_else(|| Problem::malformed("a certID is base64url(AKI).base64url(serial)"))?;
    let aki = jws::unb64(aki, "the certID's key identifier")?;
    let serial_der = jws::unb64(serial, "the certID's serial")?;
    let mut bytes = serial_der.as_slice();
    while bytes.len() > 1 && bytes[0] == 0 {
        bytes = &bytes[1..];
    }
    let serial = crate::authority::parse_serial(&ca_core::hex::encode(bytes))
        .map_err(|e| Problem::malformed(e.message))?;
    let unknown = || Problem::not_found("this server issued no certificate with that certID");
    let ca = auth.store.ca_of_serial(&serial)?.ok_or_else(unknown)?;
    let (rec, der) = auth.store.get_cert(&ca, &serial)?.ok_or_else(unknown)?;
    let der = der.ok_or_else(unknown)?;
    let cert = x509_cert::Certificate::from_der(&der)
        .map_err(|e| Problem::server(format!("stored certificate: {e}")))?;
    let cert_aki = cert
        .tbs_certificate
        .get::<x509_cert::ext::pkix::AuthorityKeyIdentifier>()
        .ok()
        .flatten()
        .and_then(|(_, a)| a.key_identifier)
        .map(|k| k.as_bytes().to_vec());
    if cert_aki.as_deref() != Some(aki.as_slice()) {
        return Err(unknown());
    }
    Ok((rec, der))
}

/// An order past its expiry that never became valid is invalid.
fn order_status_at(o: &AcmeOrder, now: i64) -> String {
    if o.expires <= now && matches!(o.status.as_str(), "pending" | "ready") {
        "invalid".into()
    } else {
        o.status.clone()
    }
}

/// A pending authorization past its expiry is expired.
fn authz_status_at(a: &AcmeAuthz, now: i64) -> &str {
    if a.expires <= now && a.status == "pending" {
        "expired"
    } else {
        a.status.as_str()
    }
}

/// Issue an order's certificate (the order id is the idempotency token, so
/// running this twice for one order gives one certificate) and record the
/// outcome on the order.
#[allow(clippy::too_many_arguments)]
async fn complete(
    auth: Arc<Authority>,
    mut order: AcmeOrder,
    who: Identity,
    thumbprint: String,
    ca: String,
    pem: String,
    profile: String,
    validity_days: Option<u32>,
) -> Result<AcmeOrder, Problem> {
    let display = who.display();
    let d = Decisions {
        identity: Some(AuditIdentity {
            subject: display.clone(),
            fingerprint: thumbprint,
        }),
        action: "AcmeFinalize".into(),
        target: order.id.clone(),
        success_status: 200,
        ..Default::default()
    };
    let (issued, _) = crate::audit::with_call(d, async {
        auth.issue_from_csr(&who, &ca, &pem, &profile, validity_days, Some(&order.id))
            .await
    })
    .await;
    match issued {
        Ok(view) => {
            order.status = "valid".into();
            order.certificate = Some((view.record.ca_id.clone(), view.record.serial.clone()));
            tracing::info!(order = %order.id, serial = %view.record.serial, "acme certificate issued");
        }
        // Not the request's fault, or another finalize of this order still
        // signing: the order is left as it is, and a retry finishes it.
        Err(e)
            if matches!(
                e.code,
                ErrorCode::Unavailable
                    | ErrorCode::Internal
                    | ErrorCode::Throttled
                    | ErrorCode::Conflict
            ) =>
        {
            return Err(Problem::from_api(e));
        }
        Err(e) => {
            let p = Problem::from_api(e);
            order.status = "invalid".into();
            order.error = Some(p.to_json().to_string());
            auth.store
                .acme_put(Some(order.clone()), Vec::new(), None)
                .await?;
            return Err(p);
        }
    }
    auth.store
        .acme_put(Some(order.clone()), Vec::new(), None)
        .await?;
    Ok(order)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_and_authorizations_expire_unless_done() {
        let order = |status: &str| AcmeOrder {
            id: "ord-1".into(),
            account: "acct-1".into(),
            provisioner: "default".into(),
            status: status.into(),
            identifiers: vec!["a.example".into()],
            authorizations: vec![],
            expires: 1000,
            certificate: None,
            error: None,
            created_at: 0,
            csr: None,
        };
        for (status, before, after) in [
            ("pending", "pending", "invalid"),
            ("ready", "ready", "invalid"),
            ("processing", "processing", "processing"),
            ("valid", "valid", "valid"),
        ] {
            assert_eq!(order_status_at(&order(status), 999), before);
            assert_eq!(order_status_at(&order(status), 1000), after, "{status}");
        }
        let authz = |status: &str| AcmeAuthz {
            id: "az-1".into(),
            account: "acct-1".into(),
            order: "ord-1".into(),
            identifier: "a.example".into(),
            wildcard: false,
            status: status.into(),
            expires: 1000,
            challenges: vec![],
        };
        assert_eq!(authz_status_at(&authz("pending"), 999), "pending");
        assert_eq!(authz_status_at(&authz("pending"), 1000), "expired");
        assert_eq!(authz_status_at(&authz("valid"), 5000), "valid");
    }
}
