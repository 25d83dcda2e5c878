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
    )
    .expect("channel names are unique");
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
    // A body of the wrong shape says what shape it wants, in the API's
    // words, not the server's type names.
    let a = hb(&f, Some(AGENT), json!([])).await;
    assert!(!a.text.contains("HeartbeatBody"), "{}", a.text);
    a.rejected(
        StatusCode::BAD_REQUEST,
        "expected a JSON object like {\"host\": \"build-01\"}",
    );
    // The fields an all-clear reads must mean what it says of them.
    hb(
        &f,
        Some(AGENT),
        json!({"host": "web-01", "report": {"since": "yesterday"}}),
    )
    .await
    .rejected(
        StatusCode::BAD_REQUEST,
        "report.since must be an RFC 3339 time",
    );
    hb(
        &f,
        Some(AGENT),
        json!({"host": "web-01", "report": {"since": "2026-11-26T03:12:04Z", "failed_attempts": -1}}),
    )
    .await
    .rejected(StatusCode::BAD_REQUEST, "report.failed_attempts");
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
    // What each action does to the host is in `job_signals`; here: every
    // form answers OK, and a success's body is its message.
    for (suffix, body) in [
        ("/start", None),
        ("/log", Some("step 2 of 3")),
        ("/fail", Some("disk full")),
        ("/137", None),
        ("/0", Some("backup done")),
        ("", Some("backup done again")),
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
    }
    let rec = f.store.get(&h("web-01")).await.unwrap().unwrap();
    assert_eq!(rec.message.as_deref(), Some("backup done again"));
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
        &format!("/ping/{AGENT}/web-01/"),
        None,
        None,
    )
    .await
    .rejected(StatusCode::NOT_FOUND, "drop the trailing '/'");
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
        Some(json!({"hosts": "*", "ends_at": "2024-06-01T00:00:00Z"}).to_string()),
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
        (
            json!({"hosts": "db-*", "duration": "1h", "id": "a/b"}),
            "may not contain '/'",
        ),
        (
            json!({"hosts": "db-*", "duration": "1h", "reason": "x".repeat(1025)}),
            "at most 1024",
        ),
        (
            json!({"hosts": "db-*", "for": "0s"}),
            "duration must be greater than zero",
        ),
        // Occurrences longer than the time between them: never ends.
        (
            json!({"hosts": "db-*", "repeat": "0 * * * *", "tz": "UTC", "duration": "2h"}),
            "would never end",
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
        blind.contains("3 heartbeats for this host were rejected by the watcher between ")
            && blind.contains("rate limit of its key"),
        "{blind}"
    );
    assert!(alarms[0].body().contains("rate limit of its key"));
}

#[tokio::test]
async fn test_notice_reports_each_channel_and_needs_a_full_admin() {
    let f = fixture(&[]);
    let a = call(&f, Method::POST, "/v1/test-notice", Some(AGENT), None).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.text);
    assert!(f.channel.notices().is_empty());
    let a = call(&f, Method::POST, "/v1/test-notice", Some(ADMIN), None).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.json()["ok"], true);
    assert_eq!(a.json()["channels"][0]["channel"], "test");
    assert_eq!(a.json()["channels"][0]["outcome"], "delivered");
    assert_eq!(f.channel.count(NoticeKind::Test), 1);
    f.channel.set_refusing();
    let a = call(&f, Method::POST, "/v1/test-notice", Some(ADMIN), None).await;
    assert_eq!(a.status, StatusCode::BAD_GATEWAY, "{}", a.text);
    assert_eq!(a.json()["ok"], false);
    assert_eq!(a.json()["channels"][0]["outcome"], "refused");
    assert!(
        a.json()["channels"][0]["error"]
            .as_str()
            .unwrap()
            .contains("refuses")
    );
}

