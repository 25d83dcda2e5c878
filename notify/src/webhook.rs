//! Webhooks: generic JSON, Teams, Slack, Discord and PagerDuty Events v2.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use hmac::{Hmac, Mac};
use iamalive_core::{Notice, Notifier, NotifyError, Timestamp};
use sha2::Sha256;

use crate::format::{WebhookFormat, payload};
use crate::{ConfigError, describe_chain, truncate};

/// The header carrying the signature: `sha256=<lowercase hex HMAC-SHA256>`.
pub const SIGNATURE_HEADER: &str = "X-Iamalive-Signature";
/// The header carrying the Unix time in seconds that was signed.
pub const TIMESTAMP_HEADER: &str = "X-Iamalive-Timestamp";
/// The header carrying the notice id (stable across redeliveries).
pub const NOTICE_ID_HEADER: &str = "X-Iamalive-Notice-Id";

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// POSTs each notice to a URL in one of several [`WebhookFormat`]s.
///
/// - Each request is bounded by a timeout (15 s by default, see
///   [`WebhookNotifier::with_timeout`]); redirects are not followed.
/// - With a secret, every request carries `X-Iamalive-Timestamp: <unix
///   seconds>` and `X-Iamalive-Signature: sha256=<hex>`, the HMAC-SHA256
///   under the secret of `<timestamp>.<body>` (see [`sign`]). Receivers
///   should recompute it over the raw body, compare in constant time and
///   reject old timestamps.
/// - Every request carries `X-Iamalive-Notice-Id` for deduplication.
/// - PagerDuty: the integration's routing key comes from a `routing_key`
///   query parameter on the URL (`https://events.pagerduty.com/v2/enqueue?routing_key=R0123`),
///   which is removed before sending, or from [`WebhookNotifier::with_routing_key`].
///
/// Errors ([`classify_status`]): timeouts, connection failures, 5xx, 408,
/// 425 and 429 are transient (429/503 pass `Retry-After` on); any other
/// non-2xx answer is permanent. Channel name: `webhook:<format>`.
#[derive(Clone)]
pub struct WebhookNotifier {
    client: reqwest::Client,
    url: url::Url,
    format: WebhookFormat,
    secret: Option<String>,
    routing_key: Option<String>,
    name: String,
    timeout: Duration,
}

