//! The iamalive agent: sends a heartbeat every interval, and after an
//! outage tells the watcher what failed while it could not get through.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use iamalive_agent::{
    Agent, AgentConfig, Attempt, Backoff, Budget, Maintenance, ProxyChoice, Signal, endpoint,
    parse_proxy, run,
};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, Registry};

/// Sends heartbeats to an iamalive server.
#[derive(Debug, Parser)]
#[command(name = "iamalive-agent", version, about)]
struct Args {
    /// The iamalive server's base URL (`/v1/heartbeat` is appended unless present).
    #[arg(long, env = "IAMALIVE_AGENT_URL", global = true)]
    url: Option<String>,
    /// The API key.
    #[arg(
        long,
        env = "IAMALIVE_AGENT_KEY",
        hide_env_values = true,
        conflicts_with = "key_file",
        global = true
    )]
    key: Option<String>,
    /// A file holding the API key (surrounding whitespace is ignored).
    #[arg(long, env = "IAMALIVE_AGENT_KEY_FILE", global = true)]
    key_file: Option<PathBuf>,
    /// The host id to report as [default: this machine's hostname, lowercased].
    #[arg(long, env = "IAMALIVE_AGENT_HOST", global = true)]
    host: Option<String>,
    /// Time between heartbeats (`5m`, `30s`, `500ms`) [default: 4m]. Sent
    /// with each heartbeat of the loop as the host's interval; a one-off
    /// (`--once`, `run`) sends it only when given here, since a job's
    /// period is its schedule's, not this default.
    #[arg(long, env = "IAMALIVE_AGENT_INTERVAL", value_parser = humantime::parse_duration)]
    interval: Option<Duration>,
    /// Each wait is moved by a random amount up to this much either way
    /// [default: a tenth of the interval].
    #[arg(long, env = "IAMALIVE_AGENT_JITTER", value_parser = humantime::parse_duration)]
    jitter: Option<Duration>,
    /// Bound on one request.
    #[arg(long, env = "IAMALIVE_AGENT_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// With --once: at most this many further attempts. Without --once it
    /// is accepted and ignored: the agent retries until a heartbeat gets
    /// through.
    #[arg(long, env = "IAMALIVE_AGENT_RETRIES")]
    retries: Option<u32>,
    /// Wait before the first retry; doubles for each further one, up to
    /// min(interval / 4, 30s), each wait randomly between half and all of
    /// that [default: min(1s, interval / 20)].
    #[arg(long, env = "IAMALIVE_AGENT_RETRY_BACKOFF", value_parser = humantime::parse_duration)]
    retry_backoff: Option<Duration>,
    /// With --once: start no attempt that could not end (--timeout
    /// included) this long after the first [default: the interval].
    #[arg(long, env = "IAMALIVE_AGENT_DEADLINE", value_parser = humantime::parse_duration)]
    deadline: Option<Duration>,
    /// Send heartbeats through this HTTP proxy (`http://host:port`,
    /// `http://user:password@host:port`) instead of the one HTTPS_PROXY,
    /// HTTP_PROXY or ALL_PROXY name.
    #[arg(long, env = "IAMALIVE_AGENT_PROXY", hide_env_values = true)]
    proxy: Option<String>,
    /// Connect directly: no proxy, whatever --proxy or the environment say.
    #[arg(long)]
    no_proxy: bool,
    /// Keep the failure record in this file between runs (needed with
    /// --once from cron; survives restarts).
    #[arg(long, env = "IAMALIVE_AGENT_STATE_FILE")]
    state_file: Option<PathBuf>,
    /// Trust only the CA certificates in this PEM file (a private CA in
    /// front of the watcher) instead of the system's roots.
    #[arg(long, env = "IAMALIVE_AGENT_CA_FILE")]
    ca_file: Option<PathBuf>,
    /// A short message sent with every heartbeat.
    #[arg(long, env = "IAMALIVE_AGENT_MESSAGE")]
    message: Option<String>,
    /// The group (site) this host belongs to, sent with every heartbeat
    /// (`office-berlin`); the watcher's `[[groups]]` configuration wins.
    #[arg(long, env = "IAMALIVE_AGENT_GROUP")]
    group: Option<String>,
    /// Send one heartbeat (retrying within --deadline) and exit: 0 if it got
    /// through, 1 if not.
    #[arg(long)]
    once: bool,
    /// With --once: report a failure (the watcher alarms at once) instead
    /// of a success; --message gives the reason. For wrapper scripts.
    #[arg(long, requires = "once")]
    fail: bool,
    /// Also append logs to this file.
    #[arg(long, env = "IAMALIVE_AGENT_LOG_FILE")]
    log_file: Option<PathBuf>,
    /// Log filter (`info`, `debug`, `iamalive_agent=debug`); RUST_LOG also works.
    #[arg(long, env = "IAMALIVE_AGENT_LOG", default_value = "info")]
    log: String,
    /// Log lines as `text` (colours only on a terminal, never with
    /// NO_COLOR) or `json` (one object a line, for log shippers), on
    /// stderr and in --log-file alike.
    #[arg(long, env = "IAMALIVE_LOG_FORMAT", value_enum, default_value = "text")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Option<AgentCommand>,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object a line.
    Json,
}

