//! The `[redis]` section (`IAMALIVE_REDIS_*`): the server (or a cluster's
//! seeds) and the key prefix. Plain data, read and checked before any
//! connection; the server composes it into its configuration. The url may
//! hold a password: it is a [`Secret`], and no error repeats it.

use iamalive_core::settings::{EnvKind, EnvVar, Secret, SettingError, key_name};
use serde::Deserialize;

/// Every variable of the section, with its TOML key.
pub const ENV: &[EnvVar] = &[
    ("IAMALIVE_REDIS_URL", "redis.url", EnvKind::Str),
    ("IAMALIVE_REDIS_PREFIX", "redis.prefix", EnvKind::Str),
    ("IAMALIVE_REDIS_CLUSTER", "redis.cluster", EnvKind::Bool),
];

/// The file's `[redis]` table as written; unknown keys are refused.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisTable {
    /// The url, or the cluster's comma-separated seed urls.
    pub url: Option<String>,
    /// Connect to a Redis Cluster.
    pub cluster: Option<bool>,
    /// The prefix of every key.
    pub prefix: Option<String>,
}

impl std::fmt::Debug for RedisTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisTable")
            .field("url", &self.url.as_ref().map(|_| "<redacted>"))
            .field("cluster", &self.cluster)
            .field("prefix", &self.prefix)
            .finish()
    }
}

/// The Redis settings, defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisSettings {
    /// Redis URL, when configured; with [`cluster`](Self::cluster) the
    /// comma-separated seed urls of the cluster (see
    /// [`cluster_seeds`](Self::cluster_seeds)).
    pub url: Option<Secret>,
    /// Connect to a Redis Cluster instead of one server. Default false.
    pub cluster: bool,
    /// The prefix of every Redis key. Default `iamalive`.
    pub prefix: String,
}

impl Default for RedisSettings {
    fn default() -> Self {
        RedisTable::default()
            .resolve()
            .expect("the empty section is valid")
    }
}

impl RedisTable {
    /// Checks the section: with `cluster` on, a url of seeds, each
    /// `redis://` or `rediss://`.
    pub fn resolve(self) -> Result<RedisSettings, SettingError> {
        let cluster = self.cluster.unwrap_or(false);
        if cluster {
            let url = self.url.as_deref().ok_or_else(|| {
                SettingError::new(
                    key_name(ENV, "redis.url"),
                    "missing: redis.cluster is on, so give the cluster's seed urls, comma-separated",
                )
            })?;
            check_seeds(url).map_err(|e| SettingError::new(key_name(ENV, "redis.url"), e))?;
        }
        Ok(RedisSettings {
            url: self.url.map(Secret::new),
            cluster,
            prefix: self.prefix.unwrap_or_else(|| "iamalive".into()),
        })
    }
}

impl RedisSettings {
    /// With [`cluster`](Self::cluster) on, the seed urls of the cluster:
    /// [`url`](Self::url) split at commas (checked when the settings were
    /// read). `None` for one server.
    pub fn cluster_seeds(&self) -> Option<Vec<&str>> {
        match (&self.url, self.cluster) {
            (Some(url), true) => Some(split_seeds(url.expose())),
            _ => None,
        }
    }
}

/// Comma-separated seed urls, blanks around them dropped.
fn split_seeds(urls: &str) -> Vec<&str> {
    urls.split(',').map(str::trim).collect()
}

/// Each seed must be a `redis://` or `rediss://` url. The message never
/// repeats a url (they may hold a password), only its position.
fn check_seeds(urls: &str) -> Result<(), String> {
    for (i, seed) in split_seeds(urls).into_iter().enumerate() {
        if seed.is_empty() {
            return Err(format!(
                "seed url {} is empty (give urls separated by single commas)",
                i + 1
            ));
        }
        if !(seed.starts_with("redis://") || seed.starts_with("rediss://")) {
            return Err(format!(
                "seed url {} does not start with redis:// or rediss://",
                i + 1
            ));
        }
    }
    Ok(())
}
