#![doc = include_str!("../README.md")]

pub mod lambda;

use std::sync::Arc;

use iamalive_core::{Notifier, Store};
use iamalive_notify::ChannelBuilder;
use iamalive_server::Config;
use iamalive_store_dynamo::DynamoStore;

/// Why the deployment could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SetupError {
    /// A required setting is missing.
    #[error("{0}")]
    Missing(&'static str),
    /// The configuration was invalid.
    #[error(transparent)]
    Config(#[from] iamalive_server::ConfigError),
    /// A channel or the store could not be set up.
    #[error("{0}")]
    Setup(iamalive_server::SetupError),
    /// The table could not be checked or created.
    #[error("DynamoDB table: {0}")]
    Store(#[from] iamalive_core::StoreError),
    /// The Lambda handler could not be built (no API key, or the
    /// server's state).
    #[error(transparent)]
    Handler(#[from] iamalive_server::lambda::HandlerError),
}

const NO_CHANNEL: &str = "no channel is configured: set IAMALIVE_SNS_TOPIC_ARN, or give [[channels]] in the configuration file (IAMALIVE_CONFIG)";

/// The store and the channels for `config`, with clients configured the
/// SDK's usual way (`AWS_REGION`, credentials, `AWS_ENDPOINT_URL`).
pub async fn from_env(
    config: &Config,
) -> Result<(DynamoStore, Vec<Arc<dyn Notifier>>), SetupError> {
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    from_clients(
        config,
        aws_sdk_dynamodb::Client::new(&sdk),
        aws_sdk_sns::Client::new(&sdk),
    )
    .await
}

/// `store` with the settings of `config` that belong to it: the number of
/// write shards of the due index (`dynamo.shards`,
/// `IAMALIVE_DYNAMO_SHARDS`; the store's default, 4, when unset).
pub fn configure(store: DynamoStore, config: &Config) -> DynamoStore {
    match config.dynamo.shards {
        Some(n) => store.with_shards(n),
        None => store,
    }
}

/// The store on `dynamo.table` and every configured channel (SNS ones
/// through `sns`) over given clients. This deployment has no stdout
/// default: at least one channel must be configured.
pub async fn from_clients(
    config: &Config,
    dynamo: aws_sdk_dynamodb::Client,
    sns: aws_sdk_sns::Client,
) -> Result<(DynamoStore, Vec<Arc<dyn Notifier>>), SetupError> {
    if config.channels.is_empty() {
        return Err(SetupError::Missing(NO_CHANNEL));
    }
    let channels = iamalive::channels(config, &ChannelBuilder::new().with_sns_client(sns))
        .await
        .map_err(SetupError::Setup)?;
    if config.dynamo.table.is_none() {
        return Err(SetupError::Missing(
            "IAMALIVE_DYNAMO_TABLE is not set: this deployment keeps its state in a DynamoDB table",
        ));
    }
    let store = iamalive::stores::dynamo(config, dynamo).map_err(SetupError::Setup)?;
    Ok((store, channels))
}

/// Logs at the level of `config.log` (or `RUST_LOG`), in
/// `config.log_format`, without ANSI colours (CloudWatch shows them raw).
pub fn init_logging(config: &Config) {
    iamalive_server::init_logging_with(config, false);
}

/// The store as the trait object the server takes.
pub fn shared(store: DynamoStore) -> Arc<dyn Store> {
    Arc::new(store)
}
