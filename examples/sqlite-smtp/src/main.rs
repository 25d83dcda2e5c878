#![doc = include_str!("../README.md")]

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, OnceLock};

use iamalive_core::Store;
use iamalive_notify::ChannelBuilder;
use iamalive_server::{Config, Deployment, SetupError};
use iamalive_store_sqlite::SqliteStore;

const USAGE: &str = "\
usage: sqlite-smtp [--config FILE] [--test-notice]
       sqlite-smtp backup [--config FILE] DEST

Runs the iamalive watcher on a SQLite file with notices by SMTP
(IAMALIVE_SMTP_*), to any [[channels]] as [[routes]] decide, or to stdout
until a channel is configured. Every setting is also an IAMALIVE_*
environment variable; see the iamalive-server README.

  --test-notice  send one test notice through every configured channel,
                 print what each did, and exit (0: all took it, 1: not)
  backup DEST    write a consistent copy of the database (sqlite.path) to
                 the new file DEST, safe while a watcher serves it, and exit";

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("backup") {
        return backup(&args[1..]);
    }
    // Kept so the graceful stop can checkpoint the store.
    let opened: Arc<OnceLock<Arc<SqliteStore>>> = Arc::default();
    let keep = Arc::clone(&opened);
    let code =
        iamalive_server::run_binary("sqlite-smtp", USAGE, &["sqlite"], move |c| build(c, keep))
            .await;
    if let Some(store) = opened.get() {
        iamalive::stores::checkpoint_at_stop(store).await;
    }
    code
}

async fn build(
    config: Config,
    keep: Arc<OnceLock<Arc<SqliteStore>>>,
) -> Result<Deployment, SetupError> {
    // Channel settings first: a malformed one is named before the store
    // is opened.
    let channels = iamalive::channels(&config, &ChannelBuilder::new()).await?;
    let store = Arc::new(iamalive::stores::sqlite(&config)?);
    let _ = keep.set(Arc::clone(&store));
    let store: Arc<dyn Store> = store;
    Ok((store, channels))
}

/// `backup [--config FILE] DEST`: 0 written, 1 failed, 2 usage or
/// configuration; `--help` prints the usage and exits 0.
fn backup(args: &[String]) -> ExitCode {
    let mut file = None;
    let mut dest = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-c" | "--config" => match it.next() {
                Some(f) => file = Some(PathBuf::from(f)),
                None => return usage("--config needs a file"),
            },
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            a if a.starts_with('-') => return usage(&format!("unexpected argument {a:?}")),
            a if dest.is_none() => dest = Some(PathBuf::from(a)),
            a => return usage(&format!("unexpected argument {a:?}")),
        }
    }
    let Some(dest) = dest else {
        return usage("backup needs a destination file");
    };
    iamalive::stores::backup("sqlite-smtp", file, &dest)
}

fn usage(e: &str) -> ExitCode {
    if !e.is_empty() {
        eprintln!("sqlite-smtp: {e}");
    }
    eprintln!("{USAGE}");
    ExitCode::from(2)
}
