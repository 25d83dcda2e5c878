//! The runner against a manual clock: an outage gives exactly one alarm,
//! reminders are throttled, the recovery follows; a heartbeat wakes it.
//! The runner sleeps on the same clock, so moving the clock is what wakes
//! it: its cadence and the startup grace are tested here end to end.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use iamalive_core::testing::RecordingNotifier;
use iamalive_core::{
    Clock, HostId, HostRecord, ManualClock, MemoryStore, NoticeKind, Notifier, Store,
};
use iamalive_server::{AppState, Config, Runner, router};
use tower::ServiceExt;

const KEY: &str = "runner-test-key-0123456789";

fn setup() -> (AppState, ManualClock, RecordingNotifier) {
    let clock = ManualClock::at_millis(1_700_000_000_000);
    let (state, channel) = watcher(Arc::new(MemoryStore::new()), &clock);
    (state, clock, channel)
}

/// A watcher process over `store`, on `clock`, with one recording channel.
fn watcher(store: Arc<dyn Store>, clock: &ManualClock) -> (AppState, RecordingNotifier) {
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
    let channel = RecordingNotifier::new("test");
    let channels: Vec<Arc<dyn Notifier>> = vec![Arc::new(channel.clone())];
    let state = AppState::new(store, channels, Arc::new(clock.clone()), &config)
        .expect("channel names are unique");
    (state, channel)
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

/// Waits (bounded) until the runner sleeps on the clock, so that what the
/// test asserts next cannot be a sweep still under way.
async fn asleep(clock: &ManualClock) {
    let start = Instant::now();
    while clock.sleepers() == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the runner never went to sleep on the clock"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Moves the clock by `d` the way time passes for a running watcher: in
/// steps of at most a second, the runner asleep again after each. (One
/// jump longer than the timeout would be a stretch with no self-mark, which
/// the watcher rightly takes for downtime and grants grace for.)
async fn pass_time(clock: &ManualClock, d: Duration) {
    let mut left = d;
    while !left.is_zero() {
        let step = left.min(Duration::from_secs(1));
        clock.advance(step);
        left -= step;
        asleep(clock).await;
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
    // The runner sleeps on the clock until the deadline: moving the clock
    // wakes it; then the heartbeat alone must wake it.
    asleep(&clock).await;
    pass_time(&clock, Duration::from_secs(11)).await;
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

fn runner_task(
    state: &AppState,
    max_sleep: Duration,
) -> (
    tokio::task::JoinHandle<()>,
    tokio::sync::oneshot::Sender<()>,
) {
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(Runner::new(state, max_sleep).run(async move {
        let _ = stop_rx.await;
    }));
    (task, stop_tx)
}

async fn stop(task: tokio::task::JoinHandle<()>, stop_tx: tokio::sync::oneshot::Sender<()>) {
    stop_tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("runner stops on shutdown")
        .unwrap();
}

#[tokio::test]
async fn the_runner_sweeps_at_its_cadence_on_the_manual_clock() {
    let (state, clock, channel) = setup();
    // A record written behind the runner's back (another process sharing
    // the store), already overdue: no heartbeat wakes the runner, only its
    // own cadence finds it. The cadence is the self-mark's interval here,
    // a quarter of the 10 s timeout.
    let (task, stop_tx) = runner_task(&state, Duration::from_secs(3600));
    asleep(&clock).await;
    // Silent for a minute already, so due since 50 s ago.
    let last_seen = clock.now() - chrono::TimeDelta::seconds(60);
    let rec = HostRecord::new(
        HostId::new("quiet-01").unwrap(),
        last_seen,
        Duration::from_secs(10),
    );
    assert!(
        state
            .monitor()
            .store()
            .compare_and_swap(0, &rec)
            .await
            .unwrap()
    );
    // Short of the next sweep: the runner sleeps on.
    clock.advance(Duration::from_millis(2_499));
    asleep(&clock).await;
    assert!(kinds(&channel).is_empty(), "swept before its cadence");
    // At it: one sweep, one alarm.
    clock.advance(Duration::from_millis(1));
    wait_for(&channel, NoticeKind::Alarm, 1).await;
    stop(task, stop_tx).await;
    assert_eq!(kinds(&channel), [NoticeKind::Alarm]);
}

#[tokio::test]
async fn a_restart_gives_the_startup_grace_end_to_end() {
    let (state, clock, channel) = setup();
    let (task, stop_tx) = runner_task(&state, Duration::from_secs(3600));
    heartbeat(&state, "build-01").await;
    asleep(&clock).await;
    // The watcher stops 5 s after the last beat and stays down a minute:
    // the host's deadline (10 s) fell while nobody listened.
    pass_time(&clock, Duration::from_secs(5)).await;
    stop(task, stop_tx).await;
    clock.advance(Duration::from_secs(60));
    // The next watcher over the same store gives a full timeout from its
    // start before it may call the host missing.
    let store = Arc::clone(state.monitor().store());
    let (state, channel2) = watcher(store, &clock);
    let (task, stop_tx) = runner_task(&state, Duration::from_secs(3600));
    asleep(&clock).await;
    pass_time(&clock, Duration::from_millis(9_999)).await;
    assert!(
        kinds(&channel2).is_empty(),
        "alarmed inside the startup grace"
    );
    clock.advance(Duration::from_millis(1));
    wait_for(&channel2, NoticeKind::Alarm, 1).await;
    stop(task, stop_tx).await;
    assert!(kinds(&channel).is_empty());
    assert_eq!(kinds(&channel2), [NoticeKind::Alarm]);
}
