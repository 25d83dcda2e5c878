#![doc = include_str!("../README.md")]

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use iamalive_core::{Notifier, Store};
use iamalive_notify::{SmtpNotifier, StdoutNotifier};
use iamalive_server::Config;
use iamalive_store_sqlite::SqliteStore;

const USAGE: &str = "\
usage: sqlite-smtp [--config FILE]

Runs the iamalive watcher on a SQLite file with notices by SMTP (or to
stdout until SMTP is configured). Every setting is also an IAMALIVE_*
environment variable; see the iamalive-server README.";

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
                eprintln!("sqlite-smtp: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let config = match Config::load_with(file.as_deref(), std::env::vars()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("sqlite-smtp: {e}");
            return ExitCode::from(2);
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().or_else(|_| {
        tracing_subscriber::EnvFilter::try_new(config.log.as_deref().unwrap_or("info"))
    });
    let filter = match filter {
        Ok(f) => f,
        Err(e) => {
            eprintln!("sqlite-smtp: configuration: log (IAMALIVE_LOG): {e}");
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
            eprintln!("sqlite-smtp: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: Config) -> Result<(), Box<dyn std::error::Error>> {
    config.refuse_unused("sqlite-smtp", &["smtp"])?;
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
    iamalive_server::serve(config, store, vec![channel]).await?;
    Ok(())
}
