//! A small ACME client (ES256 account key, `http-01`), for the tests and
//! `ca-bench --acme`: it drives the server the way certbot does, on one
//! kept-alive connection, and can also send requests crafted wrong on
//! purpose ([`AcmeClient::post_jws`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::{HeaderMap, Method, Request};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};

use super::jws::b64;

/// An answer: status, headers, body.
pub type Answer = (u16, HeaderMap, Bytes);

pub struct AcmeClient {
    sender: SendRequest<Full<Bytes>>,
    authority: String,
    key: EcdsaKeyPair,
    pub jwk: Value,
    pub kid: Option<String>,
    pub directory: Value,
    nonce: Option<String>,
}

fn err(what: &str, e: impl std::fmt::Display) -> String {
    format!("{what}: {e}")
}

impl AcmeClient {
    /// Connect to the directory's host (HTTPS, trusting `tls`'s roots) with a
    /// new P-256 account key, and read the directory.
    pub async fn connect(
        directory_url: &str,
        tls: Arc<rustls::ClientConfig>,
    ) -> Result<AcmeClient, String> {
        let uri: hyper::Uri = directory_url.parse().map_err(|e| err("directory URL", e))?;
        let authority = uri
            .authority()
            .ok_or("the directory URL has no host")?
            .to_string();
        let host = uri.host().unwrap_or_default().to_string();
        let port = uri.port_u16().unwrap_or(443);
        let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|e| err("connect", e))?;
        let _ = tcp.set_nodelay(true);
        let name = rustls_pki_types::ServerName::try_from(host.clone())
            .map_err(|e| err("server name", e))?;
        let stream = tokio_rustls::TlsConnector::from(tls)
            .connect(name, tcp)
            .await
            .map_err(|e| err("TLS", e))?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| err("HTTP", e))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let (key, jwk) = new_key()?;
        let mut c = AcmeClient {
            sender,
            authority,
            key,
            jwk,
            kid: None,
            directory: Value::Null,
            nonce: None,
        };
        let (st, _, body) = c.send(Method::GET, directory_url, None).await?;
        if st != 200 {
            return Err(format!("directory answered {st}"));
        }
        c.directory = serde_json::from_slice(&body).map_err(|e| err("directory", e))?;
        Ok(c)
    }

    pub fn url(&self, name: &str) -> String {
        self.directory[name]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub fn thumbprint(&self) -> String {
        super::jws::thumbprint(&self.jwk).unwrap_or_default()
    }

    /// One HTTP exchange; keeps the Replay-Nonce it brings.
    pub async fn send(
        &mut self,
        method: Method,
        url: &str,
        jose: Option<Vec<u8>>,
    ) -> Result<Answer, String> {
        let path = url
            .split_once(&self.authority)
            .map(|(_, p)| p.to_string())
            .ok_or_else(|| format!("{url} is not on {}", self.authority))?;
        self.sender
            .ready()
            .await
            .map_err(|e| err("connection", e))?;
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, self.authority.as_str());
        if jose.is_some() {
            req = req.header(hyper::header::CONTENT_TYPE, "application/jose+json");
        }
        let req = req
            .body(Full::new(Bytes::from(jose.unwrap_or_default())))
            .map_err(|e| err("request", e))?;
        // A server that never answers is an error, not a hang.
        let resp = tokio::time::timeout(
            std::time::Duration::from_secs(15),
            self.sender.send_request(req),
        )
        .await
        .map_err(|_| format!("no answer from {url} within 15 s"))?
        .map_err(|e| err("send", e))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        if let Some(n) = headers.get("replay-nonce").and_then(|v| v.to_str().ok()) {
            self.nonce = Some(n.to_string());
        }
        let body = Limited::new(resp.into_body(), 1 << 20)
            .collect()
            .await
            .map_err(|e| err("body", e))?
            .to_bytes();
        Ok((status, headers, body))
    }

    /// A fresh nonce (the last one an answer brought, else newNonce).
    pub async fn nonce(&mut self) -> Result<String, String> {
        if let Some(n) = self.nonce.take() {
            return Ok(n);
        }
        let url = self.url("newNonce");
        self.send(Method::HEAD, &url, None).await?;
        self.nonce
            .take()
            .ok_or_else(|| "newNonce gave no nonce".into())
    }

    /// A JWS over `payload` (None: POST-as-GET) with the given header.
    pub fn jws(&self, protected: &Value, payload: Option<&Value>) -> Result<Vec<u8>, String> {
        Ok(sign_with(&self.key, protected, payload)?
            .to_string()
            .into_bytes())
    }

    /// Move the account to a new key (keyChange); the client signs with it
    /// from then on.
    pub async fn change_key(&mut self) -> Result<Answer, String> {
        let (key, jwk) = new_key()?;
        let url = self.url("keyChange");
        let kid = self.kid.clone().ok_or("no account yet")?;
        let inner = sign_with(
            &key,
            &json!({"alg": "ES256", "jwk": jwk, "url": url}),
            Some(&json!({"account": kid, "oldKey": self.jwk})),
        )?;
        let a = self.post(&url, Some(&inner)).await?;
        if a.0 == 200 {
            self.key = key;
            self.jwk = jwk;
        }
        Ok(a)
    }

    /// The protected header this client would send to `url`.
    pub fn header(&self, url: &str, nonce: &str) -> Value {
        match &self.kid {
            Some(kid) => json!({"alg": "ES256", "kid": kid, "nonce": nonce, "url": url}),
            None => json!({"alg": "ES256", "jwk": self.jwk, "nonce": nonce, "url": url}),
        }
    }

    /// POST a JWS as given (for requests made wrong on purpose).
    pub async fn post_jws(&mut self, url: &str, jose: Vec<u8>) -> Result<Answer, String> {
        self.send(Method::POST, url, Some(jose)).await
    }

    /// A signed POST; retried once with a fresh nonce on badNonce.
    pub async fn post(&mut self, url: &str, payload: Option<&Value>) -> Result<Answer, String> {
        for _ in 0..2 {
            let nonce = self.nonce().await?;
            let jose = self.jws(&self.header(url, &nonce), payload)?;
            let a = self.post_jws(url, jose).await?;
            if a.0 == 400 && a.2.windows(8).any(|w| w == b"badNonce") {
                continue;
            }
            return Ok(a);
        }
        Err("badNonce twice".into())
    }

    /// newAccount with an external account binding under (`kid`, the
    /// base64url MAC key); the answer as it comes.
    pub async fn new_account_with_eab(
        &mut self,
        kid: &str,
        hmac_b64: &str,
    ) -> Result<Answer, String> {
        use aws_lc_rs::hmac;
        let url = self.url("newAccount");
        let protected = b64(json!({"alg": "HS256", "kid": kid, "url": url})
            .to_string()
            .as_bytes());
        let payload = b64(self.jwk.to_string().as_bytes());
        let key = super::jws::unb64(hmac_b64, "MAC key").map_err(|p| p.detail)?;
        let tag = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, &key),
            format!("{protected}.{payload}").as_bytes(),
        );
        let eab =
            json!({"protected": protected, "payload": payload, "signature": b64(tag.as_ref())});
        let a = self
            .post(
                &url,
                Some(&json!({"termsOfServiceAgreed": true, "externalAccountBinding": eab})),
            )
            .await?;
        if a.0 == 201 {
            self.kid =
                a.1.get("location")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
        }
        Ok(a)
    }

    pub async fn new_account(&mut self) -> Result<(), String> {
        let url = self.url("newAccount");
        let (st, h, body) = self
            .post(&url, Some(&json!({"termsOfServiceAgreed": true})))
            .await?;
        if st != 201 && st != 200 {
            return Err(format!(
                "newAccount {st}: {}",
                String::from_utf8_lossy(&body)
            ));
        }
        self.kid = h
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        Ok(())
    }

    /// A whole order: new order, http-01 through `responder`, finalize with
    /// a CSR for `names`, download. Returns the PEM chain.
    pub async fn obtain(
        &mut self,
        names: &[&str],
        responder: &Responder,
    ) -> Result<String, String> {
        self.obtain_with(names, "http-01", &|_, token, key_authorization| {
            responder.put(token, key_authorization)
        })
        .await
    }

    /// A whole order answering each authorization's `kind` challenge with
    /// `solve(identifier, token, key_authorization)`.
    pub async fn obtain_with(
        &mut self,
        names: &[&str],
        kind: &str,
        solve: &(dyn Fn(&str, &str, &str) + Sync),
    ) -> Result<String, String> {
        let csr = csr_for(names)?;
        self.obtain_with_csr(names, csr, kind, solve).await
    }

    /// A whole http-01 order whose certificate key the caller keeps:
    /// (PEM chain, the key, its JWK).
    pub async fn obtain_keeping_key(
        &mut self,
        names: &[&str],
        responder: &Responder,
    ) -> Result<(String, EcdsaKeyPair, Value), String> {
        let (key, jwk) = new_key()?;
        let pkcs8 = self_pkcs8(&key)?;
        let soft = ca_core::keys::SoftwareKey::from_pkcs8_der(&pkcs8).map_err(|e| err("key", e))?;
        let sans = names
            .iter()
            .map(|n| ca_core::names::SanEntry::parse(n).map_err(|e| err("name", e)))
            .collect::<Result<Vec<_>, _>>()?;
        let csr = ca_core::csr::create_csr(&soft, &x509_cert::name::Name::default(), &sans)
            .map_err(|e| err("csr", e))?;
        let pem = self
            .obtain_with_csr(names, csr, "http-01", &|_, token, ka| {
                responder.put(token, ka)
            })
            .await?;
        Ok((pem, key, jwk))
    }

    /// revokeCert signed by the account (`key` None) or by the certificate's
    /// own key.
    pub async fn revoke(
        &mut self,
        cert_der: &[u8],
        reason: u8,
        key: Option<(&EcdsaKeyPair, &Value)>,
    ) -> Result<Answer, String> {
        let url = self.url("revokeCert");
        let payload = json!({"certificate": b64(cert_der), "reason": reason});
        match key {
            None => self.post(&url, Some(&payload)).await,
            Some((k, jwk)) => {
                let nonce = self.nonce().await?;
                let jose = sign_with(
                    k,
                    &json!({"alg": "ES256", "jwk": jwk, "nonce": nonce, "url": url}),
                    Some(&payload),
                )?;
                self.post_jws(&url, jose.to_string().into_bytes()).await
            }
        }
    }

    async fn obtain_with_csr(
        &mut self,
        names: &[&str],
        csr: Vec<u8>,
        kind: &str,
        solve: &(dyn Fn(&str, &str, &str) + Sync),
    ) -> Result<String, String> {
        let ids: Vec<Value> = names
            .iter()
            .map(|n| json!({"type": "dns", "value": n}))
            .collect();
        let url = self.url("newOrder");
        let (st, h, body) = self.post(&url, Some(&json!({"identifiers": ids}))).await?;
        if st != 201 {
            return Err(format!("newOrder {st}: {}", String::from_utf8_lossy(&body)));
        }
        let order_url = h
            .get("location")
            .and_then(|v| v.to_str().ok())
            .ok_or("no order location")?
            .to_string();
        let order: Value = serde_json::from_slice(&body).map_err(|e| err("order", e))?;
        let thumb = self.thumbprint();
        for a in order["authorizations"]
            .as_array()
            .cloned()
            .unwrap_or_default()
        {
            let a = a.as_str().unwrap_or_default().to_string();
            let (_, _, body) = self.post(&a, None).await?;
            let authz: Value = serde_json::from_slice(&body).map_err(|e| err("authz", e))?;
            let ch = authz["challenges"]
                .as_array()
                .and_then(|c| c.iter().find(|c| c["type"] == kind))
                .ok_or_else(|| format!("no {kind} challenge"))?
                .clone();
            let token = ch["token"].as_str().unwrap_or_default();
            let identifier = authz["identifier"]["value"].as_str().unwrap_or_default();
            solve(identifier, token, &format!("{token}.{thumb}"));
            let ch_url = ch["url"].as_str().unwrap_or_default().to_string();
            self.post(&ch_url, Some(&json!({}))).await?;
        }
        let order = self.poll(&order_url, &["ready", "invalid"]).await?;
        if order["status"] != "ready" {
            return Err(format!("order not ready: {order}"));
        }
        let fin = order["finalize"].as_str().unwrap_or_default().to_string();
        let (st, _, body) = self.post(&fin, Some(&json!({"csr": b64(&csr)}))).await?;
        if st != 200 {
            return Err(format!("finalize {st}: {}", String::from_utf8_lossy(&body)));
        }
        let order = self.poll(&order_url, &["valid", "invalid"]).await?;
        let cert = order["certificate"]
            .as_str()
            .ok_or("no certificate URL")?
            .to_string();
        let (st, _, body) = self.post(&cert, None).await?;
        if st != 200 {
            return Err(format!("certificate {st}"));
        }
        Ok(String::from_utf8_lossy(&body).into_owned())
    }

    /// POST-as-GET `url` until its status is one of `done` (10 s at most).
    pub async fn poll(&mut self, url: &str, done: &[&str]) -> Result<Value, String> {
        let start = std::time::Instant::now();
        loop {
            let (_, _, body) = self.post(url, None).await?;
            let v: Value = serde_json::from_slice(&body).map_err(|e| err("poll", e))?;
            if done.iter().any(|d| v["status"] == *d) {
                return Ok(v);
            }
            if start.elapsed() > std::time::Duration::from_secs(10) {
                return Err(format!("still {} after 10 s", v["status"]));
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }
}

/// The PKCS#8 form of a key this client made (to put it in a CSR).
fn self_pkcs8(key: &EcdsaKeyPair) -> Result<Vec<u8>, String> {
    key.to_pkcs8v1()
        .map(|d| d.as_ref().to_vec())
        .map_err(|e| err("key export", e))
}

/// A new P-256 key and its JWK.
fn new_key() -> Result<(EcdsaKeyPair, Value), String> {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
        .map_err(|e| err("key", e))?;
    let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())
        .map_err(|e| err("key", e))?;
    let point = key.public_key().as_ref();
    let jwk = json!({
        "kty": "EC", "crv": "P-256",
        "x": b64(&point[1..33]), "y": b64(&point[33..65]),
    });
    Ok((key, jwk))
}

