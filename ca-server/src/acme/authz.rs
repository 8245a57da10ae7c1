//! Authorizations and their challenges: as JSON, read back, and a
//! challenge's validation started.

use super::orders::authz_status_at;
use super::*;

impl Acme {
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
}
