//! Orders, authorizations and challenges, finalize and certificate download,
//! renewal information.

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

    /// renewalInfo (RFC 9773): when to renew. The window is the last third
    /// of the lifetime but its final sixth; for a revoked certificate, now.
    pub(super) fn renewal_info(&self, cert_id: &str) -> Result<Reply, Problem> {
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

    pub(super) fn authz_json(&self, prov: &str, a: &AcmeAuthz) -> Value {
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

    pub(super) fn challenge_json(&self, prov: &str, a: &AcmeAuthz, c: &AcmeChallenge) -> Value {
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

    pub(super) fn own_authz(&self, account: &AcmeAccount, id: &str) -> Result<AcmeAuthz, Problem> {
        self.auth
            .store
            .acme_authz(id)?
            .filter(|a| a.account == account.id)
            .ok_or_else(|| Problem::not_found("no such authorization"))
    }

    pub(super) fn get_authz(
        &self,
        prov: &str,
        account: &AcmeAccount,
        id: &str,
    ) -> Result<Reply, Problem> {
        let a = self.own_authz(account, id)?;
        Ok(Reply::json(StatusCode::OK, &self.authz_json(prov, &a)))
    }

    pub(super) async fn challenge(
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

    pub(super) async fn finalize(
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
    pub(super) fn check_csr(
        &self,
        p: &Provisioner,
        order: &AcmeOrder,
        der: &[u8],
    ) -> Result<(), Problem> {
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

    pub(super) fn certificate(&self, account: &AcmeAccount, id: &str) -> Result<Reply, Problem> {
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
        let chain = view.chain_der();
        let n = chain.len().saturating_sub(1);
        for d in chain.iter().take(n.max(1).min(chain.len())) {
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
