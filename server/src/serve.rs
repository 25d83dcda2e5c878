//! Running the whole server: HTTP, the runner, first-run key, shutdown.

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use iamalive_core::{Clock, Notifier, Store, SystemClock};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::sync::watch;

use crate::api::AppState;
use crate::config::Config;
use crate::error::ServerError;
use crate::keys::{ApiKey, KeyHash, generate_key, parse_secret};
use crate::listen::serve_listener;
use crate::runner::Runner;

/// The key a first start generated, if this start generated it (it is
/// shown once, then only its hash is kept).
#[derive(Debug)]
pub struct FirstRunKey {
    /// The accepted key (an admin key for every host).
    pub key: ApiKey,
    /// The plain key, only when it was generated just now.
    pub fresh: Option<String>,
}

/// With no key configured: reads the hash kept in `config.generated_key_file`,
/// or generates a key, keeps its hash there and returns the plain key once.
pub fn first_run_key(config: &Config) -> Result<FirstRunKey, ServerError> {
    let path = &config.generated_key_file;
    let err = |reason: String| ServerError::KeyFile {
        path: path.clone(),
        reason,
    };
    let read = |p: &Path| -> Result<KeyHash, ServerError> {
        let text = std::fs::read_to_string(p).map_err(|e| err(e.to_string()))?;
        let line = text
            .lines()
            .map(str::trim)
            .find(|l| l.starts_with("sha256:"))
            .ok_or_else(|| err("holds no sha256:<hex> line".into()))?;
        parse_secret(line).map_err(err)
    };
    if path.exists() {
        return Ok(FirstRunKey {
            key: ApiKey::admin("generated", read(path)?),
            fresh: None,
        });
    }
    let plain = generate_key();
    let hash = KeyHash::of(&plain);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    match opts.open(path) {
        Ok(mut f) => {
            let text = format!(
                "# The SHA-256 of the API key iamalive generated on its first start.\n\
                 # The key itself was shown once; delete this file to generate a new one.\n{}\n",
                hash.to_config_string()
            );
            f.write_all(text.as_bytes())
                .and_then(|()| f.sync_all())
                .map_err(|e| err(e.to_string()))?;
            Ok(FirstRunKey {
                key: ApiKey::admin("generated", hash),
                fresh: Some(plain),
            })
        }
        // Another process sharing this directory won the race.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(FirstRunKey {
            key: ApiKey::admin("generated", read(path)?),
            fresh: None,
        }),
        Err(e) => Err(err(e.to_string())),
    }
}

/// The text shown once after a key was generated: the key, a curl line and
/// an agent command whose interval suits `timeout` (two fifths of it, so
/// timeout ≥ 2 × interval + margin holds: 10 min → 4 min).
pub fn first_run_banner(
    key: &str,
    listen: SocketAddr,
    key_file: &Path,
    timeout: std::time::Duration,
) -> String {
    let interval = humantime::format_duration(std::time::Duration::from_secs(
        (timeout.as_secs() * 2 / 5).max(1),
    ));
    let host = if listen.ip().is_unspecified() {
        "127.0.0.1".to_owned()
    } else if listen.is_ipv6() {
        format!("[{}]", listen.ip())
    } else {
        listen.ip().to_string()
    };
    let url = format!("http://{host}:{}", listen.port());
    format!(
        "\n\
         iamalive: no API key was configured, so this one was generated.\n\
         It is shown ONCE; only its hash is kept (in {file}).\n\
         \n    API key: {key}\n\
         \nSend a heartbeat now:\n    \
         curl -fsS -X POST {url}/v1/heartbeat -H 'Authorization: Bearer {key}' \
         -H 'Content-Type: application/json' -d \"{{\\\"host\\\": \\\"$(hostname)\\\"}}\"\n\
         \nOr from cron, the ping form:\n    \
         curl -fsS -m 10 --retry 3 {url}/ping/{key}/$(hostname)\n\
         \nRun an agent on each host:\n    \
         iamalive-agent --url {url} --key {key} --host $(hostname) --interval {interval}\n\
         \nSee what the watcher knows:\n    \
         curl -fsS {url}/v1/hosts -H 'Authorization: Bearer {key}'\n",
        file = key_file.display()
    )
}

fn metrics_handle() -> Option<PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            match crate::host_metrics::prometheus_builder()
                .and_then(PrometheusBuilder::install_recorder)
            {
                Ok(h) => Some(h),
                Err(e) => {
                    tracing::warn!(error = %e, "metrics recorder not installed; /metrics is off");
                    None
                }
            }
        })
        .clone()
}

