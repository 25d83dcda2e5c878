#![doc = include_str!("../README.md")]

use std::time::Duration;

use futures::StreamExt;

use iamalive_core::{Heartbeat, HostId, HostRecord, Store, StoreError, Timestamp, add};

pub mod backend;
pub mod http;
mod null;
pub mod process;
pub mod stamper;
pub mod stats;

pub use stamper::Stamper;

pub use backend::Backend;
pub use null::{HandoffStore, NullStore};

/// A multi-thread Tokio runtime of `threads` workers named `name`: every
/// harness runs the service and its load on runtimes of its own, so the two
/// do not share workers.
pub fn runtime(threads: usize, name: &str) -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name(name)
        .enable_all()
        .build()
}

/// Whether `IAMALIVE_BENCH_QUICK` asks for the smaller sizes.
pub fn quick() -> bool {
    std::env::var_os("IAMALIVE_BENCH_QUICK").is_some_and(|v| !v.is_empty() && v != "0")
}

/// The instant benchmarks start at.
pub fn t0() -> Timestamp {
    chrono::DateTime::from_timestamp(1_767_225_600, 0).expect("in range")
}

/// `host-0000042`-style ids.
pub fn host(i: usize) -> HostId {
    HostId::new(format!("host-{i:07}")).expect("valid")
}

/// Heartbeats `n` hosts at `t0`, due one `timeout` later; the first `due`
/// of them are then made due at `t0` (a fixed number due, whatever `n`).
pub async fn fill(
    store: &dyn Store,
    n: usize,
    due: usize,
    timeout: Duration,
) -> Result<(), StoreError> {
    let t = t0();
    let futs = (0..n).map(|i| async move {
        let hb = Heartbeat::new(host(i), t);
        let due_at = if i < due { t } else { add(t, timeout) };
        store.record_heartbeat(&hb, due_at, true).await
    });
    // Many writes in flight: SQLite's writer commits them in groups, Redis's
    // multiplexed connection pipelines them.
    let mut stream = futures::stream::iter(futs).buffer_unordered(4096);
    while let Some(r) = stream.next().await {
        r?;
    }
    Ok(())
}

/// What a store without a due index must do each sweep: read every host
/// and check it.
pub async fn full_scan(store: &dyn Store, now: Timestamp) -> Result<usize, StoreError> {
    let mut after: Option<HostId> = None;
    let mut due = 0;
    loop {
        let page: Vec<HostRecord> = store.list(after.as_ref(), 10_000).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.host.clone());
        due += page
            .iter()
            .filter(|r| r.due_at.is_some_and(|d| d <= now))
            .count();
    }
    Ok(due)
}
