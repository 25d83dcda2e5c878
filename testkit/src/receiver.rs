//! A real HTTP receiver on loopback for webhook and SNS-subscription
//! tests: it records every POST body and can be told to answer 503 to the
//! next few requests, as a failing receiver would.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;

#[derive(Default)]
struct Shared {
    bodies: Mutex<Vec<String>>,
    failures_left: AtomicUsize,
    refused: AtomicUsize,
}

/// A running receiver; it stops with the test's runtime.
#[derive(Clone)]
pub struct Receiver {
    /// The URL to POST to.
    pub url: String,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver").field("url", &self.url).finish()
    }
}

impl Receiver {
    /// Starts a receiver on a free loopback port (inside a Tokio runtime).
    pub async fn start() -> Receiver {
        let shared = Arc::new(Shared::default());
        let app = axum::Router::new()
            .route(
                "/hook",
                post(|State(s): State<Arc<Shared>>, body: Bytes| async move {
                    let fail = s
                        .failures_left
                        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                        .is_ok();
                    if fail {
                        s.refused.fetch_add(1, Ordering::SeqCst);
                        return StatusCode::SERVICE_UNAVAILABLE;
                    }
                    s.bodies
                        .lock()
                        .unwrap()
                        .push(String::from_utf8_lossy(&body).into_owned());
                    StatusCode::OK
                }),
            )
            .with_state(Arc::clone(&shared));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let addr = listener.local_addr().expect("local address");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver {
            url: format!("http://{addr}/hook"),
            shared,
        }
    }

    /// Answers the next `n` requests 503 (recording none of them).
    pub fn fail_next(&self, n: usize) {
        self.shared.failures_left.store(n, Ordering::SeqCst);
    }

    /// How many requests were answered 503.
    pub fn refused(&self) -> usize {
        self.shared.refused.load(Ordering::SeqCst)
    }

    /// The bodies taken so far, in order.
    pub fn bodies(&self) -> Vec<String> {
        self.shared.bodies.lock().unwrap().clone()
    }

    /// The bodies received so far, each parsed as JSON; panics on one
    /// that is not.
    pub fn json(&self) -> Vec<serde_json::Value> {
        self.bodies()
            .iter()
            .map(|b| serde_json::from_str(b).expect("a JSON body"))
            .collect()
    }

    /// How many bodies taken so far contain every one of `parts`.
    pub fn count(&self, parts: &[&str]) -> usize {
        self.bodies()
            .iter()
            .filter(|b| parts.iter().all(|p| b.contains(p)))
            .count()
    }

    /// Waits (at most `limit`) until `count(parts) >= n`; whether it did.
    pub async fn wait_for(&self, parts: &[&str], n: usize, limit: Duration) -> bool {
        let start = Instant::now();
        while start.elapsed() < limit {
            if self.count(parts) >= n {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.count(parts) >= n
    }
}
