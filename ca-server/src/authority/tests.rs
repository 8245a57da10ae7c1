//! Unit tests of the authority, in process: a temporary embedded store, a fresh
//! master key, a root and a subordinate CA made by an internal identity, and
//! a clock the test moves, so dates in certificates and audit entries can be
//! checked exactly. Outside an API call (`audit::with_call`) every state
//! change commits one `Internal…` audit entry.

use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use ca_core::keys::{KeyAlgorithm, SoftwareKey};
use ca_core::names::SanEntry;
use der::Decode;
use time::OffsetDateTime;
use x509_cert::Certificate;

use super::{Authority, CertView, Identity, NewCa, RevocationReason};
use crate::audit::AuditEntry;
use crate::config::Config;
use crate::error::ErrorCode;
use crate::policy::{ConditionsDto, Policies, PrincipalDto, StatementDto};
use crate::store::{AuditFilter, CaRecord, CaType, CertStatus, Store};
use crate::vault::Vault;

/// 2030-03-17T17:46:40Z: far from the test machine's own time, so a date
/// taken from the system clock by mistake shows.
const T0: i64 = 1_900_000_000;
const DAY: i64 = 86_400;
const ALICE_FP: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

struct Fixture {
    _dir: tempfile::TempDir,
    auth: Arc<Authority>,
    store: Arc<dyn Store>,
    now: Arc<AtomicI64>,
    root: CaRecord,
    sub: CaRecord,
}

impl Fixture {
    fn set_time(&self, unix: i64) {
        self.now.store(unix, Ordering::SeqCst);
    }

    fn audit(&self) -> Vec<AuditEntry> {
        let filter = AuditFilter {
            limit: 1000,
            ..Default::default()
        };
        self.store.audit_page(&filter).expect("audit page").0
    }
}

fn config() -> Config {
    Config {
        api_addr: crate::config::DEFAULT_API_ADDR.into(),
        public_addr: crate::config::DEFAULT_PUBLIC_ADDR.into(),
        public_base_url: None,
        max_body_bytes: crate::config::DEFAULT_MAX_BODY_BYTES,
        max_in_flight: crate::config::DEFAULT_MAX_IN_FLIGHT,
        max_connections: crate::config::DEFAULT_MAX_CONNECTIONS,
        public_max_connections: crate::config::DEFAULT_PUBLIC_MAX_CONNECTIONS,
        max_connections_per_ip: None,
        log_format: Default::default(),
        client_auth_ca_id: String::new(),
        issuing_ca_id: String::new(),
        root_ca_id: String::new(),
        tls_cert: PathBuf::from("tls/server.pem"),
        tls_key: PathBuf::from("tls/server.key"),
        validity: Config::default_validity(),
        revocation: Default::default(),
        api_tls: Default::default(),
        weak_key_lists: Vec::new(),
        audit_digest_interval_secs: 600,
        refusal_audit_window_secs: 60,
        refusal_audit_per_window: 60,
        pkcs11: None,
        health: Default::default(),
        metrics: Default::default(),
        events: Default::default(),
        acme: Default::default(),
        store: Default::default(),
    }
}

fn system() -> Identity {
    Identity::internal("unit test")
}

fn alice() -> Identity {
    Identity {
        subject: "CN=alice".into(),
        fingerprint: ALICE_FP.into(),
        ..Default::default()
    }
}

/// A store, an authority on a clock set to `T0`, a root and a subordinate.
async fn fixture() -> Fixture {
    fixture_in(tempfile::tempdir().expect("tempdir")).await
}

/// [`fixture`] with its store in `dir` (a test may register faults for it first).
async fn fixture_in(dir: tempfile::TempDir) -> Fixture {
    let store = crate::store::open(dir.path(), "unit-test".into()).expect("store");
    let master = ca_core::envelope::MasterKey::generate().expect("master key");
    let vault = Vault::new(store.clone(), Box::new(master)).expect("vault");
    let policies = Policies::load(store.as_ref()).expect("policies");
    let now = Arc::new(AtomicI64::new(T0));
    let clock_now = now.clone();
    let clock: crate::clock::Clock = Arc::new(move || {
        OffsetDateTime::from_unix_timestamp(clock_now.load(Ordering::SeqCst)).expect("time")
    });
    let auth = Arc::new(Authority::with_clock(
        store.clone(),
        vault,
        policies,
        config(),
        "http://127.0.0.1:8080".into(),
        clock,
    ));
    let root = auth
        .create_ca(
            &system(),
            NewCa {
                ca_type: CaType::Root,
                subject: "CN=Test Root".into(),
                key_algorithm: "ec-p256".into(),
                parent_ca_id: None,
                external: false,
                validity_days: Some(3650),
                path_len: Some(1),
                name_constraints: None,
                key_storage: Default::default(),
                ocsp_disabled: false,
            },
        )
        .await
        .expect("root");
    let sub = auth
        .create_ca(
            &system(),
            NewCa {
                ca_type: CaType::Subordinate,
                subject: "CN=Test Issuing".into(),
                key_algorithm: "ec-p256".into(),
                parent_ca_id: Some(root.id.clone()),
                external: false,
                validity_days: Some(1825),
                path_len: Some(0),
                name_constraints: None,
                key_storage: Default::default(),
                ocsp_disabled: false,
            },
        )
        .await
        .expect("subordinate");
    Fixture {
        _dir: dir,
        auth,
        store,
        now,
        root,
        sub,
    }
}

