//! Sending heartbeats: one attempt, retries inside an interval, the loop.

use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::Utc;
use rand::Rng;
use reqwest::Url;
use serde_json::{Map, Value};

use crate::report::{ErrorFacts, FailureKind, FailureLog, classify};

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
    /// The bound on one request.
    pub timeout: Duration,
    /// Further attempts after a failed one, inside one interval.
    pub retries: u32,
    /// The wait before the first retry; it doubles for each further one.
    pub retry_backoff: Duration,
    /// Where the failure record is kept between runs (for `--once` from
    /// cron, and across restarts); `None` keeps it in memory only.
    pub state_file: Option<PathBuf>,
    /// A PEM file of CA certificates to trust *instead of* the system's
    /// roots (a private CA in front of the watcher); `None` trusts the
    /// system's.
    pub ca_file: Option<PathBuf>,
}

impl fmt::Debug for AgentConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentConfig")
            .field("url", &self.url.as_str())
            .field("key", &"<redacted>")
            .field("host", &self.host)
            .field("message", &self.message)
            .field("timeout", &self.timeout)
            .field("retries", &self.retries)
            .field("retry_backoff", &self.retry_backoff)
            .field("state_file", &self.state_file)
            .field("ca_file", &self.ca_file)
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
        /// Whether another attempt may help (not for 4xx other than 408/429).
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

/// Sends heartbeats and remembers what failed until one gets through.
#[derive(Debug)]
pub struct Agent {
    client: reqwest::Client,
    config: AgentConfig,
    failures: FailureLog,
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
        let mut builder = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .user_agent(concat!("iamalive-agent/", env!("CARGO_PKG_VERSION")));
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
        })
    }

    /// The settings.
    pub fn config(&self) -> &AgentConfig {
        &self.config
    }

    /// What failed since the last heartbeat that got through.
    pub fn failures(&self) -> &FailureLog {
        &self.failures
    }

    /// The JSON body of the next heartbeat.
    pub fn body(&self) -> Value {
        let mut m = Map::new();
        m.insert("host".into(), Value::String(self.config.host.clone()));
        if let Some(msg) = &self.config.message {
            m.insert("message".into(), Value::String(msg.clone()));
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
                    ErrorFacts::from_status(s),
                    matches!(s, 408 | 425 | 429 | 500..=599),
                )
            }
            Err(e) => (ErrorFacts::from_reqwest(&e), true),
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

    /// One heartbeat: an attempt and up to `retries` more with doubling
    /// backoff while the failure is retryable. Returns the last attempt.
    pub async fn beat(&mut self) -> Attempt {
        let mut wait = self.config.retry_backoff;
        let mut last = self.attempt().await;
        for _ in 0..self.config.retries {
            match &last {
                Attempt::Delivered { .. } => break,
                Attempt::Failed {
                    retryable: false, ..
                } => break,
                Attempt::Failed { kind, detail, .. } => {
                    tracing::debug!(%kind, %detail, ?wait, "retrying");
                }
            }
            tokio::time::sleep(wait).await;
            wait = wait.saturating_mul(2);
            last = self.attempt().await;
        }
        log_attempt(&self.config, &last, &self.failures);
        last
    }

    /// Beats every `interval` (moved by up to `jitter`) until `stop`
    /// resolves; a beat in flight is finished first only if it completes
    /// promptly — `stop` interrupts waits and retries at once.
    pub async fn run(
        &mut self,
        interval: Duration,
        jitter: Duration,
        stop: impl Future<Output = ()>,
    ) {
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
        Attempt::Failed { kind, detail, .. } => tracing::warn!(
            host = %config.host,
            url = %config.url,
            %kind,
            %detail,
            failed_attempts = log.failed_attempts(),
            "heartbeat did not get through"
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
