//! The HTTP API: heartbeat ingest, ping URLs, host and silence management.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use iamalive_core::health::{Announcement, watcher_notice};
use iamalive_core::{
    Clock, GroupName, HealthOptions, Heartbeat, HeartbeatOutcome, HostId, HostPattern, HostRecord,
    Monitor, MonitorOptions, NoticeKind, Notifier, PolicySet, Repeat, Silence, Status, Store,
    StoreError, SweepReport, Timestamp, add, check_tz, parse_instant, since,
};
use metrics_exporter_prometheus::PrometheusHandle;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::config::{Config, Limits, Rate};
use crate::error::ServerError;
use crate::keys::{ApiKey, KeyRing, Role};
use crate::pages::HostPages;
use crate::rejections::{
    DEFAULT_MAX_HOSTS, LOG_WINDOW, LOGGED_PER_REASON, RejectionLog, Rejections,
};
use crate::self_ping::SelfWatch;

mod admit;
mod alertmanager;
mod maintenance;
mod policy;

mod signals;

/// The monitor type the server drives: any store, any clock.
pub type DynMonitor = Monitor<dyn Store, Arc<dyn Clock>>;

/// The longest heartbeat message kept, in bytes.
pub const MAX_MESSAGE_LEN: usize = 1024;

/// The longest pause with an end: one year (`"for": "1y"`, 365.25 days).
/// Longer maintenance is a pause without an end, ended by `resume`.
pub(crate) const MAX_PAUSE: Duration = Duration::from_secs(31_557_600);

/// The longest silence window (a one-off silence, or each occurrence of a
/// repeating one), and how far ahead a silence may start: one year, like
/// [`MAX_PAUSE`].
pub(crate) const MAX_SILENCE: Duration = MAX_PAUSE;

/// The largest agent report accepted, in bytes of its JSON, whatever the
/// body limit.
pub const MAX_REPORT_BYTES: usize = 8 * 1024;

/// The most `failures` entries an agent report may hold (the agent keeps 8).
pub const MAX_REPORT_FAILURES: usize = 32;

/// Cleans text an agent sent (a message, the strings of a report) before it
/// reaches a store or a notice: CR LF and a lone CR become LF; tab and LF
/// stay; every other control character (C0, DEL, C1: NUL, ESC of ANSI
/// sequences, backspace...) is removed. The result is never longer.
pub(crate) fn clean_text(s: &str) -> String {
    if !s.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => {
                if chars.peek() == Some(&'\n') {
                    chars.next();
                }
                out.push('\n');
            }
            '\n' | '\t' => out.push(c),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// [`clean_text`] over every string (and key) of a JSON value.
fn clean_json(v: Value) -> Value {
    match v {
        Value::String(s) => Value::String(clean_text(&s)),
        Value::Array(a) => Value::Array(a.into_iter().map(clean_json).collect()),
        Value::Object(m) => Value::Object(
            m.into_iter()
                .map(|(k, v)| (clean_text(&k), clean_json(v)))
                .collect(),
        ),
        other => other,
    }
}

/// A 4xx/5xx answer with a JSON body `{"error": "..."}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    reason: String,
    retry_after: Option<Duration>,
}

impl ApiError {
    /// An error with `status` and a reason for the client.
    pub fn new(status: StatusCode, reason: impl Into<String>) -> Self {
        Self {
            status,
            reason: reason.into(),
            retry_after: None,
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The reason given to the client.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// Maps a store error by what happened: a store that cannot be
    /// reached (or a record that kept changing) is a 503 the client may
    /// retry after a second; input the store refused is a 400; corrupt data
    /// or another backend failure is a 500 whose details go to the log.
    pub(crate) fn store(e: StoreError) -> Self {
        match &e {
            StoreError::Unavailable { .. } | StoreError::Contended { .. } => {
                // One line per ten seconds, with how many it stands for:
                // a store outage refuses every request, and the monitor
                // announces the fault itself.
                if let Some(more) = STORE_REFUSALS.tick() {
                    tracing::warn!(error = %e, refused_since_last_line = more, "store call failed; the client may retry (this line at most every 10 s)");
                }
                Self {
                    retry_after: Some(Duration::from_secs(1)),
                    ..Self::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        format!("store unavailable, retry shortly: {e}"),
                    )
                }
            }
            StoreError::InvalidInput { .. } => {
                tracing::info!(error = %e, "the store refused the request");
                Self::new(
                    StatusCode::BAD_REQUEST,
                    format!("refused by the store: {e}"),
                )
            }
            _ => {
                tracing::error!(error = %e, "store failure");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the store failed on this request; the server log has the details",
                )
            }
        }
    }
}

/// Counts requests refused because the store is unavailable, and says
/// when a log line is due: the first, then at most one per
/// [`Throttle::EVERY`] seconds.
struct Throttle {
    last_secs: std::sync::atomic::AtomicI64,
    since_line: std::sync::atomic::AtomicU64,
}

impl Throttle {
    const EVERY: i64 = 10;

    /// `Some(count)` when a line is due, with how many calls came since
    /// the last one (this one included).
    fn tick(&self) -> Option<u64> {
        self.since_line.fetch_add(1, Ordering::Relaxed);
        let now = chrono::Utc::now().timestamp();
        let last = self.last_secs.load(Ordering::Relaxed);
        if now - last < Self::EVERY
            || self
                .last_secs
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return None;
        }
        Some(self.since_line.swap(0, Ordering::Relaxed))
    }
}

static STORE_REFUSALS: Throttle = Throttle {
    last_secs: std::sync::atomic::AtomicI64::new(i64::MIN / 2),
    since_line: std::sync::atomic::AtomicU64::new(0),
};

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (self.status, Json(json!({ "error": self.reason }))).into_response();
        if let Some(d) = self.retry_after {
            let secs = d.as_secs_f64().ceil().max(1.0) as u64;
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        r
    }
}

fn limiter(rate: Option<Rate>) -> Option<DefaultDirectRateLimiter> {
    let rate = rate?;
    let per_cell = rate.period / rate.count.get();
    let quota = Quota::with_period(per_cell.max(Duration::from_nanos(1)))?.allow_burst(rate.count);
    Some(RateLimiter::direct(quota))
}

struct Shared {
    monitor: Arc<DynMonitor>,
    keys: KeyRing,
    rejections: Arc<Rejections>,
    wake: Arc<Notify>,
    limits: Limits,
    per_key: Vec<Option<DefaultDirectRateLimiter>>,
    global: Option<DefaultDirectRateLimiter>,
    unauthenticated: Option<DefaultDirectRateLimiter>,
    log: Arc<RejectionLog>,
    metrics: Option<PrometheusHandle>,
    /// Hosts already warned about an interval their timeout cannot carry.
    interval_warned: std::sync::Mutex<std::collections::HashSet<HostId>>,
    /// Per key: the hosts its heartbeats may still create (see
    /// [`Limits::new_hosts_per_key`]).
    new_hosts: std::sync::Mutex<Vec<Option<Bucket>>>,
    /// The number of hosts, kept only when [`Limits::max_hosts`] is set;
    /// held while a heartbeat creates a host, so the cap is exact within
    /// this process.
    host_count: tokio::sync::Mutex<HostCount>,
    /// When each cap last told the operator it was hit.
    cap_noticed: std::sync::Mutex<std::collections::HashMap<String, Timestamp>>,
    /// The last sweep and the watcher's own heartbeat.
    self_watch: Arc<SelfWatch>,
    /// Per-host metrics and maintenance settings.
    ops: crate::ops::OpsSettings,
    /// The dashboard's settings and sessions.
    dashboard: Arc<crate::dashboard::Dashboard>,
    /// Configured groups: which hosts they take (configuration wins over
    /// the group a host names itself).
    groups: crate::groups::GroupSettings,
}

/// A token bucket on the watcher's clock (the manual one in tests).
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Timestamp,
}

/// Takes one token from `bucket` (full at first) refilled at `rate`.
fn take_token(bucket: &mut Option<Bucket>, rate: Rate, now: Timestamp) -> bool {
    let size = f64::from(rate.count.get());
    let b = bucket.get_or_insert(Bucket {
        tokens: size,
        at: now,
    });
    let refill = since(now, b.at).as_secs_f64() * size / rate.period.as_secs_f64();
    b.tokens = (b.tokens + refill).min(size);
    b.at = b.at.max(now);
    if b.tokens >= 1.0 {
        b.tokens -= 1.0;
        true
    } else {
        false
    }
}

/// The number of hosts in the store, as this process last counted it and
/// kept since (approximate when other processes share the store).
#[derive(Debug, Default)]
struct HostCount {
    hosts: Option<u64>,
    counted_at: Option<Timestamp>,
}

/// How long a host count is trusted before it is counted again (other
/// processes may create and remove hosts in a shared store).
const RECOUNT_AFTER: Duration = Duration::from_secs(600);

/// How often one cap tells the operator it is being hit, at most.
const CAP_NOTICE_INTERVAL: Duration = Duration::from_secs(3600);

/// Host records read per store call when walking the host list.
const LIST_PAGE: usize = 1000;

impl HostCount {
    /// The count, walking the host list (`Store::list`, page by page) when
    /// there is none yet or it is older than [`RECOUNT_AFTER`].
    async fn current(&mut self, store: &dyn Store, now: Timestamp) -> Result<u64, StoreError> {
        if let (Some(n), Some(at)) = (self.hosts, self.counted_at)
            && now < add(at, RECOUNT_AFTER)
        {
            return Ok(n);
        }
        let mut n = 0u64;
        let mut pages = HostPages::new(store, None, LIST_PAGE);
        while let Some(page) = pages.next().await? {
            n += page.len() as u64;
        }
        self.hosts = Some(n);
        self.counted_at = Some(now);
        Ok(n)
    }

    fn changed(&mut self, added: u64, removed: u64) {
        if let Some(n) = &mut self.hosts {
            *n = (*n + added).saturating_sub(removed);
        }
    }
}

