//! The watcher never goes blind quietly: a store that keeps failing is
//! announced on every channel once it has failed for the bound, repeated at
//! most once per interval, and cleared with an all-clear; on the manual
//! clock, through the real monitor.

use std::sync::Arc;
use std::time::Duration;

use iamalive_core::conformance::{at, host, monitor};
use iamalive_core::testing::{RecordingNotifier, StallingStore};
use iamalive_core::{
    HealthOptions, Heartbeat, ManualClock, MemoryStore, NoticeKind, Status, Store,
};

#[tokio::test]
async fn a_failing_store_is_announced_repeated_and_cleared() {
    let store = Arc::new(StallingStore::new(MemoryStore::new()));
    let clock = ManualClock::new(at(0));
    let ops = RecordingNotifier::new("ops");
    let chat = RecordingNotifier::new("chat");
    let mut m = monitor(
        store.clone() as Arc<dyn Store>,
        &clock,
        vec![Arc::new(ops.clone()), Arc::new(chat.clone())],
        "m",
    );
    // The test options reach the health tracker only through `new`; build
    // again with the bound and interval the test wants.
    m.options_mut().ingest_in_process = true;
    m.options_mut().downtime_gap = None;
    m.options_mut().health = HealthOptions {
        store_fault_after: Duration::from_secs(30),
        reminder_interval: Duration::from_secs(600),
    };
    let opts = m.options().clone();
    let m = iamalive_core::Monitor::new(
        store.clone() as Arc<dyn Store>,
        vec![Arc::new(ops.clone()), Arc::new(chat.clone())],
        clock.clone(),
        m.policies().clone(),
        opts,
    );
    let h = host("db-1");
    m.heartbeat(&Heartbeat::new(h.clone(), at(0)))
        .await
        .expect("hb");
    let _ = m.sweep().await.expect("a first sweep marks the store");

    store.set_failing(true);
    for s in [1, 10, 29] {
        clock.set(at(s));
        assert!(m.sweep().await.is_err());
        assert!(
            m.heartbeat(&Heartbeat::new(h.clone(), at(s)))
                .await
                .is_err(),
            "the heartbeat is refused too"
        );
    }
    assert!(ops.notices().is_empty(), "a blip under 30 s says nothing");
    assert!(m.health().store.is_some());

    clock.set(at(31));
    assert!(m.sweep().await.is_err());
    for ch in [&ops, &chat] {
        let n = ch.notices();
        assert_eq!(n.len(), 1, "every channel hears it once");
        assert_eq!(n[0].kind, NoticeKind::Degraded);
        let text = n[0].message.clone().unwrap_or_default();
        assert!(text.contains("disk is full"), "says why: {text}");
    }
    for s in [40, 300, 630] {
        clock.set(at(s));
        assert!(m.sweep().await.is_err());
    }
    assert_eq!(ops.count(NoticeKind::Degraded), 1, "throttled");
    clock.set(at(631));
    assert!(m.sweep().await.is_err());
    assert_eq!(
        ops.count(NoticeKind::Degraded),
        2,
        "one reminder per interval"
    );

    store.set_failing(false);
    clock.set(at(640));
    let _ = m.sweep().await.expect("the store is back");
    for ch in [&ops, &chat] {
        assert_eq!(ch.count(NoticeKind::Restored), 1, "its all-clear");
    }
    assert!(!m.health().degraded());
    // db-1 was silent through the fault: the store outage is downtime it
    // gets back (its beats were refused), so no alarm fires at once.
    assert_eq!(ops.count(NoticeKind::Alarm), 0);
    let rec = store.get(&h).await.unwrap().unwrap();
    assert_eq!(rec.status, Status::Up);
}

#[tokio::test]
async fn heartbeat_with_creates_only_when_asked_and_announce_is_delivered_by_the_sweep() {
    use iamalive_core::HeartbeatOutcome;
    use iamalive_core::health::{Announcement, watcher_notice};
    let store = Arc::new(MemoryStore::new());
    let clock = ManualClock::new(at(0));
    let ops = RecordingNotifier::new("ops");
    let chat = RecordingNotifier::new("chat");
    let m = monitor(
        store.clone() as Arc<dyn Store>,
        &clock,
        vec![Arc::new(ops.clone()), Arc::new(chat.clone())],
        "m",
    );
    assert!(m.options().auto_register);
    let h = host("new-1");
    let hb = Heartbeat::new(h.clone(), at(0));
    // Auto-registration is on, but the caller did not ask to create.
    assert_eq!(
        m.heartbeat_with(&hb, false).await.unwrap(),
        HeartbeatOutcome::Unknown
    );
    assert!(store.get(&h).await.unwrap().is_none(), "nothing written");
    assert_eq!(
        m.heartbeat_with(&hb, true).await.unwrap(),
        HeartbeatOutcome::Created
    );
    assert!(matches!(
        m.heartbeat_with(&hb, false).await.unwrap(),
        HeartbeatOutcome::Updated { .. }
    ));

    let notice = watcher_notice(
        NoticeKind::Degraded,
        "watcher/cap@0",
        1,
        at(0),
        at(0),
        "a cap was hit".into(),
    );
    m.announce(Announcement {
        notice,
        except: Some("chat".into()),
    });
    assert!(ops.notices().is_empty(), "queued, not sent");
    let _ = m.sweep().await.unwrap();
    let got = ops.notices();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].message.as_deref(), Some("a cap was hit"));
    assert!(
        chat.notices().is_empty(),
        "the excepted channel is left out"
    );
    let _ = m.sweep().await.unwrap();
    assert_eq!(ops.notices().len(), 1, "delivered once");
}
