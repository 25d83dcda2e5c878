//! A leaked key cannot flood the watcher, a restricted key learns nothing
//! beyond its hosts, and what agents send is bounded and cleaned; through
//! the real Router on a manual clock. Every refusal writes nothing.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{Method, Request, StatusCode, header};
use futures::StreamExt;
use iamalive_core::testing::RecordingNotifier;
use iamalive_core::{
    Clock, HostId, HostRecord, ManualClock, MemoryStore, NoticeKind, Notifier, Store,
};
use iamalive_server::{AppState, Config, router};
use serde_json::{Value, json};
use tower::ServiceExt;

const ADMIN: &str = "admin-key-0123456789";
const AGENT: &str = "agent-key-0123456789";
/// An admin key limited to `web-*`.
const WEB_ADMIN: &str = "web-admin-key-0123456789";
/// A heartbeat key for every host that may not create hosts.
const LOCKED: &str = "locked-key-0123456789";

struct Fixture {
    state: AppState,
    store: Arc<MemoryStore>,
    clock: ManualClock,
    channel: RecordingNotifier,
}

fn fixture_with(store: Arc<MemoryStore>, extra_env: &[(&str, &str)]) -> Fixture {
    let mut env = vec![
        (
            "IAMALIVE_API_KEYS".to_owned(),
            format!(
                "{ADMIN};name=ops,{AGENT};role=heartbeat;hosts=web-*;name=web-agents,\
                 {WEB_ADMIN};hosts=web-*;name=web-ops,{LOCKED};role=heartbeat;register=false;name=locked"
            ),
        ),
        ("IAMALIVE_TIMEOUT".to_owned(), "10s".to_owned()),
        ("IAMALIVE_REMINDER_INTERVAL".to_owned(), "60s".to_owned()),
        ("IAMALIVE_RATE_LIMIT_PER_KEY".to_owned(), "off".to_owned()),
        ("IAMALIVE_RATE_LIMIT_GLOBAL".to_owned(), "off".to_owned()),
    ];
    env.extend(
        extra_env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    let config = Config::from_sources(None, env).unwrap();
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

fn fixture(extra_env: &[(&str, &str)]) -> Fixture {
    fixture_with(Arc::new(MemoryStore::new()), extra_env)
}

struct Answer {
    status: StatusCode,
    text: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.text))
    }

    fn ok(&self) -> Value {
        assert!(self.status.is_success(), "{} {}", self.status, self.text);
        self.json()
    }

    fn rejected(&self, status: StatusCode, needle: &str) {
        assert_eq!(self.status, status, "{}", self.text);
        let err = self.json()["error"].as_str().unwrap_or_default().to_owned();
        assert!(err.contains(needle), "{err:?} lacks {needle:?}");
    }
}

async fn send(f: &Fixture, req: Request<Body>) -> Answer {
    let res = router(f.state.clone()).oneshot(req).await.unwrap();
    let status = res.status();
    let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
        .await
        .unwrap();
    Answer {
        status,
        text: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

async fn call(f: &Fixture, method: Method, uri: &str, key: Option<&str>, body: &str) -> Answer {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(k) = key {
        req = req.header(header::AUTHORIZATION, format!("Bearer {k}"));
    }
    let req = req
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_owned()))
        .unwrap();
    send(f, req).await
}

async fn hb(f: &Fixture, key: &str, body: Value) -> Answer {
    call(
        f,
        Method::POST,
        "/v1/heartbeat",
        Some(key),
        &body.to_string(),
    )
    .await
}

async fn beat(f: &Fixture, key: &str, host: &str) -> Answer {
    hb(f, key, json!({ "host": host })).await
}

fn h(s: &str) -> HostId {
    HostId::new(s).unwrap()
}

async fn snapshot(f: &Fixture) -> Vec<HostRecord> {
    f.store.list(None, 100_000).await.unwrap()
}

fn names(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|h| {
            h.as_str()
                .unwrap_or_else(|| h["host"].as_str().unwrap())
                .to_owned()
        })
        .collect()
}

/// The watcher notices the channel got, after a sweep.
async fn degraded(f: &Fixture) -> Vec<String> {
    let _ = f.state.monitor().sweep().await.unwrap();
    f.channel
        .notices()
        .iter()
        .filter(|n| n.kind == NoticeKind::Degraded)
        .map(|n| n.message.clone().unwrap_or_default())
        .collect()
}

