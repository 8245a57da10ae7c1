//! The route table: each path and method parsed, handed to one authority
//! call, and its answer serialised.

use super::*;

pub(super) async fn route(auth: &Arc<Authority>, who: &Identity, req: Request<Incoming>) -> Reply {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = req.uri().query().map(str::to_string);
    let q = query.as_deref();
    if path.len() > 512 {
        return Err(ApiError::not_found("no such resource"));
    }
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segs.as_slice() {
        ["health"] => match method {
            Method::GET => {
                let h = health(auth);
                let status = if h.status == "ok" {
                    StatusCode::OK
                } else {
                    StatusCode::SERVICE_UNAVAILABLE
                };
                reply(status, &h)
            }
            _ => Err(method_not_allowed("GET")),
        },
        ["v1", "whoami"] => match method {
            Method::GET => {
                no_query(q)?;
                reply(
                    StatusCode::OK,
                    &wire::WhoAmI {
                        subject: who.subject.clone(),
                        sans: who.sans.clone(),
                    },
                )
            }
            _ => Err(method_not_allowed("GET")),
        },
        ["v1", "cas"] => match method {
            Method::GET => {
                no_query(q)?;
                let items: Vec<wire::CaDescription> =
                    auth.list_readable_cas(who)?.iter().map(ca_json).collect();
                reply(
                    StatusCode::OK,
                    &wire::CaList {
                        certificate_authorities: items,
                    },
                )
            }
            Method::POST => {
                no_query(q)?;
                let body: wire::CreateCa = parse_json(&read_body(auth, req).await?)?;
                create_ca(auth, who, body).await
            }
            _ => Err(method_not_allowed("GET, POST")),
        },
        ["v1", "cas", id] => {
            check_ca_id(id)?;
            no_query(q)?;
            match method {
                Method::GET => reply(StatusCode::OK, &ca_json(&auth.describe_ca(who, id)?)),
                Method::PATCH => {
                    let body: wire::UpdateCaStatus = parse_json(&read_body(auth, req).await?)?;
                    let rec = auth.update_ca_status(who, id, &body.status).await?;
                    reply(StatusCode::OK, &ca_json(&rec))
                }
                _ => Err(method_not_allowed("GET, PATCH")),
            }
        }
        ["v1", "cas", id, "csr"] => {
            check_ca_id(id)?;
            no_query(q)?;
            if method != Method::GET {
                return Err(method_not_allowed("GET"));
            }
            let (rec, csr) = auth.ca_csr(who, id)?;
            reply(StatusCode::OK, &wire::CaCsr { ca_id: rec.id, csr })
        }
        ["v1", "cas", id, "certificate"] => {
            check_ca_id(id)?;
            no_query(q)?;
            match method {
                Method::GET => {
                    let (rec, cert) = auth.ca_certificate(who, id)?;
                    reply(
                        StatusCode::OK,
                        &wire::CaCertificate {
                            certificate_chain: rec.chain_pem.concat(),
                            ca_id: rec.id,
                            certificate: cert,
                        },
                    )
                }
                Method::POST => {
                    let body: wire::ImportCaCertificate = parse_json(&read_body(auth, req).await?)?;
                    let rec = auth
                        .import_ca_certificate(who, id, &body.certificate, &body.certificate_chain)
                        .await?;
                    reply(StatusCode::OK, &ca_json(&rec))
                }
                _ => Err(method_not_allowed("GET, POST")),
            }
        }
        ["v1", "certificates"] => match method {
            Method::GET => list_certificates(auth, who, q),
            Method::POST => {
                no_query(q)?;
                // Woken before the body is read, so that its wake-up overlaps
                // reading and parsing (one call alone in flight).
                let helper = auth.proof_helper();
                let body: wire::IssueCertificate = parse_json(&read_body(auth, req).await?)?;
                let ca_id = body.ca_id.unwrap_or_else(|| auth.default_ca());
                let view = auth
                    .issue_from_csr(
                        who,
                        &ca_id,
                        &body.csr,
                        body.profile.as_deref().unwrap_or("tls-server"),
                        body.validity_days,
                        body.idempotency_token.as_deref(),
                        helper,
                    )
                    .await?;
                reply_certificate(StatusCode::CREATED, &cert_json(&view))
            }
            _ => Err(method_not_allowed("GET, POST")),
        },
        ["v1", "certificates", "request"] => {
            no_query(q)?;
            if method != Method::POST {
                return Err(method_not_allowed("POST"));
            }
            // The body carries the passphrase the new key is sealed under:
            // its buffer is wiped once parsed (the parsed value wipes itself).
            let raw = read_body(auth, req).await?;
            let parsed = parse_json::<wire::RequestCertificate>(&raw);
            if let Ok(mut buffer) = raw.try_into_mut() {
                zeroize::Zeroize::zeroize(&mut buffer[..]);
            }
            let body = parsed?;
            request_certificate(auth, who, body).await
        }
        ["v1", "certificates", serial] => {
            if method != Method::GET {
                return Err(method_not_allowed("GET"));
            }
            let params = parse_query(q, &["ca_id"])?;
            let view =
                auth.get_certificate(who, params.get("ca_id").map(String::as_str), serial)?;
            reply_certificate(StatusCode::OK, &cert_json(&view))
        }
        ["v1", "certificates", serial, "renew"] => {
            no_query(q)?;
            if method != Method::POST {
                return Err(method_not_allowed("POST"));
            }
            let body: wire::RenewCertificate = parse_json(&read_body(auth, req).await?)?;
            let view = auth
                .renew(
                    who,
                    body.ca_id.as_deref(),
                    serial,
                    body.csr.as_deref(),
                    body.validity_days,
                    body.idempotency_token.as_deref(),
                )
                .await?;
            reply_certificate(StatusCode::CREATED, &cert_json(&view))
        }
        ["v1", "certificates", serial, "revoke"] => {
            no_query(q)?;
            if method != Method::POST {
                return Err(method_not_allowed("POST"));
            }
            let body: wire::RevokeCertificate = parse_json(&read_body(auth, req).await?)?;
            let reason = match &body.reason {
                wire::RevocationReason::Code(n) => reason_from_code(n.as_i64().unwrap_or(-1))?,
                wire::RevocationReason::Name(s) => reason_from_name(s)?,
                wire::RevocationReason::Other(_) => {
                    return Err(ApiError::invalid("reason must be a CRLReason code or name"))
                }
            };
            let rec = auth
                .revoke(who, body.ca_id.as_deref(), serial, reason)
                .await?;
            reply(StatusCode::OK, &cert_summary(&rec))
        }
        ["v1", "policies"] => {
            no_query(q)?;
            if method != Method::GET {
                return Err(method_not_allowed("GET"));
            }
            let statements = auth.list_policies(who)?;
            reply(StatusCode::OK, &wire::PolicyList { statements })
        }
        ["v1", "policies", id] => {
            no_query(q)?;
            let id = (*id).to_string();
            match method {
                Method::GET => reply(StatusCode::OK, &auth.get_policy(who, &id)?),
                Method::PUT => {
                    // The body is read only once the caller may change policies.
                    let body = async { parse_json::<StatementDto>(&read_body(auth, req).await?) };
                    // `null` should the statement be gone again already.
                    let stored: Option<wire::PolicyStatement> =
                        auth.put_policy(who, &id, body).await?;
                    reply(StatusCode::OK, &stored)
                }
                Method::DELETE => {
                    auth.delete_policy(who, &id).await?;
                    reply(StatusCode::OK, &wire::PolicyDeleted { deleted: id })
                }
                _ => Err(method_not_allowed("GET, PUT, DELETE")),
            }
        }
        ["v1", "aliases"] => {
            no_query(q)?;
            if method != Method::GET {
                return Err(method_not_allowed("GET"));
            }
            let aliases = auth
                .list_aliases(who)?
                .into_iter()
                .map(|(alias, ca_id)| wire::AliasBinding { alias, ca_id })
                .collect();
            reply(StatusCode::OK, &wire::AliasList { aliases })
        }
        ["v1", "aliases", alias] => {
            no_query(q)?;
            match method {
                Method::GET => {
                    let ca = auth.get_alias(who, alias)?;
                    reply(
                        StatusCode::OK,
                        &wire::AliasBinding {
                            alias: (*alias).to_string(),
                            ca_id: ca,
                        },
                    )
                }
                Method::PUT => {
                    let body: wire::SetAlias = parse_json(&read_body(auth, req).await?)?;
                    auth.set_alias(who, alias, &body.ca_id).await?;
                    reply(
                        StatusCode::OK,
                        &wire::AliasBinding {
                            alias: (*alias).to_string(),
                            ca_id: body.ca_id,
                        },
                    )
                }
                _ => Err(method_not_allowed("GET, PUT")),
            }
        }
        ["v1", "aliases", alias, "rotate"] => {
            no_query(q)?;
            if method != Method::POST {
                return Err(method_not_allowed("POST"));
            }
            let (old, new) = auth.rotate_alias(who, alias).await?;
            reply(
                StatusCode::OK,
                &wire::AliasRotation {
                    alias: (*alias).to_string(),
                    ca_id: new.id.clone(),
                    new: ca_json(&new),
                    retired: ca_json(&old),
                },
            )
        }
        ["v1", "audit"] => {
            if method != Method::GET {
                return Err(method_not_allowed("GET"));
            }
            list_audit(auth, who, q)
        }
        ["v1", "openapi.json"] => match method {
            Method::GET => {
                no_query(q)?;
                reply(StatusCode::OK, &crate::openapi::document())
            }
            _ => Err(method_not_allowed("GET")),
        },
        ["v1", "backups"] => match method {
            Method::POST => {
                no_query(q)?;
                let made = auth.create_backup(who).await?;
                reply(StatusCode::CREATED, &made)
            }
            _ => Err(method_not_allowed("POST")),
        },
        ["v1", "webhooks"] => match method {
            Method::GET => {
                no_query(q)?;
                let webhooks = auth.list_webhooks(who)?;
                reply(StatusCode::OK, &wire::WebhookList { webhooks })
            }
            Method::POST => {
                no_query(q)?;
                let body: wire::CreateWebhook = parse_json(&read_body(auth, req).await?)?;
                let made = auth.create_webhook(who, body).await?;
                reply(StatusCode::CREATED, &made)
            }
            _ => Err(method_not_allowed("GET, POST")),
        },
        ["v1", "webhooks", id] => match method {
            Method::DELETE => {
                no_query(q)?;
                auth.delete_webhook(who, id).await?;
                reply(
                    StatusCode::OK,
                    &wire::WebhookDeleted {
                        deleted: (*id).to_string(),
                    },
                )
            }
            _ => Err(method_not_allowed("DELETE")),
        },
        ["v1", "acme", "eab-keys"] => {
            no_query(q)?;
            match method {
                Method::GET => reply(
                    StatusCode::OK,
                    &wire::EabKeyList {
                        keys: auth.list_eab_keys(who)?,
                    },
                ),
                Method::POST => {
                    let body: wire::CreateEabKey = parse_json(&read_body(auth, req).await?)?;
                    reply(StatusCode::CREATED, &auth.create_eab_key(who, body).await?)
                }
                _ => Err(method_not_allowed("GET, POST")),
            }
        }
        ["v1", "acme", "eab-keys", kid] => {
            no_query(q)?;
            match method {
                Method::DELETE => reply(StatusCode::OK, &auth.revoke_eab_key(who, kid).await?),
                _ => Err(method_not_allowed("DELETE")),
            }
        }
        ["v1", "acme", "accounts"] => {
            no_query(q)?;
            match method {
                Method::GET => reply(
                    StatusCode::OK,
                    &wire::AcmeAccountList {
                        accounts: auth.list_acme_accounts(who)?,
                    },
                ),
                _ => Err(method_not_allowed("GET")),
            }
        }
        ["v1", "acme", "accounts", id, "orders"] => {
            no_query(q)?;
            match method {
                Method::GET => reply(
                    StatusCode::OK,
                    &wire::AcmeOrderList {
                        orders: auth.list_acme_orders(who, id)?,
                    },
                ),
                _ => Err(method_not_allowed("GET")),
            }
        }
        ["v1", "events"] => match method {
            Method::GET => list_events(auth, who, q),
            _ => Err(method_not_allowed("GET")),
        },
        ["v1", "audit", "digests"] => {
            if method != Method::GET {
                return Err(method_not_allowed("GET"));
            }
            list_audit_digests(auth, who, q)
        }
        _ => Err(ApiError::not_found("no such resource")),
    }
}
