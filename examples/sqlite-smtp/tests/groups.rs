//! One notice per outage of a group, end to end: the sqlite-smtp preset
//! with a JSON webhook to a real receiver. Ten hosts of a site stop
//! together: one group alarm naming all ten, and after they return one
//! group all-clear; a host of another site stops alone: its own alarm. Two
//! sites stop together: one "watcher may be blind" notice and one all-clear;
//! so do four of six hosts without a group.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use iamalive_testkit::Receiver;
use iamalive_testkit::watcher::{KEY, Keeper, Watcher};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(30);

/// The sqlite-smtp watcher with a JSON webhook to `rx`, groups of at
/// least two hosts gathered for 1 s and the `[[groups]]` tables `groups`;
/// a 3 s timeout, long enough for a keeper to beat every host in time on a
/// loaded machine while the group wait stays short.
async fn start(rx: &Receiver, dir: &tempfile::TempDir, groups: &str) -> Arc<Watcher> {
    start_with(rx, dir, groups, "3s").await
}

/// [`start`] with another timeout.
async fn start_with(
    rx: &Receiver,
    dir: &tempfile::TempDir,
    groups: &str,
    timeout: &str,
) -> Arc<Watcher> {
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
            &[("IAMALIVE_TIMEOUT", timeout)],
        )
        .await,
    )
}

/// Waits for the `watcher_blind` notice and returns its body, the only
/// notice received.
async fn only_blind_notice(rx: &Receiver, w: &Watcher) -> Value {
    assert!(
        rx.wait_for(&["\"kind\":\"watcher_blind\""], 1, WAIT).await,
        "{:?}\n{}",
        rx.bodies(),
        w.log()
    );
    let mut bodies = rx.json();
    assert_eq!(bodies.len(), 1, "only the blind notice: {bodies:#?}");
    bodies.remove(0)
}

