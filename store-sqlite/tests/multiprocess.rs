//! Two monitor PROCESSES share one database file while many outages
//! happen; each outage must yield exactly one alarm and one recovery.
//!
//! The test binary re-executes itself as each monitor (selected by an
//! environment variable). The parent owns time: it tells both children to
//! sweep at the same instant (each sets its own `ManualClock` to it) while
//! it writes heartbeats from a third connection, so the monitors race for
//! every due record through compare-and-swap.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use iamalive_core::testing::RecordingNotifier;
use iamalive_core::{
    Heartbeat, HostId, ManualClock, Monitor, MonitorOptions, Notifier, Policy, PolicySet, Store,
    Timestamp, add,
};
use iamalive_store_sqlite::SqliteStore;

const ROLE: &str = "IAMALIVE_SQLITE_TEST_ROLE";
const DB: &str = "IAMALIVE_SQLITE_TEST_DB";
/// 2026-01-01T00:00:00Z in milliseconds.
const T0_MS: i64 = 1_767_225_600_000;
const HOSTS: usize = 60;
const ROUNDS: u64 = 25;
const TIMEOUT_S: u64 = 10;

fn at(secs: u64) -> Timestamp {
    add(
        chrono::DateTime::from_timestamp_millis(T0_MS).expect("t0"),
        Duration::from_secs(secs),
    )
}

fn host(i: usize) -> HostId {
    HostId::new(format!("h{i:02}")).expect("host")
}

/// Whether host `i` is silent during round `r` (a different fifth each round).
fn in_outage(i: usize, r: u64) -> bool {
    (i as u64 * 7 + r * 13).is_multiple_of(5)
}

fn main() {
    match std::env::var(ROLE) {
        Ok(role) => child(&role),
        Err(_) => {
            println!("\nrunning 1 test");
            two_monitor_processes_one_alarm_per_outage();
            println!("test two_monitor_processes_one_alarm_per_outage ... ok\n");
        }
    }
}

/// A monitor process: `sweep <secs>` sets its clock and sweeps, answering
/// with one `notice <kind> <outage_id>` line per delivery, then `done`.
fn child(role: &str) {
    let path = std::env::var(DB).expect("database path from the parent");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&path).expect("open"));
        let clock = ManualClock::at_millis(T0_MS);
        let pager = RecordingNotifier::new("pager");
        let policy = Policy {
            timeout: Duration::from_secs(TIMEOUT_S),
            reminder_interval: Duration::from_secs(86_400),
            // Five outages per host in 500 s would be flapping: this test
            // wants every outage's own alarm and recovery.
            flapping: iamalive_core::flap::FlapPolicy::off(),
            ..Policy::default()
        };
        let channels: Vec<Arc<dyn Notifier>> = vec![Arc::new(pager.clone())];
        let monitor = Monitor::new(
            store,
            channels,
            clock.clone(),
            PolicySet::new(policy),
            MonitorOptions {
                owner: role.to_owned(),
                lease: Duration::from_secs(30),
                batch: 16,
                concurrency: 4,
                mark_interval: Some(Duration::from_secs(2)),
                downtime_gap: Some(Duration::from_secs(3600)),
                ..MonitorOptions::default()
            },
        )
        .expect("channel names are unique");
        let stdin = std::io::stdin();
        let mut out = std::io::stdout().lock();
        for line in stdin.lock().lines() {
            let line = line.expect("stdin");
            let Some(secs) = line.strip_prefix("sweep ") else {
                break;
            };
            clock.set(at(secs.parse().expect("seconds")));
            let report = monitor.sweep().await.expect("sweep");
            for n in pager.notices() {
                writeln!(out, "notice {} {}", n.kind, n.outage_id).expect("stdout");
            }
            pager.clear();
            writeln!(out, "done {} {}", report.evaluated, report.conflicts).expect("stdout");
            out.flush().expect("flush");
        }
    });
}

struct Proc {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    name: String,
}

