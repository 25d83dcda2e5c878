//! The watcher's own health: channels that refuse notices for good and a
//! store that keeps failing, and the notices that tell the team about them.
//!
//! A dead man's switch must never go blind quietly. A refusing channel or a
//! failing store does not stop the other channels from working, so each
//! trouble is announced through them: once when it begins (a store fault
//! only once it has lasted [`HealthOptions::store_fault_after`]), again at
//! most once per [`HealthOptions::reminder_interval`] while it lasts, and
//! with an all-clear when it ends.
//!
//! Pure, like [`decide`](crate::decide): every method takes `now` and
//! returns the notice to send, if any; the [`Monitor`](crate::Monitor)
//! delivers it. The state is the process's own (it is about this watcher),
//! not shared through the store, which may be the thing that is down.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::model::{add, since};
use crate::{HostId, Notice, NoticeKind, Timestamp};

/// The host name watcher notices carry (they concern the watcher itself).
pub const WATCHER_HOST: &str = "iamalive-watcher";

/// When the watcher speaks about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthOptions {
    /// How long the store must keep failing before the team is told (a
    /// blip is not worth a notice). Default 30 s.
    pub store_fault_after: Duration,
    /// The least time between two notices about one ongoing trouble.
    /// Default 1 hour.
    pub reminder_interval: Duration,
}

impl Default for HealthOptions {
    fn default() -> Self {
        Self {
            store_fault_after: Duration::from_secs(30),
            reminder_interval: Duration::from_secs(3600),
        }
    }
}

/// A notice about the watcher itself, and the channel it must not go to
/// (the one it is about).
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct Announcement {
    /// The notice.
    pub notice: Notice,
    /// A channel to leave out: a refusing channel is not told it refuses.
    pub except: Option<String>,
}

impl Announcement {
    /// `notice` for every channel.
    fn to_all(notice: Notice) -> Option<Self> {
        Some(Self {
            notice,
            except: None,
        })
    }

    /// The all-clear of the trouble `outage`, begun at `since_at`, for
    /// every channel.
    fn restored(outage: &str, since_at: Timestamp, now: Timestamp, text: String) -> Option<Self> {
        Self::to_all(watcher_notice(
            NoticeKind::Restored,
            outage,
            0,
            since_at,
            now,
            text,
        ))
    }
}

/// One channel that refused a notice for good.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChannelTrouble {
    /// The channel's name.
    pub channel: String,
    /// Its first refusal in this stretch.
    pub since: Timestamp,
    /// Its latest refusal.
    pub last_at: Timestamp,
    /// What it said the last time.
    pub reason: String,
    /// The notice it refused last.
    pub last_notice: String,
    /// Notices refused in this stretch.
    pub refused: u64,
    #[serde(skip)]
    announced: Option<Timestamp>,
    #[serde(skip)]
    announced_count: u64,
}

/// A store that fails.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoreTrouble {
    /// The first failure in this stretch.
    pub since: Timestamp,
    /// The latest error.
    pub error: String,
    /// Failed operations in this stretch.
    pub failures: u64,
    #[serde(skip)]
    announced: Option<Timestamp>,
    /// Working again since (no failure after it): the stretch ends once
    /// it has worked for the fault bound, so a store that fails most of the
    /// time, with a success in between, is still a fault.
    #[serde(skip)]
    ok_since: Option<Timestamp>,
}

impl StoreTrouble {
    /// The outage id of this stretch: `watcher/<what>@<since in ms>`.
    fn outage(&self, what: &str) -> String {
        format!("watcher/{what}@{}", self.since.timestamp_millis())
    }

    /// The watcher-degraded notice of this stretch, saying `text`, for
    /// every channel.
    fn degraded(&self, what: &str, now: Timestamp, text: String) -> Option<Announcement> {
        Announcement::to_all(watcher_notice(
            NoticeKind::Degraded,
            &self.outage(what),
            self.failures,
            self.since,
            now,
            text,
        ))
    }
}

