//! Orders: creating one (its authorizations and challenges with it),
//! reading it back, and when an order or authorization has expired.
//! Authorizations and challenges are in `authz`, finalize and certificate
//! download in `finalize`, renewal information in `renewal`.

use super::renewal::cert_of_cert_id;
use super::*;

impl Acme {
    pub(super) fn order_json(&self, prov: &str, o: &AcmeOrder) -> Value {
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
    pub(super) fn order_status(&self, o: &AcmeOrder) -> String {
        order_status_at(o, self.now())
    }

    pub(super) async fn new_order(
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

    pub(super) fn ca_of(&self, p: &Provisioner) -> Result<String, Problem> {
        let ca = p.ca.clone().unwrap_or_else(|| self.auth.default_ca());
        self.auth.resolve_ca(&ca).map_err(Problem::from_api)
    }

    pub(super) fn own_order(&self, account: &AcmeAccount, id: &str) -> Result<AcmeOrder, Problem> {
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

    pub(super) fn get_order(
        &self,
        prov: &str,
        account: &AcmeAccount,
        id: &str,
    ) -> Result<Reply, Problem> {
        let o = self.own_order(account, id)?;
        let url = self.url(prov, &format!("order/{id}"));
        let mut r = Reply::json(StatusCode::OK, &self.order_json(prov, &o)).at(url);
        if o.status == "processing" {
            r.retry_after = Some(1);
        }
        Ok(r)
    }
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
pub(super) fn authz_status_at(a: &AcmeAuthz, now: i64) -> &str {
    if a.expires <= now && a.status == "pending" {
        "expired"
    } else {
        a.status.as_str()
    }
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
