//! How long a host may stay silent, and how often the team is reminded.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::model::add;
use crate::schedule::{DEFAULT_GRACE, HostPolicy, Schedule};
use crate::{HostId, HostPattern, HostRecord, Timestamp};

/// The alarm policy for a host.
///
/// ```
/// use std::time::Duration;
/// use iamalive_core::Policy;
/// let p = Policy::default();
/// assert_eq!(p.timeout, Duration::from_secs(600));
/// assert_eq!(p.reminder_interval, Duration::from_secs(3600));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Policy {
    /// Silence longer than this makes a host missing. Default 10 minutes.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// The alarm throttle: reminders never come closer together than this.
    /// Default 1 hour.
    #[serde(with = "humantime_serde")]
    pub reminder_interval: Duration,
    /// Each reminder waits `reminder_backoff` times longer than the one
    /// before (1.0, the default, keeps the interval fixed; values below 1.0
    /// are treated as 1.0 so the throttle always holds).
    pub reminder_backoff: f64,
    /// The longest wait between reminders once backoff has grown it.
    #[serde(with = "humantime_serde::option")]
    pub max_reminder_interval: Option<Duration>,
    /// At most this many reminders per outage (the alarm itself not counted).
    /// `None`, the default, reminds until the host recovers.
    pub max_reminders: Option<u32>,
    /// A cron schedule that replaces `timeout`: the host is missing when
    /// the run due at a tick has not succeeded by tick + grace (see
    /// [`schedule`](crate::schedule)). `None`, the default: `timeout`.
    #[serde(skip)]
    pub schedule: Option<Schedule>,
    /// When a host counts as flapping ([`crate::flap`]); set from the
    /// configuration's `[flapping]` section. Default: on, 4 outages in 1h,
    /// stable after 30m.
    #[serde(skip)]
    pub flapping: crate::flap::FlapPolicy,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(600),
            reminder_interval: Duration::from_secs(3600),
            reminder_backoff: 1.0,
            max_reminder_interval: None,
            max_reminders: None,
            schedule: None,
            flapping: crate::flap::FlapPolicy::default(),
        }
    }
}

impl Policy {
    /// The instant a host last heard from at `heard` becomes missing:
    /// `heard + timeout`, or for a schedule the first tick after `heard`
    /// plus its grace. Never earlier for a later `heard`.
    #[inline]
    pub fn deadline_after(&self, heard: Timestamp) -> Timestamp {
        match &self.schedule {
            Some(s) => s.deadline(heard),
            None => add(heard, self.timeout),
        }
    }

    /// For a schedule, the run expected next by a host last heard from at
    /// `heard` (the first tick after it); `None` for a timeout.
    pub fn next_run(&self, heard: Timestamp) -> Option<Timestamp> {
        self.schedule.as_ref().and_then(|s| s.next_run(heard))
    }

    /// How long a host may stay silent before it counts as missing, as one
    /// duration: the timeout, or a schedule's grace (the startup grace
    /// after a long downtime gives at least this much).
    pub fn allowance(&self) -> Duration {
        match &self.schedule {
            Some(s) => s.grace(),
            None => self.timeout,
        }
    }

    /// This policy with a host's stored policy applied over it (the stored
    /// one is the more specific: it wins over the configuration's timeout
    /// or schedule; the reminder settings stay).
    pub fn with_host_policy(mut self, p: Option<&HostPolicy>) -> Self {
        match p {
            None => {}
            Some(HostPolicy::Timeout(t)) => {
                self.timeout = *t;
                self.schedule = None;
            }
            Some(HostPolicy::Schedule(s)) => self.schedule = Some(s.as_ref().clone()),
        }
        self
    }

