//! The watcher never goes blind quietly: a store that keeps failing is
//! announced on every channel once it has failed for the bound, repeated at
//! most once per interval, and cleared with an all-clear; on the manual
//! clock, through the real monitor.

use std::sync::Arc;
use std::time::Duration;

use iamalive_core::conformance::{at, host, monitor};
use iamalive_core::testing::{RecordingNotifier, StallingStore};
use iamalive_core::{
    Clock, HealthOptions, Heartbeat, ManualClock, MemoryStore, NoticeKind, Status, Store,
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
    )
    .expect("channel names are unique");
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
    // db-1 was silent through the fault: the store outage is downtime it
    // gets back (its beats were refused), so no alarm fires at once.
    assert_eq!(ops.count(NoticeKind::Alarm), 0);
    let rec = store.get(&h).await.unwrap().unwrap();
    assert_eq!(rec.status, Status::Up);
    // Over once it has worked for the bound (a success between failures
    // does not end a fault).
    assert_eq!(ops.count(NoticeKind::Restored), 0, "working for 0 s");
    clock.set(at(669));
    let _ = m.sweep().await.expect("the store works");
    assert_eq!(ops.count(NoticeKind::Restored), 0, "working for 29 s");
    clock.set(at(670));
    let _ = m.sweep().await.expect("the store works");
    for ch in [&ops, &chat] {
        assert_eq!(ch.count(NoticeKind::Restored), 1, "its all-clear");
    }
    assert!(!m.health().degraded());
}

/// A store whose check finds its data lost (a deleted file, a wiped Redis)
/// is announced on every channel at the next mark, without waiting out the
/// fault bound; the sweep goes on meanwhile (alarms still go out), a
/// successful heartbeat does not hide it, and the all-clear follows only a
/// passing check.
#[tokio::test]
async fn a_lost_store_is_announced_at_once_and_alarms_still_flow() {
    let store = Arc::new(StallingStore::new(MemoryStore::new()));
    let clock = ManualClock::new(at(0));
    let ops = RecordingNotifier::new("ops");
    let chat = RecordingNotifier::new("chat");
    let m = monitor(
        store.clone() as Arc<dyn Store>,
        &clock,
        vec![Arc::new(ops.clone()), Arc::new(chat.clone())],
        "m",
    );
    let mark = m
        .options()
        .mark_interval
        .expect("the test monitor marks every 2 s");
    let (quiet, busy) = (host("quiet-1"), host("busy-1"));
    for h in [&quiet, &busy] {
        m.heartbeat(&Heartbeat::new(h.clone(), at(0)))
            .await
            .expect("hb");
    }
    let _ = m.sweep().await.expect("first sweep");
    assert!(ops.notices().is_empty());

    store.set_lost(Some("the database file was deleted"));
    clock.set(at(0) + mark * 2);
    let _ = m.sweep().await.expect("a loss does not fail the sweep");
    for ch in [&ops, &chat] {
        let n = ch.notices();
        assert_eq!(n.len(), 1, "every channel hears it at once: {n:?}");
        assert_eq!(n[0].kind, NoticeKind::Degraded);
        let text = n[0].message.clone().unwrap_or_default();
        assert!(text.contains("database file was deleted"), "{text}");
    }
    let health = m.health();
    assert!(health.store_down(), "{health:?}");
    assert!(health.reasons()[0].contains("data lost"), "{health:?}");
    m.heartbeat(&Heartbeat::new(busy.clone(), clock.now()))
        .await
        .expect("heartbeats still land");
    assert!(m.health().store_down(), "a heartbeat does not clear a loss");

    // The quiet host goes silent: its alarm still goes out.
    let timeout = m.policies().timeout_for(&quiet);
    clock.set(at(0) + timeout + mark);
    m.heartbeat(&Heartbeat::new(busy.clone(), clock.now()))
        .await
        .expect("hb");
    let _ = m.sweep().await.expect("sweep");
    assert_eq!(ops.count(NoticeKind::Alarm), 1, "{:?}", ops.notices());
    assert_eq!(ops.count(NoticeKind::Degraded), 1, "throttled");
    assert_eq!(
        m.host(&quiet).await.unwrap().map(|r| r.status),
        Some(Status::Alarmed)
    );

    store.set_lost(None);
    clock.set(clock.now() + mark * 2);
    let _ = m.sweep().await.expect("sweep");
    assert_eq!(ops.count(NoticeKind::Restored), 1, "{:?}", ops.notices());
    assert!(!m.health().degraded());
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

/// A graceful stop marks the store when the ingest stops listening; the
/// sweep that goes on finishing its deliveries marks nothing after it, so
/// the next start's downtime begins at the stop, not at the end of the
/// slowest delivery.
#[tokio::test]
async fn the_stop_mark_is_not_moved_by_the_sweep_finishing_after_it() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let clock = ManualClock::new(at(0));
    let mut m = monitor(store.clone(), &clock, Vec::new(), "m");
    m.options_mut().ingest_in_process = true;
    m.options_mut().downtime_gap = None;
    m.heartbeat(&Heartbeat::new(host("web-1"), at(0)))
        .await
        .unwrap();
    for s in 0..=4 {
        clock.set(at(s));
        let _ = m.sweep().await.unwrap();
    }
    clock.set(at(5));
    m.mark_stopping().await;
    // The sweep still running (its marks are due every 2 s) at 9.
    clock.set(at(9));
    let _ = m.sweep().await.unwrap();
    m.mark_stopping().await;
    let mark = store.mark_run(at(12), Duration::ZERO).await.unwrap();
    assert_eq!(
        mark.downtime.map(|d| d.from),
        Some(at(5)),
        "nobody listened from the stop on"
    );
}

