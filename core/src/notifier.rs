//! The delivery contract every channel implements.

use std::time::Duration;

use async_trait::async_trait;

use crate::Notice;

/// Why a channel could not take a notice.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NotifyError {
    /// A retry may help (timeout, connection refused, 5xx, 429).
    #[error("{channel}: temporary failure: {reason}")]
    Transient {
        /// Which channel.
        channel: String,
        /// What happened.
        reason: String,
        /// The channel's own requested wait, if it gave one.
        retry_after: Option<Duration>,
    },
    /// A retry will not help (bad address, 4xx, rejected credentials).
    #[error("{channel}: refused: {reason}")]
    Permanent {
        /// Which channel.
        channel: String,
        /// What happened.
        reason: String,
    },
}

impl NotifyError {
    /// A transient failure with no requested wait.
    pub fn transient(channel: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Transient {
            channel: channel.into(),
            reason: reason.into(),
            retry_after: None,
        }
    }

    /// A permanent failure.
    pub fn permanent(channel: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Permanent {
            channel: channel.into(),
            reason: reason.into(),
        }
    }

    /// What the channel said, without the channel's name.
    pub fn reason(&self) -> &str {
        match self {
            Self::Transient { reason, .. } | Self::Permanent { reason, .. } => reason,
        }
    }

    /// Whether a retry can help.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Transient { .. })
    }
}

/// One delivery channel: an SMTP relay, an SNS topic, a webhook.
#[async_trait]
pub trait Notifier: Send + Sync + 'static {
    /// A stable, unique name for this channel (`smtp`, `webhook:ops`).
    ///
    /// *Contract*: it is persisted in the outbox to remember which channels
    /// already took a notice, so it must not change between restarts and
    /// must be the same on every monitor sharing a store.
    fn name(&self) -> &str;

    /// Delivers one notice.
    ///
    /// *Contract*: returns within a bounded time (each implementation has
    /// its own timeout, shorter than the monitor's lease). The same notice
    /// may be delivered more than once after a crash: pass `notice.id` on
    /// where the receiver can deduplicate on it.
    async fn deliver(&self, notice: &Notice) -> Result<(), NotifyError>;

    /// Checks, without sending anything, that the channel can be reached
    /// (an SMTP relay answers and accepts the login), so a start-up can
    /// warn before an outage finds out.
    ///
    /// *Contract*: bounded in time, no notice sent. Channels that cannot
    /// check without sending (a webhook) keep this default, which says
    /// nothing is known.
    async fn check(&self) -> Result<(), NotifyError> {
        Ok(())
    }
}