    /// The wait after the `delivered`-th alarm or reminder (1 = the alarm)
    /// before the next reminder, or `None` when the cap is reached.
    pub fn reminder_after(&self, delivered: u32) -> Option<Duration> {
        let reminders_sent = delivered.saturating_sub(1);
        if self.max_reminders.is_some_and(|max| reminders_sent >= max) {
            return None;
        }
        let factor = if self.reminder_backoff.is_finite() && self.reminder_backoff > 1.0 {
            self.reminder_backoff.powi(reminders_sent.min(64) as i32)
        } else {
            1.0
        };
        let base = self.reminder_interval.as_secs_f64();
        let mut secs = base * factor;
        if let Some(max) = self.max_reminder_interval {
            secs = secs.min(max.as_secs_f64().max(base));
        }
        // Durations beyond ~292 years make no sense here; clamp.
        Some(Duration::from_secs_f64(secs.min(9.0e9)))
    }

    /// Checks the policy for values that cannot work.
    pub fn validate(&self) -> Result<(), String> {
        if self.timeout.is_zero() {
            return Err("timeout must be greater than zero".into());
        }
        if self.reminder_interval.is_zero() {
            return Err("reminder_interval must be greater than zero".into());
        }
        if !self.reminder_backoff.is_finite() || self.reminder_backoff < 1.0 {
            return Err(format!(
                "reminder_backoff must be a number >= 1.0, not {}",
                self.reminder_backoff
            ));
        }
        Ok(())
    }
}

/// Values that replace the default policy for the hosts a pattern matches.
///
/// In TOML, `[[policy.hosts]]` with `hosts` and any of the fields below;
/// a schedule is written flat: `schedule = "0 2 * * *"`, `tz =
/// "Europe/Berlin"`, `grace = "30m"` (`tz` defaults to UTC, `grace` to one
/// hour).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "OverrideSpec", into = "OverrideSpec")]
pub struct PolicyOverride {
    /// Which hosts this applies to.
    pub hosts: HostPattern,
    /// Replaces [`Policy::timeout`].
    #[serde(default, with = "humantime_serde::option")]
    pub timeout: Option<Duration>,
    /// Replaces [`Policy::reminder_interval`].
    #[serde(default, with = "humantime_serde::option")]
    pub reminder_interval: Option<Duration>,
    /// Replaces [`Policy::reminder_backoff`].
    #[serde(default)]
    pub reminder_backoff: Option<f64>,
    /// Replaces [`Policy::max_reminder_interval`].
    #[serde(default, with = "humantime_serde::option")]
    pub max_reminder_interval: Option<Duration>,
    /// Replaces [`Policy::max_reminders`].
    pub max_reminders: Option<u32>,
    /// Sets [`Policy::schedule`] (then `timeout` may not be given).
    pub schedule: Option<Schedule>,
}

impl PolicyOverride {
    /// An override for `hosts` that replaces nothing yet: set the fields
    /// it replaces (`PolicyOverride { timeout: Some(..), ..PolicyOverride::new(p) }`).
    pub fn new(hosts: HostPattern) -> Self {
        Self {
            hosts,
            timeout: None,
            reminder_interval: None,
            reminder_backoff: None,
            max_reminder_interval: None,
            max_reminders: None,
            schedule: None,
        }
    }
}

/// The written form of a [`PolicyOverride`]: the schedule's parts flat.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct OverrideSpec {
    hosts: HostPattern,
    #[serde(default, with = "humantime_serde::option")]
    timeout: Option<Duration>,
    #[serde(default, with = "humantime_serde::option")]
    reminder_interval: Option<Duration>,
    #[serde(default)]
    reminder_backoff: Option<f64>,
    #[serde(default, with = "humantime_serde::option")]
    max_reminder_interval: Option<Duration>,
    #[serde(default)]
    max_reminders: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    schedule: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tz: Option<String>,
    #[serde(
        default,
        with = "humantime_serde::option",
        skip_serializing_if = "Option::is_none"
    )]
    grace: Option<Duration>,
}

