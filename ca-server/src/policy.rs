//! Access policies: statements (ca_core::policy) kept by the store as JSON
//! (statement id → DTO JSON), cached in memory, evaluated on every API call. Deny by default; an explicit deny wins; each decision names
//! its statement.
//!
//! Statement JSON (`PUT /v1/policies/{id}`):
//! ```json
//! {"effect": "allow",
//!  "principals": [{"subject": "CN=web-*,O=Example"}, {"dns": "*.svc.example"}, {"uri": "spiffe://example/ns/web/*"}, {"fingerprint": "<64 hex>"}, "anyone"],
//!  "actions": ["issue", "read"],
//!  "cas": ["ca-0123456789abcdef", "*"],
//!  "conditions": {"name_patterns": ["*.svc.example.internal"], "ip_ranges": ["10.0.0.0/8"],
//!                 "subject_patterns": ["CN=*,OU=batch,O=Example"],
//!                 "profiles": ["tls-server"], "max_validity_days": 30, "revoke_scope": "own"}}
//! ```
//!
//! An issue grant with name limits allows only an empty subject or a lone CN
//! that is one of the requested names, unless `subject_patterns` allows more:
//! otherwise whoever may issue from the client-auth CA could mint a subject
//! that a `subject` principal trusts.

use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use ca_core::names::IpNet;
use ca_core::policy::{Action, Conditions, Effect, Principal, RevokeScope, Statement};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::store::{Store, StoreError};
/// Every call evaluates every statement: keep the set small.
pub const MAX_STATEMENTS_HINT: usize = 1000;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PrincipalDto {
    Subject(String),
    /// A SAN written as `DNS:x`, `email:x`, `IP:x`, `URI:x`, or bare (an IP
    /// address if it parses as one, an email if it has an `@`, else DNS):
    /// stored as the typed principal it names.
    San(String),
    Dns(String),
    Email(String),
    /// An address or a CIDR range.
    Ip(String),
    Uri(String),
    Fingerprint(String),
    Anyone,
}

/// An IP principal: one address, or a range.
fn ip_principal(s: &str) -> Result<Principal, String> {
    let net = match s.parse::<std::net::IpAddr>() {
        Ok(ip) => IpNet::from_str(&format!("{ip}/{}", if ip.is_ipv4() { 32 } else { 128 })),
        Err(_) => IpNet::from_str(s),
    };
    net.map(Principal::Ip)
        .map_err(|e| format!("ip principal {s:?}: {e}"))
}

