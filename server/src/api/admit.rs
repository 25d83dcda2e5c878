//! What every ingest handler (the heartbeat, the ping URL, Alertmanager's
//! webhook) does before it reads its request: the key, then the body,
//! then the rate limits; and the request line that the log lines about a
//! refused request name.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{Method, Uri};
use axum::middleware::Next;
use axum::response::Response;
use iamalive_core::HostId;

use super::{ApiError, AppState, body_error};
use crate::keys::ApiKey;

tokio::task_local! {
    /// The method and URI of the request being handled.
    static REQUEST_LINE: (Method, Uri);
}

/// Keeps the request's method and URI at hand while it is handled, so a
/// log line about it (a refused key, a rate limit) can say which request
/// it was without every caller passing them down. Cheap: both are
/// reference-counted; the path is redacted only when a line is written.
pub(super) async fn request_line_layer(req: Request, next: Next) -> Response {
    let line = (req.method().clone(), req.uri().clone());
    REQUEST_LINE.scope(line, next.run(req)).await
}

/// The method and the path (a ping URL's key redacted) of the request
/// being handled; empty outside a request.
pub(super) fn request_line() -> (String, String) {
    REQUEST_LINE
        .try_with(|(m, u)| (m.to_string(), super::log_path(u.path())))
        .unwrap_or_default()
}

/// An ingest request let in: its key (number and entry), its body, and
/// what the handler's `read` made of the body.
pub(super) struct Admitted<'s, T> {
    /// The key's number, for the rate limits and the signal path.
    pub(super) index: usize,
    /// The key.
    pub(super) key: &'s ApiKey,
    /// The request body.
    pub(super) body: Bytes,
    /// What `read` returned besides the host.
    pub(super) read: T,
}

impl AppState {
    /// The ingest's preamble: the key first (a request without a valid key
    /// costs a hash and nothing else: its body is never read), then the
    /// body, then the rate limits, charged with the host `read` finds in
    /// the body or the path, so a heartbeat they turn away is counted
    /// against that host.
    pub(super) async fn admit<T>(
        &self,
        presented: Result<Option<&str>, ApiError>,
        req: Request,
        read: impl FnOnce(&Bytes) -> (Option<HostId>, T),
    ) -> Result<Admitted<'_, T>, ApiError> {
        let (index, key) = self.authenticate(presented, true)?;
        let body = Bytes::from_request(req, self)
            .await
            .map_err(|e| body_error(self, e))?;
        let (host, read) = read(&body);
        self.charge(index, key, host.as_ref(), true)?;
        Ok(Admitted {
            index,
            key,
            body,
            read,
        })
    }
}