/// The most hosts remembered as warned about their interval; past this
/// the set is cleared (a warning may then repeat, never grow memory).
const MAX_INTERVAL_WARNED: usize = 10_000;

/// The room a timeout must leave beyond two intervals: the retries of a
/// lost beat. Half an interval, at most a minute.
fn interval_margin(interval: Duration) -> Duration {
    (interval / 2).min(Duration::from_secs(60))
}

/// Everything the handlers and the runner share; cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("store", &self.0.monitor.store().to_string())
            .field("keys", &self.0.keys)
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// Builds the monitor over `store` and `channels` with `config`'s
    /// policies, keys and limits; `clock` is the system clock in production
    /// and a manual one in tests. Each host's notice goes to the channels
    /// `config.routes` pick for it.
    ///
    /// Fails if two channels share a name.
    pub fn new(
        store: Arc<dyn Store>,
        channels: Vec<Arc<dyn Notifier>>,
        clock: Arc<dyn Clock>,
        config: &Config,
    ) -> Result<Self, ServerError> {
        Self::build(store, channels, clock, config, true)
    }

    /// [`new`](Self::new) for a deployment whose ingest is always on and
    /// whose sweep runs on a schedule (a Lambda function): a pause between
    /// scheduled sweeps is not a pause in listening, so it gives hosts no
    /// downtime grace (see `MonitorOptions::ingest_in_process`).
    pub fn new_scheduled(
        store: Arc<dyn Store>,
        channels: Vec<Arc<dyn Notifier>>,
        clock: Arc<dyn Clock>,
        config: &Config,
    ) -> Result<Self, ServerError> {
        Self::build(store, channels, clock, config, false)
    }

    fn build(
        store: Arc<dyn Store>,
        channels: Vec<Arc<dyn Notifier>>,
        clock: Arc<dyn Clock>,
        config: &Config,
        ingest_in_process: bool,
    ) -> Result<Self, ServerError> {
        let self_watch = Arc::new(SelfWatch::new(
            config.self_ping.as_ref(),
            config.monitor.store_fault_after,
            Arc::clone(&clock),
        ));
        let rejections = Arc::new(Rejections::new(
            Arc::clone(&clock),
            config.monitor.rejection_window,
            DEFAULT_MAX_HOSTS,
        ));
        let log = Arc::new(RejectionLog::new(
            Arc::clone(&clock),
            LOG_WINDOW,
            LOGGED_PER_REASON,
        ));
        let opts = MonitorOptions {
            lease: config.monitor.lease,
            retry: config.monitor.retry,
            auto_register: config.auto_register,
            ingest_in_process,
            health: HealthOptions {
                store_fault_after: config.monitor.store_fault_after,
                reminder_interval: config.policies.default.reminder_interval,
            },
            ..MonitorOptions::default()
        };
        let channels = crate::host_metrics::counted(channels);
        let monitor = Monitor::new(store, channels, clock, config.policies.clone(), opts)?
            .with_routes(config.routes.clone())
            .with_blind_probe(rejections.probe())
            .with_grouping(config.groups.grouping());
        let monitor = match config.groups.blind_wait() {
            Some(wait) => monitor.with_blind_detection(wait),
            None => monitor,
        };
        let keys = KeyRing::new(config.keys.clone());
        Ok(Self(Arc::new(Shared {
            monitor: Arc::new(monitor),
            per_key: keys
                .keys()
                .iter()
                .map(|_| limiter(config.limits.per_key))
                .collect(),
            global: limiter(config.limits.global),
            unauthenticated: limiter(config.limits.unauthenticated),
            log,
            keys,
            rejections,
            wake: Arc::new(Notify::new()),
            limits: config.limits.clone(),
            metrics: None,
            interval_warned: std::sync::Mutex::default(),
            new_hosts: std::sync::Mutex::new(vec![None; config.keys.len()]),
            host_count: tokio::sync::Mutex::default(),
            cap_noticed: std::sync::Mutex::default(),
            self_watch,
            ops: config.ops.clone(),
            dashboard: crate::dashboard::Dashboard::new(&config.dashboard),
            groups: config.groups.clone(),
        })))
    }

    /// Serves `GET /metrics` from `handle` (a Prometheus recorder the
    /// process installed).
    pub fn with_metrics(self, handle: PrometheusHandle) -> Self {
        match Arc::try_unwrap(self.0) {
            Ok(mut s) => {
                s.metrics = Some(handle);
                Self(Arc::new(s))
            }
            Err(shared) => Self(shared),
        }
    }

    /// The monitor.
    pub fn monitor(&self) -> &Arc<DynMonitor> {
        &self.0.monitor
    }

    /// Rejected heartbeats, per host.
    pub fn rejections(&self) -> &Arc<Rejections> {
        &self.0.rejections
    }

    /// Fired when a heartbeat needs a decision (a possible recovery); the
    /// runner waits on it.
    pub fn wake_signal(&self) -> &Arc<Notify> {
        &self.0.wake
    }

    /// The last sweep and the watcher's own heartbeat (`self_ping`).
    pub fn self_watch(&self) -> &Arc<SelfWatch> {
        &self.0.self_watch
    }

    /// One sweep of the monitor, noted (`last_sweep_at`) and followed by
    /// the watcher's own heartbeat when one is due, which runs in a task of
    /// its own: the sweep never waits for it (see [`SelfWatch::settle`]).
    pub async fn sweep(&self) -> Result<SweepReport, StoreError> {
        let r = self.0.monitor.sweep().await;
        self.0.self_watch.after_sweep(&self.0.monitor, r.is_ok());
        r
    }

    pub(crate) fn now(&self) -> Timestamp {
        self.0.monitor.clock().now()
    }

    /// The dashboard's settings and sessions.
    pub(crate) fn dashboard(&self) -> &crate::dashboard::Dashboard {
        &self.0.dashboard
    }

    /// The request limits this state was built with.
    /// The group settings this state was built with.
    pub fn groups(&self) -> &crate::groups::GroupSettings {
        &self.0.groups
    }

    pub(crate) fn limits(&self) -> &Limits {
        &self.0.limits
    }

    /// The bounded log of rejected requests.
    pub(crate) fn rejection_log(&self) -> &Arc<RejectionLog> {
        &self.0.log
    }

    /// A rejected heartbeat that presented a valid key (or whose key was
    /// not looked at yet): counted against `host` for its alarm, or apart
    /// when `host` is `None`.
    fn reject(&self, host: Option<&HostId>, reason: &'static str, e: ApiError) -> ApiError {
        self.0.rejections.record(host, reason);
        if self.0.log.note(reason) {
            let (method, path) = admit::request_line();
            tracing::info!(%method, %path, host = host.map(HostId::as_str), status = e.status.as_u16(), reason = %e.reason, "heartbeat rejected");
        }
        e
    }

    /// A request without a valid key. It is charged to the unauthenticated
    /// budget only (past it: 429 and nothing else), counted apart from
    /// every host, and logged within the rejection log's bounds.
    fn reject_unauthenticated(&self, reason: &'static str, e: ApiError, ingest: bool) -> ApiError {
        if let Some(l) = &self.0.unauthenticated
            && let Err(not_until) = l.check()
        {
            let reason = "unauthenticated rate limit";
            let mut e = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too many requests without a valid API key",
            );
            e.retry_after = Some(wait_time(&not_until));
            if self.0.log.note(reason) {
                let (method, path) = admit::request_line();
                tracing::info!(
                    %method,
                    %path,
                    status = e.status.as_u16(),
                    reason,
                    "request without a valid key rejected"
                );
            }
            return e;
        }
        if ingest {
            self.0.rejections.record(None, reason);
        }
        if self.0.log.note(reason) {
            let (method, path) = admit::request_line();
            tracing::info!(%method, %path, status = e.status.as_u16(), reason = %e.reason, "request without a valid key rejected");
        }
        e
    }

    /// Finds the key presented (`presented` is what [`bearer`] read). No
    /// rate limit is charged here: see [`charge`](Self::charge).
    fn authenticate(
        &self,
        presented: Result<Option<&str>, ApiError>,
        ingest: bool,
    ) -> Result<(usize, &ApiKey), ApiError> {
        let presented = match presented {
            Ok(p) => p,
            Err(e) => {
                return Err(self.reject_unauthenticated(
                    "malformed Authorization header",
                    e,
                    ingest,
                ));
            }
        };
        let Some(presented) = presented else {
            return Err(self.reject_unauthenticated(
                "missing API key",
                ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "missing API key: send the header 'Authorization: Bearer <key>'",
                ),
                ingest,
            ));
        };
        let Some(i) = self.0.keys.find(presented) else {
            return Err(self.reject_unauthenticated(
                "invalid API key",
                ApiError::new(StatusCode::UNAUTHORIZED, "invalid API key"),
                ingest,
            ));
        };
        Ok((i, self.0.keys.get(i).expect("index from find")))
    }

    /// Charges an authenticated request to the global budget (ingest only)
    /// and to its key's. A heartbeat turned away here is counted against
    /// `host` when the key may speak for it, and apart otherwise.
    fn charge(
        &self,
        index: usize,
        key: &ApiKey,
        host: Option<&HostId>,
        ingest: bool,
    ) -> Result<(), ApiError> {
        let host = host.filter(|h| key.allows(h));
        let reject = |reason: &'static str, e: ApiError| {
            if ingest {
                self.reject(host, reason, e)
            } else {
                if self.0.log.note(reason) {
                    let (method, path) = admit::request_line();
                    tracing::info!(%method, %path, key = %key.name, status = e.status.as_u16(), reason, "request rejected");
                }
                e
            }
        };
        if ingest
            && let Some(l) = &self.0.global
            && let Err(not_until) = l.check()
        {
            let mut e = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "the watcher's global request rate limit is exceeded",
            );
            e.retry_after = Some(wait_time(&not_until));
            return Err(reject("global rate limit", e));
        }
        if let Some(Some(l)) = self.0.per_key.get(index)
            && let Err(not_until) = l.check()
        {
            let mut e = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!("rate limit of key '{}' exceeded", key.name),
            );
            e.retry_after = Some(wait_time(&not_until));
            return Err(reject("rate limit of its key", e));
        }
        Ok(())
    }

    fn check_host(&self, key: &ApiKey, host: &HostId) -> Result<(), ApiError> {
        if key.allows(host) {
            return Ok(());
        }
        Err(self.reject(
            Some(host),
            "key not allowed for host",
            not_for_host(key, host),
        ))
    }

    /// Records a heartbeat sent with key number `index`. A known host is
    /// one store write; an unknown one is created only within the key's
    /// `register` option and the caps on new hosts.
    async fn record(
        &self,
        index: usize,
        key: &ApiKey,
        hb: Heartbeat,
    ) -> Result<Response, ApiError> {
        let status = answer_word(self.ingest(index, key, &hb).await?);
        Ok(Json(json!({ "host": hb.host, "status": status, "at": hb.at })).into_response())
    }

    /// Records heartbeat `hb` sent with key number `index`, creating its
    /// host within the key's rights and the caps; never `Unknown` (a 404).
    async fn ingest(
        &self,
        index: usize,
        key: &ApiKey,
        hb: &Heartbeat,
    ) -> Result<HeartbeatOutcome, ApiError> {
        let mut outcome = self
            .0
            .monitor
            .heartbeat_with(hb, false)
            .await
            .map_err(ApiError::store)?;
        if outcome == HeartbeatOutcome::Unknown && self.0.monitor.options().auto_register {
            outcome = self.create_by_heartbeat(index, key, hb).await?;
        }
        if outcome.needs_decision() {
            self.0.wake.notify_one();
        }
        if outcome == HeartbeatOutcome::Unknown {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                format!(
                    "unknown host '{}': auto-registration is off; register it first (PUT /v1/hosts/{})",
                    hb.host, hb.host
                ),
            ));
        }
        let status = answer_word(outcome);
        metrics::counter!("iamalive_heartbeats_total", "result" => status).increment(1);
        tracing::debug!(host = %hb.host, status, "heartbeat");
        Ok(outcome)
    }

    /// Creates the unknown host of `hb` if `key` may register hosts and no
    /// cap is hit; otherwise refuses it, writing nothing.
    async fn create_by_heartbeat(
        &self,
        index: usize,
        key: &ApiKey,
        hb: &Heartbeat,
    ) -> Result<HeartbeatOutcome, ApiError> {
        let host = &hb.host;
        if !key.register {
            metrics::counter!("iamalive_registrations_refused_total", "cap" => "register=false")
                .increment(1);
            return Err(self.reject(
                None,
                "key may not register hosts",
                ApiError::new(
                    StatusCode::FORBIDDEN,
                    format!(
                        "key '{}' may only send heartbeats for hosts the watcher knows (register=false), \
                         and '{host}' is unknown; an admin registers it with PUT /v1/hosts/{host}",
                        key.name
                    ),
                ),
            ));
        }
        let limits = &self.0.limits;
        let now = self.now();
        // Held until the host is written, so the total cap is exact here.
        let mut count = match limits.max_hosts {
            Some(max) => {
                let mut count = self.0.host_count.lock().await;
                let n = count
                    .current(self.0.monitor.store().as_ref(), now)
                    .await
                    .map_err(ApiError::store)?;
                if n >= max {
                    let reason = format!(
                        "the watcher keeps at most {max} hosts (limits.max_hosts, IAMALIVE_MAX_HOSTS) \
                         and has {n}; '{host}' was not created"
                    );
                    return Err(self.cap_hit(
                        "max_hosts",
                        "host cap reached",
                        None,
                        host,
                        reason,
                        None,
                    ));
                }
                Some(count)
            }
            None => None,
        };
        if let Some(rate) = limits.new_hosts_per_key {
            let allowed = {
                let mut buckets = self.0.new_hosts.lock().unwrap_or_else(|e| e.into_inner());
                buckets
                    .get_mut(index)
                    .is_none_or(|b| take_token(b, rate, now))
            };
            if !allowed {
                let reason = format!(
                    "key '{}' may create at most {} new hosts per {} \
                     (limits.new_hosts_per_key, IAMALIVE_MAX_NEW_HOSTS_PER_KEY); '{host}' was not created",
                    key.name,
                    rate.count,
                    humantime::format_duration(rate.period)
                );
                return Err(self.cap_hit(
                    "new_hosts_per_key",
                    "new hosts per key cap reached",
                    Some(key),
                    host,
                    reason,
                    Some(rate.period / rate.count.get()),
                ));
            }
        }
        let outcome = self
            .0
            .monitor
            .heartbeat_with(hb, true)
            .await
            .map_err(ApiError::store)?;
        if let Some(c) = &mut count
            && outcome == HeartbeatOutcome::Created
        {
            c.changed(1, 0);
        }
        Ok(outcome)
    }

    /// A cap on new hosts refused `host`: 429 with `reason`, counted, and
    /// the operator told through the channels, once per cap (and key) per
    /// [`CAP_NOTICE_INTERVAL`].
    fn cap_hit(
        &self,
        cap: &'static str,
        log_reason: &'static str,
        key: Option<&ApiKey>,
        host: &HostId,
        reason: String,
        retry_after: Option<Duration>,
    ) -> ApiError {
        metrics::counter!("iamalive_registrations_refused_total", "cap" => cap).increment(1);
        let now = self.now();
        let id = match key {
            Some(k) => format!("{cap}/{}", k.name),
            None => cap.to_owned(),
        };
        let due = {
            let mut noticed = self.0.cap_noticed.lock().unwrap_or_else(|e| e.into_inner());
            let due = noticed
                .get(&id)
                .is_none_or(|at| now >= add(*at, CAP_NOTICE_INTERVAL));
            if due {
                noticed.insert(id.clone(), now);
            }
            due
        };
        if due {
            tracing::warn!(cap, key = key.map(|k| k.name.as_str()), %host, "{reason}");
            let text = format!(
                "Heartbeats for new hosts are being refused: {reason}. Hosts the watcher knows are \
                 still watched. If a key leaked, replace it; remove hosts it created with \
                 DELETE /v1/hosts?pattern=<glob> (dry_run=true shows them first). \
                 This notice repeats at most once an hour while the cap is hit."
            );
            let outage = format!("watcher/cap/{id}@{}", now.timestamp_millis());
            self.0.monitor.announce(Announcement {
                notice: watcher_notice(NoticeKind::Degraded, &outage, 1, now, now, text),
                except: None,
            });
            self.0.wake.notify_one();
        }
        let mut e = ApiError::new(StatusCode::TOO_MANY_REQUESTS, reason);
        e.retry_after = retry_after;
        self.reject(None, log_reason, e)
    }

    /// An admin key for the management API.
    fn admin(&self, headers: &HeaderMap) -> Result<&ApiKey, ApiError> {
        let (i, _) = self.authenticate(bearer(headers), false)?;
        self.admin_key(i)
    }

    /// Checks a key presented by other means than a header (the
    /// dashboard's login form) as the management API checks its bearer
    /// key: the unauthenticated budget when it is wrong, its own budget and
    /// the admin role when right. The key's index, for [`admin_key`](Self::admin_key).
    pub(crate) fn login(&self, presented: &str) -> Result<usize, ApiError> {
        let (i, _) = self.authenticate(Ok(Some(presented.trim())), false)?;
        self.admin_key(i)?;
        Ok(i)
    }

    /// The management API's check of key number `index` (authenticated
    /// before): charged to its rate limit, and it must be an admin key.
    pub(crate) fn admin_key(&self, index: usize) -> Result<&ApiKey, ApiError> {
        let key = self.0.keys.get(index).ok_or_else(|| {
            ApiError::new(StatusCode::UNAUTHORIZED, "this key is no longer accepted")
        })?;
        self.charge(index, key, None, false)?;
        if key.role != Role::Admin {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!(
                    "key '{}' is heartbeat-only; the management API needs an admin key",
                    key.name
                ),
            ));
        }
        Ok(key)
    }
}

