//! `iamalive`: the watcher over the store its configuration names
//! (`[sqlite]`, the zero-config default, `[redis]` or `[dynamo]`), with
//! every configured channel and route.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, OnceLock};

use clap::{Args, Parser, Subcommand};

/// The command line. Subcommands are one enum, [`Command`]; a crate with
/// more of them (the client commands) adds a
/// `#[command(flatten)] Client(other::Command)` variant.
#[derive(Debug, Parser)]
#[command(
    name = "iamalive",
    version,
    about = "A dead man's switch: alarms when hosts stop sending heartbeats",
    long_about = "A dead man's switch: alarms when hosts stop sending heartbeats.\n\n\
        The store is chosen by which section is configured: [sqlite] (the default, \
        no configuration needed), [redis] or [dynamo]. Notices go to every [[channels]] \
        entry as [[routes]] decide (stdout when none is configured). Every setting is \
        also an IAMALIVE_* environment variable; see the iamalive-server README.",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// With no subcommand, `iamalive` serves.
    #[command(flatten)]
    serve: ServeArgs,
}

/// What `iamalive` can do.
#[derive(Debug, Subcommand)]
enum Command {
    /// Run the watcher: the HTTP API and the monitor (the default).
    Serve(ServeArgs),
}

/// `serve`'s options.
#[derive(Debug, Args)]
struct ServeArgs {
    /// The TOML configuration file (default: $IAMALIVE_CONFIG, else none).
    #[arg(short, long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Send one test notice through every channel, print what each did, and
    /// exit (0: every channel took it, 1: one did not).
    #[arg(long)]
    test_notice: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            // Usage errors exit 2, like configuration errors; --help and
            // --version exit 0.
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match cli.command {
        Some(Command::Serve(args)) => serve(args).await,
        None => serve(cli.serve).await,
    }
}

async fn serve(args: ServeArgs) -> ExitCode {
    // Kept so the graceful stop can checkpoint a SQLite store.
    let sqlite: Arc<OnceLock<Arc<iamalive_store_sqlite::SqliteStore>>> = Arc::default();
    let keep = Arc::clone(&sqlite);
    let code = iamalive_server::run_deployment(
        "iamalive",
        args.config,
        args.test_notice,
        &["sqlite", "redis", "dynamo"],
        |config| async move {
            let opened = iamalive::deployment(&config).await?;
            if let Some(s) = opened.sqlite {
                let _ = keep.set(s);
            }
            Ok((opened.store, opened.channels))
        },
    )
    .await;
    if let Some(store) = sqlite.get() {
        iamalive::stores::checkpoint_at_stop(store).await;
    }
    code
}
