//! Unit tests of [`super`].

use super::evaluation::{glob, name_matches, principal_matches};
use super::*;

fn caller(subject: &str, dns: &str, fp: &str) -> Caller {
    Caller {
        subject: subject.into(),
        // Typed, as the server records a client certificate's SANs.
        sans: vec![format!("DNS:{dns}")],
        fingerprint: fp.into(),
    }
}

fn allow(
    id: &str,
    principal: Principal,
    actions: &[Action],
    cas: &[&str],
    conditions: Conditions,
) -> Statement {
    Statement {
        id: id.into(),
        effect: Effect::Allow,
        principals: vec![principal],
        actions: actions.to_vec(),
        cas: cas.iter().map(|s| s.to_string()).collect(),
        conditions,
    }
}

#[test]
fn glob_and_names() {
    assert!(glob("CN=web-*,O=Example", "CN=web-01,O=Example"));
    assert!(!glob("CN=web-*,O=Example", "CN=db-01,O=Example"));
    assert!(glob("*", ""));
    let dns = |d: &str| SanEntry::Dns(d.into());
    assert!(name_matches(
        "*.svc.example.internal",
        &dns("a.svc.example.internal")
    ));
    assert!(!name_matches(
        "*.svc.example.internal",
        &dns("a.b.svc.example.internal")
    ));
    assert!(!name_matches(
        "*.svc.example.internal",
        &dns("svc.example.internal")
    ));
    assert!(name_matches(
        "*.svc.example.internal",
        &dns("*.svc.example.internal")
    ));
    assert!(name_matches(
        "api.example.internal",
        &dns("API.example.internal")
    ));
    let email = |e: &str| SanEntry::Email(e.into());
    assert!(name_matches(
        "alice@example.internal",
        &email("alice@example.internal")
    ));
    assert!(name_matches(
        "*@example.internal",
        &email("bob@example.internal")
    ));
    // A DNS pattern grants no email names, and an email pattern no DNS names.
    assert!(!name_matches(
        "*.example.internal",
        &email("anyone@host.example.internal")
    ));
    assert!(!name_matches(
        "alice@example.internal",
        &dns("example.internal")
    ));
}

fn subject(rfc4514: &str) -> RequestedSubject {
    if rfc4514.is_empty() {
        return RequestedSubject::from_name(&Default::default());
    }
    let name = crate::names::parse_subject(rfc4514).expect("subject parses");
    RequestedSubject::from_name(&name)
}

