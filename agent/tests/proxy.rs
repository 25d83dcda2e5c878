//! The agent through a real HTTP proxy (tinyproxy) on loopback.
//!
//! tinyproxy is required: a missing binary fails these tests (under CI and
//! everywhere else); `./scripts/test.sh` installs it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use iamalive_agent::{
    Agent, AgentConfig, Attempt, Backoff, FailureKind, ProxyChoice, endpoint, parse_proxy,
};
use iamalive_testkit::{Server, free_port};
use serde_json::Value;

/// What the watcher saw: each request's `Via` header and body.
struct Receiver {
    status: AtomicU16,
    got: Mutex<Vec<(Option<String>, Value)>>,
}

impl Receiver {
    fn got(&self) -> Vec<(Option<String>, Value)> {
        self.got.lock().unwrap().clone()
    }
}

async fn serve_on(listener: tokio::net::TcpListener) -> Arc<Receiver> {
    let r = Arc::new(Receiver {
        status: AtomicU16::new(200),
        got: Mutex::default(),
    });
    let app = Router::new()
        .route(
            "/v1/heartbeat",
            post(
                |State(r): State<Arc<Receiver>>, h: HeaderMap, body: String| async move {
                    let via = h
                        .get("via")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned);
                    let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                    r.got.lock().unwrap().push((via, v));
                    StatusCode::from_u16(r.status.load(Ordering::SeqCst)).unwrap()
                },
            ),
        )
        .with_state(r.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    r
}

async fn receiver() -> (SocketAddr, Arc<Receiver>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    (addr, serve_on(l).await)
}

fn tinyproxy_bin() -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("tinyproxy"))
            .find(|p| p.is_file())
    });
    let bin = found.unwrap_or_else(|| PathBuf::from("/usr/bin/tinyproxy"));
    assert!(
        bin.is_file(),
        "tinyproxy not found (CI={:?}): install it (Debian: apt-get install tinyproxy); \
         ./scripts/test.sh does",
        std::env::var("CI").unwrap_or_default()
    );
    bin
}

/// tinyproxy on `port` of 127.0.0.1, with `extra` config lines; killed on
/// drop. Its log is `server.dir/log`.
fn tinyproxy_on(port: u16, extra: &str) -> Server {
    let bin = tinyproxy_bin();
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("tinyproxy.conf");
    std::fs::write(
        &conf,
        format!(
            "Port {port}\nListen 127.0.0.1\nAllow 127.0.0.1\nTimeout 10\nLogLevel Info\n\
             LogFile \"{}\"\nMaxClients 20\n{extra}\n",
            dir.path().join("log").display()
        ),
    )
    .unwrap();
    let mut cmd = Command::new(bin);
    cmd.arg("-d").arg("-c").arg(&conf);
    Server::spawn(cmd, port, dir, "tinyproxy")
}

fn proxy_log(p: &Server) -> String {
    std::fs::read_to_string(p.dir.path().join("log")).unwrap_or_default()
}

fn config(watcher: &str, proxy: &str) -> AgentConfig {
    AgentConfig {
        url: endpoint(watcher).unwrap(),
        key: "k".into(),
        host: "site-7".into(),
        message: None,
        group: None,
        timeout: Duration::from_secs(5),
        interval: Duration::from_secs(2),
        send_interval: true,
        backoff: Backoff::for_interval(Duration::from_secs(2)),
        state_file: None,
        ca_file: None,
        proxy: ProxyChoice::Url(parse_proxy(proxy).unwrap()),
    }
}

