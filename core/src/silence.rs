//! Maintenance windows: one-off, or repeating on a cron schedule in a time
//! zone; and the reading of local times that operators write them in.
//!
//! Times of day are read on the wall clock of an IANA time zone
//! ([`chrono_tz`]), and schedules by [`croner`], so daylight-saving changes
//! follow the zone's rules: a daily 19:00 window stays at 19:00 local time
//! across a change, and a time the clocks skip starts at the first instant
//! after the gap.

use std::time::Duration;

use chrono::{DateTime, LocalResult, NaiveDateTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use croner::Cron;
use serde::{Deserialize, Serialize};

use crate::model::add;
use crate::schedule::{parse_cron, parse_tz};
use crate::{HostId, HostPattern, Timestamp};

/// Occurrences that overlap or touch are merged into one window, at most
/// this many; past that the window's end is early, which the monitor
/// allows (it looks again then and finds the rest).
const MAX_MERGED: usize = 1000;

/// A maintenance window: no alarm or reminder for matching hosts inside it.
///
/// A one-off silence covers `[starts_at, ends_at)`. A repeating one
/// ([`Silence::repeat`]) covers each occurrence of its schedule that lies
/// after `starts_at` and before [`Repeat::until`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Silence {
    /// Unique id.
    pub id: String,
    /// Which hosts it covers.
    pub hosts: HostPattern,
    /// Start, inclusive. A repeating silence covers nothing before it either.
    pub starts_at: Timestamp,
    /// End, exclusive. For a repeating silence: the end of its first window
    /// (the series itself ends at [`Repeat::until`], if ever).
    pub ends_at: Timestamp,
    /// Why (shown in the API and logs).
    pub reason: String,
    /// How it repeats; `None` for a one-off window. Absent from the JSON of
    /// a one-off silence, so silences stored before repeats existed read
    /// unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeat: Option<Repeat>,
}

/// The schedule of a repeating silence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Repeat {
    /// When each occurrence starts: a cron expression (5 fields, or 6 with
    /// seconds first) read on the wall clock of `tz`.
    pub cron: String,
    /// The IANA time zone the schedule is read in (`Europe/Berlin`, `UTC`).
    pub tz: String,
    /// How long each occurrence lasts.
    #[serde(with = "humantime_serde")]
    pub duration: Duration,
    /// The end of the series, exclusive: an occurrence running then is cut
    /// short. `None`: it repeats until removed.
    #[serde(default)]
    pub until: Option<Timestamp>,
}

fn check_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > 128 {
        return Err("silence id must be 1 to 128 characters".into());
    }
    // It is a path segment of DELETE /v1/silences/<id>.
    if id.chars().any(|c| c == '/' || c.is_control()) {
        return Err(format!(
            "silence id {id:?} may not contain '/' or control characters"
        ));
    }
    Ok(())
}

/// The longest reason a silence keeps, in bytes (as a heartbeat's message).
const MAX_REASON_LEN: usize = 1024;

fn check_reason(reason: &str) -> Result<(), String> {
    if reason.len() > MAX_REASON_LEN {
        return Err(format!(
            "reason is {} bytes; at most {MAX_REASON_LEN}",
            reason.len()
        ));
    }
    Ok(())
}

impl Silence {
    /// Validates and builds a one-off silence; `ends_at` must come after
    /// `starts_at`.
    pub fn new(
        id: impl Into<String>,
        hosts: HostPattern,
        starts_at: Timestamp,
        ends_at: Timestamp,
        reason: impl Into<String>,
    ) -> Result<Self, String> {
        let id = id.into();
        let reason = reason.into();
        check_id(&id)?;
        check_reason(&reason)?;
        if ends_at <= starts_at {
            let t = |t: Timestamp| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            return Err(format!(
                "silence must end after it starts ({} is not after {})",
                t(ends_at),
                t(starts_at)
            ));
        }
        Ok(Self {
            id,
            hosts,
            starts_at,
            ends_at,
            reason,
            repeat: None,
        })
    }

