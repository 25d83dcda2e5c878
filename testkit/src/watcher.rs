//! A watcher binary (`iamalive`, a preset) run as its operator would: a
//! configuration file, `IAMALIVE_*` variables and nothing inherited from
//! the developer's shell; killed (and reaped) when dropped.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The API key [`Watcher::start`] configures.
pub const KEY: &str = "e2e-watcher-key-0123456789";

/// Settings for quick end-to-end runs: a 700 ms timeout, sweeps at least
/// every 50 ms, retries after 100 to 200 ms, no reminders within a test.
/// A test's own settings given to [`Watcher::start`] win over these.
pub const QUICK: [(&str, &str); 6] = [
    ("IAMALIVE_TIMEOUT", "700ms"),
    ("IAMALIVE_REMINDER_INTERVAL", "1h"),
    ("IAMALIVE_MAX_SLEEP", "50ms"),
    ("IAMALIVE_RETRY_BASE", "100ms"),
    ("IAMALIVE_RETRY_MAX", "200ms"),
    ("IAMALIVE_LOG", "info"),
];

/// A running watcher process.
#[derive(Debug)]
pub struct Watcher {
    child: Child,
    log: PathBuf,
    /// Where it listens.
    pub addr: SocketAddr,
}

/// `bin` with `config` written to `dir/iamalive.toml` and given by
/// `--config`, `env` set and every inherited `IAMALIVE_*` and `AWS_*`
/// variable removed; `args` come first (`serve`).
pub fn command(
    bin: &str,
    args: &[&str],
    dir: &Path,
    config: &str,
    env: &[(&str, &str)],
) -> Command {
    let file = dir.join("iamalive.toml");
    std::fs::write(&file, config).expect("write the configuration");
    let mut cmd = Command::new(bin);
    for (k, _) in
        std::env::vars().filter(|(k, _)| k.starts_with("IAMALIVE_") || k.starts_with("AWS_"))
    {
        cmd.env_remove(k);
    }
    cmd.current_dir(dir)
        .args(args)
        .arg("--config")
        .arg(&file)
        .envs(env.iter().copied())
        .stdin(Stdio::null());
    cmd
}

impl Watcher {
    /// Starts `bin` (see [`command`]) on a free port with [`KEY`], the
    /// [`QUICK`] settings and then `env`, and waits (at most 30 s) until it
    /// listens.
    pub async fn start(
        bin: &str,
        args: &[&str],
        dir: &Path,
        config: &str,
        env: &[(&str, &str)],
    ) -> Watcher {
        let port = crate::free_port();
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let log = dir.join("watcher.log");
        let out = std::fs::File::create(&log).expect("log file");
        let listen = addr.to_string();
        let mut all = vec![
            ("IAMALIVE_LISTEN", listen.as_str()),
            ("IAMALIVE_API_KEYS", KEY),
        ];
        all.extend_from_slice(&QUICK);
        all.extend_from_slice(env);
        let child = command(bin, args, dir, config, &all)
            .stdout(out.try_clone().expect("log file"))
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("start {bin}: {e}"));
        let mut w = Watcher { child, log, addr };
        let start = Instant::now();
        while tokio::net::TcpStream::connect(addr).await.is_err() {
            if let Ok(Some(status)) = w.child.try_wait() {
                panic!("{bin} exited ({status}):\n{}", w.log());
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "{bin} did not listen:\n{}",
                w.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        w
    }

    /// What it logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// One heartbeat for `host`; panics unless it is accepted.
    pub async fn beat(&self, host: &str) {
        self.beat_in(host, None).await;
    }

    /// One heartbeat for `host`, naming `group` if given; panics unless it
    /// is accepted.
    pub async fn beat_in(&self, host: &str, group: Option<&str>) {
        let mut body = serde_json::json!({ "host": host });
        if let Some(g) = group {
            body["group"] = serde_json::Value::String(g.to_owned());
        }
        let r = reqwest::Client::new()
            .post(format!("http://{}/v1/heartbeat", self.addr))
            .bearer_auth(KEY)
            .json(&body)
            .send()
            .await
            .expect("heartbeat");
        assert!(
            r.status().is_success(),
            "heartbeat for {host}: {}",
            r.status()
        );
    }
}

/// Keeps hosts beating in the background, every 300 ms (at most 600
/// times): `steady` from the start, `returning` once [`Keeper::bring_back`]
/// is called (all at once: one after the other took longer than a short
/// group wait on a loaded machine).
#[derive(Debug)]
pub struct Keeper {
    stop: Arc<AtomicBool>,
    back: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Keeper {
    /// Starts beating `steady` (each a host and the group it names) to `w`.
    pub fn start(
        w: &Arc<Watcher>,
        steady: &[(&str, Option<&str>)],
        returning: &[String],
    ) -> Keeper {
        let (stop, back) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
        );
        let steady: Vec<(String, Option<String>)> = steady
            .iter()
            .map(|(h, g)| ((*h).to_owned(), g.map(str::to_owned)))
            .collect();
        let returning = returning.to_vec();
        let task = {
            let (w, stop, back) = (w.clone(), stop.clone(), back.clone());
            tokio::spawn(async move {
                for _ in 0..600 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    for (h, g) in &steady {
                        w.beat_in(h, g.as_deref()).await;
                    }
                    if back.load(Ordering::Relaxed) {
                        futures::future::join_all(returning.iter().map(|h| w.beat(h))).await;
                    }
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
            })
        };
        Keeper { stop, back, task }
    }

    /// From now on the returning hosts beat too.
    pub fn bring_back(&self) {
        self.back.store(true, Ordering::Relaxed);
    }

    /// Stops beating and waits for the task (its panic, if any, is
    /// raised here).
    pub async fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.expect("the keeper's heartbeats");
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