#[tokio::test]
async fn healthz_says_degraded_and_names_a_refusing_channel() {
    let f = fixture(&[]);
    let ok = call(&f, Method::GET, "/healthz", None, None).await;
    assert_eq!(
        (ok.status, ok.json()["status"].clone()),
        (StatusCode::OK, json!("ok"))
    );
    assert_eq!(
        hb(&f, Some(ADMIN), json!({"host": "db-1"})).await.status,
        StatusCode::OK
    );
    f.channel.set_refusing();
    f.clock.advance(Duration::from_secs(10));
    let r = f.state.monitor().sweep().await.unwrap();
    assert_eq!(r.refused, 1);
    let a = call(&f, Method::GET, "/healthz", None, None).await;
    assert_eq!(a.status, StatusCode::OK, "the store is fine: {}", a.text);
    assert_eq!(a.json()["status"], "degraded", "{}", a.text);
    assert_eq!(a.json()["refusing_channels"][0]["channel"], "test");
    let host = call(&f, Method::GET, "/v1/hosts/db-1", Some(ADMIN), None).await;
    assert_eq!(host.json()["status"], "missing", "{}", host.text);
    assert_eq!(
        host.json()["owed_notice"]["refusals"][0]["channel"],
        "test",
        "{}",
        host.text
    );
    // It delivers again: the alarm goes out and the health clears.
    f.channel.set_down(false);
    f.clock.advance(Duration::from_secs(5));
    let _ = f.state.monitor().sweep().await.unwrap();
    assert_eq!(f.channel.count(NoticeKind::Alarm), 1);
    let a = call(&f, Method::GET, "/healthz", None, None).await;
    assert_eq!(a.json()["status"], "ok", "{}", a.text);
}

#[tokio::test]
async fn a_heartbeat_interval_is_seconds_or_a_duration_and_bad_ones_are_refused() {
    let f = fixture(&[]);
    for good in [json!(240), json!(0.5), json!("4m")] {
        let a = hb(&f, Some(ADMIN), json!({"host": "db-1", "interval": good})).await;
        assert_eq!(a.status, StatusCode::OK, "{good}: {}", a.text);
    }
    let before = f.store.get(&h("db-1")).await.unwrap().unwrap();
    for bad in [json!(0), json!(-3), json!("soon"), json!(true), json!(1e12)] {
        hb(&f, Some(ADMIN), json!({"host": "db-1", "interval": bad}))
            .await
            .rejected(StatusCode::BAD_REQUEST, "interval");
    }
    // The refusal echoes the value as sent.
    hb(&f, Some(ADMIN), json!({"host": "db-1", "interval": "400d"}))
        .await
        .rejected(StatusCode::BAD_REQUEST, "not \"400d\"");
    assert_eq!(
        f.store.get(&h("db-1")).await.unwrap().unwrap(),
        before,
        "a refused heartbeat writes nothing"
    );
}

fn instant(v: &Value) -> chrono::DateTime<chrono::Utc> {
    v.as_str()
        .unwrap_or_else(|| panic!("not a time: {v}"))
        .parse()
        .unwrap_or_else(|e| panic!("not a time ({e}): {v}"))
}

async fn pause(f: &Fixture, host: &str, body: Option<Value>) -> Answer {
    call(
        f,
        Method::POST,
        &format!("/v1/hosts/{host}/pause"),
        Some(ADMIN),
        body.map(|b| b.to_string()),
    )
    .await
}

