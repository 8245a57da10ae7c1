//! The backend conformance suite: what every [`Store`] must do, written
//! against the trait alone. Each backend runs every case through [`Backend`]
//! (redb below; a second backend adds one line).

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use ca_core::audit_chain::{AuditIdentity, AuditOutcome, AuditResult};

use super::*;

/// How a backend opens a store at a place (the same place twice = reopen,
/// as after a crash or a restart, with another boot id).
trait Backend {
    fn open(&self, dir: &Path, boot: &str) -> Arc<dyn Store>;
}

struct Redb;

impl Backend for Redb {
    fn open(&self, dir: &Path, boot: &str) -> Arc<dyn Store> {
        Arc::new(redb::RedbStore::open(dir, boot.into()).expect("open redb"))
    }
}

/// One throwaway PostgreSQL cluster; each place is a database of its own.
struct Postgres {
    cluster: postgres::testdb::TestCluster,
    made: Mutex<std::collections::HashMap<std::path::PathBuf, String>>,
}

impl Postgres {
    fn start() -> Postgres {
        Postgres {
            cluster: postgres::testdb::TestCluster::start().expect("a test PostgreSQL cluster"),
            made: Mutex::new(Default::default()),
        }
    }

    fn url(&self, dir: &Path) -> String {
        let mut made = self.made.lock().expect("lock");
        let n = made.len();
        made.entry(dir.to_path_buf())
            .or_insert_with(|| self.cluster.create_db(&format!("c{n}")).expect("createdb"))
            .clone()
    }
}

impl Backend for Postgres {
    fn open(&self, dir: &Path, boot: &str) -> Arc<dyn Store> {
        let opts = postgres::PgOptions {
            url: self.url(dir),
            pool_size: 8,
            connect_wait: std::time::Duration::from_secs(10),
            tls: None,
        };
        Arc::new(postgres::PgStore::open(&opts, boot.into()).expect("open postgres"))
    }
}

const CA1: &str = "ca-0000000000000001";
const CA2: &str = "ca-0000000000000002";

fn draft(action: &str, target: &str) -> AuditDraft {
    AuditDraft {
        unix: 1_700_000_000,
        identity: AuditIdentity {
            subject: "CN=tester".into(),
            fingerprint: "ff".into(),
        },
        action: action.into(),
        target: target.into(),
        outcome: AuditOutcome {
            decision: "allowed".into(),
            statement: Some("s".into()),
            reason: "test".into(),
        },
        result: AuditResult {
            status: 201,
            code: "success".into(),
        },
        certificate: None,
    }
}

fn intent(ca: &str, serial: &str, boot: &str) -> CertRecord {
    CertRecord {
        ca_id: ca.into(),
        serial: serial.into(),
        status: CertStatus::Reserved,
        profile: "tls-server".into(),
        subject: "CN=x".into(),
        sans: vec![],
        key_algorithm: "ECDSA P-256".into(),
        not_before: 0,
        not_after: 100,
        tbs_sha256: format!("tbs-{serial}"),
        created_at: 0,
        requested_by: "test".into(),
        boot_id: boot.into(),
        server_generated_key: false,
        renewed_from: None,
        revocation: None,
        requester_fingerprint: None,
    }
}

fn issued(mut r: CertRecord) -> CertRecord {
    r.status = CertStatus::Issued;
    r
}

fn no_tokens() -> Arc<InFlightTokens> {
    Arc::new(InFlightTokens::default())
}

fn rv(code: u8, at: i64) -> Revocation {
    Revocation {
        reason_code: code,
        reason: "x".into(),
        revoked_at: at,
        revoked_by: "test".into(),
        key_sha256: None,
    }
}

fn ca(id: &str) -> CaRecord {
    CaRecord {
        token_key_label: None,
        ocsp_disabled: false,
        id: id.into(),
        ca_type: CaType::Root,
        status: CaStatus::Active,
        subject: "CN=Test CA".into(),
        key_algorithm: "ECDSA P-256".into(),
        certificate_pem: None,
        chain_pem: vec![],
        parent_ca_id: None,
        external: false,
        csr_pem: None,
        serial: None,
        not_before: None,
        not_after: None,
        path_len: None,
        created_at: 0,
        updated_at: 0,
    }
}