// ---- 3. A leaked key cannot flood it ----

#[tokio::test]
async fn a_key_creates_at_most_its_new_hosts_per_period_and_the_operator_hears_once() {
    let f = fixture(&[("IAMALIVE_MAX_NEW_HOSTS_PER_KEY", "3/1h")]);
    for i in 1..=3 {
        let a = beat(&f, AGENT, &format!("web-{i}")).await.ok();
        assert_eq!(a["status"], "created");
    }
    let before = snapshot(&f).await;
    for i in 4..=6 {
        beat(&f, AGENT, &format!("web-{i}")).await.rejected(
            StatusCode::TOO_MANY_REQUESTS,
            "IAMALIVE_MAX_NEW_HOSTS_PER_KEY",
        );
    }
    // The ping form is capped too.
    let a = call(&f, Method::GET, &format!("/ping/{AGENT}/web-7"), None, "").await;
    a.rejected(StatusCode::TOO_MANY_REQUESTS, "at most 3 new hosts per 1h");
    assert_eq!(snapshot(&f).await, before, "a refused host is not written");

    // Known hosts are still heard; another key may still create.
    assert_eq!(beat(&f, AGENT, "web-1").await.ok()["status"], "ok");
    assert_eq!(beat(&f, ADMIN, "db-1").await.ok()["status"], "created");

    // One notice to the operator, naming the key and the cap.
    let said = degraded(&f).await;
    assert_eq!(said.len(), 1, "{said:?}");
    assert!(
        said[0].contains("web-agents") && said[0].contains("new_hosts_per_key"),
        "{}",
        said[0]
    );
    beat(&f, AGENT, "web-8")
        .await
        .rejected(StatusCode::TOO_MANY_REQUESTS, "web-agents");
    assert_eq!(
        degraded(&f).await.len(),
        1,
        "once per hour, not per refusal"
    );

    // An hour later the key may create again, and a new refusal is told again.
    f.clock.advance(Duration::from_secs(3600));
    assert_eq!(beat(&f, AGENT, "web-4").await.ok()["status"], "created");
    for i in 5..=7 {
        beat(&f, AGENT, &format!("web-{i}")).await;
    }
    beat(&f, AGENT, "web-9")
        .await
        .rejected(StatusCode::TOO_MANY_REQUESTS, "new hosts");
    assert_eq!(degraded(&f).await.len(), 2);
}

#[tokio::test]
async fn the_total_host_cap_counts_the_hosts_already_stored() {
    let store = Arc::new(MemoryStore::new());
    let t = ManualClock::at_millis(1_700_000_000_000);
    for name in ["old-1", "old-2"] {
        let hb = iamalive_core::Heartbeat::new(h(name), iamalive_core::Clock::now(&t));
        store
            .record_heartbeat(&hb, iamalive_core::Clock::now(&t), true)
            .await
            .unwrap();
    }
    let f = fixture_with(store, &[("IAMALIVE_MAX_HOSTS", "3")]);
    assert_eq!(beat(&f, ADMIN, "new-1").await.ok()["status"], "created");
    let before = snapshot(&f).await;
    beat(&f, ADMIN, "new-2")
        .await
        .rejected(StatusCode::TOO_MANY_REQUESTS, "IAMALIVE_MAX_HOSTS");
    beat(&f, AGENT, "web-1")
        .await
        .rejected(StatusCode::TOO_MANY_REQUESTS, "at most 3 hosts");
    assert_eq!(snapshot(&f).await, before);
    assert_eq!(beat(&f, ADMIN, "old-1").await.ok()["status"], "ok");
    let said = degraded(&f).await;
    assert_eq!(said.len(), 1, "{said:?}");
    assert!(said[0].contains("max_hosts"), "{}", said[0]);

    // Removing a host makes room.
    call(&f, Method::DELETE, "/v1/hosts/old-2", Some(ADMIN), "")
        .await
        .ok();
    assert_eq!(beat(&f, ADMIN, "new-2").await.ok()["status"], "created");
    beat(&f, ADMIN, "new-3")
        .await
        .rejected(StatusCode::TOO_MANY_REQUESTS, "max_hosts");
    assert_eq!(degraded(&f).await.len(), 1);
}

