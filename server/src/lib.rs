#![doc = include_str!("../README.md")]

mod api;
mod binary;
mod config;
mod dashboard;
mod error;
mod groups;
mod keys;
mod listen;
mod logging;
mod redact;
mod rejections;
mod runner;
mod serve;

pub use api::{
    ApiError, AppState, DynMonitor, MAX_MESSAGE_LEN, MAX_REPORT_BYTES, MAX_REPORT_FAILURES, router,
};
pub use binary::{Deployment, SetupError, run_binary};
pub use config::{
    CONFIG_FILE_ENV, Config, ConfigError, ENV_KEYS, Limits, LogFormat, MonitorSettings, Rate,
    Secret, SmtpConfig, WebhookConfig,
};
pub use dashboard::{DashboardSettings, MIN_BADGE_SECRET, SESSION_COOKIE, SecureCookie, UNGROUPED};
pub use error::ServerError;
pub use groups::{
    DEFAULT_GROUP_MIN_HOSTS, DEFAULT_GROUP_WAIT, GroupConfig, GroupSettings, GroupingSettings,
};
pub use keys::{ApiKey, KeyHash, KeyRing, Role, generate_key};
pub use listen::{RESERVED_FILES, raise_open_file_limit, serve_listener};
pub use logging::{init_logging, init_logging_with, use_colour};
pub use rejections::{DEFAULT_MAX_HOSTS, LOG_WINDOW, LOGGED_PER_REASON, Rejections};
pub use runner::{MIN_SLEEP, Runner};
pub use serve::{
    FirstRunKey, first_run_banner, first_run_key, serve, serve_until, shutdown_signal,
};
