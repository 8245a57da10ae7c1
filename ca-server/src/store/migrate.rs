//! Moving a deployment from the embedded redb store to PostgreSQL
//! (`ca-server migrate`): every record is copied as it is (the audit trail
//! keeps its hashes, CA keys stay sealed), in one transaction, then both
//! stores are read back through the storage trait and compared.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

use super::postgres::{PgOptions, PgStore};
use super::redb::RedbStore;
use super::{Store, Verdict};

/// One record of a store, in the encoding both backends keep (JSON records,
/// raw sealed keys and DER), keyed as the redb tables key it.
#[derive(Debug)]
pub enum Row {
    Meta(String, u64),
    /// The store has a policy table (even empty): policies were set.
    PoliciesSet,
    Ca(String, Vec<u8>),
    CaKey(String, Vec<u8>),
    KeyMeta(String, String),
    Alias(String, String),
    Policy(String, Vec<u8>),
    Serial(String, String),
    /// `ca-id/serial`, the record, and the DER once issued.
    Cert(String, Vec<u8>, Option<Vec<u8>>),
    Idempotency(String, Vec<u8>),
    CrlEntry(String, Vec<u8>),
    CrlMeta(String, Vec<u8>),
    BlockedKey(String, Vec<u8>),
    Audit(u64, Vec<u8>),
    AuditHead(Vec<u8>),
    AuditDigest(u64, Vec<u8>),
    Event(u64, Vec<u8>),
    EventMark(String, u64),
    Webhook(String, Vec<u8>),
    AcmeAccount(String, Vec<u8>),
    AcmeAccountKey(String, String),
    AcmeOrder(String, Vec<u8>),
    AcmeAuthz(String, Vec<u8>),
    AcmeEabKey(String, Vec<u8>),
}

/// What the reader hands the writer: rows, then how the read ended.
pub enum Batch {
    Rows(Vec<Row>),
    Done,
    Failed(String),
}

const BATCH_ROWS: usize = 1_000;

/// What was copied and checked.
#[derive(Debug)]
pub struct MigrationReport {
    /// Rows written per table.
    pub rows: BTreeMap<&'static str, u64>,
    pub cas: usize,
    pub certificates: u64,
    pub audit_entries: u64,
    pub audit_digests: u64,
    pub elapsed: Duration,
}

/// Copy the (stopped) redb store in `dir` into the empty database `target`
/// names, then check that both hold the same: CAs, sealed keys, aliases,
/// policies, certificate count, CRL numbers, ACME accounts, webhooks, and the
/// same audit head, with the copied trail verifying on its own.
pub fn redb_to_postgres(
    dir: &Path,
    target: &PgOptions,
    progress: Box<dyn Fn(u64) + Send>,
) -> anyhow::Result<MigrationReport> {
    let started = Instant::now();
    let source = Arc::new(RedbStore::open_read_only(dir).with_context(|| {
        format!(
            "opening the store in {} (stop the server that uses it first)",
            dir.display()
        )
    })?);
    let source_verdict = source
        .verify_audit(None)
        .context("verifying the source trail")?;
    let (count, digests) = match source_verdict {
        Verdict::Ok { count, digests, .. } => (count, digests),
        Verdict::Broken { seq, why } => {
            bail!("the source audit trail is broken at entry {seq} ({why}); nothing was copied")
        }
    };
    let pg = PgStore::open(target, crate::ids::boot_id()).context("opening the target database")?;
    let result = copy_and_check(&source, &pg, progress);
    pg.close();
    let (rows, cas, certificates) = result?;
    Ok(MigrationReport {
        rows,
        cas,
        certificates,
        audit_entries: count,
        audit_digests: digests,
        elapsed: started.elapsed(),
    })
}

