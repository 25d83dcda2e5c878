//! Job signals at the ingest: `/ping/<key>/<host>/{fail,start,log,<0-255>}`,
//! `?rid=`, and `"status"` in the JSON heartbeat.

use std::time::Duration;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use iamalive_core::job::{self, Signal, SignalOutcome};
use iamalive_core::{Heartbeat, HeartbeatOutcome, MAX_EVENTS, Status};
use serde::Deserialize;
use serde_json::json;

use super::{ApiError, AppState, MAX_MESSAGE_LEN, unknown_action};
use crate::keys::ApiKey;

/// The query string of a ping URL; other parameters are ignored.
#[derive(Debug, Default, Deserialize)]
pub(super) struct PingQuery {
    /// Pairs a start with its end when runs overlap.
    #[serde(default)]
    pub(super) rid: Option<String>,
    /// The group (site) the host says it belongs to (`?group=`).
    #[serde(default)]
    pub(super) group: Option<String>,
}

/// Validates a run id, if one was sent (an empty one counts as none).
pub(super) fn check_rid(rid: Option<String>) -> Result<Option<String>, ApiError> {
    match rid.filter(|r| !r.is_empty()) {
        None => Ok(None),
        Some(r) => job::check_rid(&r)
            .map(|()| Some(r))
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e)),
    }
}

/// The signal of a ping URL's last segment, and the exit status it gave:
/// none or `0` is a success, `fail` or `1`-`255` a failure, `start` and
/// `log` themselves.
pub(super) fn ping_action(action: Option<&str>) -> Result<(Signal, Option<u8>), ApiError> {
    Ok(match action {
        None => (Signal::Success, None),
        Some("start") => (Signal::Start, None),
        Some("fail") => (Signal::Fail, None),
        Some("log") => (Signal::Log, None),
        // Digits only: `parse` alone would take "+1".
        Some(code) if (1..=3).contains(&code.len()) && code.bytes().all(|b| b.is_ascii_digit()) => {
            let n = code.parse::<u8>().map_err(|_| unknown_action(code))?;
            match n {
                0 => (Signal::Success, None),
                n => (Signal::Fail, Some(n)),
            }
        }
        Some(other) => return Err(unknown_action(other)),
    })
}

/// The signal named by a JSON heartbeat's `"status"`.
pub(super) fn json_status(status: Option<&str>) -> Result<Signal, ApiError> {
    match status {
        None => Ok(Signal::Success),
        Some(s) => Signal::parse(s).ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("status must be one of success, fail, start or log, not {s:?}"),
            )
        }),
    }
}

/// Cuts `m` to [`MAX_MESSAGE_LEN`] bytes at a character boundary: a ping's
/// body (a failure's reason, a log line) is kept, bounded, never refused.
pub(super) fn bounded(mut m: String) -> String {
    iamalive_core::text::cut_bytes(&mut m, MAX_MESSAGE_LEN);
    m
}

