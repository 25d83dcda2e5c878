//! A channel under the name its user gave it.

use std::sync::Arc;

use async_trait::async_trait;
use iamalive_core::{Notice, Notifier, NotifyError};

/// `inner` under `name`: the name the outbox records progress by, that
/// logs and errors show, and that routes pick. Channel names are the
/// user's (`email`, `team-chat`), so two channels of one kind can coexist.
#[derive(Clone)]
pub struct Named {
    name: String,
    inner: Arc<dyn Notifier>,
}

impl std::fmt::Debug for Named {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The inner channel's own Debug may be richer, but is not
        // reachable through the trait object; its name is.
        f.debug_struct("Named")
            .field("name", &self.name)
            .field("inner", &self.inner.name())
            .finish()
    }
}

impl Named {
    /// `inner` named `name`.
    pub fn new(name: impl Into<String>, inner: Arc<dyn Notifier>) -> Self {
        Self {
            name: name.into(),
            inner,
        }
    }

    fn rename(&self, e: NotifyError) -> NotifyError {
        match e {
            NotifyError::Transient {
                reason,
                retry_after,
                ..
            } => NotifyError::Transient {
                channel: self.name.clone(),
                reason,
                retry_after,
            },
            NotifyError::Permanent { reason, .. } => NotifyError::permanent(&self.name, reason),
            other => other,
        }
    }
}

#[async_trait]
impl Notifier for Named {
    fn name(&self) -> &str {
        &self.name
    }

    async fn deliver(&self, notice: &Notice) -> Result<(), NotifyError> {
        self.inner.deliver(notice).await.map_err(|e| self.rename(e))
    }

    async fn check(&self) -> Result<(), NotifyError> {
        self.inner.check().await.map_err(|e| self.rename(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Failing;

    #[async_trait]
    impl Notifier for Failing {
        fn name(&self) -> &str {
            "webhook:json"
        }
        async fn deliver(&self, _: &Notice) -> Result<(), NotifyError> {
            Err(NotifyError::transient("webhook:json", "HTTP 503"))
        }
    }

    #[tokio::test]
    async fn errors_carry_the_users_name() {
        let t: iamalive_core::Timestamp = "2024-05-01T12:00:00Z".parse().unwrap();
        let n = iamalive_core::health::watcher_notice(
            iamalive_core::NoticeKind::Test,
            "x",
            1,
            t,
            t,
            String::new(),
        );
        let c = Named::new("team-chat", Arc::new(Failing));
        assert_eq!(c.name(), "team-chat");
        let e = c.deliver(&n).await.unwrap_err();
        assert!(e.is_transient());
        assert_eq!(e.to_string(), "team-chat: temporary failure: HTTP 503");
    }
}
