//! The Lambda adapter (`iamalive_server::lambda`, feature `lambda`) with
//! real API Gateway and EventBridge payloads (tests/fixtures/lambda) over
//! core's in-memory store and a real webhook receiver on loopback: the
//! heartbeat, the management API and the scheduled sweep go through the
//! server's own router and monitor.

use std::sync::Arc;
use std::time::Duration;

use iamalive_core::{Clock, HostId, ManualClock, MemoryStore, Notifier, Store};
use iamalive_notify::{Named, WebhookFormat, WebhookNotifier};
use iamalive_server::Config;
use iamalive_server::lambda::{Event, Handler, HandlerError};
use iamalive_testkit::Receiver;
use serde_json::{Value, json};

const KEY: &str = "test-key-0123456789abcdef";

fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/tests/fixtures/lambda/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn config(pairs: &[(&str, &str)]) -> Config {
    Config::from_sources(
        None,
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    )
    .expect("config")
}

/// An HTTP API (v2) request from the heartbeat fixture: `method path`,
/// with `body` (JSON) or none.
fn request(method: &str, path: &str, body: Option<Value>) -> Value {
    let mut v = fixture("apigw-http-v2-heartbeat.json");
    v["routeKey"] = format!("{method} {path}").into();
    v["rawPath"] = path.into();
    v["requestContext"]["http"]["method"] = method.into();
    v["requestContext"]["http"]["path"] = path.into();
    v["headers"]
        .as_object_mut()
        .unwrap()
        .remove("content-length");
    match body {
        Some(b) => {
            v["body"] = b.to_string().into();
            v["isBase64Encoded"] = false.into();
        }
        None => {
            v.as_object_mut().unwrap().remove("body");
            v["isBase64Encoded"] = false.into();
        }
    }
    v
}

struct Setup {
    handler: Handler,
    store: Arc<MemoryStore>,
    clock: ManualClock,
    hook: Receiver,
}

impl Setup {
    /// Hands `event` to the handler and checks it answered `status`;
    /// returns the answer.
    async fn answers(&self, event: Value, status: u16) -> Value {
        let out = self.handler.handle_value(event).await.unwrap();
        assert_eq!(out["statusCode"], status, "{out}");
        out
    }
}

async fn setup() -> Setup {
    let hook = Receiver::start().await;
    let channel: Arc<dyn Notifier> = Arc::new(Named::new(
        "chat",
        Arc::new(WebhookNotifier::new(&hook.url, WebhookFormat::Json, None).unwrap()),
    ));
    let store = Arc::new(MemoryStore::new());
    let clock = ManualClock::at_millis(1_767_225_600_000);
    let shared: Arc<dyn Store> = store.clone();
    let c: Arc<dyn Clock> = Arc::new(clock.clone());
    let handler = Handler::new(
        shared,
        vec![channel],
        c,
        &config(&[("IAMALIVE_API_KEYS", KEY), ("IAMALIVE_TIMEOUT", "10s")]),
    )
    .unwrap();
    Setup {
        handler,
        store,
        clock,
        hook,
    }
}

#[tokio::test]
async fn a_function_without_a_key_is_refused() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let e = Handler::new(
        store,
        vec![],
        Arc::new(ManualClock::at_millis(0)),
        &config(&[]),
    )
    .unwrap_err();
    assert!(matches!(e, HandlerError::NoKeys), "{e}");
    assert!(e.to_string().contains("IAMALIVE_API_KEYS"), "{e}");
}

#[tokio::test]
async fn payloads_are_told_apart_and_a_stranger_is_refused() {
    assert!(matches!(
        Event::classify(fixture("apigw-rest-v1-heartbeat.json")).unwrap(),
        Event::RestV1(_)
    ));
    assert!(matches!(
        Event::classify(fixture("apigw-http-v2-heartbeat.json")).unwrap(),
        Event::HttpV2(_)
    ));
    assert!(matches!(
        Event::classify(fixture("eventbridge-scheduled.json")).unwrap(),
        Event::Schedule(_)
    ));
    assert!(Event::classify(json!({"hello": "world"})).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_management_and_the_scheduled_sweep_through_the_adapter() {
    let s = setup().await;
    // REST v1 and HTTP v2 (base64 body) heartbeats.
    s.answers(fixture("apigw-rest-v1-heartbeat.json"), 200)
        .await;
    s.answers(fixture("apigw-http-v2-heartbeat.json"), 200)
        .await;
    assert!(
        s.store
            .get(&HostId::new("build-02").unwrap())
            .await
            .unwrap()
            .is_some()
    );
    s.answers(fixture("apigw-http-v2-bad-key.json"), 401).await;

    // The management API: register, pause, list, delete.
    s.answers(request("PUT", "/v1/hosts/db-1", None), 201).await;
    s.answers(request("POST", "/v1/hosts/db-1/pause", None), 200)
        .await;
    let out = s.answers(request("GET", "/v1/hosts", None), 200).await;
    let body = out["body"].as_str().unwrap();
    assert!(body.contains("db-1") && body.contains("build-02"), "{body}");
    s.answers(request("DELETE", "/v1/hosts/db-1", None), 200)
        .await;
    s.answers(request("GET", "/v1/hosts/db-1", None), 404).await;

    // Silent past the timeout: the scheduled sweep alarms on the channel;
    // the next heartbeat's all-clear goes out before it is answered.
    let schedule = fixture("eventbridge-scheduled.json");
    s.clock.advance(Duration::from_secs(5));
    let _ = s.handler.handle_value(schedule.clone()).await.unwrap();
    s.clock.advance(Duration::from_secs(6));
    let report = s.handler.handle_value(schedule).await.unwrap();
    assert_eq!(report["completed"], 2, "{report}");
    for host in ["build-01", "build-02"] {
        assert_eq!(
            s.hook.count(&["\"kind\":\"alarm\"", host]),
            1,
            "{:?}",
            s.hook.bodies()
        );
    }
    s.answers(fixture("apigw-http-v2-heartbeat.json"), 200)
        .await;
    assert_eq!(
        s.hook.count(&["\"kind\":\"recovery\"", "build-02"]),
        1,
        "{:?}",
        s.hook.bodies()
    );
}