fn wait_time(not_until: &governor::NotUntil<governor::clock::QuantaInstant>) -> Duration {
    not_until.wait_time_from(governor::clock::Clock::now(
        &governor::clock::DefaultClock::default(),
    ))
}

fn bearer(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    let Some(v) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let v = v
        .to_str()
        .map_err(|_| ApiError::new(StatusCode::UNAUTHORIZED, "Authorization header is not text"))?;
    match v.split_once(' ') {
        Some((scheme, key)) if scheme.eq_ignore_ascii_case("bearer") && !key.trim().is_empty() => {
            Ok(Some(key.trim()))
        }
        _ => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "Authorization header must be 'Bearer <key>'",
        )),
    }
}

fn body_error(st: &AppState, e: BytesRejection) -> ApiError {
    let status = e.status();
    let reason = if status == StatusCode::PAYLOAD_TOO_LARGE {
        format!(
            "request body is larger than {} bytes",
            st.0.limits.body_bytes
        )
    } else {
        format!("could not read the request body: {e}")
    };
    st.reject(
        None,
        "unreadable or oversized body",
        ApiError::new(status, reason),
    )
}

fn parse_host(s: &str) -> Result<HostId, ApiError> {
    HostId::new(s)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("invalid host id: {e}")))
}

/// A group name a host gives itself: `None` for none, a 400 naming the
/// rule when it is not a valid name.
fn parse_group(s: Option<&str>) -> Result<Option<GroupName>, ApiError> {
    s.map(|g| {
        GroupName::new(g)
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("invalid group name: {e}")))
    })
    .transpose()
}

