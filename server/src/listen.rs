//! Accepting connections: caps per client address and in total, a bound
//! on the time to send a request head, and on keep-alive idleness, so that
//! nobody can hold the watcher's sockets (or its open files) away from the
//! agents.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::Instant;
use tower::ServiceExt;

use crate::api::{AppState, router};
use crate::config::Limits;
use crate::rejections::RejectionLog;

/// Open files kept free for everything but client connections: the
/// store's files and sockets, outgoing notices, the listener, logs.
pub const RESERVED_FILES: u64 = 128;

/// Raises the soft open-file limit (`RLIMIT_NOFILE`) to the hard limit,
/// where the platform has one and allows it, and returns the soft limit in
/// force afterwards.
pub fn raise_open_file_limit() -> std::io::Result<u64> {
    #[cfg(unix)]
    {
        let (before, hard) = rlimit::Resource::NOFILE.get()?;
        let now = rlimit::increase_nofile_limit(hard)?;
        if now > before {
            tracing::debug!(from = before, to = now, "raised the open-file limit");
        }
        Ok(now)
    }
    #[cfg(not(unix))]
    {
        Ok(u64::MAX)
    }
}

/// The soft open-file limit, if the platform has one.
fn open_file_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        rlimit::Resource::NOFILE.get_soft().ok()
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// The connection cap in force: `configured`, lowered to leave
/// [`RESERVED_FILES`] free under an open-file limit of `files`.
fn connection_cap(configured: usize, files: Option<u64>) -> usize {
    match files {
        Some(f) => {
            let room = usize::try_from(f.saturating_sub(RESERVED_FILES)).unwrap_or(usize::MAX);
            configured.min(room.max(1))
        }
        None => configured,
    }
}

/// Connections from one client are counted together: an IPv4 address, or
/// the /64 of an IPv6 one (one host's share of a network).
fn client_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// Counts open connections, in total and per client, and knows them in
/// the order they were admitted, so that when every place is taken the
/// oldest connection with no request in flight can make room.
struct Gate {
    total: Arc<Semaphore>,
    size: usize,
    per_client: Mutex<HashMap<IpAddr, usize>>,
    max_per_client: usize,
    admitted: Mutex<VecDeque<Weak<Activity>>>,
}

/// One admitted connection; dropping it frees its places.
struct Ticket {
    gate: Arc<Gate>,
    client: IpAddr,
    _permit: Option<OwnedSemaphorePermit>,
}

/// How long a newcomer waits for the place of a connection it evicted.
const EVICTION_WAIT: Duration = Duration::from_millis(200);

/// How many admitted connections are looked at, at most, to find one to
/// evict.
const EVICTION_SCAN: usize = 256;

impl Gate {
    fn new(size: usize, max_per_client: usize) -> Arc<Self> {
        Arc::new(Self {
            total: Arc::new(Semaphore::new(size)),
            size,
            per_client: Mutex::default(),
            max_per_client,
            admitted: Mutex::default(),
        })
    }

    /// Takes a place for a connection from `ip`: refused past the cap for
    /// its address; past the total cap, the oldest connection without a
    /// request in flight is closed to make room, and the newcomer is
    /// refused only if there is none.
    async fn admit(self: &Arc<Self>, ip: IpAddr, activity: &Arc<Activity>) -> Admission {
        let client = client_of(ip);
        {
            let mut m = self.per_client.lock().unwrap_or_else(|e| e.into_inner());
            let n = m.entry(client).or_insert(0);
            if *n >= self.max_per_client {
                return Admission::Refused("too many connections from one address");
            }
            *n += 1;
        }
        let mut ticket = Ticket {
            gate: Arc::clone(self),
            client,
            _permit: None,
        };
        let mut evicted = false;
        let permit = match Arc::clone(&self.total).try_acquire_owned() {
            Ok(p) => p,
            Err(_) if self.evict_one() => {
                evicted = true;
                let wait = Arc::clone(&self.total).acquire_owned();
                match tokio::time::timeout(EVICTION_WAIT, wait).await {
                    Ok(Ok(p)) => p,
                    _ => return Admission::Refused("connection limit reached"),
                }
            }
            Err(_) => return Admission::Refused("connection limit reached"),
        };
        ticket._permit = Some(permit);
        let mut q = self.admitted.lock().unwrap_or_else(|e| e.into_inner());
        if q.len() > 2 * self.size + EVICTION_SCAN {
            q.retain(|w| w.strong_count() > 0);
        }
        q.push_back(Arc::downgrade(activity));
        Admission::Admitted { ticket, evicted }
    }

