//! End to end: two real `redis-webhook` processes on one real Redis, a real
//! webhook receiver on loopback, sub-second timeouts. An outage gives
//! exactly one alarm and one recovery at the receiver. The same again on a
//! real three-node Redis Cluster.
//!
//! "No second notice" is shown by counting sweeps, not by sleeping: each
//! instance's `iamalive_sweeps_total` (its `/metrics`) must move on by
//! several sweeps after a notice before the test looks for a duplicate.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::routing::post;
use serde_json::Value;

const KEY: &str = "e2e-test-key-0123456789abcdef";

/// A child process killed when dropped (a failing test leaves nothing behind).
struct Proc {
    child: Child,
    name: String,
    log: std::path::PathBuf,
}

impl Proc {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- {} log ---\n{}", self.name, self.log());
        }
    }
}

type Received = Arc<Mutex<Vec<Value>>>;

async fn receiver() -> (String, Received) {
    let (url, got, _) = switchable_receiver().await;
    (url, got)
}

/// A receiver that answers 404 (a deleted or rotated workflow) and keeps
/// nothing while its flag is set, and takes notices again once cleared.
async fn switchable_receiver() -> (String, Received, Arc<AtomicBool>) {
    let got: Received = Arc::default();
    let gone = Arc::new(AtomicBool::new(false));
    let app =
        axum::Router::new()
            .route(
                "/hook",
                post(
                    |State((got, gone)): State<(Received, Arc<AtomicBool>)>,
                     Json(v): Json<Value>| async move {
                        if gone.load(Ordering::SeqCst) {
                            return (axum::http::StatusCode::NOT_FOUND, "workflow not found");
                        }
                        got.lock().unwrap().push(v);
                        (axum::http::StatusCode::OK, "")
                    },
                ),
            )
            .with_state((got.clone(), gone.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/hook"), got, gone)
}

fn start(
    name: &str,
    dir: &std::path::Path,
    redis_url: &str,
    cluster: bool,
    prefix: &str,
    hook: &str,
) -> (Proc, SocketAddr) {
    let port = iamalive_testkit::free_port();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let log = dir.join(format!("{name}.log"));
    let out = std::fs::File::create(&log).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_redis-webhook"));
    // Only what the test sets: nothing inherited from the developer's shell.
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("IAMALIVE_")) {
        cmd.env_remove(k);
    }
    cmd.current_dir(dir)
        .env("IAMALIVE_LISTEN", addr.to_string())
        .env("IAMALIVE_API_KEYS", KEY)
        .env("IAMALIVE_REDIS_URL", redis_url)
        .env("IAMALIVE_REDIS_PREFIX", prefix)
        .env("IAMALIVE_REDIS_CLUSTER", cluster.to_string())
        .env("IAMALIVE_WEBHOOK_URL", hook)
        .env("IAMALIVE_WEBHOOK_FORMAT", "json")
        .env("IAMALIVE_WEBHOOK_SECRET", "e2e-signing-secret")
        .env("IAMALIVE_TIMEOUT", "600ms")
        .env("IAMALIVE_REMINDER_INTERVAL", "1h")
        .env("IAMALIVE_MAX_SLEEP", "50ms")
        .env("IAMALIVE_LOG", "info")
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out);
    let child = cmd.spawn().expect("start redis-webhook");
    (
        Proc {
            child,
            name: name.into(),
            log,
        },
        addr,
    )
}

async fn beat(http: &reqwest::Client, addr: SocketAddr, host: &str) -> Result<(), String> {
    let r = http
        .post(format!("http://{addr}/v1/heartbeat"))
        .bearer_auth(KEY)
        .json(&serde_json::json!({"host": host}))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if r.status().is_success() {
        Ok(())
    } else {
        Err(format!(
            "{}: {}",
            r.status(),
            r.text().await.unwrap_or_default()
        ))
    }
}

/// Polls until `f` holds, for at most `limit`.
async fn wait_for(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    f()
}