fn check_message(m: &Option<String>) -> Result<(), ApiError> {
    match m {
        Some(m) if m.len() > MAX_MESSAGE_LEN => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!(
                "message is {} bytes long; at most {MAX_MESSAGE_LEN} are allowed",
                m.len()
            ),
        )),
        _ => Ok(()),
    }
}

/// A recorded heartbeat's `status` word in the API's answer and the
/// `iamalive_heartbeats_total` label: `created` or `ok`.
fn answer_word(o: HeartbeatOutcome) -> &'static str {
    match o {
        HeartbeatOutcome::Created => "created",
        HeartbeatOutcome::Updated { .. } | HeartbeatOutcome::Unknown => "ok",
    }
}

/// The heartbeat body. Fields beyond these are ignored, so newer agents
/// can talk to older watchers.
#[derive(Debug, Deserialize)]
#[serde(expecting = "a JSON object like {\"host\": \"build-01\"}")]
struct HeartbeatBody {
    host: String,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    report: Option<Value>,
    /// The agent's heartbeat interval: seconds as a number, or a duration
    /// such as `"5m"`; for the timeout check, and stored with the host
    /// (its next beat is expected by then: `missed_beat`).
    #[serde(default)]
    interval: Option<Value>,
    /// The group (site) the host says it belongs to; a `[[groups]]` entry
    /// matching the host wins over it.
    #[serde(default)]
    group: Option<String>,
    /// `success` (the default), `fail`, `start` or `log`.
    #[serde(default)]
    status: Option<String>,
    /// Pairs a start with its end when runs overlap.
    #[serde(default)]
    rid: Option<String>,
}

impl AppState {
    /// Warns once per host (per process) when its declared heartbeat
    /// interval leaves its timeout no room for one lost beat and its
    /// retries: timeout ≥ 2 × interval + margin.
    fn check_interval(&self, host: &HostId, interval: Duration) {
        let timeout = self.0.monitor.policies().timeout_for(host);
        let need = interval * 2 + interval_margin(interval);
        if timeout >= need {
            return;
        }
        let mut warned = self
            .0
            .interval_warned
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if warned.len() >= MAX_INTERVAL_WARNED {
            warned.clear();
        }
        if warned.insert(host.clone()) {
            tracing::warn!(
                %host,
                interval = %humantime::format_duration(interval),
                timeout = %humantime::format_duration(timeout),
                needed = %humantime::format_duration(need),
                "this host's heartbeat interval is too long for its timeout: one lost beat would raise a false alarm; \
                 set the timeout to at least 2 x interval + margin, or shorten the agent's interval"
            );
            metrics::counter!("iamalive_interval_warnings_total").increment(1);
        }
    }
}

fn parse_interval(v: Option<Value>) -> Result<Option<Duration>, ApiError> {
    const YEAR: f64 = 366.0 * 86_400.0;
    let bad = |what: &dyn std::fmt::Display| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!(
                "interval must be seconds (a number) or a duration like \"5m\", more than zero and at most a year; not {what}"
            ),
        )
    };
    // Refusals echo the value as it was sent ("400d", not 34560000).
    let sent = match &v {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => format!("{s:?}"),
        Some(other) => other.to_string(),
    };
    let secs = match v {
        Some(Value::Number(n)) => n.as_f64().ok_or_else(|| bad(&sent))?,
        Some(Value::String(s)) => humantime::parse_duration(&s)
            .map_err(|_| bad(&sent))?
            .as_secs_f64(),
        _ => return Err(bad(&sent)),
    };
    if secs.is_finite() && secs > 0.0 && secs <= YEAR {
        Ok(Some(Duration::from_secs_f64(secs)))
    } else {
        Err(bad(&sent))
    }
}

async fn heartbeat(
    State(st): State<AppState>,
    headers: HeaderMap,
    req: Request,
) -> Result<Response, ApiError> {
    let admitted = st
        .admit(bearer(&headers), req, |body| {
            let parsed = serde_json::from_slice::<HeartbeatBody>(body);
            let host = parsed.as_ref().ok().and_then(|b| HostId::new(&b.host).ok());
            (host, parsed)
        })
        .await?;
    let (index, key) = (admitted.index, admitted.key);
    let body = admitted.read.map_err(|e| {
        st.reject(
            None,
            "invalid JSON",
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("body must be JSON like {{\"host\": \"build-01\"}}: {e}"),
            ),
        )
    })?;
    let host = parse_host(&body.host).map_err(|e| st.reject(None, "invalid host id", e))?;
    st.check_host(key, &host)?;
    check_message(&body.message).map_err(|e| st.reject(Some(&host), "message too long", e))?;
    let interval =
        parse_interval(body.interval).map_err(|e| st.reject(Some(&host), "bad interval", e))?;
    let report = match body.report {
        None | Some(Value::Null) => None,
        Some(v @ Value::Object(_)) => {
            Some(check_report(v).map_err(|e| st.reject(Some(&host), "report too large", e))?)
        }
        Some(_) => {
            return Err(st.reject(
                Some(&host),
                "report is not an object",
                ApiError::new(StatusCode::BAD_REQUEST, "report must be a JSON object"),
            ));
        }
    };
    let claimed = parse_group(body.group.as_deref())
        .map_err(|e| st.reject(Some(&host), "invalid group name", e))?;
    let signal = signals::json_status(body.status.as_deref())
        .map_err(|e| st.reject(Some(&host), "bad status", e))?;
    let rid = signals::check_rid(body.rid).map_err(|e| st.reject(Some(&host), "bad rid", e))?;
    if let Some(i) = interval {
        st.check_interval(&host, i);
    }
    let group = st.0.groups.group_of(&host, claimed);
    let hb = Heartbeat {
        at: st.now(),
        host,
        message: body.message.as_deref().map(clean_text),
        report,
        group,
        interval,
    };
    // A plain heartbeat is one store write; a job signal reads the record.
    if body.status.is_none() && rid.is_none() {
        return st.record(index, key, hb).await;
    }
    st.signal(index, key, hb, signal, rid).await
}

/// Bounds an agent report (its JSON at most [`MAX_REPORT_BYTES`], at most
/// [`MAX_REPORT_FAILURES`] `failures`) and cleans its strings; the text to
/// store.
fn check_report(v: Value) -> Result<String, ApiError> {
    // The fields the all-clear reads must mean what it says of them.
    if let Some(since) = v.get("since").filter(|s| !s.is_null()) {
        let ok = since
            .as_str()
            .is_some_and(|s| chrono::DateTime::parse_from_rfc3339(s).is_ok());
        if !ok {
            return Err(bad(format!(
                "report.since must be an RFC 3339 time (\"2026-11-26T03:12:04Z\"), not {since}"
            )));
        }
    }
    if let Some(n) = v.get("failed_attempts").filter(|n| !n.is_null())
        && n.as_u64().is_none()
    {
        return Err(bad(format!(
            "report.failed_attempts must be a whole number of 0 or more, not {n}"
        )));
    }
    if let Some(n) = v
        .get("failures")
        .and_then(Value::as_array)
        .map(Vec::len)
        .filter(|n| *n > MAX_REPORT_FAILURES)
    {
        return Err(bad(format!(
            "report has {n} failures entries; at most {MAX_REPORT_FAILURES} are allowed"
        )));
    }
    let text = clean_json(v).to_string();
    if text.len() > MAX_REPORT_BYTES {
        return Err(bad(format!(
            "report is {} bytes of JSON; at most {MAX_REPORT_BYTES} are allowed",
            text.len()
        )));
    }
    Ok(text)
}

async fn ping(
    st: AppState,
    method: Method,
    key: String,
    host: String,
    action: Option<String>,
    req: Request,
) -> Result<Response, ApiError> {
    let query = Query::<signals::PingQuery>::try_from_uri(req.uri())
        .map_err(|e| bad(format!("invalid query string: {e}")));
    let admitted = st
        .admit(Ok(Some(&key)), req, |_| (HostId::new(&host).ok(), ()))
        .await?;
    let (index, key, body) = (admitted.index, admitted.key, admitted.body);
    let host = parse_host(&host).map_err(|e| st.reject(None, "invalid host id", e))?;
    st.check_host(key, &host)?;
    let query = query.map_err(|e| st.reject(Some(&host), "bad query", e))?.0;
    let rid = signals::check_rid(query.rid).map_err(|e| st.reject(Some(&host), "bad rid", e))?;
    let claimed = parse_group(query.group.as_deref())
        .map_err(|e| st.reject(Some(&host), "invalid group name", e))?;
    let group = st.0.groups.group_of(&host, claimed);
    let (signal, status) = signals::ping_action(action.as_deref())?;
    let text = clean_text(String::from_utf8_lossy(&body).trim());
    let text = text.trim();
    let message = match (status, text.is_empty()) {
        (None, true) => None,
        (None, false) => Some(text.to_owned()),
        (Some(n), true) => Some(format!("exit status {n}")),
        (Some(n), false) => Some(format!("exit status {n}: {text}")),
    };
    let hb = Heartbeat {
        at: st.now(),
        host,
        message: message.map(signals::bounded),
        report: None,
        group,
        interval: None,
    };
    st.signal(index, key, hb, signal, rid).await?;
    if method == Method::HEAD {
        return Ok(StatusCode::OK.into_response());
    }
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "OK",
    )
        .into_response())
}

fn unknown_action(action: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("unknown ping action '{action}'; use start, fail, log or an exit status 0-255"),
    )
}

async fn ping_plain(
    State(st): State<AppState>,
    method: Method,
    Path((key, host)): Path<(String, String)>,
    req: Request,
) -> Result<Response, ApiError> {
    ping(st, method, key, host, None, req).await
}

async fn ping_action(
    State(st): State<AppState>,
    method: Method,
    Path((key, host, action)): Path<(String, String, String)>,
    req: Request,
) -> Result<Response, ApiError> {
    ping(st, method, key, host, Some(action), req).await
}

