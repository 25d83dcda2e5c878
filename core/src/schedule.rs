//! Schedules: a job that runs on a cron schedule in a time zone, with a
//! grace time, instead of a fixed timeout.
//!
//! A scheduled job is *missing* when the run due at a cron tick has not
//! succeeded by the tick plus the grace. In terms of the one deadline the
//! state machine knows: after a success (or the start of watching) at
//! `heard`, the host is missing from
//!
//! ```text
//! deadline = first tick strictly after `heard` + grace
//! ```
//!
//! The rule lives here once ([`Schedule::deadline`]); the heartbeat path
//! (`due_at` after a success), the decision ([`evaluate`](crate::evaluate))
//! and the API's "next expected run" all call it. Because the deadline
//! never moves backwards when `heard` moves forwards, a `due_at` computed
//! from an older success is early, never late (the store contract's
//! freedom): a store may leave it in place on a heartbeat and let the sweep
//! re-arm it.
//!
//! Ticks are read on the wall clock of an IANA time zone by [`croner`] and
//! [`chrono_tz`], so daylight-saving changes follow the zone's rules (as
//! Vixie cron does): a tick the clocks skip (02:30 on the night they go
//! forward) fires at the first instant after the gap (03:00 local), and a
//! tick the clocks repeat (02:30 on the night they go back) fires once, at
//! its first pass.
//!
//! ```
//! use std::time::Duration;
//! use chrono::DateTime;
//! use iamalive_core::Schedule;
//! let s = Schedule::new("0 2 * * *", "Europe/Berlin", Duration::from_secs(1800)).unwrap();
//! // A success at 02:05 local on 26 November 2026 (01:05 UTC)…
//! let heard = DateTime::parse_from_rfc3339("2026-11-26T01:05:00Z").unwrap().to_utc();
//! // …expects the next run at 02:00 local the day after, and alarms at 02:30.
//! assert_eq!(s.next_run(heard).unwrap().to_rfc3339(), "2026-11-27T01:00:00+00:00");
//! assert_eq!(s.deadline(heard).to_rfc3339(), "2026-11-27T01:30:00+00:00");
//! ```

use std::fmt;
use std::time::Duration;

use chrono::DateTime;
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds};
use serde::{Deserialize, Serialize};

use crate::model::add;
use crate::{Clock, HostId, HostRecord, Monitor, Status, Store, StoreError, Timestamp};

/// The grace of a schedule that names none: one hour.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(3600);

/// A cron schedule read in a time zone, with a grace time.
///
/// Serialized as `{"schedule": "0 2 * * *", "tz": "Europe/Berlin",
/// "grace": "30m"}`; `tz` defaults to `UTC` and `grace` to
/// [`DEFAULT_GRACE`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "ScheduleSpec", into = "ScheduleSpec")]
pub struct Schedule {
    expr: String,
    tz_name: String,
    grace: Duration,
    /// Boxed: a parsed expression is some 400 bytes, and policies are
    /// cloned per decision.
    cron: Box<Cron>,
    tz: Tz,
}

/// The written form of a [`Schedule`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScheduleSpec {
    schedule: String,
    #[serde(default = "utc")]
    tz: String,
    #[serde(default = "default_grace", with = "humantime_serde")]
    grace: Duration,
}

fn utc() -> String {
    "UTC".to_owned()
}

fn default_grace() -> Duration {
    DEFAULT_GRACE
}

impl TryFrom<ScheduleSpec> for Schedule {
    type Error = String;
    fn try_from(s: ScheduleSpec) -> Result<Self, String> {
        Schedule::new(&s.schedule, &s.tz, s.grace)
    }
}

impl From<Schedule> for ScheduleSpec {
    fn from(s: Schedule) -> Self {
        Self {
            schedule: s.expr,
            tz: s.tz_name,
            grace: s.grace,
        }
    }
}

impl Schedule {
    /// A schedule from a cron expression (5 fields, or 6 with seconds
    /// first; `@daily` and the like too) read in the IANA time zone `tz`,
    /// missing `grace` after each tick. Each error says which part is wrong
    /// and why.
    pub fn new(cron: &str, tz: &str, grace: Duration) -> Result<Self, String> {
        let expr = cron.trim().to_owned();
        let parsed = parse_cron(&expr).map_err(|e| format!("schedule: {e}"))?;
        let zone = parse_tz(tz).map_err(|e| format!("tz: {e}"))?;
        let s = Self {
            expr,
            tz_name: tz.trim().to_owned(),
            grace,
            cron: Box::new(parsed),
            tz: zone,
        };
        // From a fixed instant (core reads no clock): an expression that
        // can never fire (30 February) is refused.
        if s.next_run(DateTime::UNIX_EPOCH).is_none() {
            return Err(format!("schedule: '{}' never fires", s.expr));
        }
        Ok(s)
    }

