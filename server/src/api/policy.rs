//! A host's own policy through the management API: `PUT /v1/hosts/{host}`
//! with a body sets it (a timeout, or a cron schedule with time zone and
//! grace), `DELETE /v1/hosts/{host}/policy` forgets it, and the host's view
//! shows the policy in force and, for a schedule, the next expected run.
//!
//! The policy is stored with the host (every store), so every monitor on
//! the store applies it at once, no restart needed. Where the
//! configuration's `[[policy.hosts]]` also matches the host, the stored
//! policy wins: it names one host, the configuration a pattern.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use iamalive_core::{HostPolicy, HostRecord, PolicySet, PolicySpec, Timestamp};
use serde_json::{Map, Value, json};

use super::{ApiError, AppState, admin_for_host, bad, body_error, silences, view};

/// The example a refused body is answered with.
const EXAMPLE: &str =
    r#"{"schedule": "0 2 * * *", "tz": "Europe/Berlin", "grace": "30m"} or {"timeout": "10m"}"#;

/// The policy in force for `rec` and where it comes from, the next run a
/// schedule expects and the instant the host becomes missing without a
/// success: fields added to a host's view.
pub(crate) fn policy_fields(policies: &PolicySet, rec: &HostRecord) -> Map<String, Value> {
    let policy = policies.for_record(rec);
    let heard = rec.last_seen.max(rec.watch_from);
    let mut spec = match &policy.schedule {
        Some(s) => json!({
            "schedule": s.cron(),
            "tz": s.tz(),
            "grace": humantime::format_duration(s.grace()).to_string(),
        }),
        None => json!({ "timeout": humantime::format_duration(policy.timeout).to_string() }),
    };
    spec["source"] = json!(if rec.policy.is_some() {
        "api"
    } else {
        "config"
    });
    let mut m = Map::new();
    m.insert("policy".into(), spec);
    m.insert("next_run".into(), json!(policy.next_run(heard)));
    m.insert("deadline".into(), json!(rec.deadline(&policy)));
    m
}

/// [`view`] with [`policy_fields`].
async fn full_view(st: &AppState, rec: &HostRecord, now: Timestamp) -> Result<Value, ApiError> {
    let mut v = view(rec, now, &silences(st).await?, st.0.monitor.policies());
    if let Value::Object(m) = &mut v {
        m.extend(policy_fields(st.0.monitor.policies(), rec));
    }
    Ok(v)
}

/// `GET /v1/hosts/{host}`.
pub(super) async fn get_host(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(host): Path<String>,
) -> Result<Response, ApiError> {
    let host = admin_for_host(&st, &headers, &host).await?;
    let rec = st.known_host(&host).await?;
    Ok(Json(full_view(&st, &rec, st.now()).await?).into_response())
}

/// `PUT /v1/hosts/{host}`: without a body, registers the host (it gets a
/// full timeout from now); with a policy body, also stores that policy
/// with it (replacing any stored before). 201 when the host was created.
pub(super) async fn put_host(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(host): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let host = admin_for_host(&st, &headers, &host).await?;
    let body = body.map_err(|e| body_error(&st, e))?;
    let policy = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        let spec: PolicySpec = serde_json::from_slice(&body)
            .map_err(|e| bad(format!("policy body: {e}; send e.g. {EXAMPLE}")))?;
        Some(HostPolicy::try_from(spec).map_err(|e| bad(format!("policy body: {e}")))?)
    };
    let monitor = &st.0.monitor;
    let created = match policy {
        None => monitor.register(&host).await.map_err(ApiError::store)?,
        Some(p) => {
            let (_, created) = monitor
                .set_policy(&host, Some(p))
                .await
                .map_err(ApiError::store)?;
            // A missing host may now be heard (or the other way round).
            st.0.wake.notify_one();
            created
        }
    };
    let rec = st.known_host(&host).await?;
    if created {
        st.0.host_count.lock().await.changed(1, 0);
    }
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(full_view(&st, &rec, st.now()).await?)).into_response())
}

/// `DELETE /v1/hosts/{host}/policy`: forgets the host's stored policy, so
/// the configuration's applies again. 404 for an unknown host.
pub(super) async fn delete_policy(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(host): Path<String>,
) -> Result<Response, ApiError> {
    let host = admin_for_host(&st, &headers, &host).await?;
    st.known_host(&host).await?;
    let monitor = &st.0.monitor;
    let (rec, created) = monitor
        .set_policy(&host, None)
        .await
        .map_err(ApiError::store)?;
    if created {
        // Removed between the two calls and created again: keep the count.
        st.0.host_count.lock().await.changed(1, 0);
    }
    st.0.wake.notify_one();
    Ok(Json(full_view(&st, &rec, st.now()).await?).into_response())
}