#[derive(Debug, Subcommand)]
enum AgentCommand {
    /// Silence this host at the watcher from now for DURATION (before a
    /// planned shutdown), or end that with --end. Exits 0 when the watcher
    /// took it, 1 when it refused or could not be reached, 2 on bad usage.
    Maintenance {
        /// How long (`2h`, `30m`); a heartbeat-only key may ask for at most
        /// the watcher's IAMALIVE_MAX_SELF_SILENCE (12h by default).
        #[arg(value_parser = humantime::parse_duration, required_unless_present = "end", conflicts_with = "end")]
        duration: Option<Duration>,
        /// Why (shown to whoever looks at the watcher).
        #[arg(long, conflicts_with = "end")]
        reason: Option<String>,
        /// End this host's maintenance now.
        #[arg(long)]
        end: bool,
    },
    /// Runs a command as a monitored job: sends a start, runs it (its
    /// output passed through), then sends a success, or a failure with its
    /// exit status and the tail of its output. Exits with the command's
    /// exit status. Example: `iamalive-agent run -- /usr/local/bin/backup.sh`.
    Run {
        /// The command and its arguments, after `--` (run without a shell).
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
}

/// One log output in `format` to `writer`.
fn output<W>(format: LogFormat, ansi: bool, writer: W) -> Box<dyn Layer<Registry> + Send + Sync>
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let layer = tracing_subscriber::fmt::layer().with_writer(writer);
    match format {
        LogFormat::Text => layer.with_ansi(ansi).boxed(),
        LogFormat::Json => layer
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .boxed(),
    }
}

/// The log filter: `RUST_LOG` when it is set and valid, else `--log`.
/// Either is a bare level (`info`) or comma-separated `target=level`
/// directives (`warn,iamalive_agent=debug`). A `Targets` filter rather
/// than an `EnvFilter`: the agent needs no span or field filters, and
/// leaving out `EnvFilter`'s regular expressions keeps the binary small.
impl Args {
    /// The time between heartbeats, given or the default.
    fn interval(&self) -> Duration {
        self.interval.unwrap_or(DEFAULT_INTERVAL)
    }
}

/// `--interval` when not given.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(240);

fn log_filter(args: &Args) -> Result<Targets, String> {
    if let Some(Ok(t)) = std::env::var("RUST_LOG")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .map(|v| v.parse::<Targets>())
    {
        return Ok(t);
    }
    args.log
        .parse()
        .map_err(|e| format!("--log {:?}: {e}", args.log))
}

fn init_logging(args: &Args) -> Result<(), String> {
    let filter = || log_filter(args);
    // Colours only where a person reads them: a terminal, without NO_COLOR.
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let mut outputs = vec![
        output(args.log_format, colour, std::io::stderr)
            .with_filter(filter()?)
            .boxed(),
    ];
    if let Some(p) = &args.log_file {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .map_err(|e| format!("--log-file {}: {e}", p.display()))?;
        outputs.push(
            output(args.log_format, false, std::sync::Mutex::new(f))
                .with_filter(filter()?)
                .boxed(),
        );
    }
    tracing_subscriber::registry().with(outputs).init();
    Ok(())
}

/// Whether `s` is 1 to `max` bytes of `[A-Za-z0-9._-]`, not only dots: the
/// watcher's rule for host ids and group names, checked before the first
/// beat so a typo fails at start rather than as a 400 on every beat.
fn valid_name(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        && !s.bytes().all(|b| b == b'.')
}

fn config(args: &Args) -> Result<AgentConfig, String> {
    let key = match (&args.key, &args.key_file) {
        (Some(k), _) => k.trim().to_owned(),
        (None, Some(p)) => std::fs::read_to_string(p)
            .map_err(|e| format!("--key-file {}: {e}", p.display()))?
            .trim()
            .to_owned(),
        (None, None) => {
            return Err("no API key: give --key, IAMALIVE_AGENT_KEY or --key-file".into());
        }
    };
    let host = match &args.host {
        Some(h) => h.trim().to_ascii_lowercase(),
        None => gethostname::gethostname()
            .into_string()
            .map_err(|_| "the hostname is not UTF-8; give --host".to_string())?
            .trim()
            .to_ascii_lowercase(),
    };
    if !valid_name(&host, 253) {
        return Err(format!(
            "host id {host:?}: use 1 to 253 of letters, digits, '.', '_', '-' (give --host)"
        ));
    }
    let group = match args.group.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(g) if valid_name(g, 128) => Some(g.to_ascii_lowercase()),
        Some(g) => {
            return Err(format!(
                "--group {g:?}: use 1 to 128 of letters, digits, '.', '_', '-'"
            ));
        }
    };
    if args.interval().is_zero() {
        return Err("--interval must be more than zero".into());
    }
    let proxy = match (&args.proxy, args.no_proxy) {
        (_, true) => ProxyChoice::Off,
        (Some(p), false) if !p.trim().is_empty() => {
            ProxyChoice::Url(parse_proxy(p).map_err(|e| e.to_string())?)
        }
        _ => ProxyChoice::FromEnv,
    };
    let backoff = match args.retry_backoff {
        Some(first) => Backoff::with_first(args.interval(), first),
        None => Backoff::for_interval(args.interval()),
    };
    Ok(AgentConfig {
        url: endpoint(
            args.url
                .as_deref()
                .ok_or("no watcher URL: give --url or IAMALIVE_AGENT_URL")?,
        )
        .map_err(|e| e.to_string())?,
        key,
        host,
        message: args.message.clone(),
        group,
        timeout: args.timeout,
        interval: args.interval(),
        send_interval: args.interval.is_some()
            || !(args.once || matches!(args.command, Some(AgentCommand::Run { .. }))),
        backoff,
        state_file: args.state_file.clone(),
        ca_file: args.ca_file.clone(),
        proxy,
    })
}

