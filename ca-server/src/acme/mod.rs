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

mod accounts;
mod authz;
pub mod client;
mod config;
mod dns;
mod finalize;
pub mod jws;
mod limits;
mod nonce;
mod orders;
mod problem;
mod renewal;
mod validate;

use std::collections::BTreeSet;
use std::sync::Arc;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::audit::{AuditIdentity, Decisions};
use crate::authority::{Authority, Identity};
use crate::error::ErrorCode;
use crate::store::{AcmeAccount, AcmeAuthz, AcmeChallenge, AcmeOrder, StoreError};
pub use config::{AcmeConfig, EabMode, Provisioner};
use jws::Jws;
pub use problem::Problem;

/// Largest request body accepted.
const MAX_BODY: usize = 64 * 1024;
/// Most identifiers in one order.
const MAX_IDENTIFIERS: usize = 100;

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
