//! Amazon SNS: publish each notice to a topic.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sns::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sns::types::MessageAttributeValue;
use iamalive_core::{Notice, Notifier, NotifyError};

const CHANNEL: &str = "sns";
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);
/// SNS rejects subjects of 100 characters or more.
const MAX_SUBJECT: usize = 99;

/// Publishes each notice to an SNS topic, for email, SMS, Lambda or queue
/// subscribers.
///
/// - Subject: [`sns_subject`], e.g. `[iamalive] ALARM build-01` (ASCII, no
///   line breaks, under SNS's 100-character limit; a long host id is cut).
/// - Message: the same plain text as the email ([`Notice::body`]).
/// - Message attributes (`String`): `kind` (`alarm` | `reminder` |
///   `recovery`), `host`, `notice_id`, so subscriptions can filter with a
///   filter policy such as `{"kind": ["alarm", "recovery"]}`.
/// - On a FIFO topic (ARN ending in `.fifo`) the notice id is the
///   deduplication id and the host the message group.
///
/// The client comes configured (region, credentials, endpoint) by the
/// caller; each Publish, SDK retries included, is bounded by a timeout
/// (20 s by default). Throttling, 5xx, timeouts and connection failures are
/// transient; other refusals (no such topic, access denied, invalid
/// parameter) are permanent. Channel name: `sns`.
#[derive(Clone)]
pub struct SnsNotifier {
    client: aws_sdk_sns::Client,
    topic_arn: String,
    timeout: Duration,
}

impl fmt::Debug for SnsNotifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SnsNotifier")
            .field("topic_arn", &self.topic_arn)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl SnsNotifier {
    /// A channel publishing to `topic_arn` through `client`.
    pub fn new(client: aws_sdk_sns::Client, topic_arn: impl Into<String>) -> SnsNotifier {
        SnsNotifier {
            client,
            topic_arn: topic_arn.into(),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Bounds each Publish (with the SDK's own retries) by `timeout`.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The topic.
    pub fn topic_arn(&self) -> &str {
        &self.topic_arn
    }
}

/// The SNS subject for `notice`: printable ASCII, no line breaks, at most
/// 99 characters, naming the kind and the host (and its site, when it has
/// one: `[iamalive] ALARM db-1 (site office-berlin)`), or for a group
/// notice the site (`[iamalive] ALARM site office-berlin: 10 hosts
/// silent`, `[iamalive] FLAPPING site office-berlin: 5 outages in 1h (10
/// hosts)`).
pub fn sns_subject(notice: &Notice) -> String {
    let (prefix, rest) = if notice.kind.is_watcher() {
        (
            format!("[iamalive] {}: ", notice.kind.tag()),
            notice.headline(),
        )
    } else if notice.is_group() || notice.is_blind() {
        // "site office-berlin: 10 hosts silent", "watcher may be blind: …"
        (
            format!("[iamalive] {} ", notice.kind.tag()),
            notice.headline(),
        )
    } else {
        (
            format!("[iamalive] {} ", notice.kind.tag()),
            match notice.flap_detail() {
                Some(d) => format!("{}: {d}", notice.host_label()),
                None => notice.host_label(),
            },
        )
    };
    // SNS takes printable ASCII only; host ids already are, filter anyway
    // so the rule holds for watcher headlines too.
    let rest: String = rest
        .chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .collect();
    let room = MAX_SUBJECT - prefix.len();
    if rest.len() <= room {
        format!("{prefix}{rest}")
    } else {
        format!("{prefix}{}...", &rest[..room - 3])
    }
}

fn attr(v: &str) -> Result<MessageAttributeValue, NotifyError> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(v)
        .build()
        .map_err(|e| NotifyError::permanent(CHANNEL, format!("bad message attribute: {e}")))
}

fn classify<E, R>(e: &SdkError<E, R>) -> NotifyError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: fmt::Debug,
{
    let detail = aws_sdk_sns::error::DisplayErrorContext(e).to_string();
    match e {
        SdkError::ServiceError(se) => {
            let code = se.err().code().unwrap_or_default();
            let transient_code = matches!(
                code,
                "Throttled"
                    | "Throttling"
                    | "ThrottlingException"
                    | "ThrottledException"
                    | "InternalError"
                    | "InternalFailure"
                    | "ServiceUnavailable"
                    | "KMSThrottling"
                    | "RequestTimeout"
            );
            if transient_code {
                NotifyError::transient(CHANNEL, detail)
            } else {
                NotifyError::permanent(CHANNEL, detail)
            }
        }
        SdkError::ConstructionFailure(_) => NotifyError::permanent(CHANNEL, detail),
        // Timeouts, dispatch (connect, DNS, TLS) and unreadable responses.
        _ => NotifyError::transient(CHANNEL, detail),
    }
}

#[async_trait]
impl Notifier for SnsNotifier {
    fn name(&self) -> &str {
        CHANNEL
    }

    async fn deliver(&self, notice: &Notice) -> Result<(), NotifyError> {
        let mut req = self
            .client
            .publish()
            .topic_arn(&self.topic_arn)
            .subject(sns_subject(notice))
            .message(notice.body())
            .message_attributes("kind", attr(notice.kind.as_str())?)
            .message_attributes("host", attr(notice.host.as_str())?)
            .message_attributes("notice_id", attr(&notice.id)?);
        if let Some(g) = &notice.group {
            req = req.message_attributes("group", attr(g.as_str())?);
        }
        if self.topic_arn.ends_with(".fifo") {
            // Deduplication ids allow at most 128 characters of [!-~].
            let dedup: String = notice.id.chars().take(128).collect();
            req = req
                .message_deduplication_id(dedup)
                .message_group_id(notice.host.as_str());
        }
        match tokio::time::timeout(self.timeout, req.send()).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(classify(&e)),
            Err(_) => Err(NotifyError::transient(
                CHANNEL,
                format!("Publish took longer than {:?}", self.timeout),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use iamalive_core::HostId;
    use iamalive_core::NoticeKind;

    fn notice(host: &str, kind: NoticeKind) -> Notice {
        let t = "2024-05-01T12:00:00Z".parse().unwrap();
        Notice {
            alarm_count: 1,
            ..Notice::new("x".into(), "x".into(), kind, HostId::new(host).unwrap(), t)
        }
    }

    #[test]
    fn subject_fits_sns_rules() {
        assert_eq!(
            sns_subject(&notice("build-01", NoticeKind::Alarm)),
            "[iamalive] ALARM build-01"
        );
        let long = "h".repeat(253);
        for k in [
            NoticeKind::Alarm,
            NoticeKind::Reminder,
            NoticeKind::Recovery,
        ] {
            let s = sns_subject(&notice(&long, k));
            assert!(s.len() < 100, "{}", s.len());
            assert!(s.is_ascii() && !s.contains('\n'));
            assert!(s.ends_with("..."));
        }
    }
}
