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
//!
//! A site (a `[[groups]]` entry with its own `flap_flips`) whose three
//! hosts go dark and come back together six times gets one group alarm and
//! one group all-clear for each of its first two outages, then one group
//! `flapping` notice naming the three, nothing more while it flaps (its
//! hosts' own episodes included), and one group `stable` notice.

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

/// The webhook bodies the receiver got, parsed.
fn bodies(hook: &Receiver) -> Vec<Value> {
    hook.bodies()
        .iter()
        .filter_map(|b| serde_json::from_str::<Value>(b).ok())
        .collect()
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flapping_site_gets_one_flapping_notice_then_one_stable_notice() {
    let redis = iamalive_testkit::redis();
    let hook = Receiver::start().await;
    let toml = format!(
        r#"
api_keys = ["{KEY}"]

[redis]
url = "{redis}"
prefix = "group-flapping-{pid}"

[policy]
timeout = "1m"

[flapping]
flips = 4
window = "1h"
stable = "10m"

[grouping]
min_hosts = 2
wait = "5s"

[[groups]]
name = "office-berlin"
hosts = "ber-*"
flap_flips = 2

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
    let hosts = ["ber-1", "ber-2", "ber-3"];
    let site_flip = || async {
        run_for(&rig, 70).await;
        for h in hosts {
            ping(&rig, h).await;
        }
    };
    for h in hosts {
        ping(&rig, h).await;
    }
    // Two site outages: one group alarm and one group all-clear each.
    for _ in 0..2 {
        site_flip().await;
    }
    assert!(
        hook.wait_for(&["\"kind\":\"recovery\"", "office-berlin"], 2, WAIT)
            .await,
        "{:?}",
        hook.bodies()
    );
    // The third within the hour: the group flapping notice.
    site_flip().await;
    assert!(
        hook.wait_for(&["\"kind\":\"flapping\"", "office-berlin"], 1, WAIT)
            .await,
        "{:?}",
        hook.bodies()
    );
    let flapping = bodies(&hook)
        .into_iter()
        .find(|v| v["kind"] == "flapping")
        .unwrap();
    assert_eq!(
        flapping["subject"], "[iamalive] FLAPPING site office-berlin: 3 outages in 1h (3 hosts)",
        "{flapping}"
    );
    assert_eq!(flapping["group"], "office-berlin", "{flapping}");
    assert_eq!(flapping["flips"], 3, "{flapping}");
    assert_eq!(flapping["stable_for_s"], 600, "{flapping}");
    let mut named: Vec<&str> = flapping["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|h| h["host"].as_str())
        .collect();
    named.sort_unstable();
    assert_eq!(named, hosts, "{flapping}");
    // Three more: nothing, though the hosts begin their own episodes (their
    // fifth outage) meanwhile.
    for _ in 0..3 {
        site_flip().await;
    }
    let want: Vec<String> = ["alarm", "recovery", "alarm", "recovery", "flapping"]
        .into_iter()
        .map(String::from)
        .collect();
    assert_eq!(
        kinds(&hook),
        want,
        "no notice per flip: {:?}",
        hook.bodies()
    );
    // Up and beating every 30 s: one group stable notice, no host's own.
    for _ in 0..24 {
        run_for(&rig, 30).await;
        for h in hosts {
            ping(&rig, h).await;
        }
    }
    assert!(
        hook.wait_for(&["\"kind\":\"stable\"", "office-berlin"], 1, WAIT)
            .await,
        "{:?}",
        hook.bodies()
    );
    let stable = bodies(&hook)
        .into_iter()
        .find(|v| v["kind"] == "stable")
        .unwrap();
    assert_eq!(stable["outage_id"], flapping["outage_id"], "{stable}");
    assert_eq!(
        stable["hosts"].as_array().map(Vec::len),
        Some(3),
        "{stable}"
    );
    let mut want = want;
    want.push("stable".into());
    assert_eq!(kinds(&hook), want, "{:?}", hook.bodies());
    assert!(
        bodies(&hook)
            .iter()
            .all(|v| v["group"] == "office-berlin" && v["hosts"].is_array()),
        "every notice is the site's: {:?}",
        hook.bodies()
    );
}
