//! `ca-server check`: a stopped server's store checked end to end, its
//! files left as they are. redb's integrity check reads every page against
//! its checksum and the allocator state against the pages in use; then
//! every certificate record is checked against its indexes (serial, DER,
//! expiry) and its DER against the record, every index entry against its
//! record, every revocation against its certificate and the CRL entries
//! (a revoked certificate that has not expired must be on its CA's next
//! CRL), every idempotency token and ACME order against the certificate it
//! names, ACME's accounts, keys, orders and authorizations against each
//! other, and the audit trail's hash chain and signed digests. A store a
//! crash left is recovered in this process's memory first, as the server's
//! own start would recover it.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata};

use super::acme::{ACME_ACCOUNTS, ACME_ACCOUNT_KEYS, ACME_AUTHZS, ACME_EAB_KEYS, ACME_ORDERS};
use super::codec;
use super::journal::JournalBackend;
use super::tables::{
    absent, unjson, unpack_der, CAS, CERTS, CERT_DER, CERT_DER_SEQ, CRL_ENTRIES,
    CRL_ENTRIES_COMPLETE, DER_DICTS, EXPIRY, IDEMPOTENCY, META, REVOCATIONS, SERIALS,
};
use super::writer::Handle;
use super::DB_FILE;
pub use crate::store::check::CheckReport;
use crate::store::check::{der_disagrees, serial_claim_problem, Kind};
use crate::store::{
    cert_key, AcmeAccount, AcmeAuthz, AcmeEabKey, AcmeOrder, CaRecord, CertStatus, IdemRecord,
    StoreError,
};

/// redb's page cache while checking.
const CACHE_BYTES: usize = 32 << 20;

/// Check the redb store in `dir` (the server stopped: a running one holds
/// its journal locked). `progress(done, total)` is told as certificates are
/// checked.
pub fn check(dir: &Path, progress: &mut dyn FnMut(u64, u64)) -> Result<CheckReport, StoreError> {
    let path = dir.join(DB_FILE);
    let backend = JournalBackend::open_read_only(&path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => StoreError::NotFound(format!("{}: {e}", path.display())),
        _ => StoreError::Unavailable(format!("{}: {e}", path.display())),
    })?;
    let pending = backend.take_pending_redo();
    let repaired = Arc::new(AtomicBool::new(false));
    let flag = repaired.clone();
    // On a scratch backend: whatever redb writes (its repair, the redo, the
    // integrity check's own repair) stays in this process's memory. Every
    // page is read once, so a small cache: a large store is not held whole.
    let mut db = redb::Builder::new()
        .set_cache_size(CACHE_BYTES)
        .set_repair_callback(move |_| flag.store(true, Ordering::Relaxed))
        .create_with_backend(backend.into_scratch())?;
    if !pending.is_empty() {
        super::redo::redo_pending(&db, &pending, true)?;
    }
    let mut report = CheckReport::new(repaired.load(Ordering::Relaxed) || !pending.is_empty());
    match db.check_integrity() {
        Ok(true) => report.pages_ok = true,
        Ok(false) => report.problems.push(
            "redb's integrity check failed: a page's checksum or the allocator state did not \
             match (redb repaired it in this process's memory; the file is left as it is)"
                .into(),
        ),
        Err(e) => {
            report
                .problems
                .push(format!("redb's integrity check failed: {e}"));
            return Ok(report);
        }
    }
    // A read that fails (a page redb could not make sense of) is a problem
    // found, reported with the others.
    match check_certificates(&db, &mut report, progress) {
        Ok(revoked) => {
            if let Err(e) = check_revocations(&db, &revoked, &mut report) {
                report
                    .problems
                    .push(format!("reading the revocations failed: {e}"));
            }
            if let Err(e) = check_idempotency(&db, &mut report) {
                report
                    .problems
                    .push(format!("reading the idempotency tokens failed: {e}"));
            }
            if let Err(e) = check_acme(&db, &mut report) {
                report
                    .problems
                    .push(format!("reading the ACME records failed: {e}"));
            }
        }
        Err(e) => report
            .problems
            .push(format!("reading the certificates failed: {e}")),
    }
    match super::reads::verify_audit(&Handle::Scratch(db), None) {
        Ok(verdict) => report.audit = Some(verdict),
        Err(e) => report
            .problems
            .push(format!("reading the audit trail failed: {e}")),
    }
    Ok(report)
}