async fn get_host(f: &Fixture, host: &str) -> Value {
    let a = call(
        f,
        Method::GET,
        &format!("/v1/hosts/{host}"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    a.json()
}

#[tokio::test]
async fn a_pause_with_an_end_resumes_by_itself_and_says_so() {
    let f = fixture(&[]);
    let t0 = f.clock.now(); // 2023-11-14T22:13:20Z
    for host in ["web-01", "db-01"] {
        hb(&f, Some(ADMIN), json!({"host": host})).await;
    }
    let v = get_host(&f, "db-01").await;
    assert_eq!(
        (
            &v["paused_until"],
            &v["paused_indefinitely"],
            &v["silenced_until"],
            &v["silence"]
        ),
        (&Value::Null, &json!(false), &Value::Null, &Value::Null)
    );

    // No body: paused until resumed, and the API says so.
    let p = pause(&f, "web-01", None).await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.text);
    let v = p.json();
    assert_eq!(v["status"], "paused");
    assert_eq!(v["paused_until"], Value::Null);
    assert_eq!(v["paused_indefinitely"], true);
    assert_eq!(
        f.store.get(&h("web-01")).await.unwrap().unwrap().due_at,
        None
    );
    // `{}` is the same.
    assert_eq!(
        pause(&f, "web-01", Some(json!({}))).await.json()["paused_indefinitely"],
        true
    );

    // A duration.
    let p = pause(&f, "db-01", Some(json!({"for": "2h"}))).await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.text);
    let v = p.json();
    let end = t0 + chrono::TimeDelta::hours(2);
    assert_eq!(instant(&v["paused_until"]), end);
    assert_eq!(v["paused_indefinitely"], false);
    let stored = f.store.get(&h("db-01")).await.unwrap().unwrap();
    assert_eq!((stored.status, stored.due_at), (Status::Paused, Some(end)));
    // An end time in local time replaces the indefinite pause.
    let p = pause(
        &f,
        "web-01",
        Some(json!({"until": "2023-11-15 01:00", "tz": "Europe/Berlin"})),
    )
    .await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.text);
    assert_eq!(
        instant(&p.json()["paused_until"]),
        instant(&json!("2023-11-15T00:00:00Z"))
    );
    let p = pause(
        &f,
        "web-01",
        Some(json!({"until": "2023-11-15T00:30:00+01:00"})),
    )
    .await;
    assert_eq!(
        instant(&p.json()["paused_until"]),
        instant(&json!("2023-11-14T23:30:00Z"))
    );
    let listed = call(&f, Method::GET, "/v1/hosts", Some(ADMIN), None)
        .await
        .json();
    assert_eq!(listed["hosts"][0]["host"], "db-01");
    assert_eq!(instant(&listed["hosts"][0]["paused_until"]), end);

    // A heartbeat while paused does not end the pause.
    f.clock.advance(Duration::from_secs(3600));
    hb(&f, Some(ADMIN), json!({"host": "db-01"})).await;
    let _ = f.state.monitor().sweep().await.unwrap();
    let v = get_host(&f, "db-01").await;
    assert_eq!(
        (v["status"].as_str(), instant(&v["paused_until"])),
        (Some("paused"), end)
    );
    // At its end the sweep resumes it, with a full timeout from the end.
    f.clock.set(end - chrono::TimeDelta::milliseconds(1));
    let _ = f.state.monitor().sweep().await.unwrap();
    assert_eq!(get_host(&f, "db-01").await["status"], "paused");
    f.clock.set(end);
    let _ = f.state.monitor().sweep().await.unwrap();
    let v = get_host(&f, "db-01").await;
    assert_eq!(v["status"], "up");
    assert_eq!(v["paused_until"], Value::Null);
    assert_eq!(v["paused_indefinitely"], false);
    assert_eq!(instant(&v["due_at"]), end + chrono::TimeDelta::seconds(10));
    // Swept every 2 s, as a runner would (a longer gap between sweeps
    // counts as watcher downtime and earns the host a grace).
    for _ in 0..5 {
        f.clock.advance(Duration::from_secs(2));
        let _ = f.state.monitor().sweep().await.unwrap();
    }
    assert_eq!(f.clock.now(), end + chrono::TimeDelta::seconds(10));
    let alarms: Vec<_> = f
        .channel
        .notices()
        .into_iter()
        .filter(|n| n.kind == NoticeKind::Alarm)
        .map(|n| n.host.to_string())
        .collect();
    assert!(alarms.contains(&"db-01".to_owned()), "{alarms:?}");
}