    /// The cron expression as written (trimmed).
    pub fn cron(&self) -> &str {
        &self.expr
    }

    /// The time zone's name.
    pub fn tz(&self) -> &str {
        &self.tz_name
    }

    /// How long after a tick its run may still succeed.
    pub fn grace(&self) -> Duration {
        self.grace
    }

    /// The first tick strictly after `after`; `None` when the expression
    /// has no later tick (croner's search range ends).
    pub fn next_run(&self, after: Timestamp) -> Option<Timestamp> {
        self.cron
            .find_next_occurrence(&after.with_timezone(&self.tz), false)
            .ok()
            .map(|t| t.to_utc())
    }

    /// The latest tick at or before `at`, if any.
    pub fn previous_run(&self, at: Timestamp) -> Option<Timestamp> {
        self.cron
            .find_previous_occurrence(&at.with_timezone(&self.tz), true)
            .ok()
            .map(|t| t.to_utc())
    }

    /// The instant a job last heard from at `heard` becomes missing: the
    /// first tick after `heard` plus the grace (the end of time when there
    /// is no later tick). Never earlier for a later `heard`.
    pub fn deadline(&self, heard: Timestamp) -> Timestamp {
        self.next_run(heard)
            .map_or(DateTime::<chrono::Utc>::MAX_UTC, |t| add(t, self.grace))
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "'{}' in {}, grace {}",
            self.expr,
            self.tz_name,
            humantime::format_duration(self.grace)
        )
    }
}

/// A policy set for one host through the management API and stored with
/// its record, so every monitor on the store applies it: a fixed timeout,
/// or a schedule. It is more specific than the configuration's policy for
/// the host's pattern, so it wins over it (the reminder settings still come
/// from the configuration).
///
/// Serialized as `{"timeout": "5m"}` or `{"schedule": "0 2 * * *", "tz":
/// "Europe/Berlin", "grace": "30m"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "PolicySpec", into = "PolicySpec")]
pub enum HostPolicy {
    /// Missing after this long without a success.
    Timeout(Duration),
    /// Missing when the run due at a tick has not succeeded by tick + grace.
    Schedule(Box<Schedule>),
}

/// The written form of a [`HostPolicy`] (and the body of `PUT
/// /v1/hosts/<host>`): `timeout`, or `schedule` with optional `tz` and
/// `grace`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a JSON object with timeout, or schedule with tz and grace"
)]
pub struct PolicySpec {
    /// A fixed timeout (`"5m"`).
    #[serde(
        default,
        serialize_with = "humantime_serde::option::serialize",
        deserialize_with = "timeout_field",
        skip_serializing_if = "Option::is_none"
    )]
    pub timeout: Option<Duration>,
    /// A cron expression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// The schedule's IANA time zone (default `UTC`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tz: Option<String>,
    /// The schedule's grace (default one hour).
    #[serde(
        default,
        serialize_with = "humantime_serde::option::serialize",
        deserialize_with = "grace_field",
        skip_serializing_if = "Option::is_none"
    )]
    pub grace: Option<Duration>,
}

fn timeout_field<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    named_duration(d, "timeout")
}

fn grace_field<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    named_duration(d, "grace")
}

/// A human duration (`"30m"`), its field named in the error.
fn named_duration<'de, D: serde::Deserializer<'de>>(
    d: D,
    name: &str,
) -> Result<Option<Duration>, D::Error> {
    let Some(text) = Option::<String>::deserialize(d)? else {
        return Ok(None);
    };
    let d = humantime::parse_duration(text.trim()).map_err(|e| {
        serde::de::Error::custom(format!(
            "{name}: '{text}' is not a duration such as \"30m\" or \"1h 30m\": {e}"
        ))
    })?;
    // As pauses and silences: past a year it is a typo, not a policy.
    if d > MAX_POLICY_DURATION {
        return Err(serde::de::Error::custom(format!(
            "{name}: '{text}' is longer than the 1 year allowed"
        )));
    }
    Ok(Some(d))
}

/// The longest timeout or grace a stored policy may set.
const MAX_POLICY_DURATION: Duration = Duration::from_secs(366 * 86_400);

impl PolicySpec {
    /// Whether it says nothing at all.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// The schedule it describes, if it names one; checks that `tz` and
    /// `grace` come only with a schedule.
    pub fn schedule(&self) -> Result<Option<Schedule>, String> {
        match &self.schedule {
            Some(cron) => Schedule::new(
                cron,
                self.tz.as_deref().unwrap_or("UTC"),
                self.grace.unwrap_or(DEFAULT_GRACE),
            )
            .map(Some),
            None if self.tz.is_some() || self.grace.is_some() => {
                Err("tz and grace belong to a schedule: give schedule too".into())
            }
            None => Ok(None),
        }
    }
}