fn copy_and_check(
    source: &Arc<RedbStore>,
    pg: &PgStore,
    progress: Box<dyn Fn(u64) + Send>,
) -> anyhow::Result<(BTreeMap<&'static str, u64>, usize, u64)> {
    let (tx, rx) = tokio::sync::mpsc::channel::<Batch>(4);
    let reader = {
        let source = source.clone();
        std::thread::spawn(move || {
            let mut batch = Vec::with_capacity(BATCH_ROWS);
            let read = source.export(&mut |row| {
                batch.push(row);
                if batch.len() >= BATCH_ROWS {
                    let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH_ROWS));
                    tx.blocking_send(Batch::Rows(full)).map_err(|_| {
                        super::StoreError::Db("the target stopped taking rows".into())
                    })?;
                }
                Ok(())
            });
            let end = match read {
                Ok(()) => {
                    let _ = tx.blocking_send(Batch::Rows(batch));
                    Batch::Done
                }
                Err(e) => Batch::Failed(e.to_string()),
            };
            let _ = tx.blocking_send(end);
        })
    };
    let imported = pg.import(rx, progress);
    let _ = reader.join();
    let rows = imported.context("copying into the database (nothing was committed)")?;
    let (cas, certificates) = compare(source.as_ref(), pg)
        .context("checking the copy (it is committed: empty the database before trying again)")?;
    Ok((rows, cas, certificates))
}

/// Read both stores through the trait and refuse any difference.
fn compare(a: &dyn Store, b: &dyn Store) -> anyhow::Result<(usize, u64)> {
    fn same<T: PartialEq + std::fmt::Debug>(what: &str, a: T, b: T) -> anyhow::Result<()> {
        if a != b {
            bail!("{what} differ: the source has {a:?}, the database {b:?}");
        }
        Ok(())
    }
    let ids = |cas: Vec<super::CaRecord>| {
        let mut v: Vec<(String, String)> = cas
            .into_iter()
            .map(|c| (c.id, format!("{:?}", c.status)))
            .collect();
        v.sort();
        v
    };
    let cas = ids(a.list_cas()?);
    same("CAs", &cas, &ids(b.list_cas()?))?;
    let mut ka = a.sealed_key_ids()?;
    let mut kb = b.sealed_key_ids()?;
    ka.sort();
    kb.sort();
    same("sealed CA keys", ka, kb)?;
    for (id, _) in &cas {
        same(
            &format!("sealed key of {id}"),
            a.sealed_key(id)?,
            b.sealed_key(id)?,
        )?;
        same(
            &format!("CRL number of {id}"),
            a.crl_meta(id)?.map(|m| m.crl_number),
            b.crl_meta(id)?.map(|m| m.crl_number),
        )?;
    }
    same(
        "key meta",
        format!("{:?}", a.key_meta()?),
        format!("{:?}", b.key_meta()?),
    )?;
    let sorted = |mut v: Vec<(String, String)>| {
        v.sort();
        v
    };
    same(
        "aliases",
        sorted(a.list_aliases()?),
        sorted(b.list_aliases()?),
    )?;
    let policies = |p: Option<super::PolicyRows>| {
        p.map(|mut rows| {
            rows.sort();
            rows
        })
    };
    same(
        "policies",
        policies(a.list_policies()?),
        policies(b.list_policies()?),
    )?;
    let certificates = a.count_certs()?;
    same("certificate counts", certificates, b.count_certs()?)?;
    same(
        "ACME accounts",
        a.acme_accounts()?.len(),
        b.acme_accounts()?.len(),
    )?;
    same(
        "ACME EAB keys",
        a.acme_eab_keys()?.len(),
        b.acme_eab_keys()?.len(),
    )?;
    same(
        "webhooks",
        a.list_webhooks()?.len(),
        b.list_webhooks()?.len(),
    )?;
    same("audit heads", a.audit_head()?, b.audit_head()?)?;
    same(
        "audit digests",
        a.last_audit_digest()?.map(|d| d.number),
        b.last_audit_digest()?.map(|d| d.number),
    )?;
    match b.verify_audit(None)? {
        Verdict::Ok { count, .. } => same("audit entries", a.audit_head()?.0, count)?,
        Verdict::Broken { seq, why } => {
            bail!("the copied audit trail does not verify at entry {seq}: {why}")
        }
    }
    Ok((cas.len(), certificates))
}