#[tokio::test]
async fn bad_pauses_are_400_with_a_reason_and_change_nothing() {
    let f = fixture(&[]);
    hb(&f, Some(ADMIN), json!({"host": "db-01"})).await;
    let before = snapshot(&f).await;
    for (body, needle) in [
        (json!({"until": "2023-11-14T22:00:00Z"}), "in the past"),
        (json!({"until": "2023-11-14T22:13:20Z"}), "in the past"),
        (
            json!({"until": "2023-11-14 23:00", "tz": "Europe/Berlin"}),
            "in the past",
        ),
        (json!({"until": "2025-01-01T00:00:00Z"}), "more than 1 year"),
        (json!({"for": "366d"}), "longer than 1 year"),
        (json!({"for": "0s"}), "longer than zero"),
        (
            json!({"for": "2h", "until": "2023-11-15T00:00:00Z"}),
            "not both",
        ),
        (json!({"until": "2023-11-15 10:00"}), "no UTC offset"),
        (
            json!({"until": "2023-11-15 10:00", "tz": "Mars/Olympus"}),
            "unknown time zone",
        ),
        (json!({"for": "2h", "tz": "Berlin"}), "unknown time zone"),
        (json!({"until": "soon"}), "neither RFC 3339"),
        (json!({"for": "soon"}), "body must be empty"),
        (json!({"pause": "2h"}), "pause"),
        // A zone alone would pause until resumed, which it never meant.
        (json!({"tz": "UTC"}), "tz goes with until"),
    ] {
        pause(&f, "db-01", Some(body.clone()))
            .await
            .rejected(StatusCode::BAD_REQUEST, needle);
        assert_eq!(snapshot(&f).await, before, "{body} changed the store");
    }
    call(
        &f,
        Method::POST,
        "/v1/hosts/db-01/pause",
        Some(ADMIN),
        Some("x".into()),
    )
    .await
    .rejected(StatusCode::BAD_REQUEST, "body must be empty");
    // A year is allowed; an unknown host is still a 404.
    pause(&f, "nope", Some(json!({"for": "1y"})))
        .await
        .rejected(StatusCode::NOT_FOUND, "unknown host");
    assert_eq!(snapshot(&f).await, before);
    assert_eq!(
        pause(&f, "db-01", Some(json!({"for": "1y"}))).await.status,
        StatusCode::OK
    );
}

async fn silence(f: &Fixture, body: Value) -> Answer {
    call(
        f,
        Method::POST,
        "/v1/silences",
        Some(ADMIN),
        Some(body.to_string()),
    )
    .await
}

