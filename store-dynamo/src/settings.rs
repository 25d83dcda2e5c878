//! The `[dynamo]` section (`IAMALIVE_DYNAMO_*`): the table and the due
//! index's write shards. Plain data, read and checked before any client
//! exists; the server composes it into its configuration.

use iamalive_core::settings::{EnvKind, EnvVar, SettingError, key_name};
use serde::Deserialize;

/// Every variable of the section, with its TOML key.
pub const ENV: &[EnvVar] = &[
    ("IAMALIVE_DYNAMO_TABLE", "dynamo.table", EnvKind::Str),
    ("IAMALIVE_DYNAMO_SHARDS", "dynamo.shards", EnvKind::Int),
];

/// The most write shards of the due index.
pub const MAX_SHARDS: u16 = 1000;

/// The file's `[dynamo]` table as written; unknown keys are refused.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DynamoTable {
    /// The table.
    pub table: Option<String>,
    /// The shard count, checked by [`resolve`](Self::resolve) so a value of
    /// the wrong type is refused naming the key.
    pub shards: Option<serde_json::Value>,
}

/// The DynamoDB settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DynamoSettings {
    /// The DynamoDB table, when configured.
    pub table: Option<String>,
    /// The number of write shards of the due index (1 to 1000); the
    /// store's default ([`DEFAULT_SHARDS`](crate::DEFAULT_SHARDS)) when unset.
    pub shards: Option<u16>,
}

impl DynamoTable {
    /// Checks the shard count (1 to 1000).
    pub fn resolve(self) -> Result<DynamoSettings, SettingError> {
        let shards = match self.shards {
            None => None,
            Some(v) => Some(
                v.as_i64()
                    .and_then(|n| u16::try_from(n).ok())
                    .filter(|n| (1..=MAX_SHARDS).contains(n))
                    .ok_or_else(|| {
                        SettingError::new(
                            key_name(ENV, "dynamo.shards"),
                            format!("{v} is not a shard count from 1 to {MAX_SHARDS}"),
                        )
                    })?,
            ),
        };
        Ok(DynamoSettings {
            table: self.table,
            shards,
        })
    }
}
