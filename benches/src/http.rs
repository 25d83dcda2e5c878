//! Serving the real router on loopback, and a keep-alive HTTP/1.1 load
//! generator posting heartbeats.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use iamalive_core::{Clock, Notifier, Store, SystemClock};
use iamalive_server::{ApiKey, AppState, Config, KeyHash};
use tokio::net::{TcpListener, TcpStream};

use crate::stats::Latencies;

/// The API key the benchmarks present.
pub const BENCH_KEY: &str = "bench-key-0123456789abcdef";

/// A server configuration for benchmarks: one admin key
/// ([`BENCH_KEY`]), no rate limits (they would measure themselves), no
/// caps on the hosts heartbeats create (the benchmarks create many), and
/// everything else at its default.
pub fn bench_config() -> Config {
    let mut c = Config {
        keys: vec![ApiKey::admin("bench", KeyHash::of(BENCH_KEY))],
        ..Config::default()
    };
    c.limits.per_key = None;
    c.limits.global = None;
    c.limits.new_hosts_per_key = None;
    c.limits.max_hosts = None;
    c
}

/// The service's state around `store` on the system clock.
pub fn app_state(
    store: Arc<dyn Store>,
    channels: Vec<Arc<dyn Notifier>>,
    config: &Config,
) -> AppState {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    AppState::new(store, channels, clock, config).expect("channel names are unique")
}

/// Serves `iamalive_server::router(state)` on `127.0.0.1:0` (TCP_NODELAY,
/// as a production listener would) on the current runtime; returns the
/// address and a handle that stops it when dropped.
pub async fn serve(state: AppState) -> std::io::Result<(SocketAddr, ServeHandle)> {
    use axum::serve::ListenerExt;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let app = iamalive_server::router(state);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = rx.await;
            })
            .await;
    });
    Ok((addr, ServeHandle { _stop: tx }))
}

/// Stops the server it belongs to when dropped.
#[derive(Debug)]
pub struct ServeHandle {
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// What a load run did in its measured window.
#[derive(Debug, Clone)]
pub struct LoadResult {
    /// Answers with a 2xx status.
    pub ok: u64,
    /// Other answers and transport errors.
    pub errors: u64,
    /// Length of the measured window.
    pub elapsed: Duration,
    /// Latency of each 2xx answer.
    pub latencies: Latencies,
}

impl LoadResult {
    /// Successful requests per second.
    pub fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }
}

/// How to drive a load run.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    /// Where the service listens.
    pub addr: SocketAddr,
    /// Concurrent keep-alive connections, one request in flight on each.
    pub connections: usize,
    /// Distinct hosts cycled through (`host-0000000` …).
    pub hosts: usize,
    /// Requests in this first stretch are not counted.
    pub warmup: Duration,
    /// The measured window.
    pub duration: Duration,
}

/// The JSON body of a heartbeat for host number `i`.
pub fn heartbeat_body(i: usize) -> Bytes {
    Bytes::from(format!("{{\"host\":\"{}\"}}", crate::host(i)))
}

/// Posts heartbeats over `spec.connections` keep-alive HTTP/1.1
/// connections, each cycling through its own share of the hosts, and
/// counts what came back in the measured window.
pub async fn drive(spec: &LoadSpec) -> std::io::Result<LoadResult> {
    let start = Instant::now() + Duration::from_millis(50);
    let measure_from = start + spec.warmup;
    let end = measure_from + spec.duration;
    let bodies: Arc<Vec<Bytes>> = Arc::new((0..spec.hosts).map(heartbeat_body).collect());
    let mut tasks = Vec::with_capacity(spec.connections);
    for c in 0..spec.connections {
        let bodies = Arc::clone(&bodies);
        let spec = spec.clone();
        tasks.push(tokio::spawn(async move {
            one_connection(&spec, c, &bodies, start, measure_from, end).await
        }));
    }
    let mut ok = 0;
    let mut errors = 0;
    let mut lat = Latencies::default();
    for t in tasks {
        let r = t.await.map_err(std::io::Error::other)??;
        ok += r.0;
        errors += r.1;
        lat.merge(r.2);
    }
    Ok(LoadResult {
        ok,
        errors,
        elapsed: spec.duration,
        latencies: lat,
    })
}

async fn one_connection(
    spec: &LoadSpec,
    c: usize,
    bodies: &[Bytes],
    start: Instant,
    measure_from: Instant,
    end: Instant,
) -> std::io::Result<(u64, u64, Latencies)> {
    let stream = TcpStream::connect(spec.addr).await?;
    stream.set_nodelay(true)?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(std::io::Error::other)?;
    tokio::spawn(conn);
    tokio::time::sleep_until(start.into()).await;
    let auth = format!("Bearer {BENCH_KEY}");
    let host_header = spec.addr.to_string();
    let (mut ok, mut errors) = (0u64, 0u64);
    let mut lat = Latencies::default();
    let mut i = c;
    loop {
        let t = Instant::now();
        if t >= end {
            break;
        }
        let req = Request::builder()
            .method(Method::POST)
            .uri("/v1/heartbeat")
            .header(HOST, &host_header)
            .header(AUTHORIZATION, &auth)
            .header(CONTENT_TYPE, "application/json")
            .body(Full::new(bodies[i % bodies.len()].clone()))
            .map_err(std::io::Error::other)?;
        i += spec.connections;
        let counted = t >= measure_from;
        let res = async {
            sender.ready().await?;
            let resp = sender.send_request(req).await?;
            let status = resp.status();
            resp.into_body().collect().await?;
            Ok::<_, hyper::Error>(status)
        }
        .await;
        let done = Instant::now();
        match res {
            Ok(s) if s.is_success() => {
                if counted && done <= end {
                    ok += 1;
                    lat.record(done - t);
                }
            }
            Ok(_) => errors += u64::from(counted),
            Err(e) => {
                // A broken connection ends this connection's run.
                errors += 1;
                eprintln!("connection {c}: {e}");
                break;
            }
        }
    }
    Ok((ok, errors, lat))
}