#[test]
fn name_limited_grants_limit_the_subject_too() {
    let issuer = caller("CN=deployer", "deployer.example.internal", &"b".repeat(64));
    let limited = [allow(
        "svc",
        Principal::Anyone,
        &[Action::Issue],
        &["*"],
        Conditions {
            name_patterns: vec!["*.svc.example.internal".into()],
            ..Default::default()
        },
    )];
    let names = [SanEntry::Dns("web.svc.example.internal".into())];
    let decide = |statements: &[Statement], subj: &RequestedSubject| {
        let req = Request {
            ca: "ca-1",
            names: &names,
            subject: Some(subj),
            ..Default::default()
        };
        evaluate(statements, &issuer, Action::Issue, &req)
    };
    // Allowed: no subject, or a lone CN that is a requested name.
    assert!(decide(&limited, &subject("")).allowed);
    assert!(decide(&limited, &subject("CN=WEB.svc.example.internal")).allowed);
    // Refused: a subject another principal could be matched on.
    for forged in [
        "CN=admin",
        "CN=admin,O=ca-server administrators",
        "CN=web.svc.example.internal,O=ca-server administrators",
        "CN=other.svc.example.internal",
    ] {
        let d = decide(&limited, &subject(forged));
        assert!(!d.allowed, "{forged} was allowed");
        assert!(d.reason.contains("subject"), "{}", d.reason);
    }
    // subject_patterns widen it, exactly as far as they say.
    let patterned = [allow(
        "batch",
        Principal::Anyone,
        &[Action::Issue],
        &["*"],
        Conditions {
            name_patterns: vec!["*.svc.example.internal".into()],
            subject_patterns: vec!["CN=*,OU=batch,O=Example".into()],
            ..Default::default()
        },
    )];
    assert!(decide(&patterned, &subject("CN=job-7,OU=batch,O=Example")).allowed);
    // `*` stays inside one value: no extra attributes, no multi-valued RDN.
    assert!(!decide(&patterned, &subject("CN=m,OU=ops,OU=batch,O=Example")).allowed);
    assert!(!decide(&patterned, &subject("CN=m+OU=ops,OU=batch,O=Example")).allowed);
    // The patterns add to the default, they do not replace it.
    assert!(decide(&patterned, &subject("")).allowed);
    assert!(decide(&patterned, &subject("CN=web.svc.example.internal")).allowed);
    assert!(!decide(&patterned, &subject("CN=job-7,OU=ops,O=Example")).allowed);
    assert!(!decide(&patterned, &subject("CN=admin")).allowed);
    // A grant without name limits keeps allowing any subject.
    let open = [allow(
        "any",
        Principal::Anyone,
        &[Action::Issue],
        &["*"],
        Conditions::default(),
    )];
    assert!(decide(&open, &subject("CN=admin,O=Example")).allowed);
    // A deny naming subjects covers exactly those.
    let mut deny = allow(
        "no-admins",
        Principal::Anyone,
        &[Action::Issue],
        &["*"],
        Conditions {
            subject_patterns: vec!["*O=ca-server administrators*".into()],
            ..Default::default()
        },
    );
    deny.effect = Effect::Deny;
    let with_deny = [deny, open[0].clone()];
    assert!(!decide(&with_deny, &subject("CN=x,O=ca-server administrators")).allowed);
    assert!(decide(&with_deny, &subject("CN=x,O=Example")).allowed);
}

#[test]
fn deny_by_default_and_explicit_deny_wins() {
    let web = caller(
        "CN=web-01,O=Example",
        "web-01.svc.example.internal",
        &"a".repeat(64),
    );
    let names = [SanEntry::Dns("web-01.svc.example.internal".into())];
    let req = Request {
        ca: "ca-1",
        names: &names,
        profile: Some("tls-server"),
        validity_days: Some(30),
        ..Default::default()
    };
    assert!(!evaluate(&[], &web, Action::Issue, &req).allowed);
    let conditions = Conditions {
        name_patterns: vec!["*.svc.example.internal".into()],
        profiles: vec!["tls-server".into()],
        max_validity_days: Some(90),
        ..Default::default()
    };
    let grant = allow(
        "web-issue",
        Principal::Subject("CN=web-*,O=Example".into()),
        &[Action::Issue],
        &["ca-1"],
        conditions,
    );
    let d = evaluate(std::slice::from_ref(&grant), &web, Action::Issue, &req);
    assert!(
        d.allowed && d.statement.as_deref() == Some("web-issue"),
        "{d:?}"
    );
    // Other CA, other action, too long, wrong name: refused with a reason.
    assert!(
        !evaluate(
            std::slice::from_ref(&grant),
            &web,
            Action::Issue,
            &Request {
                ca: "ca-2",
                ..req.clone()
            }
        )
        .allowed
    );
    assert!(!evaluate(std::slice::from_ref(&grant), &web, Action::Revoke, &req).allowed);
    let long = evaluate(
        std::slice::from_ref(&grant),
        &web,
        Action::Issue,
        &Request {
            validity_days: Some(91),
            ..req.clone()
        },
    );
    assert!(!long.allowed && long.reason.contains("exceeds"), "{long:?}");
    let other = [SanEntry::Dns("db.example.internal".into())];
    assert!(
        !evaluate(
            std::slice::from_ref(&grant),
            &web,
            Action::Issue,
            &Request {
                names: &other,
                ..req.clone()
            }
        )
        .allowed
    );
    let mut deny = allow(
        "no-web",
        Principal::Dns("*.svc.example.internal".into()),
        &[Action::Issue],
        &["*"],
        Conditions::default(),
    );
    deny.effect = Effect::Deny;
    let d = evaluate(&[grant, deny], &web, Action::Issue, &req);
    assert!(
        !d.allowed && d.statement.as_deref() == Some("no-web"),
        "{d:?}"
    );
}