/// Resolves when SIGTERM or Ctrl-C arrives.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

/// Runs the HTTP API and the runner over `store` and `channels` until
/// SIGTERM or Ctrl-C; then stops accepting, finishes the requests, sweep and
/// deliveries in flight, and returns.
pub async fn serve(
    config: Config,
    store: Arc<dyn Store>,
    channels: Vec<Arc<dyn Notifier>>,
) -> Result<(), ServerError> {
    serve_until(config, store, channels, shutdown_signal()).await
}

/// [`serve`] until `shutdown` completes instead of a signal.
pub async fn serve_until(
    mut config: Config,
    store: Arc<dyn Store>,
    channels: Vec<Arc<dyn Notifier>>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    // Every connection is an open file: take what the hard limit allows.
    if let Err(e) = crate::listen::raise_open_file_limit() {
        tracing::warn!(error = %e, "cannot raise the open-file limit");
    }
    let mut fresh = None;
    if config.keys.is_empty() {
        let k = first_run_key(&config)?;
        fresh = k.fresh;
        if fresh.is_none() {
            tracing::info!(file = %config.generated_key_file.display(), "using the key generated on an earlier start");
        }
        config.keys.push(k.key);
    }
    let names: Vec<String> = channels.iter().map(|c| c.name().to_owned()).collect();
    // A relay that cannot be reached is worth a warning now, not at the
    // first outage; checked in the background so the start is not held.
    for c in &channels {
        let c = Arc::clone(c);
        tokio::spawn(async move {
            match c.check().await {
                Ok(()) => tracing::debug!(channel = c.name(), "channel reachable"),
                Err(e) => tracing::warn!(
                    channel = c.name(),
                    error = %e,
                    "this channel cannot be reached now; notices will be retried, and POST /v1/test-notice (or --test-notice) checks it again"
                ),
            }
        });
    }
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let mut state = AppState::new(Arc::clone(&store), channels, clock, &config)?;
    if let Some(h) = metrics_handle() {
        state = state.with_metrics(h);
    }
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| ServerError::Bind {
            addr: config.listen,
            source,
        })?;
    let local = listener.local_addr().map_err(ServerError::Serve)?;
    tracing::info!(
        listen = %local,
        store = %store,
        channels = %names.join(", "),
        timeout = %humantime::format_duration(config.policies.default.timeout),
        reminder_interval = %humantime::format_duration(config.policies.default.reminder_interval),
        keys = config.keys.len(),
        "iamalive is watching"
    );
    for w in config.routes.warnings() {
        tracing::warn!("{w}");
    }
    if let Some(key) = fresh {
        let banner = first_run_banner(
            &key,
            local,
            &config.generated_key_file,
            config.policies.default.timeout,
        );
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(banner.as_bytes());
        let _ = out.flush();
    }

    let (stop_tx, stop_rx) = watch::channel(false);
    let stopping = Arc::clone(state.monitor());
    tokio::spawn(async move {
        shutdown.await;
        tracing::info!("shutting down: finishing requests, the sweep and deliveries in flight");
        let _ = stop_tx.send(true);
        // The listener closes now: the next start's downtime begins here,
        // however long the deliveries in flight take to finish.
        stopping.mark_stopping().await;
    });
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    // A timeout lowered since the records were written applies to every
    // host now, not from each host's next heartbeat.
    let rearm = Arc::clone(state.monitor());
    let wake = Arc::clone(state.wake_signal());
    tokio::spawn(async move {
        match rearm.rearm_to_policy().await {
            Ok(0) => {}
            Ok(n) => {
                // Also a host still in an earlier restart's grace: its
                // deadline is brought back, and the sweep gives the grace
                // of this restart.
                tracing::info!(
                    hosts = n,
                    "deadlines later than the configured timeouts allow were brought forward (a lowered timeout, or an earlier restart's grace); the sweep decides them now"
                );
                wake.notify_one();
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not re-arm deadlines to the configured timeouts")
            }
        }
    });
    let runner = Runner::new(&state, config.monitor.max_sleep);
    let runner = tokio::spawn(runner.run(stopped(stop_rx.clone())));
    let http = serve_listener(listener, state, stopped(stop_rx)).await;
    if let Err(e) = runner.await {
        tracing::error!(error = %e, "runner task failed");
    }
    http.map_err(ServerError::Serve)
}
