//! The operator-facing settings: per-host metrics and maintenance from
//! the host. Their own tables (`[metrics]`, `[maintenance]`), hooked into
//! [`Config`](crate::Config) as [`Config::ops`](crate::Config::ops).

use std::time::Duration;

use serde::Deserialize;

/// The default of [`OpsSettings::metrics_max_hosts`].
pub const DEFAULT_METRICS_MAX_HOSTS: usize = 1000;

/// The default of [`OpsSettings::max_self_silence`]: 12 hours.
pub const DEFAULT_MAX_SELF_SILENCE: Duration = Duration::from_secs(12 * 3600);

/// Settings for what operators see and touch beyond the core API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpsSettings {
    /// The most hosts given per-host series on `/metrics`
    /// (`metrics.max_hosts`, `IAMALIVE_METRICS_MAX_HOSTS`); 0 turns them
    /// off. Default 1000. Each scrape lists at most this many hosts.
    pub metrics_max_hosts: usize,
    /// The longest maintenance a `heartbeat`-role key may put its own host
    /// in (`maintenance.max_self_silence`, `IAMALIVE_MAX_SELF_SILENCE`).
    /// Default 12 h. Admin keys are bound only by the silence limit (1 year).
    pub max_self_silence: Duration,
}

impl Default for OpsSettings {
    fn default() -> Self {
        Self {
            metrics_max_hosts: DEFAULT_METRICS_MAX_HOSTS,
            max_self_silence: DEFAULT_MAX_SELF_SILENCE,
        }
    }
}

/// `[metrics]` in the config file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MetricsTable {
    max_hosts: Option<usize>,
}

/// `[maintenance]` in the config file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MaintenanceTable {
    #[serde(default, with = "humantime_serde::option")]
    max_self_silence: Option<Duration>,
}

impl OpsSettings {
    /// The settings from their tables, defaults for what is missing.
    pub(crate) fn from_tables(m: Option<MetricsTable>, mt: Option<MaintenanceTable>) -> Self {
        let d = Self::default();
        Self {
            metrics_max_hosts: m.and_then(|m| m.max_hosts).unwrap_or(d.metrics_max_hosts),
            max_self_silence: mt
                .and_then(|m| m.max_self_silence)
                .unwrap_or(d.max_self_silence),
        }
    }
}
