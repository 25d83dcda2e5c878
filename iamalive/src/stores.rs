//! Opening each store from the server's configuration: the one place the
//! `iamalive` binary and the presets (`sqlite-smtp`, `redis-webhook`,
//! `dynamo-sns`) share.

use iamalive_server::{Config, SetupError};

/// The SQLite store at `sqlite.path` with its busy timeout, `create` flag
/// and the deployment sign (the generated key file) that tells a deleted
/// database from a first start.
#[cfg(feature = "sqlite")]
pub fn sqlite(config: &Config) -> Result<iamalive_store_sqlite::SqliteStore, SetupError> {
    Ok(iamalive_store_sqlite::SqliteStore::builder()
        .path(&config.sqlite.path)
        .busy_timeout(config.sqlite.busy_timeout)
        .create(config.sqlite.create)
        .deployment_sign(&config.generated_key_file)
        .build()?)
}

/// `backup DEST`: reads the configuration (`file`, else `IAMALIVE_CONFIG`,
/// and the `IAMALIVE_*` environment), writes a consistent copy of the
/// SQLite database at `sqlite.path` to `dest` (safe while the watcher
/// runs) and says what it copied. Exits 0 when written, 1 when it failed,
/// 2 on a configuration error; `program` names the binary in messages.
#[cfg(feature = "sqlite")]
pub fn backup(
    program: &str,
    file: Option<std::path::PathBuf>,
    dest: &std::path::Path,
) -> std::process::ExitCode {
    let file = file.or_else(|| std::env::var_os(iamalive_server::CONFIG_FILE_ENV).map(Into::into));
    let config = match Config::load_with(file.as_deref(), std::env::vars()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{program}: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    match iamalive_store_sqlite::backup(&config.sqlite.path, dest) {
        Ok(r) => {
            println!(
                "backed up {} to {}: {} hosts, {} silences, {} bytes",
                config.sqlite.path.display(),
                r.path.display(),
                r.hosts,
                r.silences,
                r.bytes
            );
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{program}: backup failed: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Checkpoints `store` at a graceful stop, so the database file holds
/// every write (not a WAL a copy of the file alone would miss).
#[cfg(feature = "sqlite")]
pub async fn checkpoint_at_stop(store: &iamalive_store_sqlite::SqliteStore) {
    match store.checkpoint().await {
        Ok(c) if c.complete => {
            tracing::info!(store = %store, frames = c.checkpointed, "checkpointed: the database file holds every write");
        }
        Ok(c) => {
            tracing::warn!(store = %store, log = c.log_frames, done = c.checkpointed, "checkpoint incomplete (another process is using the file)");
        }
        Err(e) => tracing::warn!(store = %store, error = %e, "checkpoint at stop failed"),
    }
}

/// The Redis store at `redis.url` (or the cluster's seeds) under
/// `redis.prefix`.
#[cfg(feature = "redis")]
pub async fn redis(config: &Config) -> Result<iamalive_store_redis::RedisStore, SetupError> {
    let url = config.redis.url.as_ref().ok_or(
        "configuration: redis.url (IAMALIVE_REDIS_URL) is required, e.g. redis://127.0.0.1:6379/0",
    )?;
    let builder = iamalive_store_redis::RedisStore::builder().prefix(&config.redis.prefix);
    let builder = match config.redis.cluster_seeds() {
        Some(seeds) => builder.cluster(seeds),
        None => builder.url(url.expose()),
    };
    Ok(builder.build().await.map_err(|e| {
        format!("redis (IAMALIVE_REDIS_URL, IAMALIVE_REDIS_PREFIX, IAMALIVE_REDIS_CLUSTER): {e}")
    })?)
}

/// The DynamoDB store on `dynamo.table` through `client`, with
/// `dynamo.shards` write shards of its due index (the store's default
/// when unset). The table is not touched yet.
#[cfg(feature = "dynamo")]
pub fn dynamo(
    config: &Config,
    client: aws_sdk_dynamodb::Client,
) -> Result<iamalive_store_dynamo::DynamoStore, SetupError> {
    let table = config.dynamo.table.clone().ok_or(
        "configuration: dynamo.table (IAMALIVE_DYNAMO_TABLE) is required: the DynamoDB table to keep state in",
    )?;
    let store = iamalive_store_dynamo::DynamoStore::new(client, table);
    Ok(match config.dynamo.shards {
        Some(n) => store.with_shards(n),
        None => store,
    })
}
