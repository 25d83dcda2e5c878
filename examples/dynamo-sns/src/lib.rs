#![doc = include_str!("../README.md")]

pub mod lambda;

use std::sync::Arc;

use iamalive_core::{Notifier, Store};
use iamalive_notify::SnsNotifier;
use iamalive_server::Config;
use iamalive_store_dynamo::DynamoStore;

/// Why the deployment could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SetupError {
    /// A required setting is missing.
    #[error("{0} is not set: this deployment needs a DynamoDB table and an SNS topic")]
    Missing(&'static str),
    /// The configuration was invalid.
    #[error(transparent)]
    Config(#[from] iamalive_server::ConfigError),
    /// The table could not be checked or created.
    #[error("DynamoDB table: {0}")]
    Store(#[from] iamalive_core::StoreError),
    /// The Lambda function has no key configured (it cannot keep a
    /// generated one between invocations).
    #[error(
        "IAMALIVE_API_KEYS is not set: a Lambda function cannot keep a generated key; set one or more keys (or sha256:<hex> hashes)"
    )]
    NoKeys,
}

/// The table name and topic ARN from `config`, both required.
pub fn table_and_topic(config: &Config) -> Result<(String, String), SetupError> {
    let table = config
        .dynamo_table
        .clone()
        .ok_or(SetupError::Missing("IAMALIVE_DYNAMO_TABLE"))?;
    let topic = config
        .sns_topic_arn
        .clone()
        .ok_or(SetupError::Missing("IAMALIVE_SNS_TOPIC_ARN"))?;
    Ok((table, topic))
}

/// The store and the SNS channel for `config`, with clients configured the
/// SDK's usual way (`AWS_REGION`, credentials, `AWS_ENDPOINT_URL`).
pub async fn from_env(
    config: &Config,
) -> Result<(DynamoStore, Vec<Arc<dyn Notifier>>), SetupError> {
    let (table, topic) = table_and_topic(config)?;
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let (store, channels) = from_clients(
        aws_sdk_dynamodb::Client::new(&sdk),
        aws_sdk_sns::Client::new(&sdk),
        table,
        topic,
    );
    Ok((configure(store, config), channels))
}

/// `store` with the settings of `config` that belong to it: the number of
/// write shards of the due index (`dynamo.shards`,
/// `IAMALIVE_DYNAMO_SHARDS`; the store's default, 4, when unset).
pub fn configure(store: DynamoStore, config: &Config) -> DynamoStore {
    match config.dynamo_shards {
        Some(n) => store.with_shards(n),
        None => store,
    }
}

/// The store and the SNS channel over given clients.
pub fn from_clients(
    dynamo: aws_sdk_dynamodb::Client,
    sns: aws_sdk_sns::Client,
    table: String,
    topic_arn: String,
) -> (DynamoStore, Vec<Arc<dyn Notifier>>) {
    let store = DynamoStore::new(dynamo, table);
    let channels: Vec<Arc<dyn Notifier>> = vec![Arc::new(SnsNotifier::new(sns, topic_arn))];
    (store, channels)
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