#[test]
fn a_narrowed_deny_cannot_be_bypassed_by_adding_names() {
    let c = caller("CN=svc", "svc.example.internal", &"e".repeat(64));
    let grant = allow(
        "broad",
        Principal::Anyone,
        &[Action::Issue],
        &["*"],
        Conditions::default(),
    );
    let mut deny = allow(
        "no-secret",
        Principal::Anyone,
        &[Action::Issue],
        &["*"],
        Conditions {
            name_patterns: vec!["secret.internal".into()],
            ..Default::default()
        },
    );
    deny.effect = Effect::Deny;
    let names = [
        SanEntry::Dns("secret.internal".into()),
        SanEntry::Dns("x.dev.internal".into()),
    ];
    let req = Request {
        ca: "ca-1",
        names: &names,
        ..Default::default()
    };
    let d = evaluate(&[grant.clone(), deny], &c, Action::Issue, &req);
    assert!(
        !d.allowed && d.statement.as_deref() == Some("no-secret"),
        "{d:?}"
    );
    // A deny of long certificates denies long ones, not short ones.
    let mut long = allow(
        "no-long",
        Principal::Anyone,
        &[Action::Issue],
        &["*"],
        Conditions {
            max_validity_days: Some(30),
            ..Default::default()
        },
    );
    long.effect = Effect::Deny;
    let short = Request {
        ca: "ca-1",
        validity_days: Some(7),
        ..Default::default()
    };
    assert!(evaluate(&[grant.clone(), long.clone()], &c, Action::Issue, &short).allowed);
    let year = Request {
        ca: "ca-1",
        validity_days: Some(365),
        ..Default::default()
    };
    assert!(!evaluate(&[grant, long], &c, Action::Issue, &year).allowed);
}

#[test]
fn revoke_own_versus_any_and_fingerprint_pinning() {
    let fp = "b".repeat(64);
    let ops = caller("CN=ops", "ops.example.internal", &fp);
    let own = allow(
        "revoke-own",
        Principal::Fingerprint(fp.clone()),
        &[Action::Revoke],
        &["*"],
        Conditions::default(),
    );
    let mine = Request {
        ca: "ca-1",
        owner_fingerprint: Some(&fp),
        ..Default::default()
    };
    let other_fp = "c".repeat(64);
    let theirs = Request {
        ca: "ca-1",
        owner_fingerprint: Some(&other_fp),
        ..Default::default()
    };
    assert!(evaluate(std::slice::from_ref(&own), &ops, Action::Revoke, &mine).allowed);
    assert!(!evaluate(std::slice::from_ref(&own), &ops, Action::Revoke, &theirs).allowed);
    let any = allow(
        "revoke-any",
        Principal::Fingerprint(fp.clone()),
        &[Action::Revoke],
        &["*"],
        Conditions {
            revoke_scope: RevokeScope::Any,
            ..Default::default()
        },
    );
    assert!(evaluate(&[any], &ops, Action::Revoke, &theirs).allowed);
    let impostor = caller("CN=ops", "ops.example.internal", &other_fp);
    assert!(!evaluate(&[own], &impostor, Action::Revoke, &mine).allowed);
}

