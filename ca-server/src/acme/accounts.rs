//! Accounts: newAccount (with external account binding), updates and
//! deactivation, keyChange.

use super::*;

impl Acme {
    pub(super) fn account_json(&self, prov: &str, a: &AcmeAccount) -> Value {
        json!({
            "status": a.status,
            "contact": a.contact,
            "orders": self.url(prov, &format!("account/{}/orders", a.id)),
        })
    }

    pub(super) async fn new_account(
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
    pub(super) fn check_eab(
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

    pub(super) async fn update_account(
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
    pub(super) async fn key_change(
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
