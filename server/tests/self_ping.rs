//! The watcher's own heartbeat, on the manual clock, to a real HTTP
//! receiver on loopback: once per interval after a sweep, `/fail` with the
//! reasons when degraded, failures counted and not retried sooner, a
//! receiver that hangs never holding up the sweep; `/healthz` and
//! `GET /v1/watcher` say when the last sweep ran and the last ping got
//! through.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use iamalive_core::testing::{RecordingNotifier, StallingStore};
use iamalive_core::{Clock, ManualClock, MemoryStore, Notifier, Store};
use iamalive_server::{AppState, Config, Runner, router};
use serde_json::Value;
use tokio::sync::watch;
use tower::ServiceExt;

const KEY: &str = "self-ping-test-key-0123456789";

/// What the receiver saw: path and body of each request.
type Seen = Arc<Mutex<Vec<(String, String)>>>;

/// A ping receiver on 127.0.0.1: records each request, answers `status`,
/// and, while the gate is closed, holds each request open.
struct Receiver {
    addr: SocketAddr,
    seen: Seen,
    status: Arc<AtomicU16>,
    gate: watch::Sender<bool>,
}

#[derive(Clone)]
struct Shared {
    seen: Seen,
    status: Arc<AtomicU16>,
    gate: watch::Receiver<bool>,
}

async fn receive(State(s): State<Shared>, req: Request) -> StatusCode {
    let path = req.uri().path().to_owned();
    let body = axum::body::to_bytes(req.into_body(), 1 << 20)
        .await
        .unwrap_or_default();
    s.seen
        .lock()
        .unwrap()
        .push((path, String::from_utf8_lossy(&body).into_owned()));
    // Held here while the gate is closed (a receiver that hangs).
    let mut gate = s.gate.clone();
    let _ = gate.wait_for(|open| *open).await;
    StatusCode::from_u16(s.status.load(Ordering::SeqCst)).unwrap()
}

impl Receiver {
    async fn start() -> Self {
        let (gate, gate_rx) = watch::channel(true);
        let shared = Shared {
            seen: Seen::default(),
            status: Arc::new(AtomicU16::new(200)),
            gate: gate_rx,
        };
        let app = axum::Router::new()
            .fallback(receive)
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            addr,
            seen: shared.seen,
            status: shared.status,
            gate,
        }
    }

    fn seen(&self) -> Vec<(String, String)> {
        self.seen.lock().unwrap().clone()
    }

    /// Closes the gate: requests are held until `open`.
    fn close(&self) {
        self.gate.send_replace(false);
    }

    fn open(&self) {
        self.gate.send_replace(true);
    }
}

struct Setup {
    state: AppState,
    clock: ManualClock,
    store: Arc<StallingStore<MemoryStore>>,
    channel: RecordingNotifier,
    runner: Runner,
}

fn setup(ping_url: &str, extra: &[(&str, &str)]) -> Setup {
    let mut env = vec![
        ("IAMALIVE_API_KEYS", KEY),
        ("IAMALIVE_TIMEOUT", "10s"),
        ("IAMALIVE_REMINDER_INTERVAL", "1h"),
        ("IAMALIVE_STORE_FAULT_AFTER", "30s"),
        ("IAMALIVE_SELF_PING_URL", ping_url),
        ("IAMALIVE_SELF_PING_INTERVAL", "1m"),
    ];
    env.extend_from_slice(extra);
    let config = Config::from_sources(
        None,
        env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    )
    .unwrap();
    let clock = ManualClock::at_millis(1_700_000_000_000);
    let channel = RecordingNotifier::new("mail");
    let channels: Vec<Arc<dyn Notifier>> = vec![Arc::new(channel.clone())];
    let store = Arc::new(StallingStore::new(MemoryStore::new()));
    let dyn_store: Arc<dyn Store> = store.clone();
    let state = AppState::new(dyn_store, channels, Arc::new(clock.clone()), &config)
        .expect("channel names are unique");
    let runner = Runner::new(&state, Duration::from_secs(3600));
    Setup {
        state,
        clock,
        store,
        channel,
        runner,
    }
}

