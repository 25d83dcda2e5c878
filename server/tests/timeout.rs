//! A request whose store never answers is cut off at the request timeout
//! with a 503 and a reason, writes nothing, and the service keeps serving.
//! Tokio's clock is paused: the timeout elapses without the test sleeping.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use iamalive_core::testing::{RecordingNotifier, StallingStore};
use iamalive_core::{HostId, ManualClock, MemoryStore, Notifier, Store};
use iamalive_server::{AppState, Config, router};
use serde_json::Value;
use tower::ServiceExt;

const KEY: &str = "admin-key-0123456789";

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
    let store = Arc::new(StallingStore::new(MemoryStore::new()));
    store.set_stalled(true);
    let channels: Vec<Arc<dyn Notifier>> = vec![Arc::new(RecordingNotifier::new("test"))];
    let state = AppState::new(
        store.clone() as Arc<dyn Store>,
        channels,
        Arc::new(ManualClock::at_millis(1_700_000_000_000)),
        &config,
    )
    .expect("channel names are unique");

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
    assert!(store.inner().list(None, 10).await.unwrap().is_empty());

    // The store comes back: the same service answers and stores.
    store.set_stalled(false);
    let (status, body) = heartbeat(&state, "web-01").await;
    assert!(status.is_success(), "{status} {body}");
    let rec = store.inner().get(&HostId::new("web-01").unwrap()).await;
    assert!(rec.unwrap().is_some());
}