async fn stop_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

/// `run -- <command>`: start, the command, then its end; exits with the
/// command's status (a signal that did not get through is logged, and does
/// not change it: the watcher alarms on the silence anyway).
async fn run_job(agent: &mut Agent, command: &[String], budget: Budget) -> ExitCode {
    let rid = run::new_rid();
    agent.set_signal(Some(Signal {
        status: "start",
        message: None,
        rid: Some(rid.clone()),
    }));
    if let Attempt::Failed { detail, .. } = agent.beat_within(budget).await {
        tracing::warn!(%detail, "the start signal did not get through; running the job anyway");
    }
    let argv = command.to_vec();
    let finished = match tokio::task::spawn_blocking(move || run::run(&argv)).await {
        Ok(f) => f,
        Err(e) => run::Finished {
            code: 1,
            tail: format!("the job's runner failed: {e}"),
        },
    };
    let signal = if finished.code == 0 {
        Signal {
            status: "success",
            message: None,
            rid: Some(rid),
        }
    } else {
        Signal {
            status: "fail",
            message: Some(finished.reason()),
            rid: Some(rid),
        }
    };
    agent.set_signal(Some(signal));
    if let Attempt::Failed { detail, .. } = agent.beat_within(budget).await {
        tracing::error!(%detail, code = finished.code, "the job's end did not get through");
    }
    ExitCode::from(finished.code)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(e) = init_logging(&args) {
        eprintln!("iamalive-agent: {e}");
        return ExitCode::from(2);
    }
    let cfg = match config(&args) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::from(2);
        }
    };
    let mut agent = match Agent::new(cfg) {
        Ok(a) => a,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::from(2);
        }
    };
    if let Some(AgentCommand::Maintenance {
        duration,
        reason,
        end,
    }) = &args.command
    {
        let what = match (duration, end) {
            (_, true) => Maintenance::End,
            (Some(d), false) => Maintenance::Start {
                duration: *d,
                reason: reason.clone(),
            },
            (None, false) => {
                eprintln!("iamalive-agent: give a DURATION (e.g. 2h) or --end");
                return ExitCode::from(2);
            }
        };
        return match agent.maintenance(&what).await {
            Ok(done) => {
                println!("{done}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("iamalive-agent: {e}");
                ExitCode::from(1)
            }
        };
    }
    tracing::info!(url = %agent.config().url, host = %agent.config().host,
        proxy = %agent.proxy().unwrap_or("none"),
        interval = %humantime::format_duration(args.interval()), once = args.once, "starting");
    if let Some(AgentCommand::Run { command }) = &args.command {
        let budget = Budget {
            deadline: Some(args.deadline.unwrap_or(args.interval())),
            max_attempts: args.retries.map(|r| r.saturating_add(1)),
        };
        return run_job(&mut agent, command, budget).await;
    }
    if args.once {
        if args.fail {
            agent.set_signal(Some(Signal {
                status: "fail",
                message: args.message.clone(),
                rid: None,
            }));
        }
        let budget = Budget {
            deadline: Some(args.deadline.unwrap_or(args.interval())),
            max_attempts: args.retries.map(|r| r.saturating_add(1)),
        };
        let outcome = tokio::select! {
            a = agent.beat_within(budget) => a,
            _ = stop_signal() => return ExitCode::from(1),
        };
        return match outcome {
            Attempt::Delivered { .. } => ExitCode::SUCCESS,
            Attempt::Failed { .. } => ExitCode::from(1),
        };
    }
    if args.retries.is_some() {
        tracing::info!(
            "--retries only bounds --once runs; the agent retries until a heartbeat gets through"
        );
    }
    if args.deadline.is_some() {
        tracing::info!("--deadline only bounds --once runs");
    }
    let jitter = args.jitter.unwrap_or(args.interval() / 10);
    agent.run(jitter, stop_signal()).await;
    ExitCode::SUCCESS
}
