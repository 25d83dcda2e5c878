//! The dashboard's settings: the `[dashboard]` table and its
//! `IAMALIVE_DASHBOARD_*`, `IAMALIVE_STATUS_PAGES` and
//! `IAMALIVE_BADGE_SECRET` variables.

use std::time::Duration;

use chrono_tz::Tz;
use serde::Deserialize;

use crate::config::{ConfigError, Secret};

/// The shortest badge secret accepted, in bytes.
pub const MIN_BADGE_SECRET: usize = 16;

/// The longest session life accepted: 30 days.
const MAX_SESSION_TTL: Duration = Duration::from_secs(30 * 86_400);

/// The `[dashboard]` table as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DashboardTable {
    enabled: Option<bool>,
    #[serde(default, with = "humantime_serde::option")]
    session_ttl: Option<Duration>,
    #[serde(default, with = "humantime_serde::option")]
    refresh: Option<Duration>,
    secure_cookie: Option<toml::Value>,
    status_pages: Option<Vec<String>>,
    badge_secret: Option<String>,
    session_secret: Option<String>,
    tz: Option<String>,
}

/// When the session cookie carries the `Secure` attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SecureCookie {
    /// When the request came over TLS through a proxy that says so
    /// (`X-Forwarded-Proto: https` or `Forwarded: proto=https`).
    #[default]
    Auto,
    /// Always (the dashboard is only reached over HTTPS).
    Always,
    /// Never (plain HTTP on a trusted network).
    Never,
}

/// The dashboard, its status pages and badges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DashboardSettings {
    /// Serve the dashboard at `/`. Default true.
    pub enabled: bool,
    /// How long a login lasts, at most (the session is not extended by
    /// use). Default 12 h, at most 30 days.
    pub session_ttl: Duration,
    /// How often the page reloads itself. Default 30 s.
    pub refresh: Duration,
    /// The session cookie's `Secure` attribute. Default [`SecureCookie::Auto`].
    pub secure_cookie: SecureCookie,
    /// The groups with a public, read-only status page at
    /// `/status/<group>`; `*` for every group, `ungrouped` for the hosts
    /// without one. Default none.
    pub status_pages: Vec<String>,
    /// The secret badge tokens are derived from; badges are off without it.
    pub badge_secret: Option<Secret>,
    /// The time zone the pages show times in. Default UTC.
    pub tz: Tz,
    /// Signs session tokens so every watcher with the same secret accepts
    /// them (several watchers behind a load balancer, Lambda); without it
    /// a session lives in the process that opened it.
    pub session_secret: Option<Secret>,
}

impl Default for DashboardSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            session_ttl: Duration::from_secs(12 * 3600),
            refresh: Duration::from_secs(30),
            secure_cookie: SecureCookie::Auto,
            status_pages: Vec::new(),
            badge_secret: None,
            tz: Tz::UTC,
            session_secret: None,
        }
    }
}

impl DashboardSettings {
    /// Validates the table (absent: the defaults), naming the bad key.
    pub(crate) fn resolve(t: Option<DashboardTable>) -> Result<Self, ConfigError> {
        let t = t.unwrap_or_default();
        let d = Self::default();
        let session_ttl = t.session_ttl.unwrap_or(d.session_ttl);
        if session_ttl < Duration::from_secs(1) || session_ttl > MAX_SESSION_TTL {
            return Err(ConfigError::new(
                "dashboard.session_ttl (IAMALIVE_DASHBOARD_SESSION_TTL)",
                "must be from 1s to 30 days",
            ));
        }
        let refresh = t.refresh.unwrap_or(d.refresh);
        if refresh < Duration::from_secs(1) {
            return Err(ConfigError::new(
                "dashboard.refresh (IAMALIVE_DASHBOARD_REFRESH)",
                "must be at least 1s",
            ));
        }
        let secure_cookie = match &t.secure_cookie {
            None => SecureCookie::Auto,
            Some(toml::Value::Boolean(true)) => SecureCookie::Always,
            Some(toml::Value::Boolean(false)) => SecureCookie::Never,
            Some(toml::Value::String(s)) => match s.trim() {
                "auto" => SecureCookie::Auto,
                "true" | "always" | "on" | "yes" | "1" => SecureCookie::Always,
                "false" | "never" | "off" | "no" | "0" => SecureCookie::Never,
                other => return Err(secure_error(other)),
            },
            Some(other) => return Err(secure_error(&other.to_string())),
        };
        let mut status_pages = Vec::new();
        for g in t.status_pages.unwrap_or_default() {
            let g = g.trim().to_ascii_lowercase();
            if g.is_empty() {
                continue;
            }
            if g != "*" && !super::valid_group(&g) {
                return Err(ConfigError::new(
                    "dashboard.status_pages (IAMALIVE_STATUS_PAGES)",
                    format!("{g:?} is not a group name ([a-z0-9._-], at most 253 bytes) or *"),
                ));
            }
            status_pages.push(g);
        }
        let badge_secret = secret(
            "dashboard.badge_secret (IAMALIVE_BADGE_SECRET)",
            t.badge_secret,
        )?;
        let session_secret = secret(
            "dashboard.session_secret (IAMALIVE_DASHBOARD_SECRET)",
            t.session_secret,
        )?;
        let tz = match t.tz.as_deref().map(str::trim) {
            None => d.tz,
            Some(name) => name.parse::<Tz>().map_err(|_| {
                ConfigError::new(
                    "dashboard.tz (IAMALIVE_DASHBOARD_TZ)",
                    format!(
                        "unknown time zone {name:?}: use an IANA name such as Europe/Berlin or UTC"
                    ),
                )
            })?,
        };
        Ok(Self {
            tz,
            session_secret,
            enabled: t.enabled.unwrap_or(d.enabled),
            session_ttl,
            refresh,
            secure_cookie,
            status_pages,
            badge_secret,
        })
    }

    /// Whether `/status/<group>` is served.
    pub(crate) fn status_page_on(&self, group: &str) -> bool {
        self.status_pages.iter().any(|g| g == "*" || g == group)
    }
}

/// A signing secret from `key`, refused when shorter than
/// [`MIN_BADGE_SECRET`] (the badge and the session secrets alike).
fn secret(key: &'static str, s: Option<String>) -> Result<Option<Secret>, ConfigError> {
    match s {
        Some(s) if s.len() < MIN_BADGE_SECRET => Err(ConfigError::new(
            key,
            format!(
                "must be at least {MIN_BADGE_SECRET} bytes of random text (e.g. `openssl rand -hex 32`)"
            ),
        )),
        s => Ok(s.map(Secret::new)),
    }
}

fn secure_error(v: &str) -> ConfigError {
    ConfigError::new(
        "dashboard.secure_cookie (IAMALIVE_DASHBOARD_SECURE_COOKIE)",
        format!("{v:?} is not one of auto, true, false"),
    )
}
