//! Who watches the watcher: two real sqlite-smtp processes on loopback,
//! each self-pinging the other's `/ping/<key>/<host>` URL, each mailing a
//! real SMTP server (aiosmtpd) of its own. Kill one by its PID: the other
//! alarms once its timeout has passed. Start it again: the all-clear
//! arrives, and the restarted one raises no false alarm about its peer.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use iamalive_testkit::{free_port, read_messages, smtp};
use serde_json::Value;

const KEY_A: &str = "watcher-a-key-0123456789";
const KEY_B: &str = "watcher-b-key-0123456789";
/// How long each watcher lets its peer be silent.
const TIMEOUT: Duration = Duration::from_secs(3);
/// The bound on every wait for an observed event (a loaded machine is
/// slow; nothing here waits for this long when it works).
const LIMIT: Duration = Duration::from_secs(30);

/// One watcher process: its settings, and the process while it runs.
struct Watcher {
    name: &'static str,
    port: u16,
    key: &'static str,
    dir: PathBuf,
    env: Vec<(String, String)>,
    child: Option<Child>,
    runs: usize,
}

impl Drop for Watcher {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Watcher {
    /// `name` on `port` with key `key`, mailing `smtp_port`, pinging
    /// `peer_port` as host `name` with the peer's key.
    fn new(
        name: &'static str,
        dir: &Path,
        port: u16,
        key: &'static str,
        smtp_port: u16,
        peer_port: u16,
        peer_key: &str,
    ) -> Self {
        let env = [
            ("IAMALIVE_LISTEN", format!("127.0.0.1:{port}")),
            (
                "IAMALIVE_SQLITE_PATH",
                dir.join("watch.db").display().to_string(),
            ),
            ("IAMALIVE_API_KEYS", key.to_owned()),
            ("IAMALIVE_TIMEOUT", format!("{}ms", TIMEOUT.as_millis())),
            ("IAMALIVE_REMINDER_INTERVAL", "1h".to_owned()),
            ("IAMALIVE_MAX_SLEEP", "100ms".to_owned()),
            ("IAMALIVE_RETRY_BASE", "100ms".to_owned()),
            ("IAMALIVE_RETRY_MAX", "300ms".to_owned()),
            ("IAMALIVE_SMTP_URL", format!("smtp://127.0.0.1:{smtp_port}")),
            ("IAMALIVE_SMTP_FROM", format!("{name}@example.org")),
            ("IAMALIVE_SMTP_TO", "ops@example.org".to_owned()),
            (
                "IAMALIVE_SELF_PING_URL",
                format!("http://127.0.0.1:{peer_port}/ping/{peer_key}/{name}"),
            ),
            ("IAMALIVE_SELF_PING_INTERVAL", "200ms".to_owned()),
            ("IAMALIVE_SELF_PING_TIMEOUT", "1s".to_owned()),
            ("IAMALIVE_LOG", "info".to_owned()),
        ]
        .map(|(k, v)| (k.to_owned(), v));
        Self {
            name,
            port,
            key,
            dir: dir.to_owned(),
            env: env.to_vec(),
            child: None,
            runs: 0,
        }
    }

    /// Starts the process and returns once it listens.
    fn start(&mut self) {
        self.runs += 1;
        let out = |what: &str| {
            std::fs::File::create(self.dir.join(format!("{what}-{}.txt", self.runs))).unwrap()
        };
        let mut child = Command::new(env!("CARGO_BIN_EXE_sqlite-smtp"))
            .current_dir(&self.dir)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(out("stdout"))
            .stderr(out("stderr"))
            .spawn()
            .expect("start sqlite-smtp");
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("{} exited early ({status}): {}", self.name, self.log());
            }
            assert!(start.elapsed() < LIMIT, "{} not listening", self.name);
            std::thread::sleep(Duration::from_millis(20));
        }
        self.child = Some(child);
    }

    /// Kills the process by its PID (SIGKILL: no goodbye, as when its
    /// machine dies) and waits for it to be gone.
    fn kill(&mut self) {
        let mut child = self.child.take().expect("running");
        let ok = Command::new("kill")
            .args(["-KILL", &child.id().to_string()])
            .status()
            .expect("kill")
            .success();
        assert!(ok, "kill -KILL {}", child.id());
        child.wait().expect("reaped");
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join(format!("stderr-{}.txt", self.runs)))
            .unwrap_or_default()
    }

    async fn get(&self, path: &str) -> Option<Value> {
        let r = reqwest::Client::new()
            .get(format!("http://127.0.0.1:{}{path}", self.port))
            .bearer_auth(self.key)
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .ok()?;
        r.json().await.ok()
    }
}