impl AppState {
    /// Applies `signal` from `hb` sent with key number `index`. An unknown
    /// host is created first, within the key's `register` option and the
    /// caps on new hosts, as a heartbeat would create it. A failure, or a
    /// success that ends an outage, wakes the sweep: the alarm or the
    /// all-clear goes out at once.
    pub(super) async fn signal(
        &self,
        index: usize,
        key: &ApiKey,
        hb: Heartbeat,
        signal: Signal,
        rid: Option<String>,
    ) -> Result<Response, ApiError> {
        let monitor = &self.0.monitor;
        let mut out = monitor
            .signal(&hb, signal, rid.as_deref())
            .await
            .map_err(ApiError::store)?;
        let mut created = false;
        if out == SignalOutcome::Unknown && signal == Signal::Success {
            // A success that creates its host is that host's first
            // heartbeat (its message, interval and group with it), logged
            // and answered like any other success.
            created = self.ingest(index, key, &hb).await? == HeartbeatOutcome::Created;
            monitor.log_signal(&hb, signal, rid.as_deref(), None).await;
            out = SignalOutcome::Applied {
                status: Status::Up,
                wake: false,
                duration: None,
            };
        } else if out == SignalOutcome::Unknown {
            // Created as a registration would be (no message: the text
            // belongs to the signal), then the signal applies.
            let bare = Heartbeat::new(hb.host.clone(), hb.at);
            let made = match monitor.heartbeat_with(&bare, false).await {
                Ok(HeartbeatOutcome::Unknown) if monitor.options().auto_register => {
                    self.create_by_heartbeat(index, key, &bare).await?
                }
                Ok(o) => o,
                Err(e) => return Err(ApiError::store(e)),
            };
            if made == HeartbeatOutcome::Unknown {
                return Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    format!(
                        "unknown host '{}': auto-registration is off; register it first (PUT /v1/hosts/{})",
                        hb.host, hb.host
                    ),
                ));
            }
            created = made == HeartbeatOutcome::Created;
            let applied = if created {
                monitor.signal_created(&hb, signal, rid.as_deref()).await
            } else {
                monitor.signal(&hb, signal, rid.as_deref()).await
            };
            out = applied.map_err(ApiError::store)?;
        }
        let duration = self.signal_applied(out, signal, || {
            ApiError::new(
                StatusCode::CONFLICT,
                format!(
                    "host '{}' was removed while the signal was applied",
                    hb.host
                ),
            )
        })?;
        tracing::debug!(host = %hb.host, %signal, "signal");
        let status = if created { "created" } else { "ok" };
        Ok(Json(json!({
            "host": hb.host,
            "status": status,
            "signal": signal,
            "at": hb.at,
            "rid": rid,
            "duration_s": duration.map(secs),
        }))
        .into_response())
    }
}

impl AppState {
    /// After a signal: wakes the sweep when the signal asks for it and
    /// counts it (`iamalive_signals_total`); the duration of the run it
    /// ended. `unknown` is the answer when the host was not there.
    pub(super) fn signal_applied(
        &self,
        out: SignalOutcome,
        signal: Signal,
        unknown: impl FnOnce() -> ApiError,
    ) -> Result<Option<Duration>, ApiError> {
        let SignalOutcome::Applied { wake, duration, .. } = out else {
            return Err(unknown());
        };
        if wake {
            self.0.wake.notify_one();
        }
        metrics::counter!("iamalive_signals_total", "signal" => signal.as_str()).increment(1);
        Ok(duration)
    }
}

fn secs(d: Duration) -> f64 {
    (d.as_millis() as f64) / 1000.0
}

/// The query of `GET /v1/hosts/<host>/events`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct EventsQuery {
    /// At most this many, newest first (default and most: 100).
    #[serde(default)]
    limit: Option<usize>,
}

/// `GET /v1/hosts/<host>/events?limit=`: the host's event log, newest
/// first: `{"host", "events": [{"at", "kind", "message"?, "duration"?,
/// "rid"?}]}`.
pub(super) async fn host_events(
    axum::extract::State(st): axum::extract::State<AppState>,
    headers: axum::http::HeaderMap,
    axum::extract::Path(host): axum::extract::Path<String>,
    query: Result<axum::extract::Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let host = super::admin_for_host(&st, &headers, &host).await?;
    let q = query.map_err(|e| super::bad(format!("invalid query: {}", e.body_text())))?;
    let limit = super::limit_param(q.0.limit, MAX_EVENTS, MAX_EVENTS).map_err(|e| {
        super::bad(format!(
            "{} (each host keeps its last {MAX_EVENTS} events)",
            e.reason()
        ))
    })?;
    st.known_host(&host).await?;
    let events =
        st.0.monitor
            .store()
            .events(&host, limit)
            .await
            .map_err(ApiError::store)?;
    Ok(Json(json!({ "host": host, "events": events })).into_response())
}
