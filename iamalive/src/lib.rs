#![doc = include_str!("../README.md")]

use std::sync::Arc;

use iamalive_core::{Notifier, Store};
use iamalive_notify::ChannelBuilder;
use iamalive_server::{Config, SetupError, StoreKind};

pub mod stores;

/// The channels `config` names (or one `stdout` channel when it names
/// none), built by `builder`. A malformed channel is named before any
/// store is connected to.
pub async fn channels(
    config: &Config,
    builder: &ChannelBuilder,
) -> Result<Vec<Arc<dyn Notifier>>, SetupError> {
    let settings = config.channel_settings();
    if config.channels.is_empty() {
        tracing::info!(
            "no channel configured ([[channels]], or IAMALIVE_SMTP_*, IAMALIVE_WEBHOOK_*, IAMALIVE_SNS_TOPIC_ARN): notices go to stdout"
        );
    }
    Ok(builder
        .build(&settings)
        .await
        .map_err(|e| format!("configuration: {e}"))?)
}

/// What [`deployment`] opened: the store and channels to serve, and the
/// SQLite store when it is one (so a graceful stop can checkpoint it).
pub struct Opened {
    /// The store.
    pub store: Arc<dyn Store>,
    /// The channels.
    pub channels: Vec<Arc<dyn Notifier>>,
    /// The SQLite store, when the store is SQLite.
    #[cfg(feature = "sqlite")]
    pub sqlite: Option<Arc<iamalive_store_sqlite::SqliteStore>>,
}

impl std::fmt::Debug for Opened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opened")
            .field("store", &self.store.to_string())
            .field(
                "channels",
                &self.channels.iter().map(|c| c.name()).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// The store `config` chose ([`StoreKind`]) and its channels.
// A build with SQLite alone (the sqlite-smtp preset) has no store after
// the early return but the error arm.
#[cfg_attr(
    not(any(feature = "redis", feature = "dynamo")),
    allow(unreachable_code, unused_variables)
)]
pub async fn deployment(config: &Config) -> Result<Opened, SetupError> {
    let channels = channels(config, &ChannelBuilder::new()).await?;
    // The SQLite store is handed back apart as well (a graceful stop
    // checkpoints it), so it returns here; the other stores below.
    #[cfg(feature = "sqlite")]
    if config.store == StoreKind::Sqlite {
        let sqlite = Arc::new(stores::sqlite(config)?);
        return Ok(Opened {
            store: Arc::clone(&sqlite) as Arc<dyn Store>,
            channels,
            sqlite: Some(sqlite),
        });
    }
    let store: Arc<dyn Store> = match config.store {
        #[cfg(feature = "redis")]
        StoreKind::Redis => Arc::new(stores::redis(config).await?),
        #[cfg(feature = "dynamo")]
        StoreKind::Dynamo => {
            let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
            let s = stores::dynamo(config, aws_sdk_dynamodb::Client::new(&sdk))?;
            s.create_table_if_missing().await?;
            Arc::new(s)
        }
        #[allow(unreachable_patterns)]
        other => {
            return Err(format!(
                "this build has no {} store (the iamalive crate's `{}` feature is off)",
                other.as_str(),
                other.as_str()
            )
            .into());
        }
    };
    Ok(Opened {
        store,
        channels,
        #[cfg(feature = "sqlite")]
        sqlite: None,
    })
}
