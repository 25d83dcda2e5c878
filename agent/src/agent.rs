//! Sending heartbeats: one attempt, retries until one gets through, the loop.

use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::Utc;
use rand::Rng;
use reqwest::Url;
use serde_json::{Map, Value};
use tokio::time::Instant;

use crate::backoff::{Backoff, Budget};
use crate::proxy::{ProxyChoice, redacted, resolve};
use crate::report::{ErrorFacts, FailureKind, FailureLog, TELLING_HEADERS, classify, html_title};

/// At most this much of a proxy's error page is read, for its title.
const MAX_ERROR_PAGE: usize = 8 * 1024;

/// Settings of an [`Agent`].
#[derive(Clone)]
pub struct AgentConfig {
    /// The heartbeat endpoint (see [`endpoint`]).
    pub url: Url,
    /// The API key sent as `Authorization: Bearer <key>`.
    pub key: String,
    /// The host id to report as.
    pub host: String,
    /// An optional short message sent with every heartbeat.
    pub message: Option<String>,
    /// The group (site) sent with every heartbeat as `group`, if any.
    pub group: Option<String>,
    /// The bound on one request.
    pub timeout: Duration,
    /// The time between heartbeats; sent with each as `interval` (seconds)
    /// when [`send_interval`](Self::send_interval) says so.
    pub interval: Duration,
    /// Whether heartbeats carry `interval`: the loop's do; a one-off's
    /// (`--once`, `run`) only when the interval was given, since a job's
    /// period is its schedule's and the watcher would otherwise learn a
    /// wrong one (and count a healthy job as having missed a beat).
    pub send_interval: bool,
    /// The waits between attempts while a heartbeat does not get through
    /// (usually [`Backoff::for_interval`]).
    pub backoff: Backoff,
    /// Where the failure record is kept between runs (for `--once` from
    /// cron, and across restarts); `None` keeps it in memory only.
    pub state_file: Option<PathBuf>,
    /// A PEM file of CA certificates to trust *instead of* the system's
    /// roots (a private CA in front of the watcher); `None` trusts the
    /// system's.
    pub ca_file: Option<PathBuf>,
    /// Which HTTP proxy carries the heartbeats.
    pub proxy: ProxyChoice,
}

impl fmt::Debug for AgentConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentConfig")
            .field("url", &self.url.as_str())
            .field("key", &"<redacted>")
            .field("host", &self.host)
            .field("message", &self.message)
            .field("group", &self.group)
            .field("timeout", &self.timeout)
            .field("interval", &self.interval)
            .field("send_interval", &self.send_interval)
            .field("backoff", &self.backoff)
            .field("state_file", &self.state_file)
            .field("ca_file", &self.ca_file)
            .field("proxy", &self.proxy)
            .finish()
    }
}

/// The agent could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    /// A setting is unusable.
    #[error("{0}")]
    Config(String),
}

/// The heartbeat endpoint for a server URL: `https://watch.example` becomes
/// `https://watch.example/v1/heartbeat`; a URL already ending in
/// `/v1/heartbeat` is kept as it is.
pub fn endpoint(url: &str) -> Result<Url, AgentError> {
    let mut u =
        Url::parse(url.trim()).map_err(|e| AgentError::Config(format!("--url {url:?}: {e}")))?;
    if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() {
        return Err(AgentError::Config(format!(
            "--url {url:?}: expected an http:// or https:// URL"
        )));
    }
    if !u.path().trim_end_matches('/').ends_with("/v1/heartbeat") {
        let path = format!("{}/v1/heartbeat", u.path().trim_end_matches('/'));
        u.set_path(&path);
    }
    Ok(u)
}

/// `interval` moved by a uniformly random amount in `[-jitter, +jitter]`
/// (never below a tenth of the interval), so a fleet restarted together
/// does not beat in lockstep.
pub fn jittered(interval: Duration, jitter: Duration, rng: &mut impl Rng) -> Duration {
    if jitter.is_zero() {
        return interval;
    }
    let j = jitter.as_secs_f64();
    let offset = rng.random_range(-j..=j);
    let floor = interval.as_secs_f64() / 10.0;
    Duration::from_secs_f64((interval.as_secs_f64() + offset).max(floor))
}

/// How one attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// The heartbeat was accepted (2xx); `carried_report` when it carried
    /// the outage report, which is then cleared.
    Delivered {
        /// Whether the failure report went with it.
        carried_report: bool,
    },
    /// It did not get through.
    Failed {
        /// What kind of failure.
        kind: FailureKind,
        /// A short description.
        detail: String,
        /// Whether another attempt soon may help (not for 4xx other than
        /// 408/425/429); the loop tries again one interval later if not.
        retryable: bool,
    },
}

