//! The watcher never goes blind quietly, end to end with the real binary:
//! its SQLite file on a full disk, made read-only, deleted while running or
//! before a start; a graceful stop leaves the file complete; a backup
//! taken while it serves holds every host. Notices go to stdout.
//!
//! The disk faults need a small tmpfs (`mount`, as root) and `chattr`;
//! under `CI=true` a missing capability fails the test, elsewhere the test
//! says why it did nothing.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use iamalive_testkit::free_port;
use serde_json::Value;

mod common;
use common::{beat_forever, wait_for};

const KEY: &str = "faults-test-key-0123456789";
const BIN: &str = env!("CARGO_BIN_EXE_sqlite-smtp");

fn ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

/// A tmpfs of `size` mounted on a fresh directory; unmounted on drop, even
/// after a panic (files made immutable are made mutable first).
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Self { dir }),
            other => {
                let why = format!("cannot mount a tmpfs (needs root): {other:?}");
                assert!(!ci(), "{why}");
                eprintln!("skipped: {why}");
                None
            }
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        if let Ok(entries) = std::fs::read_dir(self.dir.path()) {
            for e in entries.filter_map(Result::ok) {
                let _ = Command::new("chattr").arg("-i").arg(e.path()).status();
            }
        }
        let ok = Command::new("umount")
            .arg(self.dir.path())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount")
                .arg("-l")
                .arg(self.dir.path())
                .status();
        }
    }
}

struct Watcher {
    child: Child,
    port: u16,
    logs: PathBuf,
    run: usize,
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn command(db: &Path, logs: &Path, run: usize, extra: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(logs)
        .env("IAMALIVE_SQLITE_PATH", db)
        .env("IAMALIVE_API_KEYS", KEY)
        .env("IAMALIVE_LOG", "info")
        // Every test host beats from the one loopback address, many at
        // once, with one key: lift the caps meant for a real fleet.
        .env("IAMALIVE_MAX_CONNECTIONS_PER_IP", "1024")
        .env("IAMALIVE_MAX_NEW_HOSTS_PER_KEY", "off")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(logs.join(format!("stdout-{run}.txt"))).unwrap())
        .stderr(std::fs::File::create(logs.join(format!("stderr-{run}.txt"))).unwrap());
    for (k, v) in extra {
        cmd.env(k, v);
    }
    cmd
}

impl Watcher {
    fn start(db: &Path, logs: &Path, run: usize, extra: &[(&str, &str)]) -> Self {
        let port = free_port();
        let mut cmd = command(db, logs, run, extra);
        cmd.env("IAMALIVE_LISTEN", format!("127.0.0.1:{port}"));
        let mut child = cmd.spawn().expect("start sqlite-smtp");
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                let err = std::fs::read_to_string(logs.join(format!("stderr-{run}.txt")));
                panic!("sqlite-smtp exited early ({status}): {err:?}");
            }
            assert!(start.elapsed() < Duration::from_secs(30), "not listening");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self {
            child,
            port,
            logs: logs.to_owned(),
            run,
        }
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

    fn alive(&mut self) -> bool {
        self.child.try_wait().expect("wait").is_none()
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let r = reqwest::Client::new()
            .get(format!("{}{path}", self.url()))
            .bearer_auth(KEY)
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .expect("request");
        (r.status().as_u16(), r.json().await.expect("json"))
    }

    async fn beat(&self, host: &str) -> u16 {
        reqwest::Client::new()
            .post(format!("{}/v1/heartbeat", self.url()))
            .bearer_auth(KEY)
            .timeout(Duration::from_secs(5))
            .json(&serde_json::json!({ "host": host }))
            .send()
            .await
            .map_or(0, |r| r.status().as_u16())
    }

    /// Notice lines printed by this run that contain `tag`.
    fn printed(&self, tag: &str) -> Vec<String> {
        let text = std::fs::read_to_string(self.logs.join(format!("stdout-{}.txt", self.run)))
            .unwrap_or_default();
        text.lines()
            .filter(|l| l.starts_with("[iamalive] ") && l.contains(tag))
            .map(str::to_owned)
            .collect()
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(self.logs.join(format!("stderr-{}.txt", self.run)))
            .unwrap_or_default()
    }
}

/// Fills the file system holding `dir` until a write fails.
fn fill_disk(dir: &Path) -> PathBuf {
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    while f.write_all(&chunk).is_ok() {}
    let _ = f.sync_all();
    path
}

