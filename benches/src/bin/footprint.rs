//! Footprint: bytes per host in SQLite (file size after VACUUM) and in
//! Redis (`used_memory` delta), and the resident memory of the service
//! (router, runner and store in one process) holding many hosts.
//!
//! `cargo run --release -p iamalive-benches --bin footprint -- --store memory --hosts 1000000`
//! (one store per process gives a clean resident-memory figure).

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use futures::StreamExt;
use iamalive_benches::http::{Service, app_state, bench_config};
use iamalive_benches::stats::rss;
use iamalive_benches::{Backend, backend, host};
use iamalive_core::Heartbeat;

#[derive(Parser, Debug)]
#[command(about = "Bytes per host on disk and in Redis; resident memory of the service")]
struct Args {
    /// Stores to measure (memory, sqlite, redis); default all three.
    #[arg(long = "store", value_delimiter = ',')]
    stores: Vec<Backend>,
    /// Hosts to register.
    #[arg(long, default_value_t = 1_000_000)]
    hosts: usize,
}

const MIB: f64 = 1024.0 * 1024.0;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let selected = backend::select(&args.stores, &Backend::STORES);
    let rt = iamalive_benches::runtime(2, "footprint")?;
    for &b in &selected.stores {
        rt.block_on(async {
            let (rss0, _) = rss().unwrap_or_default();
            let opened = backend::open(b, selected.redis_url()).await?;
            let used0 = match selected.redis_url() {
                Some(u) if b == Backend::Redis => Some(redis_used_memory(u).await?),
                _ => None,
            };
            // The whole service: router served on loopback and the runner.
            let state = app_state(opened.store.clone(), vec![], &bench_config());
            let service = Service::start(&state).await?;
            let addr = service.addr;
            let t = Instant::now();
            let monitor = Arc::clone(state.monitor());
            let now = chrono::Utc::now();
            let mut s = futures::stream::iter((0..args.hosts).map(|i| {
                let monitor = Arc::clone(&monitor);
                async move { monitor.heartbeat(&Heartbeat::new(host(i), now)).await }
            }))
            .buffer_unordered(4096);
            while let Some(r) = s.next().await {
                r?;
            }
            drop(s);
            let filled = t.elapsed();
            // Let the runner sweep once with everything in place.
            tokio::time::sleep(Duration::from_millis(300)).await;
            let (rss1, hwm1) = rss().unwrap_or_default();
            println!(
                "{:<7} {} hosts registered in {:.1} s ({:.0}/s); service on http://{addr}",
                b.name(),
                args.hosts,
                filled.as_secs_f64(),
                args.hosts as f64 / filled.as_secs_f64()
            );
            println!(
                "{:<7} process VmRSS {:.1} MiB (peak {:.1} MiB), {:.0} bytes/host above the empty service",
                b.name(),
                rss1 as f64 / MIB,
                hwm1 as f64 / MIB,
                rss1.saturating_sub(rss0) as f64 / args.hosts as f64
            );
            if let (Some(u), Some(used0)) = (selected.redis_url(), used0) {
                let used1 = redis_used_memory(u).await?;
                println!(
                    "{:<7} redis used_memory {:.1} MiB more: {:.0} bytes/host",
                    b.name(),
                    (used1 - used0) as f64 / MIB,
                    (used1 - used0) as f64 / args.hosts as f64
                );
            }
            service.stop().await;
            drop(state);
            let path = opened.sqlite_path.clone();
            let dir_guard = opened;
            if let Some(path) = path {
                // Let the store's threads close their connections.
                let store = Arc::clone(&dir_guard.store);
                drop(store);
                tokio::time::sleep(Duration::from_millis(200)).await;
                sqlite_size(&path, args.hosts)?;
            }
            drop(dir_guard);
            Ok::<_, Box<dyn std::error::Error>>(())
        })?;
    }
    drop(selected);
    Ok(())
}

async fn redis_used_memory(url: &str) -> Result<i64, redis::RedisError> {
    let client = redis::Client::open(url)?;
    let mut c = client.get_multiplexed_async_connection().await?;
    let info: String = redis::cmd("INFO").arg("memory").query_async(&mut c).await?;
    Ok(info
        .lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0))
}

fn sqlite_size(path: &std::path::Path, hosts: usize) -> Result<(), rusqlite::Error> {
    let file_len = |p: &std::path::Path| std::fs::metadata(p).map_or(0, |m| m.len());
    let wal = path.with_extension("db-wal");
    let conn = rusqlite::Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(30))?;
    let _: (i64, i64, i64) = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
    })?;
    let before = file_len(path);
    conn.execute_batch("VACUUM")?;
    let _: (i64, i64, i64) = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
    })?;
    let pages: i64 = conn.query_row("PRAGMA page_count", [], |r| r.get(0))?;
    let page_size: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
    let after = file_len(path);
    println!(
        "sqlite  file {:.1} MiB as written, {:.1} MiB after VACUUM ({} pages of {} bytes; WAL {} bytes): {:.0} bytes/host",
        before as f64 / MIB,
        after as f64 / MIB,
        pages,
        page_size,
        file_len(&wal),
        (pages * page_size) as f64 / hosts as f64
    );
    Ok(())
}
