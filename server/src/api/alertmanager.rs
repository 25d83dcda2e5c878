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
//! The stop is stored as the host's job failure, the path a
//! `/ping/<key>/<host>/fail` takes: the alarm goes out at once and the
//! next firing message (a success) recovers the host with an all-clear.
//! Being in the store, it survives a restart of the watcher and is seen by
//! every watcher sharing the store, whichever of them received it.

use std::collections::HashMap;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use iamalive_core::job::Signal;
use iamalive_core::{Heartbeat, HostId, Timestamp};
use serde::Deserialize;
use serde_json::json;

use super::signals::bounded;
use super::{ApiError, AppState, bearer, clean_text, parse_host};

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

/// The alerts' names (`alertname`), sorted, each once: "Watchdog, X".
fn names<'a>(alerts: impl Iterator<Item = &'a Alert>) -> String {
    let mut names: Vec<&str> = alerts
        .map(|a| {
            a.labels
                .get("alertname")
                .map_or("(unnamed)", String::as_str)
        })
        .collect();
    names.sort_unstable();
    names.dedup();
    names.join(", ")
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
    let admitted = st
        .admit(bearer(&headers), req, |_| (HostId::new(&host).ok(), ()))
        .await?;
    let (index, key, body) = (admitted.index, admitted.key, admitted.body);
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
    let firing = payload.alerts.iter().filter(|a| a.status == "firing");
    let count = firing.clone().count();
    if count == 0 {
        return stopped(&st, host, &payload, now).await;
    }
    let message = bounded(clean_text(&format!(
        "alertmanager: {count} firing ({})",
        names(firing)
    )));
    let hb = beat(&st, host, now, message);
    // A success, as a ping's: it answers a stop reported before it, and a
    // stop whose alarm has not gone out yet still owes it.
    st.signal(index, key, hb, Signal::Success, None).await
}

/// The heartbeat a message from Alertmanager stands for: `host`'s, at
/// `now`, in its configured group, saying `message`.
fn beat(st: &AppState, host: HostId, now: Timestamp, message: String) -> Heartbeat {
    Heartbeat {
        message: Some(message),
        group: st.0.groups.group_of(&host, None),
        ..Heartbeat::new(host, now)
    }
}

/// Every alert resolved: the pipeline says it stopped. Stored as the
/// host's job failure (as `/fail` is), so the host alarms at once, unless
/// silenced or paused. An unknown host is not created: its alerts resolved
/// before any firing message registered it.
async fn stopped(
    st: &AppState,
    host: HostId,
    payload: &Payload,
    now: Timestamp,
) -> Result<Response, ApiError> {
    let reason = bounded(clean_text(&format!(
        "alertmanager: every alert resolved ({}): the alerting pipeline stopped",
        names(payload.alerts.iter())
    )));
    let hb = beat(st, host, now, reason);
    let out = st
        .monitor()
        .signal(&hb, Signal::Fail, None)
        .await
        .map_err(ApiError::store)?;
    st.signal_applied(out, Signal::Fail, || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!(
                "unknown host '{}': its alerts resolved before any firing message registered it",
                hb.host
            ),
        )
    })?;
    tracing::warn!(host = %hb.host, status = %payload.status, "Alertmanager says every alert resolved: the alerting pipeline stopped; alarming");
    Ok(Json(json!({ "host": hb.host, "status": "stopped", "at": now })).into_response())
}
