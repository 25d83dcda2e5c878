//! One notice per outage of a group, end to end: the sqlite-smtp preset
//! with a JSON webhook to a real receiver. Ten hosts of a site stop
//! together: one group alarm naming all ten, and after they return one
//! group all-clear; a host of another site stops alone: its own alarm. Two
//! sites stop together: one "watcher may be blind" notice and one all-clear.

use std::sync::Arc;
use std::time::Duration;

use iamalive_testkit::Receiver;
use iamalive_testkit::watcher::{Keeper, Watcher};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(30);

/// The sqlite-smtp watcher with a JSON webhook to `rx`, groups of at
/// least two hosts gathered for 1 s and the `[[groups]]` tables `groups`;
/// a 3 s timeout, long enough for a keeper to beat every host in time on a
/// loaded machine while the group wait stays short.
async fn start(rx: &Receiver, dir: &tempfile::TempDir, groups: &str) -> Arc<Watcher> {
    let config = format!(
        r#"
[[channels]]
name = "hook"
kind = "webhook"
url = "{url}"

[grouping]
min_hosts = 2
wait = "1s"
{groups}"#,
        url = rx.url
    );
    Arc::new(
        Watcher::start(
            env!("CARGO_BIN_EXE_sqlite-smtp"),
            &[],
            dir.path(),
            &config,
            &[("IAMALIVE_TIMEOUT", "3s")],
        )
        .await,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dark_site_is_one_alarm_and_one_all_clear() {
    let rx = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let groups = r#"
[[groups]]
name = "office-berlin"
hosts = "ber-*"
"#;
    let w = start(&rx, &dir, groups).await;
    let berlin: Vec<String> = (0..10).map(|i| format!("ber-{i:02}")).collect();
    // All at once: one after the other took longer than the group wait on
    // a loaded machine, and the last ones joined the outage late.
    futures::future::join_all(berlin.iter().map(|h| w.beat(h))).await;
    w.beat_in("par-1", Some("office-paris")).await;
    w.beat_in("par-2", Some("office-paris")).await;
    // par-2 keeps beating; Berlin and par-1 stop.
    let keeper = Keeper::start(&w, &[("par-2", Some("office-paris"))], &berlin);
    assert!(
        rx.wait_for(&["site office-berlin: 10 hosts silent"], 1, WAIT)
            .await,
        "{:?}\n{}",
        rx.bodies(),
        w.log()
    );
    assert!(
        rx.wait_for(&["\"kind\":\"alarm\"", "\"host\":\"par-1\""], 1, WAIT)
            .await,
        "{:?}\n{}",
        rx.bodies(),
        w.log()
    );
    let bodies = rx.json();
    let group_alarms: Vec<&Value> = bodies
        .iter()
        .filter(|b| b["kind"] == "alarm" && b["group"] == "office-berlin")
        .collect();
    assert_eq!(group_alarms.len(), 1, "{bodies:#?}");
    let ga = group_alarms[0];
    let hosts = ga["hosts"].as_array().expect("hosts");
    let mut named: Vec<&str> = hosts.iter().map(|h| h["host"].as_str().unwrap()).collect();
    named.sort_unstable();
    assert_eq!(named, berlin.iter().map(String::as_str).collect::<Vec<_>>());
    for h in hosts {
        assert!(
            h["last_seen"].is_string() && h["silent_for_s"].is_u64(),
            "{h}"
        );
        assert!(h.get("report").is_some(), "{h}");
    }
    let par = bodies
        .iter()
        .find(|b| b["host"] == "par-1")
        .expect("par-1's alarm");
    assert_eq!(par["group"], "office-paris", "{par}");
    assert!(par.get("hosts").is_none(), "a lone host's own alarm: {par}");

    // Berlin comes back: one all-clear for the site.
    keeper.bring_back();
    assert!(
        rx.wait_for(
            &["\"kind\":\"recovery\"", "office-berlin", "\"hosts\""],
            1,
            WAIT
        )
        .await,
        "{:?}\n{}",
        rx.bodies(),
        w.log()
    );
    // Let any stray notice show (within the timeout: the keeper stops).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let bodies = rx.json();
    keeper.stop().await;
    let clears: Vec<&Value> = bodies
        .iter()
        .filter(|b| b["kind"] == "recovery" && b["group"] == "office-berlin")
        .collect();
    assert_eq!(clears.len(), 1, "{bodies:#?}");
    assert_eq!(clears[0]["hosts"].as_array().map(Vec::len), Some(10));
    assert_eq!(clears[0]["outage_id"], ga["outage_id"]);
    let singles = bodies
        .iter()
        .filter(|b| b.get("hosts").is_none() && b["host"].as_str().unwrap().starts_with("ber-"))
        .count();
    assert_eq!(singles, 0, "no Berlin host speaks on its own: {bodies:#?}");
}

/// Two sites stop together while a third keeps beating: one "watcher may
/// be blind" notice naming both sites (no group alarm, no host alarm), and
/// when they return one all-clear for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_dark_sites_are_one_watcher_blind_notice() {
    let rx = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let groups = r#"
[[groups]]
name = "office-berlin"
hosts = "ber-*"

[[groups]]
name = "office-paris"
hosts = "par-*"
"#;
    let w = start(&rx, &dir, groups).await;
    let dark: Vec<String> = (0..4)
        .map(|i| format!("ber-{i}"))
        .chain((0..3).map(|i| format!("par-{i}")))
        .collect();
    futures::future::join_all(dark.iter().map(|h| w.beat(h))).await;
    w.beat_in("rom-1", Some("office-rome")).await;
    w.beat_in("rom-2", Some("office-rome")).await;
    let rome = [
        ("rom-1", Some("office-rome")),
        ("rom-2", Some("office-rome")),
    ];
    let keeper = Keeper::start(&w, &rome, &dark);
    assert!(
        rx.wait_for(&["\"kind\":\"watcher_blind\""], 1, WAIT).await,
        "{:?}\n{}",
        rx.bodies(),
        w.log()
    );
    let bodies = rx.json();
    assert_eq!(bodies.len(), 1, "only the blind notice: {bodies:#?}");
    let b = &bodies[0];
    let subject = b["subject"].as_str().unwrap();
    assert!(
        subject.starts_with(
            "[iamalive] ALARM watcher may be blind: 2 sites, 7 of 9 hosts silent since "
        ),
        "{subject}"
    );
    assert_eq!(b["hosts_silent"], 7, "{b}");
    assert_eq!(b["hosts_total"], 9, "{b}");
    let groups: Vec<(&str, u64)> = b["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .map(|g| {
            assert!(g["first_silent_at"].is_string(), "{g}");
            (
                g["group"].as_str().unwrap(),
                g["hosts_silent"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(groups, [("office-berlin", 4), ("office-paris", 3)]);
    assert!(
        b["message"].as_str().unwrap().contains("DNS"),
        "says why: {b}"
    );

    keeper.bring_back();
    assert!(
        rx.wait_for(&["\"kind\":\"watcher_blind_recovery\""], 1, WAIT)
            .await,
        "{:?}\n{}",
        rx.bodies(),
        w.log()
    );
    // Let any stray notice show (within the timeout: the keeper stops).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let bodies = rx.json();
    keeper.stop().await;
    let kinds: Vec<&str> = bodies.iter().map(|b| b["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["watcher_blind", "watcher_blind_recovery"],
        "one notice and one all-clear, no group or host notice: {bodies:#?}"
    );
    assert_eq!(bodies[1]["outage_id"], bodies[0]["outage_id"]);
    assert!(
        bodies[1]["subject"]
            .as_str()
            .unwrap()
            .starts_with("[iamalive] RECOVERED watcher sees again: 2 sites"),
        "{}",
        bodies[1]
    );
}
