//! A flapping host end to end: real Redis, a real webhook receiver, real
//! HTTP to the server's router on loopback, and the manual clock (the
//! binary reads the system clock, so an hour of flapping is driven through
//! the router the binary serves, with the monitor stepped as its runner
//! would).
//!
//! A host that goes silent and comes back five times within the hour gets
//! an alarm and an all-clear for each of the first four outages, then one
//! `flapping` notice for the fifth, nothing for the flips after it, and
//! one `stable` notice once it has stayed up for `[flapping] stable`.

mod common;

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use common::{KEY, Rig};
use iamalive_core::Clock;
use iamalive_testkit::Receiver;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(10);

/// A heartbeat for `host`, then a sweep.
async fn ping(rig: &Rig, host: &str) {
    rig.ping(host).await;
    rig.sweep().await;
}

/// Moves the clock on by `secs`, 5 s at a time, sweeping at each step.
async fn run_for(rig: &Rig, secs: i64) {
    let until = rig.clock.now() + TimeDelta::seconds(secs);
    rig.run_until(until, TimeDelta::seconds(5)).await;
}

/// Silent past its 60 s timeout, then back: one flip.
async fn flip(rig: &Rig, host: &str) {
    run_for(rig, 65).await;
    ping(rig, host).await;
}

/// The notices the receiver got, by kind, in order.
fn kinds(hook: &Receiver) -> Vec<String> {
    hook.bodies()
        .iter()
        .filter_map(|b| serde_json::from_str::<Value>(b).ok())
        .map(|v| v["kind"].as_str().unwrap_or("?").to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flapping_host_gets_one_flapping_notice_then_one_stable_notice() {
    let redis = iamalive_testkit::redis();
    let hook = Receiver::start().await;
    let toml = format!(
        r#"
api_keys = ["{KEY}"]

[redis]
url = "{redis}"
prefix = "flapping-{pid}"

[policy]
timeout = "1m"

[flapping]
flips = 4
window = "1h"
stable = "10m"

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
    let start: DateTime<Utc> = "2026-11-26T09:00:00Z".parse().unwrap();
    let rig = Rig::start(&toml, start).await;

    ping(&rig, "web-3").await;
    // Four flips: an alarm and an all-clear each.
    for _ in 0..4 {
        flip(&rig, "web-3").await;
    }
    assert!(
        hook.wait_for(&["\"kind\":\"recovery\"", "web-3"], 4, WAIT)
            .await,
        "{:?}",
        hook.bodies()
    );
    let v = rig.get("/v1/hosts/web-3").await;
    assert_eq!(
        (v["flapping"].as_bool(), v["flips"].as_u64()),
        (Some(false), Some(4)),
        "{v}"
    );
    // The fifth within the hour: one flapping notice, not its alarm.
    flip(&rig, "web-3").await;
    assert!(
        hook.wait_for(&["\"kind\":\"flapping\"", "web-3"], 1, WAIT)
            .await,
        "{:?}",
        hook.bodies()
    );
    let flapping: Value = hook
        .bodies()
        .iter()
        .filter_map(|b| serde_json::from_str::<Value>(b).ok())
        .find(|v| v["kind"] == "flapping")
        .unwrap();
    assert_eq!(
        flapping["subject"], "[iamalive] FLAPPING web-3: 5 outages in 1h",
        "{flapping}"
    );
    assert_eq!(flapping["flips"], 5, "{flapping}");
    assert_eq!(flapping["window_s"], 3600, "{flapping}");
    assert_eq!(flapping["stable_for_s"], 600, "{flapping}");
    let v = rig.get("/v1/hosts/web-3").await;
    assert_eq!(v["flapping"], true, "{v}");
    assert_eq!(v["flips"], 5, "{v}");
    // Three more flips: nothing at all.
    for _ in 0..3 {
        flip(&rig, "web-3").await;
    }
    let back = rig.clock.now();
    // Up and beating every 30 s: nothing before ten minutes…
    for _ in 0..19 {
        run_for(&rig, 30).await;
        ping(&rig, "web-3").await;
    }
    let before = kinds(&hook);
    let mut want: Vec<String> = ["alarm", "recovery"]
        .repeat(4)
        .into_iter()
        .map(String::from)
        .collect();
    want.push("flapping".into());
    assert_eq!(before, want, "no per-flip notice while flapping");
    // …then one stable notice, at ten minutes after its last return.
    run_for(&rig, 30).await;
    assert!(
        hook.wait_for(&["\"kind\":\"stable\"", "web-3"], 1, WAIT)
            .await,
        "back at {back}, now {}: {}",
        rig.clock.now(),
        rig.get("/v1/hosts/web-3").await
    );
    let stable: Value = hook
        .bodies()
        .iter()
        .filter_map(|b| serde_json::from_str::<Value>(b).ok())
        .find(|v| v["kind"] == "stable")
        .unwrap();
    assert_eq!(
        stable["recovered_at"],
        back.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "up since its last return: {stable}"
    );
    assert_eq!(stable["outage_id"], flapping["outage_id"], "{stable}");
    let v = rig.get("/v1/hosts/web-3").await;
    assert_eq!(v["flapping"], false, "{v}");
    // Stable: its next outage alarms at once.
    run_for(&rig, 65).await;
    assert!(
        hook.wait_for(&["\"kind\":\"alarm\"", "web-3"], 5, WAIT)
            .await,
        "{:?}",
        hook.bodies()
    );
    want.extend(["stable".into(), "alarm".into()]);
    assert_eq!(kinds(&hook), want);
}
