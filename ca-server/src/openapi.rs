//! The OpenAPI 3.1 description of the management API, built from the very
//! types the server serialises (`api::wire`, via `schemars`), so a body in
//! the description cannot differ from the body on the wire. The operation
//! table below is checked against the router by tests (every route here is
//! served, and every route served is here). `ca-server openapi` prints it;
//! the server serves it at `GET /v1/openapi.json`; `ca-server/openapi.json`
//! in the repository is a copy a test keeps equal.

use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde_json::{json, Map, Value};

use crate::api::wire;

/// A query parameter: name, JSON type, description.
type Query = (&'static str, &'static str, &'static str);

struct Op {
    method: &'static str,
    path: &'static str,
    id: &'static str,
    summary: &'static str,
    body: Option<Schema>,
    /// Success status and its body; `also` lists other documented statuses
    /// with the same body (health's 503).
    status: u16,
    response: Schema,
    also: &'static [u16],
    query: &'static [Query],
}

fn op<B: JsonSchema, R: JsonSchema>(
    g: &mut SchemaGenerator,
    method: &'static str,
    path: &'static str,
    id: &'static str,
    summary: &'static str,
    status: u16,
) -> Op {
    Op {
        method,
        path,
        id,
        summary,
        body: Some(g.subschema_for::<B>()),
        status,
        response: g.subschema_for::<R>(),
        also: &[],
        query: &[],
    }
}

fn get<R: JsonSchema>(
    g: &mut SchemaGenerator,
    method: &'static str,
    path: &'static str,
    id: &'static str,
    summary: &'static str,
    status: u16,
) -> Op {
    Op {
        method,
        path,
        id,
        summary,
        body: None,
        status,
        response: g.subschema_for::<R>(),
        also: &[],
        query: &[],
    }
}

const PAGE: Query = ("limit", "integer", "Most items in the page (1 to 1000)");
/// Bounds of a query parameter the server checks beyond its type.
fn query_bounds(name: &str) -> Value {
    match name {
        "limit" => json!({"type": "integer", "minimum": 1, "maximum": 1000}),
        "after" => json!({"type": "integer", "minimum": 0}),
        _ => Value::Null,
    }
}

/// The schema of a path parameter: certificate serials are 1 to 20 octets
/// of hex; CA ids are `ca-` and 16 hex digits.
fn path_schema(name: &str) -> Value {
    match name {
        "serial" => json!({"type": "string", "pattern": "^[0-9a-fA-F]{1,40}$"}),
        "id" => json!({"type": "string"}),
        _ => json!({"type": "string", "minLength": 1}),
    }
}
const CURSOR: Query = ("cursor", "string", "The next_cursor of the previous page");

fn operations(g: &mut SchemaGenerator) -> Vec<Op> {
    use wire::*;
    let mut health = get::<Health>(
        g,
        "get",
        "/health",
        "Health",
        "Health checks: 200 when all pass, 503 naming the failing ones",
        200,
    );
    health.also = &[503];
    let mut list_certs = get::<CertificateList>(
        g,
        "get",
        "/v1/certificates",
        "ListCertificates",
        "List certificates, a page at a time",
        200,
    );
    list_certs.query = &[
        ("ca_id", "string", "Only this CA's certificates"),
        ("status", "string", "ISSUED, REVOKED, EXPIRED or RESERVED"),
        (
            "expiring_before",
            "string",
            "Only certificates whose notAfter is before this time (RFC 3339)",
        ),
        PAGE,
        CURSOR,
    ];
    let mut get_cert = get::<Certificate>(
        g,
        "get",
        "/v1/certificates/{serial}",
        "GetCertificate",
        "A certificate and its chain",
        200,
    );
    get_cert.query = &[(
        "ca_id",
        "string",
        "The issuing CA (optional: serials are unique)",
    )];
    let mut audit = get::<AuditPage>(
        g,
        "get",
        "/v1/audit",
        "ListAuditEntries",
        "Audit entries, oldest first, filtered",
        200,
    );
    audit.query = &[
        (
            "since",
            "string",
            "Entries at or after this time (RFC 3339)",
        ),
        ("until", "string", "Entries before this time (RFC 3339)"),
        (
            "identity",
            "string",
            "Entries of this caller (subject or fingerprint)",
        ),
        ("action", "string", "Entries of this action"),
        PAGE,
        CURSOR,
    ];
    let mut digests = get::<AuditDigestPage>(
        g,
        "get",
        "/v1/audit/digests",
        "ListAuditDigests",
        "Signed digests of the audit trail",
        200,
    );
    digests.query = &[("after", "integer", "Digests numbered after this"), PAGE];
    let mut events = get::<EventPage>(
        g,
        "get",
        "/v1/events",
        "ListEvents",
        "Events from the outbox, oldest first",
        200,
    );
    events.query = &[
        (
            "after",
            "integer",
            "Events numbered after this (the next_cursor of the previous page)",
        ),
        (
            "type",
            "string",
            "Only events of this type (CertificateIssued, CertificateRevoked, CertificateApproachingExpiration, CaApproachingExpiration, CrlPublished)",
        ),
        PAGE,
    ];
    vec![
        health,
        get::<WhoAmI>(
            g,
            "get",
            "/v1/whoami",
            "GetCallerIdentity",
            "The identity in your client certificate",
            200,
        ),
        get::<Value>(
            g,
            "get",
            "/v1/openapi.json",
            "GetOpenApi",
            "This description",
            200,
        ),
        get::<CaList>(
            g,
            "get",
            "/v1/cas",
            "ListCertificateAuthorities",
            "The CAs you may read",
            200,
        ),
        op::<CreateCa, CaDescription>(
            g,
            "post",
            "/v1/cas",
            "CreateCertificateAuthority",
            "Create a root or subordinate CA",
            201,
        ),
        get::<CaDescription>(
            g,
            "get",
            "/v1/cas/{id}",
            "DescribeCertificateAuthority",
            "One CA",
            200,
        ),
        op::<UpdateCaStatus, CaDescription>(
            g,
            "patch",
            "/v1/cas/{id}",
            "UpdateCertificateAuthority",
            "Enable or disable a CA",
            200,
        ),
        get::<CaCsr>(
            g,
            "get",
            "/v1/cas/{id}/csr",
            "GetCertificateAuthorityCsr",
            "The CSR of a CA pending an external signature",
            200,
        ),
        get::<CaCertificate>(
            g,
            "get",
            "/v1/cas/{id}/certificate",
            "GetCertificateAuthorityCertificate",
            "A CA's certificate and chain",
            200,
        ),
        op::<ImportCaCertificate, CaDescription>(
            g,
            "post",
            "/v1/cas/{id}/certificate",
            "ImportCertificateAuthorityCertificate",
            "Install the externally signed certificate of a pending CA",
            200,
        ),
        list_certs,
        op::<IssueCertificate, Certificate>(
            g,
            "post",
            "/v1/certificates",
            "IssueCertificate",
            "Issue a certificate for a CSR",
            201,
        ),
        op::<RequestCertificate, CertificateWithKey>(
            g,
            "post",
            "/v1/certificates/request",
            "RequestCertificate",
            "Issue a certificate for a key the server makes (returned encrypted)",
            201,
        ),
        get_cert,
        op::<RenewCertificate, Certificate>(
            g,
            "post",
            "/v1/certificates/{serial}/renew",
            "RenewCertificate",
            "Issue a successor with the same names",
            201,
        ),
        op::<RevokeCertificate, CertificateSummary>(
            g,
            "post",
            "/v1/certificates/{serial}/revoke",
            "RevokeCertificate",
            "Revoke a certificate (RFC 5280 reason)",
            200,
        ),
        get::<PolicyList>(
            g,
            "get",
            "/v1/policies",
            "ListPolicies",
            "Every access policy statement",
            200,
        ),
        get::<PolicyStatement>(
            g,
            "get",
            "/v1/policies/{id}",
            "GetPolicy",
            "One statement",
            200,
        ),
        op::<PolicyStatement, Option<PolicyStatement>>(
            g,
            "put",
            "/v1/policies/{id}",
            "PutPolicy",
            "Create or replace a statement",
            200,
        ),
        get::<PolicyDeleted>(
            g,
            "delete",
            "/v1/policies/{id}",
            "DeletePolicy",
            "Delete a statement",
            200,
        ),
        get::<AliasList>(
            g,
            "get",
            "/v1/aliases",
            "ListAliases",
            "Every alias and its CA",
            200,
        ),
        get::<AliasBinding>(
            g,
            "get",
            "/v1/aliases/{alias}",
            "GetAlias",
            "One alias",
            200,
        ),
        op::<SetAlias, AliasBinding>(
            g,
            "put",
            "/v1/aliases/{alias}",
            "PutAlias",
            "Point an alias at a CA",
            200,
        ),
        get::<AliasRotation>(
            g,
            "post",
            "/v1/aliases/{alias}/rotate",
            "RotateAlias",
            "Replace the CA behind an alias by a new one",
            200,
        ),
        audit,
        digests,
        get::<crate::authority::backup::BackupMade>(
            g,
            "post",
            "/v1/backups",
            "CreateBackup",
            "Write a consistent snapshot of the store on the server's host",
            201,
        ),
        get::<WebhookList>(
            g,
            "get",
            "/v1/webhooks",
            "ListWebhooks",
            "Webhooks and how their delivery goes",
            200,
        ),
        op::<CreateWebhook, WebhookCreated>(
            g,
            "post",
            "/v1/webhooks",
            "CreateWebhook",
            "POST events to a URL, signed with HMAC-SHA256 (the secret is returned once)",
            201,
        ),
        get::<WebhookDeleted>(
            g,
            "delete",
            "/v1/webhooks/{id}",
            "DeleteWebhook",
            "Stop delivering to a webhook",
            200,
        ),
        events,
        get::<EabKeyList>(
            g,
            "get",
            "/v1/acme/eab-keys",
            "ListAcmeEabKeys",
            "ACME external account binding keys",
            200,
        ),
        op::<CreateEabKey, EabKeyCreated>(
            g,
            "post",
            "/v1/acme/eab-keys",
            "CreateAcmeEabKey",
            "An ACME external account binding key (its MAC key is returned once)",
            201,
        ),
        get::<EabKey>(
            g,
            "delete",
            "/v1/acme/eab-keys/{kid}",
            "RevokeAcmeEabKey",
            "Revoke an EAB key: no new account, and its account can no longer order",
            200,
        ),
        get::<AcmeAccountList>(
            g,
            "get",
            "/v1/acme/accounts",
            "ListAcmeAccounts",
            "ACME accounts",
            200,
        ),
        get::<AcmeOrderList>(
            g,
            "get",
            "/v1/acme/accounts/{id}/orders",
            "ListAcmeOrders",
            "An ACME account's orders",
            200,
        ),
    ]
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        503 => "Unavailable",
        _ => "Answer",
    }
}

