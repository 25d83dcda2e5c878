//! Disk use per host after normal use: `hosts` hosts, `rounds` rounds of
//! heartbeats (every host once per round, through the store's group
//! commit, as the ingest does; ids `host-0000000`, as the footprint
//! benchmark names them), then the file sizes as they are (database
//! plus WAL), after a `TRUNCATE` checkpoint, and after `VACUUM`.
//!
//! ```text
//! cargo run --release -p iamalive-store-sqlite --example disk_use -- hosts=100000 rounds=10
//! ```

use std::path::Path;
use std::time::Duration;

use chrono::Utc;
use iamalive_core::{Heartbeat, HostId, Store, add};
use iamalive_store_sqlite::SqliteStore;

fn size(p: &Path) -> u64 {
    std::fs::metadata(p).map_or(0, |m| m.len())
}

fn report(what: &str, db: &Path, hosts: u64) {
    let wal = db.with_extension("db-wal");
    let shm = db.with_extension("db-shm");
    let (d, w, s) = (size(db), size(&wal), size(&shm));
    let total = d + w;
    println!(
        "{what:<34} db {:>11} B  wal {:>11} B  shm {:>9} B  db+wal {:>7.1} B/host  db alone {:>6.1} B/host",
        d,
        w,
        s,
        total as f64 / hosts as f64,
        d as f64 / hosts as f64
    );
}

#[tokio::main]
async fn main() {
    let mut hosts = 100_000u64;
    let mut rounds = 10u64;
    for a in std::env::args().skip(1) {
        match a.split_once('=') {
            Some(("hosts", v)) => hosts = v.parse().expect("hosts=N"),
            Some(("rounds", v)) => rounds = v.parse().expect("rounds=N"),
            _ => panic!("usage: disk_use [hosts=N] [rounds=N]"),
        }
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("disk.db");
    let store = SqliteStore::open(&db).expect("open");
    let ids: Vec<HostId> = (0..hosts)
        .map(|i| HostId::new(format!("host-{i:07}")).expect("id"))
        .collect();
    for r in 0..rounds {
        let now = Utc::now();
        let due = add(now, Duration::from_secs(600));
        for chunk in ids.chunks(4096) {
            let beats = chunk.iter().map(|h| {
                let hb = Heartbeat::new(h.clone(), now);
                let store = &store;
                async move { store.record_heartbeat(&hb, due, true).await }
            });
            for res in futures::future::join_all(beats).await {
                res.expect("stored");
            }
        }
        if r == 0 {
            report("after registering", &db, hosts);
        }
    }
    report(&format!("after {rounds} rounds, as written"), &db, hosts);
    let c = store.checkpoint().await.expect("checkpoint");
    assert!(c.complete, "{c:?}");
    report("after checkpoint(TRUNCATE)", &db, hosts);
    drop(store);
    std::thread::sleep(Duration::from_millis(500));
    let conn = rusqlite::Connection::open(&db).expect("open");
    conn.execute_batch("VACUUM").expect("vacuum");
    drop(conn);
    report("after VACUUM", &db, hosts);
}