/// Returns the revoked certificates' keys and notAfter times.
fn check_certificates(
    db: &redb::Database,
    report: &mut CheckReport,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Vec<(String, i64)>, StoreError> {
    let r = db.begin_read()?;
    let certs = r.open_table(CERTS)?;
    let serials = r.open_table(SERIALS)?;
    let expiry = r.open_table(EXPIRY)?;
    let der_seq = r.open_table(CERT_DER_SEQ)?;
    let legacy_der = r.open_table(CERT_DER).map(Some).or_else(absent)?;
    let dicts = r.open_table(DER_DICTS).map(Some).or_else(absent)?;
    let total = certs.len()?;
    let mut records = Kind::new(&mut report.problems, "certificate records with problems");
    let (mut issued, mut reserved, mut with_der_seq) = (0u64, 0u64, 0u64);
    let mut revoked = Vec::new();
    for (done, item) in certs.iter()?.enumerate() {
        let done = done as u64 + 1;
        if done % 100_000 == 0 {
            progress(done, total);
        }
        let (k, v) = item?;
        let key = k.value();
        let (rec, seq) = match codec::decode_cert_and_der_seq(v.value()) {
            Ok(r) => r,
            Err(e) => {
                records.found(format!("certificate record {key}: unreadable: {e}"));
                continue;
            }
        };
        if rec.key() != key {
            records.found(format!(
                "certificate record {key}: holds certificate {}",
                rec.key()
            ));
        }
        let claimed_by = serials.get(rec.serial.as_str())?;
        if let Some(problem) =
            serial_claim_problem(key, &rec.ca_id, claimed_by.as_ref().map(|c| c.value()))
        {
            records.found(problem);
        }
        if rec.status == CertStatus::Reserved {
            reserved += 1;
            continue;
        }
        issued += 1;
        if rec.status == CertStatus::Revoked {
            revoked.push((key.to_string(), rec.not_after));
        }
        let der = match seq {
            Some(seq) => {
                with_der_seq += 1;
                der_seq
                    .get(seq)?
                    .map(|d| unpack_der(dicts.as_ref(), d.value()))
            }
            None => match &legacy_der {
                Some(t) => t.get(key)?.map(|d| Ok(d.value().to_vec())),
                None => None,
            },
        };
        match der {
            None => records.found(format!("certificate {key}: its DER is missing")),
            Some(Err(e)) => records.found(format!("certificate {key}: its DER: {e}")),
            Some(Ok(der)) => {
                if let Some(why) = der_disagrees(&der, &rec.serial) {
                    records.found(format!("certificate {key}: {why}"));
                }
            }
        }
        let not_after = u64::try_from(rec.not_after).unwrap_or(0);
        if expiry.get((not_after, key))?.is_none() {
            records.found(format!(
                "certificate {key}: not in the expiry index (expiry notices and counts miss it)"
            ));
        }
    }
    drop(records);
    if total >= 100_000 {
        progress(total, total);
    }
    // Index entries without their record.
    let mut orphans = Kind::new(
        &mut report.problems,
        "index entries without their certificate",
    );
    // A CA's own serial is claimed in its own name (a root's has no record).
    let mut ca_serials = std::collections::HashSet::new();
    for item in r.open_table(CAS)?.iter()? {
        let (_, v) = item?;
        let ca: CaRecord = unjson(v.value())?;
        if let Some(serial) = ca.serial {
            ca_serials.insert((ca.id, serial));
        }
    }
    for item in serials.iter()? {
        let (s, ca) = item?;
        let key = cert_key(ca.value(), s.value());
        if certs.get(key.as_str())?.is_none()
            && !ca_serials.contains(&(ca.value().to_string(), s.value().to_string()))
        {
            orphans.found(format!(
                "serial {} (CA {}): claimed, with neither a certificate record nor that CA's own",
                s.value(),
                ca.value()
            ));
        }
    }
    for item in expiry.iter()? {
        let (k, _) = item?;
        let (_, key) = k.value();
        if certs.get(key)?.is_none() {
            orphans.found(format!("expiry index entry {key}: no certificate record"));
        }
    }
    let stored_ders = der_seq.len()?;
    if stored_ders > with_der_seq {
        orphans.found(format!(
            "{} stored DER(s) belong to no certificate record",
            stored_ders - with_der_seq
        ));
    }
    drop(orphans);
    report.certificates = total;
    report.issued = issued;
    report.reserved = reserved;
    Ok(revoked)
}

/// Every revoked certificate has its revocation and, until it expires, its
/// CRL entry (what the next CRL lists); every revocation and CRL entry has a
/// revoked certificate. Entries of certificates expired before the last CRL
/// are dropped at publication, so an expired one may lack its entry.
fn check_revocations(
    db: &redb::Database,
    revoked: &[(String, i64)],
    report: &mut CheckReport,
) -> Result<(), StoreError> {
    let r = db.begin_read()?;
    let certs = r.open_table(CERTS)?;
    let Some(revocations) = r.open_table(REVOCATIONS).map(Some).or_else(absent)? else {
        return Ok(());
    };
    let entries = r.open_table(CRL_ENTRIES).map(Some).or_else(absent)?;
    // A store from before CRL entries were kept gets them at the server's
    // next start; until then there is nothing to compare.
    let entries_kept = match r.open_table(META).map(Some).or_else(absent)? {
        Some(meta) => meta.get(CRL_ENTRIES_COMPLETE)?.is_some(),
        None => false,
    };
    let entries = entries.filter(|_| entries_kept);
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let mut found = Kind::new(&mut report.problems, "revocations with problems");
    // Why the revocation record or CRL entry (`what`) of `key` does not
    // name a revoked certificate, if it does not.
    let not_revoked = |what: &str, key: &str| -> Result<Option<String>, StoreError> {
        let status = match certs.get(key)? {
            Some(v) => match codec::decode_cert(v.value()) {
                Ok(c) => Some(c.status),
                // Reported with the certificate records.
                Err(_) => return Ok(None),
            },
            None => None,
        };
        Ok(match status {
            Some(CertStatus::Revoked) => None,
            Some(status) => Some(format!(
                "{what} {key}: its certificate is {status:?}, not revoked"
            )),
            None => Some(format!("{what} {key}: no certificate record")),
        })
    };
    for (key, not_after) in revoked {
        if revocations.get(key.as_str())?.is_none() {
            found.found(format!(
                "certificate {key}: revoked, with no revocation record"
            ));
        }
        if let Some(entries) = &entries {
            if *not_after >= now && entries.get(key.as_str())?.is_none() {
                found.found(format!(
                    "certificate {key}: revoked and not expired, but not on its CA's CRLs (no CRL entry)"
                ));
            }
        }
    }
    for item in revocations.iter()? {
        if let Some(problem) = not_revoked("revocation", item?.0.value())? {
            found.found(problem);
        }
    }
    if let Some(entries) = &entries {
        for item in entries.iter()? {
            if let Some(problem) = not_revoked("CRL entry", item?.0.value())? {
                found.found(problem);
            }
        }
    }
    Ok(())
}

/// Every idempotency token names a certificate record (its reservation,
/// written in the same commit, and kept): a retry with the token must find
/// the certificate or its signing, never nothing.
fn check_idempotency(db: &redb::Database, report: &mut CheckReport) -> Result<(), StoreError> {
    let r = db.begin_read()?;
    let Some(tokens) = r.open_table(IDEMPOTENCY).map(Some).or_else(absent)? else {
        return Ok(());
    };
    let certs = r.open_table(CERTS)?;
    let mut found = Kind::new(&mut report.problems, "idempotency tokens with problems");
    for item in tokens.iter()? {
        let (token, v) = item?;
        let token = token.value();
        match unjson::<IdemRecord>(v.value()) {
            Ok(idem) => {
                let key = cert_key(&idem.ca_id, &idem.serial);
                if certs.get(key.as_str())?.is_none() {
                    found.found(format!(
                        "idempotency token {token}: names certificate {key}, which has no record"
                    ));
                }
            }
            Err(e) => found.found(format!("idempotency token {token}: unreadable: {e}")),
        }
    }
    Ok(())
}

/// ACME's records agree with each other and with the certificates. Every
/// order names its account and its authorizations, each of which names it
/// back (an order and its authorizations are written in one commit, and
/// none is ever removed); every order that names its certificate names a
/// stored one (the certificate is stored before the order), and every
/// valid order names one: its client downloads it from there. Every
/// account's key is indexed to it and every indexed key to an account
/// with that key; an account made with an external account binding key and
/// that key name each other (bound in one commit).
fn check_acme(db: &redb::Database, report: &mut CheckReport) -> Result<(), StoreError> {
    let r = db.begin_read()?;
    let table = |def| r.open_table(def).map(Some).or_else(absent);
    let (Some(orders), Some(authzs), Some(accounts), Some(keys)) = (
        table(ACME_ORDERS)?,
        table(ACME_AUTHZS)?,
        table(ACME_ACCOUNTS)?,
        r.open_table(ACME_ACCOUNT_KEYS).map(Some).or_else(absent)?,
    ) else {
        return Ok(());
    };
    let eab_keys = table(ACME_EAB_KEYS)?;
    let certs = r.open_table(CERTS)?;
    let mut found = Kind::new(&mut report.problems, "ACME records with problems");
    // Whether account `id` has a record that `holds` (an unreadable one is
    // reported with the accounts).
    let account_is = |id: &str, holds: &dyn Fn(&AcmeAccount) -> bool| -> Result<bool, StoreError> {
        Ok(match accounts.get(id)? {
            Some(v) => unjson::<AcmeAccount>(v.value())
                .map(|a| holds(&a))
                .unwrap_or(true),
            None => false,
        })
    };
    for item in orders.iter()? {
        let (id, v) = item?;
        let id = id.value();
        let Some(order) = found.decoded::<AcmeOrder>(format!("ACME order {id}"), v.value()) else {
            continue;
        };
        if accounts.get(order.account.as_str())?.is_none() {
            found.found(format!(
                "ACME order {id}: names account {}, which has no record",
                order.account
            ));
        }
        for authz_id in &order.authorizations {
            match authzs.get(authz_id.as_str())? {
                None => found.found(format!(
                    "ACME order {id}: names authorization {authz_id}, which has no record"
                )),
                Some(v) => match unjson::<AcmeAuthz>(v.value()) {
                    Ok(a) if a.order == id && a.account == order.account => {}
                    Ok(a) => found.found(format!(
                        "ACME order {id}: its authorization {authz_id} names order {} of account {}",
                        a.order, a.account
                    )),
                    // Reported with the authorizations.
                    Err(_) => {}
                },
            }
        }
        match &order.certificate {
            Some((ca_id, serial)) => {
                let key = cert_key(ca_id, serial);
                if certs.get(key.as_str())?.is_none() {
                    found.found(format!(
                        "ACME order {id}: names certificate {key}, which has no record"
                    ));
                }
            }
            None if order.status == "valid" => {
                found.found(format!("ACME order {id}: valid, with no certificate"))
            }
            None => {}
        }
    }
    for item in authzs.iter()? {
        let (id, v) = item?;
        let id = id.value();
        let Some(authz) = found.decoded::<AcmeAuthz>(format!("ACME authorization {id}"), v.value())
        else {
            continue;
        };
        let listed = match orders.get(authz.order.as_str())? {
            Some(v) => unjson::<AcmeOrder>(v.value())
                .map(|o| o.authorizations.iter().any(|a| a == id))
                // An unreadable order is reported with the orders.
                .unwrap_or(true),
            None => false,
        };
        if !listed {
            found.found(format!(
                "ACME authorization {id}: its order {} does not list it",
                authz.order
            ));
        }
    }
    for item in accounts.iter()? {
        let (id, v) = item?;
        let id = id.value();
        let Some(account) = found.decoded::<AcmeAccount>(format!("ACME account {id}"), v.value())
        else {
            continue;
        };
        if keys
            .get(account.thumbprint.as_str())?
            .map(|v| v.value() == id)
            != Some(true)
        {
            found.found(format!(
                "ACME account {id}: its key {} is not indexed to it",
                account.thumbprint
            ));
        }
        if let Some(kid) = &account.eab_kid {
            let bound = match eab_keys.as_ref() {
                Some(t) => t.get(kid.as_str())?.is_some_and(|v| {
                    unjson::<AcmeEabKey>(v.value())
                        .map(|k| k.account.as_deref() == Some(id))
                        // An unreadable key is reported with the EAB keys.
                        .unwrap_or(true)
                }),
                None => false,
            };
            if !bound {
                found.found(format!(
                    "ACME account {id}: made with EAB key {kid}, which is not bound to it"
                ));
            }
        }
    }
    for item in keys.iter()? {
        let (thumbprint, id) = item?;
        let (thumbprint, id) = (thumbprint.value(), id.value());
        if !account_is(id, &|a| a.thumbprint == thumbprint)? {
            found.found(format!(
                "ACME account key {thumbprint}: indexed to account {id}, which does not hold it"
            ));
        }
    }
    if let Some(eab_keys) = eab_keys {
        for item in eab_keys.iter()? {
            let (kid, v) = item?;
            let kid = kid.value();
            let Some(key) = found.decoded::<AcmeEabKey>(format!("ACME EAB key {kid}"), v.value())
            else {
                continue;
            };
            let Some(account) = &key.account else {
                continue;
            };
            if !account_is(account, &|a| a.eab_kid.as_deref() == Some(kid))? {
                found.found(format!(
                    "ACME EAB key {kid}: bound to account {account}, which was not made with it"
                ));
            }
        }
    }
    Ok(())
}
