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
        also an IAMALIVE_* environment variable; see the iamalive-server README."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// With no subcommand, `iamalive` serves.
    #[command(flatten)]
    serve: ServeArgs,
    /// Where the client subcommands find the watcher, and with which key.
    #[command(flatten)]
    client: iamalive_cli::GlobalOpts,
}

/// What `iamalive` can do.
#[derive(Debug, Subcommand)]
enum Command {
    /// Run the watcher: the HTTP API and the monitor (the default).
    Serve(ServeArgs),
    /// Write a consistent copy of the SQLite database (`sqlite.path`) to
    /// FILE, safe while the watcher runs. Exits 0 when written, 1 when it
    /// failed, 2 on a configuration error.
    Backup {
        /// Where the copy goes (must not exist yet).
        file: PathBuf,
        /// The TOML configuration file (default: $IAMALIVE_CONFIG, else none).
        #[arg(short, long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Client commands over a running watcher's management API.
    #[command(flatten)]
    Client(iamalive_cli::Command),
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
    // The client options (--url, --key, …) go before or after a client
    // subcommand; serving's own options only without one (or after
    // `serve`): given with another subcommand they would be ignored.
    if cli.command.is_some() && (cli.serve.config.is_some() || cli.serve.test_notice) {
        eprintln!(
            "error: --config and --test-notice go with serving: give them without a subcommand or after 'serve' ('backup' takes its own --config)"
        );
        return ExitCode::from(2);
    }
    match cli.command {
        Some(Command::Serve(args)) => serve(args).await,
        Some(Command::Backup { file, config }) => {
            iamalive::stores::backup("iamalive", config, &file)
        }
        Some(Command::Client(cmd)) => iamalive_cli::run(cmd, &cli.client).await,
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