impl Setup {
    /// One runner step, then waits for the ping it started (if any).
    async fn step(&self) {
        let mut failures = 0;
        let _ = self.runner.step(&mut failures).await;
        self.state.self_watch().settle().await;
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        let req = axum::http::Request::get(path)
            .header(header::AUTHORIZATION, format!("Bearer {KEY}"))
            .body(Body::empty())
            .unwrap();
        let res = router(self.state.clone()).oneshot(req).await.unwrap();
        let status = res.status();
        let body = axum::body::to_bytes(res.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, serde_json::from_slice(&body).unwrap())
    }
}

fn at(v: &Value) -> Option<i64> {
    v.as_str().map(|s| {
        chrono::DateTime::parse_from_rfc3339(s)
            .unwrap()
            .timestamp_millis()
    })
}

#[tokio::test]
async fn pings_once_per_interval_after_sweeps_and_reports_when() {
    let rx = Receiver::start().await;
    let url = format!("http://{}/ping/peer-key/watcher-a", rx.addr);
    let s = setup(&url, &[]);

    let (_, h) = s.get("/healthz").await;
    assert_eq!(h["last_sweep_at"], Value::Null);
    assert_eq!(h["last_self_ping_at"], Value::Null);

    s.step().await;
    assert_eq!(
        rx.seen(),
        [("/ping/peer-key/watcher-a".to_owned(), String::new())]
    );
    let t0 = s.clock.now().timestamp_millis();
    let (code, h) = s.get("/healthz").await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(h["status"], "ok");
    assert_eq!(at(&h["last_sweep_at"]), Some(t0));
    assert_eq!(at(&h["last_self_ping_at"]), Some(t0));

    // Sweeps every second for 59 s: each noted, none pings.
    for _ in 0..59 {
        s.clock.advance(Duration::from_secs(1));
        s.step().await;
    }
    assert_eq!(rx.seen().len(), 1);
    let (_, h) = s.get("/healthz").await;
    assert_eq!(at(&h["last_sweep_at"]), Some(t0 + 59_000));
    assert_eq!(at(&h["last_self_ping_at"]), Some(t0));

    s.clock.advance(Duration::from_secs(1));
    s.step().await;
    assert_eq!(rx.seen().len(), 2, "a whole interval after the first");
    let (code, w) = s.get("/v1/watcher").await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(at(&w["last_self_ping_at"]), Some(t0 + 60_000));
    assert_eq!(w["self_ping"]["interval"], "1m");
    assert_eq!(w["self_ping"]["failures"], 0);
    // The URL's path holds the peer's key: never shown.
    let shown = w["self_ping"]["url"].as_str().unwrap();
    assert!(!shown.contains("peer-key"), "{shown}");
    assert_eq!(shown, format!("http://{}/…", rx.addr));
}

#[tokio::test]
async fn a_refused_ping_is_counted_and_not_retried_sooner() {
    let rx = Receiver::start().await;
    let s = setup(&format!("http://{}/ping/k/watcher-a", rx.addr), &[]);
    s.step().await;
    let t0 = s.clock.now().timestamp_millis();
    rx.status.store(404, Ordering::SeqCst);
    s.clock.advance(Duration::from_secs(60));
    s.step().await;
    assert_eq!(rx.seen().len(), 2);
    let (_, w) = s.get("/v1/watcher").await;
    assert_eq!(w["self_ping"]["failures"], 1);
    let err = w["self_ping"]["last_error"].as_str().unwrap();
    assert!(err.contains("404"), "{err}");
    assert_eq!(
        at(&w["last_self_ping_at"]),
        Some(t0),
        "only pings that got through"
    );
    assert_eq!(at(&w["self_ping"]["last_attempt_at"]), Some(t0 + 60_000));
    // Sweeps go on; the failed ping is not retried before the interval.
    for _ in 0..59 {
        s.clock.advance(Duration::from_secs(1));
        s.step().await;
    }
    assert_eq!(rx.seen().len(), 2);
    rx.status.store(200, Ordering::SeqCst);
    s.clock.advance(Duration::from_secs(1));
    s.step().await;
    assert_eq!(rx.seen().len(), 3);
    let (_, w) = s.get("/v1/watcher").await;
    assert_eq!(at(&w["last_self_ping_at"]), Some(t0 + 120_000));
    assert_eq!(w["self_ping"]["last_error"], Value::Null);
    assert_eq!(w["self_ping"]["failures"], 1);
}