/// The flattened JWS of `payload` under `protected`, signed with `key`.
fn sign_with(
    key: &EcdsaKeyPair,
    protected: &Value,
    payload: Option<&Value>,
) -> Result<Value, String> {
    let protected = b64(protected.to_string().as_bytes());
    let payload = payload
        .map(|p| b64(p.to_string().as_bytes()))
        .unwrap_or_default();
    let input = format!("{protected}.{payload}");
    let sig = key
        .sign(&SystemRandom::new(), input.as_bytes())
        .map_err(|e| err("sign", e))?;
    Ok(json!({"protected": protected, "payload": payload, "signature": b64(sig.as_ref())}))
}

/// A CSR for `names` with a new P-256 key (the key is thrown away).
pub fn csr_for(names: &[&str]) -> Result<Vec<u8>, String> {
    let key = ca_core::keys::SoftwareKey::generate(ca_core::keys::KeyAlgorithm::EcdsaP256)
        .map_err(|e| err("key", e))?;
    let sans = names
        .iter()
        .map(|n| ca_core::names::SanEntry::parse(n).map_err(|e| err("name", e)))
        .collect::<Result<Vec<_>, _>>()?;
    ca_core::csr::create_csr(&key, &x509_cert::name::Name::default(), &sans)
        .map_err(|e| err("csr", e))
}