/// A `san` principal as the typed one it names.
fn san_principal(s: &str) -> Result<Principal, String> {
    let lower = s.to_ascii_lowercase();
    let rest = |n: usize| s[n..].to_string();
    if lower.starts_with("dns:") {
        Ok(Principal::Dns(rest(4).to_ascii_lowercase()))
    } else if lower.starts_with("email:") {
        Ok(Principal::Email(rest(6)))
    } else if lower.starts_with("ip:") {
        ip_principal(&s[3..])
    } else if lower.starts_with("uri:") {
        Ok(Principal::Uri(rest(4)))
    } else if s.parse::<std::net::IpAddr>().is_ok() || s.contains('/') {
        ip_principal(s)
    } else if s.contains('@') {
        Ok(Principal::Email(s.to_string()))
    } else {
        Ok(Principal::Dns(s.to_ascii_lowercase()))
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConditionsDto {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub name_patterns: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip_ranges: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subject_patterns: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub profiles: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_validity_days: Option<u32>,
    /// `own` (default) or `any`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoke_scope: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StatementDto {
    /// Taken from the path on PUT; must match when given.
    #[serde(default)]
    pub id: Option<String>,
    #[schemars(extend("enum" = ["allow", "deny"]))]
    pub effect: String,
    pub principals: Vec<PrincipalDto>,
    pub actions: Vec<String>,
    pub cas: Vec<String>,
    #[serde(default)]
    pub conditions: ConditionsDto,
}

impl StatementDto {
    /// Check and convert; the error message is fit for the client.
    pub fn to_statement(&self, id: &str) -> Result<Statement, String> {
        if let Some(given) = &self.id {
            if given != id {
                return Err(format!("the body's id {given:?} is not the path's id"));
            }
        }
        let effect = match self.effect.as_str() {
            "allow" => Effect::Allow,
            "deny" => Effect::Deny,
            _ => return Err("effect must be allow or deny".into()),
        };
        let actions = self
            .actions
            .iter()
            .map(|a| Action::from_str(a).map_err(|e| e.to_string()))
            .collect::<Result<Vec<_>, _>>()?;
        let principals = self
            .principals
            .iter()
            .map(|p| {
                Ok(match p {
                    PrincipalDto::Subject(s) => Principal::Subject(s.clone()),
                    PrincipalDto::San(s) => san_principal(s)?,
                    PrincipalDto::Dns(d) => Principal::Dns(d.to_ascii_lowercase()),
                    PrincipalDto::Email(e) => Principal::Email(e.clone()),
                    PrincipalDto::Ip(i) => ip_principal(i)?,
                    PrincipalDto::Uri(u) => Principal::Uri(u.clone()),
                    PrincipalDto::Fingerprint(f) => Principal::Fingerprint(f.to_ascii_lowercase()),
                    PrincipalDto::Anyone => Principal::Anyone,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        let c = &self.conditions;
        let ip_ranges = c
            .ip_ranges
            .iter()
            .map(|r| IpNet::from_str(r).map_err(|e| format!("ip_ranges: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        for p in &c.profiles {
            match ca_core::profile::Profile::from_str(p) {
                Ok(profile) if !profile.is_ca() => {}
                Ok(_) => return Err(format!("profiles: {p} is a CA profile, not issued here")),
                Err(e) => return Err(format!("profiles: {e}")),
            }
        }
        let revoke_scope = match c.revoke_scope.as_deref() {
            None | Some("own") => RevokeScope::Own,
            Some("any") => RevokeScope::Any,
            Some(_) => return Err("revoke_scope must be own or any".into()),
        };
        if self.cas.iter().any(|c| c.is_empty() || c.len() > 64) {
            return Err("cas must name CA ids, aliases or *".into());
        }
        let s = Statement {
            id: id.to_string(),
            effect,
            principals,
            actions,
            cas: self.cas.clone(),
            conditions: Conditions {
                name_patterns: c.name_patterns.clone(),
                ip_ranges,
                subject_patterns: c.subject_patterns.clone(),
                profiles: c.profiles.clone(),
                max_validity_days: c.max_validity_days,
                revoke_scope,
            },
        };
        s.validate().map_err(|e| e.to_string())?;
        Ok(s)
    }
}

/// The policies, cached in memory; the store is the truth.
pub struct Policies {
    cache: RwLock<Arc<Vec<(StatementDto, Statement)>>>,
    /// One change at a time, so the cache follows the commit order.
    changes: tokio::sync::Mutex<()>,
    /// Bumped (under the cache's lock) by every change to the cache other
    /// than a reload's: a reload installs what it read only if none came
    /// between its read and its install.
    generation: AtomicU64,
    /// None is in force until a reload succeeds (see [`Policies::withhold`]).
    withheld: AtomicBool,
    /// Run once by the next reload between its read and its install.
    #[cfg(test)]
    pub(crate) between_read_and_install: std::sync::Mutex<Option<Box<dyn FnOnce() + Send>>>,
}

/// Reads a reload may take while changes keep landing between its read and
/// its install, before it gives up (and is retried).
const RELOAD_ATTEMPTS: usize = 8;

impl Policies {
    /// Load every statement. A stored allow statement that no longer
    /// converts is skipped with an error log, which only narrows access; a
    /// deny statement that does not (or any statement that does not parse)
    /// fails the load, as leaving it out would widen access.
    pub fn load(store: &dyn Store) -> Result<Policies, StoreError> {
        let mut v = Vec::new();
        for (id, json) in store.list_policies()?.unwrap_or_default() {
            // A statement that does not parse (a field a newer version
            // added) stops the start, whatever its effect.
            // The way out for an operator whose server this stops.
            let unreadable = |why: String| {
                StoreError::Corrupt(format!(
                    "policy statement {id}{why}; with the server stopped, \
                     `ca-server policy remove {id}` removes it"
                ))
            };
            let dto: StatementDto =
                serde_json::from_slice(&json).map_err(|e| unreadable(format!(": {e}")))?;
            match dto.to_statement(&id) {
                Ok(s) => v.push((dto, s)),
                Err(e) if dto.effect == "allow" => {
                    tracing::error!(statement = %id, error = %e, "stored policy statement skipped")
                }
                Err(e) => {
                    return Err(unreadable(format!(
                        " (not an allow statement, so it cannot be left out): {e}"
                    )))
                }
            }
        }
        Ok(Policies {
            cache: RwLock::new(Arc::new(v)),
            changes: tokio::sync::Mutex::new(()),
            generation: AtomicU64::new(0),
            withheld: AtomicBool::new(false),
            #[cfg(test)]
            between_read_and_install: std::sync::Mutex::new(None),
        })
    }

    /// Read every statement again (another node sharing the store changed
    /// them); returns whether the set differs from the cached one. What was
    /// read is installed only if the cache did not change meanwhile (a
    /// change of this process lands in the cache after its commit, and a
    /// read from before it would undo it).
    pub fn reload(&self, store: &dyn Store) -> Result<bool, StoreError> {
        for _ in 0..RELOAD_ATTEMPTS {
            let read_at = self.generation.load(Ordering::SeqCst);
            let fresh = Policies::load(store)?.snapshot();
            #[cfg(test)]
            if let Some(meanwhile) = self
                .between_read_and_install
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take()
            {
                meanwhile();
            }
            let mut g = self.cache.write().unwrap_or_else(|p| p.into_inner());
            if self.generation.load(Ordering::SeqCst) != read_at {
                continue;
            }
            let ids = |v: &[(StatementDto, Statement)]| -> Vec<String> {
                v.iter()
                    .map(|(d, _)| serde_json::to_string(d).unwrap_or_default())
                    .collect()
            };
            let changed = ids(&g) != ids(&fresh);
            *g = fresh;
            self.withheld.store(false, Ordering::SeqCst);
            return Ok(changed);
        }
        Err(StoreError::Unavailable(
            "the policies kept changing while being read".into(),
        ))
    }

    /// Put no statement in force (every call that needs one is denied)
    /// until a [`reload`](Self::reload) succeeds: the stored ones could not
    /// be read, and the kept ones may grant what the store no longer does.
    pub fn withhold(&self) {
        let mut g = self.cache.write().unwrap_or_else(|p| p.into_inner());
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.withheld.store(true, Ordering::SeqCst);
        *g = Arc::new(Vec::new());
    }

    /// Whether no statement is in force until a reload succeeds.
    pub fn is_withheld(&self) -> bool {
        self.withheld.load(Ordering::SeqCst)
    }

    pub fn statements(&self) -> Vec<Statement> {
        self.snapshot().iter().map(|(_, s)| s.clone()).collect()
    }

    pub fn snapshot(&self) -> Arc<Vec<(StatementDto, Statement)>> {
        self.cache
            .read()
            .map(|g| g.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// Create or replace a statement; committed before the cache changes.
    pub async fn put(
        &self,
        store: &dyn Store,
        id: &str,
        dto: StatementDto,
    ) -> Result<(), ApiError> {
        let stmt = dto.to_statement(id).map_err(ApiError::invalid)?;
        let _one_at_a_time = self.changes.lock().await;
        let mut stored = dto.clone();
        stored.id = Some(id.to_string());
        let bytes = serde_json::to_vec(&stored).map_err(|e| ApiError::internal("policy", e))?;
        if self.snapshot().len() >= MAX_STATEMENTS_HINT
            && !self
                .snapshot()
                .iter()
                .any(|(d, _)| d.id.as_deref() == Some(id))
        {
            return Err(ApiError::invalid(format!(
                "at most {MAX_STATEMENTS_HINT} policy statements"
            )));
        }
        let draft = crate::audit::commit_draft("ca-server", "PutPolicy", id);
        store.put_policy(id, bytes, draft).await?;
        crate::audit::committed();
        self.replace(|v| {
            v.retain(|(_, s)| s.id != stmt.id);
            v.push((stored, stmt));
        });
        Ok(())
    }

    pub async fn delete(&self, store: &dyn Store, id: &str) -> Result<(), ApiError> {
        let _one_at_a_time = self.changes.lock().await;
        if !self.snapshot().iter().any(|(_, s)| s.id == id) {
            return Err(ApiError::not_found(format!("no policy statement {id}")));
        }
        let draft = crate::audit::commit_draft("ca-server", "DeletePolicy", id);
        let existed = store.delete_policy(id, draft).await?;
        crate::audit::committed();
        if !existed {
            return Err(ApiError::not_found(format!("no policy statement {id}")));
        }
        self.replace(|v| v.retain(|(_, s)| s.id != id));
        Ok(())
    }

    fn replace(&self, f: impl FnOnce(&mut Vec<(StatementDto, Statement)>)) {
        let mut g = self.cache.write().unwrap_or_else(|p| p.into_inner());
        self.generation.fetch_add(1, Ordering::SeqCst);
        // One statement of a set that could not be read could grant what
        // the rest denies: the change waits in the store for the reload.
        if self.is_withheld() {
            return;
        }
        let mut v: Vec<_> = g.as_ref().clone();
        f(&mut v);
        v.sort_by(|a, b| a.1.id.cmp(&b.1.id));
        *g = Arc::new(v);
    }
}

/// The statement init writes: the bootstrap administrator, pinned by the
/// fingerprint of its certificate, may do everything on every CA.
pub fn bootstrap_admin(fingerprint: &str) -> StatementDto {
    StatementDto {
        id: Some("bootstrap-admin".into()),
        effect: "allow".into(),
        principals: vec![PrincipalDto::Fingerprint(fingerprint.to_string())],
        actions: Action::ALL.iter().map(|a| a.name().to_string()).collect(),
        cas: vec!["*".into()],
        conditions: ConditionsDto {
            revoke_scope: Some("any".into()),
            ..Default::default()
        },
    }
}

/// A data directory from before access policies has no `policies` table:
/// without a statement every call would be denied, so the administrator that
/// init made (`DIR/admin/admin.pem`) gets the bootstrap statement. Only when
/// the table has never existed: a policy set an administrator emptied stays empty.
pub async fn bootstrap_if_absent(
    store: &dyn Store,
    dir: &std::path::Path,
) -> Result<bool, StoreError> {
    if store.list_policies()?.is_some() {
        return Ok(false);
    }
    let pem = match std::fs::read_to_string(dir.join("admin/admin.pem")) {
        Ok(p) => p,
        // A fresh directory: init writes the statement itself.
        Err(_) => return Ok(false),
    };
    let der = ca_core::pem::decode("CERTIFICATE", &pem)
        .map_err(|e| StoreError::Corrupt(format!("admin certificate: {e}")))?;
    let fp = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &der);
    let dto = bootstrap_admin(&ca_core::hex::encode(fp.as_ref()));
    let bytes = serde_json::to_vec(&dto).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let draft = crate::audit::commit_draft("ca-server (upgrade)", "PutPolicy", "bootstrap-admin");
    store.put_policy("bootstrap-admin", bytes, draft).await?;
    tracing::warn!(
        "no access policies yet: the administrator in admin/admin.pem holds every permission"
    );
    Ok(true)
}
