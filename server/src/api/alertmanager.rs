//! `POST /v1/alertmanager/{host}`: Alertmanager's webhook (payload version
//! 4) as a dead man's switch for the alerting pipeline itself.
//!
//! Prometheus' always-firing `Watchdog` alert, routed to this endpoint with
//! a short `repeat_interval`, arrives again and again while the pipeline
//! works: a message with firing alerts is a heartbeat for `{host}`. When
//! the pipeline says the alert stopped (every alert of the message
//! resolved), the host alarms at once rather than after its timeout. If
//! the pipeline dies outright, nothing arrives and the host alarms after
//! its timeout like any other.
//!
//! Alertmanager drops a notification answered 429 without retrying it, so
//! this endpoint never answers 429: a rate limit or cap answers 503 with
//! `Retry-After`, which Alertmanager retries.
//!
//! The stop is kept in this process's memory (the monitor's
//! [`FailProbe`](iamalive_core::FailProbe)), bounded, until a later
//! heartbeat supersedes it; a watcher restarted between the resolved
//! message and its sweep, or a second watcher sharing the store, does not
//! know it, and the host then alarms after its timeout instead.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use iamalive_core::{FailProbe, Heartbeat, HostId, Timestamp};
use serde::Deserialize;
use serde_json::json;

use super::{ApiError, AppState, MAX_MESSAGE_LEN, bearer, body_error, clean_text, parse_host};

/// The most hosts whose reported stop is remembered; past it the oldest
/// is forgotten (that host then alarms after its timeout).
const MAX_STOPPED: usize = 10_000;

/// Hosts whose alerting pipeline reported a stop, and when.
#[derive(Debug, Default)]
pub(crate) struct Stopped(Mutex<HashMap<HostId, Timestamp>>);

impl Stopped {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<HostId, Timestamp>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn mark(&self, host: &HostId, at: Timestamp) {
        let mut m = self.lock();
        if m.len() >= MAX_STOPPED && !m.contains_key(host) {
            let oldest = m.iter().min_by_key(|(_, t)| **t).map(|(h, _)| h.clone());
            if let Some(h) = oldest {
                m.remove(&h);
            }
        }
        m.insert(host.clone(), at);
    }

    fn clear(&self, host: &HostId) {
        self.lock().remove(host);
    }

    /// The probe the monitor asks.
    pub(crate) fn probe(self: &Arc<Self>) -> FailProbe {
        let me = Arc::clone(self);
        Arc::new(move |h| me.lock().get(h).copied())
    }
}

/// Alertmanager's webhook payload, version 4 (the fields used here; the
/// rest is ignored).
#[derive(Debug, Deserialize)]
struct Payload {
    version: String,
    #[serde(default)]
    status: String,
    alerts: Vec<Alert>,
}

#[derive(Debug, Deserialize)]
struct Alert {
    status: String,
    #[serde(default)]
    labels: HashMap<String, String>,
}

/// Alertmanager drops 429s: a limit answers 503 with `Retry-After`.
fn never_429(mut e: ApiError) -> ApiError {
    if e.status == StatusCode::TOO_MANY_REQUESTS {
        e.status = StatusCode::SERVICE_UNAVAILABLE;
        e.retry_after = Some(e.retry_after.unwrap_or(Duration::from_secs(1)));
    }
    e
}

pub(super) async fn alertmanager(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(host): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    receive(st, headers, host, req).await.map_err(never_429)
}

async fn receive(
    st: AppState,
    headers: HeaderMap,
    host: String,
    req: Request,
) -> Result<Response, ApiError> {
    let (index, key) = st.authenticate(bearer(&headers), true)?;
    let body = Bytes::from_request(req, &st)
        .await
        .map_err(|e| body_error(&st, e))?;
    st.charge(index, key, HostId::new(&host).ok().as_ref(), true)?;
    let host = parse_host(&host).map_err(|e| st.reject(None, "invalid host id", e))?;
    st.check_host(key, &host)?;
    let payload: Payload = serde_json::from_slice(&body).map_err(|e| {
        st.reject(
            Some(&host),
            "invalid Alertmanager payload",
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("body must be Alertmanager's webhook JSON (version 4): {e}"),
            ),
        )
    })?;
    if payload.version != "4" {
        return Err(st.reject(
            Some(&host),
            "invalid Alertmanager payload",
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!(
                    "Alertmanager webhook payload version {:?} is not supported; version 4 is",
                    payload.version
                ),
            ),
        ));
    }
    if payload.alerts.is_empty() {
        return Err(st.reject(
            Some(&host),
            "invalid Alertmanager payload",
            ApiError::new(StatusCode::BAD_REQUEST, "the message carries no alerts"),
        ));
    }
    let now = st.now();
    let mut firing: Vec<&str> = payload
        .alerts
        .iter()
        .filter(|a| a.status == "firing")
        .map(|a| {
            a.labels
                .get("alertname")
                .map_or("(unnamed)", String::as_str)
        })
        .collect();
    if firing.is_empty() {
        return stopped(&st, host, &payload, now).await;
    }
    firing.sort_unstable();
    firing.dedup();
    let mut message = clean_text(&format!(
        "alertmanager: {} firing ({})",
        payload
            .alerts
            .iter()
            .filter(|a| a.status == "firing")
            .count(),
        firing.join(", ")
    ));
    if message.len() > MAX_MESSAGE_LEN {
        let mut cut = MAX_MESSAGE_LEN;
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        message.truncate(cut);
    }
    st.0.stopped.clear(&host);
    let group = st.0.groups.group_of(&host, None);
    let hb = Heartbeat {
        at: now,
        host,
        message: Some(message),
        report: None,
        group,
    };
    st.record(index, key, hb).await
}

/// Every alert resolved: the pipeline says it stopped. The host alarms at
/// the next sweep (now), unless silenced or paused.
async fn stopped(
    st: &AppState,
    host: HostId,
    payload: &Payload,
    now: Timestamp,
) -> Result<Response, ApiError> {
    let monitor = st.monitor();
    if monitor
        .host(&host)
        .await
        .map_err(ApiError::store)?
        .is_none()
    {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!(
                "unknown host '{host}': its alerts resolved before any firing message registered it"
            ),
        ));
    }
    st.0.stopped.mark(&host, now);
    monitor.due_now(&host).await.map_err(ApiError::store)?;
    st.0.wake.notify_one();
    tracing::warn!(%host, status = %payload.status, "Alertmanager says every alert resolved: the alerting pipeline stopped; alarming");
    Ok(Json(json!({ "host": host, "status": "stopped", "at": now })).into_response())
}
