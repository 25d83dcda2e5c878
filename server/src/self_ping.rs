//! Who watches the watcher: a heartbeat of its own.
//!
//! A dead man's switch that dies is silent, and silence is what it exists
//! to catch. With `self_ping.url` (`IAMALIVE_SELF_PING_URL`) set, the
//! watcher pings that URL after a successful sweep, at most once per
//! `self_ping.interval` (default 1 min): a healthchecks-style ping URL, such
//! as another iamalive's `/ping/<key>/<host>` or a healthchecks.io check.
//! While the watcher is degraded (its store failing for longer than
//! `monitor.store_fault_after`, its data lost, a channel refusing notices)
//! it pings `<url>/fail` instead, with the reasons as the body. When the
//! process, its host or its sweep dies, the pings stop and whoever watches
//! that URL raises the alarm.
//!
//! The decision — whether a ping is due, and whether it says alive or
//! failed — is [`Cadence`], pure and driven by the caller's `now`. The
//! sending is a thin shell ([`SelfWatch`]): one task per ping, at most one
//! in flight, a bounded timeout, never awaited by the sweep; a failure is
//! logged and counted (`iamalive_self_ping_failures_total`) and simply
//! waits for the next interval, so a dead receiver never makes a storm.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use iamalive_core::{Clock, HealthReport, Timestamp, add};
use serde::Deserialize;

use crate::api::DynMonitor;
use crate::config::{ConfigError, Secret};

/// The default least time between two self-pings.
pub const DEFAULT_SELF_PING_INTERVAL: Duration = Duration::from_secs(60);

/// The default time a self-ping may take (never longer than the interval).
pub const DEFAULT_SELF_PING_TIMEOUT: Duration = Duration::from_secs(10);

/// The most bytes of reasons sent as the body of a `/fail` ping.
pub const MAX_FAIL_BODY: usize = 1000;

/// The watcher's own heartbeat (`[self_ping]`, `IAMALIVE_SELF_PING_*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelfPingSettings {
    /// The ping URL (it usually holds a key, so it is kept secret).
    pub url: Secret,
    /// The least time between two pings. Default 1 min.
    pub interval: Duration,
    /// How long one ping may take. Default 10 s, or the interval if shorter.
    pub timeout: Duration,
}

/// The `[self_ping]` table of the configuration file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SelfPingTable {
    url: Option<String>,
    #[serde(default, with = "humantime_serde::option")]
    interval: Option<Duration>,
    #[serde(default, with = "humantime_serde::option")]
    timeout: Option<Duration>,
}

/// The environment variables of [`SelfPingSettings`], with their TOML paths.
pub(crate) const SELF_PING_ENV_KEYS: [(&str, &str); 3] = [
    ("IAMALIVE_SELF_PING_URL", "self_ping.url"),
    ("IAMALIVE_SELF_PING_INTERVAL", "self_ping.interval"),
    ("IAMALIVE_SELF_PING_TIMEOUT", "self_ping.timeout"),
];

fn config_error(key: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        key: key.to_owned(),
        reason: reason.into(),
    }
}

impl SelfPingTable {
    /// The settings, checked: `None` when no URL is set (an interval or
    /// timeout without one is an error, not silently ignored).
    pub(crate) fn resolve(self) -> Result<Option<SelfPingSettings>, ConfigError> {
        const URL: &str = "self_ping.url (IAMALIVE_SELF_PING_URL)";
        let Some(url) = self.url else {
            if self.interval.is_some() || self.timeout.is_some() {
                return Err(config_error(
                    URL,
                    "missing: a self-ping interval or timeout was given without a URL",
                ));
            }
            return Ok(None);
        };
        // The message never repeats the URL: it usually holds a key.
        parse_url(&url).map_err(|e| config_error(URL, e))?;
        let interval = self.interval.unwrap_or(DEFAULT_SELF_PING_INTERVAL);
        if interval.is_zero() {
            return Err(config_error(
                "self_ping.interval (IAMALIVE_SELF_PING_INTERVAL)",
                "must be longer than zero",
            ));
        }
        let timeout = self
            .timeout
            .unwrap_or_else(|| DEFAULT_SELF_PING_TIMEOUT.min(interval));
        if timeout.is_zero() {
            return Err(config_error(
                "self_ping.timeout (IAMALIVE_SELF_PING_TIMEOUT)",
                "must be longer than zero",
            ));
        }
        Ok(Some(SelfPingSettings {
            url: Secret::new(url),
            interval,
            timeout,
        }))
    }
}

