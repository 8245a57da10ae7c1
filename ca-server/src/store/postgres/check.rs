//! `ca-server check` on a PostgreSQL store: what PostgreSQL's own
//! constraints do not hold, checked in one read-only snapshot (a
//! repeatable-read transaction), so it may run beside serving nodes. Every
//! certificate record against its row's columns, the serials index and its
//! DER; every claimed serial against a record (or its CA's own); every
//! revoked certificate that has not expired against its CRL entry, and
//! every CRL entry against a revoked certificate; every idempotency token
//! and ACME order against the certificate it names; ACME's accounts, keys,
//! orders, authorizations and EAB keys against each other; then the audit
//! trail's hash chain and signed digests (in a snapshot of their own);
//! then, where the database has the amcheck extension, PostgreSQL's own
//! B-tree indexes of the store's tables (the expiry and CRL indexes
//! included): each one's pages, and every row of its table found in it.
//! Its table pages are PostgreSQL's to check (`pg_checksums`).

use std::collections::HashSet;

use tokio_postgres::Transaction;

use super::{pg_err, pool_err, reads, status_code, PgStore, R};
use crate::store::check::{der_disagrees, serial_claim_problem, CheckReport, IndexCheck, Kind};
use crate::store::{cert_key, CaRecord, CertRecord, CertStatus, IdemRecord};

/// Certificate rows read per round trip.
const PAGE: i64 = 5_000;

/// Rows a problem query lists at most: past it, its kind's count is a lower
/// bound (`Kind::listed`).
const ROWS_PER_QUERY: i64 = 1_000;

impl PgStore {
    /// Check the store (see the module's comment). `progress(done, total)`
    /// is told as certificates are checked.
    pub fn check(
        &self,
        progress: Box<dyn FnMut(u64, u64) + Send>,
    ) -> Result<CheckReport, crate::store::StoreError> {
        let inner = self.inner.clone();
        self.block(async move {
            let mut conn = inner.pool.get().await.map_err(pool_err)?;
            let mut report = CheckReport::new(false);
            {
                let t = reads::snapshot(&mut conn).await?;
                check_certificates(&t, &mut report, progress).await?;
                check_references(&t, &mut report).await?;
                t.commit().await.map_err(pg_err)?;
            }
            report.audit = Some(reads::verify_audit(&mut conn, None).await?);
            report.indexes = check_indexes(&conn, &mut report.problems).await?;
            Ok(report)
        })
    }
}