impl fmt::Debug for WebhookNotifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Webhook URLs are often bearer secrets themselves (Slack, Teams,
        // Discord): show only scheme, host and port.
        let shown = format!(
            "{}://{}{}/…",
            self.url.scheme(),
            self.url.host_str().unwrap_or(""),
            self.url.port().map(|p| format!(":{p}")).unwrap_or_default()
        );
        f.debug_struct("WebhookNotifier")
            .field("url", &shown)
            .field("format", &self.format)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field(
                "routing_key",
                &self.routing_key.as_ref().map(|_| "<redacted>"),
            )
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl WebhookNotifier {
    /// A webhook channel posting to `url` (http or https) in `format`,
    /// signing with `secret` if one is given.
    pub fn new(
        url: &str,
        format: WebhookFormat,
        secret: Option<String>,
    ) -> Result<WebhookNotifier, ConfigError> {
        if let Some(reason) = crate::settings::two_urls(url) {
            return Err(ConfigError::invalid("webhook url", reason));
        }
        let mut url =
            url::Url::parse(url).map_err(|e| ConfigError::invalid("webhook url", e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(ConfigError::invalid(
                "webhook url",
                "expected an http:// or https:// URL with a host",
            ));
        }
        let mut routing_key = None;
        if format == WebhookFormat::PagerDuty {
            let (key, rest): (Vec<_>, Vec<_>) = url
                .query_pairs()
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .partition(|(k, _)| k == "routing_key");
            routing_key = key.into_iter().next().map(|(_, v)| v);
            if rest.is_empty() {
                url.set_query(None);
            } else {
                url.query_pairs_mut().clear().extend_pairs(rest);
            }
        }
        let secret = secret.filter(|s| !s.is_empty());
        let client = build_client(DEFAULT_TIMEOUT)?;
        Ok(WebhookNotifier {
            client,
            url,
            name: format!("webhook:{format}"),
            format,
            secret,
            routing_key,
            timeout: DEFAULT_TIMEOUT,
        })
        .and_then(WebhookNotifier::check)
    }

    fn check(self) -> Result<Self, ConfigError> {
        if self.format == WebhookFormat::PagerDuty && self.routing_key.is_none() {
            return Err(ConfigError::invalid(
                "webhook url",
                "pagerduty needs a routing key: add ?routing_key=<integration key> to the URL",
            ));
        }
        Ok(self)
    }

    /// Sets the PagerDuty routing (integration) key.
    pub fn with_routing_key(mut self, key: impl Into<String>) -> Self {
        self.routing_key = Some(key.into());
        self
    }

    /// Bounds each request (connect, send, answer) by `timeout`.
    pub fn with_timeout(mut self, timeout: Duration) -> Result<Self, ConfigError> {
        if timeout.is_zero() {
            return Err(ConfigError::invalid(
                "webhook timeout",
                "must be more than zero",
            ));
        }
        self.client = build_client(timeout)?;
        self.timeout = timeout;
        Ok(self)
    }

    /// The body format.
    pub fn format(&self) -> WebhookFormat {
        self.format
    }
}

fn build_client(timeout: Duration) -> Result<reqwest::Client, ConfigError> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(CONNECT_TIMEOUT.min(timeout))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("iamalive/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| ConfigError::invalid("webhook client", e.to_string()))
}

/// `sha256=<hex>`: HMAC-SHA256 under `secret` of `<timestamp>.<body>`.
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC accepts any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// What an HTTP answer means: `None` for success (2xx), otherwise the
/// classified error. `retry_after` is the raw `Retry-After` header (seconds
/// or an HTTP date), honoured on 429 and 503.
pub fn classify_status(
    channel: &str,
    status: u16,
    retry_after: Option<&str>,
    now: Timestamp,
) -> Option<NotifyError> {
    if (200..300).contains(&status) {
        return None;
    }
    let reason = format!("HTTP {status}");
    Some(match status {
        408 | 425 | 429 | 500..=599 => NotifyError::Transient {
            channel: channel.to_owned(),
            reason,
            retry_after: if matches!(status, 429 | 503) {
                retry_after.and_then(|v| parse_retry_after(v, now))
            } else {
                None
            },
        },
        300..=399 => NotifyError::permanent(
            channel,
            format!("{reason}: redirects are not followed; configure the final URL"),
        ),
        _ => NotifyError::permanent(channel, reason),
    })
}

fn parse_retry_after(v: &str, now: Timestamp) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    chrono::DateTime::parse_from_rfc2822(v)
        .ok()
        .map(|t| iamalive_core::since(t.with_timezone(&Utc), now))
}

#[async_trait]
impl Notifier for WebhookNotifier {
    fn name(&self) -> &str {
        &self.name
    }

    async fn deliver(&self, notice: &Notice) -> Result<(), NotifyError> {
        self.post(notice).await?;
        // PagerDuty: a test notice would leave an incident open and page
        // whoever is on call until someone resolves it by hand; it is
        // resolved at once (the trigger still shows the wiring works).
        if self.format == WebhookFormat::PagerDuty && notice.kind == iamalive_core::NoticeKind::Test
        {
            let mut done = notice.clone();
            done.kind = iamalive_core::NoticeKind::Restored;
            self.post(&done).await?;
        }
        Ok(())
    }
}

impl WebhookNotifier {
    /// One POST of `notice` in this channel's format.
    async fn post(&self, notice: &Notice) -> Result<(), NotifyError> {
        let now = Utc::now();
        let body = serde_json::to_vec(&payload(
            notice,
            self.format,
            self.routing_key.as_deref(),
            now,
        ))
        .map_err(|e| NotifyError::permanent(&self.name, format!("cannot encode: {e}")))?;
        let mut req = self
            .client
            .post(self.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(NOTICE_ID_HEADER, &notice.id);
        if let Some(secret) = &self.secret {
            let t = now.timestamp();
            req = req
                .header(TIMESTAMP_HEADER, t.to_string())
                .header(SIGNATURE_HEADER, sign(secret, t, &body));
        }
        let resp = match req.body(body).send().await {
            Ok(r) => r,
            Err(e) if e.is_builder() => {
                return Err(NotifyError::permanent(&self.name, describe_chain(&e)));
            }
            Err(e) if e.is_timeout() => {
                return Err(NotifyError::transient(
                    &self.name,
                    format!(
                        "no answer within {:?}: {}",
                        self.timeout,
                        describe_chain(&e)
                    ),
                ));
            }
            Err(e) => return Err(NotifyError::transient(&self.name, describe_chain(&e))),
        };
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        match classify_status(&self.name, status, retry_after.as_deref(), Utc::now()) {
            None => Ok(()),
            Some(err) => {
                // Keep a little of the answer: receivers explain refusals there.
                let text = tokio::time::timeout(Duration::from_secs(2), resp.text())
                    .await
                    .ok()
                    .and_then(Result::ok)
                    .unwrap_or_default();
                let text = truncate(text.trim(), 300);
                Err(match err {
                    NotifyError::Transient {
                        channel,
                        reason,
                        retry_after,
                    } => NotifyError::Transient {
                        channel,
                        reason: with_text(reason, &text),
                        retry_after,
                    },
                    NotifyError::Permanent { channel, reason } => NotifyError::Permanent {
                        channel,
                        reason: with_text(reason, &text),
                    },
                    other => other,
                })
            }
        }
    }
}

fn with_text(reason: String, text: &str) -> String {
    if text.is_empty() {
        reason
    } else {
        format!("{reason}: {text}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        "2024-05-01T12:00:00Z".parse().unwrap()
    }

    #[test]
    fn statuses_map_to_classes() {
        let c = |s, ra| classify_status("w", s, ra, now());
        assert!(c(200, None).is_none());
        assert!(c(202, None).is_none());
        assert!(c(204, None).is_none());
        for s in [408, 425, 429, 500, 502, 503, 504] {
            assert!(c(s, None).unwrap().is_transient(), "{s}");
        }
        for s in [301, 400, 401, 403, 404, 410, 413, 422] {
            assert!(!c(s, None).unwrap().is_transient(), "{s}");
        }
        match c(429, Some("7")).unwrap() {
            NotifyError::Transient { retry_after, .. } => {
                assert_eq!(retry_after, Some(Duration::from_secs(7)))
            }
            other => panic!("{other:?}"),
        }
        match c(503, Some("Wed, 01 May 2024 12:01:00 GMT")).unwrap() {
            NotifyError::Transient { retry_after, .. } => {
                assert_eq!(retry_after, Some(Duration::from_secs(60)))
            }
            other => panic!("{other:?}"),
        }
        match c(500, Some("7")).unwrap() {
            NotifyError::Transient { retry_after, .. } => assert_eq!(retry_after, None),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn two_urls_in_one_setting_are_refused_with_both_named() {
        let e = WebhookNotifier::new("http://a/x,http://b/y", WebhookFormat::Json, None)
            .expect_err("two URLs");
        let text = e.to_string();
        assert!(
            text.contains("http://a/x") && text.contains("http://b/y"),
            "{text}"
        );
        assert!(WebhookNotifier::new("http://a/x http://b/y", WebhookFormat::Json, None).is_err());
        // A comma that does not start another URL is a URL's business.
        assert!(WebhookNotifier::new("http://a/x?tags=a,b", WebhookFormat::Json, None).is_ok());
    }

    #[test]
    fn pagerduty_needs_a_routing_key_and_hides_it_from_the_url() {
        assert!(
            WebhookNotifier::new(
                "https://e.example/v2/enqueue",
                WebhookFormat::PagerDuty,
                None
            )
            .is_err()
        );
        let n = WebhookNotifier::new(
            "https://e.example/v2/enqueue?routing_key=R1&x=1",
            WebhookFormat::PagerDuty,
            Some("s3cret".into()),
        )
        .unwrap();
        assert_eq!(n.url.as_str(), "https://e.example/v2/enqueue?x=1");
        assert_eq!(n.routing_key.as_deref(), Some("R1"));
        let d = format!("{n:?}");
        assert!(!d.contains("R1") && !d.contains("s3cret"), "{d}");
        assert_eq!(n.name(), "webhook:pagerduty");
    }

    #[test]
    fn signature_is_hmac_of_timestamp_dot_body() {
        // Independent check: RFC 4231-style HMAC computed by hand would be
        // overkill; instead check the documented shape and sensitivity.
        let a = sign("k", 1, b"{}");
        assert!(a.starts_with("sha256=") && a.len() == 7 + 64);
        assert_ne!(a, sign("k", 2, b"{}"));
        assert_ne!(a, sign("k", 1, b"{ }"));
        assert_ne!(a, sign("j", 1, b"{}"));
    }
}
