//! A request whose store never answers is cut off at the request timeout
//! with a 503 and a reason, writes nothing, and the service keeps serving.
//! Tokio's clock is paused: the timeout elapses without the test sleeping.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use iamalive_core::testing::RecordingNotifier;
use iamalive_core::{
    Heartbeat, HeartbeatOutcome, HostId, HostRecord, ManualClock, MemoryStore, MonitorMark,
    Notifier, Silence, Store, StoreError, Timestamp,
};
use iamalive_server::{AppState, Config, router};
use serde_json::Value;
use tower::ServiceExt;

const KEY: &str = "admin-key-0123456789";

/// A [`MemoryStore`] whose heartbeat writes hang while `stalled` is set,
/// as a store behind a dead network link would.
struct Stall {
    inner: MemoryStore,
    stalled: AtomicBool,
}

impl fmt::Display for Stall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("stall")
    }
}

#[async_trait]
impl Store for Stall {
    async fn record_heartbeat(
        &self,
        hb: &Heartbeat,
        due_if_up: Timestamp,
        create: bool,
    ) -> Result<HeartbeatOutcome, StoreError> {
        if self.stalled.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        self.inner.record_heartbeat(hb, due_if_up, create).await
    }
    async fn due(&self, now: Timestamp, limit: usize) -> Result<Vec<HostRecord>, StoreError> {
        self.inner.due(now, limit).await
    }
    async fn next_due(&self) -> Result<Option<Timestamp>, StoreError> {
        self.inner.next_due().await
    }
    async fn get(&self, host: &HostId) -> Result<Option<HostRecord>, StoreError> {
        self.inner.get(host).await
    }
    async fn compare_and_swap(&self, expected: u64, next: &HostRecord) -> Result<bool, StoreError> {
        self.inner.compare_and_swap(expected, next).await
    }
    async fn list(
        &self,
        after: Option<&HostId>,
        limit: usize,
    ) -> Result<Vec<HostRecord>, StoreError> {
        self.inner.list(after, limit).await
    }
    async fn remove(&self, host: &HostId) -> Result<bool, StoreError> {
        self.inner.remove(host).await
    }
    async fn put_silence(&self, silence: &Silence) -> Result<(), StoreError> {
        self.inner.put_silence(silence).await
    }
    async fn silences(&self) -> Result<Vec<Silence>, StoreError> {
        self.inner.silences().await
    }
    async fn remove_silence(&self, id: &str) -> Result<bool, StoreError> {
        self.inner.remove_silence(id).await
    }
    async fn mark_run(&self, now: Timestamp, gap: Duration) -> Result<MonitorMark, StoreError> {
        self.inner.mark_run(now, gap).await
    }
}

async fn heartbeat(state: &AppState, host: &str) -> (StatusCode, Value) {
    let req = Request::builder()
        .method(Method::POST)
        .uri("/v1/heartbeat")
        .header(header::AUTHORIZATION, format!("Bearer {KEY}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(format!(r#"{{"host":"{host}"}}"#)))
        .unwrap();
    let res = router(state.clone()).oneshot(req).await.unwrap();
    let status = res.status();
    let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, serde_json::from_slice(&bytes).unwrap())
}

#[tokio::test(start_paused = true)]
async fn a_hung_store_is_cut_off_at_the_request_timeout_and_the_service_goes_on() {
    let config = Config::from_sources(
        None,
        [
            ("IAMALIVE_API_KEYS", KEY),
            ("IAMALIVE_REQUEST_TIMEOUT", "250ms"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned())),
    )
    .unwrap();
    let store = Arc::new(Stall {
        inner: MemoryStore::new(),
        stalled: AtomicBool::new(true),
    });
    let channels: Vec<Arc<dyn Notifier>> = vec![Arc::new(RecordingNotifier::new("test"))];
    let state = AppState::new(
        store.clone() as Arc<dyn Store>,
        channels,
        Arc::new(ManualClock::at_millis(1_700_000_000_000)),
        &config,
    );

    let started = tokio::time::Instant::now();
    // Bounded, so a missing timeout fails the test instead of hanging it.
    let (status, body) = tokio::time::timeout(Duration::from_secs(60), heartbeat(&state, "web-01"))
        .await
        .expect("the service never answered a request whose store hung");
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let reason = body["error"].as_str().unwrap_or_default();
    assert!(
        reason.contains("request took longer than 250ms"),
        "{reason:?}"
    );
    // Cut off at the timeout, not before and not much after (paused clock).
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_millis(300),
        "{waited:?}"
    );
    assert!(store.inner.list(None, 10).await.unwrap().is_empty());

    // The store comes back: the same service answers and stores.
    store.stalled.store(false, Ordering::SeqCst);
    let (status, body) = heartbeat(&state, "web-01").await;
    assert!(status.is_success(), "{status} {body}");
    let rec = store.inner.get(&HostId::new("web-01").unwrap()).await;
    assert!(rec.unwrap().is_some());
}