/// `[iamalive] <tag> <host>` subjects received in `maildir`.
fn mails(maildir: &Path, tag: &str, host: &str) -> usize {
    read_messages(maildir)
        .iter()
        .filter(|m| {
            m.lines()
                .any(|l| l.starts_with(&format!("Subject: [iamalive] {tag} {host}")))
        })
        .count()
}

/// Waits (bounded) for the mail count to reach `n`.
async fn wait_mail(maildir: &Path, tag: &str, host: &str, n: usize) {
    let start = Instant::now();
    while mails(maildir, tag, host) < n {
        assert!(
            start.elapsed() < LIMIT,
            "no {tag} mail about {host} within {LIMIT:?}; mails: {:?}",
            read_messages(maildir)
                .iter()
                .filter_map(|m| m
                    .lines()
                    .find(|l| l.starts_with("Subject:"))
                    .map(str::to_owned))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls until `w` knows `host` as `up` (bounded).
async fn wait_up(w: &Watcher, host: &str) {
    let start = Instant::now();
    loop {
        if let Some(v) = w.get(&format!("/v1/hosts/{host}")).await
            && v["status"] == "up"
        {
            return;
        }
        assert!(
            start.elapsed() < LIMIT,
            "{} never saw {host} up: {}",
            w.name,
            w.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn two_watchers_alarm_when_the_other_dies_and_clear_when_it_is_back() {
    let (mail_a, mail_b) = (smtp(None), smtp(None));
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (port_a, port_b) = (free_port(), free_port());
    let mut a = Watcher::new(
        "watcher-a",
        dir_a.path(),
        port_a,
        KEY_A,
        mail_a.addr.port(),
        port_b,
        KEY_B,
    );
    let mut b = Watcher::new(
        "watcher-b",
        dir_b.path(),
        port_b,
        KEY_B,
        mail_b.addr.port(),
        port_a,
        KEY_A,
    );
    let (box_a, box_b) = (mail_a.maildir_new(), mail_b.maildir_new());
    a.start();
    b.start();

    // Each knows the other from its self-pings.
    wait_up(&b, "watcher-a").await;
    wait_up(&a, "watcher-b").await;
    for w in [&a, &b] {
        let h = w.get("/healthz").await.expect("healthz");
        assert_eq!(h["status"], "ok", "{h}");
        assert!(h["last_sweep_at"].is_string(), "{h}");
        // The first ping may have hit the peer before it listened; one
        // gets through within a few intervals.
        let start = Instant::now();
        while !w.get("/healthz").await.unwrap()["last_self_ping_at"].is_string() {
            assert!(
                start.elapsed() < LIMIT,
                "{}: no self-ping got through",
                w.name
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    // A dies without a word.
    a.kill();
    wait_mail(&box_b, "ALARM", "watcher-a", 1).await;
    let host = b.get("/v1/hosts/watcher-a").await.expect("host");
    assert_eq!(host["status"], "alarmed", "{host}");
    // B's own pings to the dead A fail, and are counted.
    let start = Instant::now();
    while b.get("/v1/watcher").await.unwrap()["self_ping"]["failures"] == 0 {
        assert!(start.elapsed() < LIMIT, "B's failed pings not counted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A is back: B sends the all-clear once A's first ping lands.
    a.start();
    wait_mail(&box_b, "RECOVERED", "watcher-a", 1).await;
    wait_up(&a, "watcher-b").await;
    // A was down, not B: A gives B the time it was not listening back, so
    // no alarm about B; and B's pings get through to A again.
    let pinged = b.get("/v1/watcher").await.unwrap()["last_self_ping_at"].clone();
    let start = Instant::now();
    loop {
        let now = b.get("/v1/watcher").await.unwrap()["last_self_ping_at"].clone();
        if now != pinged {
            break;
        }
        assert!(start.elapsed() < LIMIT, "B's pings never reach A again");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        mails(&box_a, "ALARM", "watcher-b"),
        0,
        "the restarted watcher raised a false alarm about its peer: {}",
        a.log()
    );
    assert_eq!(
        mails(&box_b, "ALARM", "watcher-a"),
        1,
        "one alarm per outage"
    );
}