fn failed(a: Attempt) -> (FailureKind, String, bool) {
    match a {
        Attempt::Failed {
            kind,
            detail,
            retryable,
        } => (kind, detail, retryable),
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn heartbeats_go_through_the_proxy_and_a_stopped_proxy_is_named() {
    let (addr, r) = receiver().await;
    let port = free_port();
    let proxy_url = format!("http://127.0.0.1:{port}");
    let mut proxy = tinyproxy_on(port, "");
    let mut agent = Agent::new(config(&format!("http://{addr}"), &proxy_url)).unwrap();
    assert_eq!(agent.proxy(), Some(proxy_url.as_str()));

    assert_eq!(
        agent.attempt().await,
        Attempt::Delivered {
            carried_report: false
        }
    );
    let got = r.got();
    let via = got[0].0.as_deref().unwrap_or_default();
    assert!(
        via.contains("tinyproxy"),
        "not relayed by the proxy: {via:?}"
    );
    assert!(
        proxy_log(&proxy).contains("/v1/heartbeat"),
        "{}",
        proxy_log(&proxy)
    );

    // The proxy is stopped: the failure names the proxy, not the watcher.
    proxy.stop();
    let (kind, detail, retryable) = failed(agent.attempt().await);
    assert_eq!(kind, FailureKind::Proxy, "{detail}");
    assert!(
        detail.starts_with(&format!("proxy {proxy_url} unreachable")),
        "{detail}"
    );
    assert!(detail.to_lowercase().contains("refused"), "{detail}");
    assert!(!detail.contains(&addr.to_string()), "{detail}");
    assert!(retryable);

    // Back: the report that rides on the next heartbeat names the proxy.
    let _proxy = tinyproxy_on(port, "");
    assert_eq!(
        agent.attempt().await,
        Attempt::Delivered {
            carried_report: true
        }
    );
    let report = r.got()[1].1["report"].clone();
    assert_eq!(report["failures"][0]["kind"], "proxy", "{report}");
    assert!(
        report["failures"][0]["detail"]
            .as_str()
            .unwrap()
            .contains(&proxy_url),
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_proxys_error_page_is_not_the_watchers_answer() {
    let port = free_port();
    let proxy_url = format!("http://127.0.0.1:{port}");
    let _proxy = tinyproxy_on(port, "");

    // The watcher is down; the proxy answers with its own 500 page.
    let closed = format!("http://127.0.0.1:{}", free_port());
    let mut agent = Agent::new(config(&closed, &proxy_url)).unwrap();
    let (kind, detail, retryable) = failed(agent.attempt().await);
    assert_eq!(kind, FailureKind::Proxy, "{detail}");
    assert!(
        detail.starts_with(&format!("proxy {proxy_url} answered HTTP 500")),
        "{detail}"
    );
    assert!(
        detail.contains("Unable to connect") && detail.contains("tinyproxy"),
        "{detail}"
    );
    assert!(retryable);

    // The watcher's own answers, relayed by the proxy, stay `http`.
    let (addr, r) = receiver().await;
    let mut agent = Agent::new(config(&format!("http://{addr}"), &proxy_url)).unwrap();
    for (status, retryable) in [(503, true), (502, true), (500, true), (401, false)] {
        r.status.store(status, Ordering::SeqCst);
        assert_eq!(
            failed(agent.attempt().await),
            (FailureKind::Http, format!("HTTP {status}"), retryable)
        );
    }
    assert!(r.got().iter().all(|(via, _)| via.is_some()));
}

#[tokio::test(flavor = "multi_thread")]
async fn proxy_credentials_are_used_and_never_shown() {
    let (addr, r) = receiver().await;
    let watcher = format!("http://{addr}");
    let port = free_port();
    let mut proxy = tinyproxy_on(port, "BasicAuth alice s3cret");

    // Without credentials the proxy answers 407: its fault, named.
    let mut agent = Agent::new(config(&watcher, &format!("127.0.0.1:{port}"))).unwrap();
    let (kind, detail, retryable) = failed(agent.attempt().await);
    assert_eq!(kind, FailureKind::Proxy, "{detail}");
    assert!(
        detail.contains("HTTP 407") && detail.contains("proxy authentication required"),
        "{detail}"
    );
    assert!(!retryable, "a 407 needs a fix, not a retry");
    assert!(r.got().is_empty(), "the proxy did not forward it");

    // With them it gets through.
    let with_creds = format!("http://alice:s3cret@127.0.0.1:{port}");
    let cfg = config(&watcher, &with_creds);
    assert!(!format!("{cfg:?}").contains("s3cret"));
    let mut agent = Agent::new(cfg).unwrap();
    assert_eq!(
        agent.proxy(),
        Some(format!("http://***@127.0.0.1:{port}").as_str())
    );
    assert!(matches!(agent.attempt().await, Attempt::Delivered { .. }));
    assert_eq!(r.got().len(), 1);

    // A failure names the proxy without the password.
    proxy.stop();
    let (kind, detail, _) = failed(agent.attempt().await);
    assert_eq!(kind, FailureKind::Proxy);
    assert!(
        detail.contains(&format!("http://***@127.0.0.1:{port}")) && !detail.contains("s3cret"),
        "{detail}"
    );
    let report = agent.failures().report().unwrap().to_string();
    assert!(
        !report.contains("s3cret") && !report.contains("alice"),
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_https_watcher_is_reached_through_a_tunnel() {
    let port = free_port();
    let proxy_url = format!("http://127.0.0.1:{port}");
    let proxy = tinyproxy_on(port, "");

    // The proxy cannot open the tunnel (nothing listens there).
    let closed = format!("https://127.0.0.1:{}", free_port());
    let mut agent = Agent::new(config(&closed, &proxy_url)).unwrap();
    let (kind, detail, _) = failed(agent.attempt().await);
    assert_eq!(kind, FailureKind::Proxy, "{detail}");
    assert!(
        detail.starts_with(&format!("proxy {proxy_url} refused the tunnel (CONNECT)")),
        "{detail}"
    );

    // The tunnel opens; TLS then fails end to end with what answered
    // inside it (plain HTTP here): that is not the proxy's doing.
    let (plain, _r) = receiver().await;
    let mut agent = Agent::new(config(&format!("https://{plain}"), &proxy_url)).unwrap();
    let (kind, detail, _) = failed(agent.attempt().await);
    assert_eq!(kind, FailureKind::Tls, "{detail}");
    assert!(
        proxy_log(&proxy).contains("CONNECT"),
        "{}",
        proxy_log(&proxy)
    );
}

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_iamalive-agent"));
    for v in [
        "IAMALIVE_AGENT_KEY",
        "IAMALIVE_AGENT_URL",
        "IAMALIVE_AGENT_PROXY",
        "RUST_LOG",
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
        "NO_PROXY",
        "no_proxy",
        "REQUEST_METHOD",
    ] {
        c.env_remove(v);
    }
    c.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    c
}

/// `--once` to `watcher` with `env` set and `args` added; the exit code
/// and the log.
async fn once(watcher: &str, env: &[(&str, &str)], args: &[&str], dir: &Path) -> (i32, String) {
    let log = dir.join(format!("agent-{}.log", free_port()));
    let mut c = bin();
    c.args(["--url", watcher, "--key", "k", "--host", "h", "--once"])
        .args(["--interval", "1s", "--timeout", "2s"])
        .args(args)
        .arg("--log-file")
        .arg(&log);
    for (k, v) in env {
        c.env(k, v);
    }
    let start = Instant::now();
    let st = tokio::task::spawn_blocking(move || c.status().unwrap())
        .await
        .unwrap();
    assert!(start.elapsed() < Duration::from_secs(30));
    (
        st.code().unwrap_or(-1),
        std::fs::read_to_string(&log).unwrap_or_default(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn flags_and_environment_choose_the_proxy() {
    let (addr, r) = receiver().await;
    let watcher = format!("http://{addr}");
    let port = free_port();
    let proxy_url = format!("http://127.0.0.1:{port}");
    let _proxy = tinyproxy_on(port, "");
    let dead = format!("http://127.0.0.1:{}", free_port());
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let relayed = |r: &Receiver| r.got().last().unwrap().0.is_some();

    // HTTP_PROXY is honoured, and the start line names the proxy.
    let (code, log) = once(&watcher, &[("HTTP_PROXY", &proxy_url)], &[], dir).await;
    assert_eq!(code, 0, "{log}");
    assert!(relayed(&r));
    assert!(log.contains(&format!("proxy={proxy_url}")), "{log}");
    // ALL_PROXY too.
    let (code, _) = once(&watcher, &[("ALL_PROXY", &proxy_url)], &[], dir).await;
    assert_eq!(code, 0);
    assert!(relayed(&r));
    // NO_PROXY naming the watcher's host: direct.
    let env = [("HTTP_PROXY", dead.as_str()), ("NO_PROXY", "127.0.0.1")];
    let (code, log) = once(&watcher, &env, &[], dir).await;
    assert_eq!(code, 0, "{log}");
    assert!(!relayed(&r));
    // --no-proxy: direct, whatever the environment says.
    let env = [
        ("HTTP_PROXY", dead.as_str()),
        ("IAMALIVE_AGENT_PROXY", dead.as_str()),
    ];
    let (code, log) = once(&watcher, &env, &["--no-proxy"], dir).await;
    assert_eq!(code, 0, "{log}");
    assert!(!relayed(&r));
    assert!(log.contains("proxy=none"), "{log}");
    // IAMALIVE_AGENT_PROXY wins over HTTP_PROXY; so does --proxy.
    let env = [
        ("HTTP_PROXY", dead.as_str()),
        ("IAMALIVE_AGENT_PROXY", proxy_url.as_str()),
    ];
    let (code, _) = once(&watcher, &env, &[], dir).await;
    assert_eq!(code, 0);
    assert!(relayed(&r));
    let (code, _) = once(
        &watcher,
        &[("HTTP_PROXY", &dead)],
        &["--proxy", &proxy_url],
        dir,
    )
    .await;
    assert_eq!(code, 0);
    assert!(relayed(&r));
    let n = r.got().len();

    // The environment's proxy is dead: exit 1, and the state file's report
    // names that proxy.
    let state = dir.join("state.json");
    let (code, log) = once(
        &watcher,
        &[("HTTP_PROXY", &dead)],
        &[
            "--state-file",
            state.to_str().unwrap(),
            "--retries",
            "1",
            "--deadline",
            "10s",
        ],
        dir,
    )
    .await;
    assert_eq!(code, 1, "{log}");
    assert_eq!(r.got().len(), n);
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    assert_eq!(saved["failed_attempts"], 2, "{saved}");
    assert_eq!(saved["failures"][0]["kind"], "proxy", "{saved}");
    assert!(
        saved["failures"][0]["detail"]
            .as_str()
            .unwrap()
            .starts_with(&format!("proxy {dead} unreachable")),
        "{saved}"
    );
}