/// A host as the API shows it, with the pause or silence that holds its
/// notices back and when that ends.
fn view(rec: &HostRecord, now: Timestamp, silences: &[Silence], policies: &PolicySet) -> Value {
    let silent = since(now, rec.last_seen);
    let policy = policies.for_record(rec);
    let flap = policy.flapping;
    let interval = rec.interval.get();
    let paused = rec.status == Status::Paused;
    let silence = covering_silence(silences, &rec.host, now);
    json!({
        "host": rec.host,
        "group": rec.group,
        "status": rec.status,
        "last_seen": rec.last_seen,
        "missing_since": rec.missing_since,
        "silent_for_s": (silent.as_millis() as f64) / 1000.0,
        // Its heartbeat interval in seconds, sent by its agent or learned
        // from the gaps between its beats; when its next beat is due at
        // the latest; whether that is past while its timeout is not.
        "interval": interval.map(|(d, _)| (d.as_millis() as f64) / 1000.0),
        "interval_source": interval.map(|(_, from)| from.as_str()),
        "expected_by": iamalive_core::beat::expected_by(rec),
        "missed_beat": iamalive_core::beat::missed_beat(rec, now, &policy),
        "alarm_count": rec.alarm_count,
        "last_alarm": rec.last_alarm,
        "due_at": rec.due_at,
        "message": rec.message,
        "job": rec.job,
        // A failure no later success answered. After a success the failure
        // stays in `job` until the (woken) sweep sends the all-clear that
        // summarises it; this says it is answered meanwhile.
        "failing": iamalive_core::job::failing(rec),
        // Flapping: in an episode (one notice said so; no per-flip notice
        // until it is stable), and its outages within the window.
        "flapping": iamalive_core::flap::flapping(rec),
        "flips": iamalive_core::flap::recent_flips(rec, now, &flap),
        "flap_window_s": flap.window.as_secs(),
        "flapping_since": rec.flap.as_deref().and_then(|f| f.episode.as_ref()).map(|e| e.since),
        "stable_at": iamalive_core::flap::stable_at(rec, &flap),
        "report": rec.report.as_deref().map(|r| serde_json::from_str::<Value>(r).unwrap_or_else(|_| Value::String(r.to_owned()))),
        "owed_notice": rec.outbox.as_ref().map(|o| json!({
            "id": o.notice.id,
            "kind": o.notice.kind,
            "delivered_to": o.delivered,
            "refused_by": o.failed,
            "refusals": o.refusals,
            "attempts": o.attempts,
            "next_attempt": o.next_attempt,
        })),
        "paused_until": if paused { rec.due_at } else { None },
        "paused_indefinitely": paused && rec.due_at.is_none(),
        "silenced_until": silence.map(|(_, end)| end),
        "silence": silence.map(|(s, end)| json!({
            "id": s.id,
            "reason": s.reason,
            "ends_at": end,
        })),
    })
}

/// The silence covering `host` at `now` whose window ends last (the
/// monitor holds alarms back to that end), with that end.
pub(crate) fn covering_silence<'a>(
    silences: &'a [Silence],
    host: &HostId,
    now: Timestamp,
) -> Option<(&'a Silence, Timestamp)> {
    silences
        .iter()
        .filter_map(|s| s.end_for(host, now).map(|end| (s, end)))
        .max_by_key(|&(_, end)| end)
}

/// The stored silences, for [`view`].
async fn silences(st: &AppState) -> Result<Vec<Silence>, ApiError> {
    st.0.monitor
        .store()
        .silences()
        .await
        .map_err(ApiError::store)
}

fn bad(reason: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, reason)
}

/// A query's `limit`: `default` when absent, a 400 outside 1 to `max`
/// (never clamped: a destructive call must not do other than asked).
fn limit_param(limit: Option<usize>, default: usize, max: usize) -> Result<usize, ApiError> {
    match limit.unwrap_or(default) {
        n @ 1.. if n <= max => Ok(n),
        n => Err(bad(format!("limit must be 1 to {max}, not {n}"))),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_store_outage_is_one_log_line_per_ten_seconds_with_its_count() {
        let t = super::Throttle {
            last_secs: std::sync::atomic::AtomicI64::new(i64::MIN / 2),
            since_line: std::sync::atomic::AtomicU64::new(0),
        };
        assert_eq!(t.tick(), Some(1), "the first refusal is logged");
        for _ in 0..99 {
            assert_eq!(t.tick(), None, "the next ones within 10 s are not");
        }
        // Ten seconds on, the line says how many it stands for.
        t.last_secs
            .fetch_sub(super::Throttle::EVERY, std::sync::atomic::Ordering::Relaxed);
        assert_eq!(t.tick(), Some(100));
    }

    #[test]
    fn ping_keys_stay_out_of_logs() {
        assert_eq!(
            super::log_path("/ping/s3cret/web-1/fail"),
            "/ping/<key>/web-1/fail"
        );
        assert_eq!(super::log_path("/ping/s3cret"), "/ping/<key>");
        assert_eq!(super::log_path("/v1/hosts"), "/v1/hosts");
    }

    #[test]
    fn pattern_overlap() {
        use super::patterns_overlap as o;
        for (a, b) in [
            ("web-*", "*"),
            ("web-*", "web-1"),
            ("web-*", "w?b-*"),
            ("web-*", "*-1"),
            ("*.eu", "db-*"),
            ("a*b", "*ab*"),
            ("?", "x"),
            ("web-*", "web-*"),
        ] {
            assert!(o(a, b) && o(b, a), "{a} / {b}");
        }
        for (a, b) in [
            ("web-*", "db-*"),
            ("web-*", "web"),
            ("aaa-secret-payroll", "web-*"),
            ("?", "xy"),
            ("a*", "b*"),
            ("*x", "*y"),
        ] {
            assert!(!o(a, b) && !o(b, a), "{a} / {b}");
        }
    }

    #[test]
    fn control_characters_are_cleaned() {
        use super::clean_text as c;
        assert_eq!(c("plain text\nline two\tx"), "plain text\nline two\tx");
        assert_eq!(c("a\r\nb\rc"), "a\nb\nc");
        assert_eq!(
            c("\u{1b}[31mred\u{1b}[0m\u{0}\u{7}\u{7f}\u{85}\u{9b}é"),
            "[31mred[0mé"
        );
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    after: Option<String>,
    limit: Option<usize>,
    /// Only the hosts of this group.
    group: Option<String>,
}

async fn list_hosts(
    State(st): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let key = st.admin(&headers)?;
    let Query(q) = query.map_err(|e| bad(format!("invalid query: {}", e.body_text())))?;
    let after = q.after.as_deref().map(parse_host).transpose()?;
    let limit = limit_param(q.limit, 500, 1000)?;
    let group = parse_group(q.group.as_deref())?;
    let page = visible_page(&st, key, after, limit, group.as_ref()).await?;
    let silences = silences(&st).await?;
    let now = st.now();
    // The cursor is always a host of the page, so it never names a host
    // the key may not see.
    let next_after = (page.len() == limit)
        .then(|| page.last().map(|r| r.host.clone()))
        .flatten();
    let policies = st.0.monitor.policies();
    let hosts: Vec<Value> = page
        .iter()
        .map(|r| view(r, now, &silences, policies))
        .collect();
    Ok(Json(json!({ "hosts": hosts, "next_after": next_after })).into_response())
}

/// The literal start of a host pattern (before its first `*` or `?`).
fn literal_prefix(p: &HostPattern) -> &str {
    let s = p.as_str();
    &s[..s.find(['*', '?']).unwrap_or(s.len())]
}

/// Up to `limit` hosts after `after` that `key` may see (and, with
/// `group`, of that group), in host order: the key's pattern and the group
/// are applied before paging. A pattern with a literal start (`web-*`)
/// reads only that stretch of the host list; one without (`*-web`), or a
/// group filter, walks the list until the page is full.
async fn visible_page(
    st: &AppState,
    key: &ApiKey,
    after: Option<HostId>,
    limit: usize,
    group: Option<&GroupName>,
) -> Result<Vec<HostRecord>, ApiError> {
    let store = st.0.monitor.store();
    if key.hosts == HostPattern::any() && group.is_none() {
        return store
            .list(after.as_ref(), limit)
            .await
            .map_err(ApiError::store);
    }
    let prefix = literal_prefix(&key.hosts);
    // Every host starting with `prefix` sorts after `prefix` less its
    // last character.
    let start = prefix
        .char_indices()
        .last()
        .and_then(|(i, _)| HostId::new(&prefix[..i]).ok());
    let cursor = match (after, start) {
        (Some(a), Some(s)) => Some(a.max(s)),
        (a, s) => a.or(s),
    };
    let mut out = Vec::new();
    let mut pages = HostPages::new(store.as_ref(), cursor, LIST_PAGE);
    while let Some(batch) = pages.next().await.map_err(ApiError::store)? {
        for r in batch {
            let h = r.host.as_str();
            if h > prefix && !h.starts_with(prefix) {
                // Past the stretch of hosts that start with `prefix`.
                return Ok(out);
            }
            if key.allows(&r.host) && group.is_none_or(|g| r.group.as_ref() == Some(g)) {
                out.push(r);
                if out.len() == limit {
                    return Ok(out);
                }
            }
        }
    }
    Ok(out)
}

/// Whether some host id could match both patterns (`*` and `?` globs over
/// the same alphabet). Length bounds on host ids are ignored, so this may
/// say yes for an overlap only ids longer than 253 bytes would reach.
fn patterns_overlap(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let width = b.len() + 1;
    let mut seen = vec![false; (a.len() + 1) * width];
    let mut todo = vec![(0usize, 0usize)];
    while let Some((i, j)) = todo.pop() {
        if std::mem::replace(&mut seen[i * width + j], true) {
            continue;
        }
        if i == a.len() && j == b.len() {
            return true;
        }
        let (x, y) = (a.get(i).copied(), b.get(j).copied());
        // A star may match nothing.
        if x == Some(b'*') {
            todo.push((i + 1, j));
        }
        if y == Some(b'*') {
            todo.push((i, j + 1));
        }
        // Or both sides take one character, if one character fits both.
        if let (Some(x), Some(y)) = (x, y) {
            let fits = matches!(x, b'*' | b'?') || matches!(y, b'*' | b'?') || x == y;
            let next = (
                if x == b'*' { i } else { i + 1 },
                if y == b'*' { j } else { j + 1 },
            );
            if fits && next != (i, j) {
                todo.push(next);
            }
        }
    }
    false
}

/// `DELETE /v1/hosts?pattern=<glob>[&dry_run=true][&limit=<n>]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BulkDeleteQuery {
    pattern: Option<String>,
    #[serde(default)]
    dry_run: bool,
    limit: Option<usize>,
}

/// The most host names a bulk removal answers with.
const BULK_NAMES: usize = 100;

/// The most hosts one bulk removal deletes by default, and at most.
const BULK_DELETE_DEFAULT: usize = 1000;
const BULK_DELETE_MAX: usize = 10_000;

/// Removes every host matching `pattern` that the key may manage (for a
/// key limited to some hosts: the hosts both patterns match), at most
/// `limit` per request; with `dry_run=true` only says which.
async fn delete_hosts(
    State(st): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<BulkDeleteQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let key = st.admin(&headers)?;
    let Query(q) = query.map_err(|e| bad(format!("invalid query: {}", e.body_text())))?;
    let pattern = q.pattern.as_deref().ok_or_else(|| {
        bad("give the hosts to remove as pattern=<glob>, e.g. DELETE /v1/hosts?pattern=junk-*; add dry_run=true to see them first")
    })?;
    let pattern =
        HostPattern::new(pattern).map_err(|e| bad(format!("invalid host pattern: {e}")))?;
    let limit = limit_param(q.limit, BULK_DELETE_DEFAULT, BULK_DELETE_MAX)?;
    let store = st.0.monitor.store();
    let mut matched = 0usize;
    let mut names = Vec::new();
    let mut doomed = Vec::new();
    let mut pages = HostPages::new(store.as_ref(), None, LIST_PAGE);
    while let Some(page) = pages.next().await.map_err(ApiError::store)? {
        for r in page {
            if pattern.matches(&r.host) && key.allows(&r.host) {
                matched += 1;
                if names.len() < BULK_NAMES {
                    names.push(r.host.clone());
                }
                if !q.dry_run && doomed.len() < limit {
                    doomed.push(r.host);
                }
            }
        }
    }
    let mut deleted = 0usize;
    for h in &doomed {
        if st.0.monitor.remove(h).await.map_err(ApiError::store)? {
            deleted += 1;
        }
    }
    if deleted > 0 {
        st.0.host_count.lock().await.changed(0, deleted as u64);
        tracing::info!(key = %key.name, %pattern, deleted, "hosts removed by pattern");
    }
    Ok(Json(json!({
        "pattern": pattern,
        "dry_run": q.dry_run,
        "matched": matched,
        "hosts": names,
        "deleted": deleted,
        "remaining": matched - deleted,
    }))
    .into_response())
}

async fn admin_for_host(
    st: &AppState,
    headers: &HeaderMap,
    host: &str,
) -> Result<HostId, ApiError> {
    host_for_key(st.admin(headers)?, host)
}

/// 403 for a host-side call (a heartbeat, a maintenance window) with a key
/// whose host pattern does not match `host`.
fn not_for_host(key: &ApiKey, host: &HostId) -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        format!(
            "key '{}' may only act for hosts matching '{}', not '{host}'",
            key.name, key.hosts
        ),
    )
}