fn parse_url(url: &str) -> Result<reqwest::Url, String> {
    let u = reqwest::Url::parse(url.trim())
        .map_err(|e| format!("not a URL ({e}); expected http(s)://host/ping/…"))?;
    if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() {
        return Err("expected an http:// or https:// URL with a host".into());
    }
    if u.cannot_be_a_base() {
        return Err("expected an http:// or https:// URL with a path".into());
    }
    Ok(u)
}

/// What one self-ping says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SelfPing {
    /// The sweep ran and nothing is wrong: the plain URL.
    Alive,
    /// The watcher runs but is degraded: `<url>/fail`, with these reasons
    /// (one a line) as the body.
    Degraded(String),
}

/// When the watcher pings itself, and what it says. Pure: every method
/// takes `now`.
#[derive(Debug, Clone)]
pub struct Cadence {
    interval: Duration,
    store_fault_after: Duration,
    last_attempt: Option<Timestamp>,
    in_flight: bool,
}

impl Cadence {
    /// Pings at most once per `interval`; a store fault makes a ping say
    /// degraded once it has lasted `store_fault_after` (the bound after
    /// which the channels hear of it, so a blip fails nothing).
    pub fn new(interval: Duration, store_fault_after: Duration) -> Self {
        Self {
            interval,
            store_fault_after,
            last_attempt: None,
            in_flight: false,
        }
    }

    /// A sweep ended at `now` (`swept`: it succeeded) with the watcher's
    /// health `health`: the ping to send now, if one is due. None while a
    /// ping is in flight or within the interval of the last one (whether
    /// that got through or not: failures are not retried sooner); none
    /// after a failed sweep unless the fault has lasted long enough to say
    /// so. A clock that jumped back before the last ping makes one due.
    ///
    /// A ping returned is in flight until [`finished`](Self::finished).
    #[must_use]
    pub fn after_sweep(
        &mut self,
        now: Timestamp,
        swept: bool,
        health: &HealthReport,
    ) -> Option<SelfPing> {
        if self.in_flight {
            return None;
        }
        if let Some(last) = self.last_attempt
            && now >= last
            && now < add(last, self.interval)
        {
            return None;
        }
        let reasons = degraded_reasons(health, now, self.store_fault_after);
        let ping = if !reasons.is_empty() {
            SelfPing::Degraded(fail_body(&reasons))
        } else if swept {
            SelfPing::Alive
        } else {
            return None;
        };
        self.last_attempt = Some(now);
        self.in_flight = true;
        Some(ping)
    }

    /// The ping in flight ended (got through or not).
    pub fn finished(&mut self) {
        self.in_flight = false;
    }
}

/// The reasons the watcher is degraded at `now`, one per trouble: a
/// store fault only once it has lasted `store_fault_after`; lost data and
/// refusing channels at once.
pub fn degraded_reasons(
    health: &HealthReport,
    now: Timestamp,
    store_fault_after: Duration,
) -> Vec<String> {
    let mut h = health.clone();
    if h.store
        .as_ref()
        .is_some_and(|s| now < add(s.since, store_fault_after))
    {
        h.store = None;
    }
    h.reasons()
}

/// The reasons as a `/fail` body, cut at [`MAX_FAIL_BODY`] bytes.
fn fail_body(reasons: &[String]) -> String {
    let mut body = reasons.join("\n");
    iamalive_core::text::cut_bytes(&mut body, MAX_FAIL_BODY);
    body
}

