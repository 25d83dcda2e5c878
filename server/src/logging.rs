//! Log output for every binary: a `tracing` filter, text or JSON lines on
//! stderr, colours only where a person reads them.

use std::io::IsTerminal;

use crate::config::{Config, LogFormat};

/// Whether log lines on stderr get ANSI colours: only on a terminal, and
/// never with `NO_COLOR` set (<https://no-color.org>). A log written to a
/// file or a journal stays plain text.
pub fn use_colour() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Installs the process's log subscriber from `config`: the filter from
/// `log` (`IAMALIVE_LOG`), else `RUST_LOG`, else `info`; the format from
/// `log_format` (`IAMALIVE_LOG_FORMAT`). Does nothing if one is installed.
pub fn init_logging(config: &Config) {
    init_logging_with(config, use_colour());
}

/// [`init_logging`] with colours decided by the caller (a Lambda function
/// never wants them: CloudWatch shows them raw).
pub fn init_logging_with(config: &Config, colour: bool) {
    let filter = config
        .log
        .clone()
        .or_else(|| std::env::var("RUST_LOG").ok())
        .and_then(|f| tracing_subscriber::EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match config.log_format {
        LogFormat::Text => builder.with_ansi(colour).try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
    };
}