fn csr_pem(name: &str) -> String {
    let key = SoftwareKey::generate(KeyAlgorithm::EcdsaP256).expect("key");
    let subject = ca_core::names::parse_subject(&format!("CN={name}")).expect("subject");
    let san = SanEntry::parse(name).expect("san");
    let der = ca_core::csr::create_csr(&key, &subject, &[san]).expect("csr");
    ca_core::pem::encode("CERTIFICATE REQUEST", &der)
}

async fn issue(
    f: &Fixture,
    who: &Identity,
    name: &str,
) -> Result<CertView, crate::error::ApiError> {
    f.auth
        .issue_from_csr(
            who,
            &f.sub.id,
            &csr_pem(name),
            "tls-server",
            Some(10),
            None,
            None,
        )
        .await
}

fn validity_of(der: &[u8]) -> (i64, i64) {
    let cert = Certificate::from_der(der).expect("certificate");
    let v = &cert.tbs_certificate.validity;
    let secs = |t: &x509_cert::time::Time| t.to_unix_duration().as_secs() as i64;
    (secs(&v.not_before), secs(&v.not_after))
}

#[tokio::test]
async fn issuance_from_a_csr_dates_the_certificate_by_the_injected_clock() {
    let f = fixture().await;
    let t1 = T0 + 3 * DAY;
    f.set_time(t1);
    let view = issue(&f, &system(), "web.example.com")
        .await
        .expect("issue");
    let (nb, na) = validity_of(&view.der);
    // Backdated by five minutes for clock skew; ten days less one second.
    assert_eq!(nb, t1 - 300);
    assert_eq!(na, t1 - 300 + 10 * DAY - 1);
    assert_eq!((view.record.not_before, view.record.not_after), (nb, na));
    assert_eq!(view.record.created_at, t1);
    assert_eq!(view.record.status, CertStatus::Issued);
    // The chain is the issuing CA then the root.
    assert_eq!(view.chain_der().len(), 2);
    let (root_nb, _) = validity_of(&view.chain_der()[1]);
    assert_eq!(Some(root_nb), f.root.not_before);
    // The root too is dated (and backdated) by the injected clock.
    assert_eq!(f.root.not_before, Some(T0 - 300));
}

#[tokio::test]
async fn a_disabled_ca_refuses_to_issue() {
    let f = fixture().await;
    f.auth
        .update_ca_status(&system(), &f.sub.id, "DISABLED")
        .await
        .expect("disable");
    let e = issue(&f, &system(), "web.example.com")
        .await
        .expect_err("disabled CA issued");
    assert_eq!(e.code, ErrorCode::CaDisabled);
    f.auth
        .update_ca_status(&system(), &f.sub.id, "ACTIVE")
        .await
        .expect("enable");
    issue(&f, &system(), "web.example.com")
        .await
        .expect("issue after enabling");
}

#[tokio::test]
async fn revoking_again_is_idempotent_only_with_the_same_reason() {
    let f = fixture().await;
    let view = issue(&f, &system(), "web.example.com")
        .await
        .expect("issue");
    let serial = view.record.serial.clone();
    f.set_time(T0 + DAY);
    let first = f
        .auth
        .revoke(&system(), None, &serial, RevocationReason::KeyCompromise)
        .await
        .expect("revoke");
    f.set_time(T0 + 2 * DAY);
    let refused = f
        .auth
        .revoke(
            &system(),
            Some(&f.sub.id),
            &serial,
            RevocationReason::Superseded,
        )
        .await
        .expect_err("another reason");
    assert_eq!(refused.code, crate::error::ErrorCode::Conflict);
    let second = f
        .auth
        .revoke(
            &system(),
            Some(&f.sub.id),
            &serial,
            RevocationReason::KeyCompromise,
        )
        .await
        .expect("revoke again");
    for rec in [&first, &second] {
        let rv = rec.revocation.as_ref().expect("revocation");
        assert_eq!(rv.reason_code, 1);
        assert_eq!(rv.reason, "KEY_COMPROMISE");
        assert_eq!(rv.revoked_at, T0 + DAY);
    }
    let stored = f
        .auth
        .get_certificate(&system(), None, &serial)
        .expect("get");
    assert_eq!(stored.record.status, CertStatus::Revoked);
    assert_eq!(
        stored.record.revocation.map(|r| r.reason),
        Some("KEY_COMPROMISE".to_string())
    );
}

