//! Alertmanager's Watchdog through a real Alertmanager, and maintenance
//! announced by the host, against the real server on loopback.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{ADMIN, AGENT, Server};
use iamalive_core::{MemoryStore, NoticeKind, Store};
use iamalive_server::Runner;
use serde_json::{Value, json};

fn rfc3339(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Pushes one alert named `name` into Alertmanager, firing for an hour or
/// (with `resolved`) already ended.
async fn push_alert(http: &reqwest::Client, am: &str, name: &str, resolved: bool) {
    let now = chrono::Utc::now();
    let ends = if resolved {
        now - chrono::TimeDelta::seconds(1)
    } else {
        now + chrono::TimeDelta::hours(1)
    };
    let r = http
        .post(format!("{am}/api/v2/alerts"))
        .json(&json!([{
            "labels": {"alertname": name, "severity": "none"},
            "annotations": {"summary": "the alerting pipeline works"},
            "startsAt": rfc3339(now - chrono::TimeDelta::minutes(1)),
            "endsAt": rfc3339(ends),
        }]))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
}

async fn host_view(http: &reqwest::Client, base: &str, host: &str) -> Option<Value> {
    let r = http
        .get(format!("{base}/v1/hosts/{host}"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .ok()?;
    r.status().is_success().then_some(())?;
    r.json().await.ok()
}

/// Runs `runner`'s sweep until `server` delivered a notice of `kind`, for
/// at most 30 s of wall time (Alertmanager posts on its own schedule).
async fn sweep_until(runner: &Runner, server: &Server, kind: NoticeKind) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(30) && server.channel.count(kind) == 0 {
        let _ = runner.step(&mut 0).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_alertmanager_beats_while_the_watchdog_fires_and_alarms_when_it_resolves() {
    // Two watchers on one store: Alertmanager posts to `front`, which
    // never sweeps; `back` sweeps and delivers. What `front` learnt must
    // therefore be in the store, as it must be to survive a restart.
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let front = Server::start_with(&[], Arc::clone(&store)).await;
    let back = Server::start_with(&[], store).await;
    let base = format!("http://{}", front.addr);
    let http = reqwest::Client::new();
    // The heartbeat-only agent key (hosts web-*) speaks for the pipeline.
    let am = iamalive_testkit::alertmanager(&format!("{base}/v1/alertmanager/web-pipeline"), AGENT);
    let am_url = format!("http://{}", am.addr);

    push_alert(&http, &am_url, "Watchdog", false).await;
    let start = Instant::now();
    let mut seen = None;
    while start.elapsed() < Duration::from_secs(30) {
        if let Some(v) = host_view(&http, &base, "web-pipeline").await {
            seen = Some(v);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let seen = seen.expect("Alertmanager's firing Watchdog did not reach the watcher in 30 s");
    assert_eq!(seen["status"], "up");
    assert_eq!(seen["message"], "alertmanager: 1 firing (Watchdog)");

    // The pipeline says it stopped: an alarm at once from the other
    // watcher, with the (manual) clocks not moved past the 10 s timeout.
    push_alert(&http, &am_url, "Watchdog", true).await;
    let runner = Runner::new(&back.state, Duration::from_secs(1));
    sweep_until(&runner, &back, NoticeKind::Alarm).await;
    let alarms: Vec<_> = back
        .channel
        .notices()
        .into_iter()
        .filter(|n| n.kind == NoticeKind::Alarm)
        .collect();
    assert_eq!(alarms.len(), 1, "no alarm after the Watchdog resolved");
    assert_eq!(alarms[0].host.as_str(), "web-pipeline");
    assert_eq!(
        alarms[0].headline(),
        "web-pipeline reported a failure: alertmanager: every alert resolved (Watchdog): \
         the alerting pipeline stopped"
    );
    assert!(front.channel.notices().is_empty(), "front never sweeps");
    let v = host_view(&http, &base, "web-pipeline").await.unwrap();
    assert_eq!(v["status"], "alarmed");

    // Firing again, a second later, is a heartbeat that ends the outage
    // with an all-clear (a success at the failure's own instant would not
    // answer it).
    for s in [&front, &back] {
        s.clock.advance(Duration::from_secs(1));
    }
    push_alert(&http, &am_url, "Watchdog", false).await;
    sweep_until(&runner, &back, NoticeKind::Recovery).await;
    assert_eq!(back.channel.count(NoticeKind::Recovery), 1);
    assert_eq!(back.channel.count(NoticeKind::Alarm), 1);
    let v = host_view(&http, &base, "web-pipeline").await.unwrap();
    assert_eq!(v["status"], "up");
    drop(am);
    front.stop().await;
    back.stop().await;
}

#[tokio::test]
async fn every_alert_resolved_for_an_unknown_host_is_404_and_creates_nothing() {
    let server = Server::start(&[]).await;
    let base = format!("http://{}", server.addr);
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{base}/v1/alertmanager/web-new"))
        .bearer_auth(AGENT)
        .json(&payload("resolved"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("resolved before any firing")
    );
    assert!(host_view(&http, &base, "web-new").await.is_none());
    server.stop().await;
}

fn payload(status: &str) -> Value {
    json!({
        "version": "4",
        "groupKey": "{}:{alertname=\"Watchdog\"}",
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "iamalive",
        "groupLabels": {"alertname": "Watchdog"},
        "commonLabels": {"alertname": "Watchdog"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.example:9093",
        "alerts": [{
            "status": status,
            "labels": {"alertname": "Watchdog"},
            "annotations": {},
            "startsAt": "2026-11-26T03:00:00Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "",
            "fingerprint": "0123456789abcdef"
        }]
    })
}

#[tokio::test]
async fn over_a_limit_alertmanager_gets_503_with_retry_after_never_429() {
    let server = Server::start(&[("IAMALIVE_RATE_LIMIT_PER_KEY", "2/1h")]).await;
    let base = format!("http://{}", server.addr);
    let http = reqwest::Client::new();
    let post = |body: Value| {
        http.post(format!("{base}/v1/alertmanager/web-1"))
            .bearer_auth(AGENT)
            .json(&body)
            .send()
    };
    let r = post(payload("firing")).await.unwrap();
    assert_eq!(r.status(), 200);
    let mut old = payload("firing");
    old["version"] = json!("3");
    let r = post(old).await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("version 4"));
    let r = post(payload("firing")).await.unwrap();
    assert_eq!(r.status(), 503, "{}", r.text().await.unwrap_or_default());
    assert!(r.headers().get("retry-after").is_some());
    // A plain heartbeat over the same limit still gets its 429.
    let r = http
        .post(format!("{base}/v1/heartbeat"))
        .bearer_auth(AGENT)
        .json(&json!({"host": "web-1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    server.stop().await;
}

#[tokio::test]
async fn the_host_silences_itself_within_the_bound_and_alarms_if_still_silent_at_the_end() {
    let server = Server::start(&[("IAMALIVE_MAX_SELF_SILENCE", "1h")]).await;
    let base = format!("http://{}", server.addr);
    let http = reqwest::Client::new();
    let maint = |host: &str, key: &str, body: Option<Value>| {
        let url = format!("{base}/v1/hosts/{host}/maintenance");
        let req = match body {
            Some(b) => http.post(url).json(&b),
            None => http.delete(url),
        };
        req.bearer_auth(key).send()
    };
    for h in ["web-1", "db-1"] {
        let r = http
            .put(format!("{base}/v1/hosts/{h}"))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    // A heartbeat key: only for its own hosts, only up to the bound.
    let r = maint("db-1", AGENT, Some(json!({"for": "30m"})))
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = maint("web-1", AGENT, Some(json!({"for": "2h"})))
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("IAMALIVE_MAX_SELF_SILENCE")
    );
    let r = maint("web-1", AGENT, Some(json!({"for": "soon"})))
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = maint(
        "web-1",
        AGENT,
        Some(json!({"for": "30m", "reason": "recovery image"})),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["id"], "maintenance-web-1");
    assert_eq!(v["reason"], "recovery image");
    assert_eq!(v["active"], true);

    // The host is shut down: silent past its 10 s timeout, no alarm during
    // the maintenance; at its end, still silent, it alarms.
    let runner = Runner::new(&server.state, Duration::from_secs(1));
    let alarms_for = |host: &str| {
        server
            .channel
            .notices()
            .iter()
            .filter(|n| n.kind == NoticeKind::Alarm && n.host.as_str() == host)
            .count()
    };
    server.clock.advance(Duration::from_secs(60));
    let _ = runner.step(&mut 0).await;
    assert_eq!(alarms_for("db-1"), 1, "a host not in maintenance alarms");
    assert_eq!(alarms_for("web-1"), 0);
    server.clock.advance(Duration::from_secs(29 * 60 - 1));
    let _ = runner.step(&mut 0).await;
    assert_eq!(alarms_for("web-1"), 0);
    server.clock.advance(Duration::from_secs(2));
    let _ = runner.step(&mut 0).await;
    assert_eq!(
        alarms_for("web-1"),
        1,
        "still silent when the maintenance ended"
    );

    // Ending it early: an admin may give longer; --end removes it.
    let r = maint("web-1", ADMIN, Some(json!({"for": "3h"})))
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = maint("web-1", AGENT, None).await.unwrap();
    assert_eq!(r.status(), 200);
    let r = maint("web-1", AGENT, None).await.unwrap();
    assert_eq!(r.status(), 404);
    server.stop().await;
}
