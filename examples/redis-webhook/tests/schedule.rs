//! A daily schedule end to end: real Redis, a real webhook receiver, real
//! HTTP to the server's router on loopback, and the manual clock (the
//! binary reads the system clock, so a night is driven through the router
//! the binary serves, with the monitor stepped as its runner would).
//!
//! One job gets its schedule from `[[policy.hosts]]`, another through
//! `PUT /v1/hosts/<host>`; each alarms at tick + grace and not a second
//! before, and a run that succeeds inside its grace is not missing.

mod common;

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use common::{KEY, Rig};
use iamalive_testkit::Receiver;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(10);

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().to_utc()
}

/// Moves the clock to `until` a minute at a time, sweeping at each step.
async fn run_until(rig: &Rig, until: &str) {
    rig.run_until(utc(until), TimeDelta::seconds(60)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daily_schedule_alarms_at_tick_plus_grace() {
    let redis = iamalive_testkit::redis();
    let hook = Receiver::start().await;
    let toml = format!(
        r#"
api_keys = ["{KEY}"]

[redis]
url = "{redis}"
prefix = "schedule-{pid}"

[policy]
timeout = "10m"

[[policy.hosts]]
hosts = "backup-*"
schedule = "0 2 * * *"
tz = "Europe/Berlin"
grace = "30m"

[[channels]]
name = "hook"
kind = "webhook"
format = "json"
url = "{hook}"
"#,
        redis = redis.redis_url(),
        pid = std::process::id(),
        hook = hook.url,
    );
    // 01:00 in Berlin (CET).
    let rig = Rig::start(&toml, utc("2026-11-26T00:00:00Z")).await;
    use reqwest::Method;

    // backup-db: the configured schedule (02:00 Berlin, 30 min grace).
    rig.ping("backup-db").await;
    let v = rig.get("/v1/hosts/backup-db").await;
    assert_eq!(v["policy"]["source"], "config", "{v}");
    assert_eq!(v["policy"]["schedule"], "0 2 * * *", "{v}");
    assert_eq!(v["next_run"], "2026-11-26T01:00:00Z", "{v}");
    assert_eq!(v["deadline"], "2026-11-26T01:30:00Z", "{v}");

    // nightly-export: its own schedule through the API (02:30, 15 min).
    let (status, v) = rig
        .call(
            Method::PUT,
            "/v1/hosts/nightly-export",
            Some(r#"{"schedule": "30 2 * * *", "tz": "Europe/Berlin", "grace": "15m"}"#),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["policy"]["source"], "api", "{v}");
    assert_eq!(v["next_run"], "2026-11-26T01:30:00Z", "{v}");
    assert_eq!(v["deadline"], "2026-11-26T01:45:00Z", "{v}");
    // Bad bodies are refused with a reason and change nothing.
    for (body, says) in [
        (r#"{"schedule": "0 25 * * *"}"#, "invalid cron expression"),
        (
            r#"{"schedule": "0 2 * * *", "tz": "Europe/Berln"}"#,
            "unknown time zone",
        ),
        (
            r#"{"schedule": "0 2 * * *", "grace": "half an hour"}"#,
            "grace: 'half an hour' is not a duration",
        ),
        (r#"{"schedule": "0 2 * * *", "timeout": "1h"}"#, "not both"),
        (r#"{"every": "day"}"#, "unknown field `every`"),
    ] {
        let (status, v) = rig
            .call(Method::PUT, "/v1/hosts/nightly-export", Some(body))
            .await;
        assert_eq!(status, 400, "{body}: {v}");
        let e = v["error"].as_str().unwrap_or_default();
        assert!(e.contains(says), "{body}: {e}");
    }
    let (_, v) = rig
        .call(Method::GET, "/v1/hosts/nightly-export", None)
        .await;
    assert_eq!(v["policy"]["schedule"], "30 2 * * *", "{v}");

    // The night: nothing until 02:30 Berlin (01:30 UTC)…
    run_until(&rig, "2026-11-26T01:29:59Z").await;
    assert_eq!(hook.bodies().len(), 0, "{:?}", hook.bodies());
    // …then backup-db's alarm, at tick + grace.
    run_until(&rig, "2026-11-26T01:30:00Z").await;
    assert!(
        hook.wait_for(&["\"kind\":\"alarm\"", "backup-db"], 1, WAIT)
            .await,
        "{:?}",
        hook.bodies()
    );
    // nightly-export's 02:30 run succeeds at 02:40, inside its grace.
    run_until(&rig, "2026-11-26T01:40:00Z").await;
    rig.ping("nightly-export").await;
    let (_, v) = rig
        .call(Method::GET, "/v1/hosts/nightly-export", None)
        .await;
    assert_eq!(v["next_run"], "2026-11-27T01:30:00Z", "{v}");
    run_until(&rig, "2026-11-26T02:00:00Z").await;
    assert_eq!(
        hook.count(&["\"kind\":\"alarm\"", "nightly-export"]),
        0,
        "{:?}",
        hook.bodies()
    );
    // The next night it does not run: its alarm at 02:45 Berlin.
    run_until(&rig, "2026-11-27T01:44:00Z").await;
    assert_eq!(hook.count(&["\"kind\":\"alarm\"", "nightly-export"]), 0);
    run_until(&rig, "2026-11-27T01:45:00Z").await;
    assert!(
        hook.wait_for(&["\"kind\":\"alarm\"", "nightly-export"], 1, WAIT)
            .await,
        "{:?}",
        hook.bodies()
    );

    // Forgetting the stored policy hands the host back to the configured
    // timeout (10 min).
    let (status, v) = rig
        .call(Method::DELETE, "/v1/hosts/nightly-export/policy", None)
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["policy"]["source"], "config", "{v}");
    assert_eq!(v["policy"]["timeout"], "10m", "{v}");
    assert_eq!(v["next_run"], Value::Null, "{v}");
}