async fn check_certificates(
    t: &Transaction<'_>,
    report: &mut CheckReport,
    mut progress: Box<dyn FnMut(u64, u64) + Send>,
) -> R<()> {
    let total: i64 = t
        .query_one("SELECT count(*) FROM certs", &[])
        .await
        .map_err(pg_err)?
        .get(0);
    let total = u64::try_from(total).unwrap_or(0);
    let mut records = Kind::new(&mut report.problems, "certificate records with problems");
    let (mut done, mut issued, mut reserved) = (0u64, 0u64, 0u64);
    let mut after = String::new();
    loop {
        let rows = t
            .query(
                "SELECT c.key, c.ca_id, c.serial, c.status, c.not_after, c.rec, c.der, s.ca_id \
                 FROM certs c LEFT JOIN serials s ON s.serial = c.serial \
                 WHERE c.key > $1 ORDER BY c.key LIMIT $2",
                &[&after, &PAGE],
            )
            .await
            .map_err(pg_err)?;
        let Some(last) = rows.last() else { break };
        after = last.get::<_, String>(0);
        for row in &rows {
            done += 1;
            if done % 100_000 == 0 {
                progress(done, total);
            }
            let key: &str = row.get(0);
            let claimed_by: Option<&str> = row.get(7);
            let columns = (
                row.get::<_, &str>(1),
                row.get::<_, &str>(2),
                row.get::<_, i16>(3),
                row.get::<_, i64>(4),
            );
            let Some(rec) = records.decoded::<CertRecord>(
                format!("certificate record {key}"),
                row.get::<_, &str>(5).as_bytes(),
            ) else {
                continue;
            };
            if rec.key() != key {
                records.found(format!(
                    "certificate record {key}: holds certificate {}",
                    rec.key()
                ));
            }
            let held = (
                rec.ca_id.as_str(),
                rec.serial.as_str(),
                status_code(rec.status),
                rec.not_after,
            );
            if held != columns {
                records.found(format!(
                    "certificate {key}: its row's columns (CA, serial, status, notAfter) \
                     {columns:?} disagree with its record's {held:?}: reads by status or \
                     expiry go by the columns"
                ));
            }
            if let Some(problem) = serial_claim_problem(key, &rec.ca_id, claimed_by) {
                records.found(problem);
            }
            if rec.status == CertStatus::Reserved {
                reserved += 1;
                continue;
            }
            issued += 1;
            match row.get::<_, Option<&[u8]>>(6) {
                None => records.found(format!("certificate {key}: its DER is missing")),
                Some(der) => {
                    if let Some(why) = der_disagrees(der, &rec.serial) {
                        records.found(format!("certificate {key}: {why}"));
                    }
                }
            }
        }
    }
    drop(records);
    if total >= 100_000 {
        progress(done, done);
    }
    report.certificates = done;
    report.issued = issued;
    report.reserved = reserved;

    // A CA's own serial is claimed in its own name (a root's has no record).
    let mut ca_serials = HashSet::new();
    let mut cas = Kind::new(&mut report.problems, "CA records with problems");
    for row in t
        .query("SELECT id, rec FROM cas", &[])
        .await
        .map_err(pg_err)?
    {
        let id: &str = row.get(0);
        let what = format!("CA record {id}");
        if let Some(ca) = cas.decoded::<CaRecord>(what, row.get::<_, &str>(1).as_bytes()) {
            if let Some(serial) = ca.serial {
                ca_serials.insert(cert_key(&ca.id, &serial));
            }
        }
    }
    drop(cas);
    let mut orphans = Kind::new(
        &mut report.problems,
        "claimed serials without their certificate",
    );
    let limit = ROWS_PER_QUERY + i64::try_from(ca_serials.len()).unwrap_or(0);
    let rows = query(
        t,
        "SELECT s.serial, s.ca_id FROM serials s WHERE NOT EXISTS \
         (SELECT 1 FROM certs c WHERE c.key = s.ca_id || '/' || s.serial) LIMIT $1",
        &[&limit],
    )
    .await?;
    orphans.listed(rows.len(), limit);
    for row in rows {
        let (serial, ca): (&str, &str) = (row.get(0), row.get(1));
        if !ca_serials.contains(&cert_key(ca, serial)) {
            orphans.found(format!(
                "serial {serial} (CA {ca}): claimed, with neither a certificate record nor that \
                 CA's own"
            ));
        }
    }
    Ok(())
}

