//! Measures heartbeats per second through one `RedisStore` (one
//! multiplexed connection): `cargo run --release -p iamalive-store-redis
//! --example ingest -- redis://127.0.0.1:6379/ [hosts] [concurrency] [seconds]`.
//! On a Redis Cluster, put `--cluster` first and give one or more nodes'
//! urls, comma-separated: `-- --cluster redis://127.0.0.1:7000/,redis://127.0.0.1:7001/`.
//!
//! Writes under a fresh random prefix and deletes nothing else; remove the
//! keys afterwards with `redis-cli --scan --pattern '{ingest-*' | xargs redis-cli del`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use iamalive_core::{Heartbeat, HostId, Store, add};
use iamalive_store_redis::RedisStore;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1).peekable();
    let cluster = args.next_if(|a| a == "--cluster").is_some();
    let url = args
        .next()
        .unwrap_or_else(|| "redis://127.0.0.1:6379/".into());
    let hosts: usize = args.next().map_or(Ok(100_000), |s| s.parse())?;
    let concurrency: usize = args.next().map_or(Ok(256), |s| s.parse())?;
    let secs: u64 = args.next().map_or(Ok(5), |s| s.parse())?;
    let prefix = format!("ingest-{}", std::process::id());
    let builder = RedisStore::builder().prefix(&prefix);
    let builder = if cluster {
        builder.cluster(url.split(','))
    } else {
        builder.url(&url)
    };
    let store = Arc::new(builder.build().await?);
    let ids: Arc<Vec<HostId>> = Arc::new(
        (0..hosts)
            .map(|i| HostId::new(format!("host-{i:07}")))
            .collect::<Result<_, _>>()?,
    );
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let until = start + Duration::from_secs(secs);
    let tasks: Vec<_> = (0..concurrency)
        .map(|w| {
            let (store, ids, done) = (store.clone(), ids.clone(), done.clone());
            tokio::spawn(async move {
                let mut i = w;
                while Instant::now() < until {
                    let at = chrono::Utc::now();
                    let hb = Heartbeat::new(ids[i % ids.len()].clone(), at);
                    store
                        .record_heartbeat(&hb, add(at, Duration::from_secs(600)), true)
                        .await
                        .expect("heartbeat");
                    done.fetch_add(1, Ordering::Relaxed);
                    i += concurrency;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await?;
    }
    let n = done.load(Ordering::Relaxed);
    let el = start.elapsed().as_secs_f64();
    println!(
        "{store}: {n} heartbeats over {hosts} hosts in {el:.2} s with {concurrency} in flight: {:.0}/s",
        n as f64 / el
    );
    Ok(())
}