/// What is wrong with the watcher now, for `/healthz` and the API.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct HealthReport {
    /// The store keeps failing (heartbeats cannot be stored, sweeps fail).
    pub store: Option<StoreTrouble>,
    /// The store's data was lost or replaced ([`Store::check`] found it),
    /// until a later check passes.
    ///
    /// [`Store::check`]: crate::Store::check
    pub lost: Option<StoreTrouble>,
    /// Channels that refused a notice and have not delivered one since.
    pub channels: Vec<ChannelTrouble>,
}

impl HealthReport {
    /// Whether anything is wrong.
    pub fn degraded(&self) -> bool {
        self.store.is_some() || self.lost.is_some() || !self.channels.is_empty()
    }

    /// Whether the store cannot be trusted now (failing, or its data lost):
    /// what makes `/healthz` answer 503.
    pub fn store_down(&self) -> bool {
        self.store.is_some() || self.lost.is_some()
    }

    /// One line per trouble, for people.
    pub fn reasons(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(s) = &self.store {
            out.push(format!(
                "store failing since {} ({} failures): {}",
                rfc3339(s.since),
                s.failures,
                s.error
            ));
        }
        if let Some(l) = &self.lost {
            out.push(format!(
                "store data lost since {}: {}",
                rfc3339(l.since),
                l.error
            ));
        }
        for c in &self.channels {
            out.push(format!(
                "channel {} refusing notices since {} ({} refused): {}",
                c.channel,
                rfc3339(c.since),
                c.refused,
                c.reason
            ));
        }
        out
    }
}

/// The watcher's troubles and what it has said about them.
#[derive(Debug, Clone, Default)]
pub struct WatcherHealth {
    opts: HealthOptions,
    store: Option<StoreTrouble>,
    lost: Option<StoreTrouble>,
    channels: BTreeMap<String, ChannelTrouble>,
}

impl WatcherHealth {
    /// Healthy, with `opts`.
    pub fn new(opts: HealthOptions) -> Self {
        Self {
            opts,
            ..Self::default()
        }
    }

    /// What is wrong now.
    pub fn report(&self) -> HealthReport {
        HealthReport {
            store: self.store.clone(),
            lost: self.lost.clone(),
            channels: self.channels.values().cloned().collect(),
        }
    }

    /// `channel` refused `notice` for good, saying `reason`. Announced to
    /// the other channels the first time, then with a count at most once
    /// per reminder interval.
    pub fn channel_refused(
        &mut self,
        channel: &str,
        notice: &Notice,
        reason: &str,
        now: Timestamp,
    ) -> Option<Announcement> {
        let t = self
            .channels
            .entry(channel.to_owned())
            .or_insert_with(|| ChannelTrouble {
                channel: channel.to_owned(),
                since: now,
                last_at: now,
                reason: String::new(),
                last_notice: String::new(),
                refused: 0,
                announced: None,
                announced_count: 0,
            });
        t.last_at = now;
        t.reason = reason.to_owned();
        t.last_notice.clone_from(&notice.id);
        t.refused += 1;
        if t.announced
            .is_some_and(|a| now < add(a, self.opts.reminder_interval))
        {
            return None;
        }
        t.announced = Some(now);
        t.announced_count += 1;
        let text = if t.announced_count == 1 {
            format!(
                "Channel {channel} refused the {} for {} (notice {}): {reason}. \
                 The notice is retried there only while no other channel has taken it.",
                notice.kind, notice.host, notice.id
            )
        } else {
            format!(
                "Channel {channel} still refuses notices: {} since {}; the last, the {} for {}, with: {reason}",
                t.refused,
                rfc3339(t.since),
                notice.kind,
                notice.host
            )
        };
        let n = t.announced_count;
        let outage = format!("watcher/channel/{channel}@{}", t.since.timestamp_millis());
        Some(Announcement {
            notice: watcher_notice(NoticeKind::Degraded, &outage, n, t.since, now, text),
            except: Some(channel.to_owned()),
        })
    }

