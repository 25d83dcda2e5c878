//! Running on AWS Lambda (the `lambda` feature): one function for both
//! jobs, like the origin: API Gateway requests (REST API v1 and HTTP API v2
//! payloads) and a scheduled EventBridge event that runs one sweep. Any
//! store and any channels: a preset builds them and hands them to
//! [`Handler::new`], then [`run`]s it.
//!
//! An API Gateway request is turned into an `http::Request` and answered by
//! the server's own axum router ([`router`]) with
//! `tower::ServiceExt::oneshot`, so validation, key checks, host patterns,
//! rate limits and rejection counting are exactly those of the long-running
//! server. A scheduled event runs [`Monitor::sweep`](iamalive_core::Monitor::sweep),
//! then the function's own heartbeat (`IAMALIVE_SELF_PING_URL`) when one is
//! due, like the long-running binaries.

use std::sync::Arc;

use aws_lambda_events::apigw::{
    ApiGatewayProxyRequest, ApiGatewayProxyResponse, ApiGatewayV2httpRequest,
    ApiGatewayV2httpResponse,
};
use aws_lambda_events::encodings::Body;
use aws_lambda_events::eventbridge::EventBridgeEvent;
use axum::Router;
use axum::http::{self, HeaderMap, HeaderValue, Method, header};
use base64::Engine;
use futures::FutureExt;
use iamalive_core::{Clock, Notifier, Store, SweepReport};
use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::{AppState, Config, ServerError, router};

/// A boxed error, as the Lambda runtime takes it.
pub type Error = lambda_runtime::Error;

/// What an invocation carried.
#[derive(Debug)]
#[non_exhaustive]
pub enum Event {
    /// API Gateway REST API (or HTTP API payload format 1.0).
    RestV1(Box<ApiGatewayProxyRequest>),
    /// API Gateway HTTP API, payload format 2.0.
    HttpV2(Box<ApiGatewayV2httpRequest>),
    /// An EventBridge (CloudWatch Events) scheduled event: run one sweep.
    Schedule(Box<EventBridgeEvent>),
}

impl Event {
    /// Tells the payloads apart by their shape.
    pub fn classify(v: Value) -> Result<Self, Error> {
        if v.get("version").and_then(Value::as_str) == Some("2.0") {
            return Ok(Self::HttpV2(Box::new(serde_json::from_value(v)?)));
        }
        if v.get("httpMethod").is_some() {
            return Ok(Self::RestV1(Box::new(serde_json::from_value(v)?)));
        }
        if v.get("detail-type").is_some() {
            return Ok(Self::Schedule(Box::new(serde_json::from_value(v)?)));
        }
        Err("unrecognised event: expected an API Gateway request (REST v1 or HTTP v2) or an EventBridge scheduled event".into())
    }
}

/// Why a [`Handler`] could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HandlerError {
    /// The function has no key configured: it cannot keep a generated one
    /// between invocations.
    #[error(
        "IAMALIVE_API_KEYS is not set: a Lambda function cannot keep a generated key; set one or more keys (or sha256:<hex> hashes)"
    )]
    NoKeys,
    /// The server's state could not be built.
    #[error(transparent)]
    Server(#[from] ServerError),
}

/// Serves `handler` with the Lambda runtime until the instance is shut
/// down: the whole `main` of a function once the handler is built (build
/// it once, outside, so clients, limiters and the monitor's mark survive
/// between invocations).
pub async fn run(handler: Handler) -> Result<(), Error> {
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| {
        let handler = handler.clone();
        async move { handler.handle(event).await }
    }))
    .await
}

/// The function: the server's router and monitor over one store.
///
/// Build it once per Lambda instance (outside the handler), so SDK clients,
/// rate limiters and the monitor's mark survive between invocations.
#[derive(Clone)]
pub struct Handler {
    state: AppState,
    router: Router,
    sweep_on_recovery: bool,
}

