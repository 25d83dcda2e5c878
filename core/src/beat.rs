//! "Missed a beat": the interval a host keeps between its heartbeats, and
//! when its next one is overdue.
//!
//! A host silent for a whole timeout is missing; one that is merely late
//! for its next beat is not yet, but when most hosts of a site are late
//! together that is evidence of a site outage minutes before their
//! timeouts run out (see [`crate::group_outage`]: a group deciding its
//! outage counts such hosts and names them with `missed_beat`).
//!
//! The interval comes from the host itself when its agent sends one
//! (`"interval"` in the JSON heartbeat: [`IntervalSource::Sent`]), or is
//! *learned* from the gaps between its beats when it does not (ping URLs,
//! old agents: [`IntervalSource::Learned`]).
//!
//! **The learning rule.** Each heartbeat without an interval, landing on
//! an `up` host, records the gap since the host's previous beat and keeps
//! the gap before it; the learned interval is the **larger of the last two
//! gaps**. Why not the last gap alone, or an average: one early beat (a
//! retry, a cron job run by hand) would shrink the last gap to seconds and
//! claim a missed beat a few seconds later, and an average needs a
//! multiplication that DynamoDB's update expressions cannot do (the
//! heartbeat stays one write without a read on every store). The larger of
//! two is robust to one odd beat and errs late, never early: one lost beat
//! lengthens the learned interval for two beats, which only delays the
//! evidence. Gaps across an outage are never learned (the host is not up
//! when its first beat after the silence lands), and a beat that carries
//! an interval replaces the sent one while one without clears it, so the
//! record always says what the host's latest beat said.
//!
//! **Expected by.** `last_seen + interval + tolerance`, the tolerance
//! being `max(interval / 2, 10 s)`: half an interval covers an agent's
//! jitter and its retries of a failed beat (the agent retries within its
//! interval), and ten seconds keeps a very short interval from claiming a
//! missed beat on network latency alone. A host is said to have **missed
//! a beat** at `now` when it is up, `now` is past `expected_by` and its own
//! timeout has not yet run out (then it is missing, which says more). A
//! host on a cron schedule has its own expectation (its schedule), so it
//! never counts as having missed a beat here.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::model::add;
use crate::{HostRecord, Policy, Status, Timestamp};

/// The smallest tolerance past the interval before a beat counts as
/// missed.
pub const MIN_TOLERANCE: Duration = Duration::from_secs(10);

/// Where a host's interval comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IntervalSource {
    /// Its agent sends it with each heartbeat.
    Sent,
    /// Learned from the gaps between its beats (the larger of the last two).
    Learned,
}

impl IntervalSource {
    /// `sent` or `learned`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sent => "sent",
            Self::Learned => "learned",
        }
    }
}

/// A host's heartbeat interval as stored with it: the one its latest beat
/// sent, and the last two gaps between its beats (all in milliseconds,
/// 0 for none). Small and `Copy`, so a record stays cheap to clone.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interval {
    /// The interval its latest beat sent, in milliseconds; 0 when that
    /// beat sent none.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub sent_ms: u64,
    /// The gap before its latest beat (learned while up), in milliseconds.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub gap_ms: u64,
    /// The gap before that one.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub prev_gap_ms: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// A duration in whole milliseconds, saturating; at least 1 for a
/// positive duration (0 means none).
pub fn to_ms(d: Duration) -> u64 {
    let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    if ms == 0 && !d.is_zero() { 1 } else { ms }
}

impl Interval {
    /// Whether nothing is known (nothing to store).
    pub fn is_empty(&self) -> bool {
        self.sent_ms == 0 && self.gap_ms == 0 && self.prev_gap_ms == 0
    }

    /// The interval in effect and where it comes from: the sent one, else
    /// the larger of the last two gaps; `None` when neither is known.
    pub fn get(&self) -> Option<(Duration, IntervalSource)> {
        if self.sent_ms > 0 {
            return Some((Duration::from_millis(self.sent_ms), IntervalSource::Sent));
        }
        let learned = self.gap_ms.max(self.prev_gap_ms);
        (learned > 0).then(|| (Duration::from_millis(learned), IntervalSource::Learned))
    }