/// The certificates of a PEM bundle, or why it cannot be used.
fn ca_certificates(path: &Path) -> Result<Vec<reqwest::Certificate>, AgentError> {
    let shown = path.display();
    let pem =
        std::fs::read(path).map_err(|e| AgentError::Config(format!("--ca-file {shown}: {e}")))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem)
        .map_err(|e| AgentError::Config(format!("--ca-file {shown}: {e}")))?;
    if certs.is_empty() {
        return Err(AgentError::Config(format!(
            "--ca-file {shown}: no PEM certificate in it"
        )));
    }
    Ok(certs)
}

/// The interval as a JSON number of seconds: an integer when whole (`300`),
/// else fractional (`0.5`).
pub fn interval_json(interval: Duration) -> Value {
    if interval.subsec_nanos() == 0 {
        Value::from(interval.as_secs())
    } else {
        Value::from(interval.as_secs_f64())
    }
}

/// Sends heartbeats and remembers what failed until one gets through.
#[derive(Debug)]
pub struct Agent {
    client: reqwest::Client,
    config: AgentConfig,
    failures: FailureLog,
    /// The proxy in use, shown without credentials.
    proxy: Option<String>,
    /// What the next heartbeat says (`None`: a plain heartbeat).
    signal: Option<Signal>,
}

/// What a heartbeat says beyond "alive": a job's failure, start or log
/// line, and the run id pairing a start with its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signal {
    /// `success`, `fail`, `start` or `log` (the JSON `status`).
    pub status: &'static str,
    /// Replaces [`AgentConfig::message`]: a failure's reason, a log line.
    pub message: Option<String>,
    /// The run id (`rid`).
    pub rid: Option<String>,
}

/// Makes rustls's `ring` provider the process's default, unless one is
/// installed already. The agent's reqwest is built without a provider of
/// its own (aws-lc-rs alone is larger than the rest of the agent); where
/// the workspace's other crates bring aws-lc-rs into the same build, the
/// agent still uses `ring`, so it behaves the same in every build.
fn install_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Err: another thread installed one meanwhile, which is as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

impl Agent {
    /// An agent with its own HTTP client (rustls, the given timeout).
    pub fn new(config: AgentConfig) -> Result<Agent, AgentError> {
        if config.key.trim().is_empty() {
            return Err(AgentError::Config("the API key is empty".into()));
        }
        if config.host.is_empty() {
            return Err(AgentError::Config("the host id is empty".into()));
        }
        if config.timeout.is_zero() {
            return Err(AgentError::Config(
                "--timeout must be more than zero".into(),
            ));
        }
        if config.interval.is_zero() {
            return Err(AgentError::Config(
                "--interval must be more than zero".into(),
            ));
        }
        // The proxy is resolved once, here, and given to the client
        // explicitly, so the agent knows which proxy it goes through.
        let proxy_url = resolve(&config.proxy, &config.url)?;
        install_crypto_provider();
        let mut builder = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .user_agent(concat!("iamalive-agent/", env!("CARGO_PKG_VERSION")))
            // A fresh connection for every attempt: one kept idle for a
            // whole interval is often dead by then (a proxy or NAT closed
            // it), which would fail a beat for no reason, and each attempt
            // should test the real path (DNS, connect, TLS) it reports on.
            .pool_max_idle_per_host(0)
            .no_proxy();
        if let Some(p) = &proxy_url {
            let proxy = reqwest::Proxy::all(p.as_str())
                .map_err(|e| AgentError::Config(format!("proxy {}: {e}", redacted(p))))?;
            builder = builder.proxy(proxy);
        }
        if let Some(path) = &config.ca_file {
            builder = builder.tls_certs_only(ca_certificates(path)?);
        }
        let client = builder
            .build()
            .map_err(|e| AgentError::Config(format!("HTTP client: {e}")))?;
        let failures = match &config.state_file {
            Some(p) => load_state(p),
            None => FailureLog::new(),
        };
        Ok(Agent {
            client,
            config,
            failures,
            proxy: proxy_url.as_ref().map(redacted),
            signal: None,
        })
    }

    /// The proxy the heartbeats go through, shown without credentials;
    /// `None` for direct connections.
    pub fn proxy(&self) -> Option<&str> {
        self.proxy.as_deref()
    }

    /// The HTTP client, for requests other than heartbeats.
    pub(crate) fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// The settings.
    pub fn config(&self) -> &AgentConfig {
        &self.config
    }

    /// What failed since the last heartbeat that got through.
    pub fn failures(&self) -> &FailureLog {
        &self.failures
    }

