//! The `[sqlite]` section (`IAMALIVE_SQLITE_*`): where the database file
//! is and how it is opened. Plain data, read and checked before anything
//! is opened; the server composes it into its configuration.

use std::path::PathBuf;
use std::time::Duration;

use iamalive_core::settings::{EnvKind, EnvVar};
use serde::Deserialize;

/// Every variable of the section, with its TOML key.
pub const ENV: &[EnvVar] = &[
    ("IAMALIVE_SQLITE_PATH", "sqlite.path", EnvKind::Str),
    (
        "IAMALIVE_SQLITE_BUSY_TIMEOUT",
        "sqlite.busy_timeout",
        EnvKind::Duration,
    ),
    ("IAMALIVE_SQLITE_CREATE", "sqlite.create", EnvKind::Bool),
];

/// The file's `[sqlite]` table as written; unknown keys are refused.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqliteTable {
    /// The database file.
    pub path: Option<PathBuf>,
    /// Allow a new, empty database where one existed before.
    pub create: Option<bool>,
    /// How long to wait on a locked database.
    #[serde(default, with = "humantime_serde::option")]
    pub busy_timeout: Option<Duration>,
}

/// The SQLite settings, defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteSettings {
    /// The SQLite file. Default `iamalive.db` in the working directory.
    pub path: PathBuf,
    /// How long SQLite waits on a locked database. Default 5 s.
    pub busy_timeout: Duration,
    /// Allow a new, empty SQLite database where signs say one existed
    /// before (it was deleted or moved). Default false: the start is
    /// refused, naming the path.
    pub create: bool,
}

impl Default for SqliteSettings {
    fn default() -> Self {
        SqliteTable::default().resolve()
    }
}

impl SqliteTable {
    /// The settings, with the defaults for what is not given.
    pub fn resolve(self) -> SqliteSettings {
        SqliteSettings {
            path: self.path.unwrap_or_else(|| PathBuf::from("iamalive.db")),
            busy_timeout: self.busy_timeout.unwrap_or(Duration::from_secs(5)),
            create: self.create.unwrap_or(false),
        }
    }
}