impl std::fmt::Debug for Handler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handler")
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl Handler {
    /// A handler over `store` and `channels`, with `config`'s keys,
    /// policies and limits; `clock` is [`SystemClock`] in production.
    ///
    /// Fails when `config` has no API key: a function has nowhere to keep a
    /// generated one.
    pub fn new(
        store: Arc<dyn Store>,
        channels: Vec<Arc<dyn Notifier>>,
        clock: Arc<dyn Clock>,
        config: &Config,
    ) -> Result<Self, HandlerError> {
        if config.keys.is_empty() {
            return Err(HandlerError::NoKeys);
        }
        let state = AppState::new_scheduled(store, channels, clock, config)?;
        Ok(Self {
            router: router(state.clone()),
            state,
            sweep_on_recovery: true,
        })
    }

    /// Whether a heartbeat that ends an outage runs a sweep at once, so the
    /// all-clear goes out now rather than at the next scheduled sweep
    /// (default: yes; the long-running server's runner does the same).
    pub fn sweep_on_recovery(mut self, yes: bool) -> Self {
        self.sweep_on_recovery = yes;
        self
    }

    /// The shared state (monitor, rejections).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// The Lambda entry point.
    pub async fn handle(&self, event: LambdaEvent<Value>) -> Result<Value, Error> {
        self.handle_value(event.payload).await
    }

    /// Handles one event payload.
    pub async fn handle_value(&self, payload: Value) -> Result<Value, Error> {
        match Event::classify(payload)? {
            Event::RestV1(req) => {
                let (status, headers, body) = self.http(rest_request(*req)?).await?;
                let mut out = ApiGatewayProxyResponse::default();
                out.status_code = status;
                out.headers = headers;
                (out.body, out.is_base64_encoded) = encode_body(body);
                Ok(serde_json::to_value(out)?)
            }
            Event::HttpV2(req) => {
                let (status, headers, body) = self.http(http_request(*req)?).await?;
                let mut out = ApiGatewayV2httpResponse::default();
                out.status_code = status;
                out.headers = headers;
                (out.body, out.is_base64_encoded) = encode_body(body);
                Ok(serde_json::to_value(out)?)
            }
            Event::Schedule(ev) => {
                tracing::debug!(source = %ev.source, detail_type = %ev.detail_type, "scheduled sweep");
                let report = self.sweep().await?;
                Ok(report_json(report))
            }
        }
    }

    /// Runs one sweep, as the schedule does, then the function's own
    /// heartbeat when one is due (`IAMALIVE_SELF_PING_URL`), awaited within
    /// its timeout: an instance is frozen once the invocation returns, so a
    /// ping left in flight would not get through.
    pub async fn sweep(&self) -> Result<SweepReport, Error> {
        let swept = self.state.sweep().await;
        self.state.self_watch().settle().await;
        let report = swept?;
        log_report(report);
        Ok(report)
    }

    /// A sweep run by a heartbeat that ended an outage. It sends no
    /// self-ping: the ping says the *scheduled* sweep runs, and must stop
    /// when the schedule does, however often hosts recover.
    async fn sweep_for_recovery(&self) -> Result<SweepReport, Error> {
        let swept = self.state.monitor().sweep().await;
        self.state.self_watch().note_sweep(swept.is_ok());
        let report = swept?;
        log_report(report);
        Ok(report)
    }

    async fn http(
        &self,
        req: http::Request<axum::body::Body>,
    ) -> Result<(i64, HeaderMap, Vec<u8>), Error> {
        let resp = self.router.clone().oneshot(req).await?;
        // A heartbeat that needs a decision (a host coming back) wakes the
        // long-running server's runner; here, sweep now.
        let woken = self.state.wake_signal().notified().now_or_never().is_some();
        if woken
            && self.sweep_on_recovery
            && let Err(e) = self.sweep_for_recovery().await
        {
            tracing::warn!(error = %e, "sweep after a recovery failed; the next scheduled sweep retries");
        }
        let (parts, body) = resp.into_parts();
        let bytes = axum::body::to_bytes(body, usize::MAX).await?;
        Ok((
            i64::from(parts.status.as_u16()),
            parts.headers,
            bytes.to_vec(),
        ))
    }
}

fn log_report(report: SweepReport) {
    tracing::info!(
        evaluated = report.evaluated,
        completed = report.completed,
        failed_deliveries = report.failed_deliveries,
        conflicts = report.conflicts,
        errors = report.errors,
        "sweep"
    );
}

fn report_json(r: SweepReport) -> Value {
    json!({
        "evaluated": r.evaluated,
        "completed": r.completed,
        "failed_deliveries": r.failed_deliveries,
        "conflicts": r.conflicts,
        "errors": r.errors,
    })
}

fn encode_body(body: Vec<u8>) -> (Option<Body>, bool) {
    if body.is_empty() {
        return (None, false);
    }
    match String::from_utf8(body) {
        Ok(text) => (Some(Body::Text(text)), false),
        Err(e) => (Some(Body::Binary(e.into_bytes())), true),
    }
}

fn decode_body(body: Option<String>, base64: bool) -> Result<Vec<u8>, Error> {
    let Some(body) = body else {
        return Ok(Vec::new());
    };
    if base64 {
        Ok(base64::engine::general_purpose::STANDARD.decode(body.trim())?)
    } else {
        Ok(body.into_bytes())
    }
}

/// Percent-encodes a query component (RFC 3986 unreserved kept).
fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn build(
    method: Method,
    path: &str,
    query: &str,
    headers: HeaderMap,
    body: Vec<u8>,
) -> Result<http::Request<axum::body::Body>, Error> {
    let path = if path.is_empty() { "/" } else { path };
    let uri = if query.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{query}")
    };
    let mut req = http::Request::builder()
        .method(method)
        .uri(uri)
        .body(axum::body::Body::from(body))?;
    *req.headers_mut() = headers;
    Ok(req)
}

/// A REST API (v1) proxy event as an HTTP request.
pub fn rest_request(req: ApiGatewayProxyRequest) -> Result<http::Request<axum::body::Body>, Error> {
    let params = if req.multi_value_query_string_parameters.is_empty() {
        &req.query_string_parameters
    } else {
        &req.multi_value_query_string_parameters
    };
    let mut pairs: Vec<(&str, &str)> = params.iter().collect();
    pairs.sort();
    let query = pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode_component(k), encode_component(v)))
        .collect::<Vec<_>>()
        .join("&");
    let headers = if req.multi_value_headers.is_empty() {
        req.headers
    } else {
        req.multi_value_headers
    };
    let body = decode_body(req.body, req.is_base64_encoded)?;
    let path = req.path.unwrap_or_default();
    build(req.http_method, &path, &query, headers, body)
}

/// An HTTP API (v2) event as an HTTP request.
pub fn http_request(
    req: ApiGatewayV2httpRequest,
) -> Result<http::Request<axum::body::Body>, Error> {
    let mut headers = req.headers;
    if let Some(cookies) = req.cookies.filter(|c| !c.is_empty()) {
        headers.insert(header::COOKIE, HeaderValue::from_str(&cookies.join("; "))?);
    }
    let body = decode_body(req.body, req.is_base64_encoded)?;
    build(
        req.request_context.http.method,
        req.raw_path.as_deref().unwrap_or("/"),
        req.raw_query_string.as_deref().unwrap_or(""),
        headers,
        body,
    )
}