/// `host` parsed, if `key` may manage it.
fn host_for_key(key: &ApiKey, host: &str) -> Result<HostId, ApiError> {
    let host = parse_host(host)?;
    if !key.allows(&host) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "key '{}' may only manage hosts matching '{}'",
                key.name, key.hosts
            ),
        ));
    }
    Ok(host)
}

fn not_found(host: &HostId) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, format!("unknown host '{host}'"))
}

impl AppState {
    /// `host`'s record; 404 when the host is unknown.
    async fn known_host(&self, host: &HostId) -> Result<HostRecord, ApiError> {
        self.0
            .monitor
            .host(host)
            .await
            .map_err(ApiError::store)?
            .ok_or_else(|| not_found(host))
    }
}

async fn delete_host(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(host): Path<String>,
) -> Result<Response, ApiError> {
    let host = st.remove_host(st.admin(&headers)?, &host).await?;
    Ok(Json(json!({ "deleted": host })).into_response())
}

/// `POST /v1/hosts/{host}/pause`: no body (or `{}`) pauses until resumed.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PauseBody {
    /// The end: RFC 3339, or a local time read in `tz`.
    pub(crate) until: Option<String>,
    /// The end as a duration from now.
    #[serde(default, rename = "for", with = "humantime_serde::option")]
    pub(crate) for_: Option<Duration>,
    /// The time zone of a local `until`.
    pub(crate) tz: Option<String>,
}

/// When a pause asked for at `now` ends: `None` for a pause until resumed.
fn pause_end(req: &PauseBody, now: Timestamp) -> Result<Option<Timestamp>, ApiError> {
    if let Some(tz) = &req.tz {
        check_tz(tz).map_err(bad)?;
    }
    let fmt = |t: Timestamp| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    if req.tz.is_some() && req.until.is_none() && req.for_.is_none() {
        return Err(bad(
            "tz goes with until (a local time such as \"2026-11-26 19:00\"); alone it says nothing about when the pause ends",
        ));
    }
    match (&req.until, req.for_) {
        (None, None) => Ok(None),
        (Some(_), Some(_)) => Err(bad(
            "give one of until (a time) or for (a duration such as \"2h\"), not both",
        )),
        (None, Some(d)) if d.is_zero() => Err(bad("for must be longer than zero")),
        (None, Some(d)) if d > MAX_PAUSE => Err(bad(format!(
            "for is {}, longer than 1 year; pause without a body to pause until resumed",
            humantime::format_duration(d)
        ))),
        (None, Some(d)) => Ok(Some(add(now, d))),
        (Some(u), None) => {
            let until =
                parse_instant(u, req.tz.as_deref()).map_err(|e| bad(format!("until: {e}")))?;
            if until <= now {
                return Err(bad(format!(
                    "until {} is in the past (it is {} now)",
                    fmt(until),
                    fmt(now)
                )));
            }
            if until > add(now, MAX_PAUSE) {
                return Err(bad(format!(
                    "until {} is more than 1 year ahead; pause without a body to pause until resumed",
                    fmt(until)
                )));
            }
            Ok(Some(until))
        }
    }
}

async fn pause_host(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(host): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let key = st.admin(&headers)?;
    let host = host_for_key(key, &host)?;
    let body = body.map_err(|e| body_error(&st, e))?;
    let req: PauseBody = if body.iter().all(u8::is_ascii_whitespace) {
        PauseBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            bad(format!(
                "body must be empty (pause until resumed) or JSON like {{\"for\": \"2h\"}} or {{\"until\": \"2026-11-26T20:00:00+01:00\"}}: {e}"
            ))
        })?
    };
    let rec = st.pause(key, host.as_str(), &req).await?;
    Ok(Json(view(
        &rec,
        st.now(),
        &silences(&st).await?,
        st.0.monitor.policies(),
    ))
    .into_response())
}

async fn resume_host(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(host): Path<String>,
) -> Result<Response, ApiError> {
    let rec = st.resume(st.admin(&headers)?, &host).await?;
    Ok(Json(view(
        &rec,
        st.now(),
        &silences(&st).await?,
        st.0.monitor.policies(),
    ))
    .into_response())
}

/// The management operations behind the API's handlers, for a key that
/// passed [`AppState::admin_key`]: the JSON handlers and the dashboard's
/// forms both go through these, so they check the same things.
impl AppState {
    /// Pauses `host` as `req` says (`POST /v1/hosts/{host}/pause`).
    pub(crate) async fn pause(
        &self,
        key: &ApiKey,
        host: &str,
        req: &PauseBody,
    ) -> Result<HostRecord, ApiError> {
        let host = host_for_key(key, host)?;
        let until = pause_end(req, self.now())?;
        let rec = self
            .0
            .monitor
            .pause_until(&host, until)
            .await
            .map_err(ApiError::store)?;
        let rec = rec.ok_or_else(|| not_found(&host))?;
        if until.is_some() {
            // The runner may sleep past the pause's end: let it look again.
            self.0.wake.notify_one();
        }
        Ok(rec)
    }

    /// Resumes `host` (`POST /v1/hosts/{host}/resume`).
    pub(crate) async fn resume(&self, key: &ApiKey, host: &str) -> Result<HostRecord, ApiError> {
        let host = host_for_key(key, host)?;
        let rec = self
            .0
            .monitor
            .resume(&host)
            .await
            .map_err(ApiError::store)?;
        let rec = rec.ok_or_else(|| not_found(&host))?;
        self.0.wake.notify_one();
        Ok(rec)
    }

    /// Removes `host` (`DELETE /v1/hosts/{host}`); 404 when unknown.
    pub(crate) async fn remove_host(&self, key: &ApiKey, host: &str) -> Result<HostId, ApiError> {
        let host = host_for_key(key, host)?;
        if self
            .0
            .monitor
            .remove(&host)
            .await
            .map_err(ApiError::store)?
        {
            self.0.host_count.lock().await.changed(0, 1);
            tracing::info!(key = %key.name, %host, "host removed");
            Ok(host)
        } else {
            Err(not_found(&host))
        }
    }

