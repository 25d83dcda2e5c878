//! Notifiers for tests: one that records, one that can be made to fail.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use crate::{Notice, NoticeKind, Notifier, NotifyError};

/// Records every notice it is given. Clones share the same log, so several
/// monitors can stand for one real channel.
#[derive(Debug, Clone)]
pub struct RecordingNotifier {
    name: String,
    log: Arc<Mutex<Vec<Notice>>>,
    mode: Arc<AtomicU8>,
}

const OK: u8 = 0;
const TRANSIENT: u8 = 1;
const PERMANENT: u8 = 2;

impl RecordingNotifier {
    /// A channel called `name` that takes everything.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            log: Arc::default(),
            mode: Arc::default(),
        }
    }

    /// Makes every delivery fail transiently (`true`) or succeed (`false`).
    pub fn set_down(&self, down: bool) {
        self.mode
            .store(if down { TRANSIENT } else { OK }, Ordering::SeqCst);
    }

    /// Makes every delivery fail permanently.
    pub fn set_refusing(&self) {
        self.mode.store(PERMANENT, Ordering::SeqCst);
    }

    /// Every notice delivered so far, in order.
    pub fn notices(&self) -> Vec<Notice> {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// How many of `kind` were delivered.
    pub fn count(&self, kind: NoticeKind) -> usize {
        self.notices().iter().filter(|n| n.kind == kind).count()
    }

    /// Forgets what was delivered.
    pub fn clear(&self) {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

#[async_trait]
impl Notifier for RecordingNotifier {
    fn name(&self) -> &str {
        &self.name
    }

    async fn deliver(&self, notice: &Notice) -> Result<(), NotifyError> {
        match self.mode.load(Ordering::SeqCst) {
            TRANSIENT => Err(NotifyError::transient(&self.name, "test channel is down")),
            PERMANENT => Err(NotifyError::permanent(&self.name, "test channel refuses")),
            _ => {
                self.log
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(notice.clone());
                Ok(())
            }
        }
    }
}
