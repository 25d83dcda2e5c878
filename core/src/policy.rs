//! How long a host may stay silent, and how often the team is reminded.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{HostId, HostPattern};

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
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(600),
            reminder_interval: Duration::from_secs(3600),
            reminder_backoff: 1.0,
            max_reminder_interval: None,
            max_reminders: None,
        }
    }
}

impl Policy {
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
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
    #[serde(default)]
    pub max_reminders: Option<u32>,
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

    /// The timeout for `host`, without building a whole policy (the heartbeat path).
    pub fn timeout_for(&self, host: &HostId) -> Duration {
        self.overrides
            .iter()
            .find(|o| o.hosts.matches(host))
            .and_then(|o| o.timeout)
            .unwrap_or(self.default.timeout)
    }

    /// The shortest timeout of any host (how often a runner must mark itself alive).
    pub fn shortest_timeout(&self) -> Duration {
        self.overrides
            .iter()
            .filter_map(|o| o.timeout)
            .fold(self.default.timeout, Duration::min)
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
                hosts: HostPattern::new("x*").unwrap(),
                timeout: Some(Duration::ZERO),
                reminder_interval: None,
                reminder_backoff: None,
                max_reminder_interval: None,
                max_reminders: None,
            }],
            ..PolicySet::default()
        };
        let e = zero.validate().unwrap_err();
        assert!(e.contains("'x*'") && e.contains("timeout"), "{e}");
    }
}