    /// Up to `limit` hosts after `after` that `key` may see, in host order.
    pub(crate) async fn visible_hosts(
        &self,
        key: &ApiKey,
        after: Option<HostId>,
        limit: usize,
    ) -> Result<Vec<HostRecord>, ApiError> {
        visible_page(self, key, after, limit, None).await
    }

    /// The silences that can touch a host `key` may see, by start
    /// (`GET /v1/silences`).
    pub(crate) async fn visible_silences(&self, key: &ApiKey) -> Result<Vec<Silence>, ApiError> {
        let mut s = silences(self).await?;
        s.retain(|s| patterns_overlap(s.hosts.as_str(), key.hosts.as_str()));
        s.sort_by(|a, b| a.starts_at.cmp(&b.starts_at).then(a.id.cmp(&b.id)));
        Ok(s)
    }

    /// Validates and adds a silence (`POST /v1/silences`); needs an
    /// unrestricted admin key.
    pub(crate) async fn add_silence(
        &self,
        key: &ApiKey,
        req: NewSilence,
    ) -> Result<Silence, ApiError> {
        unrestricted(key)?;
        let silence = build_silence(req, self.now()).map_err(bad)?;
        self.0
            .monitor
            .add_silence(&silence)
            .await
            .map_err(ApiError::store)?;
        Ok(silence)
    }

    /// Ends (removes) silence `id` (`DELETE /v1/silences/{id}`); needs an
    /// unrestricted admin key.
    pub(crate) async fn end_silence(&self, key: &ApiKey, id: &str) -> Result<(), ApiError> {
        unrestricted(key)?;
        if self
            .0
            .monitor
            .remove_silence(id)
            .await
            .map_err(ApiError::store)?
        {
            self.0.wake.notify_one();
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::NOT_FOUND,
                format!("unknown silence '{id}'"),
            ))
        }
    }
}

fn full_admin(st: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    unrestricted(st.admin(headers)?)
}

/// Refuses a key limited to some hosts (silences may cover any host).
fn unrestricted(key: &ApiKey) -> Result<(), ApiError> {
    if key.hosts != HostPattern::any() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "key '{}' is limited to hosts '{}'; this needs an unrestricted admin key",
                key.name, key.hosts
            ),
        ));
    }
    Ok(())
}

/// `POST /v1/silences`.
#[derive(Debug, Default, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a JSON object like {\"hosts\": \"db-*\", \"duration\": \"1h\"}"
)]
pub(crate) struct NewSilence {
    id: Option<String>,
    hosts: String,
    /// RFC 3339, or a local time read in `tz`. Default: now.
    starts_at: Option<String>,
    /// A one-off silence's end; with `repeat`, the first occurrence's end.
    ends_at: Option<String>,
    /// A one-off silence's length; with `repeat`, each occurrence's.
    #[serde(default, with = "humantime_serde::option")]
    duration: Option<Duration>,
    /// The same as `duration`.
    #[serde(default, rename = "for", with = "humantime_serde::option")]
    for_: Option<Duration>,
    /// The IANA time zone of local times and of the `repeat` schedule.
    tz: Option<String>,
    /// `daily` (at `starts_at`'s local time of day) or a cron expression.
    repeat: Option<String>,
    /// The end of a repeating silence: RFC 3339, or a local time in `tz`.
    until: Option<String>,
    #[serde(default)]
    reason: String,
}

impl NewSilence {
    /// A one-off silence of the hosts matching `hosts`, from now for `d`.
    pub(crate) fn lasting(hosts: String, d: Duration, reason: String) -> Self {
        Self {
            hosts,
            for_: Some(d),
            reason,
            ..Self::default()
        }
    }
}

/// Validates a silence request made at `now`; the reason when it is refused.
fn build_silence(req: NewSilence, now: Timestamp) -> Result<Silence, String> {
    let hosts = HostPattern::new(&req.hosts).map_err(|e| format!("invalid host pattern: {e}"))?;
    let tz = req.tz.as_deref();
    if let Some(tz) = tz {
        check_tz(tz)?;
    }
    let time = |field: &str, v: &Option<String>| {
        v.as_deref()
            .map(|v| parse_instant(v, tz).map_err(|e| format!("{field}: {e}")))
            .transpose()
    };
    let starts_at = time("starts_at", &req.starts_at)?;
    let ends_at = time("ends_at", &req.ends_at)?;
    let until = time("until", &req.until)?;
    let length = match (req.duration, req.for_) {
        (Some(_), Some(_)) => return Err("give one of duration or for, not both".into()),
        (d, f) => d.or(f),
    };
    let start = starts_at.unwrap_or(now);
    let year = |what: &str| {
        format!(
            "{what} is longer than 1 year; remove the silence when the work is done, or repeat a shorter one"
        )
    };
    if length.is_some_and(|d| d.is_zero()) {
        return Err("duration must be greater than zero".into());
    }
    if let Some(d) = length.filter(|d| *d > MAX_SILENCE) {
        return Err(year(&format!(
            "the duration {}",
            humantime::format_duration(d)
        )));
    }
    if start > add(now, MAX_SILENCE) {
        return Err(format!(
            "starts_at is more than 1 year ahead (it is {} now)",
            now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        ));
    }
    let id = req.id.unwrap_or_else(|| {
        let n: u64 = rand::random();
        format!("s-{n:016x}")
    });
    let fmt = |t: Timestamp| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let Some(spec) = req.repeat.as_deref().map(str::trim) else {
        if until.is_some() {
            return Err(
                "until ends a repeating silence; a one-off silence ends at ends_at or after duration"
                    .into(),
            );
        }
        let end = match (ends_at, length) {
            (Some(e), None) => e,
            (None, Some(d)) => add(start, d),
            _ => {
                return Err(
                    "give exactly one of ends_at (RFC 3339, or a local time with tz) or duration (e.g. \"2h\")"
                        .into(),
                );
            }
        };
        if end > start && since(end, start) > MAX_SILENCE {
            return Err(year("the silence from starts_at to ends_at"));
        }
        let s = Silence::new(id, hosts, start, end, req.reason)?;
        if s.ends_at <= now {
            return Err(format!(
                "the silence already ended at {} (it is {} now)",
                fmt(s.ends_at),
                fmt(now)
            ));
        }
        return Ok(s);
    };
    let Some(tz) = tz else {
        return Err(
            "a repeating silence needs tz, the time zone its schedule is read in (e.g. \"Europe/Berlin\" or \"UTC\")"
                .into(),
        );
    };
    if let Some(u) = until.filter(|u| *u <= now) {
        return Err(format!(
            "the repeating silence already ended: until {} has passed (it is {} now)",
            fmt(u),
            fmt(now)
        ));
    }
    let length = match (ends_at, length) {
        (None, Some(d)) => d,
        (Some(e), None) if e > start && since(e, start) > MAX_SILENCE => {
            return Err(year("each window (starts_at to ends_at)"));
        }
        (Some(e), None) if e > start => since(e, start),
        (Some(e), None) => {
            return Err(format!(
                "silence must end after it starts ({} is not after {})",
                fmt(e),
                fmt(start)
            ));
        }
        _ => {
            return Err(
                "give exactly one of duration (each occurrence's length, e.g. \"1h\") or ends_at (the first occurrence's end)"
                    .into(),
            );
        }
    };
    let repeat = if spec.eq_ignore_ascii_case("daily") {
        if starts_at.is_none() {
            return Err(
                "repeat \"daily\" needs starts_at: its local time of day is when each day's window starts (e.g. \"2026-11-26 19:00\")"
                    .into(),
            );
        }
        Repeat::daily(start, tz, length, until)?
    } else {
        Repeat::new(spec, tz, length, until)?
    };
    let s = Silence::repeating(id, hosts, start, repeat, req.reason)?;
    if s.next_window(now).is_none() {
        return Err("the repeating silence has no window left after now".into());
    }
    Ok(s)
}

/// A silence as the API shows it: as stored, with whether it covers now
/// and its current or next window.
fn silence_view(s: &Silence, now: Timestamp) -> Value {
    let mut v = json!(s);
    if let Value::Object(m) = &mut v {
        m.insert("active".into(), json!(s.window_at(now).is_some()));
        m.insert(
            "next_window".into(),
            json!(
                s.next_window(now)
                    .map(|(from, to)| json!({ "starts_at": from, "ends_at": to }))
            ),
        );
    }
    v
}

async fn list_silences(
    State(st): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    // A key limited to some hosts sees the silences that can touch them.
    let s = st.visible_silences(st.admin(&headers)?).await?;
    let now = st.now();
    let s: Vec<Value> = s.iter().map(|s| silence_view(s, now)).collect();
    Ok(Json(json!({ "silences": s })).into_response())
}

async fn create_silence(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let key = st.admin(&headers)?;
    unrestricted(key)?;
    let body = body.map_err(|e| body_error(&st, e))?;
    let req: NewSilence = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("body must be JSON like {{\"hosts\": \"db-*\", \"duration\": \"2h\", \"reason\": \"maintenance\"}}: {e}"),
        )
    })?;
    let silence = st.add_silence(key, req).await?;
    Ok((StatusCode::CREATED, Json(silence_view(&silence, st.now()))).into_response())
}

async fn delete_silence(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    st.end_silence(st.admin(&headers)?, &id).await?;
    Ok(Json(json!({ "deleted": id })).into_response())
}