/// The whole description.
pub fn document() -> Value {
    let mut settings = SchemaSettings::draft2020_12();
    settings.definitions_path = "/components/schemas".into();
    let mut g = settings.into_generator();
    let error = g.subschema_for::<wire::ErrorBody>();
    let ops = operations(&mut g);
    let mut paths: Map<String, Value> = Map::new();
    for o in &ops {
        let mut params: Vec<Value> = o
            .path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
            .map(|name| {
                json!({"name": name, "in": "path", "required": true, "schema": path_schema(name)})
            })
            .collect();
        for (name, ty, description) in o.query {
            let schema = match query_bounds(name) {
                Value::Null => json!({"type": ty}),
                bounded => bounded,
            };
            params.push(json!({"name": name, "in": "query", "required": false, "description": description, "schema": schema}));
        }
        let mut responses = Map::new();
        for s in std::iter::once(&o.status).chain(o.also.iter()) {
            responses.insert(
                s.to_string(),
                json!({"description": reason(*s), "content": {"application/json": {"schema": o.response}}}),
            );
        }
        responses.insert(
            "default".into(),
            json!({"description": "An error: a stable code and a message", "content": {"application/json": {"schema": error}}}),
        );
        let mut operation = json!({
            "operationId": o.id,
            "summary": o.summary,
            "responses": responses,
        });
        if !params.is_empty() {
            operation["parameters"] = Value::Array(params);
        }
        if let Some(b) = &o.body {
            operation["requestBody"] =
                json!({"required": true, "content": {"application/json": {"schema": b}}});
        }
        let entry = paths.entry(o.path.to_string()).or_insert_with(|| json!({}));
        entry[o.method] = operation;
    }
    let mut schemas: Map<String, Value> = g.take_definitions(true).into_iter().collect();
    // Every error code the server answers with, and its HTTP status.
    let codes: Vec<Value> = crate::error::ErrorCode::ALL
        .iter()
        .map(|c| Value::from(c.as_str()))
        .collect();
    let statuses: Vec<String> = crate::error::ErrorCode::ALL
        .iter()
        .map(|c| format!("{} {}", c.as_str(), crate::http::status_of(*c).as_u16()))
        .collect();
    if let Some(code) = schemas
        .get_mut("ErrorDetail")
        .and_then(|d| d.pointer_mut("/properties/code"))
    {
        code["enum"] = Value::Array(codes);
        code["description"] = Value::from(format!(
            "A stable code; with its HTTP status: {}",
            statuses.join(", ")
        ));
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "ca-server management API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "ACM-like request / issue / revoke API of the private CA, over mutual TLS. Every error is JSON with a stable code (see ErrorBody).",
        },
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "servers": [{"url": "https://127.0.0.1:8443"}],
        "security": [{"mutualTLS": []}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"mutualTLS": {"type": "mutualTLS", "description": "A client certificate from the server's client-auth CA"}},
        },
    })
}

