//! Configuration: a TOML file and `IAMALIVE_*` environment variables.
//!
//! Environment variables override the file. Every key of every deployment
//! is known here, so a typo anywhere is an error at start that names the
//! key, never a silently ignored setting.

use std::fmt;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::time::Duration;

use iamalive_core::settings::{EnvKind as Kind, EnvVar, SettingError};
use iamalive_core::{HostPattern, Policy, PolicyOverride, PolicySet, RetryPolicy, Route, Routes};
pub use iamalive_notify::Secret;
use iamalive_notify::settings::{ChannelSettings, ChannelTable, duplicate_name};
use iamalive_store_dynamo::settings::{DynamoSettings, DynamoTable};
use iamalive_store_redis::settings::{RedisSettings, RedisTable};
use iamalive_store_sqlite::settings::{SqliteSettings, SqliteTable};
use serde::Deserialize;

use crate::keys::{ApiKey, Role, parse_secret};
use crate::self_ping::{SELF_PING_ENV_KEYS, SelfPingSettings, SelfPingTable};

/// A configuration problem, naming the key (TOML path or environment variable).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("configuration: {key}: {reason}")]
pub struct ConfigError {
    /// The offending key, e.g. `IAMALIVE_TIMEOUT` or `policy.timeout`.
    pub key: String,
    /// What is wrong with it.
    pub reason: String,
}

impl ConfigError {
    pub(crate) fn new(key: impl Into<String>, reason: impl fmt::Display) -> Self {
        Self {
            key: key.into(),
            reason: reason.to_string(),
        }
    }
}

/// A rate: `count` requests per `period`, with bursts of up to `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Requests allowed per period (also the burst size).
    pub count: NonZeroU32,
    /// The period.
    pub period: Duration,
}

impl Rate {
    /// Parses `<count>/<period>`: `100/1s`, `600/1m`, `10/s`; `off` gives `None`.
    pub fn parse(s: &str) -> Result<Option<Rate>, String> {
        let s = s.trim();
        if s == "off" {
            return Ok(None);
        }
        let (n, p) = s.split_once('/').ok_or_else(|| {
            format!("expected <count>/<period> such as 100/1s, or off; found {s:?}")
        })?;
        let count: u32 = n
            .trim()
            .parse()
            .map_err(|_| format!("{n:?} is not a request count"))?;
        let count = NonZeroU32::new(count).ok_or("the request count must be at least 1")?;
        let p = p.trim();
        let p = if p.starts_with(|c: char| c.is_ascii_digit()) {
            p.to_owned()
        } else {
            format!("1{p}")
        };
        let period = humantime::parse_duration(&p).map_err(|e| format!("period {p:?}: {e}"))?;
        if period.is_zero() {
            return Err("the period must be longer than zero".into());
        }
        Ok(Some(Rate { count, period }))
    }
}

/// Limits applied to every request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// The largest request body accepted, in bytes. Default 16 KiB.
    pub body_bytes: usize,
    /// Requests taking longer are answered 503. Default 10 s.
    pub request_timeout: Duration,
    /// Per-key rate limit; `None` turns it off. Default 100/1s.
    pub per_key: Option<Rate>,
    /// Rate limit over all authenticated requests to the ingest; `None`
    /// turns it off. Default 2000/1s. Requests without a valid key never
    /// spend it.
    pub global: Option<Rate>,
    /// Rate limit over all requests that present no key or an invalid one;
    /// past it they are answered 429 at once. `None` turns it off. Default
    /// 200/1s.
    pub unauthenticated: Option<Rate>,
    /// The most open connections at once. Default 4096; lowered at start to
    /// leave descriptors free under the open-file limit.
    pub max_connections: usize,
    /// The most open connections from one client address (an IPv6 /64
    /// counts as one address). Default 64.
    pub max_connections_per_ip: usize,
    /// A connection that has not sent a whole request head this long after
    /// it opened, or after its previous response, is closed. Default 10 s.
    pub header_timeout: Duration,
    /// A keep-alive connection with no request in flight for this long is
    /// closed. Default 60 s.
    pub idle_timeout: Duration,
    /// How many hosts one key's heartbeats may create (auto-registration),
    /// as a rate with bursts of up to `count`; past it a heartbeat for an
    /// unknown host is answered 429 and nothing is written. `None` turns
    /// it off. Default 100/1h.
    pub new_hosts_per_key: Option<Rate>,
    /// The most hosts the watcher keeps: past it heartbeats create no new
    /// host (429). Hosts registered with `PUT /v1/hosts/{host}` are counted
    /// but never refused. `None`: no cap. Default 100 000.
    pub max_hosts: Option<u64>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            body_bytes: 16 * 1024,
            request_timeout: Duration::from_secs(10),
            per_key: Some(Rate {
                count: NonZeroU32::new(100).expect("non-zero"),
                period: Duration::from_secs(1),
            }),
            global: Some(Rate {
                count: NonZeroU32::new(2000).expect("non-zero"),
                period: Duration::from_secs(1),
            }),
            unauthenticated: Some(Rate {
                count: NonZeroU32::new(200).expect("non-zero"),
                period: Duration::from_secs(1),
            }),
            max_connections: 4096,
            max_connections_per_ip: 64,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            new_hosts_per_key: Some(Rate {
                count: NonZeroU32::new(100).expect("non-zero"),
                period: Duration::from_secs(3600),
            }),
            max_hosts: Some(100_000),
        }
    }
}

/// How the monitor runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonitorSettings {
    /// How long a monitor owns a notice it is delivering. Default 2 min.
    pub lease: Duration,
    /// Backoff for channels that failed transiently.
    pub retry: RetryPolicy,
    /// The longest the runner sleeps between sweeps, so other processes'
    /// writes are noticed. Default 5 s.
    pub max_sleep: Duration,
    /// How long rejected heartbeats are remembered for alarm texts. Default 1 h.
    pub rejection_window: Duration,
    /// How long the store must keep failing (sweeps, heartbeat writes)
    /// before every channel hears that the watcher is degraded. Default 30 s.
    pub store_fault_after: Duration,
}

impl Default for MonitorSettings {
    fn default() -> Self {
        Self {
            lease: Duration::from_secs(120),
            retry: RetryPolicy::default(),
            max_sleep: Duration::from_secs(5),
            rejection_window: Duration::from_secs(3600),
            store_fault_after: Duration::from_secs(30),
        }
    }
}

/// Which store a deployment keeps its state in: chosen by which section
/// is configured (`[sqlite]`, the default, `[redis]` or `[dynamo]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StoreKind {
    /// A SQLite file (`[sqlite]`, `IAMALIVE_SQLITE_*`): the zero-config default.
    #[default]
    Sqlite,
    /// Redis (`[redis]`, `IAMALIVE_REDIS_*`).
    Redis,
    /// DynamoDB (`[dynamo]`, `IAMALIVE_DYNAMO_*`).
    Dynamo,
}

impl StoreKind {
    /// `sqlite`, `redis` or `dynamo`.
    pub fn as_str(self) -> &'static str {
        match self {
            StoreKind::Sqlite => "sqlite",
            StoreKind::Redis => "redis",
            StoreKind::Dynamo => "dynamo",
        }
    }
}