/// Fails the one write that would settle the first delivered alarm.
struct FailSettle(std::sync::atomic::AtomicBool);

#[async_trait::async_trait]
impl iamalive_core::testing::Hook for FailSettle {
    async fn before(
        &self,
        call: iamalive_core::testing::Call<'_>,
    ) -> Result<(), iamalive_core::StoreError> {
        if let iamalive_core::testing::Call::CompareAndSwap(next) = call
            && next.status == Status::Alarmed
            && self.0.swap(false, std::sync::atomic::Ordering::Relaxed)
        {
            return Err(iamalive_core::StoreError::unavailable(
                "test",
                "broken pipe",
            ));
        }
        Ok(())
    }
}

/// The channel took the alarm, then the store failed the write recording
/// it: the next round settles what the channel said, never delivers the
/// alarm a second time.
#[tokio::test]
async fn a_delivery_the_store_failed_to_record_is_not_delivered_again() {
    let memory: Arc<MemoryStore> = Arc::new(MemoryStore::new());
    let store: Arc<dyn Store> = Arc::new(iamalive_core::testing::Hooked::over(
        memory.clone(),
        FailSettle(std::sync::atomic::AtomicBool::new(true)),
    ));
    let clock = ManualClock::new(at(0));
    let ops = RecordingNotifier::new("ops");
    let m = monitor(store, &clock, vec![Arc::new(ops.clone())], "m");
    m.heartbeat(&Heartbeat::new(host("db-1"), at(0)))
        .await
        .unwrap();
    clock.set(at(10));
    let _ = m.sweep().await.unwrap();
    assert_eq!(ops.count(NoticeKind::Alarm), 1, "delivered once");
    assert_ne!(
        memory.get(&host("db-1")).await.unwrap().unwrap().status,
        Status::Alarmed,
        "the store did not record it"
    );
    // Past the lease: the round is settled from what the channel said.
    for s in [11, 41, 45] {
        clock.set(at(s));
        let _ = m.sweep().await.unwrap();
    }
    assert_eq!(ops.count(NoticeKind::Alarm), 1, "never delivered twice");
    let r = memory.get(&host("db-1")).await.unwrap().unwrap();
    assert_eq!(r.status, Status::Alarmed);
    assert_eq!(r.outbox, None);
}

/// A channel that is down: counts the watcher notices offered to it.
struct DownHook(Arc<std::sync::atomic::AtomicUsize>);

