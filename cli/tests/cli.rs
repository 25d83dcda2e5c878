//! The real `iamalive-cli` binary against the real server on loopback.

use std::sync::Arc;

use iamalive_core::{MemoryStore, Notifier, SystemClock};
use iamalive_server::{AppState, Config, serve_listener};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

const ADMIN: &str = "cli-admin-key-0123456789";
const AGENT: &str = "cli-agent-key-0123456789";

struct Watcher {
    url: String,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn watcher() -> Watcher {
    let env = vec![(
        "IAMALIVE_API_KEYS".to_owned(),
        format!("{ADMIN};name=ops,{AGENT};role=heartbeat;name=agents"),
    )];
    let config = Config::from_sources(None, env).unwrap();
    let channels: Vec<Arc<dyn Notifier>> = Vec::new();
    let state = AppState::new(
        Arc::new(MemoryStore::new()),
        channels,
        Arc::new(SystemClock),
        &config,
    )
    .expect("channel names are unique");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(serve_listener(listener, state, async {
        let _ = rx.await;
    }));
    Watcher { url, stop, task }
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

async fn cli(w: &Watcher, key: &str, args: &[&str]) -> Out {
    let o = tokio::process::Command::new(env!("CARGO_BIN_EXE_iamalive-cli"))
        .args(args)
        .env("IAMALIVE_URL", &w.url)
        .env("IAMALIVE_KEY", key)
        .env_remove("IAMALIVE_KEY_FILE")
        .output()
        .await
        .unwrap();
    Out {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

async fn beat(w: &Watcher, host: &str) {
    let r = reqwest::Client::new()
        .post(format!("{}/v1/heartbeat", w.url))
        .bearer_auth(AGENT)
        .json(&serde_json::json!({"host": host}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_commands_work_and_exit_as_documented() {
    let w = watcher().await;
    beat(&w, "web-1").await;
    beat(&w, "db-1").await;

    let o = cli(&w, ADMIN, &["hosts"]).await;
    assert_eq!(o.code, 0, "{}", o.stderr);
    let lines: Vec<&str> = o.stdout.lines().collect();
    assert!(lines[0].starts_with("HOST"), "{}", o.stdout);
    assert!(
        lines[1].starts_with("db-1") && lines[1].contains("up"),
        "{}",
        o.stdout
    );
    assert!(lines[2].starts_with("web-1"), "{}", o.stdout);

    let o = cli(&w, ADMIN, &["pause", "db-1", "--for", "2h"]).await;
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(o.stdout.starts_with("paused db-1 until "), "{}", o.stdout);
    let o = cli(&w, ADMIN, &["hosts", "--json"]).await;
    let hosts: Value = serde_json::from_str(&o.stdout).unwrap();
    let db = hosts
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["host"] == "db-1")
        .unwrap();
    assert_eq!(db["status"], "paused");
    let o = cli(&w, ADMIN, &["host", "db-1"]).await;
    assert!(
        o.stdout.contains("status:") && o.stdout.contains("paused, resumes in 1h 59m"),
        "{}",
        o.stdout
    );
    let o = cli(&w, ADMIN, &["resume", "db-1"]).await;
    assert_eq!((o.code, o.stdout.as_str()), (0, "resumed db-1\n"));

    let o = cli(
        &w,
        ADMIN,
        &[
            "silence",
            "add",
            "web-*",
            "--for",
            "1h",
            "--from",
            "19:00",
            "--tz",
            "Europe/Berlin",
            "--reason",
            "backup window",
            "--json",
        ],
    )
    .await;
    assert_eq!(o.code, 0, "{}", o.stderr);
    let s: Value = serde_json::from_str(&o.stdout).unwrap();
    let id = s["id"].as_str().unwrap().to_owned();
    assert_eq!(s["hosts"], "web-*");
    assert_eq!(s["reason"], "backup window");
    // 19:00 in Berlin is 18:00 or 17:00 UTC, whichever day comes next.
    let start = s["starts_at"].as_str().unwrap();
    assert!(
        start.contains("T18:00:00") || start.contains("T17:00:00"),
        "{start}"
    );
    let o = cli(&w, ADMIN, &["silence", "ls"]).await;
    assert!(
        o.stdout.contains(&id) && o.stdout.contains("backup window"),
        "{}",
        o.stdout
    );
    let o = cli(&w, ADMIN, &["silence", "rm", &id]).await;
    assert_eq!(
        (o.code, o.stdout.clone()),
        (0, format!("removed silence {id}\n"))
    );

    // Exit statuses a script can rely on.
    let o = cli(&w, ADMIN, &["silence", "rm", &id]).await;
    assert_eq!(o.code, 3, "unknown silence: {}", o.stderr);
    assert!(
        o.stderr.starts_with("iamalive: unknown silence"),
        "{}",
        o.stderr
    );
    let o = cli(&w, ADMIN, &["host", "nope"]).await;
    assert_eq!(o.code, 3);
    let o = cli(&w, AGENT, &["hosts"]).await;
    assert_eq!(o.code, 4, "a heartbeat key is denied: {}", o.stderr);
    let o = cli(&w, "wrong-key", &["hosts"]).await;
    assert_eq!(o.code, 4);
    let o = cli(
        &w,
        ADMIN,
        &["silence", "add", "web-*", "--for", "2y", "--reason", "x"],
    )
    .await;
    assert_eq!(o.code, 6, "refused as invalid: {}", o.stderr);
    let o = cli(
        &w,
        ADMIN,
        &[
            "silence", "add", "web-*", "--for", "1h", "--from", "teatime",
        ],
    )
    .await;
    assert_eq!(o.code, 2, "{}", o.stderr);
    let o = cli(&w, ADMIN, &["pause"]).await;
    assert_eq!(o.code, 2, "clap's usage error");
    let o = cli(&w, ADMIN, &["rm", "web-1"]).await;
    assert_eq!((o.code, o.stdout.as_str()), (0, "removed web-1\n"));
    let o = cli(&w, ADMIN, &["rm", "web-1"]).await;
    assert_eq!(o.code, 3);

    let _ = w.stop.send(());
    w.task.await.unwrap().unwrap();
    // Nobody listens now.
    let gone = Watcher {
        url: w.url.clone(),
        stop: oneshot::channel().0,
        task: tokio::spawn(async { Ok(()) }),
    };
    let o = cli(&gone, ADMIN, &["hosts"]).await;
    assert_eq!(o.code, 5, "{}", o.stderr);
    assert!(
        o.stderr.contains("could not reach the watcher"),
        "{}",
        o.stderr
    );
}

/// `policy` sets a schedule or a timeout through the API and `--clear`
/// forgets it; a bad schedule is refused (exit 6) with the server's
/// reason; `hosts` shows a failed job's failure in its NOTE column.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_and_a_failed_jobs_note() {
    let w = watcher().await;
    let o = cli(
        &w,
        ADMIN,
        &[
            "policy",
            "backup-db",
            "--schedule",
            "0 2 * * *",
            "--tz",
            "Europe/Berlin",
            "--grace",
            "30m",
        ],
    )
    .await;
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(
        o.stdout
            .contains("schedule 0 2 * * * in Europe/Berlin, grace 30m (set by API)"),
        "{}",
        o.stdout
    );
    assert!(o.stdout.contains("next run:"), "{}", o.stdout);
    let o = cli(&w, ADMIN, &["host", "backup-db", "--json"]).await;
    let v: Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(v["policy"]["source"], "api", "{v}");
    assert_eq!(v["policy"]["tz"], "Europe/Berlin", "{v}");

    let o = cli(&w, ADMIN, &["policy", "backup-db", "--schedule", "0 2 * *"]).await;
    assert_eq!(o.code, 6, "{}", o.stderr);
    assert!(o.stderr.contains("invalid cron expression"), "{}", o.stderr);
    let o = cli(
        &w,
        ADMIN,
        &["policy", "backup-db", "--host-timeout", "2h", "--json"],
    )
    .await;
    assert_eq!(o.code, 0, "{}", o.stderr);
    let v: Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(v["policy"]["timeout"], "2h", "{v}");
    let o = cli(&w, ADMIN, &["policy", "backup-db"]).await;
    assert_eq!(o.code, 2, "nothing to set: {}", o.stderr);
    let o = cli(&w, ADMIN, &["policy", "backup-db", "--clear"]).await;
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(o.stdout.contains("(from config)"), "{}", o.stdout);

    // A failure by ping URL: the NOTE column says it failed and why.
    let r = reqwest::Client::new()
        .post(format!("{}/ping/{AGENT}/backup-db/fail", w.url))
        .body("pg_dump: disk full")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let o = cli(&w, ADMIN, &["hosts"]).await;
    let line = o
        .stdout
        .lines()
        .find(|l| l.starts_with("backup-db"))
        .unwrap_or_default()
        .to_owned();
    assert!(line.ends_with("failed: pg_dump: disk full"), "{}", o.stdout);
    let _ = w.stop.send(());
    w.task.await.unwrap().unwrap();
}

/// `policy --help` tells the two timeouts apart: `--host-timeout` is the
/// host's silence limit, the global `--timeout` bounds each request; both
/// are accepted together.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_help_tells_the_two_timeouts_apart() {
    let w = watcher().await;
    let o = cli(&w, ADMIN, &["policy", "--help"]).await;
    assert_eq!(o.code, 0, "{}", o.stderr);
    // An option's help: its line and the wrapped lines under it, up to
    // the next option.
    let para = |flag: &str| {
        let mut lines = o
            .stdout
            .lines()
            .skip_while(|l| !l.trim_start().starts_with(&format!("{flag} <DURATION>")));
        let first = lines
            .next()
            .unwrap_or_else(|| panic!("{flag} in: {}", o.stdout));
        let rest = lines.take_while(|l| {
            let t = l.trim_start();
            !t.is_empty() && !t.starts_with('-')
        });
        std::iter::once(first)
            .chain(rest)
            .map(str::trim)
            .collect::<Vec<_>>()
            .join(" ")
    };
    let host = para("--host-timeout");
    assert!(host.contains("silent before it is missing"), "{host}");
    let request = para("--timeout");
    assert!(request.contains("each request to the watcher"), "{request}");
    assert!(request.contains("Not a host's timeout"), "{request}");
    let o = cli(
        &w,
        ADMIN,
        &[
            "--timeout",
            "5s",
            "policy",
            "nightly",
            "--host-timeout",
            "3h",
            "--json",
        ],
    )
    .await;
    assert_eq!(o.code, 0, "{}", o.stderr);
    let v: Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(v["policy"]["timeout"], "3h", "{v}");
    let _ = w.stop.send(());
    w.task.await.unwrap().unwrap();
}

#[test]
fn help_and_version_exit_0_and_an_unknown_option_2() {
    iamalive_testkit::assert_help_and_version(
        std::path::Path::new(env!("CARGO_BIN_EXE_iamalive-cli")),
        "iamalive-cli",
        env!("CARGO_PKG_VERSION"),
        &[
            &["hosts"],
            &["host"],
            &["silence", "add"],
            &["silence", "ls"],
            &["silence", "rm"],
            &["pause"],
            &["resume"],
            &["rm"],
            &["policy"],
        ],
    );
}