impl TryFrom<PolicySpec> for HostPolicy {
    type Error = String;
    fn try_from(s: PolicySpec) -> Result<Self, String> {
        match (s.timeout, s.schedule()?) {
            (Some(_), Some(_)) => Err(
                "give either timeout (an interval job) or schedule (a cron job), not both".into(),
            ),
            (Some(t), None) if t.is_zero() => Err("timeout must be greater than zero".into()),
            (Some(t), None) => Ok(Self::Timeout(t)),
            (None, Some(s)) => Ok(Self::Schedule(Box::new(s))),
            (None, None) => Err(
                "a policy needs timeout (e.g. \"10m\") or schedule (e.g. \"0 2 * * *\", with tz and grace)"
                    .into(),
            ),
        }
    }
}

impl From<HostPolicy> for PolicySpec {
    fn from(p: HostPolicy) -> Self {
        match p {
            HostPolicy::Timeout(t) => Self {
                timeout: Some(t),
                ..Self::default()
            },
            HostPolicy::Schedule(s) => Self {
                timeout: None,
                schedule: Some(s.expr),
                tz: Some(s.tz_name),
                grace: Some(s.grace),
            },
        }
    }
}

impl<S: Store + ?Sized, C: Clock> Monitor<S, C> {
    /// Stores `policy` with `host` (`None`: forgets a stored policy, so the
    /// configuration's applies again), creating the host if it is unknown;
    /// every monitor on the store applies it from then on, no restart
    /// needed. Returns the record written and whether it was created.
    ///
    /// An up host is re-armed at once to its deadline under the new policy
    /// (a reported failure still cuts it short); a missing or alarmed one
    /// is made due now, so the next sweep decides it under the new policy:
    /// an alarm nobody was told about is dropped if the new policy allows
    /// the silence, but an outage the team was told about ends only when
    /// the host reports (no all-clear for a host that never did); a paused
    /// one keeps its pause.
    pub async fn set_policy(
        &self,
        host: &HostId,
        policy: Option<HostPolicy>,
    ) -> Result<(HostRecord, bool), StoreError> {
        let policy = policy.map(Box::new);
        for _ in 0..MAX_CREATE_ROUNDS {
            let now = self.clock().now();
            if self.store().get(host).await?.is_none() {
                let mut rec = HostRecord::new(host.clone(), now, Duration::ZERO);
                rec.policy.clone_from(&policy);
                rec.due_at = Some(rec.deadline(&self.policies().for_record(&rec)));
                if self.store().compare_and_swap(0, &rec).await? {
                    return Ok((rec, true));
                }
                continue;
            }
            let mut conflicts = 0;
            let written = self
                .swap(host, None, &mut conflicts, |rec| {
                    let mut next = rec.clone();
                    next.policy.clone_from(&policy);
                    let p = self.policies().for_record(&next);
                    next.due_at = match next.status {
                        Status::Up if next.outbox.is_none() => {
                            Some(crate::job::cut_short(&next, next.deadline(&p)))
                        }
                        Status::Missing | Status::Alarmed => {
                            Some(next.due_at.map_or(now, |d| d.min(now)))
                        }
                        Status::Up | Status::Paused => next.due_at,
                    };
                    Some((next, ()))
                })
                .await?;
            if let Some((rec, ())) = written {
                return Ok((rec, false));
            }
        }
        Err(StoreError::Contended {
            key: host.to_string(),
            rounds: MAX_CREATE_ROUNDS,
        })
    }
}

/// How often [`Monitor::set_policy`] tries again when the host is removed
/// and created under it.
const MAX_CREATE_ROUNDS: usize = 4;

/// Parses a cron expression (5 fields, or 6 with seconds first).
pub(crate) fn parse_cron(expr: &str) -> Result<Cron, String> {
    CronParser::builder()
        .seconds(Seconds::Optional)
        .build()
        .parse(expr.trim())
        .map_err(|e| format!("invalid cron expression '{}': {e}", expr.trim()))
}

/// Parses an IANA time zone name, with the reason when it is unknown.
pub(crate) fn parse_tz(name: &str) -> Result<Tz, String> {
    name.trim().parse::<Tz>().map_err(|_| {
        format!("unknown time zone '{name}': use an IANA name such as \"Europe/Berlin\" or \"UTC\"")
    })
}

#[cfg(test)]
mod tests;