    /// Validates and builds a repeating silence whose occurrences count from
    /// `starts_at` on; it must cover something after `starts_at`.
    pub fn repeating(
        id: impl Into<String>,
        hosts: HostPattern,
        starts_at: Timestamp,
        repeat: Repeat,
        reason: impl Into<String>,
    ) -> Result<Self, String> {
        let id = id.into();
        let reason = reason.into();
        check_id(&id)?;
        check_reason(&reason)?;
        repeat.schedule()?;
        let mut s = Self {
            id,
            hosts,
            starts_at,
            ends_at: starts_at,
            reason,
            repeat: Some(repeat),
        };
        let Some((_, first_end)) = s.next_window(starts_at) else {
            let r = s.repeat.as_ref().expect("set above");
            return Err(format!(
                "the repeating silence never covers anything: '{}' in {} has no occurrence after {starts_at}{}",
                r.cron,
                r.tz,
                r.until
                    .map(|u| format!(" and before {u}"))
                    .unwrap_or_default()
            ));
        };
        let r = s.repeat.as_ref().expect("set above");
        if r.never_ends(starts_at) {
            return Err(format!(
                "each occurrence of '{}' in {} lasts {} and reaches the next one, so the silence would never end: make it shorter than the time between occurrences",
                r.cron,
                r.tz,
                humantime::format_duration(r.duration)
            ));
        }
        s.ends_at = first_end;
        Ok(s)
    }

    /// The window covering `now`, whatever the host: `[start, end)` of the
    /// occurrence (merged with any it overlaps or touches), cut to the
    /// silence's own bounds.
    pub fn window_at(&self, now: Timestamp) -> Option<(Timestamp, Timestamp)> {
        match &self.repeat {
            None => (self.starts_at <= now && now < self.ends_at)
                .then_some((self.starts_at, self.ends_at)),
            Some(r) => {
                if now < self.starts_at || r.until.is_some_and(|u| u <= now) {
                    return None;
                }
                self.clip(r, r.window_at(now)?)
            }
        }
    }

    /// The window covering `now` or, if none does, the next one; `None` when
    /// no window ends after `now`.
    pub fn next_window(&self, now: Timestamp) -> Option<(Timestamp, Timestamp)> {
        match &self.repeat {
            None => (now < self.ends_at).then_some((self.starts_at, self.ends_at)),
            Some(r) => {
                let from = now.max(self.starts_at);
                let w = r.window_at(from).or_else(|| r.window_after(from))?;
                self.clip(r, w).filter(|&(_, end)| end > now)
            }
        }
    }

    fn clip(&self, r: &Repeat, (s, e): (Timestamp, Timestamp)) -> Option<(Timestamp, Timestamp)> {
        let (s, e) = (s.max(self.starts_at), r.until.map_or(e, |u| e.min(u)));
        (s < e).then_some((s, e))
    }

    /// Whether it covers `host` at `now`.
    pub fn covers(&self, host: &HostId, now: Timestamp) -> bool {
        self.hosts.matches(host) && self.window_at(now).is_some()
    }

    /// The end of the window covering `host` at `now`, if one does.
    pub fn end_for(&self, host: &HostId, now: Timestamp) -> Option<Timestamp> {
        if !self.hosts.matches(host) {
            return None;
        }
        self.window_at(now).map(|(_, end)| end)
    }

    /// Whether it can cover nothing any more at or after `now`, so it may be
    /// deleted: a one-off silence after its end; a repeating one only after
    /// its [`Repeat::until`] (never, without one).
    pub fn is_over(&self, now: Timestamp) -> bool {
        match &self.repeat {
            None => self.ends_at <= now,
            Some(r) => r.until.is_some_and(|u| u <= now),
        }
    }
}

impl Repeat {
    /// A schedule from a cron expression read in time zone `tz`; each
    /// occurrence lasts `duration` (more than zero).
    pub fn new(
        cron: &str,
        tz: &str,
        duration: Duration,
        until: Option<Timestamp>,
    ) -> Result<Self, String> {
        let r = Self {
            cron: cron.trim().to_owned(),
            tz: tz.trim().to_owned(),
            duration,
            until,
        };
        r.schedule()?;
        if duration.is_zero() {
            return Err("a repeating silence needs a duration greater than zero".into());
        }
        Ok(r)
    }

    /// Every day at the wall-clock time that `first` shows in `tz`.
    pub fn daily(
        first: Timestamp,
        tz: &str,
        duration: Duration,
        until: Option<Timestamp>,
    ) -> Result<Self, String> {
        let local = first.with_timezone(&parse_tz(tz)?);
        let (h, m, s) = (local.hour(), local.minute(), local.second());
        let cron = if s == 0 {
            format!("{m} {h} * * *")
        } else {
            format!("{s} {m} {h} * * *")
        };
        Self::new(&cron, tz, duration, until)
    }

