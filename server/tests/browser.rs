//! The dashboard in a real browser: headless Chromium driven by Python
//! selenium (from the test venv) against the real server on loopback.
//! Screenshots are kept under `<target dir>/dashboard-screenshots/`.
//!
//! Chromium, chromedriver and selenium are installed by `scripts/test.sh`;
//! a missing one is a failure, never a skip.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use iamalive_core::testing::RecordingNotifier;
use iamalive_core::{
    Heartbeat, HostId, HostPattern, ManualClock, MemoryStore, Notifier, Silence, Store,
};
use iamalive_server::{AppState, Config, serve_listener};
use tokio::net::TcpListener;

const ADMIN: &str = "admin-key-0123456789";

fn h(s: &str) -> HostId {
    HostId::new(s).unwrap()
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

/// The tools the test drives, or a failure that says how to get them.
fn tools() -> PathBuf {
    let python = iamalive_testkit::venv().join("bin").join("python");
    for (path, what) in [
        (
            Path::new("/usr/bin/chromium"),
            "Chromium (Debian package chromium)",
        ),
        (
            Path::new("/usr/bin/chromedriver"),
            "chromedriver (Debian package chromium-driver)",
        ),
        (python.as_path(), "the test venv's python"),
    ] {
        assert!(
            path.exists(),
            "{what} not found at {}: run ./scripts/test.sh, which installs it",
            path.display()
        );
    }
    let ok = Command::new(&python)
        .args(["-c", "import selenium"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "selenium is not installed in {}: run ./scripts/test.sh, which installs it",
        python.display()
    );
    python
}

/// A watcher with hosts in every state, on a manual clock.
async fn watcher() -> (
    std::net::SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    Vec<&'static str>,
) {
    let env = [
        ("IAMALIVE_API_KEYS", format!("{ADMIN};name=on-call")),
        ("IAMALIVE_TIMEOUT", "10m".to_owned()),
        ("IAMALIVE_REMINDER_INTERVAL", "1h".to_owned()),
        ("IAMALIVE_STATUS_PAGES", "*".to_owned()),
        (
            "IAMALIVE_BADGE_SECRET",
            "browser-test-badge-secret-0123".to_owned(),
        ),
    ]
    .map(|(k, v)| (k.to_owned(), v));
    let config = Config::from_sources(None, env).unwrap();
    let clock = ManualClock::new(
        chrono::DateTime::parse_from_rfc3339("2026-11-26T03:00:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc),
    );
    let channel = RecordingNotifier::new("pager");
    let channels: Vec<Arc<dyn Notifier>> = vec![Arc::new(channel.clone())];
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let state = AppState::new(store, channels, Arc::new(clock.clone()), &config)
        .expect("channel names are unique");
    let m = state.monitor();
    let beat = |host: &str, message: Option<&str>, report: Option<&str>| Heartbeat {
        host: h(host),
        at: iamalive_core::Clock::now(&clock),
        message: message.map(str::to_owned),
        report: report.map(str::to_owned),
        group: None,
        interval: None,
    };
    for host in [
        "db-1", "db-2", "web-1", "web-2", "web-3", "backup-1", "mail-1",
    ] {
        m.heartbeat_with(&beat(host, None, None), true)
            .await
            .unwrap();
    }
    // Minute by minute from 03:00 to 03:38, swept every minute (a gap in
    // the sweeps would read as the watcher's own downtime and give grace).
    // db-1 falls silent at 03:00 and is alarmed; db-2 at 03:20 while the
    // pager is down, so its alarm is still on its way.
    let report = r#"{"since":"2026-11-26T03:21:10Z","failed_attempts":9,"failures":[
        {"kind":"dns","detail":"lookup watcher.example.org: no such host","first":"2026-11-26T03:21:10Z","last":"2026-11-26T03:33:40Z","count":7},
        {"kind":"connect","detail":"connection refused","first":"2026-11-26T03:35:00Z","last":"2026-11-26T03:36:10Z","count":2}]}"#;
    for minute in 1..=38 {
        clock.advance(Duration::from_secs(60));
        if minute == 21 {
            channel.set_down(true);
        }
        if minute % 4 == 0 {
            let mut alive = vec!["web-1", "web-2", "web-3", "backup-1", "mail-1"];
            if minute <= 20 {
                alive.push("db-2");
            }
            for host in alive {
                let (message, report) = match host {
                    "web-1" => (Some("nginx 1.24, load 0.42"), None),
                    "mail-1" if minute == 36 => (None, Some(report)),
                    _ => (None, None),
                };
                m.heartbeat_with(&beat(host, message, report), true)
                    .await
                    .unwrap();
            }
        }
        let _ = m.sweep().await.unwrap();
    }
    let now = iamalive_core::Clock::now(&clock);
    m.pause_until(&h("backup-1"), Some(now + chrono::Duration::hours(4)))
        .await
        .unwrap();
    m.add_silence(
        &Silence::new(
            "s-web3",
            HostPattern::new("web-3").unwrap(),
            now,
            now + chrono::Duration::minutes(90),
            "kernel upgrade",
        )
        .unwrap(),
    )
    .await
    .unwrap();
    clock.advance(Duration::from_secs(120));

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(serve_listener(listener, state, async {
        let _ = rx.await;
    }));
    (
        addr,
        tx,
        vec!["db-1", "db-2", "web-1", "web-3", "backup-1", "mail-1"],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_in_headless_chromium() {
    let python = tools();
    let (addr, stop, hosts) = watcher().await;
    let out = target_dir().join("dashboard-screenshots");
    let _ = std::fs::remove_dir_all(&out);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/dashboard.py");
    let child = tokio::process::Command::new(&python)
        .arg(&script)
        .arg(format!("http://{addr}"))
        .arg(ADMIN)
        .arg(&out)
        .args(&hosts)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start python");
    let started = Instant::now();
    let output = tokio::time::timeout(Duration::from_secs(180), child.wait_with_output())
        .await
        .expect("the browser test did not finish within 180 s")
        .unwrap();
    let status = output.status;
    let say = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let _ = stop.send(());
    assert!(status.success(), "the browser test failed:\n{say}");
    eprintln!("browser test took {:?}:\n{say}", started.elapsed());
    for png in [
        "login.png",
        "dashboard.png",
        "silences.png",
        "dashboard-silenced.png",
        "dashboard-dark.png",
        "dashboard-phone.png",
    ] {
        let bytes = std::fs::read(out.join(png)).unwrap_or_default();
        assert!(
            bytes.len() > 1000 && bytes.starts_with(b"\x89PNG"),
            "{png} is not a screenshot"
        );
    }
}
