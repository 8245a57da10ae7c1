//! Event cases: events made from audit entries, and the outbox (numbers, marks, webhooks).

use ca_core::audit_chain::AuditedCertificate;

use super::*;

fn mark(name: &str, expect: Option<u64>, set: u64) -> MarkAdvance {
    MarkAdvance {
        name: name.into(),
        expect,
        set,
    }
}

/// The projector's events: an issuance's event, made from its audit entry,
/// reads back as it was made (a store may keep it as the entry's number),
/// also after a restart and beside an event that was altered.
pub(super) async fn events_made_from_audit_entries_read_back_as_made(b: &dyn Backend, dir: &Path) {
    let s = b.open(dir, "a");
    for serial in ["0a", "0b"] {
        let mut d = draft("IssueCertificate", &format!("{CA1}/{serial}"));
        d.certificate = Some(AuditedCertificate {
            serial: serial.into(),
            sans: vec!["DNS:a.example".into()],
            not_after: "2027-01-01T00:00:00Z".into(),
            tbs_sha256: "ab".repeat(32),
        });
        issue_with(s.as_ref(), CA1, serial, b"der".to_vec(), d).await;
    }
    let (entries, _) = s
        .audit_page(&AuditFilter {
            limit: 10,
            ..Default::default()
        })
        .expect("audit");
    let made: Vec<EventRecord> = entries
        .iter()
        .filter_map(|e| issuance_event(e, format!("evt-{:032x}", e.seq)))
        .collect();
    assert_eq!(made.len(), 2, "{entries:?}");
    assert!(made.iter().all(|e| e.audit_seq.is_some()));
    // The second is altered after it was made: it no longer is its entry's
    // event, and must read back altered, not as the entry says.
    let mut events = made.clone();
    events[1].detail.sans.push("DNS:extra.example".into());
    s.append_events(events.clone(), mark("audit", None, 2), None)
        .await
        .expect("append");
    let want: Vec<EventRecord> = events
        .into_iter()
        .enumerate()
        .map(|(i, mut e)| {
            e.seq = i as u64 + 1;
            e.audit_seq = None;
            e
        })
        .collect();
    assert_eq!(s.events_after(0, 10).expect("events"), want);
    s.close();
    let s = b.open(dir, "b");
    assert_eq!(s.events_after(0, 10).expect("events"), want);
}

pub(super) async fn the_outbox_numbers_events_moves_marks_once_and_tracks_webhooks(
    b: &dyn Backend,
    dir: &Path,
) {
    let s = b.open(dir, "a");
    // A webhook made before any event starts at 0.
    let mut hook = WebhookRecord {
        id: "wh-0000000000000001".into(),
        url: "https://example.com/hook".into(),
        secret: "s".repeat(32),
        event_types: vec![],
        created_at: 0,
        created_by: "CN=tester".into(),
        delivered_seq: 99,
    };
    let stored = s
        .create_webhook(hook.clone(), draft("CreateWebhook", &hook.id))
        .await
        .expect("webhook");
    assert_eq!(
        stored.delivered_seq, 0,
        "a new webhook starts at the newest event"
    );
    assert!(matches!(
        s.create_webhook(hook.clone(), draft("CreateWebhook", &hook.id))
            .await,
        Err(StoreError::Conflict(_))
    ));

    let last = s
        .append_events(
            vec![event(100, "A"), event(200, "B")],
            mark("audit", None, 7),
            None,
        )
        .await
        .expect("append");
    assert_eq!(last, 2);
    assert_eq!(s.event_mark("audit").expect("mark"), Some(7));
    // A second producer that read the mark before it moved writes nothing.
    assert!(matches!(
        s.append_events(vec![event(300, "C")], mark("audit", None, 9), None)
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(s.events_after(0, 10).expect("events").len(), 2);

    // Pruning drops the old prefix; numbers never come round again.
    s.append_events(vec![event(300, "C")], mark("audit", Some(7), 8), Some(250))
        .await
        .expect("append and prune");
    let left = s.events_after(0, 10).expect("events");
    assert_eq!(
        left.iter()
            .map(|e| (e.seq, e.event_type.as_str()))
            .collect::<Vec<_>>(),
        vec![(3, "C")]
    );
    assert_eq!(s.events_after(3, 10).expect("events"), vec![]);

    // A webhook made now starts after event 3; delivery never moves back.
    hook.id = "wh-0000000000000002".into();
    let second = s
        .create_webhook(hook.clone(), draft("CreateWebhook", &hook.id))
        .await
        .expect("webhook");
    assert_eq!(second.delivered_seq, 3);
    s.webhook_delivered("wh-0000000000000001", 2)
        .await
        .expect("delivered");
    s.webhook_delivered("wh-0000000000000001", 1)
        .await
        .expect("delivered");
    s.close();
    let s = b.open(dir, "b");
    let hooks = s.list_webhooks().expect("hooks");
    assert_eq!(hooks.len(), 2);
    assert_eq!(
        hooks[0].delivered_seq, 2,
        "progress survives a restart and never moves back"
    );
    assert_eq!(s.event_mark("audit").expect("mark"), Some(8));
    assert!(s
        .delete_webhook(
            "wh-0000000000000001",
            draft("DeleteWebhook", "wh-0000000000000001")
        )
        .await
        .expect("delete"));
    assert!(matches!(
        s.webhook_delivered("wh-0000000000000001", 3).await,
        Err(StoreError::NotFound(_))
    ));
    let actions: Vec<String> = audit_actions(s.as_ref())
        .into_iter()
        .map(|(a, _)| a)
        .collect();
    assert_eq!(actions, ["CreateWebhook", "CreateWebhook", "DeleteWebhook"]);
    s.close();
}