impl Proc {
    fn spawn(name: &str, db: &std::path::Path) -> Self {
        let mut child = Command::new(std::env::current_exe().expect("current exe"))
            .env(ROLE, name)
            .env(DB, db)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn monitor process");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        Self {
            child,
            stdin,
            stdout,
            name: name.to_owned(),
        }
    }

    fn ask_sweep(&mut self, secs: u64) {
        writeln!(self.stdin, "sweep {secs}").expect("to child");
        self.stdin.flush().expect("flush");
    }

    /// Reads the child's deliveries until `done`; returns them and its
    /// conflict count.
    fn collect(&mut self) -> (Vec<(String, String)>, usize) {
        let mut notices = Vec::new();
        loop {
            let mut line = String::new();
            let n = self.stdout.read_line(&mut line).expect("from child");
            assert!(n > 0, "monitor process {} died", self.name);
            let parts: Vec<&str> = line.split_whitespace().collect();
            match parts.as_slice() {
                ["notice", kind, id] => notices.push(((*kind).to_owned(), (*id).to_owned())),
                ["done", _evaluated, conflicts] => {
                    return (notices, conflicts.parse().expect("count"));
                }
                other => panic!("unexpected line from {}: {other:?}", self.name),
            }
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "quit");
        let _ = self.stdin.flush();
        // It exits on "quit"; kill it only if it does not (a failed test).
        for _ in 0..100 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn two_monitor_processes_one_alarm_per_outage() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("shared.db");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    // The parent is a third process writing heartbeats to the same file.
    let store = Arc::new(SqliteStore::open(&db).expect("open"));
    let beat = |hosts: Vec<HostId>, secs: u64| {
        let store = Arc::clone(&store);
        rt.block_on(async move {
            let futs = hosts.into_iter().map(|h| {
                let store = Arc::clone(&store);
                async move {
                    store
                        .record_heartbeat(&Heartbeat::new(h, at(secs)), at(secs + TIMEOUT_S), true)
                        .await
                        .expect("heartbeat")
                }
            });
            futures::future::join_all(futs).await;
        })
    };
    let all: Vec<HostId> = (0..HOSTS).map(host).collect();
    beat(all.clone(), 0);

    let mut monitors = [Proc::spawn("monitor-a", &db), Proc::spawn("monitor-b", &db)];
    // (kind, outage id) -> deliveries per monitor
    let mut seen: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    let mut conflicts = 0;
    // Both monitors sweep at `secs` while the parent sends `hosts` heartbeats.
    let mut step = |secs: u64, hosts: Vec<HostId>| {
        for m in monitors.iter_mut() {
            m.ask_sweep(secs);
        }
        beat(hosts, secs);
        for m in monitors.iter_mut() {
            let (notices, c) = m.collect();
            conflicts += c;
            for key in notices {
                seen.entry(key).or_default().push(m.name.clone());
            }
        }
    };
    let mut expected = Vec::new();
    for r in 0..ROUNDS {
        let b = r * 20;
        let up: Vec<HostId> = (0..HOSTS).filter(|&i| !in_outage(i, r)).map(host).collect();
        for i in (0..HOSTS).filter(|&i| in_outage(i, r)) {
            // Silent since b, missing at b + timeout.
            let missing_ms = T0_MS + ((b + TIMEOUT_S) * 1000) as i64;
            expected.push(format!("{}@{missing_ms}", host(i)));
        }
        // Everyone reports at b (last round's outages recover).
        step(b, all.clone());
        step(b + 8, up.clone());
        // The silent fifth passes its deadline at b + 10.
        step(b + 11, up.clone());
        step(b + 16, up.clone());
    }
    let end = ROUNDS * 20;
    step(end, all.clone());
    step(end + 1, Vec::new());
    drop(monitors);

    expected.sort();
    let ids = |kind: &str| -> Vec<String> {
        seen.keys()
            .filter(|(k, _)| k == kind)
            .map(|(_, id)| id.clone())
            .collect()
    };
    let doubled: Vec<_> = seen.iter().filter(|(_, who)| who.len() > 1).collect();
    assert!(
        doubled.is_empty(),
        "notices delivered more than once: {doubled:?}"
    );
    assert_eq!(
        ids("alarm"),
        expected,
        "exactly one alarm per outage, none for up hosts"
    );
    assert_eq!(ids("recovery"), expected, "exactly one recovery per outage");
    assert!(ids("reminder").is_empty(), "no reminders within a day");
    let by = |m: &str| seen.values().filter(|who| who[0] == m).count();
    println!(
        "{} outages over {HOSTS} hosts: {} notices by monitor-a, {} by monitor-b, {conflicts} lost compare-and-swaps",
        expected.len(),
        by("monitor-a"),
        by("monitor-b"),
    );
}
