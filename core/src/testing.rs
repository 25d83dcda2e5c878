//! For tests: a notifier that records and can be made to fail, a store
//! whose heartbeat writes can be made to hang or whose calls can be made to
//! fail, and a store that counts its group-record calls.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use crate::{
    GroupName, GroupRecord, Heartbeat, HeartbeatOutcome, HostId, HostRecord, MonitorMark, Notice,
    NoticeKind, Notifier, NotifyError, Silence, Store, StoreError, Timestamp,
};

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

/// A store whose `record_heartbeat` never completes while stalled, as a
/// store behind a dead link would; everything else goes straight to the
/// store it wraps. For testing what bounds a hung write (request
/// timeouts) and that nothing is written meanwhile.
#[derive(Debug)]
pub struct StallingStore<S> {
    inner: S,
    stalled: AtomicBool,
    failing: AtomicBool,
    lost: Mutex<Option<String>>,
}

impl<S: Store> StallingStore<S> {
    /// Wraps `inner`, not stalled.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            stalled: AtomicBool::new(false),
            failing: AtomicBool::new(false),
            lost: Mutex::new(None),
        }
    }

    /// From now on [`Store::check`] reports the data lost, saying `reason`
    /// (`Some`), or passes (`None`).
    pub fn set_lost(&self, reason: Option<&str>) {
        *self.lost.lock().unwrap_or_else(|e| e.into_inner()) = reason.map(str::to_owned);
    }

    /// Every call from now on fails as a full disk would (`true`), or goes
    /// through again.
    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    fn gate(&self) -> Result<(), StoreError> {
        if self.failing.load(Ordering::SeqCst) {
            Err(StoreError::unavailable(
                "stalling",
                "database or disk is full",
            ))
        } else {
            Ok(())
        }
    }

    /// Heartbeat writes started from now on hang (`true`) or go through.
    pub fn set_stalled(&self, stalled: bool) {
        self.stalled.store(stalled, Ordering::SeqCst);
    }

    /// The wrapped store, to look at what was written.
    pub fn inner(&self) -> &S {
        &self.inner
    }
}

impl<S: Store> fmt::Display for StallingStore<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "stalling({})", self.inner)
    }
}

#[async_trait]
impl<S: Store> Store for StallingStore<S> {
    async fn record_heartbeat(
        &self,
        hb: &Heartbeat,
        due_if_up: Timestamp,
        create: bool,
    ) -> Result<HeartbeatOutcome, StoreError> {
        self.gate()?;
        if self.stalled.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        self.inner.record_heartbeat(hb, due_if_up, create).await
    }
    async fn due(&self, now: Timestamp, limit: usize) -> Result<Vec<HostRecord>, StoreError> {
        self.gate()?;
        self.inner.due(now, limit).await
    }
    async fn next_due(&self) -> Result<Option<Timestamp>, StoreError> {
        self.gate()?;
        self.inner.next_due().await
    }
    async fn get(&self, host: &HostId) -> Result<Option<HostRecord>, StoreError> {
        self.gate()?;
        self.inner.get(host).await
    }
    async fn compare_and_swap(&self, expected: u64, next: &HostRecord) -> Result<bool, StoreError> {
        self.gate()?;
        self.inner.compare_and_swap(expected, next).await
    }
    async fn list(
        &self,
        after: Option<&HostId>,
        limit: usize,
    ) -> Result<Vec<HostRecord>, StoreError> {
        self.gate()?;
        self.inner.list(after, limit).await
    }
    async fn remove(&self, host: &HostId) -> Result<bool, StoreError> {
        self.gate()?;
        self.inner.remove(host).await
    }
    async fn put_silence(&self, silence: &Silence) -> Result<(), StoreError> {
        self.gate()?;
        self.inner.put_silence(silence).await
    }
    async fn silences(&self) -> Result<Vec<Silence>, StoreError> {
        self.gate()?;
        self.inner.silences().await
    }
    async fn remove_silence(&self, id: &str) -> Result<bool, StoreError> {
        self.gate()?;
        self.inner.remove_silence(id).await
    }
    async fn mark_run(&self, now: Timestamp, gap: Duration) -> Result<MonitorMark, StoreError> {
        self.gate()?;
        self.inner.mark_run(now, gap).await
    }
    async fn check(&self) -> Result<(), StoreError> {
        self.gate()?;
        let lost = self.lost.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(reason) = lost {
            return Err(StoreError::lost("stalling", reason));
        }
        self.inner.check().await
    }
}