/// The whole configuration of a server process.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Where the HTTP server listens. Default `127.0.0.1:8080`.
    pub listen: SocketAddr,
    /// Create unknown hosts on their first heartbeat. Default true.
    pub auto_register: bool,
    /// Accepted API keys; empty means "generate one on first start".
    pub keys: Vec<ApiKey>,
    /// Where the hash of a generated key is kept. Default: beside the
    /// SQLite file (`iamalive.db.key`).
    pub generated_key_file: PathBuf,
    /// Timeouts and reminder throttling, with per-host overrides.
    pub policies: PolicySet,
    /// Request limits.
    pub limits: Limits,
    /// Monitor tuning.
    pub monitor: MonitorSettings,
    /// The SQLite store's settings (`[sqlite]`, `IAMALIVE_SQLITE_*`).
    pub sqlite: SqliteSettings,
    /// The store the configuration chose (see [`StoreKind`]).
    pub store: StoreKind,
    /// Whether `[sqlite]` (or an `IAMALIVE_SQLITE_*` variable) was given,
    /// rather than SQLite being the default.
    pub sqlite_configured: bool,
    /// The channels configured: every `[[channels]]` entry, then each
    /// legacy single-channel section (`[smtp]`, `[webhook]`, `[sns]` and
    /// their `IAMALIVE_*` variables) as one channel named after its kind.
    /// Names are unique. Empty when none is; see
    /// [`channel_settings`](Self::channel_settings).
    pub channels: Vec<ChannelSettings>,
    /// Which channels each host's notice goes to (`[[routes]]`), checked
    /// against the channels' names.
    pub routes: Routes,
    /// The Redis store's settings (`[redis]`, `IAMALIVE_REDIS_*`).
    pub redis: RedisSettings,
    /// The DynamoDB store's settings (`[dynamo]`, `IAMALIVE_DYNAMO_*`).
    pub dynamo: DynamoSettings,
    /// A `tracing` filter (`info`, `iamalive_server=debug`). Default `info`.
    pub log: Option<String>,
    /// How log lines are written: `text` (the default) or `json`.
    pub log_format: LogFormat,
    /// The watcher's own heartbeat, when `self_ping.url` is set.
    pub self_ping: Option<SelfPingSettings>,
    /// Per-host metrics and maintenance from the host (`[metrics]`,
    /// `[maintenance]`).
    pub ops: crate::ops::OpsSettings,
    /// The dashboard, status pages and badges.
    pub dashboard: crate::dashboard::DashboardSettings,
    /// Groups (sites): `[grouping]` defaults and `[[groups]]` entries.
    pub groups: crate::groups::GroupSettings,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// One line of text per event; colours only on a terminal.
    #[default]
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