#[tokio::test]
async fn a_policy_denied_identity_is_refused() {
    let f = fixture().await;
    // No statement names alice: deny by default.
    let e = issue(&f, &alice(), "web.example.com")
        .await
        .expect_err("issued without a grant");
    assert_eq!(e.code, ErrorCode::PolicyDenied);
    // A grant limited to *.example.com allows those names and no others.
    let grant = StatementDto {
        id: None,
        effect: "allow".into(),
        principals: vec![PrincipalDto::Fingerprint(ALICE_FP.into())],
        actions: vec!["issue".into()],
        cas: vec![f.sub.id.clone()],
        conditions: ConditionsDto {
            name_patterns: vec!["*.example.com".into()],
            ..Default::default()
        },
    };
    f.auth
        .policies
        .put(f.store.as_ref(), "alice-issue", grant)
        .await
        .expect("policy");
    let view = issue(&f, &alice(), "web.example.com")
        .await
        .expect("allowed issue");
    assert_eq!(view.record.requester_fingerprint.as_deref(), Some(ALICE_FP));
    let e = issue(&f, &alice(), "web.evil.test")
        .await
        .expect_err("issued a name outside the grant");
    assert_eq!(e.code, ErrorCode::PolicyDenied);
    // Issue rights are not read rights.
    let e = f
        .auth
        .describe_ca(&alice(), &f.sub.id)
        .expect_err("read without a grant");
    assert_eq!(e.code, ErrorCode::PolicyDenied);
    assert!(f.auth.list_readable_cas(&alice()).expect("list").is_empty());
}

/// A CSR whose signature does not prove its key is refused as such, and
/// nothing is stored for it, whether its proof is checked first (calls in
/// flight) or beside its signing (alone): also when the policy would refuse
/// it too. A good CSR is issued either way.
#[tokio::test]
async fn a_csr_without_proof_of_possession_is_refused_alone_or_not() {
    let f = fixture().await;
    let with_bad_signature = |name: &str| {
        let pem = csr_pem(name);
        let mut der = ca_core::pem::der_or_pem("CERTIFICATE REQUEST", pem.as_bytes()).expect("der");
        if let Some(last) = der.last_mut() {
            *last ^= 0x01;
        }
        ca_core::pem::encode("CERTIFICATE REQUEST", &der)
    };
    let stored_before = f.store.count_certs().expect("count");
    for busy in [false, true] {
        // Two permits taken: two other calls in flight.
        let _others = busy.then(|| {
            f.auth
                .in_flight
                .clone()
                .try_acquire_many_owned(2)
                .expect("permits")
        });
        for (who, name) in [
            (system(), "web.example.com"),
            (alice(), "denied.example.com"),
        ] {
            // Alone (not busy), with the proof's helper woken before the CSR
            // was read, as the API does; busy, none is woken.
            let refused = f
                .auth
                .issue_from_csr(
                    &who,
                    &f.sub.id,
                    &with_bad_signature(name),
                    "tls-server",
                    None,
                    None,
                    f.auth.proof_helper(),
                )
                .await;
            let Err(e) = refused else {
                panic!("busy {busy}: issued for a CSR that does not prove its key");
            };
            assert_eq!(
                e.code,
                ErrorCode::MalformedCsr,
                "busy {busy}: {}",
                e.message
            );
            assert!(
                e.message.contains("prove possession"),
                "busy {busy}: {}",
                e.message
            );
        }
        issue(&f, &system(), "web.example.com")
            .await
            .unwrap_or_else(|e| panic!("busy {busy}: a good CSR: {}", e.message));
    }
    assert_eq!(f.store.count_certs().expect("count"), stored_before + 2);
}