/// A store that counts the group-record calls made to it and forwards
/// every call to the store it wraps: for tests of how often the monitor
/// reads and writes a group's record.
#[derive(Debug, Default)]
pub struct CountingStore<S> {
    inner: S,
    group_reads: AtomicU64,
    group_version_reads: AtomicU64,
    group_writes: AtomicU64,
}

impl<S: Store> CountingStore<S> {
    /// Wraps `inner`, nothing counted yet.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            group_reads: AtomicU64::new(0),
            group_version_reads: AtomicU64::new(0),
            group_writes: AtomicU64::new(0),
        }
    }

    /// Calls of [`Store::get_group`] so far.
    pub fn group_reads(&self) -> u64 {
        self.group_reads.load(Ordering::SeqCst)
    }

    /// Calls of [`Store::group_version`] so far.
    pub fn group_version_reads(&self) -> u64 {
        self.group_version_reads.load(Ordering::SeqCst)
    }

    /// Calls of [`Store::swap_group`] so far, won or lost.
    pub fn group_writes(&self) -> u64 {
        self.group_writes.load(Ordering::SeqCst)
    }
}

impl<S: Store> fmt::Display for CountingStore<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "counting({})", self.inner)
    }
}

#[async_trait]
impl<S: Store> Store for CountingStore<S> {
    async fn record_heartbeat(
        &self,
        hb: &Heartbeat,
        due_if_up: Timestamp,
        create: bool,
    ) -> Result<HeartbeatOutcome, StoreError> {
        self.inner.record_heartbeat(hb, due_if_up, create).await
    }
    async fn due(&self, now: Timestamp, limit: usize) -> Result<Vec<HostRecord>, StoreError> {
        self.inner.due(now, limit).await
    }
    async fn next_due(&self) -> Result<Option<Timestamp>, StoreError> {
        self.inner.next_due().await
    }
    async fn get(&self, host: &HostId) -> Result<Option<HostRecord>, StoreError> {
        self.inner.get(host).await
    }
    async fn compare_and_swap(&self, expected: u64, next: &HostRecord) -> Result<bool, StoreError> {
        self.inner.compare_and_swap(expected, next).await
    }
    async fn list(
        &self,
        after: Option<&HostId>,
        limit: usize,
    ) -> Result<Vec<HostRecord>, StoreError> {
        self.inner.list(after, limit).await
    }
    async fn remove(&self, host: &HostId) -> Result<bool, StoreError> {
        self.inner.remove(host).await
    }
    async fn put_silence(&self, silence: &Silence) -> Result<(), StoreError> {
        self.inner.put_silence(silence).await
    }
    async fn silences(&self) -> Result<Vec<Silence>, StoreError> {
        self.inner.silences().await
    }
    async fn remove_silence(&self, id: &str) -> Result<bool, StoreError> {
        self.inner.remove_silence(id).await
    }
    async fn mark_run(&self, now: Timestamp, gap: Duration) -> Result<MonitorMark, StoreError> {
        self.inner.mark_run(now, gap).await
    }
    async fn host_count(&self) -> Result<Option<u64>, StoreError> {
        self.inner.host_count().await
    }
    fn counts_hosts(&self) -> bool {
        self.inner.counts_hosts()
    }
    async fn group_hosts(
        &self,
        group: &GroupName,
        limit: usize,
    ) -> Result<Option<Vec<HostRecord>>, StoreError> {
        self.inner.group_hosts(group, limit).await
    }
    fn keeps_groups(&self) -> bool {
        self.inner.keeps_groups()
    }
    async fn get_group(&self, group: &GroupName) -> Result<Option<GroupRecord>, StoreError> {
        self.group_reads.fetch_add(1, Ordering::SeqCst);
        self.inner.get_group(group).await
    }
    async fn group_version(&self, group: &GroupName) -> Result<Option<u64>, StoreError> {
        self.group_version_reads.fetch_add(1, Ordering::SeqCst);
        self.inner.group_version(group).await
    }
    async fn swap_group(&self, expected: u64, next: &GroupRecord) -> Result<bool, StoreError> {
        self.group_writes.fetch_add(1, Ordering::SeqCst);
        self.inner.swap_group(expected, next).await
    }
    async fn due_groups(
        &self,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<GroupRecord>, StoreError> {
        self.inner.due_groups(now, limit).await
    }
    async fn next_group_due(&self) -> Result<Option<Timestamp>, StoreError> {
        self.inner.next_group_due().await
    }
}
