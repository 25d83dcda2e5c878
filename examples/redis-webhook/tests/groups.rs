//! End to end: groups (sites) through a real `redis-webhook` process on a
//! real Redis, with a real webhook receiver on loopback and the real agent
//! binary. A host's group comes from `[[groups]]` (which wins), a JSON
//! heartbeat's `"group"`, a ping URL's `?group=` and the agent's `--group` /
//! `IAMALIVE_AGENT_GROUP`; the API shows and filters by it, and every JSON
//! webhook body carries `"group"` (null when none).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::routing::post;
use serde_json::{Value, json};

const KEY: &str = "groups-e2e-key-0123456789abcdef";

/// A child process killed when dropped (a failing test leaves nothing behind).
struct Proc {
    child: Child,
    log: PathBuf,
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
            eprintln!("--- watcher log ---\n{}", self.log());
        }
    }
}

type Received = Arc<Mutex<Vec<Value>>>;

async fn receiver() -> (String, Received) {
    let got: Received = Arc::default();
    let app = axum::Router::new()
        .route(
            "/hook",
            post(
                |State(got): State<Received>, Json(v): Json<Value>| async move {
                    got.lock().unwrap().push(v);
                    ""
                },
            ),
        )
        .with_state(got.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/hook"), got)
}

fn start(dir: &Path, redis_url: &str, hook: &str) -> (Proc, SocketAddr) {
    let config = dir.join("iamalive.toml");
    std::fs::write(
        &config,
        "[grouping]\nmin_hosts = 3\nwait = \"45s\"\n\n\
         [[groups]]\nname = \"office-berlin\"\nhosts = \"ber-*\"\nwait = \"5s\"\n",
    )
    .unwrap();
    let port = iamalive_testkit::free_port();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let log = dir.join("watcher.log");
    let out = std::fs::File::create(&log).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_redis-webhook"));
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("IAMALIVE_")) {
        cmd.env_remove(k);
    }
    cmd.current_dir(dir)
        .env("IAMALIVE_CONFIG", &config)
        .env("IAMALIVE_LISTEN", addr.to_string())
        .env("IAMALIVE_API_KEYS", KEY)
        .env("IAMALIVE_REDIS_URL", redis_url)
        .env(
            "IAMALIVE_REDIS_PREFIX",
            format!("groups-{}", uuid::Uuid::new_v4().simple()),
        )
        .env("IAMALIVE_WEBHOOK_URL", hook)
        .env("IAMALIVE_WEBHOOK_FORMAT", "json")
        .env("IAMALIVE_TIMEOUT", "3s")
        .env("IAMALIVE_REMINDER_INTERVAL", "1h")
        .env("IAMALIVE_MAX_SLEEP", "50ms")
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out);
    let child = cmd.spawn().expect("start redis-webhook");
    (Proc { child, log }, addr)
}

/// The agent binary beside this test's own (the workspace build makes it).
fn agent_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).unwrap();
    let bin = dir.join(format!("iamalive-agent{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "{} not found: build the workspace first (cargo build --workspace, as scripts/test.sh does)",
        bin.display()
    );
    bin
}

