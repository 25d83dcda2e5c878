//! Measures heartbeats per second through the store alone (group commit),
//! and bytes per host on disk.
//!
//! ```text
//! cargo run --release -p iamalive-store-sqlite --example heartbeat_throughput -- \
//!     [hosts=100000] [seconds=5] [concurrency=512] [sync=normal|full] [dir=.]
//! ```
//! Arguments are `key=value`; the database goes to a fresh temporary
//! directory under `dir`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use iamalive_core::{Heartbeat, HostId, Store, add};
use iamalive_store_sqlite::{SqliteStore, Synchronous};

fn arg<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::args()
        .skip(1)
        .find_map(|a| {
            a.strip_prefix(&format!("{name}=")).map(|v| {
                v.parse()
                    .unwrap_or_else(|_| panic!("bad value for {name}: {v}"))
            })
        })
        .unwrap_or(default)
}

fn main() {
    let hosts: usize = arg("hosts", 100_000);
    let seconds: u64 = arg("seconds", 5);
    let concurrency: usize = arg("concurrency", 512);
    let sync: String = arg("sync", "normal".to_owned());
    let dir: String = arg("dir", ".".to_owned());
    let sync = match sync.as_str() {
        "full" => Synchronous::Full,
        "normal" => Synchronous::Normal,
        other => panic!("sync must be full or normal, not {other}"),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let tmp = tempfile::tempdir_in(dir).expect("tempdir");
    let path = tmp.path().join("bench.db");
    let store = Arc::new(
        SqliteStore::builder()
            .path(&path)
            .synchronous(sync)
            .build()
            .expect("open"),
    );
    let ids: Arc<Vec<HostId>> = Arc::new(
        (0..hosts)
            .map(|i| HostId::new(format!("host-{i:07}.example.net")).unwrap())
            .collect(),
    );
    let timeout = Duration::from_secs(600);
    rt.block_on(async {
        // Register every host (also group-committed).
        let start = Instant::now();
        run(&store, &ids, concurrency, None, timeout).await;
        let created = start.elapsed();
        println!(
            "created {hosts} hosts in {:.2} s ({:.0}/s)",
            created.as_secs_f64(),
            hosts as f64 / created.as_secs_f64()
        );
        let dur = Duration::from_secs(seconds);
        let cpu_before = writer_cpu_ns();
        let n = run(&store, &ids, concurrency, Some(dur), timeout).await;
        let cpu = writer_cpu_ns() - cpu_before;
        println!(
            "heartbeats: {n} in {seconds} s = {:.0}/s (sync={sync:?}, concurrency={concurrency}, hosts={hosts})",
            n as f64 / dur.as_secs_f64()
        );
        println!(
            "writer thread CPU: {:.2} µs per heartbeat (a bound of {:.0}/s on one free core)",
            cpu as f64 / 1000.0 / n as f64,
            n as f64 / (cpu as f64 / 1e9)
        );
        // A sweep's reads with nothing due: O(due), so independent of hosts.
        let now = chrono::Utc::now();
        let mut took = Vec::new();
        for _ in 0..200 {
            let start = Instant::now();
            let due = store.due(now, 512).await.expect("due");
            let next = store.next_due().await.expect("next_due");
            took.push(start.elapsed());
            assert!(due.is_empty() && next.is_some());
        }
        took.sort();
        println!(
            "due() + next_due() with nothing due among {hosts} hosts: median {:?}, max {:?}",
            took[took.len() / 2],
            took[took.len() - 1]
        );
    });
    drop(store);
    // Checkpoint so the main file holds everything, then measure it.
    let c = rusqlite::Connection::open(&path).expect("reopen");
    c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .expect("checkpoint");
    let pages: i64 = c.query_row("PRAGMA page_count", [], |r| r.get(0)).unwrap();
    let free: i64 = c
        .query_row("PRAGMA freelist_count", [], |r| r.get(0))
        .unwrap();
    let page: i64 = c.query_row("PRAGMA page_size", [], |r| r.get(0)).unwrap();
    drop(c);
    let bytes = std::fs::metadata(&path).unwrap().len();
    println!(
        "on disk: {bytes} bytes for {hosts} hosts = {:.1} bytes/host ({} pages of {page}, {free} free)",
        bytes as f64 / hosts as f64,
        pages
    );
}

/// CPU time the writer thread has used, in ns (Linux schedstat; 0 elsewhere).
fn writer_cpu_ns() -> u64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    for t in tasks.flatten() {
        let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        if comm.trim() == "sqlite-writer" {
            let stat = std::fs::read_to_string(t.path().join("schedstat")).unwrap_or_default();
            return stat
                .split_whitespace()
                .next()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
        }
    }
    0
}

/// `concurrency` tasks send heartbeats round-robin over the hosts; once
/// through when `dur` is `None`, else until it elapses. Returns the count.
async fn run(
    store: &Arc<SqliteStore>,
    ids: &Arc<Vec<HostId>>,
    concurrency: usize,
    dur: Option<Duration>,
    timeout: Duration,
) -> u64 {
    let done = Arc::new(AtomicBool::new(false));
    let next = Arc::new(AtomicU64::new(0));
    let count = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (store, ids, done, next, count) = (
            Arc::clone(store),
            Arc::clone(ids),
            Arc::clone(&done),
            Arc::clone(&next),
            Arc::clone(&count),
        );
        tasks.push(tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                if dur.is_none() && i >= ids.len() {
                    break;
                }
                let now = chrono::Utc::now();
                let hb = Heartbeat::new(ids[i % ids.len()].clone(), now);
                store
                    .record_heartbeat(&hb, add(now, timeout), true)
                    .await
                    .expect("heartbeat");
                count.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    if let Some(d) = dur {
        tokio::time::sleep(d).await;
        done.store(true, Ordering::Relaxed);
    }
    for t in tasks {
        t.await.expect("task");
    }
    count.load(Ordering::Relaxed)
}
