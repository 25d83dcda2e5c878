//! The shared `main` of the deployable binaries.

use std::error::Error;
use std::future::Future;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use iamalive_core::{Notifier, Store};

use crate::{CONFIG_FILE_ENV, Config};

/// What a binary builds from its configuration: the store and the channels.
pub type Deployment = (Arc<dyn Store>, Vec<Arc<dyn Notifier>>);

/// Why a binary could not build its store or channels.
pub type SetupError = Box<dyn Error + Send + Sync>;

/// Everything a deployable binary does: reads `[--config FILE]` (or
/// `IAMALIVE_CONFIG`) and the `IAMALIVE_*` environment, logs to stderr at
/// `IAMALIVE_LOG` (or `RUST_LOG`), refuses settings of deployments it does
/// not `use`, lets `build` make the store and channels, and [`serve`]s
/// until SIGTERM or Ctrl-C.
///
/// `--help` prints `usage` and `--version` the version, each exiting 0.
/// With `--test-notice` it serves nothing: it sends one test notice through
/// every configured channel, prints what each did, and exits 0 when every
/// channel took it, 1 when one did not.
///
/// Returns the process's exit code: 2 for a usage, configuration or set-up
/// error (named on stderr), 1 when serving failed.
///
/// ```no_run
/// use std::sync::Arc;
/// use iamalive_core::{MemoryStore, Store};
///
/// #[tokio::main]
/// async fn main() -> std::process::ExitCode {
///     iamalive_server::run_binary("memory-stdout", "usage: memory-stdout", &[], |_config| async {
///         let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
///         Ok((store, vec![]))
///     })
///     .await
/// }
/// ```
///
/// [`serve`]: crate::serve
pub async fn run_binary<F, Fut>(name: &str, usage: &str, uses: &[&str], build: F) -> ExitCode
where
    F: FnOnce(Config) -> Fut,
    Fut: Future<Output = Result<Deployment, SetupError>>,
{
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("{usage}");
        return ExitCode::SUCCESS;
    }
    if args.iter().any(|a| a == "-V" || a == "--version") {
        println!("{name} {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    let args = match parse_args(args) {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("{name}: {e}");
            }
            eprintln!("{usage}");
            return ExitCode::from(2);
        }
    };
    run_deployment(name, args.config, args.test_notice, uses, build).await
}

/// [`run_binary`] after the command line was read elsewhere (the
/// `iamalive` binary's `serve` subcommand): reads `file` (or
/// `IAMALIVE_CONFIG` when `None`) and the environment, refuses stores this
/// binary does not `use`, builds, then serves or sends one test notice.
///
/// Returns the process's exit code: 2 for a configuration or set-up error
/// (named on stderr), 1 when serving failed.
pub async fn run_deployment<F, Fut>(
    name: &str,
    file: Option<PathBuf>,
    test_notice: bool,
    uses: &[&str],
    build: F,
) -> ExitCode
where
    F: FnOnce(Config) -> Fut,
    Fut: Future<Output = Result<Deployment, SetupError>>,
{
    let file = file.or_else(|| std::env::var_os(CONFIG_FILE_ENV).map(PathBuf::from));
    let config = match Config::load_with(file.as_deref(), std::env::vars())
        .and_then(|c| c.refuse_unused(name, uses).map(|()| c))
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{name}: {e}");
            return ExitCode::from(2);
        }
    };
    crate::init_logging(&config);
    let (store, channels) = match build(config.clone()).await {
        Ok(d) => d,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("{name}: {e}");
            return ExitCode::from(2);
        }
    };
    if test_notice {
        return send_test_notice(name, &config, store, channels).await;
    }
    match crate::serve(config, store, channels).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("{name}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Sends one test notice through every channel and prints what each did.
async fn send_test_notice(
    name: &str,
    config: &Config,
    store: Arc<dyn Store>,
    channels: Vec<Arc<dyn Notifier>>,
) -> ExitCode {
    let state = match crate::AppState::new(
        store,
        channels,
        Arc::new(iamalive_core::SystemClock),
        config,
    ) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{name}: {e}");
            return ExitCode::from(2);
        }
    };
    let results = state.monitor().test_notice().await;
    let mut ok = true;
    for (channel, r) in &results {
        match r {
            Ok(()) => println!("{channel}: delivered"),
            Err(e) => {
                ok = false;
                let what = if e.is_transient() {
                    "failed"
                } else {
                    "refused"
                };
                println!("{channel}: {what}: {}", e.reason());
            }
        }
    }
    if results.is_empty() {
        eprintln!("{name}: no channel is configured");
        ok = false;
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// What the command line asked for.
#[derive(Debug, Default, PartialEq, Eq)]
struct Args {
    config: Option<PathBuf>,
    test_notice: bool,
}

/// `-c FILE` / `--config FILE`, `--test-notice`; `Err("")` asks for the
/// usage text.
fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Args, String> {
    let mut out = Args::default();
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-h" | "--help" => return Err(String::new()),
            "-c" | "--config" => {
                out.config = Some(PathBuf::from(it.next().ok_or("--config needs a file")?));
            }
            "--test-notice" => out.test_notice = true,
            other => return Err(format!("unexpected argument {other:?}")),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Result<Option<PathBuf>, String> {
        parse_args(a.iter().map(|s| (*s).to_owned())).map(|a| a.config)
    }

    #[test]
    fn config_file_argument() {
        assert_eq!(args(&[]), Ok(None));
        assert_eq!(args(&["-c", "a.toml"]), Ok(Some(PathBuf::from("a.toml"))));
        assert_eq!(
            args(&["--config", "b.toml"]),
            Ok(Some(PathBuf::from("b.toml")))
        );
        assert_eq!(args(&["--help"]), Err(String::new()));
        assert!(args(&["--config"]).unwrap_err().contains("needs a file"));
        assert!(args(&["--bogus"]).unwrap_err().contains("--bogus"));
    }

    #[test]
    fn test_notice_flag() {
        let a = parse_args(["--test-notice", "-c", "x.toml"].map(String::from)).unwrap();
        assert_eq!(
            a,
            Args {
                config: Some(PathBuf::from("x.toml")),
                test_notice: true
            }
        );
        assert!(!parse_args(Vec::<String>::new()).unwrap().test_notice);
    }
}
