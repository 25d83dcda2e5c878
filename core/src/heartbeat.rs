//! The heartbeat rule: what one heartbeat does to a host record.
//!
//! It is the hot path of every store, so each backend writes it in its own
//! language (an SQL `UPDATE`, a Lua script, a DynamoDB condition
//! expression), but the rule has this one home: a backend that holds the
//! record in hand calls [`apply_heartbeat`]; one that cannot implements
//! exactly [`due_after_heartbeat`] with the bounds of [`LazyWindow`], and
//! the conformance suite pins them (the window's both ends included).
//!
//! | record before                     | `due_at` after                          |
//! |-----------------------------------|-----------------------------------------|
//! | `up`, nothing owed, no stored policy | `due_if_up`; a lazy store may keep a `due_at` inside the [`LazyWindow`] |
//! | `up`, nothing owed, a stored policy  | unchanged (see below)                |
//! | `up`, nothing owed, flapping         | unchanged: the monitor armed it for the instant the host is stable ([`crate::flap`]) |
//! | `up`, a recovery still owed       | unchanged (the recovery goes out first) |
//! | `missing` or `alarmed`            | the heartbeat's instant: due now, so the recovery is decided at the next sweep |
//! | `paused`                          | unchanged (none, or the pause's end)    |
//!
//! A host with a policy stored in its record ([`HostRecord::policy`], set
//! through the API) has a deadline the caller's `due_if_up` (computed from
//! the configuration without reading the record) does not know. Its
//! `due_at` was armed by the monitor from that policy, and every policy's
//! deadline only moves later as `last_seen` does, so leaving it is early,
//! never late: the sweep re-arms it when it comes. The heartbeat stays one
//! write without a read.
//!
//! In every case `last_seen` becomes the later of its value and the
//! heartbeat's, `version` is bumped, and `message` / `report` / `group` are
//! replaced when the heartbeat carries them (kept when it does not). The status never changes here: only a
//! monitor's compare-and-swap moves it.
//!
//! The host's [`Interval`](crate::beat::Interval) travels in the same
//! write ([`learn_interval`]): the sent interval is replaced by the
//! heartbeat's (cleared when it sends none), and a heartbeat without one
//! landing on an `up` host, not out of order, shifts the gap since its
//! previous beat into the last two gaps (see [`crate::beat`]).

use std::time::Duration;

use crate::{Heartbeat, HostRecord, Status, Timestamp};

/// How long a heartbeat may leave an up host's `due_at` alone: from half
/// a timeout after the heartbeat to the full timeout, both ends included.
///
/// `due_at` may be early, never late: a record due at most half a timeout
/// early costs one cheap re-evaluation that re-arms it, and keeping it
/// saves the due-index write on most heartbeats. One before
/// [`from`](Self::from) would be re-evaluated more often than every half
/// timeout; one after [`until`](Self::until) would be late.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LazyWindow {
    /// Half-way from the heartbeat to `due_if_up` (the earliest kept).
    pub from: Timestamp,
    /// `due_if_up` (the latest kept).
    pub until: Timestamp,
}

impl LazyWindow {
    /// The window of a heartbeat at `at` that would arm an up host's
    /// deadline at `due_if_up`.
    #[inline]
    pub fn new(at: Timestamp, due_if_up: Timestamp) -> Self {
        Self {
            from: at + (due_if_up - at) / 2,
            until: due_if_up,
        }
    }

    /// Whether a stored `due_at` may stay as it is.
    #[inline]
    pub fn contains(&self, due: Timestamp) -> bool {
        self.from <= due && due <= self.until
    }
}

/// Whether the monitor, not the heartbeat, arms `rec`'s `due_at` while it
/// is up: a host with a stored policy (its deadline is not the one the
/// caller's `due_if_up` knows), or one in a flapping episode (it must be
/// looked at when it becomes stable, before its deadline). A heartbeat
/// leaves such a record's `due_at` as it is: early, never late.
#[inline]
pub fn monitor_arms_due(rec: &HostRecord) -> bool {
    rec.policy.is_some() || crate::flap::flapping(rec)
}

/// Whether a store re-arms an up host's `due_at` on every heartbeat or
/// keeps one inside the [`LazyWindow`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Rearm {
    /// Always to `due_if_up`.
    #[default]
    Always,
    /// Only when the stored `due_at` lies outside the [`LazyWindow`].
    Lazily,
}