impl TryFrom<OverrideSpec> for PolicyOverride {
    type Error = String;
    fn try_from(o: OverrideSpec) -> Result<Self, String> {
        let named = |e: String| format!("policy for hosts '{}': {e}", o.hosts);
        let schedule = match &o.schedule {
            Some(cron) => Some(
                Schedule::new(
                    cron,
                    o.tz.as_deref().unwrap_or("UTC"),
                    o.grace.unwrap_or(DEFAULT_GRACE),
                )
                .map_err(named)?,
            ),
            None if o.tz.is_some() || o.grace.is_some() => {
                return Err(named(
                    "tz and grace belong to a schedule: give schedule too".into(),
                ));
            }
            None => None,
        };
        if schedule.is_some() && o.timeout.is_some() {
            return Err(named(
                "give either timeout (an interval job) or schedule (a cron job), not both".into(),
            ));
        }
        Ok(Self {
            hosts: o.hosts,
            timeout: o.timeout,
            reminder_interval: o.reminder_interval,
            reminder_backoff: o.reminder_backoff,
            max_reminder_interval: o.max_reminder_interval,
            max_reminders: o.max_reminders,
            schedule,
        })
    }
}

impl From<PolicyOverride> for OverrideSpec {
    fn from(o: PolicyOverride) -> Self {
        let (schedule, tz, grace) = match o.schedule {
            Some(s) => (
                Some(s.cron().to_owned()),
                Some(s.tz().to_owned()),
                Some(s.grace()),
            ),
            None => (None, None, None),
        };
        Self {
            hosts: o.hosts,
            timeout: o.timeout,
            reminder_interval: o.reminder_interval,
            reminder_backoff: o.reminder_backoff,
            max_reminder_interval: o.max_reminder_interval,
            max_reminders: o.max_reminders,
            schedule,
            tz,
            grace,
        }
    }
}

/// The default policy and per-host overrides; the first matching override wins.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySet {
    /// The policy for hosts no override matches.
    #[serde(default)]
    pub default: Policy,
    /// Overrides, tried in order.
    #[serde(default)]
    pub overrides: Vec<PolicyOverride>,
}

impl PolicySet {
    /// A set with only a default policy.
    pub fn new(default: Policy) -> Self {
        Self {
            default,
            overrides: Vec::new(),
        }
    }

    /// The effective policy for `host`.
    pub fn for_host(&self, host: &HostId) -> Policy {
        let mut p = self.default.clone();
        if let Some(o) = self.overrides.iter().find(|o| o.hosts.matches(host)) {
            if let Some(v) = o.timeout {
                p.timeout = v;
                p.schedule = None;
            }
            if o.schedule.is_some() {
                p.schedule.clone_from(&o.schedule);
            }
            if let Some(v) = o.reminder_interval {
                p.reminder_interval = v;
            }
            if let Some(v) = o.reminder_backoff {
                p.reminder_backoff = v;
            }
            if o.max_reminder_interval.is_some() {
                p.max_reminder_interval = o.max_reminder_interval;
            }
            if o.max_reminders.is_some() {
                p.max_reminders = o.max_reminders;
            }
        }
        p
    }

    /// The effective policy for `rec`: [`for_host`](Self::for_host) with
    /// the policy stored in the record (set through the API) applied over
    /// it, since it is the more specific of the two.
    pub fn for_record(&self, rec: &HostRecord) -> Policy {
        self.for_host(&rec.host)
            .with_host_policy(rec.policy.as_deref())
    }

    /// The timeout for `host`, without building a whole policy (the
    /// heartbeat path); for a scheduled host, its grace.
    pub fn timeout_for(&self, host: &HostId) -> Duration {
        match self.overrides.iter().find(|o| o.hosts.matches(host)) {
            Some(o) => match (&o.schedule, o.timeout) {
                (Some(s), _) => s.grace(),
                (None, Some(t)) => t,
                (None, None) => self.default.allowance(),
            },
            None => self.default.allowance(),
        }
    }