#[tokio::test]
async fn silences_in_local_time_and_repeating_and_the_host_view_shows_them() {
    let f = fixture(&[]);
    // Now is 2023-11-14T22:13:20Z, 23:13:20 in Berlin.
    hb(&f, Some(ADMIN), json!({"host": "web-01"})).await;
    hb(&f, Some(ADMIN), json!({"host": "db-01"})).await;
    let s = silence(
        &f,
        json!({"id": "tonight", "hosts": "web-*", "starts_at": "2023-11-14 23:00",
               "tz": "Europe/Berlin", "for": "2h", "reason": "switch swap"}),
    )
    .await;
    assert_eq!(s.status, StatusCode::CREATED, "{}", s.text);
    let v = s.json();
    assert_eq!(
        instant(&v["starts_at"]),
        instant(&json!("2023-11-14T22:00:00Z"))
    );
    assert_eq!(
        instant(&v["ends_at"]),
        instant(&json!("2023-11-15T00:00:00Z"))
    );
    assert_eq!(v["active"], true);
    assert!(v.get("repeat").is_none(), "{v}");
    // The recipe: web-* every evening 19:00-20:00 Berlin time.
    let s = silence(
        &f,
        json!({"id": "images", "hosts": "web-*", "starts_at": "2023-11-15 19:00",
               "tz": "Europe/Berlin", "repeat": "daily", "duration": "1h",
               "reason": "recovery images"}),
    )
    .await;
    assert_eq!(s.status, StatusCode::CREATED, "{}", s.text);
    let v = s.json();
    assert_eq!(v["repeat"]["cron"], "0 19 * * *");
    assert_eq!(v["repeat"]["tz"], "Europe/Berlin");
    assert_eq!(v["repeat"]["duration"], "1h");
    assert_eq!(v["repeat"]["until"], Value::Null);
    assert_eq!(v["active"], false);
    assert_eq!(
        (
            instant(&v["next_window"]["starts_at"]),
            instant(&v["next_window"]["ends_at"])
        ),
        (
            instant(&json!("2023-11-15T18:00:00Z")),
            instant(&json!("2023-11-15T19:00:00Z"))
        )
    );
    // A cron expression with a time zone, and an end of the series.
    let s = silence(
        &f,
        json!({"id": "backup", "hosts": "db-*", "repeat": "30 2 * * SUN", "tz": "Europe/Berlin",
               "for": "1h", "until": "2024-06-01 00:00"}),
    )
    .await;
    assert_eq!(s.status, StatusCode::CREATED, "{}", s.text);
    let v = s.json();
    assert_eq!(
        instant(&v["repeat"]["until"]),
        instant(&json!("2024-05-31T22:00:00Z"))
    );
    assert_eq!(
        instant(&v["next_window"]["starts_at"]),
        instant(&json!("2023-11-19T01:30:00Z")),
        "Sunday 02:30 CET"
    );
    // The first window ends on ends_at: a daily window given as 19:00-20:00.
    let s = silence(
        &f,
        json!({"id": "images-2", "hosts": "web-9*", "starts_at": "2023-11-15T19:00:00+01:00",
               "ends_at": "2023-11-15T20:00:00+01:00", "tz": "Europe/Berlin", "repeat": "daily"}),
    )
    .await;
    assert_eq!(s.status, StatusCode::CREATED, "{}", s.text);
    assert_eq!(s.json()["repeat"]["duration"], "1h");

    // The host view names what covers it now and when that ends.
    let v = get_host(&f, "web-01").await;
    assert_eq!(
        instant(&v["silenced_until"]),
        instant(&json!("2023-11-15T00:00:00Z"))
    );
    assert_eq!(v["silence"]["id"], "tonight");
    assert_eq!(v["silence"]["reason"], "switch swap");
    assert_eq!(
        instant(&v["silence"]["ends_at"]),
        instant(&json!("2023-11-15T00:00:00Z"))
    );
    assert_eq!(get_host(&f, "db-01").await["silence"], Value::Null);
    // The next evening, inside the repeating window.
    f.clock.set(instant(&json!("2023-11-15T18:30:00Z")));
    hb(&f, Some(ADMIN), json!({"host": "web-01"})).await;
    let v = get_host(&f, "web-01").await;
    assert_eq!(v["silence"]["id"], "images");
    assert_eq!(
        instant(&v["silenced_until"]),
        instant(&json!("2023-11-15T19:00:00Z"))
    );
    let listed = call(&f, Method::GET, "/v1/hosts", Some(ADMIN), None)
        .await
        .json();
    let web = listed["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["host"] == "web-01")
        .unwrap()
        .clone();
    assert_eq!(web["silence"]["id"], "images");
    let all = call(&f, Method::GET, "/v1/silences", Some(ADMIN), None)
        .await
        .json();
    let images = all["silences"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["id"] == "images")
        .unwrap()
        .clone();
    assert_eq!(images["active"], true);
    // Inside the window the host's alarm waits for its end.
    f.clock.set(instant(&json!("2023-11-15T18:50:00Z")));
    let _ = f.state.monitor().sweep().await.unwrap();
    assert_eq!(
        f.store.get(&h("web-01")).await.unwrap().unwrap().status,
        Status::Missing
    );
    assert_eq!(f.channel.count(NoticeKind::Alarm), 1, "only db-01");
    f.clock.set(instant(&json!("2023-11-15T19:00:00Z")));
    let _ = f.state.monitor().sweep().await.unwrap();
    assert_eq!(
        f.channel.count(NoticeKind::Alarm),
        2,
        "web-01 when the window ends"
    );
    let ids: Vec<String> = f
        .store
        .silences()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(ids.len(), 3, "only the one-off silence was purged: {ids:?}");
    assert!(!ids.contains(&"tonight".to_owned()));
}

#[tokio::test]
async fn bad_silences_are_400_with_a_reason_and_store_nothing() {
    let f = fixture(&[]);
    for (body, needle) in [
        (
            json!({"hosts": "db-*", "starts_at": "2023-11-14T10:00:00Z", "ends_at": "2023-11-14T12:00:00Z"}),
            "already ended",
        ),
        (
            json!({"hosts": "db-*", "starts_at": "2023-11-14 10:00", "tz": "Europe/Berlin", "for": "1h"}),
            "already ended",
        ),
        (
            json!({"hosts": "db-*", "repeat": "daily", "starts_at": "2023-11-01 19:00",
                   "tz": "Europe/Berlin", "duration": "1h", "until": "2023-11-10T00:00:00Z"}),
            "already ended",
        ),
        (
            json!({"hosts": "db-*", "starts_at": "2023-11-15 19:00", "tz": "Berlin", "duration": "1h"}),
            "unknown time zone 'Berlin'",
        ),
        (
            json!({"hosts": "db-*", "repeat": "0 19 * * *", "tz": "Nowhere/Land", "duration": "1h"}),
            "unknown time zone",
        ),
        (
            json!({"hosts": "db-*", "repeat": "0 25 * * *", "tz": "UTC", "duration": "1h"}),
            "invalid cron expression",
        ),
        (
            json!({"hosts": "db-*", "repeat": "weekly-ish", "tz": "UTC", "duration": "1h"}),
            "invalid cron expression",
        ),
        (
            json!({"hosts": "db-*", "starts_at": "2023-11-15 19:00", "duration": "1h"}),
            "no UTC offset",
        ),
        (
            json!({"hosts": "db-*", "starts_at": "2024-03-31 02:30", "tz": "Europe/Berlin", "duration": "1h"}),
            "does not exist",
        ),
        (
            json!({"hosts": "db-*", "repeat": "daily", "starts_at": "2023-11-15T19:00:00Z", "duration": "1h"}),
            "needs tz",
        ),
        (
            json!({"hosts": "db-*", "repeat": "daily", "tz": "UTC", "duration": "1h"}),
            "needs starts_at",
        ),
        (
            json!({"hosts": "db-*", "repeat": "0 19 * * *", "tz": "UTC"}),
            "exactly one",
        ),
        (
            json!({"hosts": "db-*", "repeat": "0 19 * * *", "tz": "UTC", "duration": "0s"}),
            "greater than zero",
        ),
        (
            json!({"hosts": "db-*", "duration": "1h", "for": "1h"}),
            "not both",
        ),
        (
            json!({"hosts": "db-*", "duration": "1h", "until": "2024-01-01T00:00:00Z"}),
            "until ends a repeating",
        ),
        (json!({"hosts": "db-*", "repeat": "daily"}), "needs tz"),
    ] {
        silence(&f, body.clone())
            .await
            .rejected(StatusCode::BAD_REQUEST, needle);
        assert!(
            f.store.silences().await.unwrap().is_empty(),
            "{body} stored a silence"
        );
    }
}

/// Each job signal on the manual clock, through the real Router: a failure
/// (by `/fail`, `/<1-255>` or JSON) alarms at the next sweep with the body
/// as its reason and the next success recovers it; a start is not a
/// success, and the success that ends it reports the run's duration; a log
/// changes nothing; `?rid=` pairs overlapping runs.
#[tokio::test]
async fn job_signals() {
    let f = fixture(&[]);
    let ping = |path: String, body: Option<&str>| {
        let f = &f;
        let body = body.map(str::to_owned);
        async move {
            call(
                f,
                Method::POST,
                &format!("/ping/{AGENT}/{path}"),
                None,
                body,
            )
            .await
        }
    };
    let sweep = || async { f.state.monitor().sweep().await.unwrap() };
    let status = |host: &'static str| {
        let store = f.store.clone();
        async move { store.get(&h(host)).await.unwrap().unwrap().status }
    };

    // A failure on a host never seen: created, and alarmed at once.
    let a = ping("web-backup/fail".into(), Some("disk full")).await;
    assert_eq!((a.status, a.text.as_str()), (StatusCode::OK, "OK"));
    let _ = sweep().await;
    assert_eq!(status("web-backup").await, Status::Alarmed);
    let alarm = f.channel.notices().pop().unwrap();
    assert_eq!(alarm.kind, NoticeKind::Alarm);
    assert_eq!(alarm.headline(), "web-backup reported a failure: disk full");

    // The next success recovers it, the all-clear says what happened.
    f.clock.advance(Duration::from_secs(1));
    ping("web-backup".into(), None).await;
    let _ = sweep().await;
    assert_eq!(status("web-backup").await, Status::Up);
    let clear = f.channel.notices().pop().unwrap();
    assert_eq!(clear.kind, NoticeKind::Recovery);
    let summary = clear
        .job
        .as_deref()
        .and_then(|j| j.summary.clone())
        .unwrap();
    assert!(summary.starts_with("failed once since "), "{summary}");
    assert!(summary.ends_with(": disk full"), "{summary}");

    // An exit status is a failure, `/0` a success.
    f.clock.advance(Duration::from_secs(1));
    ping("web-backup/3".into(), Some("tar: short read")).await;
    let _ = sweep().await;
    let alarm = f.channel.notices().pop().unwrap();
    assert_eq!(
        alarm.headline(),
        "web-backup reported a failure: exit status 3: tar: short read"
    );
    f.clock.advance(Duration::from_secs(1));
    ping("web-backup/0".into(), None).await;
    let _ = sweep().await;
    assert_eq!(status("web-backup").await, Status::Up);
    assert_eq!(f.channel.count(NoticeKind::Recovery), 2);

    // A start is not a success: `last_seen` stays where the last success
    // put it.
    let seen = f
        .store
        .get(&h("web-backup"))
        .await
        .unwrap()
        .unwrap()
        .last_seen;
    f.clock.advance(Duration::from_secs(2));
    ping("web-backup/start".into(), None).await;
    let rec = f.store.get(&h("web-backup")).await.unwrap().unwrap();
    assert_eq!(rec.last_seen, seen, "a start is not a success");
    f.clock.advance(Duration::from_secs(3));
    // The success that ends it reports the duration.
    let a = hb(
        &f,
        Some(AGENT),
        json!({"host": "web-backup", "status": "success"}),
    )
    .await;
    assert_eq!(a.json()["duration_s"], 3.0, "{}", a.text);

    // A log line changes nothing.
    let before = f.store.get(&h("web-backup")).await.unwrap().unwrap();
    let a = ping("web-backup/log".into(), Some("50% done")).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(
        f.store.get(&h("web-backup")).await.unwrap().unwrap(),
        before
    );

    // Overlapping runs, paired by rid (in the query or the JSON).
    ping("web-backup/start?rid=run-a".into(), None).await;
    f.clock.advance(Duration::from_secs(1));
    hb(
        &f,
        Some(AGENT),
        json!({"host": "web-backup", "status": "start", "rid": "run-b"}),
    )
    .await;
    f.clock.advance(Duration::from_secs(1));
    let a = hb(
        &f,
        Some(AGENT),
        json!({"host": "web-backup", "status": "success", "rid": "run-a"}),
    )
    .await;
    assert_eq!(a.json()["duration_s"], 2.0, "{}", a.text);
    f.clock.advance(Duration::from_secs(1));
    let a = hb(
        &f,
        Some(AGENT),
        json!({"host": "web-backup", "status": "success", "rid": "run-b"}),
    )
    .await;
    assert_eq!(a.json()["duration_s"], 2.0, "{}", a.text);

    // A JSON failure alarms too; its message is the reason.
    f.clock.advance(Duration::from_secs(1));
    hb(
        &f,
        Some(AGENT),
        json!({"host": "web-backup", "status": "fail", "message": "certificate not renewed"}),
    )
    .await;
    let _ = sweep().await;
    assert_eq!(
        f.channel.notices().pop().unwrap().headline(),
        "web-backup reported a failure: certificate not renewed"
    );

    // The event log, newest first: the failure, then the alarm it caused.
    let uri = "/v1/hosts/web-backup/events?limit=2";
    let a = call(&f, Method::GET, uri, Some(ADMIN), None).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let events = a.json()["events"].as_array().unwrap().clone();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["kind"], "alarm");
    assert_eq!(events[1]["kind"], "fail");
    assert_eq!(events[1]["message"], "certificate not renewed");
    let all = call(
        &f,
        Method::GET,
        "/v1/hosts/web-backup/events",
        Some(ADMIN),
        None,
    )
    .await;
    let kinds: Vec<_> = all.json()["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_owned())
        .collect();
    for k in ["recovery", "start", "log", "success"] {
        assert!(kinds.contains(&k.to_owned()), "{k} in {kinds:?}");
    }
    call(
        &f,
        Method::GET,
        "/v1/hosts/web-backup/events?limit=0",
        Some(ADMIN),
        None,
    )
    .await
    .rejected(StatusCode::BAD_REQUEST, "limit must be");
    call(
        &f,
        Method::GET,
        "/v1/hosts/web-backup/events",
        Some(AGENT),
        None,
    )
    .await
    .rejected(StatusCode::FORBIDDEN, "heartbeat-only");
    call(
        &f,
        Method::GET,
        "/v1/hosts/web-nobody/events",
        Some(ADMIN),
        None,
    )
    .await
    .rejected(StatusCode::NOT_FOUND, "unknown host");

    // Bad input: a clear 4xx and nothing written.
    let before = snapshot(&f).await;
    hb(
        &f,
        Some(AGENT),
        json!({"host": "web-backup", "status": "done"}),
    )
    .await
    .rejected(StatusCode::BAD_REQUEST, "status must be one of");
    hb(
        &f,
        Some(AGENT),
        json!({"host": "web-backup", "status": "start", "rid": "a b"}),
    )
    .await
    .rejected(StatusCode::BAD_REQUEST, "rid must be");
    ping("web-backup/start?rid=%20".into(), None)
        .await
        .rejected(StatusCode::BAD_REQUEST, "rid must be");
    ping("web-backup/fail?rid=x&rid=y".into(), None)
        .await
        .rejected(StatusCode::BAD_REQUEST, "query string");
    assert_eq!(snapshot(&f).await, before);
}