#[tokio::test]
async fn a_revoked_certificate_is_not_renewed() {
    let f = fixture().await;
    let view = issue(&f, &system(), "web.example.com")
        .await
        .expect("issue");
    let serial = view.record.serial.clone();
    let renewed = f
        .auth
        .renew(&system(), None, &serial, None, Some(5), None)
        .await
        .expect("renew while valid");
    assert_eq!(
        renewed.record.renewed_from.as_deref(),
        Some(serial.as_str())
    );
    f.auth
        .revoke(&system(), None, &serial, RevocationReason::KeyCompromise)
        .await
        .expect("revoke");
    let e = f
        .auth
        .renew(&system(), None, &serial, None, Some(5), None)
        .await
        .expect_err("renewed a revoked certificate");
    assert_eq!(e.code, ErrorCode::InvalidState);
}

#[tokio::test]
async fn each_state_change_leaves_exactly_one_audit_entry() {
    let f = fixture().await;
    // The fixture's two CAs: one entry each.
    let start = f.audit();
    let actions: Vec<&str> = start.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "InternalCreateCertificateAuthority",
            "InternalCreateCertificateAuthority"
        ]
    );
    assert!(start.iter().all(|e| e.unix == T0));

    let t = T0 + DAY;
    f.set_time(t);
    let mut expect = start.len();
    let mut step = |what: &str, action: &str, target: &str| {
        let entries = f.audit();
        expect += 1;
        assert_eq!(entries.len(), expect, "{what}: one entry");
        let last = entries.last().expect("entry");
        assert_eq!(last.action, action, "{what}");
        assert_eq!(last.target, target, "{what}");
        assert_eq!(last.identity.subject, "unit test", "{what}");
        assert_eq!(last.unix, t, "{what}: dated by the authority's clock");
    };

    let view = issue(&f, &system(), "web.example.com")
        .await
        .expect("issue");
    let target = format!("{}/{}", f.sub.id, view.record.serial);
    step("issue", "InternalIssueCertificate", &target);

    f.auth
        .revoke(
            &system(),
            None,
            &view.record.serial,
            RevocationReason::Superseded,
        )
        .await
        .expect("revoke");
    step("revoke", "InternalRevokeCertificate", &target);

    f.auth
        .update_ca_status(&system(), &f.sub.id, "DISABLED")
        .await
        .expect("disable");
    step("disable", "InternalUpdateCertificateAuthority", &f.sub.id);

    f.auth
        .update_ca_status(&system(), &f.sub.id, "ACTIVE")
        .await
        .expect("enable");
    step("enable", "InternalUpdateCertificateAuthority", &f.sub.id);

    f.auth
        .set_alias(&system(), "issuing", &f.sub.id)
        .await
        .expect("alias");
    step("alias", "InternalPutAlias", "issuing");

    let (retired, new) = f
        .auth
        .rotate_alias(&system(), "issuing")
        .await
        .expect("rotate");
    step("rotate", "InternalRotateAlias", "issuing");
    assert_eq!(retired.id, f.sub.id);
    assert_eq!(new.not_before, Some(t - 300));

    // Refusals and reads change nothing and, outside an API call, leave no entry.
    let before = f.audit().len();
    let e = issue(&f, &alice(), "web.example.com")
        .await
        .expect_err("refused");
    assert_eq!(e.code, ErrorCode::PolicyDenied);
    let e = f
        .auth
        .update_ca_status(&system(), &f.sub.id, "ACTIVE")
        .await
        .expect_err("a retired CA stays retired");
    assert_eq!(e.code, ErrorCode::Conflict);
    f.auth
        .get_certificate(&system(), None, &view.record.serial)
        .expect("get");
    assert_eq!(f.audit().len(), before);
}

#[tokio::test]
async fn decisions_inside_an_api_call_are_recorded_for_its_audit_entry() {
    let f = fixture().await;
    let call = crate::audit::Decisions {
        action: "ListPolicies".into(),
        ..Default::default()
    };
    let (out, d) = crate::audit::with_call(call, async { f.auth.list_policies(&alice()) }).await;
    assert_eq!(
        out.expect_err("listed without a grant").code,
        ErrorCode::PolicyDenied
    );
    let outcome = d.outcome.expect("a decision");
    assert_eq!(outcome.decision, "denied");
    assert!(!d.audited, "a refusal commits nothing");

    // List filtering records one allowed decision saying what was listed.
    let call = crate::audit::Decisions::default();
    let (out, d) =
        crate::audit::with_call(call, async { f.auth.list_readable_cas(&alice()) }).await;
    assert!(out.expect("list").is_empty());
    let outcome = d.outcome.expect("a decision");
    assert_eq!(outcome.decision, "allowed");
    assert_eq!(outcome.reason, "listed the 0 CA(s) this identity may read");
}

mod following_the_store;
