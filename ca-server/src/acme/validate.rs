//! Challenge validation, from the server: `http-01` (RFC 8555 §8.3) fetches
//! `http://NAME:PORT/.well-known/acme-challenge/TOKEN` and expects the key
//! authorization. The outcome, success or failure, is written with its
//! authorization and order, and audited (`AcmeValidateChallenge`).

use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper::Request;
use hyper_util::rt::TokioIo;
use serde_json::Value;

use super::{AcmeConfig, Problem};
use crate::audit::{AuditIdentity, AuditResult, Decisions};
use crate::authority::Authority;
use crate::store::{AcmeAccount, AcmeAuthz};

/// Largest answer read from a challenge URL.
const MAX_ANSWER: usize = 8 * 1024;
/// Attempts before a challenge fails (a responder may still be starting).
const ATTEMPTS: u32 = 3;

pub fn spawn(
    auth: Arc<Authority>,
    cfg: AcmeConfig,
    prov: String,
    account: AcmeAccount,
    authz: AcmeAuthz,
    idx: usize,
    key_authorization: String,
) {
    tokio::spawn(async move {
        let mut outcome = Err(Problem::connection("not attempted"));
        for attempt in 0..ATTEMPTS {
            outcome = http01(
                &cfg,
                &authz.identifier,
                &authz.challenges[idx].token,
                &key_authorization,
            )
            .await;
            if outcome.is_ok() || attempt + 1 == ATTEMPTS {
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        if let Err(e) = record(&auth, &prov, &account, authz, idx, outcome).await {
            tracing::warn!(error = %e.detail, "acme: recording a validation failed");
        }
    });
}

/// Fetch the challenge URL and compare what it answers.
async fn http01(
    cfg: &AcmeConfig,
    name: &str,
    token: &str,
    key_authorization: &str,
) -> Result<(), Problem> {
    let host = cfg.resolve_to.clone().unwrap_or_else(|| name.to_string());
    let port = cfg.http01_port;
    let timeout = Duration::from_secs(cfg.validation_timeout_secs);
    let fetch = async {
        let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|e| Problem::connection(format!("connecting to {name}:{port}: {e}")))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .map_err(|e| Problem::connection(format!("HTTP with {name}:{port}: {e}")))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let req = Request::builder()
            .uri(format!("/.well-known/acme-challenge/{token}"))
            .header(
                hyper::header::HOST,
                if port == 80 {
                    name.to_string()
                } else {
                    format!("{name}:{port}")
                },
            )
            .header(
                hyper::header::USER_AGENT,
                concat!("ca-server-acme/", env!("CARGO_PKG_VERSION")),
            )
            .body(Empty::<Bytes>::new())
            .map_err(|e| Problem::server(e.to_string()))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| Problem::connection(format!("GET from {name}:{port}: {e}")))?;
        let status = resp.status();
        let body = Limited::new(resp.into_body(), MAX_ANSWER)
            .collect()
            .await
            .map_err(|_| Problem::incorrect_response("the answer is too large or cut off"))?
            .to_bytes();
        if !status.is_success() {
            return Err(Problem::incorrect_response(format!(
                "http://{name}/.well-known/acme-challenge/{token} answered {status}"
            )));
        }
        let got = String::from_utf8_lossy(&body);
        if got.trim_end() != key_authorization {
            return Err(Problem::incorrect_response(format!(
                "the key authorization at http://{name}/.well-known/acme-challenge/{token} is not this account's"
            )));
        }
        Ok(())
    };
    tokio::time::timeout(timeout, fetch)
        .await
        .unwrap_or_else(|_| {
            Err(Problem::connection(format!(
                "no answer from {name}:{port} within {timeout:?}"
            )))
        })
}

/// Write the outcome: the challenge and its authorization valid or invalid,
/// and the order ready once all its authorizations are valid (or invalid
/// with the failure).
async fn record(
    auth: &Arc<Authority>,
    prov: &str,
    account: &AcmeAccount,
    mut authz: AcmeAuthz,
    idx: usize,
    outcome: Result<(), Problem>,
) -> Result<(), Problem> {
    let now = auth.now().unix_timestamp();
    let who = format!("URI:acme:{prov}/{}", account.id);
    let mut order = auth
        .store
        .acme_order(&authz.order)?
        .ok_or_else(|| Problem::server("the authorization's order is gone"))?;
    let failure = outcome.as_ref().err().map(|p| p.to_json());
    match &outcome {
        Ok(()) => {
            authz.challenges[idx].status = "valid".into();
            authz.challenges[idx].validated = Some(now);
            authz.status = "valid".into();
        }
        Err(p) => {
            authz.challenges[idx].status = "invalid".into();
            authz.challenges[idx].error = Some(p.to_json().to_string());
            authz.status = "invalid".into();
        }
    }
    if order.status == "pending" {
        match &failure {
            Some(problem) => {
                order.status = "invalid".into();
                order.error = Some(problem_of(problem, &authz.identifier));
            }
            None => {
                let mut all_valid = true;
                for id in order.authorizations.iter().filter(|id| **id != authz.id) {
                    let other = auth.store.acme_authz(id)?;
                    all_valid &= other.is_some_and(|a| a.status == "valid");
                }
                if all_valid {
                    order.status = "ready".into();
                }
            }
        }
    }
    let d = Decisions {
        identity: Some(AuditIdentity {
            subject: who.clone(),
            fingerprint: account.thumbprint.clone(),
        }),
        action: "AcmeValidateChallenge".into(),
        target: format!("{}/{}", authz.id, authz.identifier),
        success_status: 200,
        ..Default::default()
    };
    let failed = outcome.as_ref().err().map(|p| p.kind);
    let (r, _) = crate::audit::with_call(d, async {
        let mut draft = crate::audit::commit_draft(&who, "AcmeValidateChallenge", "");
        draft.outcome.reason = match &outcome {
            Ok(()) => "http-01 answered with the key authorization".into(),
            Err(p) => p.detail.clone(),
        };
        if let Some(kind) = failed {
            draft.result = AuditResult {
                status: 403,
                code: kind.to_string(),
            };
        }
        auth.store
            .acme_put(Some(order), vec![authz], Some(draft))
            .await
    })
    .await;
    r.map_err(Problem::from)
}

/// The order's error: the challenge's problem, naming the identifier.
fn problem_of(p: &Value, identifier: &str) -> String {
    let mut p = p.clone();
    if let Some(d) = p.get("detail").and_then(Value::as_str) {
        p["detail"] = Value::String(format!("{identifier}: {d}"));
    }
    p.to_string()
}
