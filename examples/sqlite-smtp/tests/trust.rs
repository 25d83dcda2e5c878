//! End to end, the alarms an operator must be able to trust: no false
//! alarm when the watcher restarts briefly while 100 hosts keep beating,
//! and no alarm lost when the SMTP relay refuses mail for a while (550,
//! "daily sending quota exceeded"). Real binary, real aiosmtpd, real HTTP.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use iamalive_testkit::{free_port, read_messages, refusal_flag, smtp_refusing};
use serde_json::Value;

mod common;
use common::{beat_forever, wait_for};

const KEY: &str = "trust-test-key-0123456789";

struct Watcher {
    child: Child,
    port: u16,
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Watcher {
    fn start(dir: &Path, port: u16, run: usize, extra: &[(&str, String)]) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sqlite-smtp"));
        cmd.current_dir(dir)
            .env("IAMALIVE_LISTEN", format!("127.0.0.1:{port}"))
            .env("IAMALIVE_SQLITE_PATH", dir.join("watch.db"))
            .env("IAMALIVE_API_KEYS", KEY)
            .env("IAMALIVE_LOG", "info")
            // 100 test hosts beat at once from one loopback address with
            // one key: lift the caps meant for a real fleet.
            .env("IAMALIVE_MAX_CONNECTIONS_PER_IP", "1024")
            .env("IAMALIVE_MAX_NEW_HOSTS_PER_KEY", "off")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.join(format!("stdout-{run}.txt"))).unwrap())
            .stderr(std::fs::File::create(dir.join(format!("stderr-{run}.txt"))).unwrap());
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start sqlite-smtp");
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("sqlite-smtp exited early ({status})");
            }
            assert!(start.elapsed() < Duration::from_secs(30), "not listening");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { child, port }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// SIGTERM, and wait for the graceful stop.
    fn terminate(mut self) {
        let ok = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill")
            .success();
        assert!(ok);
        let start = Instant::now();
        while self.child.try_wait().expect("wait").is_none() {
            assert!(start.elapsed() < Duration::from_secs(10), "no clean stop");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let r = reqwest::Client::new()
            .get(format!("{}{path}", self.url()))
            .bearer_auth(KEY)
            .send()
            .await
            .expect("request");
        (r.status().as_u16(), r.json().await.expect("json"))
    }
}

fn printed(dir: &Path, tag: &str) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().filter_map(Result::ok) {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with("stdout-") {
            let text = std::fs::read_to_string(e.path()).unwrap_or_default();
            out.extend(
                text.lines()
                    .filter(|l| l.starts_with(&format!("[iamalive] {tag} ")))
                    .map(str::to_owned),
            );
        }
    }
    out
}

/// The defect measured on the old main: 10 hosts beating every 2 s, a 4 s
/// timeout, two 3.5 s restarts, 20 false alarms. Now: 100 hosts, beats
/// every second, a 3 s timeout, one graceful restart and one kill -9, each
/// down for 2.5 s (so beats were swallowed and the next lands past the
/// plain deadline), and not one alarm. Then every host really stops, and
/// they are alarmed (one watcher-blind notice naming all 100): the watcher
/// was not simply deaf.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_restarts_raise_no_alarm_for_100_beating_hosts() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let env = [
        ("IAMALIVE_TIMEOUT", "3s".to_owned()),
        ("IAMALIVE_REMINDER_INTERVAL", "1h".to_owned()),
        // The control's blind notice within the wait for it.
        ("IAMALIVE_GROUP_WAIT", "1s".to_owned()),
    ];
    let hosts: Vec<String> = (0..100).map(|i| format!("node-{i:03}")).collect();
    let w = Watcher::start(dir.path(), port, 1, &env);
    let stop_all = Arc::new(AtomicBool::new(false));
    let beats = beat_forever(
        format!("http://127.0.0.1:{port}"),
        KEY,
        hosts.clone(),
        Duration::from_secs(1),
        Arc::clone(&stop_all),
    );
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    let (_, list) = w.get("/v1/hosts?limit=500").await;
    assert_eq!(list["hosts"].as_array().map(Vec::len), Some(100), "{list}");

    w.terminate();
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let w = Watcher::start(dir.path(), port, 2, &env);
    tokio::time::sleep(Duration::from_millis(4_000)).await;

    drop(w); // kill -9
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let w = Watcher::start(dir.path(), port, 3, &env);
    tokio::time::sleep(Duration::from_millis(5_000)).await;

    let alarms = printed(dir.path(), "ALARM");
    assert_eq!(
        alarms.len(),
        0,
        "no host stopped beating, so no alarm; the first: {:?}",
        &alarms[..alarms.len().min(3)]
    );
    let (_, list) = w.get("/v1/hosts?limit=500").await;
    let up = list["hosts"]
        .as_array()
        .map(|a| a.iter().filter(|h| h["status"] == "up").count());
    assert_eq!(up, Some(100), "{list}");

    // The control: the same watcher alarms hosts that really stopped. All
    // 100 falling silent at once is more than half of the fleet: the
    // watcher-blind notice names them (and the first two may alarm on
    // their own before it); every host is named in an alarm.
    stop_all.store(true, Ordering::SeqCst);
    beats.await.unwrap();
    let d = dir.path().to_owned();
    wait_for("the real alarms", Duration::from_secs(15), || {
        let alarms = printed(&d, "ALARM").join("\n");
        hosts.iter().all(|h| alarms.contains(h.as_str()))
    })
    .await;
    let blind = printed(dir.path(), "ALARM watcher may be blind:");
    assert_eq!(blind.len(), 1, "one blind notice: {blind:?}");
    assert!(blind[0].contains("100 of 100 hosts silent"), "{}", blind[0]);
    // With a 3 s timeout no host can have missed a beat before its
    // deadline (the tolerance is 10 s), so up to two hosts coming due in
    // sweeps of their own before the rest may alarm alone first
    // (docs/groups.md); never one alarm per host.
    assert!(
        printed(dir.path(), "ALARM").len() <= 3,
        "no alarm per host: {:?}",
        printed(dir.path(), "ALARM")
    );
    w.terminate();
}

