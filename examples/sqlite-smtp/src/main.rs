#![doc = include_str!("../README.md")]

use std::process::ExitCode;
use std::sync::Arc;

use iamalive_core::{Notifier, Store};
use iamalive_notify::{SmtpNotifier, StdoutNotifier};
use iamalive_server::{Config, Deployment, SetupError};
use iamalive_store_sqlite::SqliteStore;

const USAGE: &str = "\
usage: sqlite-smtp [--config FILE] [--test-notice]

Runs the iamalive watcher on a SQLite file with notices by SMTP (or to
stdout until SMTP is configured). Every setting is also an IAMALIVE_*
environment variable; see the iamalive-server README.

  --test-notice  send one test notice through every configured channel,
                 print what each did, and exit (0: all took it, 1: not)";

#[tokio::main]
async fn main() -> ExitCode {
    iamalive_server::run_binary("sqlite-smtp", USAGE, &["smtp"], build).await
}

async fn build(config: Config) -> Result<Deployment, SetupError> {
    let store = SqliteStore::builder()
        .path(&config.sqlite_path)
        .busy_timeout(config.sqlite_busy_timeout)
        .build()?;
    let store: Arc<dyn Store> = Arc::new(store);
    let channel: Arc<dyn Notifier> = match &config.smtp {
        Some(s) => Arc::new(
            SmtpNotifier::from_url(s.url.expose(), &s.from, &s.to)
                .map_err(|e| format!("configuration: smtp (IAMALIVE_SMTP_*): {e}"))?,
        ),
        None => {
            tracing::info!(
                "no SMTP configured (IAMALIVE_SMTP_URL, _FROM, _TO): notices go to stdout"
            );
            Arc::new(StdoutNotifier::new())
        }
    };
    Ok((store, vec![channel]))
}