/// Brings the keeper's dark hosts back, waits for a notice holding every
/// one of `needles`, lets any stray notice show (within the timeout: the
/// keeper stops) and returns every notice received.
async fn bring_back(rx: &Receiver, w: &Watcher, keeper: Keeper, needles: &[&str]) -> Vec<Value> {
    keeper.bring_back();
    assert!(
        rx.wait_for(needles, 1, WAIT).await,
        "{:?}\n{}",
        rx.bodies(),
        w.log()
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let bodies = rx.json();
    keeper.stop().await;
    bodies
}

/// Brings the keeper's dark hosts back and checks that exactly one
/// all-clear follows the blind notice (same outage id, its subject going
/// on with `then`), and no group or host notice.
async fn then_one_blind_all_clear(rx: &Receiver, w: &Watcher, keeper: Keeper, then: &str) {
    let bodies = bring_back(rx, w, keeper, &["\"kind\":\"watcher_blind_recovery\""]).await;
    let kinds: Vec<&str> = bodies.iter().map(|b| b["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["watcher_blind", "watcher_blind_recovery"],
        "one notice and one all-clear, no group or host notice: {bodies:#?}"
    );
    assert_eq!(bodies[1]["outage_id"], bodies[0]["outage_id"]);
    let subject = bodies[1]["subject"].as_str().unwrap();
    assert!(
        subject.starts_with(&format!("[iamalive] RECOVERED watcher sees again: {then}")),
        "{subject}"
    );
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
    let needles = ["\"kind\":\"recovery\"", "office-berlin", "\"hosts\""];
    let bodies = bring_back(&rx, &w, keeper, &needles).await;
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
    let b = &only_blind_notice(&rx, &w).await;
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

    then_one_blind_all_clear(&rx, &w, keeper, "2 sites").await;
}

/// Hosts past their expected beat count toward `min_hosts`: six hosts of
/// a site beat every second (five send `"interval": 1`, one pings and has
/// its interval learned), timeout 20 s, `min_hosts` 5. One stops, the
/// five others stop 5 s later: one group alarm at the first host's
/// deadline plus the wait names all six, five with `missed_beat: true`
/// (their own timeouts still 4 s away); when those run out nothing more is
/// sent; when they return, one group all-clear.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missed_beats_make_one_site_alarm_before_the_timeouts() {
    let rx = Receiver::start().await;
    let config = format!(
        r#"
[[channels]]
name = "hook"
kind = "webhook"
url = "{url}"

[grouping]
min_hosts = 5
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
            // Longer than the interval plus the 10 s tolerance, so a beat
            // can be missed before the timeout runs out.
            &[("IAMALIVE_TIMEOUT", "20s")],
        )
        .await,
    );
    let client = reqwest::Client::new();
    let send = {
        let (client, w) = (client.clone(), w.clone());
        move |host: &'static str| {
            let (client, w) = (client.clone(), w.clone());
            async move {
                let r = if host == "ber-5" {
                    // A ping URL sends no interval: it is learned.
                    client
                        .get(format!("http://{}/ping/{KEY}/{host}", w.addr))
                        .send()
                        .await
                } else {
                    client
                        .post(format!("http://{}/v1/heartbeat", w.addr))
                        .bearer_auth(KEY)
                        .json(&serde_json::json!({ "host": host, "interval": 1 }))
                        .send()
                        .await
                }
                .expect("heartbeat");
                assert!(r.status().is_success(), "{host}: {}", r.status());
            }
        }
    };
    const OTHERS: [&str; 5] = ["ber-1", "ber-2", "ber-3", "ber-4", "ber-5"];
    send("ber-0").await;
    let started = std::time::Instant::now();
    let beating = Arc::new(AtomicBool::new(true));
    let keeper = {
        let beating = beating.clone();
        let send = send.clone();
        tokio::spawn(async move {
            for _ in 0..600 {
                match beating.load(Ordering::Relaxed) {
                    true => futures::future::join_all(OTHERS.map(&send)).await,
                    false => break,
                };
                tokio::time::sleep(Duration::from_millis(1000)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_secs(5)).await;
    beating.store(false, Ordering::Relaxed);
    keeper.await.unwrap();
    let host = |h: &str| {
        let (client, w) = (client.clone(), w.clone());
        let url = format!("http://{}/v1/hosts/{h}", w.addr);
        async move {
            client
                .get(url)
                .bearer_auth(KEY)
                .send()
                .await
                .expect("GET host")
                .json::<Value>()
                .await
                .expect("JSON")
        }
    };
    let sent = host("ber-1").await;
    assert_eq!(
        (sent["interval"].as_f64(), sent["interval_source"].as_str()),
        (Some(1.0), Some("sent")),
        "{sent}"
    );
    let learned = host("ber-5").await;
    assert_eq!(learned["interval_source"], "learned", "{learned}");
    let every = learned["interval"].as_f64().expect("learned interval");
    assert!((0.9..5.0).contains(&every), "{learned}");
    assert!(
        sent["expected_by"].is_string() && sent["missed_beat"] == false,
        "{sent}"
    );

    assert!(
        rx.wait_for(&["site office-berlin: 6 hosts silent"], 1, 2 * WAIT)
            .await,
        "{:?}\n{}",
        rx.bodies(),
        w.log()
    );
    let alarm_after = started.elapsed();
    let bodies = rx.json();
    assert_eq!(bodies.len(), 1, "{bodies:#?}");
    let ga = &bodies[0];
    assert!(
        ga["subject"]
            .as_str()
            .unwrap()
            .ends_with("6 hosts silent (5 missed a beat, 1 silent past its timeout)"),
        "{ga}"
    );
    let mut named: Vec<(&str, bool)> = ga["hosts"]
        .as_array()
        .expect("hosts")
        .iter()
        .map(|h| (h["host"].as_str().unwrap(), h["missed_beat"] == true))
        .collect();
    named.sort_unstable();
    assert_eq!(
        named,
        [
            ("ber-0", false),
            ("ber-1", true),
            ("ber-2", true),
            ("ber-3", true),
            ("ber-4", true),
            ("ber-5", true)
        ],
        "{ga}"
    );
    // ber-0's deadline (20 s) plus the wait, well before the others' (25 s).
    assert!(
        alarm_after < Duration::from_secs(25),
        "the alarm came {alarm_after:?} after the first host stopped"
    );
    let missed = host("ber-2").await;
    assert!(
        missed["missed_beat"] == true || missed["status"] != "up",
        "{missed}"
    );

    // Past the others' timeouts: absorbed, nothing more is sent.
    let quiet_until = Duration::from_secs(28);
    tokio::time::sleep(quiet_until.saturating_sub(started.elapsed())).await;
    let bodies = rx.json();
    assert_eq!(
        bodies.len(),
        1,
        "nothing after the group alarm: {bodies:#?}"
    );
    assert_eq!(host("ber-3").await["status"], "alarmed");

    // Back: one all-clear naming the six.
    send("ber-0").await;
    futures::future::join_all(OTHERS.map(&send)).await;
    assert!(
        rx.wait_for(&["\"kind\":\"recovery\"", "office-berlin"], 1, WAIT)
            .await,
        "{:?}\n{}",
        rx.bodies(),
        w.log()
    );
    let bodies = rx.json();
    assert_eq!(bodies.len(), 2, "{bodies:#?}");
    assert_eq!(bodies[1]["hosts"].as_array().map(Vec::len), Some(6));
    assert_eq!(bodies[1]["outage_id"], ga["outage_id"]);
}

/// More than half of the hosts without a group falling silent together is
/// a blind spot too: six hosts beat every 300 ms (their interval learned),
/// timeout 12 s, group wait 1 s; four stop. One `watcher_blind` notice
/// naming the four as the hosts without a group, "4 of 6 hosts silent",
/// and no host alarm (when the first comes due the others have missed
/// their beat, so it is not taken for a lone silence); after they return,
/// one `watcher_blind_recovery`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn most_hosts_without_a_group_silent_are_one_watcher_blind_notice() {
    let rx = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let w = start_with(&rx, &dir, "", "12s").await;
    let hosts: Vec<String> = (0..6).map(|i| format!("h-{i}")).collect();
    for _ in 0..3 {
        futures::future::join_all(hosts.iter().map(|h| w.beat(h))).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let (dark, beating) = hosts.split_at(4);
    let steady: Vec<(&str, Option<&str>)> = beating.iter().map(|h| (h.as_str(), None)).collect();
    let keeper = Keeper::start(&w, &steady, dark);
    let b = &only_blind_notice(&rx, &w).await;
    let subject = b["subject"].as_str().unwrap();
    assert!(
        subject.starts_with("[iamalive] ALARM watcher may be blind: 4 of 6 hosts silent since "),
        "{subject}"
    );
    assert_eq!(
        (b["hosts_silent"].as_u64(), b["hosts_total"].as_u64()),
        (Some(4), Some(6)),
        "{b}"
    );
    let groups = b["groups"].as_array().expect("groups");
    assert_eq!(groups.len(), 1, "{b}");
    assert_eq!(groups[0]["group"], "ungrouped", "{b}");
    let mut named: Vec<&str> = groups[0]["hosts"]
        .as_array()
        .expect("hosts")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    named.sort_unstable();
    assert_eq!(named, ["h-0", "h-1", "h-2", "h-3"], "{b}");
    assert!(
        b["message"]
            .as_str()
            .unwrap()
            .starts_with("More than half of all monitored hosts"),
        "says why: {b}"
    );

    then_one_blind_all_clear(&rx, &w, keeper, "4 of 6 hosts back after").await;
}