/// After a failure, a `/0` success answers it at once in the API
/// (`failing: false`) although the failure stays in `job` until the
/// sweep, woken by the success, sends the all-clear that summarises it;
/// then the host is up and the failure gone.
#[tokio::test]
async fn a_success_answers_a_failure_in_the_api_before_the_sweep() {
    let f = fixture(&[]);
    let view = || async {
        let a = call(&f, Method::GET, "/v1/hosts/web-job", Some(ADMIN), None).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
        a.json()
    };
    let ping = |path: String| {
        let f = &f;
        async move { call(f, Method::POST, &path, None, Some("disk full".to_owned())).await }
    };
    ping(format!("/ping/{AGENT}/web-job/fail")).await;
    let v = view().await;
    assert_eq!(v["failing"], true, "{v}");
    let _ = f.state.monitor().sweep().await.unwrap();
    assert_eq!(view().await["status"], "alarmed");

    f.clock.advance(Duration::from_secs(1));
    ping(format!("/ping/{AGENT}/web-job/0")).await;
    let v = view().await;
    assert_eq!(v["failing"], false, "answered at once: {v}");
    assert_eq!(
        v["job"]["failure"]["reason"], "disk full",
        "kept for the all-clear: {v}"
    );
    let _ = f.state.monitor().sweep().await.unwrap();
    let v = view().await;
    assert_eq!(
        (v["status"].as_str(), v["failing"].as_bool()),
        (Some("up"), Some(false)),
        "{v}"
    );
    assert!(v["job"].is_null() || v["job"]["failure"].is_null(), "{v}");
    assert_eq!(f.channel.count(NoticeKind::Recovery), 1);
}

