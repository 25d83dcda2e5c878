//! One notice per outage of a group, end to end: the sqlite-smtp preset
//! with a JSON webhook to a real receiver. Ten hosts of a site stop
//! together: one group alarm naming all ten, and after they return one
//! group all-clear; a host of another site stops alone: its own alarm. Two
//! sites stop together: one "watcher may be blind" notice and one all-clear.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use iamalive_testkit::Receiver;
use iamalive_testkit::watcher::{KEY, Watcher};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(30);

async fn beat(w: &Watcher, host: &str, group: Option<&str>) {
    let mut body = serde_json::json!({ "host": host });
    if let Some(g) = group {
        body["group"] = Value::String(g.to_owned());
    }
    let r = reqwest::Client::new()
        .post(format!("http://{}/v1/heartbeat", w.addr))
        .bearer_auth(KEY)
        .json(&body)
        .send()
        .await
        .expect("heartbeat");
    assert!(r.status().is_success(), "{host}: {}", r.status());
}

fn parsed(rx: &Receiver) -> Vec<Value> {
    rx.bodies()
        .iter()
        .map(|b| serde_json::from_str(b).expect("JSON body"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dark_site_is_one_alarm_and_one_all_clear() {
    let rx = Receiver::start().await;
    let config = format!(
        r#"
[[channels]]
name = "hook"
kind = "webhook"
url = "{url}"

[grouping]
min_hosts = 2
wait = "1s"

[[groups]]
name = "office-berlin"
hosts = "ber-*"
"#,
        url = rx.url
    );
    let dir = tempfile::tempdir().unwrap();
    let w = Arc::new(
        Watcher::start(
            env!("CARGO_BIN_EXE_sqlite-smtp"),
            &[],
            dir.path(),
            &config,
            // Long enough for the keeper below to beat every host in time
            // on a loaded machine; the group wait stays short.
            &[("IAMALIVE_TIMEOUT", "3s")],
        )
        .await,
    );
    let berlin: Vec<String> = (0..10).map(|i| format!("ber-{i:02}")).collect();
    // All at once: one after the other took longer than the group wait on
    // a loaded machine, and the last ones joined the outage late.
    futures::future::join_all(berlin.iter().map(|h| beat(&w, h, None))).await;
    beat(&w, "par-1", Some("office-paris")).await;
    beat(&w, "par-2", Some("office-paris")).await;
    // par-2 keeps beating; Berlin and par-1 stop.
    let stop = Arc::new(AtomicBool::new(false));
    let berlin_back = Arc::new(AtomicBool::new(false));
    let keeper = {
        let (w, stop, back) = (w.clone(), stop.clone(), berlin_back.clone());
        let berlin = berlin.clone();
        tokio::spawn(async move {
            for _ in 0..600 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                beat(&w, "par-2", Some("office-paris")).await;
                if back.load(Ordering::Relaxed) {
                    futures::future::join_all(berlin.iter().map(|h| beat(&w, h, None))).await;
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        })
    };
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
    let bodies = parsed(&rx);
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
    berlin_back.store(true, Ordering::Relaxed);
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
    let bodies = parsed(&rx);
    stop.store(true, Ordering::Relaxed);
    keeper.await.unwrap();
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
    let config = format!(
        r#"
[[channels]]
name = "hook"
kind = "webhook"
url = "{url}"

[grouping]
min_hosts = 2
wait = "1s"

[[groups]]
name = "office-berlin"
hosts = "ber-*"

[[groups]]
name = "office-paris"
hosts = "par-*"
"#,
        url = rx.url
    );
    let dir = tempfile::tempdir().unwrap();
    let w = Arc::new(
        Watcher::start(
            env!("CARGO_BIN_EXE_sqlite-smtp"),
            &[],
            dir.path(),
            &config,
            &[("IAMALIVE_TIMEOUT", "3s")],
        )
        .await,
    );
    let dark: Vec<String> = (0..4)
        .map(|i| format!("ber-{i}"))
        .chain((0..3).map(|i| format!("par-{i}")))
        .collect();
    futures::future::join_all(dark.iter().map(|h| beat(&w, h, None))).await;
    beat(&w, "rom-1", Some("office-rome")).await;
    beat(&w, "rom-2", Some("office-rome")).await;
    let stop = Arc::new(AtomicBool::new(false));
    let back = Arc::new(AtomicBool::new(false));
    let keeper = {
        let (w, stop, back) = (w.clone(), stop.clone(), back.clone());
        let dark = dark.clone();
        tokio::spawn(async move {
            for _ in 0..600 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                beat(&w, "rom-1", Some("office-rome")).await;
                beat(&w, "rom-2", Some("office-rome")).await;
                if back.load(Ordering::Relaxed) {
                    futures::future::join_all(dark.iter().map(|h| beat(&w, h, None))).await;
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        })
    };
    assert!(
        rx.wait_for(&["\"kind\":\"watcher_blind\""], 1, WAIT).await,
        "{:?}\n{}",
        rx.bodies(),
        w.log()
    );
    let bodies = parsed(&rx);
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

    back.store(true, Ordering::Relaxed);
    assert!(
        rx.wait_for(&["\"kind\":\"watcher_blind_recovery\""], 1, WAIT)
            .await,
        "{:?}\n{}",
        rx.bodies(),
        w.log()
    );
    // Let any stray notice show (within the timeout: the keeper stops).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let bodies = parsed(&rx);
    stop.store(true, Ordering::Relaxed);
    keeper.await.unwrap();
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
