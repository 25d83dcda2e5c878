//! WebhookNotifier against a real axum receiver on loopback.
#![cfg(feature = "webhook")]

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use common::notice;
use hmac::{Hmac, Mac};
use iamalive_core::{NoticeKind, Notifier, NotifyError};
use iamalive_notify::{WebhookFormat, WebhookNotifier};
use serde_json::Value;
use sha2::Sha256;

#[derive(Debug, Clone)]
struct Received {
    path: String,
    headers: HeaderMap,
    body: Bytes,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("body is JSON")
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

type Log = Arc<Mutex<Vec<Received>>>;

async fn hook(
    State(log): State<Log>,
    Path(status): Path<u16>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    log.lock().unwrap().push(Received {
        path: format!("/hook/{status}"),
        headers,
        body,
    });
    let mut h = HeaderMap::new();
    if let Some(ra) = q.get("retry_after") {
        h.insert("retry-after", ra.parse().unwrap());
    }
    (
        StatusCode::from_u16(status).unwrap(),
        h,
        "receiver says hello",
    )
}

async fn hang() -> &'static str {
    std::future::pending::<()>().await;
    "never"
}

async fn receiver() -> (SocketAddr, Log) {
    let log: Log = Arc::default();
    let app = Router::new()
        .route("/hook/{status}", post(hook))
        .route("/hang", post(hang))
        .with_state(log.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, log)
}

async fn send(url: &str, format: WebhookFormat, kind: NoticeKind) -> Result<(), NotifyError> {
    WebhookNotifier::new(url, format, None)
        .unwrap()
        .deliver(&notice("build-01", kind))
        .await
}

fn last(log: &Log) -> Received {
    log.lock()
        .unwrap()
        .last()
        .cloned()
        .expect("a request arrived")
}

#[tokio::test]
async fn json_body_is_the_documented_document() {
    let (addr, log) = receiver().await;
    let url = format!("http://{addr}/hook/200");
    send(&url, WebhookFormat::Json, NoticeKind::Alarm)
        .await
        .unwrap();
    let r = last(&log);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(
        r.header("x-iamalive-notice-id"),
        Some("build-01@1714565400000/alarm/1")
    );
    assert!(
        r.header("x-iamalive-signature").is_none(),
        "no secret, no signature"
    );
    let b = r.json();
    assert_eq!(b["id"], "build-01@1714565400000/alarm/1");
    assert_eq!(b["kind"], "alarm");
    assert_eq!(b["host"], "build-01");
    assert_eq!(b["last_seen"], "2024-05-01T12:00:00Z");
    assert_eq!(b["missing_since"], "2024-05-01T12:10:00Z");
    assert_eq!(b["silent_for_s"], 605);
    assert_eq!(b["alarm_count"], 1);
    assert_eq!(b["outage_id"], "build-01@1714565400000");
    assert_eq!(b["next_reminder"], "2024-05-01T13:10:05Z");
    assert_eq!(b["message"], "nightly build box");
    assert!(b["sent_at"].as_str().unwrap().ends_with('Z'));
    assert!(b["report"].is_null() && b["blind"].is_null());
    assert!(
        b.as_object().unwrap().contains_key("group") && b["group"].is_null(),
        "a host without a group: \"group\": null"
    );

    send(&url, WebhookFormat::Json, NoticeKind::Recovery)
        .await
        .unwrap();
    let b = last(&log).json();
    assert_eq!(b["kind"], "recovery");
    assert_eq!(b["recovered_at"], "2024-05-01T12:30:00Z");
    // The agent's report arrives as JSON, not as a quoted string.
    assert_eq!(b["report"]["failed_attempts"], 5);
    assert_eq!(b["report"]["failures"][0]["kind"], "dns");
}

