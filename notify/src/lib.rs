#![doc = include_str!("../README.md")]

mod build;
pub mod format;
mod named;
pub mod settings;
mod stdout;
pub use build::ChannelBuilder;
pub use format::{FORMATS, WebhookFormat, payload};
pub use named::Named;
pub use settings::{ChannelKind, ChannelSettings, Secret, SettingError};
pub use stdout::StdoutNotifier;

#[cfg(feature = "smtp")]
mod smtp;
#[cfg(feature = "smtp")]
pub use smtp::{SmtpNotifier, SmtpSecurity};

#[cfg(feature = "webhook")]
mod webhook;
#[cfg(feature = "webhook")]
pub use webhook::{
    NOTICE_ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, WebhookNotifier, classify_status, sign,
};

#[cfg(feature = "sns")]
mod sns;
/// The SNS SDK this crate was built with, to build a matching client.
#[cfg(feature = "sns")]
pub use aws_sdk_sns;
#[cfg(feature = "sns")]
pub use sns::{SnsNotifier, sns_subject};

pub use iamalive_core::{Notice, NoticeKind, Notifier, NotifyError};

/// A channel's configuration was not usable; raised at construction, never
/// at delivery.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// One setting was missing or malformed.
    #[error("{setting}: {reason}")]
    Invalid {
        /// Which setting (`smtp url`, `smtp from`, `webhook format`, ...).
        setting: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

impl ConfigError {
    pub(crate) fn invalid(setting: &'static str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            setting,
            reason: reason.into(),
        }
    }
}

/// RFC 3339 in UTC with whole seconds: `2024-05-01T12:00:00Z`.
pub(crate) fn ts(t: &iamalive_core::Timestamp) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A duration in whole seconds, human readable (`10m 5s`).
pub(crate) fn human(d: std::time::Duration) -> String {
    humantime::format_duration(std::time::Duration::from_secs(d.as_secs())).to_string()
}

/// Parses a duration setting given in a URL query (`10s`, `500ms`).
#[cfg(feature = "smtp")]
pub(crate) fn parse_duration(
    setting: &'static str,
    v: &str,
) -> Result<std::time::Duration, ConfigError> {
    let d = humantime::parse_duration(v)
        .map_err(|e| ConfigError::invalid(setting, format!("{v:?} is not a duration: {e}")))?;
    if d.is_zero() {
        return Err(ConfigError::invalid(setting, "must be more than zero"));
    }
    Ok(d)
}

/// An error and every error under it, joined by `: ` (what a channel's
/// client library reports is often only the outermost layer).
#[cfg_attr(not(any(feature = "smtp", feature = "webhook")), allow(dead_code))]
pub(crate) fn describe_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

/// Cuts `s` to at most `max` bytes, marking the cut with `…` (core's one
/// rule for cutting text).
pub(crate) use iamalive_core::text::cut_bytes_marked as truncate;