/// The `due_at` that a heartbeat at `at` leaves on `rec` (the table in the
/// [module docs](self)).
#[inline]
pub fn due_after_heartbeat(
    rec: &HostRecord,
    at: Timestamp,
    due_if_up: Timestamp,
    rearm: Rearm,
) -> Option<Timestamp> {
    match rec.status {
        Status::Up if rec.outbox.is_none() && monitor_arms_due(rec) => rec.due_at,
        Status::Up if rec.outbox.is_none() => match rec.due_at {
            Some(d) if rearm == Rearm::Lazily && LazyWindow::new(at, due_if_up).contains(d) => {
                Some(d)
            }
            _ => Some(due_if_up),
        },
        Status::Missing | Status::Alarmed => Some(at),
        Status::Up | Status::Paused => rec.due_at,
    }
}

/// The heartbeat rule of the [`Store::record_heartbeat`](crate::Store)
/// contract applied to a record in hand, re-arming an up host's `due_at`
/// every time; for backends that read-modify-write under a lock or a
/// transaction.
pub fn apply_heartbeat(rec: &mut HostRecord, hb: &Heartbeat, due_if_up: Timestamp) {
    apply_heartbeat_with(rec, hb, due_if_up, Rearm::Always);
}

/// [`apply_heartbeat`], re-arming as `rearm` says.
pub fn apply_heartbeat_with(
    rec: &mut HostRecord,
    hb: &Heartbeat,
    due_if_up: Timestamp,
    rearm: Rearm,
) {
    rec.due_at = due_after_heartbeat(rec, hb.at, due_if_up, rearm);
    learn_interval(rec, hb);
    rec.last_seen = rec.last_seen.max(hb.at);
    rec.version += 1;
    if hb.message.is_some() {
        rec.message.clone_from(&hb.message);
    }
    if hb.report.is_some() {
        rec.report.clone_from(&hb.report);
    }
    if hb.group.is_some() && rec.group != hb.group {
        rec.group.clone_from(&hb.group);
    }
}

/// The interval rule of the [module docs](self), on `rec` before its
/// `last_seen` moves: the sent interval replaced by `hb`'s, or, for a
/// heartbeat without one on an up host at or after its last beat, the gap
/// since that beat learned.
pub fn learn_interval(rec: &mut HostRecord, hb: &Heartbeat) {
    // A job created by a start or a failure has no beat yet: its
    // `last_seen` is its creation, and the gap to its first success is
    // the run's length, not its interval.
    let first_success = rec.job.as_deref().is_some_and(|j| j.never_succeeded);
    let gap = (rec.status == Status::Up && hb.at >= rec.last_seen && !first_success)
        .then(|| crate::model::since(hb.at, rec.last_seen));
    rec.interval.on_heartbeat(hb.interval, gap);
}

/// A new record for a heartbeat from an unknown host, per the contract:
/// `up`, version 1, due at `due_if_up`.
pub fn created_by_heartbeat(hb: &Heartbeat, due_if_up: Timestamp) -> HostRecord {
    let mut rec = HostRecord::new(hb.host.clone(), hb.at, Duration::ZERO);
    rec.due_at = Some(due_if_up);
    rec.message.clone_from(&hb.message);
    rec.report.clone_from(&hb.report);
    rec.group.clone_from(&hb.group);
    rec.interval.on_heartbeat(hb.interval, None);
    rec
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::HostId;

    fn t(ms: i64) -> Timestamp {
        chrono::DateTime::from_timestamp_millis(1_767_225_600_000 + ms).expect("in range")
    }

    #[test]
    fn the_lazy_window_includes_both_ends_and_nothing_beyond() {
        let w = LazyWindow::new(t(0), t(10_000));
        assert_eq!((w.from, w.until), (t(5_000), t(10_000)));
        assert!(w.contains(t(5_000)) && w.contains(t(10_000)));
        assert!(!w.contains(t(4_999)) && !w.contains(t(10_001)));
    }

    #[test]
    fn a_heartbeat_moves_due_at_by_status() {
        let mut r = HostRecord::new(HostId::new("h").unwrap(), t(0), Duration::from_secs(10));
        let due = |r: &HostRecord, rearm| due_after_heartbeat(r, t(2_000), t(12_000), rearm);
        // Up, due at 10 s: outside the window [7 s, 12 s] → re-armed either way.
        r.due_at = Some(t(6_999));
        assert_eq!(due(&r, Rearm::Lazily), Some(t(12_000)));
        r.due_at = Some(t(7_000));
        assert_eq!(due(&r, Rearm::Lazily), Some(t(7_000)), "kept");
        assert_eq!(due(&r, Rearm::Always), Some(t(12_000)));
        for status in [Status::Missing, Status::Alarmed] {
            r.status = status;
            assert_eq!(due(&r, Rearm::Lazily), Some(t(2_000)), "{status}");
        }
        r.status = Status::Paused;
        assert_eq!(due(&r, Rearm::Always), Some(t(7_000)), "paused: unchanged");
    }
}