    /// What a heartbeat does to it (the rule of the [module docs](self)):
    /// `sent` is the beat's interval; `gap` the time since the host's
    /// previous beat when the host is up and the beat is not out of order
    /// (`None` otherwise: nothing is learned).
    pub fn on_heartbeat(&mut self, sent: Option<Duration>, gap: Option<Duration>) {
        match sent {
            Some(i) => self.sent_ms = to_ms(i),
            None => {
                self.sent_ms = 0;
                if let Some(g) = gap {
                    self.prev_gap_ms = self.gap_ms;
                    self.gap_ms = to_ms(g);
                }
            }
        }
    }
}

/// How late past its interval a beat may be before it counts as missed:
/// `max(interval / 2, 10 s)`.
pub fn tolerance(interval: Duration) -> Duration {
    (interval / 2).max(MIN_TOLERANCE)
}

/// When the host's next beat is due at the latest: `last_seen + interval
/// + tolerance`; `None` when its interval is unknown.
pub fn expected_by(rec: &HostRecord) -> Option<Timestamp> {
    let (i, _) = rec.interval.get()?;
    Some(add(rec.last_seen, i + tolerance(i)))
}

/// Whether `rec` has missed its expected beat at `now` while its own
/// timeout (under `policy`, the host's) has not run out: up, past
/// [`expected_by`], before its deadline, and not on a cron schedule.
pub fn missed_beat(rec: &HostRecord, now: Timestamp, policy: &Policy) -> bool {
    if rec.status != Status::Up || policy.schedule.is_some() {
        return false;
    }
    expected_by(rec).is_some_and(|e| now > e && now < rec.deadline(policy))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::HostId;

    fn t(s: i64) -> Timestamp {
        chrono::DateTime::from_timestamp(1_767_225_600 + s, 0).expect("in range")
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn a_sent_interval_wins_and_a_beat_without_one_clears_it() {
        let mut i = Interval::default();
        assert_eq!(i.get(), None);
        i.on_heartbeat(None, Some(secs(50)));
        assert_eq!(i.get(), Some((secs(50), IntervalSource::Learned)));
        i.on_heartbeat(Some(secs(60)), Some(secs(5)));
        assert_eq!(i.get(), Some((secs(60), IntervalSource::Sent)));
        assert_eq!(i.gap_ms, 50_000, "a beat that sends one learns nothing");
        i.on_heartbeat(None, None);
        assert_eq!(i.get(), Some((secs(50), IntervalSource::Learned)));
    }

    #[test]
    fn the_learned_interval_is_the_larger_of_the_last_two_gaps() {
        let mut i = Interval::default();
        i.on_heartbeat(None, Some(secs(300)));
        // One early beat (a retry, a run by hand) does not shrink it.
        i.on_heartbeat(None, Some(secs(2)));
        assert_eq!(i.get(), Some((secs(300), IntervalSource::Learned)));
        i.on_heartbeat(None, Some(secs(298)));
        assert_eq!(i.get(), Some((secs(298), IntervalSource::Learned)));
        // A lost beat lengthens it for two beats: late, never early.
        i.on_heartbeat(None, Some(secs(600)));
        i.on_heartbeat(None, Some(secs(300)));
        assert_eq!(i.get().unwrap().0, secs(600));
        i.on_heartbeat(None, Some(secs(300)));
        assert_eq!(i.get().unwrap().0, secs(300));
    }

    #[test]
    fn the_tolerance_is_half_an_interval_and_at_least_ten_seconds() {
        assert_eq!(tolerance(secs(60)), secs(30));
        assert_eq!(tolerance(secs(8)), secs(10));
        assert_eq!(tolerance(secs(600)), secs(300));
    }

    #[test]
    fn a_beat_is_missed_past_expected_by_and_before_the_timeout_only() {
        let policy = Policy {
            timeout: secs(600),
            ..Policy::default()
        };
        let mut r = HostRecord::new(HostId::new("a").unwrap(), t(0), policy.timeout);
        assert!(!missed_beat(&r, t(500), &policy), "no interval known");
        r.interval.on_heartbeat(Some(secs(60)), None);
        assert_eq!(expected_by(&r), Some(t(90)));
        assert!(!missed_beat(&r, t(90), &policy), "at expected_by: not yet");
        assert!(missed_beat(&r, t(91), &policy));
        assert!(missed_beat(&r, t(599), &policy));
        assert!(!missed_beat(&r, t(600), &policy), "its timeout ran out");
        r.status = Status::Paused;
        assert!(!missed_beat(&r, t(91), &policy), "paused");
    }
}