/// The checks that are one query each: rows naming what is not there.
async fn check_references(t: &Transaction<'_>, report: &mut CheckReport) -> R<()> {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let revoked = status_code(CertStatus::Revoked);
    let mut found = Kind::new(&mut report.problems, "revocations with problems");
    let rows = query(
        t,
        "SELECT key FROM certs c WHERE status = $1 AND not_after >= $2 AND NOT EXISTS \
         (SELECT 1 FROM crl_entries e WHERE e.key = c.key) LIMIT $3",
        &[&revoked, &now, &ROWS_PER_QUERY],
    )
    .await?;
    found.listed(rows.len(), ROWS_PER_QUERY);
    for row in rows {
        found.found(format!(
            "certificate {}: revoked and not expired, but not on its CA's CRLs (no CRL entry)",
            row.get::<_, &str>(0)
        ));
    }
    let rows = query(
        t,
        "SELECT e.key, c.status FROM crl_entries e LEFT JOIN certs c ON c.key = e.key \
         WHERE c.status IS DISTINCT FROM $1 LIMIT $2",
        &[&revoked, &ROWS_PER_QUERY],
    )
    .await?;
    found.listed(rows.len(), ROWS_PER_QUERY);
    for row in rows {
        let key: &str = row.get(0);
        let status = row.get::<_, Option<i16>>(1).map(|code| {
            [CertStatus::Reserved, CertStatus::Issued]
                .into_iter()
                .find(|s| status_code(*s) == code)
                .map_or_else(|| format!("of code {code}"), |s| format!("{s:?}"))
        });
        found.found(match status {
            Some(status) => format!("CRL entry {key}: its certificate is {status}, not revoked"),
            None => format!("CRL entry {key}: no certificate record"),
        });
    }
    drop(found);

    let mut found = Kind::new(&mut report.problems, "idempotency tokens with problems");
    for row in query(t, "SELECT token, rec FROM idempotency", &[]).await? {
        let token: &str = row.get(0);
        let what = format!("idempotency token {token}");
        let Some(idem) = found.decoded::<IdemRecord>(what, row.get::<_, &str>(1).as_bytes()) else {
            continue;
        };
        let key = cert_key(&idem.ca_id, &idem.serial);
        if query(t, "SELECT 1 FROM certs WHERE key = $1", &[&key])
            .await?
            .is_empty()
        {
            found.found(format!(
                "idempotency token {token}: names certificate {key}, which has no record"
            ));
        }
    }
    drop(found);

    let mut found = Kind::new(&mut report.problems, "ACME records with problems");
    let acme: [Finding; 10] = [
        (
            "SELECT o.id, o.account FROM acme_orders o WHERE NOT EXISTS \
             (SELECT 1 FROM acme_accounts a WHERE a.id = o.account)",
            |o, a| format!("ACME order {o}: names account {a}, which has no record"),
        ),
        (
            "SELECT o.id, z.id FROM acme_orders o, \
             jsonb_array_elements_text(o.rec::jsonb -> 'authorizations') AS z(id) \
             WHERE NOT EXISTS (SELECT 1 FROM acme_authzs x WHERE x.id = z.id)",
            |o, z| format!("ACME order {o}: names authorization {z}, which has no record"),
        ),
        (
            "SELECT o.id, x.id FROM acme_orders o, \
             jsonb_array_elements_text(o.rec::jsonb -> 'authorizations') AS z(id) \
             JOIN acme_authzs x ON x.id = z.id \
             WHERE x.rec::jsonb ->> 'order' IS DISTINCT FROM o.id \
                OR x.rec::jsonb ->> 'account' IS DISTINCT FROM o.account",
            |o, z| format!("ACME order {o}: its authorization {z} names another order or account"),
        ),
        (
            "SELECT x.id, x.rec::jsonb ->> 'order' FROM acme_authzs x WHERE NOT EXISTS \
             (SELECT 1 FROM acme_orders o WHERE o.id = x.rec::jsonb ->> 'order' \
              AND o.rec::jsonb -> 'authorizations' ? x.id)",
            |z, o| format!("ACME authorization {z}: its order {o} does not list it"),
        ),
        (
            "SELECT o.id, (o.rec::jsonb -> 'certificate' ->> 0) || '/' || \
             (o.rec::jsonb -> 'certificate' ->> 1) FROM acme_orders o \
             WHERE jsonb_typeof(o.rec::jsonb -> 'certificate') = 'array' AND NOT EXISTS \
             (SELECT 1 FROM certs c WHERE c.key = (o.rec::jsonb -> 'certificate' ->> 0) || '/' \
              || (o.rec::jsonb -> 'certificate' ->> 1))",
            |o, c| format!("ACME order {o}: names certificate {c}, which has no record"),
        ),
        (
            "SELECT o.id, '' FROM acme_orders o WHERE o.rec::jsonb ->> 'status' = 'valid' \
             AND jsonb_typeof(o.rec::jsonb -> 'certificate') IS DISTINCT FROM 'array'",
            |o, _| format!("ACME order {o}: valid, with no certificate"),
        ),
        (
            "SELECT a.id, a.rec::jsonb ->> 'thumbprint' FROM acme_accounts a WHERE NOT EXISTS \
             (SELECT 1 FROM acme_account_keys k \
              WHERE k.thumbprint = a.rec::jsonb ->> 'thumbprint' AND k.account = a.id)",
            |a, k| format!("ACME account {a}: its key {k} is not indexed to it"),
        ),
        (
            "SELECT k.thumbprint, k.account FROM acme_account_keys k WHERE NOT EXISTS \
             (SELECT 1 FROM acme_accounts a \
              WHERE a.id = k.account AND a.rec::jsonb ->> 'thumbprint' = k.thumbprint)",
            |k, a| format!("ACME account key {k}: indexed to account {a}, which does not hold it"),
        ),
        (
            "SELECT a.id, a.rec::jsonb ->> 'eab_kid' FROM acme_accounts a \
             WHERE a.rec::jsonb ->> 'eab_kid' IS NOT NULL AND NOT EXISTS \
             (SELECT 1 FROM acme_eab_keys e WHERE e.kid = a.rec::jsonb ->> 'eab_kid' \
              AND e.rec::jsonb ->> 'account' = a.id)",
            |a, k| format!("ACME account {a}: made with EAB key {k}, which is not bound to it"),
        ),
        (
            "SELECT e.kid, e.rec::jsonb ->> 'account' FROM acme_eab_keys e \
             WHERE e.rec::jsonb ->> 'account' IS NOT NULL AND NOT EXISTS \
             (SELECT 1 FROM acme_accounts a WHERE a.id = e.rec::jsonb ->> 'account' \
              AND a.rec::jsonb ->> 'eab_kid' = e.kid)",
            |k, a| format!("ACME EAB key {k}: bound to account {a}, which was not made with it"),
        ),
    ];
    for (sql, says) in acme {
        let rows = query(t, &format!("{sql} LIMIT {ROWS_PER_QUERY}"), &[]).await?;
        found.listed(rows.len(), ROWS_PER_QUERY);
        for row in rows {
            let text = |i| {
                row.get::<_, Option<&str>>(i)
                    .unwrap_or("(none)")
                    .to_string()
            };
            found.found(says(&text(0), &text(1)));
        }
    }
    Ok(())
}