/// The blind detection is off: these tests count one alarm per quiet host
/// (10 of 15 falling silent together would otherwise be one watcher-blind
/// notice, tested in groups.rs); what they check is that no alarm is lost
/// to a disk fault.
const SHORT: [(&str, &str); 5] = [
    ("IAMALIVE_TIMEOUT", "2s"),
    ("IAMALIVE_REMINDER_INTERVAL", "1h"),
    ("IAMALIVE_STORE_FAULT_AFTER", "1s"),
    ("IAMALIVE_RETRY_BASE", "100ms"),
    ("IAMALIVE_GROUP_BLIND", "false"),
];

/// What a disk fault does to one run: 5 hosts keep beating, 10 beat once
/// and fall silent; the fault starts before their timeout and lasts past
/// it. `fault` starts it (returning what `clear` needs), `clear` ends it.
async fn a_disk_fault_is_announced_and_loses_no_alarm<T>(
    fault: impl FnOnce(&Path) -> T,
    clear: impl FnOnce(T),
    says: &[&str],
) {
    let Some(fs) = Tmpfs::mount("4m") else {
        return;
    };
    let logs = tempfile::tempdir().unwrap();
    let db = fs.path().join("watch.db");
    let mut w = Watcher::start(&db, logs.path(), 1, &SHORT);
    let quiet: Vec<String> = (0..10).map(|i| format!("quiet-{i:02}")).collect();
    let busy: Vec<String> = (0..5).map(|i| format!("busy-{i:02}")).collect();
    for h in &quiet {
        assert_eq!(w.beat(h).await, 200);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let beats = beat_forever(
        w.url(),
        KEY,
        busy.clone(),
        Duration::from_millis(300),
        Arc::clone(&stop),
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (code, health) = w.get("/healthz").await;
    assert_eq!(code, 200, "{health}");

    // The fault begins while the quiet hosts are still within their timeout.
    let undo = fault(fs.path());
    let started = Instant::now();
    wait_for(
        "WATCHER DEGRADED on the channel",
        Duration::from_secs(10),
        || !w.printed("WATCHER DEGRADED").is_empty(),
    )
    .await;
    let took = started.elapsed();
    let degraded = w.printed("WATCHER DEGRADED").join("\n");
    assert!(
        says.iter().any(|s| degraded.contains(s)),
        "says why ({says:?}): {degraded}"
    );
    let (code, health) = w.get("/healthz").await;
    assert_eq!(code, 503, "{health}");
    let reasons = health["reasons"].to_string();
    assert!(says.iter().any(|s| reasons.contains(s)), "{health}");
    // Past the quiet hosts' timeout, still in the fault: nobody alarmed yet
    // (the alarms could not be recorded), and none given up on either.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(w.alive(), "the watcher survives the fault: {}", w.stderr());
    let early = w.printed("ALARM");
    assert!(early.is_empty(), "{early:?}");

    clear(undo);
    wait_for(
        "the all-clear and the 10 alarms",
        Duration::from_secs(15),
        || w.printed("WATCHER RESTORED").len() == 1 && w.printed("] ALARM").len() == 10,
    )
    .await;
    let alarms = w.printed("] ALARM");
    for h in &quiet {
        assert_eq!(
            alarms
                .iter()
                .filter(|l| l.contains(&format!(" {h}:")))
                .count(),
            1,
            "{h}: {alarms:?}"
        );
    }
    assert!(
        !alarms.iter().any(|l| l.contains("busy-")),
        "the beating hosts are not alarmed: {alarms:?}"
    );
    let (code, health) = w.get("/healthz").await;
    assert_eq!(
        (code, health["status"].as_str()),
        (200, Some("ok")),
        "{health}"
    );
    eprintln!("degraded notice after {took:?}");
    stop.store(true, Ordering::SeqCst);
    beats.await.unwrap();
    w.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_is_announced_and_no_alarm_is_lost() {
    a_disk_fault_is_announced_and_loses_no_alarm(
        fill_disk,
        |filler| std::fs::remove_file(filler).unwrap(),
        &["full"],
    )
    .await;
}

/// A small ext4 image on a loop device, mounted `errors=remount-ro`: a
/// file system error (triggered through sysfs) makes the kernel remount it
/// read-only under the open files, as a failing disk does. Unmounted on
/// drop, even after a panic.
struct Ext4 {
    dir: tempfile::TempDir,
    img: PathBuf,
    _image: tempfile::TempDir,
}

impl Ext4 {
    fn mount() -> Option<Self> {
        let image = tempfile::tempdir().unwrap();
        let img = image.path().join("fs.img");
        let dir = tempfile::tempdir().unwrap();
        let run = |cmd: &mut Command| cmd.output().map(|o| (o.status.success(), o));
        let steps = run(Command::new("truncate").args(["-s", "16M"]).arg(&img))
            .and_then(|_| run(Command::new("mkfs.ext4").args(["-q", "-F"]).arg(&img)))
            .and_then(|_| {
                run(Command::new("mount")
                    .args(["-o", "loop,errors=remount-ro"])
                    .arg(&img)
                    .arg(dir.path()))
            });
        match steps {
            Ok((true, _)) => Some(Self {
                dir,
                img,
                _image: image,
            }),
            other => {
                let why = format!("cannot mount an ext4 image on a loop device: {other:?}");
                assert!(!ci(), "{why}");
                eprintln!("skipped: {why}");
                None
            }
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The kernel's own reaction to a file system error: read-only now.
    fn fail(&self) {
        let out = Command::new("findmnt")
            .args(["-no", "SOURCE"])
            .arg(self.path())
            .output()
            .expect("findmnt");
        let dev = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        let name = Path::new(&dev).file_name().expect("a device").to_owned();
        let knob = Path::new("/sys/fs/ext4")
            .join(name)
            .join("trigger_fs_error");
        std::fs::write(&knob, "1").expect("trigger_fs_error");
    }

    /// The operator's repair: unmount, fsck, mount again.
    fn remount(&self) -> PathBuf {
        assert!(
            Command::new("umount")
                .arg(self.path())
                .status()
                .unwrap()
                .success()
        );
        let _ = Command::new("fsck.ext4").arg("-p").arg(&self.img).status();
        assert!(
            Command::new("mount")
                .args(["-o", "loop,errors=remount-ro"])
                .arg(&self.img)
                .arg(self.path())
                .status()
                .unwrap()
                .success()
        );
        self.path().join("watch.db")
    }
}

impl Drop for Ext4 {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(self.dir.path())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount")
                .arg("-l")
                .arg(self.dir.path())
                .status();
        }
    }
}

/// The file system goes read-only under the running watcher (the kernel's
/// `errors=remount-ro`): announced within the bound, /healthz 503, the
/// process survives; after the operator's repair and a restart, every
/// overdue host gets its alarm.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_file_system_is_announced_and_no_alarm_is_lost() {
    let Some(fs) = Ext4::mount() else {
        return;
    };
    let logs = tempfile::tempdir().unwrap();
    let db = fs.path().join("watch.db");
    let mut w = Watcher::start(&db, logs.path(), 1, &SHORT);
    let quiet: Vec<String> = (0..10).map(|i| format!("quiet-{i:02}")).collect();
    for h in &quiet {
        assert_eq!(w.beat(h).await, 200);
    }
    // What the heartbeats wrote is on the disk (synchronous = NORMAL leaves
    // that to the kernel; a file system error drops what it had not
    // written yet, and this test is about what the watcher does next).
    assert!(Command::new("sync").status().unwrap().success());
    fs.fail();
    wait_for("WATCHER DEGRADED", Duration::from_secs(10), || {
        !w.printed("WATCHER DEGRADED").is_empty()
    })
    .await;
    let (code, health) = w.get("/healthz").await;
    assert_eq!(code, 503, "{health}");
    assert_ne!(w.beat("busy-1").await, 200, "heartbeats are refused");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(w.alive(), "the watcher survives: {}", w.stderr());
    assert!(w.printed("] ALARM").is_empty());
    w.terminate();

    let db = fs.remount();
    let w = Watcher::start(&db, logs.path(), 2, &SHORT);
    wait_for(
        "the 10 alarms after the repair",
        Duration::from_secs(20),
        || w.printed("] ALARM").len() == 10,
    )
    .await;
    w.terminate();
}

/// Deleted while running: announced on the channel and /healthz 503 at the
/// next mark. Restarted: refused (exit 2, naming the path) rather than
/// silently starting empty; with IAMALIVE_SQLITE_CREATE=true it starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_database_is_announced_and_not_silently_recreated() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("watch.db");
    // The first start, with nothing there, needs no setting.
    let w = Watcher::start(&db, dir.path(), 1, &SHORT);
    for h in ["db-1", "db-2"] {
        assert_eq!(w.beat(h).await, 200);
    }
    std::fs::remove_file(&db).unwrap();
    wait_for("the loss on the channel", Duration::from_secs(5), || {
        !w.printed("WATCHER DEGRADED").is_empty()
    })
    .await;
    let line = w.printed("WATCHER DEGRADED").join("\n");
    assert!(
        line.contains("was deleted") && line.contains("watch.db"),
        "{line}"
    );
    let (code, health) = w.get("/healthz").await;
    assert_eq!(code, 503, "{health}");
    assert!(
        health["reasons"].to_string().contains("was deleted"),
        "{health}"
    );
    w.terminate();

    let out = command(&db, dir.path(), 2, &SHORT)
        .env("IAMALIVE_LISTEN", format!("127.0.0.1:{}", free_port()))
        .status()
        .expect("run");
    assert_eq!(out.code(), Some(2), "refused");
    let err = std::fs::read_to_string(dir.path().join("stderr-2.txt")).unwrap();
    assert!(
        err.contains(&db.display().to_string()) && err.contains("IAMALIVE_SQLITE_CREATE"),
        "{err}"
    );
    assert!(!db.exists(), "no empty database was made");

    let w = Watcher::start(
        &db,
        dir.path(),
        3,
        &[
            ("IAMALIVE_SQLITE_CREATE", "true"),
            ("IAMALIVE_TIMEOUT", "2s"),
        ],
    );
    let (_, hosts) = w.get("/v1/hosts").await;
    assert_eq!(hosts["hosts"].as_array().map(Vec::len), Some(0), "{hosts}");
    w.terminate();
}

/// `sqlite-smtp backup` while a watcher serves the file and hosts beat:
/// the copy opens (another watcher serves it) and holds every host. And a
/// graceful stop leaves no WAL behind: the database file alone is whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_while_serving_and_a_stop_leaves_the_file_whole() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("watch.db");
    let w = Watcher::start(
        &db,
        dir.path(),
        1,
        &[
            ("IAMALIVE_TIMEOUT", "1h"),
            ("IAMALIVE_RATE_LIMIT_PER_KEY", "off"),
        ],
    );
    let hosts: Vec<String> = (0..300).map(|i| format!("node-{i:03}")).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let beats = beat_forever(
        w.url(),
        KEY,
        hosts.clone(),
        Duration::from_millis(500),
        Arc::clone(&stop),
    );
    let start = Instant::now();
    loop {
        let (_, list) = w.get("/v1/hosts?limit=500").await;
        let n = list["hosts"].as_array().map(Vec::len);
        if n == Some(300) {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "{n:?} hosts");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let copy = dir.path().join("copy.db");
    let out = Command::new(BIN)
        .arg("backup")
        .arg(&copy)
        .env("IAMALIVE_SQLITE_PATH", &db)
        .output()
        .expect("backup");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("300 hosts"), "{said}");
    let again = Command::new(BIN)
        .arg("backup")
        .arg(&copy)
        .env("IAMALIVE_SQLITE_PATH", &db)
        .output()
        .expect("backup");
    assert_eq!(again.status.code(), Some(1), "never overwrites");

    stop.store(true, Ordering::SeqCst);
    beats.await.unwrap();
    w.terminate();
    let wal = dir.path().join("watch.db-wal");
    let wal_len = std::fs::metadata(&wal).map_or(0, |m| m.len());
    assert_eq!(wal_len, 0, "the stop checkpointed the WAL");

    // Each copy, alone in a directory of its own, holds every host.
    for (name, from) in [("backup", &copy), ("file alone", &db)] {
        let other = tempfile::tempdir().unwrap();
        let to = other.path().join("watch.db");
        std::fs::copy(from, &to).unwrap();
        let w = Watcher::start(&to, other.path(), 1, &[("IAMALIVE_TIMEOUT", "1h")]);
        let (_, list) = w.get("/v1/hosts?limit=500").await;
        assert_eq!(list["hosts"].as_array().map(Vec::len), Some(300), "{name}");
        w.terminate();
    }
}
