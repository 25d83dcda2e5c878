//! The runner against a manual clock: an outage gives exactly one alarm,
//! reminders are throttled, the recovery follows; a heartbeat wakes it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use iamalive_core::testing::RecordingNotifier;
use iamalive_core::{ManualClock, MemoryStore, NoticeKind, Notifier, Store};
use iamalive_server::{AppState, Config, Runner, router};
use tower::ServiceExt;

const KEY: &str = "runner-test-key-0123456789";

fn setup() -> (AppState, ManualClock, RecordingNotifier) {
    let config = Config::from_sources(
        None,
        [
            ("IAMALIVE_API_KEYS", KEY),
            ("IAMALIVE_TIMEOUT", "10s"),
            ("IAMALIVE_REMINDER_INTERVAL", "60s"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned())),
    )
    .unwrap();
    let clock = ManualClock::at_millis(1_700_000_000_000);
    let channel = RecordingNotifier::new("test");
    let channels: Vec<Arc<dyn Notifier>> = vec![Arc::new(channel.clone())];
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let state = AppState::new(store, channels, Arc::new(clock.clone()), &config)
        .expect("channel names are unique");
    (state, clock, channel)
}

async fn heartbeat(state: &AppState, host: &str) {
    let req = Request::post("/v1/heartbeat")
        .header(header::AUTHORIZATION, format!("Bearer {KEY}"))
        .body(Body::from(format!("{{\"host\": \"{host}\"}}")))
        .unwrap();
    let res = router(state.clone()).oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

fn kinds(c: &RecordingNotifier) -> Vec<NoticeKind> {
    c.notices().iter().map(|n| n.kind).collect()
}

#[tokio::test]
async fn outage_one_alarm_throttled_reminders_recovery() {
    use NoticeKind::*;
    let (state, clock, channel) = setup();
    let runner = Runner::new(&state, Duration::from_secs(3600));
    let mut failures = 0;
    heartbeat(&state, "build-01").await;
    let wait = runner.step(&mut failures).await;
    assert!(
        wait <= Duration::from_secs(10),
        "sleeps past the deadline: {wait:?}"
    );
    assert!(kinds(&channel).is_empty());

    // Just before the deadline: nothing; at it: one alarm, however many sweeps.
    clock.advance(Duration::from_millis(9_999));
    runner.step(&mut failures).await;
    assert!(kinds(&channel).is_empty());
    clock.advance(Duration::from_millis(1));
    for _ in 0..5 {
        runner.step(&mut failures).await;
    }
    assert_eq!(kinds(&channel), [Alarm]);
    let wait = runner.step(&mut failures).await;
    assert!(wait <= Duration::from_secs(60), "{wait:?}");

    // Reminders no closer than the interval.
    for _ in 0..59 {
        clock.advance(Duration::from_secs(1));
        runner.step(&mut failures).await;
    }
    assert_eq!(kinds(&channel), [Alarm]);
    clock.advance(Duration::from_secs(1));
    runner.step(&mut failures).await;
    runner.step(&mut failures).await;
    assert_eq!(kinds(&channel), [Alarm, Reminder]);
    clock.advance(Duration::from_secs(150));
    runner.step(&mut failures).await;
    runner.step(&mut failures).await;
    assert_eq!(
        kinds(&channel),
        [Alarm, Reminder, Reminder],
        "a long gap gives one reminder, not a burst"
    );

    heartbeat(&state, "build-01").await;
    runner.step(&mut failures).await;
    runner.step(&mut failures).await;
    assert_eq!(kinds(&channel), [Alarm, Reminder, Reminder, Recovery]);
    let n = channel.notices();
    assert!(n.iter().all(|x| x.outage_id == n[0].outage_id));
    assert_eq!(failures, 0);
}

async fn wait_for(channel: &RecordingNotifier, kind: NoticeKind, n: usize) {
    let start = Instant::now();
    while channel.count(kind) < n {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no {kind} within 10 s: {:?}",
            kinds(channel)
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn a_recovery_heartbeat_wakes_the_runner_and_shutdown_waits_for_it() {
    let (state, clock, channel) = setup();
    // It would sleep an hour: only a wake-up can make it sweep.
    let runner = Runner::new(&state, Duration::from_secs(3600));
    heartbeat(&state, "build-01").await;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(runner.run(async move {
        let _ = stop_rx.await;
    }));
    clock.advance(Duration::from_secs(11));
    // The test stands in for the timer here (the manual clock does not
    // move tokio's), then the heartbeat alone must wake the runner.
    state.wake_signal().notify_one();
    wait_for(&channel, NoticeKind::Alarm, 1).await;
    heartbeat(&state, "build-01").await;
    wait_for(&channel, NoticeKind::Recovery, 1).await;
    stop_tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("runner stops on shutdown")
        .unwrap();
    assert_eq!(kinds(&channel), [NoticeKind::Alarm, NoticeKind::Recovery]);
}