/// What `/healthz` and `GET /v1/watcher` say about the sweeps and the
/// self-ping.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SelfWatchStatus {
    /// When the last successful sweep of this process ended.
    pub last_sweep_at: Option<Timestamp>,
    /// When the last self-ping got through (a 2xx answer).
    pub last_self_ping_at: Option<Timestamp>,
    /// When the last self-ping was sent, whatever came of it.
    pub last_self_ping_attempt_at: Option<Timestamp>,
    /// Whether the last ping that got through said degraded (`/fail`).
    pub last_self_ping_failed: bool,
    /// Self-pings that did not get through since the start.
    pub self_ping_failures: u64,
    /// Why the last self-ping did not get through, if it did not.
    pub last_self_ping_error: Option<String>,
}

#[derive(Default)]
struct Seen {
    status: SelfWatchStatus,
    cadence: Option<Cadence>,
    task: Option<tokio::task::JoinHandle<()>>,
}

struct Pinger {
    url: reqwest::Url,
    fail_url: reqwest::Url,
    /// Scheme, host and port only, for logs and the API.
    shown: String,
    client: reqwest::Client,
}

/// The sweeps and self-pings of this process: notes each sweep, sends the
/// self-ping when [`Cadence`] says so, and reports both.
pub struct SelfWatch {
    clock: Arc<dyn Clock>,
    pinger: Option<Arc<Pinger>>,
    interval: Option<Duration>,
    seen: Arc<Mutex<Seen>>,
}

impl std::fmt::Debug for SelfWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SelfWatch")
            .field("url", &self.pinger.as_ref().map(|p| p.shown.as_str()))
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

