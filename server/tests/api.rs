//! Every endpoint and every rejection, through the real Router (no network).
//! A rejection must answer 4xx JSON and write nothing.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use iamalive_core::testing::RecordingNotifier;
use iamalive_core::{Clock, HostId, ManualClock, MemoryStore, NoticeKind, Notifier, Status, Store};
use iamalive_server::{AppState, Config, router};
use serde_json::{Value, json};
use tower::ServiceExt;

const ADMIN: &str = "admin-key-0123456789";
const AGENT: &str = "agent-key-0123456789";

struct Fixture {
    state: AppState,
    store: Arc<MemoryStore>,
    clock: ManualClock,
    channel: RecordingNotifier,
}

fn fixture(extra_env: &[(&str, &str)]) -> Fixture {
    let mut env = vec![
        (
            "IAMALIVE_API_KEYS".to_owned(),
            format!("{ADMIN};name=ops,{AGENT};role=heartbeat;hosts=web-*;name=web-agents"),
        ),
        ("IAMALIVE_TIMEOUT".to_owned(), "10s".to_owned()),
        ("IAMALIVE_REMINDER_INTERVAL".to_owned(), "60s".to_owned()),
        ("IAMALIVE_BODY_LIMIT".to_owned(), "2048".to_owned()),
    ];
    env.extend(
        extra_env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    let config = Config::from_sources(None, env).unwrap();
    let store = Arc::new(MemoryStore::new());
    let clock = ManualClock::at_millis(1_700_000_000_000);
    let channel = RecordingNotifier::new("test");
    let channels: Vec<Arc<dyn Notifier>> = vec![Arc::new(channel.clone())];
    let state = AppState::new(
        store.clone() as Arc<dyn Store>,
        channels,
        Arc::new(clock.clone()),
        &config,
    );
    Fixture {
        state,
        store,
        clock,
        channel,
    }
}

struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    text: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.text))
    }

    /// A rejection: 4xx with `{"error": "..."}` containing `needle`.
    fn rejected(&self, status: StatusCode, needle: &str) {
        assert_eq!(self.status, status, "{}", self.text);
        let err = self.json()["error"].as_str().unwrap_or_default().to_owned();
        assert!(err.contains(needle), "{err:?} lacks {needle:?}");
    }
}

