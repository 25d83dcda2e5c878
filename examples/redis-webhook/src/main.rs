#![doc = include_str!("../README.md")]

use std::process::ExitCode;
use std::sync::Arc;

use iamalive_core::{Notifier, Store};
use iamalive_notify::{StdoutNotifier, WebhookFormat, WebhookNotifier};
use iamalive_server::{Config, Deployment, SetupError};
use iamalive_store_redis::RedisStore;

const USAGE: &str = "\
usage: redis-webhook [--config FILE] [--test-notice]

Runs the iamalive watcher on Redis (IAMALIVE_REDIS_URL, IAMALIVE_REDIS_PREFIX;
IAMALIVE_REDIS_CLUSTER=true for a Redis Cluster, with IAMALIVE_REDIS_URL
holding comma-separated seed urls) with notices to a webhook (IAMALIVE_WEBHOOK_URL, IAMALIVE_WEBHOOK_FORMAT =
json|teams|slack|discord|pagerduty, IAMALIVE_WEBHOOK_SECRET), or to stdout
until a webhook is configured. Several instances on one Redis are an HA
setup. Every setting is also an IAMALIVE_* environment variable; see the
iamalive-server README.";

#[tokio::main]
async fn main() -> ExitCode {
    iamalive_server::run_binary("redis-webhook", USAGE, &["redis", "webhook"], build).await
}

async fn build(config: Config) -> Result<Deployment, SetupError> {
    let url = config.redis_url.as_ref().ok_or(
        "configuration: redis.url (IAMALIVE_REDIS_URL) is required, e.g. redis://127.0.0.1:6379/0",
    )?;
    // Channel settings first: a malformed one is named before any
    // connection is tried.
    let channel: Arc<dyn Notifier> = match &config.webhook {
        Some(w) => {
            let format: WebhookFormat = w.format.parse().map_err(|e| {
                format!("configuration: webhook.format (IAMALIVE_WEBHOOK_FORMAT): {e}")
            })?;
            let secret = w.secret.as_ref().map(|s| s.expose().to_owned());
            Arc::new(
                WebhookNotifier::new(w.url.expose(), format, secret).map_err(|e| {
                    format!("configuration: webhook (IAMALIVE_WEBHOOK_URL, _FORMAT, _SECRET): {e}")
                })?,
            )
        }
        None => {
            tracing::info!(
                "no webhook configured (IAMALIVE_WEBHOOK_URL, IAMALIVE_WEBHOOK_FORMAT): notices go to stdout"
            );
            Arc::new(StdoutNotifier::new())
        }
    };
    let builder = RedisStore::builder().prefix(&config.redis_prefix);
    let builder = match config.redis_cluster_seeds() {
        Some(seeds) => builder.cluster(seeds),
        None => builder.url(url.expose()),
    };
    let store = builder.build().await.map_err(|e| {
        format!("redis (IAMALIVE_REDIS_URL, IAMALIVE_REDIS_PREFIX, IAMALIVE_REDIS_CLUSTER): {e}")
    })?;
    let store: Arc<dyn Store> = Arc::new(store);
    Ok((store, vec![channel]))
}
