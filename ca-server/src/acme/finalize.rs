//! Finalize (the CSR checked against the order, the certificate issued in
//! a task of its own) and the certificate's download.

use super::*;

impl Acme {
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
        let csr = match (self.order_status(&order).as_str(), order.csr.clone()) {
            // Left processing (a crash, or a client that hung up mid-way):
            // issuing again with the order's token finishes it, with the
            // certificate already made if there is one.
            ("processing", Some(pem)) => OrderCsr::Stored(pem),
            ("processing" | "valid", _) => {
                return Ok(Reply::json(StatusCode::OK, &self.order_json(prov, &order)).at(url))
            }
            ("ready", _) => {
                let f: Finalize = jws.payload_json()?;
                let der = jws::unb64(&f.csr, "csr")?;
                let csr = self.check_csr(p, &order, &der)?;
                order.status = "processing".into();
                order.csr = Some(ca_core::pem::encode("CERTIFICATE REQUEST", &der));
                self.auth
                    .store
                    .acme_put(Some(order.clone()), Vec::new(), None)
                    .await?;
                OrderCsr::Proven(csr)
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
            csr,
            p.profile.clone(),
            p.validity_days,
        ));
        let order = task
            .await
            .map_err(|e| Problem::server(format!("issuance task: {e}")))??;
        Ok(Reply::json(StatusCode::OK, &self.order_json(prov, &order)).at(url))
    }

    /// The CSR of a finalize, parsed and its proof of possession checked:
    /// it must name exactly the order's names.
    pub(super) fn check_csr(
        &self,
        p: &Provisioner,
        order: &AcmeOrder,
        der: &[u8],
    ) -> Result<ca_core::csr::Csr, Problem> {
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
        Ok(csr)
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

/// The CSR an order's certificate is issued for.
enum OrderCsr {
    /// Checked by this finalize ([`Acme::check_csr`]): its proof is not
    /// checked again.
    Proven(ca_core::csr::Csr),
    /// Kept on an order left processing (PEM), checked when issued.
    Stored(String),
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
    csr: OrderCsr,
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
    let token = Some(order.id.as_str());
    let (issued, _) = crate::audit::with_call(d, async {
        match csr {
            OrderCsr::Proven(csr) => {
                auth.issue_from_proven_csr(&who, &ca, csr, &profile, validity_days, token)
                    .await
            }
            OrderCsr::Stored(pem) => {
                auth.issue_from_csr(&who, &ca, &pem, &profile, validity_days, token, None)
                    .await
            }
        }
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