#[async_trait::async_trait]
impl iamalive_core::Notifier for DownHook {
    fn name(&self) -> &str {
        "hook"
    }
    async fn deliver(&self, n: &iamalive_core::Notice) -> Result<(), iamalive_core::NotifyError> {
        if n.id.starts_with("watcher/") {
            self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        Err(iamalive_core::NotifyError::transient("hook", "HTTP 500"))
    }
}

/// A watcher notice no channel takes is offered again after the host
/// notices' backoff, not at every sweep: a relay over its quota is not
/// hammered.
#[tokio::test]
async fn a_watcher_notice_nobody_takes_backs_off() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let clock = ManualClock::new(at(0));
    let mail = RecordingNotifier::new("mail");
    mail.set_refusing();
    let offered = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let m = monitor(
        store,
        &clock,
        vec![Arc::new(mail.clone()), Arc::new(DownHook(offered.clone()))],
        "m",
    );
    m.heartbeat(&Heartbeat::new(host("db-1"), at(0)))
        .await
        .unwrap();
    // mail refuses the alarm at 10 s: "mail refuses" goes to hook, which is
    // down. Sweeps every second for 40 s.
    for s in 10..=50 {
        clock.set(at(s));
        let _ = m.sweep().await.unwrap();
    }
    let n = offered.load(std::sync::atomic::Ordering::Relaxed);
    assert!(n >= 3, "offered again: {n}");
    assert!(
        n <= 10,
        "with backoff (1 s doubling to 8 s), not 40 times: {n}"
    );
}

/// A webhook that hangs until released, counting its calls.
struct HangingHook {
    calls: Arc<std::sync::atomic::AtomicUsize>,
    release: Arc<tokio::sync::Notify>,
}

#[async_trait::async_trait]
impl iamalive_core::Notifier for HangingHook {
    fn name(&self) -> &str {
        "hook"
    }
    async fn deliver(&self, _: &iamalive_core::Notice) -> Result<(), iamalive_core::NotifyError> {
        self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.release.notified().await;
        Ok(())
    }
}

/// A channel that hangs holds the sweep for the delivery wait (5 s on the
/// monitor's clock), not for its own timeout: the other channel has the
/// alarm at once, the sweep goes on, the hanging delivery is not started
/// again while it runs, and when it ends its answer settles the notice.
#[tokio::test]
async fn a_hanging_channel_holds_the_sweep_seconds_and_is_not_asked_twice() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let clock = ManualClock::new(at(0));
    let mail = RecordingNotifier::new("mail");
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let release = Arc::new(tokio::sync::Notify::new());
    let hook = HangingHook {
        calls: calls.clone(),
        release: release.clone(),
    };
    let m = Arc::new(monitor(
        store.clone(),
        &clock,
        vec![Arc::new(mail.clone()), Arc::new(hook)],
        "m",
    ));
    m.heartbeat(&Heartbeat::new(host("db-1"), at(0)))
        .await
        .unwrap();
    clock.set(at(10));
    let sweeping = tokio::spawn({
        let m = m.clone();
        async move { m.sweep().await }
    });
    // The sweep waits on the monitor's clock: mail has the alarm, the hook
    // hangs.
    for _ in 0..1_000 {
        if mail.count(NoticeKind::Alarm) == 1
            && calls.load(std::sync::atomic::Ordering::SeqCst) == 1
        {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert_eq!(mail.count(NoticeKind::Alarm), 1, "mail has it at once");
    assert!(!sweeping.is_finished(), "the sweep waits for the hook");
    clock.set(at(15));
    let report = tokio::time::timeout(Duration::from_secs(10), sweeping)
        .await
        .expect("the sweep stops waiting after 5 s on its clock")
        .unwrap()
        .unwrap();
    assert_eq!(report.failed_deliveries, 1, "{report:?}");
    // Rounds while the hook still runs do not ask it again.
    for s in [20, 30] {
        clock.set(at(s));
        let _ = m.sweep().await.unwrap();
    }
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
    // It ends: its answer settles the alarm at the next round.
    release.notify_waiters();
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
    clock.set(at(60));
    let _ = m.sweep().await.unwrap();
    assert_eq!(
        calls.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "never asked twice"
    );
    let r = store.get(&host("db-1")).await.unwrap().unwrap();
    assert_eq!(r.status, Status::Alarmed);
    assert_eq!(r.outbox, None, "settled: {:?}", r.outbox);
    assert_eq!(mail.count(NoticeKind::Alarm), 1, "mail not asked again");
}