/// `GET /healthz`: 200 `ok`; 200 `degraded` while a channel refuses
/// notices (the watcher still watches, and says so on its other channels);
/// 503 while the store cannot be used (heartbeats are being refused) or
/// its check found its data lost or replaced, each with the reasons; and
/// when the last successful sweep ran and the last self-ping got through.
async fn healthz(State(st): State<AppState>) -> Response {
    let (store_down, body) = watcher_view(&st).await;
    if store_down {
        (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
    } else {
        Json(body).into_response()
    }
}

/// What `/healthz` says, and whether the store is down (503).
async fn watcher_view(st: &AppState) -> (bool, Value) {
    let monitor = &st.0.monitor;
    let store = monitor.store();
    let health = monitor.health();
    let probe = store.next_due().await;
    let mut reasons = health.reasons();
    if let Err(e) = &probe
        && health.store.is_none()
    {
        reasons.insert(0, format!("store unavailable: {e}"));
    }
    let store_down = probe.is_err() || health.store_down();
    let status = if store_down {
        "unavailable"
    } else if health.degraded() {
        "degraded"
    } else {
        "ok"
    };
    let seen = st.0.self_watch.status();
    let body = json!({
        "status": status,
        "store": store.to_string(),
        "reasons": reasons,
        "channels": monitor.channel_names(),
        "refusing_channels": health.channels.iter().map(|c| json!({
            "channel": c.channel,
            "since": c.since,
            "refused": c.refused,
            "reason": c.reason,
            "last_notice": c.last_notice,
        })).collect::<Vec<_>>(),
        "error": probe.as_ref().err().map(ToString::to_string),
        "last_sweep_at": seen.last_sweep_at,
        "last_self_ping_at": seen.last_self_ping_at,
    });
    (store_down, body)
}

/// `GET /v1/watcher` (admin): what `/healthz` says, always 200, with the
/// self-ping's target (scheme, host and port only), interval, last attempt,
/// failures and last error.
async fn watcher(State(st): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    st.admin(&headers)?;
    let (_, mut body) = watcher_view(&st).await;
    let seen = st.0.self_watch.status();
    body["self_ping"] = match st.0.self_watch.target() {
        None => Value::Null,
        Some((url, interval)) => json!({
            "url": url,
            "interval": humantime::format_duration(interval).to_string(),
            "last_ok_at": seen.last_self_ping_at,
            "last_attempt_at": seen.last_self_ping_attempt_at,
            "last_said_degraded": seen.last_self_ping_failed,
            "failures": seen.self_ping_failures,
            "last_error": seen.last_self_ping_error,
        }),
    };
    Ok(Json(body).into_response())
}

/// `POST /v1/test-notice` (full admin): one test notice through every
/// channel, and what each did. 200 when every channel took it, 502 when
/// one did not (the body says which and why).
async fn test_notice(State(st): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    full_admin(&st, &headers)?;
    let results = st.0.monitor.test_notice().await;
    let all_ok = results.iter().all(|(_, r)| r.is_ok());
    let body = json!({
        "ok": all_ok,
        "channels": results.iter().map(|(name, r)| match r {
            Ok(()) => json!({"channel": name, "outcome": "delivered"}),
            Err(e) => json!({
                "channel": name,
                "outcome": if e.is_transient() { "failed" } else { "refused" },
                "error": e.to_string(),
            }),
        }).collect::<Vec<_>>(),
    });
    let code = if all_ok {
        StatusCode::OK
    } else {
        StatusCode::BAD_GATEWAY
    };
    Ok((code, Json(body)).into_response())
}

async fn metrics_page(State(st): State<AppState>) -> Response {
    match &st.0.metrics {
        Some(h) => {
            let mut body = h.render();
            let store = st.0.monitor.store();
            let read =
                crate::host_metrics::render_hosts(store.as_ref(), &st.0.ops, &mut body).await;
            if let Err(e) = &read {
                // The process's own series still tell a store outage.
                tracing::debug!(store = %store, error = %e, "per-host metrics left out");
            }
            // Said in series of their own, so an alert on the hosts' series
            // is not quietly resolved by their absence during a store fault.
            let store_ok = st.0.monitor.health().store.is_none();
            let _ = std::fmt::Write::write_fmt(
                &mut body,
                format_args!(
                    "# HELP iamalive_host_series_up 1 when this scrape's per-host series were read from the store, 0 when the store failed and they are left out.\n\
                 # TYPE iamalive_host_series_up gauge\niamalive_host_series_up {}\n\
                 # HELP iamalive_store_up 0 while the watcher's store is failing (a fault not yet over), else 1.\n\
                 # TYPE iamalive_store_up gauge\niamalive_store_up {}\n",
                    u8::from(read.is_ok()),
                    u8::from(store_ok),
                ),
            );
            ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
        }
        None => ApiError::new(
            StatusCode::NOT_FOUND,
            "metrics are not enabled in this process",
        )
        .into_response(),
    }
}

/// A request body that says whether the server is waiting for the client
/// to send more of it.
struct Watched {
    inner: axum::body::BodyDataStream,
    waiting: Arc<AtomicBool>,
}

impl futures::Stream for Watched {
    type Item = Result<Bytes, axum::Error>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        let r = std::pin::Pin::new(&mut self.inner).poll_next(cx);
        self.waiting.store(r.is_pending(), Ordering::Relaxed);
        r
    }
}

/// Cuts a request off at `limit`: 408 when the server was waiting for the
/// client's body then (the client stalled), 503 otherwise (the watcher or
/// its store was slow).
async fn timeout_layer(State(limit): State<Duration>, req: Request, next: Next) -> Response {
    use axum::body::HttpBody;
    let waiting = Arc::new(AtomicBool::new(false));
    let req = if req.body().is_end_stream() {
        req
    } else {
        let w = Arc::clone(&waiting);
        req.map(|b| {
            axum::body::Body::from_stream(Watched {
                inner: b.into_data_stream(),
                waiting: w,
            })
        })
    };
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(r) => r,
        Err(_) if waiting.load(Ordering::Relaxed) => ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "the request body did not arrive within {}",
                humantime::format_duration(limit)
            ),
        )
        .into_response(),
        Err(_) => {
            tracing::warn!(timeout = %humantime::format_duration(limit), "a request took longer than its timeout: answered 503");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "request took longer than {}",
                    humantime::format_duration(limit)
                ),
            )
            .into_response()
        }
    }
}

/// The request path for logs, with a ping URL's key replaced, however the
/// path is spelled (see [`redact_path`](crate::redact::redact_path)).
fn log_path(path: &str) -> String {
    crate::redact::redact_path(path)
}

async fn no_route(uri: axum::http::Uri) -> ApiError {
    // The commonest slip, a trailing slash, is said by name.
    let path = uri.path();
    if path.len() > 1 && path.ends_with('/') {
        return ApiError::new(
            StatusCode::NOT_FOUND,
            "no such endpoint: drop the trailing '/' from the path",
        );
    }
    ApiError::new(StatusCode::NOT_FOUND, "no such endpoint")
}

async fn wrong_method() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed on this endpoint",
    )
}

/// The whole HTTP API as a Router, to serve or to mount into another service.
///
/// Endpoints: `POST /v1/heartbeat`; `POST /v1/alertmanager/{host}`
/// (Alertmanager's webhook); `GET|HEAD|POST /ping/{key}/{host}` and
/// `/ping/{key}/{host}/{start|fail|<exit status>}`; `GET /v1/hosts`;
/// `DELETE /v1/hosts?pattern=<glob>[&dry_run=true]`;
/// `GET|PUT|DELETE /v1/hosts/{host}` (`PUT` with an optional policy body:
/// a timeout or a cron schedule); `DELETE /v1/hosts/{host}/policy`;
/// `POST /v1/hosts/{host}/pause` and
/// `/resume`; `POST|DELETE /v1/hosts/{host}/maintenance`; `GET|POST /v1/silences`;
/// `DELETE /v1/silences/{id}`; `GET /healthz`; `GET /v1/watcher`; `GET /metrics`;
/// and, unless turned off, the dashboard (`/`, `/login`, `/silences`, `/status/{group}`,
/// `/badge/…`).
pub fn router(state: AppState) -> Router {
    let limits = state.0.limits.clone();
    Router::new()
        .route("/v1/heartbeat", post(heartbeat))
        .route(
            "/v1/alertmanager/{host}",
            post(alertmanager::alertmanager),
        )
        .route(
            "/ping/{key}/{host}",
            get(ping_plain).head(ping_plain).post(ping_plain),
        )
        .route(
            "/ping/{key}/{host}/{action}",
            get(ping_action).head(ping_action).post(ping_action),
        )
        .route("/v1/hosts", get(list_hosts).delete(delete_hosts))
        .route(
            "/v1/hosts/{host}",
            get(policy::get_host)
                .put(policy::put_host)
                .delete(delete_host),
        )
        .route("/v1/hosts/{host}/policy", delete(policy::delete_policy))
        .route("/v1/hosts/{host}/events", get(signals::host_events))
        .route("/v1/hosts/{host}/pause", post(pause_host))
        .route("/v1/hosts/{host}/resume", post(resume_host))
        .route(
            "/v1/hosts/{host}/maintenance",
            post(maintenance::start).delete(maintenance::end),
        )
        .route("/v1/silences", get(list_silences).post(create_silence))
        .route("/v1/silences/{id}", delete(delete_silence))
        .route("/healthz", get(healthz))
        .route("/v1/watcher", get(watcher))
        .route("/v1/test-notice", post(test_notice))
        .route("/metrics", get(metrics_page))
        .merge(crate::dashboard::routes(state.0.dashboard.enabled()))
        .fallback(no_route)
        .method_not_allowed_fallback(wrong_method)
        .layer(DefaultBodyLimit::max(limits.body_bytes))
        .layer(middleware::from_fn_with_state(
            limits.request_timeout,
            timeout_layer,
        ))
        .layer(middleware::from_fn(admit::request_line_layer))
        .layer(
            tower_http::trace::TraceLayer::new_for_http()
                .make_span_with(|req: &axum::http::Request<axum::body::Body>| {
                    tracing::debug_span!("http", method = %req.method(), path = %log_path(req.uri().path()))
                })
                // Every 5xx is logged where it is decided, with its reason
                // (and a store outage at most every 10 s); tower's own line
                // per failed response, without the path, only at debug.
                .on_failure(
                    tower_http::trace::DefaultOnFailure::new().level(tracing::Level::DEBUG),
                ),
        )
        .with_state(state)
}