/// How many sweeps the instance at `addr` has finished (its
/// `iamalive_sweeps_total`).
async fn sweeps(http: &reqwest::Client, addr: SocketAddr) -> u64 {
    let text = http
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .expect("/metrics answers")
        .text()
        .await
        .expect("/metrics text");
    text.lines()
        .find_map(|l| l.strip_prefix("iamalive_sweeps_total "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

/// Waits (at most 30 s) until every instance in `addrs` has finished `n`
/// more sweeps than when called: whatever those sweeps could send has
/// been sent.
async fn wait_sweeps(http: &reqwest::Client, addrs: &[SocketAddr], n: u64) {
    let mut from = Vec::new();
    for &a in addrs {
        from.push(sweeps(http, a).await);
    }
    let start = Instant::now();
    for (&a, from) in addrs.iter().zip(from) {
        loop {
            let now = sweeps(http, a).await;
            if now >= from + n {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "{a} swept {} times in 30 s, {n} wanted",
                now - from
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

fn kinds(got: &Received) -> Vec<(String, String)> {
    got.lock()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["kind"].as_str().unwrap_or("?").to_owned(),
                v["host"].as_str().unwrap_or("?").to_owned(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_one_alarm_one_recovery() {
    let redis = iamalive_testkit::redis();
    one_alarm_one_recovery([redis.redis_url(), redis.redis_url()], false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_a_redis_cluster() {
    let cluster = iamalive_testkit::redis_cluster();
    // One instance knows every node, the other only one of them.
    let urls = cluster.urls();
    one_alarm_one_recovery([urls.join(","), urls[1].clone()], true).await;
}

/// Two instances on `urls` (one each), an outage of one host: exactly one
/// alarm and one recovery.
async fn one_alarm_one_recovery(urls: [String; 2], cluster: bool) {
    let dir = tempfile::tempdir().unwrap();
    let prefix = format!("e2e-{}", uuid::Uuid::new_v4().simple());
    let (hook, got) = receiver().await;
    let (a, addr_a) = start("a", dir.path(), &urls[0], cluster, &prefix, &hook);
    let (b, addr_b) = start("b", dir.path(), &urls[1], cluster, &prefix, &hook);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();

    // Both instances come up and take heartbeats.
    for addr in [addr_a, addr_b] {
        let start = Instant::now();
        loop {
            match beat(&http, addr, "edge-01").await {
                Ok(()) => break,
                Err(e) if start.elapsed() > Duration::from_secs(30) => {
                    panic!(
                        "{addr} never took a heartbeat: {e}\n{}\n{}",
                        a.log(),
                        b.log()
                    )
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    // Up: heartbeats to both instances in turn, each followed by a sweep
    // of both (50 ms apart at most, well inside the 600 ms timeout).
    for i in 0..10 {
        let addr = if i % 2 == 0 { addr_a } else { addr_b };
        beat(&http, addr, "edge-01").await.unwrap();
        wait_sweeps(&http, &[addr_a, addr_b], 1).await;
    }
    assert!(
        kinds(&got).is_empty(),
        "no notice while the host reports: {:?}",
        kinds(&got)
    );

    // The outage: silence. Exactly one alarm, from whichever monitor won.
    assert!(
        wait_for(Duration::from_secs(15), || !kinds(&got).is_empty()).await,
        "an alarm arrives\n{}\n{}",
        a.log(),
        b.log()
    );
    // Give both runners many sweeps to duplicate it.
    wait_sweeps(&http, &[addr_a, addr_b], 10).await;
    assert_eq!(kinds(&got), [("alarm".into(), "edge-01".into())]);

    // Back: exactly one recovery.
    beat(&http, addr_b, "edge-01").await.unwrap();
    assert!(
        wait_for(Duration::from_secs(15), || kinds(&got).len() >= 2).await,
        "a recovery arrives\n{}\n{}",
        a.log(),
        b.log()
    );
    // Keep it up while both monitors sweep many times.
    for _ in 0..4 {
        beat(&http, addr_a, "edge-01").await.unwrap();
        wait_sweeps(&http, &[addr_a, addr_b], 3).await;
    }
    let all = kinds(&got);
    assert_eq!(
        all,
        [
            ("alarm".to_owned(), "edge-01".to_owned()),
            ("recovery".to_owned(), "edge-01".to_owned())
        ]
    );
    let bodies = got.lock().unwrap().clone();
    assert_eq!(bodies[0]["outage_id"], bodies[1]["outage_id"], "one outage");
    assert_ne!(bodies[0]["id"], bodies[1]["id"]);
    assert_eq!(bodies[1]["alarm_count"], 1);
    drop((a, b));
}

/// A webhook answering 404: the alarm is not dropped. It stays owed and is
/// retried, /healthz says degraded and names the channel, the test notice
/// says refused; once the receiver takes notices again the alarm arrives
/// once, followed by the channel's all-clear.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_answering_404_drops_no_alarm() {
    let redis = iamalive_testkit::redis();
    let dir = tempfile::tempdir().unwrap();
    let prefix = format!("e2e-{}", uuid::Uuid::new_v4().simple());
    let (hook, got, gone) = switchable_receiver().await;
    gone.store(true, Ordering::SeqCst);
    let (w, addr) = start("w", dir.path(), &redis.redis_url(), false, &prefix, &hook);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let up = wait_for(Duration::from_secs(30), || {
        std::net::TcpStream::connect(addr).is_ok()
    })
    .await;
    assert!(up, "{}", w.log());
    beat(&http, addr, "edge-02").await.unwrap();

    let get = |path: &'static str| {
        let http = http.clone();
        async move {
            let r = http
                .get(format!("http://{addr}{path}"))
                .bearer_auth(KEY)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let r = http
        .post(format!("http://{addr}/v1/test-notice"))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["channels"][0]["outcome"], "refused", "{body}");

    // Silent: the alarm is refused, stays owed, and the watcher says so.
    let start = Instant::now();
    loop {
        let (_, host) = get("/v1/hosts/edge-02").await;
        if host["owed_notice"]["attempts"].as_u64() >= Some(2) {
            assert_eq!(host["status"], "missing", "{host}");
            assert!(
                host["owed_notice"]["refusals"][0]["reason"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("404"),
                "{host}"
            );
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{host}\n{}",
            w.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (code, health) = get("/healthz").await;
    assert_eq!(code, 200, "{health}");
    assert_eq!(health["status"], "degraded", "{health}");
    assert_eq!(
        health["refusing_channels"][0]["channel"], "webhook",
        "{health}"
    );

    // The workflow is back: the alarm arrives once, then the all-clear of
    // the channel itself.
    gone.store(false, Ordering::SeqCst);
    assert!(
        wait_for(Duration::from_secs(15), || kinds(&got).len() >= 2).await,
        "{:?}\n{}",
        kinds(&got),
        w.log()
    );
    // Many more sweeps: nothing else arrives.
    wait_sweeps(&http, &[addr], 10).await;
    let mut all = kinds(&got);
    all.sort();
    assert_eq!(
        all,
        [
            ("alarm".to_owned(), "edge-02".to_owned()),
            ("restored".to_owned(), "iamalive-watcher".to_owned())
        ]
    );
    let (_, health) = get("/healthz").await;
    assert_eq!(health["status"], "ok", "{health}");
}

/// A malformed channel setting stops the start with the setting named,
/// before any connection is tried (here two URLs in one setting, which
/// used to post to a garbage path).
#[test]
fn two_urls_in_the_webhook_setting_stop_the_start() {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_redis-webhook"));
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("IAMALIVE_")) {
        cmd.env_remove(k);
    }
    let out = cmd
        .env("IAMALIVE_REDIS_URL", "redis://127.0.0.1:1/")
        .env(
            "IAMALIVE_WEBHOOK_URL",
            "http://a.example/x,http://b.example/y",
        )
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("IAMALIVE_WEBHOOK_URL") && err.contains("two URLs"),
        "{err}"
    );
}