    /// `channel` took a notice: if it was refusing, that is over, and every
    /// channel hears so.
    pub fn channel_delivered(&mut self, channel: &str, now: Timestamp) -> Option<Announcement> {
        let t = self.channels.remove(channel)?;
        let outage = format!("watcher/channel/{channel}@{}", t.since.timestamp_millis());
        let text = format!(
            "Channel {channel} delivers again. It refused {} notice(s) from {} to {}; the last reason: {}",
            t.refused,
            rfc3339(t.since),
            rfc3339(t.last_at),
            t.reason
        );
        Announcement::restored(&outage, t.since, now, text)
    }

    /// A store operation failed with `error`. Announced on every channel
    /// once the failures have lasted `store_fault_after`, then at most once
    /// per reminder interval.
    pub fn store_failed(&mut self, error: &str, now: Timestamp) -> Option<Announcement> {
        let t = self.store.get_or_insert_with(|| StoreTrouble {
            since: now,
            error: String::new(),
            failures: 0,
            announced: None,
            ok_since: None,
        });
        t.error = error.to_owned();
        t.failures += 1;
        t.ok_since = None;
        self.due_store_notice(now)
    }

    /// The store notice owed at `now`, if the fault has lasted long enough
    /// and nothing was said about it within the reminder interval.
    pub fn due_store_notice(&mut self, now: Timestamp) -> Option<Announcement> {
        let opts = self.opts;
        let t = self.store.as_mut()?;
        if now < add(t.since, opts.store_fault_after)
            || t.ok_since.is_some()
            || t.announced
                .is_some_and(|a| now < add(a, opts.reminder_interval))
        {
            return None;
        }
        let first = t.announced.is_none();
        t.announced = Some(now);
        let text = format!(
            "The watcher cannot use its store since {} ({} for {}; {} failed operations): {}. \
             Heartbeats may be refused and silent hosts not alarmed until it is back.",
            rfc3339(t.since),
            if first {
                "first notice"
            } else {
                "still failing"
            },
            human(since(now, t.since)),
            t.failures,
            t.error
        );
        t.degraded("store", now, text)
    }

    /// Whether the store is in trouble (a cheap check for the hot path).
    pub fn store_troubled(&self) -> bool {
        self.store.is_some()
    }

    /// A store operation succeeded. A fault is over once the store has
    /// worked for `store_fault_after` with no failure (a success between
    /// failures does not end it); its all-clear goes out only if the fault
    /// was announced.
    pub fn store_ok(&mut self, now: Timestamp) -> Option<Announcement> {
        let t = self.store.as_mut()?;
        let ok_since = *t.ok_since.get_or_insert(now);
        if now < add(ok_since, self.opts.store_fault_after) {
            return None;
        }
        let t = self.store.take()?;
        t.announced?;
        let outage = t.outage("store");
        let text = format!(
            "The watcher's store works again after {} ({} failed operations since {}).",
            human(since(now, t.since)),
            t.failures,
            rfc3339(t.since)
        );
        Announcement::restored(&outage, t.since, now, text)
    }
}

impl WatcherHealth {
    /// The store's check found its data lost or replaced (`error` says
    /// how). Announced on every channel at once (this is no blip to wait
    /// out), again when what the check says changes, and otherwise at most
    /// once per reminder interval while it lasts.
    pub fn store_lost(&mut self, error: &str, now: Timestamp) -> Option<Announcement> {
        let t = self.lost.get_or_insert_with(|| StoreTrouble {
            since: now,
            error: String::new(),
            failures: 0,
            announced: None,
            ok_since: None,
        });
        let changed = t.error != error;
        t.error = error.to_owned();
        t.failures += 1;
        if !changed
            && t.announced
                .is_some_and(|a| now < add(a, self.opts.reminder_interval))
        {
            return None;
        }
        t.announced = Some(now);
        let text = format!(
            "The watcher's store lost its data or was replaced (found {}; {} check(s) since {}): {}",
            rfc3339(now),
            t.failures,
            rfc3339(t.since),
            t.error
        );
        t.degraded("store-lost", now, text)
    }

