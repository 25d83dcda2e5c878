//! A real Prometheus scrapes the watcher's `/metrics` and answers queries
//! about its hosts through its HTTP API.

mod common;

use std::time::{Duration, Instant};

use common::{AGENT, Conn, Server};
use iamalive_core::HostId;
use iamalive_server::{Runner, prometheus_builder};
use serde_json::Value;

/// Asks Prometheus `query` until `done` accepts the result vector, for up
/// to 30 s (it scrapes every second); the last vector either way.
async fn query_until(
    http: &reqwest::Client,
    prom: &str,
    query: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let start = Instant::now();
    let mut last = Vec::new();
    while start.elapsed() < Duration::from_secs(30) {
        let url =
            reqwest::Url::parse_with_params(&format!("{prom}/api/v1/query"), [("query", query)])
                .unwrap();
        let r = http.get(url).send().await;
        if let Ok(r) = r
            && let Ok(v) = r.json::<Value>().await
        {
            assert_eq!(v["status"], "success", "{query}: {v}");
            last = v["data"]["result"].as_array().cloned().unwrap_or_default();
            if done(&last) {
                return last;
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    last
}

/// `{host: value}` of a result vector.
fn by_host(v: &[Value]) -> std::collections::BTreeMap<String, String> {
    v.iter()
        .map(|s| {
            (
                s["metric"]["host"].as_str().unwrap_or("").to_owned(),
                s["value"][1].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_per_host_series_and_notice_counts() {
    let handle = prometheus_builder().unwrap().install_recorder().unwrap();
    let server = Server::start_with_state(&[("IAMALIVE_METRICS_MAX_HOSTS", "10")], |s| {
        s.with_metrics(handle)
    })
    .await;
    let state = &server.state;
    for h in ["web-1", "web-2", "web-3"] {
        let mut c = Conn::open(server.addr).await.unwrap();
        assert_eq!(c.heartbeat(Some(AGENT), h).await.unwrap().status, 200);
    }
    // web-2 and web-3 fall silent past the 10 s timeout, web-1 reports on;
    // the sweep alarms web-2 (delivered to the "test" channel) and web-3
    // is paused.
    server.clock.advance(Duration::from_secs(8));
    let mut c = Conn::open(server.addr).await.unwrap();
    assert_eq!(c.heartbeat(Some(AGENT), "web-1").await.unwrap().status, 200);
    server.clock.advance(Duration::from_secs(4));
    state
        .monitor()
        .pause(&HostId::new("web-3").unwrap())
        .await
        .unwrap()
        .unwrap();
    let runner = Runner::new(state, Duration::from_secs(1));
    let _ = runner.step(&mut 0).await;
    assert_eq!(server.channel.notices().len(), 1);

    let prom = iamalive_testkit::prometheus(server.addr);
    let prom_url = format!("http://{}", prom.addr);
    let http = reqwest::Client::new();

    let up = query_until(&http, &prom_url, "iamalive_host_up", |v| v.len() >= 2).await;
    let up = by_host(&up);
    assert_eq!(up.get("web-1").map(String::as_str), Some("1"), "{up:?}");
    assert_eq!(up.get("web-2").map(String::as_str), Some("0"), "{up:?}");
    assert!(
        !up.contains_key("web-3"),
        "a paused host has no up series: {up:?}"
    );

    // The store answered: the per-host series are complete and the store
    // is up (an alert on iamalive_host_up can tell a store outage apart).
    for q in ["iamalive_host_series_up", "iamalive_store_up"] {
        let v = query_until(&http, &prom_url, q, |v| !v.is_empty()).await;
        assert_eq!(v.len(), 1, "{q}: {v:?}");
        assert_eq!(v[0]["value"][1], "1", "{q}: {v:?}");
    }

    let paused = by_host(
        &query_until(
            &http,
            &prom_url,
            "iamalive_host_status{status=\"paused\"} == 1",
            |v| !v.is_empty(),
        )
        .await,
    );
    assert_eq!(paused.keys().collect::<Vec<_>>(), ["web-3"]);
    let alarmed = by_host(
        &query_until(
            &http,
            &prom_url,
            "iamalive_host_status{status=\"alarmed\"} == 1",
            |v| !v.is_empty(),
        )
        .await,
    );
    assert_eq!(alarmed.keys().collect::<Vec<_>>(), ["web-2"]);

    // The last heartbeat, as Unix seconds on the watcher's (manual) clock.
    let seen = by_host(
        &query_until(
            &http,
            &prom_url,
            "iamalive_host_last_seen_timestamp_seconds",
            |v| v.len() == 3,
        )
        .await,
    );
    assert_eq!(seen.get("web-1").map(String::as_str), Some("1700000008"));
    assert_eq!(seen.get("web-2").map(String::as_str), Some("1700000000"));

    let notices = query_until(
        &http,
        &prom_url,
        "iamalive_notices_total{kind=\"alarm\",channel=\"test\",outcome=\"delivered\"}",
        |v| !v.is_empty(),
    )
    .await;
    assert_eq!(notices.len(), 1, "{notices:?}");
    assert_eq!(notices[0]["value"][1], "1");

    let sweeps = query_until(&http, &prom_url, "iamalive_sweep_due_hosts_sum", |v| {
        !v.is_empty()
    })
    .await;
    assert_eq!(
        sweeps.len(),
        1,
        "the due-set histogram is scraped: {sweeps:?}"
    );
    assert!(
        sweeps[0]["value"][1]
            .as_str()
            .unwrap()
            .parse::<f64>()
            .unwrap()
            >= 1.0
    );
    let buckets = query_until(
        &http,
        &prom_url,
        "iamalive_sweep_duration_seconds_bucket{le=\"+Inf\"}",
        |v| !v.is_empty(),
    )
    .await;
    assert_eq!(
        buckets.len(),
        1,
        "the sweep duration is a histogram: {buckets:?}"
    );

    drop(prom);
    server.stop().await;
}