    /// Asks the oldest admitted connection with no request in flight to
    /// close; whether there was one.
    fn evict_one(&self) -> bool {
        let mut q = self.admitted.lock().unwrap_or_else(|e| e.into_inner());
        for _ in 0..q.len().min(EVICTION_SCAN) {
            let Some(w) = q.pop_front() else { break };
            let Some(a) = w.upgrade() else { continue };
            if a.busy.load(Ordering::SeqCst) > 0 {
                q.push_back(w);
                continue;
            }
            a.evict.notify_one();
            return true;
        }
        false
    }

    /// Resolves when every admitted connection has closed.
    async fn drained(&self) {
        let n = u32::try_from(self.size).unwrap_or(u32::MAX);
        let _ = self.total.acquire_many(n).await;
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut m = self
            .gate
            .per_client
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(n) = m.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.client);
            }
        }
    }
}

/// Whether a connection got in, and whether another was evicted for it.
enum Admission {
    Admitted { ticket: Ticket, evicted: bool },
    Refused(&'static str),
}

/// What a connection is doing: requests in flight, whether one ever
/// started, and the last time one started or ended; and the signal that
/// it is to close to make room for a newcomer.
struct Activity {
    busy: AtomicUsize,
    served: AtomicBool,
    last: Mutex<Instant>,
    evict: Notify,
}

struct Busy(Arc<Activity>);

impl Activity {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            busy: AtomicUsize::new(0),
            served: AtomicBool::new(false),
            last: Mutex::new(Instant::now()),
            evict: Notify::new(),
        })
    }

    fn touch(&self) {
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
    }

    fn begin(self: &Arc<Self>) -> Busy {
        self.busy.fetch_add(1, Ordering::SeqCst);
        self.served.store(true, Ordering::SeqCst);
        self.touch();
        Busy(Arc::clone(self))
    }

    /// When the connection is to be closed as idle if nothing happens
    /// before: `idle` after its last request, or `first` after it opened
    /// if no request ever started (a client that connects and says
    /// nothing); `None` while a request is in flight.
    fn idle_at(&self, idle: Duration, first: Duration) -> Option<Instant> {
        if self.busy.load(Ordering::SeqCst) > 0 {
            return None;
        }
        let last = *self.last.lock().unwrap_or_else(|e| e.into_inner());
        if self.served.load(Ordering::SeqCst) {
            Some(last + idle)
        } else {
            Some(last + idle.min(first))
        }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.touch();
        self.0.busy.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Serves `state`'s [`router`] on `listener` until `shutdown` completes,
/// then stops accepting, lets the requests in flight finish (each within
/// the request timeout) and returns.
///
/// Unlike a bare `axum::serve`, it bounds what a client without a key can
/// hold: connections in total ([`Limits::max_connections`], lowered to
/// leave [`RESERVED_FILES`] free under the open-file limit) and per client
/// address ([`Limits::max_connections_per_ip`]) — a connection past either
/// cap is closed at once — the time to send a request head
/// ([`Limits::header_timeout`]) and the time a keep-alive connection may sit
/// idle ([`Limits::idle_timeout`]).
pub async fn serve_listener(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limits = state.limits().clone();
    let log = Arc::clone(state.rejection_log());
    let cap = connection_cap(limits.max_connections, open_file_limit());
    if cap < limits.max_connections {
        tracing::warn!(
            configured = limits.max_connections,
            cap,
            open_files = open_file_limit(),
            "the open-file limit lowers the connection cap (raise `ulimit -n` to allow more)"
        );
    }
    let gate = Gate::new(cap, limits.max_connections_per_ip);
    let app = router(state);
    let (stop_tx, stop_rx) = watch::channel(false);
    let flusher = {
        let log = Arc::clone(&log);
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => log.flush(),
                    _ = stop.wait_for(|s| *s) => break,
                }
            }
            log.flush_all();
        })
    };
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    accept_failed(&log, e).await;
                    continue;
                }
            },
        };
        let activity = Activity::new();
        let ticket = match gate.admit(peer.ip(), &activity).await {
            Admission::Admitted { ticket, evicted } => {
                if evicted && log.note("idle connection closed to make room") {
                    tracing::info!(client = %peer.ip(), "every place was taken: the oldest idle connection was closed to make room");
                }
                ticket
            }
            Admission::Refused(reason) => {
                // Closed at once: a refused connection costs no task and
                // holds no descriptor.
                drop(stream);
                if log.note(reason) {
                    tracing::info!(client = %peer.ip(), reason, "connection refused");
                }
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(serve_connection(
            stream,
            peer,
            activity,
            ticket,
            app.clone(),
            limits.clone(),
            stop_rx.clone(),
        ));
    }
    drop(listener);
    let _ = stop_tx.send(true);
    gate.drained().await;
    let _ = flusher.await;
    Ok(())
}