fn agent(addr: SocketAddr, host: &str) -> Command {
    let mut c = Command::new(agent_bin());
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("IAMALIVE_")) {
        c.env_remove(k);
    }
    for v in ["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"] {
        c.env_remove(v);
    }
    c.args(["--url", &format!("http://{addr}"), "--key", KEY])
        .args(["--host", host, "--once", "--no-proxy"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    c
}

async fn post_beat(http: &reqwest::Client, addr: SocketAddr, body: Value) -> (u16, Value) {
    let r = http
        .post(format!("http://{addr}/v1/heartbeat"))
        .bearer_auth(KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn get(http: &reqwest::Client, addr: SocketAddr, path: &str) -> (u16, Value) {
    let r = http
        .get(format!("http://{addr}{path}"))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_end_to_end() {
    let redis = iamalive_testkit::redis();
    let dir = tempfile::tempdir().unwrap();
    let (hook, got) = receiver().await;
    let (watcher, addr) = start(dir.path(), &redis.redis_url(), &hook);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .no_proxy()
        .build()
        .unwrap();

    // The watcher comes up; configuration wins over what the host says.
    let started = Instant::now();
    loop {
        let r = http
            .post(format!("http://{addr}/v1/heartbeat"))
            .bearer_auth(KEY)
            .json(&json!({"host": "ber-db-1", "group": "somewhere-else"}))
            .send()
            .await;
        if r.is_ok_and(|r| r.status().is_success()) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the watcher never took a heartbeat\n{}",
            watcher.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A host no entry matches takes the group it names (folded to lowercase).
    let (s, _) = post_beat(
        &http,
        addr,
        json!({"host": "mun-db-1", "group": "Office-Munich"}),
    )
    .await;
    assert_eq!(s, 200);
    let (s, _) = post_beat(&http, addr, json!({"host": "lone"})).await;
    assert_eq!(s, 200);
    // A ping URL's ?group=.
    let r = http
        .get(format!(
            "http://{addr}/ping/{KEY}/ham-1?group=office-hamburg"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    // The agent's --group, and IAMALIVE_AGENT_GROUP.
    let out = agent(addr, "agent-1")
        .args(["--group", "office-hamburg"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = agent(addr, "agent-2")
        .env("IAMALIVE_AGENT_GROUP", "lab")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A bad --group stops the agent at start, naming the rule.
    let out = agent(addr, "agent-3")
        .args(["--group", "lab 2"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--group"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Bad names are a clear 400 and write nothing.
    let (s, body) = post_beat(&http, addr, json!({"host": "bad-1", "group": "a\nb"})).await;
    assert_eq!(s, 400, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("invalid group name"),
        "{body}"
    );
    let (s, _) = post_beat(
        &http,
        addr,
        json!({"host": "bad-1", "group": "x".repeat(129)}),
    )
    .await;
    assert_eq!(s, 400);
    let r = http
        .get(format!("http://{addr}/ping/{KEY}/bad-2?group=a%20b"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert!(r.text().await.unwrap().contains("invalid group name"));

    // The API shows each host's group, null when none, and filters by it.
    let (s, list) = get(&http, addr, "/v1/hosts").await;
    assert_eq!(s, 200);
    let groups: Vec<(String, Value)> = list["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h["host"].as_str().unwrap().to_owned(), h["group"].clone()))
        .collect();
    assert_eq!(
        groups,
        [
            ("agent-1".to_owned(), json!("office-hamburg")),
            ("agent-2".to_owned(), json!("lab")),
            ("ber-db-1".to_owned(), json!("office-berlin")),
            ("ham-1".to_owned(), json!("office-hamburg")),
            ("lone".to_owned(), Value::Null),
            ("mun-db-1".to_owned(), json!("office-munich")),
        ],
        "no host of a rejected request was written"
    );
    let (_, hamburg) = get(&http, addr, "/v1/hosts?group=office-hamburg").await;
    let names: Vec<&str> = hamburg["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["host"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["agent-1", "ham-1"]);
    let (s, _) = get(&http, addr, "/v1/hosts?group=no%20such").await;
    assert_eq!(s, 400);
    let (_, one) = get(&http, addr, "/v1/hosts/ber-db-1").await;
    assert_eq!(one["group"], "office-berlin");

    // Every host falls silent: each alarm names its group (null for none).
    let want = 6;
    assert!(
        wait_for(Duration::from_secs(30), || got.lock().unwrap().len()
            >= want)
        .await,
        "expected {want} alarms, got {:?}\n{}",
        got.lock().unwrap(),
        watcher.log()
    );
    let mut alarms: Vec<(String, Value, String)> = got
        .lock()
        .unwrap()
        .iter()
        .map(|v| {
            assert_eq!(v["kind"], "alarm", "{v}");
            (
                v["host"].as_str().unwrap().to_owned(),
                v["group"].clone(),
                v["subject"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    alarms.sort_by(|a, b| a.0.cmp(&b.0));
    let by_host = |h: &str| alarms.iter().find(|a| a.0 == h).unwrap().clone();
    assert_eq!(by_host("ber-db-1").1, "office-berlin");
    assert_eq!(
        by_host("ber-db-1").2,
        "[iamalive] ALARM ber-db-1 (site office-berlin)"
    );
    assert_eq!(by_host("mun-db-1").1, "office-munich");
    assert_eq!(by_host("ham-1").1, "office-hamburg");
    assert_eq!(by_host("agent-1").1, "office-hamburg");
    assert_eq!(by_host("agent-2").1, "lab");
    assert_eq!(by_host("lone").1, Value::Null);
    assert_eq!(by_host("lone").2, "[iamalive] ALARM lone");
    let raw = got.lock().unwrap().clone();
    assert!(
        raw.iter()
            .all(|v| v.as_object().unwrap().contains_key("group")),
        "the field is present even when null"
    );

    // The all-clear names the group too; a beat without a group keeps it.
    got.lock().unwrap().clear();
    let (s, _) = post_beat(&http, addr, json!({"host": "mun-db-1"})).await;
    assert_eq!(s, 200);
    assert!(
        wait_for(Duration::from_secs(30), || !got.lock().unwrap().is_empty()).await,
        "no recovery\n{}",
        watcher.log()
    );
    let v = got.lock().unwrap()[0].clone();
    assert_eq!(v["kind"], "recovery");
    assert_eq!(v["group"], "office-munich");
}