    /// Makes the next heartbeats say `signal` (`None`: plain heartbeats).
    pub fn set_signal(&mut self, signal: Option<Signal>) {
        self.signal = signal;
    }

    /// The JSON body of the next heartbeat.
    pub fn body(&self) -> Value {
        let mut m = Map::new();
        m.insert("host".into(), Value::String(self.config.host.clone()));
        if self.config.send_interval {
            m.insert("interval".into(), interval_json(self.config.interval));
        }
        let message = match &self.signal {
            Some(s) => s.message.as_ref().or(self.config.message.as_ref()),
            None => self.config.message.as_ref(),
        };
        if let Some(msg) = message {
            m.insert("message".into(), Value::String(msg.clone()));
        }
        if let Some(g) = &self.config.group {
            m.insert("group".into(), Value::String(g.clone()));
        }
        if let Some(s) = &self.signal {
            m.insert("status".into(), Value::String(s.status.to_owned()));
            if let Some(rid) = &s.rid {
                m.insert("rid".into(), Value::String(rid.clone()));
            }
        }
        if let Some(r) = self.failures.report() {
            m.insert("report".into(), r);
        }
        Value::Object(m)
    }

    /// One request. A failure is recorded in [`Agent::failures`]; a success
    /// clears them.
    pub async fn attempt(&mut self) -> Attempt {
        let body = self.body();
        let carried_report = body.get("report").is_some();
        let sent = self
            .client
            .post(self.config.url.clone())
            .bearer_auth(&self.config.key)
            .json(&body)
            .send()
            .await;
        let (facts, retryable) = match sent {
            Ok(resp) if resp.status().is_success() => {
                let had = !self.failures.is_empty();
                self.failures.clear();
                if had {
                    self.save_state();
                }
                return Attempt::Delivered { carried_report };
            }
            Ok(resp) => {
                let s = resp.status().as_u16();
                (
                    self.answer_facts(resp).await,
                    matches!(s, 408 | 425 | 429 | 500..=599),
                )
            }
            Err(e) => (ErrorFacts::from_reqwest(&e), true),
        };
        let facts = match &self.proxy {
            Some(p) => facts.via_proxy(p, self.config.url.scheme() == "https"),
            None => facts,
        };
        let (kind, detail) = classify(&facts);
        self.failures.record(kind, &detail, Utc::now());
        self.save_state();
        Attempt::Failed {
            kind,
            detail,
            retryable,
        }
    }

    /// The facts of a non-success answer: the headers that tell who
    /// answered and, through a proxy, the title of its error page.
    async fn answer_facts(&self, mut resp: reqwest::Response) -> ErrorFacts {
        let headers = TELLING_HEADERS
            .iter()
            .filter_map(|&name| {
                let v = resp.headers().get(name)?.to_str().ok()?;
                Some((name.to_owned(), v.to_owned()))
            })
            .collect();
        let mut facts = ErrorFacts {
            headers,
            ..ErrorFacts::from_status(resp.status().as_u16())
        };
        if self.proxy.is_some() {
            let mut page = Vec::new();
            while page.len() < MAX_ERROR_PAGE {
                match resp.chunk().await {
                    Ok(Some(c)) => page.extend_from_slice(&c),
                    _ => break,
                }
            }
            facts.title = html_title(&String::from_utf8_lossy(&page));
        }
        facts
    }

    /// One heartbeat: attempts until one gets through, waiting between them
    /// as [`AgentConfig::backoff`] says. It ends early only on a failure
    /// that retrying soon cannot help (a 4xx such as a refused key). Returns
    /// the last attempt.
    pub async fn beat(&mut self) -> Attempt {
        self.beat_within(Budget::UNBOUNDED).await
    }

    /// [`beat`](Self::beat), bounded by `budget` (for `--once`): it also
    /// ends when the budget allows no further attempt.
    pub async fn beat_within(&mut self, budget: Budget) -> Attempt {
        let start = Instant::now();
        let mut attempts: u32 = 0;
        let mut warned: Option<Instant> = None;
        loop {
            let last = self.attempt().await;
            attempts = attempts.saturating_add(1);
            let Attempt::Failed {
                kind,
                detail,
                retryable: true,
            } = &last
            else {
                log_attempt(&self.config, &last, &self.failures);
                return last;
            };
            let wait = self.config.backoff.delay(attempts - 1, &mut rand::rng());
            if !budget.allows(attempts, start.elapsed(), wait, self.config.timeout) {
                log_attempt(&self.config, &last, &self.failures);
                return last;
            }
            // Warn at the first failure, then at most once an interval.
            if warned.is_none_or(|w| w.elapsed() >= self.config.interval) {
                warned = Some(Instant::now());
                tracing::warn!(
                    host = %self.config.host,
                    url = %self.config.url,
                    proxy = %self.proxy.as_deref().unwrap_or("none"),
                    %kind,
                    %detail,
                    failed_attempts = self.failures.failed_attempts(),
                    "heartbeat did not get through; retrying until it does"
                );
            } else {
                tracing::debug!(%kind, %detail, ?wait, "retrying");
            }
            tokio::time::sleep(wait).await;
        }
    }