/// A success that creates its host is logged and answered like any other:
/// by a ping URL and by a JSON heartbeat with a status or a run id.
#[tokio::test]
async fn a_success_that_creates_its_host_is_logged_and_answered_as_a_signal() {
    let f = fixture(&[]);
    let events = |host: &'static str| {
        let f = &f;
        async move {
            call(
                f,
                Method::GET,
                &format!("/v1/hosts/{host}/events"),
                Some(ADMIN),
                None,
            )
            .await
            .json()["events"]
                .as_array()
                .unwrap()
                .clone()
        }
    };
    let a = call(
        &f,
        Method::GET,
        &format!("/ping/{AGENT}/web-new-job/0"),
        None,
        None,
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    let logged = events("web-new-job").await;
    assert_eq!(logged.len(), 1, "{logged:?}");
    assert_eq!(logged[0]["kind"], "success");

    let a = hb(
        &f,
        Some(AGENT),
        json!({"host": "web-json-job", "status": "success", "rid": "r1", "message": "v2 deployed"}),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let a = a.json();
    assert_eq!(a["status"], "created");
    assert_eq!(a["signal"], "success");
    assert_eq!(a["rid"], "r1");
    assert!(a["duration_s"].is_null(), "{a}");
    let logged = events("web-json-job").await;
    assert_eq!(logged.len(), 1, "{logged:?}");
    assert_eq!(logged[0]["kind"], "success");
    assert_eq!(logged[0]["rid"], "r1");
    assert_eq!(logged[0]["message"], "v2 deployed");
    let rec = f.store.get(&h("web-json-job")).await.unwrap().unwrap();
    assert_eq!(rec.message.as_deref(), Some("v2 deployed"));
    assert_eq!(rec.status, Status::Up);
}