/// An accept error that is not the client's doing (out of descriptors):
/// logged within bounds, then a short pause so the loop does not spin.
async fn accept_failed(log: &RejectionLog, e: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    if log.note("accept failed") {
        tracing::error!(error = %e, "accept failed");
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    activity: Arc<Activity>,
    ticket: Ticket,
    app: Router,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
) {
    let service = {
        let activity = Arc::clone(&activity);
        hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            let busy = activity.begin();
            let app = app.clone();
            async move {
                let _busy = busy;
                req.extensions_mut().insert(ConnectInfo(peer));
                app.oneshot(req.map(Body::new)).await
            }
        })
    };
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(64);
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    let mut conn = std::pin::pin!(conn);
    // After a graceful close is asked for (idle, or the server stops), a
    // connection that still has not finished — a client not reading its
    // answer — is dropped at this instant.
    let grace = limits.request_timeout + Duration::from_secs(1);
    let mut closing: Option<Instant> = None;
    let mut stopping = false;
    loop {
        let wake = closing
            .or_else(|| activity.idle_at(limits.idle_timeout, limits.header_timeout))
            .unwrap_or_else(|| Instant::now() + limits.idle_timeout);
        tokio::select! {
            _ = conn.as_mut() => break,
            () = activity.evict.notified() => break,
            _ = stop.wait_for(|s| *s), if !stopping => {
                stopping = true;
                if closing.is_none() {
                    conn.as_mut().graceful_shutdown();
                    closing = Some(Instant::now() + grace);
                }
            }
            () = tokio::time::sleep_until(wake) => {
                if closing.is_some_and(|c| Instant::now() >= c) {
                    break;
                }
                if closing.is_none()
                    && activity.idle_at(limits.idle_timeout, limits.header_timeout).is_some_and(|t| Instant::now() >= t)
                {
                    conn.as_mut().graceful_shutdown();
                    closing = Some(Instant::now() + grace);
                }
            }
        }
    }
    drop(ticket);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_leave_room_under_the_open_file_limit() {
        assert_eq!(connection_cap(4096, Some(1024)), 1024 - 128);
        assert_eq!(connection_cap(100, Some(1024)), 100);
        assert_eq!(connection_cap(4096, Some(10)), 1);
        assert_eq!(connection_cap(4096, None), 4096);
    }

    #[test]
    fn clients_are_addresses_or_ipv6_slash_64s() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(client_of(ip("10.0.0.1")), ip("10.0.0.1"));
        assert_eq!(client_of(ip("::ffff:10.0.0.1")), ip("10.0.0.1"));
        assert_eq!(client_of(ip("2001:db8:1:2:3:4:5:6")), ip("2001:db8:1:2::"));
    }

    #[tokio::test]
    async fn the_gate_counts_per_client_and_makes_room_from_idle_connections() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let gate = Gate::new(3, 2);
        let admit = |a: &str, act: &Arc<Activity>| {
            let gate = Arc::clone(&gate);
            let (a, act) = (ip(a), Arc::clone(act));
            async move { gate.admit(a, &act).await }
        };
        let acts: Vec<_> = (0..6).map(|_| Activity::new()).collect();
        let busy: Vec<_> = acts.iter().map(Activity::begin).collect();
        let Admission::Admitted { ticket: a1, .. } = admit("10.0.0.1", &acts[0]).await else {
            panic!("refused")
        };
        let Admission::Admitted { ticket: _a2, .. } = admit("10.0.0.1", &acts[1]).await else {
            panic!("refused")
        };
        assert!(matches!(
            admit("10.0.0.1", &acts[2]).await,
            Admission::Refused("too many connections from one address")
        ));
        let Admission::Admitted { ticket: _b1, .. } = admit("10.0.0.2", &acts[3]).await else {
            panic!("refused")
        };
        // Full, and every connection has a request in flight: refused.
        assert!(matches!(
            admit("10.0.0.3", &acts[4]).await,
            Admission::Refused("connection limit reached")
        ));
        // The oldest connection falls idle: it is told to close, and the
        // newcomer gets its place once it has.
        drop(busy);
        let evicted = Arc::clone(&acts[0]);
        let closer = tokio::spawn(async move {
            evicted.evict.notified().await;
            drop(a1);
        });
        let Admission::Admitted {
            ticket: _c1,
            evicted,
        } = admit("10.0.0.3", &acts[5]).await
        else {
            panic!("refused")
        };
        assert!(evicted);
        closer.await.unwrap();
        assert_eq!(gate.per_client.lock().unwrap().len(), 3);
    }
}
