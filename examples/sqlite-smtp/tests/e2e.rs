//! End to end: the real binary, a real SMTP server (aiosmtpd), real
//! heartbeats over HTTP, sub-second timeouts.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use iamalive_testkit::{free_port, read_messages, smtp, smtp_on};
use serde_json::Value;

const KEY: &str = "e2e-test-key-0123456789";

/// One server process, killed when dropped.
struct Watcher {
    child: Child,
    url: String,
    dir: PathBuf,
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(dir: &Path, db: &Path, smtp_port: Option<u16>, extra: &[(&str, &str)]) -> Watcher {
    let port = free_port();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sqlite-smtp"));
    cmd.current_dir(dir)
        .env("IAMALIVE_LISTEN", format!("127.0.0.1:{port}"))
        .env("IAMALIVE_SQLITE_PATH", db)
        .env("IAMALIVE_TIMEOUT", "300ms")
        .env("IAMALIVE_REMINDER_INTERVAL", "1s")
        .env("IAMALIVE_RETRY_BASE", "100ms")
        .env("IAMALIVE_RETRY_MAX", "300ms")
        .env("IAMALIVE_LOG", "info,iamalive_core=debug")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(dir.join(format!("stdout-{port}.txt"))).unwrap())
        .stderr(std::fs::File::create(dir.join(format!("stderr-{port}.txt"))).unwrap());
    if !extra.iter().any(|(k, _)| *k == "IAMALIVE_API_KEYS") {
        cmd.env("IAMALIVE_API_KEYS", KEY);
    }
    if let Some(p) = smtp_port {
        cmd.env("IAMALIVE_SMTP_URL", format!("smtp://127.0.0.1:{p}"))
            .env("IAMALIVE_SMTP_FROM", "iamalive@example.org")
            .env("IAMALIVE_SMTP_TO", "ops@example.org");
    }
    for (k, v) in extra {
        cmd.env(k, v);
    }
    let child = cmd.spawn().expect("start sqlite-smtp");
    let mut w = Watcher {
        child,
        url: format!("http://127.0.0.1:{port}"),
        dir: dir.to_owned(),
    };
    let start = Instant::now();
    loop {
        if let Ok(Some(status)) = w.child.try_wait() {
            panic!("sqlite-smtp exited early ({status}): {}", w.log());
        }
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return w;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "not listening: {}",
            w.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Watcher {
    fn log(&self) -> String {
        let port = self.url.rsplit(':').next().unwrap_or_default();
        std::fs::read_to_string(self.dir.join(format!("stderr-{port}.txt"))).unwrap_or_default()
    }

    async fn heartbeat(&self, host: &str) -> reqwest::Response {
        reqwest::Client::new()
            .post(format!("{}/v1/heartbeat", self.url))
            .bearer_auth(KEY)
            .json(&serde_json::json!({ "host": host }))
            .send()
            .await
            .expect("heartbeat request")
    }

    async fn host(&self, host: &str) -> Value {
        reqwest::Client::new()
            .get(format!("{}/v1/hosts/{host}", self.url))
            .bearer_auth(KEY)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

/// Subjects of every mail received so far, in arrival order.
fn subjects(maildir: &Path) -> Vec<String> {
    read_messages(maildir)
        .iter()
        .filter_map(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("Subject: ").map(str::to_owned))
        })
        .collect()
}

fn count(maildir: &Path, tag: &str) -> usize {
    subjects(maildir)
        .iter()
        .filter(|s| s.starts_with(&format!("[iamalive] {tag} ")))
        .count()
}

/// Polls until `tag` mails reach `n` (bounded), returning when they did.
async fn wait_mail(maildir: &Path, tag: &str, n: usize, limit: Duration) -> Instant {
    let start = Instant::now();
    loop {
        if count(maildir, tag) >= n {
            return Instant::now();
        }
        assert!(
            start.elapsed() < limit,
            "{n} {tag} mail(s) not received within {limit:?}; got {:?}",
            subjects(maildir)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Keeps `host` alive (a heartbeat every 100 ms, like a fast agent, through
/// each watcher in turn) for `d` and asserts no mail arrives meanwhile.
async fn quiet_while_alive(maildir: &Path, watchers: &[&Watcher], host: &str, d: Duration) {
    let before = subjects(maildir);
    let start = Instant::now();
    let mut i = 0;
    while start.elapsed() < d {
        assert_eq!(
            watchers[i % watchers.len()].heartbeat(host).await.status(),
            200
        );
        i += 1;
        for _ in 0..5 {
            assert_eq!(subjects(maildir), before, "unexpected mail");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[tokio::test]
async fn outage_gives_one_alarm_throttled_reminders_and_one_recovery() {
    let mail = smtp(None);
    let dir = tempfile::tempdir().unwrap();
    let w = start(
        dir.path(),
        &dir.path().join("iamalive.db"),
        Some(mail.addr.port()),
        &[],
    );
    let maildir = mail.maildir_new();

    // Bad input is rejected and writes nothing.
    let bad = reqwest::Client::new()
        .post(format!("{}/v1/heartbeat", w.url))
        .bearer_auth(KEY)
        .body("{\"host\": \"not a host\"}")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let err: Value = bad.json().await.unwrap();
    assert!(err["error"].as_str().unwrap().contains("invalid host id"));
    let wrong = reqwest::Client::new()
        .post(format!("{}/v1/heartbeat", w.url))
        .bearer_auth("not-the-key-0123456789")
        .json(&serde_json::json!({"host": "e2e-01"}))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    // A request without a valid key never notes anything in a host's
    // alarm; one with the key that is refused (a message over the limit)
    // does: the host may be alive but unable to report.
    let long = reqwest::Client::new()
        .post(format!("{}/v1/heartbeat", w.url))
        .bearer_auth(KEY)
        .json(&serde_json::json!({"host": "e2e-01", "message": "x".repeat(2000)}))
        .send()
        .await
        .unwrap();
    assert_eq!(long.status(), 400);
    assert_eq!(w.host("e2e-01").await["error"], "unknown host 'e2e-01'");

    assert_eq!(w.heartbeat("e2e-01").await.status(), 200);
    wait_mail(&maildir, "ALARM", 1, Duration::from_secs(15)).await;
    let r1 = wait_mail(&maildir, "REMINDER", 1, Duration::from_secs(15)).await;
    let r2 = wait_mail(&maildir, "REMINDER", 2, Duration::from_secs(15)).await;
    assert!(
        r2 - r1 >= Duration::from_millis(800),
        "reminders {:?} apart; the interval is 1s",
        r2 - r1
    );
    assert_eq!(count(&maildir, "ALARM"), 1, "{:?}", subjects(&maildir));
    let alarm = read_messages(&maildir)
        .into_iter()
        .find(|m| m.contains("Subject: [iamalive] ALARM e2e-01"))
        .unwrap();
    assert!(alarm.contains("To: ops@example.org"), "{alarm}");
    assert!(alarm.contains("has gone silent"), "{alarm}");
    assert!(
        alarm.contains("rejected"),
        "the rejected heartbeat is mentioned: {alarm}"
    );

    assert_eq!(w.heartbeat("e2e-01").await.status(), 200);
    wait_mail(&maildir, "RECOVERED", 1, Duration::from_secs(15)).await;
    quiet_while_alive(&maildir, &[&w], "e2e-01", Duration::from_millis(700)).await;
    assert_eq!(count(&maildir, "ALARM"), 1);
    assert_eq!(count(&maildir, "RECOVERED"), 1);
    assert_eq!(w.host("e2e-01").await["status"], "up");
}

#[tokio::test]
async fn alarm_waits_for_smtp_to_come_back_none_lost_none_doubled() {
    let smtp_port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let w = start(
        dir.path(),
        &dir.path().join("iamalive.db"),
        Some(smtp_port),
        &[("IAMALIVE_REMINDER_INTERVAL", "1h")],
    );
    assert_eq!(w.heartbeat("e2e-02").await.status(), 200);
    // The alarm is owed but SMTP is down: the record shows failed attempts.
    let start_wait = Instant::now();
    loop {
        let h = w.host("e2e-02").await;
        if h["owed_notice"]["attempts"].as_u64().unwrap_or(0) >= 2 {
            assert_eq!(h["status"], "missing");
            assert_eq!(h["owed_notice"]["kind"], "alarm");
            break;
        }
        assert!(
            start_wait.elapsed() < Duration::from_secs(15),
            "no failed delivery: {h}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mail = smtp_on(smtp_port, None);
    let maildir = mail.maildir_new();
    wait_mail(&maildir, "ALARM", 1, Duration::from_secs(15)).await;
    assert_eq!(w.heartbeat("e2e-02").await.status(), 200);
    wait_mail(&maildir, "RECOVERED", 1, Duration::from_secs(15)).await;
    quiet_while_alive(&maildir, &[&w], "e2e-02", Duration::from_millis(700)).await;
    assert_eq!(
        subjects(&maildir),
        ["[iamalive] ALARM e2e-02", "[iamalive] RECOVERED e2e-02"]
    );
}

#[tokio::test]
async fn two_processes_on_one_sqlite_file_send_one_alarm_per_outage() {
    let mail = smtp(None);
    let maildir = mail.maildir_new();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("shared.db");
    let extra = [
        ("IAMALIVE_REMINDER_INTERVAL", "1h"),
        ("IAMALIVE_MAX_SLEEP", "20ms"),
    ];
    let a = start(dir.path(), &db, Some(mail.addr.port()), &extra);
    let b = start(dir.path(), &db, Some(mail.addr.port()), &extra);
    for outage in 1..=3 {
        // Heartbeats through both processes, then silence.
        assert_eq!(a.heartbeat("e2e-03").await.status(), 200);
        assert_eq!(b.heartbeat("e2e-03").await.status(), 200);
        wait_mail(&maildir, "ALARM", outage, Duration::from_secs(15)).await;
        let back = if outage % 2 == 0 { &a } else { &b };
        assert_eq!(back.heartbeat("e2e-03").await.status(), 200);
        wait_mail(&maildir, "RECOVERED", outage, Duration::from_secs(15)).await;
    }
    quiet_while_alive(&maildir, &[&a, &b], "e2e-03", Duration::from_millis(700)).await;
    assert_eq!(count(&maildir, "ALARM"), 3, "{:?}", subjects(&maildir));
    assert_eq!(count(&maildir, "RECOVERED"), 3, "{:?}", subjects(&maildir));
    assert_eq!(count(&maildir, "REMINDER"), 0);
}

#[tokio::test]
async fn zero_config_prints_a_key_once_and_keeps_only_its_hash() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("iamalive.db");
    let first = start(dir.path(), &db, None, &[("IAMALIVE_API_KEYS", "")]);
    let stdout = |w: &Watcher| {
        let port = w.url.rsplit(':').next().unwrap().to_owned();
        std::fs::read_to_string(dir.path().join(format!("stdout-{port}.txt"))).unwrap()
    };
    let out = stdout(&first);
    let key = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("API key: "))
        .unwrap_or_else(|| panic!("no key printed: {out}"))
        .to_owned();
    assert!(
        out.contains("curl") && out.contains("iamalive-agent"),
        "{out}"
    );
    let kept = std::fs::read_to_string(dir.path().join("iamalive.db.key")).unwrap();
    assert!(!kept.contains(&key) && kept.contains("sha256:"));
    let ping = |w: &Watcher| {
        let url = format!("{}/ping/{key}/zero-01", w.url);
        async move { reqwest::get(url).await.unwrap() }
    };
    let r = ping(&first).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "OK");
    drop(first);
    let second = start(dir.path(), &db, None, &[("IAMALIVE_API_KEYS", "")]);
    assert_eq!(ping(&second).await.status(), 200);
    assert!(
        !stdout(&second).contains(&key),
        "the key is printed only once"
    );
    // Notices go to stdout until SMTP is configured.
    let start_wait = Instant::now();
    while !stdout(&second).contains("zero-01") {
        assert!(
            start_wait.elapsed() < Duration::from_secs(15),
            "no notice on stdout"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn sigterm_stops_it_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = start(dir.path(), &dir.path().join("iamalive.db"), None, &[]);
    assert_eq!(w.heartbeat("e2e-04").await.status(), 200);
    let killed = Command::new("kill")
        .args(["-TERM", &w.child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let start_wait = Instant::now();
    let status = loop {
        if let Some(s) = w.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            start_wait.elapsed() < Duration::from_secs(15),
            "still running after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success(), "{status}: {}", w.log());
    assert!(w.log().contains("runner stopped"), "{}", w.log());
}

/// Configuration this binary cannot use, or cannot read, stops it at start
/// with the key named, exit status 2, and nothing written.
#[test]
fn bad_or_foreign_configuration_stops_it_at_start() {
    let dir = tempfile::tempdir().unwrap();
    for (key, value) in [
        ("IAMALIVE_REDIS_URL", "redis://127.0.0.1:1/"),
        ("IAMALIVE_TIMEOUT", "ten minutes"),
        ("IAMALIVE_TIMEOUTT", "10m"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_sqlite-smtp"))
            .current_dir(dir.path())
            .env(key, value)
            .env("IAMALIVE_LISTEN", format!("127.0.0.1:{}", free_port()))
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{key}: {stderr}");
        assert!(stderr.contains(key), "{key} is named: {stderr}");
        assert!(
            !dir.path().join("iamalive.db").exists(),
            "{key}: nothing written"
        );
    }
}

/// `curl` to the real binary: a `/fail` reaches the mail receiver at once
/// (the request wakes the sweep; the host's timeout is ten minutes and the
/// runner's own wake-up 30 s away), with the request body as its reason;
/// the next success sends the all-clear with the failure summary; the event
/// log tells the story.
#[tokio::test]
async fn a_failure_by_curl_alarms_within_one_sweep_and_a_success_clears_it() {
    let mail = smtp(None);
    let dir = tempfile::tempdir().unwrap();
    let w = start(
        dir.path(),
        &dir.path().join("iamalive.db"),
        Some(mail.addr.port()),
        &[("IAMALIVE_TIMEOUT", "10m")],
    );
    let maildir = mail.maildir_new();
    let curl = |path: &str, body: &str| {
        let out = Command::new("curl")
            .args(["-fsS", "--max-time", "10", "--data-binary", body])
            .arg(format!("{}/ping/{KEY}/{path}", w.url))
            .output()
            .expect("curl runs");
        assert!(
            out.status.success(),
            "curl {path}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(curl("backup-db/start?rid=run-1", ""), "OK");
    let sent = Instant::now();
    assert_eq!(curl("backup-db/fail?rid=run-1", "disk full"), "OK");
    let got = wait_mail(&maildir, "ALARM", 1, Duration::from_secs(15)).await;
    assert!(
        got - sent < Duration::from_secs(5),
        "the alarm took {:?}: the failure did not wake the sweep",
        got - sent
    );
    let alarm = read_messages(&maildir)
        .into_iter()
        .find(|m| m.contains("Subject: [iamalive] ALARM backup-db"))
        .unwrap();
    assert!(alarm.contains("reported a failure: disk full"), "{alarm}");
    assert_eq!(w.host("backup-db").await["status"], "alarmed");

    assert_eq!(curl("backup-db/0", "done"), "OK");
    wait_mail(&maildir, "RECOVERED", 1, Duration::from_secs(15)).await;
    let clear = read_messages(&maildir)
        .into_iter()
        .find(|m| m.contains("Subject: [iamalive] RECOVERED backup-db"))
        .unwrap();
    assert!(clear.contains("failed once since"), "{clear}");
    assert!(clear.contains("disk full"), "{clear}");
    assert_eq!(count(&maildir, "ALARM"), 1);

    let events: Value = reqwest::Client::new()
        .get(format!("{}/v1/hosts/backup-db/events", w.url))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let kinds: Vec<&str> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["start", "fail", "alarm", "success", "recovery"],
        "{events}"
    );
}
