#![doc = include_str!("../README.md")]

mod api;
mod binary;
mod config;
mod dashboard;
mod error;
mod groups;
mod host_metrics;
mod keys;
#[cfg(feature = "lambda")]
pub mod lambda;
mod listen;
mod logging;
mod ops;
mod pages;
mod redact;
mod rejections;
mod runner;
mod self_ping;
mod serve;

pub use api::{
    ApiError, AppState, DynMonitor, MAX_MESSAGE_LEN, MAX_REPORT_BYTES, MAX_REPORT_FAILURES, router,
};
pub use binary::{Deployment, SetupError, run_binary, run_deployment};
pub use config::{
    CONFIG_FILE_ENV, Config, ConfigError, ENV_KEYS, Limits, LogFormat, MonitorSettings, Rate,
    Secret, StoreKind, env_names,
};
pub use dashboard::{DashboardSettings, MIN_BADGE_SECRET, SESSION_COOKIE, SecureCookie, UNGROUPED};
pub use error::ServerError;
pub use groups::{
    DEFAULT_GROUP_MIN_HOSTS, DEFAULT_GROUP_WAIT, GroupConfig, GroupSettings, GroupingSettings,
};
pub use host_metrics::{NOTICES, SWEEP_DUE, SWEEP_DURATION, prometheus_builder};
pub use keys::{ApiKey, KeyHash, KeyRing, Role, generate_key};
pub use listen::{RESERVED_FILES, raise_open_file_limit, serve_listener};
pub use logging::{init_logging, init_logging_with, use_colour};
pub use ops::{DEFAULT_MAX_SELF_SILENCE, DEFAULT_METRICS_MAX_HOSTS, OpsSettings};
pub use rejections::{DEFAULT_MAX_HOSTS, LOG_WINDOW, LOGGED_PER_REASON, Rejections};
pub use runner::{MIN_SLEEP, Runner};
pub use self_ping::{
    Cadence, DEFAULT_SELF_PING_INTERVAL, DEFAULT_SELF_PING_TIMEOUT, MAX_FAIL_BODY, SelfPing,
    SelfPingSettings, SelfWatch, SelfWatchStatus, degraded_reasons,
};
pub use serve::{
    FirstRunKey, first_run_banner, first_run_key, serve, serve_until, shutdown_signal,
};