#[tokio::test]
async fn a_key_limited_to_existing_hosts_creates_nothing() {
    let f = fixture(&[]);
    let before = snapshot(&f).await;
    beat(&f, LOCKED, "junk-1")
        .await
        .rejected(StatusCode::FORBIDDEN, "register=false");
    let a = call(
        &f,
        Method::POST,
        &format!("/ping/{LOCKED}/junk-2/fail"),
        None,
        "x",
    )
    .await;
    a.rejected(StatusCode::FORBIDDEN, "unknown");
    assert_eq!(snapshot(&f).await, before);
    // Once an admin registers the host, the key speaks for it.
    assert_eq!(
        call(&f, Method::PUT, "/v1/hosts/db-1", Some(ADMIN), "")
            .await
            .status,
        StatusCode::CREATED
    );
    assert_eq!(beat(&f, LOCKED, "db-1").await.ok()["status"], "ok");
}

#[tokio::test]
async fn hosts_are_removed_by_pattern_with_a_dry_run_first() {
    let f = fixture(&[("IAMALIVE_MAX_NEW_HOSTS_PER_KEY", "off")]);
    for i in 0..120 {
        beat(&f, ADMIN, &format!("junk-{i:03}")).await.ok();
    }
    for host in ["web-1", "web-junk-1", "db-1"] {
        beat(&f, ADMIN, host).await.ok();
    }
    let before = snapshot(&f).await;

    let a = call(
        &f,
        Method::DELETE,
        "/v1/hosts?pattern=junk-*&dry_run=true",
        Some(ADMIN),
        "",
    )
    .await
    .ok();
    assert_eq!(a["matched"], 120);
    assert_eq!(a["deleted"], 0);
    let listed = names(&a["hosts"]);
    assert_eq!(listed.len(), 100, "the first 100 names");
    assert_eq!(listed[0], "junk-000");
    assert_eq!(listed[99], "junk-099");
    assert_eq!(snapshot(&f).await, before, "a dry run deletes nothing");

    // Refusals change nothing either.
    for (uri, key, status, needle) in [
        ("/v1/hosts", ADMIN, StatusCode::BAD_REQUEST, "pattern="),
        (
            "/v1/hosts?pattern=junk%20*",
            ADMIN,
            StatusCode::BAD_REQUEST,
            "invalid host pattern",
        ),
        (
            "/v1/hosts?pattern=junk-*&dry_run=maybe",
            ADMIN,
            StatusCode::BAD_REQUEST,
            "dry_run",
        ),
        (
            "/v1/hosts?pattern=junk-*",
            AGENT,
            StatusCode::FORBIDDEN,
            "heartbeat-only",
        ),
        // A limit out of range is refused, never clamped to one host.
        (
            "/v1/hosts?pattern=junk-*&limit=0",
            ADMIN,
            StatusCode::BAD_REQUEST,
            "limit must be 1 to 10000, not 0",
        ),
        (
            "/v1/hosts?pattern=junk-*&limit=10001",
            ADMIN,
            StatusCode::BAD_REQUEST,
            "limit must be 1 to 10000",
        ),
        (
            "/v1/hosts?pattern=junk-*&limit=-1",
            ADMIN,
            StatusCode::BAD_REQUEST,
            "invalid query",
        ),
    ] {
        call(&f, Method::DELETE, uri, Some(key), "")
            .await
            .rejected(status, needle);
    }
    assert_eq!(snapshot(&f).await, before);
    for uri in ["/v1/hosts?limit=0", "/v1/hosts?limit=1001"] {
        call(&f, Method::GET, uri, Some(ADMIN), "")
            .await
            .rejected(StatusCode::BAD_REQUEST, "limit must be 1 to 1000");
    }

    // A key limited to web-* removes only within its own hosts.
    let a = call(
        &f,
        Method::DELETE,
        "/v1/hosts?pattern=*junk*",
        Some(WEB_ADMIN),
        "",
    )
    .await
    .ok();
    assert_eq!(
        (a["matched"].as_u64(), a["deleted"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(names(&a["hosts"]), ["web-junk-1"]);

    // Bounded per request: what is left is said, and the next call goes on.
    let a = call(
        &f,
        Method::DELETE,
        "/v1/hosts?pattern=junk-*&limit=100",
        Some(ADMIN),
        "",
    )
    .await
    .ok();
    assert_eq!(
        (a["deleted"].as_u64(), a["remaining"].as_u64()),
        (Some(100), Some(20))
    );
    let a = call(
        &f,
        Method::DELETE,
        "/v1/hosts?pattern=junk-*",
        Some(ADMIN),
        "",
    )
    .await
    .ok();
    assert_eq!(
        (a["deleted"].as_u64(), a["remaining"].as_u64()),
        (Some(20), Some(0))
    );
    let left: Vec<String> = snapshot(&f)
        .await
        .iter()
        .map(|r| r.host.to_string())
        .collect();
    assert_eq!(left, ["db-1", "web-1"]);
}

#[tokio::test]
async fn a_restricted_key_pages_over_its_own_hosts_and_sees_only_their_silences() {
    let f = fixture(&[]);
    for host in [
        "aaa-secret-payroll",
        "wa-1",
        "web-1",
        "web-2",
        "web-3",
        "webx",
        "zzz-secret",
    ] {
        beat(&f, ADMIN, host).await.ok();
    }
    // Page by page, one host at a time: never a name outside web-*.
    let mut seen = Vec::new();
    let mut uri = "/v1/hosts?limit=1".to_owned();
    for _ in 0..10 {
        let a = call(&f, Method::GET, &uri, Some(WEB_ADMIN), "").await.ok();
        let page = names(&a["hosts"]);
        seen.extend(page.iter().cloned());
        match a["next_after"].as_str() {
            Some(next) => {
                assert!(next.starts_with("web-"), "the cursor names {next}");
                uri = format!("/v1/hosts?limit=1&after={next}");
            }
            None => break,
        }
    }
    assert_eq!(seen, ["web-1", "web-2", "web-3"]);
    // A cursor before its hosts, or a page larger than them.
    let a = call(
        &f,
        Method::GET,
        "/v1/hosts?after=aaa&limit=2",
        Some(WEB_ADMIN),
        "",
    )
    .await
    .ok();
    assert_eq!(names(&a["hosts"]), ["web-1", "web-2"]);
    assert_eq!(a["next_after"], "web-2");
    let a = call(&f, Method::GET, "/v1/hosts", Some(WEB_ADMIN), "")
        .await
        .ok();
    assert_eq!(names(&a["hosts"]), ["web-1", "web-2", "web-3"]);
    assert_eq!(a["next_after"], Value::Null);
    // The full admin still sees everything.
    let a = call(&f, Method::GET, "/v1/hosts", Some(ADMIN), "")
        .await
        .ok();
    assert_eq!(a["hosts"].as_array().unwrap().len(), 7);

    for (id, hosts, reason) in [
        ("s-payroll", "aaa-*", "payroll migration"),
        ("s-web", "web-*", "web deploy"),
        ("s-all", "*", "provider maintenance"),
        ("s-db", "db-?", "db failover"),
    ] {
        let body = json!({"id": id, "hosts": hosts, "duration": "2h", "reason": reason});
        assert_eq!(
            call(
                &f,
                Method::POST,
                "/v1/silences",
                Some(ADMIN),
                &body.to_string()
            )
            .await
            .status,
            StatusCode::CREATED
        );
    }
    let a = call(&f, Method::GET, "/v1/silences", Some(WEB_ADMIN), "")
        .await
        .ok();
    let mut ids: Vec<&str> = a["silences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, ["s-all", "s-web"]);
    assert!(!a.to_string().contains("payroll"), "{a}");
    let a = call(&f, Method::GET, "/v1/silences", Some(ADMIN), "")
        .await
        .ok();
    assert_eq!(a["silences"].as_array().unwrap().len(), 4);
}

// ---- 4. Smaller holes ----

#[tokio::test]
async fn control_characters_never_reach_the_store_or_a_notice() {
    let f = fixture(&[]);
    let report = json!({"since": "2026-01-01T00:00:00Z", "failed_attempts": 2,
        "failures": [{"kind": "dns", "detail": "no \u{1b}[2Jsuch\r\nhost\u{0}", "count": 2}]});
    hb(
        &f,
        ADMIN,
        json!({"host": "db-1", "message": "ok\u{0}\u{1b}[31m red\r\nnext\rline\u{7f}\u{85}\tend",
               "report": report}),
    )
    .await
    .ok();
    let rec = f.store.get(&h("db-1")).await.unwrap().unwrap();
    assert_eq!(rec.message.as_deref(), Some("ok[31m red\nnext\nline\tend"));
    let stored: Value = serde_json::from_str(rec.report.as_deref().unwrap()).unwrap();
    assert_eq!(stored["failures"][0]["detail"], "no [2Jsuch\nhost");

    let a = call(
        &f,
        Method::POST,
        &format!("/ping/{ADMIN}/db-2/fail"),
        None,
        "disk\u{1b}]0;owned\u{7} full\r\n",
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    // A failure signal: its reason is kept cleaned on the host's job.
    let rec = f.store.get(&h("db-2")).await.unwrap().unwrap();
    let reason = rec.job.as_ref().and_then(|j| j.failure.as_ref());
    assert_eq!(
        reason.and_then(|r| r.reason.as_deref()),
        Some("disk]0;owned full")
    );

    // The alarm carries the cleaned text.
    f.clock.advance(Duration::from_secs(11));
    let _ = f.state.monitor().sweep().await.unwrap();
    let alarms = f.channel.notices();
    assert_eq!(alarms.len(), 2);
    for n in alarms {
        let failure = n.job.as_ref().and_then(|j| j.failure.clone());
        let text = format!("{:?} {:?} {:?}", n.message, n.report, failure);
        let m = n.message.unwrap_or_default() + &failure.unwrap_or_default();
        assert!(
            !m.chars().any(|c| c.is_control() && c != '\n' && c != '\t'),
            "{text}"
        );
        assert!(!n.report.unwrap_or_default().contains('\u{1b}'), "{text}");
    }
}

#[tokio::test]
async fn an_exit_status_is_digits_from_0_to_255() {
    let f = fixture(&[]);
    beat(&f, ADMIN, "cron-1").await.ok();
    let before = snapshot(&f).await;
    for code in ["+1", "+12", "-0", "256", "1e2", "0x1", "%201", "1000"] {
        let a = call(
            &f,
            Method::GET,
            &format!("/ping/{ADMIN}/cron-1/{code}"),
            None,
            "",
        )
        .await;
        assert_eq!(a.status, StatusCode::NOT_FOUND, "{code}: {}", a.text);
        assert!(
            a.json()["error"].as_str().unwrap().contains("0-255"),
            "{code}: {}",
            a.text
        );
    }
    assert_eq!(snapshot(&f).await, before);
    // 1-255 is a failure whose reason names the status; 0 a success.
    for (code, said) in [
        ("255", Some("exit status 255")),
        ("007", Some("exit status 7")),
        ("0", None),
    ] {
        f.clock.advance(Duration::from_secs(1));
        let a = call(
            &f,
            Method::GET,
            &format!("/ping/{ADMIN}/cron-1/{code}"),
            None,
            "",
        )
        .await;
        assert_eq!(a.status, StatusCode::OK, "{code}: {}", a.text);
        let rec = f.store.get(&h("cron-1")).await.unwrap().unwrap();
        match said {
            // A failure: kept with its reason, and not a sign of life.
            Some(said) => {
                let failure = rec.job.as_ref().and_then(|j| j.failure.as_ref());
                assert_eq!(
                    failure.and_then(|r| r.reason.as_deref()),
                    Some(said),
                    "{code}: {rec:?}"
                );
                assert!(rec.last_seen < f.clock.now(), "{code}: {rec:?}");
            }
            // A success: the host was seen now.
            None => assert_eq!(rec.last_seen, f.clock.now(), "{code}: {rec:?}"),
        }
    }
}

#[tokio::test]
async fn host_ids_made_only_of_dots_are_refused_everywhere() {
    let f = fixture(&[]);
    for dots in [".", "..", "..."] {
        beat(&f, ADMIN, dots)
            .await
            .rejected(StatusCode::BAD_REQUEST, "only of dots");
        let a = call(
            &f,
            Method::GET,
            &format!("/ping/{ADMIN}/{dots}/fail"),
            None,
            "",
        )
        .await;
        a.rejected(StatusCode::BAD_REQUEST, "only of dots");
        let a = call(
            &f,
            Method::PUT,
            &format!("/v1/hosts/%2E{}", &dots[1..]),
            Some(ADMIN),
            "",
        )
        .await;
        a.rejected(StatusCode::BAD_REQUEST, "only of dots");
    }
    assert!(snapshot(&f).await.is_empty());
    // Dots among other characters are fine.
    assert_eq!(beat(&f, ADMIN, "..a").await.ok()["status"], "created");
}

#[tokio::test]
async fn a_silence_longer_than_a_year_is_refused() {
    let f = fixture(&[]);
    for (body, needle) in [
        (
            json!({"hosts": "db-*", "duration": "10000000000y"}),
            "longer than 1 year",
        ),
        (
            json!({"hosts": "db-*", "for": "366d"}),
            "longer than 1 year",
        ),
        (
            json!({"hosts": "db-*", "starts_at": "2023-11-15T00:00:00Z", "ends_at": "2025-11-15T00:00:00Z"}),
            "longer than 1 year",
        ),
        (
            json!({"hosts": "db-*", "starts_at": "2030-01-01T00:00:00Z", "duration": "1h"}),
            "more than 1 year ahead",
        ),
        (
            json!({"hosts": "db-*", "repeat": "0 19 * * *", "tz": "UTC", "duration": "400d"}),
            "longer than 1 year",
        ),
    ] {
        let a = call(
            &f,
            Method::POST,
            "/v1/silences",
            Some(ADMIN),
            &body.to_string(),
        )
        .await;
        a.rejected(StatusCode::BAD_REQUEST, needle);
        assert!(
            f.store.silences().await.unwrap().is_empty(),
            "{body} stored a silence"
        );
    }
    // A year is allowed.
    let body = json!({"hosts": "db-*", "duration": "1y"}).to_string();
    let a = call(&f, Method::POST, "/v1/silences", Some(ADMIN), &body).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    // A maintenance past the year is the same bad request, for an admin
    // (a heartbeat key's lower bound is a right it lacks: 403).
    let body = json!({"for": "2y"}).to_string();
    call(
        &f,
        Method::POST,
        "/v1/hosts/db-1/maintenance",
        Some(ADMIN),
        &body,
    )
    .await
    .rejected(StatusCode::BAD_REQUEST, "longer than the 1year allowed");
}

#[tokio::test(start_paused = true)]
async fn a_stalled_body_is_408_and_writes_nothing() {
    let f = fixture(&[("IAMALIVE_REQUEST_TIMEOUT", "250ms")]);
    // Part of a body, then nothing: the client stalls.
    let stalled = futures::stream::iter([Ok::<_, std::io::Error>(Bytes::from_static(
        b"{\"host\": \"db-",
    ))])
    .chain(futures::stream::pending());
    let req = Request::post("/v1/heartbeat")
        .header(header::AUTHORIZATION, format!("Bearer {ADMIN}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(stalled))
        .unwrap();
    let a = tokio::time::timeout(Duration::from_secs(60), send(&f, req))
        .await
        .expect("never answered");
    a.rejected(StatusCode::REQUEST_TIMEOUT, "did not arrive within 250ms");
    assert!(snapshot(&f).await.is_empty());
    // The same for a management call with a body.
    let stalled = futures::stream::pending::<Result<Bytes, std::io::Error>>();
    let req = Request::post("/v1/silences")
        .header(header::AUTHORIZATION, format!("Bearer {ADMIN}"))
        .body(Body::from_stream(stalled))
        .unwrap();
    send(&f, req)
        .await
        .rejected(StatusCode::REQUEST_TIMEOUT, "did not arrive");
    assert!(f.store.silences().await.unwrap().is_empty());
}

#[tokio::test]
async fn an_agent_report_has_bounds_of_its_own() {
    let f = fixture(&[("IAMALIVE_BODY_LIMIT", "65536")]);
    beat(&f, ADMIN, "db-1").await.ok();
    let before = snapshot(&f).await;
    let entry = json!({"kind": "dns", "detail": "no such host", "count": 1});
    let many = json!({"failures": vec![entry.clone(); 33]});
    hb(&f, ADMIN, json!({"host": "db-1", "report": many}))
        .await
        .rejected(StatusCode::BAD_REQUEST, "at most 32");
    let big = json!({"failures": [{"kind": "other", "detail": "x".repeat(9000)}]});
    hb(&f, ADMIN, json!({"host": "db-1", "report": big}))
        .await
        .rejected(StatusCode::BAD_REQUEST, "at most 8192");
    assert_eq!(snapshot(&f).await, before);
    // What the agent sends (at most 8 entries of 200-byte details) fits.
    let entry = json!({"kind": "tls", "detail": "y".repeat(200), "first": "2026-01-01T00:00:00Z",
        "last": "2026-01-01T00:10:00Z", "count": 3});
    let agent = json!({"since": "2026-01-01T00:00:00Z", "failed_attempts": 24,
        "failures": vec![entry; 8]});
    hb(&f, ADMIN, json!({"host": "db-1", "report": agent}))
        .await
        .ok();
}