/// An `http-01` responder: serves key authorizations by token.
#[derive(Clone, Default)]
pub struct Responder {
    answers: Arc<Mutex<HashMap<String, String>>>,
    /// When set, answers wait until this many requests are waiting, then
    /// all go at once (validations finish together, as they can on a busy
    /// server).
    gather: Arc<Mutex<Option<Arc<tokio::sync::Barrier>>>>,
    /// When set, challenge requests are redirected to this prefix + token
    /// (a path, or an absolute URL); `/moved/TOKEN` answers too.
    redirect: Arc<Mutex<Option<String>>>,
}

impl Responder {
    /// Redirect challenge requests to `prefix` + token (None: answer them).
    pub fn redirect(&self, prefix: Option<&str>) {
        *self.redirect.lock().unwrap_or_else(|p| p.into_inner()) = prefix.map(str::to_string);
    }

    /// Hold answers until `n` requests wait, then answer them together.
    pub fn gather(&self, n: usize) {
        *self.gather.lock().unwrap_or_else(|p| p.into_inner()) =
            Some(Arc::new(tokio::sync::Barrier::new(n)));
    }

    pub fn put(&self, token: &str, key_authorization: &str) {
        self.answers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(token.to_string(), key_authorization.to_string());
    }

    /// Serve on `listener` until the task is dropped.
    pub async fn serve(self, listener: tokio::net::TcpListener) {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let me = self.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                    let me = me.clone();
                    async move {
                        let gather = me.gather.lock().unwrap_or_else(|p| p.into_inner()).clone();
                        if let Some(b) = gather {
                            b.wait().await;
                        }
                        let path = req.uri().path().to_string();
                        let redirect = me
                            .redirect
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .clone();
                        let (token, redirected) =
                            match path.strip_prefix("/.well-known/acme-challenge/") {
                                Some(t) => (t.to_string(), redirect),
                                None => (
                                    path.strip_prefix("/moved/").unwrap_or_default().to_string(),
                                    None,
                                ),
                            };
                        if let Some(prefix) = redirected {
                            let mut resp = hyper::Response::new(Full::new(Bytes::new()));
                            *resp.status_mut() = hyper::StatusCode::FOUND;
                            if let Ok(v) =
                                hyper::header::HeaderValue::from_str(&format!("{prefix}{token}"))
                            {
                                resp.headers_mut().insert(hyper::header::LOCATION, v);
                            }
                            return Ok::<_, std::convert::Infallible>(resp);
                        }
                        let found = me
                            .answers
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .get(&token)
                            .cloned();
                        let mut resp = hyper::Response::new(Full::new(Bytes::from(
                            found.clone().unwrap_or_default(),
                        )));
                        if found.is_none() {
                            *resp.status_mut() = hyper::StatusCode::NOT_FOUND;
                        }
                        Ok::<_, std::convert::Infallible>(resp)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
            });
        }
    }
}
