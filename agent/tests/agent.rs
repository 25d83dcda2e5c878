//! The agent against a real axum receiver on loopback.

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use iamalive_agent::{
    Agent, AgentConfig, Attempt, Backoff, Budget, FailureKind, ProxyChoice, endpoint,
};
use serde_json::Value;

#[derive(Default)]
struct Receiver {
    status: AtomicU16,
    /// Answer 503 to this many requests first, then `status`.
    fail_first: AtomicUsize,
    got: Mutex<Vec<(Option<String>, Value)>>,
    /// When each request came, and what it was answered.
    log: Mutex<Vec<(Instant, u16)>>,
}

impl Receiver {
    fn got(&self) -> Vec<(Option<String>, Value)> {
        self.got.lock().unwrap().clone()
    }

    fn log(&self) -> Vec<(Instant, u16)> {
        self.log.lock().unwrap().clone()
    }
}

async fn serve_on(listener: tokio::net::TcpListener) -> Arc<Receiver> {
    let r = Arc::new(Receiver {
        status: AtomicU16::new(200),
        ..Default::default()
    });
    let app = Router::new()
        .route(
            "/v1/heartbeat",
            post(
                |State(r): State<Arc<Receiver>>, h: HeaderMap, body: String| async move {
                    let auth = h
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned);
                    let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                    r.got.lock().unwrap().push((auth, v));
                    let failing = r
                        .fail_first
                        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                        .is_ok();
                    let status = if failing {
                        503
                    } else {
                        r.status.load(Ordering::SeqCst)
                    };
                    r.log.lock().unwrap().push((Instant::now(), status));
                    StatusCode::from_u16(status).unwrap()
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

fn config(addr: SocketAddr) -> AgentConfig {
    AgentConfig {
        url: endpoint(&format!("http://{addr}")).unwrap(),
        key: "k-123".into(),
        host: "build-01".into(),
        message: Some("hello".into()),
        group: None,
        timeout: Duration::from_secs(5),
        interval: Duration::from_secs(2),
        send_interval: true,
        backoff: Backoff {
            first: Duration::from_millis(10),
            cap: Duration::from_millis(40),
        },
        state_file: None,
        ca_file: None,
        // Tests never depend on the proxies of the environment.
        proxy: ProxyChoice::Off,
    }
}

/// At most `n` attempts: for tests of what one failed beat leaves behind.
fn attempts(n: u32) -> Budget {
    Budget {
        deadline: None,
        max_attempts: Some(n),
    }
}

/// Polls `done` every 10 ms for up to `within`.
async fn wait_for(within: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < within, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn heartbeat_body_and_auth() {
    let (addr, r) = receiver().await;
    let mut agent = Agent::new(config(addr)).unwrap();
    assert_eq!(
        agent.attempt().await,
        Attempt::Delivered {
            carried_report: false
        }
    );
    let got = r.got();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0.as_deref(), Some("Bearer k-123"));
    assert_eq!(
        got[0].1,
        serde_json::json!({"host": "build-01", "message": "hello", "interval": 2})
    );
    assert!(
        got[0].1["interval"].is_u64(),
        "a whole interval is an integer"
    );

    // A fractional interval is a fractional number of seconds.
    let mut agent = Agent::new(AgentConfig {
        interval: Duration::from_millis(500),
        message: None,
        ..config(addr)
    })
    .unwrap();
    assert!(matches!(agent.attempt().await, Attempt::Delivered { .. }));
    assert_eq!(
        r.got()[1].1,
        serde_json::json!({"host": "build-01", "interval": 0.5})
    );
}

#[tokio::test]
async fn failures_are_reported_with_the_first_heartbeat_that_gets_through() {
    // A port nothing listens on yet: connection refused.
    let port = iamalive_testkit::free_port();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut agent = Agent::new(config(addr)).unwrap();
    match agent.beat_within(attempts(3)).await {
        Attempt::Failed {
            kind, retryable, ..
        } => {
            assert_eq!(kind, FailureKind::Connect);
            assert!(retryable);
        }
        other => panic!("{other:?}"),
    }
    // Each attempt is recorded.
    assert_eq!(agent.failures().failed_attempts(), 3);

    // The endpoint comes up but answers 503.
    let l = tokio::net::TcpListener::bind(addr).await.unwrap();
    let r = serve_on(l).await;
    r.status.store(503, Ordering::SeqCst);
    match agent.attempt().await {
        Attempt::Failed { kind, detail, .. } => {
            assert_eq!((kind, detail.as_str()), (FailureKind::Http, "HTTP 503"));
        }
        other => panic!("{other:?}"),
    }

    // It recovers: the heartbeat carries the report, then the report is gone.
    r.status.store(200, Ordering::SeqCst);
    assert_eq!(
        agent.attempt().await,
        Attempt::Delivered {
            carried_report: true
        }
    );
    let got = r.got();
    let report = &got.last().unwrap().1["report"];
    assert_eq!(report["failed_attempts"], 4);
    let failures = report["failures"].as_array().unwrap();
    assert_eq!(failures.len(), 2, "{report}");
    assert_eq!(failures[0]["kind"], "connect");
    assert_eq!(failures[0]["count"], 3);
    assert!(
        failures[0]["detail"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("refused"),
        "{report}"
    );
    assert_eq!(failures[1]["kind"], "http");
    assert_eq!(failures[1]["detail"], "HTTP 503");
    assert_eq!(failures[1]["count"], 1);
    for f in failures {
        let first = chrono::DateTime::parse_from_rfc3339(f["first"].as_str().unwrap()).unwrap();
        let last = chrono::DateTime::parse_from_rfc3339(f["last"].as_str().unwrap()).unwrap();
        assert!(first <= last);
    }
    assert!(report["since"].as_str().is_some());
    assert!(agent.failures().is_empty());

    assert_eq!(
        agent.attempt().await,
        Attempt::Delivered {
            carried_report: false
        }
    );
    assert!(r.got().last().unwrap().1.get("report").is_none());
}

async fn hanging_receiver() -> SocketAddr {
    let app = Router::new().route(
        "/v1/heartbeat",
        post(|| async {
            std::future::pending::<()>().await;
            "never"
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    addr
}

#[tokio::test]
async fn a_silent_endpoint_is_a_timeout() {
    let addr = hanging_receiver().await;
    let mut agent = Agent::new(AgentConfig {
        timeout: Duration::from_millis(300),
        ..config(addr)
    })
    .unwrap();
    match agent.attempt().await {
        Attempt::Failed { kind, .. } => assert_eq!(kind, FailureKind::Timeout),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_failures_are_classified_as_tls() {
    // A real TLS server whose self-signed certificate the agent does not trust.
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(
        dir.path(),
        "cert",
        "/CN=localhost",
        &[
            "basicConstraints=critical,CA:FALSE",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
    );
    let port = iamalive_testkit::free_port();
    let mut cmd = Command::new("openssl");
    cmd.args(["s_server", "-quiet", "-www", "-accept"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("-cert")
        .arg(&cert)
        .arg("-key")
        .arg(&key);
    let _server = iamalive_testkit::Server::spawn(
        cmd,
        port,
        tempfile::tempdir().unwrap(),
        "openssl s_server",
    );
    let mut agent = Agent::new(AgentConfig {
        url: endpoint(&format!("https://127.0.0.1:{port}")).unwrap(),
        ..config(([127, 0, 0, 1], port).into())
    })
    .unwrap();
    match agent.attempt().await {
        Attempt::Failed { kind, detail, .. } => assert_eq!(kind, FailureKind::Tls, "{detail}"),
        other => panic!("{other:?}"),
    }

    // https:// to a plain HTTP endpoint (e.g. a proxy answering in clear).
    let (plain, _r) = receiver().await;
    let mut agent = Agent::new(AgentConfig {
        url: endpoint(&format!("https://{plain}")).unwrap(),
        ..config(plain)
    })
    .unwrap();
    match agent.attempt().await {
        Attempt::Failed { kind, detail, .. } => assert_eq!(kind, FailureKind::Tls, "{detail}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn once_from_cron_keeps_the_record_in_the_state_file() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("failures.json");
    let port = iamalive_testkit::free_port();
    let url = format!("http://127.0.0.1:{port}");
    let run = move |url: String, state: std::path::PathBuf| {
        tokio::task::spawn_blocking(move || {
            bin()
                .args(["--url", &url, "--key", "k", "--host", "cron-1", "--once"])
                .args(["--retries", "0"])
                .arg("--state-file")
                .arg(&state)
                .status()
                .unwrap()
        })
    };
    // Two cron runs while nothing listens: each fails, the record grows.
    for _ in 0..2 {
        let st = run(url.clone(), state.clone()).await.unwrap();
        assert_eq!(st.code(), Some(1));
    }
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    assert_eq!(saved["failed_attempts"], 2);

    // The endpoint is back: the third run carries the report and clears it.
    let l = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let r = serve_on(l).await;
    let st = run(url.clone(), state.clone()).await.unwrap();
    assert!(st.success());
    let got = r.got();
    assert_eq!(got[0].1["report"]["failed_attempts"], 2);
    assert_eq!(got[0].1["report"]["failures"][0]["kind"], "connect");
    assert_eq!(got[0].1["report"]["failures"][0]["count"], 2);
    assert!(!state.exists(), "the record is cleared once it got through");
}

#[tokio::test]
async fn a_refused_key_is_not_retried() {
    let (addr, r) = receiver().await;
    r.status.store(401, Ordering::SeqCst);
    let mut agent = Agent::new(config(addr)).unwrap();
    match agent.beat().await {
        Attempt::Failed {
            kind, retryable, ..
        } => {
            assert_eq!(kind, FailureKind::Http);
            assert!(!retryable);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(r.got().len(), 1, "4xx is not retried inside the interval");
}

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_iamalive-agent"));
    c.env_remove("IAMALIVE_AGENT_KEY")
        .env_remove("IAMALIVE_AGENT_URL")
        .env_remove("IAMALIVE_LOG_FORMAT")
        .env_remove("NO_COLOR")
        .env_remove("RUST_LOG");
    // Tests never depend on the proxies of the environment.
    for v in [
        "IAMALIVE_AGENT_PROXY",
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
    ] {
        c.env_remove(v);
    }
    c.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    c
}

fn wait_exit(child: &mut std::process::Child, within: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        if start.elapsed() > within {
            let _ = child.kill();
            panic!("the agent did not exit within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn once_exits_zero_on_success_and_non_zero_on_failure() {
    let (addr, r) = receiver().await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let key_file = dir.join("key");
    std::fs::write(&key_file, "  file-key\n").unwrap();
    let log_file = dir.join("agent.log");

    let url = format!("http://{addr}");
    let (ok, log) = tokio::task::spawn_blocking({
        let key_file = key_file.clone();
        let log_file = log_file.clone();
        move || {
            let st = bin()
                .args(["--url", &url, "--host", "Build-01", "--once"])
                .arg("--key-file")
                .arg(&key_file)
                .arg("--log-file")
                .arg(&log_file)
                .status()
                .unwrap();
            (st, std::fs::read_to_string(&log_file).unwrap_or_default())
        }
    })
    .await
    .unwrap();
    assert!(ok.success(), "{ok}");
    assert!(log.contains("starting"), "log file: {log:?}");
    let got = r.got();
    assert_eq!(got[0].0.as_deref(), Some("Bearer file-key"));
    assert_eq!(got[0].1["host"], "build-01");

    let closed = format!("http://127.0.0.1:{}", iamalive_testkit::free_port());
    let st = tokio::task::spawn_blocking(move || {
        bin()
            .args([
                "--url",
                &closed,
                "--once",
                "--retries",
                "1",
                "--retry-backoff",
                "10ms",
            ])
            .env("IAMALIVE_AGENT_KEY", "k")
            .status()
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(st.code(), Some(1));

    let st = tokio::task::spawn_blocking(|| {
        bin()
            .args(["--url", "http://x", "--once"])
            .status()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(!st.success(), "no key is a configuration error");
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_stops_the_loop_gracefully() {
    let (addr, r) = receiver().await;
    let mut child = bin()
        .args([
            "--url",
            &format!("http://{addr}"),
            "--key",
            "k",
            "--host",
            "h1",
        ])
        .args(["--interval", "1h"])
        .spawn()
        .unwrap();
    let start = Instant::now();
    while r.got().is_empty() && start.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(r.got().len(), 1, "the first heartbeat goes out at once");
    let pid = child.id().to_string();
    let st = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(st.success());
    let st = tokio::task::spawn_blocking(move || wait_exit(&mut child, Duration::from_secs(10)))
        .await
        .unwrap();
    assert!(st.success(), "{st}");
}

fn openssl(args: &[&str]) {
    let st = Command::new("openssl")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl makes the test certificates");
    assert!(st.success(), "openssl {args:?}");
}

/// A self-signed certificate with the given subject and `-addext`
/// extensions: `dir/{name}.pem` and its key `dir/{name}.key`.
fn self_signed(
    dir: &std::path::Path,
    name: &str,
    subj: &str,
    exts: &[&str],
) -> (std::path::PathBuf, std::path::PathBuf) {
    let (cert, key) = (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}.key")),
    );
    let mut args = vec![
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", subj,
    ];
    for e in exts {
        args.extend(["-addext", e]);
    }
    args.extend([
        "-keyout",
        key.to_str().unwrap(),
        "-out",
        cert.to_str().unwrap(),
    ]);
    openssl(&args);
    (cert, key)
}

/// A private CA, a server certificate for 127.0.0.1 it signed, and a real
/// HTTPS server (Python's `http.server` behind `ssl`) answering 200 to
/// every POST with that certificate.
fn private_ca_server(dir: &std::path::Path) -> (u16, iamalive_testkit::Server) {
    let p = |f: &str| dir.join(f).to_str().unwrap().to_owned();
    self_signed(
        dir,
        "ca",
        "/CN=iamalive test CA",
        &[
            "basicConstraints=critical,CA:TRUE",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        &p("srv.key"),
        "-out",
        &p("srv.csr"),
    ]);
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        &p("srv.csr"),
        "-CA",
        &p("ca.pem"),
        "-CAkey",
        &p("ca.key"),
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        &p("ext.cnf"),
        "-out",
        &p("srv.pem"),
    ]);
    let script = r#"
import http.server, ssl, sys

class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        b = b'{"status":"up"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(b)))
        self.end_headers()
        self.wfile.write(b)

    def log_message(self, *a):
        pass

srv = http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[2], sys.argv[3])
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
srv.serve_forever()
"#;
    let port = iamalive_testkit::free_port();
    let mut cmd = Command::new("python3");
    cmd.arg("-c")
        .arg(script)
        .arg(port.to_string())
        .arg(p("srv.pem"))
        .arg(p("srv.key"));
    let server = iamalive_testkit::Server::spawn(
        cmd,
        port,
        tempfile::tempdir().unwrap(),
        "python3 https server",
    );
    (port, server)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_private_ca_is_trusted_with_ca_file_and_only_then() {
    let dir = tempfile::tempdir().unwrap();
    let (port, _server) = private_ca_server(dir.path());
    let url = endpoint(&format!("https://127.0.0.1:{port}")).unwrap();
    let with = |ca_file: Option<std::path::PathBuf>| AgentConfig {
        url: url.clone(),
        ca_file,
        ..config(([127, 0, 0, 1], port).into())
    };

    // The system's roots do not know the private CA: a TLS failure.
    let mut agent = Agent::new(with(None)).unwrap();
    match agent.attempt().await {
        Attempt::Failed { kind, detail, .. } => assert_eq!(kind, FailureKind::Tls, "{detail}"),
        other => panic!("{other:?}"),
    }

    // Trusting the CA's PEM, the same server is reached.
    let mut agent = Agent::new(with(Some(dir.path().join("ca.pem")))).unwrap();
    assert!(
        matches!(agent.attempt().await, Attempt::Delivered { .. }),
        "the private CA was not trusted"
    );

    // Trusting some other CA only: refused, as a proxy re-signing would be.
    let other = tempfile::tempdir().unwrap();
    let (other_ca, _) = self_signed(
        other.path(),
        "ca",
        "/CN=other CA",
        &["basicConstraints=critical,CA:TRUE"],
    );
    let mut agent = Agent::new(with(Some(other_ca))).unwrap();
    match agent.attempt().await {
        Attempt::Failed { kind, detail, .. } => assert_eq!(kind, FailureKind::Tls, "{detail}"),
        other => panic!("{other:?}"),
    }

    // A file that is missing or holds no certificate stops the agent at
    // start, naming the file.
    for bad in [dir.path().join("absent.pem"), dir.path().join("ext.cnf")] {
        let e = Agent::new(with(Some(bad.clone()))).unwrap_err().to_string();
        assert!(
            e.contains("--ca-file") && e.contains(&*bad.to_string_lossy()),
            "{e}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lost_beat_is_retried_until_it_gets_through() {
    // The default schedule for a 4 s interval: 200 ms first retry, 1 s cap.
    let interval = Duration::from_secs(4);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("failures.json");
    let port = iamalive_testkit::free_port();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut agent = Agent::new(AgentConfig {
        interval,
        backoff: Backoff::for_interval(interval),
        state_file: Some(state.clone()),
        ..config(addr)
    })
    .unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(async move {
        agent
            .run(Duration::ZERO, async {
                let _ = stop_rx.await;
            })
            .await;
        agent
    });

    // The watcher is down: the agent keeps trying, each failure recorded
    // (the state file is rewritten after every failed attempt).
    let failed = |state: &std::path::Path| {
        std::fs::read_to_string(state)
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
            .and_then(|v| v["failed_attempts"].as_u64())
            .unwrap_or(0)
    };
    wait_for(Duration::from_secs(20), "4 refused attempts", || {
        failed(&state) >= 4
    })
    .await;

    // It comes back answering 503: still retried, not abandoned.
    let l = tokio::net::TcpListener::bind(addr).await.unwrap();
    let r = serve_on(l).await;
    r.fail_first.store(usize::MAX, Ordering::SeqCst);
    wait_for(Duration::from_secs(20), "4 attempts answered 503", || {
        r.log().len() >= 4
    })
    .await;

    // It recovers: the beat lands within one backoff cap, well before one
    // interval has passed.
    let recovered = Instant::now();
    r.fail_first.store(0, Ordering::SeqCst);
    wait_for(Duration::from_secs(20), "a delivered beat", || {
        r.log().iter().any(|(_, s)| *s == 200)
    })
    .await;
    let log = r.log();
    let first_ok = log.iter().position(|(_, s)| *s == 200).unwrap();
    let landed = log[first_ok].0;
    assert!(
        landed.duration_since(recovered) < interval,
        "the beat landed {:?} after the watcher recovered (interval {interval:?})",
        landed.duration_since(recovered)
    );
    assert!(log[..first_ok].iter().all(|(_, s)| *s == 503));

    // It carried the report of every failed attempt, in order.
    let report = r.got()[first_ok].1["report"].clone();
    let failures = report["failures"].as_array().unwrap();
    assert_eq!(failures[0]["kind"], "connect", "{report}");
    let refused = failures[0]["count"].as_u64().unwrap();
    assert!(refused >= 4, "{report}");
    assert_eq!(failures[1]["detail"], "HTTP 503", "{report}");
    assert_eq!(failures[1]["count"].as_u64().unwrap(), first_ok as u64);
    assert_eq!(
        report["failed_attempts"].as_u64().unwrap(),
        refused + first_ok as u64
    );
    // The receiver logs the beat before the agent has read the answer, so
    // the state file goes a moment later.
    wait_for(
        Duration::from_secs(10),
        "the state file cleared once delivered",
        || !state.exists(),
    )
    .await;
    assert_eq!(r.got()[first_ok].1["interval"], 4);

    // The next regular beat comes one interval after that success.
    wait_for(Duration::from_secs(20), "the next regular beat", || {
        r.log().len() > first_ok + 1
    })
    .await;
    let next = r.log()[first_ok + 1];
    assert_eq!(next.1, 200);
    assert!(
        next.0.duration_since(landed) >= interval - Duration::from_millis(50),
        "next beat after {:?}",
        next.0.duration_since(landed)
    );
    assert!(r.got()[first_ok + 1].1.get("report").is_none());

    stop_tx.send(()).unwrap();
    let agent = running.await.unwrap();
    assert!(agent.failures().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn once_retries_within_its_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("failures.json");
    let run = |url: String, extra: &'static [&'static str]| {
        let state = state.clone();
        tokio::task::spawn_blocking(move || {
            let start = Instant::now();
            let mut child = bin()
                .args(["--url", &url, "--key", "k", "--host", "cron-2", "--once"])
                .args(["--interval", "2s", "--timeout", "300ms"])
                .args(extra)
                .arg("--state-file")
                .arg(&state)
                .spawn()
                .unwrap();
            let st = wait_exit(&mut child, Duration::from_secs(30));
            (st, start.elapsed())
        })
    };

    // The watcher is down: several attempts inside the deadline (the
    // interval by default), then exit 1.
    let port = iamalive_testkit::free_port();
    let url = format!("http://127.0.0.1:{port}");
    let (st, took) = run(url.clone(), &[]).await.unwrap();
    assert_eq!(st.code(), Some(1));
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    let tried = saved["failed_attempts"].as_u64().unwrap();
    assert!(tried >= 3, "only {tried} attempts in {took:?}");
    // A longer deadline allows more attempts than the default one did.
    let (st, _) = run(url.clone(), &["--deadline", "6s"]).await.unwrap();
    assert_eq!(st.code(), Some(1));
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    assert!(saved["failed_attempts"].as_u64().unwrap() - tried > tried);

    // Up, but answering 503 twice first: the same run retries and exits 0,
    // carrying the report of everything before.
    let l = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let r = serve_on(l).await;
    r.fail_first.store(2, Ordering::SeqCst);
    let (st, _) = run(url, &[]).await.unwrap();
    assert!(st.success(), "{st}");
    let got = r.got();
    assert_eq!(got.len(), 3);
    let report = &got[2].1["report"];
    assert_eq!(report["failures"][0]["kind"], "connect", "{report}");
    assert_eq!(report["failures"][1]["detail"], "HTTP 503", "{report}");
    assert_eq!(report["failures"][1]["count"], 2, "{report}");
    assert!(!state.exists());
}

/// `--once --fail` reports a failure with its reason; `run -- <command>`
/// sends a start, then a success or the exit status with the tail of the
/// output, both with one run id, and exits with the command's status.
#[tokio::test(flavor = "multi_thread")]
async fn fail_and_run_send_job_signals() {
    let (addr, r) = receiver().await;
    let url = format!("http://{addr}");
    let agent = move |args: Vec<String>| {
        let url = url.clone();
        tokio::task::spawn_blocking(move || {
            bin()
                .args(["--key", "k", "--host", "backup-db", "--retries", "0"])
                .arg("--url")
                .arg(&url)
                .args(&args)
                .status()
                .unwrap()
        })
    };
    let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();

    let st = agent(s(&["--once", "--fail", "--message", "disk full"]))
        .await
        .unwrap();
    assert!(st.success());
    let got = r.got();
    assert_eq!(got[0].1["status"], "fail");
    assert_eq!(got[0].1["message"], "disk full");
    assert!(got[0].1.get("rid").is_none());

    let st = agent(s(&[
        "run",
        "--",
        "sh",
        "-c",
        "echo dumping; echo 'no space' >&2; exit 4",
    ]))
    .await
    .unwrap();
    assert_eq!(st.code(), Some(4), "the command's exit status");
    let got = r.got();
    let (start, end) = (&got[1].1, &got[2].1);
    assert_eq!(start["status"], "start");
    assert_eq!(end["status"], "fail");
    let rid = start["rid"].as_str().unwrap();
    assert_eq!(rid.len(), 36, "a UUID: {rid}");
    assert_eq!(end["rid"], rid);
    let reason = end["message"].as_str().unwrap();
    assert!(reason.starts_with("exit status 4: "), "{reason}");
    assert!(
        reason.contains("dumping") && reason.contains("no space"),
        "{reason}"
    );

    let st = agent(s(&["run", "--", "true"])).await.unwrap();
    assert!(st.success());
    let got = r.got();
    assert_eq!(got[3].1["status"], "start");
    assert_eq!(got[4].1["status"], "success");
    assert_eq!(got[4].1["rid"], got[3].1["rid"]);
    assert_ne!(got[4].1["rid"], got[1].1["rid"], "each run its own id");
    // A one-off sends no interval unless given: a job's period is its
    // schedule's, not the agent's 4m default.
    for (i, (_, body)) in got.iter().enumerate() {
        assert!(body.get("interval").is_none(), "signal {i}: {body}");
    }
    let st = agent(s(&["--interval", "1h", "run", "--", "true"]))
        .await
        .unwrap();
    assert!(st.success());
    let got = r.got();
    assert_eq!(got[6].1["status"], "success");
    assert_eq!(got[6].1["interval"], 3600, "given: sent");

    // --fail without --once is refused before anything is sent.
    let st = agent(s(&["--fail"])).await.unwrap();
    assert_eq!(st.code(), Some(2));
    assert_eq!(r.got().len(), 7);
}

#[test]
fn help_and_version_exit_0_and_an_unknown_option_2() {
    iamalive_testkit::assert_help_and_version(
        std::path::Path::new(env!("CARGO_BIN_EXE_iamalive-agent")),
        "iamalive-agent",
        env!("CARGO_PKG_VERSION"),
        &[&["maintenance"], &["run"]],
    );
}

/// `--once` against a port nobody listens on, logging to stderr and to a
/// file with `extra` set; its exit status, stderr and the file.
fn failed_once(extra: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("agent.log");
    let port = iamalive_testkit::free_port();
    let out = bin()
        .args(["--once", "--host", "web-1", "--key", "k", "--retries", "0"])
        .arg("--url")
        .arg(format!("http://127.0.0.1:{port}"))
        .arg("--log-file")
        .arg(&file)
        .envs(extra.iter().copied())
        .output()
        .unwrap();
    let logged = std::fs::read_to_string(&file).unwrap_or_default();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        logged,
    )
}

#[test]
fn logs_are_plain_text_off_a_terminal_json_on_request_and_an_unknown_format_is_refused() {
    let (code, stderr, file) = failed_once(&[]);
    assert_eq!(code, Some(1));
    for log in [&stderr, &file] {
        assert!(!log.is_empty(), "nothing logged");
        assert!(
            !log.contains('\x1b'),
            "colour codes off a terminal: {log:?}"
        );
    }
    let (code, stderr, file) = failed_once(&[("IAMALIVE_LOG_FORMAT", "json")]);
    assert_eq!(code, Some(1));
    for log in [&stderr, &file] {
        let lines: Vec<&str> = log.lines().filter(|l| !l.is_empty()).collect();
        assert!(!lines.is_empty(), "nothing logged");
        for l in lines {
            let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
            assert!(v["level"].is_string() && v["message"].is_string(), "{l}");
        }
    }
    let (code, stderr, _) = failed_once(&[("IAMALIVE_LOG_FORMAT", "yaml")]);
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains("yaml") && stderr.contains("json"),
        "{stderr}"
    );
}
