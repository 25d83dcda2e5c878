//! Serving the real router on loopback, and a keep-alive HTTP/1.1 load
//! generator posting heartbeats.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use iamalive_core::{Clock, Notifier, Store, SystemClock};
use iamalive_server::{ApiKey, AppState, Config, KeyHash, Runner};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

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

/// The whole service on loopback, as the binaries run it: the router
/// served ([`serve`]) and the runner sweeping, at most a second apart,
/// until [`Service::stop`].
#[derive(Debug)]
pub struct Service {
    /// Where the router answers.
    pub addr: SocketAddr,
    serving: ServeHandle,
    stop: oneshot::Sender<()>,
    runner: JoinHandle<()>,
}

impl Service {
    /// Starts both on the current runtime.
    pub async fn start(state: &AppState) -> std::io::Result<Self> {
        let (addr, serving) = serve(state.clone()).await?;
        let (stop, stopped) = oneshot::channel::<()>();
        let runner = tokio::spawn(Runner::new(state, Duration::from_secs(1)).run(async {
            let _ = stopped.await;
        }));
        Ok(Self {
            addr,
            serving,
            stop,
            runner,
        })
    }

    /// Stops the runner, once its sweep in hand is done, then the server.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.runner.await;
        drop(self.serving);
    }
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
    /// With [`LoadSpec::timeline`]: each 2xx answer's completion instant
    /// and latency, in no particular order.
    pub timeline: Vec<(Instant, Duration)>,
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
    /// Requests per second over all connections (each connection paced
    /// evenly); `None`: as fast as the answers come.
    pub rate: Option<f64>,
    /// Keep each answer's completion instant and latency
    /// ([`LoadResult::timeline`]).
    pub timeline: bool,
    /// Setting it ends the run early (the window is then cut short).
    pub stop: Option<Arc<AtomicBool>>,
}

impl LoadSpec {
    /// Flat out, `connections` over `hosts` for `duration` after `warmup`,
    /// no timeline, no early stop.
    pub fn flat_out(
        addr: SocketAddr,
        connections: usize,
        hosts: usize,
        warmup: Duration,
        duration: Duration,
    ) -> Self {
        Self {
            addr,
            connections,
            hosts,
            warmup,
            duration,
            rate: None,
            timeline: false,
            stop: None,
        }
    }
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
    let mut timeline = Vec::new();
    for t in tasks {
        let r = t.await.map_err(std::io::Error::other)??;
        ok += r.0;
        errors += r.1;
        lat.merge(r.2);
        timeline.extend(r.3);
    }
    let finished = Instant::now().min(end);
    Ok(LoadResult {
        ok,
        errors,
        elapsed: finished.saturating_duration_since(measure_from),
        latencies: lat,
        timeline,
    })
}

/// Opens one keep-alive HTTP/1.1 connection to `addr` (TCP_NODELAY).
async fn connect(
    addr: SocketAddr,
) -> std::io::Result<hyper::client::conn::http1::SendRequest<Full<Bytes>>> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(std::io::Error::other)?;
    tokio::spawn(conn);
    Ok(sender)
}

/// The `Host` and `Authorization` values of every request to `addr`,
/// made once per connection.
struct Headers {
    host: String,
    auth: String,
}

impl Headers {
    fn new(addr: SocketAddr) -> Self {
        Self {
            host: addr.to_string(),
            auth: format!("Bearer {BENCH_KEY}"),
        }
    }
}

/// `POST /v1/heartbeat` with `body`, authorised with [`BENCH_KEY`].
fn heartbeat_request(h: &Headers, body: Bytes) -> std::io::Result<Request<Full<Bytes>>> {
    Request::builder()
        .method(Method::POST)
        .uri("/v1/heartbeat")
        .header(HOST, &h.host)
        .header(AUTHORIZATION, &h.auth)
        .header(CONTENT_TYPE, "application/json")
        .body(Full::new(body))
        .map_err(std::io::Error::other)
}

/// Sends `req` and reads the whole answer; its status.
async fn send(
    sender: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    req: Request<Full<Bytes>>,
) -> Result<hyper::StatusCode, hyper::Error> {
    sender.ready().await?;
    let resp = sender.send_request(req).await?;
    let status = resp.status();
    resp.into_body().collect().await?;
    Ok(status)
}

/// Posts each of `bodies` once, over `connections` keep-alive connections
/// (connection `c` sends bodies `c`, `c + connections`, …); the number of
/// 2xx answers. Any other answer or a broken connection is an error.
pub async fn burst(
    addr: SocketAddr,
    bodies: Arc<Vec<Bytes>>,
    connections: usize,
) -> std::io::Result<usize> {
    let mut tasks = Vec::with_capacity(connections);
    for c in 0..connections {
        let bodies = Arc::clone(&bodies);
        tasks.push(tokio::spawn(async move {
            let mut sender = connect(addr).await?;
            let headers = Headers::new(addr);
            let mut ok = 0;
            for body in bodies.iter().skip(c).step_by(connections) {
                let status = send(&mut sender, heartbeat_request(&headers, body.clone())?)
                    .await
                    .map_err(std::io::Error::other)?;
                if !status.is_success() {
                    return Err(std::io::Error::other(format!(
                        "heartbeat answered {status}"
                    )));
                }
                ok += 1;
            }
            Ok::<_, std::io::Error>(ok)
        }));
    }
    let mut ok = 0;
    for t in tasks {
        ok += t.await.map_err(std::io::Error::other)??;
    }
    Ok(ok)
}

type ConnectionResult = (u64, u64, Latencies, Vec<(Instant, Duration)>);

async fn one_connection(
    spec: &LoadSpec,
    c: usize,
    bodies: &[Bytes],
    start: Instant,
    measure_from: Instant,
    end: Instant,
) -> std::io::Result<ConnectionResult> {
    let mut sender = connect(spec.addr).await?;
    let headers = Headers::new(spec.addr);
    tokio::time::sleep_until(start.into()).await;
    let (mut ok, mut errors) = (0u64, 0u64);
    let mut lat = Latencies::default();
    let mut timeline = Vec::new();
    // With a rate, this connection's share of it, its requests evenly
    // spaced (offset per connection so they do not all go at once).
    let gap = spec
        .rate
        .map(|r| Duration::from_secs_f64(spec.connections as f64 / r.max(1e-3)));
    let mut next = start
        + gap.map_or(Duration::ZERO, |g| {
            g.mul_f64(c as f64 / spec.connections as f64)
        });
    let mut i = c;
    loop {
        if let Some(g) = gap {
            tokio::time::sleep_until(next.into()).await;
            next += g;
        }
        let t = Instant::now();
        if t >= end
            || spec
                .stop
                .as_ref()
                .is_some_and(|s| s.load(Ordering::Relaxed))
        {
            break;
        }
        let req = heartbeat_request(&headers, bodies[i % bodies.len()].clone())?;
        i += spec.connections;
        let counted = t >= measure_from;
        let res = send(&mut sender, req).await;
        let done = Instant::now();
        match res {
            Ok(s) if s.is_success() => {
                if counted && done <= end {
                    ok += 1;
                    lat.record(done - t);
                    if spec.timeline {
                        timeline.push((done, done - t));
                    }
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
    Ok((ok, errors, lat, timeline))
}
