//! `iamalive-cli`: the client subcommands of `iamalive` on their own.

use std::process::ExitCode;

use clap::Parser;
use iamalive_cli::{Command, GlobalOpts};

/// Talks to an iamalive watcher's management API.
#[derive(Debug, Parser)]
#[command(name = "iamalive-cli", version, about)]
struct Cli {
    #[command(flatten)]
    global: GlobalOpts,
    #[command(subcommand)]
    command: Command,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    iamalive_cli::run(cli.command, &cli.global).await
}
