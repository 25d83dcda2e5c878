//! What every crate's settings share: a [`Secret`] that never shows in
//! `Debug`, a [`SettingError`] naming its key, and [`EnvKind`], how an
//! `IAMALIVE_*` variable's text is read. Each store and channel crate owns
//! its own section (type, `IAMALIVE_*` names, validation, defaults); the
//! server composes them into one configuration.

use std::fmt;

/// A string that must not appear in logs (a URL with a password, a secret):
/// `Debug` shows `"<redacted>"`.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The value itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"<redacted>\"")
    }
}

/// A setting that cannot be used, naming its key (`channels[1].url`,
/// `smtp.from (IAMALIVE_SMTP_FROM)`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {reason}")]
pub struct SettingError {
    /// The offending key.
    pub key: String,
    /// What is wrong with it.
    pub reason: String,
}

impl SettingError {
    /// An error about `key`.
    pub fn new(key: impl Into<String>, reason: impl fmt::Display) -> Self {
        Self {
            key: key.into(),
            reason: reason.to_string(),
        }
    }
}

/// How an environment variable's text is read into the value of its TOML
/// key, so a variable and the file key it stands for are checked alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnvKind {
    /// Taken as it is.
    Str,
    /// A duration such as `10m`, `90s`, `500ms`.
    Duration,
    /// A number.
    Float,
    /// A whole number.
    Int,
    /// `true`/`false` (also `1`/`0`, `yes`/`no`, `on`/`off`).
    Bool,
    /// Comma-separated values.
    List,
    /// A whole number, or `off`.
    CountOrOff,
    /// A JSON array, read as the TOML array (of tables) it stands for.
    Json,
}

/// One `IAMALIVE_*` variable: its name, the TOML key it sets
/// (`sqlite.path`) and how its text is read.
pub type EnvVar = (&'static str, &'static str, EnvKind);

/// `path (VARIABLE)` when one of `vars` sets `path`, else `path`: the name
/// an error gives a key, so it can be found in the file or the environment.
pub fn key_name(vars: &[EnvVar], path: &str) -> String {
    match vars.iter().find(|(_, p, _)| *p == path) {
        Some((var, _, _)) => format!("{path} ({var})"),
        None => path.to_owned(),
    }
}