    fn schedule(&self) -> Result<(Cron, Tz), String> {
        let tz = parse_tz(&self.tz)?;
        let cron = parse_cron(&self.cron)?;
        Ok((cron, tz))
    }

    /// The occurrence covering `now` (the latest that started at or before
    /// it), merged with the ones after it that start before it ends. Not
    /// cut to [`Repeat::until`].
    pub fn window_at(&self, now: Timestamp) -> Option<(Timestamp, Timestamp)> {
        let (cron, tz) = self.schedule().ok()?;
        let start = cron
            .find_previous_occurrence(&now.with_timezone(&tz), true)
            .ok()?;
        let w = self.merged(&cron, start);
        (now < w.1).then_some(w)
    }

    /// The first occurrence that starts after `now`, merged as in
    /// [`window_at`](Self::window_at).
    pub fn window_after(&self, now: Timestamp) -> Option<(Timestamp, Timestamp)> {
        let (cron, tz) = self.schedule().ok()?;
        let start = cron
            .find_next_occurrence(&now.with_timezone(&tz), false)
            .ok()?;
        Some(self.merged(&cron, start))
    }

    fn merged(&self, cron: &Cron, start: DateTime<Tz>) -> (Timestamp, Timestamp) {
        self.merge(cron, start).0
    }

    /// [`merged`](Self::merged), and whether the merge stopped at a gap or
    /// at the schedule's end (rather than after [`MAX_MERGED`] occurrences).
    fn merge(&self, cron: &Cron, start: DateTime<Tz>) -> ((Timestamp, Timestamp), bool) {
        let begin = start.to_utc();
        let mut end = add(begin, self.duration);
        let mut cursor = start;
        for _ in 0..MAX_MERGED {
            match cron.find_next_occurrence(&cursor, false) {
                Ok(next) if next.to_utc() <= end => {
                    end = end.max(add(next.to_utc(), self.duration));
                    cursor = next;
                }
                _ => return ((begin, end), true),
            }
        }
        ((begin, end), false)
    }

    /// Whether the occurrences from the first after `from` overlap or touch
    /// one another without a gap for [`MAX_MERGED`] of them: a silence that
    /// never ends (each occurrence as long as the time between them, or
    /// longer).
    fn never_ends(&self, from: Timestamp) -> bool {
        let Ok((cron, tz)) = self.schedule() else {
            return false;
        };
        cron.find_next_occurrence(&from.with_timezone(&tz), true)
            .is_ok_and(|start| {
                let ((_, end), gap) = self.merge(&cron, start);
                !gap && self.until.is_none_or(|u| end < u)
            })
    }
}

/// Checks an IANA time zone name (`Europe/Berlin`, `UTC`), with the reason
/// when it is unknown.
pub fn check_tz(name: &str) -> Result<(), String> {
    parse_tz(name).map(|_| ())
}

/// Reads an instant written as RFC 3339 with an offset
/// (`2026-11-26T19:00:00+01:00`, `…Z`), or as a local date and time
/// (`2026-11-26 19:00`, seconds optional, `T` or a space between) on the
/// wall clock of `tz`.
///
/// A local time that happens twice (the hour the clocks go back) is the
/// first of the two; one that never happens (the hour they skip) is an
/// error, as is a local time without `tz`.
pub fn parse_instant(text: &str, tz: Option<&str>) -> Result<Timestamp, String> {
    let s = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.to_utc());
    }
    if let Ok(t) = s.parse::<DateTime<chrono::FixedOffset>>() {
        return Ok(t.to_utc());
    }
    let naive = [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M",
    ]
    .iter()
    .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
    .ok_or_else(|| {
        format!(
            "'{text}' is neither RFC 3339 (2026-11-26T19:00:00+01:00) nor a local date and time (2026-11-26 19:00)"
        )
    })?;
    let Some(tz) = tz else {
        return Err(format!(
            "'{text}' has no UTC offset: give \"tz\" (e.g. \"Europe/Berlin\") or an RFC 3339 time"
        ));
    };
    match parse_tz(tz)?.from_local_datetime(&naive) {
        LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => Ok(t.with_timezone(&Utc)),
        LocalResult::None => Err(format!(
            "'{text}' does not exist in {tz}: the clocks skip it (daylight saving time)"
        )),
    }
}

#[cfg(test)]
mod tests;