    /// The store's check passed: a loss it had reported is over (the data
    /// lost stays lost; the all-clear says so).
    pub fn store_check_ok(&mut self, now: Timestamp) -> Option<Announcement> {
        let t = self.lost.take()?;
        let outage = t.outage("store-lost");
        let text = format!(
            "The watcher's store checks out again after {} (since {} it had reported: {}). \
             What was lost stays lost: hosts that still run are known again from their next \
             heartbeat; hosts that were already silent are not watched until they report.",
            human(since(now, t.since)),
            rfc3339(t.since),
            t.error
        );
        Announcement::restored(&outage, t.since, now, text)
    }
}

/// A notice about the watcher itself: `outage` identifies the trouble,
/// `n` numbers the notices about it (0 for the all-clear).
pub fn watcher_notice(
    kind: NoticeKind,
    outage: &str,
    n: u64,
    since_at: Timestamp,
    now: Timestamp,
    text: String,
) -> Notice {
    let id = match kind {
        NoticeKind::Restored => format!("{outage}/restored"),
        _ => format!("{outage}/{kind}/{n}"),
    };
    Notice {
        last_seen: since_at,
        missing_since: since_at,
        recovered_at: (kind == NoticeKind::Restored).then_some(now),
        silent_for: since(now, since_at),
        alarm_count: u32::try_from(n).unwrap_or(u32::MAX),
        message: Some(text),
        ..Notice::new(id, outage.to_owned(), kind, watcher_host(), now)
    }
}

/// The host id watcher notices carry.
pub fn watcher_host() -> HostId {
    HostId::new(WATCHER_HOST).expect("a valid host id")
}

