//! Events projected from the audit trail, committed without a sync of
//! their own (`Store::append_projected_events`).

use super::*;

/// What a start after a crash now would find: the mark and the events.
fn after_a_crash(dir: &std::path::Path) -> (Option<u64>, Vec<EventRecord>) {
    let image = crash_image(dir);
    let s = redb::RedbStore::open(image.path(), "crash".into()).expect("the crash image opens");
    let found = (
        s.event_mark("audit").expect("mark"),
        s.events_after(0, 10).expect("events"),
    );
    s.close();
    found
}

/// Projected events are answered (and read) before they are durable. A
/// crash then takes them together with the mark that moved with them, so
/// the projector makes them again from that mark; the next durable commit
/// makes them durable with their mark.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redb_projected_events_are_lost_only_with_their_mark() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s: Arc<dyn Store> = Arc::new(redb::RedbStore::open(dir.path(), "a".into()).expect("open"));
    let mark = |expect, set| MarkAdvance {
        name: "audit".into(),
        expect,
        set,
    };
    s.append_events(Vec::new(), mark(None, 1), None)
        .await
        .expect("the first mark, durable");
    assert_eq!(after_a_crash(dir.path()), (Some(1), Vec::new()));

    let last = s
        .append_projected_events(vec![event(100, "A"), event(200, "B")], mark(Some(1), 3))
        .await
        .expect("projected");
    assert_eq!(last, 2);
    let read: Vec<String> = s
        .events_after(0, 10)
        .expect("events")
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(read, ["evt-100-A", "evt-200-B"], "readable at once");
    assert_eq!(s.event_mark("audit").expect("mark"), Some(3));
    assert_eq!(
        after_a_crash(dir.path()),
        (Some(1), Vec::new()),
        "a crash now takes the events and their mark together"
    );

    s.put_policy("p", b"{}".to_vec(), draft("PutPolicy", "p"))
        .await
        .expect("a durable commit");
    let (found_mark, found) = after_a_crash(dir.path());
    assert_eq!(found_mark, Some(3), "durable with the next durable commit");
    let ids: Vec<String> = found.into_iter().map(|e| e.id).collect();
    assert_eq!(ids, ["evt-100-A", "evt-200-B"]);
}