/// A relay that answers 550 for every message: the alarm stays owed and
/// is retried, /healthz says degraded and names the channel, and once the
/// relay accepts mail again the alarm arrives (late, once), followed by the
/// all-clear when the host returns. Nothing is dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusing_relay_drops_no_alarm() {
    let dir = tempfile::tempdir().unwrap();
    let relay = smtp_refusing();
    let port = free_port();
    let env = [
        ("IAMALIVE_TIMEOUT", "500ms".to_owned()),
        ("IAMALIVE_REMINDER_INTERVAL", "1h".to_owned()),
        ("IAMALIVE_RETRY_BASE", "100ms".to_owned()),
        ("IAMALIVE_RETRY_MAX", "300ms".to_owned()),
        (
            "IAMALIVE_SMTP_URL",
            format!("smtp://127.0.0.1:{}", relay.addr.port()),
        ),
        ("IAMALIVE_SMTP_FROM", "iamalive@example.org".to_owned()),
        ("IAMALIVE_SMTP_TO", "ops@example.org".to_owned()),
    ];
    let w = Watcher::start(dir.path(), port, 1, &env);
    let client = reqwest::Client::new();
    let beat = |host: &'static str| {
        client
            .post(format!("{}/v1/heartbeat", w.url()))
            .bearer_auth(KEY)
            .json(&serde_json::json!({ "host": host }))
            .send()
    };
    assert_eq!(beat("db-1").await.unwrap().status(), 200);

    // The test notice says, per channel, that smtp refuses.
    let r = client
        .post(format!("{}/v1/test-notice", w.url()))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["channels"][0]["channel"], "smtp", "{body}");
    assert_eq!(body["channels"][0]["outcome"], "refused", "{body}");
    assert!(
        body["channels"][0]["error"]
            .as_str()
            .unwrap()
            .contains("quota"),
        "{body}"
    );

    // db-1 falls silent; its alarm is refused again and again.
    let started = Instant::now();
    let mut refusals = 0;
    while started.elapsed() < Duration::from_secs(15) {
        let (_, host) = w.get("/v1/hosts/db-1").await;
        refusals = host["owed_notice"]["refusals"]
            .as_array()
            .map_or(0, Vec::len);
        if refusals > 0 && host["owed_notice"]["attempts"].as_u64() >= Some(3) {
            assert_eq!(host["status"], "missing", "nobody was told: {host}");
            assert_eq!(host["owed_notice"]["kind"], "alarm", "{host}");
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(refusals, 1, "the refusal is shown on the host");
    let (code, health) = w.get("/healthz").await;
    assert_eq!(code, 200, "the store is fine: {health}");
    assert_eq!(health["status"], "degraded", "{health}");
    assert_eq!(
        health["refusing_channels"][0]["channel"], "smtp",
        "{health}"
    );
    assert!(read_messages(&relay.maildir_new()).is_empty());

    // The relay accepts mail again: the alarm arrives once, late.
    std::fs::remove_file(refusal_flag(relay.dir.path())).unwrap();
    let maildir = relay.maildir_new();
    wait_for(
        "the alarm after the relay recovered",
        Duration::from_secs(15),
        || {
            read_messages(&maildir)
                .iter()
                .any(|m| m.contains("Subject: [iamalive] ALARM db-1"))
        },
    )
    .await;
    let (_, host) = w.get("/v1/hosts/db-1").await;
    assert_eq!(host["status"], "alarmed", "{host}");
    let (code, health) = w.get("/healthz").await;
    assert_eq!(
        (code, health["status"].as_str()),
        (200, Some("ok")),
        "{health}"
    );

    // The host returns: the all-clear follows. Exactly one alarm in all.
    assert_eq!(beat("db-1").await.unwrap().status(), 200);
    wait_for("the all-clear", Duration::from_secs(15), || {
        read_messages(&maildir)
            .iter()
            .any(|m| m.contains("Subject: [iamalive] RECOVERED db-1"))
    })
    .await;
    let mails = read_messages(&maildir);
    let alarms = mails
        .iter()
        .filter(|m| m.contains("Subject: [iamalive] ALARM db-1"))
        .count();
    assert_eq!(alarms, 1, "one alarm, not one per retry");
    assert!(
        mails
            .iter()
            .any(|m| m.contains("Subject: [iamalive] WATCHER RESTORED")),
        "the channel's all-clear went out through it once it worked"
    );
}
