//! Shared set-up for iamalive's benchmarks: filling stores with many hosts
//! and the naive full scan the due index is compared against.

use std::time::Duration;

use futures::StreamExt;

use iamalive_core::{Heartbeat, HostId, HostRecord, Store, StoreError, Timestamp, add};

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
    let mut stream = futures::stream::iter(futs).buffer_unordered(256);
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