    /// When `host`, heard from at `heard`, becomes missing under the
    /// configured policies (not counting a policy stored with the host),
    /// without building a whole policy: the heartbeat path's `due_if_up`.
    pub fn deadline_for(&self, host: &HostId, heard: Timestamp) -> Timestamp {
        match self.overrides.iter().find(|o| o.hosts.matches(host)) {
            Some(o) => match (&o.schedule, o.timeout) {
                (Some(s), _) => s.deadline(heard),
                (None, Some(t)) => add(heard, t),
                (None, None) => self.default.deadline_after(heard),
            },
            None => self.default.deadline_after(heard),
        }
    }

    /// The shortest timeout (or schedule grace) of any host (how often a
    /// runner must mark itself alive).
    pub fn shortest_timeout(&self) -> Duration {
        self.overrides
            .iter()
            .filter_map(|o| o.schedule.as_ref().map(Schedule::grace).or(o.timeout))
            .fold(self.default.allowance(), Duration::min)
    }

    /// Validates the default and every override, naming the bad one.
    pub fn validate(&self) -> Result<(), String> {
        self.default
            .validate()
            .map_err(|e| format!("default policy: {e}"))?;
        for o in &self.overrides {
            let mut p = self.default.clone();
            p.timeout = o.timeout.unwrap_or(p.timeout);
            p.reminder_interval = o.reminder_interval.unwrap_or(p.reminder_interval);
            p.reminder_backoff = o.reminder_backoff.unwrap_or(p.reminder_backoff);
            p.validate()
                .map_err(|e| format!("policy for hosts '{}': {e}", o.hosts))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reminder_backoff_and_cap() {
        let p = Policy {
            reminder_interval: Duration::from_secs(60),
            reminder_backoff: 2.0,
            max_reminder_interval: Some(Duration::from_secs(300)),
            max_reminders: Some(4),
            ..Policy::default()
        };
        let waits: Vec<_> = (1..=6).map(|n| p.reminder_after(n)).collect();
        let s = |x| Some(Duration::from_secs(x));
        assert_eq!(waits, vec![s(60), s(120), s(240), s(300), None, None]);
        assert_eq!(
            Policy::default().reminder_after(100),
            Some(Duration::from_secs(3600))
        );
    }

    #[test]
    fn overrides_first_match_wins() {
        let set: PolicySet = toml_like();
        let h = |s| HostId::new(s).unwrap();
        assert_eq!(set.for_host(&h("db-1")).timeout, Duration::from_secs(30));
        assert_eq!(set.timeout_for(&h("db-1")), Duration::from_secs(30));
        assert_eq!(set.for_host(&h("web")).timeout, Duration::from_secs(3600));
        assert_eq!(
            PolicySet::default().for_host(&h("web")).timeout,
            Duration::from_secs(600)
        );
        assert_eq!(set.shortest_timeout(), Duration::from_secs(30));
        assert!(set.validate().is_ok());
    }

    fn toml_like() -> PolicySet {
        serde_json::from_str(
            r#"{"default": {"timeout": "10m"},
                "overrides": [{"hosts": "db-*", "timeout": "30s"},
                              {"hosts": "*", "timeout": "1h"}]}"#,
        )
        .unwrap()
    }

    #[test]
    fn bad_policies_are_named() {
        let bad: Result<PolicySet, _> =
            serde_json::from_str(r#"{"default": {"timeout": "10m", "tmeout": "1s"}}"#);
        assert!(bad.unwrap_err().to_string().contains("tmeout"));
        let zero = PolicySet {
            overrides: vec![PolicyOverride {
                timeout: Some(Duration::ZERO),
                ..PolicyOverride::new(HostPattern::new("x*").unwrap())
            }],
            ..PolicySet::default()
        };
        let e = zero.validate().unwrap_err();
        assert!(e.contains("'x*'") && e.contains("timeout"), "{e}");
    }
}