#[test]
fn ip_ranges_and_validation() {
    let c = caller("CN=lb", "lb.example.internal", &"d".repeat(64));
    let grant = allow(
        "lb",
        Principal::Anyone,
        &[Action::Issue],
        &["issuing"],
        Conditions {
            ip_ranges: vec!["10.0.0.0/8".parse().unwrap()],
            ..Default::default()
        },
    );
    let inside = [SanEntry::Ip("10.1.2.3".parse().unwrap())];
    let outside = [SanEntry::Ip("192.0.2.1".parse().unwrap())];
    let issuing = ["issuing".to_string()];
    let by_alias = Request {
        ca: "ca-9",
        ca_aliases: &issuing,
        names: &inside,
        ..Default::default()
    };
    assert!(evaluate(std::slice::from_ref(&grant), &c, Action::Issue, &by_alias).allowed);
    assert!(
        !evaluate(
            std::slice::from_ref(&grant),
            &c,
            Action::Issue,
            &Request {
                names: &outside,
                ..by_alias.clone()
            }
        )
        .allowed
    );
    // An IP-only grant does not allow DNS names.
    let dns = [SanEntry::Dns("lb.example.internal".into())];
    assert!(
        !evaluate(
            std::slice::from_ref(&grant),
            &c,
            Action::Issue,
            &Request {
                names: &dns,
                ..by_alias
            }
        )
        .allowed
    );
    assert!(grant.validate().is_ok());
    let mut bad = grant.clone();
    bad.id = "bad id!".into();
    assert!(bad.validate().is_err());
    let mut bad = grant;
    bad.conditions.name_patterns = vec!["**bad".into()];
    assert!(bad.validate().is_err());
}

fn deny(id: &str, cas: &[&str], conditions: Conditions) -> Statement {
    Statement {
        effect: Effect::Deny,
        ..allow(id, Principal::Anyone, &[Action::Issue], cas, conditions)
    }
}

fn issue_any() -> Statement {
    allow(
        "all",
        Principal::Anyone,
        &[Action::Issue],
        &["*"],
        Conditions::default(),
    )
}

fn denied(statements: &[Statement], req: &Request<'_>) -> bool {
    let c = caller("CN=svc", "svc.example", &"e".repeat(64));
    !evaluate(statements, &c, Action::Issue, req).allowed
}

#[test]
fn a_deny_on_an_alias_holds_for_the_ca_id_and_the_reverse() {
    let names = [SanEntry::Dns("ok.example".into())];
    let aliases = ["issuing".to_string()];
    let by_alias_name = [
        deny("no-issuing", &["issuing"], Conditions::default()),
        issue_any(),
    ];
    // Named by id: the alias still points at it, so the deny holds.
    let by_id = Request {
        ca: "ca-1",
        ca_aliases: &aliases,
        names: &names,
        ..Default::default()
    };
    assert!(denied(&by_alias_name, &by_id));
    // A deny on the id holds when the CA is reached through its alias.
    let by_id_name = [
        deny("no-ca-1", &["ca-1"], Conditions::default()),
        issue_any(),
    ];
    assert!(denied(&by_id_name, &by_id));
    // Another CA, which no alias names, is not covered.
    let other = Request {
        ca: "ca-2",
        names: &names,
        ..Default::default()
    };
    assert!(!denied(&by_alias_name, &other));
}

/// A deny on these name patterns (any CA), over an allow-everything grant.
fn deny_names(patterns: &[&str]) -> [Statement; 2] {
    let conditions = Conditions {
        name_patterns: patterns.iter().map(|p| p.to_string()).collect(),
        ..Default::default()
    };
    [deny("names", &["*"], conditions), issue_any()]
}

/// Whether `statements` refuse issuing `name` (and `subject`, if given).
fn refuses(statements: &[Statement], name: &str, subject: Option<&RequestedSubject>) -> bool {
    let names = [SanEntry::Dns(name.into())];
    let req = Request {
        ca: "ca-1",
        names: &names,
        subject,
        ..Default::default()
    };
    denied(statements, &req)
}

