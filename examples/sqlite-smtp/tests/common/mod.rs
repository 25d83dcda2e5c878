//! Helpers shared by the end-to-end tests of the real binary.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Hosts beating every `every` against `url` with `key`, as curl in a loop
/// would: a beat the watcher does not answer is simply lost (no retry),
/// the harshest case. Stops at `stop`, and after 10 minutes whatever the
/// test does.
pub(crate) fn beat_forever(
    url: String,
    key: &'static str,
    hosts: Vec<String>,
    every: Duration,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(800))
            .build()
            .unwrap();
        for _ in 0..(600_000 / every.as_millis().max(1)) {
            if stop.load(Ordering::SeqCst) {
                break;
            }
            let sends = hosts.iter().map(|h| {
                client
                    .post(format!("{url}/v1/heartbeat"))
                    .bearer_auth(key)
                    .json(&serde_json::json!({ "host": h }))
                    .send()
            });
            let _ = futures::future::join_all(sends).await;
            tokio::time::sleep(every).await;
        }
    })
}

/// Polls `f` every 50 ms until it holds; fails the test after `limit`.
pub(crate) async fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