impl Default for Config {
    fn default() -> Self {
        Self::from_sources(None, std::iter::empty::<(String, String)>())
            .expect("the empty configuration is valid")
    }
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    auto_register: Option<bool>,
    api_keys: Option<Vec<String>>,
    keys: Option<Vec<KeyTable>>,
    generated_key_file: Option<PathBuf>,
    log: Option<String>,
    log_format: Option<String>,
    policy: Option<PolicyTable>,
    limits: Option<LimitsTable>,
    monitor: Option<MonitorTable>,
    sqlite: Option<SqliteTable>,
    channels: Option<Vec<ChannelTable>>,
    routes: Option<Vec<Route>>,
    smtp: Option<SmtpTable>,
    redis: Option<RedisTable>,
    webhook: Option<WebhookTable>,
    dynamo: Option<DynamoTable>,
    sns: Option<SnsTable>,
    self_ping: Option<SelfPingTable>,
    metrics: Option<crate::ops::MetricsTable>,
    maintenance: Option<crate::ops::MaintenanceTable>,
    dashboard: Option<crate::dashboard::DashboardTable>,
    grouping: Option<crate::groups::GroupingTable>,
    groups: Option<Vec<crate::groups::GroupTable>>,
    flapping: Option<iamalive_core::flap::FlapPolicy>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyTable {
    name: Option<String>,
    key: Option<String>,
    hash: Option<String>,
    role: Option<Role>,
    hosts: Option<HostPattern>,
    register: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyTable {
    #[serde(default, with = "humantime_serde::option")]
    timeout: Option<Duration>,
    #[serde(default, with = "humantime_serde::option")]
    reminder_interval: Option<Duration>,
    reminder_backoff: Option<f64>,
    #[serde(default, with = "humantime_serde::option")]
    max_reminder_interval: Option<Duration>,
    max_reminders: Option<u32>,
    #[serde(default)]
    hosts: Vec<PolicyOverride>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitsTable {
    body_bytes: Option<usize>,
    #[serde(default, with = "humantime_serde::option")]
    request_timeout: Option<Duration>,
    per_key: Option<String>,
    global: Option<String>,
    unauthenticated: Option<String>,
    max_connections: Option<usize>,
    max_connections_per_ip: Option<usize>,
    #[serde(default, with = "humantime_serde::option")]
    header_timeout: Option<Duration>,
    #[serde(default, with = "humantime_serde::option")]
    idle_timeout: Option<Duration>,
    new_hosts_per_key: Option<String>,
    /// A count or `"off"`; checked in `resolve`.
    max_hosts: Option<toml::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct MonitorTable {
    #[serde(default, with = "humantime_serde::option")]
    lease: Option<Duration>,
    #[serde(default, with = "humantime_serde::option")]
    retry_base: Option<Duration>,
    #[serde(default, with = "humantime_serde::option")]
    retry_max: Option<Duration>,
    #[serde(default, with = "humantime_serde::option")]
    retry_give_up: Option<Duration>,
    #[serde(default, with = "humantime_serde::option")]
    max_sleep: Option<Duration>,
    #[serde(default, with = "humantime_serde::option")]
    rejection_window: Option<Duration>,
    #[serde(default, with = "humantime_serde::option")]
    store_fault_after: Option<Duration>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SmtpTable {
    url: Option<String>,
    from: Option<String>,
    to: Option<Vec<String>>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct WebhookTable {
    url: Option<String>,
    format: Option<String>,
    secret: Option<String>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SnsTable {
    topic_arn: Option<String>,
}

/// Every environment variable of the server's own settings, with its TOML
/// path. Each store's section brings its own (`iamalive_store_*::settings::ENV`);
/// [`env_names`] lists them all.
pub const ENV_KEYS: &[(&str, &str)] = &[
    ("IAMALIVE_LISTEN", "listen"),
    ("IAMALIVE_AUTO_REGISTER", "auto_register"),
    ("IAMALIVE_API_KEYS", "api_keys"),
    ("IAMALIVE_GENERATED_KEY_FILE", "generated_key_file"),
    ("IAMALIVE_LOG", "log"),
    ("IAMALIVE_LOG_FORMAT", "log_format"),
    ("IAMALIVE_METRICS_MAX_HOSTS", "metrics.max_hosts"),
    ("IAMALIVE_MAX_SELF_SILENCE", "maintenance.max_self_silence"),
    ("IAMALIVE_TIMEOUT", "policy.timeout"),
    ("IAMALIVE_REMINDER_INTERVAL", "policy.reminder_interval"),
    ("IAMALIVE_REMINDER_BACKOFF", "policy.reminder_backoff"),
    (
        "IAMALIVE_MAX_REMINDER_INTERVAL",
        "policy.max_reminder_interval",
    ),
    ("IAMALIVE_MAX_REMINDERS", "policy.max_reminders"),
    ("IAMALIVE_BODY_LIMIT", "limits.body_bytes"),
    ("IAMALIVE_REQUEST_TIMEOUT", "limits.request_timeout"),
    ("IAMALIVE_RATE_LIMIT_PER_KEY", "limits.per_key"),
    ("IAMALIVE_RATE_LIMIT_GLOBAL", "limits.global"),
    (
        "IAMALIVE_RATE_LIMIT_UNAUTHENTICATED",
        "limits.unauthenticated",
    ),
    ("IAMALIVE_MAX_CONNECTIONS", "limits.max_connections"),
    (
        "IAMALIVE_MAX_CONNECTIONS_PER_IP",
        "limits.max_connections_per_ip",
    ),
    ("IAMALIVE_HEADER_TIMEOUT", "limits.header_timeout"),
    ("IAMALIVE_IDLE_TIMEOUT", "limits.idle_timeout"),
    ("IAMALIVE_MAX_NEW_HOSTS_PER_KEY", "limits.new_hosts_per_key"),
    ("IAMALIVE_MAX_HOSTS", "limits.max_hosts"),
    ("IAMALIVE_LEASE", "monitor.lease"),
    ("IAMALIVE_RETRY_BASE", "monitor.retry_base"),
    ("IAMALIVE_RETRY_MAX", "monitor.retry_max"),
    ("IAMALIVE_RETRY_GIVE_UP", "monitor.retry_give_up"),
    ("IAMALIVE_MAX_SLEEP", "monitor.max_sleep"),
    ("IAMALIVE_REJECTION_WINDOW", "monitor.rejection_window"),
    ("IAMALIVE_STORE_FAULT_AFTER", "monitor.store_fault_after"),
    ("IAMALIVE_SMTP_URL", "smtp.url"),
    ("IAMALIVE_SMTP_FROM", "smtp.from"),
    ("IAMALIVE_SMTP_TO", "smtp.to"),
    ("IAMALIVE_WEBHOOK_URL", "webhook.url"),
    ("IAMALIVE_WEBHOOK_FORMAT", "webhook.format"),
    ("IAMALIVE_WEBHOOK_SECRET", "webhook.secret"),
    ("IAMALIVE_SNS_TOPIC_ARN", "sns.topic_arn"),
    ("IAMALIVE_CHANNELS", "channels"),
    ("IAMALIVE_ROUTES", "routes"),
    SELF_PING_ENV_KEYS[0],
    SELF_PING_ENV_KEYS[1],
    SELF_PING_ENV_KEYS[2],
    ("IAMALIVE_DASHBOARD", "dashboard.enabled"),
    ("IAMALIVE_DASHBOARD_SESSION_TTL", "dashboard.session_ttl"),
    ("IAMALIVE_DASHBOARD_REFRESH", "dashboard.refresh"),
    ("IAMALIVE_DASHBOARD_TZ", "dashboard.tz"),
    ("IAMALIVE_DASHBOARD_SECRET", "dashboard.session_secret"),
    (
        "IAMALIVE_DASHBOARD_SECURE_COOKIE",
        "dashboard.secure_cookie",
    ),
    ("IAMALIVE_STATUS_PAGES", "dashboard.status_pages"),
    ("IAMALIVE_BADGE_SECRET", "dashboard.badge_secret"),
    ("IAMALIVE_GROUP_MIN_HOSTS", "grouping.min_hosts"),
    ("IAMALIVE_GROUP_WAIT", "grouping.wait"),
    ("IAMALIVE_FLAP_FLIPS", "flapping.flips"),
    ("IAMALIVE_FLAP_WINDOW", "flapping.window"),
    ("IAMALIVE_FLAP_STABLE", "flapping.stable"),
    ("IAMALIVE_FLAP_ENABLED", "flapping.enabled"),
    ("IAMALIVE_GROUP_BLIND", "grouping.blind_detection"),
];

/// The variable naming the TOML file to read.
pub const CONFIG_FILE_ENV: &str = "IAMALIVE_CONFIG";

/// `IAMALIVE_*` names read by other iamalive programs (the agent, the test
/// tools), which the server leaves alone.
const FOREIGN_PREFIXES: &[&str] = &["IAMALIVE_AGENT_", "IAMALIVE_TEST_"];

/// The variables of each store's section.
const STORE_ENV: [&[EnvVar]; 3] = [
    iamalive_store_sqlite::settings::ENV,
    iamalive_store_redis::settings::ENV,
    iamalive_store_dynamo::settings::ENV,
];

/// Every `IAMALIVE_*` variable a server reads: its own ([`ENV_KEYS`]) and
/// each store section's.
pub fn env_names() -> impl Iterator<Item = &'static str> {
    ENV_KEYS
        .iter()
        .map(|(v, _)| *v)
        .chain(STORE_ENV.into_iter().flatten().map(|(v, _, _)| *v))
}

/// The TOML path `name` sets and how its text is read.
fn env_var(name: &str) -> Option<(&'static str, Kind)> {
    if let Some((_, path)) = ENV_KEYS.iter().find(|(n, _)| *n == name) {
        return Some((path, kind_of(path)));
    }
    STORE_ENV
        .into_iter()
        .flatten()
        .find(|(n, _, _)| *n == name)
        .map(|(_, path, kind)| (*path, *kind))
}

/// `path (VARIABLE)` when a variable sets `path`, else `path`.
fn key_name(path: &str) -> String {
    match ENV_KEYS.iter().find(|(_, p)| *p == path) {
        Some((var, _)) => format!("{path} ({var})"),
        None => STORE_ENV
            .into_iter()
            .find(|vars| vars.iter().any(|(_, p, _)| *p == path))
            .map_or_else(
                || path.to_owned(),
                |vars| iamalive_core::settings::key_name(vars, path),
            ),
    }
}

fn setting(e: SettingError) -> ConfigError {
    ConfigError::new(e.key, e.reason)
}

fn kind_of(path: &str) -> Kind {
    match path {
        "auto_register" | "dashboard.enabled" | "flapping.enabled" | "grouping.blind_detection" => {
            Kind::Bool
        }
        "api_keys" | "smtp.to" | "dashboard.status_pages" => Kind::List,
        "dashboard.session_ttl"
        | "dashboard.refresh"
        | "grouping.wait"
        | "flapping.window"
        | "flapping.stable" => Kind::Duration,
        "policy.reminder_backoff" => Kind::Float,
        "policy.max_reminders"
        | "limits.body_bytes"
        | "limits.max_connections"
        | "limits.max_connections_per_ip"
        | "grouping.min_hosts"
        | "flapping.flips"
        | "metrics.max_hosts" => Kind::Int,
        "maintenance.max_self_silence" => Kind::Duration,
        "limits.max_hosts" => Kind::CountOrOff,
        "channels" | "routes" => Kind::Json,
        p if p.ends_with("timeout") || p.ends_with("interval") || p.starts_with("monitor.") => {
            Kind::Duration
        }
        _ => Kind::Str,
    }
}

fn env_value(name: &str, path: &str, kind: Kind, raw: &str) -> Result<toml::Value, ConfigError> {
    let err = |r: String| ConfigError::new(name, r);
    Ok(match kind {
        Kind::Str => toml::Value::String(raw.to_owned()),
        Kind::Duration => {
            humantime::parse_duration(raw.trim()).map_err(|e| {
                err(format!(
                    "{raw:?} is not a duration such as 10m, 90s or 500ms: {e}"
                ))
            })?;
            toml::Value::String(raw.trim().to_owned())
        }
        Kind::Float => toml::Value::Float(
            raw.trim()
                .parse()
                .map_err(|_| err(format!("{raw:?} is not a number")))?,
        ),
        Kind::Int => toml::Value::Integer(
            raw.trim()
                .parse::<u32>()
                .map_err(|_| err(format!("{raw:?} is not a whole number")))?
                .into(),
        ),
        Kind::CountOrOff if raw.trim() == "off" => toml::Value::String("off".into()),
        Kind::CountOrOff => toml::Value::Integer(
            raw.trim()
                .parse::<i64>()
                .map_err(|_| err(format!("{raw:?} is not a whole number or off")))?,
        ),
        Kind::Json => {
            let v: serde_json::Value = serde_json::from_str(raw).map_err(|e| {
                err(format!(
                    "not a JSON array of {path} such as [{{\"name\": \"a\", ...}}]: {e}"
                ))
            })?;
            if !v.is_array() {
                return Err(err(format!("expected a JSON array of {path}")));
            }
            toml::Value::try_from(v).map_err(|e| {
                err(format!(
                    "cannot be read as {path} (a null, or a mix of types in one list?): {e}"
                ))
            })?
        }
        Kind::Bool => toml::Value::Boolean(match raw.trim() {
            "true" | "1" | "yes" | "on" => true,
            "false" | "0" | "no" | "off" => false,
            _ => return Err(err(format!("{raw:?} is not true or false"))),
        }),
        Kind::List => toml::Value::Array(
            raw.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| toml::Value::String(s.to_owned()))
                .collect(),
        ),
    })
}

impl Config {
    /// The channels to build: those configured, or one `stdout` channel
    /// when none is (the zero-config default).
    pub fn channel_settings(&self) -> Vec<ChannelSettings> {
        if self.channels.is_empty() {
            vec![ChannelSettings {
                name: "stdout".into(),
                kind: iamalive_notify::ChannelKind::Stdout,
            }]
        } else {
            self.channels.clone()
        }
    }

    /// Refuses a store this binary cannot use: a preset whose store is
    /// fixed must say so at start, not run on another. `used` names the
    /// stores this binary runs on (`"sqlite"`, `"redis"`, `"dynamo"`);
    /// every binary takes every channel and route.
    pub fn refuse_unused(&self, binary: &str, used: &[&str]) -> Result<(), ConfigError> {
        let set = [
            (
                "redis",
                self.redis.url.is_some(),
                "redis.url (IAMALIVE_REDIS_URL)",
            ),
            (
                "redis",
                self.store == StoreKind::Redis,
                "[redis] (IAMALIVE_REDIS_*)",
            ),
            (
                "dynamo",
                self.dynamo.table.is_some(),
                "dynamo.table (IAMALIVE_DYNAMO_TABLE)",
            ),
            (
                "dynamo",
                self.dynamo.shards.is_some(),
                "dynamo.shards (IAMALIVE_DYNAMO_SHARDS)",
            ),
            (
                "sqlite",
                self.store == StoreKind::Sqlite && self.sqlite_configured,
                "[sqlite] (IAMALIVE_SQLITE_*)",
            ),
        ];
        match set.iter().find(|(what, on, _)| *on && !used.contains(what)) {
            Some((what, _, key)) => Err(ConfigError::new(
                *key,
                format!(
                    "{binary} has no {what} support; use the binary built for it (or iamalive), or unset it"
                ),
            )),
            None => Ok(()),
        }
    }

    /// Reads the TOML file named by `IAMALIVE_CONFIG` (if set) and the
    /// process environment.
    pub fn load() -> Result<Self, ConfigError> {
        let file = std::env::var_os(CONFIG_FILE_ENV).map(PathBuf::from);
        Self::load_with(file.as_deref(), std::env::vars())
    }

    /// Reads `file` (if any) and overlays the `IAMALIVE_*` variables of `env`.
    pub fn load_with(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let text = match file {
            Some(p) => Some(std::fs::read_to_string(p).map_err(|e| {
                ConfigError::new(CONFIG_FILE_ENV, format!("cannot read {}: {e}", p.display()))
            })?),
            None => None,
        };
        Self::from_sources(text.as_deref(), env)
    }

    /// Builds a configuration from TOML text and environment pairs (those
    /// not starting with `IAMALIVE_` are ignored).
    pub fn from_sources(
        toml_text: Option<&str>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut table: toml::Table = match toml_text {
            Some(t) => t
                .parse()
                .map_err(|e: toml::de::Error| ConfigError::new("config file", e.message()))?,
            None => toml::Table::new(),
        };
        let mut env: Vec<(String, String)> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with("IAMALIVE_"))
            .collect();
        env.sort();
        for (name, raw) in env {
            if name == CONFIG_FILE_ENV || FOREIGN_PREFIXES.iter().any(|p| name.starts_with(p)) {
                continue;
            }
            let Some((path, kind)) = env_var(&name) else {
                return Err(ConfigError::new(
                    &name,
                    "unknown setting (see the server's README for every IAMALIVE_* name)",
                ));
            };
            let value = env_value(&name, path, kind, &raw)?;
            let mut t = &mut table;
            let mut parts = path.split('.').peekable();
            while let Some(part) = parts.next() {
                if parts.peek().is_none() {
                    t.insert(part.to_owned(), value);
                    break;
                }
                let entry = t
                    .entry(part.to_owned())
                    .or_insert_with(|| toml::Value::Table(toml::Table::new()));
                t = entry.as_table_mut().ok_or_else(|| {
                    ConfigError::new(&name, format!("the config file's `{part}` is not a table"))
                })?;
            }
        }
        // Deserialized through `serde_path_to_error` so a value of the
        // wrong type names its key (`limits.body_bytes`), and the variable
        // it may have come from, instead of only the type mismatch.
        let file: FileConfig = serde_path_to_error::deserialize(toml::Value::Table(table))
            .map_err(|e| {
                let path = e.path().to_string();
                let key = if path == "." {
                    "configuration".to_owned()
                } else {
                    key_name(&path)
                };
                ConfigError::new(key, e.into_inner().message())
            })?;
        Self::resolve(file)
    }

    fn resolve(f: FileConfig) -> Result<Self, ConfigError> {
        let store = choose_store(&f)?;
        let sqlite_configured = f.sqlite.is_some();
        let sqlite = f.sqlite.unwrap_or_default().resolve();
        let redis = f.redis.unwrap_or_default().resolve().map_err(setting)?;
        let dynamo = f.dynamo.unwrap_or_default().resolve().map_err(setting)?;
        let listen = match f.listen {
            Some(s) => s
                .parse()
                .map_err(|e| ConfigError::new("listen (IAMALIVE_LISTEN)", format!("{s:?}: {e}")))?,
            None => SocketAddr::from(([127, 0, 0, 1], 8080)),
        };
        let mut keys = Vec::new();
        for (i, entry) in f.api_keys.unwrap_or_default().iter().enumerate() {
            keys.push(ApiKey::parse_compact(entry, i).map_err(|e| {
                ConfigError::new(format!("api_keys (IAMALIVE_API_KEYS) entry {}", i + 1), e)
            })?);
        }
        for (i, t) in f.keys.unwrap_or_default().into_iter().enumerate() {
            let at = format!("keys[{i}]");
            let hash = match (t.key, t.hash) {
                (Some(k), None) => parse_secret(&k),
                (None, Some(h)) => parse_secret(&h).and_then(|hash| {
                    if h.starts_with("sha256:") {
                        Ok(hash)
                    } else {
                        Err("hash must be written sha256:<64 hex digits>".into())
                    }
                }),
                _ => Err("give exactly one of key or hash".into()),
            }
            .map_err(|e| ConfigError::new(&at, e))?;
            keys.push(ApiKey {
                name: t.name.unwrap_or_else(|| format!("keys-{}", i + 1)),
                hash,
                role: t.role.unwrap_or(Role::Admin),
                hosts: t.hosts.unwrap_or_else(HostPattern::any),
                register: t.register.unwrap_or(true),
            });
        }

        let flapping = f.flapping.unwrap_or_default();
        flapping.validate().map_err(|e| {
            // The reason starts with the field's name.
            let field = e.split_whitespace().next().unwrap_or("flips");
            ConfigError::new(key_name(&format!("flapping.{field}")), e)
        })?;
        let p = f.policy.unwrap_or_default();
        let base = Policy::default();
        let policies = PolicySet {
            default: Policy {
                timeout: p.timeout.unwrap_or(base.timeout),
                reminder_interval: p.reminder_interval.unwrap_or(base.reminder_interval),
                reminder_backoff: p.reminder_backoff.unwrap_or(base.reminder_backoff),
                max_reminder_interval: p.max_reminder_interval.or(base.max_reminder_interval),
                max_reminders: p.max_reminders.or(base.max_reminders),
                schedule: None,
                flapping,
            },
            overrides: p.hosts,
        };
        policies
            .validate()
            .map_err(|e| ConfigError::new("policy (IAMALIVE_TIMEOUT, IAMALIVE_REMINDER_*)", e))?;

        let l = f.limits.unwrap_or_default();
        let dl = Limits::default();
        let rate = |v: Option<String>, key: &str, d: Option<Rate>| match v {
            Some(s) => Rate::parse(&s).map_err(|e| ConfigError::new(key, e)),
            None => Ok(d),
        };
        let limits = Limits {
            body_bytes: l.body_bytes.unwrap_or(dl.body_bytes),
            request_timeout: l.request_timeout.unwrap_or(dl.request_timeout),
            per_key: rate(
                l.per_key,
                "limits.per_key (IAMALIVE_RATE_LIMIT_PER_KEY)",
                dl.per_key,
            )?,
            global: rate(
                l.global,
                "limits.global (IAMALIVE_RATE_LIMIT_GLOBAL)",
                dl.global,
            )?,
            unauthenticated: rate(
                l.unauthenticated,
                "limits.unauthenticated (IAMALIVE_RATE_LIMIT_UNAUTHENTICATED)",
                dl.unauthenticated,
            )?,
            max_connections: l.max_connections.unwrap_or(dl.max_connections),
            max_connections_per_ip: l
                .max_connections_per_ip
                .unwrap_or(dl.max_connections_per_ip),
            header_timeout: l.header_timeout.unwrap_or(dl.header_timeout),
            idle_timeout: l.idle_timeout.unwrap_or(dl.idle_timeout),
            new_hosts_per_key: rate(
                l.new_hosts_per_key,
                "limits.new_hosts_per_key (IAMALIVE_MAX_NEW_HOSTS_PER_KEY)",
                dl.new_hosts_per_key,
            )?,
            max_hosts: match l.max_hosts {
                None => dl.max_hosts,
                Some(toml::Value::String(s)) if s.trim() == "off" => None,
                Some(v) => Some(
                    v.as_integer()
                        .and_then(|n| u64::try_from(n).ok())
                        .filter(|n| *n >= 1)
                        .ok_or_else(|| {
                            ConfigError::new(
                                "limits.max_hosts (IAMALIVE_MAX_HOSTS)",
                                format!("{v} is not a host count of at least 1, or \"off\""),
                            )
                        })?,
                ),
            },
        };
        for (n, key) in [
            (
                limits.max_connections,
                "limits.max_connections (IAMALIVE_MAX_CONNECTIONS)",
            ),
            (
                limits.max_connections_per_ip,
                "limits.max_connections_per_ip (IAMALIVE_MAX_CONNECTIONS_PER_IP)",
            ),
        ] {
            if n == 0 {
                return Err(ConfigError::new(key, "must be at least 1"));
            }
        }
        if limits.body_bytes < 256 {
            return Err(ConfigError::new(
                "limits.body_bytes (IAMALIVE_BODY_LIMIT)",
                "must be at least 256 bytes",
            ));
        }
        for (v, key) in [
            (
                limits.request_timeout,
                "limits.request_timeout (IAMALIVE_REQUEST_TIMEOUT)",
            ),
            (
                limits.header_timeout,
                "limits.header_timeout (IAMALIVE_HEADER_TIMEOUT)",
            ),
            (
                limits.idle_timeout,
                "limits.idle_timeout (IAMALIVE_IDLE_TIMEOUT)",
            ),
        ] {
            if v.is_zero() {
                return Err(ConfigError::new(key, "must be longer than zero"));
            }
        }

        let m = f.monitor.unwrap_or_default();
        let dm = MonitorSettings::default();
        let monitor = MonitorSettings {
            lease: m.lease.unwrap_or(dm.lease),
            retry: RetryPolicy {
                base: m.retry_base.unwrap_or(dm.retry.base),
                max: m.retry_max.unwrap_or(dm.retry.max),
                give_up_after: m.retry_give_up.unwrap_or(dm.retry.give_up_after),
            },
            max_sleep: m.max_sleep.unwrap_or(dm.max_sleep),
            rejection_window: m.rejection_window.unwrap_or(dm.rejection_window),
            store_fault_after: m.store_fault_after.unwrap_or(dm.store_fault_after),
        };
        for (v, key) in [
            (monitor.lease, "monitor.lease (IAMALIVE_LEASE)"),
            (
                monitor.retry.base,
                "monitor.retry_base (IAMALIVE_RETRY_BASE)",
            ),
            (monitor.max_sleep, "monitor.max_sleep (IAMALIVE_MAX_SLEEP)"),
            (
                monitor.retry.give_up_after,
                "monitor.retry_give_up (IAMALIVE_RETRY_GIVE_UP)",
            ),
        ] {
            if v.is_zero() {
                return Err(ConfigError::new(key, "must be longer than zero"));
            }
        }

        let generated_key_file = f.generated_key_file.unwrap_or_else(|| {
            let mut s = sqlite.path.clone().into_os_string();
            s.push(".key");
            PathBuf::from(s)
        });

        let (channels, routes) = resolve_channels(f.channels, f.routes, f.smtp, f.webhook, f.sns)?;
        let dashboard = crate::dashboard::DashboardSettings::resolve(f.dashboard)?;
        let groups = crate::groups::GroupSettings::resolve(f.grouping, f.groups, flapping)?;
        Ok(Config {
            self_ping: f.self_ping.unwrap_or_default().resolve()?,
            dashboard,
            groups,
            listen,
            auto_register: f.auto_register.unwrap_or(true),
            keys,
            generated_key_file,
            policies,
            limits,
            monitor,
            sqlite,
            store,
            sqlite_configured,
            channels,
            routes,
            redis,
            dynamo,
            log: check_log_filter(f.log)?,
            log_format: match f.log_format.as_deref() {
                None | Some("text") => LogFormat::Text,
                Some("json") => LogFormat::Json,
                Some(other) => {
                    return Err(ConfigError::new(
                        "log_format (IAMALIVE_LOG_FORMAT)",
                        format!("{other:?} is not one of text, json"),
                    ));
                }
            },
            ops: crate::ops::OpsSettings::from_tables(f.metrics, f.maintenance),
        })
    }
}

/// The store named by the sections present; two is an error naming both.
fn choose_store(f: &FileConfig) -> Result<StoreKind, ConfigError> {
    let set: Vec<(StoreKind, &str)> = [
        (
            StoreKind::Sqlite,
            f.sqlite.is_some(),
            "[sqlite] (IAMALIVE_SQLITE_*)",
        ),
        (
            StoreKind::Redis,
            f.redis.is_some(),
            "[redis] (IAMALIVE_REDIS_*)",
        ),
        (
            StoreKind::Dynamo,
            f.dynamo.is_some(),
            "[dynamo] (IAMALIVE_DYNAMO_*)",
        ),
    ]
    .into_iter()
    .filter_map(|(k, on, key)| on.then_some((k, key)))
    .collect();
    match set.as_slice() {
        [] => Ok(StoreKind::Sqlite),
        [(k, _)] => Ok(*k),
        [(_, a), (_, b), ..] => Err(ConfigError::new(
            format!("{a} and {b}"),
            "two stores are configured; a deployment keeps its state in one: remove one of them",
        )),
    }
}

/// `[[channels]]`, then the legacy single-channel sections as channels
/// named after their kinds; names unique; routes checked against them.
fn resolve_channels(
    tables: Option<Vec<ChannelTable>>,
    routes: Option<Vec<Route>>,
    smtp: Option<SmtpTable>,
    webhook: Option<WebhookTable>,
    sns: Option<SnsTable>,
) -> Result<(Vec<ChannelSettings>, Routes), ConfigError> {
    let mut channels = Vec::new();
    for (i, t) in tables.unwrap_or_default().into_iter().enumerate() {
        channels.push(
            t.resolve(|k| format!("channels[{i}].{k}"))
                .map_err(setting)?,
        );
    }
    let smtp = smtp.unwrap_or_default();
    let webhook = webhook.unwrap_or_default();
    let legacy = [
        (
            "smtp",
            ChannelTable {
                url: smtp.url,
                from: smtp.from,
                to: smtp.to,
                ..ChannelTable::default()
            },
        ),
        (
            "webhook",
            ChannelTable {
                url: webhook.url,
                format: webhook.format,
                secret: webhook.secret,
                ..ChannelTable::default()
            },
        ),
        (
            "sns",
            ChannelTable {
                topic_arn: sns.unwrap_or_default().topic_arn,
                ..ChannelTable::default()
            },
        ),
    ];
    for (kind, t) in legacy {
        if t.is_empty() {
            continue;
        }
        let t = ChannelTable {
            name: Some(kind.into()),
            kind: Some(kind.into()),
            ..t
        };
        channels.push(
            t.resolve(|k| key_name(&format!("{kind}.{k}")))
                .map_err(setting)?,
        );
    }
    if let Some(d) = duplicate_name(&channels) {
        // Only a kind's own name can come from a legacy section.
        let legacy = if matches!(d, "smtp" | "sns" | "webhook") {
            format!(
                " (a legacy [{d}] section or IAMALIVE_{}_* variable counts as a channel named {d:?})",
                d.to_ascii_uppercase()
            )
        } else {
            String::new()
        };
        return Err(ConfigError::new(
            "channels.name",
            format!("two channels are named {d:?}; each channel needs its own name{legacy}"),
        ));
    }
    let names: Vec<String> = if channels.is_empty() {
        vec!["stdout".into()]
    } else {
        channels.iter().map(|c| c.name.clone()).collect()
    };
    let routes = Routes::new(routes.unwrap_or_default(), &names)
        .map_err(|e| ConfigError::new(format!("routes[{}].channels", e.route), e))?;
    Ok((channels, routes))
}

/// A log filter that would silently log nothing is an error: the name of a
/// format given as a filter (`IAMALIVE_LOG=json`), or a filter that does
/// not parse.
fn check_log_filter(log: Option<String>) -> Result<Option<String>, ConfigError> {
    const KEY: &str = "log (IAMALIVE_LOG)";
    if let Some(l) = &log {
        if matches!(l.trim(), "json" | "text" | "pretty" | "compact") {
            return Err(ConfigError::new(
                KEY,
                format!(
                    "{l:?} is a log format, not a level; use IAMALIVE_LOG_FORMAT={l} (log_format) and IAMALIVE_LOG=info"
                ),
            ));
        }
        tracing_subscriber::EnvFilter::try_new(l).map_err(|e| ConfigError::new(KEY, e))?;
    }
    Ok(log)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn settings_of_other_deployments_are_refused_by_name() {
        let c = Config::from_sources(None, env(&[("IAMALIVE_REDIS_URL", "redis://127.0.0.1:1/")]))
            .unwrap();
        let e = c.refuse_unused("sqlite-smtp", &["smtp"]).unwrap_err();
        assert!(e.key.contains("IAMALIVE_REDIS_URL"), "{e}");
        assert!(
            e.to_string().contains("sqlite-smtp has no redis support"),
            "{e}"
        );
        assert!(
            c.refuse_unused("redis-webhook", &["redis", "webhook"])
                .is_ok()
        );
        assert!(Config::default().refuse_unused("x", &[]).is_ok());
    }

    #[test]
    fn zero_config_defaults() {
        let c = Config::default();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert!(c.keys.is_empty() && c.auto_register && c.channels.is_empty());
        assert_eq!(c.store, StoreKind::Sqlite);
        assert_eq!(c.channel_settings()[0].name, "stdout");
        assert_eq!(c.sqlite.path, PathBuf::from("iamalive.db"));
        assert_eq!(c.generated_key_file, PathBuf::from("iamalive.db.key"));
        assert_eq!(c.policies.default, Policy::default());
    }

    #[test]
    fn env_overrides_file_and_subsecond_durations_work() {
        let toml = r#"
            listen = "0.0.0.0:9000"
            [policy]
            timeout = "5m"
            reminder_interval = "2h"
            [[policy.hosts]]
            hosts = "db-*"
            timeout = "30s"
            [[keys]]
            name = "agents"
            hash = "sha256:0000000000000000000000000000000000000000000000000000000000000000"
            role = "heartbeat"
            hosts = "web-*"
            [smtp]
            url = "smtp://u:p@127.0.0.1:25"
            from = "iamalive@example.org"
            to = ["ops@example.org"]
        "#;
        let c = Config::from_sources(
            Some(toml),
            env(&[
                ("IAMALIVE_TIMEOUT", "300ms"),
                ("IAMALIVE_REMINDER_INTERVAL", "1s"),
                (
                    "IAMALIVE_API_KEYS",
                    "plain-key-0123456789, x0123456789abcdefgh;role=heartbeat",
                ),
                ("IAMALIVE_SMTP_TO", "a@example.org,b@example.org"),
                ("IAMALIVE_TEST_VENV", "/somewhere"),
                ("IAMALIVE_AGENT_URL", "http://127.0.0.1:8080"),
                ("PATH", "/bin"),
            ]),
        )
        .unwrap();
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.policies.default.timeout, Duration::from_millis(300));
        assert_eq!(c.policies.default.reminder_interval, Duration::from_secs(1));
        assert_eq!(c.policies.overrides.len(), 1);
        assert_eq!(c.keys.len(), 3);
        assert_eq!(c.keys[1].role, Role::Heartbeat);
        assert_eq!(c.keys[2].name, "agents");
        assert_eq!(c.channels.len(), 1);
        let smtp = &c.channels[0];
        assert_eq!(smtp.name, "smtp");
        let iamalive_notify::ChannelKind::Smtp { url, to, .. } = &smtp.kind else {
            panic!("{smtp:?}")
        };
        assert_eq!(to, &["a@example.org", "b@example.org"]);
        assert_eq!(url.expose(), "smtp://u:p@127.0.0.1:25");
        assert!(!format!("{smtp:?}").contains("u:p"));
    }

    #[test]
    fn errors_name_the_key() {
        let e = |pairs: &[(&str, &str)]| Config::from_sources(None, env(pairs)).unwrap_err();
        assert_eq!(e(&[("IAMALIVE_TIMEOT", "1s")]).key, "IAMALIVE_TIMEOT");
        assert_eq!(e(&[("IAMALIVE_TIMEOUT", "soon")]).key, "IAMALIVE_TIMEOUT");
        assert_eq!(
            e(&[("IAMALIVE_MAX_REMINDERS", "-1")]).key,
            "IAMALIVE_MAX_REMINDERS"
        );
        assert!(
            e(&[("IAMALIVE_TIMEOUT", "0s")])
                .key
                .contains("IAMALIVE_TIMEOUT")
        );
        assert!(
            e(&[("IAMALIVE_LISTEN", "here")])
                .key
                .contains("IAMALIVE_LISTEN")
        );
        assert!(
            e(&[("IAMALIVE_API_KEYS", "short")])
                .key
                .contains("IAMALIVE_API_KEYS")
        );
        assert!(
            e(&[("IAMALIVE_SMTP_URL", "smtp://x")])
                .key
                .contains("IAMALIVE_SMTP_FROM")
        );
        assert!(
            e(&[("IAMALIVE_RATE_LIMIT_PER_KEY", "fast")])
                .key
                .contains("IAMALIVE_RATE_LIMIT_PER_KEY")
        );
        assert!(
            e(&[
                ("IAMALIVE_WEBHOOK_URL", "http://x"),
                ("IAMALIVE_WEBHOOK_FORMAT", "irc")
            ])
            .key
            .contains("IAMALIVE_WEBHOOK_FORMAT")
        );
        let bad = Config::from_sources(Some("[policy]\ntmeout = \"1s\""), env(&[])).unwrap_err();
        assert!(bad.reason.contains("tmeout"), "{bad}");
        let bad = Config::from_sources(Some("lisen = \"x\""), env(&[])).unwrap_err();
        assert!(bad.reason.contains("lisen"), "{bad}");
        let bad = Config::from_sources(Some("[[keys]]\nrole = \"admin\""), env(&[])).unwrap_err();
        assert_eq!(bad.key, "keys[0]");
        // A value of the wrong type in the file names its key.
        let bad =
            Config::from_sources(Some("[limits]\nbody_bytes = \"big\""), env(&[])).unwrap_err();
        assert!(bad.key.starts_with("limits.body_bytes"), "{bad}");
        assert!(bad.reason.contains("big"), "{bad}");
        let bad =
            Config::from_sources(Some("[policy]\nmax_reminders = true"), env(&[])).unwrap_err();
        assert!(bad.key.starts_with("policy.max_reminders"), "{bad}");
        let bad = Config::from_sources(Some("auto_register = \"yes\""), env(&[])).unwrap_err();
        assert!(bad.key.starts_with("auto_register"), "{bad}");
    }

    #[test]
    fn redis_cluster_seeds_are_split_and_checked() {
        let c = Config::from_sources(
            None,
            env(&[
                ("IAMALIVE_REDIS_CLUSTER", "true"),
                (
                    "IAMALIVE_REDIS_URL",
                    "redis://10.0.0.1:6379/, rediss://u:pw@10.0.0.2:6380/",
                ),
            ]),
        )
        .unwrap();
        assert!(c.redis.cluster);
        assert_eq!(
            c.redis.cluster_seeds().unwrap(),
            ["redis://10.0.0.1:6379/", "rediss://u:pw@10.0.0.2:6380/"]
        );
        let c = Config::from_sources(
            Some("[redis]\nurl = \"redis://10.0.0.1:6379/\"\ncluster = true"),
            env(&[]),
        )
        .unwrap();
        assert_eq!(c.redis.cluster_seeds().unwrap(), ["redis://10.0.0.1:6379/"]);
        // One server: no seeds, and the url is left whole.
        let c = Config::from_sources(None, env(&[("IAMALIVE_REDIS_URL", "redis://h:1/")])).unwrap();
        assert!(!c.redis.cluster);
        assert_eq!(c.redis.cluster_seeds(), None);
        assert!(!Config::default().redis.cluster);

        let e = |pairs: &[(&str, &str)]| Config::from_sources(None, env(pairs)).unwrap_err();
        let bad = e(&[("IAMALIVE_REDIS_CLUSTER", "true")]);
        assert!(bad.key.contains("IAMALIVE_REDIS_URL"), "{bad}");
        assert!(bad.reason.contains("redis.cluster"), "{bad}");
        let bad = e(&[
            ("IAMALIVE_REDIS_CLUSTER", "true"),
            ("IAMALIVE_REDIS_URL", "redis://a:1/,,redis://b:1/"),
        ]);
        assert!(bad.key.contains("IAMALIVE_REDIS_URL"), "{bad}");
        assert!(bad.reason.contains("seed url 2 is empty"), "{bad}");
        let bad = e(&[
            ("IAMALIVE_REDIS_CLUSTER", "true"),
            ("IAMALIVE_REDIS_URL", "redis://a:1/,u:secret@b:1"),
        ]);
        assert!(bad.reason.contains("seed url 2"), "{bad}");
        assert!(!bad.to_string().contains("secret"), "{bad}");
        let bad = e(&[("IAMALIVE_REDIS_CLUSTER", "maybe")]);
        assert_eq!(bad.key, "IAMALIVE_REDIS_CLUSTER");
        let bad = Config::from_sources(Some("[redis]\ncluster = \"yes\""), env(&[])).unwrap_err();
        assert!(bad.key.starts_with("redis.cluster"), "{bad}");
    }

    #[test]
    fn channels_and_routes_from_the_environment() {
        let c = Config::from_sources(
            Some("[[channels]]\nname = \"file\"\nkind = \"stdout\""),
            env(&[
                (
                    "IAMALIVE_CHANNELS",
                    r#"[{"name": "dba", "kind": "webhook", "url": "http://127.0.0.1:9/h", "format": "slack"},
                        {"name": "all", "kind": "stdout"}]"#,
                ),
                (
                    "IAMALIVE_ROUTES",
                    r#"[{"hosts": "db-*", "kinds": ["alarm"], "channels": ["dba"]}]"#,
                ),
                ("IAMALIVE_SNS_TOPIC_ARN", "arn:aws:sns:us-east-1:1:t"),
            ]),
        )
        .unwrap();
        // The variable replaces the file's list; a legacy variable adds its
        // channel, named after its kind.
        let names: Vec<&str> = c.channels.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["dba", "all", "sns"]);
        assert!(!format!("{c:?}").contains("127.0.0.1:9"), "url redacted");
        let e = |pairs: &[(&str, &str)]| Config::from_sources(None, env(pairs)).unwrap_err();
        let bad = e(&[("IAMALIVE_CHANNELS", "{\"name\": \"a\"}")]);
        assert_eq!(bad.key, "IAMALIVE_CHANNELS");
        assert!(bad.reason.contains("JSON array"), "{bad}");
        let bad = e(&[("IAMALIVE_CHANNELS", "[{name = \"a\"}]")]);
        assert_eq!(bad.key, "IAMALIVE_CHANNELS");
        let bad = e(&[("IAMALIVE_CHANNELS", r#"[{"name": "a", "kind": "sns"}]"#)]);
        assert_eq!(bad.key, "channels[0].topic_arn");
        let bad = e(&[(
            "IAMALIVE_CHANNELS",
            r#"[{"name": "a", "kind": "stdout", "colour": 1}]"#,
        )]);
        assert!(bad.reason.contains("colour"), "{bad}");
        let bad = e(&[("IAMALIVE_ROUTES", r#"[{"channels": ["nope"]}]"#)]);
        assert_eq!(bad.key, "routes[0].channels");
        assert!(bad.reason.contains("nope"), "{bad}");
    }

    #[test]
    fn rates() {
        let r = Rate::parse("10/s").unwrap().unwrap();
        assert_eq!((r.count.get(), r.period), (10, Duration::from_secs(1)));
        let r = Rate::parse("600/5m").unwrap().unwrap();
        assert_eq!(r.period, Duration::from_secs(300));
        assert_eq!(Rate::parse("off").unwrap(), None);
        assert!(Rate::parse("0/s").is_err());
        assert!(Rate::parse("10").is_err());
    }

    #[test]
    fn host_caps_and_keys_limited_to_existing_hosts() {
        let d = Config::default().limits;
        assert_eq!(d.new_hosts_per_key, Rate::parse("100/1h").unwrap());
        assert_eq!(d.max_hosts, Some(100_000));
        let c = Config::from_sources(
            Some(
                "[limits]\nmax_hosts = 5000\n[[keys]]\nkey = \"locked-key-0123456789\"\nrole = \"heartbeat\"\nregister = false",
            ),
            env(&[
                ("IAMALIVE_MAX_NEW_HOSTS_PER_KEY", "10/1m"),
                (
                    "IAMALIVE_API_KEYS",
                    "plain-key-0123456789;role=heartbeat;register=false",
                ),
            ]),
        )
        .unwrap();
        assert_eq!(c.limits.new_hosts_per_key, Rate::parse("10/1m").unwrap());
        assert_eq!(c.limits.max_hosts, Some(5000));
        assert!(c.keys.iter().all(|k| !k.register), "{:?}", c.keys);
        let c = Config::from_sources(
            None,
            env(&[
                ("IAMALIVE_MAX_NEW_HOSTS_PER_KEY", "off"),
                ("IAMALIVE_MAX_HOSTS", "off"),
            ]),
        )
        .unwrap();
        assert_eq!(c.limits.new_hosts_per_key, None);
        assert_eq!(c.limits.max_hosts, None);
        let c = Config::from_sources(Some("[limits]\nmax_hosts = \"off\""), env(&[])).unwrap();
        assert_eq!(c.limits.max_hosts, None);
        let e = |pairs: &[(&str, &str)]| Config::from_sources(None, env(pairs)).unwrap_err();
        for (var, value) in [
            ("IAMALIVE_MAX_HOSTS", "0"),
            ("IAMALIVE_MAX_HOSTS", "-3"),
            ("IAMALIVE_MAX_HOSTS", "lots"),
            ("IAMALIVE_MAX_NEW_HOSTS_PER_KEY", "100"),
            ("IAMALIVE_API_KEYS", "plain-key-0123456789;register=maybe"),
        ] {
            let bad = e(&[(var, value)]);
            assert!(bad.key.contains(var), "{var}={value}: {bad}");
        }
    }

    #[test]
    fn connection_limits_and_timeouts() {
        let d = Config::default().limits;
        assert_eq!((d.max_connections, d.max_connections_per_ip), (4096, 64));
        assert_eq!(d.header_timeout, Duration::from_secs(10));
        assert_eq!(d.idle_timeout, Duration::from_secs(60));
        assert_eq!(d.unauthenticated, Rate::parse("200/1s").unwrap());
        let c = Config::from_sources(
            Some("[limits]\nmax_connections = 100\nidle_timeout = \"5s\""),
            env(&[
                ("IAMALIVE_MAX_CONNECTIONS_PER_IP", "3"),
                ("IAMALIVE_HEADER_TIMEOUT", "250ms"),
                ("IAMALIVE_RATE_LIMIT_UNAUTHENTICATED", "off"),
            ]),
        )
        .unwrap();
        let l = c.limits;
        assert_eq!((l.max_connections, l.max_connections_per_ip), (100, 3));
        assert_eq!(l.header_timeout, Duration::from_millis(250));
        assert_eq!(l.idle_timeout, Duration::from_secs(5));
        assert_eq!(l.unauthenticated, None);
        let e = |pairs: &[(&str, &str)]| Config::from_sources(None, env(pairs)).unwrap_err();
        for (var, value) in [
            ("IAMALIVE_MAX_CONNECTIONS", "0"),
            ("IAMALIVE_MAX_CONNECTIONS", "many"),
            ("IAMALIVE_MAX_CONNECTIONS_PER_IP", "0"),
            ("IAMALIVE_HEADER_TIMEOUT", "0s"),
            ("IAMALIVE_IDLE_TIMEOUT", "later"),
            ("IAMALIVE_RATE_LIMIT_UNAUTHENTICATED", "lots"),
        ] {
            let bad = e(&[(var, value)]);
            assert!(bad.key.contains(var), "{var}={value}: {bad}");
        }
    }
}

#[cfg(test)]
mod flapping_tests {
    use std::time::Duration;

    use iamalive_core::flap::FlapPolicy;

    use super::Config;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn flapping_settings_from_the_file_and_the_environment() {
        assert_eq!(
            Config::default().policies.default.flapping,
            FlapPolicy::default()
        );
        let file = "[flapping]\nflips = 6\nwindow = \"2h\"\n";
        let c = Config::from_sources(
            Some(file),
            env(&[
                ("IAMALIVE_FLAP_STABLE", "10m"),
                ("IAMALIVE_FLAP_FLIPS", "3"),
            ]),
        )
        .unwrap();
        let want = FlapPolicy {
            enabled: true,
            flips: 3,
            window: Duration::from_secs(7200),
            stable: Duration::from_secs(600),
        };
        assert_eq!(
            c.policies.default.flapping, want,
            "variables override the file"
        );
        let p = c
            .policies
            .for_host(&iamalive_core::HostId::new("web-3").unwrap());
        assert_eq!(p.flapping, want, "every host's policy carries it");
        let off = Config::from_sources(None, env(&[("IAMALIVE_FLAP_ENABLED", "false")])).unwrap();
        assert!(!off.policies.default.flapping.enabled);
    }

    #[test]
    fn bad_flapping_settings_are_named_at_start() {
        let e = Config::from_sources(None, env(&[("IAMALIVE_FLAP_FLIPS", "0")])).unwrap_err();
        assert_eq!(e.key, "flapping.flips (IAMALIVE_FLAP_FLIPS)");
        let e = Config::from_sources(None, env(&[("IAMALIVE_FLAP_STABLE", "0s")])).unwrap_err();
        assert_eq!(e.key, "flapping.stable (IAMALIVE_FLAP_STABLE)");
        let e = Config::from_sources(None, env(&[("IAMALIVE_FLAP_WINDOW", "often")])).unwrap_err();
        assert_eq!(e.key, "IAMALIVE_FLAP_WINDOW");
        let e = Config::from_sources(Some("[flapping]\nflaps = 3\n"), env(&[])).unwrap_err();
        assert!(e.reason.contains("flaps"), "{e}");
    }
}
