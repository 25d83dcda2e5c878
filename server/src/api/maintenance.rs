//! `POST|DELETE /v1/hosts/{host}/maintenance`: maintenance announced by the
//! host itself (`iamalive-agent maintenance 2h`), before a planned
//! shutdown.
//!
//! A maintenance is a silence named `maintenance-<host>` covering that host
//! alone, from now for the duration asked. Any key that may speak for the
//! host may start or end it: a `heartbeat`-role key for at most
//! [`OpsSettings::max_self_silence`](crate::OpsSettings::max_self_silence)
//! (`IAMALIVE_MAX_SELF_SILENCE`, 12 h by default), so a leaked agent key
//! cannot switch the watch off for long; an admin key for up to a year.
//! A host still silent when its maintenance ends alarms then; ending it
//! early (`DELETE`) alarms at once for a host that is silent by then.

use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use iamalive_core::{HostId, HostPattern, Silence, add};
use serde::Deserialize;
use serde_json::json;

use super::{
    ApiError, AppState, MAX_SILENCE, bad, bearer, body_error, clean_text, parse_host, silence_view,
};
use crate::keys::Role;

/// The id of `host`'s maintenance silence.
pub(crate) fn silence_id(host: &HostId) -> String {
    format!("maintenance-{host}")
}

/// The body: `{"for": "2h", "reason": "recovery image"}`.
#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a JSON object like {\"for\": \"2h\", \"reason\": \"recovery image\"}"
)]
struct Body {
    #[serde(rename = "for", with = "humantime_serde")]
    for_: Duration,
    #[serde(default)]
    reason: String,
}

/// The most bytes of a maintenance reason kept.
const MAX_REASON: usize = 512;

/// A key that may speak for `host`: any role, the host within its pattern.
fn key_for_host(
    st: &AppState,
    headers: &HeaderMap,
    host: &str,
) -> Result<(HostId, Role), ApiError> {
    let (i, key) = st.authenticate(bearer(headers), false)?;
    st.charge(i, key, None, false)?;
    let host = parse_host(host)?;
    if !key.allows(&host) {
        return Err(super::not_for_host(key, &host));
    }
    Ok((host, key.role))
}

pub(super) async fn start(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(host): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let (host, role) = key_for_host(&st, &headers, &host)?;
    let body = body.map_err(|e| body_error(&st, e))?;
    let req: Body = serde_json::from_slice(&body).map_err(|e| {
        bad(format!(
            "body must be JSON like {{\"for\": \"2h\", \"reason\": \"recovery image\"}}: {e}"
        ))
    })?;
    if req.for_.is_zero() {
        return Err(bad("for must be longer than zero"));
    }
    // A heartbeat key's bound is a right it lacks (403); the bound of every
    // silence is a bad request (400), as for POST /v1/silences.
    let (max, setting, refusal) = match role {
        Role::Heartbeat => (
            st.0.ops.max_self_silence,
            " (maintenance.max_self_silence, IAMALIVE_MAX_SELF_SILENCE, for heartbeat keys)",
            StatusCode::FORBIDDEN,
        ),
        Role::Admin => (MAX_SILENCE, "", StatusCode::BAD_REQUEST),
    };
    if req.for_ > max {
        return Err(ApiError::new(
            refusal,
            format!(
                "a maintenance of {} is longer than the {} allowed{setting}",
                humantime::format_duration(req.for_),
                humantime::format_duration(max)
            ),
        ));
    }
    st.known_host(&host).await?;
    let monitor = st.monitor();
    let mut reason = clean_text(req.reason.trim());
    iamalive_core::text::cut_bytes(&mut reason, MAX_REASON);
    if reason.is_empty() {
        reason = "maintenance announced by the host".to_owned();
    }
    let now = st.now();
    let pattern = HostPattern::new(host.as_str()).map_err(|e| bad(e.to_string()))?;
    let silence =
        Silence::new(silence_id(&host), pattern, now, add(now, req.for_), reason).map_err(bad)?;
    monitor
        .add_silence(&silence)
        .await
        .map_err(ApiError::store)?;
    tracing::info!(%host, until = %silence.ends_at, reason = %silence.reason, "maintenance started");
    Ok((StatusCode::CREATED, Json(silence_view(&silence, now))).into_response())
}

pub(super) async fn end(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(host): Path<String>,
) -> Result<Response, ApiError> {
    let (host, _) = key_for_host(&st, &headers, &host)?;
    let id = silence_id(&host);
    if st
        .monitor()
        .remove_silence(&id)
        .await
        .map_err(ApiError::store)?
    {
        st.0.wake.notify_one();
        tracing::info!(%host, "maintenance ended");
        Ok(Json(json!({ "host": host, "ended": id })).into_response())
    } else {
        Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no maintenance in progress for '{host}'"),
        ))
    }
}