fn rfc3339(t: Timestamp) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn human(d: Duration) -> String {
    humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> Timestamp {
        chrono::DateTime::from_timestamp(1_767_225_600 + s, 0).expect("in range")
    }

    fn alarm(host: &str) -> Notice {
        let mut n = watcher_notice(NoticeKind::Alarm, "x", 1, t(0), t(0), String::new());
        n.host = HostId::new(host).unwrap();
        n.id = format!("{host}@0/alarm/1");
        n
    }

    fn opts() -> HealthOptions {
        HealthOptions {
            store_fault_after: Duration::from_secs(30),
            reminder_interval: Duration::from_secs(600),
        }
    }

    #[test]
    fn a_refusing_channel_is_announced_once_then_throttled_then_cleared() {
        let mut h = WatcherHealth::new(opts());
        let a = h
            .channel_refused("smtp", &alarm("db-1"), "550 quota exceeded", t(10))
            .expect("the first refusal is announced");
        assert_eq!(a.except.as_deref(), Some("smtp"));
        assert_eq!(a.notice.kind, NoticeKind::Degraded);
        let text = a.notice.message.as_deref().unwrap();
        assert!(
            text.contains("smtp") && text.contains("db-1") && text.contains("550 quota"),
            "{text}"
        );
        // 5,000 more refusals inside the interval: not one more notice.
        for i in 0..5_000 {
            assert!(
                h.channel_refused("smtp", &alarm("junk"), "550", t(11 + i % 500))
                    .is_none()
            );
        }
        assert!(h.report().degraded());
        assert_eq!(h.report().channels[0].refused, 5_001);
        let again = h
            .channel_refused("smtp", &alarm("db-2"), "550", t(610))
            .expect("one reminder per interval");
        assert!(again.notice.message.unwrap().contains("5002"));
        assert_ne!(again.notice.id, a.notice.id);
        let back = h.channel_delivered("smtp", t(700)).expect("all-clear");
        assert_eq!(back.notice.kind, NoticeKind::Restored);
        assert_eq!(back.except, None);
        assert_eq!(back.notice.outage_id, a.notice.outage_id);
        assert!(!h.report().degraded());
        assert!(h.channel_delivered("smtp", t(701)).is_none());
    }

    #[test]
    fn a_store_fault_is_announced_after_the_bound_and_cleared_only_if_announced() {
        let mut h = WatcherHealth::new(opts());
        assert!(h.store_failed("disk full", t(0)).is_none());
        assert!(h.store_failed("disk full", t(29)).is_none());
        // A blip that ends before the bound says nothing at all; it is over
        // once the store has worked for the bound.
        assert!(h.store_ok(t(29)).is_none());
        assert!(h.store_ok(t(58)).is_none());
        assert!(h.store_troubled(), "working for 29 s only");
        assert!(h.store_ok(t(59)).is_none());
        assert!(!h.report().degraded());

        assert!(h.store_failed("disk full", t(100)).is_none());
        assert!(h.due_store_notice(t(129)).is_none());
        let a = h.due_store_notice(t(130)).expect("after 30 s");
        assert_eq!(a.notice.kind, NoticeKind::Degraded);
        assert!(a.notice.message.as_deref().unwrap().contains("disk full"));
        assert!(h.store_failed("disk full", t(200)).is_none(), "throttled");
        assert!(h.due_store_notice(t(729)).is_none());
        let r = h.due_store_notice(t(730)).expect("reminder");
        assert_ne!(r.notice.id, a.notice.id);
        assert!(h.store_ok(t(800)).is_none(), "working again: not yet over");
        let ok = h
            .store_ok(t(830))
            .expect("all-clear after an announced fault, worked for the bound");
        assert_eq!(ok.notice.kind, NoticeKind::Restored);
        assert_eq!(ok.notice.outage_id, a.notice.outage_id);
        assert!(!h.store_troubled());
    }

    #[test]
    fn a_store_that_fails_most_of_the_time_is_a_fault() {
        let mut h = WatcherHealth::new(opts());
        // Fails for 8 s, works for 1 s, again and again.
        let mut said = Vec::new();
        for cycle in 0..6 {
            let t0 = cycle * 9;
            for s in 0..8 {
                said.extend(h.store_failed("timed out", t(t0 + s)));
            }
            said.extend(h.store_ok(t(t0 + 8)));
        }
        assert_eq!(said.len(), 1, "announced once: {said:?}");
        assert_eq!(said[0].notice.kind, NoticeKind::Degraded);
        assert!(h.report().degraded());
    }

    #[test]
    fn a_store_loss_is_announced_at_once_and_cleared_by_a_passing_check() {
        let mut h = WatcherHealth::new(opts());
        let a = h
            .store_lost("file deleted", t(0))
            .expect("at once, no bound to wait out");
        assert_eq!(a.notice.kind, NoticeKind::Degraded);
        assert!(
            a.notice
                .message
                .as_deref()
                .unwrap()
                .contains("file deleted")
        );
        assert!(h.report().store_down());
        // Still lost at the next checks: throttled.
        assert!(h.store_lost("file deleted", t(5)).is_none());
        // A successful store call does not clear it; only a passing check.
        assert!(h.store_ok(t(6)).is_none());
        assert!(h.report().store_down());
        // What the check says changed: said again at once.
        let b = h.store_lost("file replaced", t(7)).expect("a new finding");
        assert_ne!(b.notice.id, a.notice.id);
        assert!(h.store_lost("file replaced", t(606)).is_none());
        assert!(h.store_lost("file replaced", t(607)).is_some(), "reminder");
        let ok = h.store_check_ok(t(700)).expect("all-clear");
        assert_eq!(ok.notice.kind, NoticeKind::Restored);
        assert_eq!(ok.notice.outage_id, a.notice.outage_id);
        assert!(!h.report().degraded());
        assert!(h.store_check_ok(t(701)).is_none());
    }
}