    /// Beats until `stop` resolves: each beat retries until it gets
    /// through (see [`beat`](Self::beat)), and the next beat starts one
    /// interval (moved by up to `jitter`) after that. `stop` interrupts
    /// waits and retries at once.
    pub async fn run(&mut self, jitter: Duration, stop: impl Future<Output = ()>) {
        let interval = self.config.interval;
        tokio::pin!(stop);
        loop {
            tokio::select! {
                _ = &mut stop => break,
                _ = self.beat() => {}
            }
            let wait = jittered(interval, jitter, &mut rand::rng());
            tokio::select! {
                _ = &mut stop => break,
                _ = tokio::time::sleep(wait) => {}
            }
        }
        tracing::info!("stopping");
    }
}

impl Agent {
    fn save_state(&self) {
        let Some(path) = &self.config.state_file else {
            return;
        };
        let result = match self.failures.report() {
            None => match std::fs::remove_file(path) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                other => other,
            },
            Some(r) => {
                // Write beside it, then rename: a crash never leaves half a file.
                let tmp = path.with_extension("tmp");
                std::fs::write(&tmp, r.to_string()).and_then(|()| std::fs::rename(&tmp, path))
            }
        };
        if let Err(e) = result {
            tracing::warn!(path = %path.display(), error = %e, "cannot save the failure record");
        }
    }
}

/// The failure record saved in `path`, or an empty one (a missing file is
/// normal; an unreadable one is logged and ignored).
fn load_state(path: &Path) -> FailureLog {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return FailureLog::new(),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot read the failure record");
            return FailureLog::new();
        }
    };
    serde_json::from_str(&text)
        .ok()
        .and_then(|v| FailureLog::from_report(&v))
        .unwrap_or_else(|| {
            tracing::warn!(path = %path.display(), "ignoring an unreadable failure record");
            FailureLog::new()
        })
}

fn log_attempt(config: &AgentConfig, a: &Attempt, log: &FailureLog) {
    match a {
        Attempt::Delivered {
            carried_report: true,
        } => tracing::info!(
            host = %config.host,
            "heartbeat delivered after an outage; the failure report went with it"
        ),
        Attempt::Delivered { .. } => tracing::debug!(host = %config.host, "heartbeat delivered"),
        Attempt::Failed {
            kind,
            detail,
            retryable,
        } => tracing::warn!(
            host = %config.host,
            url = %config.url,
            %kind,
            %detail,
            failed_attempts = log.failed_attempts(),
            "heartbeat did not get through{}",
            if *retryable { "; giving up for this run" } else { "; retrying soon will not help" }
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_appends_the_path_once() {
        assert_eq!(
            endpoint("https://w.example").unwrap().as_str(),
            "https://w.example/v1/heartbeat"
        );
        assert_eq!(
            endpoint("https://w.example/base/").unwrap().as_str(),
            "https://w.example/base/v1/heartbeat"
        );
        assert_eq!(
            endpoint("http://127.0.0.1:8080/v1/heartbeat")
                .unwrap()
                .as_str(),
            "http://127.0.0.1:8080/v1/heartbeat"
        );
        assert!(endpoint("ftp://x").is_err());
        assert!(endpoint("not a url").is_err());
    }

    #[test]
    fn the_interval_is_seconds_as_a_json_number() {
        assert_eq!(interval_json(Duration::from_secs(300)).to_string(), "300");
        assert_eq!(interval_json(Duration::from_millis(500)).to_string(), "0.5");
        assert_eq!(
            interval_json(Duration::from_millis(90_250)).to_string(),
            "90.25"
        );
    }

    #[test]
    fn jitter_stays_in_bounds() {
        let mut rng = rand::rng();
        let i = Duration::from_secs(300);
        for _ in 0..1000 {
            let d = jittered(i, Duration::from_secs(30), &mut rng);
            assert!(
                d >= Duration::from_secs(270) && d <= Duration::from_secs(330),
                "{d:?}"
            );
        }
        assert_eq!(jittered(i, Duration::ZERO, &mut rng), i);
        let d = jittered(
            Duration::from_millis(100),
            Duration::from_secs(10),
            &mut rng,
        );
        assert!(d >= Duration::from_millis(10));
    }
}
