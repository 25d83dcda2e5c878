//! Building channels from their settings.

use std::sync::Arc;

use iamalive_core::Notifier;

use crate::settings::{ChannelKind, ChannelSettings, SettingError};
use crate::{Named, StdoutNotifier};

/// Turns [`ChannelSettings`] into channels, each under its configured name
/// ([`Named`]). Kinds this build of the crate lacks (a feature that is
/// off) are refused naming the channel.
///
/// SNS channels use the client given with `with_sns_client`, or one
/// configured the AWS SDK's usual way (`AWS_REGION`, credentials,
/// `AWS_ENDPOINT_URL`), made once for all of them.
#[derive(Debug, Clone, Default)]
pub struct ChannelBuilder {
    #[cfg(feature = "sns")]
    sns: Option<aws_sdk_sns::Client>,
}

impl ChannelBuilder {
    /// A builder with no clients of its own.
    pub fn new() -> Self {
        Self::default()
    }

    /// Publishes to SNS through `client`.
    #[cfg(feature = "sns")]
    pub fn with_sns_client(mut self, client: aws_sdk_sns::Client) -> Self {
        self.sns = Some(client);
        self
    }

    /// One channel per entry of `settings`, in order.
    pub async fn build(
        &self,
        settings: &[ChannelSettings],
    ) -> Result<Vec<Arc<dyn Notifier>>, SettingError> {
        #[cfg(feature = "sns")]
        let mut sns = self.sns.clone();
        let mut out: Vec<Arc<dyn Notifier>> = Vec::with_capacity(settings.len());
        for s in settings {
            let at = |e: crate::ConfigError| {
                SettingError::new(
                    format!("channel {:?} ({})", s.name, s.kind.as_str()),
                    e.to_string(),
                )
            };
            let inner: Arc<dyn Notifier> = match &s.kind {
                ChannelKind::Stdout => Arc::new(StdoutNotifier::new()),
                #[cfg(feature = "smtp")]
                ChannelKind::Smtp { url, from, to } => {
                    Arc::new(crate::SmtpNotifier::from_url(url.expose(), from, to).map_err(at)?)
                }
                #[cfg(feature = "webhook")]
                ChannelKind::Webhook {
                    url,
                    format,
                    secret,
                } => Arc::new(
                    crate::WebhookNotifier::new(
                        url.expose(),
                        *format,
                        secret.as_ref().map(|s| s.expose().to_owned()),
                    )
                    .map_err(at)?,
                ),
                #[cfg(feature = "sns")]
                ChannelKind::Sns { topic_arn } => {
                    let client = match &sns {
                        Some(c) => c.clone(),
                        None => {
                            let sdk =
                                aws_config::load_defaults(aws_config::BehaviorVersion::latest())
                                    .await;
                            let c = aws_sdk_sns::Client::new(&sdk);
                            sns = Some(c.clone());
                            c
                        }
                    };
                    Arc::new(crate::SnsNotifier::new(client, topic_arn))
                }
                #[allow(unreachable_patterns)]
                other => {
                    return Err(SettingError::new(
                        format!("channel {:?}", s.name),
                        format!(
                            "this build has no {} channels (iamalive-notify's `{}` feature is off)",
                            other.as_str(),
                            other.as_str()
                        ),
                    ));
                }
            };
            let _ = &at;
            out.push(Arc::new(Named::new(&s.name, inner)));
        }
        Ok(out)
    }
}
