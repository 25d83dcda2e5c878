//! The benches' channel: every notice, stamped with the instant it arrived.

use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use iamalive_core::{Notice, NoticeKind, Notifier, NotifyError, Timestamp};

/// Keeps every notice delivered to it with its arrival time (taken before
/// anything else is done with it).
#[derive(Debug, Default)]
pub struct Stamper {
    got: Mutex<Vec<(Notice, Timestamp)>>,
}

#[async_trait]
impl Notifier for Stamper {
    fn name(&self) -> &str {
        "stamper"
    }

    async fn deliver(&self, notice: &Notice) -> Result<(), NotifyError> {
        let arrived = chrono::Utc::now();
        self.got().push((notice.clone(), arrived));
        Ok(())
    }
}

impl Stamper {
    fn got(&self) -> MutexGuard<'_, Vec<(Notice, Timestamp)>> {
        self.got.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How many notices arrived.
    pub fn len(&self) -> usize {
        self.got().len()
    }

    /// No notice arrived yet.
    pub fn is_empty(&self) -> bool {
        self.got().is_empty()
    }

    /// How many notices of `kind` arrived.
    pub fn count(&self, kind: NoticeKind) -> usize {
        self.got().iter().filter(|(n, _)| n.kind == kind).count()
    }

    /// The first group notice of `kind` after the first `skip` notices,
    /// with its position and arrival.
    pub fn find_group(&self, kind: NoticeKind, skip: usize) -> Option<(usize, Notice, Timestamp)> {
        self.got()
            .iter()
            .enumerate()
            .skip(skip)
            .find(|(_, (n, _))| n.kind == kind && n.is_group())
            .map(|(i, (n, t))| (i, n.clone(), *t))
    }

    /// How many notices after the first `skip` are not a group's.
    pub fn hosts_own_since(&self, skip: usize) -> usize {
        self.got()
            .iter()
            .skip(skip)
            .filter(|(n, _)| !n.is_group())
            .count()
    }

    /// Every notice so far, leaving none.
    pub fn take(&self) -> Vec<(Notice, Timestamp)> {
        std::mem::take(&mut *self.got())
    }
}
