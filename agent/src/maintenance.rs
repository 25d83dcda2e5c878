//! `iamalive-agent maintenance`: the host tells the watcher it is going
//! down on purpose (a planned shutdown, a recovery image), so its silence
//! raises no alarm until the maintenance ends.

use std::time::Duration;

use serde_json::{Value, json};

use crate::Agent;

/// What to ask the watcher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Maintenance {
    /// Silence this host from now for `duration`, saying why.
    Start {
        /// How long.
        duration: Duration,
        /// Why, for the people who look; the watcher names one if empty.
        reason: Option<String>,
    },
    /// End this host's maintenance now (a host silent by then alarms).
    End,
}

/// Why a maintenance request did not take effect.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MaintenanceError {
    /// The watcher could not be reached.
    #[error("could not reach the watcher: {0}")]
    Unreachable(String),
    /// The watcher answered with an error (its reason is in the message).
    #[error("the watcher refused: {reason} ({status})")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// What the watcher said.
        reason: String,
    },
}

/// The maintenance endpoint of the watcher the agent beats to.
fn url(agent: &Agent) -> reqwest::Url {
    let mut u = agent.config().url.clone();
    let base = u
        .path()
        .trim_end_matches('/')
        .trim_end_matches("/v1/heartbeat")
        .to_owned();
    u.set_path(&format!(
        "{base}/v1/hosts/{}/maintenance",
        agent.config().host
    ));
    u
}

impl Agent {
    /// Starts or ends this host's maintenance at the watcher, through the
    /// agent's own connection settings (proxy, CA file, timeout). On
    /// success, a sentence saying what the watcher did.
    pub async fn maintenance(&self, what: &Maintenance) -> Result<String, MaintenanceError> {
        let host = &self.config().host;
        let req = match what {
            Maintenance::Start { duration, reason } => self.client().post(url(self)).json(&json!({
                "for": humantime::format_duration(*duration).to_string(),
                "reason": reason.clone().unwrap_or_default(),
            })),
            Maintenance::End => self.client().delete(url(self)),
        };
        let resp = req
            .bearer_auth(&self.config().key)
            .send()
            .await
            .map_err(|e| {
                MaintenanceError::Unreachable(crate::ErrorFacts::from_reqwest(&e).chain.join(": "))
            })?;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            return Err(MaintenanceError::Refused {
                status: status.as_u16(),
                reason: body["error"]
                    .as_str()
                    .unwrap_or("no reason given")
                    .to_owned(),
            });
        }
        Ok(match what {
            Maintenance::Start { .. } => format!(
                "maintenance of {host} until {}: no alarm while it is silent until then",
                body["ends_at"].as_str().unwrap_or("?")
            ),
            Maintenance::End => format!("maintenance of {host} ended"),
        })
    }
}
