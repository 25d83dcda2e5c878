#![doc = include_str!("../README.md")]

use std::process::ExitCode;
use std::sync::Arc;

use iamalive_core::Store;
use iamalive_notify::ChannelBuilder;
use iamalive_server::{Config, Deployment, SetupError};

const USAGE: &str = "\
usage: redis-webhook [--config FILE] [--test-notice]

Runs the iamalive watcher on Redis (IAMALIVE_REDIS_URL, IAMALIVE_REDIS_PREFIX;
IAMALIVE_REDIS_CLUSTER=true for a Redis Cluster, with IAMALIVE_REDIS_URL
holding comma-separated seed urls) with notices to a webhook (IAMALIVE_WEBHOOK_URL, IAMALIVE_WEBHOOK_FORMAT =
json|teams|slack|discord|pagerduty, IAMALIVE_WEBHOOK_SECRET), to any
[[channels]] as [[routes]] decide, or to stdout until a channel is configured. Several instances on one Redis are an HA
setup. Every setting is also an IAMALIVE_* environment variable; see the
iamalive-server README.";

#[tokio::main]
async fn main() -> ExitCode {
    iamalive_server::run_binary("redis-webhook", USAGE, &["redis"], build).await
}

async fn build(config: Config) -> Result<Deployment, SetupError> {
    // Channel settings first: a malformed one is named before any
    // connection is tried.
    let channels = iamalive::channels(&config, &ChannelBuilder::new()).await?;
    let store: Arc<dyn Store> = Arc::new(iamalive::stores::redis(&config).await?);
    Ok((store, channels))
}
