#![doc = include_str!("../README.md")]

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use iamalive_core::{Notifier, Store};
use iamalive_notify::{StdoutNotifier, WebhookFormat, WebhookNotifier};
use iamalive_server::Config;
use iamalive_store_redis::RedisStore;

const USAGE: &str = "\
usage: redis-webhook [--config FILE]

Runs the iamalive watcher on Redis (IAMALIVE_REDIS_URL, IAMALIVE_REDIS_PREFIX)
with notices to a webhook (IAMALIVE_WEBHOOK_URL, IAMALIVE_WEBHOOK_FORMAT =
json|teams|slack|discord|pagerduty, IAMALIVE_WEBHOOK_SECRET), or to stdout
until a webhook is configured. Several instances on one Redis are an HA
setup. Every setting is also an IAMALIVE_* environment variable; see the
iamalive-server README.";

fn args() -> Result<Option<PathBuf>, String> {
    let mut file = None;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "-h" | "--help" => return Err(String::new()),
            "-c" | "--config" => {
                file = Some(PathBuf::from(it.next().ok_or("--config needs a file")?));
            }
            other => return Err(format!("unexpected argument {other:?}")),
        }
    }
    Ok(file)
}

#[tokio::main]
async fn main() -> ExitCode {
    let file = match args() {
        Ok(f) => {
            f.or_else(|| std::env::var_os(iamalive_server::CONFIG_FILE_ENV).map(PathBuf::from))
        }
        Err(e) => {
            if !e.is_empty() {
                eprintln!("redis-webhook: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let config = match Config::load_with(file.as_deref(), std::env::vars()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("redis-webhook: {e}");
            return ExitCode::from(2);
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().or_else(|_| {
        tracing_subscriber::EnvFilter::try_new(config.log.as_deref().unwrap_or("info"))
    });
    let filter = match filter {
        Ok(f) => f,
        Err(e) => {
            eprintln!("redis-webhook: configuration: log (IAMALIVE_LOG): {e}");
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    match run(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("redis-webhook: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: Config) -> Result<(), Box<dyn std::error::Error>> {
    for (set, name) in [
        (config.smtp.is_some(), "IAMALIVE_SMTP_URL"),
        (config.dynamo_table.is_some(), "IAMALIVE_DYNAMO_TABLE"),
        (config.sns_topic_arn.is_some(), "IAMALIVE_SNS_TOPIC_ARN"),
    ] {
        if set {
            tracing::warn!("{name} is set but this binary (redis-webhook) does not use it");
        }
    }
    let url = config.redis_url.as_ref().ok_or(
        "configuration: redis.url (IAMALIVE_REDIS_URL) is required, e.g. redis://127.0.0.1:6379/0",
    )?;
    let store = RedisStore::from_url(url.expose(), &config.redis_prefix)
        .await
        .map_err(|e| format!("redis (IAMALIVE_REDIS_URL, IAMALIVE_REDIS_PREFIX): {e}"))?;
    let store: Arc<dyn Store> = Arc::new(store);
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
    iamalive_server::serve(config, store, vec![channel]).await?;
    Ok(())
}