async fn issue_one(s: &dyn Store, ca: &str, serial: &str) {
    issue_with(
        s,
        ca,
        serial,
        b"der".to_vec(),
        draft("IssueCertificate", serial),
    )
    .await;
}

/// Issue `serial` of `ca` (reserved before or not) with placeholder DER.
async fn issue_serial(s: &dyn Store, ca: &str, serial: &str) -> Result<(), StoreError> {
    s.issue(
        issued(intent(ca, serial, "boot1")),
        b"der".to_vec(),
        key_of(serial),
        draft("IssueCertificate", serial),
    )
    .await
}

/// The key hash the suite gives the certificate `serial`.
pub(super) fn key_of(serial: &str) -> String {
    format!("k-{serial}")
}

/// Reserve `serial`, then issue it with `der` and the audit entry `audit`.
async fn issue_with(s: &dyn Store, ca: &str, serial: &str, der: Vec<u8>, audit: AuditDraft) {
    let r = s
        .reserve(intent(ca, serial, s.boot_id()), None, no_tokens())
        .await
        .expect("reserve");
    assert!(matches!(r, ReserveOutcome::Reserved));
    s.issue(
        issued(intent(ca, serial, s.boot_id())),
        der,
        key_of(serial),
        audit,
    )
    .await
    .expect("issue");
}

fn audit_actions(s: &dyn Store) -> Vec<(String, String)> {
    let (entries, _) = s
        .audit_page(&AuditFilter {
            limit: 1000,
            ..Default::default()
        })
        .expect("audit");
    entries.into_iter().map(|e| (e.action, e.target)).collect()
}

fn event(unix: i64, kind: &str) -> EventRecord {
    EventRecord {
        seq: 0,
        id: format!("evt-{unix}-{kind}"),
        event_type: kind.into(),
        time: String::new(),
        unix,
        ca_id: CA1.into(),
        detail: EventDetail::default(),
        audit_seq: None,
    }
}

/// `n` real certificates from one issuer, as DER (names and keys differ).
fn real_certificates(issuer_cn: &str, n: usize) -> Vec<Vec<u8>> {
    let ca_key = rcgen::KeyPair::generate().expect("key");
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).expect("ca");
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, issuer_cn);
    let issuer = rcgen::Issuer::new(ca, ca_key);
    (0..n)
        .map(|i| {
            let key = rcgen::KeyPair::generate().expect("key");
            let name = format!("host-{i}.example.internal");
            let mut p = rcgen::CertificateParams::new(vec![name.clone()]).expect("leaf");
            p.distinguished_name.push(rcgen::DnType::CommonName, name);
            p.use_authority_key_identifier_extension = true;
            p.signed_by(&key, &issuer).expect("sign").der().to_vec()
        })
        .collect()
}

mod acme;
mod audit;
mod cas;
mod certs;
mod crls;
mod events;
mod revocation;

async fn run_all(b: &dyn Backend) {
    macro_rules! case {
        ($f:path) => {{
            let dir = tempfile::tempdir().expect("tempdir");
            $f(b, dir.path()).await;
        }};
    }
    case!(certs::serials_are_never_reused_and_tokens_bind_requests);
    case!(certs::an_action_and_its_audit_entry_commit_together);
    case!(revocation::revocation_is_idempotent_raises_to_key_compromise_and_tells_hooks);
    case!(certs::an_intent_orphaned_by_a_crash_frees_its_token_not_its_serial);
    case!(certs::paging_walks_every_certificate_once);
    case!(certs::concurrent_writers_each_get_their_own_answer);
    case!(cas::a_new_ca_is_one_commit);
    case!(cas::keys_and_policies_survive_a_restart);
    case!(audit::audit_digests_follow_one_another_and_bind_the_head);
    case!(events::the_outbox_numbers_events_moves_marks_once_and_tracks_webhooks);
    case!(events::events_made_from_audit_entries_read_back_as_made);
    case!(certs::certificates_read_back_byte_for_byte);
    case!(acme::a_stale_acme_account_copy_cannot_undo_a_key_change_or_a_deactivation);
    case!(crls::crl_numbers_only_go_up);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redb_passes_the_conformance_suite() {
    run_all(&Redb).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_passes_the_conformance_suite() {
    run_all(&Postgres::start()).await;
}

mod postgres_only;
mod redb_only;
