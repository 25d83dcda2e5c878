//! Rejected heartbeats, counted per host in bounded memory, so the monitor
//! can say why it may be blind to a host.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use iamalive_core::{BlindProbe, Clock, HostId, Timestamp, add};

/// The most hosts whose rejections are remembered at once; beyond it the
/// entry rejected least recently is forgotten.
pub const DEFAULT_MAX_HOSTS: usize = 10_000;

#[derive(Debug, Clone)]
struct Entry {
    first: Timestamp,
    last: Timestamp,
    count: u64,
    last_reason: &'static str,
}

/// Counts rejected heartbeats per host.
///
/// A run of rejections with gaps shorter than `window` is one episode; the
/// probe reports the current episode while its last rejection is younger
/// than `window`. Requests whose host could not be read are counted apart.
pub struct Rejections {
    clock: Arc<dyn Clock>,
    window: Duration,
    max_hosts: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    hosts: HashMap<HostId, Entry>,
    unattributed: u64,
}

impl std::fmt::Debug for Rejections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rejections")
            .field("window", &self.window)
            .field("max_hosts", &self.max_hosts)
            .finish_non_exhaustive()
    }
}

impl Rejections {
    /// A counter remembering episodes for `window`, for at most `max_hosts` hosts.
    pub fn new(clock: Arc<dyn Clock>, window: Duration, max_hosts: usize) -> Self {
        Self {
            clock,
            window,
            max_hosts: max_hosts.max(1),
            inner: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts one rejected heartbeat; `host` is `None` when it could not be read.
    pub fn record(&self, host: Option<&HostId>, reason: &'static str) {
        metrics::counter!("iamalive_rejected_heartbeats_total", "reason" => reason).increment(1);
        let now = self.clock.now();
        let mut g = self.lock();
        let Some(host) = host else {
            g.unattributed += 1;
            return;
        };
        if let Some(e) = g.hosts.get_mut(host) {
            if add(e.last, self.window) < now {
                *e = Entry {
                    first: now,
                    last: now,
                    count: 0,
                    last_reason: reason,
                };
            }
            e.count += 1;
            e.last = e.last.max(now);
            e.last_reason = reason;
            return;
        }
        if g.hosts.len() >= self.max_hosts {
            let window = self.window;
            g.hosts.retain(|_, e| add(e.last, window) >= now);
            if g.hosts.len() >= self.max_hosts
                && let Some(oldest) = g
                    .hosts
                    .iter()
                    .min_by_key(|(_, e)| e.last)
                    .map(|(h, _)| h.clone())
            {
                g.hosts.remove(&oldest);
            }
        }
        g.hosts.insert(
            host.clone(),
            Entry {
                first: now,
                last: now,
                count: 1,
                last_reason: reason,
            },
        );
    }

    /// Rejections whose host could not be read, since start.
    pub fn unattributed(&self) -> u64 {
        self.lock().unattributed
    }

    /// How many hosts have a remembered episode.
    pub fn tracked_hosts(&self) -> usize {
        self.lock().hosts.len()
    }

    /// The current episode for `host`, as a sentence for a notice.
    pub fn describe(&self, host: &HostId) -> Option<String> {
        let now = self.clock.now();
        let g = self.lock();
        let e = g.hosts.get(host)?;
        if add(e.last, self.window) < now {
            return None;
        }
        let ts = |t: &Timestamp| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let (first, last) = (ts(&e.first), ts(&e.last));
        let (what, when) = match e.count {
            1 => (
                "1 heartbeat for this host was".to_owned(),
                format!("at {first}"),
            ),
            n if first == last => (
                format!("{n} heartbeats for this host were"),
                format!("at {first}"),
            ),
            n => (
                format!("{n} heartbeats for this host were"),
                format!("between {first} and {last}"),
            ),
        };
        Some(format!(
            "{what} rejected by the watcher {when} (last reason: {}); the host may be alive but unable to report",
            e.last_reason
        ))
    }

    /// A probe for [`Monitor::with_blind_probe`](iamalive_core::Monitor::with_blind_probe).
    pub fn probe(self: &Arc<Self>) -> BlindProbe {
        let me = Arc::clone(self);
        Arc::new(move |h: &HostId| me.describe(h))
    }
}

/// How long one window of the rejection log lasts.
pub const LOG_WINDOW: Duration = Duration::from_secs(10);

/// How many rejections of one reason are logged one by one in a window.
pub const LOGGED_PER_REASON: u64 = 3;

/// Keeps the log of rejected requests bounded under a flood: in each
/// window the first few rejections of each reason are logged one by one,
/// and when the window ends one line sums it up
/// (`12345 requests rejected in the last 10s: 12340 missing API key, 5 invalid host id`).
pub(crate) struct RejectionLog {
    clock: Arc<dyn Clock>,
    window: Duration,
    per_reason: u64,
    inner: Mutex<LogWindow>,
}

#[derive(Default)]
struct LogWindow {
    start: Option<Timestamp>,
    counts: Vec<(&'static str, u64)>,
}

impl RejectionLog {
    /// A log summarised every `window`, `per_reason` lines of each reason.
    pub(crate) fn new(clock: Arc<dyn Clock>, window: Duration, per_reason: u64) -> Self {
        Self {
            clock,
            window,
            per_reason,
            inner: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LogWindow> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts one rejected request (or connection) and says whether to log
    /// it one by one. A window that has ended is summed up first.
    pub(crate) fn note(&self, reason: &'static str) -> bool {
        metrics::counter!("iamalive_rejected_requests_total", "reason" => reason).increment(1);
        let now = self.clock.now();
        let (ended, log) = {
            let mut g = self.lock();
            let ended = self.take_ended(&mut g, now);
            if g.start.is_none() {
                g.start = Some(now);
            }
            let n = match g.counts.iter_mut().find(|(r, _)| *r == reason) {
                Some((_, n)) => {
                    *n += 1;
                    *n
                }
                None => {
                    g.counts.push((reason, 1));
                    1
                }
            };
            (ended, n <= self.per_reason)
        };
        if let Some(line) = ended {
            tracing::info!("{line}");
        }
        log
    }

    /// Sums up the window if it has ended (a timer calls this, so the last
    /// window of a flood is summed up too).
    pub(crate) fn flush(&self) {
        self.flush_at(self.clock.now());
    }

    /// Sums up the current window even though it has not ended (at
    /// shutdown, so a flood's last seconds are not lost).
    pub(crate) fn flush_all(&self) {
        self.flush_at(add(self.clock.now(), self.window));
    }

    fn flush_at(&self, now: Timestamp) {
        let ended = {
            let mut g = self.lock();
            self.take_ended(&mut g, now)
        };
        if let Some(line) = ended {
            tracing::info!("{line}");
        }
    }

    /// The summary of an ended window, if any of its rejections went
    /// unlogged; the window is reset either way.
    fn take_ended(&self, g: &mut LogWindow, now: Timestamp) -> Option<String> {
        let start = g.start?;
        if now < add(start, self.window) {
            return None;
        }
        let mut counts = std::mem::take(&mut g.counts);
        g.start = None;
        let total: u64 = counts.iter().map(|(_, n)| n).sum();
        let logged: u64 = counts.iter().map(|(_, n)| (*n).min(self.per_reason)).sum();
        if total == logged {
            return None;
        }
        counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let list: Vec<String> = counts.iter().map(|(r, n)| format!("{n} {r}")).collect();
        Some(format!(
            "{total} requests rejected in the last {}: {} ({} not logged one by one)",
            humantime::format_duration(self.window),
            list.join(", "),
            total - logged
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use iamalive_core::ManualClock;

    #[test]
    fn the_rejection_log_logs_a_few_then_sums_up() {
        let clock = ManualClock::at_millis(0);
        let log = RejectionLog::new(Arc::new(clock.clone()), Duration::from_secs(10), 2);
        let logged = (0..1000).filter(|_| log.note("missing API key")).count();
        assert_eq!(logged, 2);
        assert!(log.note("invalid host id"));
        let mut g = log.lock();
        assert_eq!(log.take_ended(&mut g, clock.now()), None);
        clock.advance(Duration::from_secs(10));
        let line = log.take_ended(&mut g, clock.now()).unwrap();
        assert_eq!(
            line,
            "1001 requests rejected in the last 10s: 1000 missing API key, \
             1 invalid host id (998 not logged one by one)"
        );
        assert!(g.counts.is_empty() && g.start.is_none());
        drop(g);
        // A quiet window with nothing suppressed says nothing more.
        assert!(log.note("missing API key"));
        clock.advance(Duration::from_secs(11));
        assert_eq!(log.take_ended(&mut log.lock(), clock.now()), None);
    }

    #[test]
    fn episodes_expire_and_memory_is_bounded() {
        let clock = ManualClock::at_millis(0);
        let r = Rejections::new(Arc::new(clock.clone()), Duration::from_secs(60), 2);
        let a = HostId::new("a").unwrap();
        r.record(Some(&a), "rate limited");
        clock.advance(Duration::from_secs(30));
        r.record(Some(&a), "invalid key");
        let d = r.describe(&a).unwrap();
        assert!(
            d.starts_with("2 heartbeats") && d.contains("invalid key"),
            "{d}"
        );
        clock.advance(Duration::from_secs(61));
        assert_eq!(r.describe(&a), None);
        r.record(Some(&a), "rate limited");
        assert!(r.describe(&a).unwrap().starts_with("1 heartbeat for"));
        for h in ["b", "c", "d"] {
            clock.advance(Duration::from_secs(1));
            r.record(Some(&HostId::new(h).unwrap()), "invalid key");
        }
        assert_eq!(r.tracked_hosts(), 2);
        r.record(None, "bad json");
        assert_eq!(r.unattributed(), 1);
    }
}