#[tokio::test]
async fn a_failing_store_sends_fail_with_the_reason_after_the_bound_and_alive_after() {
    let rx = Receiver::start().await;
    let s = setup(&format!("http://{}/ping/k/watcher-a", rx.addr), &[]);
    s.step().await;
    s.store.set_failing(true);
    // Failed sweeps for 59 s: no ping at all (not alive, and a blip is no
    // failure).
    for _ in 0..29 {
        s.clock.advance(Duration::from_secs(2));
        s.step().await;
    }
    assert_eq!(rx.seen().len(), 1, "{:?}", rx.seen());
    s.clock.advance(Duration::from_secs(2));
    s.step().await;
    let seen = rx.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[1].0, "/ping/k/watcher-a/fail");
    assert!(
        seen[1].1.contains("store failing since"),
        "the reason is the body: {:?}",
        seen[1].1
    );
    let (code, h) = s.get("/healthz").await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
    assert!(h["last_self_ping_at"].is_string());
    let (_, w) = s.get("/v1/watcher").await;
    assert_eq!(w["self_ping"]["last_said_degraded"], true);

    // The store works again; the fault is over once it has worked for
    // the bound (a success between failures does not end one), then the
    // ping says alive.
    s.store.set_failing(false);
    s.clock.advance(Duration::from_secs(60));
    s.step().await;
    s.clock.advance(Duration::from_secs(60));
    s.step().await;
    let seen = rx.seen();
    assert_eq!(
        seen.last().map(|p| p.0.as_str()),
        Some("/ping/k/watcher-a"),
        "{seen:?}"
    );
    let (_, w) = s.get("/v1/watcher").await;
    assert_eq!(w["self_ping"]["last_said_degraded"], false);
}

#[tokio::test]
async fn a_refusing_channel_makes_the_ping_fail_at_once() {
    let rx = Receiver::start().await;
    let s = setup(&format!("http://{}/ping/k/watcher-a", rx.addr), &[]);
    s.channel.set_refusing();
    let req = axum::http::Request::post("/v1/heartbeat")
        .header(header::AUTHORIZATION, format!("Bearer {KEY}"))
        .body(Body::from("{\"host\": \"db-1\"}"))
        .unwrap();
    assert_eq!(
        router(s.state.clone()).oneshot(req).await.unwrap().status(),
        StatusCode::OK
    );
    s.clock.advance(Duration::from_secs(10));
    s.step().await;
    let seen = rx.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].0, "/ping/k/watcher-a/fail");
    assert!(
        seen[0].1.contains("channel mail refusing"),
        "{:?}",
        seen[0].1
    );
}