impl SelfWatch {
    /// Watches the sweeps on `clock`; pings per `settings` when set, with
    /// store faults counted after `store_fault_after`.
    pub(crate) fn new(
        settings: Option<&SelfPingSettings>,
        store_fault_after: Duration,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let pinger = settings.and_then(|s| match Pinger::new(s) {
            Ok(p) => Some(Arc::new(p)),
            Err(e) => {
                // The URL was checked with the configuration; only a client
                // that cannot be built (no TLS roots) lands here.
                tracing::error!(error = %e, "self-ping is off: its HTTP client cannot be built");
                None
            }
        });
        let seen = Seen {
            cadence: pinger
                .as_ref()
                .and(settings)
                .map(|s| Cadence::new(s.interval, store_fault_after)),
            ..Seen::default()
        };
        Self {
            clock,
            interval: pinger.as_ref().and(settings).map(|s| s.interval),
            pinger,
            seen: Arc::new(Mutex::new(seen)),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Seen> {
        lock(&self.seen)
    }

    /// What the sweeps and self-pings did so far.
    pub fn status(&self) -> SelfWatchStatus {
        self.lock().status.clone()
    }

    /// The self-ping's URL as shown (scheme, host and port: the rest
    /// usually holds a key) and its interval, when one is set.
    pub fn target(&self) -> Option<(&str, Duration)> {
        Some((self.pinger.as_ref()?.shown.as_str(), self.interval?))
    }

    /// A sweep of `monitor` ended (`swept`: it succeeded): notes it, and
    /// starts the self-ping if one is due. Never waits for the ping.
    pub fn after_sweep(&self, monitor: &DynMonitor, swept: bool) {
        let now = self.clock.now();
        let health = monitor.health();
        let mut seen = self.lock();
        if swept {
            seen.status.last_sweep_at = Some(now);
        }
        self.ping_if_due(&mut seen, now, swept, &health);
    }

    /// A sweep ended (`swept`: it succeeded): notes it for
    /// `last_sweep_at`, and sends no self-ping (for sweeps that are not the
    /// one the ping vouches for, such as a Lambda function's sweep on a
    /// host's recovery).
    pub fn note_sweep(&self, swept: bool) {
        if swept {
            self.lock().status.last_sweep_at = Some(self.clock.now());
        }
    }

    fn ping_if_due(&self, seen: &mut Seen, now: Timestamp, swept: bool, health: &HealthReport) {
        let Some(pinger) = &self.pinger else { return };
        let Some(ping) = seen
            .cadence
            .as_mut()
            .and_then(|c| c.after_sweep(now, swept, health))
        else {
            return;
        };
        seen.status.last_self_ping_attempt_at = Some(now);
        let pinger = Arc::clone(pinger);
        let shared = Arc::clone(&self.seen);
        let clock = Arc::clone(&self.clock);
        seen.task = Some(tokio::spawn(async move {
            // Whatever happens to this task, the next ping is not held up.
            let _done = Finished(Arc::clone(&shared));
            let failed = matches!(ping, SelfPing::Degraded(_));
            let r = pinger.send(&ping).await;
            let at = clock.now();
            let mut seen = lock(&shared);
            match r {
                Ok(()) => {
                    metrics::counter!("iamalive_self_pings_total", "outcome" => if failed { "fail" } else { "ok" }).increment(1);
                    seen.status.last_self_ping_at = Some(at);
                    seen.status.last_self_ping_failed = failed;
                    seen.status.last_self_ping_error = None;
                    tracing::debug!(url = %pinger.shown, degraded = failed, "self-ping sent");
                }
                Err(e) => {
                    metrics::counter!("iamalive_self_ping_failures_total").increment(1);
                    seen.status.self_ping_failures += 1;
                    tracing::warn!(url = %pinger.shown, error = %e, "self-ping did not get through; the next one is due in an interval");
                    seen.status.last_self_ping_error = Some(e);
                }
            }
        }));
    }

    /// Waits for the self-ping in flight, if any (bounded by its timeout).
    /// For a process frozen between invocations (a Lambda function), which
    /// must not leave the ping behind.
    pub async fn settle(&self) {
        let task = self.lock().task.take();
        if let Some(t) = task
            && let Err(e) = t.await
        {
            tracing::warn!(error = %e, "self-ping task failed");
        }
    }
}

fn lock(seen: &Mutex<Seen>) -> std::sync::MutexGuard<'_, Seen> {
    seen.lock().unwrap_or_else(|e| e.into_inner())
}

/// Ends the ping in flight when dropped, even if its task panicked.
struct Finished(Arc<Mutex<Seen>>);

impl Drop for Finished {
    fn drop(&mut self) {
        if let Some(c) = lock(&self.0).cadence.as_mut() {
            c.finished();
        }
    }
}

impl Pinger {
    fn new(s: &SelfPingSettings) -> Result<Self, String> {
        let url = parse_url(s.url.expose())?;
        let mut fail_url = url.clone();
        fail_url
            .path_segments_mut()
            .map_err(|()| "the URL has no path".to_owned())?
            .pop_if_empty()
            .push("fail");
        let shown = match url.port() {
            Some(p) => format!("{}://{}:{p}/…", url.scheme(), url.host_str().unwrap_or("")),
            None => format!("{}://{}/…", url.scheme(), url.host_str().unwrap_or("")),
        };
        let client = reqwest::Client::builder()
            .timeout(s.timeout)
            .connect_timeout(s.timeout)
            .user_agent(concat!(
                "iamalive/",
                env!("CARGO_PKG_VERSION"),
                " self-ping"
            ))
            .build()
            .map_err(|e| e.without_url().to_string())?;
        Ok(Self {
            url,
            fail_url,
            shown,
            client,
        })
    }