async fn call(
    f: &Fixture,
    method: Method,
    uri: &str,
    key: Option<&str>,
    body: Option<String>,
) -> Answer {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(k) = key {
        req = req.header(header::AUTHORIZATION, format!("Bearer {k}"));
    }
    let req = match body {
        Some(b) => req
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(b)),
        None => req.body(Body::empty()),
    }
    .unwrap();
    let res = router(f.state.clone()).oneshot(req).await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
        .await
        .unwrap();
    Answer {
        status,
        headers,
        text: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

async fn raw(f: &Fixture, body: &str, key: Option<&str>) -> Answer {
    call(f, Method::POST, "/v1/heartbeat", key, Some(body.to_owned())).await
}

async fn hb(f: &Fixture, key: Option<&str>, body: Value) -> Answer {
    call(
        f,
        Method::POST,
        "/v1/heartbeat",
        key,
        Some(body.to_string()),
    )
    .await
}

fn h(s: &str) -> HostId {
    HostId::new(s).unwrap()
}

async fn snapshot(f: &Fixture) -> Vec<iamalive_core::HostRecord> {
    f.store.list(None, 10_000).await.unwrap()
}

#[tokio::test]
async fn heartbeat_creates_then_updates_and_keeps_message_and_report() {
    let f = fixture(&[]);
    let a = hb(&f, Some(AGENT), json!({"host": "Web-01"})).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.json()["status"], "created");
    assert_eq!(a.json()["host"], "web-01");
    f.clock.advance(Duration::from_secs(3));
    let report = json!({"since": "2026-01-01T00:00:00Z", "failed_attempts": 3,
        "failures": [{"kind": "dns", "detail": "no such host", "first": "2026-01-01T00:00:00Z",
                      "last": "2026-01-01T00:10:00Z", "count": 3}]});
    let a = hb(
        &f,
        Some(AGENT),
        json!({"host": "web-01", "message": "hello", "report": report, "interval": "5m"}),
    )
    .await;
    assert_eq!(a.json()["status"], "ok", "{}", a.text);
    let rec = f.store.get(&h("web-01")).await.unwrap().unwrap();
    assert_eq!(rec.last_seen, f.clock.now());
    assert_eq!(rec.version, 2);
    assert_eq!(rec.message.as_deref(), Some("hello"));
    let stored: Value = serde_json::from_str(rec.report.as_deref().unwrap()).unwrap();
    assert_eq!(stored, report);
    // An admin key may send heartbeats for any host.
    assert_eq!(
        hb(&f, Some(ADMIN), json!({"host": "db-1"})).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn every_heartbeat_rejection_is_json_and_writes_nothing() {
    let f = fixture(&[]);
    assert_eq!(
        hb(&f, Some(AGENT), json!({"host": "web-01"})).await.status,
        StatusCode::OK
    );
    let before = snapshot(&f).await;

    hb(&f, None, json!({"host": "web-01"}))
        .await
        .rejected(StatusCode::UNAUTHORIZED, "missing API key");
    hb(&f, Some("wrong-key-0123456789"), json!({"host": "web-01"}))
        .await
        .rejected(StatusCode::UNAUTHORIZED, "invalid API key");
    let basic = {
        let req = Request::post("/v1/heartbeat")
            .header(header::AUTHORIZATION, "Basic dXNlcjpwYXNz")
            .body(Body::from(json!({"host": "web-01"}).to_string()))
            .unwrap();
        let res = router(f.state.clone()).oneshot(req).await.unwrap();
        res.status()
    };
    assert_eq!(basic, StatusCode::UNAUTHORIZED);
    raw(&f, "{not json", Some(AGENT))
        .await
        .rejected(StatusCode::BAD_REQUEST, "JSON");
    raw(&f, "{}", Some(AGENT))
        .await
        .rejected(StatusCode::BAD_REQUEST, "host");
    raw(&f, "", Some(AGENT))
        .await
        .rejected(StatusCode::BAD_REQUEST, "JSON");
    hb(&f, Some(AGENT), json!({"host": "web 01"}))
        .await
        .rejected(StatusCode::BAD_REQUEST, "invalid host id");
    hb(&f, Some(AGENT), json!({"host": ""}))
        .await
        .rejected(StatusCode::BAD_REQUEST, "invalid host id");
    hb(&f, Some(AGENT), json!({"host": "a".repeat(254)}))
        .await
        .rejected(StatusCode::BAD_REQUEST, "253");
    hb(&f, Some(AGENT), json!({"host": 7}))
        .await
        .rejected(StatusCode::BAD_REQUEST, "JSON");
    hb(&f, Some(AGENT), json!({"host": "db-01"}))
        .await
        .rejected(StatusCode::FORBIDDEN, "web-*");
    hb(
        &f,
        Some(AGENT),
        json!({"host": "web-01", "message": "x".repeat(1025)}),
    )
    .await
    .rejected(StatusCode::BAD_REQUEST, "message");
    hb(&f, Some(AGENT), json!({"host": "web-01", "report": [1, 2]}))
        .await
        .rejected(StatusCode::BAD_REQUEST, "report");
    hb(
        &f,
        Some(AGENT),
        json!({"host": "web-01", "message": "y".repeat(3000)}),
    )
    .await
    .rejected(StatusCode::PAYLOAD_TOO_LARGE, "2048 bytes");
    call(&f, Method::GET, "/v1/heartbeat", Some(AGENT), None)
        .await
        .rejected(StatusCode::METHOD_NOT_ALLOWED, "method");
    call(&f, Method::GET, "/v2/nothing", None, None)
        .await
        .rejected(StatusCode::NOT_FOUND, "no such endpoint");
    assert_eq!(snapshot(&f).await, before, "a rejection wrote something");
    assert!(f.state.rejections().describe(&h("web-01")).is_some());
    assert!(f.state.rejections().unattributed() > 0);
}

#[tokio::test]
async fn rate_limits_answer_429_with_retry_after_and_write_nothing() {
    let f = fixture(&[("IAMALIVE_RATE_LIMIT_PER_KEY", "2/1h")]);
    for _ in 0..2 {
        assert_eq!(
            hb(&f, Some(AGENT), json!({"host": "web-01"})).await.status,
            StatusCode::OK
        );
    }
    let before = snapshot(&f).await;
    let a = hb(&f, Some(AGENT), json!({"host": "web-01"})).await;
    a.rejected(StatusCode::TOO_MANY_REQUESTS, "web-agents");
    assert!(a.headers.contains_key(header::RETRY_AFTER));
    // Another key has its own budget.
    assert_eq!(
        hb(&f, Some(ADMIN), json!({"host": "web-02"})).await.status,
        StatusCode::OK
    );
    assert_eq!(
        f.store.get(&h("web-01")).await.unwrap(),
        before.into_iter().next()
    );
    let why = f.state.rejections().describe(&h("web-01")).unwrap();
    assert!(
        why.contains("1 heartbeat for this host") && why.contains("rate limit"),
        "{why}"
    );

    let g = fixture(&[("IAMALIVE_RATE_LIMIT_GLOBAL", "1/1h")]);
    assert_eq!(
        hb(&g, Some(AGENT), json!({"host": "web-01"})).await.status,
        StatusCode::OK
    );
    hb(&g, Some(ADMIN), json!({"host": "web-02"}))
        .await
        .rejected(StatusCode::TOO_MANY_REQUESTS, "global");
    assert!(g.store.get(&h("web-02")).await.unwrap().is_none());
}

#[tokio::test]
async fn auto_registration_can_be_switched_off() {
    let f = fixture(&[("IAMALIVE_AUTO_REGISTER", "false")]);
    hb(&f, Some(AGENT), json!({"host": "web-01"}))
        .await
        .rejected(StatusCode::NOT_FOUND, "auto-registration is off");
    assert!(f.store.is_empty());
    let a = call(&f, Method::PUT, "/v1/hosts/web-01", Some(ADMIN), None).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    assert_eq!(
        call(&f, Method::PUT, "/v1/hosts/web-01", Some(ADMIN), None)
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        hb(&f, Some(AGENT), json!({"host": "web-01"})).await.json()["status"],
        "ok"
    );
}

#[tokio::test]
async fn ping_urls() {
    let f = fixture(&[]);
    for m in [Method::GET, Method::HEAD, Method::POST] {
        let a = call(&f, m.clone(), &format!("/ping/{AGENT}/web-01"), None, None).await;
        assert_eq!(a.status, StatusCode::OK, "{m}: {}", a.text);
        if m != Method::HEAD {
            assert_eq!(a.text, "OK");
        }
    }
    let rec = f.store.get(&h("web-01")).await.unwrap().unwrap();
    assert_eq!(rec.version, 3);
    for (suffix, body, msg) in [
        ("/start", None, "ping: start"),
        ("/fail", Some("disk full"), "ping: fail: disk full"),
        ("/0", None, "ping: exit status 0"),
        ("/137", None, "ping: exit status 137"),
        ("", Some("backup done"), "backup done"),
    ] {
        let a = call(
            &f,
            Method::POST,
            &format!("/ping/{AGENT}/web-01{suffix}"),
            None,
            body.map(str::to_owned),
        )
        .await;
        assert_eq!((a.status, a.text.as_str()), (StatusCode::OK, "OK"));
        let rec = f.store.get(&h("web-01")).await.unwrap().unwrap();
        assert_eq!(rec.message.as_deref(), Some(msg));
    }
    let before = snapshot(&f).await;
    call(
        &f,
        Method::GET,
        "/ping/wrong-key-0123456789/web-01",
        None,
        None,
    )
    .await
    .rejected(StatusCode::UNAUTHORIZED, "invalid API key");
    call(&f, Method::GET, &format!("/ping/{AGENT}/db-01"), None, None)
        .await
        .rejected(StatusCode::FORBIDDEN, "web-*");
    call(
        &f,
        Method::GET,
        &format!("/ping/{AGENT}/web%2001"),
        None,
        None,
    )
    .await
    .rejected(StatusCode::BAD_REQUEST, "invalid host id");
    call(
        &f,
        Method::GET,
        &format!("/ping/{AGENT}/web-01/256"),
        None,
        None,
    )
    .await
    .rejected(StatusCode::NOT_FOUND, "ping action");
    call(
        &f,
        Method::GET,
        &format!("/ping/{AGENT}/web-01/reboot"),
        None,
        None,
    )
    .await
    .rejected(StatusCode::NOT_FOUND, "ping action");
    call(
        &f,
        Method::POST,
        &format!("/ping/{AGENT}/web-01"),
        None,
        Some("z".repeat(5000)),
    )
    .await
    .rejected(StatusCode::PAYLOAD_TOO_LARGE, "bytes");
    assert_eq!(snapshot(&f).await, before);
}

#[tokio::test]
async fn management_api() {
    let f = fixture(&[]);
    for host in ["web-01", "web-02", "db-01"] {
        assert_eq!(
            hb(&f, Some(ADMIN), json!({"host": host})).await.status,
            StatusCode::OK
        );
    }
    // Heartbeat-only keys and strangers cannot read or change anything.
    call(&f, Method::GET, "/v1/hosts", Some(AGENT), None)
        .await
        .rejected(StatusCode::FORBIDDEN, "heartbeat-only");
    call(&f, Method::GET, "/v1/hosts", None, None)
        .await
        .rejected(StatusCode::UNAUTHORIZED, "missing");
    call(&f, Method::DELETE, "/v1/hosts/web-01", Some(AGENT), None)
        .await
        .rejected(StatusCode::FORBIDDEN, "heartbeat-only");
    call(
        &f,
        Method::POST,
        "/v1/hosts/web-01/pause",
        Some("x-wrong-key-12345678"),
        None,
    )
    .await
    .rejected(StatusCode::UNAUTHORIZED, "invalid");

    f.clock.advance(Duration::from_secs(4));
    let list = call(&f, Method::GET, "/v1/hosts", Some(ADMIN), None).await;
    assert_eq!(list.status, StatusCode::OK);
    let hosts = list.json()["hosts"].as_array().unwrap().clone();
    let names: Vec<&str> = hosts.iter().map(|x| x["host"].as_str().unwrap()).collect();
    assert_eq!(names, ["db-01", "web-01", "web-02"]);
    for field in [
        "status",
        "last_seen",
        "missing_since",
        "silent_for_s",
        "alarm_count",
        "due_at",
    ] {
        assert!(hosts[0].get(field).is_some(), "{field} missing");
    }
    assert_eq!(hosts[0]["silent_for_s"], 4.0);
    assert_eq!(hosts[0]["status"], "up");
    let page = call(&f, Method::GET, "/v1/hosts?limit=2", Some(ADMIN), None)
        .await
        .json();
    assert_eq!(page["next_after"], "web-01");
    let page = call(
        &f,
        Method::GET,
        "/v1/hosts?limit=2&after=web-01",
        Some(ADMIN),
        None,
    )
    .await
    .json();
    assert_eq!(page["hosts"][0]["host"], "web-02");
    call(&f, Method::GET, "/v1/hosts?limit=x", Some(ADMIN), None)
        .await
        .rejected(StatusCode::BAD_REQUEST, "limit");

    let one = call(&f, Method::GET, "/v1/hosts/WEB-01", Some(ADMIN), None).await;
    assert_eq!(one.json()["host"], "web-01");
    call(&f, Method::GET, "/v1/hosts/nope", Some(ADMIN), None)
        .await
        .rejected(StatusCode::NOT_FOUND, "unknown host");
    call(&f, Method::GET, "/v1/hosts/bad%20host", Some(ADMIN), None)
        .await
        .rejected(StatusCode::BAD_REQUEST, "invalid host id");

    let p = call(
        &f,
        Method::POST,
        "/v1/hosts/web-01/pause",
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(p.json()["status"], "paused");
    assert_eq!(
        f.store.get(&h("web-01")).await.unwrap().unwrap().status,
        Status::Paused
    );
    let r = call(
        &f,
        Method::POST,
        "/v1/hosts/web-01/resume",
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(r.json()["status"], "up");
    call(&f, Method::POST, "/v1/hosts/nope/pause", Some(ADMIN), None)
        .await
        .rejected(StatusCode::NOT_FOUND, "unknown host");

    let d = call(&f, Method::DELETE, "/v1/hosts/web-02", Some(ADMIN), None).await;
    assert_eq!(d.status, StatusCode::OK);
    assert!(f.store.get(&h("web-02")).await.unwrap().is_none());
    call(&f, Method::DELETE, "/v1/hosts/web-02", Some(ADMIN), None)
        .await
        .rejected(StatusCode::NOT_FOUND, "unknown host");

    let health = call(&f, Method::GET, "/healthz", None, None).await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(health.json()["store"], "memory");
    call(&f, Method::GET, "/metrics", None, None)
        .await
        .rejected(StatusCode::NOT_FOUND, "metrics");
}

#[tokio::test]
async fn silences() {
    let f = fixture(&[(
        "IAMALIVE_API_KEYS",
        &format!("{ADMIN};name=ops,limited-admin-0123456789;hosts=db-*"),
    )]);
    let s = call(
        &f,
        Method::POST,
        "/v1/silences",
        Some(ADMIN),
        Some(
            json!({"hosts": "db-*", "duration": "2h", "reason": "patching", "id": "patch-1"})
                .to_string(),
        ),
    )
    .await;
    assert_eq!(s.status, StatusCode::CREATED, "{}", s.text);
    assert_eq!(s.json()["id"], "patch-1");
    let s2 = call(
        &f,
        Method::POST,
        "/v1/silences",
        Some(ADMIN),
        Some(json!({"hosts": "*", "ends_at": "2100-01-01T00:00:00Z"}).to_string()),
    )
    .await;
    assert_eq!(s2.status, StatusCode::CREATED, "{}", s2.text);
    let list = call(&f, Method::GET, "/v1/silences", Some(ADMIN), None)
        .await
        .json();
    assert_eq!(list["silences"].as_array().unwrap().len(), 2);
    assert_eq!(list["silences"][0]["reason"], "patching");

    let before = f.store.silences().await.unwrap().len();
    for (body, needle) in [
        (json!({"hosts": "db-*"}), "exactly one"),
        (
            json!({"hosts": "db-*", "duration": "1h", "ends_at": "2100-01-01T00:00:00Z"}),
            "exactly one",
        ),
        (json!({"hosts": "db 1", "duration": "1h"}), "pattern"),
        (json!({"hosts": "db-*", "duration": "soon"}), "JSON"),
        (
            json!({"hosts": "db-*", "ends_at": "1999-01-01T00:00:00Z"}),
            "end after",
        ),
        (
            json!({"hosts": "db-*", "duration": "1h", "color": "red"}),
            "color",
        ),
    ] {
        call(
            &f,
            Method::POST,
            "/v1/silences",
            Some(ADMIN),
            Some(body.to_string()),
        )
        .await
        .rejected(StatusCode::BAD_REQUEST, needle);
    }
    call(
        &f,
        Method::POST,
        "/v1/silences",
        Some(AGENT),
        Some(json!({"hosts": "*", "duration": "1h"}).to_string()),
    )
    .await
    .rejected(StatusCode::UNAUTHORIZED, "invalid");
    call(
        &f,
        Method::POST,
        "/v1/silences",
        Some("limited-admin-0123456789"),
        Some(json!({"hosts": "*", "duration": "1h"}).to_string()),
    )
    .await
    .rejected(StatusCode::FORBIDDEN, "unrestricted");
    assert_eq!(f.store.silences().await.unwrap().len(), before);

    // A host-limited admin key sees and manages only its hosts.
    hb(&f, Some(ADMIN), json!({"host": "db-1"})).await;
    hb(&f, Some(ADMIN), json!({"host": "web-1"})).await;
    let mine = call(
        &f,
        Method::GET,
        "/v1/hosts",
        Some("limited-admin-0123456789"),
        None,
    )
    .await
    .json();
    assert_eq!(mine["hosts"].as_array().unwrap().len(), 1);
    call(
        &f,
        Method::DELETE,
        "/v1/hosts/web-1",
        Some("limited-admin-0123456789"),
        None,
    )
    .await
    .rejected(StatusCode::FORBIDDEN, "db-*");

    assert_eq!(
        call(
            &f,
            Method::DELETE,
            "/v1/silences/patch-1",
            Some(ADMIN),
            None
        )
        .await
        .status,
        StatusCode::OK
    );
    call(
        &f,
        Method::DELETE,
        "/v1/silences/patch-1",
        Some(ADMIN),
        None,
    )
    .await
    .rejected(StatusCode::NOT_FOUND, "unknown silence");
    assert_eq!(f.store.silences().await.unwrap().len(), 1);
}

#[tokio::test]
async fn an_alarm_says_why_the_watcher_was_blind() {
    let f = fixture(&[("IAMALIVE_RATE_LIMIT_PER_KEY", "1/1h")]);
    assert_eq!(
        hb(&f, Some(AGENT), json!({"host": "web-01"})).await.status,
        StatusCode::OK
    );
    // The agent's key is over its rate limit: nothing is written, but the
    // watcher remembers. (Requests without a valid key are never counted
    // against a host: see tests/admission.rs.)
    for _ in 0..3 {
        f.clock.advance(Duration::from_secs(2));
        hb(&f, Some(AGENT), json!({"host": "web-01"}))
            .await
            .rejected(StatusCode::TOO_MANY_REQUESTS, "rate limit");
    }
    f.clock.advance(Duration::from_secs(10));
    let _ = f.state.monitor().sweep().await.unwrap();
    let alarms: Vec<_> = f
        .channel
        .notices()
        .into_iter()
        .filter(|n| n.kind == NoticeKind::Alarm)
        .collect();
    assert_eq!(alarms.len(), 1);
    let blind = alarms[0].blind.as_deref().unwrap_or_default();
    assert!(
        blind.contains("3 heartbeats for this host were rejected")
            && blind.contains("rate limit of its key"),
        "{blind}"
    );
    assert!(alarms[0].body().contains("rate limit of its key"));
}