/// The document as the repository keeps it (pretty, trailing newline).
pub fn document_text() -> String {
    let mut s = serde_json::to_string_pretty(&document()).unwrap_or_default();
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The router's own table (`http/route.rs`), read as text: every path
    /// pattern it matches is described, and every described path is matched.
    #[test]
    fn every_route_is_described_and_every_description_is_routed() {
        let routes = include_str!("http/route.rs");
        let mut served: Vec<String> = routes
            .lines()
            .filter_map(|l| {
                let l = l.trim();
                let pattern = l.strip_prefix('[')?.split_once("] =>")?.0;
                let segs: Vec<String> = pattern
                    .split(", ")
                    .map(
                        |s| match s.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
                            Some(lit) => lit.to_string(),
                            None => format!("{{{s}}}"),
                        },
                    )
                    .collect();
                Some(format!("/{}", segs.join("/")))
            })
            .collect();
        served.sort();
        served.dedup();
        let doc = document();
        let mut described: Vec<String> = doc["paths"]
            .as_object()
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default();
        // The route table names a CA's id `id` and a certificate `serial`;
        // the description uses the same names.
        described.sort();
        assert!(served.len() > 15, "{served:?}");
        assert_eq!(served, described);
    }

    #[test]
    fn the_repository_copy_is_current() {
        let kept = include_str!("../openapi.json");
        assert!(
            kept == document_text(),
            "ca-server/openapi.json is stale: run `cargo run -p ca-server --bin ca-server -- openapi > ca-server/openapi.json`"
        );
    }
}