#[test]
fn a_wildcard_deny_covers_the_apex_and_every_depth() {
    let statements = deny_names(&["*.secret.example"]);
    for name in [
        "secret.example",
        "a.secret.example",
        "a.b.secret.example",
        "*.secret.example",
        "*.a.secret.example",
        "*.example",
        "A.SECRET.EXAMPLE",
    ] {
        assert!(
            refuses(&statements, name, None),
            "{name} slipped past the deny"
        );
    }
    for name in ["notsecret.example", "secret.example.org", "*.other.example"] {
        assert!(!refuses(&statements, name, None), "{name} was denied");
    }
    // An exact deny covers a requested wildcard that would certify it.
    assert!(refuses(&deny_names(&["evil.example"]), "*.example", None));
}

#[test]
fn a_deny_on_names_covers_the_subject_common_name() {
    let subject = RequestedSubject::from_name(
        &crate::names::parse_subject("CN=evil.example,O=Example").unwrap(),
    );
    let statements = deny_names(&["evil.example"]);
    assert!(refuses(&statements, "ok.example", Some(&subject)));
    assert!(!refuses(&statements, "ok.example", None));
}

#[test]
fn typed_san_principals_match_their_own_type_one_label_deep() {
    let with = |sans: &[&str]| Caller {
        subject: "CN=x".into(),
        sans: sans.iter().map(|s| s.to_string()).collect(),
        fingerprint: "f".repeat(64),
    };
    let dns = Principal::Dns("*.svc.example".into());
    assert!(principal_matches(&dns, &with(&["DNS:web.svc.example"])));
    assert!(principal_matches(&dns, &with(&["DNS:WEB.svc.example"])));
    // Not two labels deep, not the apex, not another SAN type.
    assert!(!principal_matches(&dns, &with(&["DNS:a.web.svc.example"])));
    assert!(!principal_matches(&dns, &with(&["DNS:svc.example"])));
    assert!(!principal_matches(&dns, &with(&["email:a@b.svc.example"])));
    assert!(!principal_matches(
        &dns,
        &with(&["URI:https://web.svc.example"])
    ));
    let email = Principal::Email("*@ops.example".into());
    assert!(principal_matches(
        &email,
        &with(&["email:alice@ops.example"])
    ));
    assert!(!principal_matches(&email, &with(&["DNS:ops.example"])));
    let ip = Principal::Ip("10.0.0.0/8".parse().unwrap());
    assert!(principal_matches(&ip, &with(&["IP:10.1.2.3"])));
    assert!(!principal_matches(
        &ip,
        &with(&["IP:192.0.2.1", "DNS:10.1.2.3"])
    ));
    let uri = Principal::Uri("spiffe://example/ns/web/*".into());
    assert!(principal_matches(
        &uri,
        &with(&["URI:spiffe://example/ns/web/api"])
    ));
    assert!(!principal_matches(
        &uri,
        &with(&["URI:spiffe://example/ns/db/api"])
    ));
    let exact = Principal::Uri("spiffe://example/ns/web/api".into());
    assert!(principal_matches(
        &exact,
        &with(&["URI:spiffe://example/ns/web/api"])
    ));
    assert!(!principal_matches(
        &exact,
        &with(&["URI:spiffe://example/ns/web/api2"])
    ));
}

#[test]
fn typed_principals_are_validated_when_put() {
    let statement = |p: Principal| allow("s", p, &[Action::Read], &["*"], Conditions::default());
    for good in [
        Principal::Dns("host.example".into()),
        Principal::Dns("*.svc.example".into()),
        Principal::Email("*@ops.example".into()),
        Principal::Uri("spiffe://example/ns/*".into()),
    ] {
        assert!(statement(good.clone()).validate().is_ok(), "{good:?}");
    }
    for bad in [
        Principal::Dns("*.*.example".into()),
        Principal::Dns("web-*.example".into()),
        Principal::Dns("".into()),
        Principal::Email("a*@ops.example".into()),
        Principal::Email("ops.example".into()),
        Principal::Uri("no-scheme/*".into()),
        Principal::Uri("spiffe://a/*/b".into()),
    ] {
        assert!(statement(bad.clone()).validate().is_err(), "{bad:?}");
    }
}