/// The store's B-tree indexes checked with amcheck's `bt_index_check`
/// (`heapallindexed`: every row of the table is looked for in the index),
/// one at a time, under the shared lock a read takes, so beside serving
/// nodes; a damaged index is a problem, as a damaged page of redb's is.
/// Skipped, saying why, where the extension is not installed or this role
/// may not run it (amcheck's functions are the superuser's unless granted).
async fn check_indexes(conn: &tokio_postgres::Client, problems: &mut Vec<String>) -> R<IndexCheck> {
    let installed = conn
        .query_opt("SELECT 1 FROM pg_extension WHERE extname = 'amcheck'", &[])
        .await
        .map_err(pg_err)?
        .is_some();
    if !installed {
        return Ok(IndexCheck::Skipped(
            "amcheck is not installed in this database (CREATE EXTENSION amcheck, as a \
             superuser, has this check look at them too)"
                .into(),
        ));
    }
    let indexes: Vec<String> = conn
        .query(
            "SELECT c.relname::text FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
             JOIN pg_class t ON t.oid = i.indrelid JOIN pg_namespace n ON n.oid = t.relnamespace \
             JOIN pg_am a ON a.oid = c.relam \
             WHERE a.amname = 'btree' AND n.nspname = current_schema() ORDER BY 1",
            &[],
        )
        .await
        .map_err(pg_err)?
        .iter()
        .map(|row| row.get(0))
        .collect();
    let mut found = Kind::new(problems, "PostgreSQL indexes with problems");
    let mut damaged = 0;
    for name in &indexes {
        let checked = conn
            .execute(
                "SELECT bt_index_check(index => quote_ident($1)::regclass, heapallindexed => true)",
                &[name],
            )
            .await;
        let Err(e) = checked else { continue };
        let Some(db) = e.as_db_error() else {
            return Err(pg_err(e));
        };
        if db.code() == &tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE {
            return Ok(IndexCheck::Skipped(format!(
                "amcheck is installed, but this role may not use it ({}): GRANT EXECUTE ON \
                 FUNCTION bt_index_check(regclass, boolean) TO it",
                db.message()
            )));
        }
        found.found(format!("index {name}: {}", db.message()));
        damaged += 1;
    }
    Ok(IndexCheck::Checked {
        indexes: indexes.len(),
        damaged,
    })
}

/// A problem's query (its rows: the record, what it names) and how a row
/// reads.
type Finding = (&'static str, fn(&str, &str) -> String);

async fn query(
    t: &Transaction<'_>,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> R<Vec<tokio_postgres::Row>> {
    t.query(sql, params).await.map_err(pg_err)
}