#[tokio::test]
async fn teams_gets_an_adaptive_card() {
    let (addr, log) = receiver().await;
    send(
        &format!("http://{addr}/hook/202"),
        WebhookFormat::Teams,
        NoticeKind::Recovery,
    )
    .await
    .unwrap();
    let b = last(&log).json();
    assert_eq!(b["type"], "message");
    let att = &b["attachments"][0];
    assert_eq!(
        att["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    let card = &att["content"];
    assert_eq!(card["type"], "AdaptiveCard");
    assert!(card["version"].as_str().is_some());
    let body = card["body"].as_array().unwrap();
    assert_eq!(body[0]["type"], "TextBlock");
    assert_eq!(body[0]["text"], "[iamalive] RECOVERED build-01");
    let facts = body.iter().find(|e| e["type"] == "FactSet").unwrap()["facts"]
        .as_array()
        .unwrap()
        .clone();
    assert!(
        facts
            .iter()
            .any(|f| f["title"] == "Host" && f["value"] == "build-01")
    );
    assert!(body.iter().any(|e| {
        e["text"]
            .as_str()
            .is_some_and(|t| t.contains("no such host"))
    }));
}

#[tokio::test]
async fn slack_gets_text_and_blocks() {
    let (addr, log) = receiver().await;
    send(
        &format!("http://{addr}/hook/200"),
        WebhookFormat::Slack,
        NoticeKind::Alarm,
    )
    .await
    .unwrap();
    let b = last(&log).json();
    assert!(
        b["text"]
            .as_str()
            .unwrap()
            .starts_with("[iamalive] ALARM build-01")
    );
    let blocks = b["blocks"].as_array().unwrap();
    assert_eq!(blocks[0]["type"], "header");
    assert_eq!(blocks[0]["text"]["type"], "plain_text");
    let fields = blocks.iter().find_map(|b| b["fields"].as_array()).unwrap();
    assert!(fields.len() <= 10);
    assert!(fields.iter().all(|f| f["type"] == "mrkdwn"));
    assert!(
        fields
            .iter()
            .any(|f| f["text"].as_str().unwrap().contains("build-01"))
    );
}

#[tokio::test]
async fn discord_gets_content_and_an_embed() {
    let (addr, log) = receiver().await;
    send(
        &format!("http://{addr}/hook/204"),
        WebhookFormat::Discord,
        NoticeKind::Reminder,
    )
    .await
    .unwrap();
    let b = last(&log).json();
    assert_eq!(b["content"], "[iamalive] REMINDER build-01");
    let e = &b["embeds"][0];
    assert_eq!(e["title"], "[iamalive] REMINDER build-01");
    assert!(e["color"].as_u64().is_some());
    assert_eq!(e["timestamp"], "2024-05-01T12:10:05Z");
    let fields = e["fields"].as_array().unwrap();
    assert!(
        fields
            .iter()
            .any(|f| f["name"] == "Alarm count" && f["value"] == "2")
    );
    assert_eq!(b["allowed_mentions"]["parse"], serde_json::json!([]));
}

#[tokio::test]
async fn pagerduty_triggers_and_resolves_one_incident_per_outage() {
    let (addr, log) = receiver().await;
    let url = format!("http://{addr}/hook/202?routing_key=R0UTINGKEY");
    let n = WebhookNotifier::new(&url, WebhookFormat::PagerDuty, None).unwrap();
    assert_eq!(n.name(), "webhook:pagerduty");
    n.deliver(&notice("build-01", NoticeKind::Alarm))
        .await
        .unwrap();
    n.deliver(&notice("build-01", NoticeKind::Reminder))
        .await
        .unwrap();
    n.deliver(&notice("build-01", NoticeKind::Recovery))
        .await
        .unwrap();
    let got = log.lock().unwrap().clone();
    assert_eq!(got.len(), 3);
    let bodies: Vec<Value> = got.iter().map(Received::json).collect();
    for b in &bodies {
        assert_eq!(b["routing_key"], "R0UTINGKEY");
        assert_eq!(b["dedup_key"], "build-01@1714565400000");
    }
    // The key travels in the body, not in the URL.
    assert!(got.iter().all(|r| r.path == "/hook/202"));
    assert_eq!(bodies[0]["event_action"], "trigger");
    assert_eq!(bodies[0]["payload"]["severity"], "critical");
    assert_eq!(bodies[0]["payload"]["source"], "build-01");
    assert!(
        bodies[0]["payload"]["summary"]
            .as_str()
            .unwrap()
            .contains("ALARM build-01")
    );
    assert_eq!(bodies[1]["event_action"], "trigger");
    assert_eq!(bodies[2]["event_action"], "resolve");

    // A test notice shows the wiring, then resolves its incident at once:
    // nobody is paged until someone closes it by hand.
    let test = iamalive_core::health::watcher_notice(
        NoticeKind::Test,
        "watcher/test",
        1,
        chrono::Utc::now(),
        chrono::Utc::now(),
        "a test".into(),
    );
    n.deliver(&test).await.unwrap();
    let got = log.lock().unwrap().clone();
    assert_eq!(got.len(), 5);
    let (trigger, resolve) = (got[3].json(), got[4].json());
    assert_eq!(trigger["event_action"], "trigger");
    assert_eq!(resolve["event_action"], "resolve");
    assert_eq!(trigger["dedup_key"], resolve["dedup_key"]);
}

#[tokio::test]
async fn the_signature_verifies_over_timestamp_and_raw_body() {
    let (addr, log) = receiver().await;
    let secret = "correct horse battery staple";
    let n = WebhookNotifier::new(
        &format!("http://{addr}/hook/200"),
        WebhookFormat::Json,
        Some(secret.into()),
    )
    .unwrap();
    n.deliver(&notice("build-01", NoticeKind::Alarm))
        .await
        .unwrap();
    let r = last(&log);
    let ts = r.header("x-iamalive-timestamp").expect("timestamp header");
    let ts_n: i64 = ts.parse().unwrap();
    assert!((chrono::Utc::now().timestamp() - ts_n).abs() < 300);
    let sig = r.header("x-iamalive-signature").expect("signature header");
    let hex_sig = sig.strip_prefix("sha256=").expect("sha256= prefix");

    // Verify as a receiver would, independently of the crate's helper.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{ts}.").as_bytes());
    mac.update(&r.body);
    mac.verify_slice(&hex::decode(hex_sig).unwrap())
        .expect("signature verifies");

    // A tampered body does not.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{ts}.").as_bytes());
    mac.update(&r.body[1..]);
    assert!(mac.verify_slice(&hex::decode(hex_sig).unwrap()).is_err());
}

#[tokio::test]
async fn status_classes_map_to_transient_or_permanent() {
    let (addr, _log) = receiver().await;
    let base = format!("http://{addr}");
    let err = |path: &'static str| {
        let url = format!("{base}{path}");
        async move {
            send(&url, WebhookFormat::Json, NoticeKind::Alarm)
                .await
                .unwrap_err()
        }
    };

    for path in ["/hook/500", "/hook/502", "/hook/503", "/hook/408"] {
        let e = err(path).await;
        assert!(e.is_transient(), "{path}: {e}");
    }
    match err("/hook/429?retry_after=7").await {
        NotifyError::Transient {
            retry_after,
            reason,
            ..
        } => {
            assert_eq!(retry_after, Some(Duration::from_secs(7)));
            assert!(
                reason.contains("429") && reason.contains("receiver says hello"),
                "{reason}"
            );
        }
        other => panic!("{other:?}"),
    }
    match err("/hook/503?retry_after=2").await {
        NotifyError::Transient { retry_after, .. } => {
            assert_eq!(retry_after, Some(Duration::from_secs(2)))
        }
        other => panic!("{other:?}"),
    }
    for path in [
        "/hook/400",
        "/hook/401",
        "/hook/403",
        "/hook/404",
        "/hook/410",
        "/hook/302",
    ] {
        let e = err(path).await;
        assert!(!e.is_transient(), "{path}: {e}");
    }

    // Nothing listening: transient.
    let closed = format!("http://127.0.0.1:{}/hook", iamalive_testkit::free_port());
    let e = send(&closed, WebhookFormat::Json, NoticeKind::Alarm)
        .await
        .unwrap_err();
    assert!(e.is_transient(), "{e}");

    // A receiver that never answers: transient, within the notifier's timeout.
    let n = WebhookNotifier::new(&format!("{base}/hang"), WebhookFormat::Json, None)
        .unwrap()
        .with_timeout(Duration::from_millis(300))
        .unwrap();
    let e = n
        .deliver(&notice("build-01", NoticeKind::Alarm))
        .await
        .unwrap_err();
    assert!(e.is_transient(), "{e}");
}

/// A host with a group: the JSON body carries `"group"`, and every other
/// format names the site in its own way, at a real receiver.
#[tokio::test]
async fn every_format_names_the_site() {
    let (addr, log) = receiver().await;
    let url = format!("http://{addr}/hook/200");
    let mut n = notice("db-1", NoticeKind::Alarm);
    n.group = Some(iamalive_core::GroupName::new("office-berlin").unwrap());
    for format in ["json", "teams", "slack", "discord", "pagerduty"] {
        let f: WebhookFormat = format.parse().unwrap();
        // PagerDuty takes its routing key from the URL.
        let hook = WebhookNotifier::new(&format!("{url}?routing_key=rk"), f, None).unwrap();
        hook.deliver(&n).await.unwrap();
        let b = last(&log).json();
        let text = b.to_string();
        assert!(
            text.contains("db-1 (site office-berlin)"),
            "{format}: the subject or summary names the site: {text}"
        );
        match format {
            "json" => {
                assert_eq!(b["group"], "office-berlin");
                assert_eq!(b["subject"], "[iamalive] ALARM db-1 (site office-berlin)");
            }
            "pagerduty" => assert_eq!(b["payload"]["group"], "office-berlin"),
            "teams" => assert!(
                text.contains(r#"{"title":"Site","value":"office-berlin"}"#),
                "{text}"
            ),
            "slack" => assert!(text.contains("*Site*\\noffice-berlin"), "{text}"),
            _ => assert!(
                text.contains(r#""name":"Site","value":"office-berlin""#),
                "{text}"
            ),
        }
    }
}