#[tokio::test]
async fn a_hanging_receiver_never_holds_up_the_sweep_and_only_one_ping_is_in_flight() {
    let rx = Receiver::start().await;
    let s = setup(
        &format!("http://{}/ping/k/watcher-a", rx.addr),
        &[("IAMALIVE_SELF_PING_TIMEOUT", "2s")],
    );
    rx.close();
    let mut failures = 0;
    let _ = s.runner.step(&mut failures).await;
    // Sweeps go on while the receiver holds the first ping open, two
    // intervals' worth of them: no second request.
    for _ in 0..120 {
        s.clock.advance(Duration::from_secs(1));
        let _ = s.runner.step(&mut failures).await;
    }
    let started = Instant::now();
    s.state.self_watch().settle().await;
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(10),
        "bounded by the ping's timeout: {took:?}"
    );
    assert_eq!(rx.seen().len(), 1, "{:?}", rx.seen());
    let (_, w) = s.get("/v1/watcher").await;
    assert_eq!(w["self_ping"]["failures"], 1);
    assert!(
        w["self_ping"]["last_error"]
            .as_str()
            .unwrap()
            .contains("timed out"),
        "{w}"
    );
    assert!(
        !w["self_ping"]["last_error"]
            .as_str()
            .unwrap()
            .contains("/ping/k")
    );
    rx.open();
    // The ping ended, and an interval has passed: the next sweep pings.
    s.clock.advance(Duration::from_secs(1));
    s.step().await;
    assert_eq!(rx.seen().len(), 2);
    assert_eq!(s.get("/v1/watcher").await.1["self_ping"]["failures"], 1);
}

#[tokio::test]
async fn without_a_url_nothing_is_sent_and_the_sweep_is_still_reported() {
    let config = Config::from_sources(
        None,
        [("IAMALIVE_API_KEYS", KEY)].map(|(k, v)| (k.to_owned(), v.to_owned())),
    )
    .unwrap();
    let clock = ManualClock::at_millis(1_700_000_000_000);
    let state = AppState::new(
        Arc::new(MemoryStore::new()),
        vec![],
        Arc::new(clock.clone()),
        &config,
    )
    .expect("channel names are unique");
    let runner = Runner::new(&state, Duration::from_secs(1));
    let _ = runner.step(&mut 0).await;
    state.self_watch().settle().await;
    assert_eq!(state.self_watch().status().last_self_ping_at, None);
    assert_eq!(state.self_watch().status().last_sweep_at, Some(clock.now()));
    let req = axum::http::Request::get("/v1/watcher")
        .header(header::AUTHORIZATION, format!("Bearer {KEY}"))
        .body(Body::empty())
        .unwrap();
    let res = router(state).oneshot(req).await.unwrap();
    let body = axum::body::to_bytes(res.into_body(), 1 << 20)
        .await
        .unwrap();
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["self_ping"], Value::Null);
}

#[test]
fn settings_from_the_environment_and_toml() {
    let c = Config::from_sources(
        Some("[self_ping]\nurl = \"https://hc-ping.com/abc\"\ninterval = \"30s\"\n"),
        std::iter::empty::<(String, String)>(),
    )
    .unwrap();
    let s = c.self_ping.unwrap();
    assert_eq!(s.interval, Duration::from_secs(30));
    assert_eq!(s.url.expose(), "https://hc-ping.com/abc");
    let e = Config::from_sources(
        None,
        [("IAMALIVE_SELF_PING_INTERVAL", "soon")].map(|(k, v)| (k.to_owned(), v.to_owned())),
    )
    .unwrap_err();
    assert_eq!(e.key, "IAMALIVE_SELF_PING_INTERVAL");
    let e = Config::from_sources(
        Some("[self_ping]\nurl = \"https://hc-ping.com/abc\"\nevery = \"30s\"\n"),
        std::iter::empty::<(String, String)>(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("every"), "{e}");
    let e = Config::from_sources(
        None,
        [("IAMALIVE_SELF_PING_URL", "hc-ping.com/secret-uuid")]
            .map(|(k, v)| (k.to_owned(), v.to_owned())),
    )
    .unwrap_err();
    assert!(e.key.contains("IAMALIVE_SELF_PING_URL"), "{e}");
    assert!(!e.to_string().contains("secret-uuid"), "{e}");
    assert!(Config::default().self_ping.is_none());
}