    /// POSTs the ping: the URL with an empty body, or `/fail` with the
    /// reasons. Only a 2xx answer got through. Errors never hold the URL.
    async fn send(&self, ping: &SelfPing) -> Result<(), String> {
        let req = match ping {
            SelfPing::Alive => self.client.post(self.url.clone()),
            SelfPing::Degraded(reasons) => self
                .client
                .post(self.fail_url.clone())
                .header(reqwest::header::CONTENT_TYPE, "text/plain; charset=utf-8")
                .body(reasons.clone()),
        };
        let resp = req.send().await.map_err(|e| describe(&e))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let text = resp.text().await.unwrap_or_default();
        let text: String = text.trim().chars().take(200).collect();
        Err(format!("answered {status}: {text}"))
    }
}

/// A request error in words, without the URL (it holds the key).
fn describe(e: &reqwest::Error) -> String {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    match std::error::Error::source(e) {
        Some(s) => format!("{what}: {}", iamalive_core::text::error_chain(s)),
        None => what.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use iamalive_core::health::watcher_notice;
    use iamalive_core::{HealthOptions, ManualClock, Notice, NoticeKind, WatcherHealth};

    fn opts() -> HealthOptions {
        HealthOptions {
            store_fault_after: Duration::from_secs(30),
            reminder_interval: Duration::from_secs(3600),
        }
    }

    fn notice(now: Timestamp) -> Notice {
        watcher_notice(NoticeKind::Alarm, "x", 1, now, now, String::new())
    }

    #[test]
    fn at_most_one_ping_per_interval_and_one_in_flight() {
        let clock = ManualClock::at_millis(1_000_000);
        let healthy = HealthReport::default();
        let mut c = Cadence::new(Duration::from_secs(60), Duration::from_secs(30));
        assert_eq!(
            c.after_sweep(clock.now(), true, &healthy),
            Some(SelfPing::Alive),
            "the first successful sweep pings at once"
        );
        // Sweeps every 5 s: nothing while the first ping is in flight.
        clock.advance(Duration::from_secs(65));
        assert_eq!(c.after_sweep(clock.now(), true, &healthy), None);
        c.finished();
        // The interval counts from the last attempt, not from its end.
        assert_eq!(
            c.after_sweep(clock.now(), true, &healthy),
            Some(SelfPing::Alive)
        );
        c.finished();
        let mut sent = 0;
        for _ in 0..59 {
            clock.advance(Duration::from_secs(1));
            if c.after_sweep(clock.now(), true, &healthy).is_some() {
                sent += 1;
                c.finished();
            }
        }
        assert_eq!(sent, 0, "nothing within the interval");
        clock.advance(Duration::from_secs(1));
        assert_eq!(
            c.after_sweep(clock.now(), true, &healthy),
            Some(SelfPing::Alive),
            "due again a whole interval after the last"
        );
        c.finished();
        // Ten minutes of sweeps every 100 ms: one ping a minute, however
        // each ended (a failure is not retried sooner).
        let mut sent = 0;
        for _ in 0..6000 {
            clock.advance(Duration::from_millis(100));
            if c.after_sweep(clock.now(), true, &healthy).is_some() {
                sent += 1;
                c.finished();
            }
        }
        assert_eq!(sent, 10);
    }

    #[test]
    fn a_failed_sweep_sends_nothing_until_the_fault_has_lasted() {
        let clock = ManualClock::at_millis(1_000_000);
        let mut h = WatcherHealth::new(opts());
        let mut c = Cadence::new(Duration::from_secs(10), Duration::from_secs(30));
        let _ = h.store_failed("disk I/O error", clock.now());
        assert_eq!(c.after_sweep(clock.now(), false, &h.report()), None);
        // A blip (a successful sweep inside the bound) still says alive.
        clock.advance(Duration::from_secs(5));
        assert_eq!(
            c.after_sweep(clock.now(), true, &h.report()),
            Some(SelfPing::Alive)
        );
        c.finished();
        clock.advance(Duration::from_secs(24));
        let _ = h.store_failed("disk I/O error", clock.now());
        assert_eq!(
            c.after_sweep(clock.now(), false, &h.report()),
            None,
            "29 s: inside the bound, and no sweep succeeded"
        );
        clock.advance(Duration::from_secs(1));
        let Some(SelfPing::Degraded(body)) = c.after_sweep(clock.now(), false, &h.report()) else {
            panic!("30 s of store faults: a /fail ping");
        };
        assert!(body.contains("store failing since") && body.contains("disk I/O error"));
        c.finished();
        // Throttled like any ping.
        clock.advance(Duration::from_secs(9));
        assert_eq!(c.after_sweep(clock.now(), false, &h.report()), None);
        // The store is back, and has worked for the bound: the next ping
        // says alive.
        let _ = h.store_ok(clock.now());
        clock.advance(Duration::from_secs(30));
        let _ = h.store_ok(clock.now());
        clock.advance(Duration::from_secs(1));
        assert_eq!(
            c.after_sweep(clock.now(), true, &h.report()),
            Some(SelfPing::Alive)
        );
    }

    #[test]
    fn a_refusing_channel_or_lost_data_fails_at_once_and_the_body_is_bounded() {
        let clock = ManualClock::at_millis(1_000_000);
        let mut h = WatcherHealth::new(opts());
        let mut c = Cadence::new(Duration::from_secs(10), Duration::from_secs(30));
        let _ = h.channel_refused("smtp", &notice(clock.now()), "550 quota", clock.now());
        let Some(SelfPing::Degraded(body)) = c.after_sweep(clock.now(), true, &h.report()) else {
            panic!("a refusing channel: /fail");
        };
        assert!(body.contains("channel smtp refusing") && body.contains("550 quota"));
        c.finished();
        let _ = h.channel_delivered("smtp", clock.now());
        let _ = h.store_lost(&"deleted ".repeat(500), clock.now());
        clock.advance(Duration::from_secs(10));
        let Some(SelfPing::Degraded(body)) = c.after_sweep(clock.now(), true, &h.report()) else {
            panic!("lost data: /fail");
        };
        assert!(body.starts_with("store data lost"));
        assert!(body.len() <= MAX_FAIL_BODY, "{}", body.len());
    }

    #[test]
    fn a_clock_that_jumps_back_does_not_stop_the_pings() {
        let clock = ManualClock::at_millis(10_000_000);
        let healthy = HealthReport::default();
        let mut c = Cadence::new(Duration::from_secs(60), Duration::from_secs(30));
        assert!(c.after_sweep(clock.now(), true, &healthy).is_some());
        c.finished();
        clock.set(chrono::DateTime::from_timestamp_millis(10_000_000 - 3_600_000).unwrap());
        assert_eq!(
            c.after_sweep(clock.now(), true, &healthy),
            Some(SelfPing::Alive)
        );
    }

    #[test]
    fn settings_are_checked_and_never_echo_the_url() {
        let t = |url: Option<&str>, interval: Option<u64>, timeout: Option<u64>| {
            SelfPingTable {
                url: url.map(str::to_owned),
                interval: interval.map(Duration::from_millis),
                timeout: timeout.map(Duration::from_millis),
            }
            .resolve()
        };
        assert_eq!(t(None, None, None), Ok(None));
        let s = t(Some("https://hc-ping.com/abc-secret"), None, None)
            .unwrap()
            .unwrap();
        assert_eq!(s.interval, Duration::from_secs(60));
        assert_eq!(s.timeout, Duration::from_secs(10));
        let s = t(Some("http://127.0.0.1:1/ping/k/h"), Some(500), None)
            .unwrap()
            .unwrap();
        assert_eq!(
            s.timeout,
            Duration::from_millis(500),
            "capped by the interval"
        );
        let e = t(None, Some(1000), None).unwrap_err();
        assert!(e.key.contains("IAMALIVE_SELF_PING_URL"), "{e}");
        for bad in ["ftp://x/secret-1", "not a url secret-1", "mailto:secret-1"] {
            let e = t(Some(bad), None, None).unwrap_err();
            assert!(!e.to_string().contains("secret-1"), "{e}");
        }
        assert!(t(Some("http://x/p"), Some(0), None).is_err());
        assert!(t(Some("http://x/p"), None, Some(0)).is_err());
    }

    #[test]
    fn the_fail_url_appends_a_segment_and_keeps_the_query() {
        let p = |u: &str| {
            Pinger::new(&SelfPingSettings {
                url: Secret::new(u),
                interval: Duration::from_secs(1),
                timeout: Duration::from_secs(1),
            })
            .unwrap()
        };
        assert_eq!(
            p("http://127.0.0.1:8080/ping/KEY/watcher-a")
                .fail_url
                .as_str(),
            "http://127.0.0.1:8080/ping/KEY/watcher-a/fail"
        );
        let hc = p("https://hc-ping.com/5f1b/?create=1");
        assert_eq!(
            hc.fail_url.as_str(),
            "https://hc-ping.com/5f1b/fail?create=1"
        );
        assert_eq!(hc.shown, "https://hc-ping.com/…");
        assert!(!format!("{:?}", hc.shown).contains("5f1b"));
    }
}
